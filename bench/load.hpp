// The load tester as a library: runs a workload against an engine in a closed or an open loop, measures
// throughput, latency, visibility, catch-up and queries, and verifies every read model against the log at the end.
// cqrs-load (bench/main.cpp) is a thin command line over it; the tests call it directly. CAF-free.
#pragma once

#include "actors/engine.hpp"
#include "bench/histogram.hpp"
#include "bench/workload.hpp"
#include "demo/store_choice.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

namespace bench {

/// Whether clients read their own writes back.
enum class read_consistency {
  /// No read-backs during the command phase.
  any,
  /// Every `ryw_every` accepted commands a client asks get_order_summary at_least(reply position) before it
  /// sends its next command, and checks that the answer reflects its write.
  read_your_writes,
};

/// How live progress is shown while a run goes (on stderr).
enum class progress_style {
  /// A redrawn bar when stderr is a terminal, a plain line a second otherwise.
  automatic,
  bar,
  lines,
  none,
};

/// Everything a run can be told. Defaults are the default orders run.
struct load_options {
  workload_kind workload = workload_kind::orders;
  /// Orders workload: orders to send (unless --commands or --duration-s bound the run instead).
  std::uint64_t orders = 20'000;
  std::uint64_t items = 8;
  /// Hot workload: the long-lived orders the clients contend on.
  std::uint64_t aggregates = 8;
  std::uint64_t clients = 64;
  /// Measured commands (about: a client finishes its order or pair); 0 = the workload's default.
  std::uint64_t commands = 0;
  /// Measured duration instead of a count; 0 = none.
  double duration_seconds = 0;
  /// Commands of the hot workload when neither commands nor duration is given.
  static constexpr std::uint64_t default_hot_commands = 500'000;

  std::size_t threads = 2;
  cqrs::scheduler_policy policy = cqrs::scheduler_policy::stealing;
  read_consistency consistency = read_consistency::any;
  std::uint64_t ryw_every = 8;
  std::uint64_t seed = 1;
  double warmup_seconds = 0;
  double invalid_percent = 1.0;

  /// Open loop: commands per second in all, paced from the intended send times; 0 = closed loop.
  double rate = 0;
  /// Threads that pace the open loop (each owns a share of the clients).
  std::size_t pacers = 1;
  /// Open loop: the pacers wait while this many commands are outstanding (then the lateness shows in latency).
  std::uint64_t max_in_flight = 200'000;
  /// Open loop: once the measured phase stops sending (its backlog of commands not sent yet dropped, as clients
  /// that gave up), one pacer goes on for recovery_seconds at recovery_rate, measured per 100 ms window of
  /// intended send times: how soon after an overload commands see normal latency again. 0: none.
  double recovery_seconds = 0;
  double recovery_rate = 0;
  /// The engine's own bounds (cqrs::options); what they refuse is counted as `overloaded`.
  std::size_t engine_max_in_flight = cqrs::options{}.max_in_flight;
  std::size_t max_queued_per_aggregate = cqrs::options{}.max_queued_per_aggregate;
  std::uint64_t max_projection_lag = cqrs::options{}.max_projection_lag;

  /// Host threads that start the clients and continue those whose reply came at once, on the calling thread
  /// (ready `any` queries, for instance); replies that come later continue on the engine's threads.
  std::size_t drivers = 2;
  /// Where the engine answers a query whose read model is ready: on the caller's thread or by its query actors.
  cqrs::command_dispatch command_dispatch = cqrs::command_dispatch::caller_when_idle;
  cqrs::query_dispatch query_dispatch = cqrs::query_dispatch::caller_when_ready;
  cqrs::projection_dispatch projection_dispatch = cqrs::projection_dispatch::projection_actor_or_waiting_query;

  /// One accepted command in this many is sampled for visibility latency (0 = none): at its acknowledgement one
  /// read model, each in turn, is asked at_least(its position); the time until the answer is its visibility.
  std::uint64_t visibility_every = 64;
  /// Ask every read model at each sampled acknowledgement instead of one in turn (more samples, more load).
  bool visibility_every_model = false;
  /// Length of the query phase after the commands; 0 = no query phase.
  double query_seconds = 2.0;

