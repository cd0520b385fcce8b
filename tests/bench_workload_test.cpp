// The load tester's workloads, checked against the order rules directly (no engine): valid commands are accepted,
// invalid ones rejected with the code they are meant to get, and budgets stop the clients where they should.
#include "bench/workload.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

namespace {

/// Applies commands to orders with decide/evolve and counts what a load run would count.
struct rule_check {
  std::map<std::string, orders::order, std::less<>> orders_by_id;
  std::uint64_t commands = 0;
  std::uint64_t invalid = 0;
  std::uint64_t valid_rejected = 0;
  std::uint64_t invalid_accepted = 0;
  std::uint64_t wrong_code = 0;

  void apply(const bench::planned_command& planned) {
    ++commands;
    auto& state = orders_by_id[std::string{orders::aggregate_id(planned.command)}];
    auto decided = orders::decide(state, planned.command);
    if (!planned.expected_rejection.empty()) {
      ++invalid;
      if (decided)
        ++invalid_accepted;
      else if (decided.error().code != planned.expected_rejection)
        ++wrong_code;
    } else if (!decided) {
      ++valid_rejected;
    }
    if (decided)
      for (const auto& event : decided.events())
        state = orders::evolve(std::move(state), event);
  }

  /// Runs every client's script one command at a time, clients taking turns (as concurrent clients would).
  void run(const bench::workload_plan& plan, bench::phase_budget& budget, std::uint64_t clients) {
    std::vector<bench::client_script> scripts;
    for (std::uint64_t client = 0; client < clients; ++client)
      scripts.emplace_back(plan, budget, client);
    std::vector<bool> done(clients, false);
    std::uint64_t finished = 0;
    while (finished < clients)
      for (std::uint64_t client = 0; client < clients; ++client) {
        if (done[client])
          continue;
        if (auto planned = scripts[client].next())
          apply(*planned);
        else {
          done[client] = true;
          ++finished;
        }
      }
  }
};

bench::phase_budget units(std::uint64_t count) {
  return bench::phase_budget{count, 0, bench::phase_budget::clock::time_point::max()};
}

} // namespace

TEST_CASE("the orders workload sends each order from placement to shipment, with about 1% invalid commands") {
  bench::workload_plan plan;
  plan.items = 8;
  auto budget = units(2000);
  rule_check check;
  check.run(plan, budget, 16);

  CHECK(check.orders_by_id.size() == 2000);
  for (const auto& [id, order] : check.orders_by_id) {
    CHECK(order.status == orders::order_status::shipped);
    CHECK(order.lines.size() == 8);
  }
  CHECK(check.commands == 2000 * 10 + check.invalid);
  CHECK(check.valid_rejected == 0);
  CHECK(check.invalid_accepted == 0);
  CHECK(check.wrong_code == 0);
  auto share = static_cast<double>(check.invalid) / static_cast<double>(check.commands);
  CHECK(share > 0.007);
  CHECK(share < 0.013);
}

TEST_CASE("the hot workload's add/remove pairs are valid on orders its setup placed") {
  bench::workload_plan plan;
  plan.kind = bench::workload_kind::hot;
  plan.id_prefix = "h";
  plan.aggregates = 3;
  rule_check check;

  auto setup_plan = plan;
  setup_plan.kind = bench::workload_kind::setup;
  auto placements = units(plan.aggregates);
  check.run(setup_plan, placements, 2);
  CHECK(check.orders_by_id.size() == 3);

  bench::phase_budget pairs{0, 20'000, bench::phase_budget::clock::time_point::max()};
  check.run(plan, pairs, 12);
  CHECK(check.orders_by_id.size() == 3);
  CHECK(check.commands >= 3 + 20'000);
  CHECK(check.invalid > 0);
  CHECK(check.valid_rejected == 0);
  CHECK(check.invalid_accepted == 0);
  CHECK(check.wrong_code == 0);
  // Every pair finished: no client left its line behind.
  for (const auto& [id, order] : check.orders_by_id)
    CHECK(order.lines.empty());
}

TEST_CASE("one seed sends the same orders whichever client sends them") {
  bench::workload_plan plan;
  auto first_budget = units(50);
  auto second_budget = units(50);
  rule_check one_client;
  rule_check many_clients;
  one_client.run(plan, first_budget, 1);
  many_clients.run(plan, second_budget, 7);
  CHECK(one_client.orders_by_id == many_clients.orders_by_id);
  CHECK(one_client.commands == many_clients.commands);

  plan.seed = 2;
  auto other_budget = units(50);
  rule_check other_seed;
  other_seed.run(plan, other_budget, 1);
  CHECK(other_seed.orders_by_id != one_client.orders_by_id);
}

TEST_CASE("a command budget stops clients at the next order, never inside one") {
  bench::workload_plan plan;
  plan.items = 3;
  plan.invalid_percent = 0;
  bench::phase_budget budget{0, 100, bench::phase_budget::clock::time_point::max()};
  rule_check check;
  check.run(plan, budget, 4);
  // Orders of 5 commands are claimed until 100 commands are: exactly 20 orders, all shipped.
  CHECK(check.commands == 100);
  CHECK(budget.units_claimed() == 20);
  for (const auto& [id, order] : check.orders_by_id)
    CHECK(order.status == orders::order_status::shipped);
}

TEST_CASE("a budget whose deadline passed or that was stopped gives no more work") {
  bench::phase_budget late{0, 0, bench::phase_budget::clock::now()};
  CHECK_FALSE(late.claim_unit(1).has_value());

  bench::phase_budget open{0, 0, bench::phase_budget::clock::time_point::max()};
  CHECK(open.claim_unit(1) == 0u);
  CHECK(open.claim_unit(1) == 1u);
  open.stop();
  CHECK_FALSE(open.claim_unit(1).has_value());
  CHECK(open.units_claimed() == 2);
}

TEST_CASE("no invalid commands are sent when the invalid share is zero") {
  bench::workload_plan plan;
  plan.invalid_percent = 0;
  auto budget = units(300);
  rule_check check;
  check.run(plan, budget, 3);
  CHECK(check.invalid == 0);
  CHECK(check.commands == 300 * 10);
}
