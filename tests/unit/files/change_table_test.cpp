// SPDX-License-Identifier: Apache-2.0
// ChangeTable: filesystem events in, the next cycle's work out. A fake event
// source plays a small tree and reports each operation the way fanotify in
// FAN_REPORT_DFID_NAME mode does (parent directory handle + name), and resolves
// directory handles against the tree as it is when the events are read.

#include "plugins/files/change_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace daxpolicy::files {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

// A tree of directories with handles, and the events operations on it cause.
class FakeEventSource {
 public:
  FakeEventSource() {
    for (const char* d : {"/", "/s", "/s/d1", "/s/d2", "/t", "/out"}) AddDir(d);
  }

  // --- Operations (each queues the events the kernel would) ---
  void Create(const std::string& path) { Queue(path, kFsCreate, false); }
  void Write(const std::string& path) { Queue(path, kFsModify, false); }
  void Chattr(const std::string& path) { Queue(path, kFsAttrib, false); }
  void CloseWrite(const std::string& path) { Queue(path, kFsCloseWrite, false); }
  void Remove(const std::string& path) { Queue(path, kFsDelete, false); }
  // Events on a directory itself name it by its own handle and ".".
  void ChattrDir(const std::string& path) {
    FsEvent e;
    e.dir_key = key_of_.at(path);
    e.name = ".";
    e.mask = kFsAttrib;
    e.is_dir = true;
    queue_.push_back(e);
  }
  void Mkdir(const std::string& path) {
    Queue(path, kFsCreate, true);
    AddDir(path);
  }
  void Rmdir(const std::string& path) {
    Queue(path, kFsDelete, true);
    key_of_.erase(path);
  }
  void Move(const std::string& from, const std::string& to, bool is_dir = false) {
    Queue(from, kFsMovedFrom, is_dir);
    if (is_dir) {
      // Every directory at or below `from` keeps its handle under a new path.
      std::map<std::string, std::string> moved;
      for (auto it = key_of_.begin(); it != key_of_.end();) {
        if (it->first == from || it->first.rfind(from + "/", 0) == 0) {
          moved[to + it->first.substr(from.size())] = it->second;
          it = key_of_.erase(it);
        } else {
          ++it;
        }
      }
      key_of_.insert(moved.begin(), moved.end());
    }
    Queue(to, kFsMovedTo, is_dir);
  }
  void Overflow() {
    FsEvent e;
    e.overflow = true;
    queue_.push_back(e);
  }
  // The next resolution of `dir`'s handle fails with an error.
  void BreakHandleOf(const std::string& dir) { broken_.insert(key_of_.at(dir)); }

  // Hands the queued events to `table`, as the daemon's drain does.
  void DrainInto(ChangeTable& table) {
    for (const FsEvent& e : queue_) table.Add(e);
    queue_.clear();
  }

  // Hands the queued events to `table` and says what each Add() returned.
  std::vector<bool> AddQueued(ChangeTable& table) {
    std::vector<bool> out;
    for (const FsEvent& e : queue_) out.push_back(table.Add(e));
    queue_.clear();
    return out;
  }

  // Handle -> the directory's path now.
  DirResolution Resolve(std::string_view key) {
    ++resolutions_;
    if (broken_.count(std::string(key))) return {DirResolution::kError, "", "ESTALE"};
    for (const auto& [path, k] : key_of_) {
      if (k == key) return {DirResolution::kFound, path, ""};
    }
    return {DirResolution::kGone, "", ""};
  }
  int resolutions() const { return resolutions_; }

 private:
  void AddDir(const std::string& path) { key_of_[path] = "key" + std::to_string(next_key_++); }
  void Queue(const std::string& path, uint32_t mask, bool is_dir) {
    const size_t slash = path.rfind('/');
    const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    FsEvent e;
    e.dir_key = key_of_.at(parent);
    e.name = path.substr(slash + 1);
    e.mask = mask;
    e.is_dir = is_dir;
    queue_.push_back(e);
  }

  std::map<std::string, std::string> key_of_;  // path -> handle
  std::set<std::string> broken_;
  std::vector<FsEvent> queue_;
  int next_key_ = 0;
  int resolutions_ = 0;
};

