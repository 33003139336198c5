#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of VmPackage (run-vm.sh --systemd): the Debian package on a
# machine with systemd as PID 1, the real system bus and an emulated NVDIMM.
# Installs it with apt, checks the unit is enabled, started and ready, puts a
# policy on an fsdax mount to work, watches a file's effective state change,
# reloads a good and a broken policy, reads over the bus as root and as nobody,
# scrapes the metrics on localhost, checks the journal's structured events,
# D-Bus activation of a disabled unit, and purges with flags still changed.
#   package.sh DEB_DIR VM_DAXCTL_PROBE   (DEB_DIR: where tools/build-deb.sh put it)
source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"
deb=$(ls "$1"/daxpolicy_*.deb 2>/dev/null | grep -v dbgsym | head -n 1)
probe=$2
vm_require "the package was built (tools/build-deb.sh)" test -f "$deb"
vm_require_cmd apt-get systemctl busctl journalctl curl setpriv
timeout 120 systemctl is-system-running --wait >/dev/null 2>&1 || true

# --- install --------------------------------------------------------------
out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y "$deb" 2>&1)
vm_expect "apt installs the package" dpkg-query -W -f='${Status}' daxpolicy ||
  printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'
vm_expect_eq "the unit is enabled" enabled "$(systemctl is-enabled daxpolicyd)"
vm_expect_eq "the unit is started and ready (Type=notify)" active \
  "$(systemctl is-active daxpolicyd)"
vm_expect "policy.yaml is a conffile" \
  grep -qx ' /etc/daxpolicy/policy.yaml [0-9a-f]*' <(dpkg-query -W -f='${Conffiles}\n' daxpolicy)
vm_expect "policy.d exists" test -d /etc/daxpolicy/policy.d
vm_expect_eq "the shipped policy observes" observe \
  "$(daxpolicyctl status --json | sed 's/.*"Mode":"\([a-z]*\)".*/\1/')"

# --- a policy on an fsdax mount ------------------------------------------------
mnt=/srv/pmem
mkdir -p $mnt
vm_pmem_mount xfs $mnt >/dev/null || vm_die "cannot mount the emulated NVDIMM"
mkdir -p $mnt/db
head -c 2M /dev/urandom >$mnt/db/a.dat
cat >/etc/daxpolicy/policy.yaml <<'YAML'
apiVersion: daxpolicy/v1
daemon: { interval: 1s, mode: enforce, metrics: { listen: "127.0.0.1:9847" } }
scopes: [ /srv/pmem ]
defaults: { dax: keep, min_dwell: 0s }
rules:
  - name: dat-files-use-dax
    match: { path: "/srv/pmem/db/*.dat" }
    dax: on
YAML
# Without the drop-in the scope is read-only for the service: it says which to add.
systemctl restart daxpolicyd
sleep 3
vm_expect "a scope outside ReadWritePaths= names the drop-in to add" \
  bash -c 'daxpolicyctl status | grep -q "scopes.conf.example"'
mkdir -p /etc/systemd/system/daxpolicyd.service.d
cp /usr/share/doc/daxpolicy/scopes.conf.example /etc/systemd/system/daxpolicyd.service.d/scopes.conf
systemctl daemon-reload
vm_expect "the service restarts with the drop-in" systemctl restart daxpolicyd
for _ in $(seq 1 20); do
  "$probe" get $mnt/db/a.dat | grep -q 'statx_dax=1' && break
  sleep 1
done
vm_expect "the file's effective state became DAX" \
  bash -c "'$probe' get $mnt/db/a.dat | grep -q 'xflag_dax=1 statx_dax=1'"
vm_expect "files shows it in sync" bash -c "daxpolicyctl files | grep -q '$mnt/db/a.dat *in-sync'"
vm_expect "explain names the rule" bash -c "daxpolicyctl explain $mnt/db/a.dat | grep -q dat-files-use-dax"
vm_expect "the switch is in the journal with its MESSAGE_ID and fields" bash -c \
  "journalctl -u daxpolicyd MESSAGE_ID=ded655cdbbf1475685049c21b09843df DAXPOLICY_PATH=$mnt/db/a.dat \
   DAXPOLICY_RULE=dat-files-use-dax DAXPOLICY_TO=dax -o cat | grep -q switched"

