#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of the dax: auto replay VM test, on a real fsdax namespace
# (emulated NVDIMM), xfs mounted -o dax=inode: daxpolicyd runs a dax: auto
# policy with the optane-dcpmm media figures (private session bus, 1 s
# interval) while it records a trace (daxpolicyctl record start), and a small
# workload runs:
#   - reread: effective DAX, re-read whole in 4 KiB calls: to the page cache;
#   - stream: page cache, cold, read once in 1 MiB calls: to DAX at once;
#   - hot: page cache, warm, re-read: stays.
# Then `daxpolicyctl simulate --modes` replays the recorded trace through the
# same policy, and every file must end in the mode the daemon gave it, with
# as many switches, each within one interval of the daemon's.
#
#   auto-replay.sh BIN_DIR PROBE    BIN_DIR: build/bin; PROBE: vm_daxctl_probe
source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"

bin=${1:?usage: auto-replay.sh BIN_DIR PROBE}
probe=${2:?usage: auto-replay.sh BIN_DIR PROBE}
vm_require "daxpolicyd built" test -x "$bin/daxpolicyd"
vm_require_cmd ndctl mkfs.xfs dbus-daemon dd
vm_require "python3" /usr/bin/python3 -c ""
vm_require "kernel BTF" test -r /sys/kernel/btf/vmlinux
# The minimal guest mounts no tracefs: the daemon finds its tracepoints in BTF.

dev=$(vm_pmem_fsdax) || exit $?
work=$(mktemp -d)
mnt=/mnt/auto
effective() { "$probe" get "$1" | grep -o 'statx_dax=[01]'; }
ctl() { "$bin/daxpolicyctl" --session "$@"; }
bus=$(dbus-daemon --session --fork --print-address=1 --print-pid=1) || vm_die "dbus-daemon: $bus"
DBUS_SESSION_BUS_ADDRESS=$(head -n1 <<<"$bus")
export DBUS_SESSION_BUS_ADDRESS
bus_pid=$(sed -n 2p <<<"$bus")

vm_mkfs xfs "$dev"
vm_mount_dax "$dev" "$mnt"
mkdir -p "$mnt/dax" "$mnt/pc"
"$probe" set "$mnt/dax" >/dev/null || vm_die "cannot set the DAX flag on $mnt/dax"
head -c 2M /dev/urandom >"$mnt/dax/reread" # created DAX: inherits the directory's flag
head -c 2M /dev/urandom >"$mnt/pc/hot"
head -c 48M /dev/urandom >"$mnt/pc/stream"
sync
echo 3 >/proc/sys/vm/drop_caches
cat "$mnt/pc/hot" >/dev/null # warm: its first recorded interval already hits
vm_expect_eq "reread starts effective DAX" "statx_dax=1" "$(effective "$mnt/dax/reread")"
vm_expect_eq "stream starts in the page cache" "statx_dax=0" "$(effective "$mnt/pc/stream")"

# The rules of config/examples/auto.yaml, on this mount, with a 3 s `for:`.
cat >"$work/policy.yaml" <<YAML
apiVersion: daxpolicy/v1
daemon: { interval: 1s, mode: enforce, metrics: { listen: "off" } }
scopes: [ $mnt ]
defaults: { dax: keep, min_dwell: 10m, max_switches_per_minute: 1000 }
cost:
  mounts: [ { path: $mnt, media: optane-dcpmm } ]
rules:
  - name: missing-by-cost
    match: { path: "$mnt/**", size: ">= 64KiB" }
    when: "file.cache_hit_ratio < 0.1"
    dax: auto
  - name: by-cost
    match: { path: "$mnt/**", size: ">= 64KiB" }
    for: 3s
    dax: auto
YAML
"$bin/daxpolicyd" --session --config "$work/policy.yaml" --state-dir "$work/state" \
  >"$work/daemon.out" 2>&1 &
