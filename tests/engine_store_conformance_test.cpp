// The event store contract, run against every store: the in-memory one, the SQLite one in a temporary folder and
// the PostgreSQL one in a fresh schema of the test server.
#include "actors/event_store.hpp"
#include "actors/postgres_event_store.hpp"
#include "actors/sqlite_event_store.hpp"
#include "postgres_test_support.hpp"
#include "store_test_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <barrier>
#include <map>
#include <set>
#include <thread>

namespace {

using test_support::account_stream;
using test_support::amount_of;
using test_support::deposits;

/// A new in-memory store.
struct memory_store {
  static constexpr const char* name = "memory";
  /// Whether find_command finds commands appended without remember_command_id.
  static constexpr bool finds_every_command = false;
  std::shared_ptr<cqrs::event_store> store = cqrs::make_memory_event_store();
  memory_store() { test_support::register_test_event_types(*store); }
  /// A restart loses an in-memory log: there is nothing to reopen.
  bool reopen() { return false; }
};

/// A new SQLite store (default options: synchronous = full) in a temporary folder.
struct sqlite_store {
  static constexpr const char* name = "sqlite";
  /// Only sender-chosen command ids have a table of their own.
  static constexpr bool finds_every_command = false;
  test_support::temporary_folder folder;
  std::shared_ptr<cqrs::event_store> store;
  sqlite_store() { open(); }
  /// Closes the store (committing everything queued) and opens its file again, as a restarted program would.
  bool reopen() {
    store.reset();
    open();
    return true;
  }

private:
  void open() {
    auto opened = cqrs::open_sqlite_event_store(folder.file("events.db"));
    if (!opened)
      throw std::runtime_error(opened.error().message);
    store = *opened;
    test_support::register_test_event_types(*store);
  }
};

/// A new PostgreSQL store (default options) in a schema of its own on the test server.
struct postgres_store {
  static constexpr const char* name = "postgres";
  /// Only sender-chosen command ids have a table of their own.
  static constexpr bool finds_every_command = false;
  cqrs::postgres_options options;
  std::shared_ptr<cqrs::event_store> store;
  postgres_store() {
    options.schema = test_support::fresh_schema("conformance");
    open();
  }
  /// Closes the store (committing everything queued) and opens its schema again, as a restarted program would.
  bool reopen() {
    store.reset();
    open();
    return true;
  }

private:
  void open() {
    auto opened = cqrs::open_postgres_event_store(test_support::postgres_conninfo(), options);
    if (!opened)
      throw std::runtime_error(opened.error().message);
    store = *opened;
    test_support::register_test_event_types(*store);
  }
};

std::vector<cqrs::envelope> whole_log(const cqrs::event_store& store) {
  std::vector<cqrs::envelope> events;
  store.read_all(0, store.head(), [&](const cqrs::envelope& event) {
    events.push_back(event);
    return true;
  });
  return events;
}

std::vector<std::int64_t> stream_amounts(const cqrs::event_store& store, const std::string& id,
                                         cqrs::stream_version after = 0) {
  std::vector<std::int64_t> amounts;
  store.read_stream(cqrs::stream_id{"account", id}, after, [&](const cqrs::envelope& event) {
    amounts.push_back(amount_of(event));
    return true;
  });
  return amounts;
}

cqrs::append_request remembered(cqrs::append_request request) {
  request.remember_command_id = true;
  return request;
}

} // namespace

