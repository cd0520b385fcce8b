# The demo's tests, included at the end of tests/CMakeLists.txt (where cqrs_catch_main and cqrs_discover_tests
# exist): the library's tests through Catch2, and the cqrs-demo command line's exit codes through ctest.

# Simulation, script mode and verification, called directly: files named demo_*.cpp.
file(GLOB demo_test_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/demo_*.cpp)
add_executable(cqrs-demo-tests ${demo_test_sources})
target_link_libraries(cqrs-demo-tests PRIVATE cqrs_catch_main cqrs_demo_lib Catch2::Catch2)
cqrs_discover_tests(cqrs-demo-tests "demo/" PROPERTIES TIMEOUT 300)

# The command line: each test runs cqrs-demo through run_check.cmake, which checks the exit code exactly
# (WILL_FAIL or a PASS_REGULAR_EXPRESSION alone would not).
set(demo_run_check ${CMAKE_CURRENT_SOURCE_DIR}/run_check.cmake)
add_test(NAME "demo/cqrs-demo runs a small simulation to a verified end"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-demo>"
          "-Darguments=--seed 7 --customers 24 --orders 240 --clients 3 --threads 2 --json"
          -Dexpected_exit=0 -Djson_true=verified -P ${demo_run_check})
add_test(NAME "demo/cqrs-demo exits 2 on a bad option value"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-demo>" "-Darguments=--clients zero"
          -Dexpected_exit=2 -Dexpected_error=--clients -P ${demo_run_check})
add_test(NAME "demo/cqrs-demo exits 2 on a NaN duration"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-demo>" "-Darguments=--duration-s nan"
          -Dexpected_exit=2 -Dexpected_error=--duration-s -P ${demo_run_check})
add_test(NAME "demo/cqrs-demo exits 2 on a negative seed"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-demo>" "-Darguments=--seed -1"
          -Dexpected_exit=2 -Dexpected_error=--seed -P ${demo_run_check})
add_test(NAME "demo/cqrs-demo exits 2 on an unknown option"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-demo>" "-Darguments=--no-such-option"
          -Dexpected_exit=2 -Dexpected_error=--no-such-option -P ${demo_run_check})
add_test(NAME "demo/cqrs-demo runs a script from stdin"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-demo>" "-Darguments=--script -"
          "-Dinput=${CMAKE_SOURCE_DIR}/demo/example_script.jsonl" -Dexpected_exit=1
          "-Dexpected_output=\"line\":11,\"error\":\"line 11: " -P ${demo_run_check})
set_tests_properties("demo/cqrs-demo runs a small simulation to a verified end"
  "demo/cqrs-demo exits 2 on a bad option value" "demo/cqrs-demo exits 2 on an unknown option"
  "demo/cqrs-demo exits 2 on a NaN duration" "demo/cqrs-demo exits 2 on a negative seed"
  "demo/cqrs-demo runs a script from stdin" PROPERTIES TIMEOUT 120 ENVIRONMENT "${CQRS_TEST_ENVIRONMENT}")

# The durable store: two runs in a row on one SQLite file (the second recovers the first's log and runs with ids of
# its own), a bad --store, and a file that is not an event log.
cqrs_add_store_tests(demo cqrs-demo "--seed 7 --customers 24 --orders 240 --clients 3 --threads 2" sqlite:)
cqrs_add_postgres_store_tests(demo cqrs-demo "--seed 7 --customers 24 --orders 240 --clients 3 --threads 2")
add_test(NAME "demo/cqrs-demo exits 1 on a file that is not an event log"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-demo>"
          "-Darguments=--store sqlite:${CMAKE_SOURCE_DIR}/demo/example_script.jsonl" -Dexpected_exit=1
          "-Dexpected_error=cannot open the event store" -P ${demo_run_check})
set_tests_properties("demo/cqrs-demo exits 1 on a file that is not an event log"
  PROPERTIES TIMEOUT 120 ENVIRONMENT "${CQRS_TEST_ENVIRONMENT}")
