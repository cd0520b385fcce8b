// The order aggregate's rules as given events / when command / then events or rejection, and its event codec.
#include "actors/event_codec.hpp"
#include "domain/orders.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <set>
#include <string>
#include <vector>

namespace Catch {
// Failed comparisons of events print the event's type name and JSON instead of "{?}".
template <>
struct StringMaker<orders::event> {
  static std::string convert(const orders::event& event) {
    return std::string{cqrs::detail::type_name_of(event)} + boost::json::serialize(cqrs::event_to_json(event));
  }
};
} // namespace Catch

namespace {

using namespace orders;
using events = std::vector<event>;

order given(const events& history) {
  order state;
  for (const auto& one : history)
    state = evolve(std::move(state), one);
  return state;
}

// Given these events, when this command: the decision.
cqrs::decision<event> when(const events& history, const command& cmd) {
  return decide(given(history), cmd);
}

// The rejection code, or "accepted", so a failing check prints what happened instead.
std::string code_of(const cqrs::decision<event>& outcome) {
  return outcome.accepted() ? std::string{"accepted"} : outcome.error().code;
}

const events placed{order_placed{"c-1"}};
const events with_apples{order_placed{"c-1"}, item_added{"apple", 2, 150}};
const events shipped{order_placed{"c-1"}, item_added{"apple", 2, 150}, order_shipped{300, 2}};
const events cancelled{order_placed{"c-1"}, item_added{"apple", 2, 150}, order_cancelled{"too slow"}};

} // namespace

TEST_CASE("placing a new order records its customer", "[orders]") {
  auto outcome = when({}, place_order{"o-1", "c-1"});
  REQUIRE(outcome.accepted());
  CHECK(outcome.events() == events{order_placed{"c-1"}});
}

TEST_CASE("an order cannot be placed twice, whatever became of it", "[orders]") {
  for (const auto& history : {placed, shipped, cancelled}) {
    auto outcome = when(history, place_order{"o-1", "c-2"});
    REQUIRE(code_of(outcome) == codes::already_placed);
    CHECK(outcome.error().message.find("o-1") != std::string::npos);
    CHECK(outcome.error().message.find("c-1") != std::string::npos);
  }
}

TEST_CASE("an order needs a customer", "[orders]") {
  auto outcome = when({}, place_order{"o-1", ""});
  REQUIRE(code_of(outcome) == codes::missing_customer);
  CHECK(outcome.error().message == "order o-1 needs a customer id");
}

TEST_CASE("a placed order takes items", "[orders]") {
  auto outcome = when(placed, add_item{"o-1", "apple", 2, 150});
  REQUIRE(outcome.accepted());
  CHECK(outcome.events() == events{item_added{"apple", 2, 150}});
}

TEST_CASE("adding more of a sku at the same price adds to its line", "[orders]") {
  auto outcome = when(with_apples, add_item{"o-1", "apple", 3, 150});
  REQUIRE(outcome.accepted());
  CHECK(outcome.events() == events{item_added{"apple", 3, 150}});
  auto state = given({order_placed{"c-1"}, item_added{"apple", 2, 150}, item_added{"apple", 3, 150}});
  CHECK(state.lines == order_lines{{"apple", order_line{5, 150}}});
}

TEST_CASE("adding a sku the order holds at another price is rejected, not re-priced", "[orders]") {
  auto outcome = when(with_apples, add_item{"o-1", "apple", 1, 175});
  REQUIRE(code_of(outcome) == codes::unit_price_mismatch);
  CHECK(outcome.error().message.find("150") != std::string::npos);
  CHECK(outcome.error().message.find("175") != std::string::npos);
}

TEST_CASE("items cannot be added to an order that was never placed", "[orders]") {
  auto outcome = when({}, add_item{"o-1", "apple", 1, 150});
  REQUIRE(code_of(outcome) == codes::not_placed);
  CHECK(outcome.error().message == "order o-1 has not been placed");
}

