// The demo simulation: determinism per seed, stale-read accounting, deliberate rule breaking, bounded runs.
#include "demo/report.hpp"
#include "demo/simulation.hpp"

#include <catch2/catch.hpp>

#include <numeric>
#include <sstream>

namespace {

// Small enough for a fraction of a second, big enough that every client has several customers and orders.
demo::simulation_options small_run(std::uint64_t seed, std::size_t clients) {
  demo::simulation_options options;
  options.seed = seed;
  options.customers = 24;
  options.orders = 300;
  options.clients = clients;
  options.engine_threads = 2;
  return options;
}

void require_same_counts(const demo::simulation_result& first, const demo::simulation_result& second) {
  CHECK(first.commands == second.commands);
  CHECK(first.accepted == second.accepted);
  CHECK(first.rejected == second.rejected);
  CHECK(first.deliberate == second.deliberate);
  CHECK(first.rejections_by_code == second.rejections_by_code);
  CHECK(first.events == second.events);
  CHECK(first.queries == second.queries);
  CHECK(first.any_reads == second.any_reads);
  CHECK(first.ryw_reads == second.ryw_reads);
}

} // namespace

TEST_CASE("two runs with one seed and one client end in identical read models and counts") {
  auto first = demo::run_simulation(small_run(11, 1));
  auto second = demo::run_simulation(small_run(11, 1));
  REQUIRE(first.passed());
  REQUIRE(second.passed());
  REQUIRE(first.read_models);
  REQUIRE(second.read_models);

  require_same_counts(first, second);
  // Everything, log positions and the latest orders of each status included.
  CHECK(demo::first_difference(*first.read_models, *second.read_models) == std::nullopt);
  CHECK(*first.read_models == *second.read_models);
  CHECK(first.exact_digest == second.exact_digest);
  CHECK(first.read_models->statuses.model.answer(readmodels::list_orders_by_status{orders::order_status::shipped})
        == second.read_models->statuses.model.answer(
          readmodels::list_orders_by_status{orders::order_status::shipped}));
}

TEST_CASE("two runs with one seed and several clients agree on everything but the commit order") {
  auto first = demo::run_simulation(small_run(12, 4));
  auto second = demo::run_simulation(small_run(12, 4));
  REQUIRE(first.passed());
  REQUIRE(second.passed());
  REQUIRE(first.read_models);
  REQUIRE(second.read_models);

  require_same_counts(first, second);
  // Customer statistics and top products do not depend on the commit order at all.
  CHECK(first.read_models->customers.model == second.read_models->customers.model);
  CHECK(first.read_models->products.model == second.read_models->products.model);
  // Summaries and orders by status do through their log positions, and so the "latest" lists: leave those out.
  auto comparable_first = demo::without_commit_order(*first.read_models);
  auto comparable_second = demo::without_commit_order(*second.read_models);
  CHECK(demo::first_difference(comparable_first, comparable_second) == std::nullopt);
  CHECK(first.digest == second.digest);
  for (auto status : {orders::order_status::placed, orders::order_status::shipped, orders::order_status::cancelled})
    CHECK(first.read_models->statuses.model.answer(readmodels::list_orders_by_status{status}).count
          == second.read_models->statuses.model.answer(readmodels::list_orders_by_status{status}).count);
}

TEST_CASE("the number of clients changes only the interleaving, not the commands") {
  auto alone = demo::run_simulation(small_run(13, 1));
  auto together = demo::run_simulation(small_run(13, 5));
  REQUIRE(alone.passed());
  REQUIRE(together.passed());
  require_same_counts(alone, together);
  CHECK(alone.digest == together.digest);
}

TEST_CASE("a different seed sends different commands and ends in different read models") {
  auto first = demo::run_simulation(small_run(21, 2));
  auto second = demo::run_simulation(small_run(22, 2));
  REQUIRE(first.passed());
  REQUIRE(second.passed());
  REQUIRE(first.read_models);
  REQUIRE(second.read_models);
  CHECK(first.digest != second.digest);
  CHECK(demo::first_difference(demo::without_commit_order(*first.read_models),
                               demo::without_commit_order(*second.read_models))
          .has_value());
  CHECK((first.commands != second.commands || first.accepted != second.accepted
         || first.rejections_by_code != second.rejections_by_code));
}

TEST_CASE("no read-your-writes read misses the client's own write, and stale any reads are counted apart") {
  auto options = small_run(31, 4);
  options.orders = 600;
  auto result = demo::run_simulation(options);

  CHECK(result.ryw_reads > 0);
  CHECK(result.ryw_violations == 0);
  CHECK(result.any_reads > 0);
  CHECK(result.stale_reads <= result.any_reads);
  CHECK(result.queries == result.any_reads + result.ryw_reads);
  CHECK(result.failed_queries == 0);
  // Every read-your-writes read measured its visibility lag.
  CHECK(result.visibility_lag.samples == result.ryw_reads);
  CHECK(result.visibility_lag.p50_us <= result.visibility_lag.p99_us);
  CHECK(result.visibility_lag.p99_us <= result.visibility_lag.max_us);
  CHECK(result.passed());
}

