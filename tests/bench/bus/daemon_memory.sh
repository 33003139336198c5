#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The running daxpolicyd's marginal memory per tracked file: bench_bus --memory-only with
# no files (the baseline) and then with each size, in one run; each reports the daemon's
# peak RSS (VmHWM) after its first cycle and --settle-cycles more, before any listing.
# Marginal bytes per file = (peak(N) - peak(0)) / N. See docs/bench-bus.md.
#
#   tests/bench/bus/daemon_memory.sh BENCH_BUS IMAGE_DIR [SIZE...]   (default 100000 1000000)
#
# IMAGE_DIR keeps one xfs image per size, made and filled by the first run and reused by
# the next ones (1,000,000 files take minutes to create). DAXPOLICYD, when set, is the
# daemon binary to measure (default: the one bench_bus was built with).
set -eu
if [ $# -lt 2 ]; then
  echo "usage: $0 BENCH_BUS IMAGE_DIR [SIZE...]" >&2
  exit 2
fi
bench=$1
images=$2
shift 2
[ $# -gt 0 ] || set -- 100000 1000000
mkdir -p "$images"
peak() {
  out=$("$bench" --memory-only --files "$1" --image "$images/xfs-$1.img" \
    ${DAXPOLICYD:+--daxpolicyd "$DAXPOLICYD"}) || {
    echo "$out" >&2
    exit 1
  }
  # Without access tracing no cycle sets every file's access figures: not the usual peak.
  echo "$out" | grep -q '^memory: .* access traced' ||
    echo "daemon_memory.sh: access tracing did not run at $1 files: $(echo "$out" | grep '^access tracing')" >&2
  echo "$out" | sed -n 's/^memory: .* hwm \([0-9]*\) .*/\1/p'
}
echo "load average before: $(cat /proc/loadavg)"
base=$(peak 0)
# bytes/file: against no files; slope: against the size before (the baseline's peak
# includes memory freed at start that the first files reuse, so at small sizes the
# first figure is below what each further file costs).
printf '%10s %14s %12s %12s\n' files "peak RSS MiB" "bytes/file" "slope B/file"
awk -v b="$base" 'BEGIN { printf "%10s %14.1f %12s %12s\n", 0, b / 1048576, "(baseline)", "" }'
prev_n=0
prev=$base
for n in "$@"; do
  hwm=$(peak "$n")
  awk -v n="$n" -v h="$hwm" -v b="$base" -v pn="$prev_n" -v p="$prev" \
    'BEGIN { printf "%10s %14.1f %12.1f %12.1f\n", n, h / 1048576, (h - b) / n, (h - p) / (n - pn) }'
  prev_n=$n
  prev=$hwm
done
echo "load average after: $(cat /proc/loadavg)"
