// Registers the order domain on an engine and copies its read models.
#include "demo/order_engine.hpp"

#include "domain/orders.hpp"

namespace demo {

void add_order_domain(cqrs::engine& engine) {
  engine.add_aggregate<orders::order>();
  engine.add_projection<readmodels::order_summaries>();
  engine.add_projection<readmodels::customer_stats>();
  engine.add_projection<readmodels::orders_by_status>();
  engine.add_projection<readmodels::top_products>();
}

bool order_read_models::operator==(const order_read_models& other) const {
  auto same = [](const auto& left, const auto& right) {
    return left.checkpoint == right.checkpoint && left.model == right.model;
  };
  return same(summaries, other.summaries) && same(customers, other.customers) && same(statuses, other.statuses)
         && same(products, other.products);
}

std::expected<order_read_models, cqrs::query_error> copy_order_read_models(const cqrs::engine& engine) {
  auto summaries = engine.copy_read_model<readmodels::order_summaries>();
  if (!summaries)
    return std::unexpected(summaries.error());
  auto customers = engine.copy_read_model<readmodels::customer_stats>();
  if (!customers)
    return std::unexpected(customers.error());
  auto statuses = engine.copy_read_model<readmodels::orders_by_status>();
  if (!statuses)
    return std::unexpected(statuses.error());
  auto products = engine.copy_read_model<readmodels::top_products>();
  if (!products)
    return std::unexpected(products.error());
  return order_read_models{std::move(*summaries), std::move(*customers), std::move(*statuses),
                           std::move(*products)};
}

} // namespace demo
