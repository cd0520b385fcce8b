// Checks live order read models against ones rebuilt from the event log, and compares runs for determinism.
#pragma once

#include "demo/order_engine.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace demo {

/// One read model compared with its rebuild: nothing in `difference` means they are equal.
struct read_model_check {
  std::string_view read_model;
  /// The live model's checkpoint: the rebuild folds the log up to it.
  cqrs::log_position checkpoint = 0;
  std::optional<std::string> difference;
};

/// The outcome of verifying every order read model.
struct verification_report {
  /// Why the engine could not be brought to a caught-up, copyable state; empty when it could.
  std::optional<std::string> engine_error;
  std::vector<read_model_check> checks;

  /// True when the engine caught up and every read model equals its rebuild.
  bool verified() const;
  /// The first problem in words ("order_summaries: order o-17: status shipped vs placed"), or nothing.
  std::optional<std::string> first_difference() const;
};

/// Compares each live read model with one folded from position 0 of `store` up to the live model's checkpoint,
/// through readmodels::first_difference. Reads the store only, so it works on any copy, corrupted or not.
std::vector<read_model_check> compare_with_log(const order_read_models& live, const cqrs::event_store& store);

/// What verify_engine found, with the copies it verified.
struct verified_read_models {
  std::optional<order_read_models> copies;
  verification_report report;
};

/// Waits until every projection has caught up with the log head (wait_until_caught_up), copies each read model,
/// and compares each with its rebuild from the log. Send no commands meanwhile, or the checkpoints may differ.
verified_read_models verify_engine(cqrs::engine& engine);

/// The read models without what depends on the commit order across concurrent clients: log positions (an
/// order summary's last position, the position since which an order has its status) are zeroed, so the
/// "latest orders" of each status list by order id. The event count (the checkpoints) stays. Two runs with one
/// seed and several clients must agree on this; with one client they must agree on everything.
order_read_models without_commit_order(order_read_models models);

/// A 64-bit FNV-1a digest of every field of the read models (not the checkpoints); equal models, equal digests.
/// Take it of without_commit_order(...) to compare runs with several clients.
std::uint64_t fingerprint(const order_read_models& models);

/// The first difference between two runs' read models (readmodels::first_difference's words: "live" is `first`,
/// "rebuilt" is `second`), or nothing when the models are equal. Checkpoints are not compared.
std::optional<std::string> first_difference(const order_read_models& first, const order_read_models& second);

} // namespace demo
