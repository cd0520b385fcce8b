// The compiled part of detail/flat_json.hpp: the one instantiation of Boost.JSON's parser with the flat-object
// callbacks, and the string escaping of the flat encoder.
#include "actors/detail/flat_json.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/serialize.hpp>

namespace cqrs::detail {
namespace {

/// basic_parser callbacks filling one struct through its member table. Returning false stops the parse (the
/// error code set is only a signal: the caller then decodes through value_to, which says what is wrong).
class flat_object_handler {
public:
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);

  flat_object_handler(const flat_json_member* members, std::size_t count, void* target)
      : members_(members), count_(count), target_(target) {}

  bool complete() const {
    auto all = count_ == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count_) - 1;
    return done_ && seen_ == all;
  }

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code& error) { return give_up(error); }
  bool on_array_end(std::size_t, boost::system::error_code& error) { return give_up(error); }
  bool on_object_begin(boost::system::error_code& error) {
    if (in_object_ || done_)
      return give_up(error); // a nested object
    in_object_ = true;
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    in_object_ = false;
    done_ = true;
    return true;
  }
  bool on_key_part(boost::json::string_view part, std::size_t, boost::system::error_code&) {
    key_.append(part.data(), part.size());
    return true;
  }
  bool on_key(boost::json::string_view part, std::size_t, boost::system::error_code& error) {
    std::string_view key{part.data(), part.size()};
    if (!key_.empty()) {
      key_.append(part.data(), part.size());
      key = key_;
    }
    current_ = no_member;
    for (std::size_t index = 0; index < count_; ++index) {
      if (members_[index].name == key) {
        current_ = static_cast<int>(index);
        break;
      }
    }
    key_.clear();
    // value_to refuses an object with keys the struct lacks; a repeated member is left to it too.
    if (current_ < 0 || (seen_ & bit(current_)))
      return give_up(error);
    return true;
  }
  bool on_string_part(boost::json::string_view part, std::size_t, boost::system::error_code& error) {
    return take_string(part, false, error);
  }
  bool on_string(boost::json::string_view part, std::size_t, boost::system::error_code& error) {
    return take_string(part, true, error);
  }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t number, boost::json::string_view, boost::system::error_code& error) {
    flat_json_value value;
    value.type = flat_json_value::kind::signed_integer;
    value.signed_number = number;
    return take(value, error);
  }
  bool on_uint64(std::uint64_t number, boost::json::string_view, boost::system::error_code& error) {
    flat_json_value value;
    value.type = flat_json_value::kind::unsigned_integer;
    value.unsigned_number = number;
    return take(value, error);
  }
  bool on_double(double number, boost::json::string_view, boost::system::error_code& error) {
    flat_json_value value;
    value.type = flat_json_value::kind::floating;
    value.floating_number = number;
    return take(value, error);
  }
  bool on_bool(bool flag, boost::system::error_code& error) {
    flat_json_value value;
    value.type = flat_json_value::kind::boolean;
    value.flag = flag;
    return take(value, error);
  }
  bool on_null(boost::system::error_code& error) { return give_up(error); } // no scalar member takes null
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }

private:
  static constexpr int no_member = -1; // no key before this value

  static std::uint64_t bit(int index) { return std::uint64_t{1} << index; }

  static bool give_up(boost::system::error_code& error) {
    error = boost::json::error::exception;
    return false;
  }

  bool take(const flat_json_value& value, boost::system::error_code& error) {
    if (current_ < 0 || !members_[current_].set(target_, value))
      return give_up(error);
    seen_ |= bit(current_);
    current_ = no_member;
    return true;
  }

  bool take_string(boost::json::string_view part, bool last, boost::system::error_code& error) {
    flat_json_value value;
    value.text = std::string_view{part.data(), part.size()};
    value.first_piece = !string_started_;
    string_started_ = !last;
    if (last)
      return take(value, error);
    if (current_ < 0 || !members_[current_].set(target_, value))
      return give_up(error);
    return true;
  }

  const flat_json_member* members_;
  std::size_t count_;
  void* target_;
  std::string key_;
  std::uint64_t seen_ = 0;
  int current_ = no_member;
  bool in_object_ = false;
  bool done_ = false;
  bool string_started_ = false;
};

} // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  std::size_t plain = 0; // start of the run of characters that need no escape
  for (std::size_t index = 0; index < text.size(); ++index) {
    auto character = static_cast<unsigned char>(text[index]);
    if (character >= 0x20 && character != '"' && character != '\\')
      continue;
    out.append(text.data() + plain, index - plain);
    plain = index + 1;
    out += '\\';
    switch (character) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '\b': out += 'b'; break;
      case '\t': out += 't'; break;
      case '\n': out += 'n'; break;
      case '\f': out += 'f'; break;
      case '\r': out += 'r'; break;
      default:
        out += "u00";
        out += hex[character >> 4];
        out += hex[character & 15];
    }
  }
  out.append(text.data() + plain, text.size() - plain);
  out += '"';
}

void append_json_double(std::string& out, double number) { out += boost::json::serialize(boost::json::value(number)); }

bool decode_flat_json(std::string_view text, const flat_json_member* members, std::size_t count, void* target) {
  boost::json::basic_parser<flat_object_handler> parser{boost::json::parse_options{}, members, count, target};
  boost::system::error_code error;
  auto consumed = parser.write_some(false, text.data(), text.size(), error);
  return !error && consumed == text.size() && parser.done() && parser.handler().complete();
}

} // namespace cqrs::detail