TEST_CASE("a shipped order rejects new items", "[orders]") {
  CHECK(code_of(when(shipped, add_item{"o-1", "pear", 1, 90})) == codes::already_shipped);
}

TEST_CASE("a cancelled order rejects new items and says why it was cancelled", "[orders]") {
  auto outcome = when(cancelled, add_item{"o-1", "pear", 1, 90});
  REQUIRE(code_of(outcome) == codes::already_cancelled);
  CHECK(outcome.error().message == "order o-1 was cancelled (too slow)");
}

TEST_CASE("an item needs a sku", "[orders]") {
  CHECK(code_of(when(placed, add_item{"o-1", "", 1, 150})) == codes::missing_sku);
  CHECK(code_of(when(with_apples, remove_item{"o-1", ""})) == codes::missing_sku);
}

TEST_CASE("a quantity must be between 1 and 1000", "[orders]") {
  constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
  constexpr auto highest = std::numeric_limits<std::int64_t>::max();
  for (std::int64_t qty : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{1001}, lowest, highest}) {
    INFO("qty " << qty);
    auto outcome = when(placed, add_item{"o-1", "apple", qty, 150});
    REQUIRE(code_of(outcome) == codes::invalid_quantity);
    CHECK(outcome.error().message.find(std::to_string(qty)) != std::string::npos);
  }
  CHECK(when(placed, add_item{"o-1", "apple", 1, 150}).accepted());
  CHECK(when(placed, add_item{"o-1", "apple", 1000, 150}).accepted());
  CHECK(when(placed, add_item{"o-1", "apple", 1001, 150}).error().message
        == "qty of \"apple\" in order o-1 must be 1..1000, got 1001");
}

TEST_CASE("a line cannot grow past 1000 units", "[orders]") {
  events history{order_placed{"c-1"}, item_added{"apple", 600, 150}};
  auto outcome = when(history, add_item{"o-1", "apple", 401, 150});
  REQUIRE(code_of(outcome) == codes::invalid_quantity);
  CHECK(outcome.error().message.find("600") != std::string::npos);
  CHECK(when(history, add_item{"o-1", "apple", 400, 150}).accepted());
}

TEST_CASE("a unit price must be positive and at most the ceiling", "[orders]") {
  for (std::int64_t price : {std::int64_t{0}, std::int64_t{-5}, max_unit_price_cents + 1}) {
    INFO("price " << price);
    auto outcome = when(placed, add_item{"o-1", "apple", 1, price});
    REQUIRE(code_of(outcome) == codes::invalid_unit_price);
    CHECK(outcome.error().message.find(std::to_string(price)) != std::string::npos);
  }
  CHECK(when(placed, add_item{"o-1", "apple", 1, 1}).accepted());
  CHECK(when(placed, add_item{"o-1", "apple", 1, max_unit_price_cents}).accepted());
}

TEST_CASE("removing a sku the order holds removes its whole line", "[orders]") {
  auto outcome = when(with_apples, remove_item{"o-1", "apple"});
  REQUIRE(outcome.accepted());
  CHECK(outcome.events() == events{item_removed{"apple"}});
  CHECK(given({order_placed{"c-1"}, item_added{"apple", 2, 150}, item_removed{"apple"}}).lines.empty());
}

TEST_CASE("removing a sku the order does not hold is rejected", "[orders]") {
  auto outcome = when(with_apples, remove_item{"o-1", "pear"});
  REQUIRE(code_of(outcome) == codes::item_not_in_order);
  CHECK(outcome.error().message == "order o-1 holds no \"pear\"");
}

TEST_CASE("items cannot be removed from an order that is not open", "[orders]") {
  CHECK(code_of(when({}, remove_item{"o-1", "apple"})) == codes::not_placed);
  CHECK(code_of(when(shipped, remove_item{"o-1", "apple"})) == codes::already_shipped);
  CHECK(code_of(when(cancelled, remove_item{"o-1", "apple"})) == codes::already_cancelled);
}

