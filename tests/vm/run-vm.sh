#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs a host script as root inside a qemu guest that boots Debian's own kernel
# with an emulated NVDIMM. The guest root is the host's "/" (read-only over 9p)
# under a tmpfs overlay, so host binaries and build trees work at the same
# paths. The script's stdout, stderr and exit status come back through a second,
# writable 9p share. See tests/vm/README.md.
set -euo pipefail

readonly kProg=run-vm.sh
kHere=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly kHere

usage() {
  cat <<'EOF'
usage: run-vm.sh [options] SCRIPT [ARGS...]

Boots the newest Debian kernel from /boot under qemu (TCG) and runs SCRIPT (a host
path) with ARGS as root in the guest. SCRIPT runs directly if executable, else
with bash. Its stdout/stderr are copied to ours and its exit status is ours.

options:
  --systemd          boot systemd as PID 1 (system bus, units); default: minimal
  --pmem-gib N       size of the emulated NVDIMM in GiB, 0 for none (default 1)
  --timeout SEC      kill the VM after SEC seconds, exit 124 (default 300)
  --env NAME=VALUE   set a variable for SCRIPT (repeatable); CI is passed on
  --cpus N           guest CPUs (default 2)
  --log FILE         keep the guest serial console log in FILE
  -v, --verbose      also stream the serial console to stderr while it runs
  -h, --help         this text

exit status: SCRIPT's status; 124 timeout; 125 harness failure (qemu failed,
guest reported nothing); 77 a required piece is missing and CI is not set
(under CI a missing piece exits 125). A SCRIPT exiting 77 under CI gives 125.

environment: DAXPOLICY_VM_CACHE (initramfs cache dir, default
${XDG_CACHE_HOME:-/var/cache}/daxpolicy-vm), DAXPOLICY_VM_KVER (kernel version
instead of the newest in /boot), DAXPOLICY_VM_QEMU (qemu binary),
DAXPOLICY_VM_KEEP=1 (keep the run's temp dir: console log, control share).
EOF
}

in_ci() { [[ -n ${CI:-} && ${CI} != false ]]; }

die() {
  echo "$kProg: error: $*" >&2
  exit 125
}

# A piece the VM needs is absent: skip outside CI, fail under CI.
missing() {
  echo "$kProg: missing: $*" >&2
  if in_ci; then
    echo "$kProg: failing because CI=$CI (outside CI this would exit 77, skip)" >&2
    exit 125
  fi
  exit 77
}

flavour=minimal
pmem_gib=1
timeout_s=300
cpus=2
log_keep=
verbose=0
envs=()
while (($#)); do
  case $1 in
    --systemd) flavour=systemd ;;
    --pmem-gib) pmem_gib=${2:?--pmem-gib needs N}; shift ;;
    --pmem-gib=*) pmem_gib=${1#*=} ;;
    --timeout) timeout_s=${2:?--timeout needs SEC}; shift ;;
    --timeout=*) timeout_s=${1#*=} ;;
    --env) envs+=("${2:?--env needs NAME=VALUE}"); shift ;;
    --env=*) envs+=("${1#*=}") ;;
    --cpus) cpus=${2:?--cpus needs N}; shift ;;
    --cpus=*) cpus=${1#*=} ;;
    --log) log_keep=${2:?--log needs FILE}; shift ;;
    --log=*) log_keep=${1#*=} ;;
    -v | --verbose) verbose=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "$kProg: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
