// The order's rules (decide) and state transitions (evolve).
#include "domain/orders.hpp"

#include "actors/overloaded.hpp"

#include <limits>

namespace orders {
namespace {

using cqrs::overloaded;

std::string quoted(std::string_view text) {
  std::string result;
  result.reserve(text.size() + 2);
  result += '"';
  result += text;
  result += '"';
  return result;
}

// Every command but place_order needs a placed order that has not shipped or been cancelled; the code names
// the status, so a host counting rejections by rule sees why, whatever the command was.
std::optional<cqrs::rejection> check_open(const order& state, const std::string& order_id) {
  switch (state.status) {
  case order_status::none:
    return cqrs::reject(codes::not_placed, "order " + order_id + " has not been placed");
  case order_status::shipped:
    return cqrs::reject(codes::already_shipped, "order " + order_id + " has already shipped");
  case order_status::cancelled:
    return cqrs::reject(codes::already_cancelled,
                        "order " + order_id + " was cancelled"
                          + (state.cancel_reason.empty() ? std::string{} : " (" + state.cancel_reason + ")"));
  case order_status::placed:
    break;
  }
  return std::nullopt;
}

cqrs::decision<event> decide_add(const order& state, const add_item& add) {
  if (auto refusal = check_open(state, add.order_id))
    return *refusal;
  if (add.sku.empty())
    return cqrs::reject(codes::missing_sku, "an item of order " + add.order_id + " needs a sku");
  // Built only for a rejection: an accepted AddItem pays for no message.
  auto item = [&add] { return quoted(add.sku) + " in order " + add.order_id; };
  if (add.qty < 1 || add.qty > max_quantity)
    return cqrs::reject(codes::invalid_quantity, "qty of " + item() + " must be 1.." + std::to_string(max_quantity)
                                                   + ", got " + std::to_string(add.qty));
  if (add.unit_price_cents < 1 || add.unit_price_cents > max_unit_price_cents)
    return cqrs::reject(codes::invalid_unit_price, "unit price of " + item() + " must be 1.."
                                                     + std::to_string(max_unit_price_cents) + " cents, got "
                                                     + std::to_string(add.unit_price_cents));
  auto line = state.lines.find(add.sku);
  if (line == state.lines.end())
    return item_added{add.sku, add.qty, add.unit_price_cents};
  if (line->second.unit_price_cents != add.unit_price_cents)
    return cqrs::reject(codes::unit_price_mismatch,
                        "order " + add.order_id + " holds " + quoted(add.sku) + " at "
                          + std::to_string(line->second.unit_price_cents) + " cents, not "
                          + std::to_string(add.unit_price_cents) + ": remove the line to change its price");
  // Written as a subtraction so that even a line folded from a corrupt log cannot overflow the check.
  if (line->second.quantity > max_quantity - add.qty)
    return cqrs::reject(codes::invalid_quantity,
                        "line " + quoted(add.sku) + " of order " + add.order_id + " holds "
                          + std::to_string(line->second.quantity) + "; adding " + std::to_string(add.qty)
                          + " would exceed " + std::to_string(max_quantity));
  return item_added{add.sku, add.qty, add.unit_price_cents};
}

} // namespace

std::string_view to_string(order_status status) {
  switch (status) {
  case order_status::none:
    return "none";
  case order_status::placed:
    return "placed";
  case order_status::shipped:
    return "shipped";
  case order_status::cancelled:
    return "cancelled";
  }
  return "unknown";
}

std::optional<order_status> status_from_string(std::string_view name) {
  for (auto status : all_statuses)
    if (to_string(status) == name)
      return status;
  return std::nullopt;
}

std::int64_t total_cents(const order_lines& lines) {
  std::int64_t total = 0;
  for (const auto& [sku, line] : lines)
    total = detail::saturating_add(total, detail::saturating_multiply(line.quantity, line.unit_price_cents));
  return total;
}

std::int64_t item_count(const order_lines& lines) {
  std::int64_t count = 0;
  for (const auto& [sku, line] : lines)
    count = detail::saturating_add(count, line.quantity);
  return count;
}

std::string_view aggregate_id(const command& cmd) {
  return std::visit([](const auto& one) -> std::string_view { return one.order_id; }, cmd);
}

cqrs::decision<event> decide(const order& state, const command& cmd) {
  return std::visit(
    overloaded{
      [&](const place_order& place) -> cqrs::decision<event> {
        if (state.status != order_status::none)
          return cqrs::reject(codes::already_placed, "order " + place.order_id + " was already placed by customer "
                                                       + state.customer_id + " and is "
                                                       + std::string{to_string(state.status)});
        if (place.customer_id.empty())
          return cqrs::reject(codes::missing_customer, "order " + place.order_id + " needs a customer id");
        return order_placed{place.customer_id};
      },
      [&](const add_item& add) { return decide_add(state, add); },
      [&](const remove_item& remove) -> cqrs::decision<event> {
        if (auto refusal = check_open(state, remove.order_id))
          return *refusal;
        if (remove.sku.empty())
          return cqrs::reject(codes::missing_sku, "removing an item of order " + remove.order_id + " needs a sku");
        if (!state.lines.contains(remove.sku))
          return cqrs::reject(codes::item_not_in_order,
                              "order " + remove.order_id + " holds no " + quoted(remove.sku));
        return item_removed{remove.sku};
      },
      [&](const ship_order& ship) -> cqrs::decision<event> {
        if (auto refusal = check_open(state, ship.order_id))
          return *refusal;
        if (state.lines.empty())
          return cqrs::reject(codes::empty_order, "order " + ship.order_id + " has no items to ship");
        return order_shipped{total_cents(state.lines), item_count(state.lines)};
      },
      [&](const cancel_order& cancel) -> cqrs::decision<event> {
        if (auto refusal = check_open(state, cancel.order_id))
          return *refusal;
        return order_cancelled{cancel.reason};
      },
    },
    cmd);
}

order evolve(order state, const event& evt) {
  std::visit(overloaded{
               [&](const order_placed& placed) {
                 state.status = order_status::placed;
                 state.customer_id = placed.customer_id;
               },
               [&](const item_added& added) {
                 // The rules keep one price per line; should a log say otherwise, the latest price wins.
                 auto& line = state.lines[added.sku];
                 line.quantity = detail::saturating_add(line.quantity, added.qty);
                 line.unit_price_cents = added.unit_price_cents;
               },
               [&](const item_removed& removed) { state.lines.erase(removed.sku); },
               [&](const order_shipped&) { state.status = order_status::shipped; },
               [&](const order_cancelled& cancelled) {
                 state.status = order_status::cancelled;
                 state.cancel_reason = cancelled.reason;
               },
             },
             evt);
  return state;
}

namespace detail {

std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t sum = 0;
  if (!__builtin_add_overflow(a, b, &sum))
    return sum;
  return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
}

std::int64_t saturating_multiply(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t product = 0;
  if (!__builtin_mul_overflow(a, b, &product))
    return product;
  return (a < 0) == (b < 0) ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
}

} // namespace detail

} // namespace orders
