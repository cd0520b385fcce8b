// Internal: the type-erased shapes through which the non-template engine core runs a host's aggregates,
// projections and queries. CAF-free, so that engine.hpp stays cheap to include.
#pragma once

#include "actors/decision.hpp"
#include "actors/envelope.hpp"
#include "actors/event_store.hpp"
#include "actors/errors.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace cqrs {

namespace detail {

/// Names an event variant's current alternative by its static, versioned type name.
template <class Event>
std::string_view type_name_of(const Event& event) {
  return std::visit([](const auto& alternative) -> std::string_view {
    return std::remove_cvref_t<decltype(alternative)>::type_name;
  }, event);
}

/// Delivers a result exactly once: to the given function, or, if it is dropped undelivered (an actor
/// stopped with the work in its mailbox), the fallback value, so no caller ever waits forever.
template <class Result>
class once_sink {
public:
  using function = std::function<void(Result)>;

  once_sink(function deliver, std::function<Result()> fallback)
    : deliver_(std::move(deliver)), fallback_(std::move(fallback)) {}
  once_sink(const once_sink&) = delete;
  once_sink& operator=(const once_sink&) = delete;
  ~once_sink() {
    if (deliver_)
      deliver_(fallback_());
  }

  void operator()(Result result) {
    if (auto deliver = std::exchange(deliver_, nullptr))
      deliver(std::move(result));
  }

private:
  function deliver_;
  std::function<Result()> fallback_;
};

// Calls into the host's domain by argument-dependent lookup, from outside any class that has members of the
// same names (inside one, the unqualified call would find the member and never look in the domain's namespace).
template <class Aggregate, class Command>
auto call_decide(const Aggregate& state, const Command& command) {
  return decide(state, command);
}

template <class Aggregate, class Event>
Aggregate call_evolve(Aggregate state, const Event& event) {
  return evolve(std::move(state), event);
}

/// One aggregate instance's state behind a type-erased face; lives inside its aggregate actor.
class aggregate_instance {
public:
  virtual ~aggregate_instance() = default;
  /// Folds one event (the aggregate's event variant in an any) into the state.
  virtual void apply(const std::any& event) = 0;
  /// Runs decide() on the aggregate's command variant; the events come back ready to append.
  virtual std::expected<new_events, rejection> decide(const void* command) const = 0;
  /// A copy of the state, for inspection.
  virtual std::any state() const = 0;
};

/// Room for a command inside the job that carries it to its aggregate actor: the aggregate's command variant is
/// constructed in place when it fits (one allocation per command for job and command together), else on the heap.
class command_storage {
public:
  static constexpr std::size_t capacity = 192;

  command_storage() = default;
  command_storage(const command_storage&) = delete;
  command_storage& operator=(const command_storage&) = delete;
  ~command_storage() {
    if (destroy_)
      destroy_(*this);
  }

  /// The aggregate's command variant, once a router stored it.
  const void* get() const noexcept { return command_; }

