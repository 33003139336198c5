#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job of daxpolicy, end to end: sets the machine up, builds, and runs
# daxpolicyd on a real dax=inode filesystem with a private D-Bus, a small
# workload and a look at what it decided and what is in force.
#
#   tools/demo.sh          on a loop-mounted xfs (the loop device cannot do DAX:
#                          the physical flag follows the policy, the effective
#                          state stays page cache and the files say why)
#   tools/demo.sh --vm     the same inside a qemu guest on an emulated NVDIMM
#                          (fsdax namespace): the effective state really changes,
#                          a held file stays pending until its holder exits
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
build=${DAXPOLICY_BUILD:-$here/build/demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# ---------------------------------------------------------------------------
# The demo itself, on a mounted dax=inode filesystem at $1.
demo_body() {
  local mnt=$1 work
  work=$(mktemp -d /tmp/daxpolicy-demo.XXXXXX)
  local bin=$build/bin ctl="$build/bin/daxpolicyctl --session"
  local daemon_pid="" bus_pid="" holder_pid=""
  cleanup_body() {
    set +e
    [[ -n $holder_pid ]] && kill "$holder_pid" 2>/dev/null
    if [[ -n $daemon_pid ]]; then
      kill -TERM "$daemon_pid" 2>/dev/null
      wait "$daemon_pid" 2>/dev/null
    fi
    [[ -n $bus_pid ]] && kill "$bus_pid" 2>/dev/null
    if [[ -d $work/state ]]; then
      say "restore: every flag back to how the daemon found it"
      "$bin/daxpolicyctl" restore --state-dir "$work/state" --all | tail -n 3
    fi
    rm -rf "$work"
  }
  trap cleanup_body RETURN

  say "workload on $mnt"
  mkdir -p "$mnt/db" "$mnt/logs" "$mnt/vm" "$mnt/keep"
  for i in 1 2 3; do head -c 4M /dev/urandom >"$mnt/db/table-$i.sst"; done
  for i in 1 2 3 4 5; do cat "$mnt"/db/*.sst >/dev/null; done   # re-read heavily: cached
  dd if=/dev/urandom of="$mnt/logs/stream.log" bs=1M count=16 status=none
  # Streamed once: written, synced and dropped from the page cache.
  dd if="$mnt/logs/stream.log" of=/dev/null bs=1M iflag=direct status=none
  sync "$mnt/logs/stream.log"
  python3 - "$mnt/logs/stream.log" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
PY
  head -c 8M /dev/zero >"$mnt/vm/guest.img"
  echo "keep me" >"$mnt/keep/notes.txt"
  # A process holding the image open: its switch waits for it.
  sleep 600 <"$mnt/vm/guest.img" &
  holder_pid=$!
  ls -lR "$mnt" | sed -n '1,40p'

  cat >"$work/policy.yaml" <<YAML
apiVersion: daxpolicy/v1
daemon:
  interval: 2s
  mode: enforce
scopes: [ $mnt ]
protect: [ "$mnt/keep/**" ]
defaults: { dax: keep, min_dwell: 1m, max_switches_per_minute: 600 }
rules:
  - name: hot-tables-in-page-cache
    match: { path: "$mnt/db/*.sst", size: ">= 1MiB" }
    dax: off
  - name: streamed-logs-to-dax
    match: { path: "$mnt/logs/**" }
    when: "file.cache_resident_ratio < 0.5"
    dax: on
  - name: log-directory-inherits-dax
    match: { path: "$mnt/logs", type: directory }
    dax: on
  - name: vm-images-to-dax
    match: { path: "$mnt/vm/*.img" }
    dax: on
YAML
  # The tables start out flagged DAX, as if someone had run chattr +x on them.
  for f in "$mnt"/db/*.sst; do xfs_io -c 'chattr +x' "$f"; done
  say "the policy"
  cat "$work/policy.yaml"
  "$bin/daxpolicyctl" check "$work/policy.yaml"

  say "a private D-Bus and daxpolicyd"
  eval "$(dbus-daemon --session --fork --print-address=1 --print-pid=2 \
            --address="unix:dir=$work" 2>"$work/bus.pid" | sed 's/^/DBUS_SESSION_BUS_ADDRESS=/')"
  export DBUS_SESSION_BUS_ADDRESS
  bus_pid=$(cat "$work/bus.pid")
  port=$((20000 + RANDOM % 20000))
  "$bin/daxpolicyd" --session --config "$work/policy.yaml" --state-dir "$work/state" \
    --metrics-listen "127.0.0.1:$port" --log-level info 2>"$work/daemon.log" &
  daemon_pid=$!
  for _ in $(seq 1 100); do
    $ctl status >/dev/null 2>&1 && break
    sleep 0.2
  done
  sleep 3   # a couple of cycles

  say "daxpolicyctl status"
  $ctl status
  say "daxpolicyctl files"
  $ctl files
  say "daxpolicyctl explain $mnt/db/table-1.sst"
  $ctl explain "$mnt/db/table-1.sst"
  say "daxpolicyctl explain $mnt/vm/guest.img"
  $ctl explain "$mnt/vm/guest.img"
  say "what the kernel says (lsattr: the physical flag; statx attributes 0x200000: effective DAX)"
  for f in "$mnt"/db/table-1.sst "$mnt"/logs/stream.log "$mnt"/vm/guest.img; do
    printf '%-60s flags %s  %s\n' "$f" "$(xfs_io -c 'lsattr -v' "$f" | sed 's/\].*/]/')" \
      "$(xfs_io -c 'statx -r' "$f" 2>/dev/null | grep -m1 'stat.attributes' || true)"
  done
  say "the holder of $mnt/vm/guest.img exits"
  kill "$holder_pid"
  wait "$holder_pid" 2>/dev/null || true
  holder_pid=""
  sleep 3
  $ctl files
  say "metrics (curl http://127.0.0.1:$port/metrics)"
  echo "(series with a value of 0 left out)"
  curl -s "http://127.0.0.1:$port/metrics" |
    grep -E '^daxpolicy_(files|files_effective|mode|rule_matched_files|transitions_total)' |
    grep -v ' 0$' || true
  say "daemon log"
  cat "$work/daemon.log"
}