TEST_CASE("about 2% of the commands break a rule on purpose, and exactly those are rejected") {
  auto options = small_run(41, 3);
  options.orders = 1000;
  auto result = demo::run_simulation(options);
  REQUIRE(result.passed());

  CHECK(result.unexpected_replies == 0);
  CHECK(result.rejected == result.deliberate);
  CHECK(result.accepted + result.rejected == result.commands);
  CHECK(result.events == result.accepted); // every accepted order command appends one event
  auto share = static_cast<double>(result.deliberate) / static_cast<double>(result.commands);
  CHECK(share > 0.01);
  CHECK(share < 0.035);
  // Spread over the rules, not one rule broken again and again.
  CHECK(result.rejections_by_code.size() >= 7);
  auto counted = std::accumulate(result.rejections_by_code.begin(), result.rejections_by_code.end(), std::uint64_t{0},
                                 [](std::uint64_t sum, const auto& entry) { return sum + entry.second; });
  CHECK(counted == result.rejected);
}

TEST_CASE("a run bounded by a duration stops early and still verifies") {
  auto options = small_run(51, 2);
  options.orders = 200'000;
  options.duration = std::chrono::milliseconds{1};
  auto result = demo::run_simulation(options);

  CHECK(result.stopped_by_duration);
  CHECK(result.commands < 200'000);
  CHECK(result.passed());
}

TEST_CASE("options that cannot run are refused with the option's name") {
  auto options = small_run(1, 1);
  options.clients = options.customers + 1;
  auto problem = demo::check(options);
  REQUIRE(problem);
  CHECK_THAT(*problem, Catch::Contains("--clients"));
  CHECK_THROWS_AS(demo::run_simulation(options), std::invalid_argument);

  options = small_run(1, 1);
  options.customers = 0;
  REQUIRE(demo::check(options));
  CHECK_THAT(*demo::check(options), Catch::Contains("--customers"));
  CHECK(demo::check(small_run(1, 1)) == std::nullopt);
}

TEST_CASE("lag percentiles are nearest-rank over the samples") {
  std::vector<std::uint64_t> samples(100);
  std::iota(samples.begin(), samples.end(), 1); // 1..100 µs
  std::reverse(samples.begin(), samples.end());
  auto lag = demo::summarize_lags(samples);
  CHECK(lag.samples == 100);
  CHECK(lag.p50_us == 50);
  CHECK(lag.p90_us == 90);
  CHECK(lag.p99_us == 99);
  CHECK(lag.max_us == 100);

  auto single = demo::summarize_lags({7});
  CHECK(single.p50_us == 7);
  CHECK(single.p99_us == 7);
  auto none = demo::summarize_lags({});
  CHECK(none.samples == 0);
  CHECK(none.max_us == 0);
}

TEST_CASE("the summary a client expects after its write matches the order it holds") {
  orders::order state;
  state.status = orders::order_status::placed;
  state.customer_id = "c-1";
  state.lines["apple"] = orders::order_line{3, 45};
  state.lines["tea"] = orders::order_line{1, 449};
  auto summary = demo::expected_summary(state, 17);
  CHECK(summary.status == orders::order_status::placed);
  CHECK(summary.item_count == 4);
  CHECK(summary.total_cents == 3 * 45 + 449);
  CHECK(summary.last_position == 17);
  CHECK(summary.lines == state.lines);
}

TEST_CASE("the summary ends in verified and the JSON line carries the run's figures") {
  auto result = demo::run_simulation(small_run(61, 2));
  REQUIRE(result.passed());

  std::ostringstream summary;
  demo::print_summary(summary, result);
  CHECK_THAT(summary.str(), Catch::EndsWith("verified\n") && Catch::Contains("Rejections by rule")
                              && Catch::Contains("Top products") && Catch::Contains("Orders by status")
                              && Catch::Contains("read-your-writes") && Catch::Contains("p99"));

  auto json = demo::to_json(result);
  for (auto field : {"seed", "commands", "accepted", "rejected", "events", "queries", "stale_reads", "ryw_reads",
                     "ryw_violations", "lag_p99_us", "lag_max_us", "verified"})
    CHECK(json.contains(field));
  CHECK(json.at("seed") == 61);
  CHECK(json.at("commands") == result.commands);
  CHECK(json.at("ryw_violations") == 0);
  CHECK(json.at("verified") == true);
  CHECK(json.at("failure").is_null());
}

TEST_CASE("a run whose read model differs from the log is reported as not verified") {
  auto result = demo::run_simulation(small_run(62, 2));
  REQUIRE(result.read_models);
  auto corrupted = *result.read_models;
  corrupted.customers.model.customers.at("c-01").orders_placed += 1;
  result.verification.checks = demo::compare_with_log(corrupted, *result.store);

  REQUIRE_FALSE(result.passed());
  CHECK_THAT(*result.failure(), Catch::StartsWith("customer_stats: customer c-01: orders placed"));
  std::ostringstream summary;
  demo::print_summary(summary, result);
  CHECK_THAT(summary.str(), Catch::Contains("NOT verified: customer_stats: customer c-01"));
  CHECK(demo::to_json(result).at("verified") == false);
}
