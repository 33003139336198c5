// SPDX-License-Identifier: Apache-2.0
// FakeDriver used as the engine uses its enforce driver: Apply() on the
// worker thread while the event loop re-checks closed files with
// ReadEffective(). Built with ThreadSanitizer, which fails the run on a race.

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "plugins/driver/fake_driver.h"

namespace daxpolicy::driver {
namespace {

TEST(AFakeDriver, ReadsEffectiveStatesWhileAnotherThreadApplies) {
  constexpr int kFiles = 200;
  FakeDriver driver;
  for (int i = 0; i < kFiles; ++i) {
    FileFlags f;
    f.dev = 1;
    f.ino = 100 + static_cast<uint64_t>(i);
    f.physical = f.effective = DaxState::kPageCache;
    driver.SetFile("f" + std::to_string(i), f);
  }
  auto ref = [](int i) {
    return FileRef{-1, "f" + std::to_string(i), {1, 100 + static_cast<uint64_t>(i)}};
  };
  std::thread worker([&] {
    for (int i = 0; i < kFiles; ++i) {
      Result<ApplyOutcome> out = driver.Apply(ref(i), DaxState::kDax, {});
      ASSERT_TRUE(out.ok());
      EXPECT_EQ(out->result, ApplyResult::kChanged);
    }
  });
  for (int i = 0; i < kFiles; ++i) {
    const DaxState seen = driver.ReadEffective(ref(i));
    EXPECT_TRUE(seen == DaxState::kPageCache || seen == DaxState::kDax);
  }
  worker.join();
  for (int i = 0; i < kFiles; ++i) EXPECT_EQ(driver.ReadEffective(ref(i)), DaxState::kDax);
}

}  // namespace
}  // namespace daxpolicy::driver
