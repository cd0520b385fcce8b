// The embedding API: one cqrs::engine owns the actor system, the event store, and the host's registered domain.
#pragma once

#include "actors/cluster.hpp"
#include "actors/decision.hpp"
#include "actors/detail/type_erasure.hpp"
#include "actors/domain_contract.hpp"
#include "actors/envelope.hpp"
#include "actors/event_codec.hpp"
#include "actors/event_store.hpp"
#include "actors/errors.hpp"

#include <chrono>
#include <cstddef>
#include <expected>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>
#include <variant>
#include <vector>

namespace cqrs {

namespace detail {
class engine_core;
}

/// How CAF's scheduler hands work to its worker threads.
enum class scheduler_policy {
  /// Work stealing (CAF's default): lowest overhead, runs a woken actor next on the same worker.
  stealing,
  /// One shared queue: fairer interleaving of many clients, more contention.
  sharing,
};

/// Where a query whose read model is already at the wanted position is answered.
enum class query_dispatch {
  /// On the calling thread, under the read model's shared lock: no actor hop (the fastest; the default).
  /// Queries that must wait for their position still park and are answered by the query actors.
  caller_when_ready,
  /// Always by one of the query actors (the caller's thread never reads a read model).
  query_actors,
};

/// Which thread runs a command whose aggregate is idle.
enum class command_dispatch {
  /// The thread that sends it, inside send(): no message and no scheduling, the reply before send() returns (the
  /// default). A command to a busy aggregate waits in the aggregate's queue for the thread running it, and one
  /// sent from inside a reply callback goes to the aggregate's actor, so that chains of commands never nest.
  caller_when_idle,
  /// Always the aggregate's actor, on a CAF worker: for hosts whose sending threads must never run domain code
  /// or wait for the store (an event loop, say; recovering an aggregate reads its stream).
  aggregate_actor,
};

/// Which thread applies new events to the read models.
enum class projection_dispatch {
  /// The projection actors apply new events in batches (cheap per event), and a query that waits for a position
  /// its read model has not reached applies the missing events itself, on its own thread, when no other thread is
  /// applying to that read model: read-your-writes without waiting for the projection actor's turn on a busy
  /// scheduler. The default.
  projection_actor_or_waiting_query,
  /// The thread that appended them, unless another thread is already applying to that read model (it then
  /// applies these too: flat combining); the projection actor takes over long catch-ups and rebuilds. Every
  /// event is applied at once (lowest visibility latency), at a cost per event. With a store that commits in the
  /// background (SQLite), the projection actors apply instead, so that the store's commit thread never waits.
  appending_thread,
  /// Only the projection actors (each read model applied on a CAF worker, in turn with the aggregates): the
  /// choice for read models whose apply may block or take long, which must never hold up writers or queries.
  projection_actor,
};

/// Where the engine's work runs: threads and dispatch. The defaults are the layout measured best (BENCHMARKS.md);
/// a host that does not know why it would change one leaves them.
struct tuning_options {
  /// CAF worker threads; 0 means one per hardware thread.
  std::size_t threads = 0;
  scheduler_policy policy = scheduler_policy::stealing;
  /// Number of query actors that answer queries in parallel.
  std::size_t query_actors = 2;
  command_dispatch commands = command_dispatch::caller_when_idle;
  query_dispatch queries = query_dispatch::caller_when_ready;
  projection_dispatch projections = projection_dispatch::projection_actor_or_waiting_query;
};

/// Engine settings; every field has a sensible default.
struct options {
  /// The write store; empty means a new in-memory store.
  std::shared_ptr<event_store> store{};
  /// How long an `at_least` query waits for its read model when the query names no timeout.
  std::chrono::milliseconds query_timeout{5000};
  /// Aggregate actors that received no command for this long stop and rehydrate on their next command;
  /// zero keeps idle actors alive.
  std::chrono::milliseconds passivate_after{std::chrono::minutes{10}};
  /// Most aggregate actors alive at once: beyond it, the least recently used idle ones stop. 0 means no limit.
  std::size_t max_live_aggregates = 100000;
  /// Commands in flight (sent and not yet answered) plus queries waiting for a position, engine-wide. Beyond it a
  /// command, or a query that would have to wait, is answered at once with errc::overloaded, so that memory and
  /// latency stay bounded when hosts send faster than the engine drains. Each thread is counted on its own stripe
  /// and sums the others only once it holds a sixteenth of the bound, so the engine may hold up to about twice
  /// this many for a moment. 0 means no limit. The default keeps a backlog short enough to drain in well under a
  /// second: a deeper one adds latency, and throughput only where the store gains from bigger batches (README,
  /// "Bounded intake").
  std::size_t max_in_flight = 10000;
  /// Work waiting for one aggregate (its mailbox) beyond which a command to it is answered with errc::overloaded.
  /// 0 means no limit.
  std::size_t max_queued_per_aggregate = 10000;
  /// Admission from the read side: while a read model is more than this many positions behind the log's head,
  /// commands are answered at once with errc::overloaded (a stopped projection does not count), so that
  /// read-your-writes stays fast when commands come faster than the read models apply them. 0 (the default)
  /// admits commands whatever the lag.
  std::uint64_t max_projection_lag = 0;
  /// How long a command id given by its sender is remembered: re-sent within this window after it was accepted,
  /// the command gets its original outcome and appends nothing (across passivation and, with a durable store,
  /// across restarts). Measured from the time its events were stored.
  std::chrono::milliseconds idempotency_window{std::chrono::hours{24}};
  /// Threads and dispatch (see tuning_options).
  tuning_options tuning{};
  /// Set to run this engine as one node of a cluster of engine processes sharing a PostgreSQL store (cluster.hpp);
  /// empty (the default), the engine is a single process and owns every aggregate of its store.
  std::optional<cluster_options> cluster{};
};

/// Per aggregate type settings for add_aggregate.
struct aggregate_options {
  /// Store a snapshot of the state every this many events of a stream (0: never). Needs the aggregate state to
  /// convert to and from JSON through Boost.JSON (BOOST_DESCRIBE_STRUCT or tag_invoke); recovery then starts
  /// from the latest snapshot and replays only the later events.
  std::uint64_t snapshot_every = 0;
};

/// Counters of the engine's write side since it started.
struct engine_statistics {
  /// Aggregate actors alive now.
  std::size_t live_aggregates = 0;
  /// Most aggregate actors alive at once so far.
  std::size_t peak_live_aggregates = 0;
  /// Aggregate actors started (a passivated aggregate that comes back counts again).
  std::uint64_t aggregates_started = 0;
  /// Aggregate actors stopped for idleness or for the live maximum.
  std::uint64_t aggregates_passivated = 0;
  /// Aggregate recoveries that started from a snapshot.
  std::uint64_t snapshots_used = 0;
  /// Snapshots that could not be read (unknown format, undecodable): those recoveries replayed the whole stream.
  std::uint64_t snapshots_rejected = 0;
  std::uint64_t snapshots_saved = 0;
  /// Events folded into aggregate states while recovering them.
  std::uint64_t events_replayed = 0;
  /// Re-sent commands answered with their original outcome.
  std::uint64_t duplicate_commands = 0;
  /// shutdown() has begun: new commands and queries are refused with errc::engine_stopped.
  bool stopping = false;
};

/// Whether the engine accepts writes: it stops when its store fails to commit and no longer knows what it holds.
struct engine_health {
  bool healthy = true;
  /// Why the engine refuses writes; empty while healthy.
  std::string reason{};
  /// Why commands are waiting although the engine is healthy (its store retries a lost connection to its server;
  /// the waiting commands are committed once it is back); empty otherwise.
  std::string degraded{};
};

/// A command's events were appended (or it decided on none).
struct accepted {
  /// The aggregate's stream version after the command.
  stream_version version = 0;
  /// Global position of the command's last event; pass it to `at_least` to read your own write.
  /// For a command with no events: the position of the aggregate's latest event.
  log_position position = 0;
  /// Number of events appended.
  std::size_t events = 0;
};

/// Exactly one reply per command: accepted, or rejected with a code and message (nothing appended).
using command_result = std::expected<accepted, rejection>;

/// Optional ids a sender attaches to a command; the engine generates a command id when none is given.
struct command_options {
  std::string command_id{};
  /// Empty means: the command id.
  std::string correlation_id{};
};

/// How fresh a query's answer must be.
struct consistency {
  /// The read model must have applied at least this position; 0 answers at once (possibly stale).
  log_position min_position = 0;
  /// How long to wait for it; zero means the engine's default (options::query_timeout).
  std::chrono::milliseconds timeout{0};

