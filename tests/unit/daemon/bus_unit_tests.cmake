# SPDX-License-Identifier: Apache-2.0
# Unit tests of daemon/bus and daemon/ctl.
daxpolicy_add_test(NAME bus_unit_tests SOURCES bus_validate_test.cpp call_limits_test.cpp
                   LIBS daxpolicy_bus
                   LABELS unit)
daxpolicy_add_test(NAME ctl_unit_tests
                   SOURCES ctl_text_test.cpp ${PROJECT_SOURCE_DIR}/daemon/ctl/json.cpp
                           ${PROJECT_SOURCE_DIR}/daemon/ctl/text.cpp
                   LIBS daxpolicy_bus LABELS unit)
daxpolicy_add_test(NAME ctl_simulate_unit_tests
                   SOURCES ctl_simulate_test.cpp ${PROJECT_SOURCE_DIR}/daemon/ctl/simulate.cpp
                           ${PROJECT_SOURCE_DIR}/daemon/ctl/json.cpp
                           ${PROJECT_SOURCE_DIR}/daemon/ctl/text.cpp
                   LIBS daxpolicy_daemon_base LABELS unit)

# The committed generated D-Bus code matches what the XML generates now.
add_test(NAME BusGeneratedCodeMatchesTheCommittedCopy
         COMMAND ${CMAKE_COMMAND} -DGENERATED_DIR=${PROJECT_BINARY_DIR}/daemon/bus/gen
                 -DCOMMITTED_DIR=${PROJECT_SOURCE_DIR}/daemon/bus/generated
                 -P ${PROJECT_SOURCE_DIR}/daemon/bus/check_generated.cmake)
set_tests_properties(BusGeneratedCodeMatchesTheCommittedCopy PROPERTIES LABELS unit)
