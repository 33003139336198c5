// SPDX-License-Identifier: Apache-2.0
#pragma once

// The one UTF-8 decoder of the project, for the code that passes any-byte names on in a
// printable or bus-safe form (journal::PrintablePath, bus::EscapeForBus).

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace daxpolicy {

/// Length (1 to 4) of the well-formed UTF-8 sequence at text[i], 0 when the byte there
/// starts none: the shortest form only (overlong encodings are a classic way around path
/// checks), no surrogates, nothing above U+10FFFF, no sequence cut short. NUL counts as a
/// one-byte sequence.
inline size_t Utf8SequenceAt(std::string_view text, size_t i) {
  const auto c = static_cast<uint8_t>(text[i]);
  size_t len = 0;
  uint32_t cp = 0;
  if (c < 0x80) {
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<uint8_t>(text[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace daxpolicy