  template <class Variant>
  const Variant& store(Variant&& value) {
    if constexpr (sizeof(Variant) <= capacity && alignof(Variant) <= alignof(std::max_align_t)) {
      auto* placed = ::new (static_cast<void*>(bytes_)) Variant(std::move(value));
      command_ = placed;
      destroy_ = [](command_storage& storage) { static_cast<const Variant*>(storage.command_)->~Variant(); };
      return *placed;
    } else {
      auto* allocated = new Variant(std::move(value));
      command_ = allocated;
      destroy_ = [](command_storage& storage) { delete static_cast<const Variant*>(storage.command_); };
      return *allocated;
    }
  }

private:
  alignas(std::max_align_t) std::byte bytes_[capacity];
  const void* command_ = nullptr;
  void (*destroy_)(command_storage&) = nullptr;
};

/// What the engine core knows of one registered aggregate type.
struct aggregate_model {
  std::string type_name;
  std::function<std::unique_ptr<aggregate_instance>()> make_instance;
  /// Snapshot every this many events of a stream; 0 disables snapshots (and the two functions below are empty).
  std::uint64_t snapshot_every = 0;
  std::uint32_t snapshot_format = 0;
  /// The instance's state, and the position of its stream's latest event, as JSON text.
  std::function<std::string(const aggregate_instance&, log_position)> encode_state;
  struct decoded_state {
    std::unique_ptr<aggregate_instance> instance;
    log_position position = 0;
  };
  /// JSON text back to an instance, or why it cannot be read.
  std::function<std::expected<decoded_state, std::string>(std::string_view)> decode_state;
  /// How a cluster node carries a command to another (cluster.hpp): the aggregate's command variant (void*) as its
  /// alternative's index and JSON, and back into `into`, returning the aggregate id. Empty when the command types
  /// do not convert through Boost.JSON; such an aggregate's commands are then never forwarded.
  struct encoded_command {
    std::uint32_t alternative = 0;
    std::string json;
  };
  std::function<encoded_command(const void* command)> encode_command;
  std::function<std::expected<std::string, std::string>(const encoded_command&, command_storage& into)>
    decode_command;
};

/// Turns a command of one concrete type (passed as void*, moved from) into its aggregate's command variant, kept
/// in `into`, and returns the id of the aggregate it targets.
using command_router = std::string (*)(void* command, command_storage& into);

template <class Aggregate>
class aggregate_instance_for final : public aggregate_instance {
public:
  using command = typename Aggregate::command;
  using event = typename Aggregate::event;

  aggregate_instance_for() = default;
  explicit aggregate_instance_for(Aggregate state) : state_(std::move(state)) {}

  const Aggregate& value() const noexcept { return state_; }

  void apply(const std::any& payload) override {
    state_ = call_evolve(std::move(state_), *std::any_cast<event>(&payload));
  }

  std::expected<new_events, rejection> decide(const void* payload) const override {
    auto outcome = call_decide(state_, *static_cast<const command*>(payload));
    if (!outcome.accepted())
      return std::unexpected(outcome.error());
    new_events events;
    auto decided = std::move(outcome).events();
    events.reserve(decided.size());
    for (auto& one : decided) {
      auto name = type_name_of(one);
      events.push_back(new_event{name, std::any{std::move(one)}});
    }
    return events;
  }

  std::any state() const override { return state_; }

private:
  Aggregate state_{};
};

template <class Aggregate, class Command>
std::string route_command(void* raw, command_storage& into) {
  const auto& command = into.store(typename Aggregate::command{std::move(*static_cast<Command*>(raw))});
  return std::string{aggregate_id(command)};
}

/// One registered projection: its read model behind a reader/writer lock, and its checkpoint.
class projection_runtime {
public:
  explicit projection_runtime(std::string name) : name_(std::move(name)) {}
  virtual ~projection_runtime() = default;

  const std::string& name() const { return name_; }

  /// Applies one event; the projection actor calls it with `mutex` held exclusively.
  virtual void apply(const envelope& event) = 0;
  /// Replaces the read model with an empty one; called with `mutex` held exclusively.
  virtual void reset() = 0;

  /// Guards the read model: queries share it, the projection actor applies a batch of events under it.
  mutable std::shared_mutex mutex;
  /// Last applied position. Written under `mutex` after a batch; read without it for fast checks.
  std::atomic<log_position> checkpoint{0};
  /// Opaque handle to the engine's bookkeeping for this projection.
  void* slot = nullptr;

  /// True once the projection stopped on an event it could not apply.
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }
  std::optional<projection_failure> failure() const {
    std::lock_guard lock{failure_mutex_};
    return failure_;
  }
  void record_failure(projection_failure failure) {
    std::lock_guard lock{failure_mutex_};
    failure_ = std::move(failure);
    failed_.store(true, std::memory_order_release);
  }
  /// Forgets the failure and any retries (a restart); with `dead_letters`, those too (a rebuild starts over).
  void clear_failure(bool dead_letters = false);

