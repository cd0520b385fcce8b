// The projection actor (applies the log to one read model in position order and releases parked queries)
// and the query actor (answers queries from a read model under its shared lock, or parks them until it is ready).
#include "actors/detail/runtime.hpp"

namespace cqrs::detail {
namespace {

/// Events applied under one exclusive lock: bounds how long readers wait.
constexpr log_position batch_size = 128;
/// Events applied per message (or per append on an appending thread) before yielding: to the actor's mailbox (a
/// rebuild request, say), or back to the appending actor, which hands the rest to the projection actor.
constexpr log_position events_per_turn = 16 * 1024;

query_error failed_error(const projection_runtime& runtime) {
  auto failure = runtime.failure().value_or(projection_failure{});
  return query_error{std::string{errc::projection_failed},
                     "projection " + runtime.name() + " stopped at position " + std::to_string(failure.position)
                       + (failure.type_name.empty() ? "" : " (" + failure.type_name + ")") + ": " + failure.message};
}

} // namespace

void projection_runtime::clear_failure(bool dead_letters) {
  std::lock_guard lock{failure_mutex_};
  failure_.reset();
  failed_.store(false, std::memory_order_release);
  retries_ = 0;
  retrying_.store(false, std::memory_order_relaxed);
  if (dead_letters) {
    dead_letters_.clear();
    dead_letter_count_ = 0;
  }
}

projection_runtime::failure_outcome projection_runtime::handle_failure(projection_failure failure,
                                                                       std::chrono::milliseconds& delay) {
  std::lock_guard lock{failure_mutex_};
  switch (options.on_failure) {
    case projection_failure_policy::skip:
      if (dead_letters_.size() < max_dead_letters)
        dead_letters_.push_back(std::move(failure));
      ++dead_letter_count_;
      return failure_outcome::skipped;
    case projection_failure_policy::retry:
      if (retries_ < options.max_retries) {
        // retry_backoff, doubled per attempt so far, at most max_retry_backoff.
        delay = options.retry_backoff;
        for (std::size_t attempt = 0; attempt < retries_ && delay < options.max_retry_backoff; ++attempt)
          delay *= 2;
        delay = std::min(delay, options.max_retry_backoff);
        ++retries_;
        retry_at_ = std::chrono::steady_clock::now() + delay;
        retrying_.store(true, std::memory_order_relaxed);
        return failure_outcome::retry_later;
      }
      failure.message += " (after " + std::to_string(retries_) + " retries)";
      break;
    case projection_failure_policy::stop:
      break;
  }
  failure_ = std::move(failure);
  failed_.store(true, std::memory_order_release);
  return failure_outcome::stopped;
}

bool projection_runtime::retry_due() const {
  if (!retrying_.load(std::memory_order_relaxed))
    return true;
  std::lock_guard lock{failure_mutex_};
  return std::chrono::steady_clock::now() >= retry_at_;
}

void engine_core::on_new_head(projection_slot& slot) {
  if (settings.tuning.projections != projection_dispatch::appending_thread || store->appends_in_background()) {
    wake(slot);
    return;
  }
  slot.behind.store(true);
  combine(slot);
}

void engine_core::combine(projection_slot& slot) {
  // Flat combining: whoever holds `applying` re-checks `behind` after letting go, so an append that finds the
  // lock taken is applied by the holder (or by the next appender), never left behind.
  while (slot.behind.load() && costs::try_lock(slot.applying)) {
    slot.behind.store(false);
    auto more = apply_new_events(slot, *store, *this, events_per_turn);
    slot.applying.unlock();
    if (more) {
      // A long catch-up is the projection actor's work, not this appender's.
      wake(slot);
      return;
    }
  }
}

void engine_core::park_or_answer(std::shared_ptr<query_task> task) {
  auto& slot = *static_cast<projection_slot*>(task->projection->slot);
  if (settings.tuning.projections == projection_dispatch::projection_actor_or_waiting_query
      && task->projection->checkpoint.load(std::memory_order_acquire) < task->min_position
      && costs::try_lock(slot.applying)) {
    // Help the read model along instead of waiting for its actor's turn; the events are in the log already.
    auto more = apply_new_events(slot, *store, *this, events_per_turn);
    slot.applying.unlock();
    if (more)
      wake(slot);
  }
  std::uint64_t waiter = 0;
  switch (slot.park(task, waiter)) {
    case projection_slot::park_outcome::ready:
      answer(*task);
      break;
    case projection_slot::park_outcome::failed:
      task->fail(failed_error(*task->projection));
      break;
    case projection_slot::park_outcome::parked:
      if (task->deadline != std::chrono::steady_clock::time_point::max()) {
        auto delay = std::max(task->deadline - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration{0});
        // The timer lives on a query actor, so a slow projection cannot delay the timeout.
        auto& timer = query_actors[next_query_actor.fetch_add(1, std::memory_order_relaxed) % query_actors.size()];
#ifdef CQRS_THREAD_SANITIZER
        __tsan_release(caf::actor_cast<caf::abstract_actor*>(timer));
#endif
        caf::delayed_anon_send(timer, std::chrono::duration_cast<std::chrono::microseconds>(delay),
                               expire_message{&slot, waiter});
      }
      break;
  }
}

void engine_core::release(std::shared_ptr<query_task> task) {
  if (settings.tuning.queries == query_dispatch::caller_when_ready)
    answer(*task);
  else
    dispatch_query(std::move(task));
}

projection_slot::park_outcome projection_slot::park(std::shared_ptr<query_task> task, std::uint64_t& waiter) {
  // Counted before the checkpoint is read, and the projection publishes its checkpoint before it reads the count
  // (both sequentially consistent): either this reads the new checkpoint, or the projection sees the count and
  // takes the lock to release waiters, which it cannot do before this task is in the lot.
  costs::atomic_update(2);
  costs::lock();
  parked_count_.fetch_add(1);
  std::lock_guard lock{waiters_mutex_};
  if (runtime->failed()) {
    parked_count_.fetch_sub(1);
    return park_outcome::failed;
  }
  if (runtime->checkpoint.load() >= task->min_position) {
    parked_count_.fetch_sub(1);
    return park_outcome::ready;
  }
  waiter = ++last_waiter_;
  auto position = task->min_position;
  waiters_by_id_.emplace(waiter, waiters_.emplace(position, parked_task{waiter, std::move(task)}));
  return park_outcome::parked;
}

std::vector<std::shared_ptr<query_task>> projection_slot::take_reached() {
  std::vector<std::shared_ptr<query_task>> reached;
  if (parked_count_.load() == 0)
    return reached; // the common case: nobody waits, no lock taken
  auto checkpoint = runtime->checkpoint.load();
  costs::lock();
  std::lock_guard lock{waiters_mutex_};
  while (!waiters_.empty() && waiters_.begin()->first <= checkpoint) {
    waiters_by_id_.erase(waiters_.begin()->second.id);
    reached.push_back(std::move(waiters_.begin()->second.task));
    waiters_.erase(waiters_.begin());
    parked_count_.fetch_sub(1);
  }
  return reached;
}

std::shared_ptr<query_task> projection_slot::take(std::uint64_t waiter) {
  std::lock_guard lock{waiters_mutex_};
  auto found = waiters_by_id_.find(waiter);
  if (found == waiters_by_id_.end())
    return nullptr;
  auto task = std::move(found->second->second.task);
  waiters_.erase(found->second);
  waiters_by_id_.erase(found);
  parked_count_.fetch_sub(1);
  return task;
}

std::vector<std::shared_ptr<query_task>> projection_slot::take_all() {
  std::vector<std::shared_ptr<query_task>> all;
  std::lock_guard lock{waiters_mutex_};
  for (auto& [position, parked] : waiters_)
    all.push_back(std::move(parked.task));
  parked_count_.fetch_sub(waiters_.size());
  waiters_.clear();
  waiters_by_id_.clear();
  return all;
}

void answer(query_task& task) {
  auto& model = *task.projection;
  costs::lock();
  std::shared_lock lock{model.mutex};
  if (model.failed())
    task.fail(failed_error(model));
  else
    task.run(model);
}

bool apply_new_events(projection_slot& slot, event_store& store, engine_core& core, log_position limit) {
  auto& model = *slot.runtime;
  auto head = store.head();
  auto stop_at = std::min(head, model.checkpoint.load() + limit);
  // Waiting out a retry's backoff: the timer set when it failed wakes the projection actor.
  if (!model.retry_due())
    return false;
  bool retry_later = false;
  while (!model.failed() && !retry_later && model.checkpoint.load() < stop_at) {
    auto from = model.checkpoint.load();
    auto applied = from;
    {
      costs::lock();
      std::unique_lock lock{model.mutex};
      // What the policy makes of an event that could not be applied; true to go on with the next event.
      auto on_failure = [&](projection_failure failure) {
        std::chrono::milliseconds delay{0};
        auto position = failure.position;
        auto kept = dead_letter{model.name(), failure, std::chrono::system_clock::now()};
        switch (model.handle_failure(std::move(failure), delay)) {
          case projection_runtime::failure_outcome::skipped:
            try {
              store.record_dead_letter(std::move(kept));
            } catch (...) {
              // Only the record is lost: status() still lists it, and the projection goes on as its policy says.
            }
            applied = position;
            return true;
          case projection_runtime::failure_outcome::retry_later:
            retry_later = true;
            core.wake_after(slot, delay);
            return false;
          case projection_runtime::failure_outcome::stopped:
            return false;
        }
        return false;
      };
      // The store may stop handing over events at one it cannot read (a durable store that cannot decode it):
      // that event is then the failure, as one the projection cannot apply, and the policy decides; reading goes
      // on after it when it is skipped.
      auto stop_read = std::min(stop_at, from + batch_size);
      while (applied < stop_read && !retry_later && !model.failed()) {
        auto before = applied;
        try {
          store.read_all(applied, stop_read, [&](const envelope& event) {
            try {
              model.apply(event);
              model.applied();
              applied = event.position;
              return true;
            } catch (const std::exception& error) {
              return on_failure(projection_failure{event.position, std::string{event.type_name}, error.what()});
            } catch (...) {
              return on_failure(projection_failure{event.position, std::string{event.type_name},
                                                   "non-standard exception"});
            }
          });
        } catch (const std::exception& error) {
          on_failure(projection_failure{applied + 1, "", std::string{"reading the log: "} + error.what()});
        }
        if (applied == before)
          break;
      }
      model.checkpoint.store(applied); // sequentially consistent: see projection_slot::park
    }
    for (auto& task : slot.take_reached())
      core.release(std::move(task));
    if (applied == from)
      break;
  }
  if (model.failed()) {
    // Nothing parked can be answered any more; later arrivals see the failure when they try to park.
    auto error = failed_error(model);
    for (auto& task : slot.take_all())
      task->fail(error);
    return false;
  }
  return model.checkpoint.load() < head;
}

struct projection_state {
  static inline const char* name = "cqrs.projection";

