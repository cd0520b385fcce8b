// The cost ledger: runs each engine operation one at a time and divides what the process spent (allocations
// from the counting operator new, the engine's message, lock and atomic counters) by the number of operations.
#include "bench/ledger.hpp"

#include "actors/diagnostics.hpp"
#include "actors/engine.hpp"
#include "domain/orders.hpp"
#include "readmodels/order_views.hpp"

#include <cstdio>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace bench {

namespace allocations {
std::atomic<bool> available{false};
std::atomic<bool> counting{false};
std::atomic<std::uint64_t> count{0};
} // namespace allocations

namespace {

struct totals {
  std::uint64_t allocations = 0;
  cqrs::diagnostics::cost_counts costs{};
};

totals read_totals() {
  return totals{allocations::count.load(std::memory_order_relaxed), cqrs::diagnostics::cost_totals()};
}

void set_counting(bool enabled) {
  allocations::counting.store(enabled, std::memory_order_relaxed);
  cqrs::diagnostics::count_costs(enabled);
}

/// Counts what `work` costs, divided by `operations`.
template <class Work>
operation_cost measure(std::uint64_t operations, Work&& work) {
  auto before = read_totals();
  set_counting(true);
  work();
  set_counting(false);
  auto after = read_totals();
  auto per = [operations](std::uint64_t from, std::uint64_t to) {
    return static_cast<double>(to - from) / static_cast<double>(operations);
  };
  return operation_cost{per(before.allocations, after.allocations), 0,
                        per(before.costs.messages, after.costs.messages), per(before.costs.locks, after.costs.locks),
                        per(before.costs.atomic_updates, after.costs.atomic_updates)};
}

/// Counts only allocations (for the domain's own share, which sends, locks and updates nothing).
template <class Work>
double allocations_of(std::uint64_t operations, Work&& work) {
  auto before = allocations::count.load(std::memory_order_relaxed);
  allocations::counting.store(true, std::memory_order_relaxed);
  work();
  allocations::counting.store(false, std::memory_order_relaxed);
  return static_cast<double>(allocations::count.load(std::memory_order_relaxed) - before)
         / static_cast<double>(operations);
}

/// A reply slot the engine fills from one of its threads; the caller blocks on it without allocating.
struct reply_slot {
  std::atomic<bool> done{false};
  cqrs::command_result result;

  void reset() { done.store(false, std::memory_order_relaxed); }
  void wait() {
    done.wait(false, std::memory_order_acquire);
  }
};

void send_and_wait(cqrs::engine& engine, orders::command command, reply_slot& slot) {
  slot.reset();
  std::visit(
    [&](auto& one) {
      engine.send(std::move(one), [target = &slot](cqrs::command_result result) {
        target->result = std::move(result);
        target->done.store(true, std::memory_order_release);
        target->done.notify_one();
      });
    },
    command);
  slot.wait();
  if (!slot.result)
    throw std::runtime_error("ledger: a command was rejected: " + slot.result.error().code);
}

std::string order_name(std::string_view prefix, std::uint64_t number) {
  return std::string{prefix} + std::to_string(number);
}

/// The commands of one measured pass, built before counting (they are the host's values, not the engine's cost).
using command_list = std::vector<orders::command>;

command_list place_orders(std::string_view prefix, std::uint64_t count) {
  command_list commands;
  for (std::uint64_t number = 0; number < count; ++number)
    commands.push_back(orders::place_order{order_name(prefix, number), order_name("c-", number % 97)});
  return commands;
}

/// `count` add_item commands spread over `orders` placed orders, each a new line of sku `first_sku` onwards.
command_list add_items(std::string_view prefix, std::uint64_t orders, std::uint64_t count, std::uint64_t first_sku) {
  static const char* const skus[] = {"apple", "bread", "cheese", "dates", "eggs", "figs", "grapes", "honey",
                                     "ice", "jam", "kale", "lemon", "mango", "nuts", "oats", "pears"};
  command_list commands;
  for (std::uint64_t index = 0; index < count; ++index) {
    auto sku = (first_sku + index / orders) % std::size(skus);
    commands.push_back(orders::add_item{order_name(prefix, index % orders), skus[sku], 1,
                                        static_cast<std::int64_t>(100 + sku)});
  }
  return commands;
}

/// The domain's pure functions over a mirror of the engine's states: what decide and evolve allocate.
class domain_mirror {
public:
  void run(const command_list& commands) {
    for (const auto& command : commands) {
      auto id = std::string{aggregate_id(command)};
      auto& state = states_[id];
      auto decided = decide(state, command);
      if (!decided)
        throw std::runtime_error("ledger: the domain rejected a command: " + decided.error().code);
      for (const auto& event : decided.events())
        state = evolve(std::move(state), event);
    }
  }

