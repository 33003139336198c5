#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs a build tree the way the README's "Building by hand" does
# (cmake --install), into a staging root (DESTDIR), twice, and checks that
# every file lands where its reader looks for it under the build's prefix
# (the default /usr/local included) and that the second install keeps an
# edited policy:
#   tests/package/source-install.sh BUILD_DIR
# Needs nothing but cmake; writes only a temporary directory and the build
# tree's install_manifest.txt (as any cmake --install does).
set -euo pipefail

build=$(readlink -f "${1:?usage: $0 BUILD_DIR}")
source_dir=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
[[ -n $prefix ]] || { echo "source-install: no CMAKE_INSTALL_PREFIX in $build/CMakeCache.txt" >&2; exit 1; }

# shellcheck source=tests/package/checks.sh
source "$source_dir/tests/package/checks.sh"

stage=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$stage" "$log"' EXIT
install_tree() {
  DESTDIR=$stage cmake --install "$build" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
}

echo "--- cmake --install with prefix $prefix (DESTDIR=$stage)"
install_tree
manifest=$build/install_manifest.txt
# The manifest names each installed file without DESTDIR: all of them are there.
check "every file of the install manifest is under DESTDIR" \
  bash -c "while read -r f; do [[ \$f == /* && -e $stage\$f ]] || exit 1; done <'$manifest'"

p=$stage$prefix
check "daxpolicyd in $prefix/sbin" test -x "$p/sbin/daxpolicyd"
check "daxpolicyctl in $prefix/bin" test -x "$p/bin/daxpolicyctl"
check "daxpolicy-media-probe in $prefix/bin" test -x "$p/bin/daxpolicy-media-probe"
for page in man1/daxpolicyctl.1 man1/daxpolicy-media-probe.1 man5/daxpolicy.yaml.5 man8/daxpolicyd.8; do
  check "man page $page under $prefix/share/man" test -f "$p/share/man/$page"
done

# systemd reads units from /usr/local/lib/systemd/system as well as
# /usr/lib/systemd/system and /lib/systemd/system, catalogs from
# /usr/local/lib/systemd/catalog and /usr/lib/systemd/catalog.
unit=$(find "$stage" -name daxpolicyd.service -path '*/systemd/system/*' | head -n 1)
check "the unit is in a directory systemd reads" \
  bash -c "case '${unit#"$stage"}' in
    /usr/local/lib/systemd/system/*|/usr/lib/systemd/system/*|/lib/systemd/system/*|/etc/systemd/system/*) exit 0;;
    *) exit 1;; esac"
check "the unit starts the daemon where it was installed ($prefix/sbin)" \
  grep -qx "ExecStart=$prefix/sbin/daxpolicyd" "$unit"
catalog=$(find "$stage" -name daxpolicy.catalog | head -n 1)
check "the journal catalog is in a directory journalctl --update-catalog reads" \
  bash -c "case '${catalog#"$stage"}' in
    /usr/local/lib/systemd/catalog/*|/usr/lib/systemd/catalog/*) exit 0;; *) exit 1;; esac"

# dbus-daemon reads system bus policies only from /usr/share/dbus-1/system.d
# and /etc/dbus-1/system.d; activation files from /usr/local/share,
# /usr/share and /lib (dbus-1/system-services).
if [[ $prefix == /usr ]]; then bus_policy_dir=/usr/share/dbus-1/system.d; else bus_policy_dir=/etc/dbus-1/system.d; fi
check "the bus policy is in $bus_policy_dir, where dbus-daemon reads it" \
  test -f "$stage$bus_policy_dir/org.daxpolicy.DaxPolicy1.conf"
check "no bus policy under the prefix where dbus-daemon would not read it" \
  bash -c "[[ '$prefix' == /usr ]] || ! find '$p' -name org.daxpolicy.DaxPolicy1.conf | grep -q ."
activation=$(find "$stage" -name org.daxpolicy.DaxPolicy1.service -path '*/system-services/*' | head -n 1)
check "the activation file is in a directory dbus-daemon reads" \
  bash -c "case '${activation#"$stage"}' in
    /usr/local/share/dbus-1/system-services/*|/usr/share/dbus-1/system-services/*|/lib/dbus-1/system-services/*) exit 0;;
    *) exit 1;; esac"

# The daemon reads /etc/daxpolicy whatever the prefix.
check "the policy is in /etc/daxpolicy, the daemon's default" test -f "$stage/etc/daxpolicy/policy.yaml"
check "the installed daemon's --config default is /etc/daxpolicy/policy.yaml" \
  bash -c "'$p/sbin/daxpolicyd' --help | grep -- '--config' | grep -q '/etc/daxpolicy/policy.yaml'"
check "/etc/daxpolicy/policy.d/ exists" test -d "$stage/etc/daxpolicy/policy.d"
check "the shipped policy is the source's config/policy.yaml" \
  cmp "$source_dir/config/policy.yaml" "$stage/etc/daxpolicy/policy.yaml"
check "no policy.yaml.dist on a first install" test ! -e "$stage/etc/daxpolicy/policy.yaml.dist"
check "the installed daemon accepts the installed policy" \
  "$p/sbin/daxpolicyd" --check-config --config "$stage/etc/daxpolicy/policy.yaml"
check "bash completion for daxpolicyctl" test -f "$p/share/bash-completion/completions/daxpolicyctl"
check "the Grafana dashboard" test -f "$p/share/daxpolicy/grafana/daxpolicy-dashboard.json"
check "the Prometheus alert rules" test -f "$p/share/daxpolicy/prometheus/daxpolicy-alerts.yaml"

echo "--- an edited policy, then cmake --install again"
printf '# edited by the administrator\n' >>"$stage/etc/daxpolicy/policy.yaml"
edited=$(sha256sum <"$stage/etc/daxpolicy/policy.yaml")
install_tree
check "the reinstall keeps the edited policy" \
  test "$(sha256sum <"$stage/etc/daxpolicy/policy.yaml")" = "$edited"
check "the shipped policy is put next to it as policy.yaml.dist" \
  cmp "$source_dir/config/policy.yaml" "$stage/etc/daxpolicy/policy.yaml.dist"
check "the reinstall says it kept the policy" grep -q "Keeping: .*/etc/daxpolicy/policy.yaml" "$log"

checks_done source-install
