// The write side through the public API: serial aggregates, parallel aggregates, rejections, conflicts, recovery.
#include "engine_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <thread>

using namespace test_support;

TEST_CASE("64 threads x 1,000 commands to one aggregate are all applied, one at a time, in each sender's order") {
  // Run by the senders themselves whenever the aggregate is idle (the default), or always by its actor.
  auto dispatch = GENERATE(cqrs::command_dispatch::caller_when_idle, cqrs::command_dispatch::aggregate_actor);
  // Up to 64,000 commands wait for the one aggregate: more than its default mailbox bound and the engine's default
  // bound on commands in flight.
  auto engine = bank_engine(
    cqrs::options{.max_in_flight = 0, .max_queued_per_aggregate = 0, .tuning = {.commands = dispatch}});
  open(*engine, "hot");
  constexpr int senders = 64;
  constexpr int per_sender = 1000;
  std::atomic<int> rejected{0};
  thread_failures missed;
  {
    std::vector<std::jthread> threads;
    for (int sender = 0; sender < senders; ++sender)
      threads.emplace_back([&, sender] {
        missed.capture([&] {
          std::vector<std::future<cqrs::command_result>> replies;
          replies.reserve(per_sender);
          // All sent before any is awaited, so the commands of the 64 senders really overlap in the mailbox.
          for (int index = 0; index < per_sender; ++index)
            replies.push_back(engine->send(bank::deposit{"hot", 1},
                                           {"t" + std::to_string(sender) + "-" + std::to_string(index), ""}));
          for (auto& reply : replies)
            if (!get_within(reply, "the reply to a deposit to hot"))
              ++rejected;
        });
      });
  }
  missed.rethrow_first();
  CHECK(rejected.load() == 0);

  auto state = get_within(engine->inspect<bank::account>("hot"), "the state of hot");
  REQUIRE(state);
  CHECK(state->balance_cents == senders * per_sender);
  CHECK(state->transactions == senders * per_sender);

  // The stream holds exactly the 64,000 deposits after the opening, versions contiguous, and each sender's
  // commands in the order it sent them.
  std::map<std::string, int> next_index;
  cqrs::stream_version expected_version = 0;
  bool contiguous = true;
  bool in_sender_order = true;
  auto version = engine->store()->read_stream(cqrs::stream_id{"account", "hot"}, 0, [&](const cqrs::envelope& event) {
    contiguous = contiguous && event.version == ++expected_version;
    if (event.version > 1) {
      auto dash = event.command_id.find('-');
      auto sender = event.command_id.substr(0, dash);
      auto index = std::stoi(event.command_id.substr(dash + 1));
      in_sender_order = in_sender_order && index == next_index[sender]++;
    }
    return true;
  });
  CHECK(version == senders * per_sender + 1);
  CHECK(contiguous);
  CHECK(in_sender_order);
  CHECK(next_index.size() == senders);
}

TEST_CASE("a command to an idle aggregate runs on the sending thread: commands sent from its reply never nest in it") {
  auto engine = bank_engine();
  open(*engine, "here");
  open(*engine, "elsewhere");
  auto sender = std::this_thread::get_id();
  std::thread::id first_ran_on;
  bool first_accepted = false;
  std::atomic<bool> first_reply_returned{false};
  // Catch's assertions stay on this thread: the callbacks only record.
  struct record {
    bool accepted = false;
    bool after_first_reply = false;
    std::thread::id thread;
  };
  // The promises are the callbacks' own: a callback that comes after a missed deadline has nothing to outlive.
  auto same_ran = std::make_shared<std::promise<record>>();
  auto other_ran = std::make_shared<std::promise<record>>();
  auto recorder = [&](std::shared_ptr<std::promise<record>> into) {
    return [&, into](cqrs::command_result result) {
      into->set_value({result.has_value(), first_reply_returned.load(), std::this_thread::get_id()});
    };
  };
  engine->send(bank::deposit{"here", 1}, [&](cqrs::command_result result) {
    first_accepted = result.has_value();
    first_ran_on = std::this_thread::get_id();
    // The same aggregate is busy with this very command: the next one waits in its queue and runs after this
    // reply returns. Another, idle aggregate is not run inside this reply either: its actor takes it.
    engine->send(bank::deposit{"here", 2}, recorder(same_ran));
    engine->send(bank::deposit{"elsewhere", 5}, recorder(other_ran));
    first_reply_returned = true;
  });
  // Replied before send() returned, on this thread.
  CHECK(first_accepted);
  CHECK(first_ran_on == sender);
  auto same = get_within(same_ran->get_future(), "the reply to the second deposit to here");
  CHECK(same.accepted);
  CHECK(same.after_first_reply);
  auto other = get_within(other_ran->get_future(), "the reply to the deposit to elsewhere");
  CHECK(other.accepted);
  CHECK(other.thread != sender);
  auto here = get_within(engine->inspect<bank::account>("here"), "the state of here");
  REQUIRE(here);
  CHECK(here->balance_cents == 3);

  auto actors = bank_engine(cqrs::options{.tuning = {.commands = cqrs::command_dispatch::aggregate_actor}});
  open(*actors, "there");
  auto actor_ran = std::make_shared<std::promise<record>>();
  actors->send(bank::deposit{"there", 1}, recorder(actor_ran));
  auto on_actor = get_within(actor_ran->get_future(), "the reply to the deposit to there");
  CHECK(on_actor.accepted);
  CHECK(on_actor.thread != sender);
}

