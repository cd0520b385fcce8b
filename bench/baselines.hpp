// The two programs the engine is compared with, on the same workload and client count: a hand-written raw-CAF
// request/response program and a mutex-guarded CRUD loop. CAF stays inside baseline_caf.cpp.
#pragma once

#include "bench/load.hpp"
#include "bench/phase_support.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

namespace bench {

/// Raw CAF, no engine: an event-based client actor per client sends each command as a request to the actor of its
/// order (found in a sharded directory, spawned lazily on first use), which applies orders::decide / evolve and
/// tells one projection actor the events, which applies them to an order_summaries read model. Same workload,
/// clients, threads and scheduler policy as the engine run (closed loop; setup and warm-up as the engine's).
baseline_figures run_raw_caf_baseline(const load_options& options);

/// The same raw-CAF program with clients in the engine's shape: no client actors; the order actor calls its client
/// back with the reply (a function call, as the engine does), and the client sends its next command from there.
/// One message per command instead of two, and every client always has a command in flight.
baseline_figures run_raw_caf_callback_baseline(const load_options& options);

/// The same raw-CAF program in an open loop at options.rate, paced as the engine run's (detail::pace): pacer threads
/// send each command to its order's actor at its intended time; latency counts from that time.
baseline_figures run_raw_caf_open_loop_baseline(const load_options& options);

/// One std::unordered_map of orders under one std::mutex, mutated by `clients` OS threads that each apply
/// orders::decide / evolve directly, one command at a time (closed loop, same workload).
baseline_figures run_crud_baseline(const load_options& options);

namespace detail {
// What both baselines do around their own way of running a phase.

/// What one phase of a baseline sent and got back.
struct baseline_phase_outcome {
  std::uint64_t sent = 0;
  std::uint64_t invalid_sent = 0;
  outcome_tally tally;
  histogram latencies;
  double seconds = 0;
  /// Process CPU time during the phase (user + system, every thread).
  double cpu_seconds = 0;
};

/// Runs the phases the engine run would (set-up, warm-up, measured), each through
/// `run_phase(plan, budget, clients)`, adds each phase's count problems to `figures` and returns the measured
/// phase's outcome.
template <class RunPhase>
baseline_phase_outcome run_baseline_phases(const load_options& options, baseline_figures& figures,
                                           RunPhase run_phase) {
  auto run = [&](workload_plan plan, std::unique_ptr<phase_budget> budget, std::uint64_t clients,
                 const std::string& name) {
    auto cpu_before = process_cpu_seconds();
    baseline_phase_outcome outcome = run_phase(std::move(plan), std::move(budget), clients);
    outcome.cpu_seconds = process_cpu_seconds() - cpu_before;
    auto problems = count_problems(figures.name + " " + name, outcome.sent, outcome.invalid_sent, outcome.tally);
    figures.problems.insert(figures.problems.end(), problems.begin(), problems.end());
    return outcome;
  };
  if (auto plan = setup_plan(options))
    run(std::move(*plan), setup_budget(options), std::clamp<std::uint64_t>(options.clients, 1, 64), "setup");
  if (auto plan = warmup_plan(options))
    run(std::move(*plan), warmup_budget(options, phase_budget::clock::now()), options.clients, "warm-up");
  return run(measured_plan(options), measured_budget(options, phase_budget::clock::now()), options.clients,
             "measured");
}

/// Fills the figures from the measured phase; verified when no problem was recorded before.
inline void fill_baseline_figures(baseline_figures& figures, const baseline_phase_outcome& measured) {
  figures.commands = measured.sent;
  figures.rejected = measured.tally.rejected;
  figures.seconds = measured.seconds;
  auto replies = measured.tally.accepted + measured.tally.rejected;
  figures.commands_per_s = measured.seconds > 0 ? static_cast<double>(replies) / measured.seconds : 0;
  figures.latency = summarise(measured.latencies);
  figures.mean_in_flight = figures.commands_per_s * figures.latency.mean_us / 1e6;
  figures.cpu_us_per_command =
    measured.sent > 0 ? measured.cpu_seconds * 1e6 / static_cast<double>(measured.sent) : 0;
  figures.verified = figures.problems.empty();
}
} // namespace detail

} // namespace bench
