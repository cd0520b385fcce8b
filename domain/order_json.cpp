// Parses order script lines into commands and queries, and writes commands, queries and answers as JSON.
#include "domain/order_json.hpp"

#include "actors/overloaded.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <utility>

namespace order_json {
namespace {

using cqrs::overloaded;

/// Longest piece of user input echoed in an error, so a 64 KiB key does not make a 64 KiB message.
constexpr std::size_t max_echo_bytes = 40;

// User text as a JSON string literal (quoted and escaped), shortened to max_echo_bytes on a UTF-8 boundary.
std::string echo(std::string_view text) {
  bool shortened = text.size() > max_echo_bytes;
  if (shortened) {
    auto end = max_echo_bytes;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
      --end;
    text = text.substr(0, end);
  }
  return boost::json::serialize(boost::json::string_view{text}) + (shortened ? "..." : "");
}

// A value's kind, and for a scalar its value: "integer 5", "string \"x\"", "array".
std::string describe(const boost::json::value& value) {
  switch (value.kind()) {
  case boost::json::kind::null:
    return "null";
  case boost::json::kind::bool_:
    return value.get_bool() ? "true" : "false";
  case boost::json::kind::int64:
  case boost::json::kind::uint64:
    return "integer " + boost::json::serialize(value);
  case boost::json::kind::double_:
    return "number " + boost::json::serialize(value);
  case boost::json::kind::string:
    return "string " + echo(std::string_view{value.get_string().data(), value.get_string().size()});
  case boost::json::kind::array:
    return "an array";
  case boost::json::kind::object:
    return "an object";
  }
  return "an unknown kind of value";
}

std::string field_name(std::string_view name) {
  return "\"" + std::string{name} + "\"";
}

// Reads the fields of one kind of line. Each read names its field as known; a failed read records the first
// error and returns a placeholder, so a line's fields read as one struct initialiser, checked once by finish().
class field_reader {
public:
  field_reader(const boost::json::object& fields, std::string context, std::string_view discriminator)
    : fields_(fields), context_(std::move(context)), known_{discriminator} {}

  std::string string(std::string_view name) {
    const auto* value = find(name);
    if (!value)
      return {};
    if (const auto* text = value->if_string())
      return std::string{text->data(), text->size()};
    fail("field " + field_name(name) + " must be a string, got " + describe(*value));
    return {};
  }

  std::string optional_string(std::string_view name) {
    known_.push_back(name);
    if (!fields_.contains(name))
      return {};
    return string(name);
  }

  std::int64_t integer(std::string_view name) {
    const auto* value = find(name);
    if (!value)
      return 0;
    if (const auto* number = value->if_int64())
      return *number;
    // Boost.JSON keeps an integer as int64 whenever it fits, so uint64 and double mean it does not (or is no
    // integer at all).
    if (value->is_uint64())
      fail("field " + field_name(name) + " is out of the 64-bit signed range, got " + describe(*value));
    else
      fail("field " + field_name(name) + " must be an integer in the 64-bit signed range, got " + describe(*value));
    return 0;
  }

  std::optional<orders::order_status> status(std::string_view name) {
    auto text = string(name);
    if (error_)
      return std::nullopt;
    auto status = orders::status_from_string(text);
    if (!status || *status == orders::order_status::none) {
      fail("field " + field_name(name) + " must be \"placed\", \"shipped\" or \"cancelled\", got " + echo(text));
      return std::nullopt;
    }
    return status;
  }

  read_consistency consistency() {
    auto text = optional_string("consistency");
    if (text.empty() && !fields_.contains("consistency"))
      return read_consistency::read_your_writes;
    if (text == to_string(read_consistency::any))
      return read_consistency::any;
    if (text == to_string(read_consistency::read_your_writes))
      return read_consistency::read_your_writes;
    if (!error_)
      fail("field \"consistency\" must be \"any\" or \"read_your_writes\", got " + echo(text));
    return read_consistency::read_your_writes;
  }

