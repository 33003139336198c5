#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up a fresh Debian 12 machine and runs every test of daxpolicy:
#   1. clang-format check of every C++ file
#   2. release build: unit and host integration tests (root, loop devices, private buses);
#      every program source compiled for arm64, i386, ppc64el and s390x
#   3. the Debian package (a Unix Makefiles build with dpkg-buildflags; lintian),
#      apt install/remove/purge of it on this machine, then the VM tests
#   4. ASan+UBSan build: unit and host integration tests again
#   5. libFuzzer targets (clang) for a bounded time each
#   6. a short run of the benchmarks, so they keep working
# Under CI=true no test may skip: a missing requirement fails the run.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
root=$PWD

./tools/setup.sh

jobs=$(nproc)
fuzz_seconds=${DAXPOLICY_FUZZ_SECONDS:-60}

step() { printf '\n=== %s ===\n' "$*"; }

step "clang-format"
mapfile -t sources < <(git ls-files '*.cpp' '*.h' '*.cc' | grep -v '^tests/fixtures/')
clang-format --dry-run --Werror "${sources[@]}"
echo "clang-format: ${#sources[@]} files clean"

step "release build"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
ninja -C build/release -j "$jobs"

step "release: unit and integration tests"
(cd build/release && ctest --output-on-failure -j "$jobs" -LE vm)

step "the other architectures: arm64, i386, ppc64el, s390x (compile only)"
./tools/cross-check.sh build/release

step "Debian package: Unix Makefiles build with dpkg-buildflags hardening, lintian"
# debhelper builds with the default generator (Unix Makefiles) and Debian's
# hardening flags under -Werror: this is the project's Makefiles build. The
# release build ran the unit tests already (--nocheck).
./tools/build-deb.sh --nocheck

step "Debian package: apt install, reinstall, remove and purge on this machine"
# Runs under CI=true (a fresh machine); elsewhere only with DAXPOLICY_HOST_INSTALL=1.
./tests/package/host-install.sh build/deb/daxpolicy_*_"$(dpkg --print-architecture)".deb

step "release: VM tests (emulated NVDIMM)"
# The VmPackage tests install the package just built (build/deb, the default of
# DAXPOLICY_DEB_DIR) with apt in a guest with systemd as PID 1.
(cd build/release && ctest --output-on-failure -L vm)

step "ASan+UBSan build"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDAXPOLICY_SANITIZE=ON \
  -DDAXPOLICY_BENCH=OFF
ninja -C build/asan -j "$jobs"

step "ASan+UBSan: unit and integration tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build/asan && ctest --output-on-failure -j "$jobs" -LE vm)

step "fuzzers (${fuzz_seconds}s each)"
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDAXPOLICY_FUZZ=ON -DDAXPOLICY_BENCH=OFF
ninja -C build/fuzz -j "$jobs" fuzz_policy fuzz_expr fuzz_journal fuzz_bus_args fuzz_trace
for target in fuzz_policy fuzz_expr fuzz_journal fuzz_bus_args fuzz_trace; do
  corpus=$(mktemp -d)
  cp -r "tests/fuzz/corpus/${target#fuzz_}/." "$corpus/"
  # A fixed seed makes the gate repeatable: the same inputs in the same order on
  # every run (how far it gets depends on the machine). Explore with other
  # seeds and longer runs outside CI (CONTRIBUTING.md).
  "build/fuzz/tests/fuzz/$target" -seed="${DAXPOLICY_FUZZ_SEED:-1}" \
    -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
  rm -rf "$corpus"
done

step "benchmarks (short smoke run; see docs/benchmarks.md for the real figures)"
build/release/tests/bench/policy/bench_policy --benchmark_min_time=0.05 --files=20000 --scopes=20000

step "all tests passed"