daemon=$!
vm_wait_for 30 ctl status >/dev/null || vm_die "daxpolicyd did not come up: $(cat "$work/daemon.out")"
vm_expect "record start" ctl record start --output "$work/live.trace"

# Readers that open and close the file on every pass, so a switch takes effect.
(while :; do dd if="$mnt/dax/reread" of=/dev/null bs=4k 2>/dev/null; done) &
reread_reader=$!
(while :; do dd if="$mnt/pc/hot" of=/dev/null bs=1M 2>/dev/null; sleep 0.05; done) &
hot_reader=$!
sleep 2
# 48 MiB once, 4 MiB at a time.
for i in $(seq 0 11); do
  dd if="$mnt/pc/stream" of=/dev/null bs=1M skip=$((i * 4)) count=4 2>/dev/null
  sleep 0.3
done
# Past the by-cost rule's `for:` for the re-read file, whatever the start.
vm_wait_for 20 bash -c "[[ \$('$probe' get '$mnt/dax/reread' | grep -o 'statx_dax=[01]') == statx_dax=0 ]]" >/dev/null
sleep 2
kill "$reread_reader" "$hot_reader"
wait "$reread_reader" "$hot_reader" 2>/dev/null
sleep 2
vm_expect "record stop" ctl record stop
ctl explain "$mnt/pc/stream" 2>&1 | sed 's/^/#   | /'

vm_expect_eq "the daemon moved the re-read DAX file to the page cache" "statx_dax=0" \
  "$(effective "$mnt/dax/reread")"
vm_expect_eq "the daemon moved the streamed file to DAX" "statx_dax=1" \
  "$(effective "$mnt/pc/stream")"
vm_expect_eq "the daemon kept the hot file in the page cache" "statx_dax=0" \
  "$(effective "$mnt/pc/hot")"

"$bin/daxpolicyctl" simulate "$work/live.trace" --policy "$work/policy.yaml" --modes \
  >"$work/sim.txt" 2>&1
sed 's/^/#   sim| /' "$work/sim.txt"
vm_expect "simulate --json --modes replays the recorded trace" \
  bash -c "'$bin/daxpolicyctl' --json simulate '$work/live.trace' --policy '$work/policy.yaml' \
    --modes >'$work/sim.json'"

# Per file: the final mode, the number of switches and each switch's time.
compare() {
  /usr/bin/python3 - "$work/sim.json" "$1" <<'PY'
import json, sys
sim = json.load(open(sys.argv[1]))
path = sys.argv[2]
interval = sim["interval_s"]
m = next((m for m in sim["modes"] if m["path"] == path), None)
if m is None:
    sys.exit(f"{path} is not in the trace")
rec, pol = m["recorded"], m["policy"]
def final(s): return s[-1]["to"] if s else m["first"]
print(f"first {m['first']}; daemon: {rec}; simulated: {pol}")
if final(rec) != final(pol):
    sys.exit(f"ends in {final(pol)} in the simulation, {final(rec)} on the daemon")
if len(rec) != len(pol):
    sys.exit(f"{len(pol)} switches in the simulation, {len(rec)} on the daemon")
for r, p in zip(rec, pol):
    if r["to"] != p["to"] or abs(r["t_s"] - p["t_s"]) > interval + 1e-6:
        sys.exit(f"switch to {p['to']} at {p['t_s']} s in the simulation, to {r['to']} at "
                 f"{r['t_s']} s on the daemon (interval {interval} s)")
PY
}
for f in dax/reread pc/stream pc/hot; do
  vm_expect "$f: the simulator makes the daemon's choices, within an interval" compare "$mnt/$f" &&
    compare "$mnt/$f" | sed 's/^/#   /'
done

kill "$daemon"
wait "$daemon" 2>/dev/null
sed 's/^/#   daemon| /' "$work/daemon.out" | tail -n 5
vm_expect "restore from the journal" "$bin/daxpolicyctl" restore --state-dir "$work/state" --all
umount "$mnt"
kill "$bus_pid" 2>/dev/null
vm_done
