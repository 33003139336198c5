#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of the access-tracing VM test, on a real fsdax namespace (emulated
# NVDIMM), xfs and ext4 mounted -o dax=inode, with daxpolicyd running (private
# session bus, 1 s interval):
#   - a file that is effective DAX and re-read over and over is seen (its reads
#     under DAX give file.reuse) and moved to the page cache;
#   - a page-cache file streamed with its pages dropped behind the reader (low
#     file.cache_hit_ratio, a real read rate) is moved to DAX;
#   - statx shows both effective changes; explain shows the access figures.
#
#   access-dax.sh BIN_DIR PROBE    BIN_DIR: build/bin; PROBE: vm_daxctl_probe
source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"

bin=${1:?usage: access-dax.sh BIN_DIR PROBE}
probe=${2:?usage: access-dax.sh BIN_DIR PROBE}
vm_require "daxpolicyd built" test -x "$bin/daxpolicyd"
vm_require_cmd ndctl mkfs.xfs mkfs.ext4 dbus-daemon dd
vm_require "kernel BTF" test -r /sys/kernel/btf/vmlinux
# The minimal guest mounts no tracefs: the daemon finds its tracepoints in BTF.

dev=$(vm_pmem_fsdax) || exit $?
work=$(mktemp -d)
effective() { "$probe" get "$1" | grep -o 'statx_dax=[01]'; }
bus=$(dbus-daemon --session --fork --print-address=1 --print-pid=1) || vm_die "dbus-daemon: $bus"
export DBUS_SESSION_BUS_ADDRESS=$(head -n1 <<<"$bus")
bus_pid=$(sed -n 2p <<<"$bus")

for fs in xfs ext4; do
  mnt=/mnt/access-$fs
  vm_log "--- $fs"
  vm_mkfs "$fs" "$dev"
  vm_mount_dax "$dev" "$mnt"
  mkdir -p "$mnt/dax" "$mnt/pc"
  "$probe" set "$mnt/dax" >/dev/null || vm_die "cannot set the DAX flag on $mnt/dax"
  head -c 1M /dev/urandom >"$mnt/dax/hot"    # created DAX: inherits the directory's flag
  head -c 8M /dev/urandom >"$mnt/pc/stream"
  sync
  vm_expect_eq "$fs: hot starts effective DAX" "statx_dax=1" "$(effective "$mnt/dax/hot")"
  vm_expect_eq "$fs: stream starts in the page cache" "statx_dax=0" "$(effective "$mnt/pc/stream")"

  cat >"$work/policy.yaml" <<YAML
apiVersion: daxpolicy/v1
daemon: { interval: 1s, mode: enforce, metrics: { listen: "off" } }
scopes: [ $mnt ]
defaults: { dax: keep, min_dwell: 0s, max_switches_per_minute: 1000 }
rules:
  - name: reread-to-page-cache
    match: { path: "$mnt/dax/hot" }
    when: "file.reuse >= 2"
    dax: off
  - name: streamed-to-dax
    match: { path: "$mnt/pc/stream" }
    when: "file.cache_hit_ratio < 0.5 && file.read_bytes_rate >= 256KiB/s"
    dax: on
YAML
  "$bin/daxpolicyd" --session --config "$work/policy.yaml" --state-dir "$work/state" \
    >"$work/daemon.out" 2>&1 &
  daemon=$!
  # Readers that open and close the file on every pass, so a switch can take effect.
  (while :; do cat "$mnt/dax/hot" >/dev/null; done) &
  hot_reader=$!
  (while :; do dd if="$mnt/pc/stream" of=/dev/null bs=1M iflag=nocache 2>/dev/null; done) &
  stream_reader=$!

  for _ in $(seq 1 120); do
    [[ $(effective "$mnt/dax/hot") == statx_dax=0 && $(effective "$mnt/pc/stream") == statx_dax=1 ]] &&
      break
    sleep 0.5
  done
  "$bin/daxpolicyctl" --session explain "$mnt/dax/hot" >"$work/explain" 2>&1
  kill "$hot_reader" "$stream_reader"
  wait "$hot_reader" "$stream_reader" 2>/dev/null
  sed 's/^/#   | /' "$work/explain"
  vm_expect_eq "$fs: the re-read DAX file is now effective page cache" "statx_dax=0" \
    "$(effective "$mnt/dax/hot")"
  vm_expect_eq "$fs: the streamed page-cache file is now effective DAX" "statx_dax=1" \
    "$(effective "$mnt/pc/stream")"
  vm_expect "$fs: explain shows the access figures with their window" \
    grep -Eq "access: +read [0-9.]+ [KMG]?i?B/s, reuse .*\(window [0-9.]+m?s\)" "$work/explain"
  "$bin/daxpolicyctl" --session status >"$work/status" 2>&1
  vm_expect "$fs: access tracing is not degraded" \
    bash -c "! grep -q 'access tracing is unavailable' '$work/status'"
  kill "$daemon"
  wait "$daemon" 2>/dev/null
  sed 's/^/#   daemon| /' "$work/daemon.out" | tail -n 5
  vm_expect "$fs: restore from the journal" "$bin/daxpolicyctl" restore --state-dir "$work/state" --all
  umount "$mnt"
  rm -rf "$work/state"
done
kill "$bus_pid" 2>/dev/null
vm_done
