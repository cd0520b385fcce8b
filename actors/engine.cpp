// The engine core: owns the actor system and the store, routes commands to aggregate actors (spawned on first
// use), queries to query actors, and drains everything on shutdown.
#include "actors/detail/runtime.hpp"

#include <cxxabi.h>

#include <random>
#include <stdexcept>

namespace cqrs {
namespace detail {
namespace {

std::string readable_type_name(const std::type_index& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled{abi::__cxa_demangle(type.name(), nullptr, nullptr, &status),
                                                   std::free};
  return status == 0 && demangled ? demangled.get() : type.name();
}

command_result refuse(std::string_view code, std::string message) {
  return std::unexpected(rejection{std::string{code}, std::move(message)});
}

std::string capacity_message(std::size_t limit) {
  return "the engine holds " + std::to_string(limit)
         + " commands and waiting queries (options::max_in_flight); retry later";
}

/// Answers work that its aggregate's full mailbox cannot take.
void refuse_overloaded(aggregate_work& work, std::string message) {
  rejection refusal{std::string{errc::overloaded}, std::move(message)};
  if (auto* job = std::get_if<std::shared_ptr<command_job>>(&work))
    (*job)->reply(std::unexpected(std::move(refusal)));
  else
    (*std::get<std::shared_ptr<state_sink>>(work))(std::unexpected(std::move(refusal)));
}

} // namespace

in_flight_token::in_flight_token(engine_core& core) : core_(core), stripe_(core.operation_started()) {}

in_flight_token::~in_flight_token() {
  core_.operation_finished(stripe_);
}

std::size_t striped_count::stripe_of_this_thread() noexcept {
  static std::atomic<std::size_t> next_stripe{0};
  thread_local std::size_t stripe = next_stripe.fetch_add(1, std::memory_order_relaxed) % stripe_count;
  return stripe;
}

command_job::command_job(engine_core& core, std::string command, std::string correlation, bool sender_chose,
                         std::function<void(command_result)> on_reply)
  : token(core),
    command_id(std::move(command)),
    correlation_id(std::move(correlation)),
    sender_chose_id(sender_chose),
    reply(std::move(on_reply), [] { return refuse(errc::engine_stopped, "the engine stopped before the command ran"); }) {}

engine_core::engine_core(options chosen) : settings(std::move(chosen)) {
  store = settings.store ? settings.store : make_memory_event_store();
  auto threads = settings.tuning.threads ? settings.tuning.threads : std::max(1u, std::thread::hardware_concurrency());
  config.set("scheduler.max-threads", threads);
  config.set("scheduler.policy", settings.tuning.policy == scheduler_policy::sharing ? caf::atom("sharing")
                                                                               : caf::atom("stealing"));
  if (settings.cluster)
    cluster_runtime::prepare(config);
  system = std::make_unique<caf::actor_system>(config);
  caf::logger::set_current_actor_system(nullptr); // see `spawned`: constructing the system sets it too
  // First, so that a cluster that cannot start leaves no actor behind for the system's destructor to wait for.
  if (settings.cluster)
    cluster = cluster_runtime::start(*this, *settings.cluster);
  auto query_actor_count = std::max<std::size_t>(1, settings.tuning.query_actors);
  for (std::size_t index = 0; index < query_actor_count; ++index)
    query_actors.push_back(spawn_query_actor(*system, this));
  // Six random base-36 characters: short enough that "prefix-number" ids stay in std::string's inline buffer.
  std::random_device entropy;
  std::uniform_int_distribution<int> digit{0, 35};
  for (int index = 0; index < 6; ++index) {
    auto value = digit(entropy);
    command_id_prefix += static_cast<char>(value < 10 ? '0' + value : 'a' + value - 10);
  }
  command_id_prefix += '-';
  if (settings.passivate_after.count() > 0 || settings.max_live_aggregates > 0)
    sweeper = spawn_sweeper(*system, this);
}

engine_core::~engine_core() = default;

namespace {

/// Stops one directory entry's aggregate, which is idle (the caller checked under the shard lock).
void passivate(aggregate_slot::shard& shard, decltype(aggregate_slot::shard::actors)::iterator found,
               engine_core& core) {
  // The handle leaves the cell first: the actor's state holds the cell, which must not hold the actor back.
  if (auto actor = std::move(found->second.cell->actor))
    stop(actor);
  auto recency = found->second.recency;
  shard.actors.erase(found);
  shard.recency.erase(recency);
  core.counters.live_aggregates.fetch_sub(1, std::memory_order_relaxed);
  core.counters.aggregates_passivated.fetch_add(1, std::memory_order_relaxed);
  core.statistics_changed();
}

bool idle(const aggregate_slot::entry& entry) {
  return !entry.cell->running;
}

/// Walks a shard from its least recently used actor, passivating the idle ones (busy ones are skipped) while
/// `more(entry)` holds, looking at `limit` actors at most.
template <class More>
void passivate_oldest(aggregate_slot::shard& shard, engine_core& core, More more, std::size_t limit) {
  std::size_t looked_at = 0;
  for (auto candidate = shard.recency.end(); candidate != shard.recency.begin() && looked_at++ < limit;) {
    --candidate;
    auto found = shard.actors.find(std::string_view{*candidate});
    if (!more(found->second))
      break;
    if (!idle(found->second))
      continue;
    auto previous = std::next(candidate);
    passivate(shard, found, core);
    candidate = previous;
  }
}

} // namespace

void engine_core::make_room(aggregate_slot::shard& shard, std::size_t incoming) {
  if (settings.max_live_aggregates == 0)
    return;
  auto share = std::max<std::size_t>(1, settings.max_live_aggregates / aggregate_slot::shard_count);
  if (shard.actors.size() + incoming <= share)
    return; // the common case on a spawn: no lookup at all
  // Bounded: when the least recently used actors are all busy, the shard goes over its share for a while
  // (until a later spawn or the sweeper finds them idle).
  passivate_oldest(
    shard, *this, [&](const aggregate_slot::entry&) { return shard.actors.size() + incoming > share; }, 8);
}

void engine_core::submit_to_aggregate(aggregate_slot& slot, std::string aggregate_id, aggregate_work work) {
  auto& shard = slot.shards[std::hash<std::string>{}(aggregate_id) % aggregate_slot::shard_count];
  auto now = std::chrono::steady_clock::now();
  std::shared_ptr<aggregate_cell> run_here;
  bool refused = false;
  {
    // Creating the cell under the shard lock is what keeps two instances from ever running for one aggregate;
    // claiming or queueing under it is what keeps passivation from stopping an aggregate that has work coming.
    costs::lock();
    std::lock_guard lock{shard.mutex};
    auto found = shard.actors.find(aggregate_id);
    if (found == shard.actors.end()) {
      make_room(shard, 1);
      auto stream = std::make_shared<const stream_id>(stream_id{slot.model->type_name, aggregate_id});
      auto cell = std::make_shared<aggregate_cell>(*this, *slot.model, std::move(stream), shard.mutex);
      shard.recency.push_front(std::move(aggregate_id));
      found = shard.actors.emplace(std::string_view{shard.recency.front()},
                                   aggregate_slot::entry{std::move(cell), now, shard.recency.begin()}).first;
      count_started();
    } else if (found->second.recency != shard.recency.begin()) {
      shard.recency.splice(shard.recency.begin(), shard.recency, found->second.recency);
    }
    auto& entry = found->second;
    entry.last_used = now;
    auto& cell = *entry.cell;
    if (cell.running) {
      if (settings.max_queued_per_aggregate == 0 || cell.queue.size() < settings.max_queued_per_aggregate)
        cell.queue.push_back(std::move(work));
      else
        refused = true;
    } else {
      cell.running = true;
      if (settings.tuning.commands == command_dispatch::caller_when_idle
          && std::holds_alternative<std::shared_ptr<command_job>>(work) && aggregate_cell::may_run_here()) {
        run_here = entry.cell;
      } else {
        cell.queue.push_back(std::move(work));
        cell.hand_to_actor();
      }
    }
  }
  if (run_here)
    run_here->run_here(std::get<std::shared_ptr<command_job>>(std::move(work)));
  else if (refused)
    refuse_overloaded(work, slot.model->type_name + "/" + aggregate_id + " has "
                              + std::to_string(settings.max_queued_per_aggregate)
                              + " commands waiting (options::max_queued_per_aggregate); retry later");
}

void engine_core::count_started() {
  costs::atomic_update(2);
  counters.aggregates_started.fetch_add(1, std::memory_order_relaxed);
  auto live = counters.live_aggregates.fetch_add(1, std::memory_order_relaxed) + 1;
  auto peak = counters.peak_live_aggregates.load(std::memory_order_relaxed);
  while (live > peak && !counters.peak_live_aggregates.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

void engine_core::passivate_idle() {
  auto by_time = settings.passivate_after.count() > 0;
  auto cutoff = std::chrono::steady_clock::now() - settings.passivate_after;
  std::shared_lock registry{registry_mutex};
  for (auto& slot : aggregates)
    for (auto& shard : slot->shards) {
      std::lock_guard lock{shard.mutex};
      // A shard may have gone over its share while its oldest actors were busy: trim it now they may be idle.
      make_room(shard, 0);
      if (!by_time)
        continue;
      // The recency list is ordered by last use: walk from the oldest until an entry is recent.
      passivate_oldest(
        shard, *this, [&](const aggregate_slot::entry& entry) { return entry.last_used <= cutoff; },
        shard.recency.size());
    }
}

void engine_core::statistics_changed() {
  // Pairs with the fence in engine::wait_for_statistics: either this sees the waiter, or the waiter's check sees
  // the counters changed before it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (statistics_waiters.load(std::memory_order_relaxed) == 0)
    return;
  std::lock_guard lock{statistics_mutex};
  statistics_wakeup.notify_all();
}

void engine_core::mark_unhealthy(const std::string& reason) {
  std::lock_guard lock{unhealthy_mutex};
  if (unhealthy.load())
    return;
  unhealthy_reason_text = "the store failed to commit (" + reason + ")";
  unhealthy.store(true, std::memory_order_release);
}

std::optional<std::string> engine_core::unhealthy_reason() const {
  if (!unhealthy.load(std::memory_order_acquire))
    return std::nullopt;
  std::lock_guard lock{unhealthy_mutex};
  return unhealthy_reason_text;
}

namespace {

sweeper_actor::behavior_type sweeper_behavior(sweeper_actor::pointer self, engine_core* core) {
  using namespace std::chrono;
  // Often enough that an actor stops within about 1.25 x passivate_after of its last command; without an idle
  // time, often enough to trim shards that went over their share of the live maximum.
  auto every = core->settings.passivate_after.count() > 0 ? core->settings.passivate_after / 4 : milliseconds{100};
  auto interval = std::clamp<milliseconds>(duration_cast<milliseconds>(every), milliseconds{5}, milliseconds{10000});
  self->delayed_send(self, interval, sweep_atom::value);
  return {
    [self, core, interval](sweep_atom) {
      received(self);
      core->passivate_idle();
      self->delayed_send(self, interval, sweep_atom::value);
    },
  };
}

} // namespace

sweeper_actor spawn_sweeper(caf::actor_system& system, engine_core* core) {
  return spawned(system.spawn(sweeper_behavior, core));
}

void engine_core::dispatch_query(std::shared_ptr<query_task> task) {
  costs::atomic_update();
  auto index = next_query_actor.fetch_add(1, std::memory_order_relaxed) % query_actors.size();
  deliver(query_actors[index], query_message{std::move(task)});
}

void engine_core::wake(projection_slot& slot) {
  costs::atomic_update();
  if (!slot.advance_pending.exchange(true))
    deliver(slot.actor, advance_atom::value);
}

bool engine_core::over_capacity(std::int64_t counted_already) const noexcept {
  auto limit = static_cast<std::int64_t>(settings.max_in_flight);
  if (limit == 0)
    return false;
  // Under its share, a thread reads only its own stripe: the cores do not pass every stripe's line around per
  // command. Past it, the sum decides (other threads may hold little), with the queries parked on each read model.
  if (in_flight.value(striped_count::stripe_of_this_thread()) < limit / std::int64_t{striped_count::stripe_count})
    return false;
  auto held = in_flight.total() - counted_already;
  for (const auto& [type, projection] : projections_by_type.current())
    held += static_cast<std::int64_t>(projection->parked());
  return held >= limit;
}

std::optional<std::string> engine_core::lagging_read_model() const {
  auto limit = settings.max_projection_lag;
  if (limit == 0)
    return std::nullopt;
  auto head = store->head();
  for (const auto& [type, projection] : projections_by_type.current()) {
    const auto& runtime = *projection->runtime;
    auto checkpoint = runtime.checkpoint.load(std::memory_order_relaxed);
    if (head > checkpoint && head - checkpoint > limit && !runtime.failed())
      return "read model " + runtime.name() + " is " + std::to_string(head - checkpoint)
             + " positions behind the log (options::max_projection_lag " + std::to_string(limit) + "); retry later";
  }
  return std::nullopt;
}

void engine_core::wake_after(projection_slot& slot, std::chrono::milliseconds delay) {
  costs::message();
#ifdef CQRS_THREAD_SANITIZER
  __tsan_release(caf::actor_cast<caf::abstract_actor*>(slot.actor));
#endif
  caf::delayed_anon_send(slot.actor, delay, advance_atom::value);
}

std::size_t engine_core::operation_started() {
  costs::atomic_update();
  auto stripe = striped_count::stripe_of_this_thread();
  in_flight.add(stripe);
  return stripe;
}

void engine_core::operation_finished(std::size_t stripe) {
  costs::atomic_update();
  in_flight.subtract(stripe);
  // Sequentially consistent with shutdown(), which sets `closing` before it sums: either this sees `closing` and
  // wakes it, or its sum sees this decrement.
  if (closing.load()) {
    std::lock_guard lock{drain_mutex};
    drained.notify_all();
  }
}

} // namespace detail

engine::engine(options settings) : core_(std::make_unique<detail::engine_core>(std::move(settings))) {}

engine::~engine() {
  shutdown();
}

void engine::add_aggregate(std::unique_ptr<detail::aggregate_model> model,
                           std::vector<std::pair<std::type_index, detail::command_router>> routes,
                           std::vector<event_type_codec> codecs) {
  std::unique_lock lock{core_->registry_mutex};
  if (core_->aggregates_by_name.contains(model->type_name))
    throw std::invalid_argument("aggregate type " + model->type_name + " is already registered");
  for (const auto& [type, router] : routes)
    if (core_->routes.current().contains(type))
      throw std::invalid_argument("command type " + detail::readable_type_name(type)
                                  + " is already handled by another aggregate");
  auto slot = std::make_unique<detail::aggregate_slot>();
  slot->model = std::move(model);
  core_->routes.update([&](auto& table) {
    for (const auto& [type, router] : routes)
      table.emplace(type, std::pair{slot.get(), router});
  });
  core_->aggregates_by_name.emplace(slot->model->type_name, slot.get());
  core_->aggregates.push_back(std::move(slot));
  core_->store->add_event_types(std::move(codecs));
}

void engine::add_projection(std::type_index type, std::unique_ptr<detail::projection_runtime> runtime) {
  auto& core = *core_;
  std::unique_lock lock{core.registry_mutex};
  if (core.projections_by_type.current().contains(type))
    throw std::invalid_argument("projection " + runtime->name() + " is already registered");
  if (runtime->options.retry_backoff.count() < 0 || runtime->options.max_retry_backoff.count() < 0)
    throw std::invalid_argument("projection " + runtime->name() + ": a retry backoff cannot be negative");
  for (const auto& other : core.projections)
    if (other->runtime->name() == runtime->name())
      throw std::invalid_argument("another projection is already named " + runtime->name());
  auto slot = std::make_unique<detail::projection_slot>();
  auto* raw = slot.get();
  runtime->slot = raw;
  slot->runtime = std::move(runtime);
  slot->actor = detail::spawn_projection(*core.system, raw, core.store.get(), &core);
  core.projections_by_type.update([&](auto& table) { table.emplace(type, raw); });
  core.projections.push_back(std::move(slot));
  raw->subscription = core.store->subscribe([&core, raw](log_position) { core.on_new_head(*raw); });
  core.wake(*raw); // the log may already hold events
}

void engine::submit(std::type_index command_type, void* command, command_options ids,
                    std::function<void(command_result)> on_reply) {
  auto& core = *core_;
  if (core.closing.load()) {
    on_reply(detail::refuse(errc::engine_stopped, "the engine is shut down"));
    return;
  }
  if (auto reason = core.unhealthy_reason()) {
    on_reply(detail::refuse(errc::store_failure, "the engine refuses writes: " + *reason));
    return;
  }
  if (core.over_capacity()) {
    on_reply(detail::refuse(errc::overloaded, detail::capacity_message(core.settings.max_in_flight)));
    return;
  }
  if (core.settings.max_projection_lag > 0) {
    if (auto lagging = core.lagging_read_model()) {
      on_reply(detail::refuse(errc::overloaded, std::move(*lagging)));
      return;
    }
  }
  detail::aggregate_slot* slot = nullptr;
  detail::command_router router = nullptr;
  const auto& routes = core.routes.current();
  if (auto found = routes.find(command_type); found != routes.end())
    std::tie(slot, router) = found->second;
  if (!slot) {
    on_reply(detail::refuse(errc::unknown_command, "no registered aggregate handles commands of type "
                                                      + detail::readable_type_name(command_type)));
    return;
  }
  auto sender_chose_id = !ids.command_id.empty();
  if (!sender_chose_id) {
    detail::costs::atomic_update();
    ids.command_id = core.command_id_prefix + std::to_string(core.last_command_number.fetch_add(1) + 1);
  }
  if (ids.correlation_id.empty())
    ids.correlation_id = ids.command_id;
  // One allocation holds the job and its command. The job counts as in flight from here, and replies exactly once
  // (also when routing refuses the command); the check after the count closes the race with shutdown().
  auto job = std::make_shared<detail::command_job>(core, std::move(ids.command_id), std::move(ids.correlation_id),
                                                   sender_chose_id, std::move(on_reply));
  std::string aggregate_id;
  try {
    aggregate_id = router(command, job->command);
  } catch (const std::exception& error) {
    job->reply(detail::refuse(errc::internal_error, std::string{"aggregate_id threw: "} + error.what()));
    return;
  }
  if (aggregate_id.empty()) {
    job->reply(detail::refuse(errc::invalid_aggregate_id,
                              "a " + slot->model->type_name + " command needs a non-empty aggregate id"));
    return;
  }
  if (core.closing.load()) {
    job->reply(detail::refuse(errc::engine_stopped, "the engine is shut down"));
    return;
  }
  if (core.cluster) {
    core.cluster->route(*slot, std::move(aggregate_id), std::move(job));
    return;
  }
  core.submit_to_aggregate(*slot, std::move(aggregate_id), std::move(job));
}

void engine::submit_query(std::type_index projection_type, std::shared_ptr<detail::query_task> task,
                          consistency wanted) {
  auto& core = *core_;
  detail::in_flight_token submitting{core};
  if (core.closing.load()) {
    task->fail(query_error{std::string{errc::engine_stopped}, "the engine is shut down"});
    return;
  }
  task->projection = find_projection(projection_type);
  if (!task->projection) {
    task->fail(query_error{std::string{errc::unknown_projection},
                           "no registered projection " + detail::readable_type_name(projection_type)});
    return;
  }
  // A ready query was answered by the query template (engine::enter_ready_query) unless its projection failed;
  // parking finds either, like any other.
  task->min_position = wanted.min_position;
  // A query that has to wait holds memory until its position comes: it counts against the bound (this one is
  // counted already, by `submitting`).
  if (wanted.min_position > task->projection->checkpoint.load(std::memory_order_acquire) && core.over_capacity(1)) {
    task->fail(query_error{std::string{errc::overloaded}, detail::capacity_message(core.settings.max_in_flight)});
    return;
  }
  if (wanted.min_position > 0) {
    auto timeout = wanted.timeout.count() > 0 ? wanted.timeout : core.settings.query_timeout;
    task->deadline = std::chrono::steady_clock::now() + timeout;
  }
  if (core.settings.tuning.queries == query_dispatch::caller_when_ready)
    core.park_or_answer(std::move(task)); // parked right here: no hop before the projection can release it
  else
    core.dispatch_query(std::move(task));
}

detail::projection_runtime* engine::enter_ready_query(std::type_index projection_type, log_position min_position) {
  auto& core = *core_;
  if (core.settings.tuning.queries != query_dispatch::caller_when_ready)
    return nullptr;
  auto stripe = core.operation_started();
  if (!core.closing.load()) {
    auto* runtime = find_projection(projection_type);
    if (runtime && runtime->checkpoint.load(std::memory_order_acquire) >= min_position) {
      detail::costs::lock(); // the read model's shared lock, taken by the caller
      return runtime;
    }
  }
  core.operation_finished(stripe);
  return nullptr;
}

void engine::leave_ready_query() {
  // On the thread that entered: its stripe.
  core_->operation_finished(detail::striped_count::stripe_of_this_thread());
}

namespace {

/// A query task that only reports that its projection reached its position: barriers and rebuilds.
auto make_barrier(std::function<void(query_result<std::monostate>)> on_done) {
  auto run = [](const detail::projection_runtime&) { return std::monostate{}; };
  return std::make_shared<detail::query_task_for<std::monostate, decltype(run)>>(run, std::move(on_done));
}

std::future<std::expected<void, query_error>> barrier_future(
  std::function<void(query_result<std::monostate>)>& on_done) {
  auto promise = std::make_shared<std::promise<std::expected<void, query_error>>>();
  on_done = [promise](query_result<std::monostate> result) {
    if (result)
      promise->set_value({});
    else
      promise->set_value(std::unexpected(std::move(result.error())));
  };
  return promise->get_future();
}

} // namespace

namespace detail {

std::expected<void, query_error> engine_core::catch_up(std::chrono::milliseconds timeout) {
  auto head = store->head();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::future<std::expected<void, query_error>>> pending;
  {
    std::shared_lock lock{registry_mutex};
    for (auto& slot : projections) {
      std::function<void(query_result<std::monostate>)> on_done;
      pending.push_back(barrier_future(on_done));
      auto barrier = make_barrier(std::move(on_done));
      barrier->projection = slot->runtime.get();
      barrier->min_position = head;
      barrier->deadline = deadline;
      dispatch_query(std::move(barrier));
    }
  }
  std::expected<void, query_error> outcome;
  for (auto& one : pending) {
    auto result = one.get();
    if (!result && outcome)
      outcome = std::move(result);
  }
  return outcome;
}

} // namespace detail

std::expected<void, query_error> engine::wait_until_caught_up(std::chrono::milliseconds timeout) {
  auto& core = *core_;
  {
    // Counted only while the barriers are handed out: shutdown waits for that, then answers them itself.
    detail::in_flight_token submitting{core};
    if (core.closing.load())
      return std::unexpected(query_error{std::string{errc::engine_stopped}, "the engine is shut down"});
  }
  return core.catch_up(timeout);
}

std::future<std::expected<void, query_error>> engine::rebuild(std::type_index projection_type) {
  auto& core = *core_;
  detail::in_flight_token submitting{core};
  std::function<void(query_result<std::monostate>)> on_done;
  auto future = barrier_future(on_done);
  auto barrier = make_barrier(std::move(on_done));
  barrier->projection = find_projection(projection_type);
  if (!barrier->projection) {
    barrier->fail(query_error{std::string{errc::unknown_projection},
                              "no registered projection " + detail::readable_type_name(projection_type)});
    return future;
  }
  if (core.closing.load()) {
    barrier->fail(query_error{std::string{errc::engine_stopped}, "the engine is shut down"});
    return future;
  }
  barrier->min_position = core.store->head();
  auto* slot = static_cast<detail::projection_slot*>(barrier->projection->slot);
  detail::deliver(slot->actor, detail::rebuild_message{std::move(barrier)});
  return future;
}

void engine::inspect(std::string type_name, std::string aggregate_id,
                     std::function<void(std::expected<std::any, rejection>)> on_state) {
  auto& core = *core_;
  detail::in_flight_token submitting{core};
  auto reply = std::make_shared<detail::state_sink>(std::move(on_state), [] {
    return std::expected<std::any, rejection>{
      std::unexpected(rejection{std::string{errc::engine_stopped}, "the engine is shut down"})};
  });
  if (aggregate_id.empty()) {
    (*reply)(std::unexpected(rejection{std::string{errc::invalid_aggregate_id}, "an aggregate id is needed"}));
    return;
  }
  if (core.closing.load())
    return; // the sink's fallback answers engine_stopped
  detail::aggregate_slot* slot = nullptr;
  {
    std::shared_lock lock{core.registry_mutex};
    if (auto found = core.aggregates_by_name.find(type_name); found != core.aggregates_by_name.end())
      slot = found->second;
  }
  if (!slot) {
    (*reply)(std::unexpected(
      rejection{std::string{errc::unknown_command}, "no registered aggregate type " + type_name}));
    return;
  }
  core.submit_to_aggregate(*slot, std::move(aggregate_id), std::move(reply));
}

detail::projection_runtime* engine::find_projection(std::type_index type) const {
  const auto& projections = core_->projections_by_type.current();
  auto found = projections.find(type);
  return found == projections.end() ? nullptr : found->second->runtime.get();
}

namespace {

projection_status status_of(const detail::projection_runtime& runtime, log_position head) {
  projection_status status;
  status.name = runtime.name();
  status.checkpoint = runtime.checkpoint.load();
  status.head = std::max(head, status.checkpoint);
  status.lag = status.head - status.checkpoint;
  status.failure = runtime.failure();
  status.retries = runtime.retries();
  status.dead_letters = runtime.dead_letters();
  status.dead_letter_count = runtime.dead_letter_count();
  return status;
}

} // namespace

std::optional<projection_status> engine::status(std::string_view projection_name) const {
  auto head = core_->store->head();
  std::shared_lock lock{core_->registry_mutex};
  for (const auto& slot : core_->projections)
    if (slot->runtime->name() == projection_name)
      return status_of(*slot->runtime, head);
  return std::nullopt;
}

std::expected<void, query_error> engine::restart_projection(std::string_view projection_name) {
  auto& core = *core_;
  detail::projection_slot* found = nullptr;
  {
    std::shared_lock lock{core.registry_mutex};
    for (const auto& slot : core.projections)
      if (slot->runtime->name() == projection_name)
        found = slot.get();
  }
  if (!found)
    return std::unexpected(query_error{std::string{errc::unknown_projection},
                                       "no projection is named " + std::string{projection_name}});
  if (core.closing.load())
    return std::unexpected(query_error{std::string{errc::engine_stopped}, "the engine is shut down"});
  {
    // Under `applying`, so that no thread is in the middle of applying while the failure goes.
    std::lock_guard applying{found->applying};
    if (!found->runtime->failed())
      return {};
    found->runtime->clear_failure();
  }
  core.wake(*found);
  return {};
}

std::vector<projection_status> engine::statuses() const {
  auto head = core_->store->head();
  std::shared_lock lock{core_->registry_mutex};
  std::vector<projection_status> all;
  for (const auto& slot : core_->projections)
    all.push_back(status_of(*slot->runtime, head));
  return all;
}

log_position engine::head() const {
  return core_->store->head();
}

engine_health engine::health() const {
  if (auto reason = core_->unhealthy_reason())
    return engine_health{false, std::move(*reason)};
  if (auto failure = core_->store->failure())
    return engine_health{false, "the store cannot append: " + *failure};
  return engine_health{true, {}, core_->store->degraded().value_or("")};
}

bool engine::wait_for_statistics(const std::function<bool(const engine_statistics&)>& condition,
                                 std::chrono::milliseconds timeout) {
  auto& core = *core_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  core.statistics_waiters.fetch_add(1);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::unique_lock lock{core.statistics_mutex};
  auto met = core.statistics_wakeup.wait_until(lock, deadline, [&] { return condition(statistics()); });
  lock.unlock();
  core.statistics_waiters.fetch_sub(1);
  return met;
}

engine_statistics engine::statistics() const {
  const auto& counters = core_->counters;
  auto read = [](const auto& counter) { return counter.load(std::memory_order_relaxed); };
  engine_statistics statistics;
  statistics.live_aggregates = static_cast<std::size_t>(std::max<std::int64_t>(0, read(counters.live_aggregates)));
  statistics.peak_live_aggregates = static_cast<std::size_t>(read(counters.peak_live_aggregates));
  statistics.aggregates_started = read(counters.aggregates_started);
  statistics.aggregates_passivated = read(counters.aggregates_passivated);
  statistics.snapshots_used = read(counters.snapshots_used);
  statistics.snapshots_rejected = read(counters.snapshots_rejected);
  statistics.snapshots_saved = read(counters.snapshots_saved);
  statistics.events_replayed = read(counters.events_replayed);
  statistics.duplicate_commands = read(counters.duplicate_commands);
  statistics.stopping = core_->closing.load();
  return statistics;
}

const std::shared_ptr<event_store>& engine::store() const {
  return core_->store;
}

std::optional<cluster_status> engine::cluster() const {
  if (!core_->cluster)
    return std::nullopt;
  return core_->cluster->status();
}

bool engine::wait_for_cluster(const std::function<bool(const cluster_status&)>& condition,
                              std::chrono::milliseconds timeout) {
  return core_->cluster && core_->cluster->wait_for(condition, timeout);
}

void engine::shutdown() {
  auto& core = *core_;
  std::call_once(core.shutdown_once, [&core, this] {
    // Projections must apply every accepted command before they stop: wait for them while still open.
    core.closing.store(true);
    core.statistics_changed();
    if (core.cluster)
      core.cluster->stop_routing();
    {
      std::unique_lock lock{core.drain_mutex};
      core.drained.wait(lock, [&core] { return core.in_flight.total() == 0; });
    }
    // Every accepted command is in the log now; let the read models apply it before the actors stop.
    // A projection that failed reports its error here instead of blocking shutdown.
    (void)core.catch_up(std::chrono::seconds{60});
    if (core.cluster)
      core.cluster->leave();
    std::unique_lock lock{core.registry_mutex};
    for (auto& slot : core.projections)
      core.store->unsubscribe(slot->subscription);
    for (auto& slot : core.projections)
      detail::stop(slot->actor);
    for (auto& actor : core.query_actors)
      detail::stop(actor);
    if (core.sweeper)
      detail::stop(core.sweeper);
    for (auto& slot : core.aggregates)
      for (auto& shard : slot->shards) {
        std::lock_guard shard_lock{shard.mutex};
        for (auto& [id, entry] : shard.actors)
          if (auto actor = std::move(entry.cell->actor))
            detail::stop(actor);
        core.counters.live_aggregates.fetch_sub(static_cast<std::int64_t>(shard.actors.size()));
        shard.actors.clear();
        shard.recency.clear();
      }
    lock.unlock();
    // Projections may run on threads of their own, which CAF ends only once no handle refers to their actor:
    // wait until the projection and query actors are gone, then drop the engine's handles, then the system
    // (whose destructor waits for every remaining actor).
    {
      caf::scoped_actor waiter{*core.system};
      for (auto& slot : core.projections)
        waiter->wait_for(slot->actor);
      for (auto& actor : core.query_actors)
        waiter->wait_for(actor);
      if (core.sweeper)
        waiter->wait_for(core.sweeper);
    }
    core.sweeper = nullptr;
    for (auto& slot : core.projections)
      slot->actor = nullptr;
    core.query_actors.clear();
    core.system.reset();
  });
}

} // namespace cqrs
