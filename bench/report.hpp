// How a load run is shown: a readable table, one JSON object (Boost.JSON), and the sweep as a table and a CSV file.
// CAF-free.
#pragma once

#include "bench/load.hpp"

#include <boost/json.hpp>

#include <ostream>
#include <string>
#include <vector>

namespace bench {

/// The run as a table of figures, followed by the baselines and ratios (if run) and any problems.
void print_table(std::ostream& out, const load_report& report);

/// The run as one JSON object: workload, clients, commands, rejected, commands_per_s, p50_us, p99_us, p999_us,
/// visibility_p99_us, catchup_ms, queries_per_s, peak_rss_mb, verified, mean_in_flight and more; with baselines
/// also raw_caf_commands_per_s, crud_commands_per_s, ratio_raw_caf, ratio_crud.
boost::json::object to_json(const load_report& report);

/// A JSON value as one line of text, as boost::json::serialize writes it except for numbers with a fraction,
/// which are written plainly ("12.5", not "1.25E1").
std::string json_line(const boost::json::value& value);

/// The sweep as a table: throughput and p99 per aggregates x clients.
void print_sweep_table(std::ostream& out, const std::vector<sweep_row>& rows);
/// The sweep as CSV, one line per cell, with a header line.
void write_sweep_csv(std::ostream& out, const std::vector<sweep_row>& rows);
/// The sweep as one JSON object {"sweep":[cells...], "verified":...}.
boost::json::object sweep_to_json(const load_options& options, const std::vector<sweep_row>& rows);

/// The rate search: each probe, then the rate found against the closed-loop peak.
void print_rate_search(std::ostream& out, const rate_search& search);
/// The rate search as one JSON object: find_rate_per_s, closed_loop_peak_per_s, find_rate_fraction,
/// p99_bound_us, probes [...], verified.
boost::json::object rate_search_to_json(const load_options& options, const rate_search& search);

} // namespace bench
