// What a projection does when applying an event throws: stop (and restart_projection), retry with backoff, skip.
#include "actors/sqlite_event_store.hpp"
#include "engine_support.hpp"
#include "store_test_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>

using namespace test_support;
using namespace std::chrono_literals;

namespace {

struct flaky_total;

/// Sums deposits, but a deposit of 13 cents throws: always while `poisoned`, else while `failures_left` lasts.
/// It throws before it changes anything, as `retry` and `skip` require.
struct flaky_view {
  static constexpr std::string_view name = "flaky";
  using subscribes_to = cqrs::events_of<bank::event>;
  static inline std::atomic<bool> poisoned{false};
  static inline std::atomic<int> failures_left{0};
  static inline std::atomic<int> attempts_at_13{0};

  std::int64_t total = 0;

  void apply(const cqrs::envelope&, const bank::event& event) {
    const auto* deposit = std::get_if<bank::money_deposited>(&event);
    if (!deposit)
      return;
    if (deposit->amount_cents == 13) {
      ++attempts_at_13;
      if (poisoned.load() || failures_left.fetch_sub(1) > 0)
        throw std::runtime_error("thirteen");
    }
    total += deposit->amount_cents;
  }
  std::int64_t answer(const flaky_total&) const { return total; }
  bool operator==(const flaky_view&) const = default;

  static void arm(bool poison, int failures) {
    poisoned.store(poison);
    failures_left.store(failures);
    attempts_at_13.store(0);
  }
};

struct flaky_total {
  using projection = flaky_view;
};

std::unique_ptr<cqrs::engine> flaky_engine(cqrs::projection_options settings,
                                           std::shared_ptr<cqrs::event_store> store = nullptr) {
  auto engine = std::make_unique<cqrs::engine>(cqrs::options{.store = std::move(store), .tuning = {.threads = 2}});
  engine->add_aggregate<bank::account>();
  engine->add_projection<flaky_view>(settings);
  return engine;
}

/// Deposits 10, 13 and 20 cents; returns the positions of the 13 and of the last deposit.
std::pair<cqrs::log_position, cqrs::log_position> deposit_10_13_20(cqrs::engine& engine) {
  open(engine, "a");
  REQUIRE(run(engine, bank::deposit{"a", 10}));
  auto thirteen = run(engine, bank::deposit{"a", 13});
  REQUIRE(thirteen);
  auto last = run(engine, bank::deposit{"a", 20});
  REQUIRE(last);
  return {thirteen->position, last->position};
}

} // namespace

TEST_CASE("under retry, a projection survives a transient failure and ends equal to the log") {
  flaky_view::arm(false, 2); // throws twice, then works
  auto engine = flaky_engine({.on_failure = cqrs::projection_failure_policy::retry, .retry_backoff = 1ms});
  auto last = deposit_10_13_20(*engine).second;
  // Waits for the read model (event-driven: the retry's timer wakes the projection), then reads it.
  auto total = test_support::get_within(engine->query(flaky_total{}, cqrs::at_least(last, 30s)), "the flaky total");
  REQUIRE(total);
  CHECK(*total == 43);
  CHECK(flaky_view::attempts_at_13.load() == 3);
  auto status = engine->status("flaky");
  REQUIRE(status);
  CHECK_FALSE(status->failure);
  CHECK(status->retries == 0);
  CHECK(status->checkpoint == last);
  CHECK(status->dead_letter_count == 0);
}

TEST_CASE("under retry, a projection stops once its retries are spent, naming the event and the count") {
  flaky_view::arm(true, 0);
  auto engine = flaky_engine(
    {.on_failure = cqrs::projection_failure_policy::retry, .max_retries = 3, .retry_backoff = 1ms});
  auto [thirteen, last] = deposit_10_13_20(*engine);
  auto waited = test_support::get_within(engine->query(flaky_total{}, cqrs::at_least(last, 30s)), "the flaky total");
  REQUIRE_FALSE(waited);
  CHECK(waited.error().code == cqrs::errc::projection_failed);
  CHECK_THAT(waited.error().message, Catch::Contains("thirteen") && Catch::Contains("after 3 retries"));
  CHECK(flaky_view::attempts_at_13.load() == 4);
  auto status = engine->status("flaky");
  REQUIRE(status);
  REQUIRE(status->failure);
  CHECK(status->failure->position == thirteen);
  CHECK(status->checkpoint == thirteen - 1);
}

