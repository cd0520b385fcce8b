// Bounded intake: commands beyond options::max_in_flight or an aggregate's mailbox bound, and queries that would
// wait beyond max_in_flight, are answered at once with `overloaded`; nothing of them is appended.
#include "engine_support.hpp"
#include "gated_store.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <future>
#include <mutex>

using namespace test_support;
using namespace std::chrono_literals;

namespace {

bool answered_now(const std::future<cqrs::command_result>& reply) {
  return reply.wait_for(0s) == std::future_status::ready;
}

/// Held shut, a read model whose apply waits (for at most the test's deadline, so that a failed test cannot hang
/// the engine's shutdown): a read side that falls behind.
struct slow_gate {
  static inline std::mutex mutex;
  static inline std::condition_variable opened;
  static inline bool shut = false;
  static void close() {
    std::lock_guard lock{mutex};
    shut = true;
  }
  static void open() {
    {
      std::lock_guard lock{mutex};
      shut = false;
    }
    opened.notify_all();
  }
  static void pass() {
    std::unique_lock lock{mutex};
    opened.wait_for(lock, default_limit, [] { return !shut; });
  }
};

struct count_slow;

struct slow_view {
  static constexpr std::string_view name = "slow";
  using subscribes_to = cqrs::events_of<bank::event>;
  std::uint64_t events = 0;
  void apply(const cqrs::envelope&, const bank::event&) {
    slow_gate::pass();
    ++events;
  }
  std::uint64_t answer(const count_slow&) const { return events; }
  bool operator==(const slow_view&) const = default;
};

struct count_slow {
  using projection = slow_view;
};

} // namespace

TEST_CASE("with max_projection_lag, commands are refused as overloaded while a read model is that far behind") {
  slow_gate::close();
  at_scope_exit opens_gate{[] { slow_gate::open(); }};
  // The slow read model alone: the lag it is refused for is its own.
  auto engine = std::make_unique<cqrs::engine>(cqrs::options{.max_projection_lag = 2, .tuning = {.threads = 2}});
  engine->add_aggregate<bank::account>();
  engine->add_projection<slow_view>();
  open(*engine, "a"); // position 1: the slow read model holds at it
  REQUIRE(run(*engine, bank::deposit{"a", 1})); // admitted at a lag of 1
  REQUIRE(run(*engine, bank::deposit{"a", 2})); // admitted at a lag of 2
  auto refused = run(*engine, bank::deposit{"a", 3});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == cqrs::errc::overloaded);
  CHECK_THAT(refused.error().message, Catch::Contains("read model slow is 3 positions behind")
                                        && Catch::Contains("max_projection_lag 2"));
  CHECK(engine->head() == 3); // nothing of it appended
  slow_gate::open();
  REQUIRE(caught_up_within(*engine));
  REQUIRE(run(*engine, bank::deposit{"a", 3}));
  CHECK(*get_within(engine->query(count_slow{}, cqrs::at_least(4)), "the slow read model at position 4") == 4);
}

TEST_CASE("commands beyond max_in_flight are answered at once with overloaded, and nothing of them is appended") {
  auto dispatch = GENERATE(cqrs::command_dispatch::caller_when_idle, cqrs::command_dispatch::aggregate_actor);
  auto store = std::make_shared<gated_store>();
  cqrs::options settings{.store = store, .max_in_flight = 3};
  settings.tuning.commands = dispatch;
  auto engine = bank_engine(settings);
  // Opens the gate before the engine shuts down when a check fails first: the shutdown waits for the held commands.
  at_scope_exit opens_gate{[&] { store->open_gate(); }};

  std::vector<std::future<cqrs::command_result>> held;
  for (int index = 0; index < 3; ++index)
    held.push_back(engine->send(bank::open_account{"held-" + std::to_string(index), "owner"}));
  std::vector<std::future<cqrs::command_result>> refused;
  for (int index = 0; index < 2; ++index)
    refused.push_back(engine->send(bank::open_account{"refused-" + std::to_string(index), "owner"}));

  for (auto& reply : refused) {
    REQUIRE(answered_now(reply)); // before any append could commit: refused on the spot, not queued
    auto result = get_within(reply, "a refused command's reply");
    REQUIRE_FALSE(result);
    CHECK(result.error().code == cqrs::errc::overloaded);
    CHECK_THAT(result.error().message, Catch::Contains("max_in_flight"));
  }
  for (auto& reply : held)
    CHECK_FALSE(answered_now(reply));

  store->open_gate();
  for (auto& reply : held)
    CHECK(get_within(reply, "the reply to a held command once the gate opened").has_value());
  engine->shutdown();
  auto log = log_of(*store);
  REQUIRE(log.size() == 3);
  for (const auto& event : log)
    CHECK(event.aggregate_id().starts_with("held-"));
}

