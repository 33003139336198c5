#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job of daxpolicy, end to end.
#
#   tools/demo.sh          builds the Debian package and, in a qemu guest with
#                          systemd as PID 1, the real system bus and an emulated
#                          NVDIMM (fsdax namespace, xfs dax=inode), installs it
#                          with apt, enables the unit with a policy on that
#                          mount, runs a workload and shows what was decided and
#                          what is in force (status, files, explain, metrics,
#                          the journal); then a broken policy is refused on
#                          systemctl reload. The effective state really changes.
#   tools/demo.sh --host   quicker, on the host: a build tree's daemon with a
#                          private D-Bus on a loop-mounted xfs (the loop device
#                          cannot do DAX: the physical flag follows the policy,
#                          the effective state stays page cache and the files
#                          say why)
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
build=${DAXPOLICY_BUILD:-$here/build/demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The demo's policy for a scope at $1 (the same on the host and in the VM).
demo_policy() {
  local mnt=$1
  cat <<YAML
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
}

# What the kernel says of each FILE: the physical flag and the statx attributes.
demo_kernel_view() {
  say "what the kernel says (lsattr: the physical flag; statx attributes 0x200000: effective DAX)"
  local f width=0
  for f in "$@"; do if ((${#f} > width)); then width=${#f}; fi; done
  for f in "$@"; do
    printf '%-*s flags %s  %s\n' "$width" "$f" "$(xfs_io -c 'lsattr -v' "$f" | sed 's/\].*/]/')" \
      "$(xfs_io -c 'statx -r' "$f" 2>/dev/null | grep -m1 'stat.attributes' || true)"
  done
}

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

  demo_policy "$mnt" >"$work/policy.yaml"
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
  demo_kernel_view "$mnt"/db/table-1.sst "$mnt"/logs/stream.log "$mnt"/vm/guest.img
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
# In the systemd guest: the installed package on an fsdax mount at $1.
demo_installed() {
  local deb=$1 mnt=/srv/pmem holder_pid
  say "an fsdax namespace on the emulated NVDIMM, xfs mounted -o dax=inode at $mnt"
  vm_pmem_mount xfs "$mnt"
  findmnt -no SOURCE,FSTYPE,OPTIONS "$mnt"

  say "apt install $(basename "$deb")"
  # Offline: the guest has no network and the dependencies are installed (vm_apt).
  vm_apt install -y "$deb" 2>&1 | grep -E '^(Unpacking|Setting up|Created symlink)' || true
  systemctl --no-pager status daxpolicyd | sed -n '1,4p'

  say "workload on $mnt"
  mkdir -p "$mnt/db" "$mnt/logs" "$mnt/vm" "$mnt/keep"
  for i in 1 2 3; do head -c 4M /dev/urandom >"$mnt/db/table-$i.sst"; done
  for i in 1 2 3; do cat "$mnt"/db/*.sst >/dev/null; done   # re-read: cached
  for f in "$mnt"/db/*.sst; do xfs_io -c 'chattr +x' "$f"; done   # flagged DAX by hand
  dd if=/dev/urandom of="$mnt/logs/stream.log" bs=1M count=8 status=none
  sync "$mnt/logs/stream.log"
  echo 1 >/proc/sys/vm/drop_caches   # the log was streamed once: nothing cached
  head -c 8M /dev/zero >"$mnt/vm/guest.img"
  echo "keep me" >"$mnt/keep/notes.txt"
  # A process holding the image open: its switch waits until it exits.
  sleep 600 <"$mnt/vm/guest.img" &
  holder_pid=$!

  say "the policy (/etc/daxpolicy/policy.yaml) and the scopes drop-in"
  demo_policy "$mnt" >/etc/daxpolicy/policy.yaml
  cat /etc/daxpolicy/policy.yaml
  mkdir -p /etc/systemd/system/daxpolicyd.service.d
  printf '[Service]\nReadWritePaths=%s\n' "$mnt" | tee /etc/systemd/system/daxpolicyd.service.d/scopes.conf
  daxpolicyd --check-config
  systemctl daemon-reload
  say "systemctl enable daxpolicyd; systemctl restart daxpolicyd (returns once READY=1)"
  systemctl enable daxpolicyd 2>&1
  systemctl restart daxpolicyd
  systemctl --no-pager status daxpolicyd | sed -n '1,5p'
  sleep 5   # a couple of cycles

  say "daxpolicyctl status"
  daxpolicyctl status
  say "daxpolicyctl files"
  daxpolicyctl files
  say "daxpolicyctl explain $mnt/db/table-1.sst"
  daxpolicyctl explain "$mnt/db/table-1.sst"
  say "daxpolicyctl explain $mnt/vm/guest.img (held open)"
  daxpolicyctl explain "$mnt/vm/guest.img"
  demo_kernel_view "$mnt"/db/table-1.sst "$mnt"/logs/stream.log "$mnt"/vm/guest.img \
    "$mnt"/keep/notes.txt
  say "the holder of $mnt/vm/guest.img exits"
  kill "$holder_pid"
  wait "$holder_pid" 2>/dev/null || true
  sleep 5
  daxpolicyctl files
  printf '%-28s %s\n' "$mnt/vm/guest.img" "$(xfs_io -c 'statx -r' "$mnt/vm/guest.img" | grep -m1 'stat.attributes')"

  say "key metrics (curl http://127.0.0.1:9847/metrics, series with a value of 0 left out)"
  curl -s http://127.0.0.1:9847/metrics |
    grep -E '^daxpolicy_(files|files_effective|mode|policy_generation|rule_matched_files|transitions_total|media_read_latency_seconds|media_latency_ratio|degraded)' |
    grep -v ' 0$' || true

  say "the journal (journalctl -u daxpolicyd)"
  journalctl --no-pager -q -u daxpolicyd -o short | cut -c17- | tail -n 25

  say "a broken policy: systemctl reload daxpolicyd"
  printf '  - name: broken\n    match: { path: "%s/db/*" }\n    dax: sideways\n' "$mnt" \
    >>/etc/daxpolicy/policy.yaml
  tail -n 3 /etc/daxpolicy/policy.yaml
  systemctl reload daxpolicyd
  sleep 2
  journalctl --no-pager -q -u daxpolicyd -o cat MESSAGE_ID=815fca0738cd45faadb7fc75a7ac3738 | tail -n 1
  daxpolicyctl status
  systemctl --no-pager status daxpolicyd | sed -n '1,3p'
  metrics_reload=$(curl -s http://127.0.0.1:9847/metrics | grep '^daxpolicy_config_last_reload_successful')
  echo "$metrics_reload"
}

# ---------------------------------------------------------------------------
if [[ ${1:-} == --inside-vm ]]; then
  # In the systemd guest, as root.
  # shellcheck source=/dev/null
  source "$here/tests/vm/guest-lib.sh"
  timeout 120 systemctl is-system-running --wait >/dev/null 2>&1 || true
  demo_installed "${2:?--inside-vm needs the package}"
  exit 0
fi

host=false
case ${1:-} in
  --host) host=true ;;
  "") ;;
  -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
esac
if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root (it installs packages and mounts filesystems)" >&2
  exit 1
fi
"$here/tools/setup.sh"

if ! $host; then
  say "build the Debian package (tools/build-deb.sh: dpkg-buildpackage, lintian)"
  "$here/tools/build-deb.sh" --nocheck | tail -n 3
  deb=$(ls "$here"/build/deb/daxpolicy_*_"$(dpkg --print-architecture)".deb)
  say "booting a qemu guest: systemd, the system bus, an emulated NVDIMM (software emulation: a few minutes)"
  exec "$here/tests/vm/run-vm.sh" --systemd --pmem-gib 1 --timeout 900 \
    "$here/tools/demo.sh" --inside-vm "$deb"
fi

say "build"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDAXPOLICY_TESTS=OFF \
  -DDAXPOLICY_BENCH=OFF >/dev/null
ninja -C "$build" daxpolicyd daxpolicyctl

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
