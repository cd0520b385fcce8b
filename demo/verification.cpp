// Verifies order read models against a rebuild from the log, strips commit-order details, and digests models.
#include "demo/verification.hpp"

#include <map>

#include <utility>

namespace demo {
namespace {

template <class Projection>
read_model_check check_one(const cqrs::read_model_copy<Projection>& live, const cqrs::event_store& store) {
  auto rebuilt = cqrs::fold_log<Projection>(store, live.checkpoint);
  return read_model_check{Projection::name, live.checkpoint, readmodels::first_difference(live.model, rebuilt)};
}

// Feeds values into a 64-bit FNV-1a hash. Strings carry their length so ("ab","c") and ("a","bc") differ.
class fnv1a {
public:
  void add_bytes(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t index = 0; index < size; ++index) {
      value_ ^= bytes[index];
      value_ *= 0x100000001b3ULL;
    }
  }
  void add(std::uint64_t number) {
    // Byte by byte in a fixed order, so the digest does not depend on the machine's endianness.
    for (int shift = 0; shift < 64; shift += 8) {
      auto byte = static_cast<unsigned char>(number >> shift);
      add_bytes(&byte, 1);
    }
  }
  void add(std::int64_t number) { add(static_cast<std::uint64_t>(number)); }
  void add(orders::order_status status) { add(static_cast<std::uint64_t>(status)); }
  void add(std::string_view text) {
    add(std::uint64_t{text.size()});
    add_bytes(text.data(), text.size());
  }
  std::uint64_t value() const { return value_; }

private:
  std::uint64_t value_ = 0xcbf29ce484222325ULL;
};

/// A copy of a table in key order: the digest must not depend on a hashed table's iteration order.
template <class Map>
std::map<std::string, typename Map::mapped_type, std::less<>> in_key_order(const Map& table) {
  return {table.begin(), table.end()};
}

template <class Model>
std::optional<std::string> named_difference(std::string_view name, const Model& first, const Model& second) {
  if (auto found = readmodels::first_difference(first, second))
    return std::string{name} + ": " + *found;
  return std::nullopt;
}

} // namespace

bool verification_report::verified() const {
  return !first_difference().has_value();
}

std::optional<std::string> verification_report::first_difference() const {
  if (engine_error)
    return *engine_error;
  if (checks.empty())
    return std::string{"no read model was checked"};
  for (const auto& check : checks)
    if (check.difference)
      return std::string{check.read_model} + ": " + *check.difference;
  return std::nullopt;
}

std::vector<read_model_check> compare_with_log(const order_read_models& live, const cqrs::event_store& store) {
  return {check_one(live.summaries, store), check_one(live.customers, store), check_one(live.statuses, store),
          check_one(live.products, store)};
}

verified_read_models verify_engine(cqrs::engine& engine) {
  verified_read_models result;
  if (auto caught_up = engine.wait_until_caught_up(); !caught_up) {
    result.report.engine_error = "the read models did not catch up with the log: " + caught_up.error().message;
    return result;
  }
  auto copies = copy_order_read_models(engine);
  if (!copies) {
    result.report.engine_error = "cannot copy the read models: " + copies.error().message;
    return result;
  }
  result.report.checks = compare_with_log(*copies, *engine.store());
  result.copies = std::move(*copies);
  return result;
}

order_read_models without_commit_order(order_read_models models) {
  for (auto& [order_id, summary] : models.summaries.model.by_order)
    summary.last_position = 0;
  auto& statuses = models.statuses.model;
  for (auto& [order_id, entry] : statuses.status_of_order)
    entry.since = 0;
  for (auto& in_status : statuses.by_status) {
    decltype(statuses.by_status)::value_type by_id;
    for (const auto& [since, order_id] : in_status)
      by_id.emplace(0, order_id);
    in_status = std::move(by_id);
  }
  return models;
}

std::uint64_t fingerprint(const order_read_models& models) {
  fnv1a hash;
  for (const auto& [order_id, summary] : in_key_order(models.summaries.model.by_order)) {
    hash.add(order_id);
    hash.add(summary.status);
    hash.add(summary.customer_id);
    hash.add(std::uint64_t{summary.lines.size()});
    for (const auto& [sku, line] : summary.lines) {
      hash.add(sku);
      hash.add(line.quantity);
      hash.add(line.unit_price_cents);
    }
    hash.add(summary.item_count);
    hash.add(summary.total_cents);
    hash.add(summary.cancel_reason);
    hash.add(summary.last_position);
  }
  for (const auto& [customer_id, stats] : in_key_order(models.customers.model.customers)) {
    hash.add(customer_id);
    hash.add(stats.orders_placed);
    hash.add(stats.orders_shipped);
    hash.add(stats.orders_cancelled);
    hash.add(stats.spent_cents);
  }
  for (const auto& [order_id, customer_id] : in_key_order(models.customers.model.customer_of_order)) {
    hash.add(order_id);
    hash.add(customer_id);
  }
  for (const auto& [order_id, entry] : in_key_order(models.statuses.model.status_of_order)) {
    hash.add(order_id);
    hash.add(entry.status);
    hash.add(entry.since);
  }
  for (const auto& in_status : models.statuses.model.by_status) {
    hash.add(std::uint64_t{in_status.size()});
    for (const auto& [since, order_id] : in_status) {
      hash.add(since);
      hash.add(order_id);
    }
  }
  for (const auto& [sku, quantity] : in_key_order(models.products.model.shipped_quantity)) {
    hash.add(sku);
    hash.add(quantity);
  }
  for (const auto& [order_id, lines] : in_key_order(models.products.model.open_lines)) {
    hash.add(order_id);
    hash.add(std::uint64_t{lines.size()});
    for (const auto& [sku, quantity] : in_key_order(lines)) {
      hash.add(sku);
      hash.add(quantity);
    }
  }
  return hash.value();
}

std::optional<std::string> first_difference(const order_read_models& first, const order_read_models& second) {
  if (auto found = named_difference(readmodels::order_summaries::name, first.summaries.model, second.summaries.model))
    return found;
  if (auto found = named_difference(readmodels::customer_stats::name, first.customers.model, second.customers.model))
    return found;
  if (auto found = named_difference(readmodels::orders_by_status::name, first.statuses.model, second.statuses.model))
    return found;
  if (auto found = named_difference(readmodels::top_products::name, first.products.model, second.products.model))
    return found;
  return std::nullopt;
}

} // namespace demo
