// SPDX-License-Identifier: Apache-2.0
// daxpolicyctl: the command-line client of daxpolicyd.

#include <limits.h>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/bus/bus_names.h"
#include "daemon/bus/validate.h"
#include "daemon/config_files.h"
#include "daemon/ctl/json.h"
#include "daemon/ctl/simulate.h"
#include "daemon/ctl/text.h"
#include "daemon/journal/journal.h"
#include "daemon/journal/restore.h"
#include "daxpolicy/version.h"
#include "daxpolicy1_proxy.h"
#include "policy/cost.h"
#include "policy/units.h"
#include "policy/workloads.h"

namespace {

namespace bus = daxpolicy::bus;
namespace ctl = daxpolicy::ctl;

// Exit codes besides 0 (success) and 1 (the daemon refused or failed the request, or bad
// input); `hold` exits with its command's status once the hold is taken.
constexpr int kExitUsage = 2;
constexpr int kExitNotRunning = 3;
constexpr int kExitPermissionDenied = 4;
constexpr int kExitNoBus = 5;

constexpr const char* kExitCodesHelp =
    "Exit status: 0 success; 1 refused or failed (file not managed, invalid policy, ...); "
    "2 usage error (unknown option, missing or invalid argument); 3 daxpolicyd is not running; "
    "4 permission denied; 5 the bus cannot be reached. hold exits with its command's status.";

constexpr const char* kGlobalOptionsHelp =
    "Global options (before or after the subcommand):\n"
    "  --session                   Use the session bus instead of the system bus\n"
    "  --json                      Print JSON (status, files, explain, media and other read "
    "commands)\n";

using Dict = std::map<std::string, sdbus::Variant>;

struct Failure {
  int exit_code;
  std::string message;
};

class ManagerProxy final
    : public sdbus::ProxyInterfaces<org::daxpolicy::DaxPolicy1::Manager_proxy> {
 public:
  explicit ManagerProxy(sdbus::IConnection& connection)
      : ProxyInterfaces(connection, bus::kBusName, bus::kObjectPath) {
    registerProxy();
  }
  ~ManagerProxy() { unregisterProxy(); }

  // Reload(), answered when the reload ends: a huge policy may take longer to read than the
  // usual 25 s a call is given.
  void ReloadAndWait() {
    getProxy()
        .callMethod("Reload")
        .onInterface(bus::kInterface)
        .withTimeout(std::chrono::minutes(5));
  }

  Dict GetAll() {
    Dict all;
    getProxy()
        .callMethod("GetAll")
        .onInterface("org.freedesktop.DBus.Properties")
        .withArguments(std::string(bus::kInterface))
        .storeResultsTo(all);
    return all;
  }

 private:
  // The client waits for no signal.
  void onStateChanged(const std::string&, const std::string&, const std::string&,
                      const std::string&, const std::string&) override {}
  void onSwitchPending(const std::string&, const std::string&,
                       const std::vector<sdbus::Struct<uint32_t, std::string>>&) override {}
  void onHoldEnded(const uint32_t&, const std::string&, const std::string&) override {}
  void onReloaded(const bool&, const std::string&) override {}
};

struct Client {
  std::unique_ptr<sdbus::IConnection> connection;
  std::unique_ptr<ManagerProxy> proxy;
  bool session = false;
  ~Client() {
    proxy.reset();  // before its connection
  }
};

const char* BusWord(bool session) { return session ? "session" : "system"; }

Failure Classify(const sdbus::Error& e, bool session) {
  const std::string& name = e.getName();
  if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
      name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
    return {kExitNotRunning, std::string("daxpolicyd is not running (no owner of ") +
                                 bus::kBusName + " on the " + BusWord(session) + " bus)"};
  }
  if (name == "org.freedesktop.DBus.Error.AccessDenied" || name == bus::kErrorPermissionDenied) {
    return {kExitPermissionDenied, "permission denied: " + e.getMessage()};
  }
  if (name == "org.freedesktop.DBus.Error.NoReply" ||
      name == "org.freedesktop.DBus.Error.Timeout") {
    return {1, "daxpolicyd did not answer: " + e.getMessage()};
  }
  return {1, e.getMessage().empty() ? name : e.getMessage()};
}

int Report(const Failure& f) {
  std::cerr << "daxpolicyctl: " << f.message << "\n";
  return f.exit_code;
}