  /// Answer now from whatever the read model holds.
  static consistency any() { return consistency{}; }
};

/// Answer once the read model has applied `position` (read-your-writes with an accepted command's position).
inline consistency at_least(log_position position, std::chrono::milliseconds timeout = std::chrono::milliseconds{0}) {
  return consistency{position, timeout};
}

/// A projection's progress: its checkpoint against the log head, and where it stopped if it failed.
struct projection_status {
  std::string name;
  log_position checkpoint = 0;
  log_position head = 0;
  /// Head minus checkpoint: how many events the read model is behind.
  log_position lag = 0;
  std::optional<projection_failure> failure{};
  /// Under projection_failure_policy::retry: attempts made so far at the event that failed (0 when none failed).
  std::size_t retries = 0;
  /// Under projection_failure_policy::skip: the events skipped (the first thousand) and how many there were.
  std::vector<projection_failure> dead_letters{};
  std::uint64_t dead_letter_count = 0;
};

/// A copy of a read model with the position it reflects.
template <class Projection>
struct read_model_copy {
  Projection model;
  log_position checkpoint = 0;
};

/// What a query's projection answers to it: `Projection::answer(const Query&) const` returns it.
template <class Query>
using answer_type = decltype(std::declval<const typename Query::projection&>().answer(std::declval<const Query&>()));

/// The embedded engine. Safe to use from any thread; the destructor shuts it down.
class engine {
public:
  explicit engine(options settings = {});
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  /// Registers an aggregate type: commands of any alternative of `Aggregate::command` are routed to it, and the
  /// store learns its event types' JSON form (each event converts through Boost.JSON, see event_codec.hpp).
  /// Throws std::invalid_argument if the aggregate or one of its command types is already registered.
  template <aggregate Aggregate>
  void add_aggregate(aggregate_options settings = {}) {
    auto model = std::make_unique<detail::aggregate_model>();
    model->type_name = std::string{Aggregate::type_name};
    model->make_instance = [] { return std::make_unique<detail::aggregate_instance_for<Aggregate>>(); };
    if (settings.snapshot_every > 0) {
      if constexpr (detail::snapshot_convertible<Aggregate>)
        detail::enable_snapshots<Aggregate>(*model, settings.snapshot_every);
      else
        throw std::invalid_argument("aggregate type " + model->type_name
                                    + " takes no snapshots: its state does not convert to JSON (describe it)");
    }
    if constexpr (detail::commands_convertible<typename Aggregate::command>::value)
      detail::enable_forwarding<Aggregate>(*model);
    std::vector<std::pair<std::type_index, detail::command_router>> routes;
    add_routes<Aggregate>(routes, static_cast<typename Aggregate::command*>(nullptr));
    routes.emplace_back(typeid(typename Aggregate::command),
                        &detail::route_command<Aggregate, typename Aggregate::command>);
    add_aggregate(std::move(model), std::move(routes), event_codecs<typename Aggregate::event>());
  }

