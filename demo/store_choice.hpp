// The event store a command-line program runs on (--store memory|sqlite:PATH|postgres:CONNINFO, --sync full|normal):
// parsing, opening, a run tag that keeps a new run's ids apart from those already in the log, and the read models'
// rebuild from an existing log with a progress display. Shared by cqrs-demo and cqrs-load.
#pragma once

#include "actors/engine.hpp"
#include "actors/postgres_event_store.hpp"
#include "actors/sqlite_event_store.hpp"

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace demo {

/// Which store a program runs on.
struct store_choice {
  /// The SQLite file that holds the log, or empty.
  std::string sqlite_path{};
  /// The connection string (libpq's) of the PostgreSQL database that holds the log, or empty; the log's tables are
  /// in `postgres_schema`. Both empty: a new in-memory store.
  std::string postgres_conninfo{};
  std::string postgres_schema = cqrs::postgres_options{}.schema;
  cqrs::sqlite_synchronous synchronous = cqrs::sqlite_synchronous::full;
  /// Rebuild past a missing event or one that fails its checksum instead of refusing the log (sqlite_options).
  bool read_past_damage = false;

  bool durable() const { return !sqlite_path.empty() || !postgres_conninfo.empty(); }
  /// "memory", "sqlite:PATH (synchronous=full)" or "postgres:CONNINFO (schema=cqrs)".
  std::string describe() const;
};

/// The help text of --store and --sync, the same in every program.
inline constexpr const char* store_option_help =
  "Event store: memory, sqlite:PATH or postgres:CONNINFO (a durable log; an existing one is recovered and appended "
  "to). CONNINFO is libpq's, e.g. \"host=/run/postgresql dbname=app\"; a schema=NAME in it chooses the schema "
  "(default cqrs)";
inline constexpr const char* read_past_damage_help =
  "SQLite store: rebuild past missing events and events that fail their checksum (salvage a damaged log) instead "
  "of refusing it";
inline constexpr const char* sync_option_help = "SQLite store: full (fsync each commit) or normal (survives a crash "
                                                "of the program, not of the machine)";

/// Parses the values of --store ("memory", "sqlite:PATH" or "postgres:CONNINFO"), --sync ("full" or "normal";
/// nothing when not given) and --read-past-damage. A bad value comes back as a message naming the option.
std::expected<store_choice, std::string> parse_store_choice(std::string_view store,
                                                            std::optional<std::string_view> sync,
                                                            bool read_past_damage = false);

/// Opens the chosen store: nullptr for memory (the engine then makes its own), else the SQLite file or the
/// PostgreSQL schema, created when missing. A log that is not one of this engine, is damaged or cannot be opened
/// comes back as a message.
std::expected<std::shared_ptr<cqrs::event_store>, std::string> open_store(const store_choice& choice);

/// A prefix for the ids a new run invents, so that they do not meet the aggregates already in `store`: empty when
/// there is no store or its log is empty (runs on an empty log stay deterministic), else "r<head>x<random hex>".
std::string run_tag(const cqrs::event_store* store);

/// How the rebuild of the read models shows its progress.
enum class rebuild_display {
  none,
  /// One line redrawn in place (carriage return): for a terminal.
  live_line,
  /// A plain line about once a second: for logs and pipes.
  lines,
};

/// What rebuilding the read models from an existing log took.
struct recovery_report {
  /// Events in the log when the engine started (0: nothing to rebuild).
  std::uint64_t events = 0;
  double seconds = 0;
  double events_per_s = 0;
  /// Why the read models did not catch up; nothing when they did.
  std::optional<std::string> error{};
};

/// Waits until every projection of `engine` has applied the log as it was at the call (wait_until_caught_up),
/// showing "rebuilding read models: N / M events (P%)" on `out` meanwhile; the rate counts from `started` (when the
/// engine was made). Call it after registering the projections and before sending commands. Returns at once, with
/// events 0, when the log is empty.
recovery_report catch_up_read_models(cqrs::engine& engine, std::chrono::steady_clock::time_point started,
                                     rebuild_display display, std::ostream* out);

} // namespace demo
