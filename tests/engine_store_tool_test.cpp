// The cqrs-store tool on logs the SQLite and PostgreSQL stores wrote, then damaged behind their backs: exit codes and
// findings.
#include "actors/postgres_event_store.hpp"
#include "actors/sqlite_event_store.hpp"
#include "postgres_test_support.hpp"
#include "store_test_support.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

using test_support::account_stream;
using test_support::deposits;

/// The tool: named by the build (CQRS_STORE_TOOL), or else found beside this test binary (both go to bin/).
std::string tool_path() {
#ifdef CQRS_STORE_TOOL
  return CQRS_STORE_TOOL;
#else
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "cqrs-store").string();
#endif
}

struct tool_run {
  int exit_code = -1;
  std::string output;
};

/// Runs the tool with the arguments (already shell-quoted where needed) and collects its output.
tool_run run_tool(const test_support::temporary_folder& folder, const std::string& arguments) {
  auto tool = tool_path();
  if (!std::filesystem::exists(tool))
    throw std::runtime_error(tool + " does not exist: build the cqrs-store target first");
  auto output_file = folder.file("tool-output.txt");
  // coreutils' timeout gives the run a deadline (std::system has none): a hung tool fails the test, naming it.
  auto command = "timeout 60 '" + tool + "' " + arguments + " > '" + output_file + "' 2>&1";
  auto status = std::system(command.c_str());
  tool_run result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (result.exit_code == 124)
    throw std::runtime_error("cqrs-store " + arguments + " did not end within 60 s");
  std::ifstream output{output_file};
  std::stringstream text;
  text << output.rdbuf();
  result.output = text.str();
  return result;
}

std::string shell_quoted(const std::string& path) { return "'" + path + "'"; }

/// A log of 3 streams and 6 events, its acknowledgements written to `ack_log` as the engine's host would.
void write_log(const std::string& path, const std::string& ack_log) {
  auto opened = cqrs::open_sqlite_event_store(path);
  REQUIRE(opened);
  auto& store = **opened;
  test_support::register_test_event_types(store);
  std::ofstream acks{ack_log};
  auto append = [&](cqrs::append_request request) {
    auto command_id = request.command_id;
    auto appended = store.append(test_support::remembered(std::move(request)));
    REQUIRE(appended);
    acks << command_id << ' ' << appended->last_position << '\n';
  };
  append(deposits(account_stream("a"), 0, {1, 2}, "cmd-1"));
  append(deposits(account_stream("b"), 0, {3}, "cmd-2"));
  append(deposits(account_stream("a"), 2, {4}, "cmd-3"));
  append(deposits(account_stream("c/with/slashes"), 0, {5, 6}, "cmd-4"));
  store.save_snapshot(cqrs::snapshot{cqrs::stream_id{"account", "a"}, 3, 1, R"({"balance_cents":7})"});
}

} // namespace