TEST_CASE("a reply callback that throws does not leave its aggregate claimed: the next commands run") {
  auto dispatch = GENERATE(cqrs::command_dispatch::caller_when_idle, cqrs::command_dispatch::aggregate_actor);
  auto engine = bank_engine(cqrs::options{.tuning = {.commands = dispatch}});
  open(*engine, "thrower");
  // The promise is the callback's own: a callback that comes after a missed deadline has nothing to outlive.
  auto thrown = std::make_shared<std::promise<void>>();
  engine->send(bank::deposit{"thrower", 1}, [thrown](cqrs::command_result) {
    thrown->set_value();
    throw std::runtime_error("a host's bug");
  });
  get_within(thrown->get_future(), "the reply callback that throws");
  REQUIRE(run(*engine, bank::deposit{"thrower", 2}));
  auto state = get_within(engine->inspect<bank::account>("thrower"), "the state of thrower");
  REQUIRE(state);
  CHECK(state->balance_cents == 3);
}

TEST_CASE("commands to many aggregates from many threads are all applied to the right aggregate") {
  auto engine = bank_engine();
  constexpr int accounts = 200;
  for (int account = 0; account < accounts; ++account)
    open(*engine, "acc-" + std::to_string(account));
  constexpr int threads_count = 8;
  constexpr int per_thread = 2000;
  std::vector<std::map<int, std::int64_t>> deposited(threads_count);
  std::atomic<int> rejected{0}; // Catch2 assertions are not thread-safe: count in the senders, assert here
  thread_failures missed;
  {
    std::vector<std::jthread> threads;
    for (int thread = 0; thread < threads_count; ++thread)
      threads.emplace_back([&, thread] {
        missed.capture([&] {
          std::vector<std::pair<int, std::future<cqrs::command_result>>> replies;
          for (int index = 0; index < per_thread; ++index) {
            auto account = (index * 7 + thread * 13) % accounts;
            auto amount = 1 + (index % 5);
            replies.emplace_back(account, engine->send(bank::deposit{"acc-" + std::to_string(account), amount}));
            deposited[thread][account] += amount;
          }
          for (auto& [account, reply] : replies)
            if (!get_within(reply, "the reply to a deposit to acc-" + std::to_string(account)))
              ++rejected;
        });
      });
  }
  missed.rethrow_first();
  CHECK(rejected.load() == 0);
  std::map<int, std::int64_t> expected;
  for (const auto& per_thread_sums : deposited)
    for (auto [account, amount] : per_thread_sums)
      expected[account] += amount;
  for (int account = 0; account < accounts; ++account) {
    auto state = get_within(engine->inspect<bank::account>("acc-" + std::to_string(account)),
                            "the state of acc-" + std::to_string(account));
    REQUIRE(state);
    CHECK(state->balance_cents == expected[account]);
  }
  CHECK(engine->head() == accounts + threads_count * per_thread);
}

TEST_CASE("a broken rule is rejected with its code and appends nothing") {
  auto engine = bank_engine();
  open(*engine, "a");
  auto head = engine->head();

  auto unknown_account = run(*engine, bank::deposit{"nobody", 5});
  REQUIRE_FALSE(unknown_account);
  CHECK(unknown_account.error().code == bank::codes::not_opened);

  auto invalid_amount = run(*engine, bank::deposit{"a", -5});
  REQUIRE_FALSE(invalid_amount);
  CHECK(invalid_amount.error().code == bank::codes::invalid_amount);
  CHECK(invalid_amount.error().message.find("-5") != std::string::npos);

  auto overdraw = run(*engine, bank::withdraw{"a", 1});
  REQUIRE_FALSE(overdraw);
  CHECK(overdraw.error().code == bank::codes::insufficient_funds);

  CHECK(engine->head() == head);
  auto state = get_within(engine->inspect<bank::account>("a"), "the state of a");
  REQUIRE(state);
  CHECK(state->balance_cents == 0);
}

TEST_CASE("an empty aggregate id or an unregistered command type is refused by the engine") {
  auto engine = bank_engine();
  auto empty_id = run(*engine, bank::open_account{"", "someone"});
  REQUIRE_FALSE(empty_id);
  CHECK(empty_id.error().code == cqrs::errc::invalid_aggregate_id);

  struct not_a_bank_command {
    std::string id;
  };
  auto unknown = run(*engine, not_a_bank_command{"x"});
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == cqrs::errc::unknown_command);
  CHECK(unknown.error().message.find("not_a_bank_command") != std::string::npos);
  CHECK(engine->head() == 0);
}

