// SPDX-License-Identifier: Apache-2.0
#include "daemon/ctl/text.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace daxpolicy::ctl {

std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size() + 1);
  cells.push_back(header);
  for (const auto& r : rows) cells.push_back(r);
  std::vector<size_t> width(header.size(), 0);
  for (auto& row : cells) {
    row.resize(header.size());
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], Printable(row[i]).size());
  }
  std::string out;
  for (const auto& row : cells) {
    out += FormatRow(row, width);
    out += '\n';
  }
  return out;
}

std::string FormatRow(const std::vector<std::string>& cells, const std::vector<size_t>& width) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    const std::string cell = Printable(cells[i]);
    line += cell;
    if (i + 1 < cells.size()) {
      const size_t column = i < width.size() ? std::max(width[i], cell.size()) : cell.size();
      line.append(column - cell.size() + 2, ' ');
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

std::string AbsolutePath(std::string_view arg, std::string_view cwd) {
  if (!arg.empty() && arg.front() == '/') return std::string(arg);
  std::filesystem::path joined = std::filesystem::path(cwd) / std::filesystem::path(arg);
  std::string normal = joined.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

}  // namespace daxpolicy::ctl