TEST_CASE("cqrs-store verifies, counts and dumps a good log", "[store][tool]") {
  test_support::temporary_folder folder;
  auto path = folder.file("events.db");
  auto acks = folder.file("acks.txt");
  write_log(path, acks);

  auto verified = run_tool(folder, "verify " + shell_quoted(path) + " --ack-log " + shell_quoted(acks));
  INFO(verified.output);
  CHECK(verified.exit_code == 0);
  CHECK_THAT(verified.output, Catch::Contains("6 events, 3 streams, 1 snapshots, 4 acknowledgements: ok"));

  auto stats = run_tool(folder, "stats " + shell_quoted(path));
  INFO(stats.output);
  CHECK(stats.exit_code == 0);
  CHECK_THAT(stats.output, Catch::Contains("events: 6") && Catch::Contains("streams: 3")
                             && Catch::Contains("last position: 6") && Catch::Contains("recorded command ids: 4\n"));

  auto dumped = run_tool(folder, "dump " + shell_quoted(path) + " --stream account/a --from 2");
  INFO(dumped.output);
  CHECK(dumped.exit_code == 0);
  std::istringstream lines{dumped.output};
  std::vector<boost::json::value> events;
  for (std::string line; std::getline(lines, line);)
    events.push_back(boost::json::parse(line));
  REQUIRE(events.size() == 2); // positions 2 and 4 of account/a
  CHECK(events[0].at("position").as_int64() == 2);
  CHECK(events[1].at("position").as_int64() == 4);
  CHECK(events[1].at("version").as_int64() == 3);
  CHECK(events[1].at("type").as_string() == "MoneyDeposited.v1");
  CHECK(events[1].at("command_id").as_string() == "cmd-3");
  CHECK(events[1].at("payload").at("amount_cents").as_int64() == 4);

  auto slashed = run_tool(folder, "dump " + shell_quoted(path) + " --stream account/c/with/slashes");
  CHECK(slashed.exit_code == 0);
  CHECK(std::count(slashed.output.begin(), slashed.output.end(), '\n') == 2);

  // The tool only read: nothing was created beside the file it read.
  CHECK_FALSE(std::filesystem::exists(path + "-wal"));
  CHECK_FALSE(std::filesystem::exists(path + "-shm"));
}

TEST_CASE("cqrs-store reads a file whose write-ahead log holds commits not merged yet", "[store][tool]") {
  test_support::temporary_folder folder;
  auto path = folder.file("events.db");
  auto opened = cqrs::open_sqlite_event_store(path);
  REQUIRE(opened);
  test_support::register_test_event_types(**opened);
  REQUIRE((*opened)->append(deposits(account_stream("a"), 0, {1, 2})));
  // Still open, as a running engine has it: the commits are in the -wal.
  REQUIRE(std::filesystem::exists(path + "-wal"));
  auto stats = run_tool(folder, "stats " + shell_quoted(path));
  INFO(stats.output);
  CHECK(stats.exit_code == 0);
  CHECK_THAT(stats.output, Catch::Contains("events: 2"));
}

TEST_CASE("cqrs-store lists and counts the dead letters a store kept", "[store][tool]") {
  test_support::temporary_folder folder;
  auto path = folder.file("events.db");
  auto acks = folder.file("acks.txt");
  write_log(path, acks);
  {
    auto opened = cqrs::open_sqlite_event_store(path);
    REQUIRE(opened);
    auto recorded = std::chrono::system_clock::time_point{std::chrono::seconds{1'700'000'000}};
    (*opened)->record_dead_letter({"balances", {4, "MoneyDeposited.v1", "apply threw: \"four\""}, recorded});
    (*opened)->record_dead_letter({"audit", {2, "MoneyDeposited.v1", "no"}, recorded});
  }
  auto listed = run_tool(folder, "dead-letters " + shell_quoted(path));
  INFO(listed.output);
  CHECK(listed.exit_code == 0);
  std::istringstream lines{listed.output};
  std::vector<boost::json::value> letters;
  for (std::string line; std::getline(lines, line);)
    letters.push_back(boost::json::parse(line));
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].at("projection").as_string() == "audit");
  CHECK(letters[1].at("projection").as_string() == "balances");
  CHECK(letters[1].at("position").as_int64() == 4);
  CHECK(letters[1].at("type").as_string() == "MoneyDeposited.v1");
  CHECK(letters[1].at("reason").as_string() == "apply threw: \"four\"");
  CHECK(letters[1].at("recorded").as_string() == "2023-11-14T22:13:20.000000Z");
  auto stats = run_tool(folder, "stats " + shell_quoted(path));
  CHECK_THAT(stats.output, Catch::Contains("dead letters: 2"));
}

