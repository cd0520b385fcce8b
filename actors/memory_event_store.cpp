// The in-memory event store: one log in a deque (stable addresses) plus a per-stream index of positions, the
// positions of remembered command ids, and the latest snapshot of each stream.
#include "actors/detail/adaptive_mutex.hpp"
#include "actors/detail/cost_counting.hpp"
#include "actors/detail/store_support.hpp"

#include <array>
#include <atomic>
#include <new>
#include <mutex>
#include <unordered_map>

namespace cqrs {
namespace {

class memory_event_store final : public event_store {
public:
  memory_event_store() : segments_(new std::atomic<envelope*>[segment_count]()) {}
  ~memory_event_store() override {
    for (log_position position = 1; position <= size_; ++position)
      at(position).~envelope();
    for (std::size_t segment = 0; segment * segment_size < size_; ++segment)
      ::operator delete(segments_[segment].load(std::memory_order_relaxed));
  }
  memory_event_store(const memory_event_store&) = delete;
  memory_event_store& operator=(const memory_event_store&) = delete;

  std::expected<append_result, store_error> append(append_request request) override {
    if (auto unusable = detail::unusable_request(request, false))
      return std::unexpected(std::move(*unusable));
    append_result result;
    auto now = std::chrono::system_clock::now();
    {
      detail::costs::lock();
      std::lock_guard lock{mutex_};
      hashed_stream wanted{*request.stream};
      auto& streams = streams_[wanted.shard()];
      auto known = streams.find(wanted);
      if (known == streams.end()) {
        // Keyed by the request's shared stream (no copy of its ids); room for a typical stream's first events.
        known = streams.emplace(stream_key{wanted.hash, request.stream}, std::vector<log_position>{}).first;
        known->second.reserve(initial_stream_capacity);
      }
      auto& positions = known->second;
      if (positions.size() != request.expected_version)
        return std::unexpected(store_error{
          std::string{errc::concurrency_conflict},
          "stream " + request.stream->to_string() + " is at version " + std::to_string(positions.size())
            + ", expected " + std::to_string(request.expected_version)});
      if (size_ + request.events.size() > segment_count * segment_size)
        return std::unexpected(store_error{std::string{errc::store_failure}, "the in-memory log is full"});
      result.first_position = size_ + 1;
      for (auto& event : request.events) {
        auto& stored = emplace_next();
        stored.stream = request.stream;
        stored.position = size_;
        positions.push_back(stored.position);
        stored.version = positions.size();
        stored.type_name = event.type_name;
        stored.timestamp = now;
        stored.command_id = request.command_id;
        stored.correlation_id = request.correlation_id;
        stored.payload = std::move(event.payload);
      }
      result.last_position = size_;
      result.version = positions.size();
      // Only commands whose sender chose the id are indexed: ordinary appends stay free of index work.
      if (request.remember_command_id && !request.command_id.empty())
        commands_.try_emplace(std::move(request.command_id), result.first_position, result.last_position);
      head_.store(result.last_position, std::memory_order_release);
    }
    listeners_.notify(result.last_position);
    return result;
  }

  stream_version read_stream(const stream_id& stream, stream_version after_version,
                             const event_visitor& visit) const override {
    std::vector<const envelope*> events;
    stream_version version = 0;
    {
      detail::costs::lock();
      std::lock_guard lock{mutex_};
      hashed_stream wanted{stream};
      const auto& streams = streams_[wanted.shard()];
      auto found = streams.find(wanted);
      if (found == streams.end())
        return 0;
      const auto& positions = found->second;
      version = positions.size();
      for (auto index = after_version; index < positions.size(); ++index)
        events.push_back(&at(positions[index]));
    }
    // Envelopes never move or change once appended, so they are read without the lock.
    for (const auto* event : events)
      if (!visit(*event))
        break;
    return version;
  }

  void read_all(log_position after_position, log_position up_to, const event_visitor& visit) const override {
    // No lock: envelopes up to the published head are complete and never move or change.
    auto last = std::min(up_to, head_.load(std::memory_order_acquire));
    for (auto position = after_position + 1; position <= last; ++position)
      if (!visit(at(position)))
        return;
  }

  log_position head() const override { return head_.load(std::memory_order_acquire); }

  std::optional<recorded_command> find_command(const std::string& command_id) const override {
    detail::costs::lock();
    std::lock_guard lock{mutex_};
    auto found = commands_.find(command_id);
    if (found == commands_.end())
      return std::nullopt;
    auto [first, last] = found->second;
    const auto& first_event = at(first);
    return recorded_command{*first_event.stream, first,          last, at(last).version,
                            last - first + 1,    first_event.timestamp};
  }

