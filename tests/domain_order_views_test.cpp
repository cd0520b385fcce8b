// The order read models: how each event changes them, what their queries answer, and how they are compared.
#include "readmodels/order_views.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace {

using namespace orders;
using namespace readmodels;

// A hand-built log: envelopes with gap-free positions, one shared stream id per order, as the engine makes them.
class order_log {
public:
  const cqrs::envelope& append(const std::string& order_id, event payload) {
    auto& stream = streams_[order_id];
    if (!stream)
      stream = std::make_shared<const cqrs::stream_id>(cqrs::stream_id{"order", order_id});
    cqrs::envelope meta;
    meta.stream = stream;
    meta.version = ++versions_[order_id];
    meta.position = envelopes_.size() + 1;
    meta.type_name = std::visit(
      [](const auto& alternative) -> std::string_view { return std::decay_t<decltype(alternative)>::type_name; },
      payload);
    meta.payload = std::move(payload);
    envelopes_.push_back(std::move(meta));
    return envelopes_.back();
  }

  // Appends and applies to one live read model, as a projection actor would.
  template <class Projection>
  void append_to(Projection& live, const std::string& order_id, event payload) {
    const auto& meta = append(order_id, std::move(payload));
    live.apply(meta, *meta.event_as<event>());
  }

  // A read model built from the whole log: what a rebuild computes.
  template <class Projection>
  Projection fold() const {
    Projection model;
    for (const auto& meta : envelopes_)
      model.apply(meta, *meta.event_as<event>());
    return model;
  }

  cqrs::log_position head() const { return envelopes_.size(); }

private:
  std::vector<cqrs::envelope> envelopes_;
  std::map<std::string, std::shared_ptr<const cqrs::stream_id>> streams_;
  std::map<std::string, cqrs::stream_version> versions_;
};

// A difference as text, so a failed check prints it.
std::string described(const std::optional<std::string>& difference) {
  return difference.value_or("(equal)");
}

// A small business: o-1 shipped (c-1), o-2 cancelled (c-1), o-3 open (c-2), o-4 shipped (c-2).
// Each event is also applied to the given live read models as it is appended.
template <class... Projections>
order_log small_business(Projections&... live) {
  order_log log;
  auto append = [&](const std::string& order_id, event payload) {
    const auto& meta = log.append(order_id, std::move(payload));
    (live.apply(meta, *meta.event_as<event>()), ...);
  };
  append("o-1", order_placed{"c-1"});
  append("o-1", item_added{"apple", 2, 150});
  append("o-2", order_placed{"c-1"});
  append("o-1", item_added{"pear", 1, 90});
  append("o-2", item_added{"apple", 5, 150});
  append("o-1", item_added{"apple", 1, 150});
  append("o-3", order_placed{"c-2"});
  append("o-1", order_shipped{540, 4});
  append("o-2", order_cancelled{"too slow"});
  append("o-3", item_added{"plum", 7, 30});
  append("o-4", order_placed{"c-2"});
  append("o-4", item_added{"pear", 3, 90});
  append("o-4", item_added{"fig", 9, 10});
  append("o-4", item_removed{"fig"});
  append("o-4", order_shipped{270, 3});
  return log;
}

} // namespace