  /// What add_projection was told to do when apply throws.
  projection_options options{};
  enum class failure_outcome { stopped, retry_later, skipped };
  /// Applies the policy to an event that could not be applied: records it as the failure (stopped), counts a retry
  /// and sets `delay` to its backoff (retry_later), or keeps it as a dead letter (skipped).
  failure_outcome handle_failure(projection_failure failure, std::chrono::milliseconds& delay);
  /// False while a retry's backoff has not passed: nothing is applied until then.
  bool retry_due() const;
  /// An event was applied: a retry sequence, if any, succeeded.
  void applied() {
    if (retrying_.load(std::memory_order_relaxed)) {
      std::lock_guard lock{failure_mutex_};
      retries_ = 0;
      retrying_.store(false, std::memory_order_relaxed);
    }
  }
  /// Attempts made at the event that failed last (0 when none is being retried).
  std::size_t retries() const {
    std::lock_guard lock{failure_mutex_};
    return retries_;
  }
  /// Events skipped under the `skip` policy (the first max_dead_letters kept), and how many there were.
  std::vector<projection_failure> dead_letters() const {
    std::lock_guard lock{failure_mutex_};
    return dead_letters_;
  }
  std::uint64_t dead_letter_count() const {
    std::lock_guard lock{failure_mutex_};
    return dead_letter_count_;
  }
  static constexpr std::size_t max_dead_letters = 1000;

private:
  std::string name_;
  // Separate from `mutex`, so that status reports never wait for a batch being applied.
  mutable std::mutex failure_mutex_;
  std::optional<projection_failure> failure_;
  std::atomic<bool> failed_{false};
  std::atomic<bool> retrying_{false};
  std::size_t retries_ = 0;
  std::chrono::steady_clock::time_point retry_at_{};
  std::vector<projection_failure> dead_letters_;
  std::uint64_t dead_letter_count_ = 0;
};

/// Applies an envelope to a projection if its payload is one of the event variants it subscribes to.
template <class Projection, class... Events>
void apply_subscribed(Projection& model, const envelope& event, events_of<Events...>) {
  (void)((event.event_as<Events>() ? (model.apply(event, *event.event_as<Events>()), true) : false) || ...);
}

template <class Projection>
void apply_subscribed(Projection& model, const envelope& event) {
  apply_subscribed(model, event, typename Projection::subscribes_to{});
}

template <class Projection>
class projection_runtime_for final : public projection_runtime {
public:
  projection_runtime_for() : projection_runtime(std::string{Projection::name}) {}

  void apply(const envelope& event) override { apply_subscribed(model, event); }
  void reset() override { model = Projection{}; }

  Projection model{};
};

/// A query (or a barrier) waiting to run against one projection once it has applied `min_position`.
class query_task {
public:
  virtual ~query_task() = default;
  /// Answers from the read model; the caller holds the projection's mutex shared and checked `failed()`.
  virtual void run(const projection_runtime& projection) = 0;
  virtual void fail(query_error error) = 0;

  projection_runtime* projection = nullptr;
  log_position min_position = 0;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

/// Runs a query's answer function, turning what it throws into a query_failed error.
template <class Result, class Run>
query_result<Result> answer_or_error(Run& run, const projection_runtime& projection) {
  try {
    return query_result<Result>{run(projection)};
  } catch (const std::exception& error) {
    return std::unexpected(query_error{std::string{errc::query_failed}, std::string{"query threw: "} + error.what()});
  } catch (...) {
    return std::unexpected(query_error{std::string{errc::query_failed}, "query threw a non-standard exception"});
  }
}

template <class Result, class Run>
class query_task_for final : public query_task {
public:
  query_task_for(Run run, typename once_sink<query_result<Result>>::function deliver)
    : run_(std::move(run)),
      sink_(std::move(deliver), [] {
        return query_result<Result>{
          std::unexpected(query_error{std::string{errc::engine_stopped}, "the engine stopped"})};
      }) {}

  void run(const projection_runtime& projection) override { sink_(answer_or_error<Result>(run_, projection)); }

  void fail(query_error error) override { sink_(std::unexpected(std::move(error))); }

private:
  Run run_;
  once_sink<query_result<Result>> sink_;
};

} // namespace detail
} // namespace cqrs