  /// The order read models to register, sample and verify, by name (order_summaries, customer_stats,
  /// orders_by_status, top_products); empty means all four, {"none"} none. Read-your-writes needs order_summaries; the
  /// query phase asks order_summaries and customer_stats, whichever are registered.
  std::vector<std::string> read_models{};

  /// Also run the raw-CAF baselines (actor clients, callback clients) and the mutex-CRUD baseline on the same
  /// workload (closed loop only).
  bool baselines = false;

  progress_style progress = progress_style::none;

  /// The event store; empty means a new in-memory one (cqrs-load opens --store). A store that holds events already
  /// is recovered first: the read models rebuild from its log before the commands start.
  std::shared_ptr<cqrs::event_store> store{};
  /// How the store is described in the report ("memory", "sqlite:PATH (synchronous=full)").
  std::string store_description = "memory";
  /// Put before the order ids ("o-17" becomes tag + "-o-17") and in the command ids; run_load takes one from the
  /// store's head (demo::run_tag) when the store holds events and this is empty, so runs never meet.
  std::string id_tag{};
  /// When not empty: for every accepted command (with events) a line "command_id position" is appended to this
  /// file, with one write(2), before the client sends its next command; the commands carry ids of the run's own.
  std::string ack_log{};
  /// cqrs::options::max_live_aggregates and passivate_after.
  std::size_t max_live_aggregates = cqrs::options{}.max_live_aggregates;
  std::chrono::milliseconds passivate_after = cqrs::options{}.passivate_after;
};

/// Latency percentiles, in microseconds.
struct latency_summary {
  std::uint64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
};

/// Summarises a histogram of nanoseconds.
latency_summary summarise(const histogram& nanoseconds);

/// One 100 ms window of the recovery phase (by intended send time from the phase's start).
struct recovery_window {
  double start_ms = 0;
  /// Commands answered (accepted or rejected) and their latencies; refusals as overloaded apart.
  latency_summary latency;
  std::uint64_t overloaded = 0;
};

/// The phase after an overload (load_options::recovery_seconds): latency window by window, and when it was
/// normal again.
struct overload_recovery {
  double rate = 0;
  double seconds = 0;
  std::uint64_t commands = 0;
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  std::uint64_t overloaded = 0;
  std::vector<recovery_window> windows;
  /// p99 over the phase's second half: where it ended up at the recovery rate.
  double steady_p99_us = 0;
  /// The calm phase: as long as this one and at the same rate, run before the overload; its p99, and the worst
  /// p99 of its 100 ms windows.
  double calm_p99_us = 0;
  double calm_worst_window_p99_us = 0;
  /// Normal latency: twice the calm phase's worst window p99.
  double normal_bound_us = 0;
  /// Start of the first window from which every window's p99 stays within normal_bound_us and nothing is refused
  /// as overloaded: the time from the overload's end until latency was normal again. Negative when it never was
  /// within the phase.
  double normal_after_ms = -1;
};

/// One read model compared with a fold of the log up to its checkpoint.
struct read_model_check {
  std::string name;
  cqrs::log_position checkpoint = 0;
  /// The first difference, or why the model could not be compared; nothing when it equals the fold.
  std::optional<std::string> difference;
};

/// What a sampled acknowledgement tells the visibility probes.
struct sample_context {
  cqrs::log_position position = 0;
  std::string order_id;
  std::string customer_id;
};

/// One read model as a run uses it: registered on the engine, asked at_least(position) to time visibility, and
/// verified against the log at the end.
/// What a visibility query found: the write, not the write (or it failed), or nothing because the engine refused
/// the wait as overloaded.
enum class sample_outcome { reflects, misses, overloaded };

struct read_model_probe {
  std::string name;
  std::function<void(cqrs::engine&)> add;
  /// Asks the model a question at_least(context.position); `done(outcome)` runs once (on the calling thread when
  /// the model is there already, else on an engine thread).
  std::function<void(cqrs::engine&, const sample_context&, std::function<void(sample_outcome)>)> ask;
  std::function<read_model_check(const cqrs::engine&)> verify;
};

/// Compares a live read model with `Reference` folded from the log up to the live model's checkpoint, through
/// `first_difference` (found by argument-dependent lookup) or `==`. `reference_of(live)` picks what to compare
/// (the model itself by default).
template <class Live, class Reference = Live, class Extract = std::nullptr_t>
read_model_check verify_against_log(const cqrs::engine& engine, Extract reference_of = nullptr) {
  read_model_check check;
  check.name = std::string{Live::name};
  auto live = engine.copy_read_model<Live>();
  if (!live) {
    check.difference = "cannot copy the read model: " + live.error().message;
    return check;
  }
  check.checkpoint = live->checkpoint;
  auto rebuilt = cqrs::fold_log<Reference>(*engine.store(), live->checkpoint);
  const Reference* compared = nullptr;
  if constexpr (std::is_same_v<Extract, std::nullptr_t>)
    compared = &live->model;
  else
    compared = &reference_of(live->model);
  if constexpr (requires(const Reference& left, const Reference& right) { first_difference(left, right); })
    check.difference = first_difference(*compared, rebuilt);
  else if (!(*compared == rebuilt))
    check.difference = "the live model differs from the log's fold";
  return check;
}

/// A probe for a projection: registers it, asks `make_query(context)` for visibility (an answer shows the write
/// when `reflects(answer, position)` says so), verifies with verify_against_log.
template <class Projection, class MakeQuery, class Reflects>
read_model_probe probe_for(MakeQuery make_query, Reflects reflects) {
  read_model_probe probe;
  probe.name = std::string{Projection::name};
  probe.add = [](cqrs::engine& engine) { engine.add_projection<Projection>(); };
  probe.ask = [make_query, reflects](cqrs::engine& engine, const sample_context& context,
                                     std::function<void(sample_outcome)> done) {
    using query_type = decltype(make_query(context));
    engine.query(
      make_query(context),
      [reflects, position = context.position,
       done = std::move(done)](cqrs::query_result<cqrs::answer_type<query_type>> answer) {
        if (!answer && answer.error().code == cqrs::errc::overloaded)
          done(sample_outcome::overloaded);
        else
          done(answer && reflects(*answer, position) ? sample_outcome::reflects : sample_outcome::misses);
      },
      cqrs::at_least(context.position));
  };
  probe.verify = [](const cqrs::engine& engine) { return verify_against_log<Projection>(engine); };
  return probe;
}

/// The four order read models (summaries, customer stats, orders by status, top products).
std::vector<read_model_probe> order_read_model_probes();
/// The order read models named (all four when `names` is empty, none for {"none"}); throws std::invalid_argument on an
/// unknown name.
std::vector<read_model_probe> order_read_model_probes(const std::vector<std::string>& names);

/// The figures of one baseline program run on the same workload.
struct baseline_figures {
  std::string name;
  std::uint64_t commands = 0;
  std::uint64_t rejected = 0;
  double seconds = 0;
  double commands_per_s = 0;
  latency_summary latency;
  /// Little's law: throughput x mean latency.
  double mean_in_flight = 0;
  /// Process CPU time (user + system, every thread) during the measured phase, per command sent.
  double cpu_us_per_command = 0;
  /// From the last reply until its read side had applied every event (negative: it has no read side).
  double catchup_ms = -1;
  /// Its own checks (every invalid command rejected, no valid one, its read model complete).
  bool verified = false;
  std::vector<std::string> problems;
};

/// Everything a run measured and found.
struct load_report {
  load_options options;

