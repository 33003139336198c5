#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Host side of the vm_harness test: run-vm.sh's contract that other VM tests rely
# on. Boots the minimal guest twice (once cut off by --timeout).
#   check-harness.sh   (run from anywhere; finds run-vm.sh next to itself)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run_vm=$here/run-vm.sh
echo_script=$here/guest/harness-echo.sh

failures=0
check() {  # check DESCRIPTION EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then
    echo "ok - $1"
  else
    failures=$((failures + 1))
    printf 'not ok - %s\n#   expected: %s\n#   actual:   %s\n' "$1" "$2" "$3"
  fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/vm-harness.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A missing piece: skip outside CI, failure under CI, and say what is missing.
DAXPOLICY_VM_KVER=0.0-none CI='' "$run_vm" "$echo_script" >/dev/null 2>"$work/err"
check "a missing kernel exits 77 outside CI" 77 "$?"
check "the message names the missing kernel" 1 "$(grep -c 'missing: .*vmlinuz-0.0-none' "$work/err")"
DAXPOLICY_VM_KVER=0.0-none CI=true "$run_vm" "$echo_script" >/dev/null 2>&1
check "a missing kernel exits 125 under CI=true" 125 "$?"

# A real run: arguments, environment, stdout, stderr and exit status come back.
mkdir "$work/tmp" "$work/cwd"
(cd "$work/cwd" && TMPDIR=$work/tmp "$run_vm" --pmem-gib 0 --timeout 120 \
  --env "FOO=x y \$z 'q'" "$echo_script" "a b" "" "c'd") >"$work/out" 2>"$work/err"
rc=$?
if ((rc == 77)); then
  cat "$work/err" >&2
  exit 77
fi
check "the script's exit status is run-vm.sh's" 3 "$rc"
expected="arg=[a b]
arg=[]
arg=[c'd]
FOO=[x y \$z 'q']
CI=[${CI-unset}]
flavour=minimal uid=0 pid1=bash root=overlay
cwd=$work/cwd
guest root is writable"
check "stdout carries the script's output" "$expected" "$(cat "$work/out")"
check "stderr carries the script's errors" 1 "$(grep -cx 'to stderr' "$work/err")"
check "writes to the guest root stay in the guest" absent \
  "$([[ -e /etc/daxvm-harness-marker ]] && echo present || echo absent)"
check "run-vm.sh removed its temp files" "" "$(ls -A "$work/tmp")"
[[ $rc == 3 ]] || sed 's/^/#   /' "$work/err"

# The timeout kills the VM: status 124, nothing left behind.
TMPDIR=$work/tmp "$run_vm" --pmem-gib 0 --timeout 3 "$echo_script" sleep >/dev/null 2>"$work/err"
check "--timeout ends the run with 124" 124 "$?"
check "the timeout is reported" 1 "$(grep -c 'timed out after 3s' "$work/err")"
check "no qemu survives the timeout" "" "$(pgrep -f "$work/tmp" || true)"
check "run-vm.sh removed its temp files after the timeout" "" "$(ls -A "$work/tmp")"

if ((failures > 0)); then
  echo "# $failures checks FAILED"
  exit 1
fi
echo "# all checks passed"