ChangeTable MakeTable(FakeEventSource& src, ChangeTable::Options options = {}) {
  return ChangeTable(
      {"/s", "/t"}, [&src](std::string_view key) { return src.Resolve(key); }, options);
}

// What a set shows of one scope, as text: "path=kind", "walk:dir", "gone:dir", "full:why".
std::vector<std::string> Describe(const ChangeSet::Scope& s) {
  std::vector<std::string> out;
  if (s.full_walk) out.push_back("full:" + s.why);
  for (const auto& [path, change] : s.paths) {
    out.push_back(path + "=" + std::string(PathChangeName(change)));
  }
  for (const std::string& d : s.gone_dirs) out.push_back("gone:" + d);
  for (const std::string& d : s.walk_dirs) out.push_back("walk:" + d);
  return out;
}

struct Case {
  const char* name;
  std::function<void(FakeEventSource&)> ops;
  std::vector<std::string> scope_s;       // expected Describe() of scope /s
  std::vector<std::string> scope_t = {};  // and of scope /t
};

class AChangeTable : public ::testing::TestWithParam<Case> {};

TEST_P(AChangeTable, TurnsEventsIntoTheNextCyclesWork) {
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  GetParam().ops(src);
  src.DrainInto(table);
  ChangeSet set = table.Take();
  ASSERT_EQ(set.scopes.size(), 2u);
  EXPECT_EQ(Describe(set.scopes[0]), GetParam().scope_s);
  EXPECT_EQ(Describe(set.scopes[1]), GetParam().scope_t);
  // Take() starts over.
  EXPECT_TRUE(table.Take().empty());
}

const Case kCases[] = {
    {"create", [](FakeEventSource& s) { s.Create("/s/a"); }, {"/s/a=new"}},
    {"write", [](FakeEventSource& s) { s.Write("/s/d1/f"); }, {"/s/d1/f=dirty"}},
    {"chattr_and_close",
     [](FakeEventSource& s) {
       s.Chattr("/s/a");
       s.CloseWrite("/s/d2/b");
     },
     {"/s/a=dirty", "/s/d2/b=dirty"}},
    {"create_then_write_stays_new",
     [](FakeEventSource& s) {
       s.Create("/s/a");
       s.Write("/s/a");
       s.CloseWrite("/s/a");
     },
     {"/s/a=new"}},
    {"create_then_remove_is_gone",
     [](FakeEventSource& s) {
       s.Create("/s/a");
       s.Remove("/s/a");
     },
     {"/s/a=gone"}},
    {"remove_then_create_is_new",
     [](FakeEventSource& s) {
       s.Remove("/s/a");
       s.Create("/s/a");
     },
     {"/s/a=new"}},
    {"removed_file_written_through_an_open_fd_stays_gone",
     [](FakeEventSource& s) {
       s.Remove("/s/a");
       s.Write("/s/a");
     },
     {"/s/a=gone"}},
    {"rename_across_directories",
     [](FakeEventSource& s) { s.Move("/s/d1/f", "/s/d2/g"); },
     {"/s/d1/f=gone", "/s/d2/g=new"}},
    {"rename_over_an_existing_file",
     [](FakeEventSource& s) {
       s.Write("/s/d2/g");
       s.Move("/s/d1/f", "/s/d2/g");
     },
     {"/s/d1/f=gone", "/s/d2/g=new"}},
    {"new_directory_is_walked_not_listed",
     [](FakeEventSource& s) {
       s.Mkdir("/s/n");
       s.Create("/s/n/a");
       s.Mkdir("/s/n/m");
       s.Create("/s/n/m/b");
     },
     {"walk:/s/n"}},
    {"directory_renamed_across_directories",
     [](FakeEventSource& s) {
       s.Write("/s/d1/f");
       s.Move("/s/d1", "/s/d2/x", true);
       s.Write("/s/d2/x/f");
     },
     {"gone:/s/d1", "walk:/s/d2/x"}},
    {"tree_removed",
     [](FakeEventSource& s) {
       s.Mkdir("/s/d1/sub");
       s.Remove("/s/d1/sub/a");
       s.Rmdir("/s/d1/sub");
       s.Remove("/s/d1/f");
       s.Rmdir("/s/d1");
     },
     {"gone:/s/d1"}},
    {"directory_replaced_by_a_new_one",
     [](FakeEventSource& s) {
       s.Move("/s/d1", "/out/old", true);
       s.Mkdir("/s/d1");
       s.Create("/s/d1/f");
     },
     {"gone:/s/d1", "walk:/s/d1"}},
    {"moved_out_of_and_into_the_scope",
     [](FakeEventSource& s) {
       s.Move("/s/a", "/out/a");
       s.Move("/out/b", "/s/d1/b");
       s.Create("/out/c");
     },
     {"/s/a=gone", "/s/d1/b=new"}},
    {"directory_attributes", [](FakeEventSource& s) { s.ChattrDir("/s/d1"); }, {"/s/d1=dirty"}},
    {"overflow_asks_for_a_full_walk",
     [](FakeEventSource& s) {
       s.Create("/s/a");
       s.Overflow();
       s.Create("/s/b");
     },
     {"full:the kernel's event queue overflowed"},
     {"full:the kernel's event queue overflowed"}},
    {"root_renamed_asks_for_a_full_walk",
     [](FakeEventSource& s) { s.Move("/s", "/out/s", true); },
     {"full:the scope root itself was created, removed or renamed"}},
};

