# SPDX-License-Identifier: Apache-2.0
# Checks for the package scripts (source it from bash): one line per check,
# and the run goes on after a failure; end with checks_done NAME.
#   check DESCRIPTION COMMAND...   ok when COMMAND succeeds (its output hidden)

failures=0
ok() { printf 'ok    %s\n' "$1"; }
bad() {
  printf 'FAIL  %s\n' "$1" >&2
  failures=$((failures + 1))
}
check() {
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
# checks_done NAME: exit 1 when a check failed.
checks_done() {
  if ((failures > 0)); then
    echo "$1: $failures check(s) failed" >&2
    exit 1
  fi
  echo "$1: all checks passed"
}