TEST_CASE("shipping an order carries its total and its unit count", "[orders]") {
  auto outcome = when({order_placed{"c-1"}, item_added{"apple", 2, 150}, item_added{"pear", 3, 20},
                       item_added{"apple", 1, 150}},
                      ship_order{"o-1"});
  REQUIRE(outcome.accepted());
  CHECK(outcome.events() == events{order_shipped{510, 6}});
}

TEST_CASE("an empty order cannot ship", "[orders]") {
  CHECK(code_of(when(placed, ship_order{"o-1"})) == codes::empty_order);
  auto emptied = events{order_placed{"c-1"}, item_added{"apple", 2, 150}, item_removed{"apple"}};
  auto outcome = when(emptied, ship_order{"o-1"});
  REQUIRE(code_of(outcome) == codes::empty_order);
  CHECK(outcome.error().message == "order o-1 has no items to ship");
}

TEST_CASE("only an open order can ship", "[orders]") {
  CHECK(code_of(when({}, ship_order{"o-1"})) == codes::not_placed);
  CHECK(code_of(when(shipped, ship_order{"o-1"})) == codes::already_shipped);
  CHECK(code_of(when(cancelled, ship_order{"o-1"})) == codes::already_cancelled);
}

TEST_CASE("cancelling an open order records the reason", "[orders]") {
  auto outcome = when(with_apples, cancel_order{"o-1", "changed my mind"});
  REQUIRE(outcome.accepted());
  CHECK(outcome.events() == events{order_cancelled{"changed my mind"}});
  CHECK(when(placed, cancel_order{"o-1", ""}).accepted());
}

TEST_CASE("only an open order can be cancelled", "[orders]") {
  CHECK(code_of(when({}, cancel_order{"o-1", "x"})) == codes::not_placed);
  CHECK(code_of(when(shipped, cancel_order{"o-1", "x"})) == codes::already_shipped);
  CHECK(code_of(when(cancelled, cancel_order{"o-1", "x"})) == codes::already_cancelled);
}

TEST_CASE("every rule has its own code and every code is listed", "[orders]") {
  // One broken rule per line; together they must produce each listed code exactly once.
  std::vector<std::string> produced{
    code_of(when(placed, place_order{"o-1", "c-1"})),
    code_of(when({}, add_item{"o-1", "apple", 1, 1})),
    code_of(when(shipped, cancel_order{"o-1", ""})),
    code_of(when(cancelled, ship_order{"o-1"})),
    code_of(when({}, place_order{"o-1", ""})),
    code_of(when(placed, add_item{"o-1", "", 1, 1})),
    code_of(when(placed, add_item{"o-1", "apple", 0, 1})),
    code_of(when(placed, add_item{"o-1", "apple", 1, 0})),
    code_of(when(with_apples, add_item{"o-1", "apple", 1, 1})),
    code_of(when(placed, remove_item{"o-1", "apple"})),
    code_of(when(placed, ship_order{"o-1"})),
  };
  std::vector<std::string> listed(all_codes.begin(), all_codes.end());
  std::sort(produced.begin(), produced.end());
  std::sort(listed.begin(), listed.end());
  CHECK(produced == listed);
  CHECK(std::set<std::string>(listed.begin(), listed.end()).size() == all_codes.size());
}

TEST_CASE("evolve folds a whole history into the state", "[orders]") {
  auto state = given({order_placed{"c-1"}, item_added{"apple", 2, 150}, item_added{"pear", 1, 90},
                      item_removed{"apple"}, order_cancelled{"late"}});
  CHECK(state.status == order_status::cancelled);
  CHECK(state.customer_id == "c-1");
  CHECK(state.lines == order_lines{{"pear", order_line{1, 90}}});
  CHECK(state.cancel_reason == "late");
  CHECK(total_cents(state.lines) == 90);
  CHECK(item_count(state.lines) == 1);
  CHECK(given(shipped).status == order_status::shipped);
}