std::optional<Failure> Connect(bool session, Client* client) {
  client->session = session;
  try {
    client->connection =
        session ? sdbus::createSessionBusConnection() : sdbus::createSystemBusConnection();
  } catch (const sdbus::Error& e) {
    return Failure{kExitNoBus, std::string("cannot connect to the ") + BusWord(session) +
                                   " bus: " + e.getMessage()};
  }
  try {
    client->proxy = std::make_unique<ManagerProxy>(*client->connection);
  } catch (const sdbus::Error& e) {
    return Classify(e, session);
  }
  return std::nullopt;
}

// Runs `body(proxy)` against the daemon; every bus failure becomes a message and an exit code.
template <class F>
int WithDaemon(bool session, F&& body) {
  Client client;
  if (auto f = Connect(session, &client)) return Report(*f);
  try {
    return body(*client.proxy);
  } catch (const sdbus::Error& e) {
    return Report(Classify(e, session));
  }
}

std::optional<std::string> AbsoluteArgument(const std::string& arg) {
  char cwd[PATH_MAX];
  if (!arg.empty() && arg.front() != '/' && getcwd(cwd, sizeof cwd) == nullptr) {
    std::cerr << "daxpolicyctl: cannot resolve '" << ctl::Printable(arg)
              << "' against the current directory: " << std::strerror(errno) << "\n";
    return std::nullopt;
  }
  std::string path = ctl::AbsolutePath(arg, arg.empty() || arg.front() == '/' ? "/" : cwd);
  // D-Bus strings are UTF-8: other bytes (and backslashes) travel escaped, as the daemon
  // reads them back (EscapeForBus).
  return bus::EscapeForBus(path);
}

std::string VariantJson(const sdbus::Variant& v) {
  const std::string type = v.peekValueType();
  if (type == "s") return ctl::JsonString(v.get<std::string>());
  if (type == "b") return ctl::JsonBool(v.get<bool>());
  if (type == "t") return ctl::JsonNumber(v.get<uint64_t>());
  if (type == "u") return ctl::JsonNumber(static_cast<uint64_t>(v.get<uint32_t>()));
  if (type == "i") return ctl::JsonNumber(static_cast<int64_t>(v.get<int32_t>()));
  if (type == "x") return ctl::JsonNumber(v.get<int64_t>());
  if (type == "d") return ctl::JsonNumber(v.get<double>());
  if (type == "a(us)") {
    std::vector<std::string> items;
    for (const auto& h : v.get<std::vector<sdbus::Struct<uint32_t, std::string>>>()) {
      items.push_back(ctl::JsonObject()
                          .Add("Pid", ctl::JsonNumber(static_cast<uint64_t>(h.get<0>())))
                          .Add("Command", ctl::JsonString(h.get<1>()))
                          .str());
    }
    return ctl::JsonArray(items);
  }
  return "null";
}

std::string VariantText(const Dict& d, const std::string& key) {
  auto it = d.find(key);
  if (it == d.end()) return "-";
  const std::string type = it->second.peekValueType();
  if (type == "s") return it->second.get<std::string>();
  if (type == "b") return it->second.get<bool>() ? "yes" : "no";
  if (type == "t") return std::to_string(it->second.get<uint64_t>());
  if (type == "i") return std::to_string(it->second.get<int32_t>());
  if (type == "d") return ctl::JsonNumber(it->second.get<double>());
  return VariantJson(it->second);
}

std::string DictJson(const Dict& d, const std::vector<std::string>& order) {
  ctl::JsonObject o;
  for (const auto& key : order) {
    auto it = d.find(key);
    if (it != d.end()) o.Add(key, VariantJson(it->second));
  }
  return o.str();
}

// The status line of the recorder: "no", "yes, to FILE: RESULT", or the last recording.
std::string RecordingText(const Dict& all) {
  const std::string file = VariantText(all, "RecordingFile");
  const std::string result = VariantText(all, "RecordingResult");
  if (VariantText(all, "Recording") == "yes") return "yes, to " + file + " (" + result + ")";
  if (file.empty() || file == "-") return "no";
  return "no; last trace " + file + ": " + result;
}

// ---- subcommands ----

