// The aggregate actor: one per aggregate instance; recovers from its stream, then decides commands one at a time.
#include "actors/detail/runtime.hpp"

namespace cqrs::detail {

struct aggregate_state {
  static inline const char* name = "cqrs.aggregate";

  aggregate_state() = default;
  aggregate_state(const aggregate_state&) = delete;
  aggregate_state& operator=(const aggregate_state&) = delete;
  ~aggregate_state() { received(self); }

  caf::abstract_actor* self = nullptr;
  const aggregate_model* model = nullptr;
  event_store* store = nullptr;
  std::shared_ptr<const stream_id> stream;
  std::unique_ptr<aggregate_instance> instance;
  stream_version version = 0;
  /// Position of the stream's latest event: what a command that appends nothing reports.
  log_position last_position = 0;
  /// False until the state is rebuilt from the stream, and again whenever it may differ from the stream.
  bool recovered = false;

  /// Rebuilds the state from the stream; on failure the reason comes back as a rejection.
  std::optional<rejection> recover() {
    if (recovered)
      return std::nullopt;
    try {
      auto fresh = model->make_instance();
      log_position last = 0;
      auto reached = store->read_stream(*stream, 0, [&](const envelope& event) {
        fresh->apply(event.payload);
        last = event.position;
        return true;
      });
      instance = std::move(fresh);
      version = reached;
      last_position = last;
      recovered = true;
      return std::nullopt;
    } catch (const std::exception& error) {
      return rejection{std::string{errc::internal_error},
                       "aggregate " + stream->to_string() + " could not be recovered: " + error.what()};
    } catch (...) {
      return rejection{std::string{errc::internal_error}, "aggregate " + stream->to_string()
                                                            + " could not be recovered: non-standard exception"};
    }
  }

  command_result handle(const command_job& job) {
    if (auto failure = recover())
      return std::unexpected(std::move(*failure));
    std::expected<std::vector<new_event>, rejection> decided;
    try {
      decided = instance->decide(job.command);
    } catch (const std::exception& error) {
      return std::unexpected(rejection{std::string{errc::internal_error}, std::string{"decide threw: "} + error.what()});
    } catch (...) {
      return std::unexpected(rejection{std::string{errc::internal_error}, "decide threw a non-standard exception"});
    }
    if (!decided)
      return std::unexpected(std::move(decided.error()));
    if (decided->empty())
      return accepted{version, last_position, 0};
    auto count = decided->size();
    // Evolve before appending, so an event that evolve cannot take is never stored (replay would choke on it).
    try {
      for (const auto& event : *decided)
        instance->apply(event.payload);
    } catch (const std::exception& error) {
      recovered = false;
      return std::unexpected(rejection{std::string{errc::internal_error}, std::string{"evolve threw: "} + error.what()});
    } catch (...) {
      recovered = false;
      return std::unexpected(rejection{std::string{errc::internal_error}, "evolve threw a non-standard exception"});
    }
    auto appended = store->append(append_request{stream, version, job.command_id, job.correlation_id,
                                                 std::move(*decided)});
    if (!appended) {
      // The state above already holds the refused events: rebuild it from the stream before the next command.
      recovered = false;
      auto code = appended.error().code == store_errc::version_conflict ? errc::concurrency_conflict
                                                                        : errc::store_failure;
      return std::unexpected(rejection{std::string{code}, std::move(appended.error().message)});
    }
    version = appended->version;
    last_position = appended->last_position;
    return accepted{version, last_position, count};
  }
};

namespace {

aggregate_actor::behavior_type aggregate_behavior(aggregate_actor::stateful_pointer<aggregate_state> self,
                                                  const aggregate_model* model, event_store* store,
                                                  std::shared_ptr<const stream_id> stream) {
  self->state.self = self;
  self->state.model = model;
  self->state.store = store;
  self->state.stream = std::move(stream);
  return {
    [self](const command_message& message) {
      received(self);
      auto& job = *message.job;
      job.reply(self->state.handle(job));
    },
    [self](const inspect_message& message) {
      received(self);
      if (auto failure = self->state.recover())
        (*message.reply)(std::unexpected(std::move(*failure)));
      else
        (*message.reply)(self->state.instance->state());
    },
  };
}

} // namespace

aggregate_actor spawn_aggregate(caf::actor_system& system, const aggregate_model* model, event_store* store,
                                std::shared_ptr<const stream_id> stream) {
  // Lazy: the sender only enqueues; the actor first runs when its first message is scheduled.
  return system.spawn<caf::lazy_init>(aggregate_behavior, model, store, std::move(stream));
}

} // namespace cqrs::detail
