// Internal: the engine core's state and the CAF actors it runs (aggregate, projection, query actors).
// Includes CAF: only the engine's own .cpp files include it.
#pragma once

#include "actors/detail/cluster_runtime.hpp"
#include "actors/detail/cost_counting.hpp"
#include "actors/engine.hpp"

#include <boost/container/devector.hpp>
#include <caf/all.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <typeindex>
#include <unordered_map>
#include <variant>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#  define CQRS_THREAD_SANITIZER 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define CQRS_THREAD_SANITIZER 1
#  endif
#endif
#ifdef CQRS_THREAD_SANITIZER
extern "C" void __tsan_acquire(void* address);
extern "C" void __tsan_release(void* address);
#endif

namespace cqrs::detail {

class engine_core;

// CAF's mailboxes order a send before its receipt inside libcaf_core, which Debian builds without ThreadSanitizer,
// so TSan cannot see that edge and would report every message's payload as a race. Each send through `deliver`
// and each handler that starts with `received` state the edge to TSan; in other builds both compile to nothing.
inline void received([[maybe_unused]] caf::abstract_actor* self) {
#ifdef CQRS_THREAD_SANITIZER
  __tsan_acquire(self);
#endif
}

/// Returns a freshly spawned actor after dropping the reference to CAF's logger that CAF 0.17's spawn leaves in the
/// calling thread: the actor system's destructor waits until the logger is gone, so a host thread that ever
/// spawned (running a command, registering a projection) and outlived the engine made shutdown hang for good.
template <class Handle>
Handle spawned(Handle handle) {
  caf::logger::set_current_actor_system(nullptr);
  return handle;
}

/// Stops an actor with an exit message, stating the edge to TSan like `deliver`, once the message is built (its
/// state's destructor, which runs on whichever worker handles the exit, calls `received`).
template <class Handle>
void stop(const Handle& receiver) {
  if (!receiver)
    return;
  costs::message();
  auto* actor = caf::actor_cast<caf::abstract_actor*>(receiver);
  auto exit = caf::make_message(caf::exit_msg{actor->address(), caf::exit_reason::user_shutdown});
#ifdef CQRS_THREAD_SANITIZER
  __tsan_release(actor);
#endif
  actor->enqueue(nullptr, caf::make_message_id(), std::move(exit), nullptr);
}

/// Sends a message from outside or inside an actor (like anon_send, with its static type check), stating the
/// mailbox edge to TSan once the message is built: every write to its content comes before the release.
template <class Handle, class... Message>
void deliver(const Handle& receiver, Message&&... message) {
  using token = caf::detail::type_list<caf::detail::strip_and_convert_t<Message>...>;
  static_assert(caf::response_type_unbox<caf::signatures_of_t<Handle>, token>::valid,
                "receiver does not accept given message");
  if (!receiver)
    return;
  costs::message();
  auto element = caf::make_mailbox_element(nullptr, caf::make_message_id(), caf::no_stages,
                                           std::forward<Message>(message)...);
  auto* actor = caf::actor_cast<caf::abstract_actor*>(receiver);
#ifdef CQRS_THREAD_SANITIZER
  __tsan_release(actor);
#endif
  actor->enqueue(std::move(element), nullptr);
}

/// A count that many threads change at once: each thread adds to its own stripe (a cache line of its own), so
/// that counting every command in and out does not make the cores pass one line back and forth. A change must
/// be undone on the stripe it was made on; the total is the sum of the stripes.
class striped_count {
public:
  /// This thread's stripe.
  static std::size_t stripe_of_this_thread() noexcept;
  void add(std::size_t stripe) noexcept { stripes_[stripe].value.fetch_add(1); }
  std::int64_t value(std::size_t stripe) const noexcept { return stripes_[stripe].value.load(std::memory_order_relaxed); }
  void subtract(std::size_t stripe) noexcept { stripes_[stripe].value.fetch_sub(1); }
  std::int64_t total() const noexcept {
    std::int64_t sum = 0;
    for (const auto& one : stripes_)
      sum += one.value.load();
    return sum;
  }

