// SPDX-License-Identifier: Apache-2.0
// Valid policies load into exactly the Policy they describe.

#include "policy/loader.h"

#include <gtest/gtest.h>

namespace daxpolicy::policy {
namespace {

constexpr const char* kContractExample = R"(apiVersion: daxpolicy/v1
daemon:
  interval: 10s              # sampling + evaluation period
  mode: enforce              # enforce | observe
  metrics: { listen: "127.0.0.1:9847" }
  holds: honor               # honor | ignore  (application holds over D-Bus)
scopes: [ /srv/pmem ]        # nothing outside these is ever touched
protect: [ "/srv/pmem/keep/**" ]
defaults:
  dax: keep                  # keep | on | off
  min_dwell: 10m             # no file flips again sooner than this
  max_switches_per_minute: 120
rules:                       # first matching rule wins; explain shows the others
  - name: reread-heavy-on-slow-media
    match: { path: "/srv/pmem/db/**/*.sst", size: ">= 1MiB" }
    when: "media.latency_ratio >= 2 && file.cache_resident_ratio >= 0.8"
    for: 5m                  # the condition must hold this long
    dax: off
  - name: large-streams
    match: { path: "/srv/pmem/logs/**" }
    when: "file.size >= 1GiB"
    dax: on
)";

TEST(AValidPolicy, LoadsTheContractExampleExactly) {
  LoadResult r = LoadPolicy({"policy.yaml", kContractExample});
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  const Policy& p = *r.policy;
  EXPECT_EQ(p.daemon.interval_ns, 10 * kNanosPerSecond);
  EXPECT_EQ(p.daemon.mode, Mode::kEnforce);
  EXPECT_EQ(p.daemon.metrics_listen, "127.0.0.1:9847");
  EXPECT_EQ(p.daemon.holds, HoldsPolicy::kHonor);
  EXPECT_EQ(p.scopes, std::vector<std::string>{"/srv/pmem"});
  ASSERT_EQ(p.protect.size(), 1u);
  EXPECT_EQ(p.protect[0].glob.pattern(), "/srv/pmem/keep/**");
  EXPECT_EQ(p.protect[0].where.ToString(), "policy.yaml:8:12");
  EXPECT_EQ(p.defaults.dax, DaxSetting::kKeep);
  EXPECT_EQ(p.defaults.min_dwell_ns, 600 * kNanosPerSecond);
  EXPECT_EQ(p.defaults.max_switches_per_minute, 120u);
  ASSERT_EQ(p.rules.size(), 2u);
  const Rule& a = p.rules[0];
  EXPECT_EQ(a.name, "reread-heavy-on-slow-media");
  ASSERT_EQ(a.paths.size(), 1u);
  EXPECT_EQ(a.paths[0].pattern(), "/srv/pmem/db/**/*.sst");
  ASSERT_TRUE(a.size.has_value());
  EXPECT_EQ(a.size->op, CmpOp::kGe);
  EXPECT_EQ(a.size->bytes, 1024u * 1024u);
  ASSERT_TRUE(a.when.has_value());
  EXPECT_EQ(a.when->text(), "media.latency_ratio >= 2 && file.cache_resident_ratio >= 0.8");
  EXPECT_EQ(a.for_ns, 300 * kNanosPerSecond);
  EXPECT_EQ(a.dax, DaxSetting::kOff);
  EXPECT_EQ(a.kind, MatchKind::kFile);
  EXPECT_EQ(a.where.ToString(), "policy.yaml:14:5");
  const Rule& b = p.rules[1];
  EXPECT_EQ(b.name, "large-streams");
  EXPECT_EQ(b.dax, DaxSetting::kOn);
  EXPECT_EQ(b.for_ns, 0);
  EXPECT_FALSE(b.size.has_value());
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(p.sources, std::vector<std::string>{"policy.yaml"});
}

TEST(AValidPolicy, UsesDocumentedDefaultsForOmittedSections) {
  LoadResult r = LoadPolicy({"p.yaml", "apiVersion: daxpolicy/v1\nscopes: [/mnt/pmem0/]\n"});
  ASSERT_TRUE(r.errors.empty());
  const Policy& p = *r.policy;
  EXPECT_EQ(p.scopes, std::vector<std::string>{"/mnt/pmem0"});  // trailing '/' dropped
  EXPECT_EQ(p.daemon.interval_ns, 10 * kNanosPerSecond);
  EXPECT_EQ(p.daemon.mode, Mode::kEnforce);
  EXPECT_EQ(p.daemon.metrics_listen, "127.0.0.1:9847");
  EXPECT_EQ(p.daemon.probe_dir, ".daxpolicy-probe");
  EXPECT_EQ(p.daemon.record_max_bytes, 0u);  // no recording at start
  EXPECT_EQ(p.defaults.dax, DaxSetting::kKeep);
  EXPECT_TRUE(p.rules.empty());
  EXPECT_TRUE(p.protect.empty());
}

TEST(AValidPolicy, RecordsFromStartWithTheDefaultSizeWhenRecordIsEmpty) {
  LoadResult r = LoadPolicy(
      {"p.yaml", "apiVersion: daxpolicy/v1\ndaemon: { record: {} }\nscopes: [/mnt/pmem0]\n"});
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  EXPECT_EQ(r.policy->daemon.record_max_bytes, uint64_t{256} << 20);
}

TEST(AValidPolicy, AcceptsPathListsTypesAndEveryOption) {
  LoadResult r = LoadPolicy({"p.yaml", R"(apiVersion: daxpolicy/v1
daemon:
  interval: 1m30s
  mode: observe
  holds: ignore
  rescan: 1h
  metrics: { listen: "off" }
  probe: { interval: 30m, dir: .probe }
  record: { max_size: 1GiB }
scopes: [/a, /b]
defaults: { dax: on, min_dwell: 0s, max_switches_per_minute: 5 }
rules:
  - name: dirs
    match: { path: [/a/logs, "/b/logs"], type: directory }
    dax: on
  - name: anything
    when: "media.health != 'ok' || system.mem_pressure > 20%"
    dax: keep
)"});
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  const Policy& p = *r.policy;
  EXPECT_EQ(p.daemon.interval_ns, 90 * kNanosPerSecond);
  EXPECT_EQ(p.daemon.mode, Mode::kObserve);
  EXPECT_EQ(p.daemon.holds, HoldsPolicy::kIgnore);
  EXPECT_EQ(p.daemon.rescan_ns, 3600 * kNanosPerSecond);
  EXPECT_EQ(p.daemon.metrics_listen, "off");
  EXPECT_EQ(p.daemon.probe_interval_ns, 1800 * kNanosPerSecond);
  EXPECT_EQ(p.daemon.probe_dir, ".probe");
  EXPECT_EQ(p.daemon.record_max_bytes, uint64_t{1} << 30);
  EXPECT_EQ(p.defaults.dax, DaxSetting::kOn);
  EXPECT_EQ(p.defaults.min_dwell_ns, 0);
  EXPECT_EQ(p.defaults.max_switches_per_minute, 5u);
  ASSERT_EQ(p.rules.size(), 2u);
  EXPECT_EQ(p.rules[0].kind, MatchKind::kDirectory);
  EXPECT_EQ(p.rules[0].paths.size(), 2u);
  EXPECT_TRUE(p.rules[1].paths.empty());
  EXPECT_EQ(p.rules[1].dax, DaxSetting::kKeep);
}

TEST(DropIns, AppendRulesInTheGivenOrderAfterTheMainFile) {
  PolicySource main{"policy.yaml",
                    "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: first\n    "
                    "dax: on\n"};
  PolicySource a{"policy.d/10-a.yaml",
                 "apiVersion: daxpolicy/v1\nrules:\n  - name: second\n    dax: off\n"};
  PolicySource b{"policy.d/20-b.yaml",
                 "apiVersion: daxpolicy/v1\nprotect: [/srv/pmem/x/**]\nscopes: [/srv/cxl]\n"
                 "rules:\n  - name: third\n    match: { path: /srv/cxl/** }\n    dax: keep\n"};
  LoadResult r = LoadPolicy(main, {a, b});
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].ToString();
  ASSERT_EQ(r.policy->rules.size(), 3u);
  EXPECT_EQ(r.policy->rules[0].name, "first");
  EXPECT_EQ(r.policy->rules[1].name, "second");
  EXPECT_EQ(r.policy->rules[2].name, "third");
  EXPECT_EQ(r.policy->rules[1].where.file, "policy.d/10-a.yaml");
  EXPECT_EQ(r.policy->scopes, (std::vector<std::string>{"/srv/pmem", "/srv/cxl"}));
  EXPECT_EQ(r.policy->protect.size(), 1u);
  EXPECT_EQ(r.policy->sources.size(), 3u);
}

TEST(DropIns, RejectDuplicateRuleNamesAcrossFilesNamingTheFirst) {
  PolicySource main{"policy.yaml",
                    "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: dup\n    "
                    "dax: on\n"};
  PolicySource a{"policy.d/a.yaml",
                 "apiVersion: daxpolicy/v1\nrules:\n  - name: dup\n    dax: off\n"};
  LoadResult r = LoadPolicy(main, {a});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            "policy.d/a.yaml:3:11: duplicate rule name 'dup' (first defined at policy.yaml:4:11)");
}

