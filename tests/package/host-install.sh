#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian package on this machine the way the README tells an admin
# to (apt install ./daxpolicy_*.deb), then reinstalls, removes and purges it,
# checking what the package declares (dependencies, the -dbgsym package) and
# what each step leaves behind:
#   tests/package/host-install.sh build/deb/daxpolicy_VERSION_ARCH.deb
# Without systemd as PID 1 (a container, a CI runner) the unit is enabled but
# not started; tests/vm/guest/package.sh covers the running service.
#
# It changes this machine's package set, so outside CI it runs only when asked
# (DAXPOLICY_HOST_INSTALL=1) and only where no daxpolicy package, configuration
# or state is present. Under CI=true every refusal is a failure.
set -euo pipefail

deb=$(readlink -f "${1:?usage: $0 DAXPOLICY_DEB}")
state=/var/lib/daxpolicy
config=/etc/daxpolicy

ci=false
[[ ${CI:-} == true ]] && ci=true

# shellcheck source=tests/package/checks.sh
source "$(dirname "$(readlink -f "$0")")/checks.sh"
refuse() {
  if $ci; then
    echo "host-install: $1" >&2
    exit 1
  fi
  echo "host-install: skipped: $1"
  exit 0
}

package_status() { dpkg-query -W -f='${db:Status-Abbrev}' daxpolicy 2>/dev/null | tr -d ' '; }

[[ $(id -u) == 0 ]] || refuse "installing a package needs root"
[[ -f $deb ]] || refuse "no package at $deb (tools/build-deb.sh builds it)"
if ! $ci && [[ ${DAXPOLICY_HOST_INSTALL:-} != 1 ]]; then
  refuse "it installs and purges daxpolicy on this machine; set DAXPOLICY_HOST_INSTALL=1 to run it"
fi
[[ -z $(package_status) ]] || refuse "a daxpolicy package is already known to dpkg here ($(package_status))"
for leftover in "$state" "$config"; do
  [[ ! -e $leftover ]] || refuse "$leftover exists already: it is not this test's to remove"
done

export DEBIAN_FRONTEND=noninteractive
# Plain apt, as an admin types it; dpkg asks nothing (stdin is not a terminal).
apt_get() { apt-get -y "$@" </dev/null; }
enabled_link=/etc/systemd/system/multi-user.target.wants/daxpolicyd.service
alias_link=/etc/systemd/system/dbus-org.daxpolicy.DaxPolicy1.service

echo "--- what the package declares"
# dpkg-deb -f prints a control field of the built package.
field() { dpkg-deb -f "$1" "$2"; }
depends_on() {  # depends_on DEB PACKAGE: PACKAGE is one of DEB's Depends
  field "$1" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep -qx "$2"
}
# debhelper builds the detached debug symbols as PACKAGE-dbgsym next to the .deb;
# its files are /usr/lib/debug/.build-id/XX/YYYY.debug, named by the build ID of
# each program.
dbgsym=$(dirname "$deb")/daxpolicy-dbgsym_$(field "$deb" Version)_$(field "$deb" Architecture).deb
has_debug_symbols_of() {  # has_debug_symbols_of PROGRAM_IN_DEB
  local tmp id
  tmp=$(mktemp -d)
  dpkg-deb -x "$deb" "$tmp"
  id=$(readelf -n "$tmp$1" | sed -n 's/.*Build ID: //p')
  rm -rf "$tmp"
  [[ -n $id ]] || return 1
  # The whole listing first: grep -q would stop reading early (SIGPIPE, pipefail).
  local listing
  listing=$(dpkg-deb -c "$dbgsym")
  grep -q "/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug$" <<<"$listing"
}
check "Depends: dbus (the system bus policy and activation need it)" depends_on "$deb" dbus
for lib in libsystemd0 libbpf1 libyaml-cpp0.7; do
  check "Depends: $lib (from dpkg-shlibdeps)" depends_on "$deb" "$lib"
done
check "Recommends: ndctl" test "$(field "$deb" Recommends)" = ndctl
check "a -dbgsym package is built next to it" test -f "$dbgsym"
for prog in /usr/sbin/daxpolicyd /usr/bin/daxpolicyctl; do
  check "the -dbgsym package holds the debug symbols of $prog" has_debug_symbols_of "$prog"