  // An unknown field is reported before a missing one: `"quantity"` instead of `"qty"` is the better clue.
  template <class Result>
  std::expected<parsed_line, std::string> finish(Result result) const {
    for (const auto& field : fields_) {
      std::string_view key = field.key();
      if (std::find(known_.begin(), known_.end(), key) == known_.end())
        return std::unexpected(context_ + ": unknown field " + echo(key) + " (known: " + known_list() + ")");
    }
    if (error_)
      return std::unexpected(context_ + ": " + *error_);
    return parsed_line{std::move(result)};
  }

private:
  const boost::json::value* find(std::string_view name) {
    if (std::find(known_.begin(), known_.end(), name) == known_.end())
      known_.push_back(name);
    const auto* value = fields_.if_contains(name);
    if (!value)
      fail("missing field " + field_name(name));
    return value;
  }

  void fail(std::string message) {
    if (!error_)
      error_ = std::move(message);
  }

  std::string known_list() const {
    std::string list;
    for (auto name : known_)
      list += (list.empty() ? "" : ", ") + std::string{name};
    return list;
  }

  const boost::json::object& fields_;
  std::string context_;
  std::vector<std::string_view> known_;
  std::optional<std::string> error_;
};

std::expected<parsed_line, std::string> parse_command(const boost::json::object& fields, std::string_view type) {
  field_reader in{fields, std::string{type}, "type"};
  if (type == "PlaceOrder")
    return in.finish(orders::command{orders::place_order{in.string("order_id"), in.string("customer_id")}});
  if (type == "AddItem")
    return in.finish(orders::command{orders::add_item{in.string("order_id"), in.string("sku"), in.integer("qty"),
                                                      in.integer("unit_price_cents")}});
  if (type == "RemoveItem")
    return in.finish(orders::command{orders::remove_item{in.string("order_id"), in.string("sku")}});
  if (type == "ShipOrder")
    return in.finish(orders::command{orders::ship_order{in.string("order_id")}});
  if (type == "CancelOrder")
    return in.finish(orders::command{orders::cancel_order{in.string("order_id"), in.optional_string("reason")}});
  return std::unexpected("unknown command type " + echo(type)
                         + " (known: PlaceOrder, AddItem, RemoveItem, ShipOrder, CancelOrder)");
}

std::expected<parsed_line, std::string> parse_query(const boost::json::object& fields, std::string_view name) {
  field_reader in{fields, std::string{name}, "query"};
  auto request = [&](query question) { return query_request{std::move(question), in.consistency()}; };
  if (name == "get_order_summary")
    return in.finish(request(readmodels::get_order_summary{in.string("order_id")}));
  if (name == "get_customer_stats")
    return in.finish(request(readmodels::get_customer_stats{in.string("customer_id")}));
  if (name == "list_orders_by_status") {
    auto status = in.status("status");
    return in.finish(
      request(readmodels::list_orders_by_status{status.value_or(orders::order_status::placed)}));
  }
  if (name == "top_products")
    return in.finish(request(readmodels::get_top_products{}));
  return std::unexpected("unknown query " + echo(name)
                         + " (known: get_order_summary, get_customer_stats, list_orders_by_status, top_products)");
}

// The discriminator ("type" or "query") as a string, or why it is not one.
std::expected<std::string_view, std::string> discriminator(const boost::json::object& fields, std::string_view name) {
  const auto& value = fields.at(name);
  if (const auto* text = value.if_string())
    return std::string_view{text->data(), text->size()};
  return std::unexpected("field " + field_name(name) + " must be a string, got " + describe(value));
}

std::expected<parsed_line, std::string> parse_object(const boost::json::object& fields) {
  bool is_command = fields.contains("type");
  bool is_query = fields.contains("query");
  if (is_command && is_query)
    return std::unexpected(R"(a line has either "type" (a command) or "query", not both)");
  if (!is_command && !is_query)
    return std::unexpected(R"(missing field "type" (a command) or "query")");
  if (is_command) {
    auto type = discriminator(fields, "type");
    if (!type)
      return std::unexpected(type.error());
    return parse_command(fields, *type);
  }
  auto name = discriminator(fields, "query");
  if (!name)
    return std::unexpected(name.error());
  return parse_query(fields, *name);
}

/// basic_parser callbacks that look for a key repeated within one object. boost::json::parse keeps the last
/// of repeated keys, so {"type":"ShipOrder",...,"type":"CancelOrder"} would be read as a CancelOrder: refused instead.
class duplicate_key_finder {
public:
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);