int Status(bool session, bool json) {
  return WithDaemon(session, [&](ManagerProxy& p) {
    Dict all = p.GetAll();
    static const std::vector<std::string> kOrder = {
        "Mode",         "PolicyGeneration", "LastReloadResult", "Degraded",        "ManagedFiles",
        "PendingFiles", "Recording",        "RecordingFile",    "RecordingResult", "Version"};
    if (json) {
      std::cout << DictJson(all, kOrder) << "\n";
      return 0;
    }
    std::string degraded = VariantText(all, "Degraded");
    std::vector<std::vector<std::string>> rows = {
        {"Mode:", VariantText(all, "Mode")},
        {"Policy generation:", VariantText(all, "PolicyGeneration")},
        {"Last reload:", VariantText(all, "LastReloadResult")},
        {"Degraded:", degraded.empty() ? "no" : degraded},
        {"Managed files:", VariantText(all, "ManagedFiles")},
        {"Pending files:", VariantText(all, "PendingFiles")},
        {"Recording:", RecordingText(all)},
        {"Version:", VariantText(all, "Version")},
    };
    // A refused reload or a degraded daemon may say several lines (one error per line):
    // each goes on a row of its own under its label, not escaped into one line.
    std::vector<std::vector<std::string>> lines;
    for (auto& row : rows) {
      std::string_view value = row[1];
      for (size_t i = 0;; ++i) {
        const size_t nl = value.find('\n');
        lines.push_back({i == 0 ? row[0] : "", std::string(value.substr(0, nl))});
        if (nl == std::string_view::npos) break;
        value.remove_prefix(nl + 1);
      }
    }
    std::string table = ctl::FormatTable({"", ""}, lines);
    std::cout << table.substr(table.find('\n') + 1);  // no header line
    return 0;
  });
}

// Calls `row` with the five fields of every line of a DumpFiles memfd (read from offset 0).
bool ForEachDumpLine(int fd, const std::function<void(const std::vector<std::string>&)>& row) {
  if (lseek(fd, 0, SEEK_SET) != 0) return false;
  std::string pending;
  std::vector<std::string> fields;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
      fields.clear();
      size_t at = start;
      for (size_t tab = pending.find('\t', at); tab != std::string::npos && tab < nl;
           tab = pending.find('\t', at)) {
        fields.push_back(pending.substr(at, tab - at));
        at = tab + 1;
      }
      fields.push_back(pending.substr(at, nl - at));
      if (fields.size() == 5) row(fields);
      start = nl + 1;
    }
    pending.erase(0, start);
  }
  return true;
}

int Files(bool session, bool json, const std::string& state) {
  if (!state.empty() && !bus::FileStateByName(state)) {
    std::cerr << "daxpolicyctl: unknown state '" << ctl::Printable(state)
              << "': expected unmanaged, in-sync, pending, deferred, observed or blocked\n";
    return kExitUsage;
  }
  return WithDaemon(session, [&](ManagerProxy& p) {
    // Streamed through a file descriptor: works for any number of files.
    sdbus::UnixFd fd = p.DumpFiles(state);
    bool ok = true;
    if (json) {
      bool first = true;
      std::cout << "[";
      ok = ForEachDumpLine(fd.get(), [&](const std::vector<std::string>& f) {
        std::cout << (first ? "" : ",")
                  << ctl::JsonObject()
                         .Add("Path", ctl::JsonString(f[0]))
                         .Add("Desired", ctl::JsonString(f[2]))
                         .Add("Physical", ctl::JsonString(f[3]))
                         .Add("Effective", ctl::JsonString(f[4]))
                         .Add("State", ctl::JsonString(f[1]))
                         .str();
        first = false;
      });
      std::cout << "]\n";
    } else {
      // Two passes over the memfd: the column widths, then the rows.
      const std::vector<std::string> header{"PATH", "STATE", "DESIRED", "PHYSICAL", "EFFECTIVE"};
      std::vector<size_t> width;
      for (const auto& h : header) width.push_back(h.size());
      ok = ForEachDumpLine(fd.get(), [&](const std::vector<std::string>& f) {
        for (size_t i = 0; i < f.size(); ++i) {
          width[i] = std::max(width[i], ctl::Printable(f[i]).size());
        }
      });
      auto print = [&](const std::vector<std::string>& cells) {
        std::cout << ctl::FormatRow(cells, width) << '\n';
      };
      print(header);
      ok = ok && ForEachDumpLine(fd.get(), print);
    }
    if (!ok) {
      std::cerr << "daxpolicyctl: cannot read the listing: " << std::strerror(errno) << "\n";
      return 1;
    }
    return 0;
  });
}

