// The partition leases and members of a cluster in PostgreSQL, and the plan that spreads partitions (see
// lease_table.hpp).
#include "actors/detail/lease_table.hpp"

#include <algorithm>

namespace cqrs::detail {

std::vector<int> plan_partitions(const cluster_rows& rows) {
  std::vector<int> plan(rows.leases.size(), -1);
  auto count = static_cast<int>(rows.members.size());
  if (count == 0)
    return plan;
  auto partitions = static_cast<int>(rows.leases.size());
  std::vector<int> room(rows.members.size());
  for (int member = 0; member < count; ++member)
    room[member] = partitions / count + (member < partitions % count ? 1 : 0);
  auto member_of = [&](const std::string& node) {
    auto found = std::find_if(rows.members.begin(), rows.members.end(),
                              [&](const member_row& member) { return member.node == node; });
    return found == rows.members.end() ? -1 : static_cast<int>(found - rows.members.begin());
  };
  for (int partition = 0; partition < partitions; ++partition) {
    const auto& lease = rows.leases[partition];
    if (!lease.live)
      continue;
    auto owner = member_of(lease.owner);
    if (owner >= 0 && room[owner] > 0) {
      plan[partition] = owner;
      --room[owner];
    }
  }
  int next = 0;
  for (int partition = 0; partition < partitions; ++partition) {
    if (plan[partition] >= 0)
      continue;
    while (room[next] == 0)
      ++next;
    plan[partition] = next;
    --room[next];
  }
  return plan;
}

namespace {

std::string pairs_condition(const std::vector<held_lease>& leases) {
  std::string pairs;
  for (const auto& lease : leases)
    pairs += (pairs.empty() ? "(" : ", (") + std::to_string(lease.partition) + ", " + std::to_string(lease.epoch)
             + ")";
  return "(partition, epoch) IN (" + pairs + ")";
}

std::string interval(std::chrono::milliseconds duration) {
  return "interval '" + std::to_string(duration.count()) + " milliseconds'";
}

} // namespace

lease_table::lease_table(std::string conninfo, const std::string& schema, std::uint32_t partitions)
  : conninfo_(std::move(conninfo)), names_(schema), partitions_(partitions) {}

std::expected<PGconn*, std::string> lease_table::link() {
  if (!link_) {
    auto opened = postgres::connect(conninfo_);
    if (!opened)
      return std::unexpected(opened.error());
    link_ = std::move(*opened);
  }
  return link_.get();
}

std::expected<std::vector<postgres::result>, std::string> lease_table::run(const std::string& sql) {
  auto connected = link();
  if (!connected)
    return std::unexpected(connected.error());
  auto done = postgres::execute_each(*connected, sql);
  if (!done) {
    if (done.error().connection_lost)
      link_.reset();
    return std::unexpected(done.error().message);
  }
  return std::move(*done);
}

std::expected<void, std::string> lease_table::open() {
  // Rows for partitions 0..n-1, created once by whichever node comes first; a table of another size is refused.
  auto counted = run("INSERT INTO " + names_.partition_leases + " SELECT partition, '', 0, '-infinity' FROM "
                     "generate_series(0, " + std::to_string(partitions_) + " - 1) AS partition WHERE NOT EXISTS "
                     "(SELECT 1 FROM " + names_.partition_leases + ") ON CONFLICT DO NOTHING; SELECT count(*), "
                     "coalesce(max(partition), -1) FROM " + names_.partition_leases);
  if (!counted)
    return std::unexpected("cannot create or read the partition leases: " + counted.error());
  const auto* rows = counted->back().get();
  auto count = postgres::integer_value(rows, 0, 0);
  auto highest = postgres::integer_value(rows, 0, 1);
  if (count != partitions_ || highest != static_cast<std::int64_t>(partitions_) - 1)
    return std::unexpected("the cluster in schema " + names_.schema + " has " + std::to_string(count)
                           + " partitions, this node was started with " + std::to_string(partitions_)
                           + ": every node of a cluster needs the same number (cluster_options::partitions)");
  return {};
}

std::expected<cluster_rows, std::string> lease_table::beat(const std::string& node, const std::string& address,
                                                            std::chrono::milliseconds lease) {
  auto connected = link();
  if (!connected)
    return std::unexpected(connected.error());
  auto done = run("INSERT INTO " + names_.cluster_members + " VALUES (" + postgres::quoted(*connected, node) + ", "
                  + postgres::quoted(*connected, address) + ", now()) ON CONFLICT (node) DO UPDATE SET address = "
                  "excluded.address, heartbeat = excluded.heartbeat; SELECT node, address FROM "
                  + names_.cluster_members + " WHERE heartbeat > now() - " + interval(lease)
                  + " ORDER BY node; SELECT partition, owner, epoch, expires_at > now() FROM "
                  + names_.partition_leases + " ORDER BY partition");
  if (!done)
    return std::unexpected(done.error());
  cluster_rows rows;
  const auto* members = (*done)[1].get();
  for (int row = 0; row < PQntuples(members); ++row)
    rows.members.push_back(member_row{std::string{postgres::value(members, row, 0)},
                                      std::string{postgres::value(members, row, 1)}});
  const auto* leases = (*done)[2].get();
  rows.leases.resize(partitions_);
  for (int row = 0; row < PQntuples(leases); ++row) {
    auto partition = postgres::integer_value(leases, row, 0);
    if (partition < 0 || partition >= static_cast<std::int64_t>(partitions_))
      continue;
    rows.leases[partition] = lease_row{std::string{postgres::value(leases, row, 1)},
                                       static_cast<std::uint64_t>(postgres::integer_value(leases, row, 2)),
                                       postgres::value(leases, row, 3) == "t"};
  }
  return rows;
}

std::expected<std::vector<held_lease>, std::string> lease_table::update(const std::string& node,
                                                                        const std::vector<held_lease>& release,
                                                                        const std::vector<held_lease>& renew,
                                                                        const std::vector<std::uint32_t>& acquire,
                                                                        std::chrono::milliseconds lease) {
  auto connected = link();
  if (!connected)
    return std::unexpected(connected.error());
  auto owner = postgres::quoted(*connected, node);
  std::string partitions;
  for (auto partition : acquire)
    partitions += (partitions.empty() ? "" : ", ") + std::to_string(partition);
  // One query string runs as one transaction: the release, renewals and takeovers commit together or not at all.
  // The partitions of `renew` (this node's, not expired) and of `acquire` (expired) are disjoint.
  // The rows it changes are locked first, in partition order, as appends share-lock them: no deadlock between them.
  std::string touched;
  for (const auto& lease : release)
    touched += (touched.empty() ? "" : ", ") + std::to_string(lease.partition);
  for (const auto& lease : renew)
    touched += (touched.empty() ? "" : ", ") + std::to_string(lease.partition);
  if (!partitions.empty())
    touched += (touched.empty() ? "" : ", ") + partitions;
  std::string sql = "SELECT partition FROM " + names_.partition_leases + " WHERE partition IN ("
                    + (touched.empty() ? std::string{"-1"} : touched) + ") ORDER BY partition FOR UPDATE; ";
  if (!release.empty())
    sql += "UPDATE " + names_.partition_leases + " SET owner = '', expires_at = now() WHERE owner = " + owner
           + " AND " + pairs_condition(release) + "; ";
  sql += "WITH renewed AS (UPDATE " + names_.partition_leases + " SET expires_at = now() + " + interval(lease)
         + " WHERE owner = " + owner + " AND expires_at > now() AND "
         + (renew.empty() ? std::string{"false"} : pairs_condition(renew))
         + " RETURNING partition, epoch), taken AS (UPDATE " + names_.partition_leases + " SET owner = " + owner
         + ", epoch = epoch + 1, expires_at = now() + " + interval(lease) + " WHERE expires_at <= now() AND "
         + (acquire.empty() ? std::string{"false"} : "partition IN (" + partitions + ")")
         + " RETURNING partition, epoch) SELECT partition, epoch FROM renewed UNION ALL SELECT partition, epoch FROM "
           "taken ORDER BY partition;";
  if (!release.empty() || !acquire.empty())
    sql += " SELECT pg_notify(" + names_.lease_channel_literal + ", " + owner + ");";
  auto done = run(sql);
  if (!done)
    return std::unexpected(done.error());
  const auto* rows = (*done)[release.empty() ? 1 : 2].get();
  std::vector<held_lease> held;
  for (int row = 0; row < PQntuples(rows); ++row)
    held.push_back(held_lease{static_cast<std::uint32_t>(postgres::integer_value(rows, row, 0)),
                              static_cast<std::uint64_t>(postgres::integer_value(rows, row, 1))});
  return held;
}

void lease_table::leave(const std::string& node) {
  auto connected = link();
  if (!connected)
    return;
  auto owner = postgres::quoted(*connected, node);
  (void)run("UPDATE " + names_.partition_leases + " SET owner = '', expires_at = now() WHERE owner = " + owner
            + "; DELETE FROM " + names_.cluster_members + " WHERE node = " + owner + "; SELECT pg_notify("
            + names_.lease_channel_literal + ", " + owner + ")");
}

} // namespace cqrs::detail