TEST_CASE("an order summary follows its order from placement to shipping", "[views][order_summaries]") {
  order_log log;
  order_summaries live;
  log.append_to(live, "o-1", order_placed{"c-1"});
  auto summary = live.answer(get_order_summary{"o-1"});
  REQUIRE(summary.has_value());
  CHECK(summary->status == order_status::placed);
  CHECK(summary->customer_id == "c-1");
  CHECK(summary->lines.empty());
  CHECK(summary->last_position == 1);

  log.append_to(live, "o-1", item_added{"apple", 2, 150});
  log.append_to(live, "o-1", item_added{"pear", 1, 90});
  log.append_to(live, "o-1", item_added{"apple", 1, 150});
  summary = live.answer(get_order_summary{"o-1"});
  CHECK(summary->lines == order_lines{{"apple", order_line{3, 150}}, {"pear", order_line{1, 90}}});
  CHECK(summary->item_count == 4);
  CHECK(summary->total_cents == 540);

  log.append_to(live, "o-1", item_removed{"pear"});
  summary = live.answer(get_order_summary{"o-1"});
  CHECK(summary->lines == order_lines{{"apple", order_line{3, 150}}});
  CHECK(summary->item_count == 3);
  CHECK(summary->total_cents == 450);

  log.append_to(live, "o-1", order_shipped{450, 3});
  summary = live.answer(get_order_summary{"o-1"});
  CHECK(summary->status == order_status::shipped);
  CHECK(summary->total_cents == 450);
  CHECK(summary->item_count == 3);
  CHECK(summary->last_position == 6);
}

TEST_CASE("a shipped order's summary shows the figures the shipping event carried", "[views][order_summaries]") {
  order_log log;
  order_summaries live;
  log.append_to(live, "o-1", order_placed{"c-1"});
  log.append_to(live, "o-1", item_added{"apple", 2, 150});
  log.append_to(live, "o-1", order_shipped{250, 2});
  CHECK(live.answer(get_order_summary{"o-1"})->total_cents == 250);
}

TEST_CASE("a cancelled order's summary keeps the reason", "[views][order_summaries]") {
  auto model = small_business().fold<order_summaries>();
  auto summary = model.answer(get_order_summary{"o-2"});
  REQUIRE(summary.has_value());
  CHECK(summary->status == order_status::cancelled);
  CHECK(summary->cancel_reason == "too slow");
  CHECK(summary->lines == order_lines{{"apple", order_line{5, 150}}});
}

TEST_CASE("order summaries keep each order apart and know nothing of unseen orders", "[views][order_summaries]") {
  auto model = small_business().fold<order_summaries>();
  CHECK(model.by_order.size() == 4);
  CHECK(model.answer(get_order_summary{"o-3"})->lines == order_lines{{"plum", order_line{7, 30}}});
  CHECK(model.answer(get_order_summary{"o-4"})->lines == order_lines{{"pear", order_line{3, 90}}});
  CHECK(model.answer(get_order_summary{"o-4"})->last_position == 15);
  CHECK_FALSE(model.answer(get_order_summary{"o-99"}).has_value());
}

TEST_CASE("customer stats count placed, shipped and cancelled orders", "[views][customer_stats]") {
  auto model = small_business().fold<customer_stats>();
  auto first = model.answer(get_customer_stats{"c-1"});
  REQUIRE(first.has_value());
  CHECK(*first == customer_stats_view{2, 1, 1, 540});
  auto second = model.answer(get_customer_stats{"c-2"});
  REQUIRE(second.has_value());
  CHECK(*second == customer_stats_view{2, 1, 0, 270});
}

TEST_CASE("customer stats count only shipped orders as spent", "[views][customer_stats]") {
  order_log log;
  customer_stats live;
  log.append_to(live, "o-1", order_placed{"c-1"});
  log.append_to(live, "o-1", item_added{"apple", 2, 150});
  log.append_to(live, "o-1", item_removed{"apple"});
  CHECK(*live.answer(get_customer_stats{"c-1"}) == customer_stats_view{1, 0, 0, 0});
  log.append_to(live, "o-1", order_cancelled{"x"});
  CHECK(*live.answer(get_customer_stats{"c-1"}) == customer_stats_view{1, 0, 1, 0});
  log.append_to(live, "o-2", order_placed{"c-1"});
  log.append_to(live, "o-2", order_shipped{999, 1});
  CHECK(*live.answer(get_customer_stats{"c-1"}) == customer_stats_view{2, 1, 1, 999});
}

