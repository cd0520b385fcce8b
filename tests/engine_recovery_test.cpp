// Restarting on a durable store: re-sent commands remembered across the restart, snapshots read back from the
// file, and (as a benchmark) what snapshots save when aggregates rehydrate.
#include "actors/sqlite_event_store.hpp"
#include "engine_support.hpp"
#include "store_test_support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <iostream>

using namespace test_support;

namespace {

std::shared_ptr<cqrs::event_store> open_store(const std::string& path,
                                              cqrs::sqlite_synchronous synchronous = cqrs::sqlite_synchronous::full) {
  auto store = cqrs::open_sqlite_event_store(path, {.synchronous = synchronous});
  if (!store)
    throw std::runtime_error("cannot open " + path + ": " + store.error().message);
  return *store;
}

/// Sends every command at once and waits for all replies; returns how many were rejected.
template <class Command>
std::size_t send_all(cqrs::engine& engine, const std::vector<Command>& commands) {
  std::vector<std::future<cqrs::command_result>> replies;
  replies.reserve(commands.size());
  for (const auto& command : commands)
    replies.push_back(engine.send(command));
  std::size_t rejected = 0;
  for (auto& reply : replies)
    if (!get_within(reply, "the reply to one of the commands sent at once"))
      ++rejected;
  return rejected;
}

} // namespace

TEST_CASE("After a restart, a re-sent command gets its original outcome and a snapshot shortens recovery") {
  temporary_folder folder;
  auto path = folder.file("log.db");
  cqrs::accepted original;
  {
    cqrs::engine engine{{.store = open_store(path), .tuning = {.threads = 2}}};
    engine.add_aggregate<bank::account>({.snapshot_every = 10});
    REQUIRE(run(engine, bank::open_account{"kept", "owner"}));
    for (int index = 0; index < 23; ++index)
      REQUIRE(run(engine, bank::deposit{"kept", 10}));
    auto reply = run(engine, bank::deposit{"kept", 10}, {"client-retry-1", ""});
    REQUIRE(reply);
    original = *reply;
    CHECK(engine.statistics().snapshots_saved == 2);
  }
  cqrs::engine engine{{.store = open_store(path), .tuning = {.threads = 2}}};
  engine.add_aggregate<bank::account>({.snapshot_every = 10});
  auto head = engine.head();
  auto again = run(engine, bank::deposit{"kept", 10}, {"client-retry-1", ""});
  REQUIRE(again);
  CHECK(again->position == original.position);
  CHECK(again->version == original.version);
  CHECK(again->events == 1);
  CHECK(engine.head() == head);
  auto state = get_within(engine.inspect<bank::account>("kept"), "the state of kept after the restart");
  REQUIRE(state);
  CHECK(state->balance_cents == 240);
  CHECK(*state == cqrs::replay<bank::account>(*engine.store(), "kept"));
  CHECK(engine.statistics().snapshots_used == 1);
  CHECK(engine.statistics().events_replayed == 5);
}

TEST_CASE("What snapshots save when aggregates rehydrate from a file (benchmark)", "[.][benchmark]") {
  temporary_folder folder;
  auto path = folder.file("long-streams.db");
  constexpr int accounts = 200;
  constexpr int deposits = 500;
  {
    cqrs::engine engine{{.store = open_store(path, cqrs::sqlite_synchronous::normal), .tuning = {.threads = 2}}};
    engine.add_aggregate<bank::account>({.snapshot_every = 100});
    std::vector<bank::command> opening;
    for (int account = 0; account < accounts; ++account)
      opening.push_back(bank::open_account{"long-" + std::to_string(account), "owner"});
    REQUIRE(send_all(engine, opening) == 0);
    std::vector<bank::command> round;
    for (int account = 0; account < accounts; ++account)
      round.push_back(bank::deposit{"long-" + std::to_string(account), 1});
    for (int index = 0; index < deposits; ++index)
      REQUIRE(send_all(engine, round) == 0);
  }
  for (auto every : {std::uint64_t{0}, std::uint64_t{100}, std::uint64_t{0}, std::uint64_t{100}}) {
    cqrs::engine engine{{.store = open_store(path), .tuning = {.threads = 2}}};
    engine.add_aggregate<bank::account>({.snapshot_every = every});
    auto started = std::chrono::steady_clock::now();
    std::vector<std::future<std::expected<bank::account, cqrs::rejection>>> states;
    for (int account = 0; account < accounts; ++account)
      states.push_back(engine.inspect<bank::account>("long-" + std::to_string(account)));
    for (auto& state : states)
      REQUIRE(get_within(state, "the state of a rehydrated account")->balance_cents == deposits);
    auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    auto statistics = engine.statistics();
    std::cout << "rehydrating " << accounts << " accounts of " << deposits + 1 << " events "
              << (every ? "from snapshots (every 100 events)" : "by full replay") << ": " << elapsed << " ms, "
              << statistics.events_replayed << " events replayed, " << statistics.snapshots_used
              << " snapshots used\n";
  }
}
