// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Text helpers of daxpolicyctl's human-readable output and argument handling.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace daxpolicy::ctl {

/// Rows under a header, columns padded to the widest cell and separated by two spaces; the
/// last column is not padded. Cells go through Printable.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);
/// One line of such a table, without the newline, for a caller that knows the column widths
/// (of the cells through Printable) before it has every row. A cell wider than its column
/// pushes the rest of the line right.
std::string FormatRow(const std::vector<std::string>& cells, const std::vector<size_t>& width);

/// `text` with control characters (and DEL) shown as \xNN, so a file name cannot move the
/// cursor or forge table lines.
std::string Printable(std::string_view text);

/// An absolute path for `arg`: absolute arguments are returned unchanged (the daemon judges
/// them); relative ones are joined to `cwd` and normalized lexically ("." and ".." resolved,
/// "//" collapsed, no trailing "/"). `cwd` is an absolute physical directory (getcwd()).
std::string AbsolutePath(std::string_view arg, std::string_view cwd);

/// 1234567 -> "1.2 MiB"; below 1 KiB in bytes ("512 B").
std::string HumanBytes(uint64_t bytes);

}  // namespace daxpolicy::ctl
