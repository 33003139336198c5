// SPDX-License-Identifier: Apache-2.0
// Every malformed policy gets every error, each with its exact position and text.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "policy/loader.h"

namespace daxpolicy::policy {
namespace {

struct BadPolicy {
  const char* name;
  const char* yaml;
  std::vector<std::string> errors;  // "p.yaml:LINE:COL: message", in order
};

// clang-format off
const BadPolicy kBadPolicies[] = {
    {"empty file",
     "",
     {"p.yaml:1:1: the policy file is empty"}},
    {"yaml syntax error",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules: [\n",
     {"p.yaml:4:1: YAML syntax error: end of sequence flow not found"}},
    {"tab indentation",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults:\n\tdax: on\n",
     {"p.yaml:4:5: YAML syntax error: illegal map value"}},
    {"root is a list",
     "- a\n- b\n",
     {"p.yaml:1:1: 'policy' must be a map, not a list"}},
    {"root is a scalar",
     "hello\n",
     {"p.yaml:1:1: 'policy' must be a map"}},
    {"two documents",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\n---\napiVersion: daxpolicy/v1\n",
     {"p.yaml:3:1: only one YAML document per policy file is allowed"}},
    {"missing apiVersion",
     "scopes: [/srv/pmem]\n",
     {"p.yaml:1:1: missing required key 'apiVersion' (use apiVersion: daxpolicy/v1)"}},
    {"unsupported apiVersion",
     "apiVersion: daxpolicy/v9\nscopes: [/srv/pmem]\n",
     {"p.yaml:1:13: unsupported apiVersion 'daxpolicy/v9' (this version supports daxpolicy/v1)"}},
    {"apiVersion is a map",
     "apiVersion: {a: 1}\nscopes: [/srv/pmem]\n",
     {"p.yaml:1:13: key 'apiVersion' must be a string, not a map at the top level"}},
    {"missing scopes",
     "apiVersion: daxpolicy/v1\n",
     {"p.yaml:1:1: missing required key 'scopes' (the directories the daemon may manage)"}},
    {"unknown top-level key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrulez: []\n",
     {"p.yaml:3:1: unknown key 'rulez' at the top level (expected one of: apiVersion, daemon, scopes, protect, defaults, rules, cost)"}},
    {"duplicate top-level key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nscopes: [/srv/other]\n",
     {"p.yaml:3:1: duplicate key 'scopes' at the top level"}},
    {"scopes not a list",
     "apiVersion: daxpolicy/v1\nscopes: /srv/pmem\n",
     {"p.yaml:2:9: key 'scopes' must be a list of strings at the top level"}},
    {"relative scope",
     "apiVersion: daxpolicy/v1\nscopes: [srv/pmem]\n",
     {"p.yaml:2:10: scope 'srv/pmem' is not an absolute path"}},
    {"root scope",
     "apiVersion: daxpolicy/v1\nscopes: [/]\n",
     {"p.yaml:2:10: scope '/' would put the whole system under the daemon; name the pmem/CXL mounts"}},
    {"scope with dotdot",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/../etc]\n",
     {"p.yaml:2:10: scope '/srv/../etc' contains '..'"}},
    {"scope with wildcard",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/*]\n",
     {"p.yaml:2:10: scope '/srv/*' contains a wildcard; scopes are plain directories"}},
    {"scopes in kernel file systems",
     "apiVersion: daxpolicy/v1\nscopes:\n  - /proc\n  - /sys/fs/cgroup\n  - /dev/shm/\n  - /proc2\n  - /devices\n",
     {"p.yaml:3:5: scope '/proc' is under /proc, a kernel file system the daemon never manages",
      "p.yaml:4:5: scope '/sys/fs/cgroup' is under /sys, a kernel file system the daemon never manages",
      "p.yaml:5:5: scope '/dev/shm' is under /dev, a kernel file system the daemon never manages"}},
    {"nested scopes",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem, /srv/pmem/db]\n",
     {"p.yaml:2:21: scope '/srv/pmem/db' overlaps scope '/srv/pmem'; scopes must not be nested"}},
    {"duplicate scope",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem, /srv/pmem/]\n",
     {"p.yaml:2:21: duplicate scope '/srv/pmem'"}},
    {"scope entry is a map",
     "apiVersion: daxpolicy/v1\nscopes: [{a: b}]\n",
     {"p.yaml:2:10: every entry of 'scopes' must be a string, not a map at the top level"}},
    {"daemon unknown key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  intervall: 10s\n",
     {"p.yaml:4:3: unknown key 'intervall' in 'daemon' (expected one of: interval, mode, metrics, holds, rescan, probe, record)"}},
    {"daemon bad duration",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  interval: ten\n",
     {"p.yaml:4:13: bad duration for 'interval' in 'daemon': 'ten' is not a duration (examples: 500ms, 10s, 5m, 1h30m)"}},
    {"daemon duration without unit",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  interval: 10\n",
     {"p.yaml:4:13: bad duration for 'interval' in 'daemon': duration '10' needs a unit (ns, us, ms, s, m or h)"}},
    {"daemon interval too short",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  interval: 1ms\n",
     {"p.yaml:4:13: key 'interval' must be between 100ms and 24h in 'daemon'"}},
    {"daemon bad mode",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  mode: enforcing\n",
     {"p.yaml:4:9: key 'mode' must be enforce or observe (got 'enforcing')"}},
    {"daemon bad holds",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  holds: obey\n",
     {"p.yaml:4:10: key 'holds' must be honor or ignore (got 'obey')"}},
    {"daemon metrics ipv6",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  metrics: { listen: \"[::1]:9847\" }\n",
     {"p.yaml:4:22: bad metrics listen address '[::1]:9847': IPv6 is not supported by this build's HTTP server; use an IPv4 address such as 127.0.0.1:9847"}},
    {"daemon metrics bad port",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  metrics: { listen: \"127.0.0.1:99999\" }\n",
     {"p.yaml:4:22: bad metrics listen address '127.0.0.1:99999': the port must be a number 0-65535 (HOST:PORT, e.g. 127.0.0.1:9847, or off)"}},
    // What the exporter refuses, the loader refuses (one validator for the setting).
    {"daemon metrics two colons",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  metrics: { listen: \"127.0.0.1:9847:1\" }\n",
     {"p.yaml:4:22: bad metrics listen address '127.0.0.1:9847:1': IPv6 is not supported by this build's HTTP server; use an IPv4 address such as 127.0.0.1:9847"}},
    {"daemon metrics bad host",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  metrics: { listen: \"a b:1\" }\n",
     {"p.yaml:4:22: bad metrics listen address 'a b:1': the host must be an IPv4 address or a host name"}},
    {"daemon metrics unknown key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  metrics: { port: 9847 }\n",
     {"p.yaml:4:14: unknown key 'port' in 'daemon.metrics' (expected one of: listen)"}},
    {"daemon probe dir absolute",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  probe: { dir: /tmp/x }\n",
     {"p.yaml:4:17: key 'dir' in 'daemon.probe' must be a plain directory name, created at the root of each DAX-capable mount (got '/tmp/x')"}},
    {"daemon record size too small",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  record: { max_size: 1KiB }\n",
     {"p.yaml:4:23: key 'max_size' in 'daemon.record' must be between 64KiB and 2GiB (got '1KiB')"}},
    {"daemon record bad size",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  record: { max_size: lots }\n",
     {"p.yaml:4:23: bad size for 'max_size' in 'daemon.record': 'lots' is not a number"}},
    {"daemon record unknown key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon:\n  record: { path: /tmp/x }\n",
     {"p.yaml:4:13: unknown key 'path' in 'daemon.record' (expected one of: max_size)"}},
    {"daemon is a list",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndaemon: [a]\n",
     {"p.yaml:3:9: 'daemon' must be a map, not a list"}},
    {"defaults bad dax",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults:\n  dax: yes\n",
     {"p.yaml:4:8: key 'dax' must be on, off, keep or auto (got 'yes') in 'defaults'"}},
    {"defaults min_dwell bad unit",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults:\n  min_dwell: 10 minutes\n",
     {"p.yaml:4:14: bad duration for 'min_dwell' in 'defaults': unknown duration unit in '10 minutes' (use ns, us, ms, s, m or h)"}},
    {"defaults budget octal-looking",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults:\n  max_switches_per_minute: 0x10\n",
     {"p.yaml:4:28: key 'max_switches_per_minute' must be a whole number in 'defaults' (got '0x10')"}},
    {"defaults budget zero",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults:\n  max_switches_per_minute: 0\n",
     {"p.yaml:4:28: key 'max_switches_per_minute' must be between 1 and 1000000 in 'defaults' (got 0)"}},
    {"defaults dax empty",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults:\n  dax:\n",
     {"p.yaml:4:3: key 'dax' has no value in 'defaults'"}},
    {"cost unknown media",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ncost:\n  mounts:\n    - { path: /srv/pmem, media: optane }\n",
     {"p.yaml:5:33: unknown media 'optane' in cost.mounts #1 (expected one of: optane-dcpmm, cxl, dram)"}},
    {"cost latency out of range",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ncost:\n  mounts:\n    - path: /srv/pmem\n      read_latency: 20ms\n",
     {"p.yaml:6:21: key 'read_latency' in cost.mounts #1 must be a latency between 1ns and 10ms (e.g. 305ns) (got '20ms')"}},
    {"cost bandwidth without a rate unit",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ncost:\n  mounts:\n    - path: /srv/pmem\n      read_bandwidth: 2.7\n",
     {"p.yaml:6:23: key 'read_bandwidth' in cost.mounts #1 needs a bandwidth between 1MiB/s and 900GiB/s (e.g. 2.7GiB/s) (got '2.7')"}},
    {"cost margin out of range",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ncost:\n  margin: 150%\n",
     {"p.yaml:4:11: key 'margin' in 'cost' must be a ratio between 0 and 0.95 (or 0% to 95%) (got '150%')"}},
    {"cost mount without path",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ncost:\n  mounts:\n    - media: cxl\n",
     {"p.yaml:5:7: missing required key 'path' in cost.mounts #1 (the mount point or a directory)"}},
    {"cost unknown key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ncost:\n  mounts:\n    - path: /srv/pmem\n      latency: 300ns\n",
     {"p.yaml:6:7: unknown key 'latency' in cost.mounts #1 (expected one of: path, media, read_latency, dram_latency, read_bandwidth, dram_bandwidth, write_bandwidth)"}},
    {"protect relative",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nprotect: [keep/**]\n",
     {"p.yaml:3:11: bad path pattern in 'protect': path pattern 'keep/**' is not absolute"}},
    {"protect outside scopes",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nprotect: [\"/home/**\"]\n",
     {"p.yaml:3:11: protect pattern '/home/**' is outside every scope (/srv/pmem)"}},
    {"protect bad glob",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nprotect: [\"/srv/pmem/[ab\"]\n",
     {"p.yaml:3:22: bad path pattern in 'protect': unclosed '[' in path pattern '/srv/pmem/[ab'"}},
    {"protect double star inside component",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nprotect: [\"/srv/pmem/a**b\"]\n",
     {"p.yaml:3:23: bad path pattern in 'protect': '**' must be a whole path component in '/srv/pmem/a**b'"}},
    {"rules not a list",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules: {name: a}\n",
     {"p.yaml:3:8: key 'rules' must be a list of rules, not a map"}},
    {"rule missing name",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - dax: on\n",
     {"p.yaml:4:5: missing required key 'name' in rule #1"}},
    {"rule empty name",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: \"\"\n    dax: on\n",
     {"p.yaml:4:11: rule name must not be empty in rule #1"}},
    {"rule bad name chars",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: \"my rule\"\n    dax: on\n",
     {"p.yaml:4:11: rule name 'my rule' must be 1-64 characters of letters, digits, '-', '_', '.' or ':' and start with a letter or digit"}},
    {"rule missing dax",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n",
     {"p.yaml:4:5: missing required key 'dax' in rule 'a' (on, off, keep or auto)"}},
    {"rule bad dax",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    dax: maybe\n",
     {"p.yaml:5:10: key 'dax' must be on, off, keep or auto (got 'maybe') in rule 'a'"}},
    {"rule unknown key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: cold-files\n    treshold: 3\n    dax: on\n",
     {"p.yaml:5:5: unknown key 'treshold' in rule 'cold-files' (expected one of: name, match, when, for, dax)"}},
    {"rule duplicate key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    dax: on\n    dax: off\n",
     {"p.yaml:6:5: duplicate key 'dax' in rule 'a'"}},
    {"duplicate rule names",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    dax: on\n  - name: a\n    dax: off\n",
     {"p.yaml:6:11: duplicate rule name 'a' (first defined at p.yaml:4:11)"}},
    {"match unknown key",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { paths: \"/srv/pmem/**\" }\n    dax: on\n",
     {"p.yaml:5:14: unknown key 'paths' in rule 'a' (expected one of: path, size, type)"}},
    {"match path relative",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { path: \"db/**\" }\n    dax: on\n",
     {"p.yaml:5:21: bad path pattern in rule 'a': path pattern 'db/**' is not absolute"}},
    {"match path outside scopes",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { path: \"/var/lib/**\" }\n    dax: on\n",
     {"p.yaml:5:20: path pattern '/var/lib/**' in rule 'a' is outside every scope (/srv/pmem)"}},
    {"match path empty component",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { path: \"/srv/pmem//x\" }\n    dax: on\n",
     {"p.yaml:5:31: bad path pattern in rule 'a': empty path component ('//') in '/srv/pmem//x'"}},
    {"match path empty list",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { path: [] }\n    dax: on\n",
     {"p.yaml:5:20: key 'path' must list at least one pattern in rule 'a'"}},
    {"match size without operator",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { size: 1MiB }\n    dax: on\n",
     {"p.yaml:5:20: bad size condition '1MiB' in rule 'a': start with a comparison, e.g. '>= 1MiB'"}},
    {"match size bad unit",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { size: \">= 1MB\" }\n    dax: on\n",
     {"p.yaml:5:20: bad size condition '>= 1MB' in rule 'a': unknown unit 'MB' in '1MB' (sizes: B KiB MiB GiB TiB; durations: ns us ms s m h; rates: B/s KiB/s MiB/s GiB/s; percent: %)"}},
    {"match size is a duration",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { size: \">= 5m\" }\n    dax: on\n",
     {"p.yaml:5:20: bad size condition '>= 5m' in rule 'a': '5m' is not a size (use B, KiB, MiB, GiB or TiB)"}},
    {"match type bad",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    match: { type: symlink }\n    dax: on\n",
     {"p.yaml:5:20: key 'type' must be file, directory or any (got 'symlink') in rule 'a'"}},
    {"for bad duration",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    for: soon\n    dax: on\n",
     {"p.yaml:5:10: bad duration for 'for' in rule 'a': 'soon' is not a duration (examples: 500ms, 10s, 5m, 1h30m)"}},
    {"when unknown variable",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.sise > 1GiB\"\n    dax: on\n",
     {"p.yaml:5:12: unknown variable 'file.sise' (did you mean 'file.size'?) (in the 'when' of rule 'a')"}},
    {"when unknown namespace",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"disk.size > 1GiB\"\n    dax: on\n",
     {"p.yaml:5:12: unknown variable 'disk.size' (did you mean 'file.size'?) (in the 'when' of rule 'a')"}},
    {"when size vs duration",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.size > 5m\"\n    dax: on\n",
     {"p.yaml:5:24: 'file.size' is a size, but '5m' is not (in the 'when' of rule 'a')"}},
    {"when duration without unit",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.age > 300\"\n    dax: on\n",
     {"p.yaml:5:23: '300' needs a duration unit to compare with 'file.age' (e.g. 10m) (in the 'when' of rule 'a')"}},
    {"when ratio above one",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.cache_resident_ratio >= 80\"\n    dax: on\n",
     {"p.yaml:5:41: 'file.cache_resident_ratio' is a ratio between 0 and 1, but '80' is larger (write 0.8 or 80%) (in the 'when' of rule 'a')"}},
    {"when percent above 100",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"system.mem_pressure > 120%\"\n    dax: on\n",
     {"p.yaml:5:34: 'system.mem_pressure' is a percentage, '120%' is above 100 (in the 'when' of rule 'a')"}},
    {"when string on number",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.size == 'big'\"\n    dax: on\n",
     {"p.yaml:5:25: 'file.size' is a size and cannot be compared with the string 'big' (in the 'when' of rule 'a')"}},
    {"when bad health",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"media.health == 'bad'\"\n    dax: on\n",
     {"p.yaml:5:28: unknown health state 'bad' (expected ok, warning, critical or unknown) (in the 'when' of rule 'a')"}},
    {"when health ordering",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"media.health > 'ok'\"\n    dax: on\n",
     {"p.yaml:5:27: 'media.health' can only be compared with == or != (in the 'when' of rule 'a')"}},
    {"when two constants",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"1 < 2\"\n    dax: on\n",
     {"p.yaml:5:12: comparison of two constants ('1' and '2'): one side must be a variable (in the 'when' of rule 'a')"}},
    {"when single ampersand",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.size > 1GiB & file.age > 5m\"\n    dax: on\n",
     {"p.yaml:5:29: unexpected '&' (did you mean '&&'?) (in the 'when' of rule 'a')"}},
    {"when single equals",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.holders = 0\"\n    dax: on\n",
     {"p.yaml:5:25: unexpected '=' (did you mean '=='?) (in the 'when' of rule 'a')"}},
    {"when unbalanced paren",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"(file.size > 1GiB\"\n    dax: on\n",
     {"p.yaml:5:29: expected ')' to close '(' at offset 1, found 'end of expression' (in the 'when' of rule 'a')"}},
    {"when trailing operator",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.size > 1GiB &&\"\n    dax: on\n",
     {"p.yaml:5:31: expected a variable, number or string, found 'end of expression' (in the 'when' of rule 'a')"}},
    {"when missing comparison",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.size\"\n    dax: on\n",
     {"p.yaml:5:21: expected a comparison (<, <=, >, >=, ==, !=) after 'file.size', found 'end of expression' (in the 'when' of rule 'a')"}},
    {"when chained comparison",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"1 < file.holders < 3\"\n    dax: on\n",
     {"p.yaml:5:29: comparisons cannot be chained; combine them with '&&' (in the 'when' of rule 'a')"}},
    {"when unterminated string",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"media.health == 'ok\"\n    dax: on\n",
     {"p.yaml:5:28: unterminated string (in the 'when' of rule 'a')"}},
    {"when bad unit",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.size > 1GB\"\n    dax: on\n",
     {"p.yaml:5:24: unknown unit 'GB' in '1GB' (sizes: B KiB MiB GiB TiB; durations: ns us ms s m h; rates: B/s KiB/s MiB/s GiB/s; percent: %) (in the 'when' of rule 'a')"}},
    {"when empty",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"\"\n    dax: on\n",
     {"p.yaml:5:12: empty expression (in the 'when' of rule 'a')"}},
    {"when mixed kinds vars",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.size > file.age\"\n    dax: on\n",
     {"p.yaml:5:24: cannot compare 'file.size' (a size) with 'file.age' (a duration) (in the 'when' of rule 'a')"}},
    {"when is a list",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: [a]\n    dax: on\n",
     {"p.yaml:5:11: key 'when' must be a string, not a list in rule 'a'"}},
    {"when plain scalar error column",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: file.size > 1GiB && file.agee > 5m\n    dax: on\n",
     {"p.yaml:5:31: unknown variable 'file.agee' (did you mean 'file.age'?) (in the 'when' of rule 'a')"}},
    {"when unexpected character",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    when: \"file.size > 1GiB ; file.age > 1s\"\n    dax: on\n",
     {"p.yaml:5:29: unexpected character ';' (in the 'when' of rule 'a')"}},
    {"rule dax empty",
     "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    dax:\n",
     {"p.yaml:5:5: key 'dax' has no value in rule 'a'"}},
    {"scopes empty value",
     "apiVersion: daxpolicy/v1\nscopes:\n",
     {"p.yaml:2:1: key 'scopes' has no value at the top level"}},
    {"nul byte", "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules: [\x01]\n",
     {"p.yaml:3:9: control character 0x01 is not allowed in a policy file"}},
    {"lone comma (yaml-cpp LoadAll loop)", ",\n",
     {"p.yaml:1:1: expected a map of policy settings at the top level, found no value"}},
    {"content after document end", "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\n...\nrules: []\n",
     {"p.yaml:4:1: only one YAML document per policy file is allowed"}},
};
// clang-format on

class ABadPolicy : public ::testing::TestWithParam<BadPolicy> {};

TEST_P(ABadPolicy, IsRejectedWithEveryErrorAndItsPosition) {
  const BadPolicy& c = GetParam();
  LoadResult r = LoadPolicy(PolicySource{"p.yaml", c.yaml});
  std::vector<std::string> got;
  for (const Diagnostic& d : r.errors) got.push_back(d.ToString());
  EXPECT_EQ(got, c.errors);
  EXPECT_FALSE(r.policy.has_value());
}

std::string CaseName(const ::testing::TestParamInfo<BadPolicy>& info) {
  std::string out;
  for (const char* p = info.param.name; *p; ++p)
    out += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
  return out;
}

INSTANTIATE_TEST_SUITE_P(Table, ABadPolicy, ::testing::ValuesIn(kBadPolicies), CaseName);

// The loader does no I/O of its own: a scope through a symlink is refused only
// by the daemon's inspector (config_files_test), never by default.
TEST(AScopeThroughASymlink, IsNotLookedAtWithoutAnInspector) {
  std::vector<std::string> seen;
  const std::string yaml = "apiVersion: daxpolicy/v1\nscopes: [/srv/a, /srv/b]\n";
  EXPECT_TRUE(LoadPolicy(PolicySource{"p.yaml", yaml}).errors.empty());
  LoadResult r = LoadPolicy(PolicySource{"p.yaml", yaml}, {}, [&](const std::string& scope) {
    seen.push_back(scope);
    return scope == "/srv/b" ? std::optional<std::string>("is odd") : std::nullopt;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"/srv/a", "/srv/b"}));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(), "p.yaml:2:18: scope '/srv/b' is odd");
}

// 250,000 OR'd terms passed `check` and then crashed the daemon when evaluated.
TEST(AHugeCondition, IsRefusedAtLoadWithItsPosition) {
  std::string when;
  for (int i = 0; i < 250'000; ++i) when += i ? " || file.size > 1" : "file.size > 1";
  std::string yaml = "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: huge\n" +
                     std::string("    when: \"") + when + "\"\n    dax: on\n";
  LoadResult r = LoadPolicy(PolicySource{"p.yaml", yaml});
  ASSERT_EQ(r.errors.size(), 1u);
  // Column: 11 for the opening quote, +1, + the offset of the 1001st comparison.
  EXPECT_EQ(r.errors[0].ToString(),
            "p.yaml:5:" + std::to_string(12 + 1000 * 17) +
                ": expression has more than 1000 comparisons; split it into several rules (in "
                "the 'when' of rule 'huge')");
  EXPECT_FALSE(r.policy.has_value());
}

}  // namespace
}  // namespace daxpolicy::policy
