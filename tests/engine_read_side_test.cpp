// The read side through the public API: projections equal a fold of the log, read-your-writes, waits, rebuilds, lag.
#include "engine_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace test_support;

namespace {

/// Lets a test hold a projection inside apply() to make lag visible, without sleeping.
struct gate {
  static inline std::mutex mutex;
  static inline std::condition_variable changed;
  static inline bool open = true;
  static inline int blocked = 0;

  static void close() {
    std::lock_guard lock{mutex};
    open = false;
  }
  static void reopen() {
    std::lock_guard lock{mutex};
    open = true;
    changed.notify_all();
  }
  static void wait_until_blocked(std::chrono::milliseconds limit = default_limit) {
    std::unique_lock lock{mutex};
    if (!changed.wait_for(lock, limit, [] { return blocked > 0; }))
      throw timed_out("the gated read model to be held in apply()", limit);
  }
  static void pass() {
    std::unique_lock lock{mutex};
    ++blocked;
    changed.notify_all();
    // No deadline: the projection is held for as long as the test needs, and the test reopens the gate when it
    // ends, also when it fails.
    changed.wait(lock, [] { return open; });
    --blocked;
  }
};

struct count_events;

struct gated_view {
  static constexpr std::string_view name = "gated";
  using subscribes_to = cqrs::events_of<bank::event>;
  std::uint64_t events = 0;
  void apply(const cqrs::envelope&, const bank::event&) {
    gate::pass();
    ++events;
  }
  std::uint64_t answer(const count_events&) const { return events; }
  bool operator==(const gated_view&) const = default;
};

struct count_events {
  using projection = gated_view;
};

/// Deposits into its own accounts from several threads until stopped: load for the read side to keep up with.
class background_load {
public:
  background_load(cqrs::engine& engine, int threads) {
    for (int thread = 0; thread < threads; ++thread) {
      auto id = "load-" + std::to_string(thread);
      open(engine, id);
      threads_.emplace_back([&engine, id, this] {
        missed_.capture([&] {
          while (!stop_.load()) {
            std::vector<std::future<cqrs::command_result>> replies;
            for (int index = 0; index < 16; ++index)
              replies.push_back(engine.send(bank::deposit{id, 1}));
            for (auto& reply : replies)
              if (get_within(reply, "the reply to a deposit of the background load"))
                ++accepted_;
          }
        });
      });
    }
  }
  ~background_load() { join(); }
  /// Stops the senders; throws when one of them missed a deadline.
  void stop() {
    join();
    missed_.rethrow_first();
  }
  std::uint64_t accepted() const { return accepted_.load(); }

private:
  void join() {
    stop_.store(true);
    threads_.clear();
  }

  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> accepted_{0};
  thread_failures missed_;
  std::vector<std::jthread> threads_;
};

} // namespace

TEST_CASE("read-your-writes: a query at the command's position always sees its effect (10,000 times, under load)") {
  auto dispatch = GENERATE(cqrs::query_dispatch::caller_when_ready, cqrs::query_dispatch::query_actors);
  auto projections = GENERATE(cqrs::projection_dispatch::projection_actor_or_waiting_query,
                              cqrs::projection_dispatch::appending_thread, cqrs::projection_dispatch::projection_actor);
  auto engine = bank_engine(cqrs::options{.tuning = {.queries = dispatch, .projections = projections}});
  open(*engine, "mine");
  background_load load{*engine, 3};
  int violations = 0;
  constexpr int repetitions = 10000;
  for (int index = 1; index <= repetitions; ++index) {
    auto ack = run(*engine, bank::deposit{"mine", 1});
    REQUIRE(ack);
    auto view = get_within(engine->query(readmodels::get_balance{"mine"}, cqrs::at_least(ack->position)),
                           "the balance of mine at the deposit's position");
    REQUIRE(view);
    REQUIRE(*view);
    if ((*view)->balance_cents != index || (*view)->last_position < ack->position)
      ++violations;
  }
  load.stop();
  CHECK(violations == 0);
  CHECK(load.accepted() > 0);
}