TEST_CASE("cqrs-store reads a file written before checksums and says it has none", "[store][tool]") {
  test_support::temporary_folder folder;
  auto path = folder.file("events.db");
  auto acks = folder.file("acks.txt");
  write_log(path, acks);
  test_support::raw_database{path}.execute("ALTER TABLE events DROP COLUMN checksum; DROP TABLE commands; "
                                           "CREATE INDEX events_by_command ON events (command_id); "
                                           "PRAGMA user_version = 1");

  auto stats = run_tool(folder, "stats " + shell_quoted(path));
  INFO(stats.output);
  CHECK(stats.exit_code == 0);
  CHECK_THAT(stats.output, Catch::Contains("schema version: 1 (no checksums") && Catch::Contains("events: 6"));
  auto verified = run_tool(folder, "verify " + shell_quoted(path));
  INFO(verified.output);
  CHECK(verified.exit_code == 0);
  CHECK_THAT(verified.output, Catch::Contains("6 events, 3 streams, 1 snapshots (schema version 1: no checksums to check): ok"));
}

TEST_CASE("cqrs-store verify fails on a damaged log or a wrong acknowledgement", "[store][tool]") {
  test_support::temporary_folder folder;
  auto path = folder.file("events.db");
  auto acks = folder.file("acks.txt");
  write_log(path, acks);
  std::string ack_arguments;
  std::string expected_finding;

  SECTION("an event is missing from the middle of the log") {
    test_support::raw_database{path}.execute("DELETE FROM events WHERE position = 3");
    expected_finding = "positions 3 to 3 are missing";
  }
  SECTION("a stream skips a version") {
    test_support::raw_database{path}.execute_resealed("UPDATE events SET version = 5 WHERE position = 4");
    expected_finding = "stream account/a has version 5 where version 3 should be";
  }
  SECTION("a payload is not JSON") {
    test_support::raw_database{path}.execute_resealed("UPDATE events SET payload = '{\"amount_cents\":' WHERE position = 5");
    expected_finding = "event 5 (MoneyDeposited.v1) has a payload that is not valid JSON";
  }
  // Files the engine would refuse to load, which verify passed while it only checked that payloads are JSON.
  SECTION("an event has a type no domain has") {
    test_support::raw_database{path}.execute_resealed("UPDATE events SET type = 'MoneyVanished.v1' WHERE position = 2");
    expected_finding = "event 2 has the type MoneyVanished.v1, which no event of the order or bank domain has";
  }
  SECTION("a payload names a member its type does not have") {
    test_support::raw_database{path}.execute_resealed("UPDATE events SET payload = '{\"amount\":2}' WHERE position = 2");
    expected_finding = "event 2 (MoneyDeposited.v1) does not decode as the engine reads it";
  }
  SECTION("a payload member has the wrong type") {
    test_support::raw_database{path}.execute_resealed(
      "UPDATE events SET payload = '{\"amount_cents\":\"two\"}' WHERE position = 2");
    expected_finding = "event 2 (MoneyDeposited.v1) does not decode as the engine reads it";
  }
  // Unlike the changes above (resealed, as a faulty program would have written them), a byte changed in the file
  // leaves the event's checksum as it was.
  SECTION("a byte of a stored payload changed") {
    test_support::raw_database{path}.execute("UPDATE events SET payload = '{\"amount_cents\":9}' WHERE position = 2");
    expected_finding = "event 2 (account/a v2) fails its checksum: its stored bytes were changed";
  }
  SECTION("an event moved to another stream") {
    test_support::raw_database{path}.execute("UPDATE events SET stream_id = 'z' WHERE position = 5");
    expected_finding = "event 5 (account/z v1) fails its checksum";
  }
  // Found by the store_verify fuzz target: verify said ok (no checksums to check in version 1) where the engine
  // refuses to open the file (its upgrade cannot add a checksum column that is there).
  SECTION("the header of a version 2 file says version 1") {
    test_support::raw_database{path}.execute("PRAGMA user_version = 1");
    expected_finding = "has schema version 1 (no checksums) in its header, but its events table has the checksum "
                       "column of version 2";
  }
  // Also found by store_verify: SQLite reads such a file but opens it read-only, and so the engine cannot open it.
  SECTION("the header of a version 3 file says version 2") {
    test_support::raw_database{path}.execute("PRAGMA user_version = 2");
    expected_finding = "has schema version 2 (every command id indexed) in its header, but it has the commands "
                       "table of version 3";
  }
  SECTION("a recorded command id names positions beyond its own events") {
    test_support::raw_database{path}.execute("UPDATE commands SET last_position = 3 WHERE command_id = 'cmd-1'");
    expected_finding = "recorded command cmd-1 names positions 1 to 3, which do not begin and end with events of "
                       "that command";
  }
  SECTION("the header's write version is one SQLite does not write") {
    std::fstream file{path, std::ios::binary | std::ios::in | std::ios::out};
    file.seekp(18);
    file.put(16);
    REQUIRE(file.good());
    expected_finding = "has file format write version 16 in its header";
  }
  // A damaged snapshot costs the engine a replay, not a wrong state; verify reports it all the same.
  SECTION("a byte of a stored snapshot changed") {
    test_support::raw_database{path}.execute(R"(UPDATE snapshots SET state = '{"balance_cents":9}')");
    expected_finding = "the snapshot of account/a (version 3) fails its checksum: its stored bytes were changed";
  }
  SECTION("a snapshot is beyond its stream's last version") {
    test_support::raw_database{path}.execute_resealed("UPDATE snapshots SET version = 9");
    expected_finding = "the snapshot of account/a (version 9) is beyond its stream's last version 3";
  }
  // These passed verify once (the store_verify fuzz target let them through as unseen): the engine prepares its
  // statements on these tables at open, and so refuses a file where a column it writes is missing.
  SECTION("a column of the snapshots table is renamed") {
    test_support::raw_database{path}.execute("ALTER TABLE snapshots RENAME COLUMN state TO status");
    expected_finding = "the snapshots table of " + path + " has no column state: the engine cannot open the file";
  }
  SECTION("a column of the dead letters table is renamed") {
    test_support::raw_database{path}.execute("ALTER TABLE dead_letters RENAME COLUMN reason TO why");
    expected_finding = "the dead_letters table of " + path + " has no column reason";
  }
  SECTION("an acknowledged command is not at its position") {
    std::ofstream{acks, std::ios::app} << "cmd-9 4\n";
    ack_arguments = " --ack-log " + shell_quoted(acks);
    expected_finding = "acknowledged command cmd-9 at position 4 (line 5), but that event belongs to command cmd-3";
  }
  SECTION("an acknowledged position does not exist") {
    std::ofstream{acks, std::ios::app} << "cmd-5 7\n";
    ack_arguments = " --ack-log " + shell_quoted(acks);
    expected_finding = "but the log has no event there";
  }
  SECTION("the file is not a SQLite database") {
    std::ofstream{path, std::ios::trunc} << std::string(8192, 'z');
    std::filesystem::remove(path + "-wal");
    std::filesystem::remove(path + "-shm");
    expected_finding = "is not a readable SQLite database";
  }

  auto verified = run_tool(folder, "verify " + shell_quoted(path) + ack_arguments);
  INFO(verified.output);
  CHECK(verified.exit_code == 1);
  CHECK_THAT(verified.output, Catch::Contains(expected_finding));
}

