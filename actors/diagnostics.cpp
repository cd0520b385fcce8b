// The process-wide cost counters behind cqrs::diagnostics.
#include "actors/detail/cost_counting.hpp"

namespace cqrs::detail::costs {

std::atomic<bool> counting{false};
std::atomic<std::uint64_t> messages{0};
std::atomic<std::uint64_t> locks{0};
std::atomic<std::uint64_t> atomic_updates{0};

} // namespace cqrs::detail::costs

namespace cqrs::diagnostics {

void count_costs(bool enabled) {
  detail::costs::counting.store(enabled, std::memory_order_relaxed);
}

cost_counts cost_totals() {
  using namespace detail::costs;
  return cost_counts{messages.load(std::memory_order_relaxed), locks.load(std::memory_order_relaxed),
                     atomic_updates.load(std::memory_order_relaxed)};
}

} // namespace cqrs::diagnostics