  /// Measured commands sent and their replies.
  std::uint64_t commands = 0;
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  std::uint64_t invalid_commands = 0;
  std::uint64_t invalid_rejected = 0;
  std::uint64_t valid_rejected = 0;
  std::uint64_t wrong_code = 0;
  /// Refused by the engine as overloaded (retriable; not in `rejected`, latencies or commands_per_s), and valid
  /// commands rejected by a rule only because an earlier command of their order was refused so.
  std::uint64_t overloaded = 0;
  std::uint64_t rejected_after_overload = 0;
  /// Orders whose PlaceOrder was refused as overloaded: the client dropped the rest of the order (its items would
  /// only break rules), unsent and so in none of the counts above.
  std::uint64_t orders_dropped = 0;
  /// A signal ended the run early: the figures cover what was sent until then.
  bool interrupted = false;
  /// Hot workload: how long placing the orders took (not measured as load).
  double setup_seconds = 0;
  /// From the first measured send to the last reply.
  double seconds = 0;
  double commands_per_s = 0;
  latency_summary latency;
  /// Little's law: commands_per_s x mean latency.
  double mean_in_flight = 0;
  /// Open loop: outstanding commands sampled every 10 ms, averaged; 0 in a closed loop (where it is `clients`).
  double sampled_in_flight = 0;
  /// Open loop: times a pacer waited because max_in_flight commands were outstanding.
  std::uint64_t pacer_waits = 0;
  /// Process CPU time (user + system, every thread: engine workers, drivers or pacers, the engine's timers)
  /// during the measured phase, per command sent: on 2 cores, what the throughput figure cost.
  double cpu_us_per_command = 0;
  /// That process CPU time in all, and (open loop) the part the pacer threads used: making and sending commands,
  /// waiting for their send times, the refusals the engine answers on the sending thread and, with the default
  /// dispatch (commands on the sender), the commands themselves. Under an overload with `actors` dispatch on 2
  /// cores, the pacers' part is what the engine's workers lack.
  double process_cpu_seconds = 0;
  double pacer_cpu_seconds = 0;
  /// The threads the run used: CAF workers of the engine, and the host threads that sent (closed loop: the
  /// drivers; open loop: the pacers).
  std::size_t engine_workers = 0;
  std::size_t sending_threads = 0;