INSTANTIATE_TEST_SUITE_P(Cases, AChangeTable, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(AChangeTableDirCache, FindsFilesOfARenamedDirectoryUnderTheNewPathAfterACycle) {
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  src.Write("/s/d1/f");  // caches d1's handle as /s/d1
  src.DrainInto(table);
  (void)table.Take();
  src.Move("/s/d1", "/s/d2/x", true);
  src.DrainInto(table);
  (void)table.Take();
  src.Write("/s/d2/x/f");  // the same handle, now at another path
  src.DrainInto(table);
  EXPECT_THAT(Describe(table.Take().scopes[0]), ElementsAre("/s/d2/x/f=dirty"));
}

TEST(AChangeTableDirCache, ResolvesEachDirectoryOnce) {
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  for (int i = 0; i < 50; ++i) src.Write("/s/d1/f" + std::to_string(i));
  src.DrainInto(table);
  EXPECT_EQ(table.Take().scopes[0].paths.size(), 50u);
  EXPECT_EQ(src.resolutions(), 1);
  EXPECT_EQ(table.cached_dirs(), 1u);
}

TEST(AChangeTableDirCache, OverflowForgetsCachedPaths) {
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  src.Write("/s/d1/f");
  src.DrainInto(table);
  EXPECT_EQ(table.cached_dirs(), 1u);
  src.Overflow();
  src.DrainInto(table);
  EXPECT_EQ(table.cached_dirs(), 0u);
  ChangeSet set = table.Take();
  EXPECT_EQ(set.overflows, 1u);
  EXPECT_TRUE(set.scopes[0].full_walk);
  EXPECT_TRUE(set.scopes[1].full_walk);
}

TEST(AChangeTableOtherScope, PutsEventsInTheScopeTheyBelongTo) {
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  src.Create("/t/x");
  src.Create("/out/y");
  src.DrainInto(table);
  ChangeSet set = table.Take();
  EXPECT_THAT(Describe(set.scopes[0]), IsEmpty());
  EXPECT_THAT(Describe(set.scopes[1]), ElementsAre("/t/x=new"));
  EXPECT_EQ(set.outside, 1u);
  EXPECT_EQ(set.events, 2u);
}

TEST(AChangeTableLimits, TurnsAFloodIntoAFullWalkOfThatScopeOnly) {
  FakeEventSource src;
  ChangeTable::Options options;
  options.max_paths_per_scope = 3;
  ChangeTable table = MakeTable(src, options);
  for (int i = 0; i < 10; ++i) src.Create("/s/f" + std::to_string(i));
  src.Create("/t/x");
  src.DrainInto(table);
  ChangeSet set = table.Take();
  EXPECT_TRUE(set.scopes[0].full_walk);
  EXPECT_THAT(set.scopes[0].paths, IsEmpty());
  EXPECT_EQ(set.scopes[0].why, "more than 3 changed paths between two cycles");
  EXPECT_THAT(Describe(set.scopes[1]), ElementsAre("/t/x=new"));
}

TEST(AChangeTableResolver, WalksEverythingWhenAHandleCannotBeResolved) {
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  src.BreakHandleOf("/s/d1");
  src.Write("/s/d1/f");
  src.DrainInto(table);
  ChangeSet set = table.Take();
  EXPECT_TRUE(set.scopes[0].full_walk);
  EXPECT_TRUE(set.scopes[1].full_walk);
  EXPECT_THAT(set.scopes[0].why, ::testing::HasSubstr("ESTALE"));
}

TEST(AChangeTableResolver, IgnoresEventsOfADirectoryThatIsGoneByNow) {
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  src.Mkdir("/s/tmp");
  src.DrainInto(table);
  (void)table.Take();
  // Read only after the directory is gone: its handle leads nowhere, and its
  // removal is reported on its parent.
  src.Remove("/s/tmp/a");
  src.Rmdir("/s/tmp");
  src.DrainInto(table);
  ChangeSet set = table.Take();
  EXPECT_EQ(set.unresolved, 1u);
  EXPECT_THAT(Describe(set.scopes[0]), ElementsAre("gone:/s/tmp"));
}

TEST(AChangeTableCue, SaysWhichEventsNameSomethingNewInAScope) {
  // The daemon's cue for an early cycle: entries created, moved in or closed
  // after writing in a scope; not writes still under way, attribute changes,
  // removals, events outside every scope or an overflow.
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  struct Op {
    const char* what;
    std::function<void()> op;
    std::vector<bool> want;  // per event it queues
  };
  const std::vector<Op> ops = {
      {"create", [&] { src.Create("/s/d1/new"); }, {true}},
      {"create in the other scope", [&] { src.Create("/t/new"); }, {true}},
      {"close after writing", [&] { src.CloseWrite("/s/d1/f"); }, {true}},
      {"mkdir", [&] { src.Mkdir("/s/d1/sub"); }, {true}},
      {"create below a new directory", [&] { src.Create("/s/d1/sub/x"); }, {true}},
      {"move in from outside", [&] { src.Move("/out/a", "/s/d2/a"); }, {false, true}},
      {"move out", [&] { src.Move("/s/d2/b", "/out/b"); }, {false, false}},
      {"write", [&] { src.Write("/s/d1/f"); }, {false}},
      {"chattr", [&] { src.Chattr("/s/d1/f"); }, {false}},
      {"chattr of a directory", [&] { src.ChattrDir("/s/d1"); }, {false}},
      {"remove", [&] { src.Remove("/s/d1/f"); }, {false}},
      {"create outside", [&] { src.Create("/out/z"); }, {false}},
      {"overflow", [&] { src.Overflow(); }, {false}},
      {"create during a full walk", [&] { src.Create("/s/d1/later"); }, {true}},
      {"write during a full walk", [&] { src.Write("/s/d1/later"); }, {false}},
  };
  for (const Op& o : ops) {
    o.op();
    EXPECT_EQ(src.AddQueued(table), o.want) << o.what;
  }
}

TEST(AChangeTableFullWalk, CanBeAskedForOneScope) {
  FakeEventSource src;
  ChangeTable table = MakeTable(src);
  src.Create("/s/a");
  src.Create("/t/a");
  src.DrainInto(table);
  table.RequireFullWalk(1, "the mark could not be set");
  ChangeSet set = table.Take();
  EXPECT_THAT(Describe(set.scopes[0]), ElementsAre("/s/a=new"));
  EXPECT_THAT(Describe(set.scopes[1]), ElementsAre("full:the mark could not be set"));
  EXPECT_THAT(set.scopes[1].paths, IsEmpty());
}

}  // namespace
}  // namespace daxpolicy::files
