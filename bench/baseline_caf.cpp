// The raw-CAF baseline: the orders workload as a hand-written CAF program, with no engine. Client actors send
// each command as a request to its order's actor (a sharded directory, lazily spawned actors), which decides,
// evolves its state, tells one projection actor the events (applied to the read models the engine run registers)
// and replies.
#include "bench/baselines.hpp"

#include "bench/phase_support.hpp"
#include "readmodels/order_views.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <array>
#include <unordered_map>

#if defined(__SANITIZE_THREAD__)
#define BENCH_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BENCH_THREAD_SANITIZER 1
#endif
#endif
#ifdef BENCH_THREAD_SANITIZER
extern "C" void __tsan_acquire(void* address);
extern "C" void __tsan_release(void* address);
#endif

namespace bench::raw_caf {

/// A command for an order actor.
struct command_request {
  orders::command command;
};
/// The order actor's answer: accepted (with the position of its last event) or the rejection's code.
struct command_reply {
  bool accepted = false;
  cqrs::log_position position = 0;
  std::string code;
};
/// Whom an order actor calls back with its reply (the engine's reply shape).
class reply_sink {
public:
  virtual ~reply_sink() = default;
  virtual void on_reply(const command_reply& reply) = 0;
};
/// A command for an order actor that answers by calling its client back.
struct callback_request {
  orders::command command;
  reply_sink* client = nullptr;
};
/// The events one accepted command appended, for the projection: positions first .. first + size - 1.
struct applied_events {
  std::shared_ptr<const cqrs::stream_id> stream;
  cqrs::log_position first = 0;
  std::vector<orders::event> events;
};

} // namespace bench::raw_caf

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bench::raw_caf::command_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bench::raw_caf::command_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bench::raw_caf::callback_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bench::raw_caf::applied_events)

namespace bench {
namespace raw_caf {
namespace {

using clock = std::chrono::steady_clock;
using detail::pending_counter;
/// Asks the projection how many events it applied; answered after everything queued before it.
using sync_atom = caf::atom_constant<caf::atom("sync")>;

// Debian's libcaf_core is built without ThreadSanitizer, so TSan cannot see that a send happens before its
// receipt; these state that edge (as the engine does), and compile to nothing in other builds.
void sending_to([[maybe_unused]] caf::abstract_actor* receiver) {
#ifdef BENCH_THREAD_SANITIZER
  __tsan_release(receiver);
#endif
}
void received([[maybe_unused]] caf::abstract_actor* self) {
#ifdef BENCH_THREAD_SANITIZER
  __tsan_acquire(self);
#endif
}

/// Shared by every actor of the program; outlives them all.
struct program {
  static constexpr std::size_t shard_count = 64;
  struct shard {
    std::mutex mutex;
    std::unordered_map<std::string, caf::actor> actors;
  };

  caf::actor projection;
  std::atomic<cqrs::log_position> next_position{0};
  std::array<shard, shard_count> shards;