TEMPLATE_TEST_CASE("an append assigns gap-free positions and stream versions, and reads back every envelope field",
                   "[store][conformance]", memory_store, sqlite_store,
                   postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  auto before = std::chrono::system_clock::now() - std::chrono::seconds{1};
  auto first = store.append(deposits(account_stream("a"), 0, {10, 20}, "cmd-a", "corr-a"));
  REQUIRE(first);
  CHECK(first->first_position == 1);
  CHECK(first->last_position == 2);
  CHECK(first->version == 2);
  auto second = store.append(deposits(account_stream("b"), 0, {30}, "cmd-b", "corr-b"));
  REQUIRE(second);
  CHECK(second->first_position == 3);
  CHECK(second->last_position == 3);
  CHECK(second->version == 1);
  CHECK(store.head() == 3);

  auto events = whole_log(store);
  REQUIRE(events.size() == 3);
  CHECK(events[1].stream->type == "account");
  CHECK(events[1].stream->id == "a");
  CHECK(events[1].version == 2);
  CHECK(events[1].position == 2);
  CHECK(events[1].type_name == "MoneyDeposited.v1");
  CHECK(events[1].command_id == "cmd-a");
  CHECK(events[1].correlation_id == "corr-a");
  CHECK(amount_of(events[1]) == 20);
  CHECK(events[2].stream->id == "b");
  CHECK(events[2].command_id == "cmd-b");
  CHECK(events[2].timestamp > before);
  CHECK(events[2].timestamp < std::chrono::system_clock::now() + std::chrono::seconds{1});

  // Envelopes outlive the store, type names included: they point to static storage, not into the store.
  fixture.store.reset();
  CHECK(events[1].type_name == "MoneyDeposited.v1");
  CHECK(events[1].stream->id == "a");
}

TEMPLATE_TEST_CASE("reads of a stream and of the log honour their ranges and stop when the visitor says so",
                   "[store][conformance]", memory_store, sqlite_store,
                   postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  REQUIRE(store.append(deposits(account_stream("a"), 0, {1, 2})));
  REQUIRE(store.append(deposits(account_stream("b"), 0, {3})));
  REQUIRE(store.append(deposits(account_stream("a"), 2, {4})));

  CHECK(stream_amounts(store, "a") == std::vector<std::int64_t>{1, 2, 4});
  CHECK(stream_amounts(store, "a", 1) == std::vector<std::int64_t>{2, 4});
  CHECK(stream_amounts(store, "a", 3).empty());
  CHECK(stream_amounts(store, "none").empty());
  CHECK(store.read_stream(cqrs::stream_id{"account", "a"}, 1, [](const cqrs::envelope&) { return true; }) == 3);
  CHECK(store.read_stream(cqrs::stream_id{"account", "none"}, 0, [](const cqrs::envelope&) { return true; }) == 0);
  CHECK(store.read_stream(cqrs::stream_id{"other-type", "a"}, 0, [](const cqrs::envelope&) { return true; }) == 0);

  std::vector<cqrs::log_position> middle;
  store.read_all(1, 3, [&](const cqrs::envelope& event) {
    middle.push_back(event.position);
    return true;
  });
  CHECK(middle == std::vector<cqrs::log_position>{2, 3});

  std::vector<cqrs::log_position> beyond_head;
  store.read_all(2, 100, [&](const cqrs::envelope& event) {
    beyond_head.push_back(event.position);
    return true;
  });
  CHECK(beyond_head == std::vector<cqrs::log_position>{3, 4});

  int visited = 0;
  store.read_all(0, store.head(), [&](const cqrs::envelope&) { return ++visited < 2; });
  CHECK(visited == 2);
  visited = 0;
  store.read_stream(cqrs::stream_id{"account", "a"}, 0, [&](const cqrs::envelope&) { return ++visited < 1; });
  CHECK(visited == 1);
}

TEMPLATE_TEST_CASE("an append with a stale expected version is refused and appends nothing", "[store][conformance]",
                   memory_store, sqlite_store,
                   postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  REQUIRE(store.append(deposits(account_stream("a"), 0, {1})));
  for (cqrs::stream_version wrong : {0, 2, 7}) {
    auto conflict = store.append(deposits(account_stream("a"), wrong, {2}));
    REQUIRE_FALSE(conflict);
    CHECK(conflict.error().code == cqrs::errc::concurrency_conflict);
    CHECK_THAT(conflict.error().message, Catch::Contains("account/a") && Catch::Contains("version 1"));
  }
  // A stream the store has not seen, expected further along than it is (it does not exist).
  auto unseen = store.append(deposits(account_stream("never"), 3, {2}));
  REQUIRE_FALSE(unseen);
  CHECK(unseen.error().code == cqrs::errc::concurrency_conflict);
  CHECK(store.head() == 1);
  CHECK(stream_amounts(store, "a") == std::vector<std::int64_t>{1});
  // The stream goes on from where it really is.
  auto next = store.append(deposits(account_stream("a"), 1, {3}));
  REQUIRE(next);
  CHECK(next->first_position == 2);
  CHECK(next->version == 2);
}

