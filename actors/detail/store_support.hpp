// Internal: pieces the event stores share: the checks of an append request, hashing a stream id (and maps keyed by
// shared streams), timestamps as stored (microseconds since the epoch), and the registry of head listeners.
#pragma once

#include "actors/detail/cost_counting.hpp"
#include "actors/event_store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace cqrs::detail {

/// Why a store refuses an append before it looks at its log (no stream, no events, a lease fence a store without
/// leases cannot check), or nothing.
inline std::optional<store_error> unusable_request(const append_request& request, bool keeps_leases) {
  auto invalid = [](std::string message) { return store_error{std::string{errc::invalid_request}, std::move(message)}; };
  if (!request.stream)
    return invalid("append without a stream");
  if (request.events.empty())
    return invalid("append without events");
  if (request.fence.epoch != 0 && !keeps_leases)
    return invalid("append under a partition lease (epoch " + std::to_string(request.fence.epoch)
                   + "), which only the PostgreSQL store keeps");
  return std::nullopt;
}

struct stream_id_hash {
  std::size_t operator()(const stream_id& stream) const noexcept {
    std::size_t seed = std::hash<std::string>{}(stream.type);
    return seed ^ (std::hash<std::string>{}(stream.id) + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
  }
};

/// Hashes and compares streams held by shared pointer by their ids, and finds them by a stream_id: map keys that
/// share a request's stream instead of copying its two strings.
struct shared_stream_hash {
  using is_transparent = void;
  std::size_t operator()(const stream_id& stream) const noexcept { return stream_id_hash{}(stream); }
  std::size_t operator()(const std::shared_ptr<const stream_id>& stream) const noexcept { return (*this)(*stream); }
};

struct shared_stream_equal {
  using is_transparent = void;
  static const stream_id& id_of(const stream_id& stream) noexcept { return stream; }
  static const stream_id& id_of(const std::shared_ptr<const stream_id>& stream) noexcept { return *stream; }
  template <class Left, class Right>
  bool operator()(const Left& left, const Right& right) const noexcept {
    return id_of(left) == id_of(right);
  }
};

template <class Value>
using shared_stream_map =
  std::unordered_map<std::shared_ptr<const stream_id>, Value, shared_stream_hash, shared_stream_equal>;

inline std::int64_t to_microseconds(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

inline std::chrono::system_clock::time_point from_microseconds(std::int64_t microseconds) {
  // The clock counts nanoseconds, ±292 years: a damaged timestamp (read past damage) may be any integer, and
  // converting it would overflow. It is clamped instead.
  constexpr auto limit = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::duration::max())
                           .count();
  microseconds = std::clamp<std::int64_t>(microseconds, -limit, limit);
  return std::chrono::system_clock::time_point{
    std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds{microseconds})};
}

/// The listeners of a store's head: subscribe and unsubscribe from any thread, notify after each commit.
class head_listeners {
public:
  std::uint64_t subscribe(head_listener listener) {
    std::unique_lock lock{mutex_};
    auto id = ++last_subscription_;
    listeners_.emplace(id, std::move(listener));
    return id;
  }

  void unsubscribe(std::uint64_t subscription) {
    std::unique_lock lock{mutex_};
    listeners_.erase(subscription);
  }

  /// Calls every listener with the new head, under a shared lock: listeners may run concurrently.
  void notify(log_position head) {
    costs::lock();
    std::shared_lock lock{mutex_};
    for (auto& [id, listener] : listeners_)
      listener(head);
  }

private:
  std::shared_mutex mutex_;
  std::unordered_map<std::uint64_t, head_listener> listeners_;
  std::uint64_t last_subscription_ = 0;
};

} // namespace cqrs::detail
