// Shutdown drains: every command gets one reply, every accepted command is in the log, nothing hangs.
#include "engine_support.hpp"
#include "gated_store.hpp"
#include "waiting.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

using namespace test_support;

TEST_CASE("shutdown with commands in flight loses none that were accepted and answers every one exactly once") {
  auto store = cqrs::make_memory_event_store();
  auto engine = bank_engine(cqrs::options{.store = store});
  constexpr int senders = 4;
  for (int sender = 0; sender < senders; ++sender)
    open(*engine, "s" + std::to_string(sender));
  auto opened = engine->head();

  std::mutex mutex;
  std::vector<std::string> accepted_ids;
  std::atomic<int> sent{0};
  std::atomic<int> replies{0};
  std::atomic<int> stopped{0};
  std::atomic<int> other_rejections{0};
  test_support::countdown first_reply{1};
  std::vector<std::jthread> threads;
  for (int sender = 0; sender < senders; ++sender)
    threads.emplace_back([&, sender] {
      for (int index = 0; index < 20000; ++index) {
        auto id = "s" + std::to_string(sender) + "-" + std::to_string(index);
        ++sent;
        engine->send(
          bank::deposit{"s" + std::to_string(sender), 1},
          [&, id](cqrs::command_result reply) {
            if (reply) {
              std::lock_guard lock{mutex};
              accepted_ids.push_back(id);
            } else if (reply.error().code == cqrs::errc::engine_stopped) {
              ++stopped;
            } else {
              ++other_rejections;
            }
            ++replies;
            first_reply.count_down();
          },
          {id, ""});
      }
    });
  // Shut down while the senders are still sending: wait for a first reply so that some commands were accepted.
  auto replied = first_reply.reached_within();
  engine->shutdown();
  REQUIRE(replied);
  threads.clear();

  CHECK(replies.load() == sent.load());
  CHECK(other_rejections.load() == 0);
  CHECK(stopped.load() > 0);
  CHECK(accepted_ids.size() > 0);
  // The log holds exactly the accepted commands, each once.
  auto events = log_of(*store);
  REQUIRE(events.size() == opened + accepted_ids.size());
  std::vector<std::string> logged;
  for (auto index = opened; index < events.size(); ++index)
    logged.push_back(events[index].command_id);
  std::sort(logged.begin(), logged.end());
  std::sort(accepted_ids.begin(), accepted_ids.end());
  CHECK(logged == accepted_ids);

  // After shutdown, commands and queries get a clear refusal rather than a hang.
  auto late = run(*engine, bank::deposit{"s0", 1});
  REQUIRE_FALSE(late);
  CHECK(late.error().code == cqrs::errc::engine_stopped);
  auto late_query = get_within(engine->query(readmodels::get_bank_totals{}), "the answer of a query after shutdown");
  REQUIRE_FALSE(late_query);
  CHECK(late_query.error().code == cqrs::errc::engine_stopped);
}

TEST_CASE("shutdown lets the read models apply every accepted command first") {
  auto store = cqrs::make_memory_event_store();
  auto engine = bank_engine(cqrs::options{.store = store});
  open(*engine, "a");
  std::vector<std::future<cqrs::command_result>> replies;
  for (int index = 0; index < 5000; ++index)
    replies.push_back(engine->send(bank::deposit{"a", 1}));
  engine->shutdown();
  int accepted = 0;
  for (auto& reply : replies)
    accepted += get_within(reply, "the reply to a deposit sent before shutdown") ? 1 : 0;
  CHECK(accepted == 5000);
  auto balances = engine->copy_read_model<readmodels::account_balances>();
  REQUIRE(balances);
  CHECK(balances->checkpoint == store->head());
  CHECK(balances->model.accounts.at("a").balance_cents == 5000);
}

TEST_CASE("shutdown answers every command sent before it as accepted: it drains them, it does not drop them") {
  auto dispatch = GENERATE(cqrs::command_dispatch::caller_when_idle, cqrs::command_dispatch::aggregate_actor);
  auto store = std::make_shared<test_support::gated_store>();
  cqrs::options settings{.store = store};
  settings.tuning.commands = dispatch;
  auto engine = bank_engine(settings);
  // Every append waits behind the gate, so all of these are still in flight when shutdown begins.
  constexpr int sent = 100;
  std::vector<std::future<cqrs::command_result>> replies;
  for (int index = 0; index < sent; ++index)
    replies.push_back(engine->send(bank::open_account{"drained-" + std::to_string(index), "owner"}));

  // Shut down from another thread than the one that made the engine (as a host's signal thread would); this one
  // opens the gate once shutdown has begun, which the engine's statistics say (and wake a waiter for).
  CHECK_FALSE(engine->statistics().stopping);
  std::jthread stopping{[&] { engine->shutdown(); }};
  auto began = engine->wait_for_statistics([](const cqrs::engine_statistics& now) { return now.stopping; },
                                           test_support::default_limit);
  // From then on a new command is refused, not queued behind the gate.
  auto probe = engine->send(bank::open_account{"probe", "owner"});
  store->open_gate();
  auto refused = get_within(probe, "the answer of a command sent once shutdown had begun");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == cqrs::errc::engine_stopped);
  // Unbounded as the engine's destructor is: shutdown has no timed form, and the thread cannot be left running.
  stopping.join();
  REQUIRE(began);

  for (auto& reply : replies) {
    auto result = get_within(reply, "the reply to a command drained by shutdown");
    INFO((result ? std::string{"accepted"} : result.error().code + ": " + result.error().message));
    CHECK(result.has_value());
  }
  std::size_t drained = 0;
  for (const auto& event : log_of(*store))
    drained += event.aggregate_id().starts_with("drained-") ? 1 : 0;
  CHECK(drained == sent);
}
