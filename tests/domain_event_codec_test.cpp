// The event codecs' direct decoding of flat events: the same results as Boost.JSON's value_to, document by document.
#include "actors/event_codec.hpp"
#include "domain/bank_account.hpp"
#include "domain/orders.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <any>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <variant>

namespace codec_test {

struct sample {
  static constexpr std::string_view type_name = "Sample.v1";
  std::string name;
  std::int64_t count = 0;
  std::uint32_t small = 0;
  bool flag = false;
  double ratio = 0;
  bool operator==(const sample&) const = default;
};
BOOST_DESCRIBE_STRUCT(sample, (), (name, count, small, flag, ratio))

struct empty_event {
  static constexpr std::string_view type_name = "Empty.v1";
  bool operator==(const empty_event&) const = default;
};
BOOST_DESCRIBE_STRUCT(empty_event, (), ())

struct with_list {
  static constexpr std::string_view type_name = "WithList.v1";
  std::vector<std::int64_t> values;
  bool operator==(const with_list&) const = default;
};
BOOST_DESCRIBE_STRUCT(with_list, (), (values))

/// Described, but converted by its own tag_invoke, which Boost.JSON prefers: the codec must keep using it.
struct custom {
  static constexpr std::string_view type_name = "Custom.v1";
  std::string text;
  bool operator==(const custom&) const = default;
};
BOOST_DESCRIBE_STRUCT(custom, (), (text))

custom tag_invoke(boost::json::value_to_tag<custom>, const boost::json::value& json) {
  return custom{"custom:" + std::string{json.at("text").as_string()}};
}
void tag_invoke(boost::json::value_from_tag, boost::json::value& json, const custom& value) {
  json = {{"text", value.text}};
}

struct numbers {
  static constexpr std::string_view type_name = "Numbers.v1";
  std::int8_t tiny = 0;
  std::uint64_t big = 0;
  float single = 0;
  bool operator==(const numbers&) const = default;
};
BOOST_DESCRIBE_STRUCT(numbers, (), (tiny, big, single))

using event = std::variant<sample, empty_event, with_list, custom, numbers>;

/// What value_to makes of the document, or nothing when it does not parse or convert.
template <class Struct>
std::optional<Struct> through_value_to(std::string_view text) {
  boost::system::error_code error;
  auto json = boost::json::parse(text, error);
  if (error)
    return std::nullopt;
  auto converted = boost::json::try_value_to<Struct>(json);
  if (!converted)
    return std::nullopt;
  return *converted;
}

/// Decodes with the direct decoder; the struct when it took the document.
template <class Struct>
std::optional<Struct> through_flat_decoder(std::string_view text) {
  Struct decoded{};
  if (!cqrs::detail::decode_flat_json(text, decoded))
    return std::nullopt;
  return decoded;
}

} // namespace codec_test

using namespace codec_test;

TEST_CASE("the order and bank events are flat, so their codecs decode them directly", "[json]") {
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<orders::order_placed>);
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<orders::item_added>);
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<orders::item_removed>);
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<orders::order_shipped>);
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<orders::order_cancelled>);
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<bank::account_opened>);
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<bank::account_closed>);
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<sample>);
  STATIC_REQUIRE(cqrs::detail::flat_json_struct<empty_event>);
  // A container member, or a conversion of the type's own, leaves the decoding to value_to.
  STATIC_REQUIRE_FALSE(cqrs::detail::flat_json_struct<with_list>);
  STATIC_REQUIRE_FALSE(cqrs::detail::flat_json_struct<custom>);
}

