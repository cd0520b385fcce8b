// Internal: the event type codecs of a durable store: registering them, encoding an append's payloads on the
// appender's thread, and decoding a stored payload back into an envelope (with the error a read stops at).
#pragma once

#include "actors/event_store.hpp"

#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cqrs::detail {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
};

using codec_map = std::unordered_map<std::string, event_type_codec, string_hash, std::equal_to<>>;

/// The codecs a store was given, thread-safe: readers take a snapshot that later registrations do not change.
class codec_registry {
public:
  /// Adds codecs; the first codec of a name stays, so that readers decoding with it keep seeing the same types.
  void add(std::vector<event_type_codec> codecs);
  std::shared_ptr<const codec_map> snapshot() const;
  /// The events' payloads as JSON text, or errc::invalid_request naming the event that has no codec or no payload
  /// or whose codec threw.
  std::expected<std::vector<std::string>, store_error> encode(const new_events& events) const;

private:
  mutable std::shared_mutex mutex_;
  std::shared_ptr<const codec_map> codecs_ = std::make_shared<codec_map>();
};

/// The codecs a read decodes with, remembering the last type found: logs mostly repeat a few types.
class codec_cursor {
public:
  explicit codec_cursor(std::shared_ptr<const codec_map> codecs) : codecs_(std::move(codecs)) {}

  const event_type_codec* find(std::string_view type) {
    if (last_ && type == last_type_)
      return last_;
    auto found = codecs_->find(type);
    if (found == codecs_->end())
      return nullptr;
    last_type_ = found->first; // the snapshot, and with it this key, lives as long as the cursor
    last_ = &found->second;
    return last_;
  }

private:
  std::shared_ptr<const codec_map> codecs_;
  std::string_view last_type_;
  const event_type_codec* last_ = nullptr;
};

/// "event 12 (account/a-1 v3)", for read errors.
std::string describe(const envelope& event);

/// Sets the envelope's payload and type name (its position, stream and version already set) from a stored type
/// name and JSON payload; throws event_read_error when the type has no codec or the payload does not decode.
void decode_payload(envelope& event, codec_cursor& codecs, std::string_view type, std::string_view payload);

} // namespace cqrs::detail
