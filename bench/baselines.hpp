// The two programs the engine is compared with, on the same workload and client count: a hand-written raw-CAF
// request/response program and a mutex-guarded CRUD loop. CAF stays inside baseline_caf.cpp.
#pragma once

#include "bench/load.hpp"

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

/// One std::unordered_map of orders under one std::mutex, mutated by `clients` OS threads that each apply
/// orders::decide / evolve directly, one command at a time (closed loop, same workload).
baseline_figures run_crud_baseline(const load_options& options);

} // namespace bench
