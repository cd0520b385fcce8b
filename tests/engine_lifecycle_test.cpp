// An aggregate's life beyond one actor: background appends, passivation, re-sent commands, snapshots, health.
#include "engine_support.hpp"
#include "delegating_store.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using namespace test_support;
using namespace std::chrono_literals;

namespace {

/// A store that commits in the background like a durable one: append_async queues, one thread appends to an
/// in-memory store and calls back. It can be told to fail every append from some point on, like a full disk.
class background_store final : public test_support::delegating_store {
public:
  background_store() : worker_([this] { run(); }) {}
  ~background_store() override {
    {
      std::lock_guard lock{mutex_};
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  /// Every append from now on fails with an I/O error, and failure() says so.
  void break_disk() {
    std::lock_guard lock{mutex_};
    broken_ = true;
  }

  bool appends_in_background() const override { return true; }
  void append_async(cqrs::append_request request, cqrs::append_callback done) override {
    {
      std::lock_guard lock{mutex_};
      queue_.emplace_back(std::move(request), std::move(done));
    }
    wake_.notify_one();
  }
  std::expected<cqrs::append_result, cqrs::store_error> append(cqrs::append_request request) override {
    std::promise<std::expected<cqrs::append_result, cqrs::store_error>> outcome;
    auto future = outcome.get_future();
    append_async(std::move(request), [&outcome](auto result) { outcome.set_value(std::move(result)); });
    // No deadline: the worker answers every queued append, and the engine appends through append_async anyway.
    return future.get();
  }
  std::optional<std::string> failure() const override {
    std::lock_guard lock{mutex_};
    return broken_ ? std::optional<std::string>{"disk full (injected)"} : std::nullopt;
  }

private:
  void run() {
    std::unique_lock lock{mutex_};
    while (true) {
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        return;
      auto [request, done] = std::move(queue_.front());
      queue_.pop_front();
      auto broken = broken_;
      lock.unlock();
      if (broken)
        done(std::unexpected(cqrs::store_error{std::string{cqrs::errc::store_failure}, "disk full (injected)"}));
      else
        done(inner().append(std::move(request)));
      lock.lock();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<cqrs::append_request, cqrs::append_callback>> queue_;
  bool stopping_ = false;
  bool broken_ = false;
  std::jthread worker_;
};

/// Checks that each account's stream holds its deposits in the order their sender numbered them ("account:n").
bool streams_in_sender_order(const cqrs::event_store& store, const std::vector<std::string>& accounts) {
  for (const auto& account : accounts) {
    int next = 0;
    bool ordered = true;
    store.read_stream(cqrs::stream_id{"account", account}, 1, [&](const cqrs::envelope& event) {
      ordered = ordered && event.command_id == account + ":" + std::to_string(next++);
      return true;
    });
    if (!ordered)
      return false;
  }
  return true;
}

} // namespace

TEST_CASE("Commands committed in the background still run one at a time, in each sender's order") {
  auto store = std::make_shared<background_store>();
  auto engine = bank_engine({.store = store});
  open(*engine, "hot");
  constexpr int senders = 16;
  constexpr int per_sender = 500;
  std::vector<std::string> failures(senders);
  thread_failures missed;
  {
    std::vector<std::jthread> threads;
    for (int sender = 0; sender < senders; ++sender)
      threads.emplace_back([&, sender] {
        missed.capture([&] {
          std::vector<std::future<cqrs::command_result>> replies;
          for (int index = 0; index < per_sender; ++index)
            replies.push_back(engine->send(bank::deposit{"hot", 1}));
          // Inspections queue behind the commits like commands do.
          auto seen = get_within(engine->inspect<bank::account>("hot"), "an inspection of hot behind the deposits");
          for (auto& reply : replies)
            if (auto result = get_within(reply, "the reply to a deposit to hot"); !result)
              failures[sender] = result.error().code;
          if (!seen)
            failures[sender] = "inspect: " + seen.error().code;
        });
      });
  }
  missed.rethrow_first();
  for (const auto& failure : failures)
    CHECK(failure.empty());
  auto state = get_within(engine->inspect<bank::account>("hot"), "the state of hot");
  REQUIRE(state);
  CHECK(state->balance_cents == senders * per_sender);
  CHECK(cqrs::replay<bank::account>(*store, "hot") == *state);
  CHECK(caught_up_within(*engine));
  auto totals = engine->copy_read_model<readmodels::bank_totals>();
  REQUIRE(totals);
  CHECK(totals->model == cqrs::fold_log<readmodels::bank_totals>(*store));
}

TEST_CASE("Beyond the live maximum, idle aggregates stop and come back with their state: nothing is lost or reordered") {
  auto store = cqrs::make_memory_event_store();
  constexpr std::size_t live_maximum = 128;
  auto engine = bank_engine({.store = store, .passivate_after = 0ms, .max_live_aggregates = live_maximum});
  constexpr int senders = 4;
  constexpr int accounts_per_sender = 300;
  constexpr int rounds = 3;
  std::vector<std::string> all_accounts;
  std::vector<std::string> failures(senders);
  thread_failures missed;
  for (int sender = 0; sender < senders; ++sender)
    for (int index = 0; index < accounts_per_sender; ++index)
      all_accounts.push_back("s" + std::to_string(sender) + "-a" + std::to_string(index));
  {
    std::vector<std::jthread> threads;
    for (int sender = 0; sender < senders; ++sender)
      threads.emplace_back([&, sender] {
        missed.capture([&] {
          std::mt19937 random{static_cast<unsigned>(sender)};
          std::vector<std::string> mine(all_accounts.begin() + sender * accounts_per_sender,
                                        all_accounts.begin() + (sender + 1) * accounts_per_sender);
          std::map<std::string, int> sent;
          for (const auto& account : mine)
            if (!run(*engine, bank::open_account{account, "owner"}))
              failures[sender] = "open " + account;
          // Bursts of commands in flight at once to random accounts of this sender: spawns and passivations
          // interleave with commands queued for the same aggregates.
          for (int round = 0; round < rounds * accounts_per_sender / 50; ++round) {
            std::vector<std::future<cqrs::command_result>> replies;
            for (int burst = 0; burst < 50; ++burst) {
              const auto& account = mine[random() % mine.size()];
              replies.push_back(
                engine->send(bank::deposit{account, 1}, {account + ":" + std::to_string(sent[account]++), ""}));
            }
            for (auto& reply : replies)
              if (auto result = get_within(reply, "the reply to a deposit of a burst"); !result)
                failures[sender] = result.error().code + ": " + result.error().message;
          }
        });
      });
  }
  missed.rethrow_first();
  for (const auto& failure : failures)
    CHECK(failure.empty());
  auto statistics = engine->statistics();
  // Each sender has at most 50 commands in flight, so at most that many busy actors can push a shard over.
  CHECK(statistics.peak_live_aggregates <= live_maximum + senders * 50);
  // Shards that went over their share are trimmed back once their actors are idle.
  CHECK(engine->wait_for_statistics([&](const auto& now) { return now.live_aggregates <= live_maximum; }));
  statistics = engine->statistics();
  CHECK(statistics.aggregates_passivated >= all_accounts.size() - live_maximum);
  CHECK(statistics.aggregates_started == statistics.aggregates_passivated + statistics.live_aggregates);
  CHECK(streams_in_sender_order(*store, all_accounts));
  // Every account, live or passivated, holds exactly what the log says.
  for (const auto& account : {all_accounts.front(), all_accounts[all_accounts.size() / 2], all_accounts.back()}) {
    auto state = get_within(engine->inspect<bank::account>(account), "the state of " + account);
    REQUIRE(state);
    CHECK(*state == cqrs::replay<bank::account>(*store, account));
  }
  CHECK(caught_up_within(*engine));
  auto balances = engine->copy_read_model<readmodels::bank_totals>();
  REQUIRE(balances);
  CHECK(balances->model == cqrs::fold_log<readmodels::bank_totals>(*store));
}

TEST_CASE("Idle aggregates stop after passivate_after and answer their next command from the log") {
  auto store = std::make_shared<background_store>();
  auto engine = bank_engine({.store = store, .passivate_after = 20ms});
  std::vector<std::string> accounts;
  for (int index = 0; index < 10; ++index) {
    accounts.push_back("idle-" + std::to_string(index));
    open(*engine, accounts.back());
  }
  for (int round = 0; round < 3; ++round) {
    REQUIRE(engine->wait_for_statistics([](const auto& now) { return now.live_aggregates == 0; }));
    std::vector<std::future<cqrs::command_result>> replies;
    for (const auto& account : accounts)
      for (int index = 0; index < 20; ++index)
        replies.push_back(engine->send(bank::deposit{account, 1},
                                       {account + ":" + std::to_string(round * 20 + index), ""}));
    for (auto& reply : replies)
      REQUIRE(get_within(reply, "the reply to a deposit to a passivated account"));
  }
  auto statistics = engine->statistics();
  CHECK(statistics.aggregates_passivated >= 30);
  CHECK(streams_in_sender_order(*store, accounts));
  for (const auto& account : accounts) {
    auto state = get_within(engine->inspect<bank::account>(account), "the state of " + account);
    REQUIRE(state);
    CHECK(state->balance_cents == 60);
  }
}

TEST_CASE("A command re-sent with its id gets its original outcome and appends nothing") {
  auto store = cqrs::make_memory_event_store();
  auto engine = bank_engine({.store = store, .passivate_after = 10ms});
  open(*engine, "retry");
  auto first = run(*engine, bank::deposit{"retry", 500}, {"deposit-1", ""});
  REQUIRE(first);
  auto head = store->head();

  SECTION("again at once, and from 16 threads at the same time") {
    auto again = run(*engine, bank::deposit{"retry", 500}, {"deposit-1", ""});
    REQUIRE(again);
    CHECK(again->version == first->version);
    CHECK(again->position == first->position);
    CHECK(again->events == 1);
    std::vector<std::future<cqrs::command_result>> replies;
    for (int sender = 0; sender < 16; ++sender)
      replies.push_back(engine->send(bank::deposit{"retry", 7}, {"deposit-2", ""}));
    std::set<cqrs::log_position> positions;
    for (auto& reply : replies) {
      auto result = get_within(reply, "the reply to a re-sent deposit-2");
      REQUIRE(result);
      positions.insert(result->position);
    }
    CHECK(positions.size() == 1);
    CHECK(store->head() == head + 1);
    CHECK(engine->statistics().duplicate_commands == 16);
  }
  SECTION("after the aggregate was passivated") {
    REQUIRE(engine->wait_for_statistics([](const auto& now) { return now.live_aggregates == 0; }));
    auto again = run(*engine, bank::deposit{"retry", 500}, {"deposit-1", ""});
    REQUIRE(again);
    CHECK(again->position == first->position);
    CHECK(store->head() == head);
    CHECK(get_within(engine->inspect<bank::account>("retry"), "the state of retry")->balance_cents == 500);
  }
  SECTION("the same id for another aggregate is refused") {
    open(*engine, "other");
    head = store->head();
    auto misused = run(*engine, bank::deposit{"other", 500}, {"deposit-1", ""});
    REQUIRE_FALSE(misused);
    CHECK(misused.error().code == cqrs::errc::duplicate_command_id);
    CHECK(store->head() == head);
  }
  SECTION("a rejected command is decided again when re-sent") {
    auto refused = run(*engine, bank::withdraw{"retry", 1000}, {"withdraw-1", ""});
    REQUIRE_FALSE(refused);
    run(*engine, bank::deposit{"retry", 500}, {"deposit-3", ""});
    auto retried = run(*engine, bank::withdraw{"retry", 1000}, {"withdraw-1", ""});
    CHECK(retried);
  }
}

TEST_CASE("Outside the idempotency window a re-sent command id is a new command") {
  auto store = cqrs::make_memory_event_store();
  auto engine = bank_engine({.store = store, .idempotency_window = 0ms});
  open(*engine, "forgetful");
  REQUIRE(run(*engine, bank::deposit{"forgetful", 500}, {"deposit-1", ""}));
  // A window of 0 ms has passed by the time the re-sent command is looked at (the clock counts nanoseconds).
  REQUIRE(run(*engine, bank::deposit{"forgetful", 500}, {"deposit-1", ""}));
  CHECK(get_within(engine->inspect<bank::account>("forgetful"), "the state of forgetful")->balance_cents == 1000);
}

TEST_CASE("Snapshots: recovery starts from the latest one: an unreadable one falls back to full replay") {
  auto store = cqrs::make_memory_event_store();
  auto fill = [&] {
    cqrs::engine writer{{.store = store, .tuning = {.threads = 2}}};
    writer.add_aggregate<bank::account>({.snapshot_every = 10});
    REQUIRE(run(writer, bank::open_account{"long", "owner"}));
    for (int index = 0; index < 24; ++index)
      REQUIRE(run(writer, bank::deposit{"long", 10}));
    CHECK(writer.statistics().snapshots_saved == 2);
  };
  fill();
  auto expected = cqrs::replay<bank::account>(*store, "long");
  auto recover = [&](cqrs::engine& reader) {
    reader.add_aggregate<bank::account>({.snapshot_every = 10});
    auto state = get_within(reader.inspect<bank::account>("long"), "the state of long, recovered");
    REQUIRE(state);
    CHECK(*state == expected);
    // A command with no events reports the position of the stream's latest event, also after a snapshot.
    auto reply = run(reader, bank::deposit{"long", 10});
    REQUIRE(reply);
    CHECK(reply->version == 26);
  };

  SECTION("from the snapshot at version 20") {
    cqrs::engine reader{{.store = store, .tuning = {.threads = 2}}};
    recover(reader);
    CHECK(reader.statistics().snapshots_used == 1);
    CHECK(reader.statistics().events_replayed == 5);
  }
  // Replaces the latest snapshot with a damaged one; recovery must ignore it and replay the whole stream.
  auto damage_and_recover = [&](auto damage) {
    auto taken = store->load_snapshot(cqrs::stream_id{"account", "long"});
    REQUIRE(taken);
    damage(*taken);
    store->save_snapshot(*taken);
    cqrs::engine reader{{.store = store, .tuning = {.threads = 2}}};
    recover(reader);
    CHECK(reader.statistics().snapshots_rejected == 1);
    CHECK(reader.statistics().events_replayed == 25);
  };
  SECTION("a snapshot of another format is ignored") {
    damage_and_recover([](cqrs::snapshot& taken) {
      taken.format_version += 1;
      taken.version += 1;
    });
  }
  SECTION("an undecodable snapshot is ignored") {
    damage_and_recover([](cqrs::snapshot& taken) {
      taken.state = R"({"position":3,"state":{"balance_cents":"lots"}})";
      taken.version += 1;
    });
  }
  SECTION("a snapshot ahead of its stream is ignored") {
    damage_and_recover([](cqrs::snapshot& taken) { taken.version = 1000; });
  }
}

TEST_CASE("After a failed commit the engine is unhealthy and refuses writes: reads go on") {
  auto store = std::make_shared<background_store>();
  auto engine = bank_engine({.store = store});
  open(*engine, "account");
  REQUIRE(run(*engine, bank::deposit{"account", 100}));
  CHECK(engine->health().healthy);
  auto head = store->head();
  store->break_disk();

  auto failed = run(*engine, bank::deposit{"account", 100});
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == cqrs::errc::store_failure);
  CHECK(failed.error().message.find("disk full") != std::string::npos);
  auto health = engine->health();
  CHECK_FALSE(health.healthy);
  CHECK(health.reason.find("disk full") != std::string::npos);

  // Refused at once, for any aggregate, without reaching the store.
  auto later = run(*engine, bank::open_account{"another", "owner"});
  REQUIRE_FALSE(later);
  CHECK(later.error().code == cqrs::errc::store_failure);
  CHECK(later.error().message.find("refuses writes") != std::string::npos);
  CHECK(store->head() == head);
  // The state is what the log holds, not what the failed command decided.
  auto state = get_within(engine->inspect<bank::account>("account"), "the state of account after the failed commit");
  REQUIRE(state);
  CHECK(state->balance_cents == 100);
  CHECK(caught_up_within(*engine));
}
