// Script mode: replies to good lines, error replies to bad ones that change nothing, and the bounded line reader.
#include "demo/order_engine.hpp"
#include "demo/script.hpp"
#include "domain/order_json.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <sstream>

namespace {

std::unique_ptr<cqrs::engine> order_engine() {
  auto engine = std::make_unique<cqrs::engine>(cqrs::options{.tuning = {.threads = 2}});
  demo::add_order_domain(*engine);
  return engine;
}

// The replies of a script run, one JSON object per output line.
struct script_run {
  demo::script_summary summary;
  std::vector<boost::json::object> replies;
};

script_run run(const std::string& script, cqrs::engine& engine) {
  std::istringstream in{script};
  std::ostringstream out;
  script_run result;
  result.summary = demo::run_script(in, out, engine);
  std::istringstream lines{out.str()};
  for (std::string line; std::getline(lines, line);)
    result.replies.push_back(boost::json::parse(line).as_object());
  return result;
}

std::string text_of(const boost::json::value& value) {
  return std::string{value.as_string()};
}

const std::string good_lines = R"({"type":"PlaceOrder","order_id":"o-1","customer_id":"c-1"}
{"type":"AddItem","order_id":"o-1","sku":"apple","qty":3,"unit_price_cents":45}
{"type":"AddItem","order_id":"o-1","sku":"apple","qty":0,"unit_price_cents":45}
{"query":"get_order_summary","order_id":"o-1"}
{"type":"ShipOrder","order_id":"o-1"}
{"query":"get_customer_stats","customer_id":"c-1"}
)";

} // namespace

TEST_CASE("a script's commands are answered with their version and position, or their rejection") {
  auto engine = order_engine();
  auto result = run(good_lines, *engine);

  REQUIRE(result.replies.size() == 6);
  const auto& placed = result.replies[0];
  CHECK(placed.at("line") == 1);
  CHECK(placed.at("type") == "PlaceOrder");
  CHECK(placed.at("accepted") == true);
  CHECK(placed.at("version") == 1);
  CHECK(placed.at("position") == 1);
  CHECK(result.replies[1].at("version") == 2);

  const auto& refused = result.replies[2];
  CHECK(refused.at("line") == 3);
  CHECK(refused.at("accepted") == false);
  CHECK(refused.at("code") == orders::codes::invalid_quantity);
  CHECK_THAT(text_of(refused.at("message")), Catch::Contains("apple"));

  CHECK(result.summary.commands == 4);
  CHECK(result.summary.accepted == 3);
  CHECK(result.summary.rejected == 1);
  CHECK(result.summary.queries == 2);
  CHECK(result.summary.errors == 0);
  CHECK(engine->head() == 3);
}

TEST_CASE("a script's queries read its own writes unless they ask for any") {
  auto engine = order_engine();
  auto result = run(good_lines + R"({"query":"top_products","consistency":"any"}
{"query":"list_orders_by_status","status":"shipped"}
)",
                    *engine);

  REQUIRE(result.replies.size() == 8);
  const auto& summary = result.replies[3];
  CHECK(summary.at("query") == "get_order_summary");
  CHECK(summary.at("consistency") == "read_your_writes");
  // Read-your-writes: the answer reflects the AddItem of line 2 (position 2), however far the projection was.
  const auto& answer = summary.at("answer").as_object();
  CHECK(answer.at("item_count") == 3);
  CHECK(answer.at("last_position") == 2);

  const auto& stats = result.replies[5].at("answer").as_object();
  CHECK(stats.at("orders_shipped") == 1);
  CHECK(stats.at("spent_cents") == 135);

  CHECK(result.replies[6].at("consistency") == "any");
  CHECK(result.replies[6].at("answer").is_array());
  const auto& shipped = result.replies[7].at("answer").as_object();
  CHECK(shipped.at("count") == 1);
}

