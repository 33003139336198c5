#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The monitoring VM test checks that each alert's "signals" return data; this
# checks the splitting itself (tests/vm/guest/prom-queries.py signals) on every
# expression of the shipped alert rules, so that a wrong split cannot hide a
# signal from that check:
#   tests/static/alert-signals.sh SOURCE_DIR
set -euo pipefail
cd "${1:?usage: $0 SOURCE_DIR}"
split() { python3 tests/vm/guest/prom-queries.py signals "$1"; }
failures=0
expect() {  # expect EXPR SIGNAL...: the signals of EXPR, in order
  local expr=$1 got want
  shift
  got=$(split "$expr")
  want=$(printf '%s\n' "$@")
  if [[ $got != "$want" ]]; then
    printf 'FAIL  %s\n  got:\n%s\n  want:\n%s\n' "$expr" "$got" "$want" >&2
    failures=$((failures + 1))
  fi
}

# The splitter on its own: set operators only at the top level, comparisons
# only against a number, nothing inside (), {}, [] or strings.
expect 'a == 0 or absent(a)' 'a' 'absent absent(a)'
expect 'x{l="a or b"} > 1' 'x{l="a or b"}'
expect 'sum by (instance) (rate(x[5m] offset 1m)) >= 2.5e3 unless y' \
  'sum by (instance) (rate(x[5m] offset 1m))' 'y'
expect 'x > bool 1' 'x'
expect 'x > y' 'x > y'
expect 'x{a!="1"}' 'x{a!="1"}'
expect 'max(x and on(i) y) == 1' 'max(x and on(i) y)'
expect 'orders_total > 0 and android == 1' 'orders_total' 'android'

# Every shipped alert expression: each gives at least one signal, none keeps a
# threshold comparison, and only DaxpolicyDown has an absent() branch.
rules=config/prometheus/daxpolicy-alerts.yaml
n=0
while IFS= read -r expr; do
  n=$((n + 1))
  out=$(split "$expr")
  if [[ -z $out ]]; then
    echo "FAIL  no signal in: $expr" >&2
    failures=$((failures + 1))
  fi
  if grep -Eq '(==|!=|>=|<=|>|<) *-?[0-9.]+ *$' <<<"$out"; then
    printf 'FAIL  a threshold is left in the signals of: %s\n%s\n' "$expr" "$out" >&2
    failures=$((failures + 1))
  fi
done < <(sed -n 's/^ *expr: //p' "$rules")
expect "$(sed -n 's/^ *expr: //p' "$rules" | head -n 1)" 'up{job="daxpolicy"}' \
  'absent absent(up{job="daxpolicy"})'
absent_rules=$(sed -n 's/^ *expr: //p' "$rules" | while IFS= read -r e; do split "$e"; done | grep -c '^absent ' || true)
if [[ $absent_rules != 1 ]]; then
  echo "FAIL  $absent_rules absent() signals in $rules, want 1 (DaxpolicyDown's)" >&2
  failures=$((failures + 1))
fi
((n >= 9)) || { echo "FAIL  only $n alert expressions found in $rules" >&2; failures=$((failures + 1)); }
if ((failures > 0)); then
  echo "alert-signals: $failures check(s) failed" >&2
  exit 1
fi
echo "alert-signals: the splitter and the $n alert expressions of $rules check out"
