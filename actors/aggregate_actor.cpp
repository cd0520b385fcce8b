// The aggregate actor: one per aggregate instance (its cell and, once needed, its CAF actor); recovers from its
// stream (or its latest snapshot), then decides commands one at a time, answering re-sent commands with their
// original outcome.
#include "actors/detail/runtime.hpp"

#include <cstdio>

namespace cqrs::detail {

namespace {

std::unexpected<rejection> internal_error(std::string message) {
  return std::unexpected(rejection{std::string{errc::internal_error}, std::move(message)});
}

} // namespace

namespace {

/// How many of this thread's nested runs of aggregate work are under way (see aggregate_cell::may_run_here).
thread_local int running_depth = 0;

/// Queued items a submitting thread runs after its own command before it hands the rest to the actor: enough to
/// absorb a short burst on one aggregate, few enough that a host thread is soon back to its own work.
constexpr std::size_t inline_budget = 8;
/// Items the actor runs per drain message before it lets the other actors of its worker have a turn.
constexpr std::size_t actor_budget = 64;

/// Hands a command its reply. A reply callback must not throw; one that does is the host's bug, reported on
/// stderr and dropped here, so that the aggregate goes on with its queue instead of staying claimed forever.
void reply_to(command_job& job, command_result result) {
  try {
    job.reply(std::move(result));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "cqrs: a command's reply callback threw (%s); the exception was dropped\n", error.what());
  } catch (...) {
    std::fprintf(stderr, "cqrs: a command's reply callback threw; the exception was dropped\n");
  }
}

} // namespace

struct aggregate_cell::running_scope {
  running_scope() { ++running_depth; }
  ~running_scope() { --running_depth; }
  running_scope(const running_scope&) = delete;
  running_scope& operator=(const running_scope&) = delete;
};

bool aggregate_cell::may_run_here() noexcept {
  return running_depth == 0;
}

aggregate_cell::aggregate_cell(engine_core& core, const aggregate_model& model,
                               std::shared_ptr<const stream_id> stream, std::mutex& guard)
  : core_(core), model_(model), store_(*core.store), stream_(std::move(stream)), guard_(guard) {
  if (core_.cluster)
    partition_ = core_.cluster->partition_of(stream_->type, stream_->id);
}

bool aggregate_cell::holds_lease() {
  if (!core_.cluster)
    return true;
  auto epoch = core_.cluster->held_epoch(partition_);
  if (epoch == 0)
    return false;
  if (epoch != epoch_) {
    recovered_ = false;
    epoch_ = epoch;
  }
  return true;
}

void aggregate_cell::reply_or_reroute(std::shared_ptr<command_job> job, command_result result) {
  if (core_.cluster && !result && result.error().code == errc::fenced)
    core_.cluster->reroute(model_, *stream_, std::move(job));
  else
    reply_to(*job, std::move(result));
}

const aggregate_actor& aggregate_cell::ensure_actor() {
  if (!actor)
    actor = spawn_aggregate(*core_.system, shared_from_this());
  return actor;
}

void aggregate_cell::hand_to_actor() {
  deliver(ensure_actor(), drain_atom::value);
}

void aggregate_cell::run_here(std::shared_ptr<command_job> job) {
  running_scope scope;
  if (run_command(std::move(job)))
    run_queued(inline_budget);
}

void aggregate_cell::drain() {
  running_scope scope;
  run_queued(actor_budget);
}

void aggregate_cell::appended(std::expected<append_result, store_error> outcome) {
  running_scope scope;
  auto job = std::move(committing_);
  auto result = finish(std::move(outcome), committing_events_);
  reply_or_reroute(std::move(job), std::move(result));
  run_queued(actor_budget);
}

void aggregate_cell::run_queued(std::size_t budget) {
  // Destroyed only after the cell is let go (see below): a job counts as in flight until it is destroyed, and
  // shutdown waits for that before it takes the directory apart.
  aggregate_work next;
  for (std::size_t ran = 0;; ++ran) {
    {
      costs::lock();
      std::lock_guard lock{guard_};
      if (queue.empty()) {
        running = false;
        return;
      }
      if (ran == budget) {
        hand_to_actor();
        return;
      }
      next = std::move(queue.front());
      queue.pop_front();
    }
    if (!run(std::move(next)))
      return; // the actor goes on when the append's outcome arrives
  }
}

