// The order script line protocol: good lines, every kind of bad line (with its exact error), and JSON replies.
#include "domain/order_json.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

namespace {

using namespace order_json;

// The parsed line, or a failure naming the parser's error.
parsed_line parsed(std::string_view line) {
  auto result = parse_line(line);
  INFO("line: " << line << "\nerror: " << (result ? std::string{} : result.error()));
  REQUIRE(result.has_value());
  return *result;
}

orders::command command_of(std::string_view line) {
  auto result = parsed(line);
  REQUIRE(std::holds_alternative<orders::command>(result));
  return std::get<orders::command>(result);
}

query_request query_of(std::string_view line) {
  auto result = parsed(line);
  REQUIRE(std::holds_alternative<query_request>(result));
  return std::get<query_request>(result);
}

// The parser's error for a line, or "(parsed)" when it unexpectedly parsed.
std::string error_of(std::string_view line) {
  auto result = parse_line(line);
  return result ? std::string{"(parsed)"} : result.error();
}

bool starts_with(const std::string& text, std::string_view prefix) {
  return text.rfind(prefix, 0) == 0;
}

} // namespace

TEST_CASE("a script line parses into each order command", "[json][parse]") {
  CHECK(command_of(R"({"type":"PlaceOrder","order_id":"o-1","customer_id":"c-1"})")
        == orders::command{orders::place_order{"o-1", "c-1"}});
  CHECK(command_of(R"({"type":"AddItem","order_id":"o-1","sku":"apple","qty":2,"unit_price_cents":150})")
        == orders::command{orders::add_item{"o-1", "apple", 2, 150}});
  CHECK(command_of(R"({"type":"RemoveItem","order_id":"o-1","sku":"apple"})")
        == orders::command{orders::remove_item{"o-1", "apple"}});
  CHECK(command_of(R"({"type":"ShipOrder","order_id":"o-1"})") == orders::command{orders::ship_order{"o-1"}});
  CHECK(command_of(R"({"type":"CancelOrder","order_id":"o-1","reason":"late"})")
        == orders::command{orders::cancel_order{"o-1", "late"}});
}

TEST_CASE("a cancel line may leave out its reason", "[json][parse]") {
  CHECK(command_of(R"({"type":"CancelOrder","order_id":"o-1"})") == orders::command{orders::cancel_order{"o-1", ""}});
}

TEST_CASE("fields may come in any order and with surrounding whitespace", "[json][parse]") {
  CHECK(command_of("  {\"unit_price_cents\": 5, \"qty\": 1, \"sku\": \"fig\", \"order_id\": \"o-2\", "
                   "\"type\": \"AddItem\"}\r\n")
        == orders::command{orders::add_item{"o-2", "fig", 1, 5}});
}

TEST_CASE("a script line parses into each order query, reading your writes by default", "[json][parse]") {
  CHECK(query_of(R"({"query":"get_order_summary","order_id":"o-1"})")
        == query_request{readmodels::get_order_summary{"o-1"}, read_consistency::read_your_writes});
  CHECK(query_of(R"({"query":"get_customer_stats","customer_id":"c-1"})")
        == query_request{readmodels::get_customer_stats{"c-1"}, read_consistency::read_your_writes});
  CHECK(query_of(R"({"query":"list_orders_by_status","status":"cancelled"})")
        == query_request{readmodels::list_orders_by_status{orders::order_status::cancelled},
                         read_consistency::read_your_writes});
  CHECK(query_of(R"({"query":"top_products"})")
        == query_request{readmodels::get_top_products{}, read_consistency::read_your_writes});
}

TEST_CASE("a query line can ask for any consistency or spell out the default", "[json][parse]") {
  CHECK(query_of(R"({"query":"top_products","consistency":"any"})").consistency == read_consistency::any);
  CHECK(query_of(R"({"query":"get_order_summary","order_id":"o-1","consistency":"read_your_writes"})").consistency
        == read_consistency::read_your_writes);
  CHECK(error_of(R"({"query":"top_products","consistency":"eventual"})")
        == R"(top_products: field "consistency" must be "any" or "read_your_writes", got "eventual")");
  CHECK(error_of(R"({"query":"top_products","consistency":1})")
        == R"(top_products: field "consistency" must be a string, got integer 1)");
  CHECK(error_of(R"({"type":"ShipOrder","order_id":"o-1","consistency":"any"})")
        == R"(ShipOrder: unknown field "consistency" (known: type, order_id))");
}