  /// Acknowledgement -> at_least answer, over all read models, and per read model (probe order).
  latency_summary visibility;
  std::vector<std::pair<std::string, latency_summary>> visibility_by_model;
  std::uint64_t visibility_failures = 0;
  /// Visibility and read-your-writes queries the engine refused as overloaded (not failures, no latency).
  std::uint64_t queries_overloaded = 0;

  /// Read-your-writes queries (consistency ryw): latency and answers that did not show the write.
  latency_summary read_your_writes;
  std::uint64_t ryw_failures = 0;

  /// Open loop with --recovery-s: the phase after the measured one (the overload's end).
  std::optional<overload_recovery> after_overload;

  /// From the last reply until wait_until_caught_up returned; negative when it failed.
  double catchup_ms = 0;

  std::uint64_t queries = 0;
  std::uint64_t query_failures = 0;
  double queries_per_s = 0;
  latency_summary query_latency;

  /// Peak resident memory of the process during the run (VmHWM, reset at the run's start where Linux allows).
  /// Events the run appended, and the process's peak memory growth over them (log, read models, everything the
  /// engine keeps), in bytes per event; measured before the query phase.
  std::uint64_t events_appended = 0;
  double bytes_per_event = 0;
  double peak_rss_mb = 0;

  /// Rebuilding the read models from the events the store held at the start (events 0 for a new store).
  demo::recovery_report recovery;
  /// Lines written to the acknowledgement log.
  std::uint64_t acknowledgements = 0;
  /// The write side's counters at the end of the run (aggregate actors alive, peak, passivated).
  std::optional<cqrs::engine_statistics> statistics;

  std::vector<read_model_check> checks;
  /// Every read model equals its fold, accepted + rejected == sent, every invalid command was rejected with its
  /// code, no valid one was, and every at_least answer reflected its write.
  bool verified = false;
  /// Why not verified, in words.
  std::vector<std::string> problems;

