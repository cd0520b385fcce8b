// The aggregate actor: one per aggregate instance; recovers from its stream (or its latest snapshot), then decides
// commands one at a time, answering re-sent commands with their original outcome.
#include "actors/detail/runtime.hpp"

namespace cqrs::detail {

namespace {

std::unexpected<rejection> internal_error(std::string message) {
  return std::unexpected(rejection{std::string{errc::internal_error}, std::move(message)});
}

} // namespace

struct aggregate_state {
  static inline const char* name = "cqrs.aggregate";

  aggregate_state() = default;
  aggregate_state(const aggregate_state&) = delete;
  aggregate_state& operator=(const aggregate_state&) = delete;
  ~aggregate_state() { received(self); }

  /// A message that arrived while an append was being committed in the background: handled after it, in order.
  using held_message = std::variant<std::shared_ptr<command_job>, std::shared_ptr<state_sink>>;

  aggregate_actor::pointer self = nullptr;
  engine_core* core = nullptr;
  const aggregate_model* model = nullptr;
  event_store* store = nullptr;
  std::shared_ptr<const stream_id> stream;
  std::shared_ptr<aggregate_presence> presence;
  std::unique_ptr<aggregate_instance> instance;
  stream_version version = 0;
  /// Position of the stream's latest event: what a command that appends nothing reports.
  log_position last_position = 0;
  /// False until the state is rebuilt from the stream, and again whenever it may differ from the stream.
  bool recovered = false;
  /// The command whose append the store is committing in the background, and how many events it appends.
  std::shared_ptr<command_job> committing;
  std::size_t committing_events = 0;
  std::deque<held_message> held;

  /// One message fully handled: passivation may stop this actor once none is left.
  void handled() {
    costs::atomic_update();
    presence->unhandled.fetch_sub(1, std::memory_order_release);
  }

  /// Starts from the latest usable snapshot, if the aggregate type takes snapshots; nothing otherwise.
  std::optional<std::pair<std::unique_ptr<aggregate_instance>, stream_version>> from_snapshot(log_position& last) {
    if (model->snapshot_every == 0)
      return std::nullopt;
    auto taken = store->load_snapshot(*stream);
    if (!taken)
      return std::nullopt;
    if (taken->format_version == model->snapshot_format) {
      if (auto decoded = model->decode_state(taken->state)) {
        core->counters.snapshots_used.fetch_add(1, std::memory_order_relaxed);
        last = decoded->position;
        return std::pair{std::move(decoded->instance), taken->version};
      }
    }
    core->counters.snapshots_rejected.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }

  /// Rebuilds the state from the stream; on failure the reason comes back as a rejection.
  std::optional<rejection> recover() {
    if (recovered)
      return std::nullopt;
    try {
      log_position last = 0;
      auto start = from_snapshot(last);
      auto fresh = start ? std::move(start->first) : model->make_instance();
      stream_version after = start ? start->second : 0;
      std::uint64_t replayed = 0;
      auto fold = [&](const envelope& event) {
        fresh->apply(event.payload);
        last = event.position;
        ++replayed;
        return true;
      };
      auto reached = store->read_stream(*stream, after, fold);
      if (reached < after) {
        // A snapshot ahead of its stream cannot be trusted: replay everything.
        core->counters.snapshots_rejected.fetch_add(1, std::memory_order_relaxed);
        fresh = model->make_instance();
        last = 0;
        reached = store->read_stream(*stream, 0, fold);
      }
      core->counters.events_replayed.fetch_add(replayed, std::memory_order_relaxed);
      instance = std::move(fresh);
      version = reached;
      last_position = last;
      recovered = true;
      return std::nullopt;
    } catch (const std::exception& error) {
      return internal_error("aggregate " + stream->to_string() + " could not be recovered: " + error.what()).error();
    } catch (...) {
      return internal_error("aggregate " + stream->to_string() + " could not be recovered: non-standard exception")
        .error();
    }
  }

  /// The original outcome of a command re-sent with an id that an accepted command already used, if any.
  std::optional<command_result> earlier_outcome(const command_job& job) const {
    auto found = store->find_command(job.command_id);
    if (!found || std::chrono::system_clock::now() - found->timestamp > core->settings.idempotency_window)
      return std::nullopt;
    if (found->stream != *stream)
      return std::unexpected(rejection{std::string{errc::duplicate_command_id},
                                       "command id " + job.command_id + " was already used by a command to "
                                         + found->stream.to_string()});
    core->counters.duplicate_commands.fetch_add(1, std::memory_order_relaxed);
    return accepted{found->version, found->last_position, found->events};
  }

