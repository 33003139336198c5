#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of the vm_harness test: echoes what it was given and where it runs,
# writes to the guest root, then exits 3. "harness-echo.sh sleep" just sleeps.
if [[ ${1-} == sleep ]]; then
  sleep 600
  exit 0
fi
for a in "$@"; do printf 'arg=[%s]\n' "$a"; done
echo "FOO=[${FOO-unset}]"
echo "CI=[${CI-unset}]"
echo "flavour=$DAXVM_FLAVOUR uid=$(id -u) pid1=$(cat /proc/1/comm) root=$(findmnt -no FSTYPE /)"
echo "cwd=$PWD"
echo marker >/etc/daxvm-harness-marker && echo "guest root is writable"
echo "to stderr" >&2
exit 3