  static constexpr std::size_t stripe_count = 16;

private:
  struct alignas(64) stripe {
    std::atomic<std::int64_t> value{0};
  };
  std::array<stripe, stripe_count> stripes_{};
};

/// Counts an operation as in flight while it lives, so shutdown can drain: a command from its creation until
/// its reply is delivered; a query, barrier or inspection while it is being submitted.
class in_flight_token {
public:
  explicit in_flight_token(engine_core& core);
  ~in_flight_token();
  in_flight_token(const in_flight_token&) = delete;
  in_flight_token& operator=(const in_flight_token&) = delete;

private:
  engine_core& core_;
  /// Where it was counted (see striped_count): it may end on another thread.
  std::size_t stripe_;
};


/// A command on its way through its aggregate actor. Replied exactly once (engine_stopped if dropped).
struct command_job {
  command_job(engine_core& core, std::string command, std::string correlation, bool sender_chose_id,
              std::function<void(command_result)> on_reply);

  // Declared first so it is destroyed last: the command leaves the in-flight count after its reply.
  in_flight_token token;
  /// The aggregate's command variant, stored by its router.
  command_storage command;
  std::string command_id;
  std::string correlation_id;
  /// The sender gave the command id, so it may re-send it: look it up before deciding, and let the store find it.
  bool sender_chose_id;
  /// Another cluster node sent it here (cluster.hpp): if this node cannot run it, that node is told to send it on.
  bool forwarded_in = false;
  once_sink<command_result> reply;
};

using state_sink = once_sink<std::expected<std::any, rejection>>;

struct query_message {
  std::shared_ptr<query_task> task;
};
struct expire_message {
  struct projection_slot* slot;
  std::uint64_t waiter;
};
struct rebuild_message {
  std::shared_ptr<query_task> done;
};
/// A background append finished (see event_store::appends_in_background).
struct appended_message {
  std::expected<append_result, store_error> outcome;
};

} // namespace cqrs::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cqrs::detail::query_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cqrs::detail::expire_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cqrs::detail::rebuild_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cqrs::detail::appended_message)

namespace cqrs::detail {

/// "The log has new events": sent to a projection at most once until it starts reading them.
using advance_atom = caf::atom_constant<caf::atom("advance")>;

/// "Look for idle aggregate actors": the passivation sweeper's timer.
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;

/// "Run the work queued in your cell": sent to an aggregate's actor when its work has to wait for an engine thread.
using drain_atom = caf::atom_constant<caf::atom("drain")>;

/// An aggregate instance's CAF actor: runs its cell's queued work, and finishes appends committed in the background.
using aggregate_actor = caf::typed_actor<caf::reacts_to<drain_atom>, caf::reacts_to<appended_message>>;

/// Passivates aggregate actors that have been idle longer than options::passivate_after.
using sweeper_actor = caf::typed_actor<caf::reacts_to<sweep_atom>>;

/// One actor per projection: applies the log in position order and releases queries waiting for a position.
using projection_actor = caf::typed_actor<caf::reacts_to<advance_atom>, caf::reacts_to<rebuild_message>>;

/// A pool of these answers queries from the read models, concurrently with each other and the projections;
/// a query whose position is not reached yet is parked on its projection, with a timer on its query actor.
using query_actor = caf::typed_actor<caf::reacts_to<query_message>, caf::reacts_to<expire_message>>;

/// Work for an aggregate instance: a command, or a look at its state.
using aggregate_work = std::variant<std::shared_ptr<command_job>, std::shared_ptr<state_sink>>;

/// One aggregate instance as an actor: its state, its mailbox (`queue`), and at most one thread at a time running
/// its work, one item after another, in order. That thread is the one that submitted a command while the aggregate
/// was idle (the command runs on the spot: no message, no scheduling), or else the aggregate's CAF actor, spawned
/// the first time work has to wait for an engine thread. Shared by its directory entry and its CAF actor.
class aggregate_cell : public std::enable_shared_from_this<aggregate_cell> {
public:
  aggregate_cell(engine_core& core, const aggregate_model& model, std::shared_ptr<const stream_id> stream,
                 std::mutex& guard);
  aggregate_cell(const aggregate_cell&) = delete;
  aggregate_cell& operator=(const aggregate_cell&) = delete;

  // Guarded by `guard` (its directory shard's mutex), like the directory entry itself.
  /// A thread runs this aggregate's work. The queue holds work only while one does.
  bool running = false;
  /// Allocates nothing until work first waits (std::deque allocates half a kilobyte at construction): most cells
  /// never queue anything, and the directory holds one per live aggregate.
  boost::container::devector<aggregate_work> queue;
  /// Empty until work first waits for an engine thread; dropped (and stopped) when the aggregate passivates.
  aggregate_actor actor;

