// Internal: a mutex for critical sections of a few hundred nanoseconds, such as the in-memory log's append.
// CAF-free.
#pragma once

#include <atomic>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#  include <immintrin.h>
#endif
#if defined(__linux__)
#  include <linux/futex.h>
#  include <sys/syscall.h>
#  include <unistd.h>
#endif

namespace cqrs::detail {

/// Spins briefly before it sleeps. glibc's mutexes and reader/writer locks put a contended thread to sleep at
/// once, so two threads appending in turn pay a futex wait and a wake-up (microseconds) for a section that
/// is done in a fraction of one; spinning first lets the waiter take the lock as soon as it is free, and the
/// futex wait after the spin keeps a preempted holder from burning the other core. Meets Lockable.
class adaptive_mutex {
public:
  adaptive_mutex() = default;
  adaptive_mutex(const adaptive_mutex&) = delete;
  adaptive_mutex& operator=(const adaptive_mutex&) = delete;

  void lock() noexcept {
    if (try_lock()) [[likely]]
      return;
    lock_contended();
  }

  /// Takes the lock only from `unlocked`: taking it over a `sleeping` state as `locked` would lose the sleeper's
  /// wake-up.
  bool try_lock() noexcept {
    std::uint32_t expected = unlocked;
    return state_.load(std::memory_order_relaxed) == unlocked
           && state_.compare_exchange_strong(expected, locked, std::memory_order_acquire, std::memory_order_relaxed);
  }

  void unlock() noexcept {
    // Only a holder that saw a sleeper (or may have) pays for the wake-up.
    if (state_.exchange(unlocked, std::memory_order_release) == sleeping)
      wake_one();
  }

private:
  enum : std::uint32_t { unlocked = 0, locked = 1, sleeping = 2 };
  static constexpr int spin_limit = 200;

  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
  }

  void lock_contended() noexcept {
    for (int spin = 0; spin < spin_limit; ++spin) {
      pause();
      if (try_lock())
        return;
    }
    // From here on the lock is taken as `sleeping`, so that whoever holds it wakes a waiter when it lets go
    // (Drepper's three-state futex mutex, "Futexes Are Tricky").
    while (state_.exchange(sleeping, std::memory_order_acquire) != unlocked)
      sleep_while_sleeping();
  }

  // The futex calls themselves: libstdc++ 12's atomic wait and notify add a shared waiter table in between.
  void sleep_while_sleeping() noexcept {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&state_), FUTEX_WAIT_PRIVATE, sleeping, nullptr, nullptr, 0);
#else
    state_.wait(sleeping, std::memory_order_relaxed);
#endif
  }

  void wake_one() noexcept {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&state_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
#else
    state_.notify_one();
#endif
  }

  std::atomic<std::uint32_t> state_{unlocked};
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "the futex word is the atomic itself");
};

} // namespace cqrs::detail