  projection_state() = default;
  projection_state(const projection_state&) = delete;
  projection_state& operator=(const projection_state&) = delete;
  ~projection_state() { received(self); }

  caf::abstract_actor* self = nullptr;
  projection_slot* slot = nullptr;
  event_store* store = nullptr;
  engine_core* core = nullptr;
};

namespace {

projection_actor::behavior_type projection_behavior(projection_actor::stateful_pointer<projection_state> self,
                                                    projection_slot* slot, event_store* store, engine_core* core) {
  self->state.self = self;
  self->state.slot = slot;
  self->state.store = store;
  self->state.core = core;
  return {
    [self](advance_atom) {
      received(self);
      auto& state = self->state;
      // Cleared before reading the head, so an append that lands after the read wakes this actor again.
      state.slot->advance_pending.store(false);
      bool more = false;
      {
        costs::lock();
        std::lock_guard applying{state.slot->applying};
        more = apply_new_events(*state.slot, *state.store, *state.core, events_per_turn);
      }
      if (more)
        state.core->wake(*state.slot);
      else
        state.core->combine(*state.slot); // appends that found the lock taken while this actor applied
    },
    [self](const rebuild_message& message) {
      received(self);
      auto& state = self->state;
      auto& model = *state.slot->runtime;
      {
        std::lock_guard applying{state.slot->applying};
        std::unique_lock lock{model.mutex};
        model.reset();
        model.clear_failure(true);
        model.checkpoint.store(0);
      }
      // Queries parked now wait for the new model; `done` is answered once it reaches the head of the request.
      state.core->dispatch_query(message.done);
      state.core->wake(*state.slot);
    },
  };
}

query_actor::behavior_type query_behavior(query_actor::pointer self, engine_core* core) {
  return {
    [self, core](const query_message& message) {
      received(self);
      core->park_or_answer(message.task);
    },
    [self](const expire_message& message) {
      received(self);
      auto task = message.slot->take(message.waiter);
      if (!task)
        return; // answered in time
      auto& runtime = *message.slot->runtime;
      task->fail(query_error{std::string{errc::timeout}, "projection " + runtime.name() + " did not reach position "
                                                    + std::to_string(task->min_position) + " in time (it is at "
                                                    + std::to_string(runtime.checkpoint.load()) + ")"});
    },
  };
}

} // namespace

projection_actor spawn_projection(caf::actor_system& system, projection_slot* slot, event_store* store,
                                  engine_core* core) {
  return spawned(system.spawn(projection_behavior, slot, store, core));
}

query_actor spawn_query_actor(caf::actor_system& system, engine_core* core) {
  return spawned(system.spawn(query_behavior, core));
}

} // namespace cqrs::detail