  /// The CAF actor, spawned on first need; under `guard`.
  const aggregate_actor& ensure_actor();
  /// Has the CAF actor run the queued work, spawning it first if needed; under `guard`, the cell claimed.
  void hand_to_actor();

  /// Runs a command on the calling thread, then what was queued meanwhile, up to a few items (the rest goes to the
  /// actor). The caller claimed the cell (set `running` under `guard`) and keeps it alive.
  void run_here(std::shared_ptr<command_job> job);
  /// The CAF actor's turn: runs queued work, up to a budget per message.
  void drain();
  /// The CAF actor got the outcome of a background append: replies to its command, then goes on with the queue.
  void appended(std::expected<append_result, store_error> outcome);

  /// False while this thread runs an aggregate's work: a command submitted from there (a reply callback sending
  /// the next command) waits for its actor instead, so that the stack never grows with a chain of commands.
  static bool may_run_here() noexcept;

private:
  struct running_scope;

  /// Runs one item; false when it left the cell to a background append's outcome (this thread must let go).
  bool run(aggregate_work work);
  bool run_command(std::shared_ptr<command_job> job);
  void run_inspection(state_sink& reply);
  /// Runs queued work until the queue is empty (then lets the cell go) or `budget` items ran (then hands the rest
  /// to the actor). Returns with the cell still claimed when an append is committing in the background.
  void run_queued(std::size_t budget);
  std::optional<rejection> recover();
  std::optional<std::pair<std::unique_ptr<aggregate_instance>, stream_version>> from_snapshot(log_position& last);
  std::optional<command_result> earlier_outcome(const command_job& job) const;
  /// Decides one command. Returns its result, or nothing when the store commits its events in the background.
  std::optional<command_result> decide(std::shared_ptr<command_job>& job);
  command_result finish(std::expected<append_result, store_error> appended, std::size_t count);
  /// On a cluster node: whether this node holds the aggregate's partition now (a new lease epoch marks the state
  /// for recovery). Always true on a single engine.
  bool holds_lease();
  /// Replies to a command, unless a cluster node's fence refused its append: it then goes to the new owner.
  void reply_or_reroute(std::shared_ptr<command_job> job, command_result result);
  void take_snapshot();

  engine_core& core_;
  const aggregate_model& model_;
  event_store& store_;
  std::shared_ptr<const stream_id> stream_;
  std::mutex& guard_;
  // Owned by the thread that runs the cell.
  std::unique_ptr<aggregate_instance> instance_;
  stream_version version_ = 0;
  /// Position of the stream's latest event: what a command that appends nothing reports.
  log_position last_position_ = 0;
  /// False until the state is rebuilt from the stream, and again whenever it may differ from the stream.
  bool recovered_ = false;
  /// On a cluster node: the aggregate's partition, and the epoch of the lease its state was recovered under (a
  /// later epoch means another node may have appended in between, so the state is recovered again).
  std::uint32_t partition_ = 0;
  std::uint64_t epoch_ = 0;
  /// The command whose append the store is committing in the background, and how many events it appends.
  std::shared_ptr<command_job> committing_;
  std::size_t committing_events_ = 0;
};

/// The directory of one aggregate type's live instances, sharded so that concurrent senders rarely share a lock.
struct aggregate_slot {
  static constexpr std::size_t shard_count = 64;
  struct entry {
    std::shared_ptr<aggregate_cell> cell;
    std::chrono::steady_clock::time_point last_used;
    /// The entry's place in the shard's recency list (whose node owns the aggregate id the map is keyed by).
    std::list<std::string>::iterator recency;
  };
  struct shard {
    std::mutex mutex;
    /// Keys view the ids owned by `recency`.
    std::unordered_map<std::string_view, entry> actors;
    /// Aggregate ids, most recently used first: passivation takes idle actors from the back.
    std::list<std::string> recency;
  };

