// The bank account aggregate, given events / when command / then events or rejection; and its events' JSON form.
#include "actors/event_codec.hpp"
#include "domain/bank_account.hpp"

#include <catch2/catch.hpp>

namespace {

/// Folds the given history, then decides the command: the shape of every aggregate test.
cqrs::decision<bank::event> given_when(std::vector<bank::event> history, bank::command command) {
  bank::account state;
  for (const auto& event : history)
    state = bank::evolve(std::move(state), event);
  return bank::decide(state, command);
}

std::vector<bank::event> then_events(const cqrs::decision<bank::event>& outcome) {
  REQUIRE(outcome.accepted());
  return outcome.events();
}

std::string then_rejected(const cqrs::decision<bank::event>& outcome) {
  REQUIRE_FALSE(outcome.accepted());
  return outcome.error().code;
}

const bank::event opened = bank::account_opened{"ann"};

} // namespace

TEST_CASE("a new account can be opened once, and only with an owner") {
  CHECK(then_events(given_when({}, bank::open_account{"a", "ann"})) == std::vector<bank::event>{opened});
  CHECK(then_rejected(given_when({opened}, bank::open_account{"a", "ann"})) == bank::codes::already_opened);
  CHECK(then_rejected(given_when({}, bank::open_account{"a", ""})) == bank::codes::missing_owner);
}

TEST_CASE("deposits need an open account and a positive amount") {
  CHECK(then_events(given_when({opened}, bank::deposit{"a", 5}))
        == std::vector<bank::event>{bank::money_deposited{5}});
  CHECK(then_rejected(given_when({}, bank::deposit{"a", 5})) == bank::codes::not_opened);
  CHECK(then_rejected(given_when({opened}, bank::deposit{"a", 0})) == bank::codes::invalid_amount);
  CHECK(then_rejected(given_when({opened, bank::account_closed{}}, bank::deposit{"a", 5})) == bank::codes::closed);
}

TEST_CASE("a withdrawal cannot exceed the balance") {
  std::vector<bank::event> funded{opened, bank::money_deposited{10}};
  CHECK(then_events(given_when(funded, bank::withdraw{"a", 10})) == std::vector<bank::event>{bank::money_withdrawn{10}});
  auto refused = given_when(funded, bank::withdraw{"a", 11});
  CHECK(then_rejected(refused) == bank::codes::insufficient_funds);
  CHECK(refused.error().message.find("10") != std::string::npos);
}

TEST_CASE("an account closes only when empty, and only once") {
  CHECK(then_rejected(given_when({opened, bank::money_deposited{1}}, bank::close_account{"a"}))
        == bank::codes::nonzero_balance);
  CHECK(then_events(given_when({opened}, bank::close_account{"a"})) == std::vector<bank::event>{bank::account_closed{}});
  CHECK(then_rejected(given_when({opened, bank::account_closed{}}, bank::close_account{"a"})) == bank::codes::closed);
  CHECK(then_rejected(given_when({}, bank::close_account{"a"})) == bank::codes::not_opened);
}

TEST_CASE("evolve folds balances and counts transactions") {
  bank::account state;
  for (const auto& event : std::vector<bank::event>{opened, bank::money_deposited{7}, bank::money_withdrawn{3}})
    state = bank::evolve(std::move(state), event);
  CHECK(state == bank::account{true, false, "ann", 4, 2});
}

TEST_CASE("every bank event converts to JSON and back under its versioned type name") {
  for (const auto& event : std::vector<bank::event>{opened, bank::money_deposited{7}, bank::money_withdrawn{3},
                                                     bank::account_closed{}}) {
    auto name = cqrs::detail::type_name_of(event);
    auto json = cqrs::event_to_json(event);
    auto decoded = cqrs::event_from_json<bank::event>(name, json);
    REQUIRE(decoded);
    CHECK(*decoded == event);
  }
  CHECK(boost::json::serialize(cqrs::event_to_json(bank::event{bank::money_deposited{7}})) == R"({"amount_cents":7})");
}

TEST_CASE("decoding refuses an unknown type name or a payload of the wrong shape") {
  auto unknown = cqrs::event_from_json<bank::event>("MoneyPrinted.v1", boost::json::object{});
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().find("MoneyPrinted.v1") != std::string::npos);
  auto mistyped = cqrs::event_from_json<bank::event>("MoneyDeposited.v1", boost::json::parse(R"({"amount_cents":"x"})"));
  REQUIRE_FALSE(mistyped);
  CHECK(mistyped.error().find("MoneyDeposited.v1") != std::string::npos);
}

TEST_CASE("the codecs a durable store gets encode each event type to JSON text and decode it back") {
  auto codecs = cqrs::event_codecs<bank::event>();
  REQUIRE(codecs.size() == std::variant_size_v<bank::event>);
  CHECK(codecs[1].type_name == "MoneyDeposited.v1");
  auto text = codecs[1].encode(std::any{bank::event{bank::money_deposited{42}}});
  CHECK(text == R"({"amount_cents":42})");
  auto decoded = codecs[1].decode(text);
  REQUIRE(decoded);
  CHECK(std::any_cast<bank::event>(*decoded) == bank::event{bank::money_deposited{42}});
  auto malformed = codecs[1].decode("{not json");
  REQUIRE_FALSE(malformed);
  CHECK(malformed.error().find("MoneyDeposited.v1") != std::string::npos);
}
