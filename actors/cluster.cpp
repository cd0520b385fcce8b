// A cluster node's runtime (cluster.hpp): the lease thread that renews, takes and gives up this node's partition
// leases and keeps its view of who owns the rest, the node actor other nodes send commands to (published with
// CAF's middleman), and the router actor that carries this node's commands to their owners and holds those whose
// partition is moving until it has an owner again.
#include "actors/detail/cluster_runtime.hpp"
#include "actors/detail/lease_table.hpp"
#include "actors/detail/runtime.hpp"
#include "actors/postgres_event_store.hpp"

#include <caf/io/all.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <condition_variable>
#include <map>
#include <set>
#include <thread>

namespace cqrs::detail {

struct routed_command {
  aggregate_slot* slot = nullptr;
  std::string aggregate_id;
  std::uint32_t partition = 0;
  std::shared_ptr<command_job> job;
  std::chrono::steady_clock::time_point deadline;
};

struct route_message {
  std::shared_ptr<routed_command> command;
};

} // namespace cqrs::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cqrs::detail::route_message)

namespace cqrs::detail {
namespace {

/// A command carried to its owner: aggregate type, command alternative, its JSON, command id, correlation id.
/// The owner answers (version, position, events, code, message), with an empty code when it was accepted.
using forward_atom = caf::atom_constant<caf::atom("forward")>;
/// A forwarded command's outcome, from the engine thread that ran it to the node actor that answers the request.
using outcome_atom = caf::atom_constant<caf::atom("outcome")>;
/// "The view changed (or a heartbeat passed)": the router sends the commands it holds again.
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;

using node_actor = caf::typed_actor<
  caf::replies_to<forward_atom, std::string, std::uint32_t, std::string, std::string, std::string>::with<
    std::uint64_t, std::uint64_t, std::uint64_t, std::string, std::string>,
  caf::reacts_to<outcome_atom, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::string, std::string>>;

using router_actor = caf::typed_actor<caf::reacts_to<route_message>, caf::reacts_to<heartbeat_atom>>;

/// Not this node's partition (it moved, or this node is starting or stopping): the sender tries the owner again.
constexpr std::string_view not_owner = "not_owner";

bool retriable(std::string_view code) {
  return code == errc::fenced || code == not_owner || code == errc::engine_stopped || code == errc::overloaded;
}

/// Who serves a partition, as of the last heartbeat.
struct owner_view {
  bool here = false;
  /// host:port of the owner's node actor; empty when the partition has no live owner.
  std::string address;
};

class cluster_node;

struct node_state {
  static inline const char* name = "cqrs.cluster-node";
  ~node_state() { received(self); }
  node_actor::pointer self = nullptr;
  std::uint64_t next_request = 0;
  std::unordered_map<std::uint64_t,
                     caf::typed_response_promise<std::uint64_t, std::uint64_t, std::uint64_t, std::string, std::string>>
    waiting;
};

struct router_state {
  static inline const char* name = "cqrs.cluster-router";
  ~router_state() { received(self); }
  router_actor::pointer self = nullptr;
  /// Connected peers by address, and the addresses being connected to.
  std::map<std::string, node_actor> peers;
  std::set<std::string> connecting;
  /// Commands without a reachable owner, sent again at the next heartbeat (or once their owner is connected).
  std::vector<std::shared_ptr<routed_command>> held;
  /// A heartbeat of its own is on its way: held commands go again after a heartbeat interval even when the lease
  /// thread is slow to send one.
  bool retry_scheduled = false;
};

class cluster_node final : public cluster_runtime {
public:
  cluster_node(engine_core& core, const cluster_options& settings, std::shared_ptr<postgres_event_store> store)
    : core_(core),
      settings_(settings),
      store_(std::move(store)),
      leases_(store_->conninfo(), store_->schema(), settings.partitions),
      held_(settings.partitions) {
    if (settings_.heartbeat_interval.count() <= 0)
      settings_.heartbeat_interval = settings_.lease_duration / 4;
    if (settings_.routing_timeout.count() <= 0)
      settings_.routing_timeout = settings_.lease_duration * 3;
    owners_.resize(settings.partitions);
  }

  ~cluster_node() override { leave(); }

  void start();

