// Internal pieces every runner of a phase uses (the engine run and both baselines): a count of outstanding work a
// thread can wait on, the checks of a phase's reply counts, and the open loop's pacing. CAF-free.
#pragma once

#include "bench/histogram.hpp"
#include "bench/workload.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench::detail {

/// Counts operations outstanding and lets one thread wait until none is. The waiting thread is woken by the
/// completion that brings the count to zero, so a phase's end is seen at once (catch-up is timed from it).
/// A completion touches the counter after its decrement: keep the counter alive until every thread that
/// completes operations has stopped (the engine or the actor system is gone).
class pending_counter {
public:
  void add(std::int64_t count = 1) { count_.fetch_add(count, std::memory_order_relaxed); }
  void done() {
    if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock{mutex_};
      zero_.notify_all();
    }
  }
  /// True once the count is zero; false after `timeout`.
  template <class Rep, class Period>
  bool wait_for_zero(std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock lock{mutex_};
    return zero_.wait_for(lock, timeout, [this] { return count_.load(std::memory_order_acquire) == 0; });
  }
  std::int64_t value() const { return count_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::int64_t> count_{0};
  std::mutex mutex_;
  std::condition_variable zero_;
};

/// What is wrong with a phase's counts, in words: every command answered (accepted + rejected + overloaded ==
/// sent), every invalid one rejected with the code of the rule it breaks (or refused as overloaded), no valid one
/// rejected (but for rules an overloaded refusal earlier in its order explains). Empty when all is well.
std::vector<std::string> count_problems(const std::string& phase_name, std::uint64_t sent, std::uint64_t invalid_sent,
                                        const outcome_tally& tally);

/// The open loop's pacing, shared by the engine run's pacers and the raw-CAF baseline's: the commands of `scripts`,
/// round-robin, at intended times `interval` apart from `start`, each handed to `send(script, command, intended)`
/// without waiting for its reply. Commands due while the pacer was late go out at once, each with its own intended
/// time (their latency counts from it: no coordinated omission). While `outstanding` counts `max_in_flight` the
/// pacer waits. Returns how many times it waited.
template <class Send>
std::uint64_t pace(std::vector<std::unique_ptr<client_script>>& scripts, std::chrono::steady_clock::duration interval,
                   std::chrono::steady_clock::time_point start, std::uint64_t max_in_flight,
                   const pending_counter& outstanding, Send send) {
  // Linux lets a sleep overrun by 50 us by default ("timer slack"), which would show as latency of every command
  // sent after one; 1 ns asks for the timer's own precision. Per thread: only the pacer's own sleeps.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  std::uint64_t waits = 0;
  auto intended = start;
  std::vector<bool> done(scripts.size(), false);
  std::size_t alive = scripts.size();
  std::size_t next_client = 0;
  while (alive > 0) {
    if (intended > std::chrono::steady_clock::now()) {
      std::this_thread::sleep_until(intended);
      continue;
    }
    while (static_cast<std::uint64_t>(std::max<std::int64_t>(0, outstanding.value())) >= max_in_flight) {
      ++waits;
      std::this_thread::sleep_for(std::chrono::microseconds{100});
    }
    while (done[next_client])
      next_client = (next_client + 1) % scripts.size();
    auto& script = *scripts[next_client];
    auto planned = script.next();
    if (!planned) {
      done[next_client] = true;
      --alive;
      continue;
    }
    next_client = (next_client + 1) % scripts.size();
    send(script, std::move(*planned), intended);
    intended += interval;
  }
  return waits;
}

} // namespace bench::detail
