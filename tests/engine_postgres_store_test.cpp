// The PostgreSQL store beyond the shared contract: appenders in several processes followed by a reader, what it
// refuses at open and at append, the server crashing under an engine's load, and commits whose answer was lost.
#include "actors/engine.hpp"
#include "actors/postgres_event_store.hpp"
#include "child_process.hpp"
#include "engine_support.hpp"
#include "postgres_test_support.hpp"
#include "store_test_support.hpp"
#include "waiting.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>

using namespace test_support;
using Catch::Matchers::Contains;

namespace {

std::shared_ptr<cqrs::postgres_event_store> open_store(const std::string& conninfo, cqrs::postgres_options options) {
  auto opened = cqrs::open_postgres_event_store(conninfo, std::move(options));
  if (!opened)
    throw std::runtime_error(opened.error().message);
  register_test_event_types(**opened);
  return *opened;
}

/// Requests each appending thread sends to a stream of its own (1 to 3 deposits each: 300 events), and how often
/// it also appends one deposit to the stream every thread of every process contends for.
constexpr int own_requests = 150;
constexpr int own_events = 300;
constexpr int contested_every = 10;
constexpr int appending_threads = 2;

/// One appending process: its threads append to their own streams and, now and then, to the contested one (read
/// its version, append on it, again after a conflict). Returns the exit code: 0 when every append went as planned.
int append_as_process(const std::string& conninfo, const std::string& schema, int process) {
  try {
    auto store = open_store(conninfo, {.schema = schema});
    auto contested = account_stream("contested");
    std::atomic<int> failures{0};
    {
      std::vector<std::jthread> threads;
      for (int thread = 0; thread < appending_threads; ++thread)
        threads.emplace_back([&, thread] {
          auto name = "p" + std::to_string(process) + "-t" + std::to_string(thread);
          auto own = account_stream(name);
          cqrs::stream_version version = 0;
          cqrs::stream_version contested_seen = 0;
          for (int request = 0; request < own_requests; ++request) {
            std::vector<std::int64_t> amounts(static_cast<std::size_t>(request % 3 + 1), request);
            auto appended = store->append(deposits(own, version, amounts, name + "-" + std::to_string(request)));
            if (!appended) {
              std::fprintf(stderr, "%s: %s\n", name.c_str(), appended.error().message.c_str());
              ++failures;
              return;
            }
            version = appended->version;
            if (request % contested_every != 0)
              continue;
            while (true) {
              contested_seen =
                store->read_stream(*contested, contested_seen, [](const cqrs::envelope&) { return true; });
              auto won = store->append(deposits(contested, contested_seen, {1}, name + "-contested"));
              if (won)
                break;
              if (won.error().code != cqrs::errc::concurrency_conflict) {
                std::fprintf(stderr, "%s: %s\n", name.c_str(), won.error().message.c_str());
                ++failures;
                return;
              }
            }
          }
        });
    }
    return failures.load() == 0 ? 0 : 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "process %d: %s\n", process, error.what());
    return 1;
  }
}

/// The whole log, in order.
std::vector<cqrs::envelope> whole_log(const cqrs::event_store& store) {
  std::vector<cqrs::envelope> events;
  store.read_all(0, store.head(), [&](const cqrs::envelope& event) {
    events.push_back(event);
    return true;
  });
  return events;
}

/// How many events of the log carry the command id.
std::size_t events_of_command(const cqrs::event_store& store, const std::string& command_id) {
  std::size_t count = 0;
  for (const auto& event : whole_log(store))
    count += event.command_id == command_id ? 1 : 0;
  return count;
}

} // namespace

