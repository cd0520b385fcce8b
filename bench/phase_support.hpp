// Internal pieces every runner of a phase uses (the engine run and both baselines): a count of outstanding work a
// thread can wait on, and the checks of a phase's reply counts. CAF-free.
#pragma once

#include "bench/histogram.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
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

/// What is wrong with a phase's counts, in words: every command answered (accepted + rejected == sent), every
/// invalid one rejected with the code of the rule it breaks, no valid one rejected. Empty when all is well.
std::vector<std::string> count_problems(const std::string& phase_name, std::uint64_t sent, std::uint64_t invalid_sent,
                                        const outcome_tally& tally);

} // namespace bench::detail
