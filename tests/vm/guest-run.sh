#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs inside the daxpolicy VM guest, from the control share /daxvm that
# tests/vm/run-vm.sh fills: runs the requested script as root and stores its
# stdout, stderr and exit status back on the share for the host.
#   guest-run.sh pid1   minimal flavour: this is PID 1; powers the guest off.
#   guest-run.sh unit   systemd flavour: run by daxvm-test.service.
mode=${1:-unit}
ctl=/daxvm
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
umask 022

power_off() {
  sync
  # The sysrq request is asynchronous; if it never lands, PID 1 exiting panics
  # the kernel, and panic=-1 with qemu -no-reboot ends the VM as well.
  echo o >/proc/sysrq-trigger
  sleep 60
  exit 1
}

report() {
  echo "$1" >"$ctl/status.tmp" && mv -f "$ctl/status.tmp" "$ctl/status"
  sync
}

# shellcheck source=/dev/null
if ! source "$ctl/env.sh" || ! source "$ctl/argv.sh"; then
  echo "guest-run.sh: cannot read the run request in $ctl" >>"$ctl/stderr"
  report 125
  [[ $mode == pid1 ]] && power_off
  exit 0
fi
# shellcheck disable=SC2154  # daxvm_cwd and daxvm_argv come from argv.sh
cd "$daxvm_cwd" 2>/dev/null || cd /

cmd=("${daxvm_argv[@]}")
[[ -x ${cmd[0]} ]] || cmd=(/bin/bash "${cmd[@]}")
"${cmd[@]}" </dev/null >"$ctl/stdout" 2>"$ctl/stderr"
report $?

[[ $mode == pid1 ]] && power_off
exit 0