  std::optional<baseline_figures> raw_caf;
  std::optional<baseline_figures> raw_caf_callbacks;
  std::optional<baseline_figures> crud;
  /// With a rate: the raw-CAF program in the same open loop.
  std::optional<baseline_figures> raw_caf_open_loop;
};

/// Runs one load test: setup (hot), warm-up, the measured commands, catch-up, queries, verification, with the
/// read models options.read_models names.
load_report run_load(const load_options& options);
/// The same with the read models `probes` describe (a test registers a deliberately broken one, for instance).
load_report run_load(const load_options& options, std::vector<read_model_probe> probes);

/// One cell of a sweep: hot-style add/remove pairs over `aggregates` placed orders from `clients` clients.
struct sweep_cell {
  std::uint64_t aggregates = 0;
  std::uint64_t clients = 0;
  std::uint64_t commands = 0;
  double seconds = 0;
  double commands_per_s = 0;
  latency_summary latency;
  double mean_in_flight = 0;
  bool correct = false;
};

/// One row of a sweep: one engine with `aggregates` placed orders, measured with each client count in turn.
struct sweep_row {
  std::uint64_t aggregates = 0;
  double setup_seconds = 0;
  double setup_commands_per_s = 0;
  double peak_rss_mb = 0;
  bool verified = false;
  std::vector<std::string> problems;
  std::vector<sweep_cell> cells;
};

struct sweep_options {
  std::vector<std::uint64_t> aggregates{1'000, 10'000, 100'000, 1'000'000};
  std::vector<std::uint64_t> clients{1, 8, 64, 512};
  /// Each cell runs this long, or `commands_per_cell` commands if that is not 0.
  double cell_seconds = 1.0;
  std::uint64_t commands_per_cell = 0;
};

/// Runs the sweep; `base` gives threads, policy, seed, invalid share and progress. `on_row` sees each row done.
std::vector<sweep_row> run_sweep(const load_options& base, const sweep_options& sweep,
                                 const std::function<void(const sweep_row&)>& on_row = {});

/// One open-loop run of a rate search.
struct rate_probe {
  double rate_per_s = 0;
  double achieved_per_s = 0;
  latency_summary latency;
  bool verified = false;
  /// Kept up (achieved at least 95% of the rate), p99 within the bound, and verified.
  bool passed = false;
};

/// The highest open-loop rate whose p99 stays within a bound, beside the closed-loop peak of the same options.
struct rate_search {
  double p99_bound_us = 1000;
  double closed_loop_peak_per_s = 0;
  /// The highest rate that passed (0 if none did).
  double found_rate_per_s = 0;
  std::vector<rate_probe> probes;
  std::vector<std::string> problems;
  bool verified = false;
};

/// Measures the closed loop of `base` (its rate ignored), then bisects open-loop rates between 0 and that peak:
/// the first probe at half the peak, `steps` probes in all. Each probe is a whole run_load with a new engine.
rate_search find_rate(const load_options& base, double p99_bound_us, int steps = 7);

namespace detail {
// How a run's phases are planned from its options; the baselines plan theirs the same way.

/// The hot workload's placements (nothing for the orders workload).
std::optional<workload_plan> setup_plan(const load_options& options);
std::unique_ptr<phase_budget> setup_budget(const load_options& options);
/// The warm-up's workload (orders get their own ids, "w-N"); nothing without a warm-up.
std::optional<workload_plan> warmup_plan(const load_options& options);
std::unique_ptr<phase_budget> warmup_budget(const load_options& options, phase_budget::clock::time_point start);
workload_plan measured_plan(const load_options& options);
std::unique_ptr<phase_budget> measured_budget(const load_options& options, phase_budget::clock::time_point start);
/// Roughly how many commands the measured phase sends (for progress); 0 when it is bounded by time.
std::uint64_t expected_commands(const load_options& options);
} // namespace detail

/// Peak resident memory of this process so far, in MiB (VmHWM; ru_maxrss when /proc is unavailable).
double peak_rss_mb();
/// The process's resident memory now, in MiB (VmRSS).
double resident_mb();
/// User plus system CPU time the whole process has used so far, in seconds.
double process_cpu_seconds();
/// Resets the peak to the current resident size where Linux allows it (/proc/self/clear_refs).
void reset_peak_rss();

} // namespace bench
