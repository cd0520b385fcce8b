// Internal: a durable store's shared cache of decoded events, so that readers walking the log together (the
// engine's projections rebuilding at start) decode each event once, and the chunk at the head that the writer
// fills with the events it commits, as they were appended, which readers follow without reading the log.
#pragma once

#include "actors/event_store.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace cqrs::detail {

/// Chunk k holds the positions k * chunk_events + 1 to (k + 1) * chunk_events (the engine's projections read in
/// batches of the same size).
inline constexpr log_position chunk_events = 1024;

/// The events of one chunk, decoded once (or kept by the writer as they were appended) and then shared read-only
/// by every reader. The writer fills the chunk at the log's head event by event while readers read it: the
/// first `filled` events are set and never change.
struct decoded_chunk {
  std::unique_ptr<envelope[]> events = std::make_unique<envelope[]>(chunk_events);
  std::atomic<std::size_t> filled{0};
  /// Their payloads' JSON text, which bounds the cache.
  std::size_t bytes = 0;
};

/// The cache. Committed events never change, so it needs no invalidation. When it is full (256 chunks or 64 MB of
/// payload text), the chunk that leaves is the lowest one that as many readers walked through as through any chunk
/// so far (the slowest walker is past it), or else the one furthest along the log (the one needed last): readers
/// walk the log at different paces (the engine's scheduler may run two projections to the head before it starts
/// the other two). A reader that finds its chunk being decoded by another decodes one of the next four meanwhile,
/// so that readers walking together decode on every core.
class chunk_cache {
public:
  /// Reads and decodes complete chunk `index` from the log; nullptr when it is not all there or does not decode
  /// (the store's direct read then meets the failure at its event).
  using decode_function = std::function<std::shared_ptr<const decoded_chunk>(log_position index)>;

  explicit chunk_cache(decode_function decode) : decode_(std::move(decode)) {}

  /// Visits the events after `after` up to `up_to` that the cache holds or can decode (complete chunks, up to
  /// `head`, the store's committed head as it moves) and the writer's chunk at the head, in position order. Returns the last
  /// position visited (`after` when none); `stopped` tells whether the visitor said stop. The store reads the rest
  /// directly from its log.
  log_position read(log_position after, log_position up_to, const std::atomic<log_position>& head,
                    const event_visitor& visit, bool& stopped) const;

  /// Called by the writer with each event it committed, in position order (as appended: payload objects, not
  /// decoded JSON). The chunk at the head starts at the first chunk boundary the writer reaches; a position the
  /// writer did not commit (another process's) ends it until the next boundary.
  void keep(envelope event, std::size_t payload_bytes);

  /// Chunks decoded from the log into the cache, and chunk reads the cache served.
  std::uint64_t decoded() const { return decoded_.load(std::memory_order_relaxed); }
  std::uint64_t reused() const { return reused_.load(std::memory_order_relaxed); }

private:
  struct cached_chunk {
    std::shared_ptr<const decoded_chunk> ready;
    /// Reads that entered the chunk at its first position: readers walking the log through it.
    std::uint64_t walkers = 0;
  };

  std::shared_ptr<const decoded_chunk> shared_chunk(log_position index, bool from_start,
                                                    const std::atomic<log_position>& head) const;
  std::shared_ptr<const decoded_chunk> load_chunk(log_position index, bool walker,
                                                  std::unique_lock<std::mutex>& lock) const;
  void trim(log_position kept) const;
  std::shared_ptr<const decoded_chunk> head_chunk(log_position index) const;
  void publish(log_position index, std::shared_ptr<const decoded_chunk> chunk) const;
  void evict(std::unordered_map<log_position, cached_chunk>::iterator chunk) const;

  decode_function decode_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  mutable std::unordered_map<log_position, cached_chunk> chunks_;
  mutable std::uint64_t max_walkers_ = 0;
  mutable std::size_t ready_chunks_ = 0;
  mutable std::size_t cached_bytes_ = 0;
  /// The chunk the writer fills at the head (the writer's own pointer, and the one readers take under the lock).
  std::shared_ptr<decoded_chunk> writing_;
  log_position writing_index_ = 0;
  mutable std::shared_ptr<const decoded_chunk> head_;
  mutable log_position head_index_ = 0;
  mutable std::atomic<std::uint64_t> decoded_{0};
  mutable std::atomic<std::uint64_t> reused_{0};
};

} // namespace cqrs::detail