  /// Registers a projection and starts it from position 0; `settings` says what it does when apply throws.
  /// Throws std::invalid_argument on a duplicate or a negative backoff.
  template <projection Projection>
  void add_projection(projection_options settings = {}) {
    auto runtime = std::make_unique<detail::projection_runtime_for<Projection>>();
    runtime->options = settings;
    add_projection(typeid(Projection), std::move(runtime));
  }

  /// Resumes a projection that stopped on an event it could not apply, from its checkpoint: that event is applied
  /// again first (fix what made it throw before). Does nothing to a projection that runs. Fails with
  /// errc::unknown_projection when no projection has that name.
  std::expected<void, query_error> restart_projection(std::string_view projection_name);

  /// Sends a command; the future receives exactly one reply.
  template <class Command>
  [[nodiscard]] std::future<command_result> send(Command command, command_options ids = {}) {
    auto promise = std::make_shared<std::promise<command_result>>();
    auto future = promise->get_future();
    send(std::move(command), [promise](command_result result) { promise->set_value(std::move(result)); },
         std::move(ids));
    return future;
  }

  /// Sends a command; `on_reply` runs exactly once: on this thread before send() returns when the aggregate was idle
  /// (see tuning_options::commands), otherwise on an engine thread. Keep it short; never block or throw in it.
  template <class Command>
  void send(Command command, std::function<void(command_result)> on_reply, command_options ids = {}) {
    submit(typeid(Command), &command, std::move(ids), std::move(on_reply));
  }

