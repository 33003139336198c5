// SPDX-License-Identifier: Apache-2.0
#include "policy/trace.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "policy/units.h"

namespace daxpolicy::policy {

namespace {

constexpr size_t kMaxLine = 64 * 1024;
constexpr size_t kMaxPath = 4096;

// Whole numbers in full; anything else in the shortest form that reads back
// as the same double, so a trace written and read again is the same trace.
std::string Num(double v) {
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("nan");
}

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

class Parser {
 public:
  Parser(std::string_view text, std::string* error) : text_(text), error_(error) {}

  std::optional<Trace> Run() {
    if (text_.empty()) return Fail("the trace is empty");
    size_t pos = 0;
    while (pos < text_.size()) {
      ++line_;
      size_t end = text_.find('\n', pos);
      if (end == std::string_view::npos) {
        return Fail("truncated: the last line has no newline (the trace was cut off)");
      }
      std::string_view line = text_.substr(pos, end - pos);
      pos = end + 1;
      if (line.size() > kMaxLine) return Fail("line longer than 64 KiB");
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line_ == 1) {
        if (!Magic(line)) return std::nullopt;
        continue;
      }
      if (line.empty() || line[0] == '#') continue;
      if (!Line(line)) return std::nullopt;
    }
    if (trace_.interval_ns == 0) {
      line_ = 0;
      return Fail("missing 'interval_ns' line");
    }
    return std::move(trace_);
  }

 private:
  std::nullopt_t Fail(const std::string& message) {
    *error_ = (line_ > 0 ? "line " + std::to_string(line_) + ": " : "") + message;
    return std::nullopt;
  }
  bool FailB(const std::string& message) {
    Fail(message);
    return false;
  }
  bool FieldError(std::string_view field, const std::string& message) {
    *error_ = "line " + std::to_string(line_) + ", field '" + std::string(field) + "': " + message;
    return false;
  }

  bool Magic(std::string_view line) {
    auto w = Split(line);
    if (w.size() != 2 || w[0] != kTraceMagic) {
      return FailB("not a daxpolicy trace (expected 'daxpolicy-trace " +
                   std::to_string(kTraceVersion) + "' on the first line)");
    }
    double v = 0;
    if (!Number(w[1], &v) || v != std::floor(v) || v < 1) {
      return FailB("bad trace format version '" + std::string(w[1]) + "'");
    }
    if (v > kTraceVersion) {
      return FailB("trace format version " + Num(v) + " is newer than this build reads (" +
                   std::to_string(kTraceVersion) + ")");
    }
    trace_.version = static_cast<int>(v);
    return true;
  }

  static bool Number(std::string_view s, double* out) {
    if (s.empty() || s.size() > 40) return false;
    std::string tmp(s);
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(tmp.c_str(), &end);
    if (end != tmp.c_str() + tmp.size() || errno == ERANGE || !std::isfinite(v)) return false;
    *out = v;
    return true;
  }

  // A non-negative number in [0, max].
  bool Value(std::string_view key, std::string_view s, double max, double* out) {
    if (!Number(s, out)) return FieldError(key, "'" + std::string(s) + "' is not a number");
    if (*out < 0 || *out > max) {
      return FieldError(key,
                        "value " + std::string(s) + " is out of range (0 to " + Num(max) + ")");
    }
    return true;
  }

  bool Line(std::string_view line) {
    auto w = Split(line);
    if (w.empty()) return true;  // only blanks: skipped like an empty line
    std::string_view kind = w[0];
    if (kind == "t") return Interval(w);
    if (kind == "f") return File(w);
    if (kind == "end") return true;
    if (!trace_.intervals.empty()) {
      return FailB("'" + std::string(kind) + "' must come before the first interval ('t' line)");
    }
    if (kind == "interval_ns" || kind == "page_size" || kind == "dram_budget") {
      if (w.size() != 2) return FailB("expected '" + std::string(kind) + " NUMBER'");
      double v = 0;
      if (kind == "interval_ns") {
        if (!Value(kind, w[1], 86400e9, &v)) return false;
        if (v < 1e6) return FieldError(kind, "must be at least 1ms (1000000)");
        trace_.interval_ns = static_cast<int64_t>(v);
      } else if (kind == "page_size") {
        if (!Value(kind, w[1], 1 << 30, &v)) return false;
        if (v < 512 || v != std::floor(v)) return FieldError(kind, "must be a whole number >= 512");
        trace_.page_size = static_cast<uint32_t>(v);
      } else {
        if (!Value(kind, w[1], 1e18, &v)) return false;
        trace_.dram_budget = v;
      }
      return true;
    }
    if (kind == "media") return Media(w);
    if (kind == "mount") return Mount(w);
    return FailB("unknown line type '" + std::string(kind) + "'");
  }