  /// Allocations per command of `commands` (the mirror's own lookups excluded: they are found beforehand).
  double allocations(const command_list& commands) {
    std::vector<orders::order*> targets;
    for (const auto& command : commands)
      targets.push_back(&states_[std::string{aggregate_id(command)}]);
    return allocations_of(commands.size(), [&] {
      for (std::size_t index = 0; index < commands.size(); ++index) {
        auto& state = *targets[index];
        auto decided = decide(state, commands[index]);
        for (const auto& event : std::move(decided).events())
          state = evolve(std::move(state), event);
      }
    });
  }

private:
  std::map<std::string, orders::order> states_;
};

cqrs::options ledger_options() {
  return cqrs::options{.tuning = {.threads = 2}};
}

void run_all(cqrs::engine& engine, const command_list& commands, reply_slot& slot) {
  for (const auto& command : commands)
    send_and_wait(engine, command, slot);
}

void add_read_models(cqrs::engine& engine) {
  engine.add_projection<readmodels::order_summaries>();
  engine.add_projection<readmodels::customer_stats>();
  engine.add_projection<readmodels::orders_by_status>();
  engine.add_projection<readmodels::top_products>();
}

void caught_up(cqrs::engine& engine) {
  if (!engine.wait_until_caught_up())
    throw std::runtime_error("ledger: the read models did not catch up");
}

} // namespace

cost_ledger measure_cost_ledger(std::uint64_t operations) {
  cost_ledger ledger;
  ledger.allocations_counted = allocations::available.load();
  ledger.operations = operations;
  auto live_orders = std::max<std::uint64_t>(1, operations / 4);
  reply_slot slot;

  // Write side alone: no read models, so each figure is the command path's.
  {
    cqrs::engine engine{ledger_options()};
    engine.add_aggregate<orders::order>();
    domain_mirror mirror;
    // Warm-up of the same shapes, so pools and tables have grown before counting.
    auto warm_orders = place_orders("w-", live_orders);
    auto warm_items = add_items("w-", live_orders, live_orders, 0);
    run_all(engine, warm_orders, slot);
    run_all(engine, warm_items, slot);
    auto placed = place_orders("o-", live_orders);
    run_all(engine, placed, slot);
    mirror.run(placed);

    auto fresh = place_orders("n-", operations);
    auto fresh_domain = mirror.allocations(fresh);
    ledger.command_new = measure(operations, [&] { run_all(engine, fresh, slot); });
    ledger.command_new.domain_allocations = fresh_domain;

    auto items = add_items("o-", live_orders, operations, 0);
    auto items_domain = mirror.allocations(items);
    ledger.command_live = measure(operations, [&] { run_all(engine, items, slot); });
    ledger.command_live.domain_allocations = items_domain;
  }

  // With the four order read models: the read side's share of a command, and the queries.
  {
    cqrs::engine engine{ledger_options()};
    engine.add_aggregate<orders::order>();
    add_read_models(engine);
    domain_mirror mirror;
    auto placed = place_orders("o-", live_orders);
    run_all(engine, placed, slot);
    mirror.run(placed);
    auto warm_items = add_items("o-", live_orders, live_orders, 12);
    run_all(engine, warm_items, slot);
    mirror.run(warm_items);
    caught_up(engine);

    // Each window ends once the read models caught up, so their work on the window's events is inside it.
    auto items = add_items("o-", live_orders, operations, 0);
    auto items_domain = mirror.allocations(items);
    ledger.command_live_with_read_models = measure(operations, [&] {
      run_all(engine, items, slot);
      caught_up(engine);
    });
    ledger.command_live_with_read_models.domain_allocations = items_domain;

    auto copy = engine.copy_read_model<readmodels::order_summaries>();
    if (!copy)
      throw std::runtime_error("ledger: no order_summaries read model");
    std::vector<readmodels::get_order_summary> questions;
    for (std::uint64_t index = 0; index < operations; ++index)
      questions.push_back(readmodels::get_order_summary{order_name("o-", index % live_orders)});
    auto answer_domain = allocations_of(operations, [&] {
      for (const auto& question : questions)
        (void)copy->model.answer(question);
    });

    std::atomic<bool> answered{false};
    bool found = true;
    auto ask = [&](const readmodels::get_order_summary& question, cqrs::consistency wanted) {
      answered.store(false, std::memory_order_relaxed);
      engine.query(
        question,
        [&answered, &found](cqrs::query_result<std::optional<readmodels::order_summary>> answer) {
          found = found && answer && answer->has_value();
          answered.store(true, std::memory_order_release);
          answered.notify_one();
        },
        wanted);
      answered.wait(false, std::memory_order_acquire);
    };
    ledger.query_ready = measure(operations, [&] {
      for (const auto& question : questions)
        ask(question, cqrs::consistency::any());
    });
    ledger.query_ready.domain_allocations = answer_domain;

    // A command and its read-your-writes query, less the same commands alone in the same shape: each waited for,
    // then the read models caught up, so that the projections apply one command at a time in both passes.
    auto alone_items = add_items("o-", live_orders, operations, 4);
    auto alone_domain = mirror.allocations(alone_items);
    auto alone = measure(operations, [&] {
      for (const auto& command : alone_items) {
        send_and_wait(engine, command, slot);
        caught_up(engine);
      }
    });
    auto more_items = add_items("o-", live_orders, operations, 8);
    auto more_domain = mirror.allocations(more_items);
    auto with_queries = measure(operations, [&] {
      for (std::size_t index = 0; index < more_items.size(); ++index) {
        send_and_wait(engine, more_items[index], slot);
        ask(questions[index], cqrs::at_least(slot.result->position));
        caught_up(engine);
      }
    });
    ledger.query_at_least = operation_cost{with_queries.allocations - alone.allocations - (more_domain - alone_domain),
                                           answer_domain,
                                           with_queries.messages - alone.messages,
                                           with_queries.locks - alone.locks,
                                           with_queries.atomic_updates - alone.atomic_updates};
    if (!found)
      throw std::runtime_error("ledger: a query found no order summary");
  }
  return ledger;
}

