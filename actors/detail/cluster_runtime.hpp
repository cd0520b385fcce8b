// Internal: a cluster node's runtime as the engine core sees it: which partitions this node holds (read on every
// command), and where a command goes when they are another node's. Its CAF actors live in cluster.cpp.
#pragma once

#include "actors/cluster.hpp"
#include "actors/envelope.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace caf {
class actor_system_config;
}

namespace cqrs::detail {

class engine_core;
struct aggregate_slot;
struct aggregate_model;
struct command_job;

class cluster_runtime {
public:
  /// Loads CAF's middleman into the configuration the engine's actor system is made from.
  static void prepare(caf::actor_system_config& config);
  /// Publishes this node's actor, joins the cluster (its first heartbeat) and starts the lease thread. Throws
  /// std::invalid_argument when the store is not a PostgreSQL store, std::runtime_error when the database or the
  /// port cannot be used.
  static std::unique_ptr<cluster_runtime> start(engine_core& core, const cluster_options& settings);
  virtual ~cluster_runtime() = default;

  /// The partition of an aggregate (its type and id), the same on every node.
  virtual std::uint32_t partition_of(std::string_view type, std::string_view id) const = 0;
  /// The epoch of this node's lease on the partition, 0 when it holds none. Read on every command: one atomic load.
  virtual std::uint64_t held_epoch(std::uint32_t partition) const noexcept = 0;
  /// A command from this node's host: run here when this node holds its partition, else forwarded to the owner.
  virtual void route(aggregate_slot& slot, std::string aggregate_id, std::shared_ptr<command_job> job) = 0;
  /// A command its aggregate here cannot run (the lease is gone, or its append was fenced): forwarded to the owner,
  /// or, when it came from another node, answered errc::fenced for that node to send it on.
  virtual void reroute(const aggregate_model& model, const stream_id& stream, std::shared_ptr<command_job> job) = 0;
  /// An append under (partition, epoch) was refused by the fence: this node no longer holds that lease.
  virtual void fenced(std::uint32_t partition, std::uint64_t epoch) = 0;
  virtual cluster_status status() const = 0;
  virtual bool wait_for(const std::function<bool(const cluster_status&)>& condition,
                        std::chrono::milliseconds timeout) = 0;
  /// Shutdown's first step: commands waiting for an owner are answered errc::engine_stopped, new ones refused.
  virtual void stop_routing() = 0;
  /// Shutdown's last step before the actors stop: ends the lease thread and gives up this node's leases, so that
  /// the other nodes take its partitions over at once.
  virtual void leave() = 0;
};

} // namespace cqrs::detail
