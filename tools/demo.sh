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
#                          Each of these is checked ("ok N - ..." lines): the
#                          demo fails if a step fails or a check does not hold.
#                          (--inside-vm DEB|DEB_DIR [STATUS] is that guest part;
#                          the VM test VmPackage.TheMainDemoRunsOnTheInstalledPackage
#                          runs it too.)
#   tools/demo.sh --host   quicker, on the host: a build tree's daemon with a
#                          private D-Bus on a loop-mounted xfs (the loop device
#                          cannot do DAX: the physical flag follows the policy,
#                          the effective state stays page cache and the files
#                          say why). Checked the same way.
#                          (--host --build-dir DIR takes the programs of an
#                          existing build tree, DIR/bin, without setting up or
#                          building: the test Demo.HostVariant runs that.)
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
  local mnt=$1
  # Global, not local: the EXIT trap may run after these are out of scope.
  work=$(mktemp -d /tmp/daxpolicy-demo.XXXXXX)
  daemon_pid="" bus_pid="" holder_pid=""
  local bin=$build/bin ctl="$build/bin/daxpolicyctl --session"
  cleanup_body() {
    set +e
    trap - RETURN
    [[ -n ${work:-} ]] || return 0  # done already
    [[ -n $holder_pid ]] && kill "$holder_pid" 2>/dev/null
    if [[ -n $daemon_pid ]]; then
      kill -TERM "$daemon_pid" 2>/dev/null
      wait "$daemon_pid" 2>/dev/null
    fi
    [[ -n $bus_pid ]] && kill "$bus_pid" 2>/dev/null
    if [[ -d $work/state ]]; then
      say "restore: every flag back to how the daemon found it"
      "$build/bin/daxpolicyctl" restore --state-dir "$work/state" --all | tail -n 3
    fi
    rm -rf "$work"
    work=""
  }
  # On return, and on an exit from inside (set -e): no daemon, bus or holder is
  # left behind holding the caller's output open.
  trap cleanup_body RETURN
  trap 'cleanup_body; cleanup' EXIT

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
  # shellcheck disable=SC2217  # sleep keeps the file open, it does not read it
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
  # Port 0: the kernel picks a free port, the daemon logs which.
  "$bin/daxpolicyd" --session --config "$work/policy.yaml" --state-dir "$work/state" \
    --metrics-listen 127.0.0.1:0 --log-level info 2>"$work/daemon.log" &
  daemon_pid=$!
  for _ in $(seq 1 100); do
    $ctl status >/dev/null 2>&1 && break
    sleep 0.2
  done
  local port
  port=$(sed -n 's/.*metrics on http:.*(port \([0-9]*\)).*/\1/p' "$work/daemon.log" | head -n 1)
  sleep 3   # a couple of cycles

  say "daxpolicyctl status"
  $ctl status
  say "daxpolicyctl files"
  $ctl files
  local tables=("$mnt"/db/table-1.sst "$mnt"/db/table-2.sst "$mnt"/db/table-3.sst)
  claim "the tables are in the page cache (rule hot-tables-in-page-cache), in sync" \
    vm_wait_for 30 row_is "in-sync page-cache page-cache page-cache" "${tables[@]}"
  claim "the log and the image want DAX and have the flag; the loop device cannot do DAX: blocked" \
    row_is "blocked dax dax page-cache" "$mnt/logs/stream.log" "$mnt/vm/guest.img"
  claim "the log directory has the DAX flag (its new files inherit it)" \
    row_is "in-sync dax dax unknown" "$mnt/logs"
  say "daxpolicyctl explain $mnt/db/table-1.sst"
  $ctl explain "$mnt/db/table-1.sst" | tee "$work/explain"
  claim "explain names the deciding rule and where it is" \
    grep -q "rule 'hot-tables-in-page-cache' ($work/policy.yaml:[0-9]*:[0-9]*): MATCHED" "$work/explain"
  say "daxpolicyctl explain $mnt/vm/guest.img"
  $ctl explain "$mnt/vm/guest.img" | tee "$work/explain"
  claim "explain says why the image is blocked (the device cannot do DAX)" \
    grep -q "state: *blocked (device loop[0-9]* cannot do DAX" "$work/explain"
  demo_kernel_view "$mnt"/db/table-1.sst "$mnt"/logs/stream.log "$mnt"/vm/guest.img
  claim "the kernel's flags follow the policy: the tables' cleared, the log's and the image's set" \
    test "$(physical "${tables[0]}") $(physical "$mnt/logs/stream.log") $(physical "$mnt/vm/guest.img")" \
    = "page-cache dax dax"
  say "the holder of $mnt/vm/guest.img exits"
  kill "$holder_pid"
  wait "$holder_pid" 2>/dev/null || true
  holder_pid=""
  sleep 3
  $ctl files
  say "metrics (curl http://127.0.0.1:$port/metrics)"
  echo "(series with a value of 0 left out)"
  curl -s "http://127.0.0.1:$port/metrics" >"$work/metrics"
  grep -E '^daxpolicy_(files|files_effective|mode|rule_matched_files|transitions_total)' \
    "$work/metrics" | grep -v ' 0$' || true
  claim "metrics: 2 files blocked, 3 tables switched to the page cache" metrics_are \
    'daxpolicy_files{state="blocked"}' 2 \
    'daxpolicy_transitions_total{result="changed",rule="hot-tables-in-page-cache",to="page-cache"}' 3
  say "daemon log"
  cat "$work/daemon.log"
}

