// Internal: the counting points behind cqrs::diagnostics, inlined into the engine's command and query paths.
#pragma once

#include "actors/diagnostics.hpp"

#include <atomic>
#include <cstdint>

namespace cqrs::detail::costs {

extern std::atomic<bool> counting;
extern std::atomic<std::uint64_t> messages;
extern std::atomic<std::uint64_t> locks;
extern std::atomic<std::uint64_t> atomic_updates;

inline void add(std::atomic<std::uint64_t>& counter, std::uint64_t count = 1) {
  if (counting.load(std::memory_order_relaxed)) [[unlikely]]
    counter.fetch_add(count, std::memory_order_relaxed);
}

inline void message() { add(messages); }
inline void lock() { add(locks); }
inline void atomic_update(std::uint64_t count = 1) { add(atomic_updates, count); }

/// A try_lock counted as a lock taken (whether or not it succeeds).
template <class Mutex>
bool try_lock(Mutex& mutex) {
  lock();
  return mutex.try_lock();
}

} // namespace cqrs::detail::costs