  std::uint32_t partition_of(std::string_view type, std::string_view id) const override {
    XXH3_state_t state;
    XXH3_64bits_reset(&state);
    XXH3_64bits_update(&state, type.data(), type.size());
    XXH3_64bits_update(&state, "/", 1);
    XXH3_64bits_update(&state, id.data(), id.size());
    return static_cast<std::uint32_t>(XXH3_64bits_digest(&state) % settings_.partitions);
  }

  std::uint64_t held_epoch(std::uint32_t partition) const noexcept override {
    return held_[partition].load(std::memory_order_acquire);
  }

  void route(aggregate_slot& slot, std::string aggregate_id, std::shared_ptr<command_job> job) override {
    auto partition = partition_of(slot.model->type_name, aggregate_id);
    if (held_epoch(partition) != 0) {
      core_.submit_to_aggregate(slot, std::move(aggregate_id), std::move(job));
      return;
    }
    send_to_router(slot, std::move(aggregate_id), partition, std::move(job));
  }

  void reroute(const aggregate_model& model, const stream_id& stream, std::shared_ptr<command_job> job) override {
    if (job->forwarded_in) {
      job->reply(std::unexpected(rejection{std::string{not_owner}, "this node no longer owns " + stream.to_string()}));
      return;
    }
    aggregate_slot* slot = nullptr;
    {
      std::shared_lock lock{core_.registry_mutex};
      if (auto found = core_.aggregates_by_name.find(model.type_name); found != core_.aggregates_by_name.end())
        slot = found->second;
    }
    send_to_router(*slot, stream.id, partition_of(stream.type, stream.id), std::move(job));
  }

  void fenced(std::uint32_t partition, std::uint64_t epoch) override {
    fenced_appends_.fetch_add(1, std::memory_order_relaxed);
    auto expected = epoch;
    if (held_[partition].compare_exchange_strong(expected, 0))
      leases_lost_.fetch_add(1, std::memory_order_relaxed);
  }

  cluster_status status() const override {
    cluster_status result;
    result.node = settings_.node_name;
    result.address = address_;
    for (std::uint32_t partition = 0; partition < settings_.partitions; ++partition)
      if (held_epoch(partition) != 0)
        result.owned.push_back(partition);
    {
      std::lock_guard lock{view_mutex_};
      result.live_nodes = live_nodes_;
      result.last_error = last_error_;
    }
    result.heartbeats = heartbeats_.load(std::memory_order_relaxed);
    result.leases_acquired = leases_acquired_.load(std::memory_order_relaxed);
    result.leases_released = leases_released_.load(std::memory_order_relaxed);
    result.leases_lost = leases_lost_.load(std::memory_order_relaxed);
    result.forwarded_out = forwarded_out_.load(std::memory_order_relaxed);
    result.forwarded_in = forwarded_in_.load(std::memory_order_relaxed);
    result.fenced_appends = fenced_appends_.load(std::memory_order_relaxed);
    result.retries = retries_.load(std::memory_order_relaxed);
    result.unavailable = unavailable_.load(std::memory_order_relaxed);
    return result;
  }

  bool wait_for(const std::function<bool(const cluster_status&)>& condition,
                std::chrono::milliseconds timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock{beat_mutex_};
    while (true) {
      auto seen = beats_seen_;
      lock.unlock();
      if (condition(status()))
        return true;
      lock.lock();
      if (!beat_done_.wait_until(lock, deadline, [&] { return beats_seen_ != seen || stopping_; }))
        return false;
      if (stopping_)
        return condition(status());
    }
  }

  void stop_routing() override {
    routing_stopped_.store(true);
    if (router_)
      deliver(router_, heartbeat_atom::value);
  }

  void leave() override {
    {
      std::lock_guard lock{beat_mutex_};
      if (stopping_)
        return;
      stopping_ = true;
    }
    beat_done_.notify_all();
    if (lease_thread_.joinable())
      lease_thread_.join();
    for (auto& epoch : held_)
      epoch.store(0);
    leases_.leave(settings_.node_name);
    stop(router_);
    stop(node_);
    router_ = nullptr;
    node_ = nullptr;
  }

  // --- Used by the actors ---

  /// Where a partition is served, as of the last heartbeat.
  owner_view owner(std::uint32_t partition) const {
    if (held_epoch(partition) != 0)
      return owner_view{true, {}};
    std::lock_guard lock{view_mutex_};
    return owner_view{false, owners_[partition]};
  }

