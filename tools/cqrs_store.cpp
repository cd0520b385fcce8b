// cqrs-store: shows the statistics of an event log file, dumps its events or its dead letters as JSON lines, or
// verifies its invariants. This is its command line; what each command does is in store_inspection.cpp, which
// opens the file read-only through SQLite directly, never through the store, so that it can examine a damaged file.
#include "demo/signals.hpp"
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
  CLI::App app{"Shows, dumps and verifies a cqrs-engine event log (a SQLite file), read-only."};
  app.require_subcommand(1);
  std::string path;
  std::string stream;
  std::int64_t from = 1;
  std::string ack_log;

  auto* stats = app.add_subcommand("stats", "Number of events and streams, last position, file size.");
  stats->add_option("file", path, "The event log file")->required()->check(CLI::ExistingFile);

  auto* dump = app.add_subcommand("dump", "The events as JSON lines, payloads as stored.");
  dump->add_option("file", path, "The event log file")->required()->check(CLI::ExistingFile);
  dump->add_option("--stream", stream, "Only this stream, as TYPE/ID")->check([](const std::string& value) {
    return split_stream(value) ? std::string{} : std::string{"expected TYPE/ID, got " + value};
  });
  dump->add_option("--from", from, "First position to print")->check(CLI::PositiveNumber);

  auto* verify = app.add_subcommand("verify", "Checks positions, checksums, stream versions, payloads (and acknowledgements); "
                                              "exit code 0 when all hold, 1 otherwise.");
  verify->add_option("file", path, "The event log file")->required()->check(CLI::ExistingFile);
  verify->add_option("--ack-log", ack_log, "Lines \"command_id position\": each event must exist with that command")
    ->check(CLI::ExistingFile);

  auto* dead_letters = app.add_subcommand("dead-letters", "The events that projections under the skip policy "
                                                          "passed over, as JSON lines.");
  dead_letters->add_option("file", path, "The event log file")->required()->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version are "errors" with exit code 0; everything else is a usage error.
    auto code = app.exit(error);
    return code == 0 ? exit_ok : exit_usage;
  }

  log_file file{path};
  if (file.open_error()) {
    std::cerr << "cqrs-store: " << *file.open_error() << '\n';
    return exit_problems;
  }
  output to{std::cout, std::cerr, interrupted};
  int code = exit_ok;
  if (*stats)
    code = run_stats(file, to);
  else if (*dump)
    code = run_dump(file, stream, from, to);
  else if (*dead_letters)
    code = run_dead_letters(file, to);
  else
    code = run_verify(file, ack_log, to);
  std::cout.flush();
  return demo::exit_code_after_interrupts(code);
}
