// Fuzz target, differential: the event codecs of the order domain on arbitrary payloads. The first byte picks the
// event type, the rest is its JSON payload. The direct decoder (a parser callback filling the struct) must agree
// with Boost.JSON's parse + value_to on every input, success or failure, and the direct encoder with serialize.
#include "actors/detail/flat_json.hpp"
#include "domain/orders.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

namespace {

template <class Event>
void check_codecs(std::string_view payload) {
  if constexpr (cqrs::detail::flat_json_struct<Event>) {
    Event direct{};
    bool direct_decoded = cqrs::detail::decode_flat_json(payload, direct);
    boost::system::error_code error;
    auto document = boost::json::parse(payload, error);
    std::optional<Event> reference;
    if (!error)
      if (auto converted = boost::json::try_value_to<Event>(document))
        reference = std::move(*converted);
    // The direct decoder may give up on a document it does not know to decode exactly as value_to (the engine then
    // decodes through the document); it must never take one that value_to refuses, nor decode it differently.
    if (direct_decoded && (!reference || !(direct == *reference)))
      __builtin_trap();
    if (reference && cqrs::detail::encode_flat_json(*reference) != boost::json::serialize(boost::json::value_from(*reference)))
      __builtin_trap();
  }
}

template <class... Events>
void check_one_of(std::variant<Events...>*, std::size_t choice, std::string_view payload) {
  std::size_t index = 0;
  ((index++ == choice % sizeof...(Events) ? check_codecs<Events>(payload) : void()), ...);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  std::string_view payload{reinterpret_cast<const char*>(data) + 1, size - 1};
  check_one_of(static_cast<orders::event*>(nullptr), data[0], payload);
  return 0;
}
