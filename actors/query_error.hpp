// The public result and error types of queries and projections: what a query answers, and why it may not.
#pragma once

#include "actors/envelope.hpp"

#include <expected>
#include <string>

namespace cqrs {

/// Why a query (or a wait for a position) got no answer.
enum class query_errc {
  /// The read model did not reach the requested position in time.
  timeout,
  /// The projection stopped on an event it could not apply; its status says which and why.
  projection_failed,
  /// No projection serves this query: it was never registered.
  unknown_projection,
  /// The query's answer function threw.
  query_failed,
  /// The engine is shutting down or was shut down.
  engine_stopped,
};

struct query_error {
  query_errc code;
  std::string message;
};

/// A query's answer or the reason there is none.
template <class Result>
using query_result = std::expected<Result, query_error>;

/// Where a projection stopped: the event it could not apply and the error it raised.
struct projection_failure {
  log_position position = 0;
  std::string type_name;
  std::string message;
};

} // namespace cqrs
