// SPDX-License-Identifier: Apache-2.0
// Records originals in batches and flips DAX flags over many files, forever, so that a test
// can SIGKILL it at random moments and then check that restore undoes everything. Half of each
// batch is then set back and forgotten, as restore does, so the journal keeps being written.
//
// usage: journal_stress STATE_DIR SCOPE_ROOT COUNT BATCH [N STEP]
// With N and STEP: SIGKILL itself at the N-th time the journal reaches STEP of its write
// protocol ("created", "written", "synced", "renamed", "removing").
// Files are SCOPE_ROOT/f00000 ... f<COUNT-1>. Prints "writing" before and "recorded" after each
// durable batch write and "applied" after each file, unbuffered, so the test can pick its moment.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "daemon/journal/journal.h"
#include "plugins/driver/inode_flag_driver.h"

namespace {

using daxpolicy::Result;
using daxpolicy::driver::DaxState;

void Say(const std::string& line) {
  std::string l = line + "\n";
  if (write(STDOUT_FILENO, l.data(), l.size()) < 0) _exit(5);
}

std::string Name(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "f%05d", i);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && argc != 7) {
    std::fprintf(stderr, "usage: journal_stress STATE_DIR SCOPE_ROOT COUNT BATCH [N STEP]\n");
    return 64;
  }
  const std::string state_dir = argv[1];
  const std::string scope = argv[2];
  const int count = std::atoi(argv[3]);
  const int batch = std::atoi(argv[4]);
  namespace driver = daxpolicy::driver;
  namespace journal = daxpolicy::journal;

  journal::JournalOptions options;
  if (argc == 7) {
    long crash_at = std::atol(argv[5]);
    std::string crash_step = argv[6];
    options.crash_point_for_test = [crash_at, crash_step,
                                    seen = 0L](std::string_view step) mutable {
      if (step == crash_step && ++seen == crash_at) raise(SIGKILL);
    };
  }
  auto opened = journal::Journal::Open(state_dir, options);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.error().message.c_str());
    return 1;
  }
  journal::Journal& j = **opened;
  for (const std::string& p : j.problems()) std::fprintf(stderr, "problem: %s\n", p.c_str());
  Say("problems " + std::to_string(j.problems().size()));
  int root = open(scope.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return 1;
  driver::InodeFlagDriver drv(driver::KernelVersion::Running());
  driver::ApplyHooks hooks;
  hooks.before_change = [&](uint64_t dev, uint64_t ino, std::string_view, DaxState,
                            int) -> Result<void> {
    if (j.Find(journal::FileKey{dev, ino}) == nullptr) {
      std::fprintf(stderr, "changing a file whose original is not recorded\n");
      _exit(3);
    }
    return {};
  };
  for (;;) {
    for (int start = 0; start < count; start += batch) {
      std::vector<journal::JournalEntry> entries;
      std::vector<driver::FileRef> refs;
      std::vector<DaxState> now;
      for (int i = start; i < std::min(count, start + batch); ++i) {
        driver::FileRef ref{root, Name(i), {}};
        Result<driver::FileFlags> flags = drv.Read(ref);
        if (!flags.ok()) {
          std::fprintf(stderr, "%s: %s\n", ref.path.c_str(), flags.error().message.c_str());
          return 2;
        }
        ref.expected = {flags->dev, flags->ino};
        entries.push_back(
            journal::JournalEntry{{flags->dev, flags->ino}, scope, ref.path, flags->physical});
        refs.push_back(ref);
        now.push_back(flags->physical);
      }
      Say("writing");
      Result<size_t> recorded = j.RecordOriginals(entries);
      if (!recorded.ok()) {
        std::fprintf(stderr, "%s\n", recorded.error().message.c_str());
        return 2;
      }
      Say("recorded");
      for (size_t k = 0; k < refs.size(); ++k) {
        DaxState flip = now[k] == DaxState::kDax ? DaxState::kPageCache : DaxState::kDax;
        Result<driver::ApplyOutcome> out = drv.Apply(refs[k], flip, hooks);
        if (!out.ok() || out->result != driver::ApplyResult::kChanged) {
          std::fprintf(stderr, "%s: not changed\n", refs[k].path.c_str());
          return 4;
        }
        Say("applied");
      }
      // Undo the first half of the batch like restore does (flag back, then forget), so that
      // every pass keeps writing segments, forgets and compactions instead of only the first.
      std::vector<std::string> undone;
      for (size_t k = 0; k < refs.size() / 2; ++k) {
        const journal::JournalEntry* e = j.Find(entries[k].key);
        if (e == nullptr) return 3;
        Result<driver::ApplyOutcome> out = drv.Apply(refs[k], e->original, {});
        if (!out.ok() || out->blocked()) return 4;
        undone.push_back(journal::EntryKey(*e));
      }
      Say("writing");
      Result<void> forgotten = j.Forget(undone);
      if (!forgotten.ok()) {
        std::fprintf(stderr, "%s\n", forgotten.error().message.c_str());
        return 2;
      }
      Say("forgotten");
    }
  }
}
