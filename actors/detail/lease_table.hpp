// Internal: a cluster node's view of the partition leases and members in PostgreSQL (the tables of the store's
// schema, see postgres_connection.cpp), the statements of one heartbeat, and the plan that spreads partitions evenly
// over the live members. CAF-free.
#pragma once

#include "actors/detail/postgres_connection.hpp"

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

namespace cqrs::detail {

/// One partition's lease as the table holds it.
struct lease_row {
  std::string owner;
  std::uint64_t epoch = 0;
  /// Not expired (by the database's clock).
  bool live = false;
};

struct member_row {
  std::string node;
  /// host:port of its node actor (CAF's middleman).
  std::string address;
};

/// What one heartbeat reads: the members whose heartbeat is younger than a lease, by name, and every lease.
struct cluster_rows {
  std::vector<member_row> members;
  /// Indexed by partition.
  std::vector<lease_row> leases;
};

/// A lease this node holds: partition and epoch.
struct held_lease {
  std::uint32_t partition = 0;
  std::uint64_t epoch = 0;
  bool operator==(const held_lease&) const = default;
};

/// Which member (an index into `members`) should own each partition: a live owner keeps its partitions up to its
/// share (partitions / members, the first members taking one more when it does not divide), and the rest go to
/// the members with room, lowest partition first. Every node computes the same plan from the same rows, and a
/// membership change moves only the partitions it must. Empty `members` plans nothing (all -1).
std::vector<int> plan_partitions(const cluster_rows& rows);

/// The lease and member statements of one node, on a connection of its own (each statement commits on its own,
/// so that a node paused between two of them holds no lock).
class lease_table {
public:
  lease_table(std::string conninfo, const std::string& schema, std::uint32_t partitions);

  /// Connects, and creates the partitions' lease rows if the table has none; fails if it holds another number of
  /// partitions (every node of a cluster must be started with the same number).
  std::expected<void, std::string> open();

  /// Records this node's heartbeat and address, and reads the live members and every lease.
  std::expected<cluster_rows, std::string> beat(const std::string& node, const std::string& address,
                                                std::chrono::milliseconds lease);

  /// In one round trip: gives up `release`, renews `renew` (only those not yet expired: a lease that expired is
  /// lost even if nobody took it, so that its next epoch makes this node's aggregates recover), and takes
  /// `acquire` where the lease is free or expired (its epoch then grows by one); notifies the lease channel when
  /// it took or gave up any. Returns the leases this node holds afterwards, among `renew` and `acquire`.
  std::expected<std::vector<held_lease>, std::string> update(const std::string& node,
                                                             const std::vector<held_lease>& release,
                                                             const std::vector<held_lease>& renew,
                                                             const std::vector<std::uint32_t>& acquire,
                                                             std::chrono::milliseconds lease);

  /// Gives up every lease of `node` and removes it from the members (a clean shutdown: others take over at once).
  void leave(const std::string& node);

private:
  /// The connection, opened (again) when there is none.
  std::expected<PGconn*, std::string> link();
  /// Runs the statements in one round trip; a lost connection is dropped, to be opened again next time.
  std::expected<std::vector<postgres::result>, std::string> run(const std::string& sql);

  std::string conninfo_;
  postgres::names names_;
  std::uint32_t partitions_;
  postgres::connection link_;
};

} // namespace cqrs::detail
