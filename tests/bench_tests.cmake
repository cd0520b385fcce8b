# The load tester's tests, included at the end of tests/CMakeLists.txt (where cqrs_catch_main and
# cqrs_discover_tests exist): the histogram, the workloads, the command line and short load runs through Catch2,
# and the cqrs-load command line's exit codes through ctest.

# Files named bench_*.cpp, linked with the load tester's library.
file(GLOB bench_test_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/bench_*.cpp)
add_executable(cqrs-bench-tests ${bench_test_sources})
target_link_libraries(cqrs-bench-tests PRIVATE cqrs_catch_main cqrs_bench Catch2::Catch2)
# The raw-CAF baseline ([raw-caf]) is a plain CAF program, and Debian's libcaf_core is built without
# ThreadSanitizer: TSan cannot see CAF's own synchronisation (spawn arguments, request/response storage) and reports
# it as races. The engine annotates its edges for TSan; the baseline is only a comparator, so TSan builds leave its
# tests out. Every other test (the engine runs, the CRUD baseline, the histogram) runs under TSan.
if(CQRS_TSAN)
  cqrs_discover_tests(cqrs-bench-tests "bench/" TEST_SPEC "~[raw-caf]" PROPERTIES TIMEOUT 300)
else()
  cqrs_discover_tests(cqrs-bench-tests "bench/" PROPERTIES TIMEOUT 300)
endif()

# The command line: each test runs cqrs-load through tests/run_check.cmake, which checks the exit code exactly.
set(bench_run_check ${CMAKE_CURRENT_SOURCE_DIR}/run_check.cmake)
add_test(NAME "bench/cqrs-load runs a small orders run to a verified end"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-load>"
          "-Darguments=--orders 200 --items 3 --clients 8 --query-s 0.1 --progress lines --json"
          -Dexpected_exit=0 -Djson_true=verified -P ${bench_run_check})
add_test(NAME "bench/cqrs-load exits 2 on a bad option value"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-load>" "-Darguments=--clients 0"
          -Dexpected_exit=2 -Dexpected_error=--clients -P ${bench_run_check})
add_test(NAME "bench/cqrs-load exits 2 on an unknown option"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-load>" "-Darguments=--no-such-option"
          -Dexpected_exit=2 -Dexpected_error=--no-such-option -P ${bench_run_check})
if(CQRS_SANITIZE OR CQRS_TSAN)
  # No counting operator new here (see bench/CMakeLists.txt): the ledger still runs, and says it did not count.
  add_test(NAME "bench/cqrs-load --ledger counts allocations and messages per operation"
    COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-load>" "-Darguments=--ledger --json"
            -Dexpected_exit=1 "-Dexpected_output=allocations NOT counted" -P ${bench_run_check})
else()
  add_test(NAME "bench/cqrs-load --ledger counts allocations and messages per operation"
    COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-load>" "-Darguments=--ledger --json"
            -Dexpected_exit=0 -Djson_true=allocations_counted -Djson_positive=allocations_per_command_live
            -P ${bench_run_check})
endif()
add_test(NAME "bench/cqrs-load exits 2 on --ledger with a load option it cannot take"
  COMMAND ${CMAKE_COMMAND} "-Dprogram=$<TARGET_FILE:cqrs-load>" "-Darguments=--ledger --rate 1000"
          -Dexpected_exit=2 -Dexpected_error=--ledger -P ${bench_run_check})
set_tests_properties("bench/cqrs-load runs a small orders run to a verified end"
  "bench/cqrs-load exits 2 on a bad option value" "bench/cqrs-load exits 2 on an unknown option"
  "bench/cqrs-load --ledger counts allocations and messages per operation"
  "bench/cqrs-load exits 2 on --ledger with a load option it cannot take"
  PROPERTIES TIMEOUT 300 ENVIRONMENT "${CQRS_TEST_ENVIRONMENT}")

# The durable store: two runs in a row on one SQLite file (the second recovers), and a bad --store.
cqrs_add_store_tests(bench cqrs-load "--orders 200 --items 3 --clients 8 --query-s 0 --progress none" mysql:db)
cqrs_add_postgres_store_tests(bench cqrs-load "--orders 200 --items 3 --clients 8 --query-s 0 --progress none")

# The crash test: cqrs-load on one log, killed with SIGKILL mid-load round after round: a SQLite file
# (synchronous=full), then a schema of the PostgreSQL test server. After each crash every acknowledged command must be
# in the log (cqrs-store verify --ack-log) and the read models rebuilt from it must equal a fold of the log
# (tests/crash_test.cpp).
if(TARGET cqrs-store)
  add_executable(cqrs-crash-test crash_test.cpp)
  target_link_libraries(cqrs-crash-test PRIVATE cqrs_demo_lib PostgreSQL::PostgreSQL)
  add_dependencies(cqrs-crash-test cqrs-load cqrs-store)
  add_test(NAME bench/crash_sqlite
    COMMAND cqrs-crash-test --load $<TARGET_FILE:cqrs-load> --store-tool $<TARGET_FILE:cqrs-store> --rounds 20
            --dir ${CMAKE_CURRENT_BINARY_DIR}/crash_sqlite)
  set_tests_properties(bench/crash_sqlite PROPERTIES TIMEOUT 300 ENVIRONMENT "${CQRS_TEST_ENVIRONMENT}")
  # The same on schema crash_test of the PostgreSQL test server.
  add_test(NAME bench/crash_postgres
    COMMAND cqrs-crash-test --load $<TARGET_FILE:cqrs-load> --store-tool $<TARGET_FILE:cqrs-store> --rounds 20
            --dir ${CMAKE_CURRENT_BINARY_DIR}/crash_postgres --postgres-state ${postgres_state})
  set_tests_properties(bench/crash_postgres
    PROPERTIES TIMEOUT 300 FIXTURES_REQUIRED postgres ENVIRONMENT "${CQRS_TEST_ENVIRONMENT}")
endif()

# The signal test: cqrs-load and cqrs-demo under load, and cqrs-store in the middle of a dump, get SIGINT, then
# (another run) SIGTERM, and must end cleanly with their summary, their checks passed and exit code 128 + the signal
# (tests/signal_test.cpp).
add_executable(cqrs-signal-test signal_test.cpp)
add_dependencies(cqrs-signal-test cqrs-load cqrs-demo cqrs-store)
add_test(NAME "bench/cqrs-load and cqrs-demo end cleanly on SIGINT and SIGTERM"
  COMMAND cqrs-signal-test --load $<TARGET_FILE:cqrs-load> --demo $<TARGET_FILE:cqrs-demo>
          --store-tool $<TARGET_FILE:cqrs-store>)
set_tests_properties("bench/cqrs-load and cqrs-demo end cleanly on SIGINT and SIGTERM"
  PROPERTIES TIMEOUT 300 ENVIRONMENT "${CQRS_TEST_ENVIRONMENT}")
