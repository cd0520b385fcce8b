# Included by the top-level CMakeLists.txt with the tests: each fuzz target built with g++ and a plain main that
# feeds it every input of its kept corpus (fuzz/corpus/TARGET), so an input that once crashed it stays fixed.
# The store targets link the engine library for its SQLite store (built for the tests anyway; their own files
# include no CAF).
set(replay_libraries_script_line cqrs_domain cqrs_json)
set(replay_libraries_order_event cqrs_domain cqrs_json)
set(replay_libraries_store_file cqrs_engine cqrs_domain SQLite::SQLite3)
set(replay_libraries_store_verify cqrs_store_inspection cqrs_engine cqrs_domain SQLite::SQLite3)
foreach(target script_line order_event store_file store_verify)
  add_executable(cqrs-fuzz-replay-${target} ${CMAKE_SOURCE_DIR}/fuzz/${target}_fuzz.cpp
                                            ${CMAKE_SOURCE_DIR}/fuzz/replay_main.cpp)
  target_link_libraries(cqrs-fuzz-replay-${target} PRIVATE ${replay_libraries_${target}})
  add_test(NAME "fuzz/${target}: the kept corpus replays"
           COMMAND cqrs-fuzz-replay-${target} ${CMAKE_SOURCE_DIR}/fuzz/corpus/${target})
  set_tests_properties("fuzz/${target}: the kept corpus replays"
                       PROPERTIES TIMEOUT 120 ENVIRONMENT "${CQRS_TEST_ENVIRONMENT}")
endforeach()