TEST_CASE("under skip, a projection keeps the poison event as a dead letter and goes on") {
  flaky_view::arm(true, 0);
  auto engine = flaky_engine({.on_failure = cqrs::projection_failure_policy::skip});
  auto [thirteen, last] = deposit_10_13_20(*engine);
  auto total = test_support::get_within(engine->query(flaky_total{}, cqrs::at_least(last, 30s)), "the flaky total");
  REQUIRE(total);
  CHECK(*total == 30);
  auto status = engine->status("flaky");
  REQUIRE(status);
  CHECK_FALSE(status->failure);
  CHECK(status->dead_letter_count == 1);
  REQUIRE(status->dead_letters.size() == 1);
  CHECK(status->dead_letters[0].position == thirteen);
  CHECK(status->dead_letters[0].type_name == "MoneyDeposited.v1");
  CHECK(status->dead_letters[0].message == "thirteen");

  // A rebuild starts over: the poison event is met again, and skipped again, once.
  REQUIRE(test_support::get_within(engine->rebuild<flaky_view>(), "the rebuild of the flaky view"));
  status = engine->status("flaky");
  REQUIRE(status);
  CHECK(status->dead_letter_count == 1);
  auto again = test_support::get_within(engine->query(flaky_total{}, cqrs::at_least(last)), "the flaky total");
  REQUIRE(again);
  CHECK(*again == 30);
}

TEST_CASE("under skip with the SQLite store, the dead letter is kept in the file, once per event") {
  flaky_view::arm(true, 0);
  test_support::temporary_folder folder;
  auto path = folder.file("events.db");
  cqrs::log_position thirteen = 0;
  {
    auto opened = cqrs::open_sqlite_event_store(path);
    REQUIRE(opened);
    auto engine = flaky_engine({.on_failure = cqrs::projection_failure_policy::skip}, *opened);
    auto positions = deposit_10_13_20(*engine);
    thirteen = positions.first;
    REQUIRE(test_support::get_within(engine->query(flaky_total{}, cqrs::at_least(positions.second, 30s)),
                                     "the flaky total"));
    // A rebuild skips it again: the file keeps one row for it.
    REQUIRE(test_support::get_within(engine->rebuild<flaky_view>(), "the rebuild of the flaky view"));
    REQUIRE(test_support::get_within(engine->query(flaky_total{}, cqrs::at_least(positions.second, 30s)),
                                     "the flaky total"));
  } // closing the store commits what waits for the next transaction
  test_support::raw_database file{path};
  CHECK(file.integer("SELECT count(*) FROM dead_letters") == 1);
  CHECK(file.integer("SELECT position FROM dead_letters WHERE projection = 'flaky' AND type = 'MoneyDeposited.v1' "
                     "AND reason = 'thirteen'")
        == static_cast<std::int64_t>(thirteen));
}

TEST_CASE("restart_projection resumes a stopped projection from its checkpoint, the failed event first") {
  flaky_view::arm(true, 0);
  auto engine = flaky_engine({}); // stop, the default
  auto [thirteen, last] = deposit_10_13_20(*engine);
  auto stopped = test_support::get_within(engine->query(flaky_total{}, cqrs::at_least(last, 30s)), "the flaky total");
  REQUIRE_FALSE(stopped);
  CHECK(stopped.error().code == cqrs::errc::projection_failed);
  CHECK(flaky_view::attempts_at_13.load() == 1);
  auto status = engine->status("flaky");
  REQUIRE(status);
  REQUIRE(status->failure);
  CHECK(status->failure->position == thirteen);

  flaky_view::poisoned.store(false); // what made it throw is fixed
  REQUIRE(engine->restart_projection("flaky"));
  auto total = test_support::get_within(engine->query(flaky_total{}, cqrs::at_least(last, 30s)), "the flaky total");
  REQUIRE(total);
  CHECK(*total == 43);
  CHECK(flaky_view::attempts_at_13.load() == 2);
  status = engine->status("flaky");
  REQUIRE(status);
  CHECK_FALSE(status->failure);

  CHECK(engine->restart_projection("flaky")); // running: nothing to do
  auto unknown = engine->restart_projection("no-such-projection");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == cqrs::errc::unknown_projection);
}

TEST_CASE("a projection's retry backoff cannot be negative") {
  cqrs::engine engine{cqrs::options{.tuning = {.threads = 1}}};
  CHECK_THROWS_AS(engine.add_projection<flaky_view>({.on_failure = cqrs::projection_failure_policy::retry,
                                                     .retry_backoff = -1ms}),
                  std::invalid_argument);
}
