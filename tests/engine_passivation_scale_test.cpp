// Passivation at scale: a million aggregates touched once each, at most 100,000 alive, memory bounded by it.
#include "engine_support.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <fstream>
#include <iostream>
#include <future>
#include <memory>
#include <mutex>
#include <string_view>
#include <unistd.h>

using namespace test_support;

namespace {

#if defined(__SANITIZE_THREAD__)
// Under TSan the run is hidden: Debian's CAF is not instrumented, and at this scale the memory of stopped actors
// is reused by new ones, which TSan (not seeing CAF's own hand-offs) reports as races inside CAF's message and
// actor storage. The passivation tests in engine_lifecycle_test.cpp cover the same paths under TSan.
#define SCALE_TAGS "[.][scale]"
#else
#define SCALE_TAGS "[scale]"
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitizers keep freed memory aside (quarantine, shadow), so their RSS says nothing about passivation: check the
// live counts on a smaller run only.
constexpr bool measures_memory = false;
constexpr std::size_t aggregates = 100'000;
constexpr std::size_t live_maximum = 10'000;
#else
constexpr bool measures_memory = true;
constexpr std::size_t aggregates = 1'000'000;
constexpr std::size_t live_maximum = 100'000;
#endif

/// Resident memory of this process now, in bytes.
std::size_t resident_bytes() {
  std::ifstream statm{"/proc/self/statm"};
  std::size_t pages = 0;
  std::size_t resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

/// Opens accounts first..last-1, keeping at most `window` commands in flight; returns the number rejected.
std::size_t open_range(cqrs::engine& engine, std::size_t first, std::size_t last, std::size_t window) {
  // Owned by the reply callbacks too: after a missed deadline has left this function, late replies still land.
  struct in_flight {
    std::mutex mutex;
    std::condition_variable changed;
    std::size_t outstanding = 0;
    std::size_t rejected = 0;
  };
  auto replies = std::make_shared<in_flight>();
  auto wait = [&](std::unique_lock<std::mutex>& lock, std::size_t at_most, std::string_view what) {
    if (!replies->changed.wait_for(lock, default_limit, [&] { return replies->outstanding <= at_most; }))
      throw timed_out(what, default_limit);
  };
  for (auto index = first; index < last; ++index) {
    {
      // Refilled half a window at a time: one wake-up of this thread per window/2 replies, not per reply.
      std::unique_lock lock{replies->mutex};
      if (replies->outstanding >= window)
        wait(lock, window / 2, "half a window of replies to account openings");
      ++replies->outstanding;
    }
    engine.send(bank::open_account{"acc-" + std::to_string(index), "owner"},
                [replies, window](cqrs::command_result result) {
                  std::lock_guard lock{replies->mutex};
                  --replies->outstanding;
                  if (!result)
                    ++replies->rejected;
                  if (replies->outstanding == window / 2 || replies->outstanding == 0)
                    replies->changed.notify_all();
                });
  }
  std::unique_lock lock{replies->mutex};
  wait(lock, 0, "the last replies to account openings");
  return replies->rejected;
}

/// Opens accounts first..last-1 from two sender threads, each with at most 256 commands in flight.
std::size_t open_accounts(cqrs::engine& engine, std::size_t first, std::size_t last) {
  auto middle = first + (last - first) / 2;
  auto other = std::async(std::launch::async, [&] { return open_range(engine, middle, last, 256); });
  auto own = open_range(engine, first, middle, 256);
  return own + get_within(other, "the other sender to open its accounts");
}

} // namespace

TEST_CASE("A million aggregates touched once each with at most 100,000 alive: live count and memory stay bounded",
          SCALE_TAGS) {
  // No projections: the read models would grow with the aggregates and hide what the actors cost.
  cqrs::engine engine{{.passivate_after = std::chrono::milliseconds{0},
                       .max_live_aggregates = live_maximum,
                       .tuning = {.threads = 2}}};
  engine.add_aggregate<bank::account>();

  auto start = resident_bytes();
  REQUIRE(open_accounts(engine, 0, live_maximum) == 0);
  auto at_maximum = resident_bytes();
  REQUIRE(open_accounts(engine, live_maximum, aggregates) == 0);
  auto at_end = resident_bytes();

  auto statistics = engine.statistics();
  // 512 commands in flight at most, so at most that many busy actors can push shards over their share.
  CHECK(statistics.peak_live_aggregates <= live_maximum + 512);
  CHECK(statistics.aggregates_started == aggregates);
  CHECK(statistics.aggregates_passivated >= aggregates - live_maximum - 512);
  CHECK(engine.head() == aggregates);

  // A passivated account comes back with its state.
  auto first = get_within(engine.inspect<bank::account>("acc-0"), "the state of acc-0, passivated");
  REQUIRE(first);
  CHECK(first->opened);

  if constexpr (measures_memory) {
    // Up to the maximum each new aggregate costs its events plus a live actor; beyond it only its events (the
    // in-memory log keeps them), since a passivated actor's memory is reused by the next one.
    auto before_maximum = static_cast<double>(at_maximum - start) / static_cast<double>(live_maximum);
    auto beyond_maximum = static_cast<double>(at_end - at_maximum) / static_cast<double>(aggregates - live_maximum);
    std::cout << "passivation: " << aggregates << " aggregates, live maximum " << live_maximum << ", peak live "
              << statistics.peak_live_aggregates << "; RSS " << start / (1 << 20) << " MiB at start, "
              << at_maximum / (1 << 20) << " MiB at the maximum, " << at_end / (1 << 20) << " MiB at the end; "
              << static_cast<int>(before_maximum) << " bytes per aggregate up to the maximum, "
              << static_cast<int>(beyond_maximum) << " beyond it\n";
    CHECK(beyond_maximum < 0.6 * before_maximum);
  }
}

TEST_CASE("Memory of a million live aggregates, for comparison (benchmark)", "[.][benchmark]") {
  cqrs::engine engine{
    {.passivate_after = std::chrono::milliseconds{0}, .max_live_aggregates = 0, .tuning = {.threads = 2}}};
  engine.add_aggregate<bank::account>();
  auto start = resident_bytes();
  REQUIRE(open_accounts(engine, 0, aggregates) == 0);
  auto at_end = resident_bytes();
  std::cout << "no passivation: " << aggregates << " aggregates all alive (" << engine.statistics().live_aggregates
            << "); RSS " << start / (1 << 20) << " MiB at start, " << at_end / (1 << 20) << " MiB at the end; "
            << (at_end - start) / aggregates << " bytes per aggregate\n";
}
