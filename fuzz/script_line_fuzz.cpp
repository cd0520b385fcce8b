// Fuzz target: the script decoder (order_json::parse_line) on arbitrary bytes. Every line must come back as a
// command, a query or an error that says something, never a crash; and what parses must read back the same from
// the line written for it (so the decoder and the writer agree on every input the decoder takes).
#include "domain/order_json.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line{reinterpret_cast<const char*>(data), size};
  auto parsed = order_json::parse_line(line);
  if (!parsed) {
    if (parsed.error().empty())
      __builtin_trap(); // an error must say what is wrong
    return 0;
  }
  auto written = std::visit([](const auto& value) { return boost::json::serialize(order_json::to_json(value)); },
                            *parsed);
  auto again = order_json::parse_line(written);
  if (!again || !(*again == *parsed))
    __builtin_trap(); // the line written for a parsed value does not read back as that value
  return 0;
}
