// Waiting in the tests for what another thread brings about, with a deadline: a broken engine fails the test
// rather than hang it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace test_support {

/// How long a test waits for anything before it fails: far beyond what any wait takes, so that slow sanitizer
/// builds never reach it, and far below the ctest timeouts, so that the test says what it waited for.
inline constexpr std::chrono::milliseconds default_limit = std::chrono::seconds{30};

/// What a wait throws when its deadline passed. Catch2 reports an exception from a test case as its failure, with
/// this message; thrown on another thread it is for thread_failures to carry over.
inline std::runtime_error timed_out(std::string_view what, std::chrono::milliseconds limit) {
  auto waited = limit.count() % 1000 == 0 ? std::to_string(limit.count() / 1000) + " s"
                                          : std::to_string(limit.count()) + " ms";
  return std::runtime_error("timed out after " + waited + " waiting for " + std::string{what});
}

/// Yields until `condition()` holds. False when it did not within `limit`: the caller fails the test (after
/// releasing whatever other threads wait for, so that joining them cannot hang).
template <class Condition>
[[nodiscard]] bool spin_until(Condition condition, std::chrono::milliseconds limit = default_limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::yield();
  }
  return true;
}

/// The future's value once it is ready; throws timed_out, naming `what`, when it is not within `limit`.
template <class T>
T get_within(std::future<T>& future, std::string_view what, std::chrono::milliseconds limit = default_limit) {
  if (future.wait_for(limit) == std::future_status::timeout)
    throw timed_out(what, limit);
  return future.get();
}

/// For the future of a call or a promise made in the same expression.
template <class T>
T get_within(std::future<T>&& future, std::string_view what, std::chrono::milliseconds limit = default_limit) {
  return get_within(future, what, limit);
}

/// A std::latch whose wait has a deadline (std::latch has none): the test's thread waits for a number of
/// callbacks or threads to count down.
class countdown {
public:
  explicit countdown(std::ptrdiff_t count) : left_(count) {}

  void count_down(std::ptrdiff_t by = 1) {
    std::lock_guard lock{mutex_};
    left_ -= by;
    if (left_ <= 0)
      reached_zero_.notify_all();
  }

  /// Returns once the count reached zero; throws timed_out, naming `what`, when it did not within `limit`.
  void wait_within(std::string_view what, std::chrono::milliseconds limit = default_limit) {
    if (!reached_within(limit))
      throw timed_out(what, limit);
  }
  /// True once the count reached zero; false when it did not within `limit` (the caller fails the test, after
  /// whatever it must do first).
  [[nodiscard]] bool reached_within(std::chrono::milliseconds limit = default_limit) {
    std::unique_lock lock{mutex_};
    return reached_zero_.wait_for(lock, limit, [this] { return left_ <= 0; });
  }

private:
  std::mutex mutex_;
  std::condition_variable reached_zero_;
  std::ptrdiff_t left_;
};

/// Failures on a test's own threads, reported on the test's thread once they are joined: an exception must not
/// escape a thread (it would end the whole test run), and Catch2's assertions are not thread-safe.
class thread_failures {
public:
  /// Runs `body`, keeping the message of what it throws (a missed deadline, say) rather than letting it escape.
  template <class Body>
  void capture(Body&& body) noexcept {
    try {
      std::forward<Body>(body)();
    } catch (const std::exception& error) {
      keep(error.what());
    } catch (...) {
      keep("an exception that is not a std::exception");
    }
  }

  /// Throws the first failure kept, if any; call it on the test's thread once the threads are joined.
  void rethrow_first() const {
    std::lock_guard lock{mutex_};
    if (messages_.empty())
      return;
    auto others = messages_.size() - 1;
    throw std::runtime_error(messages_.front()
                             + (others > 0 ? " (and " + std::to_string(others) + " more on other threads)" : ""));
  }

private:
  void keep(std::string message) noexcept {
    try {
      std::lock_guard lock{mutex_};
      messages_.push_back(std::move(message));
    } catch (...) {
      // Out of memory for a message: the thread still ends, and the test's own checks of its work fail.
    }
  }

  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

/// Runs `action` when the scope ends, also when a failed assertion or a missed deadline leaves it early. Declared
/// after the engine, it runs before the engine's shutdown: a test that holds engine threads at a gate opens it
/// there, so that the shutdown (which waits for them) cannot hang.
template <class Action>
class at_scope_exit {
public:
  explicit at_scope_exit(Action action) : action_(std::move(action)) {}
  ~at_scope_exit() { action_(); }
  at_scope_exit(const at_scope_exit&) = delete;
  at_scope_exit& operator=(const at_scope_exit&) = delete;

private:
  Action action_;
};

} // namespace test_support
