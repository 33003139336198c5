#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of the package test (run-vm.sh --systemd, with an NVDIMM): the
# Debian package built by tools/build-deb.sh, installed with apt into a system
# with systemd as PID 1 and the real system bus, on an fsdax namespace:
#   - apt install enables and starts the unit; readiness comes through sd_notify
#     (Type=notify: systemctl start returns once READY=1 came, STATUS= is set);
#   - a policy with scopes on the xfs dax=inode mount (and the scopes drop-in):
#     systemctl reload applies it, statx shows the effective DAX state of the
#     files change as the rules say;
#   - a broken policy is refused on reload (FILE:LINE:COL), the daemon keeps
#     running with the previous one;
#   - busctl over the system bus as root and as an unprivileged user (reads
#     allowed, Reload refused), daxpolicyctl as that user, metrics on localhost;
#   - the journal: a blocked switch (an immutable file, logged once), a hold
#     taken and released, degraded and no longer, each with its MESSAGE_ID and
#     fields (the demo's VM test covers applied, pending, reload ok and failed);
#   - D-Bus activation only while the unit is enabled: a call to a disabled,
#     stopped unit fails and starts nothing, to an enabled one starts it;
#   - a usage error (exit 2) is not restarted (RestartPreventExitStatus);
#   - a stalled cycle: the filesystem is frozen (fsfreeze) and a reload makes a
#     switch due, so the worker blocks in FS_IOC_FSSETXATTR; the keep-alive stops
#     and systemd restarts the daemon (Result=watchdog) once the filesystem thaws;
#   - apt remove stops the service and keeps configuration and journal; apt purge
#     keeps /var/lib/daxpolicy while it records changed flags, and says so.
# Exits STATUS when every check passed (the status travels back from the unit).
#
#   package.sh DEB_DIR [STATUS]    DEB_DIR: where daxpolicy_*.deb is (build/deb)
source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"