TEST_CASE("the direct decoder takes what value_to takes, with the same result, and leaves it the rest", "[json]") {
  // Long enough for the parser to hand strings and keys over in pieces.
  std::string long_escaped(9000, 'x');
  std::size_t escapes = 0;
  for (std::size_t index = 0; index < long_escaped.size(); index += 97, ++escapes)
    long_escaped.replace(index, 2, "\\n");
  struct document {
    std::string text;
    bool direct; // whether the direct decoder is expected to take it
  };
  const std::vector<document> documents{
    {R"({"name":"a","count":-5,"small":7,"flag":true,"ratio":0.5})", true},
    {R"({"ratio":0.25,"flag":false,"small":0,"count":9223372036854775807,"name":""})", true},
    {R"( { "name" : "spaced" , "count" : 1 , "small" : 4294967295 , "flag" : true , "ratio" : -1e3 } )", true},
    {R"({"name":"caf\u00e9 \"quoted\" \\ \/","count":1,"small":1,"flag":true,"ratio":1})", true},
    {R"({"name":"n","count":1,"small":1,"flag":true,"ratio":3})", true},                    // an integer into a double
    {R"({"name":"n","count":1,"small":1,"flag":true,"ratio":18446744073709551615})", true}, // a uint64 into a double
    {R"({"name":")" + long_escaped + R"(","count":1,"small":1,"flag":true,"ratio":1})", true},
    {R"({"extra":1,"name":"n","count":1,"small":1,"flag":true,"ratio":1})", false},        // a member too many
    {R"({")" + long_escaped + R"(":1,"name":"n","count":1,"small":1,"flag":true,"ratio":1})", false},
    {R"({"name":"n","count":1,"small":1,"flag":true,"ratio":1,"nested":{"a":1}})", false},
    {R"({"name":"n","count":1,"small":1,"flag":true,"ratio":1,"list":[1,2]})", false},
    {R"({"name":"n","count":1,"small":1,"flag":true})", false},                             // a member missing
    {R"({"name":"n","count":1,"count":2,"small":1,"flag":true,"ratio":1})", false},         // a member repeated
    {R"({"name":"n","count":"1","small":1,"flag":true,"ratio":1})", false},                 // mistyped
    {R"({"name":1,"count":1,"small":1,"flag":true,"ratio":1})", false},
    {R"({"name":"n","count":1,"small":1,"flag":1,"ratio":1})", false},
    {R"({"name":"n","count":1,"small":-1,"flag":true,"ratio":1})", false},                  // out of range
    {R"({"name":"n","count":1,"small":4294967296,"flag":true,"ratio":1})", false},
    {R"({"name":"n","count":18446744073709551615,"small":1,"flag":true,"ratio":1})", false},
    {R"({"name":"n","count":2.0,"small":1,"flag":true,"ratio":1})", false},                 // a fraction into an integer
    {R"({"name":null,"count":1,"small":1,"flag":true,"ratio":1})", false},
    {R"({"name":"n","count":1,"small":1,"flag":true,"ratio":1} x)", false},                 // malformed
    {R"({"name":"n","count":1,"small":1,"flag":true,"ratio":1)", false},
    {R"({"name":"n",})", false},
    {R"([1,2])", false},
    {R"("text")", false},
    {R"(null)", false},
    {"", false},
  };
  for (const auto& [text, direct] : documents) {
    INFO(text.substr(0, 120));
    auto reference = through_value_to<sample>(text);
    auto flat = through_flat_decoder<sample>(text);
    CHECK(flat.has_value() == direct);
    if (flat) {
      REQUIRE(reference.has_value());
      CHECK(*flat == *reference);
    }
    // Through the codec, direct or not: value_to's outcome, and its error message when it fails.
    auto codecs = cqrs::event_codecs<event>();
    auto decoded = codecs[0].decode(text);
    REQUIRE(decoded.has_value() == reference.has_value());
    if (decoded)
      CHECK(std::get<sample>(std::any_cast<event>(*decoded)) == *reference);
    else
      CHECK(decoded.error().find("Sample.v1") != std::string::npos);
  }
  CHECK(through_flat_decoder<sample>(R"({"name":")" + long_escaped + R"(","count":1,"small":1,"flag":true,"ratio":1})")
          ->name.size()
        == long_escaped.size() - escapes);
}

TEST_CASE("an event without members decodes directly from an empty object only", "[json]") {
  CHECK(through_flat_decoder<empty_event>("{}").has_value());
  CHECK(through_flat_decoder<empty_event>(" { } ").has_value());
  CHECK_FALSE(through_flat_decoder<empty_event>(R"({"a":1})").has_value());
  CHECK_FALSE(through_flat_decoder<empty_event>(R"({"a":{}})").has_value());
  CHECK_FALSE(through_flat_decoder<empty_event>("[]").has_value());
}

