// SPDX-License-Identifier: Apache-2.0
#include "policy/loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "policy/listen.h"

namespace daxpolicy::policy {

std::string_view DaxSettingName(DaxSetting s) {
  switch (s) {
    case DaxSetting::kKeep:
      return "keep";
    case DaxSetting::kOn:
      return "on";
    case DaxSetting::kOff:
      return "off";
    case DaxSetting::kAuto:
      return "auto";
  }
  return "?";
}

std::string_view ModeName(Mode m) { return m == Mode::kEnforce ? "enforce" : "observe"; }

std::optional<Mode> ModeByName(std::string_view name) {
  if (name == "enforce") return Mode::kEnforce;
  if (name == "observe") return Mode::kObserve;
  return std::nullopt;
}

std::string SourceLocation::ToString() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::ToString() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

bool PathOrder(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  const size_t i = static_cast<size_t>(
      std::mismatch(a.begin(), a.begin() + static_cast<ptrdiff_t>(n), b.begin()).first - a.begin());
  if (i == n) return a.size() < b.size();
  if (a[i] == '/') return true;
  if (b[i] == '/') return false;
  return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]);
}

void Policy::BuildIndex() {
  scope_order_.resize(scopes.size());
  for (uint32_t i = 0; i < scope_order_.size(); ++i) scope_order_[i] = i;
  std::sort(scope_order_.begin(), scope_order_.end(),
            [&](uint32_t a, uint32_t b) { return PathOrder(scopes[a], scopes[b]); });
  protect_by_prefix_.clear();
  for (uint32_t i = 0; i < protect.size(); ++i) {
    protect_by_prefix_[protect[i].glob.literal_prefix()].push_back(i);
  }
  indexed_protect_ = protect.size();
}

// Scopes never nest, so in PathOrder the scope containing `path` (if any) is the
// last scope not after it: anything between that scope and `path` would lie
// inside the scope.
const std::string* Policy::ScopeOf(std::string_view path) const {
  if (scope_order_.size() != scopes.size() || scopes.size() <= 4) {
    for (const std::string& s : scopes) {
      if (PathIsWithin(path, s)) return &s;
    }
    return nullptr;
  }
  auto it =
      std::upper_bound(scope_order_.begin(), scope_order_.end(), path,
                       [&](std::string_view p, uint32_t s) { return PathOrder(p, scopes[s]); });
  if (it == scope_order_.begin()) return nullptr;
  const std::string& s = scopes[*std::prev(it)];
  return PathIsWithin(path, s) ? &s : nullptr;
}

// Everything below `dir` directly follows it in PathOrder.
bool Policy::HasScopeWithin(std::string_view dir) const {
  if (scope_order_.size() != scopes.size() || scopes.size() <= 4) {
    for (const std::string& s : scopes) {
      if (PathIsWithin(s, dir)) return true;
    }
    return false;
  }
  auto it =
      std::lower_bound(scope_order_.begin(), scope_order_.end(), dir,
                       [&](uint32_t s, std::string_view d) { return PathOrder(scopes[s], d); });
  return it != scope_order_.end() && PathIsWithin(scopes[*it], dir);
}

const ProtectEntry* Policy::ProtectedBy(std::string_view path) const {
  if (indexed_protect_ != protect.size() || protect.size() <= 8) {
    for (const ProtectEntry& p : protect) {
      if (p.glob.Matches(path)) return &p;
    }
    return nullptr;
  }
  // A pattern can only match below its literal prefix: try the buckets of "/"
  // and of every leading part of the path, and keep the first pattern in policy order.
  size_t best = protect.size();
  auto try_bucket = [&](std::string_view prefix) {
    auto b = protect_by_prefix_.find(prefix);
    if (b == protect_by_prefix_.end()) return;
    for (uint32_t i : b->second) {
      if (i >= best) break;  // buckets are in policy order
      if (protect[i].glob.Matches(path)) best = i;
    }
  };
  try_bucket("/");
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') try_bucket(path.substr(0, pos));
  }
  return best < protect.size() ? &protect[best] : nullptr;
}

const CostMount* Policy::CostMountOf(std::string_view path) const {
  const CostMount* best = nullptr;
  for (const CostMount& m : cost_mounts) {
    if (PathIsWithin(path, m.path) && (!best || m.path.size() > best->path.size())) best = &m;
  }
  return best;
}

bool Policy::UsesVariable(Var var) const {
  for (const Rule& r : rules) {
    if (r.when && r.when->Uses(var)) return true;
  }
  return false;
}