  caf::actor order_actor_for(caf::actor_system& system, const std::string& order_id);
  void stop_all();
};

struct order_state {
  static inline const char* name = "bench.order";
  orders::order order;
  std::shared_ptr<const cqrs::stream_id> stream;
};

/// Decides a command on the order, evolves it, tells the projection the events: what both order actors do.
command_reply decide_and_apply(order_state& state, program& shared, const orders::command& command) {
  auto decided = orders::decide(state.order, command);
  if (!decided)
    return command_reply{false, 0, decided.error().code};
  auto events = std::move(decided).events();
  for (const auto& event : events)
    state.order = orders::evolve(std::move(state.order), event);
  auto count = events.size();
  auto first = shared.next_position.fetch_add(count, std::memory_order_relaxed) + 1;
  sending_to(caf::actor_cast<caf::abstract_actor*>(shared.projection));
  caf::anon_send(shared.projection, applied_events{state.stream, first, std::move(events)});
  return command_reply{true, first + count - 1, {}};
}

caf::behavior order_actor(caf::stateful_actor<order_state>* self, std::shared_ptr<const cqrs::stream_id> stream,
                          program* shared) {
  self->state.stream = std::move(stream);
  return {
    [self, shared](const command_request& request) -> command_reply {
      received(self);
      auto reply = decide_and_apply(self->state, *shared, request.command);
      sending_to(caf::actor_cast<caf::abstract_actor*>(self->current_sender()));
      return reply;
    },
    [self, shared](const callback_request& request) {
      received(self);
      request.client->on_reply(decide_and_apply(self->state, *shared, request.command));
    },
  };
}

caf::actor program::order_actor_for(caf::actor_system& system, const std::string& order_id) {
  auto& shard = shards[std::hash<std::string>{}(order_id) % shard_count];
  std::lock_guard lock{shard.mutex};
  auto found = shard.actors.find(order_id);
  if (found == shard.actors.end()) {
    auto stream = std::make_shared<const cqrs::stream_id>(cqrs::stream_id{"order", order_id});
    found = shard.actors.emplace(order_id, system.spawn<caf::lazy_init>(order_actor, std::move(stream), this)).first;
  }
  return found->second;
}

void program::stop_all() {
  for (auto& one : shards) {
    std::lock_guard lock{one.mutex};
    for (auto& [id, actor] : one.actors)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    one.actors.clear();
  }
  caf::anon_send_exit(projection, caf::exit_reason::user_shutdown);
  projection = nullptr;
}

/// The read models the engine run registers (options.read_models), each applied by the one projection actor: the
/// same read-side work as the engine's, without its log.
struct read_side {
  explicit read_side(const std::vector<std::string>& names) {
    // The engine run's own choice of read models, so that both follow one rule.
    auto chosen = order_read_model_probes(names);
    auto wanted = [&](std::string_view name) {
      return std::any_of(chosen.begin(), chosen.end(), [&](const read_model_probe& probe) { return probe.name == name; });
    };
    summaries_on = wanted(readmodels::order_summaries::name);
    customers_on = wanted(readmodels::customer_stats::name);
    statuses_on = wanted(readmodels::orders_by_status::name);
    products_on = wanted(readmodels::top_products::name);
  }

  void apply(const cqrs::envelope& meta, const orders::event& event) {
    if (summaries_on)
      summaries.apply(meta, event);
    if (customers_on)
      customers.apply(meta, event);
    if (statuses_on)
      statuses.apply(meta, event);
    if (products_on)
      products.apply(meta, event);
  }

