// Shared helpers for the tests that run against the throwaway PostgreSQL server (tests/postgres_server.sh): its
// connection string, a fresh schema (a separate log) per test, and crashing and resuming the server.
#pragma once

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace test_support {

/// The test server's connection string: $CQRS_TEST_POSTGRES (a server of the developer's own), else the first line
/// of the state file that ctest's fixture wrote ($CQRS_TEST_POSTGRES_STATE).
inline std::string postgres_conninfo() {
  if (const char* given = std::getenv("CQRS_TEST_POSTGRES"); given && *given)
    return given;
  const char* state = std::getenv("CQRS_TEST_POSTGRES_STATE");
  if (!state || !*state)
    throw std::runtime_error("no PostgreSQL server for this test: run it through ctest (which starts one, see "
                             "tests/postgres_server.sh) or set CQRS_TEST_POSTGRES to a connection string");
  std::ifstream file{state};
  std::string conninfo;
  if (!std::getline(file, conninfo) || conninfo.empty())
    throw std::runtime_error(std::string{"the PostgreSQL test server's state file "} + state
                             + " is missing or empty: did its fixture test (postgres/start) fail?");
  return conninfo;
}

/// A schema name no other test (or test process) uses: each one is a separate, empty log.
inline std::string fresh_schema(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1));
}

} // namespace test_support
