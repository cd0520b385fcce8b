// The engine's error codes and the error values that carry them: one style, a stable string code and a readable
// message, for commands, queries and stores alike.
#pragma once

#include "actors/envelope.hpp"

#include <chrono>
#include <cstddef>
#include <expected>
#include <string>
#include <string_view>

namespace cqrs {

/// Every code the engine itself produces. A command's `rejection`, a query's `query_error` and a store's
/// `store_error` all carry one of these as their `code` (domain rules use codes of their own in rejections), so a
/// host compares `error.code == cqrs::errc::timeout` the same way everywhere and can print or forward the code as
/// it is.
namespace errc {
// Commands.
/// No registered aggregate handles the command's type.
inline constexpr std::string_view unknown_command = "unknown_command";
/// The command names no aggregate id.
inline constexpr std::string_view invalid_aggregate_id = "invalid_aggregate_id";
/// User code (decide, evolve, aggregate_id) threw; nothing was appended.
inline constexpr std::string_view internal_error = "internal_error";
/// The stream moved on under the aggregate (another writer shares the store); nothing was appended. Retry.
/// A store reports the same code when an append's expected version is not the stream's.
inline constexpr std::string_view concurrency_conflict = "concurrency_conflict";
/// The store refused or failed the append; nothing was appended. After a failed commit the engine stays unhealthy
/// and refuses every later command with this code (see engine::health). A store reports the same code when it
/// cannot write.
inline constexpr std::string_view store_failure = "store_failure";
/// The command id was already used by an accepted command of another aggregate; nothing was appended.
inline constexpr std::string_view duplicate_command_id = "duplicate_command_id";

// Queries.
/// The read model did not reach the requested position in time.
inline constexpr std::string_view timeout = "timeout";
/// The projection stopped on an event it could not apply; its status says which and why.
inline constexpr std::string_view projection_failed = "projection_failed";
/// No projection serves this query: it was never registered.
inline constexpr std::string_view unknown_projection = "unknown_projection";
/// The query's answer function threw.
inline constexpr std::string_view query_failed = "query_failed";

// Stores.
/// The store was asked for an unusable append (no stream, no events, an event it cannot encode); nothing was
/// appended. A command whose append is refused so is rejected with `store_failure`.
inline constexpr std::string_view invalid_request = "invalid_request";

// Both.
/// The engine holds as much work as its options allow (options::max_in_flight engine-wide, or
/// options::max_queued_per_aggregate for this aggregate); nothing was done. Retriable: send again after a backoff.
inline constexpr std::string_view overloaded = "overloaded";
/// The engine is shutting down or was shut down; the command or query was not processed.
inline constexpr std::string_view engine_stopped = "engine_stopped";

// Clusters (cluster.hpp).
/// The append was made under a partition lease that is no longer the partition's (another node took it over, or
/// it expired); nothing was appended. A node retries such a command at the partition's new owner itself.
inline constexpr std::string_view fenced = "fenced";
/// No node served the command's partition within cluster_options::routing_timeout (its owner died and no node has
/// taken it over yet, or the owner cannot be reached). Whether it ran is unknown: re-send it with the same command
/// id (the engine gives forwarded commands one and reports it in the message) to get its outcome.
inline constexpr std::string_view unavailable = "unavailable";
} // namespace errc

/// Why a query (or a wait for a position) got no answer: a code from `cqrs::errc` and a readable message.
struct query_error {
  std::string code;
  std::string message;

  bool operator==(const query_error&) const = default;
};

/// A query's answer or the reason there is none.
template <class Result>
using query_result = std::expected<Result, query_error>;

/// Where a projection stopped (or what it skipped): the event it could not apply and the error it raised.
struct projection_failure {
  log_position position = 0;
  std::string type_name;
  std::string message;

  bool operator==(const projection_failure&) const = default;
};

/// What a projection does when applying an event throws. A read model is plain code that the engine cannot roll
/// back, so `retry` and `skip` need an apply that changes nothing when it throws (check first, then change).
enum class projection_failure_policy {
  /// Stop at the event: queries fail with errc::projection_failed until engine::restart_projection or a rebuild.
  stop,
  /// Apply the event again after a backoff (retry_backoff, doubling up to max_retry_backoff), up to max_retries
  /// times; then stop. Queries waiting for a position keep waiting meanwhile.
  retry,
  /// Keep the event as a dead letter (projection_status::dead_letters) and go on with the next one.
  skip,
};

/// Per projection settings for add_projection.
struct projection_options {
  projection_failure_policy on_failure = projection_failure_policy::stop;
  std::size_t max_retries = 5;
  std::chrono::milliseconds retry_backoff{10};
  std::chrono::milliseconds max_retry_backoff{1000};
};

} // namespace cqrs