TEMPLATE_TEST_CASE("an append without events or without a stream is refused", "[store][conformance]", memory_store,
                   sqlite_store, postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  auto empty = store.append(deposits(account_stream("a"), 0, {}));
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code == cqrs::errc::invalid_request);
  auto streamless = store.append(deposits(nullptr, 0, {1}));
  REQUIRE_FALSE(streamless);
  CHECK(streamless.error().code == cqrs::errc::invalid_request);
  CHECK(store.head() == 0);
}

TEMPLATE_TEST_CASE("racing appends on one expected version: exactly one wins", "[store][conformance]", memory_store,
                   sqlite_store, postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  constexpr int racers = 16;
  constexpr int rounds = 10;
  for (int round = 0; round < rounds; ++round) {
    std::atomic<int> winners{0};
    std::atomic<int> conflicts{0};
    std::barrier start{racers};
    auto contended = account_stream("contended-" + std::to_string(round));
    {
      std::vector<std::jthread> threads;
      for (int racer = 0; racer < racers; ++racer)
        threads.emplace_back([&, racer] {
          start.arrive_and_wait();
          auto result = store.append(deposits(contended, 0, {racer, racer}));
          if (result)
            ++winners;
          else if (result.error().code == cqrs::errc::concurrency_conflict)
            ++conflicts;
        });
    }
    CHECK(winners.load() == 1);
    CHECK(conflicts.load() == racers - 1);
    auto amounts = stream_amounts(store, contended->id);
    REQUIRE(amounts.size() == 2);
    CHECK(amounts[0] == amounts[1]); // both events of the one winner, none of anybody else
  }
  CHECK(store.head() == 2 * rounds);
}

TEMPLATE_TEST_CASE("appends from 8 threads keep the log gap-free, in commit order, while readers read",
                   "[store][conformance]", memory_store, sqlite_store,
                   postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  constexpr int writers = 8;
  constexpr int appends = 300;
  std::atomic<int> refused{0}; // counted here, asserted on the test's thread: Catch2 assertions are not thread-safe
  std::atomic<bool> writing{true};
  std::atomic<int> inconsistent_reads{0};
  std::atomic<int> reads{0};
  // Each reader checks that every prefix it sees is gap-free with contiguous stream versions.
  auto check_log = [&] {
    while (writing.load()) {
      cqrs::log_position expected_position = 1;
      std::map<std::string, cqrs::stream_version> versions;
      bool consistent = true;
      store.read_all(0, store.head(), [&](const cqrs::envelope& event) {
        consistent = consistent && event.position == expected_position++
                     && event.version == ++versions[event.stream->id];
        return true;
      });
      if (!consistent)
        ++inconsistent_reads;
      ++reads;
    }
  };
  {
    std::vector<std::jthread> readers;
    for (int reader = 0; reader < 2; ++reader)
      readers.emplace_back(check_log);
    {
      std::vector<std::jthread> threads;
      for (int writer = 0; writer < writers; ++writer)
        threads.emplace_back([&, writer] {
          auto own = account_stream("w" + std::to_string(writer));
          for (int index = 0; index < appends; ++index)
            if (!store.append(deposits(own, 2 * index, {writer, index})))
              ++refused;
        });
    }
    writing = false;
  }
  CHECK(refused.load() == 0);
  CHECK(inconsistent_reads.load() == 0);
  CHECK(reads.load() > 0);
  REQUIRE(store.head() == writers * appends * 2);

  cqrs::log_position expected_position = 1;
  std::map<std::string, std::vector<std::int64_t>> per_stream;
  bool gap_free = true;
  for (const auto& event : whole_log(store)) {
    gap_free = gap_free && event.position == expected_position++;
    per_stream[event.stream->id].push_back(amount_of(event));
  }
  CHECK(gap_free);
  REQUIRE(per_stream.size() == writers);
  for (int writer = 0; writer < writers; ++writer) {
    // Each writer's events in its own order: (writer, 0), (writer, 1), ...: an append's two events stay adjacent.
    const auto& amounts = per_stream["w" + std::to_string(writer)];
    REQUIRE(amounts.size() == 2 * appends);
    bool ordered = true;
    for (int index = 0; index < appends; ++index)
      ordered = ordered && amounts[2 * index] == writer && amounts[2 * index + 1] == index;
    CHECK(ordered);
  }
}

