// Cost counters for the engine's own work (CAF messages it sends, locks it takes, atomic read-modify-writes it
// makes): off by default, switched on by a benchmark that prints a cost ledger per operation.
#pragma once

#include <cstdint>

namespace cqrs::diagnostics {

/// Totals since the process started, counted only while counting was on. CAF's internals (mailbox
/// operations, reference counts) and std::shared_ptr reference counts are not included.
struct cost_counts {
  std::uint64_t messages = 0;
  std::uint64_t locks = 0;
  std::uint64_t atomic_updates = 0;
};

/// Turns the counting on or off for the whole process. While off, each counting point costs one relaxed load.
void count_costs(bool enabled);
cost_counts cost_totals();

} // namespace cqrs::diagnostics
