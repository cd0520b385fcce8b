// cqrs-load --nodes N: starts N cqrs-node processes on loopback around one PostgreSQL log, lets each drive order
// commands, optionally kills one with SIGKILL mid-run, and checks the log afterwards: every acknowledged command in
// it, every stream's versions contiguous, one writer per stream at a time (lease epochs never go down along a
// stream), every surviving node's read models equal to the fold of the log.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace bench {

struct cluster_load_options {
  /// Node processes; 0 in a command line that asks for no cluster run.
  std::size_t nodes = 0;
  /// Closed-loop clients on each node.
  std::size_t clients_per_node = 4;
  double duration_seconds = 10;
  /// Kill the last node with SIGKILL this long after the load started (0: no kill).
  double kill_node_after_seconds = 0;
  std::int64_t lease_ms = 2000;
  std::uint32_t partitions = 64;
  std::string conninfo{};
  std::string schema{};
  /// The cqrs-node program; empty: beside the running program.
  std::string node_program{};
  /// Where the nodes' acknowledgement files go; empty: a new temporary folder.
  std::string acks_folder{};
};

struct node_outcome {
  std::string name;
  bool killed = false;
  /// The node's final report line (empty for a killed node).
  boost::json::object report{};
};

struct cluster_load_report {
  std::vector<node_outcome> nodes;
  double seconds = 0;
  std::uint64_t accepted = 0;
  double commands_per_s = 0;
  /// Forwarded commands over all commands the nodes sent.
  double forwarded_share = 0;
  /// From the kill until the survivors held every partition again; nothing without a kill (or if they never did).
  std::optional<double> failover_seconds{};
  // What the log says.
  std::uint64_t acknowledged = 0;
  std::uint64_t acknowledged_missing = 0;
  std::uint64_t streams = 0;
  std::uint64_t streams_with_gaps = 0;
  std::uint64_t epochs_going_down = 0;
  std::uint64_t events_without_lease = 0;
  bool read_models_match = false;
  std::string acks_folder;
  bool verified = false;
  /// Why a node did not start or report, or the log could not be read; empty when all went as planned.
  std::vector<std::string> problems{};
};

cluster_load_report run_cluster_load(const cluster_load_options& options);
void print_cluster_table(std::ostream& out, const cluster_load_report& report);
boost::json::object cluster_report_to_json(const cluster_load_options& options, const cluster_load_report& report);

} // namespace bench