  bool summaries_on, customers_on, statuses_on, products_on;
  readmodels::order_summaries summaries;
  readmodels::customer_stats customers;
  readmodels::orders_by_status statuses;
  readmodels::top_products products;
};

struct projection_state {
  static inline const char* name = "bench.projection";
  std::unique_ptr<read_side> models;
  cqrs::envelope meta;
  std::uint64_t applied = 0;
};

caf::behavior projection_actor(caf::stateful_actor<projection_state>* self, const std::vector<std::string>& names) {
  self->state.models = std::make_unique<read_side>(names);
  return {
    [self](const applied_events& batch) {
      received(self);
      auto& state = self->state;
      state.meta.stream = batch.stream;
      for (std::size_t index = 0; index < batch.events.size(); ++index) {
        state.meta.position = batch.first + index;
        state.models->apply(state.meta, batch.events[index]);
      }
      state.applied += batch.events.size();
    },
    [self](sync_atom) -> std::uint64_t {
      received(self);
      return self->state.applied;
    },
  };
}

/// One phase of clients (setup, warm-up or measured).
struct phase {
  phase(workload_plan workload, std::unique_ptr<phase_budget> limits)
    : plan(std::move(workload)), budget(std::move(limits)) {}
  workload_plan plan;
  std::unique_ptr<phase_budget> budget;
  striped_recorder recorder;
  pending_counter running;
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> invalid_sent{0};
  std::atomic<std::uint64_t> events{0};
  clock::time_point origin = clock::now();
  /// The callback-shaped clients (they outlive the actor system, which may still call them as it ends).
  std::vector<std::unique_ptr<reply_sink>> callback_clients;
};

struct client_state {
  static inline const char* name = "bench.client";
  std::unique_ptr<client_script> script;
  std::string_view expected;
  clock::time_point sent_at{};
  std::uint64_t sent = 0;
  std::uint64_t invalid_sent = 0;
  std::uint64_t events = 0;
};

using client_pointer = caf::stateful_actor<client_state>*;

void count_reply(phase& current, clock::time_point sent_at, std::string_view expected, bool accepted,
                 const std::string& code) {
  auto now = clock::now();
  auto completion = std::chrono::duration_cast<std::chrono::nanoseconds>(now - current.origin).count();
  current.recorder.record(
    static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at).count()),
    [&](outcome_tally& tally) {
      ++(accepted ? tally.accepted : tally.rejected);
      if (!expected.empty()) {
        ++tally.invalid_answered;
        if (!accepted) {
          ++tally.invalid_rejected;
          if (code != expected)
            ++tally.wrong_code;
        }
      } else if (!accepted) {
        ++tally.valid_rejected;
      }
      tally.last_completion_ns = std::max<std::int64_t>(tally.last_completion_ns, completion);
    });
}

/// Sends the client's next command as a request; when the script is done, reports and lets the actor end.
void issue_next(client_pointer self, program* shared, phase* current) {
  auto& state = self->state;
  auto planned = state.script->next();
  if (!planned) {
    current->sent.fetch_add(state.sent);
    current->invalid_sent.fetch_add(state.invalid_sent);
    current->events.fetch_add(state.events);
    current->running.done();
    return; // no behavior and no pending request: the actor terminates
  }
  ++state.sent;
  if (!planned->expected_rejection.empty())
    ++state.invalid_sent;
  state.expected = planned->expected_rejection;
  auto target = shared->order_actor_for(self->system(), state.script->order_id());
  state.sent_at = clock::now();
  sending_to(caf::actor_cast<caf::abstract_actor*>(target));
  self->request(target, caf::infinite, command_request{std::move(planned->command)})
    .then(
      [self, shared, current](const command_reply& reply) {
        received(self);
        count_reply(*current, self->state.sent_at, self->state.expected, reply.accepted, reply.code);
        if (reply.accepted)
          ++self->state.events;
        issue_next(self, shared, current);
      },
      [self, shared, current](caf::error&) {
        received(self);
        count_reply(*current, self->state.sent_at, self->state.expected, false, "caf_error");
        issue_next(self, shared, current);
      });
}

caf::behavior client_actor(client_pointer self, program* shared, phase* current, std::uint64_t index) {
  self->state.script = std::make_unique<client_script>(current->plan, *current->budget, index);
  issue_next(self, shared, current);
  return {};
}

/// A client in the engine's shape: no actor of its own; its order's actor calls it back with the reply, and it
/// sends its next command from there (one message per command, every client always in flight).
class callback_client final : public reply_sink {
public:
  callback_client(caf::actor_system& system, program& shared, phase& current, std::uint64_t index)
    : system_(system), shared_(shared), phase_(current), script_(current.plan, *current.budget, index) {}

  /// Sends the next command, or reports and finishes.
  void issue_next() {
    auto planned = script_.next();
    if (!planned) {
      phase_.sent.fetch_add(sent_);
      phase_.invalid_sent.fetch_add(invalid_sent_);
      phase_.events.fetch_add(events_);
      phase_.running.done();
      return;
    }
    ++sent_;
    if (!planned->expected_rejection.empty())
      ++invalid_sent_;
    expected_ = planned->expected_rejection;
    auto target = shared_.order_actor_for(system_, script_.order_id());
    sent_at_ = clock::now();
    sending_to(caf::actor_cast<caf::abstract_actor*>(target));
    caf::anon_send(target, callback_request{std::move(planned->command), this});
  }