# ---------------------------------------------------------------------------
if [[ ${1:-} == --inside-vm ]]; then
  # In the guest: an fsdax namespace on the emulated NVDIMM, xfs dax=inode.
  # shellcheck source=/dev/null
  source "$here/tests/vm/guest-lib.sh"
  ip link set lo up 2>/dev/null || true   # the metrics endpoint listens on 127.0.0.1
  mnt=/mnt/pmem
  mkdir -p "$mnt"
  vm_pmem_mount xfs "$mnt"
  demo_body "$mnt"
  exit 0
fi

vm=false
[[ ${1:-} == --vm ]] && vm=true
if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root (it installs packages and mounts filesystems)" >&2
  exit 1
fi
"$here/tools/setup.sh"
say "build"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDAXPOLICY_TESTS=OFF \
  -DDAXPOLICY_BENCH=OFF >/dev/null
ninja -C "$build" daxpolicyd daxpolicyctl

if $vm; then
  say "booting a qemu guest with an emulated NVDIMM (software emulation: about a minute)"
  exec "$here/tests/vm/run-vm.sh" --pmem-gib 1 --timeout 900 \
    --env DAXPOLICY_BUILD="$build" "$here/tools/demo.sh" --inside-vm
fi

img=$(mktemp /tmp/daxpolicy-demo-fs.XXXXXX)
mnt=$(mktemp -d /tmp/daxpolicy-demo-mnt.XXXXXX)
cleanup() {
  set +e
  umount -l "$mnt" 2>/dev/null
  rm -rf "$img" "$mnt"
}
trap cleanup EXIT
say "a loop-mounted xfs with -o dax=inode at $mnt"
truncate -s 512M "$img"
mkfs.xfs -q -m reflink=0 "$img"
mount -o loop,dax=inode "$img" "$mnt"
demo_body "$mnt"