int Holds(bool session, bool json) {
  return WithDaemon(session, [&](ManagerProxy& p) {
    auto holds = p.ListHolds();
    if (json) {
      std::vector<std::string> items;
      for (const auto& h : holds) {
        items.push_back(ctl::JsonObject()
                            .Add("Cookie", ctl::JsonNumber(static_cast<uint64_t>(h.get<0>())))
                            .Add("Path", ctl::JsonString(h.get<1>()))
                            .Add("Mode", ctl::JsonString(h.get<2>()))
                            .Add("Reason", ctl::JsonString(h.get<3>()))
                            .Add("Holder", ctl::JsonString(h.get<4>()))
                            .Add("Uid", ctl::JsonNumber(static_cast<uint64_t>(h.get<5>())))
                            .Add("InEffect", ctl::JsonBool(h.get<6>()))
                            .str());
      }
      std::cout << ctl::JsonArray(items) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& h : holds) {
      rows.push_back({std::to_string(h.get<0>()), h.get<1>(), h.get<2>(),
                      h.get<6>() ? "yes" : "no (page-cache hold wins)", std::to_string(h.get<5>()),
                      h.get<4>(), h.get<3>()});
    }
    std::cout << ctl::FormatTable(
        {"COOKIE", "PATH", "MODE", "IN EFFECT", "UID", "HOLDER", "REASON"}, rows);
    return 0;
  });
}

int Explain(bool session, bool json, const std::string& arg) {
  auto path = AbsoluteArgument(arg);
  if (!path) return 1;
  return WithDaemon(session, [&](ManagerProxy& p) {
    std::string text = p.Explain(*path);
    if (json) {
      Dict state = p.GetFileState(*path);
      std::cout << ctl::JsonObject()
                       .Add("Path", ctl::JsonString(*path))
                       .Add("State",
                            DictJson(state, {"Path", "Managed", "Desired", "Physical", "Effective",
                                             "State", "Rule", "Reason", "Holders"}))
                       .Add("Explanation", ctl::JsonString(text))
                       .str()
                << "\n";
      return 0;
    }
    std::cout << text;
    if (!text.empty() && text.back() != '\n') std::cout << "\n";
    return 0;
  });
}

int Media(bool session, bool json) {
  return WithDaemon(session, [&](ManagerProxy& p) {
    auto devices = p.GetMedia();
    static const std::vector<std::string> kOrder = {
        "Name",   "Kind",          "Size",           "NumaNode",
        "Health", "ReadLatencyNs", "WriteLatencyNs", "LatencyRatio"};
    if (json) {
      std::vector<std::string> items;
      for (const auto& d : devices) items.push_back(DictJson(d, kOrder));
      std::cout << ctl::JsonArray(items) << "\n";
      return 0;
    }
    auto ns = [](const Dict& d, const std::string& key) -> std::string {
      auto it = d.find(key);
      if (it == d.end() || it->second.peekValueType() != "d") return "-";
      return std::to_string(static_cast<long long>(it->second.get<double>() + 0.5)) + " ns";
    };
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : devices) {
      std::string size = "-";
      auto s = d.find("Size");
      if (s != d.end() && s->second.peekValueType() == "t") {
        size = ctl::HumanBytes(s->second.get<uint64_t>());
      }
      std::string numa = VariantText(d, "NumaNode");
      if (numa == "-1") numa = "-";
      std::string ratio = "-";
      auto r = d.find("LatencyRatio");
      if (r != d.end() && r->second.peekValueType() == "d") {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", r->second.get<double>());
        ratio = buf;
      }
      rows.push_back({VariantText(d, "Name"), VariantText(d, "Kind"), size, numa,
                      VariantText(d, "Health"), ns(d, "ReadLatencyNs"), ns(d, "WriteLatencyNs"),
                      ratio});
    }
    if (rows.empty()) {
      std::cout << "no memory devices found\n";
      return 0;
    }
    std::cout << ctl::FormatTable(
        {"NAME", "KIND", "SIZE", "NUMA", "HEALTH", "READ", "WRITE", "RATIO"}, rows);
    return 0;
  });
}

