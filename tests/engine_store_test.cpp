// The in-memory event store: atomic appends, expected-version conflicts, ordered reads, head notifications.
#include "actors/detail/adaptive_mutex.hpp"
#include "actors/event_store.hpp"
#include "waiting.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <barrier>
#include <map>
#include <memory>
#include <thread>

namespace {

std::shared_ptr<const cqrs::stream_id> stream(std::string id) {
  return std::make_shared<const cqrs::stream_id>(cqrs::stream_id{"thing", std::move(id)});
}

cqrs::append_request request(std::shared_ptr<const cqrs::stream_id> target, cqrs::stream_version expected,
                             std::vector<int> payloads) {
  cqrs::append_request result{std::move(target), expected, "cmd-1", "corr-1", {}};
  for (auto value : payloads)
    result.events.push_back(cqrs::new_event{"Thing.v1", value});
  return result;
}

std::vector<int> read_all_values(const cqrs::event_store& store) {
  std::vector<int> values;
  store.read_all(0, store.head(), [&](const cqrs::envelope& event) {
    values.push_back(std::any_cast<int>(event.payload));
    return true;
  });
  return values;
}

} // namespace

TEST_CASE("an append assigns gap-free positions and stream versions and stamps the envelope") {
  auto store = cqrs::make_memory_event_store();
  auto first = store->append(request(stream("a"), 0, {1, 2}));
  REQUIRE(first);
  CHECK(first->first_position == 1);
  CHECK(first->last_position == 2);
  CHECK(first->version == 2);
  auto second = store->append(request(stream("b"), 0, {3}));
  REQUIRE(second);
  CHECK(second->first_position == 3);
  CHECK(second->version == 1);
  CHECK(store->head() == 3);

  std::vector<cqrs::envelope> seen;
  store->read_all(0, 3, [&](const cqrs::envelope& event) {
    seen.push_back(event);
    return true;
  });
  REQUIRE(seen.size() == 3);
  CHECK(seen[1].stream->id == "a");
  CHECK(seen[1].version == 2);
  CHECK(seen[1].position == 2);
  CHECK(seen[1].type_name == "Thing.v1");
  CHECK(seen[1].command_id == "cmd-1");
  CHECK(seen[1].correlation_id == "corr-1");
  CHECK(seen[2].stream->id == "b");
  CHECK(seen[2].timestamp.time_since_epoch().count() > 0);
}

TEST_CASE("an append with a stale expected version is refused and appends nothing") {
  auto store = cqrs::make_memory_event_store();
  REQUIRE(store->append(request(stream("a"), 0, {1})));
  auto conflict = store->append(request(stream("a"), 0, {2}));
  REQUIRE_FALSE(conflict);
  CHECK(conflict.error().code == cqrs::errc::concurrency_conflict);
  CHECK(store->head() == 1);
  CHECK(read_all_values(*store) == std::vector<int>{1});
}

TEST_CASE("an append without events is refused") {
  auto store = cqrs::make_memory_event_store();
  auto refused = store->append(request(stream("a"), 0, {}));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == cqrs::errc::invalid_request);
  CHECK(store->head() == 0);
}

TEST_CASE("reads of a stream and of the log honour their ranges") {
  auto store = cqrs::make_memory_event_store();
  REQUIRE(store->append(request(stream("a"), 0, {1, 2})));
  REQUIRE(store->append(request(stream("b"), 0, {3})));
  REQUIRE(store->append(request(stream("a"), 2, {4})));

  std::vector<int> tail;
  auto version = store->read_stream(cqrs::stream_id{"thing", "a"}, 1, [&](const cqrs::envelope& event) {
    tail.push_back(std::any_cast<int>(event.payload));
    return true;
  });
  CHECK(version == 3);
  CHECK(tail == std::vector<int>{2, 4});
  CHECK(store->read_stream(cqrs::stream_id{"thing", "none"}, 0, [](const cqrs::envelope&) { return true; }) == 0);

  std::vector<cqrs::log_position> middle;
  store->read_all(1, 3, [&](const cqrs::envelope& event) {
    middle.push_back(event.position);
    return true;
  });
  CHECK(middle == std::vector<cqrs::log_position>{2, 3});
}