  /// Asks a read model; the query type names its projection (`using projection = ...`).
  template <class Query>
  [[nodiscard]] auto query(Query question, consistency wanted = consistency::any()) {
    using result = answer_type<Query>;
    auto promise = std::make_shared<std::promise<query_result<result>>>();
    auto future = promise->get_future();
    query(std::move(question), [promise](query_result<result> answer) { promise->set_value(std::move(answer)); },
          wanted);
    return future;
  }

  /// Asks a read model; `on_answer` runs exactly once: on the calling thread when the answer is ready at once
  /// (see query_dispatch), otherwise on an engine thread, where it must be short and never block.
  template <class Query>
  void query(Query question, std::function<void(query_result<answer_type<Query>>)> on_answer,
             consistency wanted = consistency::any()) {
    using projection = typename Query::projection;
    using Result = answer_type<Query>;
    auto run = [question = std::move(question)](const detail::projection_runtime& runtime) {
      return static_cast<const detail::projection_runtime_for<projection>&>(runtime).model.answer(question);
    };
    // A read model already at the position answers here and now: no task, no allocation. The answer is computed
    // under the read model's shared lock and delivered after it.
    if (auto* ready = enter_ready_query(typeid(projection), wanted.min_position)) {
      std::optional<query_result<Result>> answer;
      {
        std::shared_lock lock{ready->mutex};
        if (!ready->failed())
          answer.emplace(detail::answer_or_error<Result>(run, *ready));
      }
      if (answer)
        on_answer(std::move(*answer));
      leave_ready_query();
      if (answer)
        return;
      // The projection failed: the general path says why.
    }
    submit_query(typeid(projection),
                 std::make_shared<detail::query_task_for<Result, decltype(run)>>(std::move(run), std::move(on_answer)),
                 wanted);
  }

  /// Blocks until every running projection has applied the log head as of the call (a barrier for tests,
  /// demos and shutdown). Fails if a projection stopped on an error or the timeout passed.
  std::expected<void, query_error> wait_until_caught_up(std::chrono::milliseconds timeout = std::chrono::seconds{60});

  /// Empties a projection's read model and replays the whole log into it; the future is ready once it has
  /// reached the head as of the call. Queries during the rebuild see the partial model.
  template <class Projection>
  std::future<std::expected<void, query_error>> rebuild() {
    return rebuild(typeid(Projection));
  }

  /// A consistent copy of a live read model and the checkpoint it reflects.
  template <class Projection>
  std::expected<read_model_copy<Projection>, query_error> copy_read_model() const {
    auto* runtime = find_projection(typeid(Projection));
    if (!runtime)
      return std::unexpected(query_error{std::string{errc::unknown_projection},
                                         "projection " + std::string{Projection::name} + " is not registered"});
    std::shared_lock lock{runtime->mutex};
    return read_model_copy<Projection>{static_cast<const detail::projection_runtime_for<Projection>*>(runtime)->model,
                                       runtime->checkpoint.load()};
  }

  /// A copy of an aggregate's live state as its actor holds it (recovering it from the store if needed).
  template <class Aggregate>
  std::future<std::expected<Aggregate, rejection>> inspect(std::string aggregate_id) {
    auto promise = std::make_shared<std::promise<std::expected<Aggregate, rejection>>>();
    auto future = promise->get_future();
    inspect(std::string{Aggregate::type_name}, std::move(aggregate_id),
            [promise](std::expected<std::any, rejection> state) {
              if (state)
                promise->set_value(std::any_cast<Aggregate>(std::move(*state)));
              else
                promise->set_value(std::unexpected(std::move(state.error())));
            });
    return future;
  }