int RunHeld(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    std::cerr << "daxpolicyctl: cannot fork: " << std::strerror(errno) << "\n";
    return 126;
  }
  if (pid == 0) {
    execvp(argv[0], argv.data());
    const int err = errno;
    std::cerr << "daxpolicyctl: cannot run " << ctl::Printable(command[0]) << ": "
              << std::strerror(err) << "\n";
    _exit(err == ENOENT ? 127 : 126);
  }
  // Like system(): the terminal's ^C / ^\ go to the command; we stay to release the hold.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_int = {}, old_quit = {};
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGQUIT, &ignore, &old_quit);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGQUIT, &old_quit, nullptr);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int Hold(bool session, const std::string& mode, const std::string& reason, const std::string& arg,
         const std::vector<std::string>& command) {
  if (!bus::HoldModeByName(mode)) {
    std::cerr << "daxpolicyctl: unknown mode '" << ctl::Printable(mode)
              << "': expected dax or page-cache\n";
    return kExitUsage;
  }
  if (command.empty()) {
    std::cerr << "daxpolicyctl: hold needs a command to run: hold --mode M PATH -- CMD...\n";
    return kExitUsage;
  }
  auto path = AbsoluteArgument(arg);
  if (!path) return 1;
  if (!bus::IsValidUtf8(reason)) {
    std::cerr << "daxpolicyctl: the reason is not valid UTF-8\n";
    return 1;
  }
  return WithDaemon(session, [&](ManagerProxy& p) {
    uint32_t cookie = p.Hold(*path, mode, reason);
    int status = RunHeld(command);
    try {
      p.Release(cookie);
    } catch (const sdbus::Error& e) {
      // The daemon drops it anyway once this process leaves the bus.
      std::cerr << "daxpolicyctl: warning: releasing hold " << cookie
                << " failed: " << e.getMessage() << "\n";
    }
    return status;
  });
}

int Reload(bool session) {
  return WithDaemon(session, [&](ManagerProxy& p) {
    p.ReloadAndWait();
    std::cout << p.LastReloadResult() << "\n";
    return 0;
  });
}

int Mode(bool session, const std::string& mode) {
  if (!daxpolicy::policy::ModeByName(mode)) {
    std::cerr << "daxpolicyctl: unknown mode '" << ctl::Printable(mode)
              << "': expected enforce or observe\n";
    return kExitUsage;
  }
  return WithDaemon(session, [&](ManagerProxy& p) {
    p.SetMode(mode);
    std::cout << "mode: " << p.Mode() << "\n";
    return 0;
  });
}

int RecordStart(bool session, const std::string& output, const std::string& max_size) {
  uint64_t max_bytes = 0;  // the daemon's default
  if (!max_size.empty()) {
    std::string error;
    auto parsed = daxpolicy::policy::ParseSize(max_size, &error);
    if (!parsed) {
      std::cerr << "daxpolicyctl: --max-size '" << ctl::Printable(max_size) << "': " << error
                << "\n";
      return kExitUsage;
    }
    max_bytes = *parsed;
  }
  std::string path;
  if (!output.empty()) {
    auto absolute = AbsoluteArgument(output);
    if (!absolute) return 1;
    path = *absolute;
  }
  return WithDaemon(session, [&](ManagerProxy& p) {
    std::string file = p.StartRecording(path, max_bytes);
    std::cout << "recording to " << file << "\n";
    return 0;
  });
}

int RecordStop(bool session) {
  return WithDaemon(session, [&](ManagerProxy& p) {
    p.StopRecording();
    std::cout << p.RecordingFile() << ": " << p.RecordingResult() << "\n";
    return 0;
  });
}

// `restore --list`: the files the journal records, one per line, changing nothing.
int RestoreList(const std::string& state_dir) {
  struct stat st {};
  if (stat(state_dir.c_str(), &st) != 0 && errno == ENOENT) {
    std::cerr << "daxpolicyctl: no journal in " << ctl::Printable(state_dir)
              << ": nothing recorded\n";
    return 0;
  }
  auto journal = daxpolicy::journal::Journal::Open(state_dir);
  if (!journal.ok()) {
    std::cerr << "daxpolicyctl: restore: " << journal.error().message << "\n";
    return 1;
  }
  for (const auto& p : (*journal)->problems()) std::cerr << "daxpolicyctl: journal: " << p << "\n";
  for (const auto& e : (*journal)->Entries()) {
    std::cout << daxpolicy::journal::PrintablePath(e.AbsolutePath())
              << " (original: " << daxpolicy::policy::DaxStateName(e.original) << ")\n";
  }
  return 0;
}