TEST_CASE("customer stats know nothing of a customer without orders", "[views][customer_stats]") {
  order_log log;
  customer_stats live;
  // Shipping an order never seen placed names no customer, so it counts for nobody.
  log.append_to(live, "o-1", order_shipped{100, 1});
  log.append_to(live, "o-2", order_cancelled{"x"});
  CHECK(live.customers.empty());
  CHECK_FALSE(live.answer(get_customer_stats{"c-1"}).has_value());
}

TEST_CASE("orders by status move each order to its new status", "[views][orders_by_status]") {
  auto model = small_business().fold<orders_by_status>();
  CHECK(model.answer(list_orders_by_status{order_status::placed}) == status_listing{order_status::placed, 1, {"o-3"}});
  CHECK(model.answer(list_orders_by_status{order_status::shipped})
        == status_listing{order_status::shipped, 2, {"o-4", "o-1"}});
  CHECK(model.answer(list_orders_by_status{order_status::cancelled})
        == status_listing{order_status::cancelled, 1, {"o-2"}});
  CHECK(model.answer(list_orders_by_status{order_status::none}) == status_listing{order_status::none, 0, {}});
}

TEST_CASE("orders by status lists the latest 20 of a status, newest first, refilling as orders leave",
          "[views][orders_by_status]") {
  order_log log;
  orders_by_status live;
  for (int number = 1; number <= 25; ++number)
    log.append_to(live, "o-" + std::to_string(number), order_placed{"c-1"});
  auto placed = live.answer(list_orders_by_status{order_status::placed});
  CHECK(placed.count == 25);
  REQUIRE(placed.latest_order_ids.size() == orders_by_status::latest_limit);
  CHECK(placed.latest_order_ids.front() == "o-25");
  CHECK(placed.latest_order_ids.back() == "o-6");

  log.append_to(live, "o-25", order_shipped{100, 1});
  placed = live.answer(list_orders_by_status{order_status::placed});
  CHECK(placed.count == 24);
  CHECK(placed.latest_order_ids.front() == "o-24");
  CHECK(placed.latest_order_ids.back() == "o-5");
  CHECK(live.answer(list_orders_by_status{order_status::shipped}).latest_order_ids
        == std::vector<std::string>{"o-25"});
}

TEST_CASE("orders by status ranks an order by when it entered its status, not by later items",
          "[views][orders_by_status]") {
  order_log log;
  orders_by_status live;
  log.append_to(live, "o-1", order_placed{"c-1"});
  log.append_to(live, "o-2", order_placed{"c-1"});
  log.append_to(live, "o-1", item_added{"apple", 1, 10});
  log.append_to(live, "o-1", item_removed{"apple"});
  CHECK(live.answer(list_orders_by_status{order_status::placed}).latest_order_ids
        == std::vector<std::string>{"o-2", "o-1"});
  CHECK(live.status_of_order.at("o-1") == order_status_entry{order_status::placed, 1});
}

TEST_CASE("top products count only units that shipped", "[views][top_products]") {
  auto model = small_business().fold<top_products>();
  // o-1 shipped apple 3 and pear 1; o-4 shipped pear 3 (its figs were removed); o-2 was cancelled; o-3 is open.
  CHECK(model.answer(get_top_products{})
        == std::vector<product_quantity>{{"pear", 4}, {"apple", 3}});
  CHECK(model.open_lines.size() == 1);
  CHECK(model.open_lines.at("o-3").at("plum") == 7);
}

