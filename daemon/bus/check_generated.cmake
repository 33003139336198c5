# SPDX-License-Identifier: Apache-2.0
# cmake -DGENERATED_DIR=... -DCOMMITTED_DIR=... -P check_generated.cmake
# Fails when a committed generated header (every *.h in COMMITTED_DIR) differs from the one
# just generated in GENERATED_DIR.
file(GLOB committed RELATIVE ${COMMITTED_DIR} ${COMMITTED_DIR}/*.h)
if(NOT committed)
  message(FATAL_ERROR "no generated headers committed in ${COMMITTED_DIR}")
endif()
foreach(f IN LISTS committed)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files
                          ${GENERATED_DIR}/${f} ${COMMITTED_DIR}/${f}
                  RESULT_VARIABLE differs)
  if(differs)
    message(FATAL_ERROR "daemon/bus/generated/${f} does not match the code generated from "
                        "org.daxpolicy.DaxPolicy1.xml: run `ninja daxpolicy_bus_update_generated` "
                        "and commit daemon/bus/generated/")
  endif()
endforeach()
