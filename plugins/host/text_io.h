// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small helpers shared by the host readers. Not part of the public interface.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"

namespace daxpolicy::host::internal {

// Reads a whole file with read(2) until EOF: procfs and sysfs files report a
// size of 0, so the size from stat cannot be trusted. The error code is the
// errno of the failing open/read.
Result<std::string> ReadWholeFile(const std::filesystem::path& path);

// Splits on one separator character; empty pieces are kept.
std::vector<std::string_view> Split(std::string_view text, char separator);

// Splits on runs of spaces and tabs; no empty pieces.
std::vector<std::string_view> SplitWhitespace(std::string_view text);

std::string_view Trim(std::string_view text);

// Whole-string unsigned parse in the given base; nullopt on anything else
// (empty, sign, trailing characters, overflow).
std::optional<uint64_t> ParseUnsigned(std::string_view text, int base = 10);

// Whole-string decimal like "12.34"; nullopt on garbage, NaN or infinity.
std::optional<double> ParseDecimal(std::string_view text);

// Quotes a piece of untrusted input for an error message, shortened.
std::string Quote(std::string_view text);

}  // namespace daxpolicy::host::internal