  void save_snapshot(snapshot taken) override {
    std::lock_guard lock{snapshots_mutex_};
    auto found = snapshots_.find(taken.stream);
    if (found == snapshots_.end())
      snapshots_.emplace(taken.stream, std::move(taken));
    else if (taken.version >= found->second.version)
      found->second = std::move(taken);
  }

  std::optional<snapshot> load_snapshot(const stream_id& stream) const override {
    std::lock_guard lock{snapshots_mutex_};
    auto found = snapshots_.find(stream);
    if (found == snapshots_.end())
      return std::nullopt;
    return found->second;
  }

  std::uint64_t subscribe(head_listener listener) override { return listeners_.subscribe(std::move(listener)); }
  void unsubscribe(std::uint64_t subscription) override { listeners_.unsubscribe(subscription); }

private:

  static constexpr std::size_t segment_bits = 16;
  static constexpr std::size_t segment_size = std::size_t{1} << segment_bits;
  /// Up to 2^32 events; a segment's memory is reserved when the log reaches it, pages are touched as it fills.
  static constexpr std::size_t segment_count = std::size_t{1} << 16;

  /// The envelope at a position (1-based) that is already in the log.
  const envelope& at(log_position position) const {
    auto index = position - 1;
    return segments_[index >> segment_bits].load(std::memory_order_relaxed)[index & (segment_size - 1)];
  }
  envelope& at(log_position position) {
    return const_cast<envelope&>(static_cast<const memory_event_store&>(*this).at(position));
  }
  /// Constructs the next envelope in place; called with `mutex_` held exclusively, published by `head_`.
  envelope& emplace_next() {
    auto index = size_;
    if ((index & (segment_size - 1)) == 0)
      segments_[index >> segment_bits].store(static_cast<envelope*>(::operator new(segment_size * sizeof(envelope))),
                                             std::memory_order_relaxed);
    ++size_;
    return *new (&at(size_)) envelope{};
  }

  /// Appends and stream reads are short and exclusive: no reader/writer lock, whose waits all sleep.
  mutable detail::adaptive_mutex mutex_;
  std::unique_ptr<std::atomic<envelope*>[]> segments_;
  /// Events in the log, published or being appended (the writer's view, under `mutex_`).
  log_position size_ = 0;
  static constexpr std::size_t initial_stream_capacity = 8;
  /// Positions of each stream's events, in shards by the stream's hash. A table grows by rehashing every entry at
  /// once, under the log's lock: one table of all streams held every append for milliseconds each time it doubled
  /// past ten thousand streams (seen as the open loop's p99), a shard's table for a sixty-fourth of that.
  /// The stream's hash is computed once per lookup: it picks the shard and is the shard's table's hash.
  static constexpr std::size_t stream_shard_count = 64;
  struct hashed_stream {
    explicit hashed_stream(const stream_id& wanted) : stream(wanted), hash(detail::stream_id_hash{}(wanted)) {}
    const stream_id& stream;
    std::size_t hash;
    // The top bits, so that the table's own buckets (the hash modulo a prime) still spread well.
    std::size_t shard() const noexcept { return (hash >> 58) % stream_shard_count; }
  };
  struct stream_key {
    std::size_t hash;
    std::shared_ptr<const stream_id> stream;
  };
  struct stream_key_hash {
    using is_transparent = void;
    std::size_t operator()(const stream_key& key) const noexcept { return key.hash; }
    std::size_t operator()(const hashed_stream& wanted) const noexcept { return wanted.hash; }
  };
  struct stream_key_equal {
    using is_transparent = void;
    static const stream_id& id_of(const stream_key& key) noexcept { return *key.stream; }
    static const stream_id& id_of(const hashed_stream& wanted) noexcept { return wanted.stream; }
    template <class Left, class Right>
    bool operator()(const Left& left, const Right& right) const noexcept {
      return left.hash == right.hash && id_of(left) == id_of(right);
    }
  };
  using stream_shard = std::unordered_map<stream_key, std::vector<log_position>, stream_key_hash, stream_key_equal>;
  std::array<stream_shard, stream_shard_count> streams_;
  /// Command id -> first and last position of its events, for appends with remember_command_id only.
  std::unordered_map<std::string, std::pair<log_position, log_position>> commands_;
  std::atomic<log_position> head_{0};

  mutable std::mutex snapshots_mutex_;
  std::unordered_map<stream_id, snapshot, detail::stream_id_hash> snapshots_;

  detail::head_listeners listeners_;
};

} // namespace

std::shared_ptr<event_store> make_memory_event_store() {
  return std::make_shared<memory_event_store>();
}

} // namespace cqrs
