// How each order event changes the order read models, how they answer, and how two of them are compared.
#include "readmodels/order_views.hpp"

#include "actors/overloaded.hpp"

#include <algorithm>

namespace readmodels {

using cqrs::overloaded;
using orders::detail::saturating_add;

namespace {

std::size_t index_of(orders::order_status status) {
  return static_cast<std::size_t>(status);
}

// Values as a difference message shows them.
std::string text(std::int64_t value) {
  return std::to_string(value);
}
std::string text(std::uint64_t value) {
  return std::to_string(value);
}
std::string text(orders::order_status status) {
  return std::string{orders::to_string(status)};
}
std::string text(const std::string& value) {
  return value.empty() ? std::string{"(empty)"} : '"' + value + '"';
}

// Keeps the first difference found, so a comparison reads as a flat list of checks.
struct first_found {
  std::optional<std::string> difference;

  template <class Value>
  void compare(const std::string& subject, std::string_view field, const Value& live, const Value& rebuilt) {
    if (!difference && live != rebuilt)
      difference = subject + ": " + std::string{field} + " " + text(live) + " vs " + text(rebuilt);
  }

  void take(std::optional<std::string> found) {
    if (!difference)
      difference = std::move(found);
  }
};

// Walks two maps keyed by string in key order; reports the first key held by one side only, or the first
// difference compare_values(subject, live, rebuilt) finds between the values of a shared key.
template <class Map, class CompareValues>
std::optional<std::string> first_map_difference(const Map& live, const Map& rebuilt, std::string_view noun,
                                                CompareValues compare_values) {
  // Keys in sorted order, so that "first" means the same for ordered and hashed tables.
  std::vector<std::string_view> keys;
  keys.reserve(live.size() + rebuilt.size());
  for (const auto& entry : live)
    keys.emplace_back(entry.first);
  for (const auto& entry : rebuilt)
    keys.emplace_back(entry.first);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  for (auto key : keys) {
    auto left = live.find(key);
    auto right = rebuilt.find(key);
    if (right == rebuilt.end())
      return std::string{noun} + " " + std::string{key} + ": missing from rebuilt";
    if (left == live.end())
      return std::string{noun} + " " + std::string{key} + ": missing from live";
    if (auto found = compare_values(std::string{noun} + " " + std::string{key}, left->second, right->second))
      return found;
  }
  return std::nullopt;
}

// Callers return nothing early when the models are equal; this keeps "nothing exactly when equal" true even if a
// field were added without a check for it.
std::optional<std::string> or_unexplained(std::optional<std::string> found) {
  if (found)
    return found;
  return std::string{"the read models differ in a field the comparison does not describe"};
}

std::optional<std::string> first_line_difference(const orders::order_lines& live, const orders::order_lines& rebuilt,
                                                 const std::string& order) {
  return first_map_difference(live, rebuilt, order + ": sku",
                              [](const std::string& subject, const orders::order_line& left,
                                 const orders::order_line& right) {
                                first_found result;
                                result.compare(subject, "quantity", left.quantity, right.quantity);
                                result.compare(subject, "unit price", left.unit_price_cents, right.unit_price_cents);
                                return result.difference;
                              });
}

} // namespace

// Order summaries.

void order_summaries::apply(const cqrs::envelope& meta, const orders::event& event) {
  auto& summary = by_order[meta.aggregate_id()];
  summary.last_position = meta.position;
  auto recount = [&] {
    summary.item_count = orders::item_count(summary.lines);
    summary.total_cents = orders::total_cents(summary.lines);
  };
  std::visit(overloaded{
               [&](const orders::order_placed& placed) {
                 summary.status = orders::order_status::placed;
                 summary.customer_id = placed.customer_id;
               },
               [&](const orders::item_added& added) {
                 auto& line = summary.lines[added.sku];
                 line.quantity = saturating_add(line.quantity, added.qty);
                 line.unit_price_cents = added.unit_price_cents;
                 recount();
               },
               [&](const orders::item_removed& removed) {
                 summary.lines.erase(removed.sku);
                 recount();
               },
               [&](const orders::order_shipped& shipped) {
                 // The event's figures are what was charged and shipped; they win over a recount.
                 summary.status = orders::order_status::shipped;
                 summary.item_count = shipped.item_count;
                 summary.total_cents = shipped.total_cents;
               },
               [&](const orders::order_cancelled& cancelled) {
                 summary.status = orders::order_status::cancelled;
                 summary.cancel_reason = cancelled.reason;
               },
             },
             event);
}

std::optional<order_summary> order_summaries::answer(const get_order_summary& query) const {
  auto found = by_order.find(query.order_id);
  if (found == by_order.end())
    return std::nullopt;
  return found->second;
}

std::optional<std::string> first_difference(const order_summaries& live, const order_summaries& rebuilt) {
  if (live == rebuilt)
    return std::nullopt;
  auto found = first_map_difference(
    live.by_order, rebuilt.by_order, "order",
    [](const std::string& subject, const order_summary& left, const order_summary& right) {
      first_found result;
      result.compare(subject, "status", left.status, right.status);
      result.compare(subject, "customer", left.customer_id, right.customer_id);
      result.take(first_line_difference(left.lines, right.lines, subject));
      result.compare(subject, "item count", left.item_count, right.item_count);
      result.compare(subject, "total cents", left.total_cents, right.total_cents);
      result.compare(subject, "cancel reason", left.cancel_reason, right.cancel_reason);
      result.compare(subject, "last position", left.last_position, right.last_position);
      return result.difference;
    });
  return or_unexplained(std::move(found));
}

// Customer statistics.

void customer_stats::apply(const cqrs::envelope& meta, const orders::event& event) {
  const auto& order_id = meta.aggregate_id();
  // Shipping and cancelling name no customer: find it through the order; an order never seen placed is skipped.
  auto customer_of = [&]() -> customer_stats_view* {
    auto order = customer_of_order.find(order_id);
    if (order == customer_of_order.end())
      return nullptr;
    return &customers[order->second];
  };
  std::visit(overloaded{
               [&](const orders::order_placed& placed) {
                 customer_of_order[order_id] = placed.customer_id;
                 ++customers[placed.customer_id].orders_placed;
               },
               [&](const orders::item_added&) {},
               [&](const orders::item_removed&) {},
               [&](const orders::order_shipped& shipped) {
                 if (auto* customer = customer_of()) {
                   ++customer->orders_shipped;
                   customer->spent_cents = saturating_add(customer->spent_cents, shipped.total_cents);
                 }
               },
               [&](const orders::order_cancelled&) {
                 if (auto* customer = customer_of())
                   ++customer->orders_cancelled;
               },
             },
             event);
}

std::optional<customer_stats_view> customer_stats::answer(const get_customer_stats& query) const {
  auto found = customers.find(query.customer_id);
  if (found == customers.end())
    return std::nullopt;
  return found->second;
}

std::optional<std::string> first_difference(const customer_stats& live, const customer_stats& rebuilt) {
  if (live == rebuilt)
    return std::nullopt;
  first_found result;
  result.take(first_map_difference(
    live.customers, rebuilt.customers, "customer",
    [](const std::string& subject, const customer_stats_view& left, const customer_stats_view& right) {
      first_found fields;
      fields.compare(subject, "orders placed", left.orders_placed, right.orders_placed);
      fields.compare(subject, "orders shipped", left.orders_shipped, right.orders_shipped);
      fields.compare(subject, "orders cancelled", left.orders_cancelled, right.orders_cancelled);
      fields.compare(subject, "spent cents", left.spent_cents, right.spent_cents);
      return fields.difference;
    }));
  result.take(first_map_difference(live.customer_of_order, rebuilt.customer_of_order, "order",
                                   [](const std::string& subject, const std::string& left, const std::string& right) {
                                     first_found fields;
                                     fields.compare(subject, "customer", left, right);
                                     return fields.difference;
                                   }));
  return or_unexplained(std::move(result.difference));
}

// Orders by status.

void orders_by_status::apply(const cqrs::envelope& meta, const orders::event& event) {
  auto move_to = [&](orders::order_status status) {
    const auto& order_id = meta.aggregate_id();
    auto [entry, inserted] = status_of_order.try_emplace(order_id);
    if (!inserted)
      by_status[index_of(entry->second.status)].erase({entry->second.since, order_id});
    entry->second = order_status_entry{status, meta.position};
    by_status[index_of(status)].emplace(meta.position, order_id);
  };
  std::visit(overloaded{
               [&](const orders::order_placed&) { move_to(orders::order_status::placed); },
               [&](const orders::item_added&) {},
               [&](const orders::item_removed&) {},
               [&](const orders::order_shipped&) { move_to(orders::order_status::shipped); },
               [&](const orders::order_cancelled&) { move_to(orders::order_status::cancelled); },
             },
             event);
}

status_listing orders_by_status::answer(const list_orders_by_status& query) const {
  status_listing listing;
  listing.status = query.status;
  // A status cast from an arbitrary integer lists nothing rather than reading past the array.
  if (index_of(query.status) >= by_status.size())
    return listing;
  const auto& in_status = by_status[index_of(query.status)];
  listing.count = in_status.size();
  for (auto order = in_status.rbegin();
       order != in_status.rend() && listing.latest_order_ids.size() < latest_limit; ++order)
    listing.latest_order_ids.push_back(order->second);
  return listing;
}

std::optional<std::string> first_difference(const orders_by_status& live, const orders_by_status& rebuilt) {
  if (live == rebuilt)
    return std::nullopt;
  first_found result;
  result.take(first_map_difference(
    live.status_of_order, rebuilt.status_of_order, "order",
    [](const std::string& subject, const order_status_entry& left, const order_status_entry& right) {
      first_found fields;
      fields.compare(subject, "status", left.status, right.status);
      fields.compare(subject, "status since position", left.since, right.since);
      return fields.difference;
    }));
  // The per-status sets derive from the entries above, but are state of their own that could drift.
  for (auto status : orders::all_statuses) {
    const auto& left = live.by_status[index_of(status)];
    const auto& right = rebuilt.by_status[index_of(status)];
    std::string subject = "status " + text(status);
    result.compare(subject, "count", std::uint64_t{left.size()}, std::uint64_t{right.size()});
    auto [left_end, right_end] = std::mismatch(left.begin(), left.end(), right.begin(), right.end());
    if (left_end != left.end())
      result.take(subject + ": order " + left_end->second + " since position " + text(left_end->first)
                  + " missing from rebuilt");
    else if (right_end != right.end())
      result.take(subject + ": order " + right_end->second + " since position " + text(right_end->first)
                  + " missing from live");
  }
  return or_unexplained(std::move(result.difference));
}

// Top products.

void top_products::apply(const cqrs::envelope& meta, const orders::event& event) {
  const auto& order_id = meta.aggregate_id();
  std::visit(overloaded{
               [&](const orders::order_placed&) {},
               [&](const orders::item_added& added) {
                 auto& quantity = open_lines[order_id][added.sku];
                 quantity = saturating_add(quantity, added.qty);
               },
               [&](const orders::item_removed& removed) {
                 auto order = open_lines.find(order_id);
                 if (order == open_lines.end())
                   return;
                 order->second.erase(removed.sku);
                 if (order->second.empty())
                   open_lines.erase(order);
               },
               [&](const orders::order_shipped&) {
                 auto order = open_lines.find(order_id);
                 if (order == open_lines.end())
                   return;
                 for (const auto& [sku, quantity] : order->second) {
                   auto& shipped = shipped_quantity[sku];
                   shipped = saturating_add(shipped, quantity);
                 }
                 open_lines.erase(order);
               },
               [&](const orders::order_cancelled&) { open_lines.erase(order_id); },
             },
             event);
}

std::vector<product_quantity> top_products::answer(const get_top_products&) const {
  std::vector<product_quantity> products;
  products.reserve(shipped_quantity.size());
  for (const auto& [sku, quantity] : shipped_quantity)
    if (quantity > 0)
      products.push_back(product_quantity{sku, quantity});
  auto more_shipped = [](const product_quantity& left, const product_quantity& right) {
    if (left.quantity != right.quantity)
      return left.quantity > right.quantity;
    return left.sku < right.sku;
  };
  auto kept = std::min(products.size(), limit);
  std::partial_sort(products.begin(), products.begin() + static_cast<std::ptrdiff_t>(kept), products.end(),
                    more_shipped);
  products.resize(kept);
  return products;
}

std::optional<std::string> first_difference(const top_products& live, const top_products& rebuilt) {
  if (live == rebuilt)
    return std::nullopt;
  first_found result;
  result.take(first_map_difference(live.shipped_quantity, rebuilt.shipped_quantity, "sku",
                                   [](const std::string& subject, std::int64_t left, std::int64_t right) {
                                     first_found fields;
                                     fields.compare(subject, "quantity shipped", left, right);
                                     return fields.difference;
                                   }));
  result.take(first_map_difference(
    live.open_lines, rebuilt.open_lines, "open order",
    [](const std::string& subject, const auto& left, const auto& right) {
      return first_map_difference(left, right, subject + ": sku",
                                  [](const std::string& line, std::int64_t left_quantity,
                                     std::int64_t right_quantity) {
                                    first_found fields;
                                    fields.compare(line, "quantity", left_quantity, right_quantity);
                                    return fields.difference;
                                  });
    }));
  return or_unexplained(std::move(result.difference));
}

} // namespace readmodels