namespace {

const std::pair<const char*, operation_cost cost_ledger::*> rows[] = {
  {"command to a live aggregate", &cost_ledger::command_live},
  {"first command to a new aggregate", &cost_ledger::command_new},
  {"live command, 4 read models", &cost_ledger::command_live_with_read_models},
  {"query, ready", &cost_ledger::query_ready},
  {"query, at_least (after its command)", &cost_ledger::query_at_least},
};

boost::json::object cost_to_json(const operation_cost& cost) {
  return boost::json::object{{"allocations", cost.allocations},
                             {"domain_allocations", cost.domain_allocations},
                             {"engine_allocations", cost.engine_allocations()},
                             {"messages", cost.messages},
                             {"locks", cost.locks},
                             {"atomic_updates", cost.atomic_updates}};
}

} // namespace

void print_ledger(std::ostream& out, const cost_ledger& ledger) {
  char line[160];
  out << "Cost ledger: " << ledger.operations << " operations of each kind, one at a time, 2 engine workers; "
      << (ledger.allocations_counted ? "allocations counted by operator new" : "allocations NOT counted") << '\n';
  std::snprintf(line, sizeof line, "%-38s %12s %8s %8s %10s %7s %9s\n", "operation", "allocations", "domain",
                "engine", "messages", "locks", "atomics");
  out << line;
  for (const auto& [label, member] : rows) {
    const auto& cost = ledger.*member;
    std::snprintf(line, sizeof line, "%-38s %12.2f %8.2f %8.2f %10.2f %7.2f %9.2f\n", label, cost.allocations,
                  cost.domain_allocations, cost.engine_allocations(), cost.messages, cost.locks, cost.atomic_updates);
    out << line;
  }
  out << "(domain: decide+evolve, or the read model's answer, called directly; locks and atomics: the engine's own,"
         " not CAF's mailbox operations or shared_ptr reference counts)\n";
}

boost::json::object ledger_to_json(const cost_ledger& ledger) {
  boost::json::object json{
    {"ledger_operations", ledger.operations},
    {"allocations_counted", ledger.allocations_counted},
    {"allocations_per_command_live", ledger.command_live.allocations},
    {"allocations_per_command_new", ledger.command_new.allocations},
    {"allocations_per_query_ready", ledger.query_ready.allocations},
    {"allocations_per_query_at_least", ledger.query_at_least.allocations},
    {"engine_allocations_per_command_live", ledger.command_live.engine_allocations()},
    {"engine_allocations_per_command_new", ledger.command_new.engine_allocations()},
    {"engine_allocations_per_query_ready", ledger.query_ready.engine_allocations()},
    {"messages_per_command_live", ledger.command_live.messages},
    {"messages_per_command_new", ledger.command_new.messages},
    {"locks_per_command_live", ledger.command_live.locks},
    {"atomic_updates_per_command_live", ledger.command_live.atomic_updates},
  };
  boost::json::object detail;
  detail["command_live"] = cost_to_json(ledger.command_live);
  detail["command_new"] = cost_to_json(ledger.command_new);
  detail["command_live_with_read_models"] = cost_to_json(ledger.command_live_with_read_models);
  detail["query_ready"] = cost_to_json(ledger.query_ready);
  detail["query_at_least"] = cost_to_json(ledger.query_at_least);
  json["ledger"] = std::move(detail);
  return json;
}

} // namespace bench
