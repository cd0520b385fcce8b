// Read models of the order domain (summaries, customer stats, orders by status, top products) with their queries.
#pragma once

#include "actors/envelope.hpp"
#include "domain/orders.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace readmodels {

/// Hashes std::string and std::string_view alike, so that lookups by a view build no string.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
};

/// The read models' per-order and per-customer tables: hashed (tens of thousands of keys, looked up per event).
template <class Value>
using string_map = std::unordered_map<std::string, Value, string_hash, std::equal_to<>>;

// Order summaries.

/// One order as the summaries view shows it.
struct order_summary {
  orders::order_status status = orders::order_status::none;
  std::string customer_id;
  orders::order_lines lines;
  /// Units across all lines (not the number of lines).
  std::int64_t item_count = 0;
  std::int64_t total_cents = 0;
  std::string cancel_reason;
  /// Log position of the last event applied to this order.
  cqrs::log_position last_position = 0;

  bool operator==(const order_summary&) const = default;
};

struct get_order_summary;

/// Status, customer, lines and figures per order.
struct order_summaries {
  static constexpr std::string_view name = "order_summaries";
  using subscribes_to = cqrs::events_of<orders::event>;

  string_map<order_summary> by_order;

  void apply(const cqrs::envelope& meta, const orders::event& event);
  std::optional<order_summary> answer(const get_order_summary& query) const;

  bool operator==(const order_summaries&) const = default;
};

/// One order's summary, or nothing if the view has not seen the order.
struct get_order_summary {
  using projection = order_summaries;
  std::string order_id;
  bool operator==(const get_order_summary&) const = default;
};

// Customer statistics.

/// What one customer did.
struct customer_stats_view {
  /// Every order the customer placed, whatever became of it since.
  std::uint64_t orders_placed = 0;
  std::uint64_t orders_shipped = 0;
  std::uint64_t orders_cancelled = 0;
  /// Sum of the totals of the customer's shipped orders.
  std::int64_t spent_cents = 0;

  bool operator==(const customer_stats_view&) const = default;
};

struct get_customer_stats;

/// Order counts and money spent per customer.
struct customer_stats {
  static constexpr std::string_view name = "customer_stats";
  using subscribes_to = cqrs::events_of<orders::event>;

  string_map<customer_stats_view> customers;
  /// The customer of each placed order: shipping and cancelling events do not name it.
  string_map<std::string> customer_of_order;

  void apply(const cqrs::envelope& meta, const orders::event& event);
  std::optional<customer_stats_view> answer(const get_customer_stats& query) const;

  bool operator==(const customer_stats&) const = default;
};

/// One customer's figures, or nothing if the customer never placed an order (as far as the view has seen).
struct get_customer_stats {
  using projection = customer_stats;
  std::string customer_id;
  bool operator==(const get_customer_stats&) const = default;
};

// Orders by status.

/// The answer for one status: how many orders are in it now, and the latest of them.
struct status_listing {
  orders::order_status status = orders::order_status::none;
  std::uint64_t count = 0;
  /// At most orders_by_status::latest_limit ids, newest first: by the log position at which the order entered
  /// the status (adding items to a placed order does not make it newer).
  std::vector<std::string> latest_order_ids;

  bool operator==(const status_listing&) const = default;
};

/// Where one order is: its status and the log position of the event that put it there.
struct order_status_entry {
  orders::order_status status = orders::order_status::none;
  cqrs::log_position since = 0;

  bool operator==(const order_status_entry&) const = default;
};

struct list_orders_by_status;

/// Count and latest orders of each status.
struct orders_by_status {
  static constexpr std::string_view name = "orders_by_status";
  using subscribes_to = cqrs::events_of<orders::event>;
  static constexpr std::size_t latest_limit = 20;

  /// The status of every order seen placed, shipped or cancelled.
  string_map<order_status_entry> status_of_order;
  /// The orders of each status (indexed by order_status) as (since, order id), oldest first. All of them, not
  /// just the latest: when an order leaves a status, the next older one must take its place in the listing.
  std::array<std::set<std::pair<cqrs::log_position, std::string>>, orders::all_statuses.size()> by_status;

  void apply(const cqrs::envelope& meta, const orders::event& event);
  status_listing answer(const list_orders_by_status& query) const;

  bool operator==(const orders_by_status&) const = default;
};

struct list_orders_by_status {
  using projection = orders_by_status;
  orders::order_status status = orders::order_status::placed;
  bool operator==(const list_orders_by_status&) const = default;
};

// Top products.

/// Units of one sku.
struct product_quantity {
  std::string sku;
  std::int64_t quantity = 0;

  bool operator==(const product_quantity&) const = default;
};

struct get_top_products;

/// Units shipped per sku.
struct top_products {
  static constexpr std::string_view name = "top_products";
  using subscribes_to = cqrs::events_of<orders::event>;
  static constexpr std::size_t limit = 10;

  /// Units shipped per sku, over all shipped orders. Hashed, like the lines below: a rebuild looks a sku up for
  /// every line added and shipped, and answer() sorts anyway.
  string_map<std::int64_t> shipped_quantity;
  /// Units per sku of each order not yet shipped or cancelled: order_shipped does not list the lines it ships.
  string_map<string_map<std::int64_t>> open_lines;

  void apply(const cqrs::envelope& meta, const orders::event& event);
  /// The `limit` skus with the most units shipped, most first; equal quantities in sku order.
  std::vector<product_quantity> answer(const get_top_products& query) const;

  bool operator==(const top_products&) const = default;
};

struct get_top_products {
  using projection = top_products;
  bool operator==(const get_top_products&) const = default;
};

// Verification against a rebuild.

/// The first way a live read model differs from one rebuilt from the log, in words ("order o-17: status shipped
/// vs placed", live value first), or nothing when they are equal. Returns nothing exactly when live == rebuilt.
std::optional<std::string> first_difference(const order_summaries& live, const order_summaries& rebuilt);
std::optional<std::string> first_difference(const customer_stats& live, const customer_stats& rebuilt);
std::optional<std::string> first_difference(const orders_by_status& live, const orders_by_status& rebuilt);
std::optional<std::string> first_difference(const top_products& live, const top_products& rebuilt);

} // namespace readmodels
