# cmake -DGENERATED_DIR=... -DCOMMITTED_DIR=... -DFILES="a.h;b.h" -P check_generated.cmake
# Fails when a committed generated header differs from the one just generated.
foreach(f IN LISTS FILES)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files
                          ${GENERATED_DIR}/${f} ${COMMITTED_DIR}/${f}
                  RESULT_VARIABLE differs)
  if(differs)
    message(FATAL_ERROR "daemon/bus/generated/${f} does not match the code generated from "
                        "org.daxpolicy.DaxPolicy1.xml: run `ninja daxpolicy_bus_update_generated` "
                        "and commit daemon/bus/generated/")
  endif()
endforeach()