done
check "the -dbgsym package depends on exactly this version" \
  bash -c "dpkg-deb -f '$dbgsym' Depends | grep -qF 'daxpolicy (= $(field "$deb" Version))'"

echo "--- apt install $deb"
apt_get install "$deb"
check "dpkg says installed" test "$(package_status)" = ii
check "daxpolicyd --version names the program" \
  bash -c '/usr/sbin/daxpolicyd --version | grep -q "^daxpolicyd "'
check "daxpolicyctl --version names the program" \
  bash -c '/usr/bin/daxpolicyctl --version | grep -q "^daxpolicyctl "'
check "the shipped policy is valid" /usr/sbin/daxpolicyd --check-config
check "/etc/daxpolicy/policy.yaml is a conffile" \
  bash -c "dpkg-query -W -f='\${Conffiles}' daxpolicy | grep -q ' /etc/daxpolicy/policy.yaml '"
check "/etc/daxpolicy/policy.d/ exists" test -d "$config/policy.d"
check "the unit is installed" test -f /usr/lib/systemd/system/daxpolicyd.service
check "the unit is enabled" test -L "$enabled_link"
check "the D-Bus activation alias exists while enabled" test -L "$alias_link"
check "the system bus policy is where dbus-daemon reads it" \
  test -f /usr/share/dbus-1/system.d/org.daxpolicy.DaxPolicy1.conf
check "the D-Bus activation file is installed" \
  test -f /usr/share/dbus-1/system-services/org.daxpolicy.DaxPolicy1.service
check "the journal message catalog is installed" \
  test -f /usr/lib/systemd/catalog/daxpolicy.catalog
check "bash completion for daxpolicyctl is installed" \
  test -f /usr/share/bash-completion/completions/daxpolicyctl
for page in man1/daxpolicyctl.1 man5/daxpolicy.yaml.5 man8/daxpolicyd.8; do
  check "man page $page is installed" test -f "/usr/share/man/$page.gz"
done
check "every library the programs need is present" \
  bash -c '! ldd /usr/sbin/daxpolicyd /usr/bin/daxpolicyctl | grep -q "not found"'

echo "--- an edited policy survives a reinstall and a remove"
printf '# edited by the administrator\n' >>"$config/policy.yaml"
apt_get install --reinstall "$deb"
check "reinstall keeps the edited policy" grep -q '^# edited by the administrator$' "$config/policy.yaml"

# A damaged journal may hold originals nobody can list: purge must keep it.
mkdir -p "$state/corrupt"
chmod 0700 "$state"
printf 'damaged segment\n' >"$state/corrupt/segment-1"
apt_get remove daxpolicy
check "dpkg says removed, configuration kept" test "$(package_status)" = rc
check "remove deletes the programs" test ! -e /usr/sbin/daxpolicyd
check "remove keeps the edited policy" grep -q '^# edited by the administrator$' "$config/policy.yaml"
check "remove keeps the journal" test -e "$state/corrupt/segment-1"

echo "--- apt purge with a damaged journal"
purge_log=$(mktemp)
apt_get purge daxpolicy 2>&1 | tee "$purge_log"
check "dpkg no longer knows the package" test -z "$(package_status)"
check "purge deletes /etc/daxpolicy" test ! -e "$config"
check "purge disables the unit" test ! -L "$enabled_link"
check "purge removes the D-Bus activation alias" test ! -L "$alias_link"
check "purge keeps a journal with damage" test -e "$state/corrupt/segment-1"
check "purge says why it keeps the journal" grep -q "NOT removing $state" "$purge_log"
check "purge says how to undo the changes" grep -q 'daxpolicyctl restore --all' "$purge_log"
rm -f "$purge_log"
rm -rf "$state"

echo "--- apt install, then purge with an empty journal"
apt_get install "$deb"
mkdir -p "$state"
chmod 0700 "$state"
apt_get purge daxpolicy
check "purge deletes a journal that records nothing" test ! -e "$state"
check "nothing of the package is left" \
  bash -c "test -z \"\$(dpkg-query -W -f='\${db:Status-Abbrev}' daxpolicy 2>/dev/null)\" && test ! -e $config"

checks_done host-install