int Restore(const std::string& state_dir, bool all, bool list,
            const std::vector<std::string>& args) {
  if (list) {
    if (all || !args.empty()) {
      std::cerr << "daxpolicyctl: restore --list takes neither --all nor a PATH\n";
      return kExitUsage;
    }
    return RestoreList(state_dir);
  }
  if (all == !args.empty()) {
    std::cerr << "daxpolicyctl: restore needs either --all or at least one PATH\n";
    return kExitUsage;
  }
  daxpolicy::journal::RestoreRequest request;
  if (all) {
    request = daxpolicy::journal::RestoreRequest::AllFiles();
  } else {
    std::vector<std::string> paths;
    for (const auto& a : args) {
      char cwd[PATH_MAX];
      if (!a.empty() && a.front() != '/' && getcwd(cwd, sizeof cwd) == nullptr) {
        std::cerr << "daxpolicyctl: cannot resolve '" << ctl::Printable(a)
                  << "': " << std::strerror(errno) << "\n";
        return 1;
      }
      paths.push_back(ctl::AbsolutePath(a, !a.empty() && a.front() == '/' ? "/" : cwd));
    }
    request = daxpolicy::journal::RestoreRequest::Paths(std::move(paths));
  }
  auto report = daxpolicy::journal::Restore(state_dir, request);
  if (!report.ok()) {
    std::cerr << "daxpolicyctl: restore: " << report.error().message << "\n";
    return 1;
  }
  std::cout << report->Format();
  return report->Complete() ? 0 : 1;
}

