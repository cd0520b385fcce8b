// Internal: decodes a flat JSON object straight into a described struct, without a JSON document in between.
#pragma once

#include <boost/describe.hpp>
#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <boost/mp11/algorithm.hpp>

#include <array>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace cqrs::detail {

// Recovery decodes every event of the log, and most events are small flat structs: parsing them into a
// boost::json::value and converting that with value_to costs about three times the parse alone. This decoder
// fills the struct from the parser's callbacks instead. It only takes documents whose outcome it knows to be the
// one value_to gives; on anything else (a nested value, a missing, unknown, repeated or mistyped member, a number
// that does not fit, malformed text) it gives up and the caller decodes through the document as before, which also writes
// the error message. So it changes speed, never results. The parser itself is compiled once, in flat_json.cpp:
// a struct only contributes a table of its members.

template <class Member>
concept flat_json_scalar = std::same_as<Member, std::string> || std::same_as<Member, bool>
                           || std::is_integral_v<Member> || std::is_floating_point_v<Member>;

template <class Struct, class Descriptor>
using described_member_type = std::remove_cvref_t<decltype(std::declval<Struct&>().*Descriptor::pointer)>;

template <class Struct>
struct flat_member_test {
  template <class Descriptor>
  using fn = std::bool_constant<flat_json_scalar<described_member_type<Struct, Descriptor>>>;
};

template <class Struct>
using flat_json_members = boost::describe::describe_members<Struct, boost::describe::mod_public>;

/// A struct of public scalar members (BOOST_DESCRIBE_STRUCT) without its own Boost.JSON conversion, which would
/// take precedence over the description.
template <class Struct>
concept flat_json_struct =
  boost::describe::has_describe_members<Struct>::value && std::is_default_constructible_v<Struct>
  && boost::mp11::mp_empty<boost::describe::describe_bases<Struct, boost::describe::mod_any_access>>::value
  && boost::mp11::mp_empty<
    boost::describe::describe_members<Struct, boost::describe::mod_protected | boost::describe::mod_private>>::value
  && (boost::mp11::mp_size<flat_json_members<Struct>>::value <= 64)
  && boost::mp11::mp_all_of_q<flat_json_members<Struct>, flat_member_test<Struct>>::value
  && !requires(const boost::json::value& json) { tag_invoke(boost::json::value_to_tag<Struct>{}, json); }
  && !requires(const boost::json::value& json) { tag_invoke(boost::json::try_value_to_tag<Struct>{}, json); };

/// One scalar value (or one piece of a string) as the parser hands it to a member.
struct flat_json_value {
  enum class kind { string_piece, signed_integer, unsigned_integer, floating, boolean };
  kind type = kind::string_piece;
  /// For string pieces: the piece, and whether it is the string's first (else it is appended).
  std::string_view text;
  bool first_piece = true;
  std::int64_t signed_number = 0;
  std::uint64_t unsigned_number = 0;
  double floating_number = 0;
  bool flag = false;
};

/// Stores the value in one member of the struct at `target`; false when it does not fit the member.
using flat_json_setter = bool (*)(void* target, const flat_json_value& value);

struct flat_json_member {
  std::string_view name;
  flat_json_setter set;
};

/// Parses `text` with the struct's member table (flat_json.cpp). True when `text` was one JSON object of exactly
/// the struct's members, each once.
bool decode_flat_json(std::string_view text, const flat_json_member* members, std::size_t count, void* target);

/// Appends `text` as a JSON string, escaped exactly as boost::json::serialize escapes it (flat_json.cpp).
void append_json_string(std::string& out, std::string_view text);
/// Appends the number as boost::json::serialize writes a double (flat_json.cpp).
void append_json_double(std::string& out, double number);

template <class Struct, class Descriptor>
bool set_flat_json_member(void* target, const flat_json_value& value) {
  using member_type = described_member_type<Struct, Descriptor>;
  auto& member = static_cast<Struct*>(target)->*Descriptor::pointer;
  using kind = flat_json_value::kind;
  if constexpr (std::same_as<member_type, std::string>) {
    if (value.type != kind::string_piece)
      return false;
    if (value.first_piece)
      member.assign(value.text);
    else
      member.append(value.text);
    return true;
  } else if constexpr (std::same_as<member_type, bool>) {
    if (value.type != kind::boolean)
      return false;
    member = value.flag;
    return true;
  } else if constexpr (std::is_floating_point_v<member_type>) {
    switch (value.type) {
    case kind::signed_integer:
      member = static_cast<member_type>(value.signed_number);
      return true;
    case kind::unsigned_integer:
      member = static_cast<member_type>(value.unsigned_number);
      return true;
    case kind::floating:
      member = static_cast<member_type>(value.floating_number);
      return true;
    default:
      return false;
    }
  } else {
    // Integers take integers in range; value_to's rules for a fraction are left to value_to.
    if (value.type == kind::signed_integer && std::in_range<member_type>(value.signed_number)) {
      member = static_cast<member_type>(value.signed_number);
      return true;
    }
    if (value.type == kind::unsigned_integer && std::in_range<member_type>(value.unsigned_number)) {
      member = static_cast<member_type>(value.unsigned_number);
      return true;
    }
    return false;
  }
}

template <class Struct, template <class...> class List, class... Descriptors>
constexpr auto flat_json_table(List<Descriptors...>*) {
  return std::array<flat_json_member, sizeof...(Descriptors)>{
    flat_json_member{Descriptors::name, &set_flat_json_member<Struct, Descriptors>}...};
}

/// Fills `target` from `text` when `text` is one flat JSON object with every member of the struct; false when it
/// is not (then `target` is partly filled, and the caller decodes through boost::json::value_to instead).
template <flat_json_struct Struct>
bool decode_flat_json(std::string_view text, Struct& target) {
  static constexpr auto members = flat_json_table<Struct>(static_cast<flat_json_members<Struct>*>(nullptr));
  return decode_flat_json(text, members.data(), members.size(), &target);
}

/// The struct as JSON text, the text boost::json::serialize(boost::json::value_from(value)) gives, without the
/// document in between: a durable store encodes every appended event.
template <flat_json_struct Struct>
std::string encode_flat_json(const Struct& value) {
  std::string out;
  out.reserve(64);
  out += '{';
  bool first = true;
  boost::mp11::mp_for_each<flat_json_members<Struct>>([&](auto descriptor) {
    if (!first)
      out += ',';
    first = false;
    out += '"';
    out += descriptor.name; // a C++ identifier: nothing to escape
    out += "\":";
    const auto& member = value.*descriptor.pointer;
    using member_type = std::remove_cvref_t<decltype(member)>;
    if constexpr (std::same_as<member_type, std::string>) {
      append_json_string(out, member);
    } else if constexpr (std::same_as<member_type, bool>) {
      out += member ? "true" : "false";
    } else if constexpr (std::is_floating_point_v<member_type>) {
      append_json_double(out, static_cast<double>(member));
    } else {
      char digits[24];
      auto written = std::to_chars(digits, digits + sizeof digits, member);
      out.append(digits, written.ptr);
    }
  });
  out += '}';
  return out;
}

} // namespace cqrs::detail
