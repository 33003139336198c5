#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of the monitoring test (run-vm.sh --systemd, with an NVDIMM): the
# installed package's daemon, on an fsdax namespace, scraped by a real
# Prometheus server (Debian's prometheus) every 2 s:
#   - promtool check rules accepts the alert rules file;
#   - every query of the Grafana dashboard (panels, annotations, the $instance
#     variable) returns data, media panels included (the emulated NVDIMM);
#   - every alert expression evaluates without error and each of its signals
#     (the operands of its and/or, without the threshold) returns data;
#   - DaxpolicyReloadFailed fires when a reload is refused, DaxpolicyDegraded
#     when a scope cannot be used, DaxpolicyDown when the daemon is stopped
#     (up == 0) and when Prometheus has no target for it any more (absent)
#     (Prometheus evaluates a copy of the rules in which only the `for:`
#     durations are cut to 2s).
# Exits STATUS when every check passed.
#
#   monitoring.sh DEB_DIR DASHBOARD.json ALERTS.yaml [STATUS]
source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

deb_dir=${1:?usage: monitoring.sh DEB_DIR DASHBOARD ALERTS [STATUS]}
dashboard=${2:?usage: monitoring.sh DEB_DIR DASHBOARD ALERTS [STATUS]}
alerts=${3:?usage: monitoring.sh DEB_DIR DASHBOARD ALERTS [STATUS]}
status=${4:-0}
vm_require_cmd systemctl apt-get dpkg curl prometheus promtool
vm_require "python3 with its yaml module (python3-yaml)" /usr/bin/python3 -c "import yaml"
arch=$(dpkg --print-architecture)
debs=("$deb_dir"/daxpolicy_*_"$arch".deb)
vm_require "a package built by tools/build-deb.sh in $deb_dir" test -f "${debs[0]}"
((${#debs[@]} == 1)) || vm_die "more than one package in $deb_dir: ${debs[*]}"
timeout 120 systemctl is-system-running --wait >/dev/null 2>&1

svc=daxpolicyd.service
mnt=/srv/pmem
work=$(mktemp -d)
prom=http://127.0.0.1:9090
queries=("/usr/bin/python3" "$here/prom-queries.py")

vm_expect "promtool check rules $(basename "$alerts")" promtool check rules "$alerts"

# --- the installed daemon on the emulated NVDIMM ---------------------------------
vm_pmem_mount xfs "$mnt"
mkdir -p "$mnt/dax" "$mnt/pc"
for i in 1 2 3 4; do head -c 256K /dev/urandom >"$mnt/dax/f$i"; done
head -c 256K /dev/urandom >"$mnt/pc/f1"
vm_apt install -y "$(realpath "${debs[0]}")" >"$work/apt.log" 2>&1 ||
  { sed 's/^/#   | /' "$work/apt.log" | tail -n 30; vm_die "apt install ${debs[0]}"; }
mkdir -p /etc/systemd/system/$svc.d
printf '[Service]\nReadWritePaths=%s\n' "$mnt" >/etc/systemd/system/$svc.d/scopes.conf
# Four files due and a budget of two switches a minute: suppressed transitions
# (the "budget" reason) for their panel. A probe every 5 s: media latency panels.
policy() {  # policy EXTRA_SCOPE
  cat <<YAML
apiVersion: daxpolicy/v1
daemon:
  interval: 1s
  mode: enforce
  metrics: { listen: "127.0.0.1:9847" }
  probe: { interval: 5s }
scopes: [ $mnt${1:+, $1} ]
defaults: { dax: keep, min_dwell: 0s, max_switches_per_minute: 2 }
rules:
  - name: to-dax
    match: { path: "$mnt/dax/*" }
    dax: on
  - name: to-page-cache
    match: { path: "$mnt/pc/*" }
    dax: off
YAML
}
policy >/etc/daxpolicy/policy.yaml
systemctl daemon-reload
vm_expect "daxpolicyd restarts with a policy on $mnt" timeout 120 systemctl restart $svc

# --- Prometheus -------------------------------------------------------------
sed -E 's/^( *for:) .*/\1 2s/' "$alerts" >"$work/alerts-fast.yaml"
vm_expect "the fast copy of the rules differs only in its for: lines" \
  diff <(grep -v '^ *for:' "$alerts") <(grep -v '^ *for:' "$work/alerts-fast.yaml")
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files: [ "$work/alerts-fast.yaml" ]
scrape_configs:
  - job_name: daxpolicy
    static_configs:
      - targets: [ "127.0.0.1:9847" ]
YAML
vm_expect "promtool check config" promtool check config "$work/prometheus.yml"
# A series last scraped more than --query.lookback-delta ago is gone from
# instant queries and rules. A dropped scrape job gets no staleness markers, so
# with the default of 5m absent() would see its target gone only 5 minutes
# later; 10s (five scrape intervals) makes that 10 s here and changes nothing
# else the test queries (range selectors are not affected).
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address=127.0.0.1:9090 --query.lookback-delta=10s --log.level=warn \
  >"$work/prometheus.log" 2>&1 &
prom_pid=$!
vm_expect "prometheus is ready" vm_wait_for 60 curl -sf $prom/-/ready
vm_expect "prometheus scrapes daxpolicyd (up == 1)" \
  vm_wait_for 60 "${queries[@]}" expr $prom 'up{job="daxpolicy"} == 1'

# A good reload (generation changes: the reload annotation), then a refused one
# (the refused-reload annotation); files switch meanwhile.
policy "" | sed 's/max_switches_per_minute: 2/max_switches_per_minute: 3/' >/etc/daxpolicy/policy.yaml
systemctl reload $svc
sleep 4
printf '  - name: broken\n    match: { path: "%s/pc/*" }\n    dax: sideways\n' "$mnt" >>/etc/daxpolicy/policy.yaml
systemctl reload $svc
vm_expect "the broken policy is refused" \
  vm_wait_for 20 "${queries[@]}" expr $prom 'daxpolicy_config_last_reload_successful == 0'
vm_expect "DaxpolicyReloadFailed fires" vm_wait_for 30 "${queries[@]}" firing $prom DaxpolicyReloadFailed

t0=$SECONDS
vm_expect "every query of the dashboard returns data" \
  "${queries[@]}" dashboard $prom "$dashboard" 2 90
vm_log "dashboard queries done in $((SECONDS - t0)) s"
vm_expect "every alert expression evaluates and its signals return data" \
  "${queries[@]}" rules $prom "$alerts" 60

# --- Degraded: a scope that cannot be used ---------------------------------------------
policy /srv/not-mounted >/etc/daxpolicy/policy.yaml
systemctl reload $svc
vm_expect "daxpolicy_degraded{kind=\"scope\"} is 1" \
  vm_wait_for 30 "${queries[@]}" expr $prom 'daxpolicy_degraded{kind="scope"} == 1'
vm_expect "DaxpolicyDegraded fires (kind=scope)" \
  vm_wait_for 30 "${queries[@]}" firing $prom DaxpolicyDegraded kind=scope
policy >/etc/daxpolicy/policy.yaml
systemctl reload $svc

# --- Down: the daemon stopped ---------------------------------------------------
systemctl stop $svc
vm_expect "up == 0 once the daemon is stopped" \
  vm_wait_for 30 "${queries[@]}" expr $prom 'up{job="daxpolicy"} == 0'
vm_expect "DaxpolicyDown fires" vm_wait_for 30 "${queries[@]}" firing $prom DaxpolicyDown

# --- Down: no target any more (absent) ------------------------------------------
# The scrape job is dropped from the configuration (SIGHUP reloads it): the
# target's series go stale and only the absent() branch can say so.
sed -i '/^scrape_configs:/,$d' "$work/prometheus.yml"
echo 'scrape_configs: []' >>"$work/prometheus.yml"
vm_expect "promtool check config (no targets)" promtool check config "$work/prometheus.yml"
kill -HUP "$prom_pid"
vm_expect "absent(up{job=\"daxpolicy\"}) returns data once the target is gone" \
  vm_wait_for 60 "${queries[@]}" expr $prom 'absent(up{job="daxpolicy"})'
vm_expect "DaxpolicyDown fires from its absent branch (job label, no instance)" \
  vm_wait_for 30 "${queries[@]}" firing $prom DaxpolicyDown job=daxpolicy instance=

kill "$prom_pid" 2>/dev/null
wait "$prom_pid" 2>/dev/null
if ((vm_failures > 0)); then
  sed 's/^/#   prometheus: /' "$work/prometheus.log" | tail -n 20
  journalctl --no-pager -q -o cat -u $svc | tail -n 20 | sed 's/^/#   daemon: /'
fi
vm_done "$status"