  bool Media(const std::vector<std::string_view>& w) {
    if (w.size() < 2) return FailB("expected 'media NAME key=value...'");
    TraceMedia m;
    m.name = std::string(w[1]);
    for (const TraceMedia& other : trace_.media) {
      if (other.name == m.name) return FailB("media '" + m.name + "' defined twice");
    }
    struct Key {
      std::string_view name;
      double* field;
    } keys[] = {{"read_latency_ns", &m.params.read_latency_ns},
                {"dram_latency_ns", &m.params.dram_latency_ns},
                {"read_bandwidth", &m.params.read_bandwidth},
                {"dram_bandwidth", &m.params.dram_bandwidth},
                {"write_bandwidth", &m.params.write_bandwidth}};
    for (size_t i = 2; i < w.size(); ++i) {
      auto [k, v] = KeyValue(w[i]);
      bool known = false;
      for (const Key& key : keys) {
        if (key.name != k) continue;
        known = true;
        if (!Value(k, v, 1e13, key.field)) return false;
      }
      if (!known) return FieldError(k, "unknown field of a media line");
    }
    if (std::string p = m.params.Problem(); !p.empty()) {
      return FailB("media '" + m.name + "': " + p);
    }
    m.params.source = "trace media " + m.name;
    trace_.media.push_back(std::move(m));
    return true;
  }

  bool Mount(const std::vector<std::string_view>& w) {
    if (w.size() < 2 || w.size() > 3) return FailB("expected 'mount PATH [media=NAME]'");
    TraceMount mount;
    auto path = PathArg(w[1]);
    if (!path) return false;
    mount.path = *path;
    if (w.size() == 3) {
      auto [k, v] = KeyValue(w[2]);
      if (k != "media") return FieldError(k, "unknown field of a mount line");
      if (v != "-") {
        for (size_t i = 0; i < trace_.media.size(); ++i) {
          if (trace_.media[i].name == v) mount.media = static_cast<int>(i);
        }
        if (mount.media < 0) return FieldError(k, "unknown media '" + std::string(v) + "'");
      }
    }
    trace_.mounts.push_back(std::move(mount));
    return true;
  }

  std::optional<std::string> PathArg(std::string_view s) {
    auto p = Unescape(s);
    if (!p) {
      Fail("bad %-escape in path '" + std::string(s) + "'");
      return std::nullopt;
    }
    if (p->empty() || (*p)[0] != '/' || p->size() > kMaxPath) {
      Fail("path '" + std::string(s) + "' is not an absolute path of at most 4096 bytes");
      return std::nullopt;
    }
    return p;
  }

  static std::pair<std::string_view, std::string_view> KeyValue(std::string_view token) {
    size_t eq = token.find('=');
    if (eq == std::string_view::npos) return {token, {}};
    return {token.substr(0, eq), token.substr(eq + 1)};
  }

  bool Interval(const std::vector<std::string_view>& w) {
    if (trace_.interval_ns == 0) return FailB("'interval_ns' must come before the first 't' line");
    if (w.size() < 2 || w.size() > 3) return FailB("expected 't NANOSECONDS [pressure=PERCENT]'");
    TraceInterval iv;
    double t = 0;
    if (!Value("t", w[1], 9.2e18, &t)) return false;
    iv.t_ns = static_cast<int64_t>(t);
    if (!trace_.intervals.empty() && iv.t_ns <= trace_.intervals.back().t_ns) {
      return FieldError("t",
                        "time " + std::string(w[1]) + " does not follow the previous interval");
    }
    if (w.size() == 3) {
      auto [k, v] = KeyValue(w[2]);
      if (k != "pressure") return FieldError(k, "unknown field of a 't' line");
      if (!Value(k, v, 100, &iv.mem_pressure)) return false;
    }
    trace_.intervals.push_back(std::move(iv));
    seen_.clear();
    return true;
  }

