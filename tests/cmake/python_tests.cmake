# extractd_python_tests(PREFIX PYTHON [UNLOCKED name...]
#                       [PROPERTIES property value...])
#
# Registers every test_<name>.py of the calling directory as the test
# PREFIX.<name>, labelled PREFIX: PYTHON runs it with --bin (the build's
# bin/) and --source (the repository root), within 300 s, and writes no
# bytecode. Each takes the e2e resource lock (tests that measure time run
# one at a time) unless its name is in UNLOCKED. PROPERTIES are more test
# properties, for all of them. The scripts import their helpers from
# tests/lib/ (each puts it on sys.path, so it also runs by hand).
include_guard(GLOBAL)

function(extractd_python_tests prefix python)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "" "UNLOCKED;PROPERTIES")
  file(GLOB scripts CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_*.py)
  foreach(script ${scripts})
    get_filename_component(name ${script} NAME_WE)
    string(REGEX REPLACE "^test_" "" name ${name})
    add_test(NAME ${prefix}.${name}
             COMMAND ${python} ${script}
                     --bin ${CMAKE_BINARY_DIR}/bin --source ${CMAKE_SOURCE_DIR})
    set_tests_properties(${prefix}.${name} PROPERTIES
      TIMEOUT 300
      LABELS ${prefix}
      ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1"
      ${arg_PROPERTIES})
    if(NOT name IN_LIST arg_UNLOCKED)
      set_tests_properties(${prefix}.${name} PROPERTIES RESOURCE_LOCK e2e)
    endif()
  endforeach()
endfunction()