namespace {

uint64_t HashName(std::string_view name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string JoinKeys(std::initializer_list<std::string_view> keys) {
  std::string out;
  for (std::string_view k : keys) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

// One map's entries in document order, after duplicate and unknown-key checks.
struct MapView {
  YAML::Node node;
  std::vector<std::pair<std::string, YAML::Node>> entries;

  YAML::Node Get(std::string_view key) const {
    for (const auto& [k, v] : entries) {
      if (k == key) return v;
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }
  bool Has(std::string_view key) const { return Get(key).IsDefined(); }
};

class Reader {
 public:
  Reader(std::string file, std::vector<Diagnostic>* errors)
      : file_(std::move(file)), errors_(errors) {}

  SourceLocation Loc(const YAML::Node& n) const {
    SourceLocation loc{file_, 0, 0};
    if (!n.IsDefined()) return loc;  // Mark() throws on an invalid node
    YAML::Mark m = n.Mark();
    if (m.line >= 0) {
      loc.line = m.line + 1;
      loc.column = m.column + 1;
    }
    return loc;
  }

  void Error(const YAML::Node& n, std::string message) { ErrorAt(Loc(n), std::move(message)); }
  void ErrorAt(const SourceLocation& loc, std::string message) {
    errors_->push_back(Diagnostic{file_, loc.line, loc.column, std::move(message)});
  }

  const std::string& file() const { return file_; }

  // context: "in rule 'x'", "in 'daemon'", "at the top level".
  std::optional<MapView> Map(const YAML::Node& n, std::string_view what,
                             std::initializer_list<std::string_view> allowed,
                             const std::string& context) {
    if (n.IsNull()) return std::nullopt;  // reported by Map() at the key
    if (!n.IsMap()) {
      Error(n, Quote(what) + " must be a map" + TypeHint(n));
      return std::nullopt;
    }
    MapView view;
    view.node = n;
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      // Copies: it->first lives in a proxy that dies with the full expression.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) {
        Error(key, "keys must be plain strings " + context);
        continue;
      }
      std::string k = key.Scalar();
      if (!seen.insert(k).second) {
        Error(key, "duplicate key " + Quote(k) + " " + context);
        continue;
      }
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        Error(key, "unknown key " + Quote(k) + " " + context +
                       " (expected one of: " + JoinKeys(allowed) + ")");
        continue;
      }
      if (value.IsNull()) {
        // Reported here, at the key: an empty value has no useful position of its own.
        Error(key, "key " + Quote(k) + " has no value " + context);
      }
      view.entries.emplace_back(k, value);
    }
    return view;
  }

  // A scalar string value; errors name the key.
  std::optional<std::string> String(const YAML::Node& n, std::string_view key,
                                    const std::string& context) {
    if (n.IsNull()) return std::nullopt;  // reported by Map() at the key
    if (!n.IsScalar()) {
      Error(n, "key " + Quote(key) + " must be a string" + TypeHint(n) + " " + context);
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<int64_t> Duration(const YAML::Node& n, std::string_view key,
                                  const std::string& context) {
    auto s = String(n, key, context);
    if (!s) return std::nullopt;
    std::string error;
    auto d = ParseDuration(*s, &error);
    if (!d) Error(n, "bad duration for " + Quote(key) + " " + context + ": " + error);
    return d;
  }

  // A sequence of strings, or one string.
  std::vector<std::pair<std::string, YAML::Node>> StringList(const YAML::Node& n,
                                                             std::string_view key,
                                                             const std::string& context,
                                                             bool allow_single) {
    std::vector<std::pair<std::string, YAML::Node>> out;
    if (n.IsNull()) return out;  // reported by Map() at the key
    if (allow_single && n.IsScalar()) {
      out.emplace_back(n.Scalar(), n);
      return out;
    }
    if (!n.IsSequence()) {
      Error(n, "key " + Quote(key) + " must be a list of strings" + TypeHint(n) + " " + context);
      return out;
    }
    for (const YAML::Node& item : n) {
      if (item.IsNull() || !item.IsScalar()) {
        Error(item, "every entry of " + Quote(key) + " must be a string" + TypeHint(item) + " " +
                        context);
        continue;
      }
      out.emplace_back(item.Scalar(), item);
    }
    return out;
  }

  static std::string TypeHint(const YAML::Node& n) {
    if (n.IsMap()) return ", not a map";
    if (n.IsSequence()) return ", not a list";
    if (n.IsNull()) return ", not empty";
    return "";
  }

  // Position of character `offset` inside a single-line scalar (for `when` errors).
  SourceLocation InsideScalar(const YAML::Node& n, size_t offset) const {
    SourceLocation loc = Loc(n);
    if (loc.line <= 0) return loc;
    bool quoted = n.Tag() == "!";
    bool single_line = n.Scalar().find('\n') == std::string::npos;
    if (single_line) loc.column += static_cast<int>(offset) + (quoted ? 1 : 0);
    return loc;
  }

 private:
  std::string file_;
  std::vector<Diagnostic>* errors_;
};

// Checks an absolute directory path; returns its normalized form (no trailing '/').
std::optional<std::string> NormalizeScope(Reader& r, const std::string& s, const YAML::Node& n) {
  if (s.empty() || s[0] != '/') {
    r.Error(n, "scope " + Quote(s) + " is not an absolute path");
    return std::nullopt;
  }
  std::string out;
  size_t pos = 1;
  while (pos <= s.size()) {
    size_t end = s.find('/', pos);
    if (end == std::string::npos) end = s.size();
    std::string_view comp(s.data() + pos, end - pos);
    if (comp.empty() && end != s.size()) {
      r.Error(n, "scope " + Quote(s) + " has an empty path component ('//')");
      return std::nullopt;
    }
    if (comp == "." || comp == "..") {
      r.Error(n, "scope " + Quote(s) + " contains " + Quote(comp));
      return std::nullopt;
    }
    if (comp.find_first_of("*?[") != std::string_view::npos) {
      r.Error(n, "scope " + Quote(s) + " contains a wildcard; scopes are plain directories");
      return std::nullopt;
    }
    if (!comp.empty()) out += "/" + std::string(comp);
    pos = end + 1;
  }
  if (out.empty()) {
    r.Error(n, "scope '/' would put the whole system under the daemon; name the pmem/CXL mounts");
    return std::nullopt;
  }
  for (const char* root : kForbiddenScopeRoots) {
    if (PathIsWithin(out, root)) {
      r.Error(n, "scope " + Quote(out) + " is under " + root +
                     ", a kernel file system the daemon never manages");
      return std::nullopt;
    }
  }
  return out;
}

std::optional<Glob> CompileGlob(Reader& r, const std::string& text, const YAML::Node& n,
                                const std::string& what) {
  std::string error;
  size_t offset = 0;
  auto g = Glob::Compile(text, &error, &offset);
  if (!g) r.ErrorAt(r.InsideScalar(n, offset), "bad path pattern " + what + ": " + error);
  return g;
}

std::optional<DaxSetting> ParseDax(Reader& r, const YAML::Node& n, const std::string& context) {
  auto s = r.String(n, "dax", context);
  if (!s) return std::nullopt;
  if (*s == "on") return DaxSetting::kOn;
  if (*s == "off") return DaxSetting::kOff;
  if (*s == "keep") return DaxSetting::kKeep;
  if (*s == "auto") return DaxSetting::kAuto;
  r.Error(n, "key 'dax' must be on, off, keep or auto (got " + Quote(*s) + ") " + context);
  return std::nullopt;
}

std::optional<uint32_t> ParseCount(Reader& r, const YAML::Node& n, std::string_view key,
                                   const std::string& context, uint32_t min, uint32_t max) {
  auto s = r.String(n, key, context);
  if (!s) return std::nullopt;
  // Digits only: yaml-cpp would read "010" as octal and accept "0x10".
  if (s->empty() || s->size() > 9 || s->find_first_not_of("0123456789") != std::string::npos) {
    r.Error(
        n, "key " + Quote(key) + " must be a whole number " + context + " (got " + Quote(*s) + ")");
    return std::nullopt;
  }
  uint32_t v = static_cast<uint32_t>(std::stoul(*s));
  if (v < min || v > max) {
    r.Error(n, "key " + Quote(key) + " must be between " + std::to_string(min) + " and " +
                   std::to_string(max) + " " + context + " (got " + *s + ")");
    return std::nullopt;
  }
  return v;
}

// The 1-based line of a document marker ("---" or "...") that follows content,
// i.e. the start of a second document; 0 when there is none.
int SecondDocumentLine(std::string_view text) {
  bool content = false, ended = false;
  int line = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    auto is_marker = [&](std::string_view m) {
      return l.substr(0, 3) == m && (l.size() == 3 || l[3] == ' ' || l[3] == '\t');
    };
    std::string_view rest = l;
    if (is_marker("---")) {
      if (content) return line;  // a new document after the first one's content
      rest = l.substr(3);        // "--- value" puts content on the marker line
    } else if (is_marker("...")) {
      ended = content;
      continue;
    }
    size_t first = rest.find_first_not_of(" \t");
    if (first == std::string_view::npos || rest[first] == '#' || rest[first] == '%') continue;
    if (ended) return line;  // content after an explicit document end
    content = true;
  }
  return 0;
}

class PolicyBuilder {
 public:
  PolicyBuilder(std::vector<Diagnostic>* errors, const ScopeInspector& inspector)
      : errors_(errors), inspector_(inspector) {}

  Policy& policy() { return policy_; }

  // Parses one file; main=false for drop-ins.
  void Add(const PolicySource& src, bool main) {
    Reader r(src.name, errors_);
    policy_.sources.push_back(src.name);
    // YAML allows only printable characters (plus tab, LF, CR); yaml-cpp 0.7
    // loops forever on some inputs with NUL bytes, so refuse them up front.
    int line = 1, column = 1;
    for (unsigned char c : src.text) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", c);
        r.ErrorAt(SourceLocation{src.name, line, column},
                  std::string("control character ") + hex + " is not allowed in a policy file");
        return;
      }
      if (c == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    // One document only. A second one is found from its "---" marker: yaml-cpp
    // 0.7's LoadAll() can loop forever on malformed input (fixed upstream after
    // 0.7), while Load() parses exactly one document.
    if (int second = SecondDocumentLine(src.text); second > 0) {
      r.ErrorAt(SourceLocation{src.name, second, 1},
                "only one YAML document per policy file is allowed");
      return;
    }
    YAML::Node root;
    try {
      root = YAML::Load(src.text);
    } catch (const YAML::ParserException& e) {
      errors_->push_back(Diagnostic{src.name, e.mark.line >= 0 ? e.mark.line + 1 : 0,
                                    e.mark.column >= 0 ? e.mark.column + 1 : 0,
                                    "YAML syntax error: " + e.msg});
      return;
    } catch (const YAML::Exception& e) {
      errors_->push_back(Diagnostic{src.name, 0, 0, std::string("YAML error: ") + e.what()});
      return;
    }
    if (!root.IsDefined() || root.IsNull()) {
      bool blank = src.text.find_first_not_of(" \t\r\n") == std::string::npos;
      r.ErrorAt(SourceLocation{src.name, 1, 1},
                blank ? "the policy file is empty"
                      : "expected a map of policy settings at the top level, found no value");
      return;
    }
    const std::string ctx = "at the top level";
    std::optional<MapView> top =
        main
            ? r.Map(root, "policy",
                    {"apiVersion", "daemon", "scopes", "protect", "defaults", "rules", "cost"}, ctx)
            : r.Map(root, "policy drop-in", {"apiVersion", "scopes", "protect", "rules"},
                    ctx + " of a drop-in (daemon and defaults belong in the main policy.yaml)");
    if (!top) return;

    YAML::Node api = top->Get("apiVersion");
    if (!api.IsDefined()) {
      r.Error(root, "missing required key 'apiVersion' (use apiVersion: " +
                        std::string(kApiVersion) + ")");
    } else if (auto v = r.String(api, "apiVersion", ctx); v && *v != kApiVersion) {
      r.Error(api, "unsupported apiVersion " + Quote(*v) + " (this version supports " +
                       std::string(kApiVersion) + ")");
    }
    if (YAML::Node d = top->Get("daemon"); d.IsDefined()) Daemon(r, d);
    if (YAML::Node s = top->Get("scopes"); s.IsDefined()) {
      Scopes(r, s);
    } else if (main) {
      r.Error(root, "missing required key 'scopes' (the directories the daemon may manage)");
    }
    if (YAML::Node p = top->Get("protect"); p.IsDefined()) Protect(r, p);
    if (YAML::Node d = top->Get("defaults"); d.IsDefined()) Defaults(r, d);
    if (YAML::Node rules = top->Get("rules"); rules.IsDefined()) Rules(r, rules);
    if (YAML::Node c = top->Get("cost"); c.IsDefined()) Cost(r, c);
  }

  // Checks that every rule path and protect pattern can reach into some scope.
  void CheckContainment() {
    policy_.BuildIndex();
    if (policy_.scopes.empty()) return;
    std::string scope_list;
    const size_t listed = std::min<size_t>(policy_.scopes.size(), 5);
    for (size_t i = 0; i < listed; ++i) scope_list += (i ? ", " : "") + policy_.scopes[i];
    if (listed < policy_.scopes.size()) {
      scope_list += " and " + std::to_string(policy_.scopes.size() - listed) + " more";
    }
    auto reachable = [&](const Glob& g) {
      return policy_.ScopeOf(g.literal_prefix()) != nullptr ||
             policy_.HasScopeWithin(g.literal_prefix());
    };
    for (const auto& [glob, where, what, context] : pending_globs_) {
      if (!reachable(glob)) {
        errors_->push_back(Diagnostic{where.file, where.line, where.column,
                                      what + " " + Quote(glob.pattern()) + context +
                                          " is outside every scope (" + scope_list + ")"});
      }
    }
  }

 private:
  void Daemon(Reader& r, const YAML::Node& n) {
    const std::string ctx = "in 'daemon'";
    auto m = r.Map(n, "daemon",
                   {"interval", "mode", "metrics", "holds", "rescan", "probe", "record"}, ctx);
    if (!m) return;
    DaemonSettings& d = policy_.daemon;
    if (auto v = m->Get("interval"); v.IsDefined()) {
      if (auto ns = r.Duration(v, "interval", ctx)) {
        if (*ns < kNanosPerSecond / 10 || *ns > 24 * 3600 * kNanosPerSecond) {
          r.Error(v, "key 'interval' must be between 100ms and 24h " + ctx);
        } else {
          d.interval_ns = *ns;
        }
      }
    }
    if (auto v = m->Get("mode"); v.IsDefined()) {
      if (auto s = r.String(v, "mode", ctx)) {
        if (auto mode = ModeByName(*s)) {
          d.mode = *mode;
        } else {
          r.Error(v, "key 'mode' must be enforce or observe (got " + Quote(*s) + ")");
        }
      }
    }
    if (auto v = m->Get("holds"); v.IsDefined()) {
      if (auto s = r.String(v, "holds", ctx)) {
        if (*s == "honor") {
          d.holds = HoldsPolicy::kHonor;
        } else if (*s == "ignore") {
          d.holds = HoldsPolicy::kIgnore;
        } else {
          r.Error(v, "key 'holds' must be honor or ignore (got " + Quote(*s) + ")");
        }
      }
    }
    if (auto v = m->Get("rescan"); v.IsDefined()) {
      if (auto ns = r.Duration(v, "rescan", ctx)) {
        if (*ns < kNanosPerSecond) {
          r.Error(v, "key 'rescan' must be at least 1s " + ctx);
        } else {
          d.rescan_ns = *ns;
        }
      }
    }
    if (auto v = m->Get("metrics"); v.IsDefined()) {
      const std::string mctx = "in 'daemon.metrics'";
      if (auto mm = r.Map(v, "metrics", {"listen"}, mctx)) {
        if (auto l = mm->Get("listen"); l.IsDefined()) {
          if (auto s = r.String(l, "listen", mctx)) {
            if (auto why = MetricsListenProblem(*s)) {
              r.Error(l, "bad metrics listen address " + Quote(*s) + ": " + *why);
            } else {
              d.metrics_listen = *s;
              d.metrics_listen_where = r.Loc(l);
            }
          }
        }
      }
    }
    if (auto v = m->Get("probe"); v.IsDefined()) {
      const std::string pctx = "in 'daemon.probe'";
      if (auto pm = r.Map(v, "probe", {"interval", "dir"}, pctx)) {
        if (auto i = pm->Get("interval"); i.IsDefined()) {
          if (auto ns = r.Duration(i, "interval", pctx)) d.probe_interval_ns = *ns;
        }
        if (auto dir = pm->Get("dir"); dir.IsDefined()) {
          if (auto s = r.String(dir, "dir", pctx)) {
            if (s->empty() || (*s)[0] == '/' || s->find("..") != std::string::npos ||
                s->find('/') != std::string::npos) {
              r.Error(dir, "key 'dir' " + pctx +
                               " must be a plain directory name, created at the root of each "
                               "DAX-capable mount (got " +
                               Quote(*s) + ")");
            } else {
              d.probe_dir = *s;
              d.probe_dir_where = r.Loc(dir);
            }
          }
        }
      }
    }
    if (auto v = m->Get("record"); v.IsDefined()) Record(r, v, &d);
  }

  // daemon.record: { max_size: SIZE } (both optional: `record: {}` records at
  // most 256 MiB). The bounds are those of StartRecording.
  static void Record(Reader& r, const YAML::Node& v, DaemonSettings* d) {
    const std::string rctx = "in 'daemon.record'";
    auto rm = r.Map(v, "record", {"max_size"}, rctx);
    if (!rm) return;
    constexpr uint64_t kMin = uint64_t{64} << 10, kMax = uint64_t{2} << 30;
    d->record_max_bytes = uint64_t{256} << 20;
    auto ms = rm->Get("max_size");
    if (!ms.IsDefined()) return;
    auto s = r.String(ms, "max_size", rctx);
    if (!s) return;
    std::string error;
    auto bytes = ParseSize(*s, &error);
    if (!bytes) {
      r.Error(ms, "bad size for 'max_size' " + rctx + ": " + error);
    } else if (*bytes < kMin || *bytes > kMax) {
      r.Error(ms,
              "key 'max_size' " + rctx + " must be between 64KiB and 2GiB (got " + Quote(*s) + ")");
    } else {
      d->record_max_bytes = *bytes;
    }
  }

  // Each new scope is checked against the accepted ones in PathOrder: the one
  // containing it is its predecessor, the ones inside it follow it directly.
  void Scopes(Reader& r, const YAML::Node& n) {
    for (auto& [s, node] : r.StringList(n, "scopes", "at the top level", false)) {
      auto norm = NormalizeScope(r, s, node);
      if (!norm) continue;
      if (inspector_) {
        if (std::optional<std::string> problem = inspector_(*norm)) {
          r.Error(node, "scope " + Quote(*norm) + " " + *problem);
          continue;
        }
      }
      auto next = accepted_scopes_.lower_bound(*norm);
      if (next != accepted_scopes_.end() && *next == *norm) {
        r.Error(node, "duplicate scope " + Quote(*norm));
        continue;
      }
      const std::string* other = nullptr;
      if (next != accepted_scopes_.begin() && PathIsWithin(*norm, *std::prev(next))) {
        other = &*std::prev(next);
      } else if (next != accepted_scopes_.end() && PathIsWithin(*next, *norm)) {
        other = &*next;
      }
      if (other) {
        r.Error(node, "scope " + Quote(*norm) + " overlaps scope " + Quote(*other) +
                          "; scopes must not be nested");
        continue;
      }
      accepted_scopes_.insert(*norm);
      policy_.scopes.push_back(*norm);
    }
  }

  void Protect(Reader& r, const YAML::Node& n) {
    for (auto& [s, node] : r.StringList(n, "protect", "at the top level", false)) {
      if (auto g = CompileGlob(r, s, node, "in 'protect'")) {
        SourceLocation where = r.Loc(node);
        pending_globs_.push_back({*g, where, "protect pattern", ""});
        policy_.protect.push_back(ProtectEntry{std::move(*g), where});
      }
    }
  }

  void Defaults(Reader& r, const YAML::Node& n) {
    const std::string ctx = "in 'defaults'";
    auto m = r.Map(n, "defaults", {"dax", "min_dwell", "max_switches_per_minute"}, ctx);
    if (!m) return;
    if (auto v = m->Get("dax"); v.IsDefined()) {
      if (auto d = ParseDax(r, v, ctx)) policy_.defaults.dax = *d;
    }
    if (auto v = m->Get("min_dwell"); v.IsDefined()) {
      if (auto ns = r.Duration(v, "min_dwell", ctx)) policy_.defaults.min_dwell_ns = *ns;
    }
    if (auto v = m->Get("max_switches_per_minute"); v.IsDefined()) {
      if (auto c = ParseCount(r, v, "max_switches_per_minute", ctx, 1, 1'000'000)) {
        policy_.defaults.max_switches_per_minute = *c;
      }
    }
  }

  // A number with one unit kind (or a plain number when `plain` allows it), in [lo, hi].
  std::optional<double> Figure(Reader& r, const YAML::Node& n, std::string_view key,
                               const std::string& ctx, UnitKind unit, bool plain, double lo,
                               double hi, std::string_view range) {
    auto s = r.String(n, key, ctx);
    if (!s) return std::nullopt;
    std::string error;
    auto q = ParseQuantity(*s, &error);
    if (!q) {
      r.Error(n, "bad value for " + Quote(key) + " " + ctx + ": " + error);
      return std::nullopt;
    }
    double v = q->value;
    if (q->kind == UnitKind::kPercent && unit == UnitKind::kNone) {
      v /= 100;
    } else if (q->kind != unit && !(plain && q->kind == UnitKind::kNone)) {
      r.Error(n, "key " + Quote(key) + " " + ctx + " needs " + std::string(range) + " (got " +
                     Quote(*s) + ")");
      return std::nullopt;
    }
    if (!(v >= lo && v <= hi)) {
      r.Error(n, "key " + Quote(key) + " " + ctx + " must be " + std::string(range) + " (got " +
                     Quote(*s) + ")");
      return std::nullopt;
    }
    return v;
  }

  void Cost(Reader& r, const YAML::Node& n) {
    const std::string ctx = "in 'cost'";
    auto m = r.Map(n, "cost", {"margin", "min_saving", "dram_price", "mounts"}, ctx);
    if (!m) return;
    CostSettings& c = policy_.cost;
    if (auto v = m->Get("margin"); v.IsDefined()) {
      if (auto x = Figure(r, v, "margin", ctx, UnitKind::kNone, true, 0, 0.95,
                          "a ratio between 0 and 0.95 (or 0% to 95%)")) {
        c.margin = *x;
      }
    }
    if (auto v = m->Get("min_saving"); v.IsDefined()) {
      if (auto x = Figure(r, v, "min_saving", ctx, UnitKind::kDuration, false, 0, 1e9,
                          "a duration per second of wall clock between 0s and 1s (e.g. 100us)")) {
        c.min_saving_ns_per_s = *x;
      }
    }
    if (auto v = m->Get("dram_price"); v.IsDefined()) {
      if (auto x = Figure(r, v, "dram_price", ctx, UnitKind::kDuration, false, 0, 3600e9,
                          "a duration between 0s and 1h (time per GiB held for a second at "
                          "full memory pressure)")) {
        c.constants.dram_price_ns = *x;
      }
    }
    YAML::Node mounts = m->Get("mounts");
    if (!mounts.IsDefined() || mounts.IsNull()) return;
    if (!mounts.IsSequence()) {
      r.Error(mounts, "key 'mounts' must be a list " + ctx + Reader::TypeHint(mounts));
      return;
    }
    size_t index = 0;
    for (const YAML::Node& item : mounts) {
      ++index;
      CostMountEntry(r, item, index);
    }
  }

  void CostMountEntry(Reader& r, const YAML::Node& n, size_t index) {
    const std::string ctx = "in cost.mounts #" + std::to_string(index);
    auto m = r.Map(n, "cost mount",
                   {"path", "media", "read_latency", "dram_latency", "read_bandwidth",
                    "dram_bandwidth", "write_bandwidth"},
                   ctx);
    if (!m) return;
    CostMount cm;
    cm.where = r.Loc(n);
    YAML::Node path = m->Get("path");
    if (!path.IsDefined()) {
      r.Error(n, "missing required key 'path' " + ctx + " (the mount point or a directory)");
      return;
    }
    auto s = r.String(path, "path", ctx);
    if (!s) return;
    auto norm = NormalizeScope(r, *s, path);
    if (!norm) return;
    cm.path = *norm;
    for (const CostMount& other : policy_.cost_mounts) {
      if (other.path == cm.path) {
        r.Error(path, "duplicate cost mount " + Quote(cm.path) + " (first at " +
                          other.where.ToString() + ")");
        return;
      }
    }
    if (auto v = m->Get("media"); v.IsDefined()) {
      if (auto name = r.String(v, "media", ctx)) {
        if (MediaPreset(*name)) {
          cm.preset = *name;
        } else {
          r.Error(v, "unknown media " + Quote(*name) + " " + ctx +
                         " (expected one of: " + MediaPresetList() + ")");
        }
      }
    }
    constexpr const char* kLatency = "a latency between 1ns and 10ms (e.g. 305ns)";
    constexpr const char* kBandwidth = "a bandwidth between 1MiB/s and 900GiB/s (e.g. 2.7GiB/s)";
    struct Key {
      const char* name;
      double* field;
      bool latency;
    } keys[] = {{"read_latency", &cm.set.read_latency_ns, true},
                {"dram_latency", &cm.set.dram_latency_ns, true},
                {"read_bandwidth", &cm.set.read_bandwidth, false},
                {"dram_bandwidth", &cm.set.dram_bandwidth, false},
                {"write_bandwidth", &cm.set.write_bandwidth, false}};
    for (const Key& k : keys) {
      YAML::Node v = m->Get(k.name);
      if (!v.IsDefined()) continue;
      auto x = k.latency ? Figure(r, v, k.name, ctx, UnitKind::kDuration, true, 1, 1e7, kLatency)
                         : Figure(r, v, k.name, ctx, UnitKind::kRate, false, 1024.0 * 1024,
                                  900.0 * 1024 * 1024 * 1024, kBandwidth);
      if (x) *k.field = *x;
    }
    policy_.cost_mounts.push_back(std::move(cm));
  }

  void Rules(Reader& r, const YAML::Node& n) {
    if (n.IsNull()) return;  // reported by Map() at the key
    if (!n.IsSequence()) {
      r.Error(n, "key 'rules' must be a list of rules" + Reader::TypeHint(n));
      return;
    }
    size_t index = 0;
    for (const YAML::Node& item : n) {
      ++index;
      OneRule(r, item, index);
    }
  }

  void OneRule(Reader& r, const YAML::Node& n, size_t index) {
    std::string ctx = "in rule #" + std::to_string(index);
    if (n.IsMap()) {
      // Name the rule in messages as early as possible.
      for (auto it = n.begin(); it != n.end(); ++it) {
        const YAML::Node key = it->first;
        const YAML::Node value = it->second;
        if (key.IsScalar() && key.Scalar() == "name" && value.IsScalar() &&
            !value.Scalar().empty()) {
          ctx = "in rule " + Quote(value.Scalar());
          break;
        }
      }
    }
    auto m = r.Map(n, "rule", {"name", "match", "when", "for", "dax"}, ctx);
    if (!m) return;
    Rule rule;
    rule.where = r.Loc(n);
    bool ok = true;
    if (auto v = m->Get("name"); !v.IsDefined()) {
      r.Error(n, "missing required key 'name' " + ctx);
      ok = false;
    } else if (auto s = r.String(v, "name", ctx)) {
      if (s->empty()) {
        r.Error(v, "rule name must not be empty " + ctx);
        ok = false;
      } else if (s->size() > 64 || !ValidName(*s)) {
        r.Error(v, "rule name " + Quote(*s) +
                       " must be 1-64 characters of letters, digits, '-', '_', '.' or ':' and "
                       "start with a letter or digit");
        ok = false;
      } else if (auto prev = names_.find(*s); prev != names_.end()) {
        r.Error(v, "duplicate rule name " + Quote(*s) + " (first defined at " +
                       prev->second.ToString() + ")");
        ok = false;
      } else {
        rule.name = *s;
        names_.emplace(*s, r.Loc(v));
      }
    } else {
      ok = false;
    }
    if (auto v = m->Get("match"); v.IsDefined()) {
      ok &= Match(r, v, ctx, &rule);
    }
    if (auto v = m->Get("when"); v.IsDefined()) {
      if (auto s = r.String(v, "when", ctx)) {
        std::vector<ExprError> errs;
        rule.when = Expr::Compile(*s, &errs);
        for (const ExprError& e : errs) {
          r.ErrorAt(r.InsideScalar(v, e.offset),
                    e.message + " (in the 'when' of " + ctx.substr(3) + ")");
        }
        ok &= rule.when.has_value();
      } else {
        ok = false;
      }
    }
    if (auto v = m->Get("for"); v.IsDefined()) {
      if (auto ns = r.Duration(v, "for", ctx)) {
        rule.for_ns = *ns;
      } else {
        ok = false;
      }
    }
    if (auto v = m->Get("dax"); !v.IsDefined()) {
      r.Error(n, "missing required key 'dax' " + ctx + " (on, off, keep or auto)");
      ok = false;
    } else if (auto d = ParseDax(r, v, ctx)) {
      rule.dax = *d;
    } else {
      ok = false;
    }
    if (ok) {
      rule.id = HashName(rule.name);
      policy_.rules.push_back(std::move(rule));
    }
  }

  bool Match(Reader& r, const YAML::Node& n, const std::string& ctx, Rule* rule) {
    auto m = r.Map(n, "match", {"path", "size", "type"}, ctx);
    if (!m) return false;
    bool ok = true;
    if (auto v = m->Get("path"); v.IsDefined()) {
      auto paths = r.StringList(v, "path", ctx, true);
      if (paths.empty() && v.IsSequence()) {  // "path: []"
        r.Error(v, "key 'path' must list at least one pattern " + ctx);
        ok = false;
      }
      for (auto& [s, node] : paths) {
        if (auto g = CompileGlob(r, s, node, ctx)) {
          pending_globs_.push_back({*g, r.Loc(node), "path pattern", " " + ctx});
          rule->paths.push_back(std::move(*g));
        } else {
          ok = false;
        }
      }
    }
    if (auto v = m->Get("size"); v.IsDefined()) {
      if (auto s = r.String(v, "size", ctx)) {
        ok &= SizeCondition(r, v, *s, ctx, rule);
      } else {
        ok = false;
      }
    }
    if (auto v = m->Get("type"); v.IsDefined()) {
      if (auto s = r.String(v, "type", ctx)) {
        if (*s == "file") {
          rule->kind = MatchKind::kFile;
        } else if (*s == "directory") {
          rule->kind = MatchKind::kDirectory;
        } else if (*s == "any") {
          rule->kind = MatchKind::kAny;
        } else {
          r.Error(v, "key 'type' must be file, directory or any (got " + Quote(*s) + ") " + ctx);
          ok = false;
        }
      } else {
        ok = false;
      }
    }
    return ok;
  }

  bool SizeCondition(Reader& r, const YAML::Node& n, const std::string& text,
                     const std::string& ctx, Rule* rule) {
    static constexpr std::pair<std::string_view, CmpOp> kOps[] = {
        {">=", CmpOp::kGe}, {"<=", CmpOp::kLe}, {"==", CmpOp::kEq},
        {"!=", CmpOp::kNe}, {">", CmpOp::kGt},  {"<", CmpOp::kLt}};
    std::string_view t = text;
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    for (const auto& [op_text, op] : kOps) {
      if (t.substr(0, op_text.size()) != op_text) continue;
      std::string_view value = t.substr(op_text.size());
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
      std::string error;
      auto bytes = ParseSize(value, &error);
      if (!bytes) {
        r.Error(n, "bad size condition " + Quote(text) + " " + ctx + ": " + error);
        return false;
      }
      rule->size = SizeMatch{op, *bytes};
      return true;
    }
    r.Error(n, "bad size condition " + Quote(text) + " " + ctx +
                   ": start with a comparison, e.g. '>= 1MiB'");
    return false;
  }

  static bool ValidName(const std::string& s) {
    if (!std::isalnum(static_cast<unsigned char>(s[0]))) return false;
    for (char c : s) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr("-_.:", c)) return false;
    }
    return true;
  }