TEST_CASE("racing appends on one expected version: exactly one wins") {
  auto store = cqrs::make_memory_event_store();
  constexpr int racers = 16;
  std::atomic<int> winners{0};
  // A start line among the test's own threads: it waits for none of the store's work.
  std::barrier start{racers};
  std::vector<std::jthread> threads;
  for (int racer = 0; racer < racers; ++racer)
    threads.emplace_back([&, racer] {
      start.arrive_and_wait();
      if (store->append(request(stream("contended"), 0, {racer})))
        ++winners;
    });
  threads.clear();
  CHECK(winners.load() == 1);
  CHECK(store->head() == 1);
}

TEST_CASE("concurrent appends to many streams keep positions gap-free and versions contiguous") {
  auto store = cqrs::make_memory_event_store();
  constexpr int writers = 8;
  constexpr int appends = 2000;
  std::atomic<int> refused{0}; // counted here, asserted on the test's thread: Catch2 assertions are not thread-safe
  std::vector<std::jthread> threads;
  for (int writer = 0; writer < writers; ++writer)
    threads.emplace_back([&, writer] {
      auto own = stream("w" + std::to_string(writer));
      for (int index = 0; index < appends; ++index)
        if (!store->append(request(own, 2 * index, {index, index})))
          ++refused;
    });
  threads.clear();
  CHECK(refused.load() == 0);
  REQUIRE(store->head() == writers * appends * 2);
  cqrs::log_position expected_position = 1;
  std::map<std::string, cqrs::stream_version> versions;
  bool ordered = true;
  store->read_all(0, store->head(), [&](const cqrs::envelope& event) {
    ordered = ordered && event.position == expected_position++ && event.version == ++versions[event.stream->id];
    return true;
  });
  CHECK(ordered);
}

TEST_CASE("listeners hear every new head until they unsubscribe") {
  auto store = cqrs::make_memory_event_store();
  std::vector<cqrs::log_position> heads;
  auto subscription = store->subscribe([&](cqrs::log_position head) { heads.push_back(head); });
  REQUIRE(store->append(request(stream("a"), 0, {1, 2})));
  REQUIRE(store->append(request(stream("a"), 2, {3})));
  store->unsubscribe(subscription);
  REQUIRE(store->append(request(stream("a"), 3, {4})));
  CHECK(heads == std::vector<cqrs::log_position>{2, 3});
}

TEST_CASE("the store's adaptive mutex excludes concurrent holders, also when waiters have gone to sleep") {
  constexpr int threads = 6;
  constexpr int rounds = 40000;
  // Owned by the workers too: a worker whose wake-up was lost is left asleep on it when the test fails.
  struct contest {
    cqrs::detail::adaptive_mutex mutex;
    std::uint64_t counter = 0; // plain: only the mutex keeps the increments apart
    volatile int busy = 0;
    std::barrier<> start{threads}; // a start line among the workers, waiting for no one else
    test_support::countdown finished{threads};
  };
  auto shared = std::make_shared<contest>();
  std::vector<std::jthread> workers;
  for (int index = 0; index < threads; ++index)
    workers.emplace_back([shared] {
      shared->start.arrive_and_wait();
      for (int round = 0; round < rounds; ++round) {
        std::lock_guard lock{shared->mutex};
        // Every 200th hold is long, so that the others exhaust their spin and sleep on the futex (a lost wake-up
        // would leave one asleep for good).
        auto before = shared->counter;
        if (round % 200 == 0)
          for (int step = 0; step < 20000; ++step)
            shared->busy = step;
        shared->counter = before + 1;
      }
      shared->finished.count_down();
    });
  try {
    shared->finished.wait_within("6 threads to take the mutex 40,000 times each (a lost wake-up leaves one asleep)");
  } catch (...) {
    // Joining a worker asleep for good would hang the test run: they are left to end with the process.
    for (auto& worker : workers)
      worker.detach();
    throw;
  }
  workers.clear();
  CHECK(shared->counter == std::uint64_t{threads} * rounds);
  REQUIRE(shared->mutex.try_lock());
  CHECK_FALSE(shared->mutex.try_lock());
  shared->mutex.unlock();
  CHECK(shared->mutex.try_lock());
  shared->mutex.unlock();
}
