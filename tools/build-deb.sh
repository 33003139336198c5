#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian package from the committed tree plus local changes, in
# build/deb/ (dpkg-buildpackage writes next to the source), and runs lintian.
#   tools/build-deb.sh [--nocheck]
# --nocheck skips the unit tests of the package build (tools/test-all.sh has
# run them already). Prints the path of the .deb last.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
root=$PWD

nocheck=""
[[ ${1:-} == --nocheck ]] && nocheck=nocheck

out=$root/build/deb
rm -rf "$out"
mkdir -p "$out/daxpolicy"
# The tracked files and new ones not ignored, as they are in the work tree.
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$out/daxpolicy"

export DEB_BUILD_OPTIONS="${nocheck} parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}"
[[ -d /usr/lib/ccache ]] && export PATH=/usr/lib/ccache:$PATH CCACHE_BASEDIR=$out
(cd "$out/daxpolicy" && dpkg-buildpackage -us -uc -b)

changes=$(ls "$out"/daxpolicy_*.changes)
echo "=== lintian ==="
# Errors and warnings fail the build.
lintian --fail-on error,warning --info "$changes"
ls "$out"/*.deb