  /// The first key found twice in one object, if any.
  std::optional<std::string> duplicate;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    objects_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    objects_.pop_back();
    return true;
  }
  bool on_array_begin(boost::system::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_key_part(boost::json::string_view part, std::size_t, boost::system::error_code&) {
    key_.append(part.data(), part.size());
    return true;
  }
  bool on_key(boost::json::string_view part, std::size_t, boost::system::error_code& error) {
    key_.append(part.data(), part.size());
    if (!objects_.back().insert(key_).second) {
      duplicate = std::move(key_);
      error = boost::json::error::extra_data; // any error: it only stops the parse
      return false;
    }
    key_.clear();
    return true;
  }
  bool on_string_part(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(std::uint64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }

private:
  std::vector<std::set<std::string, std::less<>>> objects_;
  std::string key_;
};

/// The first key that a JSON text (already parsed once, so valid) repeats within one object.
std::optional<std::string> first_duplicate_key(std::string_view text) {
  boost::json::basic_parser<duplicate_key_finder> parser{boost::json::parse_options{}};
  boost::system::error_code error;
  parser.write_some(false, text.data(), text.size(), error);
  return std::move(parser.handler().duplicate);
}

} // namespace

std::expected<parsed_line, std::string> parse_line(std::string_view line) noexcept {
  try {
    if (line.size() > max_line_bytes)
      return std::unexpected("line is " + std::to_string(line.size()) + " bytes, over the limit of "
                             + std::to_string(max_line_bytes));
    if (line.find_first_not_of(" \t\r\n") == std::string_view::npos)
      return std::unexpected("empty line");
    boost::json::parse_options options;
    options.max_depth = max_depth;
    boost::json::error_code error;
    auto value = boost::json::parse(boost::json::string_view{line}, error, {}, options);
    if (error == boost::json::error::too_deep)
      return std::unexpected("malformed JSON: nested deeper than " + std::to_string(max_depth) + " levels");
    if (error)
      return std::unexpected("malformed JSON: " + error.message());
    const auto* fields = value.if_object();
    if (!fields)
      return std::unexpected("a line must be a JSON object, got " + describe(value));
    if (auto repeated = first_duplicate_key(line))
      return std::unexpected("duplicate key " + echo(*repeated) + ": each key may appear once in an object");
    return parse_object(*fields);
  } catch (const std::exception& failure) {
    return std::unexpected(std::string{"cannot read the line: "} + failure.what());
  } catch (...) {
    return std::unexpected(std::string{"cannot read the line"});
  }
}

std::string_view command_name(const orders::command& command) {
  return std::visit(overloaded{
                      [](const orders::place_order&) { return std::string_view{"PlaceOrder"}; },
                      [](const orders::add_item&) { return std::string_view{"AddItem"}; },
                      [](const orders::remove_item&) { return std::string_view{"RemoveItem"}; },
                      [](const orders::ship_order&) { return std::string_view{"ShipOrder"}; },
                      [](const orders::cancel_order&) { return std::string_view{"CancelOrder"}; },
                    },
                    command);
}

std::string_view query_name(const query& question) {
  return std::visit(overloaded{
                      [](const readmodels::get_order_summary&) { return std::string_view{"get_order_summary"}; },
                      [](const readmodels::get_customer_stats&) { return std::string_view{"get_customer_stats"}; },
                      [](const readmodels::list_orders_by_status&) {
                        return std::string_view{"list_orders_by_status"};
                      },
                      [](const readmodels::get_top_products&) { return std::string_view{"top_products"}; },
                    },
                    question);
}

std::string_view to_string(read_consistency consistency) {
  switch (consistency) {
  case read_consistency::any:
    return "any";
  case read_consistency::read_your_writes:
    return "read_your_writes";
  }
  return "unknown";
}

boost::json::object to_json(const orders::command& command) {
  boost::json::object line;
  line["type"] = command_name(command);
  std::visit(overloaded{
               [&](const orders::place_order& place) {
                 line["order_id"] = place.order_id;
                 line["customer_id"] = place.customer_id;
               },
               [&](const orders::add_item& add) {
                 line["order_id"] = add.order_id;
                 line["sku"] = add.sku;
                 line["qty"] = add.qty;
                 line["unit_price_cents"] = add.unit_price_cents;
               },
               [&](const orders::remove_item& remove) {
                 line["order_id"] = remove.order_id;
                 line["sku"] = remove.sku;
               },
               [&](const orders::ship_order& ship) { line["order_id"] = ship.order_id; },
               [&](const orders::cancel_order& cancel) {
                 line["order_id"] = cancel.order_id;
                 line["reason"] = cancel.reason;
               },
             },
             command);
  return line;
}

boost::json::object to_json(const query_request& request) {
  boost::json::object line;
  line["query"] = query_name(request.question);
  std::visit(overloaded{
               [&](const readmodels::get_order_summary& summary) { line["order_id"] = summary.order_id; },
               [&](const readmodels::get_customer_stats& stats) { line["customer_id"] = stats.customer_id; },
               [&](const readmodels::list_orders_by_status& listing) {
                 line["status"] = orders::to_string(listing.status);
               },
               [&](const readmodels::get_top_products&) {},
             },
             request.question);
  line["consistency"] = to_string(request.consistency);
  return line;
}

boost::json::object to_json(const cqrs::rejection& refusal) {
  return boost::json::object{{"code", refusal.code}, {"message", refusal.message}};
}

boost::json::value answer_to_json(const std::optional<readmodels::order_summary>& answer) {
  if (!answer)
    return nullptr;
  boost::json::array lines;
  for (const auto& [sku, line] : answer->lines)
    lines.push_back(boost::json::object{{"sku", sku}, {"quantity", line.quantity},
                                        {"unit_price_cents", line.unit_price_cents}});
  return boost::json::object{
    {"status", orders::to_string(answer->status)},
    {"customer_id", answer->customer_id},
    {"lines", std::move(lines)},
    {"item_count", answer->item_count},
    {"total_cents", answer->total_cents},
    {"cancel_reason", answer->cancel_reason},
    {"last_position", answer->last_position},
  };
}

boost::json::value answer_to_json(const std::optional<readmodels::customer_stats_view>& answer) {
  if (!answer)
    return nullptr;
  return boost::json::object{
    {"orders_placed", answer->orders_placed},
    {"orders_shipped", answer->orders_shipped},
    {"orders_cancelled", answer->orders_cancelled},
    {"spent_cents", answer->spent_cents},
  };
}

boost::json::value answer_to_json(const readmodels::status_listing& answer) {
  boost::json::array ids;
  for (const auto& id : answer.latest_order_ids)
    ids.push_back(boost::json::string{id});
  return boost::json::object{
    {"status", orders::to_string(answer.status)},
    {"count", answer.count},
    {"latest_order_ids", std::move(ids)},
  };
}

boost::json::value answer_to_json(const std::vector<readmodels::product_quantity>& answer) {
  boost::json::array products;
  for (const auto& product : answer)
    products.push_back(boost::json::object{{"sku", product.sku}, {"quantity", product.quantity}});
  return products;
}

} // namespace order_json