TEST_CASE("every command and query reads back from the line it writes", "[json][round-trip]") {
  const std::vector<orders::command> commands{
    orders::place_order{"o-1", "c-1"}, orders::add_item{"o-1", "apple", -3, 9'000'000'000'000},
    orders::remove_item{"o-1", "apple"}, orders::ship_order{"o-1"},
    orders::cancel_order{"o-1", "quote \" and\nnewline \xC3\xA9"}};
  for (const auto& command : commands) {
    auto line = boost::json::serialize(to_json(command));
    INFO(line);
    CHECK(command_of(line) == command);
  }
  const std::vector<query_request> queries{
    {readmodels::get_order_summary{"o-1"}, read_consistency::any},
    {readmodels::get_customer_stats{"c-1"}, read_consistency::read_your_writes},
    {readmodels::list_orders_by_status{orders::order_status::shipped}, read_consistency::any},
    {readmodels::get_top_products{}, read_consistency::read_your_writes}};
  for (const auto& query : queries) {
    auto line = boost::json::serialize(to_json(query));
    INFO(line);
    CHECK(query_of(line) == query);
  }
  CHECK(boost::json::serialize(to_json(orders::command{orders::add_item{"o-1", "apple", 2, 150}}))
        == R"({"type":"AddItem","order_id":"o-1","sku":"apple","qty":2,"unit_price_cents":150})");
}

TEST_CASE("malformed JSON is refused with Boost.JSON's message", "[json][bad]") {
  CHECK(starts_with(error_of(R"({"type":"ShipOrder","order_id":)"), "malformed JSON: "));
  CHECK(starts_with(error_of(R"({"type":"ShipOrder" "order_id":"o-1"})"), "malformed JSON: "));
  CHECK(starts_with(error_of(R"({"type":"ShipOrder","order_id":"o-1"} trailing)"), "malformed JSON: "));
  CHECK(starts_with(error_of(R"({"type":"ShipOrder","order_id":"o-1",})"), "malformed JSON: "));
  CHECK(starts_with(error_of("{\"type\":\"ShipOrder\",\"order_id\":\"o-\xFF\"}"), "malformed JSON: "));
  CHECK(starts_with(error_of("{'type':'ShipOrder'}"), "malformed JSON: "));
  CHECK(error_of("") == "empty line");
  CHECK(error_of(" \t\r\n") == "empty line");
}

TEST_CASE("a key repeated within one object is refused and named, even in a nested object", "[json][bad]") {
  // Boost.JSON keeps the last of repeated keys: this line would otherwise cancel instead of ship.
  CHECK(error_of(R"({"type":"ShipOrder","order_id":"o-1","type":"CancelOrder"})")
        == R"(duplicate key "type": each key may appear once in an object)");
  CHECK(error_of(R"({"query":"get_order_summary","order_id":"o-1","order_id":"o-2"})")
        == R"(duplicate key "order_id": each key may appear once in an object)");
  CHECK(starts_with(error_of(R"({"type":"ShipOrder","order_id":"o-1","extra":{"a":1,"a":2}})"),
                    R"(duplicate key "a")"));
  // The same key in two different objects is no repetition.
  CHECK(error_of(R"({"type":"ShipOrder","order_id":"o-1","x":{"order_id":1}})").find("duplicate") == std::string::npos);
}

TEST_CASE("a line must be one JSON object", "[json][bad]") {
  CHECK(error_of("[1,2]") == "a line must be a JSON object, got an array");
  CHECK(error_of(R"("PlaceOrder")") == R"(a line must be a JSON object, got string "PlaceOrder")");
  CHECK(error_of("42") == "a line must be a JSON object, got integer 42");
  CHECK(error_of("null") == "a line must be a JSON object, got null");
}

TEST_CASE("a line names a command type or a query, and only one of them", "[json][bad]") {
  CHECK(error_of(R"({"order_id":"o-1"})") == R"(missing field "type" (a command) or "query")");
  CHECK(error_of(R"({"type":"ShipOrder","query":"top_products"})")
        == R"(a line has either "type" (a command) or "query", not both)");
  CHECK(error_of(R"({"type":7,"order_id":"o-1"})") == R"(field "type" must be a string, got integer 7)");
  CHECK(error_of(R"({"query":null})") == R"(field "query" must be a string, got null)");
}

TEST_CASE("unknown command types and queries are named in the error", "[json][bad]") {
  CHECK(error_of(R"({"type":"RefundOrder","order_id":"o-1"})")
        == R"(unknown command type "RefundOrder" (known: PlaceOrder, AddItem, RemoveItem, ShipOrder, CancelOrder))");
  CHECK(error_of(R"({"type":"placeorder","order_id":"o-1"})").find(R"("placeorder")") != std::string::npos);
  CHECK(error_of(R"({"query":"all_orders"})")
        == R"(unknown query "all_orders" (known: get_order_summary, get_customer_stats, list_orders_by_status, )"
           R"(top_products))");
}