TEST_CASE("types the direct decoder does not take still decode through value_to and their own conversion", "[json]") {
  auto codecs = cqrs::event_codecs<event>();
  auto list = codecs[2].decode(R"({"values":[1,2,3]})");
  REQUIRE(list);
  CHECK(std::get<with_list>(std::any_cast<event>(*list)).values == std::vector<std::int64_t>{1, 2, 3});
  auto converted = codecs[3].decode(R"({"text":"t"})");
  REQUIRE(converted);
  CHECK(std::get<custom>(std::any_cast<event>(*converted)).text == "custom:t");
}

TEST_CASE("the direct encoder writes the text boost::json::serialize writes", "[json]") {
  std::string every_control_character;
  for (char character = 0; character < 0x20; ++character)
    every_control_character += character;
  const std::vector<sample> samples{
    {},
    {"plain", -1, 1, true, 0.5},
    {every_control_character + "\"\\/ caf\xc3\xa9 \x7f", std::numeric_limits<std::int64_t>::min(),
     std::numeric_limits<std::uint32_t>::max(), false, -0.0},
    {"x", std::numeric_limits<std::int64_t>::max(), 0, true, 1e300},
    {"", 0, 7, false, -2.5e-10},
  };
  auto codecs = cqrs::event_codecs<event>();
  for (const auto& value : samples) {
    auto expected = boost::json::serialize(boost::json::value_from(value));
    CHECK(cqrs::detail::encode_flat_json(value) == expected);
    CHECK(codecs[0].encode(std::any{event{value}}) == expected);
    auto decoded = codecs[0].decode(expected);
    REQUIRE(decoded);
    CHECK(std::get<sample>(std::any_cast<event>(*decoded)) == value);
  }
  for (const auto& value : {numbers{}, numbers{-128, std::numeric_limits<std::uint64_t>::max(), 0.1f},
                            numbers{127, 1, -3.0e38f}}) {
    auto expected = boost::json::serialize(boost::json::value_from(value));
    INFO(expected);
    CHECK(cqrs::detail::encode_flat_json(value) == expected);
    CHECK(through_flat_decoder<numbers>(expected) == value);
  }
  CHECK(cqrs::detail::encode_flat_json(empty_event{}) == "{}");
  // The codec of a type the direct encoder does not take still writes what its own conversion writes.
  CHECK(codecs[3].encode(std::any{event{custom{"t"}}}) == R"({"text":"t"})");
}

TEST_CASE("on 20,000 generated documents the direct decoder never disagrees with value_to", "[json]") {
  // Objects with shuffled, missing, repeated and unknown keys, values of every kind (numbers at the edges of the
  // members' ranges, escapes, nesting), and byte-level damage: whatever the direct decoder takes, value_to takes
  // too, with the same result.
  std::mt19937 random{20261126};
  auto pick = [&](std::size_t count) { return static_cast<std::size_t>(random() % count); };
  const std::vector<std::string> keys{"name", "count", "small", "flag", "ratio", "other", "nam", "\\u006eame"};
  const std::vector<std::string> values{
    R"("")", R"("text")", R"("caf\u00e9 \"q\" \\ \n")", "0", "-1", "1", "7", "4294967295", "4294967296",
    "-9223372036854775808", "9223372036854775807", "18446744073709551615", "1.5", "-0.0", "1e3", "2.0", "true",
    "false", "null", "{}", "[]", R"({"a":1})", "[1,2]"};
  // Values that fit each member (name, count, small, flag, ratio), for documents close to a valid sample.
  const std::vector<std::vector<std::string>> fitting{{R"("")", R"("text")", R"("caf\u00e9 \"q\" \\ \n")"},
                                                      {"0", "-1", "-9223372036854775808", "9223372036854775807"},
                                                      {"0", "7", "4294967295"},
                                                      {"true", "false"},
                                                      {"1.5", "-0.0", "1e3", "7", "18446744073709551615"}};
  std::size_t taken = 0;
  for (int document = 0; document < 20'000; ++document) {
    // Half the documents start from the five members in a random order, each with a fitting value (or, now and
    // then, any value, a repeated or an unknown key); the rest are any keys with any values.
    std::vector<std::pair<std::string, std::string>> members;
    if (pick(2)) {
      for (std::size_t member = 0; member < fitting.size(); ++member)
        members.emplace_back(keys[member], pick(8) ? fitting[member][pick(fitting[member].size())]
                                                    : values[pick(values.size())]);
      std::shuffle(members.begin(), members.end(), random);
      if (pick(8) == 0)
        members.emplace_back(keys[pick(keys.size())], values[pick(values.size())]);
      if (pick(8) == 0)
        members.erase(members.begin() + static_cast<std::ptrdiff_t>(pick(members.size())));
    } else {
      for (auto count = pick(8); count > 0; --count)
        members.emplace_back(keys[pick(keys.size())], values[pick(values.size())]);
    }
    std::string text = "{";
    for (std::size_t index = 0; index < members.size(); ++index)
      text += (index > 0 ? (pick(2) ? "," : " , ") : "") + ('"' + members[index].first + "\":" + members[index].second);
    text += "}";
    if (pick(4) == 0) {
      // Damage: cut the text short, or put a character of JSON's syntax somewhere.
      if (pick(2))
        text.resize(pick(text.size() + 1));
      else
        text.insert(pick(text.size() + 1), 1, "{}[]\",:0 \"x"[pick(10)]);
    }
    INFO(text);
    auto flat = through_flat_decoder<sample>(text);
    if (!flat)
      continue;
    ++taken;
    auto reference = through_value_to<sample>(text);
    REQUIRE(reference.has_value());
    CHECK(*flat == *reference);
  }
  // Many generated documents are complete, well-formed samples: the direct path was exercised.
  CHECK(taken > 1'000);
}

