// daxpolicyctl: the command-line client of daxpolicyd.

#include <CLI/CLI.hpp>
#include <iostream>

#include "daemon/config_files.h"
#include "daxpolicy/version.h"

namespace {

int Check(const std::vector<std::string>& files) {
  size_t total = 0;
  for (const std::string& f : files) {
    auto errors = daxpolicy::daemon::CheckPolicyFile(f);
    for (const auto& e : errors) std::cerr << e.ToString() << "\n";
    if (errors.empty()) std::cout << f << ": OK\n";
    total += errors.size();
  }
  if (total > 0) {
    std::cerr << total << (total == 1 ? " error" : " errors") << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"daxpolicyctl: inspect and steer daxpolicyd"};
  app.set_version_flag("--version", std::string(daxpolicy::kVersion));
  app.require_subcommand(1);

  std::vector<std::string> check_files;
  auto* check = app.add_subcommand("check", "Validate policy files offline (exit 0 valid, 1 not)");
  check->add_option("FILE", check_files, "Policy files; files in a policy.d directory are drop-ins")
      ->required();

  CLI11_PARSE(app, argc, argv);
  if (*check) return Check(check_files);
  return 0;
}
