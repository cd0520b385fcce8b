// Settings and status of an engine that runs as one node of a cluster: several engine processes sharing one
// PostgreSQL log, each aggregate owned by one node at a time through partition leases, commands carried to their
// owner by CAF's network layer.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cqrs {

/// Makes an engine one node of a cluster (options::cluster). Its store must be a PostgreSQL store
/// (open_postgres_event_store); every node opens the same schema and gives the same `partitions`.
///
/// Aggregates hash (type and id) into `partitions`; each partition has one owner at a time, by a lease row in the
/// database that the owner renews every `heartbeat_interval` and that others may take once it expired. Appends are
/// fenced: each carries the epoch of its partition's lease and the store refuses it once that epoch is no longer
/// current, so a node that lost a lease (paused, cut off) can never append to its partition. Partitions are spread
/// evenly over the live nodes (a node is live while its heartbeat is younger than a lease) and move when a node
/// joins, leaves or dies. A command sent to any node goes to its owner (over CAF's middleman when that is another
/// node) and its reply comes back; a command whose partition is moving is held and sent again to the new owner,
/// with its command id, so that it never runs twice. Queries are answered by the node they are sent to: every
/// node's projections follow the whole log.
struct cluster_options {
  /// This node's name, unique in the cluster; empty means "host:port".
  std::string node_name{};
  /// The address other nodes reach this node at, and the interface it listens on ("0.0.0.0" for every interface
  /// is not an address others can reach: give the host's address).
  std::string host = "127.0.0.1";
  /// The TCP port of this node's actor (CAF's middleman); 0 takes a free one (cluster_status::address says which).
  std::uint16_t port = 0;
  std::uint32_t partitions = 64;
  /// How long a lease lasts without renewal: a dead node's partitions are served again after about this long plus
  /// one heartbeat.
  std::chrono::milliseconds lease_duration{3000};
  /// How often a node renews its leases and looks at the others; 0 means a quarter of the lease.
  std::chrono::milliseconds heartbeat_interval{0};
  /// How long a command whose partition has no reachable owner is held before it is answered with
  /// errc::unavailable; 0 means three leases.
  std::chrono::milliseconds routing_timeout{0};
};

/// What a cluster node holds and has done since it started.
struct cluster_status {
  std::string node;
  /// host:port of this node's actor.
  std::string address;
  /// The partitions this node holds a lease for now, ascending.
  std::vector<std::uint32_t> owned{};
  /// Live nodes as of the last heartbeat, this one included.
  std::size_t live_nodes = 0;
  std::uint64_t heartbeats = 0;
  /// Leases taken, given up (to balance), and lost (expired, or fenced at an append).
  std::uint64_t leases_acquired = 0;
  std::uint64_t leases_released = 0;
  std::uint64_t leases_lost = 0;
  /// Commands sent to their owner on another node, and commands other nodes sent here.
  std::uint64_t forwarded_out = 0;
  std::uint64_t forwarded_in = 0;
  /// Appends refused by the fence here (this node's lease had gone): those commands went to the new owner.
  std::uint64_t fenced_appends = 0;
  /// Commands sent again after their owner moved, died or did not answer.
  std::uint64_t retries = 0;
  /// Commands answered with errc::unavailable.
  std::uint64_t unavailable = 0;
  /// Why the last heartbeat failed (the database could not be reached), empty when it succeeded.
  std::string last_error{};
};

} // namespace cqrs