TEST_CASE("appends from 3 processes at once reach a follower gap-free: every position once, in order",
          "[store][postgres]") {
  auto conninfo = postgres_conninfo();
  auto schema = fresh_schema("processes");
  constexpr int processes = 3;
  // The children start when the gate's write end closes; they are forked before this process starts any thread.
  int gate[2];
  REQUIRE(pipe(gate) == 0);
  std::vector<pid_t> children;
  for (int process = 0; process < processes; ++process) {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      close(gate[1]);
      char byte = 0;
      while (read(gate[0], &byte, 1) > 0) {
      }
      _exit(append_as_process(conninfo, schema, process));
    }
    children.push_back(child);
  }
  close(gate[0]);

  // The follower hears of new heads only through notifications: its safety re-read is an hour away.
  auto store = open_store(conninfo, {.schema = schema, .head_check_interval = std::chrono::hours{1}});
  std::mutex mutex;
  std::condition_variable changed;
  auto subscription = store->subscribe([&](cqrs::log_position) {
    { std::lock_guard lock{mutex}; }
    changed.notify_all();
  });
  close(gate[1]);

  constexpr cqrs::log_position total =
    processes * appending_threads * (own_events + own_requests / contested_every);
  std::vector<cqrs::log_position> positions;
  std::map<std::string, cqrs::stream_version> versions;
  std::size_t out_of_turn = 0;
  cqrs::log_position next = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
  while (next < total) {
    {
      std::unique_lock lock{mutex};
      if (!changed.wait_until(lock, deadline, [&] { return store->head() > next; }))
        break;
    }
    store->read_all(next, store->head(), [&](const cqrs::envelope& event) {
      positions.push_back(event.position);
      auto& version = versions[event.stream->id];
      out_of_turn += event.version == version + 1 ? 0 : 1;
      version = event.version;
      next = event.position;
      return true;
    });
  }
  store->unsubscribe(subscription);
  for (auto child : children)
    CHECK(exit_code_within(child) == 0);

  REQUIRE(positions.size() == total);
  std::size_t misplaced = 0;
  for (std::size_t index = 0; index < positions.size(); ++index)
    misplaced += positions[index] == index + 1 ? 0 : 1;
  CHECK(misplaced == 0);
  CHECK(out_of_turn == 0);
  CHECK(versions["contested"] == processes * appending_threads * own_requests / contested_every);
  for (int process = 0; process < processes; ++process)
    for (int thread = 0; thread < appending_threads; ++thread)
      CHECK(versions["p" + std::to_string(process) + "-t" + std::to_string(thread)] == own_events);
  // Every head came from the other processes' commits, through LISTEN/NOTIFY.
  CHECK(store->statistics().foreign_heads > 0);
  CHECK(store->statistics().appends == 0);
}

TEST_CASE("a writer that numbered from a head another process moved, or took a stream to be where its append "
          "expects, goes again the long way: nothing is numbered twice or appended on a stale version",
          "[store][postgres]") {
  auto conninfo = postgres_conninfo();
  auto schema = fresh_schema("optimistic");
  auto first = open_store(conninfo, {.schema = schema});
  auto second = open_store(conninfo, {.schema = schema}); // knows the head as 0
  auto x = account_stream("x");
  auto y = account_stream("y");
  REQUIRE(first->append(deposits(x, 0, {1})));
  // The second writer numbers from 0 and learns under the lock that the head is 1.
  auto moved = second->append(deposits(y, 0, {2}));
  REQUIRE(moved);
  CHECK(moved->first_position == 2);
  CHECK(second->statistics().optimistic_retries == 1);
  REQUIRE(second->append(deposits(y, 1, {3})));
  // A version the writer knows to be wrong is refused without a transaction.
  auto transactions = second->statistics().transactions;
  REQUIRE_FALSE(second->append(deposits(y, 0, {9})));
  CHECK(second->statistics().transactions == transactions);
  // x is a stream the second writer never appended to: it takes x to be at version 0, as the append expects, and
  // the server's unique (stream, version) index says otherwise.
  auto stale = second->append(deposits(x, 0, {4}));
  REQUIRE_FALSE(stale);
  CHECK(stale.error().code == cqrs::errc::concurrency_conflict);
  CHECK(second->statistics().optimistic_retries == 2);
  auto current = second->append(deposits(x, 1, {5}));
  REQUIRE(current);
  CHECK(current->first_position == 4);
  CHECK(current->version == 2);
  // A stream the second writer never saw, not as far along as the append expects: no event at the expected
  // version, so not appended on it (which would leave a hole in the stream's versions).
  auto behind = second->append(deposits(account_stream("w"), 3, {6}));
  REQUIRE_FALSE(behind);
  CHECK(behind.error().code == cqrs::errc::concurrency_conflict);
  CHECK(second->statistics().optimistic_retries == 3);
  std::vector<std::pair<std::string, std::int64_t>> log;
  first->read_all(0, 100, [&](const cqrs::envelope& event) {
    CHECK(event.position == log.size() + 1);
    log.emplace_back(event.stream->id, amount_of(event));
    return true;
  });
  CHECK(log == std::vector<std::pair<std::string, std::int64_t>>{{"x", 1}, {"y", 2}, {"y", 3}, {"x", 5}});
}

