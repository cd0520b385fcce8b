// cqrs-store: shows the statistics of an event log (a SQLite file or a PostgreSQL schema), dumps its events or its
// dead letters as JSON lines, or verifies its invariants. This is its command line; what each command does is in
// store_inspection.cpp and postgres_inspection.cpp, which read the log directly (SQLite, libpq), never through the
// store, so that they can examine a damaged log.
#include "demo/signals.hpp"
#include "actors/postgres_event_store.hpp"
#include "tools/postgres_inspection.hpp"
#include "tools/store_inspection.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <string>

namespace {

/// Set by the first SIGINT or SIGTERM: the row loops end at the next row, the summary says the run was cut short.
std::atomic<bool> interrupted{false};

} // namespace

int main(int argc, char** argv) {
  using namespace store_inspection;
  demo::handle_interrupts("cqrs-store: interrupted, stopping at the next event (a second signal ends at once)\n",
                          [] { interrupted = true; });
  CLI::App app{"Shows, dumps and verifies a cqrs-engine event log (a SQLite file, or postgres:CONNINFO for a "
               "PostgreSQL database, schema=NAME in it naming the schema: default cqrs), read-only."};
  app.require_subcommand(1);
  std::string path;
  std::string stream;
  std::int64_t from = 1;
  std::string ack_log;

  // A SQLite file that exists (its path, or sqlite:PATH as the programs' --store names it), or a PostgreSQL log.
  auto log_check = CLI::Validator(
    [](const std::string& value) {
      if (value.starts_with("postgres:"))
        return std::string{};
      return CLI::ExistingFile(value.starts_with("sqlite:") ? value.substr(7) : value);
    },
    "FILE|postgres:CONNINFO");
  auto add_log = [&](CLI::App* command) {
    command->add_option("log", path, "The event log: a SQLite file (or sqlite:PATH), or postgres:CONNINFO")
      ->required()
      ->check(log_check);
  };
  auto* stats = app.add_subcommand("stats", "Number of events and streams, last position, file size.");
  add_log(stats);

  auto* dump = app.add_subcommand("dump", "The events as JSON lines, payloads as stored.");
  add_log(dump);
  dump->add_option("--stream", stream, "Only this stream, as TYPE/ID")->check([](const std::string& value) {
    return split_stream(value) ? std::string{} : std::string{"expected TYPE/ID, got " + value};
  });
  dump->add_option("--from", from, "First position to print")->check(CLI::PositiveNumber);

  auto* verify = app.add_subcommand("verify", "Checks positions, checksums, stream versions, payloads (and "
                                              "acknowledgements); exit code 0 when all hold, 1 otherwise.");
  add_log(verify);
  verify->add_option("--ack-log", ack_log, "Lines \"command_id position\": each event must exist with that command")
    ->check(CLI::ExistingFile);

  auto* dead_letters = app.add_subcommand("dead-letters", "The events that projections under the skip policy "
                                                          "passed over, as JSON lines.");
  add_log(dead_letters);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version are "errors" with exit code 0; everything else is a usage error.
    auto code = app.exit(error);
    return code == 0 ? exit_ok : exit_usage;
  }

  output to{std::cout, std::cerr, interrupted};
  auto run = [&](const auto& log) {
    if (log.open_error()) {
      std::cerr << "cqrs-store: " << *log.open_error() << '\n';
      return exit_problems;
    }
    if (*stats)
      return run_stats(log, to);
    if (*dump)
      return run_dump(log, stream, from, to);
    if (*dead_letters)
      return run_dead_letters(log, to);
    return run_verify(log, ack_log, to);
  };
  int code = exit_ok;
  if (path.starts_with("postgres:")) {
    auto location = cqrs::parse_postgres_location(std::string_view{path}.substr(9));
    if (!location) {
      std::cerr << "cqrs-store: " << path << ": " << location.error() << '\n';
      return exit_usage;
    }
    code = run(postgres_log{location->conninfo, location->schema});
  } else {
    code = run(log_file{path.starts_with("sqlite:") ? path.substr(7) : path});
  }
  std::cout.flush();
  return demo::exit_code_after_interrupts(code);
}