TEST_CASE("cqrs-store answers a wrong command line with exit code 2", "[store][tool]") {
  test_support::temporary_folder folder;
  auto path = folder.file("events.db");
  auto acks = folder.file("acks.txt");
  write_log(path, acks);
  auto file = shell_quoted(path);
  std::vector<std::string> wrong_command_lines{
    "",                                                   // no subcommand
    "frobnicate " + file,                                 // an unknown one
    "verify",                                             // no file
    "verify " + shell_quoted(folder.file("missing.db")), // a file that does not exist
    "stats " + file + " --bogus",                         // an unknown option
    "dump " + file + " --stream no-slash",                // a stream that is not TYPE/ID
    "dump " + file + " --from x",                         // a position that is not a number
    "verify " + file + " --ack-log " + shell_quoted(folder.file("missing.txt")),
  };
  for (const auto& arguments : wrong_command_lines) {
    auto ran = run_tool(folder, arguments);
    INFO("arguments: " << arguments << "\noutput: " << ran.output);
    CHECK(ran.exit_code == 2);
  }
  CHECK(run_tool(folder, "--help").exit_code == 0);
}

TEST_CASE("cqrs-store verifies, counts and dumps a PostgreSQL log, and finds a deleted event, a wrong head and what "
          "they break",
          "[store][tool][postgres]") {
  test_support::temporary_folder folder;
  auto conninfo = test_support::postgres_conninfo();
  auto schema = test_support::fresh_schema("tool");
  auto ack_log = folder.file("acks.txt");
  {
    auto opened = cqrs::open_postgres_event_store(conninfo, {.schema = schema});
    REQUIRE(opened);
    auto& store = **opened;
    test_support::register_test_event_types(store);
    std::ofstream acks{ack_log};
    auto append = [&](cqrs::append_request request) {
      request.remember_command_id = true;
      auto command_id = request.command_id;
      auto appended = store.append(std::move(request));
      REQUIRE(appended);
      acks << command_id << ' ' << appended->last_position << '\n';
    };
    append(deposits(account_stream("a"), 0, {1, 2}, "cmd-1"));
    append(deposits(account_stream("b"), 0, {3}, "cmd-2"));
    append(deposits(account_stream("a"), 2, {4}, "cmd-3"));
    append(deposits(account_stream("c/with/slashes"), 0, {5, 6}, "cmd-4"));
    store.save_snapshot(cqrs::snapshot{cqrs::stream_id{"account", "a"}, 3, 1, R"({"balance_cents":7})"});
  }
  auto log = "'postgres:" + conninfo + " schema=" + schema + "'";

  auto verified = run_tool(folder, "verify --ack-log " + shell_quoted(ack_log) + " " + log);
  CHECK(verified.exit_code == 0);
  CHECK_THAT(verified.output, Catch::Matchers::Contains(": 6 events, 3 streams, 1 snapshots, 4 acknowledgements: ok"));
  auto stats = run_tool(folder, "stats " + log);
  CHECK(stats.exit_code == 0);
  CHECK_THAT(stats.output,
             Catch::Matchers::Contains("events: 6\nstreams: 3\nlast position: 6\nrecorded command ids: 4"));
  auto dump = run_tool(folder, "dump --stream account/a " + log);
  CHECK(dump.exit_code == 0);
  CHECK(std::count(dump.output.begin(), dump.output.end(), '\n') == 3);
  CHECK_THAT(dump.output,
             Catch::Matchers::Contains(R"("position":4,"stream_type":"account","stream_id":"a","version":3)"));

  test_support::run_sql(conninfo, "DELETE FROM " + schema + ".events WHERE position = 3; UPDATE " + schema
                                    + ".log_head SET position = 7");
  auto damaged = run_tool(folder, "verify --ack-log " + shell_quoted(ack_log) + " " + log);
  CHECK(damaged.exit_code == 1);
  CHECK_THAT(damaged.output, Catch::Matchers::Contains("positions 3 to 3 are missing"));
  CHECK_THAT(damaged.output, Catch::Matchers::Contains("log_head is at position 7, but the last event is at 6"));
  CHECK_THAT(damaged.output, Catch::Matchers::Contains(
                               "acknowledged command cmd-2 at position 3 (line 2), but the log has no event"));
  CHECK_THAT(damaged.output, Catch::Matchers::Contains("recorded command cmd-2 names positions 3 to 3"));
  CHECK_THAT(damaged.output, Catch::Matchers::Contains("FAILED (4 problems)"));

  auto nothing = run_tool(folder, "stats 'postgres:" + conninfo + " schema=nothing_here'");
  CHECK(nothing.exit_code == 1);
  CHECK_THAT(nothing.output, Catch::Matchers::Contains("holds no event log"));
}
