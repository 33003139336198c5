#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Nothing in policy/, daemon/ or plugins/ reads the time except through a
# plugins::Clock (plugins/clock.h): the engine and its parts are handed one, so
# tests move time themselves. Only plugins/clock.cpp reads the kernel's clocks.
# CPU-time clocks (CLOCK_*_CPUTIME_ID, getrusage) measure work, not time, and
# are allowed. Comments (// to the end of the line) are not searched.
#   tests/static/no-direct-clock.sh SOURCE_DIR
set -euo pipefail
cd "${1:?usage: $0 SOURCE_DIR}"

pattern='(steady_clock|system_clock|high_resolution_clock|utc_clock|file_clock)::now'
pattern+='|clock_gettime *\( *CLOCK_(MONOTONIC|REALTIME|BOOTTIME|TAI)'
pattern+='|gettimeofday|sd_event_now|std::(time|clock) *\(|(^|[^_[:alnum:]])::(time|clock) *\('
# time() and clock() called as free functions (not a member such as engine.clock()).
pattern+='|(^|[^_.>:[:alnum:]])time *\( *(nullptr|NULL|0|&)|(^|[^_.>:[:alnum:]])clock *\( *\) *[-+;,)*/]'
mapfile -t files < <(find policy daemon plugins -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.c' \) |
  grep -v '^plugins/clock\.cpp$' | sort)
# Through the environment: awk -v would process the backslashes (gawk reads
# "\(" as "(").
hits=$(PATTERN=$pattern awk '{ line = $0; sub(/\/\/.*/, "", line)
  if (line ~ ENVIRON["PATTERN"]) print FILENAME ":" FNR ": " $0 }' "${files[@]}")
if [[ -n $hits ]]; then
  echo "no-direct-clock: these lines read a clock directly; take a plugins::Clock instead:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "no-direct-clock: ${#files[@]} files of policy/, daemon/ and plugins/ read no clock but through plugins::Clock"
