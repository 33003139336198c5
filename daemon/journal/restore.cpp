// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal/restore.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>

#include "plugins/unique_fd.h"

namespace daxpolicy::journal {

namespace {

std::string_view StateName(policy::DaxState state) {
  switch (state) {
    case policy::DaxState::kDax:
      return "dax";
    case policy::DaxState::kPageCache:
      return "page-cache";
    case policy::DaxState::kUnknown:
      break;
  }
  return "unknown";
}

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

RestoreItem ItemFor(const JournalEntry& entry, const driver::ApplyOutcome& outcome) {
  RestoreItem item;
  item.path = entry.AbsolutePath();
  item.original = entry.original;
  switch (outcome.result) {
    case driver::ApplyResult::kChanged:
      item.status = RestoreStatus::kRestored;
      return item;
    case driver::ApplyResult::kUnchanged:
      item.status = RestoreStatus::kAlreadyOriginal;
      return item;
    case driver::ApplyResult::kObserved:
    case driver::ApplyResult::kBlocked:
      break;
  }
  item.error_code = outcome.error_code;
  item.detail = outcome.reason;
  if (outcome.blocker == driver::Blocker::kVanished) {
    item.status = RestoreStatus::kVanished;
  } else if (outcome.blocker == driver::Blocker::kReplaced) {
    item.status = RestoreStatus::kReplaced;
  } else {
    item.status = RestoreStatus::kFailed;
  }
  return item;
}

}  // namespace

std::string_view RestoreStatusName(RestoreStatus status) {
  switch (status) {
    case RestoreStatus::kRestored:
      return "restored";
    case RestoreStatus::kAlreadyOriginal:
      return "already original";
    case RestoreStatus::kVanished:
      return "vanished";
    case RestoreStatus::kReplaced:
      return "replaced; not touched";
    case RestoreStatus::kFailed:
      return "failed";
    case RestoreStatus::kNotRecorded:
      return "not in journal";
  }
  return "failed";
}

size_t RestoreReport::Count(RestoreStatus status) const {
  size_t n = 0;
  for (const RestoreItem& item : items) n += item.status == status;
  return n;
}

bool RestoreReport::ok() const {
  return journal_error.empty() && Count(RestoreStatus::kFailed) == 0;
}

std::string RestoreReport::Format() const {
  std::string out;
  for (const RestoreItem& item : items) {
    out += std::string(RestoreStatusName(item.status)) + ": " + PrintablePath(item.path);
    if (item.status != RestoreStatus::kNotRecorded) {
      out += " (original: " + std::string(StateName(item.original)) + ")";
    }
    if (!item.detail.empty()) out += ": " + item.detail;
    out += "\n";
  }
  for (const std::string& problem : journal_problems) out += "journal: " + problem + "\n";
  if (!journal_error.empty()) out += "journal: " + journal_error + "\n";
  out += std::to_string(Count(RestoreStatus::kRestored)) + " restored, " +
         std::to_string(Count(RestoreStatus::kAlreadyOriginal)) + " already original, " +
         std::to_string(Count(RestoreStatus::kVanished)) + " vanished, " +
         std::to_string(Count(RestoreStatus::kReplaced)) + " replaced, " +
         std::to_string(Count(RestoreStatus::kFailed)) + " failed";
  if (size_t unknown = Count(RestoreStatus::kNotRecorded)) {
    out += ", " + std::to_string(unknown) + " not in journal";
  }
  out += "\n";
  return out;
}

Result<RestoreReport> Restore(const std::string& state_dir, const RestoreRequest& request) {
  Result<std::unique_ptr<Journal>> opened = Journal::Open(state_dir, request.journal);
  if (!opened.ok()) return opened.error();
  Journal& journal = **opened;
  RestoreReport report;
  report.journal_problems = journal.problems();

  std::vector<JournalEntry> selected;
  const std::vector<JournalEntry> entries = journal.Entries();
  if (request.all) {
    selected = entries;
  } else {
    std::set<std::string> wanted;
    for (const std::string& p : request.paths) wanted.insert(StripTrailingSlashes(p));
    std::set<std::string> found;
    for (const JournalEntry& e : entries) {
      std::string path = e.AbsolutePath();
      if (wanted.count(path)) {
        selected.push_back(e);
        found.insert(path);
      }
    }
    for (const std::string& p : wanted) {
      if (!found.count(p)) {
        report.items.push_back(
            RestoreItem{p, RestoreStatus::kNotRecorded, policy::DaxState::kUnknown, 0, ""});
      }
    }
  }

  driver::DriverOptions options;
  options.open = request.open;
  options.allow_hard_links = true;
  driver::InodeFlagDriver driver(request.kernel, options);
  std::map<std::string, daxpolicy::UniqueFd> roots;
  std::vector<RestoreItem> items;
  std::vector<FileKey> done;
  for (const JournalEntry& entry : selected) {
    auto root = roots.find(entry.scope_root);
    if (root == roots.end()) {
      daxpolicy::UniqueFd fd(open(entry.scope_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      root = roots.emplace(entry.scope_root, std::move(fd)).first;
    }
    driver::ApplyOutcome outcome;
    if (!root->second.valid()) {
      outcome = driver::BlockedOutcome(
          errno == ENOENT ? driver::Blocked{driver::Blocker::kVanished, ENOENT,
                                            "scope root " + entry.scope_root + " is gone"}
                          : driver::Blocked{driver::Blocker::kOther, errno,
                                            driver::OtherReason("open scope root", errno)});
    } else {
      driver::FileRef ref{root->second.get(), entry.path, {entry.key.dev, entry.key.ino}};
      Result<driver::ApplyOutcome> applied = driver.Apply(ref, entry.original, {});
      outcome = applied.ok()
                    ? std::move(applied).value()
                    : driver::BlockedOutcome(driver::Blocked{
                          driver::Blocker::kOther, applied.error().code, applied.error().message});
    }
    RestoreItem item = ItemFor(entry, outcome);
    if (item.status == RestoreStatus::kRestored || item.status == RestoreStatus::kAlreadyOriginal ||
        item.status == RestoreStatus::kVanished) {
      done.push_back(entry.key);
    }
    items.push_back(std::move(item));
  }
  Result<void> forgotten = journal.Forget(done);
  if (!forgotten.ok()) report.journal_error = forgotten.error().message;
  items.insert(items.end(), report.items.begin(), report.items.end());
  report.items = std::move(items);
  return report;
}

}  // namespace daxpolicy::journal
