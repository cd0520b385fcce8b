// The load tester's workloads: which order commands each client sends, which of them must be rejected, and when a
// client stops. Plain C++ over the order domain, shared by the engine run and both baselines. CAF-free.
#pragma once

#include "domain/orders.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

/// What the clients of a phase do.
enum class workload_kind {
  /// Order after order: PlaceOrder, K x AddItem, ShipOrder; every order is new, so aggregates are many and cold.
  orders,
  /// Add-then-remove pairs on a few long-lived orders (placed by a `setup` phase first): contention on a few
  /// serial aggregates.
  hot,
  /// Places the hot workload's orders, one per unit: run before `hot`, not measured.
  setup,
};

/// "orders", "hot" or "setup".
std::string_view to_string(workload_kind kind);

/// The content of a workload: the same plan and seed send the same commands, whichever client sends them.
struct workload_plan {
  workload_kind kind = workload_kind::orders;
  /// Order ids are prefix + "-" + number: "o-17" (measured orders), "w-17" (warm-up orders), "h-3" (hot orders).
  std::string id_prefix = "o";
  /// AddItem commands per order (orders workload).
  std::uint64_t items = 8;
  /// Long-lived orders the hot workload (and its setup) works on.
  std::uint64_t aggregates = 8;
  std::uint64_t seed = 1;
  /// Share of the commands, in percent, that break a rule on purpose and must be rejected.
  double invalid_percent = 1.0;
  /// Distinct customers the orders are spread over.
  std::uint64_t customers = 5000;
  /// Distinct skus an order picks its items from.
  std::uint64_t catalog = 1000;
};

/// The id of order `number` under a plan ("o-17").
std::string order_id(const workload_plan& plan, std::uint64_t number);
/// The customer who places order `number`.
std::string customer_of(const workload_plan& plan, std::uint64_t number);

/// When the clients of a phase stop: after a number of units (orders, pairs, placements), of commands, at a
/// time, or when told. A client checks before each unit and always finishes the unit it began, so orders are
/// never left half-sent and a hot pair never leaves its line behind.
/// Ends every phase of the process's runs early (a signal asked the load tester to stop): clients stop at their
/// next unit of work, so every command sent is answered and the run ends with its figures and checks.
void interrupt_runs() noexcept;
/// True once interrupt_runs was called.
bool runs_interrupted() noexcept;

class phase_budget {
public:
  using clock = std::chrono::steady_clock;

  /// 0 means no limit for both counts; clock::time_point::max() means no deadline.
  phase_budget(std::uint64_t max_units, std::uint64_t max_commands, clock::time_point deadline);

  /// Claims the next unit of work, `commands` commands long; nothing once the budget is spent.
  std::optional<std::uint64_t> claim_unit(std::uint64_t commands);
  /// Makes every client stop at its next unit.
  void stop() noexcept { stopped_.store(true, std::memory_order_relaxed); }
  /// Units claimed so far (orders started, for instance).
  std::uint64_t units_claimed() const noexcept;

private:
  std::uint64_t max_units_;
  std::uint64_t max_commands_;
  clock::time_point deadline_;
  std::atomic<std::uint64_t> next_unit_{0};
  std::atomic<std::uint64_t> commands_claimed_{0};
  std::atomic<bool> stopped_{false};
};

/// A command to send and what must become of it.
struct planned_command {
  orders::command command;
  /// Empty when the command must be accepted; otherwise the rejection code it must come back with.
  std::string_view expected_rejection;
};

/// One client's stream of commands. Not thread-safe: a client uses it from one place at a time.
class client_script {
public:
  /// `client` numbers the client within its phase (it names the client's sku in the hot workload).
  client_script(const workload_plan& plan, phase_budget& budget, std::uint64_t client);

  /// The next command, or nothing when the budget is spent and the current unit is done.
  std::optional<planned_command> next();

  /// Called when the command last returned was refused as overloaded. If it placed its order, the rest of the
  /// order would only break rules (items added to an order that was never placed): a client that was told to come
  /// back later drops it, and its next command begins a new order. True when the order was dropped.
  bool drop_unplaced_order();

  /// The order and the customer of the command last returned (for read-your-writes and visibility queries).
  const std::string& order_id() const { return order_id_; }
  const std::string& customer_id() const { return customer_id_; }

private:
  bool begin_unit();
  void plan_order(std::uint64_t number);
  void plan_hot_pair(std::uint64_t number);
  void plan_placement(std::uint64_t number);
  /// Adds an invalid command on the current order with probability `invalid_chance_`.
  void maybe_add_invalid(std::uint64_t& random);

  const workload_plan* plan_;
  phase_budget* budget_;
  std::uint64_t client_;
  double invalid_chance_ = 0;
  std::vector<planned_command> unit_;
  std::size_t cursor_ = 0;
  std::string order_id_;
  std::string customer_id_;
};

/// The orders a plan's clients will have placed once `units` units were claimed: their numbers are 0..count-1.
std::uint64_t orders_placed(const workload_plan& plan, std::uint64_t units);

/// A small, fast, seedable random generator (splitmix64).
std::uint64_t next_random(std::uint64_t& state) noexcept;

} // namespace bench