# ---------------------------------------------------------------------------
# In the systemd guest: the installed package on an fsdax mount. Each thing the
# demo shows is also checked ("ok N - ..." / "not ok N - ..."), and a step that
# fails stops it: the VM test VmPackage.TheMainDemoRunsOnTheInstalledPackage
# runs exactly this.

svc=daxpolicyd.service
metrics_url=http://127.0.0.1:9847/metrics

# A claim of the demo: a check that COMMAND succeeds (failures are counted and
# make the demo fail at its end, the demo goes on).
claim() { vm_expect "$@" || true; }

# statx STATX_ATTR_DAX (0x200000) of a file: dax or page-cache.
effective() {
  local a
  a=$(xfs_io -c 'statx -r' "$1" 2>/dev/null | sed -n 's/^stat.attributes = //p')
  if [[ -z $a ]]; then
    echo unknown
  elif (((a & 0x200000) != 0)); then
    echo dax
  else
    echo page-cache
  fi
}
# effective_is MODE FILE...: every FILE is effectively in MODE.
effective_is() {
  local mode=$1 f rc=0
  shift
  for f; do
    [[ $(effective "$f") == "$mode" ]] || { echo "$f: $(effective "$f")"; rc=1; }
  done
  return "$rc"
}
# The physical FS_XFLAG_DAX of a file or directory (lsattr): dax or page-cache.
physical() {
  if xfs_io -c 'lsattr -v' "$1" | sed 's/\].*//' | grep -qw dax; then echo dax; else echo page-cache; fi
}
# row_is "STATE DESIRED PHYSICAL EFFECTIVE" FILE...: the daemon's rows in
# `daxpolicyctl files`.
row_is() {
  local want=$1 f row rc=0
  shift
  # $ctl: the host demo's daxpolicyctl on its private bus.
  ${ctl:-daxpolicyctl} files >"$work/rows"
  for f; do
    row=$(awk -v p="$f" '$1 == p { print $2, $3, $4, $5 }' "$work/rows")
    [[ $row == "$want" ]] || { echo "$f: '$row', not '$want'"; rc=1; }
  done
  return "$rc"
}
# metrics_are SERIES VALUE [SERIES VALUE]...: the values of series in $work/metrics.
metrics_are() {
  local got rc=0
  while (($# >= 2)); do
    got=$(awk -v s="$1" '$1 == s { print $2 }' "$work/metrics")
    [[ $got == "$2" ]] || { echo "$1: '$got', not '$2'"; rc=1; }
    shift 2
  done
  return "$rc"
}
# grep_all FILE REGEX...: every extended REGEX matches a line of FILE.
grep_all() {
  local file=$1 re rc=0
  shift
  for re; do grep -Eq -- "$re" "$file" || { echo "no line matches $re"; rc=1; }; done
  return "$rc"
}
# journal_count MESSAGE_ID [FIELD=VALUE...]: entries of the unit that match.
journal_count() {
  journalctl --no-pager -q -o cat -u $svc "MESSAGE_ID=$1" "${@:2}" | wc -l
}
journal_at_least() {  # journal_at_least N MESSAGE_ID [FIELD=VALUE...]
  local n
  n=$(journal_count "${@:2}")
  ((n >= $1)) || { echo "$n entries, wanted at least $1"; return 1; }
}

# The demo on the installed package DEB, on an fsdax mount at /srv/pmem.
demo_installed() {
  local deb=$1 mnt=/srv/pmem holder_pid pid gen cycles
  local tables=("$mnt"/db/table-1.sst "$mnt"/db/table-2.sst "$mnt"/db/table-3.sst)
  work=$(mktemp -d)
  say "an fsdax namespace on the emulated NVDIMM, xfs mounted -o dax=inode at $mnt"
  vm_pmem_mount xfs "$mnt"
  findmnt -no SOURCE,FSTYPE,OPTIONS "$mnt"

  say "apt install $(basename "$deb")"
  # Offline: the guest has no network and the dependencies are installed (vm_apt).
  if ! vm_apt install -y "$deb" >"$work/apt.log" 2>&1; then
    cat "$work/apt.log"
    vm_die "apt install $deb failed"
  fi
  grep -E '^(Unpacking|Setting up|Created symlink)' "$work/apt.log" || true
  systemctl --no-pager status daxpolicyd | sed -n '1,4p'
  claim "the package enabled and started the unit" \
    test "$(systemctl is-enabled $svc) $(systemctl is-active $svc)" = "enabled active"

  say "workload on $mnt"
  mkdir -p "$mnt/db" "$mnt/logs" "$mnt/vm" "$mnt/keep"
  for f in "${tables[@]}"; do head -c 4M /dev/urandom >"$f"; done
  for i in 1 2 3; do cat "${tables[@]}" >/dev/null; done   # re-read: cached
  for f in "${tables[@]}"; do xfs_io -c 'chattr +x' "$f"; done   # flagged DAX by hand
  dd if=/dev/urandom of="$mnt/logs/stream.log" bs=1M count=8 status=none
  sync "$mnt/logs/stream.log"
  echo 1 >/proc/sys/vm/drop_caches   # the log was streamed once: nothing cached
  head -c 8M /dev/zero >"$mnt/vm/guest.img"
  echo "keep me" >"$mnt/keep/notes.txt"
  # A process holding the image open: its switch waits until it exits.
  # shellcheck disable=SC2217  # sleep keeps the file open, it does not read it
  sleep 600 <"$mnt/vm/guest.img" &
  holder_pid=$!
  claim "before: the tables are DAX (statx)" effective_is dax "${tables[@]}"
  claim "before: the log, the image and the notes are in the page cache (statx)" \
    effective_is page-cache "$mnt/logs/stream.log" "$mnt/vm/guest.img" "$mnt/keep/notes.txt"

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
  pid=$(systemctl show -P MainPID $svc)

  say "the first cycles (every 2 s)"
  claim "the tables move to the page cache (hot-tables-in-page-cache; statx)" \
    vm_wait_for 60 effective_is page-cache "${tables[@]}"
  claim "the log streamed once moves to DAX (streamed-logs-to-dax; statx)" \
    vm_wait_for 30 effective_is dax "$mnt/logs/stream.log"
  claim "the image's switch waits for its holder: pending, flag set, still page cache" \
    vm_wait_for 30 row_is "pending dax dax page-cache" "$mnt/vm/guest.img"

  say "daxpolicyctl status"
  daxpolicyctl status | tee "$work/status"
  claim "status: enforce, generation 1, one pending file" \
    grep_all "$work/status" '^Mode: +enforce' '^Policy generation: +1\b' '^Pending files: +1\b'
  say "daxpolicyctl files"
  daxpolicyctl files
  claim "files: the tables in sync in the page cache" \
    row_is "in-sync page-cache page-cache page-cache" "${tables[@]}"
  claim "files: the log in sync in DAX" row_is "in-sync dax dax dax" "$mnt/logs/stream.log"
  say "daxpolicyctl explain $mnt/db/table-1.sst"
  daxpolicyctl explain "$mnt/db/table-1.sst" | tee "$work/explain"
  claim "explain names the rule that decided" grep -q 'hot-tables-in-page-cache' "$work/explain"
  say "daxpolicyctl explain $mnt/vm/guest.img (held open)"
  daxpolicyctl explain "$mnt/vm/guest.img" | tee "$work/explain"
  claim "explain names the holder of the image" grep -qw "$holder_pid" "$work/explain"
  demo_kernel_view "${tables[0]}" "$mnt"/logs/stream.log "$mnt"/vm/guest.img \
    "$mnt"/keep/notes.txt "$mnt"/logs
  claim "the logs directory is flagged DAX for new files (log-directory-inherits-dax)" \
    test "$(physical "$mnt/logs")" = dax
  claim "the protected notes are untouched: no flag, page cache" \
    test "$(physical "$mnt/keep/notes.txt") $(effective "$mnt/keep/notes.txt")" = "page-cache page-cache"

  say "the holder of $mnt/vm/guest.img exits"
  kill "$holder_pid"
  wait "$holder_pid" 2>/dev/null || true
  claim "the image is DAX once its holder is gone (statx)" \
    vm_wait_for 30 effective_is dax "$mnt/vm/guest.img"
  claim "files: the image in sync in DAX" \
    vm_wait_for 30 row_is "in-sync dax dax dax" "$mnt/vm/guest.img"
  daxpolicyctl files
  printf '%-28s %s\n' "$mnt/vm/guest.img" "$(xfs_io -c 'statx -r' "$mnt/vm/guest.img" | grep -m1 'stat.attributes')"

  say "key metrics (curl $metrics_url, series with a value of 0 left out)"
  curl -sf "$metrics_url" >"$work/metrics"
  grep -E '^daxpolicy_(files|files_effective|mode|policy_generation|rule_matched_files|transitions_total|media_read_latency_seconds|media_latency_ratio|degraded)' \
    "$work/metrics" | grep -v ' 0$' || true
  claim "metrics: enforce mode, generation 1" \
    metrics_are 'daxpolicy_mode{mode="enforce"}' 1 daxpolicy_policy_generation 1
  claim "metrics: 2 files effectively DAX, 3 in the page cache" \
    metrics_are 'daxpolicy_files_effective{effective="dax"}' 2 \
      'daxpolicy_files_effective{effective="page-cache"}' 3
  claim "metrics: the tables' rule matched 3 files and changed 3 flags" \
    metrics_are 'daxpolicy_rule_matched_files{rule="hot-tables-in-page-cache"}' 3 \
      'daxpolicy_transitions_total{result="changed",rule="hot-tables-in-page-cache",to="page-cache"}' 3

  say "the journal (journalctl -u daxpolicyd)"
  journalctl --no-pager -q -u daxpolicyd -o short | cut -c17- | tail -n 25
  claim "journal: 3 switches by the tables' rule (MESSAGE_ID=ded655cd...)" \
    journal_at_least 3 ded655cdbbf1475685049c21b09843df DAXPOLICY_RULE=hot-tables-in-page-cache
  claim "journal: the image's switch waited for its holder (MESSAGE_ID=c1e72949...)" \
    journal_at_least 1 c1e7294903dd4744b0696f44c69e0186 "DAXPOLICY_PATH=$mnt/vm/guest.img"

  say "a broken policy: systemctl reload daxpolicyd"
  printf '  - name: broken\n    match: { path: "%s/db/*" }\n    dax: sideways\n' "$mnt" \
    >>/etc/daxpolicy/policy.yaml
  tail -n 3 /etc/daxpolicy/policy.yaml
  gen=$(awk '$1 == "daxpolicy_policy_generation" { print $2 }' "$work/metrics")
  systemctl reload daxpolicyd
  claim "the refusal is in the journal with FILE:LINE:COL (MESSAGE_ID=815fca07...)" \
    vm_wait_for 30 bash -c "journalctl --no-pager -q -o cat -u $svc \
      MESSAGE_ID=815fca0738cd45faadb7fc75a7ac3738 | grep -q 'policy.yaml:[0-9]*:[0-9]*'"
  journalctl --no-pager -q -u daxpolicyd -o cat MESSAGE_ID=815fca0738cd45faadb7fc75a7ac3738 | tail -n 1
  daxpolicyctl status | tee "$work/status"
  claim "status: the last reload names the error" \
    awk '/^[A-Z]/ { on = /^Last reload:/ } on && /policy\.yaml:[0-9]+:[0-9]+: / { found = 1 }
         END { exit !found }' "$work/status"
  systemctl --no-pager status daxpolicyd | sed -n '1,3p'
  claim "the daemon keeps running (same MainPID)" \
    test "$(systemctl is-active $svc) $(systemctl show -P MainPID $svc)" = "active $pid"
  cycles=$(awk '$1 == "daxpolicy_cycle_duration_seconds_count" { print $2 }' "$work/metrics")
  # Two more cycles under the old policy, which must still be in force.
  claim "cycles go on" vm_wait_for 30 bash -c \
    "(( \$(curl -sf $metrics_url | awk '\$1 == \"daxpolicy_cycle_duration_seconds_count\" { print \$2 }') >= $cycles + 2 ))"
  curl -sf "$metrics_url" >"$work/metrics"
  grep -E '^daxpolicy_(config_last_reload_successful|policy_generation)' "$work/metrics"
  claim "metrics: the reload failed, the policy generation stays $gen" \
    metrics_are daxpolicy_config_last_reload_successful 0 daxpolicy_policy_generation "$gen"
  claim "the old policy stays: the tables still in sync in the page cache" \
    row_is "in-sync page-cache page-cache page-cache" "${tables[@]}"
  rm -rf "$work"
}

# ---------------------------------------------------------------------------
if [[ ${1:-} == --inside-vm ]]; then
  # In the systemd guest, as root: --inside-vm DEB|DEB_DIR [STATUS]. Exits
  # STATUS (default 0) when every step and every check passed, else non-zero.
  # shellcheck source=/dev/null
  source "$here/tests/vm/guest-lib.sh"
  set -E
  trap 'echo "demo.sh: a step failed (exit $?): $BASH_COMMAND" >&2' ERR
  deb=${2:?--inside-vm needs the package or its directory}
  if [[ -d $deb ]]; then
    debs=("$deb"/daxpolicy_*_"$(dpkg --print-architecture)".deb)
    vm_require "a package built by tools/build-deb.sh in $deb" test -f "${debs[0]}"
    ((${#debs[@]} == 1)) || vm_die "more than one package in $deb: ${debs[*]}"
    deb=${debs[0]}
  fi
  vm_require_cmd systemctl journalctl apt-get curl xfs_io ndctl mkfs.xfs
  vm_require "daxpolicy not installed yet" bash -c '! dpkg -s daxpolicy >/dev/null 2>&1'
  timeout 120 systemctl is-system-running --wait >/dev/null 2>&1 || true
  demo_installed "$(realpath "$deb")"
  vm_done "${3:-0}"
fi

host=false
prebuilt=""
case ${1:-} in
  --host)
    host=true
    if [[ ${2:-} == --build-dir ]]; then
      prebuilt=$(readlink -f "${3:?--build-dir needs the build tree}")
      build=$prebuilt
    elif (($# > 1)); then
      echo "demo.sh: unknown option $2 (see --help)" >&2
      exit 2
    fi
    ;;
  "") ;;
  -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
esac
# shellcheck source=/dev/null
source "$here/tests/vm/guest-lib.sh"
if [[ $(id -u) -ne 0 ]]; then
  # As a test (--build-dir): skipped outside CI, failed under CI.
  [[ -n $prebuilt ]] && vm_require "root (loop mounts)" false
  echo "demo.sh: run as root (it installs packages and mounts filesystems)" >&2
  exit 1
fi
[[ -n $prebuilt ]] || "$here/tools/setup.sh"

if ! $host; then
  say "build the Debian package (tools/build-deb.sh: dpkg-buildpackage, lintian)"
  "$here/tools/build-deb.sh" --nocheck | tail -n 3
  deb=$(ls "$here"/build/deb/daxpolicy_*_"$(dpkg --print-architecture)".deb)
  say "booting a qemu guest: systemd, the system bus, an emulated NVDIMM (software emulation: a few minutes)"
  exec "$here/tests/vm/run-vm.sh" --systemd --pmem-gib 1 --timeout 900 \
    "$here/tools/demo.sh" --inside-vm "$deb"
fi

if [[ -n $prebuilt ]]; then
  vm_require "the programs of $build (daxpolicyd, daxpolicyctl)" \
    test -x "$build/bin/daxpolicyd" -a -x "$build/bin/daxpolicyctl"
  vm_require_cmd mkfs.xfs xfs_io dbus-daemon curl python3
else
  say "build"
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDAXPOLICY_TESTS=OFF \
    -DDAXPOLICY_BENCH=OFF >/dev/null
  ninja -C "$build" daxpolicyd daxpolicyctl
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
vm_done
