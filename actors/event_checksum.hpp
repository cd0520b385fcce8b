// The checksums a durable store keeps beside each event (over its envelope and its payload) and each snapshot, so
// that a changed byte in a stored event is found when it is read instead of being served, and a changed snapshot
// is passed over for a replay of its stream.
#pragma once

#include "actors/envelope.hpp"

#include <cstdint>
#include <string_view>

namespace cqrs {

/// An event's fields as a store holds them (the payload as its stored text).
struct stored_event_fields {
  log_position position = 0;
  std::string_view stream_type;
  std::string_view stream_id;
  stream_version version = 0;
  std::string_view type_name;
  /// Microseconds since the epoch, as stored.
  std::int64_t timestamp = 0;
  std::string_view command_id;
  std::string_view correlation_id;
  std::string_view payload;
};

/// XXH3 (64 bits) over every field, each string prefixed by its length so that bytes cannot move between fields
/// unnoticed. Stable across versions and machines: it is stored in files.
std::uint64_t event_checksum(const stored_event_fields& event) noexcept;

/// A snapshot's fields as a store holds them.
struct stored_snapshot_fields {
  std::string_view stream_type;
  std::string_view stream_id;
  stream_version version = 0;
  std::uint32_t format_version = 0;
  std::string_view state;
};

/// XXH3 (64 bits) over every field, as event_checksum; stable across versions and machines.
std::uint64_t snapshot_checksum(const stored_snapshot_fields& snapshot) noexcept;

} // namespace cqrs