  std::unique_ptr<aggregate_model> model;
  std::array<shard, shard_count> shards;
};

/// One registered projection: its runtime (read model, lock, checkpoint), its actor, its store listener, and the
/// queries parked until it reaches their position. The parking lot is shared state rather than actor state so that
/// waits and timeouts never queue behind a long batch in the projection's mailbox.
struct projection_slot {
  std::unique_ptr<projection_runtime> runtime;
  projection_actor actor;
  /// True while an advance message is queued and not yet begun: coalesces head notifications.
  std::atomic<bool> advance_pending{false};
  /// Held by whichever thread applies events to the read model (its actor, or an appending thread).
  std::mutex applying;
  /// Set by appenders after each append: the thread applying, if any, looks again before it lets go.
  std::atomic<bool> behind{false};
  std::uint64_t subscription = 0;

  enum class park_outcome { ready, failed, parked };
  /// Parks the task unless its position is reached or the projection failed; `waiter` receives its id.
  park_outcome park(std::shared_ptr<query_task> task, std::uint64_t& waiter);
  /// Takes the parked tasks whose position the checkpoint has reached.
  std::vector<std::shared_ptr<query_task>> take_reached();
  /// Takes one parked task by id (its deadline passed); null if it was released already.
  std::shared_ptr<query_task> take(std::uint64_t waiter);
  /// Takes every parked task (the projection failed).
  std::vector<std::shared_ptr<query_task>> take_all();
  /// Tasks parked now (or about to be).
  std::size_t parked() const noexcept { return parked_count_.load(std::memory_order_relaxed); }

private:
  struct parked_task {
    std::uint64_t id;
    std::shared_ptr<query_task> task;
  };
  std::mutex waiters_mutex_;
  /// Tasks parked or about to be: lets take_reached skip the lock when nobody waits.
  std::atomic<std::size_t> parked_count_{0};
  std::multimap<log_position, parked_task> waiters_;
  std::unordered_map<std::uint64_t, std::multimap<log_position, parked_task>::iterator> waiters_by_id_;
  std::uint64_t last_waiter_ = 0;
};

/// Answers a task from its read model now, under the shared lock (or fails it if the projection stopped).
void answer(query_task& task);

/// Applies up to `limit` new events to the slot's read model, in batches; the caller holds `slot.applying`.
/// Releases the queries whose position each batch reaches. Returns true if the log holds more.
bool apply_new_events(projection_slot& slot, event_store& store, engine_core& core, log_position limit);

/// Spawns the CAF actor of one aggregate instance, which runs its cell's work.
aggregate_actor spawn_aggregate(caf::actor_system& system, std::shared_ptr<aggregate_cell> cell);

sweeper_actor spawn_sweeper(caf::actor_system& system, engine_core* core);

/// Spawns a projection's actor; it starts applying the log when woken.
projection_actor spawn_projection(caf::actor_system& system, projection_slot* slot, event_store* store,
                                  engine_core* core);

query_actor spawn_query_actor(caf::actor_system& system, engine_core* core);

/// A lookup table read on every command or query without a lock. Registration (under registry_mutex) publishes a
/// changed copy; earlier copies stay until the engine ends, since a reader may still be looking at one (there are
/// as many as registrations, a handful).
template <class Map>
class published_table {
public:
  published_table() { update([](Map&) {}); }

  const Map& current() const noexcept { return *current_.load(std::memory_order_acquire); }

  template <class Change>
  void update(Change change) {
    auto next = current_.load(std::memory_order_relaxed) ? std::make_unique<Map>(current()) : std::make_unique<Map>();
    change(*next);
    current_.store(next.get(), std::memory_order_release);
    versions_.push_back(std::move(next));
  }

private:
  std::vector<std::unique_ptr<Map>> versions_;
  std::atomic<const Map*> current_{nullptr};
};

/// Everything the engine owns. The public engine class is a thin handle to it.
class engine_core {
public:
  explicit engine_core(options settings);
  ~engine_core();

  /// Waits until every projection has applied the head as of the call (or failed, or the timeout passed).
  std::expected<void, query_error> catch_up(std::chrono::milliseconds timeout);
  /// Gives work to an aggregate instance, creating it first if it is not alive (never, or passivated): runs a
  /// command on this thread when the aggregate is idle, else queues the work for whichever thread runs it.
  void submit_to_aggregate(aggregate_slot& slot, std::string aggregate_id, aggregate_work work);
  /// Stops the actors idle since before `now - passivate_after` (the sweeper calls it periodically).
  void passivate_idle();
  /// Under the shard's lock: passivates idle actors from the least recently used end while the shard, with
  /// `incoming` more, would be over its share of options::max_live_aggregates.
  void make_room(aggregate_slot::shard& shard, std::size_t incoming);
  void count_started();
  /// Records that the store failed to commit: the engine refuses writes from now on.
  void mark_unhealthy(const std::string& reason);
  /// Why the engine refuses writes, or nothing while it accepts them.
  std::optional<std::string> unhealthy_reason() const;

