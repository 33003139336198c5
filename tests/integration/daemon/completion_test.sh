#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bash completion of daxpolicyctl, run the way bash runs it: subcommands,
# their options (read from the program's --help), global options, values.
#   completion_test.sh COMPLETION_FILE DIR_OF_DAXPOLICYCTL
set -euo pipefail
completion=$1
PATH=$2:$PATH
if [[ ! -r /usr/share/bash-completion/bash_completion ]]; then
  if [[ -n ${CI:-} ]]; then
    echo "bash-completion is not installed" >&2
    exit 1
  fi
  echo "bash-completion is not installed: skipped"
  exit 77
fi
# shellcheck disable=SC1091
source /usr/share/bash-completion/bash_completion
# shellcheck disable=SC1090
source "$completion"

failures=0
# complete "WORDS..." -> the candidates for the last word, sorted, one line
complete_line() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _daxpolicyctl daxpolicyctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
expect() {
  local want=$1
  shift
  local got
  got=$(complete_line "$@")
  if [[ $got != "$want" ]]; then
    echo "FAIL: '$*' completes to '$got', expected '$want'" >&2
    failures=$((failures + 1))
  else
    echo "ok: '$*' -> '$got'"
  fi
}

expect "record reload restore" daxpolicyctl re
expect "start stop" daxpolicyctl record ""
expect "--max-size" daxpolicyctl record start --ma
expect "status" daxpolicyctl st
expect "--session" daxpolicyctl --se
expect "--state" daxpolicyctl files --st
expect "pending" daxpolicyctl files --state pen
expect "enforce observe" daxpolicyctl mode ""
expect "dax" daxpolicyctl hold --mode d
expect "--all" daxpolicyctl restore --a
expect "--json" daxpolicyctl status --j
((failures == 0))
