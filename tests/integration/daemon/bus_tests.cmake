# SPDX-License-Identifier: Apache-2.0
# D-Bus service and daxpolicyctl client tests: a private system-type dbus-daemon, the
# bus_test_server (BusService over a FakeBackend) and real clients (busctl, daxpolicyctl).
add_executable(bus_test_server bus_test_server.cpp)
target_link_libraries(bus_test_server PRIVATE daxpolicy_bus_fake)
set_target_properties(bus_test_server PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)

add_library(daxpolicy_bus_test_fixture STATIC bus_fixture.cpp)
target_link_libraries(daxpolicy_bus_test_fixture PUBLIC daxpolicy_test_support)

daxpolicy_add_test(NAME bus_service_tests SOURCES bus_service_test.cpp
                   LIBS daxpolicy_bus_test_fixture daxpolicy_bus LABELS integration)
add_dependencies(bus_service_tests bus_test_server)
daxpolicy_add_test(NAME ctl_client_tests SOURCES ctl_client_test.cpp
                   LIBS daxpolicy_bus_test_fixture daxpolicy_journal LABELS integration)
add_dependencies(ctl_client_tests bus_test_server daxpolicyctl)
daxpolicy_add_test(NAME man_exit_status_tests SOURCES man_exit_status_test.cpp
                   LIBS daxpolicy_bus_test_fixture daxpolicy_policy LABELS integration)
add_dependencies(man_exit_status_tests bus_test_server daxpolicyctl daxpolicyd)
daxpolicy_add_test(NAME bus_call_limit_tests SOURCES call_limit_test.cpp
                   LIBS daxpolicy_bus_test_fixture daxpolicy_bus LABELS integration)
add_dependencies(bus_call_limit_tests bus_test_server)