(($# >= 1)) || { usage >&2; exit 2; }
[[ $pmem_gib =~ ^[0-9]+$ ]] || die "--pmem-gib wants a whole number of GiB, got '$pmem_gib'"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a positive number of seconds, got '$timeout_s'"
[[ $cpus =~ ^[1-9][0-9]*$ ]] || die "--cpus wants a positive number, got '$cpus'"
for e in "${envs[@]}"; do
  [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, got '$e'"
done

script=$1
shift
[[ $script == /* ]] || script=$PWD/$script
[[ -f $script ]] || die "no such script: $script"
script=$(realpath "$script")
# The guest mounts its own /dev, /proc, /sys and /run over the host's.
case $script in
  /dev/* | /proc/* | /sys/* | /run/*) die "$script is under a directory the guest replaces; put it elsewhere (e.g. /tmp)" ;;
esac

# --- the pieces -------------------------------------------------------------

find_tool() {
  local name=$1 dir
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return 0
  fi
  for dir in /usr/sbin /sbin /usr/bin /bin; do
    [[ -x $dir/$name ]] && { echo "$dir/$name"; return 0; }
  done
  return 1
}

qemu=${DAXPOLICY_VM_QEMU:-}
[[ -n $qemu ]] || qemu=$(find_tool qemu-system-x86_64) ||
  missing "qemu-system-x86_64 (Debian package qemu-system-x86)"
[[ -x $qemu ]] || missing "qemu binary $qemu is not executable"

# Debian's kernel, not the host's: the newest /boot/vmlinuz-* whose modules exist.
kver=${DAXPOLICY_VM_KVER:-}
if [[ -z $kver ]]; then
  kver=$(for k in /boot/vmlinuz-*; do
    v=${k#/boot/vmlinuz-}
    [[ -e $k && -f /lib/modules/$v/modules.dep ]] && echo "$v"
  done | sort -V | tail -n 1)
  [[ -n $kver ]] ||
    missing "a Debian kernel: /boot/vmlinuz-VERSION with /lib/modules/VERSION/modules.dep (Debian package linux-image-amd64)"
fi
kernel=/boot/vmlinuz-$kver
[[ -f $kernel ]] || missing "kernel image $kernel (Debian package linux-image-amd64)"
[[ -r $kernel ]] || missing "read permission on $kernel (run as root)"
[[ -f /lib/modules/$kver/modules.dep ]] || missing "/lib/modules/$kver/modules.dep (Debian package linux-image-$kver)"

busybox=
for b in /usr/bin/busybox /bin/busybox /usr/lib/initramfs-tools/bin/busybox; do
  if [[ ! -x $b ]] || ! "$b" --list 2>/dev/null | grep -qx switch_root; then continue; fi
  # A dynamic busybox names its ELF interpreter; the initramfs has no libc.
  LC_ALL=C grep -qa '/lib64/ld-linux' "$b" && continue
  busybox=$b
  break
done
[[ -n $busybox ]] || missing "a static busybox with switch_root (Debian package busybox-static)"

modprobe=$(find_tool modprobe) || missing "modprobe (Debian package kmod)"
cpio=$(find_tool cpio) || cpio="$busybox cpio"

# Modules the guest needs before it can reach its root; each one's chain comes from
# modprobe, ignoring modprobe.d (ndctl's "install libnvdimm" hook would hide the insmod).
readonly kModules=(virtio_pci 9pnet_virtio 9p overlay nfit nd_pmem dax_pmem device_dax kmem)
mod_files=()
declare -A mod_seen=()
for m in "${kModules[@]}"; do
  deps=$("$modprobe" -C /dev/null -S "$kver" --show-depends "$m" 2>&1) ||
    missing "kernel module $m for $kver: $deps"
  while read -r verb path _; do
    [[ $verb == insmod ]] || continue
    [[ -f $path ]] || missing "module file $path"
    if [[ -z ${mod_seen[$path]:-} ]]; then
      mod_seen[$path]=1
      mod_files+=("$path")
    fi
  done <<<"$deps"
done

# --- the initramfs, cached per kernel version and inputs --------------------

init_src=$kHere/initramfs-init.sh
[[ -f $init_src ]] || die "missing $init_src next to $kProg"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/daxpolicy-vm.XXXXXX")
qemu_pid=
tail_pid=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  if [[ -n $tail_pid ]]; then
    kill "$tail_pid" 2>/dev/null || true
    wait "$tail_pid" 2>/dev/null || true
  fi
  if [[ -n ${DAXPOLICY_VM_KEEP:-} ]]; then
    rm -f "$tmp/pmem.img"
    echo "$kProg: kept $tmp (DAXPOLICY_VM_KEEP)" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

key=$({
  echo "$kver"
  sha256sum "$init_src" "$busybox"
  for f in "${mod_files[@]}"; do stat -c '%n %s %Y' "$f"; done
} | sha256sum | cut -c1-16)

writable_dir() { mkdir -p "$1" 2>/dev/null && [[ -w $1 ]]; }
cache=${DAXPOLICY_VM_CACHE:-${XDG_CACHE_HOME:-/var/cache}/daxpolicy-vm}
if ! writable_dir "$cache"; then
  if [[ -z ${DAXPOLICY_VM_CACHE:-} && -n ${HOME:-} ]] && writable_dir "$HOME/.cache/daxpolicy-vm"; then
    cache=$HOME/.cache/daxpolicy-vm
  else
    echo "$kProg: note: cache dir $cache not writable, building the initramfs uncached" >&2
    cache=$tmp
  fi
fi
initrd=$cache/initramfs-$kver-$key.cpio

build_initramfs() {
  local stage=$tmp/stage f base out
  mkdir -p "$stage"/{bin,dev,proc,sys,lib/modules,lower,upper,newroot}
  cp "$busybox" "$stage/bin/busybox"
  install -m 0755 "$init_src" "$stage/init"
  : >"$stage/modules.order"
  for f in "${mod_files[@]}"; do
    base=$(basename "$f")
    case $f in
      *.ko) cp "$f" "$stage/lib/modules/$base" ;;
      *.ko.xz) out=${base%.xz}; xz -dc "$f" >"$stage/lib/modules/$out" || missing "xz to unpack $f"; base=$out ;;
      *.ko.zst) out=${base%.zst}; zstd -qdc "$f" >"$stage/lib/modules/$out" || missing "zstd to unpack $f"; base=$out ;;
      *.ko.gz) out=${base%.gz}; gzip -dc "$f" >"$stage/lib/modules/$out" || missing "gzip to unpack $f"; base=$out ;;
      *) die "unknown module format: $f" ;;
    esac
    echo "$base" >>"$stage/modules.order"
  done
  # No /dev/console here: the kernel's built-in initramfs provides it, and this
  # archive is unpacked on top. Uncompressed: unpacking is cheaper under TCG.
  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | $cpio -o -H newc --quiet) >"$initrd.$$.tmp" ||
    die "cpio failed building $initrd"
  mv -f "$initrd.$$.tmp" "$initrd"
  # Older builds for this kernel are stale now.
  for f in "$cache"/initramfs-"$kver"-*.cpio; do
    [[ $f == "$initrd" ]] || rm -f "$f"
  done
}
[[ -s $initrd ]] || build_initramfs

# --- the control share: what to run, and where results land -----------------

ctl=$tmp/ctl
mkdir -p "$ctl"
cp "$kHere/guest-run.sh" "$ctl/guest-run.sh"
cp "$kHere/daxvm-test.service" "$ctl/daxvm-test.service"
{
  if [[ -n ${CI:-} ]]; then printf 'export CI=%q\n' "$CI"; fi
  printf 'export DAXVM_FLAVOUR=%q DAXVM_PMEM_GIB=%q\n' "$flavour" "$pmem_gib"
  for e in "${envs[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
} >"$ctl/env.sh"
{
  printf 'daxvm_cwd=%q\n' "$PWD"
  printf 'daxvm_argv=('
  printf '%q ' "$script" "$@"
  printf ')\n'
} >"$ctl/argv.sh"

# --- the VM -------------------------------------------------------------------

log=$tmp/console.log
: >"$log"
machine=(-machine pc -m 2G)
if ((pmem_gib > 0)); then
  # The label area takes 128 KiB off the region; with exactly N GiB left the
  # region keeps the 16 MiB alignment ndctl create-namespace insists on.
  img=$tmp/pmem.img
  size=$((pmem_gib * 1024 * 1024 * 1024 + 128 * 1024))
  truncate -s "$size" "$img" || die "cannot create $img ($size bytes)"
  # shellcheck disable=SC2054  # commas belong to qemu's option syntax
  machine=(-machine pc,nvdimm=on -m "2G,slots=2,maxmem=$((pmem_gib + 3))G"
    -object "memory-backend-file,id=mem1,share=on,mem-path=$img,size=$size"
    -device nvdimm,id=nv1,memdev=mem1,label-size=128K)
fi
append="console=ttyS0 panic=-1 daxvm.flavour=$flavour"
((verbose)) || append+=" quiet loglevel=3"
[[ $flavour == systemd ]] && append+=" systemd.show_status=1"

if ((verbose)); then
  tail -n +1 -F "$log" >&2 2>/dev/null &
  tail_pid=$!
fi

start=$SECONDS
# KVM hangs in early boot on these hosts: software emulation only.
timeout --kill-after=10 "$timeout_s" "$qemu" \
  -accel tcg,thread=multi -cpu max -smp "$cpus" \
  "${machine[@]}" \
  -kernel "$kernel" -initrd "$initrd" -append "$append" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$ctl,mount_tag=daxvm,security_model=none,multidevs=remap" \
  -nodefaults -no-user-config -nic none -display none -no-reboot \
  -serial "file:$log" </dev/null >"$tmp/qemu.out" 2>&1 &
qemu_pid=$!
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=
elapsed=$((SECONDS - start))
if [[ -n $tail_pid ]]; then
  sleep 0.2
  kill "$tail_pid" 2>/dev/null || true
  wait "$tail_pid" 2>/dev/null || true
  tail_pid=
fi
[[ -n $log_keep ]] && cp "$log" "$log_keep"

show_partial() {
  [[ -s $ctl/stdout ]] && cat "$ctl/stdout"
  [[ -s $ctl/stderr ]] && cat "$ctl/stderr" >&2
  echo "$kProg: last lines of the guest console:" >&2
  tail -n 40 "$log" | sed 's/^/  | /' >&2
  if [[ -s $tmp/qemu.out ]]; then
    echo "$kProg: qemu said:" >&2
    sed 's/^/  | /' "$tmp/qemu.out" >&2
  fi
}

if ((qemu_rc == 124 || qemu_rc == 137)); then
  echo "$kProg: timed out after ${timeout_s}s running $script ($flavour); qemu killed" >&2
  show_partial
  exit 124
fi
if [[ ! -s $ctl/status ]]; then
  echo "$kProg: the guest reported no exit status for $script ($flavour, qemu exit $qemu_rc, ${elapsed}s)" >&2
  show_partial
  exit 125
fi
status=$(<"$ctl/status")
[[ $status =~ ^[0-9]+$ ]] || { echo "$kProg: garbled guest status '$status'" >&2; show_partial; exit 125; }
cat "$ctl/stdout"
cat "$ctl/stderr" >&2
echo "$kProg: $(basename "$script") exited $status in the $flavour guest (${elapsed}s wall)" >&2
if ((status == 77)) && in_ci; then
  echo "$kProg: the script skipped (77) but CI=$CI: failing" >&2
  exit 125
fi
exit "$status"
