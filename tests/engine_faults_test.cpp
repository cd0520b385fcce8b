// User code that throws (decide, evolve, a projection) must not take the engine down or corrupt what it holds.
#include "engine_support.hpp"

#include <catch2/catch.hpp>

#include <boost/describe.hpp>

#include <stdexcept>
#include <vector>

using namespace test_support;

namespace fragile {

enum class mode { normal, throw_in_decide, throw_in_evolve };

struct poke {
  std::string id;
  int value = 0;
  mode how = mode::normal;
};
using command = std::variant<poke>;

struct poked {
  static constexpr std::string_view type_name = "Poked.v1";
  int value = 0;
  bool explode = false;
};
BOOST_DESCRIBE_STRUCT(poked, (), (value, explode))
using event = std::variant<poked>;

struct thing {
  using command = fragile::command;
  using event = fragile::event;
  static constexpr std::string_view type_name = "fragile";
  int total = 0;
  int pokes = 0;
  bool operator==(const thing&) const = default;
};

inline std::string_view aggregate_id(const command& cmd) {
  return std::get<poke>(cmd).id;
}

inline cqrs::decision<event> decide(const thing&, const command& cmd) {
  const auto& request = std::get<poke>(cmd);
  if (request.how == mode::throw_in_decide)
    throw std::runtime_error("decide exploded");
  return poked{request.value, request.how == mode::throw_in_evolve};
}

inline thing evolve(thing state, const event& evt) {
  const auto& happened = std::get<poked>(evt);
  if (happened.explode)
    throw std::logic_error("evolve exploded");
  state.total += happened.value;
  ++state.pokes;
  return state;
}

struct count_superstitious;

/// A read model that cannot take a poke of 13.
struct superstitious_view {
  static constexpr std::string_view name = "superstitious";
  using subscribes_to = cqrs::events_of<fragile::event>;
  int total = 0;
  void apply(const cqrs::envelope&, const fragile::event& evt) {
    if (std::get<poked>(evt).value == 13)
      throw std::runtime_error("unlucky number");
    total += std::get<poked>(evt).value;
  }
  int answer(const count_superstitious&) const { return total; }
  bool operator==(const superstitious_view&) const = default;
};

struct count_superstitious {
  using projection = superstitious_view;
};

} // namespace fragile

TEST_CASE("a decide that throws rejects the command as an internal error and leaves the aggregate as its log says") {
  cqrs::engine engine{cqrs::options{.tuning = {.threads = 2}}};
  engine.add_aggregate<fragile::thing>();
  REQUIRE(run(engine, fragile::poke{"x", 5}));
  auto failed = run(engine, fragile::poke{"x", 7, fragile::mode::throw_in_decide});
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == cqrs::errc::internal_error);
  CHECK(failed.error().message.find("decide exploded") != std::string::npos);
  CHECK(engine.head() == 1);
  auto after = run(engine, fragile::poke{"x", 1});
  REQUIRE(after);
  CHECK(after->version == 2);
  CHECK(*get_within(engine.inspect<fragile::thing>("x"), "the state of x") == fragile::thing{6, 2});
}

TEST_CASE("an evolve that throws rejects the command and nothing is appended") {
  cqrs::engine engine{cqrs::options{.tuning = {.threads = 2}}};
  engine.add_aggregate<fragile::thing>();
  REQUIRE(run(engine, fragile::poke{"x", 5}));
  auto failed = run(engine, fragile::poke{"x", 7, fragile::mode::throw_in_evolve});
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == cqrs::errc::internal_error);
  CHECK(failed.error().message.find("evolve exploded") != std::string::npos);
  CHECK(engine.head() == 1);
  REQUIRE(run(engine, fragile::poke{"x", 2}));
  CHECK(*get_within(engine.inspect<fragile::thing>("x"), "the state of x") == fragile::thing{7, 2});
  CHECK(cqrs::replay<fragile::thing>(*engine.store(), "x") == fragile::thing{7, 2});
}

TEST_CASE("a projection that throws stops at its checkpoint, reports the event and error, and answers no query") {
  cqrs::engine engine{cqrs::options{.tuning = {.threads = 2}}};
  engine.add_aggregate<fragile::thing>();
  engine.add_projection<fragile::superstitious_view>();
  engine.add_projection<readmodels::bank_totals>(); // unaffected by the failure of another projection
  REQUIRE(run(engine, fragile::poke{"x", 1}));
  REQUIRE(run(engine, fragile::poke{"x", 2}));
  auto unlucky = run(engine, fragile::poke{"y", 13});
  REQUIRE(unlucky);
  auto later = run(engine, fragile::poke{"x", 4});
  REQUIRE(later);

  auto waited = get_within(engine.query(fragile::count_superstitious{}, cqrs::at_least(later->position)),
                           "the answer of the failed read model");
  REQUIRE_FALSE(waited);
  CHECK(waited.error().code == cqrs::errc::projection_failed);
  CHECK(waited.error().message.find("unlucky number") != std::string::npos);

  auto caught_up = caught_up_within(engine);
  REQUIRE_FALSE(caught_up);
  CHECK(caught_up.error().code == cqrs::errc::projection_failed);

  auto status = engine.status("superstitious");
  REQUIRE(status);
  REQUIRE(status->failure);
  CHECK(status->failure->position == unlucky->position);
  CHECK(status->failure->type_name == "Poked.v1");
  CHECK(status->failure->message == "unlucky number");
  CHECK(status->checkpoint == unlucky->position - 1);
  CHECK(status->lag == engine.head() - status->checkpoint);

  auto now = get_within(engine.query(fragile::count_superstitious{}), "the answer of the failed read model");
  REQUIRE_FALSE(now);
  CHECK(now.error().code == cqrs::errc::projection_failed);

  auto other = engine.status("bank_totals");
  REQUIRE(other);
  CHECK_FALSE(other->failure);
}

TEST_CASE("commands queued behind one whose evolve throws are all answered, on the state the log gives") {
  cqrs::engine engine{cqrs::options{.tuning = {.threads = 2, .commands = cqrs::command_dispatch::aggregate_actor}}};
  engine.add_aggregate<fragile::thing>();
  // Sent without waiting, so they queue at the aggregate's actor behind the one that throws.
  std::vector<std::future<cqrs::command_result>> replies;
  for (int index = 1; index <= 50; ++index)
    replies.push_back(
      engine.send(fragile::poke{"x", index, index == 10 ? fragile::mode::throw_in_evolve : fragile::mode::normal}));
  int accepted = 0;
  for (int index = 1; index <= 50; ++index) {
    auto reply = get_within(replies[static_cast<std::size_t>(index - 1)], "a reply to a queued poke");
    if (index == 10) {
      REQUIRE_FALSE(reply);
      CHECK(reply.error().code == cqrs::errc::internal_error);
    } else {
      REQUIRE(reply);
      ++accepted;
    }
  }
  CHECK(accepted == 49);
  CHECK(engine.head() == 49);
  auto expected = fragile::thing{50 * 51 / 2 - 10, 49};
  CHECK(*get_within(engine.inspect<fragile::thing>("x"), "the state of x") == expected);
  CHECK(cqrs::replay<fragile::thing>(*engine.store(), "x") == expected);
}