TEST_CASE("bad lines get an error reply naming their line number and change nothing") {
  const std::string bad_lines = R"({"type":"AddItem","order_id":"o-1","sku":"tea","qty":"two","unit_price_cents":449}
{"type":"Refund","order_id":"o-1"}
{"type":"PlaceOrder","order_id":"o-9"}
{"type":"PlaceOrder", "order_id": "o-4"
[1,2,3]
{"type":"PlaceOrder","order_id":"o-5","customer_id":"c-5","colour":"red"}
{"query":"list_orders_by_status","status":"lost"}
)";
  // The same good lines, once alone and once with the bad lines between them.
  auto clean_engine = order_engine();
  auto clean = run(good_lines, *clean_engine);
  auto mixed_engine = order_engine();
  auto first_half = good_lines.substr(0, good_lines.find("{\"query\""));
  auto second_half = good_lines.substr(first_half.size());
  auto mixed = run(first_half + bad_lines + second_half, *mixed_engine);

  CHECK(mixed.summary.errors == 7);
  CHECK(mixed.summary.commands == clean.summary.commands);
  CHECK(mixed.summary.accepted == clean.summary.accepted);
  // Nothing from a bad line reached the store.
  CHECK(mixed_engine->head() == clean_engine->head());
  CHECK(mixed_engine->store()->head() == 3);

  REQUIRE(mixed.replies.size() == clean.replies.size() + 7);
  auto first_bad = first_half.empty() ? 0 : std::count(first_half.begin(), first_half.end(), '\n');
  std::vector<std::string> problems{"\"qty\" must be an integer", "unknown command type", "missing field",
                                    "malformed JSON", "must be a JSON object", "unknown field", "\"status\""};
  for (std::size_t index = 0; index < problems.size(); ++index) {
    const auto& reply = mixed.replies[static_cast<std::size_t>(first_bad) + index];
    auto number = static_cast<std::int64_t>(first_bad) + static_cast<std::int64_t>(index) + 1;
    INFO("reply " << boost::json::serialize(reply));
    CHECK(reply.at("line") == number);
    REQUIRE(reply.contains("error"));
    CHECK_THAT(text_of(reply.at("error")), Catch::StartsWith("line " + std::to_string(number) + ": ")
                                             && Catch::Contains(problems[index]));
  }
  // The good lines after the bad ones ran as if the bad ones were not there.
  CHECK(mixed.replies.back().at("answer") == clean.replies.back().at("answer"));
}

TEST_CASE("blank lines are skipped silently but counted in the line numbers") {
  auto engine = order_engine();
  auto result = run("\n   \n{\"type\":\"PlaceOrder\",\"order_id\":\"o-1\",\"customer_id\":\"c-1\"}\r\n\t\n"
                    "{\"query\":\"get_order_summary\",\"order_id\":\"o-1\"}",
                    *engine);

  REQUIRE(result.replies.size() == 2);
  CHECK(result.replies[0].at("line") == 3);
  CHECK(result.replies[0].at("accepted") == true);
  // The last line has no line break and still runs.
  CHECK(result.replies[1].at("line") == 5);
  CHECK(result.replies[1].at("answer").at("status") == "placed");
  CHECK(result.summary.blank == 3);
  CHECK(result.summary.lines == 5);
}

TEST_CASE("over-long and deeply nested lines are refused and the script goes on") {
  auto engine = order_engine();
  std::string huge(order_json::max_line_bytes * 4, 'x');
  std::string nested = std::string(10'000, '[') + std::string(10'000, ']');
  auto result = run(huge + "\n" + nested + "\n{\"type\":\"PlaceOrder\",\"order_id\":\"o-1\",\"customer_id\":\"c-1\"}\n",
                    *engine);

  REQUIRE(result.replies.size() == 3);
  CHECK_THAT(text_of(result.replies[0].at("error")),
             Catch::StartsWith("line 1: ") && Catch::Contains(std::to_string(huge.size()) + " bytes")
               && Catch::Contains("over the limit"));
  CHECK_THAT(text_of(result.replies[1].at("error")), Catch::StartsWith("line 2: ") && Catch::Contains("deeper"));
  CHECK(result.replies[2].at("accepted") == true);
  CHECK(engine->head() == 1);
}

TEST_CASE("the line reader never keeps more than its limit of one line") {
  std::istringstream in{std::string(1'000'000, 'y') + "\nshort\r\n" + std::string(10, 'z') + "\nlast"};
  demo::bounded_line_reader reader{in, 10};

  auto first = reader.next();
  REQUIRE(first);
  CHECK(first->too_long);
  CHECK(first->length == 1'000'000);
  CHECK(first->text.capacity() <= 64); // dropped, not kept
  auto second = reader.next();
  REQUIRE(second);
  CHECK_FALSE(second->too_long);
  CHECK(second->text == "short");
  CHECK(second->number == 2);
  auto third = reader.next();
  REQUIRE(third);
  CHECK_FALSE(third->too_long); // exactly the limit
  CHECK(third->text == std::string(10, 'z'));
  auto last = reader.next();
  REQUIRE(last);
  CHECK(last->text == "last");
  CHECK_FALSE(reader.next());
}
