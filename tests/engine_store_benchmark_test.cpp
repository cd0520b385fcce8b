// Figures for the SQLite store (hidden; run with "[.benchmark]"): appends per second (waiting and in the background),
// group commit, recovery reads.
#include "actors/sqlite_event_store.hpp"
#include "store_test_support.hpp"
#include "waiting.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <thread>

namespace {

using test_support::account_stream;
using test_support::deposits;
using test_support::start_writers;
using stopwatch = std::chrono::steady_clock;

double seconds_since(stopwatch::time_point start) {
  return std::chrono::duration<double>(stopwatch::now() - start).count();
}

std::shared_ptr<cqrs::sqlite_event_store> open_store(const std::string& path, cqrs::sqlite_options options = {}) {
  auto opened = cqrs::open_sqlite_event_store(path, std::move(options));
  if (!opened)
    throw std::runtime_error(opened.error().message);
  test_support::register_test_event_types(**opened);
  return *opened;
}

/// How the benchmark's threads hand their appends over: one at a time, waiting for each, or all queued at once
/// with append_async (each building on the one before in its stream, the clock stopping when the last callback
/// ran).
enum class append_style { waiting, queued };

/// Appends one event per request from `threads` threads, each to its own stream; prints appends per second.
void measure_appends(cqrs::sqlite_synchronous synchronous, const char* mode, append_style style, int threads,
                     int appends_per_thread) {
  test_support::temporary_folder folder;
  // Made before the store, so that they outlive it: after a missed deadline its callbacks still run as it closes.
  std::atomic<int> refused{0};
  test_support::countdown all_done{style == append_style::queued ? threads * appends_per_thread : 0};
  auto store = open_store(folder.file("events.db"), cqrs::sqlite_options{.synchronous = synchronous});
  // A start line among the test's own threads (start_writers takes a std::barrier): it waits for no engine work.
  std::barrier start{threads + 1};
  stopwatch::time_point began;
  {
    auto writers = start_writers(threads, start, [&](int, const auto& own) {
      for (int index = 0; index < appends_per_thread; ++index) {
        auto request = deposits(own, index, {index}, "command-" + std::to_string(index));
        if (style == append_style::waiting) {
          if (!store->append(std::move(request)))
            ++refused;
          continue;
        }
        store->append_async(std::move(request), [&](auto result) {
          if (!result)
            ++refused;
          all_done.count_down();
        });
      }
    });
    start.arrive_and_wait();
    began = stopwatch::now();
  }
  all_done.wait_within("the callbacks of every queued append");
  auto elapsed = seconds_since(began);
  auto statistics = store->statistics();
  std::printf("%s, synchronous=%-6s %2d threads: %9.0f appends/s  (%llu appends in %llu transactions, "
              "%.1f per transaction, %.2f s)\n",
              style == append_style::waiting ? "appends" : "append_async", mode, threads,
              statistics.appends / elapsed, static_cast<unsigned long long>(statistics.appends),
              static_cast<unsigned long long>(statistics.transactions),
              static_cast<double>(statistics.appends) / static_cast<double>(statistics.transactions), elapsed);
  CHECK(refused.load() == 0);
}

} // namespace

TEST_CASE("benchmark: 32 threads waiting on append versus queueing with append_async (synchronous full)", "[.benchmark]") {
  measure_appends(cqrs::sqlite_synchronous::full, "full", append_style::waiting, 32, 200);
  measure_appends(cqrs::sqlite_synchronous::full, "full", append_style::queued, 32, 200);
}

TEST_CASE("benchmark: appends per second with 1 and 16 threads, synchronous full and normal",
          "[.benchmark]") {
  measure_appends(cqrs::sqlite_synchronous::full, "full", append_style::waiting, 1, 1000);
  measure_appends(cqrs::sqlite_synchronous::full, "full", append_style::waiting, 16, 500);
  measure_appends(cqrs::sqlite_synchronous::normal, "normal", append_style::waiting, 1, 20000);
  measure_appends(cqrs::sqlite_synchronous::normal, "normal", append_style::waiting, 16, 2000);
}

TEST_CASE("benchmark: reading back 1,000,000 events (recovery)", "[.benchmark]") {
  test_support::temporary_folder folder;
  auto path = folder.file("events.db");
  constexpr int streams = 10000;
  constexpr int events_per_stream = 100;
  {
    auto store = open_store(path, cqrs::sqlite_options{.synchronous = cqrs::sqlite_synchronous::normal});
    auto began = stopwatch::now();
    std::vector<std::int64_t> amounts(events_per_stream);
    for (int index = 0; index < events_per_stream; ++index)
      amounts[index] = index;
    for (int stream = 0; stream < streams; ++stream)
      REQUIRE(store->append(deposits(account_stream("account-" + std::to_string(stream)), 0, amounts,
                                     "0b6a3c1e-7f0d-4a51-9d61-" + std::to_string(100000000000 + stream),
                                     "corr-" + std::to_string(stream))));
    std::printf("writing 1,000,000 events in requests of 100: %.2f s\n", seconds_since(began));
  }
  std::printf("file size: %.1f MB\n", static_cast<double>(std::filesystem::file_size(path)) / 1e6);

  auto began = stopwatch::now();
  auto store = open_store(path);
  std::printf("open with quick_check: %.3f s\n", seconds_since(began));
  began = stopwatch::now();
  open_store(path, cqrs::sqlite_options{.open_check = cqrs::sqlite_open_check::header_only});
  std::printf("open, header only: %.4f s\n", seconds_since(began));
  REQUIRE(store->head() == streams * events_per_stream);

  for (int round = 0; round < 3; ++round) {
    std::uint64_t count = 0;
    std::int64_t sum = 0;
    began = stopwatch::now();
    store->read_all(0, store->head(), [&](const cqrs::envelope& event) {
      ++count;
      sum += test_support::amount_of(event);
      return true;
    });
    auto elapsed = seconds_since(began);
    std::printf("read_all, decoded: %llu events in %.3f s = %.0f events/s\n", static_cast<unsigned long long>(count),
                elapsed, static_cast<double>(count) / elapsed);
    CHECK(count == streams * events_per_stream);
    CHECK(sum == std::int64_t{streams} * (events_per_stream * (events_per_stream - 1) / 2));
  }

  // Aggregate recovery reads one stream at a time.
  began = stopwatch::now();
  std::uint64_t count = 0;
  for (int stream = 0; stream < streams; ++stream)
    store->read_stream(cqrs::stream_id{"account", "account-" + std::to_string(stream)}, 0,
                       [&](const cqrs::envelope&) { return ++count, true; });
  auto elapsed = seconds_since(began);
  std::printf("read_stream of 10,000 streams of 100 events: %.3f s = %.0f streams/s, %.0f events/s\n", elapsed,
              streams / elapsed, static_cast<double>(count) / elapsed);

  // Two readers at once: the pool gives each its own connection.
  began = stopwatch::now();
  {
    std::vector<std::jthread> readers;
    for (int reader = 0; reader < 2; ++reader)
      readers.emplace_back([&] {
        store->read_all(0, store->head(), [](const cqrs::envelope&) { return true; });
      });
  }
  elapsed = seconds_since(began);
  std::printf("read_all by 2 threads at once: %.3f s = %.0f events/s in total\n", elapsed,
              2.0 * streams * events_per_stream / elapsed);
}
