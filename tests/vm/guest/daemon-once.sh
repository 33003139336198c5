#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of the daxpolicyd VM test, on a real fsdax namespace (emulated
# NVDIMM), xfs and ext4 mounted -o dax=inode:
#   - the media plugin finds the namespace, maps the mount to it and measures
#     latency on a real DAX mapping;
#   - daxpolicyd --once turns files to DAX and back and statx shows the
#     *effective* change;
#   - a file held open by another process stays pending with that process as
#     holder, and is in sync once it closes;
#   - a directory's flag is inherited by files created later;
#   - cachestat(2) is missing on the 6.1 guest kernel: mincore() fills in
#     residency, and eviction data is reported unavailable, not invented.
#
#   daemon-once.sh BIN_DIR PROBE    BIN_DIR: build/bin; PROBE: vm_daxctl_probe
source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"

bin=${1:?usage: daemon-once.sh BIN_DIR PROBE}
probe=${2:?usage: daemon-once.sh BIN_DIR PROBE}
vm_require "daxpolicyd built" test -x "$bin/daxpolicyd"
vm_require "daxpolicy-media-probe built" test -x "$bin/daxpolicy-media-probe"
vm_require_cmd ndctl mkfs.xfs mkfs.ext4

dev=$(vm_pmem_fsdax) || exit $?
work=$(mktemp -d)
effective() { "$probe" get "$1" | grep -o 'statx_dax=[01]'; }

once() {  # once POLICY: one daxpolicyd cycle; output in $work/out
  "$bin/daxpolicyd" --once --config "$1" --state-dir "$work/state" >"$work/out" 2>"$work/err"
  local rc=$?
  sed 's/^/#   | /' "$work/out"
  return $rc
}

for fs in xfs ext4; do
  mnt=/mnt/once-$fs
  vm_log "--- $fs"
  vm_mkfs "$fs" "$dev"
  vm_mount_dax "$dev" "$mnt"
  mkdir -p "$mnt/data" "$mnt/inherit"
  for i in 1 2; do head -c 1M /dev/urandom >"$mnt/data/f$i"; done
  head -c 1M /dev/urandom >"$mnt/data/held"
  cat "$mnt/data/f1" >/dev/null   # in the page cache: residency comes from mincore on 6.1

  # The media plugin, on the real device.
  "$bin/daxpolicy-media-probe" --json "$mnt" >"$work/media.json" 2>"$work/media.err"
  vm_expect "$fs: media probe finds namespace0.0 in fsdax mode" grep -q '"namespace0.0"' "$work/media.json"
  vm_expect "$fs: the mount is mapped to region0" grep -q '"region0"' "$work/media.json"
  vm_expect "$fs: latency measured on a real DAX mapping" grep -q '"measured"' "$work/media.json"

  cat >"$work/on.yaml" <<YAML
apiVersion: daxpolicy/v1
scopes: [ $mnt ]
defaults: { dax: keep, max_switches_per_minute: 1000 }
rules:
  - name: resident-but-no-eviction-data
    match: { path: "$mnt/data/f1" }
    when: "file.recently_evicted_ratio >= 0"
    dax: keep
  - name: inherit
    match: { path: "$mnt/inherit", type: directory }
    dax: on
  - name: data
    match: { path: "$mnt/data/*" }
    when: "file.cache_resident_ratio >= 0"
    dax: on
YAML
  # The way back is unconditional: it must not depend on page-cache numbers.
  cat >"$work/off.yaml" <<YAML
apiVersion: daxpolicy/v1
scopes: [ $mnt ]
defaults: { dax: keep, max_switches_per_minute: 1000 }
rules:
  - name: back-to-page-cache
    match: { path: "$mnt/data/*" }
    dax: off
YAML

  # A holder keeps data/held open while the flag changes.
  # (a fifo, not process substitution: the minimal guest has no /dev/fd)
  rm -f "$work/ctl"
  mkfifo "$work/ctl"
  "$probe" hold "$mnt/data/held" <"$work/ctl" >"$work/holder.out" &
  holder=$!
  exec 9>"$work/ctl"
  for _ in $(seq 1 50); do grep -q held "$work/holder.out" && break; sleep 0.1; done

  vm_expect "$fs: daxpolicyd --once succeeds" once "$work/on.yaml"
  vm_expect_eq "$fs: f1 is effective DAX after one cycle" "statx_dax=1" "$(effective "$mnt/data/f1")"
  vm_expect_eq "$fs: f2 is effective DAX after one cycle" "statx_dax=1" "$(effective "$mnt/data/f2")"
  vm_expect "$fs: residency from mincore let rule 'data' match f1 (eviction data unknown)" \
    grep -q "rule data: 3 file(s)" "$work/out"
  vm_expect "$fs: the rule needing eviction data matched nothing" \
    grep -q "rule resident-but-no-eviction-data: 0 file(s)" "$work/out"
  vm_expect_eq "$fs: the held file is still page cache" "statx_dax=0" "$(effective "$mnt/data/held")"
  vm_expect "$fs: the held file is pending with its holder listed" \
    grep -q "pending $mnt/data/held -> dax: $holder (vm_daxctl_prob" "$work/out"
  vm_expect "$fs: one file pending" grep -q "pending=1" "$work/out"

  exec 9>&-   # EOF on its stdin: the holder closes the file and exits
  wait "$holder" 2>/dev/null
  vm_expect_eq "$fs: the held file is effective DAX once its holder is gone" "statx_dax=1" \
    "$(effective "$mnt/data/held")"
  vm_expect "$fs: the next cycle finds everything in sync" once "$work/on.yaml"
  vm_expect "$fs: nothing pending or blocked" grep -q "pending=0 deferred=0 observed=0 blocked=0" "$work/out"

  head -c 4096 /dev/zero >"$mnt/inherit/new-file"
  vm_expect_eq "$fs: a file created in a DAX directory inherits the flag" \
    "xflag_dax=1 statx_dax=1 statx_dax_known=1" "$("$probe" get "$mnt/inherit/new-file")"

  vm_expect "$fs: the policy turned around" once "$work/off.yaml"
  for f in f1 f2 held; do
    vm_expect_eq "$fs: $f is back to the page cache" "statx_dax=0" "$(effective "$mnt/data/$f")"
  done

  vm_expect "$fs: restore from the journal" "$bin/daxpolicyctl" restore --state-dir "$work/state" --all
  umount "$mnt"
  rm -rf "$work/state"
done
vm_done
