// Wires the order domain into an engine (the aggregate and its four read models) and copies those read models out.
#pragma once

#include "actors/engine.hpp"
#include "readmodels/order_views.hpp"

#include <expected>

namespace demo {

/// Registers the order aggregate and the order read models (summaries, customer stats, orders by status, top
/// products) on an engine, so it accepts order commands and answers the order queries.
void add_order_domain(cqrs::engine& engine);

/// A copy of each order read model with the checkpoint it reflects.
struct order_read_models {
  cqrs::read_model_copy<readmodels::order_summaries> summaries;
  cqrs::read_model_copy<readmodels::customer_stats> customers;
  cqrs::read_model_copy<readmodels::orders_by_status> statuses;
  cqrs::read_model_copy<readmodels::top_products> products;

  bool operator==(const order_read_models& other) const;
};

/// Copies every order read model of an engine set up by add_order_domain. Each copy is consistent in itself; the
/// four may reflect different checkpoints unless the engine is idle and caught up.
std::expected<order_read_models, cqrs::query_error> copy_order_read_models(const cqrs::engine& engine);

} // namespace demo