  /// Decides one command. Returns its result, or nothing when the store is committing its events in the
  /// background (the result then comes with the appended_message).
  std::optional<command_result> handle(std::shared_ptr<command_job>& job_pointer) {
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
    std::expected<std::vector<new_event>, rejection> decided;
    try {
      decided = instance->decide(job.command.get());
    } catch (const std::exception& error) {
      return internal_error(std::string{"decide threw: "} + error.what());
    } catch (...) {
      return internal_error("decide threw a non-standard exception");
    }
    if (!decided)
      return std::unexpected(std::move(decided.error()));
    if (decided->empty())
      return accepted{version, last_position, 0};
    if (auto reason = core->unhealthy_reason())
      return std::unexpected(rejection{std::string{errc::store_failure}, "the engine refuses writes: " + *reason});
    auto count = decided->size();
    // Evolve before appending, so an event that evolve cannot take is never stored (replay would choke on it).
    try {
      for (const auto& event : *decided)
        instance->apply(event.payload);
    } catch (const std::exception& error) {
      recovered = false;
      return internal_error(std::string{"evolve threw: "} + error.what());
    } catch (...) {
      recovered = false;
      return internal_error("evolve threw a non-standard exception");
    }
    append_request request{stream, version, std::move(job.command_id), std::move(job.correlation_id),
                           std::move(*decided), job.sender_chose_id};
    if (store->appends_in_background()) {
      // The worker thread goes on with other actors while the store commits; this actor holds its later
      // messages until the commit is done, so its commands still run one at a time and in order.
      committing = std::move(job_pointer);
      committing_events = count;
      store->append_async(std::move(request),
                          [handle = caf::actor_cast<aggregate_actor>(self)](std::expected<append_result, store_error> outcome) {
                            deliver(handle, appended_message{std::move(outcome)});
                          });
      return std::nullopt;
    }
    return finish(store->append(std::move(request)), count);
  }

  /// The reply to a command whose append completed.
  command_result finish(std::expected<append_result, store_error> appended, std::size_t count) {
    if (!appended) {
      // The state already holds the refused events: rebuild it from the stream before the next command.
      recovered = false;
      if (appended.error().code == store_errc::version_conflict)
        return std::unexpected(rejection{std::string{errc::concurrency_conflict}, std::move(appended.error().message)});
      if (appended.error().code == store_errc::io_error)
        core->mark_unhealthy(appended.error().message);
      return std::unexpected(rejection{std::string{errc::store_failure}, std::move(appended.error().message)});
    }
    auto before = version;
    version = appended->version;
    last_position = appended->last_position;
    if (model->snapshot_every > 0 && before / model->snapshot_every != version / model->snapshot_every)
      take_snapshot();
    return accepted{version, last_position, count};
  }

  void take_snapshot() {
    try {
      store->save_snapshot(snapshot{*stream, version, model->snapshot_format,
                                    model->encode_state(*instance, last_position)});
      core->counters.snapshots_saved.fetch_add(1, std::memory_order_relaxed);
    } catch (...) {
      // A snapshot is only a shortcut for recovery; without it the next recovery replays more events.
    }
  }

  void run_command(std::shared_ptr<command_job> job) {
    if (auto result = handle(job)) {
      job->reply(std::move(*result));
      handled();
    }
  }

  void run_inspection(const std::shared_ptr<state_sink>& reply) {
    if (auto failure = recover())
      (*reply)(std::unexpected(std::move(*failure)));
    else
      (*reply)(instance->state());
    handled();
  }

  void appended(std::expected<append_result, store_error> outcome) {
    auto job = std::move(committing);
    job->reply(finish(std::move(outcome), committing_events));
    job.reset();
    handled();
    while (!committing && !held.empty()) {
      auto next = std::move(held.front());
      held.pop_front();
      if (auto* command = std::get_if<std::shared_ptr<command_job>>(&next))
        run_command(std::move(*command));
      else
        run_inspection(std::get<std::shared_ptr<state_sink>>(next));
    }
  }
};

namespace {

aggregate_actor::behavior_type aggregate_behavior(aggregate_actor::stateful_pointer<aggregate_state> self,
                                                  engine_core* core, const aggregate_model* model,
                                                  std::shared_ptr<const stream_id> stream,
                                                  std::shared_ptr<aggregate_presence> presence) {
  auto& state = self->state;
  state.self = self;
  state.core = core;
  state.model = model;
  state.store = core->store.get();
  state.stream = std::move(stream);
  state.presence = std::move(presence);
  return {
    [self](command_message& message) {
      received(self);
      auto& state = self->state;
      if (state.committing)
        state.held.emplace_back(std::move(message.job));
      else
        state.run_command(std::move(message.job));
    },
    [self](const inspect_message& message) {
      received(self);
      auto& state = self->state;
      if (state.committing)
        state.held.emplace_back(message.reply);
      else
        state.run_inspection(message.reply);
    },
    [self](appended_message& message) {
      received(self);
      self->state.appended(std::move(message.outcome));
    },
  };
}

} // namespace

aggregate_actor spawn_aggregate(caf::actor_system& system, engine_core* core, const aggregate_model* model,
                                std::shared_ptr<const stream_id> stream, std::shared_ptr<aggregate_presence> presence) {
  // Lazy: the sender only enqueues; the actor first runs when its first message is scheduled.
  return system.spawn<caf::lazy_init>(aggregate_behavior, core, model, std::move(stream), std::move(presence));
}

} // namespace cqrs::detail
