#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# expect-status.sh STATUS COMMAND...: succeeds when COMMAND exits STATUS. A 77
# (skip) from COMMAND passes through; run-vm.sh only gives 77 outside CI.
want=${1:?usage: expect-status.sh STATUS COMMAND...}
shift
"$@"
rc=$?
((rc == 77 && want != 77)) && exit 77
if ((rc != want)); then
  echo "expect-status.sh: wanted exit status $want, got $rc from: $*" >&2
  exit 1
fi
exit 0
