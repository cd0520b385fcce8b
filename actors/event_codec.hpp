// Converts an aggregate's events to and from JSON by their versioned type names (for durable stores and tools).
#pragma once

#include "actors/detail/type_erasure.hpp"

#include <boost/json.hpp>

#include <expected>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cqrs {

/// The event's payload as JSON (its type name travels separately, as in the envelope).
/// Each event type converts through Boost.JSON: BOOST_DESCRIBE_STRUCT or its own tag_invoke.
template <class Event>
boost::json::value event_to_json(const Event& event) {
  return std::visit([](const auto& alternative) { return boost::json::value_from(alternative); }, event);
}

namespace detail {
template <class Event, class Alternative>
bool decode_if_named(std::string_view type_name, const boost::json::value& json,
                     std::expected<Event, std::string>& result) {
  if (Alternative::type_name != type_name)
    return false;
  auto decoded = boost::json::try_value_to<Alternative>(json);
  if (decoded)
    result = Event{std::move(*decoded)};
  else
    result = std::unexpected("cannot decode " + std::string{type_name} + ": " + decoded.error().message());
  return true;
}

template <class Event, class... Alternatives>
std::expected<Event, std::string> decode_event(std::string_view type_name, const boost::json::value& json,
                                               std::variant<Alternatives...>*) {
  std::expected<Event, std::string> result = std::unexpected("unknown event type " + std::string{type_name});
  (void)(decode_if_named<Event, Alternatives>(type_name, json, result) || ...);
  return result;
}
} // namespace detail

/// Rebuilds an event of the variant `Event` from its type name and JSON payload, or says why it cannot.
template <class Event>
std::expected<Event, std::string> event_from_json(std::string_view type_name, const boost::json::value& json) {
  return detail::decode_event<Event>(type_name, json, static_cast<Event*>(nullptr));
}

namespace detail {
template <class Event, class Alternative>
event_type_codec codec_for() {
  return event_type_codec{
    Alternative::type_name,
    [](const std::any& payload) { return boost::json::serialize(event_to_json(*std::any_cast<Event>(&payload))); },
    [](std::string_view text) -> std::expected<std::any, std::string> {
      boost::system::error_code error;
      auto json = boost::json::parse(text, error);
      if (error)
        return std::unexpected("malformed JSON payload of " + std::string{Alternative::type_name} + ": "
                               + error.message());
      auto decoded = event_from_json<Event>(Alternative::type_name, json);
      if (!decoded)
        return std::unexpected(std::move(decoded.error()));
      return std::any{std::move(*decoded)};
    }};
}

template <class Event, class... Alternatives>
std::vector<event_type_codec> codecs_for(std::variant<Alternatives...>*) {
  return {codec_for<Event, Alternatives>()...};
}
} // namespace detail

/// One codec per alternative of an aggregate's event variant, for event_store::add_event_types.
template <class Event>
std::vector<event_type_codec> event_codecs() {
  return detail::codecs_for<Event>(static_cast<Event*>(nullptr));
}

} // namespace cqrs