  /// Write-side counters (see engine_statistics); relaxed atomics, read for reports.
  struct counters_type {
    std::atomic<std::int64_t> live_aggregates{0};
    std::atomic<std::int64_t> peak_live_aggregates{0};
    std::atomic<std::uint64_t> aggregates_started{0};
    std::atomic<std::uint64_t> aggregates_passivated{0};
    std::atomic<std::uint64_t> snapshots_used{0};
    std::atomic<std::uint64_t> snapshots_rejected{0};
    std::atomic<std::uint64_t> snapshots_saved{0};
    std::atomic<std::uint64_t> events_replayed{0};
    std::atomic<std::uint64_t> duplicate_commands{0};
  };
  counters_type counters;
  /// A counter changed without a command (an aggregate passivated): wakes engine::wait_for_statistics.
  void statistics_changed();
  std::atomic<int> statistics_waiters{0};
  std::mutex statistics_mutex;
  std::condition_variable statistics_wakeup;
  /// Hands a query whose position is reached (or that wants none) to a query actor.
  void dispatch_query(std::shared_ptr<query_task> task);
  /// Wakes the projection's actor unless a wake-up is already queued.
  void wake(projection_slot& slot);
  /// Wakes the projection's actor after `delay` (a retry's backoff), whatever is queued.
  void wake_after(projection_slot& slot, std::chrono::milliseconds delay);
  /// The store has a new head: apply it on this thread if no other thread is applying, else leave it to that one.
  void on_new_head(projection_slot& slot);
  /// Applies what appenders left behind while `applying` was taken, unless another thread holds it now.
  void combine(projection_slot& slot);
  /// Answers a query now if its projection reached its position (or failed), else parks it until the projection
  /// does, with a timer on a query actor for its deadline.
  void park_or_answer(std::shared_ptr<query_task> task);
  /// Answers a query whose position its projection reached: on this thread, or through a query actor.
  void release(std::shared_ptr<query_task> task);

  /// True when a new command, or a query that would wait, would take the engine past options::max_in_flight;
  /// `counted_already` says how many of the operations in flight are the caller's own.
  bool over_capacity(std::int64_t counted_already = 0) const noexcept;
  /// The refusal of a command while a read model lags more than options::max_projection_lag behind the head.
  std::optional<std::string> lagging_read_model() const;
  /// Counts an operation in (on this thread's stripe, returned) and out (on the same stripe).
  std::size_t operation_started();
  void operation_finished(std::size_t stripe);

  options settings;
  std::shared_ptr<event_store> store;
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  /// Set when the engine is a cluster node (options::cluster).
  std::unique_ptr<cluster_runtime> cluster;

  mutable std::shared_mutex registry_mutex;
  std::vector<std::unique_ptr<aggregate_slot>> aggregates;
  std::unordered_map<std::string, aggregate_slot*> aggregates_by_name;
  /// Command type -> its aggregate and router: read by every command, without the registry lock.
  published_table<std::unordered_map<std::type_index, std::pair<aggregate_slot*, command_router>>> routes;
  std::vector<std::unique_ptr<projection_slot>> projections;
  /// Read by every query, without the registry lock.
  published_table<std::unordered_map<std::type_index, projection_slot*>> projections_by_type;

  std::vector<query_actor> query_actors;
  std::atomic<std::size_t> next_query_actor{0};
  sweeper_actor sweeper;

  std::atomic<bool> unhealthy{false};
  mutable std::mutex unhealthy_mutex;
  std::string unhealthy_reason_text;
  /// Makes the engine's own command ids unique across engines sharing a store and across restarts.
  std::string command_id_prefix;

  std::atomic<bool> closing{false};
  striped_count in_flight;
  std::mutex drain_mutex;
  std::condition_variable drained;
  std::atomic<std::uint64_t> last_command_number{0};
  std::once_flag shutdown_once;
};

} // namespace cqrs::detail
