# Included by the top-level CMakeLists.txt with the tests: each fuzz target built with g++ and a plain main that
# feeds it every input of its kept corpus (fuzz/corpus/TARGET), so an input that once crashed it stays fixed.
foreach(target script_line order_event)
  add_executable(cqrs-fuzz-replay-${target} ${CMAKE_SOURCE_DIR}/fuzz/${target}_fuzz.cpp
                                            ${CMAKE_SOURCE_DIR}/fuzz/replay_main.cpp)
  target_link_libraries(cqrs-fuzz-replay-${target} PRIVATE cqrs_domain cqrs_json)
  add_test(NAME "fuzz/${target}: the kept corpus replays"
           COMMAND cqrs-fuzz-replay-${target} ${CMAKE_SOURCE_DIR}/fuzz/corpus/${target})
  set_tests_properties("fuzz/${target}: the kept corpus replays"
                       PROPERTIES TIMEOUT 120 ENVIRONMENT "${CQRS_TEST_ENVIRONMENT}")
endforeach()
