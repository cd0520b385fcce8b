// The envelope the engine wraps around every stored event: stream, version, position, ids, time, payload.
#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cqrs {

/// Position of an event in the global log: 1 for the first event, gap-free, strictly increasing in commit order.
/// 0 means "before the first event".
using log_position = std::uint64_t;

/// Version of an aggregate's stream: the number of events in it (0 for a stream that does not exist yet).
using stream_version = std::uint64_t;

/// Identifies an aggregate's stream: its aggregate type name and its id.
struct stream_id {
  std::string type;
  std::string id;

  bool operator==(const stream_id&) const = default;
  /// "type/id", for logs and error messages.
  std::string to_string() const { return type + "/" + id; }
};

/// One event as the log holds it. The user's event (the aggregate's event variant) is in `payload`;
/// everything else is engine plumbing that never appears in user event structs.
struct envelope {
  /// Shared by all events of one stream, so the ids are not copied per event.
  std::shared_ptr<const stream_id> stream;
  /// Version of the stream after this event (1 for the stream's first event).
  stream_version version = 0;
  log_position position = 0;
  /// The event's stable, versioned type name, e.g. "AccountOpened.v1". Points to static storage.
  std::string_view type_name;
  std::chrono::system_clock::time_point timestamp;
  /// Id of the command that caused this event (its causation id).
  std::string command_id;
  /// Id of the conversation the command belongs to: given by the sender, or the command id when none was given.
  std::string correlation_id;
  /// The aggregate's event variant (for instance `bank::event`).
  std::any payload;

  const std::string& aggregate_id() const { return stream->id; }
  const std::string& aggregate_type() const { return stream->type; }
  const std::string& causation_id() const { return command_id; }

  /// The user event, or nullptr when the payload is of another aggregate type.
  template <class Event>
  const Event* event_as() const noexcept {
    return std::any_cast<Event>(&payload);
  }
};

/// Lists the aggregate event variants a projection consumes: `using subscribes_to = cqrs::events_of<bank::event>;`
template <class... Events>
struct events_of {};

} // namespace cqrs