TEST_CASE("a missing field is named", "[json][bad]") {
  CHECK(error_of(R"({"type":"PlaceOrder","order_id":"o-1"})") == R"(PlaceOrder: missing field "customer_id")");
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"apple","qty":2})")
        == R"(AddItem: missing field "unit_price_cents")");
  CHECK(error_of(R"({"type":"ShipOrder"})") == R"(ShipOrder: missing field "order_id")");
  CHECK(error_of(R"({"query":"get_customer_stats"})") == R"(get_customer_stats: missing field "customer_id")");
  CHECK(error_of(R"({"query":"list_orders_by_status"})") == R"(list_orders_by_status: missing field "status")");
}

TEST_CASE("an unknown field is refused, before any missing one", "[json][bad]") {
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"apple","quantity":2,"unit_price_cents":150})")
        == R"(AddItem: unknown field "quantity" (known: type, order_id, sku, qty, unit_price_cents))");
  CHECK(error_of(R"({"query":"top_products","limit":3})")
        == R"(top_products: unknown field "limit" (known: query, consistency))");
}

TEST_CASE("a field of the wrong kind is named with what it got", "[json][bad]") {
  CHECK(error_of(R"({"type":"PlaceOrder","order_id":17,"customer_id":"c-1"})")
        == R"(PlaceOrder: field "order_id" must be a string, got integer 17)");
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"apple","qty":"2","unit_price_cents":150})")
        == R"(AddItem: field "qty" must be an integer in the 64-bit signed range, got string "2")");
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"apple","qty":2.5,"unit_price_cents":150})")
        == R"(AddItem: field "qty" must be an integer in the 64-bit signed range, got number 2.5E0)");
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":["apple"],"qty":2,"unit_price_cents":150})")
        == R"(AddItem: field "sku" must be a string, got an array)");
  CHECK(error_of(R"({"type":"CancelOrder","order_id":"o-1","reason":false})")
        == R"(CancelOrder: field "reason" must be a string, got false)");
  CHECK(error_of(R"({"query":"list_orders_by_status","status":"lost"})")
        == R"(list_orders_by_status: field "status" must be "placed", "shipped" or "cancelled", got "lost")");
  CHECK(error_of(R"({"query":"list_orders_by_status","status":"none"})")
        == R"(list_orders_by_status: field "status" must be "placed", "shipped" or "cancelled", got "none")");
}

TEST_CASE("integers outside the 64-bit signed range are refused", "[json][bad]") {
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":18446744073709551615,"unit_price_cents":1})")
        == R"(AddItem: field "qty" is out of the 64-bit signed range, got integer 18446744073709551615)");
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":9223372036854775808,"unit_price_cents":1})")
        == R"(AddItem: field "qty" is out of the 64-bit signed range, got integer 9223372036854775808)");
  CHECK(starts_with(
    error_of(R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":1,"unit_price_cents":-9223372036854775809})"),
    R"(AddItem: field "unit_price_cents" must be an integer in the 64-bit signed range, got number)"));
  CHECK(starts_with(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":1e30,"unit_price_cents":1})"),
                    R"(AddItem: field "qty" must be an integer in the 64-bit signed range, got number)"));
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":1e999,"unit_price_cents":1})")
        == R"(AddItem: field "qty" must be an integer in the 64-bit signed range, got number Infinity)");
  CHECK(error_of(R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":1e99999999999999,"unit_price_cents":1})")
        == "malformed JSON: exponent overflow");
}

TEST_CASE("negative and oversized quantities parse, and the domain rejects them by rule", "[json][bad]") {
  for (std::string_view line : {R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":-3,"unit_price_cents":1})",
                                R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":9223372036854775807,)"
                                R"("unit_price_cents":1})"}) {
    auto command = command_of(line);
    orders::order placed;
    placed.status = orders::order_status::placed;
    auto outcome = orders::decide(placed, command);
    REQUIRE_FALSE(outcome.accepted());
    CHECK(outcome.error().code == orders::codes::invalid_quantity);
  }
  CHECK(std::get<orders::add_item>(command_of(
          R"({"type":"AddItem","order_id":"o-1","sku":"a","qty":-9223372036854775808,"unit_price_cents":1})"))
          .qty
        == std::numeric_limits<std::int64_t>::min());
}

