// The write store's interface: append with an expected version, read a stream or the log, watch the head.
#pragma once

#include "actors/envelope.hpp"
#include "actors/errors.hpp"

#include <boost/container/small_vector.hpp>

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cqrs {

/// One event to append: its versioned type name (static storage) and the aggregate's event variant.
struct new_event {
  std::string_view type_name;
  std::any payload;
};

/// The events of one append. Most commands decide one or two events: those stay inline, so that carrying them
/// from decide() to the log costs no allocation of its own.
using new_events = boost::container::small_vector<new_event, 2>;

/// The partition lease an append is made under (cluster.hpp): the store appends it only while `epoch` is the
/// partition's current lease epoch and that lease has not expired, checked in the append's own transaction, so that
/// a node that lost a lease can never append to its partition. Epoch 0 means no lease (a single process). Only the
/// PostgreSQL store keeps leases; the others refuse a fenced append with errc::invalid_request.
struct lease_fence {
  std::uint32_t partition = 0;
  std::uint64_t epoch = 0;
};

/// A batch of events for one stream, appended atomically or not at all.
struct append_request {
  std::shared_ptr<const stream_id> stream;
  /// The stream version the events were decided on; the append is refused if the stream has moved on.
  stream_version expected_version = 0;
  std::string command_id;
  std::string correlation_id;
  new_events events;
  /// The sender chose the command id (a retry may re-send it): find_command must be able to find it.
  /// Stores record only these ids: engine-generated ones are unique and never looked up, so they cost no index.
  bool remember_command_id = false;
  lease_fence fence{};
};

/// Where an accepted append landed.
struct append_result {
  log_position first_position = 0;
  log_position last_position = 0;
  /// Version of the stream after the append.
  stream_version version = 0;
};

/// Why a store refused or failed a request: `errc::concurrency_conflict` (the stream's version is not the expected
/// one: another writer got there first), `errc::invalid_request` (no events, no stream, an event it cannot encode)
/// or `errc::store_failure` (it could not write or read); nothing was appended in each case.
struct store_error {
  std::string code;
  std::string message;
};

/// Called exactly once with the outcome of an append_async.
using append_callback = std::function<void(std::expected<append_result, store_error>)>;

/// Where the events of one command were appended: what a re-sent command with the same id is answered with.
struct recorded_command {
  stream_id stream;
  log_position first_position = 0;
  log_position last_position = 0;
  /// The stream's version after the command's last event.
  stream_version version = 0;
  std::size_t events = 0;
  std::chrono::system_clock::time_point timestamp;
};

/// An aggregate's state at one stream version, encoded by the engine (the store keeps the text as it is).
struct snapshot {
  stream_id stream;
  stream_version version = 0;
  /// The engine's and the aggregate's format, so that a state written by an older program is not misread.
  std::uint32_t format_version = 0;
  std::string state;
};

/// An event that a projection under the `skip` policy passed over, as a durable store keeps it.
struct dead_letter {
  std::string projection;
  /// The event (position and type) and what applying it raised.
  projection_failure failure;
  std::chrono::system_clock::time_point recorded;
};

/// Called with the new head position after events are appended. Runs on the appending thread: keep it short.
using head_listener = std::function<void(log_position head)>;

/// Receives events in order while the store reads; returning false stops the read early.
using event_visitor = std::function<bool(const envelope&)>;

/// How a durable store turns one event type's payloads into JSON text and back. The engine registers one per
/// event type of every aggregate it is given (see add_aggregate), so stores never see the host's C++ types.
struct event_type_codec {
  /// The event's versioned type name (static storage), as in the envelope.
  std::string_view type_name;
  /// The aggregate's event variant (in an any) as JSON text.
  std::function<std::string(const std::any& payload)> encode;
  /// JSON text back to the aggregate's event variant, or why it cannot be decoded.
  std::function<std::expected<std::any, std::string>(std::string_view json)> decode;
};

/// Thrown by a durable store's read_stream and read_all when its log cannot be read, a position or version is
/// missing, or an event fails its checksum, has no registered codec or does not decode. The read stops before
/// that event: visitors never see an event without its payload.
class event_read_error : public std::runtime_error {
public:
  event_read_error(std::string message, log_position position, std::string type_name)
      : std::runtime_error(std::move(message)), position_(position), type_name_(std::move(type_name)) {}

  /// Position of the event that could not be read (0 when the failure is not about one event).
  log_position position() const noexcept { return position_; }
  /// The stored type name of that event (empty when the failure is not about one event).
  const std::string& type_name() const noexcept { return type_name_; }

private:
  log_position position_;
  std::string type_name_;
};

/// The event log. Implementations are thread-safe: appends from many threads, reads concurrent with appends.
class event_store {
public:
  virtual ~event_store() = default;

  /// Appends all events of the request or none. Positions are gap-free and strictly increasing in commit order.
  virtual std::expected<append_result, store_error> append(append_request request) = 0;

  /// Visits the stream's events with version > after_version, in version order. Returns the stream's version.
  virtual stream_version read_stream(const stream_id& stream, stream_version after_version,
                                     const event_visitor& visit) const = 0;

  /// Visits the log's events with after_position < position <= up_to, in position order.
  virtual void read_all(log_position after_position, log_position up_to, const event_visitor& visit) const = 0;

  /// Position of the last committed event (0 for an empty log).
  virtual log_position head() const = 0;

  /// True when append_async returns before the append is committed (a durable store committing in the
  /// background). The engine then lets the appending actor's worker thread go on while the commit runs.
  virtual bool appends_in_background() const { return false; }

  /// Appends like append(); `done` runs exactly once with the outcome, on any thread (possibly before
  /// append_async returns). The default appends synchronously.
  virtual void append_async(append_request request, append_callback done) { done(append(std::move(request))); }

  /// Where the command with this id was appended, if its events are in the log (for the in-memory store: only
  /// commands appended with remember_command_id). Commands that appended no events are never found.
  virtual std::optional<recorded_command> find_command(const std::string& command_id) const {
    (void)command_id;
    return std::nullopt;
  }

  /// Keeps the stream's latest snapshot (replacing an older one). Snapshots are a cache: a store may write them
  /// lazily, and one that is lost only makes the next recovery replay more events. The default keeps none.
  virtual void save_snapshot(snapshot taken) { (void)taken; }
  /// The stream's latest snapshot, if the store has one.
  virtual std::optional<snapshot> load_snapshot(const stream_id& stream) const {
    (void)stream;
    return std::nullopt;
  }

  /// Keeps a dead letter where an operator can find it after the process is gone (one per projection and
  /// position: a rebuild that skips the event again updates it). Like snapshots, it may be written lazily, with
  /// the next appends; the engine's status() shows the dead letters of the running process either way. The
  /// default keeps none.
  virtual void record_dead_letter(dead_letter letter) { (void)letter; }

  /// Why the store can no longer append (it failed to commit and no longer knows what the log holds), or
  /// nothing while it can.
  virtual std::optional<std::string> failure() const { return std::nullopt; }

  /// Why appends are waiting although the store can still append (a store retrying a lost connection to its
  /// server: the waiting appends are committed once it is back), or nothing while they are not.
  virtual std::optional<std::string> degraded() const { return std::nullopt; }

  /// Learns how to encode and decode event types. The in-memory store keeps payloads as objects and ignores it;
  /// a durable store needs a codec for every type it writes or reads back.
  virtual void add_event_types(std::vector<event_type_codec> codecs) { (void)codecs; }

  /// Registers a listener for new heads; returns an id for unsubscribe().
  virtual std::uint64_t subscribe(head_listener listener) = 0;
  virtual void unsubscribe(std::uint64_t subscription) = 0;
};

/// The default store: an in-memory log, fast and thread-safe, gone when the process ends.
std::shared_ptr<event_store> make_memory_event_store();

} // namespace cqrs
