// The order domain's JSON line protocol for scripts: one command or query per line in, JSON replies out.
// It spans the domain and its read models (queries are read-model types), so it includes both; it never touches
// the engine, which keeps it testable without one.
#pragma once

#include "actors/decision.hpp"
#include "domain/orders.hpp"
#include "readmodels/order_views.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace order_json {

/// Longest line parse_line reads; a longer one is refused before parsing.
inline constexpr std::size_t max_line_bytes = 64 * 1024;
/// Deepest nesting of arrays and objects parse_line lets Boost.JSON build (valid lines need 1).
inline constexpr std::size_t max_depth = 16;

/// How fresh a query line wants its answer ("consistency" field).
enum class read_consistency {
  /// "any": answer at once from whatever the read model holds (cqrs::consistency::any()).
  any,
  /// "read_your_writes", the default: answer once the read model has applied every command the script sent
  /// before (cqrs::at_least(position of the script's last accepted command)).
  read_your_writes,
};

/// Every order query, by the read model that answers it.
using query = std::variant<readmodels::get_order_summary, readmodels::get_customer_stats,
                           readmodels::list_orders_by_status, readmodels::get_top_products>;

/// A query line: the question and how fresh its answer must be.
struct query_request {
  query question;
  read_consistency consistency = read_consistency::read_your_writes;

  bool operator==(const query_request&) const = default;
};

/// What one line asks for: a command to send, or a query to answer.
using parsed_line = std::variant<orders::command, query_request>;

/// Reads one line. Commands:
///   {"type":"PlaceOrder","order_id":"o-1","customer_id":"c-1"}
///   {"type":"AddItem","order_id":"o-1","sku":"apple","qty":2,"unit_price_cents":150}
///   {"type":"RemoveItem","order_id":"o-1","sku":"apple"}
///   {"type":"ShipOrder","order_id":"o-1"}
///   {"type":"CancelOrder","order_id":"o-1","reason":"changed my mind"}      ("reason" is optional)
/// Queries, each with an optional "consistency": "any" or "read_your_writes" (the default):
///   {"query":"get_order_summary","order_id":"o-1"}
///   {"query":"get_customer_stats","customer_id":"c-1"}
///   {"query":"list_orders_by_status","status":"placed"}                     (placed, shipped or cancelled)
///   {"query":"top_products"}
/// The error says precisely what is wrong: malformed JSON (Boost.JSON's message), not an object, unknown type or
/// query, unknown field (refused, so a misspelt optional field is not silently ignored), missing field, field of
/// the wrong kind, integer outside the 64-bit signed range, line too long or too deeply nested, a key given twice
/// in one object (named: Boost.JSON would keep the last one silently, even for "type").
/// It checks shape only: a qty of 0 or -3 parses, and the domain rejects it with its rule's code, so scripts
/// see every business rule the way any other client does. Never throws.
[[nodiscard]] std::expected<parsed_line, std::string> parse_line(std::string_view line) noexcept;

/// "PlaceOrder", "AddItem", "RemoveItem", "ShipOrder" or "CancelOrder".
std::string_view command_name(const orders::command& command);
/// "get_order_summary", "get_customer_stats", "list_orders_by_status" or "top_products".
std::string_view query_name(const query& question);
/// "any" or "read_your_writes".
std::string_view to_string(read_consistency consistency);

/// A command as the line parse_line reads back into it.
boost::json::object to_json(const orders::command& command);
/// A query request as the line parse_line reads back into it (with its consistency spelt out).
boost::json::object to_json(const query_request& request);
/// {"code": ..., "message": ...}
boost::json::object to_json(const cqrs::rejection& refusal);

/// Answers as JSON replies. An absent order or customer is null; lines are an array in sku order:
///   {"status":"placed","customer_id":"c-1","lines":[{"sku":"apple","quantity":2,"unit_price_cents":150}],
///    "item_count":2,"total_cents":300,"cancel_reason":"","last_position":2}
boost::json::value answer_to_json(const std::optional<readmodels::order_summary>& answer);
/// {"orders_placed":2,"orders_shipped":1,"orders_cancelled":0,"spent_cents":300}
boost::json::value answer_to_json(const std::optional<readmodels::customer_stats_view>& answer);
/// {"status":"placed","count":31,"latest_order_ids":["o-40","o-39",...]}
boost::json::value answer_to_json(const readmodels::status_listing& answer);
/// [{"sku":"apple","quantity":12},...]
boost::json::value answer_to_json(const std::vector<readmodels::product_quantity>& answer);

} // namespace order_json
