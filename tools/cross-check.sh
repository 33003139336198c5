#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks that daxpolicy builds for the other Debian architectures it ships on
# (arm64, i386, ppc64el, s390x) without their machines:
#   - every translation unit of the programs (daemon/, plugins/, policy/, cli/)
#     is compiled for each target by clang (-fsyntax-only), with the exact flags
#     of the native build (-Wall -Wextra -Wpedantic -Werror) against that
#     target's glibc, kernel and libstdc++ headers (Debian's *-cross packages,
#     installed by tools/setup.sh): 32-bit sizes, big-endian, syscall numbers;
#   - the access BPF program is compiled for each target's __TARGET_ARCH and
#     byte order, as plugins/access/CMakeLists.txt does on that machine.
#   tools/cross-check.sh BUILD_DIR     (a configured build with compile_commands.json)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
root=$PWD
build=$(readlink -f "${1:?usage: $0 BUILD_DIR}")
commands=$build/compile_commands.json
[[ -f $commands ]] || {
  echo "cross-check: no $commands (configure the build first)" >&2
  exit 1
}

# Debian architecture, GNU triplet, BPF target arch, BPF byte order.
targets=(
  "arm64 aarch64-linux-gnu arm64 bpfel"
  "i386 i686-linux-gnu x86 bpfel"
  "ppc64el powerpc64le-linux-gnu powerpc bpfel"
  "s390x s390x-linux-gnu s390 bpfeb"
)

# One line per translation unit: "FILE<TAB>FLAGS", the native build's flags
# without the compiler, the output and the launcher.
units=$(mktemp)
trap 'rm -f "$units"' EXIT
python3 - "$commands" "$root" >"$units" <<'EOF'
import json, shlex, sys
commands, root = sys.argv[1], sys.argv[2]
for entry in json.load(open(commands)):
    path = entry["file"]
    rel = path[len(root) + 1:] if path.startswith(root + "/") else path
    if not rel.split("/")[0] in ("daemon", "plugins", "policy", "cli"):
        continue
    args = entry.get("arguments") or shlex.split(entry["command"])
    if any(a.startswith("-fsanitize") for a in args):
        continue  # a sanitizer test's second copy of a source built normally as well
    flags, skip = [], False
    for arg in args[1:]:
        if skip:
            skip = False
            continue
        if arg in ("-o", "-c"):
            skip = arg == "-o"
            continue
        if arg == path or arg.endswith("ccache"):
            continue
        if arg.startswith("-O"):
            arg = "-O0"  # syntax only: the optimiser does not run
        if arg == "-Wno-restrict":
            continue  # GCC's only (CMakeLists.txt): clang has no such warning
        flags.append(arg)
    print(path + "\t" + shlex.join(flags))
EOF
count=$(wc -l <"$units")
((count > 0)) || {
  echo "cross-check: no program sources in $commands" >&2
  exit 1
}

# Extensions g++, the native compiler, accepts without a word under -Wpedantic
# and clang reports: libbpf's skeleton (a long string literal, its macros).
clang_only="-Wno-overlength-strings -Wno-gnu-statement-expression -Wno-c99-extensions"

failed=0
for target in "${targets[@]}"; do
  read -r arch triplet bpf_arch bpf_order <<<"$target"
  if [[ ! -d /usr/$triplet/include ]]; then
    echo "cross-check: no headers for $arch in /usr/$triplet (tools/setup.sh installs them)" >&2
    exit 1
  fi
  start=$SECONDS
  # Each unit in parallel, one job per core; the first failure's output is kept.
  if ! while IFS=$'\t' read -r file flags; do
    printf '%s\0' "clang++ --target=$triplet -fsyntax-only $flags $clang_only $(printf '%q' "$file")"
  done <"$units" | xargs -0 -P "$(nproc)" -n 1 bash -c; then
    echo "cross-check: $arch: the programs do not compile" >&2
    failed=1
    continue
  fi
  obj=$(mktemp)
  if ! clang -g -O2 -Wall -Werror -target "$bpf_order" -D__TARGET_ARCH_"$bpf_arch" \
    -I plugins/access/bpf -c plugins/access/bpf/access.bpf.c -o "$obj"; then
    echo "cross-check: $arch: the access BPF program does not compile" >&2
    failed=1
  fi
  rm -f "$obj"
  echo "cross-check: $arch ($triplet): $count translation units and the BPF program compile" \
    "($((SECONDS - start)) s)"
done
exit "$failed"