  bool File(const std::vector<std::string_view>& w) {
    if (trace_.intervals.empty()) return FailB("'f' line before the first interval ('t' line)");
    if (w.size() < 2) return FailB("expected 'f PATH key=value...'");
    auto path = PathArg(w[1]);
    if (!path) return false;
    auto [it, added] = path_ids_.try_emplace(*path, static_cast<uint32_t>(trace_.paths.size()));
    if (added) trace_.paths.push_back(*path);
    TraceFile f;
    f.path = it->second;
    if (!seen_.insert({f.path, true}).second) {
      return FailB("file '" + *path + "' appears twice in one interval");
    }
    bool have_size = false, have_mode = false;
    for (size_t i = 2; i < w.size(); ++i) {
      auto [k, v] = KeyValue(w[i]);
      double x = 0;
      if (k == "size") {
        if (!Value(k, v, 9.2e18, &x)) return false;
        f.size = static_cast<uint64_t>(x);
        have_size = true;
      } else if (k == "mode") {
        if (v == "dax") {
          f.mode = DaxState::kDax;
        } else if (v == "page-cache") {
          f.mode = DaxState::kPageCache;
        } else {
          return FieldError(k, "must be dax or page-cache (got '" + std::string(v) + "')");
        }
        have_mode = true;
      } else if (k == "read" || k == "calls" || k == "write" || k == "distinct" ||
                 k == "resident") {
        if (v == "-") continue;
        if (!Value(k, v, 1e18, &x)) return false;
        (k == "read"       ? f.read_bytes
         : k == "calls"    ? f.read_calls
         : k == "write"    ? f.write_bytes
         : k == "distinct" ? f.distinct_bytes
                           : f.resident_bytes) = x;
      } else if (k == "hit") {
        if (v == "-") continue;
        if (!Value(k, v, 1, &f.hit_ratio)) return false;
      } else {
        return FieldError(k, "unknown field of an 'f' line");
      }
    }
    if (!have_size) return FieldError("size", "missing");
    if (!have_mode) return FieldError("mode", "missing");
    trace_.intervals.back().files.push_back(f);
    return true;
  }

  std::string_view text_;
  std::string* error_;
  int line_ = 0;
  Trace trace_;
  std::unordered_map<std::string, uint32_t> path_ids_;
  std::unordered_map<uint32_t, bool> seen_;
};

std::string Opt(std::string_view key, double v) {
  return " " + std::string(key) + "=" + (v < 0 ? std::string("-") : Num(v));
}

}  // namespace

int Trace::MountOf(std::string_view path) const {
  int best = -1;
  for (size_t i = 0; i < mounts.size(); ++i) {
    const std::string& m = mounts[i].path;
    bool within = path.size() >= m.size() && path.substr(0, m.size()) == m &&
                  (path.size() == m.size() || path[m.size()] == '/' || m == "/");
    if (within && (best < 0 || m.size() > mounts[static_cast<size_t>(best)].path.size())) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

std::string EscapeTracePath(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (char ch : path) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '%' || c == '=') {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::optional<Trace> ParseTrace(std::string_view text, std::string* error) {
  return Parser(text, error).Run();
}

std::string TraceHeader(const Trace& t) {
  std::string out = std::string(kTraceMagic) + " " + std::to_string(kTraceVersion) + "\n";
  out += "interval_ns " + std::to_string(t.interval_ns) + "\n";
  out += "page_size " + std::to_string(t.page_size) + "\n";
  if (t.dram_budget > 0) out += "dram_budget " + Num(t.dram_budget) + "\n";
  for (const TraceMedia& m : t.media) {
    const MediaParams& p = m.params;
    out += "media " + m.name + " read_latency_ns=" + Num(p.read_latency_ns) +
           " dram_latency_ns=" + Num(p.dram_latency_ns) +
           " read_bandwidth=" + Num(p.read_bandwidth) + " dram_bandwidth=" + Num(p.dram_bandwidth) +
           " write_bandwidth=" + Num(p.write_bandwidth) + "\n";
  }
  for (const TraceMount& m : t.mounts) {
    out += "mount " + EscapeTracePath(m.path) + " media=" +
           (m.media >= 0 ? t.media[static_cast<size_t>(m.media)].name : std::string("-")) + "\n";
  }
  return out;
}

std::string TraceIntervalText(const Trace& t, const TraceInterval& iv) {
  std::string out = "t " + std::to_string(iv.t_ns);
  if (iv.mem_pressure >= 0) out += " pressure=" + Num(iv.mem_pressure);
  out += "\n";
  for (const TraceFile& f : iv.files) {
    out += "f " + EscapeTracePath(t.paths[f.path]) + " size=" + std::to_string(f.size) +
           " mode=" + (f.mode == DaxState::kDax ? "dax" : "page-cache") +
           Opt("read", f.read_bytes) + Opt("calls", f.read_calls) + Opt("write", f.write_bytes) +
           Opt("distinct", f.distinct_bytes) + Opt("hit", f.hit_ratio) +
           Opt("resident", f.resident_bytes) + "\n";
  }
  return out;
}

std::string FormatTrace(const Trace& t) {
  std::string out = TraceHeader(t);
  for (const TraceInterval& iv : t.intervals) out += TraceIntervalText(t, iv);
  return out;
}

}  // namespace daxpolicy::policy
