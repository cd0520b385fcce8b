// How each workload unfolds into commands: orders from place to ship, hot add/remove pairs, hot placements.
#include "bench/workload.hpp"

#include <algorithm>

#include <atomic>

namespace bench {
namespace {

/// Seeds a generator from a plan's seed and a number, so that streams for different numbers are unrelated.
std::uint64_t seeded(std::uint64_t seed, std::uint64_t number, std::uint64_t salt) {
  std::uint64_t state = seed ^ (number * 0x9e3779b97f4a7c15ULL) ^ (salt << 56);
  next_random(state);
  return state;
}

std::string sku_name(std::uint64_t index) {
  return "sku-" + std::to_string(index);
}

/// A sku's one price, so that no two AddItem commands of one line ever disagree on it.
std::int64_t price_of_sku(std::uint64_t index) {
  return static_cast<std::int64_t>(100 + index % 10'000);
}

/// The chance, per slot where an invalid command may go, that gives `percent` invalid commands in all, when a unit
/// has `valid` valid commands and `slots` such slots.
double invalid_chance(double percent, std::uint64_t valid, std::uint64_t slots) {
  if (percent <= 0 || slots == 0)
    return 0;
  auto share = std::min(percent, 99.0) / 100.0;
  return std::min(1.0, share / (1.0 - share) * static_cast<double>(valid) / static_cast<double>(slots));
}

double unit_random(std::uint64_t& state) {
  return static_cast<double>(next_random(state) >> 11) * 0x1.0p-53;
}

} // namespace

std::uint64_t next_random(std::uint64_t& state) noexcept {
  std::uint64_t result = (state += 0x9e3779b97f4a7c15ULL);
  result = (result ^ (result >> 30)) * 0xbf58476d1ce4e5b9ULL;
  result = (result ^ (result >> 27)) * 0x94d049bb133111ebULL;
  return result ^ (result >> 31);
}

std::string_view to_string(workload_kind kind) {
  switch (kind) {
  case workload_kind::orders:
    return "orders";
  case workload_kind::hot:
    return "hot";
  case workload_kind::setup:
    return "setup";
  }
  return "unknown";
}

std::string order_id(const workload_plan& plan, std::uint64_t number) {
  return plan.id_prefix + "-" + std::to_string(number);
}

std::string customer_of(const workload_plan& plan, std::uint64_t number) {
  auto state = seeded(plan.seed, number, 1);
  return "cust-" + std::to_string(next_random(state) % std::max<std::uint64_t>(1, plan.customers));
}

std::uint64_t orders_placed(const workload_plan& plan, std::uint64_t units) {
  switch (plan.kind) {
  case workload_kind::orders:
    return units;
  case workload_kind::hot:
  case workload_kind::setup:
    return plan.aggregates;
  }
  return 0;
}

phase_budget::phase_budget(std::uint64_t max_units, std::uint64_t max_commands, clock::time_point deadline)
  : max_units_(max_units), max_commands_(max_commands), deadline_(deadline) {}

namespace {
std::atomic<bool> interrupted{false};
} // namespace

void interrupt_runs() noexcept {
  interrupted.store(true, std::memory_order_relaxed);
}

bool runs_interrupted() noexcept {
  return interrupted.load(std::memory_order_relaxed);
}

std::optional<std::uint64_t> phase_budget::claim_unit(std::uint64_t commands) {
  if (stopped_.load(std::memory_order_relaxed))
    return std::nullopt;
  if (runs_interrupted()) {
    stop();
    return std::nullopt;
  }
  if (deadline_ != clock::time_point::max() && clock::now() >= deadline_) {
    stop();
    return std::nullopt;
  }
  if (max_commands_ != 0 && commands_claimed_.fetch_add(commands, std::memory_order_relaxed) >= max_commands_) {
    stop();
    return std::nullopt;
  }
  auto unit = next_unit_.fetch_add(1, std::memory_order_relaxed);
  if (max_units_ != 0 && unit >= max_units_) {
    stop();
    return std::nullopt;
  }
  return unit;
}

std::uint64_t phase_budget::units_claimed() const noexcept {
  auto claimed = next_unit_.load(std::memory_order_relaxed);
  return max_units_ != 0 ? std::min(claimed, max_units_) : claimed;
}

client_script::client_script(const workload_plan& plan, phase_budget& budget, std::uint64_t client)
  : plan_(&plan), budget_(&budget), client_(client) {
  switch (plan.kind) {
  case workload_kind::orders:
    invalid_chance_ = invalid_chance(plan.invalid_percent, plan.items + 2, plan.items + 1);
    break;
  case workload_kind::hot:
    invalid_chance_ = invalid_chance(plan.invalid_percent, 2, 1);
    break;
  case workload_kind::setup:
    invalid_chance_ = 0;
    break;
  }
}

std::optional<planned_command> client_script::next() {
  if (cursor_ == unit_.size() && !begin_unit())
    return std::nullopt;
  auto& planned = unit_[cursor_++];
  return std::move(planned);
}

bool client_script::drop_unplaced_order() {
  if (plan_->kind != workload_kind::orders || cursor_ != 1)
    return false;
  cursor_ = unit_.size();
  return true;
}

bool client_script::begin_unit() {
  unit_.clear();
  cursor_ = 0;
  // The budget counts commands by the unit's valid ones: invalid ones are extra, about invalid_percent more.
  auto commands = plan_->kind == workload_kind::orders ? plan_->items + 2 : plan_->kind == workload_kind::hot ? 2 : 1;
  auto unit = budget_->claim_unit(commands);
  if (!unit)
    return false;
  switch (plan_->kind) {
  case workload_kind::orders:
    plan_order(*unit);
    break;
  case workload_kind::hot:
    plan_hot_pair(*unit);
    break;
  case workload_kind::setup:
    plan_placement(*unit);
    break;
  }
  return true;
}

void client_script::maybe_add_invalid(std::uint64_t& random) {
  if (invalid_chance_ <= 0 || unit_random(random) >= invalid_chance_)
    return;
  auto sku = next_random(random) % plan_->catalog;
  // Three rules, each checked before anything about the order's lines, so the code is certain.
  switch (next_random(random) % 3) {
  case 0:
    unit_.push_back(
      {orders::add_item{order_id_, sku_name(sku), 0, price_of_sku(sku)}, orders::codes::invalid_quantity});
    break;
  case 1:
    unit_.push_back({orders::add_item{order_id_, sku_name(sku), 1, 0}, orders::codes::invalid_unit_price});
    break;
  default:
    unit_.push_back({orders::add_item{order_id_, std::string{}, 1, price_of_sku(sku)}, orders::codes::missing_sku});
    break;
  }
}

void client_script::plan_order(std::uint64_t number) {
  // Everything about order `number` comes from its own generator: the same whichever client sends it.
  auto random = seeded(plan_->seed, number, 3);
  order_id_ = bench::order_id(*plan_, number);
  customer_id_ = customer_of(*plan_, number);
  unit_.push_back({orders::place_order{order_id_, customer_id_}, {}});
  auto first_sku = next_random(random) % plan_->catalog;
  for (std::uint64_t item = 0; item < plan_->items; ++item) {
    maybe_add_invalid(random);
    // Consecutive skus: distinct within the order as long as items <= catalog, and then one line each.
    auto sku = (first_sku + item) % plan_->catalog;
    auto quantity = static_cast<std::int64_t>(1 + next_random(random) % 5);
    unit_.push_back({orders::add_item{order_id_, sku_name(sku), quantity, price_of_sku(sku)}, {}});
  }
  maybe_add_invalid(random);
  unit_.push_back({orders::ship_order{order_id_}, {}});
}

void client_script::plan_hot_pair(std::uint64_t number) {
  // The pair's aggregate, quantity and invalid command come from the pair's own generator (the sku from the
  // client), so a given number of pairs sends the same number of commands whichever clients send them.
  auto random = seeded(plan_->seed, number, 4);
  auto aggregate = next_random(random) % std::max<std::uint64_t>(1, plan_->aggregates);
  order_id_ = bench::order_id(*plan_, aggregate);
  customer_id_ = customer_of(*plan_, aggregate);
  maybe_add_invalid(random);
  // The client's own sku: only this client adds or removes its line, and it waits for each reply (or, in the
  // open loop, its commands reach the order in the order sent), so the remove always finds the line.
  auto sku = "c-" + std::to_string(client_);
  auto quantity = static_cast<std::int64_t>(1 + next_random(random) % 5);
  unit_.push_back({orders::add_item{order_id_, sku, quantity, price_of_sku(client_)}, {}});
  unit_.push_back({orders::remove_item{order_id_, std::move(sku)}, {}});
}

void client_script::plan_placement(std::uint64_t number) {
  order_id_ = bench::order_id(*plan_, number);
  customer_id_ = customer_of(*plan_, number);
  unit_.push_back({orders::place_order{order_id_, customer_id_}, {}});
}

} // namespace bench
