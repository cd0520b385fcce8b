// Shared helpers for the tests that run against the throwaway PostgreSQL server (tests/postgres_server.sh): its
// connection string, a fresh schema (a separate log) per test, and servers of a test's own to crash and resume.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
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

/// Runs SQL on the server as the test's own client (not through a store) and returns the first column of the first
/// row ("" when there is none); throws with the server's message when it fails.
inline std::string run_sql(const std::string& conninfo, const std::string& statements) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> link{PQconnectdb(conninfo.c_str()), &PQfinish};
  if (PQstatus(link.get()) != CONNECTION_OK)
    throw std::runtime_error(std::string{"cannot connect to the test server: "} + PQerrorMessage(link.get()));
  std::unique_ptr<PGresult, decltype(&PQclear)> rows{PQexec(link.get(), statements.c_str()), &PQclear};
  auto status = PQresultStatus(rows.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw std::runtime_error("\"" + statements + "\" failed: " + PQresultErrorMessage(rows.get()));
  if (status != PGRES_TUPLES_OK || PQntuples(rows.get()) == 0)
    return "";
  return PQgetvalue(rows.get(), 0, 0);
}

/// A throwaway server of the test's own (tests/postgres_server.sh), for tests that crash or reconfigure it: the
/// shared one serves other tests running at the same time. Stopped and removed when the test ends.
class own_postgres_server {
public:
  own_postgres_server() {
    char pattern[] = "/tmp/cqrs-own-postgres-XXXXXX";
    int descriptor = ::mkstemp(pattern);
    if (descriptor < 0)
      throw std::runtime_error("cannot create a state file for a PostgreSQL server");
    ::close(descriptor);
    state_ = pattern;
    run("start");
    std::ifstream file{state_};
    std::getline(file, conninfo_);
  }
  own_postgres_server(const own_postgres_server&) = delete;
  own_postgres_server& operator=(const own_postgres_server&) = delete;
  ~own_postgres_server() {
    try {
      run("stop");
    } catch (...) {
    }
  }

  const std::string& conninfo() const { return conninfo_; }
  /// Stops the server at once, as a power cut would (pg_ctl stop -m immediate).
  void crash() { run("crash"); }
  /// Starts the crashed server again; it recovers from its WAL.
  void resume() { run("resume"); }

private:
  void run(const std::string& command) {
    auto line = std::string{CQRS_POSTGRES_SERVER} + " " + command + " " + state_;
    if (std::system(line.c_str()) != 0)
      throw std::runtime_error("the PostgreSQL server script failed: " + line);
  }

  std::string state_;
  std::string conninfo_;
};

} // namespace test_support
