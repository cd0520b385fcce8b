// An order aggregate: the order business the demo simulates (commands, events, state, rules and rule codes).
#pragma once

#include "actors/decision.hpp"

#include <boost/container/flat_map.hpp>
#include <boost/describe.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace orders {

/// Largest quantity one add_item may carry, and the largest quantity one line of an order may hold.
inline constexpr std::int64_t max_quantity = 1000;
/// Largest unit price accepted (1 000 000.00 in cents). A ceiling keeps every order total far from int64 overflow.
inline constexpr std::int64_t max_unit_price_cents = 100'000'000;

// Commands: each names the order it targets.
struct place_order {
  std::string order_id;
  std::string customer_id;
  bool operator==(const place_order&) const = default;
};
/// Adds `qty` units of `sku` at `unit_price_cents` each; adding a sku the order already holds adds to its line.
struct add_item {
  std::string order_id;
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  bool operator==(const add_item&) const = default;
};
/// Removes the whole line of `sku`.
struct remove_item {
  std::string order_id;
  std::string sku;
  bool operator==(const remove_item&) const = default;
};
struct ship_order {
  std::string order_id;
  bool operator==(const ship_order&) const = default;
};
/// Cancels a placed order; the reason may be empty.
struct cancel_order {
  std::string order_id;
  std::string reason;
  bool operator==(const cancel_order&) const = default;
};
using command = std::variant<place_order, add_item, remove_item, ship_order, cancel_order>;
// Described, so that a cluster node can carry a command to the node that owns its order.
BOOST_DESCRIBE_STRUCT(place_order, (), (order_id, customer_id))
BOOST_DESCRIBE_STRUCT(add_item, (), (order_id, sku, qty, unit_price_cents))
BOOST_DESCRIBE_STRUCT(remove_item, (), (order_id, sku))
BOOST_DESCRIBE_STRUCT(ship_order, (), (order_id))
BOOST_DESCRIBE_STRUCT(cancel_order, (), (order_id, reason))

// Events: stable versioned type names; the order id lives in the engine's envelope, not here.
struct order_placed {
  static constexpr std::string_view type_name = "OrderPlaced.v1";
  std::string customer_id;
  bool operator==(const order_placed&) const = default;
};
struct item_added {
  static constexpr std::string_view type_name = "ItemAdded.v1";
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  bool operator==(const item_added&) const = default;
};
struct item_removed {
  static constexpr std::string_view type_name = "ItemRemoved.v1";
  std::string sku;
  bool operator==(const item_removed&) const = default;
};
/// Carries the order's figures at shipping time, so read models need not track lines to know what was spent.
struct order_shipped {
  static constexpr std::string_view type_name = "OrderShipped.v1";
  std::int64_t total_cents = 0;
  /// Units shipped: the sum of the quantities of all lines (not the number of lines).
  std::int64_t item_count = 0;
  bool operator==(const order_shipped&) const = default;
};
struct order_cancelled {
  static constexpr std::string_view type_name = "OrderCancelled.v1";
  std::string reason;
  bool operator==(const order_cancelled&) const = default;
};
BOOST_DESCRIBE_STRUCT(order_placed, (), (customer_id))
BOOST_DESCRIBE_STRUCT(item_added, (), (sku, qty, unit_price_cents))
BOOST_DESCRIBE_STRUCT(item_removed, (), (sku))
BOOST_DESCRIBE_STRUCT(order_shipped, (), (total_cents, item_count))
BOOST_DESCRIBE_STRUCT(order_cancelled, (), (reason))
using event = std::variant<order_placed, item_added, item_removed, order_shipped, order_cancelled>;

/// Where an order is in its life. `none` means it has not been placed (the stream does not exist yet).
enum class order_status { none, placed, shipped, cancelled };

/// Every status, in declaration order (for tools that list them).
inline constexpr std::array all_statuses{order_status::none, order_status::placed, order_status::shipped,
                                         order_status::cancelled};

/// "none", "placed", "shipped" or "cancelled".
std::string_view to_string(order_status status);
/// The status with that name, or nothing for an unknown name.
std::optional<order_status> status_from_string(std::string_view name);