  /// Progress of one projection, by name; nullopt if no projection has that name.
  std::optional<projection_status> status(std::string_view projection_name) const;
  /// Progress of every projection, in registration order.
  std::vector<projection_status> statuses() const;

  /// Waits until `condition(statistics())` holds, woken each time an aggregate passivates (the counters that move
  /// without a command: passivate_after or max_live_aggregates stop idle aggregates) and when shutdown begins;
  /// false after `timeout`.
  bool wait_for_statistics(const std::function<bool(const engine_statistics&)>& condition,
                           std::chrono::milliseconds timeout = std::chrono::seconds{10});

  /// Position of the last event in the log.
  log_position head() const;
  /// Healthy, or why the engine refuses writes.
  engine_health health() const;
  engine_statistics statistics() const;
  /// The write store (for reading the log, or sharing it with another engine).
  const std::shared_ptr<event_store>& store() const;
  /// This node's partitions and routing counters; nullopt for an engine that is not a cluster node.
  std::optional<cluster_status> cluster() const;
  /// Waits until `condition(cluster())` holds, woken after each heartbeat of this node; false after `timeout` or
  /// when the engine is not a cluster node.
  bool wait_for_cluster(const std::function<bool(const cluster_status&)>& condition,
                        std::chrono::milliseconds timeout = std::chrono::seconds{30});

  /// Refuses new commands and queries, waits for commands in flight to be answered and for the projections to
  /// apply them, then stops every actor. Idempotent; the destructor calls it.
  void shutdown();

private:
  template <class Aggregate, class... Alternatives>
  static void add_routes(std::vector<std::pair<std::type_index, detail::command_router>>& routes,
                         std::variant<Alternatives...>*) {
    (routes.emplace_back(typeid(Alternatives), &detail::route_command<Aggregate, Alternatives>), ...);
  }

  void add_aggregate(std::unique_ptr<detail::aggregate_model> model,
                     std::vector<std::pair<std::type_index, detail::command_router>> routes,
                     std::vector<event_type_codec> codecs);
  void add_projection(std::type_index type, std::unique_ptr<detail::projection_runtime> runtime);
  void submit(std::type_index command_type, void* command, command_options ids,
              std::function<void(command_result)> on_reply);
  void submit_query(std::type_index projection_type, std::shared_ptr<detail::query_task> task, consistency wanted);
  /// The projection if a query at `min_position` may be answered on the calling thread now (the engine is open,
  /// ready queries are answered by their caller, the read model is there), counted in flight until
  /// leave_ready_query(); null otherwise.
  detail::projection_runtime* enter_ready_query(std::type_index projection_type, log_position min_position);
  void leave_ready_query();
  std::future<std::expected<void, query_error>> rebuild(std::type_index projection_type);
  void inspect(std::string type_name, std::string aggregate_id,
               std::function<void(std::expected<std::any, rejection>)> on_state);
  detail::projection_runtime* find_projection(std::type_index type) const;

  std::unique_ptr<detail::engine_core> core_;
};

/// Folds an aggregate's stream from the store into a fresh state: what a recovering actor computes.
template <class Aggregate>
Aggregate replay(const event_store& store, const std::string& aggregate_id) {
  Aggregate state{};
  store.read_stream(stream_id{std::string{Aggregate::type_name}, aggregate_id}, 0, [&](const envelope& event) {
    state = detail::call_evolve(std::move(state), *event.event_as<typename Aggregate::event>());
    return true;
  });
  return state;
}

/// Builds a read model from scratch by folding the log up to a position (the whole log by default),
/// without any actor: the reference a live projection must equal.
template <class Projection>
Projection fold_log(const event_store& store, log_position up_to = ~log_position{0}) {
  Projection model{};
  store.read_all(0, std::min(up_to, store.head()), [&](const envelope& event) {
    detail::apply_subscribed(model, event);
    return true;
  });
  return model;
}

} // namespace cqrs