TEST_CASE("one thread is held to max_in_flight exactly: its own share is counted first, then the whole engine") {
  auto store = std::make_shared<gated_store>();
  constexpr std::size_t limit = 40; // a share of 2 per thread stripe, then the sum decides
  auto engine = bank_engine({.store = store, .max_in_flight = limit});
  // Opens the gate before the engine shuts down when a check fails first: the shutdown waits for the held commands.
  at_scope_exit opens_gate{[&] { store->open_gate(); }};
  std::vector<std::future<cqrs::command_result>> replies;
  for (std::size_t index = 0; index < limit + 10; ++index)
    replies.push_back(engine->send(bank::open_account{"account-" + std::to_string(index), "owner"}));
  std::size_t refused_now = 0;
  for (const auto& reply : replies)
    refused_now += answered_now(reply) ? 1 : 0;
  CHECK(refused_now == 10);
  CHECK(store->waiting() == limit);

  store->open_gate();
  std::size_t accepted = 0;
  std::size_t overloaded = 0;
  for (auto& reply : replies) {
    auto result = get_within(reply, "the reply to a command once the gate opened");
    accepted += result ? 1 : 0;
    overloaded += !result && result.error().code == cqrs::errc::overloaded ? 1 : 0;
  }
  CHECK(accepted == limit);
  CHECK(overloaded == 10);
  engine->shutdown();
  CHECK(log_of(*store).size() == limit);
}

TEST_CASE("a command to an aggregate whose mailbox is full is answered with overloaded: the others go on") {
  auto store = std::make_shared<gated_store>();
  auto engine = bank_engine({.store = store, .max_in_flight = 0, .max_queued_per_aggregate = 2});
  // Opens the gate before the engine shuts down when a check fails first: the shutdown waits for the held commands.
  at_scope_exit opens_gate{[&] { store->open_gate(); }};
  // The first command runs on this thread and leaves its append behind the gate: the aggregate stays busy.
  auto opened = engine->send(bank::open_account{"busy", "owner"});
  auto first = engine->send(bank::deposit{"busy", 100});
  auto second = engine->send(bank::deposit{"busy", 200});
  auto third = engine->send(bank::deposit{"busy", 400});
  REQUIRE(answered_now(third));
  auto refused = get_within(third, "the refused command's reply");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == cqrs::errc::overloaded);
  CHECK_THAT(refused.error().message, Catch::Contains("account/busy") && Catch::Contains("max_queued_per_aggregate"));
  // Another aggregate is not held up by the busy one's mailbox.
  auto other = engine->send(bank::open_account{"other", "owner"});

  store->open_gate();
  CHECK(get_within(opened, "the reply to opening busy").has_value());
  CHECK(get_within(first, "the reply to the first deposit").has_value());
  auto last = get_within(second, "the reply to the second deposit");
  REQUIRE(last);
  CHECK(last->version == 3);
  CHECK(get_within(other, "the reply to opening other").has_value());
  auto balance = get_within(engine->query(readmodels::get_balance{"busy"}, cqrs::at_least(last->position)),
                            "the balance of busy after the second deposit");
  REQUIRE(balance);
  REQUIRE(balance->has_value());
  CHECK((*balance)->balance_cents == 300); // the refused deposit of 400 left no trace
  engine->shutdown();
  CHECK(log_of(*store).size() == 4);
}

TEST_CASE("queries waiting for a position count against max_in_flight: ready ones are always answered") {
  auto engine = bank_engine({.max_in_flight = 3});
  auto far = [&] { return engine->query(readmodels::get_bank_totals{}, cqrs::at_least(1'000'000, 60s)); };
  std::vector<std::future<cqrs::query_result<readmodels::bank_totals_view>>> waiting;
  for (int index = 0; index < 3; ++index)
    waiting.push_back(far());
  auto refused = far();
  REQUIRE(refused.wait_for(0s) == std::future_status::ready);
  auto result = get_within(refused, "the refused query's answer");
  REQUIRE_FALSE(result);
  CHECK(result.error().code == cqrs::errc::overloaded);
  for (auto& query : waiting)
    CHECK(query.wait_for(0s) == std::future_status::timeout);
  // A query its read model can answer now holds nothing and is answered whatever waits.
  CHECK(get_within(engine->query(readmodels::get_bank_totals{}), "a ready query's answer").has_value());
  // Commands are held back by the waiting queries too.
  auto command = run(*engine, bank::open_account{"a", "owner"});
  REQUIRE_FALSE(command);
  CHECK(command.error().code == cqrs::errc::overloaded);
  engine.reset(); // the parked queries are answered as the engine goes: it stopped
  for (auto& query : waiting) {
    auto late = get_within(query, "a parked query's answer as the engine stopped");
    REQUIRE_FALSE(late);
    CHECK(late.error().code == cqrs::errc::engine_stopped);
  }
}
