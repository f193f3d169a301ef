# One fuzz.<target> ctest: run FUZZER briefly on its seed corpus.
#   cmake -DFUZZER=bin -DCORPUS=dir -DWORK=dir -DMAX_LEN=n -DRUNS=n
#         -DSECONDS=n [-DDICT=file] -P run_fuzz.cmake
# The seed corpus in the source tree is only read: libFuzzer writes the new
# inputs it finds to the first directory given, WORK/new, which starts
# empty on every run. A crash, leak or timeout leaves its input in WORK/
# (crash-*, leak-*, timeout-*) and fails the test; reproduce it with
#   FUZZER WORK/crash-...
foreach(var FUZZER CORPUS WORK MAX_LEN RUNS SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzz.cmake: -D${var}=... is missing")
  endif()
endforeach()

set(dict_arg "")
if(DICT)
  set(dict_arg -dict=${DICT})
endif()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/new)
execute_process(
  COMMAND ${FUZZER}
          -runs=${RUNS} -max_total_time=${SECONDS}
          -max_len=${MAX_LEN} -rss_limit_mb=2048 -timeout=10
          -print_final_stats=1 ${dict_arg}
          -artifact_prefix=${WORK}/
          ${WORK}/new ${CORPUS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${WORK}/crash-* ${WORK}/leak-* ${WORK}/timeout-*
       ${WORK}/oom-* ${WORK}/slow-unit-*)
  message(FATAL_ERROR
    "${FUZZER} failed (exit ${rc}); inputs kept: ${found}")
endif()