// Hidden figures (run with "[.benchmark]"): the codecs' direct paths against value_to / value_from on the order
// events a load run writes, in the same process, so that the ratio holds however busy the machine is.
TEST_CASE("benchmark: decoding and encoding order events, direct against through a JSON document", "[.benchmark]") {
  using clock = std::chrono::steady_clock;
  std::vector<orders::event> events;
  for (int order = 0; order < 20'000; ++order) {
    events.push_back(orders::order_placed{"cust-" + std::to_string(order % 5000)});
    for (int line = 0; line < 8; ++line)
      events.push_back(orders::item_added{"sku-" + std::to_string((order + line) % 97), line + 1, 150 + line});
    events.push_back(orders::order_shipped{12345, 36});
  }
  auto codecs = cqrs::event_codecs<orders::event>();
  auto codec_of = [&](const orders::event& event) { return &codecs[event.index()]; };
  std::vector<std::string> texts;
  for (const auto& event : events)
    texts.push_back(boost::json::serialize(cqrs::event_to_json(event)));
  auto seconds = [](clock::time_point start) { return std::chrono::duration<double>(clock::now() - start).count(); };
  for (int round = 0; round < 3; ++round) {
    auto started = clock::now();
    std::size_t decoded = 0;
    for (std::size_t index = 0; index < texts.size(); ++index) {
      // As the codec decoded before it had the direct path: parsed into a stack buffer, then value_to.
      unsigned char buffer[4096];
      boost::json::monotonic_resource resource{buffer, sizeof buffer};
      auto json = boost::json::parse(texts[index], &resource);
      decoded += cqrs::event_from_json<orders::event>(codec_of(events[index])->type_name, json).has_value();
    }
    auto document = seconds(started);
    started = clock::now();
    for (std::size_t index = 0; index < texts.size(); ++index)
      decoded += codec_of(events[index])->decode(texts[index]).has_value();
    auto direct = seconds(started);
    REQUIRE(decoded == 2 * texts.size());
    started = clock::now();
    std::size_t bytes = 0;
    for (const auto& event : events)
      bytes += boost::json::serialize(cqrs::event_to_json(event)).size();
    auto serialized = seconds(started);
    started = clock::now();
    for (const auto& event : events)
      bytes += codec_of(event)->encode(std::any{event}).size();
    auto written = seconds(started);
    CHECK(bytes > 0);
    auto per_event = [&](double total) { return total * 1e6 / static_cast<double>(events.size()); };
    std::printf("decode: parse + value_to %.3f us, codec (direct) %.3f us: %.2fx; "
                "encode: value_from + serialize %.3f us, codec (direct) %.3f us: %.2fx\n",
                per_event(document), per_event(direct), document / direct, per_event(serialized), per_event(written),
                serialized / written);
  }
}