TEST_CASE("top products keeps the ten best sellers and breaks ties by sku", "[views][top_products]") {
  order_log log;
  top_products live;
  // Twelve skus: "sku-a" ships 1 unit, "sku-b" 2, ... "sku-l" 12; "sku-x" and "sku-w" tie with "sku-l".
  std::vector<std::pair<std::string, std::int64_t>> shipments;
  for (int index = 0; index < 12; ++index)
    shipments.emplace_back(std::string{"sku-"} + static_cast<char>('a' + index), index + 1);
  shipments.emplace_back("sku-x", 12);
  shipments.emplace_back("sku-w", 12);
  int number = 0;
  for (const auto& [sku, quantity] : shipments) {
    auto order_id = "o-" + std::to_string(++number);
    log.append_to(live, order_id, order_placed{"c-1"});
    log.append_to(live, order_id, item_added{sku, quantity, 10});
    log.append_to(live, order_id, order_shipped{quantity * 10, quantity});
  }
  auto top = live.answer(get_top_products{});
  REQUIRE(top.size() == top_products::limit);
  CHECK(top[0] == product_quantity{"sku-l", 12});
  CHECK(top[1] == product_quantity{"sku-w", 12});
  CHECK(top[2] == product_quantity{"sku-x", 12});
  CHECK(top[3] == product_quantity{"sku-k", 11});
  CHECK(top[9] == product_quantity{"sku-e", 5});
}

TEST_CASE("top products drop a removed line, and an order whose last line is removed", "[views][top_products]") {
  order_log log;
  top_products live;
  log.append_to(live, "o-1", order_placed{"c-1"});
  log.append_to(live, "o-1", item_added{"apple", 5, 10});
  log.append_to(live, "o-1", item_added{"pear", 2, 10});
  log.append_to(live, "o-1", item_added{"apple", 1, 10});
  CHECK(live.open_lines.at("o-1") == string_map<std::int64_t>{{"apple", 6}, {"pear", 2}});
  log.append_to(live, "o-1", item_removed{"apple"});
  CHECK(live.open_lines.at("o-1") == string_map<std::int64_t>{{"pear", 2}});
  log.append_to(live, "o-1", item_removed{"pear"});
  CHECK(live.open_lines.empty());
  log.append_to(live, "o-1", item_added{"fig", 3, 10});
  log.append_to(live, "o-1", order_shipped{30, 3});
  CHECK(live.open_lines.empty());
  CHECK(live.answer(get_top_products{}) == std::vector<product_quantity>{{"fig", 3}});
}

TEST_CASE("orders by status lists nothing for a status outside the enumeration", "[views][orders_by_status]") {
  auto model = small_business().fold<orders_by_status>();
  auto listing = model.answer(list_orders_by_status{static_cast<order_status>(42)});
  CHECK(listing.count == 0);
  CHECK(listing.latest_order_ids.empty());
}

TEST_CASE("top products forget the lines of cancelled orders", "[views][top_products]") {
  order_log log;
  top_products live;
  log.append_to(live, "o-1", order_placed{"c-1"});
  log.append_to(live, "o-1", item_added{"apple", 5, 10});
  log.append_to(live, "o-1", order_cancelled{"x"});
  CHECK(live.open_lines.empty());
  CHECK(live.answer(get_top_products{}).empty());
}

TEST_CASE("read models built event by event equal those rebuilt from the log", "[views][difference]") {
  order_summaries summaries;
  customer_stats customers;
  orders_by_status statuses;
  top_products products;
  auto log = small_business(summaries, customers, statuses, products);
  CHECK(summaries == log.fold<order_summaries>());
  CHECK(customers == log.fold<customer_stats>());
  CHECK(statuses == log.fold<orders_by_status>());
  CHECK(products == log.fold<top_products>());
  CHECK(described(first_difference(summaries, log.fold<order_summaries>())) == "(equal)");
  CHECK(described(first_difference(customers, log.fold<customer_stats>())) == "(equal)");
  CHECK(described(first_difference(statuses, log.fold<orders_by_status>())) == "(equal)");
  CHECK(described(first_difference(products, log.fold<top_products>())) == "(equal)");
}

