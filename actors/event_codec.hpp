// Converts an aggregate's events to and from JSON by their versioned type names (for durable stores and tools).
#pragma once

#include "actors/detail/flat_json.hpp"
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
    [](const std::any& payload) {
      const auto& event = *std::any_cast<Event>(&payload);
      if constexpr (flat_json_struct<Alternative>) {
        if (const auto* flat = std::get_if<Alternative>(&event))
          return encode_flat_json(*flat);
      }
      return boost::json::serialize(event_to_json(event));
    },
    [](std::string_view text) -> std::expected<std::any, std::string> {
      if constexpr (flat_json_struct<Alternative>) {
        Alternative decoded{};
        if (decode_flat_json(text, decoded))
          return std::any{Event{std::move(decoded)}};
      }
      // Parsed into a buffer on the stack (the heap only for payloads beyond it): recovery decodes every event.
      unsigned char buffer[4096];
      boost::json::monotonic_resource resource{buffer, sizeof buffer};
      boost::system::error_code error;
      auto json = boost::json::parse(text, error, &resource);
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

namespace cqrs::detail {

/// The engine's part of a snapshot's format version; the aggregate's own part is `Aggregate::snapshot_version`
/// (1 when it declares none). Bump the aggregate's when its state's JSON form changes: older snapshots are then
/// ignored and those aggregates recover by full replay.
inline constexpr std::uint32_t engine_snapshot_format = 1;

/// True when Boost.JSON converts the aggregate state both ways (BOOST_DESCRIBE_STRUCT or tag_invoke).
template <class Aggregate>
concept snapshot_convertible = boost::json::has_value_from<Aggregate>::value && boost::json::has_value_to<Aggregate>::value;

template <class Aggregate>
constexpr std::uint32_t snapshot_format_of() {
  if constexpr (requires { Aggregate::snapshot_version; })
    return engine_snapshot_format << 16 | static_cast<std::uint32_t>(Aggregate::snapshot_version);
  else
    return engine_snapshot_format << 16 | 1u;
}

template <class Aggregate>
void enable_snapshots(aggregate_model& model, std::uint64_t every) {
  model.snapshot_every = every;
  model.snapshot_format = snapshot_format_of<Aggregate>();
  // The engine's envelope around the aggregate's JSON: the position the state reflects travels with it.
  model.encode_state = [](const aggregate_instance& instance, log_position position) {
    boost::json::object text;
    text["position"] = position;
    text["state"] = boost::json::value_from(static_cast<const aggregate_instance_for<Aggregate>&>(instance).value());
    return boost::json::serialize(text);
  };
  model.decode_state = [](std::string_view text) -> std::expected<aggregate_model::decoded_state, std::string> {
    boost::system::error_code error;
    auto json = boost::json::parse(text, error);
    if (error)
      return std::unexpected("malformed snapshot JSON: " + error.message());
    const auto* object = json.if_object();
    const auto* position = object ? object->if_contains("position") : nullptr;
    const auto* state_json = object ? object->if_contains("state") : nullptr;
    if (!position || !state_json)
      return std::unexpected(std::string{"snapshot lacks its position or state"});
    auto at = position->to_number<log_position>(error);
    if (error)
      return std::unexpected("snapshot position is not a position: " + error.message());
    auto state = boost::json::try_value_to<Aggregate>(*state_json);
    if (!state)
      return std::unexpected("snapshot does not decode: " + state.error().message());
    return aggregate_model::decoded_state{std::make_unique<aggregate_instance_for<Aggregate>>(std::move(*state)),
                                          at};
  };
}

/// True when Boost.JSON converts every command type of the aggregate both ways, so that a cluster node can forward
/// its commands.
template <class Command>
struct commands_convertible : std::false_type {};
template <class... Alternatives>
struct commands_convertible<std::variant<Alternatives...>>
  : std::bool_constant<((boost::json::has_value_from<Alternatives>::value
                         && boost::json::has_value_to<Alternatives>::value) && ...)> {};

template <class Command, class Alternative>
bool decode_alternative(const aggregate_model::encoded_command& encoded, std::size_t index,
                        std::expected<Command, std::string>& result) {
  if (encoded.alternative != index)
    return false;
  boost::system::error_code error;
  auto json = boost::json::parse(encoded.json, error);
  if (error) {
    result = std::unexpected("malformed command JSON: " + error.message());
    return true;
  }
  auto decoded = boost::json::try_value_to<Alternative>(json);
  if (decoded)
    result = Command{std::move(*decoded)};
  else
    result = std::unexpected("the command does not decode: " + decoded.error().message());
  return true;
}

template <class Command, class... Alternatives, std::size_t... Indexes>
std::expected<Command, std::string> decode_command(const aggregate_model::encoded_command& encoded,
                                                   std::variant<Alternatives...>*, std::index_sequence<Indexes...>) {
  std::expected<Command, std::string> result =
    std::unexpected("no command type has index " + std::to_string(encoded.alternative));
  (void)(decode_alternative<Command, Alternatives>(encoded, Indexes, result) || ...);
  return result;
}

template <class Aggregate>
void enable_forwarding(aggregate_model& model) {
  using command = typename Aggregate::command;
  model.encode_command = [](const void* erased) {
    const auto& held = *static_cast<const command*>(erased);
    return aggregate_model::encoded_command{
      static_cast<std::uint32_t>(held.index()),
      std::visit([](const auto& alternative) { return boost::json::serialize(boost::json::value_from(alternative)); },
                 held)};
  };
  model.decode_command = [](const aggregate_model::encoded_command& encoded,
                            command_storage& into) -> std::expected<std::string, std::string> {
    auto decoded = decode_command<command>(encoded, static_cast<command*>(nullptr),
                                           std::make_index_sequence<std::variant_size_v<command>>{});
    if (!decoded)
      return std::unexpected(std::move(decoded.error()));
    const auto& stored = into.store(std::move(*decoded));
    return std::string{aggregate_id(stored)};
  };
}

} // namespace cqrs::detail