TEMPLATE_TEST_CASE("listeners hear every new head until they unsubscribe", "[store][conformance]", memory_store,
                   sqlite_store, postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  std::vector<cqrs::log_position> heard;
  auto subscription = store.subscribe([&](cqrs::log_position head) { heard.push_back(head); });
  REQUIRE(store.append(deposits(account_stream("a"), 0, {1, 2})));
  REQUIRE(store.append(deposits(account_stream("a"), 2, {3})));
  CHECK(heard == std::vector<cqrs::log_position>{2, 3});
  REQUIRE_FALSE(store.append(deposits(account_stream("a"), 0, {4}))); // refused: nothing new to hear
  store.unsubscribe(subscription);
  REQUIRE(store.append(deposits(account_stream("a"), 3, {5})));
  CHECK(heard == std::vector<cqrs::log_position>{2, 3});
}

TEMPLATE_TEST_CASE("empty, field-less and huge payloads survive the round trip", "[store][conformance]",
                   memory_store, sqlite_store,
                   postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  auto blob_stream = std::make_shared<const cqrs::stream_id>(cqrs::stream_id{"blob", "b-1"});
  std::string huge(std::size_t{1} << 20, 'x');
  for (std::size_t index = 0; index < huge.size(); index += 997)
    huge[index] = static_cast<char>('a' + index % 26);
  huge[12345] = '"'; // characters JSON must escape
  huge[54321] = '\n';
  cqrs::append_request request{blob_stream, 0, "cmd-blob", "corr-blob", {}};
  request.events.push_back(cqrs::new_event{blobs::blob_written::type_name, blobs::event{blobs::blob_written{""}}});
  request.events.push_back(cqrs::new_event{blobs::blob_written::type_name, blobs::event{blobs::blob_written{huge}}});
  REQUIRE(store.append(std::move(request)));
  cqrs::append_request closing{account_stream("a"), 0, "cmd-close", "", {}};
  closing.events.push_back(cqrs::new_event{bank::account_closed::type_name, bank::event{bank::account_closed{}}});
  REQUIRE(store.append(std::move(closing)));

  auto events = whole_log(store);
  REQUIRE(events.size() == 3);
  const auto* empty = events[0].event_as<blobs::event>();
  const auto* big = events[1].event_as<blobs::event>();
  const auto* closed = events[2].event_as<bank::event>();
  REQUIRE(empty);
  REQUIRE(big);
  REQUIRE(closed);
  CHECK(std::get<blobs::blob_written>(*empty).data.empty());
  CHECK(std::get<blobs::blob_written>(*big).data == huge);
  CHECK(std::holds_alternative<bank::account_closed>(*closed));
  CHECK(events[2].correlation_id.empty());
}

TEMPLATE_TEST_CASE("one request with thousands of events is appended atomically with contiguous positions",
                   "[store][conformance]", memory_store, sqlite_store,
                   postgres_store) {
  TestType fixture;
  cqrs::event_store& store = *fixture.store;
  REQUIRE(store.append(deposits(account_stream("first"), 0, {0})));
  std::vector<std::int64_t> amounts(5000);
  for (std::size_t index = 0; index < amounts.size(); ++index)
    amounts[index] = static_cast<std::int64_t>(index);
  auto appended = store.append(deposits(account_stream("bulk"), 0, amounts));
  REQUIRE(appended);
  CHECK(appended->first_position == 2);
  CHECK(appended->last_position == 5001);
  CHECK(appended->version == 5000);
  CHECK(stream_amounts(store, "bulk") == amounts);
  CHECK(stream_amounts(store, "bulk", 4990).size() == 10);
}