bool aggregate_cell::run(aggregate_work work) {
  if (auto* job = std::get_if<std::shared_ptr<command_job>>(&work))
    return run_command(std::move(*job));
  run_inspection(*std::get<std::shared_ptr<state_sink>>(work));
  return true;
}

bool aggregate_cell::run_command(std::shared_ptr<command_job> job) {
  if (!holds_lease()) {
    core_.cluster->reroute(model_, *stream_, std::move(job));
    return true;
  }
  auto result = decide(job);
  if (!result)
    return false; // committing in the background: from here on the cell belongs to the append's outcome
  reply_or_reroute(std::move(job), std::move(*result));
  return true;
}

void aggregate_cell::run_inspection(state_sink& reply) {
  if (auto failure = recover())
    reply(std::unexpected(std::move(*failure)));
  else
    reply(instance_->state());
}

std::optional<std::pair<std::unique_ptr<aggregate_instance>, stream_version>>
aggregate_cell::from_snapshot(log_position& last) {
  if (model_.snapshot_every == 0)
    return std::nullopt;
  auto taken = store_.load_snapshot(*stream_);
  if (!taken)
    return std::nullopt;
  if (taken->format_version == model_.snapshot_format) {
    if (auto decoded = model_.decode_state(taken->state)) {
      core_.counters.snapshots_used.fetch_add(1, std::memory_order_relaxed);
      last = decoded->position;
      return std::pair{std::move(decoded->instance), taken->version};
    }
  }
  core_.counters.snapshots_rejected.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

std::optional<rejection> aggregate_cell::recover() {
  if (recovered_)
    return std::nullopt;
  try {
    log_position last = 0;
    auto start = from_snapshot(last);
    auto fresh = start ? std::move(start->first) : model_.make_instance();
    stream_version after = start ? start->second : 0;
    std::uint64_t replayed = 0;
    auto fold = [&](const envelope& event) {
      fresh->apply(event.payload);
      last = event.position;
      ++replayed;
      return true;
    };
    auto reached = store_.read_stream(*stream_, after, fold);
    if (reached < after) {
      // A snapshot ahead of its stream cannot be trusted: replay everything.
      core_.counters.snapshots_rejected.fetch_add(1, std::memory_order_relaxed);
      fresh = model_.make_instance();
      last = 0;
      reached = store_.read_stream(*stream_, 0, fold);
    }
    core_.counters.events_replayed.fetch_add(replayed, std::memory_order_relaxed);
    instance_ = std::move(fresh);
    version_ = reached;
    last_position_ = last;
    recovered_ = true;
    return std::nullopt;
  } catch (const std::exception& error) {
    return internal_error("aggregate " + stream_->to_string() + " could not be recovered: " + error.what()).error();
  } catch (...) {
    return internal_error("aggregate " + stream_->to_string() + " could not be recovered: non-standard exception")
      .error();
  }
}

std::optional<command_result> aggregate_cell::earlier_outcome(const command_job& job) const {
  auto found = store_.find_command(job.command_id);
  if (!found || std::chrono::system_clock::now() - found->timestamp > core_.settings.idempotency_window)
    return std::nullopt;
  if (found->stream != *stream_)
    return std::unexpected(rejection{std::string{errc::duplicate_command_id},
                                     "command id " + job.command_id + " was already used by a command to "
                                       + found->stream.to_string()});
  core_.counters.duplicate_commands.fetch_add(1, std::memory_order_relaxed);
  return accepted{found->version, found->last_position, found->events};
}

std::optional<command_result> aggregate_cell::decide(std::shared_ptr<command_job>& job_pointer) {
  auto& job = *job_pointer;
  if (auto failure = recover())
    return std::unexpected(std::move(*failure));
  if (job.sender_chose_id) {
    try {
      if (auto earlier = earlier_outcome(job))
        return std::move(*earlier);
    } catch (const std::exception& error) {
      return internal_error("cannot look up command id " + job.command_id + ": " + error.what());
    }
  }
  std::expected<new_events, rejection> decided;
  try {
    decided = instance_->decide(job.command.get());
  } catch (const std::exception& error) {
    return internal_error(std::string{"decide threw: "} + error.what());
  } catch (...) {
    return internal_error("decide threw a non-standard exception");
  }
  if (!decided)
    return std::unexpected(std::move(decided.error()));
  if (decided->empty())
    return accepted{version_, last_position_, 0};
  if (auto reason = core_.unhealthy_reason())
    return std::unexpected(rejection{std::string{errc::store_failure}, "the engine refuses writes: " + *reason});
  auto count = decided->size();
  // Evolve before appending, so an event that evolve cannot take is never stored (replay would choke on it).
  try {
    for (const auto& event : *decided)
      instance_->apply(event.payload);
  } catch (const std::exception& error) {
    recovered_ = false;
    return internal_error(std::string{"evolve threw: "} + error.what());
  } catch (...) {
    recovered_ = false;
    return internal_error("evolve threw a non-standard exception");
  }
  // A cluster node keeps the ids: a command its fence refuses goes on to the new owner with them.
  append_request request{stream_,
                         version_,
                         core_.cluster ? job.command_id : std::move(job.command_id),
                         core_.cluster ? job.correlation_id : std::move(job.correlation_id),
                         std::move(*decided),
                         job.sender_chose_id,
                         lease_fence{partition_, epoch_}};
  if (store_.appends_in_background()) {
    // The thread goes on with other work while the store commits; the cell stays claimed, holding its later work
    // until the commit is done, so its commands still run one at a time and in order. The actor takes over then.
    aggregate_actor handle;
    {
      costs::lock();
      std::lock_guard lock{guard_};
      handle = ensure_actor();
    }
    committing_ = std::move(job_pointer);
    committing_events_ = count;
    // The outcome may arrive (on the store's thread, and on to the actor) before append_async returns: nothing
    // of the cell is touched on this thread after it.
    store_.append_async(std::move(request), [handle](std::expected<append_result, store_error> outcome) {
      deliver(handle, appended_message{std::move(outcome)});
    });
    return std::nullopt;
  }
  return finish(store_.append(std::move(request)), count);
}

command_result aggregate_cell::finish(std::expected<append_result, store_error> appended, std::size_t count) {
  if (!appended) {
    // The state already holds the refused events: rebuild it from the stream before the next command.
    recovered_ = false;
    auto& error = appended.error();
    if (error.code == errc::fenced) {
      core_.cluster->fenced(partition_, epoch_);
      return std::unexpected(rejection{std::move(error.code), std::move(error.message)});
    }
    if (error.code == errc::concurrency_conflict)
      return std::unexpected(rejection{std::move(error.code), std::move(error.message)});
    if (error.code == errc::store_failure)
      core_.mark_unhealthy(error.message);
    return std::unexpected(rejection{std::string{errc::store_failure}, std::move(error.message)});
  }
  auto before = version_;
  version_ = appended->version;
  last_position_ = appended->last_position;
  if (model_.snapshot_every > 0 && before / model_.snapshot_every != version_ / model_.snapshot_every)
    take_snapshot();
  return accepted{version_, last_position_, count};
}

void aggregate_cell::take_snapshot() {
  try {
    store_.save_snapshot(
      snapshot{*stream_, version_, model_.snapshot_format, model_.encode_state(*instance_, last_position_)});
    core_.counters.snapshots_saved.fetch_add(1, std::memory_order_relaxed);
  } catch (...) {
    // A snapshot is only a shortcut for recovery; without it the next recovery replays more events.
  }
}

namespace {

struct aggregate_state {
  static inline const char* name = "cqrs.aggregate";

  aggregate_state() = default;
  aggregate_state(const aggregate_state&) = delete;
  aggregate_state& operator=(const aggregate_state&) = delete;
  ~aggregate_state() { received(self); }

  aggregate_actor::pointer self = nullptr;
  std::shared_ptr<aggregate_cell> cell;
};

aggregate_actor::behavior_type aggregate_behavior(aggregate_actor::stateful_pointer<aggregate_state> self,
                                                  std::shared_ptr<aggregate_cell> cell) {
  self->state.self = self;
  self->state.cell = std::move(cell);
  return {
    [self](drain_atom) {
      received(self);
      self->state.cell->drain();
    },
    [self](appended_message& message) {
      received(self);
      self->state.cell->appended(std::move(message.outcome));
    },
  };
}

} // namespace

aggregate_actor spawn_aggregate(caf::actor_system& system, std::shared_ptr<aggregate_cell> cell) {
  // Lazy: the spawner only enqueues; the actor first runs when its first message is scheduled.
  return spawned(system.spawn<caf::lazy_init>(aggregate_behavior, std::move(cell)));
}

} // namespace cqrs::detail