# --- bus, metrics ----------------------------------------------------------------
vm_expect "busctl as root reads a property" \
  busctl get-property org.daxpolicy.DaxPolicy1 /org/daxpolicy/DaxPolicy1 \
  org.daxpolicy.DaxPolicy1.Manager Mode
vm_expect "busctl as nobody reads a property" setpriv --reuid=65534 --regid=65534 --clear-groups \
  busctl get-property org.daxpolicy.DaxPolicy1 /org/daxpolicy/DaxPolicy1 \
  org.daxpolicy.DaxPolicy1.Manager ManagedFiles
vm_expect "nobody may not reload (exit 4)" bash -c \
  'setpriv --reuid=65534 --regid=65534 --clear-groups daxpolicyctl reload; [ $? -eq 4 ]'
metrics=$(curl -fsS http://127.0.0.1:9847/metrics)
vm_expect "metrics on localhost count the DAX file" \
  grep -q '^daxpolicy_files_effective{effective="dax"} [1-9]' <<<"$metrics"
vm_expect "the degraded gauge is exported" grep -q '^daxpolicy_degraded{kind="media"}' <<<"$metrics"

# --- reloads ----------------------------------------------------------------------
echo "# a comment" >>/etc/daxpolicy/policy.yaml
systemctl reload daxpolicyd
sleep 2
vm_expect "a good reload is logged as reload-ok" bash -c \
  'journalctl -u daxpolicyd MESSAGE_ID=7c96c7783ad6431a8edafdf54bfa4786 -o cat | grep -q "reloaded the policy"'
cp /etc/daxpolicy/policy.yaml /tmp/good.yaml
printf 'rules:\n  - name: [broken\n' >>/etc/daxpolicy/policy.yaml
systemctl reload daxpolicyd
sleep 2
vm_expect_eq "a broken policy is refused and the daemon keeps running" active \
  "$(systemctl is-active daxpolicyd)"
vm_expect "status says the reload failed" bash -c 'daxpolicyctl status | grep -q "Last reload: *failed"'
vm_expect "the refusal is one journal entry with its MESSAGE_ID" bash -c \
  '[ "$(journalctl -u daxpolicyd MESSAGE_ID=815fca0738cd45faadb7fc75a7ac3738 -o cat | wc -l)" -eq 1 ]'
cp /tmp/good.yaml /etc/daxpolicy/policy.yaml
systemctl reload daxpolicyd

# --- activation only while enabled -------------------------------------------------
systemctl disable --now daxpolicyd 2>/dev/null
vm_expect "a disabled unit is not started by a client (exit 3)" bash -c \
  'daxpolicyctl status; [ $? -eq 3 ]'
vm_expect_eq "and stays inactive" inactive "$(systemctl is-active daxpolicyd)"
systemctl enable daxpolicyd 2>/dev/null
vm_expect "an enabled unit is started by D-Bus activation" daxpolicyctl status
vm_expect_eq "and is active" active "$(systemctl is-active daxpolicyd)"

# --- purge keeps the journal while flags are changed --------------------------------
out=$(DEBIAN_FRONTEND=noninteractive apt-get purge -y daxpolicy 2>&1)
vm_expect "apt purge removes the package" bash -c '! dpkg-query -W -f="\${Status}" daxpolicy 2>/dev/null | grep -q installed'
vm_expect "the journal is kept while it records changed flags" test -d /var/lib/daxpolicy
vm_expect "purge says why" grep -q "NOT removing /var/lib/daxpolicy" <<<"$out"
vm_expect "the unit is gone" bash -c '! systemctl cat daxpolicyd >/dev/null 2>&1'

vm_done
