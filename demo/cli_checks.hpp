// Option checks the programs share: number ranges that refuse NaN and signs that would wrap, and file names
// that refuse the empty string.
#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <concepts>
#include <limits>
#include <string>
#include <system_error>

namespace demo {

namespace detail {

template <class Number>
std::string describe_number(Number value) {
  if constexpr (std::floating_point<Number>) {
    auto text = std::to_string(value);
    // to_string writes six decimals: drop the zeros after the point, and the point if nothing is left after it.
    text.erase(text.find_last_not_of('0') + 1);
    if (!text.empty() && text.back() == '.')
      text.pop_back();
    return text;
  } else {
    return std::to_string(value);
  }
}

} // namespace detail

/// A number from `lowest` to `highest`. Unlike CLI::Range it refuses NaN (which no comparison catches) and
/// infinities, and for an unsigned option a minus sign (which CLI11 would wrap: --seed -1 became 2^64 - 1).
template <class Number>
CLI::Validator within(Number lowest, Number highest) {
  auto check = [lowest, highest](std::string& text) -> std::string {
    auto range = "a number from " + detail::describe_number(lowest) + " to " + detail::describe_number(highest);
    Number value{};
    if constexpr (std::floating_point<Number>) {
      std::size_t used = 0;
      try {
        value = static_cast<Number>(std::stod(text, &used));
      } catch (const std::exception&) {
        return "expected " + range + ", got \"" + text + "\"";
      }
      if (used != text.size() || !std::isfinite(value))
        return "expected " + range + ", got \"" + text + "\"";
    } else {
      if constexpr (std::unsigned_integral<Number>)
        if (text.find('-') != std::string::npos)
          return "expected " + range + ", got the negative \"" + text + "\"";
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (error != std::errc{} || end != text.data() + text.size())
        return "expected " + range + ", got \"" + text + "\"";
    }
    if (value < lowest || value > highest)
      return "expected " + range + ", got " + text;
    return {};
  };
  return CLI::Validator(check, "", "within");
}

/// Any value of an unsigned option, but not a negative one.
template <std::unsigned_integral Number>
CLI::Validator not_negative() {
  return within(Number{0}, std::numeric_limits<Number>::max());
}

/// A file name: the empty string is refused rather than taken as "not given".
inline CLI::Validator file_name() {
  return CLI::Validator(
    [](std::string& text) -> std::string { return text.empty() ? "expected a file name, got an empty one" : ""; },
    "", "file name");
}

} // namespace demo
