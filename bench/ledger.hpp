// The cost ledger: heap allocations, CAF messages, locks and atomic read-modify-writes per engine operation
// (a command to a live aggregate, the first command to a new one, a ready query, a read-your-writes query).
#pragma once

#include <boost/json.hpp>

#include <atomic>
#include <cstdint>
#include <iosfwd>

namespace bench {

/// Process-wide count of operator new calls, fed by the counting operator new that cqrs-load links
/// (bench/counting_new.cpp). Without it `available` stays false and the ledger reports no allocations.
namespace allocations {
extern std::atomic<bool> available;
extern std::atomic<bool> counting;
extern std::atomic<std::uint64_t> count;

inline void note() {
  if (counting.load(std::memory_order_relaxed)) [[unlikely]]
    count.fetch_add(1, std::memory_order_relaxed);
}
} // namespace allocations

/// What one operation costs on average, all threads included.
struct operation_cost {
  /// Every heap allocation in the process while the operations ran (engine, domain, read models, CAF).
  double allocations = 0;
  /// Those the domain's own code makes for the same operations (decide and evolve, or the read model's answer),
  /// measured by calling it directly: allocations minus this is the engine's share.
  double domain_allocations = 0;
  double messages = 0;
  double locks = 0;
  double atomic_updates = 0;

  double engine_allocations() const { return allocations - domain_allocations; }
};

struct cost_ledger {
  bool allocations_counted = false;
  std::uint64_t operations = 0;
  /// A command to an aggregate whose actor is alive (add_item to a placed order), no read models registered.
  operation_cost command_live;
  /// The first command to a new aggregate (place_order), no read models registered.
  operation_cost command_new;
  /// The same live command with the four order read models registered: the read side's cost per command.
  operation_cost command_live_with_read_models;
  /// A query its read model can answer at once (get_order_summary, consistency any).
  operation_cost query_ready;
  /// A read-your-writes query (at_least the position of a command just accepted), without that command's cost.
  operation_cost query_at_least;
};

/// Runs each operation `operations` times, one at a time, on fresh engines (2 workers) with the orders domain.
cost_ledger measure_cost_ledger(std::uint64_t operations = 2000);

void print_ledger(std::ostream& out, const cost_ledger& ledger);
boost::json::object ledger_to_json(const cost_ledger& ledger);

} // namespace bench
