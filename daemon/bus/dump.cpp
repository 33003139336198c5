// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/dump.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/bus/validate.h"

namespace daxpolicy::bus {

void AppendDumpField(std::string* line, std::string_view path) {
  for (char c : EscapeForBus(path)) {
    if (c == '\t') {
      *line += "\\x09";
    } else if (c == '\n') {
      *line += "\\x0a";
    } else {
      *line += c;
    }
  }
}

Result<UniqueFd> DumpToMemfd(
    const std::function<void(const std::function<void(std::string_view)>& write)>& fill) {
  UniqueFd fd(memfd_create("daxpolicy-files", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd.get() < 0) return ErrnoError(errno, "memfd_create");
  std::string buffer;
  int failed = 0;
  auto flush = [&] {
    size_t done = 0;
    while (done < buffer.size() && failed == 0) {
      ssize_t n = write(fd.get(), buffer.data() + done, buffer.size() - done);
      if (n < 0) {
        if (errno != EINTR) failed = errno;
        continue;
      }
      done += static_cast<size_t>(n);
    }
    buffer.clear();
  };
  fill([&](std::string_view text) {
    buffer.append(text);
    if (buffer.size() >= (1u << 20)) flush();
  });
  flush();
  if (failed != 0) return ErrnoError(failed, "writing the listing");
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    return ErrnoError(errno, "sealing the listing");
  }
  if (lseek(fd.get(), 0, SEEK_SET) != 0) return ErrnoError(errno, "lseek");
  return fd;
}

}  // namespace daxpolicy::bus