TEST_CASE("evolve folds events the rules would never produce without failing", "[orders]") {
  constexpr auto highest = std::numeric_limits<std::int64_t>::max();
  order state;
  REQUIRE_NOTHROW(state = given({order_shipped{0, 0}, item_removed{"ghost"}, item_added{"apple", highest, 2},
                                 item_added{"apple", highest, 3}, order_placed{"c-9"}}));
  CHECK(state.status == order_status::placed);
  CHECK(state.customer_id == "c-9");
  // Quantities and totals saturate instead of overflowing; the latest price wins.
  CHECK(state.lines.at("apple") == order_line{highest, 3});
  CHECK(total_cents(state.lines) == highest);
  CHECK(item_count(state.lines) == highest);
}

TEST_CASE("saturating arithmetic clamps to the int64 range", "[orders]") {
  constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
  constexpr auto highest = std::numeric_limits<std::int64_t>::max();
  CHECK(detail::saturating_add(2, 3) == 5);
  CHECK(detail::saturating_add(highest, 1) == highest);
  CHECK(detail::saturating_add(lowest, -1) == lowest);
  CHECK(detail::saturating_multiply(-4, 5) == -20);
  CHECK(detail::saturating_multiply(highest, 2) == highest);
  CHECK(detail::saturating_multiply(highest, -2) == lowest);
  CHECK(detail::saturating_multiply(lowest, -1) == highest);
}

TEST_CASE("every command names the order it targets", "[orders]") {
  CHECK(aggregate_id(place_order{"o-1", "c-1"}) == "o-1");
  CHECK(aggregate_id(add_item{"o-2", "apple", 1, 1}) == "o-2");
  CHECK(aggregate_id(remove_item{"o-3", "apple"}) == "o-3");
  CHECK(aggregate_id(ship_order{"o-4"}) == "o-4");
  CHECK(aggregate_id(cancel_order{"o-5", "x"}) == "o-5");
}

TEST_CASE("order statuses have names that read back", "[orders]") {
  for (auto status : all_statuses)
    CHECK(status_from_string(to_string(status)) == status);
  CHECK(to_string(order_status::shipped) == "shipped");
  CHECK_FALSE(status_from_string("Shipped").has_value());
  CHECK_FALSE(status_from_string("").has_value());
}

TEST_CASE("every order event round-trips through JSON by its versioned type name", "[orders][json]") {
  const events all{order_placed{"c-1"}, item_added{"apple", 2, 150}, item_removed{"apple"}, order_shipped{300, 2},
                   order_cancelled{"too slow"}};
  const std::vector<std::string_view> names{"OrderPlaced.v1", "ItemAdded.v1", "ItemRemoved.v1", "OrderShipped.v1",
                                            "OrderCancelled.v1"};
  for (std::size_t index = 0; index < all.size(); ++index) {
    const auto& original = all[index];
    auto name = cqrs::detail::type_name_of(original);
    CHECK(name == names[index]);
    auto json = cqrs::event_to_json(original);
    auto decoded = cqrs::event_from_json<event>(name, json);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == original);
  }
  CHECK(boost::json::serialize(cqrs::event_to_json(event{item_added{"apple", 2, 150}}))
        == R"({"sku":"apple","qty":2,"unit_price_cents":150})");
  CHECK(boost::json::serialize(cqrs::event_to_json(event{order_shipped{300, 2}}))
        == R"({"total_cents":300,"item_count":2})");
}

TEST_CASE("decoding an order event refuses unknown names and missing fields", "[orders][json]") {
  auto unknown = cqrs::event_from_json<event>("OrderPlaced.v2", boost::json::parse(R"({"customer_id":"c-1"})"));
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error() == "unknown event type OrderPlaced.v2");
  auto missing = cqrs::event_from_json<event>("ItemAdded.v1", boost::json::parse(R"({"sku":"apple"})"));
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().find("cannot decode ItemAdded.v1") == 0);
}