TEST_CASE("the accepted reply reports version, position and event count: commands without events report the latest") {
  auto engine = bank_engine();
  auto opened = open(*engine, "a");
  CHECK(opened.version == 1);
  CHECK(opened.position == 1);
  CHECK(opened.events == 1);
  open(*engine, "b");
  auto deposit = run(*engine, bank::deposit{"a", 10});
  REQUIRE(deposit);
  CHECK(deposit->version == 2);
  CHECK(deposit->position == 3);
  CHECK(deposit->events == 1);
}

TEST_CASE("the envelope carries the command id as causation and the correlation id: ids are generated when absent") {
  auto engine = bank_engine();
  REQUIRE(run(*engine, bank::open_account{"a", "ann"}, {"cmd-open", "conv-7"}));
  REQUIRE(run(*engine, bank::deposit{"a", 3}));
  auto events = log_of(*engine->store());
  REQUIRE(events.size() == 2);
  CHECK(events[0].command_id == "cmd-open");
  CHECK(events[0].causation_id() == "cmd-open");
  CHECK(events[0].correlation_id == "conv-7");
  CHECK(events[0].type_name == "AccountOpened.v1");
  CHECK(events[0].aggregate_type() == "account");
  CHECK(events[0].aggregate_id() == "a");
  CHECK_FALSE(events[1].command_id.empty());
  CHECK(events[1].correlation_id == events[1].command_id);
  CHECK(events[1].type_name == "MoneyDeposited.v1");
  REQUIRE(events[1].event_as<bank::event>());
  CHECK(std::get<bank::money_deposited>(*events[1].event_as<bank::event>()).amount_cents == 3);
}

TEST_CASE("a write by another writer of the same store is a conflict: refused, nothing appended, then recovered") {
  auto engine = bank_engine();
  open(*engine, "a");
  REQUIRE(run(*engine, bank::deposit{"a", 10}));

  // Another writer (a second process on a shared store, say) appends to the stream behind the actor's back.
  auto stream = std::make_shared<const cqrs::stream_id>(cqrs::stream_id{"account", "a"});
  REQUIRE(engine->store()->append(cqrs::append_request{
    stream, 2, "external", "external", {cqrs::new_event{"MoneyDeposited.v1", bank::event{bank::money_deposited{5}}}}}));
  auto head = engine->head();

  // Its cached state (balance 10) allows this withdrawal, so it reaches the store, which refuses the stale version.
  auto conflicted = run(*engine, bank::withdraw{"a", 10});
  REQUIRE_FALSE(conflicted);
  CHECK(conflicted.error().code == cqrs::errc::concurrency_conflict);
  CHECK(engine->head() == head);

  // The actor reloaded its stream: the other writer's deposit counts now, so all 15 can be withdrawn.
  auto retried = run(*engine, bank::withdraw{"a", 15});
  REQUIRE(retried);
  CHECK(retried->version == 4);
  auto state = get_within(engine->inspect<bank::account>("a"), "the state of a after the conflict");
  REQUIRE(state);
  CHECK(state->balance_cents == 0);
}

TEST_CASE("an aggregate recovered by replay in a new engine equals the live one and goes on from it") {
  auto store = cqrs::make_memory_event_store();
  bank::account live;
  {
    auto first = bank_engine(cqrs::options{.store = store});
    open(*first, "a", "ann");
    for (int index = 1; index <= 50; ++index)
      REQUIRE(run(*first, bank::deposit{"a", index}));
    REQUIRE(run(*first, bank::withdraw{"a", 75}));
    live = *get_within(first->inspect<bank::account>("a"), "the state of a, live");
  }
  CHECK(live.balance_cents == 50 * 51 / 2 - 75);
  CHECK(cqrs::replay<bank::account>(*store, "a") == live);

  auto second = bank_engine(cqrs::options{.store = store});
  auto recovered = get_within(second->inspect<bank::account>("a"), "the state of a, recovered by replay");
  REQUIRE(recovered);
  CHECK(*recovered == live);
  // Its rules run against the recovered state: only the recovered balance can be withdrawn.
  auto too_much = run(*second, bank::withdraw{"a", live.balance_cents + 1});
  REQUIRE_FALSE(too_much);
  CHECK(too_much.error().code == bank::codes::insufficient_funds);
  auto all = run(*second, bank::withdraw{"a", live.balance_cents});
  REQUIRE(all);
  CHECK(all->version == 53);
}

// The domain contract, checked where add_aggregate and add_projection take their types.
static_assert(cqrs::aggregate<bank::account>);
static_assert(cqrs::projection<readmodels::account_balances>);
namespace {
struct lacks_the_contract {
  int value = 0;
};
} // namespace
static_assert(!cqrs::aggregate<lacks_the_contract>, "no command or event variants, no decide or evolve");
static_assert(!cqrs::projection<lacks_the_contract>, "no name, no subscription, no apply");
