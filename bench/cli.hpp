// cqrs-load's command line: options into a load_options (or a sweep), or the help text, or a usage error.
#pragma once

#include "bench/cluster_load.hpp"
#include "bench/load.hpp"

#include <optional>
#include <string>

namespace bench {

/// What the command line asks for.
struct command_line {
  load_options load;
  bool sweep = false;
  sweep_options sweep_settings;
  /// Where the sweep's CSV goes.
  std::string csv = "sweep.csv";
  /// Print one JSON object as the last line of stdout.
  bool json = false;
  /// Print the cost ledger per operation instead of running a load.
  bool ledger = false;
  /// Search the highest open-loop rate whose p99 stays within p99_bound_us instead of running one load.
  bool find_rate = false;
  double p99_bound_us = 1000;
  /// --store and --sync: the caller opens it (demo::open_store) into load.store.
  demo::store_choice store{};
  /// --nodes N (N > 0): node processes on one PostgreSQL log instead of one engine in this process.
  cluster_load_options cluster{};
};

/// Exit codes: what a script calling cqrs-load can rely on.
inline constexpr int exit_verified = 0;
inline constexpr int exit_not_verified = 1;
inline constexpr int exit_usage = 2;

/// The parsed options, or, when `options` is empty, text to print and the exit code to leave with: the help
/// (exit 0, on stdout) or a usage error naming the bad option (exit 2, on stderr).
struct parse_outcome {
  std::optional<command_line> options;
  int exit_code = 0;
  std::string output;
};

parse_outcome parse_command_line(int argc, const char* const* argv);

} // namespace bench
