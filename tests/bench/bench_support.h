// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the benchmarks that run on a loop-mounted xfs share: a work directory,
// the image and its mount, and shell commands. A benchmark that needs root
// exits 77 (skipped) outside CI and 1 under CI (daxpolicy::testing::InCi).

#include <cstdint>
#include <string>

#include "tests/support/test_support.h"

namespace daxpolicy::bench {

// Runs `cmd` with /bin/sh; its exit status (128 when it did not exit).
int Shell(const std::string& cmd);

// A fresh directory $TMPDIR/PREFIX-XXXXXX, or under /var/tmp (the images are
// large for a tmpfs /tmp); "" when it cannot be made.
std::string MakeWorkDir(const std::string& prefix);

// Makes the sparse image `image`, an xfs (reflink=0) big enough for `files`
// files of up to 4 KiB, and mounts it -o loop,dax=inode on `mount_point` (an
// existing directory). False when a step fails.
bool MountXfsFor(uint64_t files, const std::string& image, const std::string& mount_point);

}  // namespace daxpolicy::bench
