# SPDX-License-Identifier: Apache-2.0
# Shell library for scripts that run inside the daxpolicy VM guest (through
# tests/vm/run-vm.sh). Source it from bash:
#   source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"
#
# Checks print TAP-like lines ("ok 3 - ..." / "not ok 3 - ...") and count
# failures; end the script with vm_done, which exits 1 if any check failed.
# A missing requirement exits 77 (skip) outside CI and fails under CI.

vm_checks=0
vm_failures=0

vm_in_ci() { [[ -n ${CI:-} && ${CI} != false ]]; }

vm_log() { echo "# $*"; }

# Stops the script: something the rest depends on went wrong.
vm_die() {
  echo "not ok - FATAL: $*"
  echo "vm: FATAL: $*" >&2
  exit 1
}

# vm_require DESCRIPTION COMMAND...: skip (77) outside CI, fail under CI, when
# COMMAND fails.
vm_require() {
  local what=$1
  shift
  "$@" >/dev/null 2>&1 && return 0
  if vm_in_ci; then
    vm_die "requirement missing under CI=$CI: $what"
  fi
  echo "# SKIP requirement missing (would fail under CI): $what"
  exit 77
}

# vm_require_cmd NAME...: each NAME must be a command in the guest.
vm_require_cmd() {
  local name
  for name; do
    vm_require "command $name" command -v "$name"
  done
}

# vm_expect DESCRIPTION COMMAND...: a check that COMMAND succeeds.
vm_expect() {
  local what=$1 out rc
  shift
  vm_checks=$((vm_checks + 1))
  out=$("$@" 2>&1)
  rc=$?
  if ((rc == 0)); then
    echo "ok $vm_checks - $what"
  else
    vm_failures=$((vm_failures + 1))
    echo "not ok $vm_checks - $what (exit $rc)"
    [[ -n $out ]] && sed 's/^/#   /' <<<"$out"
  fi
  return "$rc"
}

# vm_expect_eq DESCRIPTION EXPECTED ACTUAL
vm_expect_eq() {
  vm_checks=$((vm_checks + 1))
  if [[ $2 == "$3" ]]; then
    echo "ok $vm_checks - $1"
    return 0
  fi
  vm_failures=$((vm_failures + 1))
  echo "not ok $vm_checks - $1"
  echo "#   expected: $2"
  echo "#   actual:   $3"
  return 1
}

# vm_done [STATUS]: prints the summary; exits 1 if any check failed, else
# STATUS (default 0).
vm_done() {
  if ((vm_failures > 0)); then
    echo "# $vm_failures of $vm_checks checks FAILED"
    exit 1
  fi
  echo "# all $vm_checks checks passed"
  exit "${1:-0}"
}

# vm_kernel_at_least MAJOR MINOR: the running kernel is MAJOR.MINOR or newer.
vm_kernel_at_least() {
  local release major minor
  release=$(uname -r)
  major=${release%%.*}
  minor=${release#*.}
  minor=${minor%%[!0-9]*}
  ((major > $1 || (major == $1 && minor >= $2)))
}

# vm_pmem_fsdax: turns the emulated NVDIMM's namespace0.0 into fsdax mode and
# prints the block device (/dev/pmem0). Dies if there is no NVDIMM (run-vm.sh
# --pmem-gib 0) or ndctl fails.
vm_pmem_fsdax() {
  local out i
  vm_require_cmd ndctl
  out=$(ndctl create-namespace -f -e namespace0.0 -m fsdax 2>&1) ||
    vm_die "ndctl create-namespace -f -e namespace0.0 -m fsdax: $out"
  grep -q '"mode":"fsdax"' <<<"$out" || vm_die "namespace0.0 is not fsdax: $out"
  # devtmpfs (or udev) creates the node asynchronously after the driver binds.
  for ((i = 0; i < 100; i++)); do
    [[ -b /dev/pmem0 ]] && { echo /dev/pmem0; return 0; }
    sleep 0.1
  done
  vm_die "no /dev/pmem0 after ndctl create-namespace: $out"
}

# vm_mkfs xfs|ext4 DEVICE: a filesystem that can do DAX (xfs without reflink,
# which excludes DAX).
vm_mkfs() {
  local out
  case $1 in
    xfs) vm_require_cmd mkfs.xfs; out=$(mkfs.xfs -q -f -m reflink=0 "$2" 2>&1) ;;
    ext4) vm_require_cmd mkfs.ext4; out=$(mkfs.ext4 -q -F "$2" 2>&1) ;;
    *) vm_die "vm_mkfs: unknown filesystem $1" ;;
  esac
  [[ $? -eq 0 ]] || vm_die "mkfs $1 on $2: $out"
}

# vm_mount_dax DEVICE DIR: mounts with per-inode DAX (-o dax=inode).
vm_mount_dax() {
  local out
  mkdir -p "$2" || vm_die "mkdir $2"
  out=$(mount -o dax=inode "$1" "$2" 2>&1) || vm_die "mount -o dax=inode $1 $2: $out"
}

# vm_pmem_mount xfs|ext4 DIR: namespace (once per boot), mkfs and mount in one go.
vm_pmem_mount() {
  local dev
  if [[ -b /dev/pmem0 ]] && ndctl list -n namespace0.0 2>/dev/null | grep -q '"mode":"fsdax"'; then
    dev=/dev/pmem0
  else
    dev=$(vm_pmem_fsdax) || exit $?
  fi
  vm_mkfs "$1" "$dev"
  vm_mount_dax "$dev" "$2"
}

# vm_wait_for SECONDS COMMAND...: runs COMMAND every half second, quietly, until it
# succeeds or SECONDS have passed; then once more with its output and status.
vm_wait_for() {
  local end=$((SECONDS + $1))
  shift
  while ((SECONDS < end)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  "$@"
}

# vm_apt ARGS...: apt-get for installing a local .deb in the guest, offline. The
# guest has no network and the dependencies are installed already, so apt gets
# an empty package index (parsing the host's 19 MB of lists under software
# emulation takes a minute per call). Only the guest's tmpfs overlay changes:
#  - no man-db index rebuild of all the host's man pages (the package's
#    trigger): minutes under emulation;
#  - no container host's policy-rc.d (exit 101), which would keep dpkg from
#    starting services; a Debian system has none.
vm_apt() {
  mkdir -p /tmp/vm-apt-lists/partial
  rm -f /var/lib/man-db/auto-update /usr/sbin/policy-rc.d
  apt-get -o Dir::State::Lists=/tmp/vm-apt-lists "$@"
}
