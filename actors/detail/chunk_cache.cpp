// The durable stores' decoded-chunk cache (see chunk_cache.hpp).
#include "actors/detail/chunk_cache.hpp"

namespace cqrs::detail {
namespace {

/// Decoded chunks kept, and the most payload text (bytes) behind them.
constexpr std::size_t max_cached_chunks = 256;
constexpr std::size_t max_cached_bytes = std::size_t{64} << 20;
/// A reader waiting for a chunk that another reader decodes meanwhile decodes one of the next ones this far on.
constexpr log_position read_ahead_chunks = 4;

} // namespace

log_position chunk_cache::read(log_position after, log_position up_to, const std::atomic<log_position>& head,
                               const event_visitor& visit, bool& stopped) const {
  stopped = false;
  auto next = after;
  while (next < up_to) {
    auto index = next / chunk_events;
    bool complete = (index + 1) * chunk_events <= head.load(std::memory_order_acquire);
    auto chunk = complete ? shared_chunk(index, next == index * chunk_events, head) : head_chunk(index);
    if (!chunk)
      break; // not kept, or it does not decode: the direct read stops at the failing event
    auto filled = chunk->filled.load(std::memory_order_acquire);
    auto offset = next - index * chunk_events;
    if (offset >= filled)
      break;
    for (; offset < filled; ++offset) {
      const auto& event = chunk->events[offset];
      if (event.position > up_to)
        return next;
      if (!visit(event)) {
        stopped = true;
        return next;
      }
      next = event.position;
    }
    if (filled < chunk_events)
      break;
  }
  return next;
}

void chunk_cache::keep(envelope event, std::size_t payload_bytes) {
  auto index = (event.position - 1) / chunk_events;
  auto offset = (event.position - 1) % chunk_events;
  if (!writing_ || writing_index_ != index || offset != writing_->filled.load(std::memory_order_relaxed)) {
    writing_.reset();
    if (offset != 0)
      return; // wait for the next chunk boundary
    writing_ = std::make_shared<decoded_chunk>();
    writing_index_ = index;
    std::lock_guard lock{mutex_};
    head_ = writing_;
    head_index_ = index;
  }
  writing_->events[offset] = std::move(event);
  writing_->bytes += payload_bytes;
  writing_->filled.store(offset + 1, std::memory_order_release);
  if (offset + 1 == chunk_events) {
    std::lock_guard lock{mutex_};
    publish(index, writing_);
    head_.reset();
    writing_.reset();
  }
}

std::shared_ptr<const decoded_chunk> chunk_cache::shared_chunk(log_position index, bool from_start,
                                                               const std::atomic<log_position>& head) const {
  std::unique_lock lock{mutex_};
  bool waited = false;
  while (true) {
    auto found = chunks_.find(index);
    if (found == chunks_.end()) {
      if (waited)
        return nullptr; // the reader that decoded it failed
      return load_chunk(index, from_start, lock);
    }
    if (found->second.ready) {
      reused_.fetch_add(1, std::memory_order_relaxed);
      if (from_start)
        max_walkers_ = std::max(max_walkers_, ++found->second.walkers);
      return found->second.ready;
    }
    // Being decoded by another reader.
    auto committed_chunks = head.load(std::memory_order_acquire) / chunk_events;
    bool helped = false;
    for (auto ahead = index + 1; ahead <= index + read_ahead_chunks && ahead < committed_chunks; ++ahead) {
      if (!chunks_.contains(ahead)) {
        load_chunk(ahead, false, lock);
        helped = true;
        break;
      }
    }
    if (!helped) {
      changed_.wait(lock);
      waited = true;
    }
  }
}

std::shared_ptr<const decoded_chunk> chunk_cache::load_chunk(log_position index, bool walker,
                                                             std::unique_lock<std::mutex>& lock) const {
  chunks_.emplace(index, cached_chunk{});
  lock.unlock();
  std::shared_ptr<const decoded_chunk> decoded;
  try {
    decoded = decode_(index);
  } catch (...) {
    // Only the direct read reports read errors, at the event they concern.
  }
  lock.lock();
  if (!decoded) {
    chunks_.erase(index);
  } else {
    decoded_.fetch_add(1, std::memory_order_relaxed);
    auto& entry = chunks_.at(index);
    entry.ready = decoded;
    if (walker)
      max_walkers_ = std::max(max_walkers_, ++entry.walkers);
    cached_bytes_ += decoded->bytes;
    ++ready_chunks_;
    trim(index);
  }
  changed_.notify_all();
  return decoded;
}

void chunk_cache::trim(log_position kept) const {
  while (ready_chunks_ > max_cached_chunks || (cached_bytes_ > max_cached_bytes && ready_chunks_ > 1)) {
    auto walked = chunks_.end();   // the lowest chunk every walker is past
    auto furthest = chunks_.end(); // otherwise the highest chunk
    for (auto candidate = chunks_.begin(); candidate != chunks_.end(); ++candidate) {
      if (!candidate->second.ready || candidate->first == kept)
        continue;
      if (candidate->second.walkers >= max_walkers_) {
        if (walked == chunks_.end() || candidate->first < walked->first)
          walked = candidate;
      } else if (furthest == chunks_.end() || candidate->first > furthest->first) {
        furthest = candidate;
      }
    }
    auto victim = walked != chunks_.end() ? walked : furthest;
    if (victim == chunks_.end())
      break;
    evict(victim);
  }
}

std::shared_ptr<const decoded_chunk> chunk_cache::head_chunk(log_position index) const {
  std::lock_guard lock{mutex_};
  if (head_ && head_index_ == index)
    return head_;
  return nullptr;
}

void chunk_cache::publish(log_position index, std::shared_ptr<const decoded_chunk> chunk) const {
  auto [entry, inserted] = chunks_.try_emplace(index);
  if (!inserted)
    return; // a reader decoded it from the log meanwhile, or is decoding it
  entry->second.ready = std::move(chunk);
  cached_bytes_ += entry->second.ready->bytes;
  ++ready_chunks_;
  trim(index);
}

void chunk_cache::evict(std::unordered_map<log_position, cached_chunk>::iterator chunk) const {
  cached_bytes_ -= chunk->second.ready->bytes;
  --ready_chunks_;
  chunks_.erase(chunk);
}

} // namespace cqrs::detail
