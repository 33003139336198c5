#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of the vm_dax_semantics test: per-file DAX on a real fsdax namespace
# (emulated NVDIMM), on xfs and ext4 mounted -o dax=inode. Needs run-vm.sh
# --pmem-gib 1 or more.
#   dax-semantics.sh PROBE   PROBE: the vm_daxctl_probe binary
source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"

probe=${1:?usage: dax-semantics.sh PATH/TO/vm_daxctl_probe}
vm_require "executable probe $probe" test -x "$probe"
vm_require_cmd ndctl mkfs.xfs mkfs.ext4 findmnt

state() { "$probe" get "$1"; }

dev=$(vm_pmem_fsdax) || exit $?
vm_expect_eq "fsdax namespace gives /dev/pmem0" /dev/pmem0 "$dev"
vm_expect "/dev/pmem0 is a block device" test -b /dev/pmem0
vm_expect_eq "ndctl reports namespace0.0 in fsdax mode" fsdax \
  "$(ndctl list -n namespace0.0 | grep -o '"mode":"[a-z]*"' | cut -d'"' -f4)"

for fs in xfs ext4; do
  mnt=/mnt/dax-$fs
  vm_log "--- $fs"
  vm_mkfs "$fs" "$dev"
  vm_mount_dax "$dev" "$mnt"
  vm_expect_eq "$fs is mounted from /dev/pmem0" "/dev/pmem0 $fs" "$(findmnt -no SOURCE,FSTYPE "$mnt")"
  opts=$(findmnt -no OPTIONS "$mnt")
  vm_log "$fs mount options: $opts"
  # ext4 lists dax=inode; xfs lists only the non-default dax=always and dax=never.
  if [[ $fs == ext4 ]]; then
    vm_expect "$fs is mounted in per-inode DAX mode" grep -qE '(^|,)dax=inode(,|$)' <<<"$opts"
  else
    vm_expect "$fs is mounted in per-inode DAX mode" grep -qvE '(^|,)dax=(always|never)(,|$)' <<<"$opts"
  fi

  # A closed file: the flag takes effect at once.
  f=$mnt/closed
  head -c 65536 /dev/urandom >"$f"
  vm_expect_eq "$fs: new file starts without DAX" "xflag_dax=0 statx_dax=0 statx_dax_known=1" "$(state "$f")"
  "$probe" set "$f"
  vm_expect_eq "$fs: setting the flag on a closed file makes it effective DAX at once" \
    "xflag_dax=1 statx_dax=1 statx_dax_known=1" "$(state "$f")"

  # Clearing while another process holds the file open: effective DAX stays until
  # the holder closes, then flips.
  g=$mnt/held
  head -c 65536 /dev/urandom >"$g"
  "$probe" set "$g"
  vm_expect_eq "$fs: held file is effective DAX before clearing" \
    "xflag_dax=1 statx_dax=1 statx_dax_known=1" "$(state "$g")"
  coproc holder { "$probe" hold "$g"; }
  read -r -t 30 ready <&"${holder[0]}"
  vm_expect_eq "$fs: another process holds the file open" held "$ready"
  "$probe" clear "$g"
  vm_expect_eq "$fs: clearing while held leaves the file effective DAX" \
    "xflag_dax=0 statx_dax=1 statx_dax_known=1" "$(state "$g")"
  # shellcheck disable=SC2154  # set by coproc
  holder_pid=$holder_PID
  holder_stdin=${holder[1]}
  exec {holder_stdin}>&-  # EOF on the holder's stdin: it closes the file and exits
  wait "$holder_pid"
  vm_expect_eq "$fs: after the holder closes the file is no longer DAX" \
    "xflag_dax=0 statx_dax=0 statx_dax_known=1" "$(state "$g")"

  # Inheritance from a directory with the flag.
  d=$mnt/daxdir
  mkdir "$d"
  "$probe" set "$d"
  vm_expect_eq "$fs: the directory carries the flag" 1 "$(state "$d" | sed -E 's/^xflag_dax=([01]).*/\1/')"
  echo data >"$d/child"
  vm_expect_eq "$fs: a new file in a DAX directory inherits the flag and is effective DAX" \
    "xflag_dax=1 statx_dax=1 statx_dax_known=1" "$(state "$d/child")"

  # cachestat(2) arrived in Linux 6.5; the Debian 12 guest kernel (6.1) lacks it.
  out=$("$probe" cachestat "$f")
  if vm_kernel_at_least 6 5; then
    vm_expect_eq "$fs: cachestat works on $(uname -r)" ok "$(cut -d' ' -f2 <<<"$out")"
  else
    vm_expect_eq "$fs: cachestat is ENOSYS on $(uname -r)" "cachestat errno=ENOSYS" "$out"
  fi

  umount "$mnt" || vm_die "umount $mnt"
done

vm_done