TEST(DropIns, MayNotSetDaemonOrDefaultsAndReportErrorsInFileOrder) {
  PolicySource main{"policy.yaml", "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nbogus: 1\n"};
  PolicySource a{"policy.d/a.yaml", "apiVersion: daxpolicy/v1\ndaemon: {mode: observe}\n"};
  LoadResult r = LoadPolicy(main, {a});
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].file, "policy.yaml");
  EXPECT_EQ(r.errors[1].ToString(),
            "policy.d/a.yaml:2:1: unknown key 'daemon' at the top level of a drop-in (daemon and "
            "defaults belong in the main policy.yaml) (expected one of: apiVersion, scopes, "
            "protect, rules)");
}

TEST(DropIns, CanBeCheckedAloneWithoutScopeContainment) {
  EXPECT_TRUE(CheckDropin({"d.yaml",
                           "apiVersion: daxpolicy/v1\nrules:\n  - name: x\n    match: "
                           "{ path: /anywhere/** }\n    dax: on\n"})
                  .empty());
  auto errs = CheckDropin({"d.yaml", "rules: []\n"});
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].ToString(),
            "d.yaml:1:1: missing required key 'apiVersion' (use apiVersion: daxpolicy/v1)");
}

TEST(AllErrors, AreReportedAtOnceNotJustTheFirst) {
  LoadResult r = LoadPolicy({"p.yaml", R"(apiVersion: daxpolicy/v1
scopes: [/srv/pmem]
rules:
  - name: one
    when: "file.size > 5m"
    dax: on
  - name: two
    when: "file.bogus > 1"
    dax: sideways
)"});
  EXPECT_EQ(r.errors.size(), 3u);
}

// The loader indexes scopes (sorted so that a directory precedes what lies
// below it) and protect patterns (by literal prefix) so that huge policies load
// and look up in near-linear time. The indexed answers must be exactly those of
// trying every entry in order.
TEST(AHugePolicy, AnswersLookupsExactlyLikeAScanOfEveryEntry) {
  // Siblings that sort between a directory and its children in plain byte order.
  const std::vector<std::string> names = {"b", "b-c", "b.c", "bc", "b c", "b0", "a", "ba", "c"};
  std::string text = "apiVersion: daxpolicy/v1\nscopes:\n";
  for (int d = 0; d < 20; ++d) {
    for (const std::string& n : names) text += "  - \"/m" + std::to_string(d) + "/" + n + "\"\n";
  }
  text += "protect:\n";
  const std::vector<std::string> patterns = {"/m1/b/**",    "/m1/b/x/*.log",  "/m1/b-c/**/keep",
                                             "/*/b/y/**",   "/m2/b.c/[a-c]*", "/**/z",
                                             "/m3/bc/x/**", "/m3/bc/x/y",     "/m4/b c/**/*.sst",
                                             "/m5/b0",      "/m1/b/x/**",     "/m6/a/**/q/**"};
  for (const std::string& p : patterns) text += "  - \"" + p + "\"\n";
  LoadResult r = LoadPolicy({"p.yaml", text});
  ASSERT_TRUE(r.policy.has_value()) << r.errors[0].ToString();
  const Policy& p = *r.policy;
  ASSERT_EQ(p.scopes.size(), 180u);
  const std::vector<std::string> paths = {"/m1/b",
                                          "/m1/b/x/a.log",
                                          "/m1/b-c/d/keep",
                                          "/m1/b-c",
                                          "/m1/bc/z",
                                          "/m2/b.c/apple",
                                          "/m2/b.c/dog",
                                          "/m3/bc/x/y",
                                          "/m3/bc/x",
                                          "/m4/b c/1/2/t.sst",
                                          "/m5/b0",
                                          "/m5/b0/x",
                                          "/m6/a/r/q/s",
                                          "/m6/a/q",
                                          "/m7/b/y/z",
                                          "/m7/b/y",
                                          "/m8/bd",
                                          "/m9",
                                          "/m10/b-c/x/b",
                                          "/m11/b c",
                                          "/m19/c/z",
                                          "/m20/b",
                                          "/",
                                          "/m1/b/x/y/a.log"};
  for (const std::string& path : paths) {
    const std::string* scope = nullptr;
    for (const std::string& s : p.scopes) {
      if (PathIsWithin(path, s)) scope = &s;
    }
    EXPECT_EQ(p.ScopeOf(path), scope) << path;
    const ProtectEntry* first = nullptr;
    for (const ProtectEntry& e : p.protect) {
      if (!first && e.glob.Matches(path)) first = &e;
    }
    EXPECT_EQ(p.ProtectedBy(path), first) << path;
  }
  EXPECT_TRUE(p.HasScopeWithin("/m3"));
  EXPECT_TRUE(p.HasScopeWithin("/m3/b c"));
  EXPECT_FALSE(p.HasScopeWithin("/m3/b c/x"));
  EXPECT_FALSE(p.HasScopeWithin("/m3/bd"));
  EXPECT_FALSE(p.HasScopeWithin("/n"));
}

TEST(AHugePolicy, FindsNestedScopesInAnyOrderAmongSiblings) {
  LoadResult r = LoadPolicy({"p.yaml", R"(apiVersion: daxpolicy/v1
scopes:
  - /a/b-c
  - /a/b/c
  - /a/b.c
  - /a/b
  - /a/bc
  - /a
  - /a/b-c
)"});
  std::vector<std::string> got;
  for (const Diagnostic& d : r.errors) got.push_back(d.ToString());
  EXPECT_EQ(got, (std::vector<std::string>{
                     "p.yaml:6:5: scope '/a/b' overlaps scope '/a/b/c'; scopes must not be nested",
                     "p.yaml:8:5: scope '/a' overlaps scope '/a/b/c'; scopes must not be nested",
                     "p.yaml:9:5: duplicate scope '/a/b-c'"}));
}

}  // namespace
}  // namespace daxpolicy::policy
