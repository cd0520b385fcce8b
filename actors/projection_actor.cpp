// The projection actor (applies the log to one read model in position order and releases parked queries)
// and the query actor (answers queries from a read model under its shared lock, or parks them until it is ready).
#include "actors/detail/runtime.hpp"

namespace cqrs::detail {
namespace {

/// Events applied under one exclusive lock: bounds how long readers wait.
constexpr log_position batch_size = 1024;
/// Events applied per message before yielding to the mailbox (a rebuild request, say).
constexpr log_position events_per_turn = 16 * 1024;

query_error failed_error(const projection_runtime& runtime) {
  auto failure = runtime.failure().value_or(projection_failure{});
  return query_error{query_errc::projection_failed,
                     "projection " + runtime.name() + " stopped at position " + std::to_string(failure.position) + " ("
                       + failure.type_name + "): " + failure.message};
}

} // namespace

projection_slot::park_outcome projection_slot::park(std::shared_ptr<query_task> task, std::uint64_t& waiter) {
  // The projection publishes its checkpoint before taking this lock to release waiters, so a task checked and
  // parked under the lock is either seen as ready here or released by the projection afterwards.
  std::lock_guard lock{waiters_mutex_};
  if (runtime->failed())
    return park_outcome::failed;
  if (runtime->checkpoint.load(std::memory_order_acquire) >= task->min_position)
    return park_outcome::ready;
  waiter = ++last_waiter_;
  auto position = task->min_position;
  waiters_by_id_.emplace(waiter, waiters_.emplace(position, parked_task{waiter, std::move(task)}));
  return park_outcome::parked;
}

std::vector<std::shared_ptr<query_task>> projection_slot::take_reached() {
  std::vector<std::shared_ptr<query_task>> reached;
  auto checkpoint = runtime->checkpoint.load(std::memory_order_acquire);
  std::lock_guard lock{waiters_mutex_};
  while (!waiters_.empty() && waiters_.begin()->first <= checkpoint) {
    waiters_by_id_.erase(waiters_.begin()->second.id);
    reached.push_back(std::move(waiters_.begin()->second.task));
    waiters_.erase(waiters_.begin());
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
  return task;
}

std::vector<std::shared_ptr<query_task>> projection_slot::take_all() {
  std::vector<std::shared_ptr<query_task>> all;
  std::lock_guard lock{waiters_mutex_};
  for (auto& [position, parked] : waiters_)
    all.push_back(std::move(parked.task));
  waiters_.clear();
  waiters_by_id_.clear();
  return all;
}

void answer(query_task& task) {
  auto& model = *task.projection;
  std::shared_lock lock{model.mutex};
  if (model.failed())
    task.fail(failed_error(model));
  else
    task.run(model);
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

  /// Applies up to `events_per_turn` new events in batches; returns true if more remain.
  bool advance() {
    auto& model = *slot->runtime;
    auto head = store->head();
    auto stop_at = std::min(head, model.checkpoint.load() + events_per_turn);
    while (!model.failed() && model.checkpoint.load() < stop_at) {
      auto from = model.checkpoint.load();
      auto applied = from;
      {
        std::unique_lock lock{model.mutex};
        try {
          store->read_all(from, std::min(stop_at, from + batch_size), [&](const envelope& event) {
            try {
              model.apply(event);
              applied = event.position;
              return true;
            } catch (const std::exception& error) {
              model.record_failure(projection_failure{event.position, std::string{event.type_name}, error.what()});
            } catch (...) {
              model.record_failure(projection_failure{event.position, std::string{event.type_name},
                                                      "non-standard exception"});
            }
            return false;
          });
        } catch (const std::exception& error) {
          // The store could not hand over the next event (a durable store that cannot decode it, say): stop
          // there, as for an event the projection cannot apply, instead of skipping it.
          model.record_failure(projection_failure{applied + 1, "", std::string{"reading the log: "} + error.what()});
        }
        model.checkpoint.store(applied, std::memory_order_release);
      }
      for (auto& task : slot->take_reached())
        core->dispatch_query(std::move(task));
      if (applied == from)
        break;
    }
    if (model.failed()) {
      // Nothing parked can be answered any more; later arrivals see the failure when they try to park.
      auto error = failed_error(model);
      for (auto& task : slot->take_all())
        task->fail(error);
      return false;
    }
    return model.checkpoint.load() < head;
  }
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
      // Cleared before reading the head, so an append that lands after the read wakes this actor again.
      self->state.slot->advance_pending.store(false);
      if (self->state.advance())
        self->state.core->wake(*self->state.slot);
    },
    [self](const rebuild_message& message) {
      received(self);
      auto& state = self->state;
      auto& model = *state.slot->runtime;
      {
        std::unique_lock lock{model.mutex};
        model.reset();
        model.clear_failure();
        model.checkpoint.store(0);
      }
      // Queries parked now wait for the new model; `done` is answered once it reaches the head of the request.
      state.core->dispatch_query(message.done);
      state.core->wake(*state.slot);
    },
  };
}

// `index` only gives the function an argument: CAF 0.17 spawns an argument-less function through a null
// std::shared_ptr<std::tuple<>> dereference, which UBSan rightly aborts on.
query_actor::behavior_type query_behavior(query_actor::pointer self, std::size_t /* index */) {
  return {
    [self](const query_message& message) {
      received(self);
      auto& task = *message.task;
      auto& slot = *static_cast<projection_slot*>(task.projection->slot);
      std::uint64_t waiter = 0;
      switch (slot.park(message.task, waiter)) {
        case projection_slot::park_outcome::ready:
          answer(task);
          break;
        case projection_slot::park_outcome::failed:
          task.fail(failed_error(*task.projection));
          break;
        case projection_slot::park_outcome::parked:
          if (task.deadline != std::chrono::steady_clock::time_point::max()) {
            auto delay = std::max(task.deadline - std::chrono::steady_clock::now(),
                                  std::chrono::steady_clock::duration{0});
            // A message to itself: its own earlier handler already happens-before, no annotation needed.
            self->delayed_send(self, std::chrono::duration_cast<std::chrono::microseconds>(delay),
                               expire_message{&slot, waiter});
          }
          break;
      }
    },
    [self](const expire_message& message) {
      received(self);
      auto task = message.slot->take(message.waiter);
      if (!task)
        return; // answered in time
      auto& runtime = *message.slot->runtime;
      task->fail(query_error{query_errc::timeout, "projection " + runtime.name() + " did not reach position "
                                                    + std::to_string(task->min_position) + " in time (it is at "
                                                    + std::to_string(runtime.checkpoint.load()) + ")"});
    },
  };
}

} // namespace

projection_actor spawn_projection(caf::actor_system& system, projection_slot* slot, event_store* store,
                                  engine_core* core) {
  return system.spawn(projection_behavior, slot, store, core);
}

query_actor spawn_query_actor(caf::actor_system& system, std::size_t index) {
  return system.spawn(query_behavior, index);
}

} // namespace cqrs::detail
