// SPDX-License-Identifier: Apache-2.0
// Holds on real files (loop-mounted xfs and ext4): the owner is checked on the very file the
// hold is taken on, a symlink swapped in mid-call never gets another user's file held, and a
// hold ends with its file, even when a new file gets the same inode number.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "daemon/engine.h"
#include "daemon/wiring.h"
#include "policy/loader.h"
#include "tests/support/test_support.h"

namespace daxpolicy::daemon {
namespace {

using ::daxpolicy::testing::FsType;
using ::daxpolicy::testing::LoopFs;
using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;
namespace fs = std::filesystem;

constexpr uid_t kNobody = 65534;

Caller User(uid_t uid, std::string sender) {
  Caller c;
  c.uid = uid;
  c.sender = std::move(sender);
  return c;
}

uint64_t InodeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

class EngineHolds : public ::testing::TestWithParam<FsType> {
 protected:
  void SetUp() override {
    DAXPOLICY_REQUIRE(!LoopFs::Unavailable(), LoopFs::Unavailable().value_or(""));
    std::string error;
    fs_ = LoopFs::Create(GetParam(), &error, 300);
    ASSERT_NE(fs_, nullptr) << error;
    root_ = fs_->mount_point().string();
    fs::create_directories(root_ + "/race/d");
    fs::create_directories(root_ + "/theirs");
    WriteFile(root_ + "/race/d/x", "mine");
    WriteFile(root_ + "/theirs/x", "root's");
    WriteFile(root_ + "/mine", "mine");
    ASSERT_EQ(chown((root_ + "/race").c_str(), kNobody, kNobody), 0);
    ASSERT_EQ(chown((root_ + "/race/d").c_str(), kNobody, kNobody), 0);
    ASSERT_EQ(chown((root_ + "/race/d/x").c_str(), kNobody, kNobody), 0);
    ASSERT_EQ(chown((root_ + "/mine").c_str(), kNobody, kNobody), 0);
    options_.state_dir = state_.path().string();
    std::string text = "apiVersion: daxpolicy/v1\nscopes: [ " + root_ +
                       " ]\ndefaults: { dax: keep, min_dwell: 0s }\nrules:\n"
                       "  - name: all\n    match: { path: \"" +
                       root_ + "/**\" }\n    dax: off\n";
    policy::LoadResult loaded = policy::LoadPolicy({"test.yaml", text});
    ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().ToString();
    auto engine =
        Engine::Create(options_, *loaded.policy, MakeEngineParts(options_, *loaded.policy));
    ASSERT_TRUE(engine.ok()) << engine.error().message;
    engine_ = std::move(*engine);
    engine_->RunCycle();
  }

  std::vector<HoldInfo> Holds() {
    std::vector<HoldInfo> out;
    engine_->ForEachHold(User(0, ":1.0"), [&](const HoldInfo& h) { out.push_back(h); });
    return out;
  }

  std::unique_ptr<LoopFs> fs_;
  std::string root_;
  TempDir state_;
  Options options_;
  std::unique_ptr<Engine> engine_;
};

TEST_P(EngineHolds, ChecksTheOwnerOfTheFileItHolds) {
  const Caller nobody = User(kNobody, ":1.7");
  auto own = engine_->AddHold(root_ + "/mine", policy::DaxState::kDax, "", nobody);
  ASSERT_TRUE(own.ok()) << own.failure->message;
  auto other = engine_->AddHold(root_ + "/theirs/x", policy::DaxState::kDax, "", nobody);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.failure->error, ApiError::kPermissionDenied);
  EXPECT_EQ(other.failure->message,
            "uid 65534 may not hold '" + root_ + "/theirs/x': only its owner (uid 0) or root may");
  auto root = engine_->AddHold(root_ + "/theirs/x", policy::DaxState::kDax, "", User(0, ":1.1"));
  EXPECT_TRUE(root.ok());
}

TEST_P(EngineHolds, NeverHoldsAnotherUsersFileThroughASwappedSymlink) {
  // The caller owns race/d and swaps it with a symlink to root's directory, again and again,
  // while it asks for holds on race/d/x: every hold it gets is on its own file.
  const std::string d = root_ + "/race/d", parked = root_ + "/race/parked";
  const uint64_t mine = InodeOf(d + "/x"), theirs = InodeOf(root_ + "/theirs/x");
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    while (!stop.load()) {
      rename(d.c_str(), parked.c_str());
      symlink((root_ + "/theirs").c_str(), d.c_str());
      unlink(d.c_str());
      rename(parked.c_str(), d.c_str());
    }
  });
  const Caller nobody = User(kNobody, ":1.7");
  int held = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    auto r = engine_->AddHold(d + "/x", policy::DaxState::kDax, "", nobody);
    if (!r.ok()) {
      ++refused;
      continue;
    }
    ++held;
    for (const HoldInfo& h : Holds()) {
      ASSERT_EQ(h.ino, mine) << "attempt " << i << " held inode " << h.ino << " (root's is "
                             << theirs << ")";
    }
    ASSERT_TRUE(engine_->ReleaseHold(*r.value, nobody));
  }
  stop = true;
  swapper.join();
  RecordProperty("held", held);
  RecordProperty("refused", refused);
  EXPECT_GT(held, 0);
}

TEST_P(EngineHolds, EndsAHoldWithItsFileEvenWhenTheInodeNumberIsReused) {
  const Caller nobody = User(kNobody, ":1.7");
  const std::string f = root_ + "/mine";
  const uint64_t ino = InodeOf(f);
  auto r = engine_->AddHold(f, policy::DaxState::kDax, "", nobody);
  ASSERT_TRUE(r.ok()) << r.failure->message;
  ASSERT_EQ(unlink(f.c_str()), 0);
  // Another file gets the inode number (filesystems hand freed numbers out again soon).
  std::string reused;
  for (int i = 0; i < 2000 && reused.empty(); ++i) {
    std::string g = root_ + "/new" + std::to_string(i);
    WriteFile(g, "another user's");
    if (InodeOf(g) == ino) reused = g;
  }
  ASSERT_FALSE(reused.empty()) << "inode " << ino << " was not reused";
  engine_->RunCycle();
  EXPECT_TRUE(Holds().empty());
  auto ended = engine_->TakeEndedHolds();
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].cookie, *r.value);
  EXPECT_EQ(ended[0].why, "file gone");
  engine_->RunCycle();
  auto state = engine_->GetFile(reused);
  ASSERT_TRUE(state.ok()) << state.failure->message;
  EXPECT_EQ(state.value->reason.find("application hold"), std::string::npos) << state.value->reason;
}

INSTANTIATE_TEST_SUITE_P(Filesystems, EngineHolds, ::testing::Values(FsType::kXfs, FsType::kExt4),
                         [](const auto& info) {
                           return std::string(testing::FsTypeName(info.param));
                         });

}  // namespace
}  // namespace daxpolicy::daemon