TEST_CASE("each read model equals a fold of the log, and a rebuild from position 0 equals the live one") {
  auto projections = GENERATE(cqrs::projection_dispatch::projection_actor_or_waiting_query,
                              cqrs::projection_dispatch::appending_thread, cqrs::projection_dispatch::projection_actor);
  auto engine = bank_engine(cqrs::options{.tuning = {.projections = projections}});
  {
    background_load load{*engine, 4};
    for (int index = 0; index < 50; ++index) {
      open(*engine, "extra-" + std::to_string(index));
      REQUIRE(run(*engine, bank::deposit{"extra-" + std::to_string(index), 100}));
      REQUIRE(run(*engine, bank::withdraw{"extra-" + std::to_string(index), 100}));
      if (index % 2 == 0)
        REQUIRE(run(*engine, bank::close_account{"extra-" + std::to_string(index)}));
    }
    load.stop();
  }
  REQUIRE(caught_up_within(*engine));
  auto head = engine->head();

  auto balances = engine->copy_read_model<readmodels::account_balances>();
  REQUIRE(balances);
  CHECK(balances->checkpoint == head);
  CHECK(balances->model == cqrs::fold_log<readmodels::account_balances>(*engine->store()));
  auto totals = engine->copy_read_model<readmodels::bank_totals>();
  REQUIRE(totals);
  CHECK(totals->model == cqrs::fold_log<readmodels::bank_totals>(*engine->store()));
  CHECK(totals->model.totals.closed_accounts == 25);

  REQUIRE(get_within(engine->rebuild<readmodels::account_balances>(), "the rebuild of account_balances"));
  auto rebuilt = engine->copy_read_model<readmodels::account_balances>();
  REQUIRE(rebuilt);
  CHECK(rebuilt->checkpoint == head);
  CHECK(rebuilt->model == balances->model);
}

TEST_CASE("lag is visible per projection, an at_least query waits for it without polling, and times out clearly") {
  auto dispatch = GENERATE(cqrs::query_dispatch::caller_when_ready, cqrs::query_dispatch::query_actors);
  // The gated read model blocks inside apply: on an appending thread it would hold up the writer, so it runs on
  // its projection actor (projection_dispatch::projection_actor is the choice for read models that may block).
  auto engine = bank_engine(cqrs::options{
    .tuning = {.threads = 3, .queries = dispatch, .projections = cqrs::projection_dispatch::projection_actor}});
  engine->add_projection<gated_view>();
  // Reopens the gate before the engine shuts down when a check fails first: the shutdown waits for the held
  // projection, and the gate is shared with the test's other runs.
  at_scope_exit reopens_gate{[] { gate::reopen(); }};
  open(*engine, "a");
  REQUIRE(caught_up_within(*engine));

  gate::close();
  auto ack = run(*engine, bank::deposit{"a", 5});
  REQUIRE(ack);
  REQUIRE(run(*engine, bank::deposit{"a", 6}));
  gate::wait_until_blocked();

  auto status = engine->status("gated");
  REQUIRE(status);
  CHECK(status->checkpoint == ack->position - 1);
  CHECK(status->head == engine->head());
  CHECK(status->lag == 2);

  auto too_late = get_within(
    engine->query(count_events{}, cqrs::at_least(ack->position, std::chrono::milliseconds{50})),
    "the answer of a query that times out after 50 ms");
  REQUIRE_FALSE(too_late);
  CHECK(too_late.error().code == cqrs::errc::timeout);
  CHECK(too_late.error().message.find("gated") != std::string::npos);

  auto waiting = engine->query(count_events{}, cqrs::at_least(ack->position + 1, std::chrono::seconds{60}));
  gate::reopen();
  auto answered = get_within(waiting, "the answer of a query once the gate reopened");
  REQUIRE(answered);
  CHECK(*answered == 3);
  REQUIRE(caught_up_within(*engine));
  CHECK(engine->status("gated")->lag == 0);
}

TEST_CASE("queries answer through callbacks too, and a query for an unregistered projection is refused") {
  auto dispatch = GENERATE(cqrs::query_dispatch::caller_when_ready, cqrs::query_dispatch::query_actors);
  auto engine = bank_engine(cqrs::options{.tuning = {.queries = dispatch}});
  auto ack = open(*engine, "a", "ann");
  // The promises are the callbacks' own: a callback that comes after a missed deadline has nothing to outlive.
  auto answered = std::make_shared<std::promise<cqrs::query_result<std::optional<readmodels::account_balance>>>>();
  engine->query(readmodels::get_balance{"a"},
                std::function<void(cqrs::query_result<std::optional<readmodels::account_balance>>)>{
                  [answered](auto result) { answered->set_value(std::move(result)); }},
                cqrs::at_least(ack.position));
  auto result = get_within(answered->get_future(), "the query's callback");
  REQUIRE(result);
  REQUIRE(*result);
  CHECK((*result)->owner == "ann");

  auto replied = std::make_shared<std::promise<cqrs::command_result>>();
  engine->send(bank::deposit{"a", 4}, [replied](cqrs::command_result reply) { replied->set_value(std::move(reply)); });
  CHECK(get_within(replied->get_future(), "the command's reply callback"));

  cqrs::engine bare{cqrs::options{.tuning = {.threads = 1}}};
  auto missing = get_within(bare.query(readmodels::get_bank_totals{}), "the answer of a query nobody registered");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == cqrs::errc::unknown_projection);
}
