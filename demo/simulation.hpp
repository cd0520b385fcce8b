// The seeded simulation of an order business: concurrent clients send commands and read their own writes, some
// under `any` consistency (and so sometimes stale), some with read-your-writes; the run ends with a verification.
#pragma once

#include "demo/order_engine.hpp"
#include "demo/store_choice.hpp"
#include "demo/verification.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace demo {

/// How a running simulation shows its progress.
enum class progress_style {
  /// Nothing.
  none,
  /// One status line redrawn in place (carriage return) a few times a second: for a terminal.
  live_line,
  /// A plain status line once a second: for logs and pipes.
  periodic_lines,
};

/// What to simulate. The defaults finish to a verified end in a few seconds on a small machine.
struct simulation_options {
  /// Seeds every customer's random generator: the same seed (and customers and orders) sends the same commands.
  std::uint64_t seed = 42;
  /// Customers, each owned by one client; customer i is "c-<i>".
  std::size_t customers = 500;
  /// Orders in all; order k belongs to customer k % customers, who places its orders one after the other.
  std::size_t orders = 20000;
  /// Worker threads of the engine (cqrs::options::threads).
  std::size_t engine_threads = 2;
  /// Concurrent client threads; client j owns customers j, j + clients, j + 2 * clients, ...
  std::size_t clients = 4;
  /// Stop sending commands after this long (zero: no bound). A bounded run stops at a point in time, so it is not
  /// deterministic: the commands sent depend on the machine's speed.
  std::chrono::milliseconds duration{0};
  /// Set to true (by a signal) to end the run early, as when `duration` runs out: the clients stop before their
  /// next command. Not owned; null for none.
  const std::atomic<bool>* interrupt = nullptr;
  progress_style progress = progress_style::none;
  /// Where progress goes; needed unless progress is none.
  std::ostream* progress_output = nullptr;
  /// Longest status line for progress_style::live_line, so it never wraps (which would break the redraw); 0: no
  /// limit.
  std::size_t line_width = 0;
  /// The event store; empty means a new in-memory one. A store that holds events already is recovered first: the
  /// read models rebuild from its log (shown as progress) before the clients start.
  std::shared_ptr<cqrs::event_store> store{};
  /// Put before every customer and order id ("c-07" becomes prefix + "c-07"), so a run on a log that holds
  /// events already does not meet its aggregates (run_tag(store) + "-", say); empty on an empty log.
  std::string id_prefix{};
};

/// Why the options cannot run, in words naming the option, or nothing when they can.
std::optional<std::string> check(const simulation_options& options);

/// Percentiles of visibility lag: the time from a command's reply to the answer of a query that asked for that
/// command's position (cqrs::at_least(ack.position)), in microseconds.
struct lag_statistics {
  std::size_t samples = 0;
  std::uint64_t p50_us = 0;
  std::uint64_t p90_us = 0;
  std::uint64_t p99_us = 0;
  std::uint64_t max_us = 0;
};

/// Nearest-rank percentiles of the samples (all zero when there are none).
lag_statistics summarize_lags(std::vector<std::uint64_t> samples_us);

/// The most events a projection was seen behind the log head while the clients ran (sampled a few times a second).
struct projection_peak {
  std::string name;
  cqrs::log_position lag = 0;
};

/// What a simulation did and found.
struct simulation_result {
  simulation_options options;

  /// Commands sent, and their replies. Deterministic for a seed unless the run was stopped by `duration`.
  std::uint64_t commands = 0;
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  /// Commands sent to break a rule on purpose (about 2% of all).
  std::uint64_t deliberate = 0;
  /// Replies other than the one the domain's decide() predicts from the client's own replies so far: must be 0.
  std::uint64_t unexpected_replies = 0;
  /// Rejections by rule code.
  std::map<std::string, std::uint64_t> rejections_by_code;
  /// Events in the log at the end.
  std::uint64_t events = 0;

  /// Queries sent, by consistency. Which reads are made is deterministic; whether an `any` read is stale is not.
  std::uint64_t queries = 0;
  std::uint64_t any_reads = 0;
  /// `any` reads that missed the client's own last accepted write.
  std::uint64_t stale_reads = 0;
  std::uint64_t ryw_reads = 0;
  /// Read-your-writes reads that missed the client's own last accepted write or disagreed with it: must be 0.
  std::uint64_t ryw_violations = 0;
  /// Queries that got no answer (a timeout, say): must be 0.
  std::uint64_t failed_queries = 0;

  lag_statistics visibility_lag;
  std::vector<projection_peak> peak_lags;
  /// Rebuilding the read models from the events the store held at the start (events 0 for a new store).
  recovery_report recovery;
  /// Wall time of the clients' part of the run (not the verification).
  std::chrono::duration<double> elapsed{0};
  /// True when `duration` ran out before the clients finished their orders.
  bool stopped_by_duration = false;
  /// True when `interrupt` ended the run before the clients finished their orders.
  bool stopped_by_signal = false;

  /// The read models at the end, once caught up; absent if they could not be copied.
  std::optional<order_read_models> read_models;
  /// fingerprint(without_commit_order(read models)): equal for two runs with one seed, whatever the clients.
  std::uint64_t digest = 0;
  /// fingerprint(read models) with positions: equal for two runs with one seed and one client.
  std::uint64_t exact_digest = 0;
  verification_report verification;
  /// The run's event log, kept after the engine is gone.
  std::shared_ptr<cqrs::event_store> store;

  /// The read models equal their rebuild from the log, no read-your-writes read missed a write, every reply was
  /// the predicted one and every query was answered.
  bool passed() const;
  /// The first reason the run did not pass, or nothing.
  std::optional<std::string> failure() const;
};

/// Runs the simulation on a new engine and verifies it. Throws std::invalid_argument if check(options) fails.
simulation_result run_simulation(const simulation_options& options);

/// The summary of an order that the order summaries read model must show once it has applied the order's latest
/// event, at `last_position`: what a client expects to read back after its own accepted command.
readmodels::order_summary expected_summary(const orders::order& state, cqrs::log_position last_position);

} // namespace demo