TEST_CASE("a corrupted order summary is described by its first difference", "[views][difference]") {
  auto rebuilt = small_business().fold<order_summaries>();
  auto live = rebuilt;
  live.by_order.at("o-3").status = order_status::shipped;
  CHECK(described(first_difference(live, rebuilt)) == "order o-3: status shipped vs placed");

  live = rebuilt;
  live.by_order.at("o-1").lines.at("apple").quantity = 4;
  CHECK(described(first_difference(live, rebuilt)) == "order o-1: sku apple: quantity 4 vs 3");

  live = rebuilt;
  live.by_order.at("o-2").lines.erase("apple");
  CHECK(described(first_difference(live, rebuilt)) == "order o-2: sku apple: missing from live");

  live = rebuilt;
  live.by_order.at("o-4").total_cents = 1;
  CHECK(described(first_difference(live, rebuilt)) == "order o-4: total cents 1 vs 270");

  live = rebuilt;
  live.by_order.at("o-2").cancel_reason.clear();
  CHECK(described(first_difference(live, rebuilt)) == "order o-2: cancel reason (empty) vs \"too slow\"");

  live = rebuilt;
  live.by_order.erase("o-2");
  live.by_order.at("o-3").customer_id = "c-9";
  CHECK(described(first_difference(live, rebuilt)) == "order o-2: missing from live");
  CHECK(described(first_difference(rebuilt, live)) == "order o-2: missing from rebuilt");
}

TEST_CASE("corrupted customer stats are described by their first difference", "[views][difference]") {
  auto rebuilt = small_business().fold<customer_stats>();
  auto live = rebuilt;
  live.customers.at("c-1").spent_cents = 999;
  CHECK(described(first_difference(live, rebuilt)) == "customer c-1: spent cents 999 vs 540");

  live = rebuilt;
  live.customers.at("c-2").orders_cancelled = 3;
  CHECK(described(first_difference(live, rebuilt)) == "customer c-2: orders cancelled 3 vs 0");

  live = rebuilt;
  live.customer_of_order.at("o-3") = "c-1";
  CHECK(described(first_difference(live, rebuilt)) == "order o-3: customer \"c-1\" vs \"c-2\"");

  live = rebuilt;
  live.customers["c-0"] = customer_stats_view{};
  CHECK(described(first_difference(live, rebuilt)) == "customer c-0: missing from rebuilt");
}

TEST_CASE("corrupted orders by status are described by their first difference", "[views][difference]") {
  auto rebuilt = small_business().fold<orders_by_status>();
  auto live = rebuilt;
  live.status_of_order.at("o-3").status = order_status::cancelled;
  CHECK(described(first_difference(live, rebuilt)) == "order o-3: status cancelled vs placed");

  live = rebuilt;
  live.status_of_order.at("o-1").since = 99;
  CHECK(described(first_difference(live, rebuilt)) == "order o-1: status since position 99 vs 8");

  // The listings drift while the entries agree.
  live = rebuilt;
  live.by_status[1].clear();
  CHECK(described(first_difference(live, rebuilt)) == "status placed: count 0 vs 1");

  live = rebuilt;
  live.by_status[2].erase({8, "o-1"});
  live.by_status[2].emplace(9, "o-1");
  CHECK(described(first_difference(live, rebuilt))
        == "status shipped: order o-1 since position 9 missing from rebuilt");
}

TEST_CASE("corrupted top products are described by their first difference", "[views][difference]") {
  auto rebuilt = small_business().fold<top_products>();
  auto live = rebuilt;
  live.shipped_quantity.at("apple") = 7;
  CHECK(described(first_difference(live, rebuilt)) == "sku apple: quantity shipped 7 vs 3");

  live = rebuilt;
  live.open_lines.at("o-3").at("plum") = 1;
  CHECK(described(first_difference(live, rebuilt)) == "open order o-3: sku plum: quantity 1 vs 7");

  live = rebuilt;
  live.open_lines["o-9"]["kiwi"] = 1;
  CHECK(described(first_difference(live, rebuilt)) == "open order o-9: missing from rebuilt");
}