  struct PendingGlob {
    Glob glob;
    SourceLocation where;
    std::string what;
    std::string context;
  };

  std::vector<Diagnostic>* errors_;
  const ScopeInspector& inspector_;
  Policy policy_;
  std::map<std::string, SourceLocation> names_;
  std::vector<PendingGlob> pending_globs_;
  struct PathLess {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return PathOrder(a, b); }
  };
  std::set<std::string, PathLess> accepted_scopes_;
};

}  // namespace

LoadResult LoadPolicy(const PolicySource& main, const std::vector<PolicySource>& dropins,
                      const ScopeInspector& inspector) {
  LoadResult result;
  PolicyBuilder builder(&result.errors, inspector);
  builder.Add(main, true);
  for (const PolicySource& d : dropins) builder.Add(d, false);
  builder.CheckContainment();
  // Report in file order, then by position, whatever pass found them.
  std::unordered_map<std::string, size_t> order{{main.name, 0}};
  for (const PolicySource& d : dropins) order.emplace(d.name, order.size());
  auto rank = [&](const Diagnostic& e) {
    auto it = order.find(e.file);
    return it == order.end() ? order.size() : it->second;
  };
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) {
                     auto ka = std::make_tuple(rank(a), a.line, a.column);
                     auto kb = std::make_tuple(rank(b), b.line, b.column);
                     return ka < kb;
                   });
  if (result.errors.empty()) result.policy = std::move(builder.policy());  // indexed
  return result;
}

std::vector<Diagnostic> CheckDropin(const PolicySource& dropin, const ScopeInspector& inspector) {
  std::vector<Diagnostic> errors;
  PolicyBuilder builder(&errors, inspector);
  builder.Add(dropin, false);
  builder.CheckContainment();
  return errors;
}

}  // namespace daxpolicy::policy
