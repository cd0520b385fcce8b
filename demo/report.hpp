// Writes a simulation's result: the readable end-of-run summary, and the one-line JSON object of --json.
#pragma once

#include "demo/simulation.hpp"

#include <boost/json.hpp>

#include <ostream>

namespace demo {

/// The end-of-run summary: counts, rejections by rule, top products, orders by status, reads and their
/// staleness, visibility lag percentiles, and the verification, ending with "verified" or the first difference.
void print_summary(std::ostream& out, const simulation_result& result);

/// The result as one JSON object: seed, commands, accepted, rejected, events, queries, stale_reads, ryw_reads,
/// ryw_violations, lag_p99_us, lag_max_us, verified (true when result.passed()) and more.
boost::json::object to_json(const simulation_result& result);

} // namespace demo
