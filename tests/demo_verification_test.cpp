// The demo's verification: live read models against a rebuild from the log, corrupted copies, commit-order stripping.
#include "demo/verification.hpp"

#include "domain/orders.hpp"
#include "waiting.hpp"

#include <catch2/catch.hpp>

namespace {

// An engine with the order domain and a few orders: o-1 shipped, o-2 cancelled, o-3 open.
std::unique_ptr<cqrs::engine> engine_with_orders() {
  auto engine = std::make_unique<cqrs::engine>(cqrs::options{.tuning = {.threads = 2}});
  demo::add_order_domain(*engine);
  std::vector<orders::command> commands{
    orders::place_order{"o-1", "c-1"},
    orders::add_item{"o-1", "apple", 3, 45},
    orders::add_item{"o-1", "tea", 1, 449},
    orders::ship_order{"o-1"},
    orders::place_order{"o-2", "c-1"},
    orders::add_item{"o-2", "apple", 2, 45},
    orders::cancel_order{"o-2", "changed my mind"},
    orders::place_order{"o-3", "c-2"},
    orders::add_item{"o-3", "milk", 1, 119},
  };
  for (auto& command : commands) {
    auto reply = test_support::get_within(engine->send(command), "the reply to a setup command");
    if (!reply)
      throw std::runtime_error("setup command rejected: " + reply.error().message);
  }
  return engine;
}

} // namespace

TEST_CASE("live read models that equal their rebuild from the log are verified") {
  auto engine = engine_with_orders();
  auto verified = demo::verify_engine(*engine);

  CHECK(verified.report.verified());
  CHECK(verified.report.first_difference() == std::nullopt);
  REQUIRE(verified.report.checks.size() == 4);
  for (const auto& check : verified.report.checks) {
    CHECK(check.difference == std::nullopt);
    CHECK(check.checkpoint == engine->head());
  }
  REQUIRE(verified.copies);
  CHECK(verified.copies->summaries.model.by_order.at("o-1").status == orders::order_status::shipped);
}

TEST_CASE("a corrupted order summary is reported with its read model, order and field") {
  auto engine = engine_with_orders();
  auto copies = demo::verify_engine(*engine).copies;
  REQUIRE(copies);
  copies->summaries.model.by_order.at("o-1").status = orders::order_status::cancelled;

  auto checks = demo::compare_with_log(*copies, *engine->store());
  REQUIRE(checks.size() == 4);
  CHECK(checks[0].read_model == "order_summaries");
  REQUIRE(checks[0].difference);
  CHECK(*checks[0].difference == "order o-1: status cancelled vs shipped");
  // The other read models were not touched.
  CHECK(checks[1].difference == std::nullopt);
  CHECK(checks[2].difference == std::nullopt);
  CHECK(checks[3].difference == std::nullopt);

  demo::verification_report report{std::nullopt, checks};
  CHECK_FALSE(report.verified());
  CHECK(report.first_difference() == "order_summaries: order o-1: status cancelled vs shipped");
}

TEST_CASE("a corrupted figure in any read model fails the verification") {
  auto engine = engine_with_orders();
  auto clean = demo::verify_engine(*engine).copies;
  REQUIRE(clean);

  SECTION("customer statistics") {
    auto copies = *clean;
    copies.customers.model.customers.at("c-1").spent_cents += 1;
    auto checks = demo::compare_with_log(copies, *engine->store());
    REQUIRE(checks[1].difference);
    CHECK_THAT(*checks[1].difference, Catch::Contains("customer c-1") && Catch::Contains("spent cents"));
  }
  SECTION("orders by status") {
    auto copies = *clean;
    copies.statuses.model.by_status[static_cast<std::size_t>(orders::order_status::placed)].clear();
    auto checks = demo::compare_with_log(copies, *engine->store());
    REQUIRE(checks[2].difference);
    CHECK_THAT(*checks[2].difference, Catch::Contains("status placed"));
  }
  SECTION("top products") {
    auto copies = *clean;
    copies.products.model.shipped_quantity.at("apple") = 4;
    auto checks = demo::compare_with_log(copies, *engine->store());
    REQUIRE(checks[3].difference);
    CHECK(*checks[3].difference == "sku apple: quantity shipped 4 vs 3");
  }
}

TEST_CASE("a rebuild folds the log only up to the live model's checkpoint") {
  auto engine = engine_with_orders();
  auto copies = demo::verify_engine(*engine).copies;
  REQUIRE(copies);
  // More events after the copy: the copy still verifies against the log as it was at its checkpoint.
  REQUIRE(test_support::get_within(engine->send(orders::ship_order{"o-3"}), "the reply to shipping o-3"));
  auto checks = demo::compare_with_log(*copies, *engine->store());
  for (const auto& check : checks)
    CHECK(check.difference == std::nullopt);
}

TEST_CASE("read models without commit order keep every fact but the log positions") {
  auto engine = engine_with_orders();
  auto copies = demo::verify_engine(*engine).copies;
  REQUIRE(copies);
  auto stripped = demo::without_commit_order(*copies);

  for (const auto& [order_id, summary] : stripped.summaries.model.by_order)
    CHECK(summary.last_position == 0);
  CHECK(stripped.summaries.model.by_order.at("o-1").item_count == 4);
  auto listing = stripped.statuses.model.answer(readmodels::list_orders_by_status{orders::order_status::placed});
  CHECK(listing.count == 1);
  CHECK(listing.latest_order_ids == std::vector<std::string>{"o-3"});
  CHECK(stripped.customers.model == copies->customers.model);
  CHECK(stripped.products.model == copies->products.model);
  CHECK(demo::fingerprint(stripped) != demo::fingerprint(*copies));
  CHECK(demo::fingerprint(stripped) == demo::fingerprint(demo::without_commit_order(stripped)));
}