TEST_CASE("a schema of other tables, a newer schema version, a bad schema name and an unreachable server are "
          "refused at open",
          "[store][postgres]") {
  auto conninfo = postgres_conninfo();
  auto expect_refusal = [](const std::string& info, cqrs::postgres_options options, const std::string& says) {
    auto refused = cqrs::open_postgres_event_store(info, std::move(options));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == cqrs::errc::store_failure);
    CHECK_THAT(refused.error().message, Contains(says));
  };
  auto foreign = fresh_schema("foreign");
  run_sql(conninfo, "CREATE SCHEMA " + foreign + "; CREATE TABLE " + foreign + ".orders (id integer)");
  expect_refusal(conninfo, {.schema = foreign}, "holds tables (orders) but no event log of this engine");

  auto newer = fresh_schema("newer");
  {
    auto store = open_store(conninfo, {.schema = newer});
    REQUIRE(store->append(deposits(account_stream("a"), 0, {1})));
  }
  run_sql(conninfo, "UPDATE " + newer + ".store_info SET value = '99' WHERE name = 'schema_version'");
  expect_refusal(conninfo, {.schema = newer},
                 "schema version 99, newer than this program's " + std::to_string(cqrs::postgres_schema_version));
  // Refused, and left as it was.
  CHECK(run_sql(conninfo, "SELECT count(*) FROM " + newer + ".events") == "1");

  expect_refusal(conninfo, {.schema = "Orders-Log"}, "is not usable");
  expect_refusal("host=/nonexistent-cqrs-socket-folder port=1", {}, "cannot connect to PostgreSQL");
}

TEST_CASE("ids that are not UTF-8 and payloads with a NUL character are refused and append nothing",
          "[store][postgres]") {
  auto store = open_store(postgres_conninfo(), {.schema = fresh_schema("refusals")});
  auto bad_id = store->append(deposits(account_stream("a\xff"), 0, {1}));
  REQUIRE_FALSE(bad_id);
  CHECK(bad_id.error().code == cqrs::errc::invalid_request);
  CHECK_THAT(bad_id.error().message, Contains("UTF-8"));

  cqrs::append_request nul{account_stream("b"), 0, "cmd-nul", "corr", {}};
  nul.events.push_back(cqrs::new_event{blobs::blob_written::type_name,
                                       blobs::event{blobs::blob_written{std::string{"before\0after", 12}}}});
  auto refused = store->append(std::move(nul));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == cqrs::errc::invalid_request);
  CHECK_THAT(refused.error().message, Contains("NUL"));

  // Nothing was appended, and the store goes on.
  CHECK(store->head() == 0);
  auto accepted = store->append(deposits(account_stream("b"), 0, {1}));
  REQUIRE(accepted);
  CHECK(accepted->first_position == 1);
  CHECK(store->healthy());
}