TEST_CASE("deeply nested input is refused without recursing into it", "[json][bad][limits]") {
  std::string opened(10'000, '[');
  CHECK(error_of(opened) == "malformed JSON: nested deeper than 16 levels");
  std::string balanced = opened + std::string(10'000, ']');
  CHECK(error_of(balanced) == "malformed JSON: nested deeper than 16 levels");
  std::string in_a_field = R"({"type":"ShipOrder","order_id":)" + std::string(100, '[') + std::string(100, ']') + "}";
  CHECK(error_of(in_a_field) == "malformed JSON: nested deeper than 16 levels");
  std::string objects;
  for (int depth = 0; depth < 5'000; ++depth)
    objects += R"({"a":)";
  CHECK(error_of(objects) == "malformed JSON: nested deeper than 16 levels");
  // Nesting within the limit is only refused for being the wrong kind of field.
  CHECK(error_of(R"({"type":"ShipOrder","order_id":[[[1]]]})")
        == R"(ShipOrder: field "order_id" must be a string, got an array)");
}

TEST_CASE("a line over 64 KiB is refused before parsing", "[json][bad][limits]") {
  std::string prefix = R"({"type":"PlaceOrder","order_id":"o-1","customer_id":")";
  std::string suffix = R"("})";
  std::string largest = prefix + std::string(max_line_bytes - prefix.size() - suffix.size(), 'c') + suffix;
  REQUIRE(largest.size() == max_line_bytes);
  CHECK(std::get<orders::place_order>(command_of(largest)).customer_id.size()
        == max_line_bytes - prefix.size() - suffix.size());
  std::string too_large = prefix + std::string(max_line_bytes, 'c') + suffix;
  CHECK(error_of(too_large) == "line is " + std::to_string(too_large.size()) + " bytes, over the limit of 65536");
  CHECK(error_of(std::string(1'000'000, '[')) == "line is 1000000 bytes, over the limit of 65536");
}

TEST_CASE("user text echoed in an error is quoted, escaped and shortened", "[json][bad]") {
  std::string long_name(500, 'x');
  auto error = error_of(R"({"type":")" + long_name + R"("})");
  CHECK(error == "unknown command type \"" + std::string(40, 'x')
                   + "\"... (known: PlaceOrder, AddItem, RemoveItem, ShipOrder, CancelOrder)");
  CHECK(error_of(R"({"type":"Ship\nOrder"})").find(R"("Ship\nOrder")") != std::string::npos);
  // A cut never splits a UTF-8 sequence: 39 ASCII bytes then a two-byte letter straddling byte 40.
  auto straddling = error_of(R"({"query":")" + std::string(39, 'q') + "\xC3\xA9" + R"("})");
  CHECK(straddling.find("\"" + std::string(39, 'q') + "\"...") != std::string::npos);
}

TEST_CASE("answers become JSON replies", "[json][answers]") {
  readmodels::order_summary summary;
  summary.status = orders::order_status::placed;
  summary.customer_id = "c-1";
  summary.lines = orders::order_lines{{"apple", orders::order_line{2, 150}}};
  summary.item_count = 2;
  summary.total_cents = 300;
  summary.last_position = 2;
  CHECK(boost::json::serialize(answer_to_json(std::optional{summary}))
        == R"({"status":"placed","customer_id":"c-1","lines":[{"sku":"apple","quantity":2,"unit_price_cents":150}],)"
           R"("item_count":2,"total_cents":300,"cancel_reason":"","last_position":2})");
  CHECK(answer_to_json(std::optional<readmodels::order_summary>{}).is_null());

  CHECK(boost::json::serialize(answer_to_json(std::optional{readmodels::customer_stats_view{2, 1, 0, 300}}))
        == R"({"orders_placed":2,"orders_shipped":1,"orders_cancelled":0,"spent_cents":300})");
  CHECK(answer_to_json(std::optional<readmodels::customer_stats_view>{}).is_null());

  CHECK(boost::json::serialize(
          answer_to_json(readmodels::status_listing{orders::order_status::shipped, 31, {"o-40", "o-39"}}))
        == R"({"status":"shipped","count":31,"latest_order_ids":["o-40","o-39"]})");

  CHECK(boost::json::serialize(answer_to_json(std::vector<readmodels::product_quantity>{{"pear", 4}, {"apple", 3}}))
        == R"([{"sku":"pear","quantity":4},{"sku":"apple","quantity":3}])");
  CHECK(boost::json::serialize(answer_to_json(std::vector<readmodels::product_quantity>{})) == "[]");

  CHECK(boost::json::serialize(to_json(cqrs::reject("empty_order", "order o-1 has no items to ship")))
        == R"({"code":"empty_order","message":"order o-1 has no items to ship"})");
}

TEST_CASE("commands and queries have their line names", "[json]") {
  CHECK(command_name(orders::remove_item{"o-1", "a"}) == "RemoveItem");
  CHECK(query_name(readmodels::get_top_products{}) == "top_products");
  CHECK(query_name(readmodels::list_orders_by_status{}) == "list_orders_by_status");
  CHECK(to_string(read_consistency::any) == "any");
}
