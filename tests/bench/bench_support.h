// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the benchmarks that run on a loop-mounted xfs share: a work directory,
// the image and its mount, and shell commands. A benchmark that needs root
// exits 77 (skipped) outside CI and 1 under CI (daxpolicy::testing::InCi).

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "policy/policy.h"
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

// The engine benchmarks' policy over the scope `root`: files of at least
// `min_size` (e.g. "1MiB") on DAX, the rest in the page cache; `settings` (YAML
// lines such as daemon: and defaults:) come before the rules. Nothing, with the
// first error on stderr, when it does not load.
std::optional<policy::Policy> SizeSplitPolicy(const std::string& root, const std::string& min_size,
                                              const std::string& settings);

// Process `pid`'s CPU time so far (utime + stime of /proc/PID/stat), seconds;
// 0 when it cannot be read.
double ProcessCpuSeconds(pid_t pid);

}  // namespace daxpolicy::bench