int Check(const std::vector<std::string>& files) {
  size_t total = 0;
  for (const std::string& f : files) {
    auto errors = daxpolicy::daemon::CheckPolicyFile(f);
    for (const auto& e : errors) std::cerr << e.ToString() << "\n";
    if (errors.empty()) std::cout << f << ": OK\n";
    total += errors.size();
  }
  if (total > 0) {
    std::cerr << total << (total == 1 ? " error" : " errors") << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"daxpolicyctl: inspect and steer daxpolicyd"};
  app.set_version_flag("--version", "daxpolicyctl " + std::string(daxpolicy::kVersion));
  app.require_subcommand(1);
  app.footer(kExitCodesHelp);
  app.fallthrough();  // global options after the subcommand too: `status --session`

  bool session = false;
  app.add_flag("--session", session, "Use the session bus instead of the system bus");
  bool json = false;
  app.add_flag("--json", json, "Print JSON (read commands)");

  std::vector<std::string> check_files;
  auto* check = app.add_subcommand("check", "Validate policy files offline (exit 0 valid, 1 not)");
  check->add_option("FILE", check_files, "Policy files; files in a policy.d directory are drop-ins")
      ->required();

  auto* status = app.add_subcommand("status", "Mode, policy generation, reload result, counts");

  std::string state_filter;
  auto* files = app.add_subcommand("files", "List the files daxpolicyd tracks");
  files->add_option("--state", state_filter,
                    "Only files in this state: unmanaged, in-sync, pending, deferred, observed, "
                    "blocked");

  std::string explain_path;
  auto* explain = app.add_subcommand("explain", "Why a file is in its state");
  explain->add_option("PATH", explain_path, "The file")->required();

  auto* media = app.add_subcommand("media", "Memory devices: health, latency");

  std::string hold_mode, hold_reason, hold_path;
  std::vector<std::string> hold_command;
  auto* hold =
      app.add_subcommand("hold", "Keep PATH in a mode while CMD runs; exits with CMD's status");
  hold->add_option("--mode", hold_mode, "dax or page-cache")->required();
  hold->add_option("--reason", hold_reason, "Shown to administrators");
  hold->add_option("PATH", hold_path, "The file")->required();
  hold->add_option("CMD", hold_command, "The command (after --) and its arguments")->required();

  auto* holds = app.add_subcommand(
      "holds", "Application holds (root sees every hold, other users their own)");

  auto* reload = app.add_subcommand("reload", "Re-read the policy (root only)");

  std::string new_mode;
  auto* mode = app.add_subcommand("mode", "Switch between enforce and observe (root only)");
  mode->add_option("MODE", new_mode, "enforce or observe")->required();

  auto* record = app.add_subcommand(
      "record", "Record a trace of what daxpolicyd measures, for simulate (root only)");
  record->require_subcommand(1);
  std::string record_output, record_max_size;
  auto* record_start =
      record->add_subcommand("start", "Start recording into a new trace file (root only)");
  record_start->add_option("--output", record_output,
                           "The new trace file (default: a new file in /var/lib/daxpolicy/traces)");
  record_start->add_option("--max-size", record_max_size,
                           "Stop at this size, e.g. 1GiB (64KiB to 2GiB; default 256MiB)");
  auto* record_stop = record->add_subcommand("stop", "Stop recording (root only)");
  // Global options after `record start` / `record stop` too.
  for (CLI::App* sub : {record, record_start, record_stop}) sub->fallthrough();

  std::string state_dir = "/var/lib/daxpolicy";
  bool restore_all = false;
  std::vector<std::string> restore_paths;
  auto* restore = app.add_subcommand(
      "restore", "Undo the daemon's changes from its journal (offline; stop daxpolicyd first)");
  restore->add_option("--state-dir", state_dir, "The daemon's state directory")
      ->capture_default_str();
  restore->add_flag("--all", restore_all, "Every recorded file");
  bool restore_list = false;
  restore->add_flag("--list", restore_list, "Print the recorded files and their original flag");
  restore->add_option("PATH", restore_paths, "Only these files");

  daxpolicy::ctl::SimulateArgs sim;
  sim.policy_file = daxpolicy::daemon::kDefaultConfig;
  auto* simulate = app.add_subcommand(
      "simulate",
      "Replay a trace through a policy against dax=always, dax=never and the static oracle "
      "(offline)");
  simulate->add_option("TRACE", sim.trace_file, "A trace file (docs/trace-format.md)");
  simulate->add_option("--generate", sim.generate,
                       "Generate the trace instead: a workload spec such as "
                       "'mixed:duration=2h' (--help-workloads lists them)");
  simulate->add_option("--policy", sim.policy_file, "The policy file")->capture_default_str();
  simulate->add_option("--config-dir", sim.dropin_dir,
                       "Drop-in directory (default: policy.d next to the policy file)");
  simulate->add_option(
      "--media", sim.media,
      "Use this media preset for every mount: " + daxpolicy::policy::MediaPresetList());
  simulate->add_option("--budget", sim.budget,
                       "Page cache available to the traced files (default: the trace's)");
  simulate->add_option("--chart", sim.chart_file, "Write an SVG chart of cost over time here");
  simulate->add_option("--save-trace", sim.save_trace, "Write the replayed trace here");
  simulate->add_flag("--hits", sim.hits,
                     "Compare the page-cache model's hit ratios with the recorded ones");
  simulate->add_flag("--modes", sim.modes,
                     "Show each file's modes as the trace recorded them and as the policy chose");
  bool workload_help = false;
  simulate->add_flag("--help-workloads", workload_help, "List the workload generators");

  // Every subcommand's --help shows the global options and the exit codes.
  for (CLI::App* sub : app.get_subcommands({})) {
    sub->footer(std::string(kGlobalOptionsHelp) + "\n" + kExitCodesHelp);
  }
  for (CLI::App* sub : {record_start, record_stop}) {
    sub->footer(std::string(kGlobalOptionsHelp) + "\n" + kExitCodesHelp);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; anything else is a usage error.
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  if (*simulate) {
    if (workload_help) {
      std::cout << daxpolicy::policy::WorkloadHelp();
      return 0;
    }
    sim.json = json;  // the global --json, before or after the subcommand
    return daxpolicy::ctl::RunSimulate(sim);
  }
  if (*check) return Check(check_files);
  if (*status) return Status(session, json);
  if (*files) return Files(session, json, state_filter);
  if (*explain) return Explain(session, json, explain_path);
  if (*media) return Media(session, json);
  if (*hold) return Hold(session, hold_mode, hold_reason, hold_path, hold_command);
  if (*holds) return Holds(session, json);
  if (*reload) return Reload(session);
  if (*mode) return Mode(session, new_mode);
  if (*record_start) return RecordStart(session, record_output, record_max_size);
  if (*record_stop) return RecordStop(session);
  if (*restore) return Restore(state_dir, restore_all, restore_list, restore_paths);
  return 0;
}
