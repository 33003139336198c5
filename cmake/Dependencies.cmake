# SPDX-License-Identifier: Apache-2.0
# Every dependency comes from a Debian 12 package; tools/setup.sh installs them.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(yaml-cpp 0.7 REQUIRED)                 # target: yaml-cpp (no namespace in 0.7)
find_package(fmt REQUIRED)                           # fmt::fmt
find_package(CLI11 CONFIG REQUIRED)                  # CLI11::CLI11
find_package(sdbus-c++ 1.2 REQUIRED)                 # SDBusCpp::sdbus-c++
find_package(sdbus-c++-tools 1.2 REQUIRED)           # SDBusCpp::sdbus-c++-xml2cpp (package libsdbus-c++-bin)
find_package(prometheus-cpp CONFIG REQUIRED)         # Debian ships no version file: no version here
pkg_check_modules(NDCTL REQUIRED IMPORTED_TARGET libndctl>=76)
pkg_check_modules(DAXCTL REQUIRED IMPORTED_TARGET libdaxctl>=76)
pkg_check_modules(PMEM2 REQUIRED IMPORTED_TARGET libpmem2>=1.12)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd>=252)
if(DAXPOLICY_TESTS)
  find_package(GTest 1.12 CONFIG REQUIRED)           # GTest::gtest, GTest::gmock (libgmock-dev)
endif()
if(DAXPOLICY_BENCH)
  find_package(benchmark REQUIRED)                   # benchmark::benchmark (libbenchmark-dev)
endif()