deb_dir=${1:?usage: package.sh DEB_DIR [STATUS]}
status=${2:-0}
vm_require_cmd systemctl busctl apt-get dpkg curl xfs_io fsfreeze runuser
arch=$(dpkg --print-architecture)
debs=("$deb_dir"/daxpolicy_*_"$arch".deb)
vm_require "a package built by tools/build-deb.sh in $deb_dir" test -f "${debs[0]}"
((${#debs[@]} == 1)) || vm_die "more than one package in $deb_dir: ${debs[*]}"
deb=$(realpath "${debs[0]}")
vm_log "package: $deb"
vm_require "daxpolicy not installed yet" bash -c '! dpkg -s daxpolicy >/dev/null 2>&1'
timeout 120 systemctl is-system-running --wait >/dev/null 2>&1

svc=daxpolicyd.service
mnt=/srv/pmem
bus=(org.daxpolicy.DaxPolicy1 /org/daxpolicy/DaxPolicy1 org.daxpolicy.DaxPolicy1.Manager)
work=$(mktemp -d)
chmod 755 "$work"

# statx STATX_ATTR_DAX (0x200000) of a file: dax or page-cache.
effective() {
  local a
  a=$(xfs_io -c 'statx -r' "$1" 2>/dev/null | sed -n 's/^stat.attributes = //p')
  [[ -n $a ]] || { echo unknown; return; }
  if (((a & 0x200000) != 0)); then echo dax; else echo page-cache; fi
}
is_eff() { [[ $(effective "$2") == "$1" ]]; }
journal_has() {  # journal_has MESSAGE_ID [GREP]
  journalctl --no-pager -q -o cat -u "$svc" "MESSAGE_ID=$1" | grep -q -- "${2:-.}"
}
# journal_entries MESSAGE_ID [FIELD=VALUE...]: how many entries of the unit have
# that MESSAGE_ID and all those fields.
journal_entries() {
  journalctl --no-pager -q -o cat -u "$svc" "MESSAGE_ID=$1" "${@:2}" | wc -l
}
journal_fields() { (($(journal_entries "$@") > 0)); }  # journal_fields MESSAGE_ID FIELD=VALUE...
prop() { busctl --system get-property "${bus[@]}" "$1"; }

# --- the filesystem and the workload, before the package ----------------------
vm_log "t=${SECONDS}s: the filesystem and the workload, before the package"
vm_pmem_mount xfs "$mnt"
mkdir -p "$mnt/dax" "$mnt/pc" "$mnt/late" "$mnt/stall"
for i in 1 2; do
  head -c 1M /dev/urandom >"$mnt/dax/f$i"
  head -c 1M /dev/urandom >"$mnt/pc/f$i"
  xfs_io -c 'chattr +x' "$mnt/pc/f$i"   # DAX now; the policy moves them to the page cache
done
head -c 1M /dev/urandom >"$mnt/late/f1"
head -c 1M /dev/urandom >"$mnt/stall/f1"
# The to-dax rule wants it, the kernel refuses to change an immutable file (EPERM).
head -c 64K /dev/urandom >"$mnt/dax/immutable"
xfs_io -c 'chattr +i' "$mnt/dax/immutable"
vm_expect_eq "before: pc/f1 is DAX (chattr +x)" dax "$(effective "$mnt/pc/f1")"
vm_expect_eq "before: dax/f1 is in the page cache" page-cache "$(effective "$mnt/dax/f1")"

# --- install ----------------------------------------------------------------
vm_log "t=${SECONDS}s: install"
t0=$SECONDS
vm_apt install -y "$deb" >"$work/apt-install.log" 2>&1
vm_expect_eq "apt install ./daxpolicy_*.deb succeeds offline" 0 "$?" ||
  sed 's/^/#   | /' "$work/apt-install.log" | tail -n 30
vm_log "apt install took $((SECONDS - t0)) s"
vm_expect_eq "the unit is enabled by the package" enabled "$(systemctl is-enabled $svc 2>&1)"
vm_expect_eq "the unit is started by the package" active "$(systemctl is-active $svc)"
vm_expect "the D-Bus activation alias exists while enabled" \
  test -L /etc/systemd/system/dbus-org.daxpolicy.DaxPolicy1.service
vm_expect "/etc/daxpolicy/policy.yaml is a conffile" \
  bash -c 'dpkg-query -W -f="\${Conffiles}" daxpolicy | grep -q "/etc/daxpolicy/policy.yaml"'

# The scopes drop-in (the example the package ships) and a short cycle bound
# for the watchdog part: WatchdogSec=20s, --cycle-timeout 15.
mkdir -p /etc/systemd/system/$svc.d
sed 's|^ReadWritePaths=.*|ReadWritePaths='"$mnt"'|' /usr/share/doc/daxpolicy/scopes.conf.example \
  >/etc/systemd/system/$svc.d/scopes.conf
vm_expect "the scopes drop-in names $mnt" grep -qx "ReadWritePaths=$mnt" /etc/systemd/system/$svc.d/scopes.conf
cat >/etc/systemd/system/$svc.d/watchdog.conf <<'UNIT'
[Service]
WatchdogSec=20s
ExecStart=
ExecStart=/usr/sbin/daxpolicyd --cycle-timeout 15
UNIT
cat >/etc/daxpolicy/policy.yaml <<YAML
apiVersion: daxpolicy/v1
daemon:
  interval: 1s
  mode: enforce
  metrics: { listen: "127.0.0.1:9847" }
scopes: [ $mnt ]
defaults: { dax: keep, min_dwell: 0s, max_switches_per_minute: 1000 }
rules:
  - name: to-dax
    match: { path: "$mnt/dax/*" }
    dax: on
  - name: to-page-cache
    match: { path: "$mnt/pc/*" }
    dax: off
YAML
systemctl daemon-reload

# --- start: readiness through sd_notify -------------------------------------------
vm_log "t=${SECONDS}s: start: readiness through sd_notify"
t0=$SECONDS
vm_expect "systemctl restart returns (READY=1 received)" timeout 120 systemctl restart $svc
vm_log "restart to ready took $((SECONDS - t0)) s"
vm_expect_eq "ActiveState=active SubState=running" "active running" \
  "$(systemctl show -P ActiveState $svc) $(systemctl show -P SubState $svc)"
vm_expect "StatusText comes from sd_notify STATUS=" \
  bash -c "systemctl show -P StatusText $svc | grep -q managed"
vm_expect_eq "the watchdog is armed (WatchdogUSec)" 20s "$(systemctl show -P WatchdogUSec $svc)"
pid1=$(systemctl show -P MainPID $svc)
vm_expect "pc/f1 moves to the page cache (statx)" vm_wait_for 30 is_eff page-cache "$mnt/pc/f1"
vm_expect "pc/f2 moves to the page cache (statx)" vm_wait_for 5 is_eff page-cache "$mnt/pc/f2"
vm_expect "dax/f1 moves to DAX (statx)" vm_wait_for 10 is_eff dax "$mnt/dax/f1"
vm_expect "dax/f2 moves to DAX (statx)" vm_wait_for 5 is_eff dax "$mnt/dax/f2"
if ((vm_failures > 0)); then
  { daxpolicyctl status; daxpolicyctl files; daxpolicyctl explain "$mnt/dax/f1"
    journalctl --no-pager -q -o cat -u $svc | tail -n 30; } 2>&1 | sed 's/^/#   diag: /'
fi
vm_expect "late/f1 is left alone (no rule)" is_eff page-cache "$mnt/late/f1"
vm_expect "the switches are in the journal with MESSAGE_ID (switch applied)" \
  journal_has ded655cdbbf1475685049c21b09843df "$mnt/dax/f1"

# --- reload: a good policy, then a broken one ---------------------------------------
vm_log "t=${SECONDS}s: reload: a good policy, then a broken one"
gen=$(prop PolicyGeneration)
cp /etc/daxpolicy/policy.yaml "$work/good.yaml"
sed -i 's|^  - name: to-page-cache|  - name: late-to-dax\n    match: { path: "'"$mnt"'/late/*" }\n    dax: on\n  - name: to-page-cache|' \
  "$work/good.yaml"
cp /etc/daxpolicy/policy.yaml "$work/first.yaml"
cp "$work/good.yaml" /etc/daxpolicy/policy.yaml
vm_expect "systemctl reload with a good policy" timeout 60 systemctl reload $svc
vm_expect "the reload is logged (reload ok MESSAGE_ID)" vm_wait_for 10 journal_has 7c96c7783ad6431a8edafdf54bfa4786
vm_expect "PolicyGeneration went up" bash -c "[[ '$(prop PolicyGeneration)' != '$gen' ]]"
vm_expect "late/f1 moves to DAX under the new rule (statx)" vm_wait_for 15 is_eff dax "$mnt/late/f1"

cp /etc/daxpolicy/policy.yaml "$work/good.yaml"
cat >>/etc/daxpolicy/policy.yaml <<'YAML'
  - name: broken
    match: { path: "/srv/pmem/pc/*" }
    dax: sideways
YAML
vm_expect "systemctl reload with a broken policy returns" timeout 60 systemctl reload $svc
vm_expect "the refusal is logged (reload failed MESSAGE_ID)" \
  vm_wait_for 10 journal_has 815fca0738cd45faadb7fc75a7ac3738 "policy.yaml:[0-9]*:[0-9]*"
vm_expect "LastReloadResult names FILE:LINE:COL" \
  bash -c "busctl --system get-property ${bus[*]} LastReloadResult | grep -q 'policy.yaml:[0-9]*:[0-9]*'"
vm_expect_eq "the daemon keeps running after the refusal" "active $pid1" \
  "$(systemctl is-active $svc) $(systemctl show -P MainPID $svc)"
vm_expect "the previous policy stays in force: dax/f1 still DAX" is_eff dax "$mnt/dax/f1"
journalctl --no-pager -q -o cat -u "$svc" MESSAGE_ID=815fca0738cd45faadb7fc75a7ac3738 | tail -n 1 | sed 's/^/#   | /'
cp "$work/good.yaml" /etc/daxpolicy/policy.yaml

# --- the bus: root and an unprivileged user -----------------------------------------
vm_log "t=${SECONDS}s: the bus: root and an unprivileged user"
vm_expect_eq "busctl as root: Mode" 's "enforce"' "$(prop Mode)"
vm_expect "busctl as root: GetFileState of dax/f1 says Effective dax" \
  bash -c "busctl --system call ${bus[*]} GetFileState s $mnt/dax/f1 | grep -q '\"Effective\" s \"dax\"'"
user=nobody
vm_expect_eq "busctl as $user: Mode" 's "enforce"' \
  "$(runuser -u $user -- busctl --system get-property "${bus[@]}" Mode 2>&1)"
vm_expect "busctl as $user: GetFileState of a reachable file" \
  bash -c "runuser -u $user -- busctl --system call ${bus[*]} GetFileState s $mnt/dax/f1 | grep -q '\"State\" s \"in-sync\"'"
out=$(runuser -u $user -- busctl --system call "${bus[@]}" Reload 2>&1)
vm_expect "busctl as $user: Reload is refused (needs root)" grep -q 'needs root' <<<"$out"
vm_expect "daxpolicyctl status as $user over the system bus" \
  bash -c "runuser -u $user -- daxpolicyctl status | grep -qi enforce"
vm_expect "daxpolicyctl files as root lists dax/f1" bash -c "daxpolicyctl files | grep -q '$mnt/dax/f1'"

# --- metrics on localhost ---------------------------------------------------
vm_log "t=${SECONDS}s: metrics on localhost"
curl -sf http://127.0.0.1:9847/metrics >"$work/metrics" 2>&1
vm_expect "metrics answer on 127.0.0.1:9847" test -s "$work/metrics"
vm_expect "metrics: files effectively DAX are counted" \
  grep -Eq '^daxpolicy_files_effective\{.*effective="dax".*\} [1-9]' "$work/metrics"
vm_expect "metrics: the refused reload shows" grep -Eq '^daxpolicy_config_last_reload_successful(\{[^}]*\})? 0' "$work/metrics"

# --- the journal: every event type, with its fields ------------------------------
vm_log "t=${SECONDS}s: the journal: blocked, hold taken and released, degraded"
blocked_id=2813f74d82664baa9d2c96795f9f834d
vm_expect "the immutable file's switch is blocked (MESSAGE_ID, path, rule, to, reason)" \
  journal_fields $blocked_id "DAXPOLICY_PATH=$mnt/dax/immutable" DAXPOLICY_RULE=to-dax \
  DAXPOLICY_TO=dax DAXPOLICY_EVENT=switch-blocked
vm_expect "the reason names the immutable flag and EPERM" \
  journal_has $blocked_id "immutable.*(EPERM)"
vm_expect "daxpolicyctl files shows it blocked" \
  bash -c "daxpolicyctl files --state blocked | grep -q '$mnt/dax/immutable'"
# Tried again every cycle (interval 1s, min_dwell 0s), logged once.
cycles() {
  curl -sf http://127.0.0.1:9847/metrics | awk '$1 == "daxpolicy_cycle_duration_seconds_count" { print $2 }'
}
cycles0=$(cycles)
vm_expect "three more cycles run (from ${cycles0:-none})" \
  vm_wait_for 20 bash -c "$(declare -f cycles); [[ -n '$cycles0' ]] && (( \$(cycles) >= ${cycles0:-0} + 3 ))"
vm_expect_eq "a blocked file is logged once, not at every cycle" 1 \
  "$(journal_entries $blocked_id "DAXPOLICY_PATH=$mnt/dax/immutable")"
# Read-only: xfs_io opens read-write by default, which an immutable file refuses.
xfs_io -r -c 'chattr -i' "$mnt/dax/immutable"
vm_expect "no longer immutable, it switches to DAX at the next try (statx)" \
  vm_wait_for 15 is_eff dax "$mnt/dax/immutable"

hold_taken=d8c12a7174564cae93971f07707ae42a
hold_released=dae17cab5d2f47048cf999a9cec9630a
# The hold's command waits until the hold has moved late/f1 to the page cache
# (its rule wants DAX), and exits 1 if that does not happen within 20 s.
vm_expect "while daxpolicyctl hold runs its command, late/f1 is in the page cache (statx)" \
  daxpolicyctl hold --mode page-cache --reason "journal check" "$mnt/late/f1" -- \
  timeout 20 bash -c "$(declare -f effective is_eff); until is_eff page-cache '$mnt/late/f1'; do sleep 0.2; done"
vm_expect "the hold is logged (MESSAGE_ID, path, mode, reason, caller uid)" \
  vm_wait_for 10 journal_fields $hold_taken "DAXPOLICY_PATH=$mnt/late/f1" DAXPOLICY_TO=page-cache \
  "DAXPOLICY_REASON=journal check" DAXPOLICY_CALLER_UID=0
cookie=$(journalctl --no-pager -q -u "$svc" -o verbose "MESSAGE_ID=$hold_taken" |
  sed -n 's/^ *DAXPOLICY_HOLD=//p' | tail -n 1)
vm_expect "its release is logged with the same hold cookie ($cookie)" \
  vm_wait_for 10 journal_fields $hold_released "DAXPOLICY_HOLD=${cookie:-none}" DAXPOLICY_CALLER_UID=0
vm_expect "late/f1 is back in DAX under its rule once the hold is gone (statx)" \
  vm_wait_for 15 is_eff dax "$mnt/late/f1"

degraded_id=c976cf3382174458a60f3e34c341fb3a
sed "s|^scopes: \[ $mnt \]|scopes: [ $mnt, /srv/not-mounted ]|" "$work/good.yaml" >/etc/daxpolicy/policy.yaml
vm_expect "the policy with a missing scope differs" bash -c "! cmp -s /etc/daxpolicy/policy.yaml $work/good.yaml"
systemctl reload $svc
vm_expect "degraded is logged (MESSAGE_ID, the reason naming the scope)" \
  vm_wait_for 15 bash -c "journalctl --no-pager -q -u $svc -o verbose MESSAGE_ID=$degraded_id |
    grep -q '^ *DAXPOLICY_DEGRADED=.*/srv/not-mounted'"
cp "$work/good.yaml" /etc/daxpolicy/policy.yaml
systemctl reload $svc
vm_expect "the end of it is logged too" vm_wait_for 15 journal_has $degraded_id "no longer degraded"
vm_expect "Degraded no longer names the missing scope" \
  vm_wait_for 10 bash -c "! busctl --system get-property ${bus[*]} Degraded | grep -q not-mounted"

# --- the watchdog: a cycle stalled on a frozen filesystem -----------------------------
vm_log "t=${SECONDS}s: the watchdog: a cycle stalled on a frozen filesystem"
# The filesystem is frozen, then a reload makes a switch due (stall/f1, a file
# the daemon knows, gets a rule): FS_IOC_FSSETXATTR waits in the kernel until
# the thaw, the cycle runs past --cycle-timeout, WATCHDOG=1 stops and systemd
# kills the daemon after WatchdogSec; it dies once the filesystem thaws.
sed 's|^  - name: to-page-cache|  - name: stall-to-dax\n    match: { path: "'"$mnt"'/stall/*" }\n    dax: on\n  - name: to-page-cache|' \
  "$work/good.yaml" >"$work/stall.yaml"
sync
fsfreeze -f "$mnt"
cp "$work/stall.yaml" /etc/daxpolicy/policy.yaml
systemctl reload $svc
t0=$SECONDS
vm_expect "STATUS= says the cycle is stuck" \
  vm_wait_for 60 bash -c "systemctl show -P StatusText $svc | grep -q 'cycle stuck'"
vm_expect "systemd reports the watchdog timeout" \
  vm_wait_for 90 bash -c "journalctl --no-pager -q -u $svc | grep -q 'Watchdog timeout'"
vm_log "watchdog fired $((SECONDS - t0)) s after the reload on the frozen filesystem"
fsfreeze -u "$mnt"
vm_expect "the daemon is restarted (NRestarts=1)" \
  vm_wait_for 60 bash -c "[[ \$(systemctl show -P NRestarts $svc) == 1 ]]"
vm_expect_eq "the first run ended with Result=watchdog" 1 \
  "$(journalctl --no-pager -q -u $svc | grep -c "Failed with result 'watchdog'")"
vm_expect "the restarted daemon is ready again" vm_wait_for 60 \
  bash -c "[[ \$(systemctl is-active $svc) == active && \$(systemctl show -P MainPID $svc) != $pid1 ]]"
vm_expect "stall/f1 reaches DAX after the restart (statx)" vm_wait_for 30 is_eff dax "$mnt/stall/f1"

# --- D-Bus activation only while the unit is enabled -------------------------------
vm_log "t=${SECONDS}s: D-Bus activation only while the unit is enabled"
alias_unit=/etc/systemd/system/dbus-org.daxpolicy.DaxPolicy1.service
systemctl disable --now $svc 2>/dev/null
vm_expect "disable removes the activation alias" test ! -e $alias_unit
vm_expect "a bus call to the disabled, stopped unit fails" \
  bash -c "! busctl --system get-property ${bus[*]} Mode"
vm_expect "daxpolicyctl status fails too" bash -c "! daxpolicyctl status"
sleep 2
vm_expect_eq "and the daemon stays stopped" inactive "$(systemctl is-active $svc)"
systemctl enable $svc 2>/dev/null
vm_expect_eq "enabled, still stopped" "enabled inactive" \
  "$(systemctl is-enabled $svc) $(systemctl is-active $svc)"
vm_expect "a bus call to the enabled unit starts the daemon (D-Bus activation)" \
  busctl --system --timeout=120 get-property "${bus[@]}" Mode
vm_expect "it becomes ready" vm_wait_for 60 bash -c "[[ \$(systemctl is-active $svc) == active ]]"

# --- a usage error is not restarted ---------------------------------------------
vm_log "t=${SECONDS}s: a usage error is not restarted (RestartPreventExitStatus)"
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/daxpolicyd --no-such-option\n' \
  >/etc/systemd/system/$svc.d/zz-bad-option.conf
systemctl daemon-reload
restarts0=$(journalctl --no-pager -q -u $svc | grep -c "Scheduled restart job" || true)
systemctl restart $svc 2>/dev/null
sleep 8   # longer than RestartSec=5s
vm_expect_eq "the daemon exits 2 on a bad option and the unit stays failed" "failed 2" \
  "$(systemctl is-active $svc) $(systemctl show -P ExecMainStatus $svc)"
vm_expect_eq "systemd schedules no restart" "$restarts0" \
  "$(journalctl --no-pager -q -u $svc | grep -c "Scheduled restart job" || true)"
rm /etc/systemd/system/$svc.d/zz-bad-option.conf
systemctl daemon-reload
systemctl reset-failed $svc
vm_expect "it starts again without the bad option" timeout 120 systemctl start $svc
vm_expect_eq "running before apt remove" active "$(systemctl is-active $svc)"

# --- apt remove, apt purge -------------------------------------------------
vm_log "t=${SECONDS}s: apt remove, apt purge"
vm_apt remove -y daxpolicy >"$work/apt-remove.log" 2>&1
vm_expect_eq "apt remove succeeds" 0 "$?" || sed 's/^/#   | /' "$work/apt-remove.log" | tail -n 20
vm_expect "the service is stopped" bash -c "! systemctl is-active -q $svc"
vm_expect "the daemon is gone" test ! -e /usr/sbin/daxpolicyd
vm_expect "the policy stays after remove" test -f /etc/daxpolicy/policy.yaml
vm_expect "the journal stays after remove" test -d /var/lib/daxpolicy
vm_expect "flags stay as the daemon left them: dax/f1 DAX" is_eff dax "$mnt/dax/f1"
vm_apt purge -y daxpolicy >"$work/apt-purge.log" 2>&1
vm_expect_eq "apt purge succeeds" 0 "$?"
sed -n 's/^daxpolicy: /#   | daxpolicy: /p' "$work/apt-purge.log"
vm_expect "purge says it keeps the journal" grep -q "NOT removing /var/lib/daxpolicy" "$work/apt-purge.log"
vm_expect "purge says how many files are recorded" grep -q "still records" "$work/apt-purge.log"
vm_expect "the journal is kept after purge" test -d /var/lib/daxpolicy
# prerm counted the recorded files with daxpolicyctl restore --list: the seven
# files the daemon switched (dax/f1, f2, immutable; pc/f1, f2; late/f1; stall/f1).
vm_expect_eq "the journal records the 7 changed files" 7 "$(cat /var/lib/daxpolicy/recorded-files.count 2>&1)"
vm_expect "the configuration is gone after purge" test ! -e /etc/daxpolicy/policy.yaml
vm_expect_eq "the package is gone" "" "$(dpkg-query -W -f='${Status}' daxpolicy 2>/dev/null | grep installed)"

vm_done "$status"