TEST_CASE("the server crashed and started again under load: every acknowledged command is in the log once and the "
          "engine goes on without a restart",
          "[store][postgres][faults]") {
  own_postgres_server server;
  auto store = open_store(server.conninfo(), {.schema = "crash", .reconnect_delay = std::chrono::milliseconds{20}});
  auto engine = bank_engine({.store = store});
  constexpr int accounts = 8;
  for (int account = 0; account < accounts; ++account)
    open(*engine, "account-" + std::to_string(account));

  constexpr int commands = 2000;
  std::vector<std::future<cqrs::command_result>> replies;
  replies.reserve(commands);
  auto send = [&](int index) {
    replies.push_back(engine->send(bank::deposit{"account-" + std::to_string(index % accounts), 1},
                                   {"deposit-" + std::to_string(index), ""}));
  };
  // Half the commands are sent before the crash (the first hundred answered, so that commits are flowing), half
  // while the server is down and while it recovers.
  for (int index = 0; index < commands / 2; ++index)
    send(index);
  for (int index = 0; index < 100; ++index)
    REQUIRE(get_within(replies[static_cast<std::size_t>(index)], "a reply before the crash"));
  server.crash();
  for (int index = commands / 2; index < commands; ++index)
    send(index);
  server.resume();

  std::size_t refused = 0;
  std::string first_refusal;
  for (std::size_t index = 100; index < replies.size(); ++index) {
    auto reply = get_within(replies[index], "a reply after the server came back", std::chrono::seconds{120});
    if (!reply && refused++ == 0)
      first_refusal = reply.error().code + ": " + reply.error().message;
  }
  INFO("the first refusal: " << first_refusal);
  CHECK(refused == 0);
  CHECK(engine->health().healthy);
  CHECK(store->statistics().reconnects >= 1);

  // Each command's one event is in the log once: none lost, none applied twice.
  std::map<std::string, int> appended;
  for (const auto& event : whole_log(*store))
    ++appended[event.command_id];
  std::size_t wrong = 0;
  for (int index = 0; index < commands; ++index)
    wrong += appended["deposit-" + std::to_string(index)] == 1 ? 0 : 1;
  CHECK(wrong == 0);

  // The engine goes on: a new command is accepted and the read side catches up with everything.
  auto after = run(*engine, bank::deposit{"account-0", 1});
  REQUIRE(after);
  REQUIRE(caught_up_within(*engine, std::chrono::seconds{60}));
  auto totals = get_within(engine->query(readmodels::get_bank_totals{}, cqrs::at_least(after->position)),
                           "the totals after the restart");
  REQUIRE(totals);
  CHECK(totals->money_held_cents == commands + 1);
}

TEST_CASE("a COMMIT whose answer was lost is looked up: acknowledged once when it committed, committed again when "
          "it did not",
          "[store][postgres][faults]") {
  own_postgres_server server;
  const auto& conninfo = server.conninfo();
  auto store = open_store(conninfo, {.schema = "outcome", .reconnect_delay = std::chrono::milliseconds{20}});
  auto account = account_stream("a");
  REQUIRE(store->append(deposits(account, 0, {1}, "first")));

  // Committed, answer lost: the server writes the commit, then waits for a synchronous standby that does not
  // exist; the writer's backend is terminated while it waits (as a connection dropping after COMMIT). The setting
  // takes effect with a restart, so that every server process has it before the append begins.
  run_sql(conninfo, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
  server.crash();
  server.resume();
  auto committed = std::async(std::launch::async, [&] { return store->append(deposits(account, 1, {2}, "kept")); });
  std::string waiting;
  REQUIRE(spin_until([&] {
    waiting = run_sql(conninfo, "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
    return !waiting.empty();
  }));
  run_sql(conninfo, "SELECT pg_terminate_backend(" + waiting + ")");
  run_sql(conninfo, "ALTER SYSTEM RESET synchronous_standby_names");
  run_sql(conninfo, "SELECT pg_reload_conf()");
  auto kept = get_within(committed, "the append whose commit was written");
  REQUIRE(kept);
  CHECK(kept->version == 2);
  CHECK(store->statistics().unknown_outcomes_committed == 1);
  CHECK(events_of_command(*store, "kept") == 1);

  // Not committed, answer lost: a deferred trigger ends the backend inside COMMIT, before the commit is written,
  // the first time only (a sequence counts outside the transaction that dies).
  run_sql(conninfo, R"sql(
    CREATE SEQUENCE outcome.commits_seen;
    CREATE FUNCTION outcome.drop_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.command_id = 'retried' AND nextval('outcome.commits_seen') = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
        PERFORM pg_sleep(10);
      END IF;
      RETURN NEW;
    END $$;
    CREATE CONSTRAINT TRIGGER drop_first_commit AFTER INSERT ON outcome.events DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW EXECUTE FUNCTION outcome.drop_first_commit();
  )sql");
  // Counted from here: the first append after the restart above may have found its connection dead only after
  // sending its transaction, which is an unknown outcome too (resolved as not committed).
  auto before = store->statistics();
  auto retried = store->append(deposits(account, 2, {3}, "retried"));
  REQUIRE(retried);
  CHECK(retried->version == 3);
  CHECK(store->statistics().unknown_outcomes_retried - before.unknown_outcomes_retried == 1);
  CHECK(store->statistics().unknown_outcomes_committed == 1);
  CHECK(events_of_command(*store, "retried") == 1);

  // The log is whole: three events at positions 1 to 3.
  auto log = whole_log(*store);
  REQUIRE(log.size() == 3);
  CHECK(log.back().position == 3);
  CHECK(store->healthy());
}