  bool routing_stopped() const { return routing_stopped_.load() || core_.closing.load(); }
  std::chrono::milliseconds attempt_timeout() const { return settings_.lease_duration; }
  std::chrono::milliseconds retry_interval() const { return settings_.heartbeat_interval; }
  engine_core& core() { return core_; }

  /// A command another node forwarded: run here when this node holds its partition, else answered not_owner.
  void run_forwarded(const std::string& type, aggregate_model::encoded_command encoded, std::string command_id,
                     std::string correlation_id, std::function<void(command_result)> on_reply) {
    forwarded_in_.fetch_add(1, std::memory_order_relaxed);
    auto refuse = [&](std::string_view code, std::string message) {
      on_reply(std::unexpected(rejection{std::string{code}, std::move(message)}));
    };
    if (core_.closing.load())
      return refuse(errc::engine_stopped, "node " + settings_.node_name + " is shutting down");
    aggregate_slot* slot = nullptr;
    {
      std::shared_lock lock{core_.registry_mutex};
      if (auto found = core_.aggregates_by_name.find(type); found != core_.aggregates_by_name.end())
        slot = found->second;
    }
    if (!slot || !slot->model->decode_command)
      return refuse(not_owner, "node " + settings_.node_name + " has no aggregate type " + type + " (yet)");
    auto job = std::make_shared<command_job>(core_, std::move(command_id), std::move(correlation_id), true,
                                             std::move(on_reply));
    job->forwarded_in = true;
    auto aggregate_id = slot->model->decode_command(encoded, job->command);
    if (!aggregate_id) {
      job->reply(std::unexpected(rejection{std::string{errc::unknown_command}, std::move(aggregate_id.error())}));
      return;
    }
    auto partition = partition_of(type, *aggregate_id);
    if (held_epoch(partition) == 0) {
      job->reply(std::unexpected(rejection{std::string{not_owner}, "node " + settings_.node_name
                                                                     + " does not own partition "
                                                                     + std::to_string(partition)}));
      return;
    }
    core_.submit_to_aggregate(*slot, std::move(*aggregate_id), std::move(job));
  }

  void count_forwarded() { forwarded_out_.fetch_add(1, std::memory_order_relaxed); }
  void count_retry() { retries_.fetch_add(1, std::memory_order_relaxed); }
  void count_unavailable() { unavailable_.fetch_add(1, std::memory_order_relaxed); }
  const std::string& node_name() const { return settings_.node_name; }

private:
  void send_to_router(aggregate_slot& slot, std::string aggregate_id, std::uint32_t partition,
                      std::shared_ptr<command_job> job) {
    auto command = std::make_shared<routed_command>();
    command->slot = &slot;
    command->aggregate_id = std::move(aggregate_id);
    command->partition = partition;
    command->job = std::move(job);
    command->deadline = std::chrono::steady_clock::now() + settings_.routing_timeout;
    deliver(router_, route_message{std::move(command)});
  }

  void run_leases();
  void heartbeat();

  engine_core& core_;
  cluster_options settings_;
  std::shared_ptr<postgres_event_store> store_;
  lease_table leases_;
  std::string address_;
  /// The epoch of each partition's lease while this node holds it, else 0; written by the lease thread (and by
  /// `fenced`), read on every command.
  std::vector<std::atomic<std::uint64_t>> held_;
  /// Until when (by this node's clock) its leases surely hold: the last renewal was sent before the database
  /// moved their expiry to a lease from then.
  std::chrono::steady_clock::time_point valid_until_{};

  mutable std::mutex view_mutex_;
  std::vector<std::string> owners_;
  std::size_t live_nodes_ = 0;
  std::string last_error_;

  std::mutex beat_mutex_;
  std::condition_variable beat_done_;
  std::uint64_t beats_seen_ = 0;
  bool stopping_ = false;
  std::atomic<bool> routing_stopped_{false};
  std::thread lease_thread_;

  node_actor node_;
  router_actor router_;