  void on_reply(const command_reply& reply) override {
    count_reply(phase_, sent_at_, expected_, reply.accepted, reply.code);
    if (reply.accepted)
      ++events_;
    issue_next();
  }

private:
  caf::actor_system& system_;
  program& shared_;
  phase& phase_;
  client_script script_;
  std::string_view expected_;
  clock::time_point sent_at_{};
  std::uint64_t sent_ = 0;
  std::uint64_t invalid_sent_ = 0;
  std::uint64_t events_ = 0;
};

/// The reply of one open-loop command: counts it, latency from its intended time, and goes.
class paced_reply final : public reply_sink {
public:
  paced_reply(phase& current, clock::time_point intended, std::string_view expected)
    : phase_(current), intended_(intended), expected_(expected) {}

  void on_reply(const command_reply& reply) override {
    count_reply(phase_, intended_, expected_, reply.accepted, reply.code);
    if (reply.accepted)
      phase_.events.fetch_add(1, std::memory_order_relaxed);
    auto& running = phase_.running;
    delete this;
    running.done();
  }

private:
  phase& phase_;
  clock::time_point intended_;
  std::string_view expected_;
};

/// Waits until every client (or pacer and command) of the phase is done, then takes its figures.
detail::baseline_phase_outcome finish_phase(phase& current) {
  while (!current.running.wait_for_zero(std::chrono::seconds{1})) {
  }
  detail::baseline_phase_outcome outcome;
  outcome.sent = current.sent.load();
  outcome.invalid_sent = current.invalid_sent.load();
  outcome.tally = current.recorder.tally();
  outcome.latencies = current.recorder.latencies();
  outcome.seconds = std::chrono::duration<double>(std::chrono::nanoseconds{outcome.tally.last_completion_ns}).count();
  return outcome;
}

/// The open loop, paced as the engine run's (detail::pace): pacer threads send each command to its order's actor
/// at its intended time, never waiting for a reply; the order actor calls the command's reply back.
detail::baseline_phase_outcome run_open_phase(caf::actor_system& system, program& shared, phase& current,
                                              const load_options& options) {
  auto pacer_count = std::max<std::size_t>(1, std::min<std::size_t>(options.pacers, options.clients));
  auto interval = std::chrono::duration_cast<clock::duration>(
    std::chrono::duration<double>(static_cast<double>(pacer_count) / options.rate));
  std::vector<std::vector<std::unique_ptr<client_script>>> scripts(pacer_count);
  for (std::uint64_t client = 0; client < options.clients; ++client)
    scripts[client % pacer_count].push_back(std::make_unique<client_script>(current.plan, *current.budget, client));
  current.running.add(static_cast<std::int64_t>(pacer_count));
  auto started = clock::now();
  current.origin = started;
  {
    std::vector<std::jthread> pacers;
    for (auto& owned : scripts)
      pacers.emplace_back([&, &owned = owned] {
        std::uint64_t sent = 0;
        std::uint64_t invalid = 0;
        detail::pace(owned, interval, started, options.max_in_flight, current.running,
                     [&](client_script& script, planned_command planned, clock::time_point intended) {
          ++sent;
          if (!planned.expected_rejection.empty())
            ++invalid;
          current.running.add();
          auto target = shared.order_actor_for(system, script.order_id());
          auto* reply = new paced_reply(current, intended, planned.expected_rejection);
          sending_to(caf::actor_cast<caf::abstract_actor*>(target));
          caf::anon_send(target, callback_request{std::move(planned.command), reply});
        });
        current.sent.fetch_add(sent);
        current.invalid_sent.fetch_add(invalid);
        current.running.done();
      });
  }
  return finish_phase(current);
}

/// How the baseline's clients are built.
enum class client_shape { actors, callbacks, open_loop };

detail::baseline_phase_outcome run_phase(caf::actor_system& system, program& shared, phase& current, std::uint64_t clients,
                        client_shape shape) {
  current.running.add(static_cast<std::int64_t>(clients));
  auto started = clock::now();
  current.origin = started;
  if (shape == client_shape::actors) {
    for (std::uint64_t index = 0; index < clients; ++index)
      system.spawn(client_actor, &shared, &current, index);
  } else {
    std::vector<callback_client*> started_clients;
    for (std::uint64_t index = 0; index < clients; ++index) {
      auto client = std::make_unique<callback_client>(system, shared, current, index);
      started_clients.push_back(client.get());
      current.callback_clients.push_back(std::move(client));
    }
    for (auto* client : started_clients)
      client->issue_next();
  }
  return finish_phase(current);
}

baseline_figures run_raw_caf(const load_options& options, client_shape shape) {
  baseline_figures figures;
  figures.name = shape == client_shape::actors      ? "raw CAF"
                 : shape == client_shape::callbacks ? "raw CAF, callbacks"
                                                    : "raw CAF, open loop";
  // Phases outlive the actor system: the last client touches its phase's counter as it ends.
  std::vector<std::unique_ptr<phase>> phases;
  // The directory's handles are dropped (stop_all) before the actor system goes.
  program shared;
  caf::actor_system_config config;
  config.set("scheduler.max-threads", options.threads);
  config.set("scheduler.policy",
             options.policy == cqrs::scheduler_policy::sharing ? caf::atom("sharing") : caf::atom("stealing"));
  caf::actor_system system{config};
  shared.projection = system.spawn(projection_actor, options.read_models);

  auto measured = detail::run_baseline_phases(
    options, figures, [&](workload_plan plan, std::unique_ptr<phase_budget> budget, std::uint64_t clients) {
      auto kind = plan.kind;
      phases.push_back(std::make_unique<phase>(std::move(plan), std::move(budget)));
      if (shape == client_shape::open_loop && kind != workload_kind::setup)
        return run_open_phase(system, shared, *phases.back(), options);
      // Setting up (placing the hot workload's orders) is a closed loop in the engine run too.
      return run_phase(system, shared, *phases.back(), clients,
                       shape == client_shape::actors ? client_shape::actors : client_shape::callbacks);
    });

  // Every accepted command told the projection its events before replying: a request sent now is answered after
  // all of them.
  std::uint64_t applied = 0;
  auto last_phase_ended = clock::now();
  {
    caf::scoped_actor self{system};
    sending_to(caf::actor_cast<caf::abstract_actor*>(shared.projection));
    self->request(shared.projection, caf::infinite, sync_atom::value)
      .receive([&](std::uint64_t count) { applied = count; }, [&](caf::error&) {});
  }
  figures.catchup_ms = std::chrono::duration<double, std::milli>(clock::now() - last_phase_ended).count();
  std::uint64_t events = 0;
  for (const auto& one : phases)
    events += one->events.load();
  if (applied != events || applied != shared.next_position.load())
    figures.problems.push_back(figures.name + ": the projection applied " + std::to_string(applied) + " events of "
                               + std::to_string(events));
  shared.stop_all();
  detail::fill_baseline_figures(figures, measured);
  return figures;
}

} // namespace
} // namespace raw_caf

baseline_figures run_raw_caf_baseline(const load_options& options) {
  return raw_caf::run_raw_caf(options, raw_caf::client_shape::actors);
}

baseline_figures run_raw_caf_callback_baseline(const load_options& options) {
  return raw_caf::run_raw_caf(options, raw_caf::client_shape::callbacks);
}

baseline_figures run_raw_caf_open_loop_baseline(const load_options& options) {
  return raw_caf::run_raw_caf(options, raw_caf::client_shape::open_loop);
}

} // namespace bench
