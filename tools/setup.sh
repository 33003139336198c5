#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs everything daxpolicy needs to build, test and run its demo on a fresh
# Debian 12 machine. Idempotent: packages already present are left alone.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(
  # build
  g++ cmake ninja-build pkg-config clang clang-format clang-tidy libclang-rt-14-dev ccache
  # the access telemetry BPF program: libbpf, and bpftool to generate its skeleton
  libbpf-dev bpftool
  # the Debian package: dpkg-buildpackage, dh, lintian; bash-completion for its test
  build-essential dpkg-dev debhelper fakeroot lintian bash-completion
  # libraries (libndctl.h includes uuid/uuid.h, but libndctl-dev does not pull uuid-dev)
  libndctl-dev libdaxctl-dev uuid-dev libpmem2-dev
  libsdbus-c++-dev libsdbus-c++-bin libsystemd-dev
  libyaml-cpp-dev prometheus-cpp-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # running and testing: buses, filesystems, metrics checks, fincore (util-linux)
  dbus-daemon dbus systemd curl xfsprogs e2fsprogs util-linux prometheus
  # the demo and the monitoring test's query checker (it reads the alert rules)
  python3 python3-yaml
  # tools/cross-check.sh: the headers of the other architectures the package is built for
  libc6-dev-arm64-cross linux-libc-dev-arm64-cross libstdc++-12-dev-arm64-cross
  libc6-dev-i386-cross linux-libc-dev-i386-cross libstdc++-12-dev-i386-cross
  libc6-dev-ppc64el-cross linux-libc-dev-ppc64el-cross libstdc++-12-dev-ppc64el-cross
  libc6-dev-s390x-cross linux-libc-dev-s390x-cross libstdc++-12-dev-s390x-cross
  # the emulated-NVDIMM virtual machine
  ndctl daxctl qemu-system-x86 linux-image-amd64 busybox-static
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup.sh: all ${#packages[@]} packages present"
  exit 0
fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
