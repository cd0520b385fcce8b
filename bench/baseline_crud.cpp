// The CRUD baseline: one unordered_map of orders under one mutex, client threads applying decide/evolve directly.
#include "bench/baselines.hpp"

#include "bench/phase_support.hpp"

#include <latch>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace bench {
namespace {

using clock = std::chrono::steady_clock;

/// The single model: every order's state, behind one lock.
struct crud_model {
  std::mutex mutex;
  std::unordered_map<std::string, orders::order> orders;

  /// Decides and applies one command under the lock; the rejection's code when it is refused.
  std::optional<std::string> apply(const orders::command& command) {
    std::string id{orders::aggregate_id(command)};
    std::lock_guard lock{mutex};
    auto& state = orders[id];
    auto decided = orders::decide(state, command);
    if (!decided)
      return decided.error().code;
    for (const auto& event : decided.events())
      state = orders::evolve(std::move(state), event);
    return std::nullopt;
  }
};

/// `clients` threads run the plan's scripts against the model until the budget is spent.
detail::baseline_phase_outcome run_phase(crud_model& model, const workload_plan& plan, phase_budget& budget, std::uint64_t clients) {
  struct client_result {
    std::uint64_t sent = 0;
    std::uint64_t invalid_sent = 0;
    outcome_tally tally;
    histogram latencies;
  };
  std::vector<client_result> results(clients);
  std::latch ready{static_cast<std::ptrdiff_t>(clients) + 1};
  clock::time_point started;
  {
    std::vector<std::jthread> threads;
    for (std::uint64_t index = 0; index < clients; ++index)
      threads.emplace_back([&, index] {
        client_script script{plan, budget, index};
        auto& mine = results[index];
        ready.arrive_and_wait();
        while (auto planned = script.next()) {
          ++mine.sent;
          bool invalid = !planned->expected_rejection.empty();
          if (invalid)
            ++mine.invalid_sent;
          auto sent_at = clock::now();
          auto refusal = model.apply(planned->command);
          auto now = clock::now();
          mine.latencies.record(
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at).count()));
          auto& tally = mine.tally;
          ++(refusal ? tally.rejected : tally.accepted);
          if (invalid) {
            ++tally.invalid_answered;
            if (refusal) {
              ++tally.invalid_rejected;
              if (*refusal != planned->expected_rejection)
                ++tally.wrong_code;
            }
          } else if (refusal) {
            ++tally.valid_rejected;
          }
          tally.last_completion_ns = std::max<std::int64_t>(
            tally.last_completion_ns, std::chrono::duration_cast<std::chrono::nanoseconds>(now - started).count());
        }
      });
    started = clock::now();
    ready.arrive_and_wait();
  }
  detail::baseline_phase_outcome outcome;
  for (const auto& one : results) {
    outcome.sent += one.sent;
    outcome.invalid_sent += one.invalid_sent;
    outcome.tally.merge(one.tally);
    outcome.latencies.merge(one.latencies);
  }
  outcome.seconds = std::chrono::duration<double>(std::chrono::nanoseconds{outcome.tally.last_completion_ns}).count();
  return outcome;
}

} // namespace

baseline_figures run_crud_baseline(const load_options& options) {
  baseline_figures figures;
  figures.name = "CRUD (one mutex)";
  crud_model model;
  auto measured = detail::run_baseline_phases(
    options, figures, [&](workload_plan plan, std::unique_ptr<phase_budget> budget, std::uint64_t clients) {
      return run_phase(model, plan, *budget, clients);
    });
  detail::fill_baseline_figures(figures, measured);
  return figures;
}

} // namespace bench