  std::atomic<std::uint64_t> heartbeats_{0};
  std::atomic<std::uint64_t> leases_acquired_{0};
  std::atomic<std::uint64_t> leases_released_{0};
  std::atomic<std::uint64_t> leases_lost_{0};
  std::atomic<std::uint64_t> forwarded_out_{0};
  std::atomic<std::uint64_t> forwarded_in_{0};
  std::atomic<std::uint64_t> fenced_appends_{0};
  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> unavailable_{0};
};

// --- The node actor: commands from other nodes ---

node_actor::behavior_type node_behavior(node_actor::stateful_pointer<node_state> self, cluster_node* cluster) {
  self->state.self = self;
  return {
    [self, cluster](forward_atom, const std::string& type, std::uint32_t alternative, const std::string& json,
                    const std::string& command_id, const std::string& correlation_id)
      -> caf::result<std::uint64_t, std::uint64_t, std::uint64_t, std::string, std::string> {
      received(self);
      auto promise = self->make_response_promise<std::uint64_t, std::uint64_t, std::uint64_t, std::string,
                                                 std::string>();
      auto number = ++self->state.next_request;
      self->state.waiting.emplace(number, promise);
      node_actor handle = self;
      cluster->run_forwarded(type, aggregate_model::encoded_command{alternative, json}, command_id, correlation_id,
                             [handle, number](command_result result) {
                               if (result)
                                 deliver(handle, outcome_atom::value, number, std::uint64_t{result->version},
                                         std::uint64_t{result->position}, std::uint64_t{result->events},
                                         std::string{}, std::string{});
                               else
                                 deliver(handle, outcome_atom::value, number, std::uint64_t{0}, std::uint64_t{0},
                                         std::uint64_t{0}, std::move(result.error().code),
                                         std::move(result.error().message));
                             });
      return promise;
    },
    [self](outcome_atom, std::uint64_t number, std::uint64_t version, std::uint64_t position, std::uint64_t events,
           std::string& code, std::string& message) {
      received(self);
      auto found = self->state.waiting.find(number);
      if (found == self->state.waiting.end())
        return;
      found->second.deliver(version, position, events, std::move(code), std::move(message));
      self->state.waiting.erase(found);
    },
  };
}

// --- The router actor: this node's commands to their owners ---

void answer(routed_command& command, command_result result) {
  command.job->reply(std::move(result));
}

void dispatch(router_actor::stateful_pointer<router_state> self, cluster_node* cluster,
              std::shared_ptr<routed_command> command);

void hold(router_actor::stateful_pointer<router_state> self, cluster_node* cluster,
          std::shared_ptr<routed_command> command) {
  self->state.held.push_back(std::move(command));
  if (!self->state.retry_scheduled) {
    self->state.retry_scheduled = true;
    self->delayed_send(self, cluster->retry_interval(), heartbeat_atom::value);
  }
}

void connect(router_actor::stateful_pointer<router_state> self, cluster_node* cluster, const std::string& address) {
  if (self->state.connecting.contains(address))
    return;
  auto colon = address.rfind(':');
  if (colon == std::string::npos)
    return;
  self->state.connecting.insert(address);
  auto host = address.substr(0, colon);
  auto port = static_cast<std::uint16_t>(std::stoul(address.substr(colon + 1)));
  self
    ->request(self->system().middleman().actor_handle(), cluster->attempt_timeout(), caf::connect_atom::value,
              std::move(host), port)
    .then(
      [self, cluster, address](const caf::node_id&, caf::strong_actor_ptr& remote, const std::set<std::string>&) {
        received(self);
        self->state.connecting.erase(address);
        if (!remote)
          return;
        auto peer = caf::actor_cast<node_actor>(std::move(remote));
        self->monitor(peer);
        self->state.peers[address] = peer;
        // Whatever waited for this peer goes now.
        auto waiting = std::move(self->state.held);
        self->state.held.clear();
        for (auto& command : waiting)
          dispatch(self, cluster, std::move(command));
      },
      [self, address](caf::error&) {
        received(self);
        self->state.connecting.erase(address);
      });
}

void forward(router_actor::stateful_pointer<router_state> self, cluster_node* cluster,
             std::shared_ptr<routed_command> command, const node_actor& peer) {
  const auto& model = *command->slot->model;
  if (!model.encode_command) {
    answer(*command, std::unexpected(rejection{std::string{errc::unavailable},
                                               "commands of aggregate type " + model.type_name
                                                 + " do not convert to JSON, so this node cannot forward them to "
                                                   "their owner (describe them with BOOST_DESCRIBE_STRUCT)"}));
    return;
  }
  auto encoded = model.encode_command(command->job->command.get());
  cluster->count_forwarded();
  // Exactly one of the two handlers runs: the reply, or the error (no answer within a lease, the peer gone).
  self
    ->request(peer, cluster->attempt_timeout(), forward_atom::value, model.type_name, encoded.alternative,
              std::move(encoded.json), command->job->command_id, command->job->correlation_id)
    .then(
      [self, cluster, command](std::uint64_t version, std::uint64_t position, std::uint64_t events, std::string& code,
                               std::string& message) {
        received(self);
        if (code.empty())
          answer(*command, accepted{version, position, static_cast<std::size_t>(events)});
        else if (retriable(code))
          hold(self, cluster, command);
        else
          answer(*command, std::unexpected(rejection{std::move(code), std::move(message)}));
      },
      [self, cluster, command](caf::error&) {
        // Whether it ran is unknown, so it goes again, with its command id.
        received(self);
        hold(self, cluster, command);
      });
}

void dispatch(router_actor::stateful_pointer<router_state> self, cluster_node* cluster,
              std::shared_ptr<routed_command> command) {
  if (cluster->routing_stopped()) {
    answer(*command, std::unexpected(rejection{std::string{errc::engine_stopped},
                                               "the engine stopped before the command reached its owner"}));
    return;
  }
  if (std::chrono::steady_clock::now() > command->deadline) {
    cluster->count_unavailable();
    answer(*command, std::unexpected(rejection{std::string{errc::unavailable},
                                               "no node served partition " + std::to_string(command->partition)
                                                 + " in time; re-send command " + command->job->command_id
                                                 + " with that id to learn whether it ran"}));
    return;
  }
  auto owner = cluster->owner(command->partition);
  if (owner.here) {
    cluster->core().submit_to_aggregate(*command->slot, command->aggregate_id, std::move(command->job));
    return;
  }
  if (owner.address.empty())
    return hold(self, cluster, std::move(command));
  auto peer = self->state.peers.find(owner.address);
  if (peer == self->state.peers.end()) {
    connect(self, cluster, owner.address);
    return hold(self, cluster, std::move(command));
  }
  forward(self, cluster, std::move(command), peer->second);
}

router_actor::behavior_type router_behavior(router_actor::stateful_pointer<router_state> self,
                                            cluster_node* cluster) {
  self->state.self = self;
  self->set_down_handler([self](caf::down_msg& down) {
    received(self);
    for (auto peer = self->state.peers.begin(); peer != self->state.peers.end();)
      if (peer->second.address() == down.source)
        peer = self->state.peers.erase(peer);
      else
        ++peer;
  });
  return {
    [self, cluster](route_message& message) {
      received(self);
      dispatch(self, cluster, std::move(message.command));
    },
    [self, cluster](heartbeat_atom) {
      received(self);
      self->state.retry_scheduled = false;
      auto waiting = std::move(self->state.held);
      self->state.held.clear();
      for (auto& command : waiting) {
        cluster->count_retry();
        dispatch(self, cluster, std::move(command));
      }
    },
  };
}

// --- The lease thread ---

void cluster_node::start() {
  auto opened = leases_.open();
  if (!opened)
    throw std::runtime_error("cluster node: " + opened.error());
  auto& system = *core_.system;
  node_ = spawned(system.spawn(node_behavior, this));
  auto port = system.middleman().publish(node_, settings_.port, settings_.host.c_str(), false);
  if (!port) {
    stop(node_);
    throw std::runtime_error("cluster node: cannot listen on " + settings_.host + ":" + std::to_string(settings_.port)
                             + ": " + system.render(port.error()));
  }
  address_ = settings_.host + ":" + std::to_string(*port);
  if (settings_.node_name.empty())
    settings_.node_name = address_;
  router_ = spawned(system.spawn(router_behavior, this));
  heartbeat(); // joined, and holding its first leases if any are free, before the host sends anything
  lease_thread_ = std::thread([this] { run_leases(); });
}

void cluster_node::run_leases() {
  std::unique_lock lock{beat_mutex_};
  while (!stopping_) {
    beat_done_.wait_for(lock, settings_.heartbeat_interval, [this] { return stopping_; });
    if (stopping_)
      break;
    lock.unlock();
    heartbeat();
    lock.lock();
  }
}

void cluster_node::heartbeat() {
  auto sent = std::chrono::steady_clock::now();
  auto rows = leases_.beat(settings_.node_name, address_, settings_.lease_duration);
  std::string error;
  std::vector<held_lease> now_held;
  std::vector<held_lease> release;
  if (rows) {
    auto plan = plan_partitions(*rows);
    int me = -1;
    for (std::size_t index = 0; index < rows->members.size(); ++index)
      if (rows->members[index].node == settings_.node_name)
        me = static_cast<int>(index);
    std::vector<held_lease> renew;
    std::vector<std::uint32_t> acquire;
    for (std::uint32_t partition = 0; partition < settings_.partitions; ++partition) {
      auto epoch = held_epoch(partition);
      const auto& lease = (*rows).leases[partition];
      bool mine = plan[partition] == me && me >= 0;
      if (epoch != 0 && !mine) {
        // Given up: commands for it go to the new owner from now on (they are held until it has one).
        held_[partition].store(0);
        release.push_back(held_lease{partition, epoch});
      } else if (epoch != 0) {
        renew.push_back(held_lease{partition, epoch});
      } else if (mine && !lease.live) {
        acquire.push_back(partition);
      }
    }
    auto updated = leases_.update(settings_.node_name, release, renew, acquire, settings_.lease_duration);
    if (updated) {
      now_held = std::move(*updated);
      valid_until_ = sent + settings_.lease_duration;
      std::vector<std::uint64_t> next(settings_.partitions, 0);
      for (const auto& lease : now_held)
        next[lease.partition] = lease.epoch;
      for (std::uint32_t partition = 0; partition < settings_.partitions; ++partition) {
        auto before = held_[partition].exchange(next[partition]);
        if (before == 0 && next[partition] != 0)
          leases_acquired_.fetch_add(1, std::memory_order_relaxed);
        else if (before != 0 && next[partition] != before)
          leases_lost_.fetch_add(1, std::memory_order_relaxed);
      }
      leases_released_.fetch_add(release.size(), std::memory_order_relaxed);
      std::map<std::string, std::string> addresses;
      for (const auto& member : rows->members)
        addresses[member.node] = member.address;
      std::lock_guard view{view_mutex_};
      for (std::uint32_t partition = 0; partition < settings_.partitions; ++partition) {
        const auto& lease = rows->leases[partition];
        auto found = addresses.find(lease.owner);
        owners_[partition] = lease.live && found != addresses.end() && lease.owner != settings_.node_name
                               ? found->second
                               : std::string{};
      }
      live_nodes_ = rows->members.size();
    } else {
      error = updated.error();
    }
  } else {
    error = rows.error();
  }
  if (!error.empty() && std::chrono::steady_clock::now() > valid_until_) {
    // Not renewed for a whole lease: the database may have let the leases go (the fence refuses their appends
    // anyway); commands wait for the view to come back instead of failing at the fence one by one.
    for (auto& epoch : held_)
      if (epoch.exchange(0) != 0)
        leases_lost_.fetch_add(1, std::memory_order_relaxed);
  }
  {
    std::lock_guard view{view_mutex_};
    last_error_ = error;
  }
  heartbeats_.fetch_add(1, std::memory_order_relaxed);
  if (router_)
    deliver(router_, heartbeat_atom::value);
  {
    std::lock_guard lock{beat_mutex_};
    ++beats_seen_;
  }
  beat_done_.notify_all();
}

} // namespace

void cluster_runtime::prepare(caf::actor_system_config& config) {
  config.load<caf::io::middleman>();
}

std::unique_ptr<cluster_runtime> cluster_runtime::start(engine_core& core, const cluster_options& settings) {
  auto store = std::dynamic_pointer_cast<postgres_event_store>(core.store);
  if (!store)
    throw std::invalid_argument("a cluster node needs a PostgreSQL store (options::store from "
                                "open_postgres_event_store): the leases and the shared log live there");
  if (settings.partitions == 0)
    throw std::invalid_argument("a cluster needs at least one partition (cluster_options::partitions)");
  if (settings.lease_duration.count() <= 0)
    throw std::invalid_argument("cluster_options::lease_duration must be positive");
  auto node = std::make_unique<cluster_node>(core, settings, std::move(store));
  node->start();
  return node;
}

} // namespace cqrs::detail