TEMPLATE_TEST_CASE("a command's events are found by its id, also after a restart: an unknown id is not",
                   "[store][conformance]", memory_store, sqlite_store,
                   postgres_store) {
  TestType fixture;
  auto before = std::chrono::system_clock::now() - std::chrono::seconds{1};
  REQUIRE(fixture.store->append(remembered(deposits(account_stream("a"), 0, {1}, "cmd-a1"))));
  REQUIRE(fixture.store->append(remembered(deposits(account_stream("b"), 0, {2, 3, 4}, "cmd-b1"))));
  REQUIRE(fixture.store->append(remembered(deposits(account_stream("a"), 1, {5, 6}, "cmd-a2"))));
  REQUIRE(fixture.store->append(deposits(account_stream("c"), 0, {7}, "cmd-ordinary")));
  // A refused append records nothing.
  REQUIRE_FALSE(fixture.store->append(remembered(deposits(account_stream("a"), 0, {8}, "cmd-refused"))));
  auto after = std::chrono::system_clock::now() + std::chrono::seconds{1};

  auto check = [&](const cqrs::event_store& store) {
    auto b1 = store.find_command("cmd-b1");
    REQUIRE(b1);
    CHECK(b1->stream == cqrs::stream_id{"account", "b"});
    CHECK(b1->first_position == 2);
    CHECK(b1->last_position == 4);
    CHECK(b1->version == 3);
    CHECK(b1->events == 3);
    CHECK(b1->timestamp >= before);
    CHECK(b1->timestamp <= after);
    auto a2 = store.find_command("cmd-a2");
    REQUIRE(a2);
    CHECK(a2->stream == cqrs::stream_id{"account", "a"});
    CHECK(a2->first_position == 5);
    CHECK(a2->last_position == 6);
    CHECK(a2->version == 3);
    CHECK(a2->events == 2);
    auto a1 = store.find_command("cmd-a1");
    REQUIRE(a1);
    CHECK(a1->first_position == 1);
    CHECK(a1->version == 1);
    CHECK(a1->events == 1);
    CHECK_FALSE(store.find_command("unknown"));
    CHECK_FALSE(store.find_command(""));
    CHECK_FALSE(store.find_command("cmd-refused"));
    CHECK(store.find_command("cmd-ordinary").has_value() == TestType::finds_every_command);
  };
  check(*fixture.store);
  if (fixture.reopen())
    check(*fixture.store);
}

TEMPLATE_TEST_CASE("a stream's latest snapshot is kept, an older one does not replace it, and it survives a restart",
                   "[store][conformance]", memory_store, sqlite_store,
                   postgres_store) {
  TestType fixture;
  cqrs::stream_id a{"account", "a"};
  cqrs::stream_id b{"account", "b"};
  CHECK_FALSE(fixture.store->load_snapshot(a));

  fixture.store->save_snapshot(cqrs::snapshot{a, 3, 1, R"({"balance":3})"});
  auto first = fixture.store->load_snapshot(a);
  REQUIRE(first);
  CHECK(first->stream == a);
  CHECK(first->version == 3);
  CHECK(first->format_version == 1);
  CHECK(first->state == R"({"balance":3})");

  fixture.store->save_snapshot(cqrs::snapshot{a, 7, 2, "seven"});
  fixture.store->save_snapshot(cqrs::snapshot{a, 5, 2, "five"}); // older than the one kept: ignored
  fixture.store->save_snapshot(cqrs::snapshot{b, 1, 1, std::string(100000, 'x')});

  auto check = [&](const cqrs::event_store& store) {
    auto latest = store.load_snapshot(a);
    REQUIRE(latest);
    CHECK(latest->version == 7);
    CHECK(latest->format_version == 2);
    CHECK(latest->state == "seven");
    auto other = store.load_snapshot(b);
    REQUIRE(other);
    CHECK(other->version == 1);
    CHECK(other->state == std::string(100000, 'x'));
    CHECK_FALSE(store.load_snapshot(cqrs::stream_id{"account", "c"}));
    CHECK_FALSE(store.load_snapshot(cqrs::stream_id{"other", "a"}));
  };
  check(*fixture.store);
  if (fixture.reopen()) {
    check(*fixture.store);
    // A snapshot of the same version replaces the stored one (a state re-encoded in a newer format).
    fixture.store->save_snapshot(cqrs::snapshot{a, 7, 3, "seven again"});
    fixture.reopen();
    auto replaced = fixture.store->load_snapshot(a);
    REQUIRE(replaced);
    CHECK(replaced->format_version == 3);
    CHECK(replaced->state == "seven again");
  }
}