/// One line of an order: how many units of one sku, at which unit price.
struct order_line {
  std::int64_t quantity = 0;
  std::int64_t unit_price_cents = 0;
  bool operator==(const order_line&) const = default;
};

/// Lines by sku; ordered, so iteration and equality are deterministic. Flat (one sorted array): an order has a
/// handful of lines, so a copy (a query's answer) is one allocation instead of one per line, and a lookup is a
/// binary search in one contiguous array.
using order_lines = boost::container::flat_map<std::string, order_line, std::less<>>;

/// The order's state, folded from its events.
struct order {
  using command = orders::command;
  using event = orders::event;
  static constexpr std::string_view type_name = "order";

  order_status status = order_status::none;
  std::string customer_id;
  order_lines lines;
  /// Why the order was cancelled (empty unless cancelled, and possibly empty then).
  std::string cancel_reason;

  bool operator==(const order&) const = default;
};

/// Sum of quantity times unit price over the lines (saturating, so a corrupt log cannot overflow it).
std::int64_t total_cents(const order_lines& lines);
/// Sum of the quantities over the lines: units, not lines.
std::int64_t item_count(const order_lines& lines);

/// Rejection codes. One code per rule; the status rules share one code per status across commands, because
/// the reason is the same whatever the command: "the order is not placed / already shipped / already cancelled".
namespace codes {
/// place_order on an order that was already placed (whatever became of it since).
inline constexpr const char* already_placed = "order_already_placed";
/// add_item, remove_item, ship_order or cancel_order on an order that was never placed.
inline constexpr const char* not_placed = "order_not_placed";
/// add_item, remove_item, ship_order or cancel_order on a shipped order.
inline constexpr const char* already_shipped = "order_already_shipped";
/// add_item, remove_item, ship_order or cancel_order on a cancelled order.
inline constexpr const char* already_cancelled = "order_already_cancelled";
/// place_order with an empty customer id.
inline constexpr const char* missing_customer = "missing_customer";
/// add_item or remove_item with an empty sku.
inline constexpr const char* missing_sku = "missing_sku";
/// add_item with a quantity outside 1..max_quantity, or one that would take its line above max_quantity.
inline constexpr const char* invalid_quantity = "invalid_quantity";
/// add_item with a unit price outside 1..max_unit_price_cents.
inline constexpr const char* invalid_unit_price = "invalid_unit_price";
/// add_item of a sku the order holds at another unit price. A rejection rather than a silent re-pricing,
/// because it would change the price of units already in the order: remove the line and add it again.
inline constexpr const char* unit_price_mismatch = "unit_price_mismatch";
/// remove_item of a sku the order does not hold.
inline constexpr const char* item_not_in_order = "item_not_in_order";
/// ship_order on an order with no lines.
inline constexpr const char* empty_order = "empty_order";
} // namespace codes

/// Every rejection code decide() can return, so a host can report rejections by rule.
inline constexpr std::array<std::string_view, 11> all_codes{
  codes::already_placed, codes::not_placed,         codes::already_shipped,     codes::already_cancelled,
  codes::missing_customer, codes::missing_sku,      codes::invalid_quantity,    codes::invalid_unit_price,
  codes::unit_price_mismatch, codes::item_not_in_order, codes::empty_order,
};

/// The order a command targets.
std::string_view aggregate_id(const command& cmd);

/// Decides what a command does to an order; never mutates; a broken rule comes back as a rejection.
cqrs::decision<event> decide(const order& state, const command& cmd);

/// Folds one event into the state; total, because replay depends on it (an event that the rules would never
/// have produced still folds to a defined state rather than failing).
order evolve(order state, const event& evt);

namespace detail {
/// a + b, clamped to the int64 range: read models and evolve use it so no log content can overflow them.
std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept;
/// a * b, clamped to the int64 range.
std::int64_t saturating_multiply(std::int64_t a, std::int64_t b) noexcept;
} // namespace detail

} // namespace orders
