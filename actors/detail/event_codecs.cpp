// The durable stores' codec registry and payload decoding (see event_codecs.hpp).
#include "actors/detail/event_codecs.hpp"

#include <exception>
#include <mutex>

namespace cqrs::detail {

void codec_registry::add(std::vector<event_type_codec> codecs) {
  std::unique_lock lock{mutex_};
  auto updated = std::make_shared<codec_map>(*codecs_);
  for (auto& codec : codecs)
    updated->try_emplace(std::string{codec.type_name}, std::move(codec));
  codecs_ = std::move(updated);
}

std::shared_ptr<const codec_map> codec_registry::snapshot() const {
  std::shared_lock lock{mutex_};
  return codecs_;
}

std::expected<std::vector<std::string>, store_error> codec_registry::encode(const new_events& events) const {
  auto codecs = snapshot();
  std::vector<std::string> payloads;
  payloads.reserve(events.size());
  for (const auto& event : events) {
    auto found = codecs->find(event.type_name);
    if (found == codecs->end())
      return std::unexpected(store_error{
        std::string{errc::invalid_request},
        "no codec for event type \"" + std::string{event.type_name}
          + "\": register the aggregate's event types (add_event_types) before appending; nothing was appended"});
    if (!event.payload.has_value())
      return std::unexpected(store_error{std::string{errc::invalid_request},
                                         "event of type \"" + std::string{event.type_name} + "\" has no payload"});
    try {
      payloads.push_back(found->second.encode(event.payload));
    } catch (const std::exception& error) {
      return std::unexpected(store_error{std::string{errc::invalid_request}, "cannot encode an event of type \""
                                                                               + std::string{event.type_name}
                                                                               + "\": " + error.what()});
    }
  }
  return payloads;
}

std::string describe(const envelope& event) {
  return "event " + std::to_string(event.position) + " (" + event.stream->to_string() + " v"
         + std::to_string(event.version) + ")";
}

void decode_payload(envelope& event, codec_cursor& codecs, std::string_view type, std::string_view payload) {
  const auto* codec = codecs.find(type);
  if (!codec)
    throw event_read_error(describe(event) + " has type \"" + std::string{type}
                             + "\", which has no registered codec (add_event_types / add_aggregate); the read "
                               "stops before it",
                           event.position, std::string{type});
  std::expected<std::any, std::string> decoded;
  try {
    decoded = codec->decode(payload);
  } catch (const std::exception& error) {
    decoded = std::unexpected(std::string{"decode threw: "} + error.what());
  }
  if (!decoded)
    throw event_read_error(describe(event) + " of type \"" + std::string{type} + "\" does not decode ("
                             + decoded.error() + "); the read stops before it",
                           event.position, std::string{type});
  event.type_name = codec->type_name; // the codec's static storage, never the row's
  event.payload = std::move(*decoded);
}

} // namespace cqrs::detail
