// The engine run: clients as callback-driven state machines (closed loop) or pacers issuing at intended times
// (open loop), visibility sampling at acknowledgements, catch-up, a query phase, and the final verification.
#include "bench/load.hpp"

#include "bench/baselines.hpp"
#include "bench/phase_support.hpp"
#include "bench/progress.hpp"
#include "readmodels/order_views.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <unordered_set>

namespace bench {
namespace {

using clock = std::chrono::steady_clock;

std::uint64_t nanoseconds(clock::duration elapsed) {
  return static_cast<std::uint64_t>(
    std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
}

double seconds_between(clock::time_point from, clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

clock::duration seconds(double value) {
  return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(value));
}

using detail::pending_counter;

/// Everything one engine run shares. Declared so that the engine is destroyed first: every callback points into
/// this state, and the engine's destructor waits for all of them.
struct run_state {
  run_state(const load_options& chosen, std::vector<read_model_probe> read_models)
    : options(chosen), probes(std::move(read_models)), origin(clock::now()) {
    for (std::size_t index = 0; index < probes.size(); ++index) {
      visibility.push_back(std::make_unique<striped_recorder>());
      if (probes[index].ask)
        askable.push_back(index);
    }
  }
  ~run_state() {
    engine.reset();
    if (ack_file >= 0)
      ::close(ack_file);
  }
  run_state(const run_state&) = delete;
  run_state& operator=(const run_state&) = delete;

  void note_problem(std::string problem) {
    std::lock_guard lock{problems_mutex};
    if (problems.size() < max_problems)
      problems.push_back(std::move(problem));
    else
      ++problems_left_out;
  }

  /// Asks the read models at_least(position) right at an acknowledgement, and times ack -> answer: the next one
  /// in turn, or every one with visibility_every_model.
  void sample_visibility(clock::time_point acknowledged, sample_context context) {
    if (askable.empty())
      return;
    auto first =
      options.visibility_every_model ? 0 : next_probe.fetch_add(1, std::memory_order_relaxed) % askable.size();
    auto count = options.visibility_every_model ? askable.size() : 1;
    for (auto turn = first; turn < first + count; ++turn) {
      auto index = askable[turn];
      queries_pending.add();
      probes[index].ask(*engine, context, [this, index, acknowledged](sample_outcome outcome) {
        if (outcome == sample_outcome::overloaded) {
          queries_overloaded.fetch_add(1, std::memory_order_relaxed);
        } else {
          bool reflects = outcome == sample_outcome::reflects;
          auto latency = nanoseconds(clock::now() - acknowledged);
          visibility[index]->record(latency,
                                    [&](outcome_tally& tally) { ++(reflects ? tally.accepted : tally.rejected); });
          visibility_all.record(latency);
          if (!reflects)
            visibility_failures.fetch_add(1, std::memory_order_relaxed);
        }
        queries_pending.done();
      });
    }
  }

  /// Counts the answer to a read-back of `order` at `position` sent at `sent_at`: its latency, or the engine's
  /// refusal as overloaded (no latency), or a failure (a problem).
  void count_read_back(const cqrs::query_result<std::optional<readmodels::order_summary>>& answer,
                       cqrs::log_position position, const std::string& order, clock::time_point sent_at) {
    if (!answer && answer.error().code == cqrs::errc::overloaded) {
      queries_overloaded.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    bool reflects = answer && *answer && (*answer)->last_position >= position;
    read_backs.record(nanoseconds(clock::now() - sent_at),
                      [&](outcome_tally& tally) { ++(reflects ? tally.accepted : tally.rejected); });
    if (!reflects) {
      ryw_failures.fetch_add(1, std::memory_order_relaxed);
      note_problem("read-your-writes of " + order + " at position " + std::to_string(position)
                   + (answer ? " did not show the write" : " failed: " + answer.error().message));
    }
  }

  /// Opens the acknowledgement log for appending; throws std::runtime_error when it cannot.
  void open_ack_log(const std::string& path) {
    ack_file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (ack_file < 0)
      throw std::runtime_error("cannot open the acknowledgement log " + path + ": " + std::strerror(errno));
    command_tag = options.id_tag.empty() ? "r0" : options.id_tag;
  }

  /// The ids a command goes out with: its own command id when acknowledgements are logged, else the engine's.
  cqrs::command_options next_command_ids() {
    if (ack_file < 0)
      return {};
    return cqrs::command_options{.command_id = command_tag + "." + std::to_string(next_command.fetch_add(1))};
  }

  /// Appends "command_id position" for an accepted command with events, in one write(2): once this returns the
  /// line is the kernel's, so a killed process never leaves a line for a command that was not acknowledged.
  void acknowledge(const cqrs::command_options& ids, const cqrs::command_result& result) {
    if (ack_file < 0 || !result || result->events == 0)
      return;
    auto line = ids.command_id + " " + std::to_string(result->position) + "\n";
    std::lock_guard lock{ack_mutex};
    std::size_t written = 0;
    while (written < line.size()) {
      auto count = ::write(ack_file, line.data() + written, line.size() - written);
      if (count < 0 && errno == EINTR)
        continue;
      if (count <= 0) {
        ++ack_failures;
        return;
      }
      written += static_cast<std::size_t>(count);
    }
    ++acknowledgements;
  }

  /// Records that a command to `order` was refused as overloaded: its later commands may break rules that it
  /// would have satisfied (an item added to an order never placed), which is then no fault of the engine's.
  void lost_to_overload(const std::string& order) {
    std::lock_guard lock{overloaded_mutex};
    overloaded_orders.insert(order);
    any_overloaded.store(true, std::memory_order_release);
  }
  bool lost_to_overload_before(const std::string& order) {
    // Most runs refuse nothing: their rejections (the invalid commands) take no lock.
    if (!any_overloaded.load(std::memory_order_acquire))
      return false;
    std::lock_guard lock{overloaded_mutex};
    return overloaded_orders.contains(order);
  }

  static constexpr std::size_t max_problems = 20;

  const load_options& options;
  std::vector<read_model_probe> probes;
  clock::time_point origin;

  std::vector<std::unique_ptr<striped_recorder>> visibility;
  /// The probes that can be asked, and which of them a sample asks next.
  std::vector<std::size_t> askable;
  std::atomic<std::size_t> next_probe{0};
  striped_recorder visibility_all;
  std::atomic<std::uint64_t> visibility_failures{0};
  striped_recorder read_backs;
  std::atomic<std::uint64_t> ryw_failures{0};
  std::atomic<std::uint64_t> queries_overloaded{0};
  /// Visibility and read-your-writes queries not answered yet.
  pending_counter queries_pending;

  std::mutex problems_mutex;
  std::mutex overloaded_mutex;
  std::unordered_set<std::string> overloaded_orders;
  std::atomic<bool> any_overloaded{false};
  std::vector<std::string> problems;
  std::uint64_t problems_left_out = 0;

  /// The acknowledgement log (-1: none), the prefix of the run's command ids and the next id's number.
  int ack_file = -1;
  std::string command_tag;
  std::atomic<std::uint64_t> next_command{0};
  std::mutex ack_mutex;
  std::uint64_t acknowledgements = 0;
  std::uint64_t ack_failures = 0;

  /// Phases whose objects callbacks may still touch: freed after the engine.
  std::vector<std::shared_ptr<void>> keep_alive;
  std::unique_ptr<cqrs::engine> engine;
};

/// What one command phase sent and got back.
struct phase_result {
  std::uint64_t sent = 0;
  std::uint64_t invalid_sent = 0;
  outcome_tally tally;
  histogram latencies;
  clock::time_point started{};
  /// The last reply (the phase's start when nothing was sent).
  clock::time_point last_reply{};
  double seconds = 0;
  double commands_per_s = 0;
  double sampled_in_flight = 0;
  std::uint64_t pacer_waits = 0;
  double pacer_cpu_seconds = 0;
  std::uint64_t orders_dropped = 0;
  /// The phase that followed it (load_options::recovery_seconds), if one did.
  std::optional<overload_recovery> after_overload;
};

/// Latencies per window of intended send times (the recovery phase's), each window its own histogram.
class windowed_latencies {
public:
  windowed_latencies(clock::time_point origin, clock::duration width, std::size_t windows)
    : origin_(origin), width_(width), latencies_(std::max<std::size_t>(1, windows)),
      overloaded_(latencies_.size(), 0) {}

  void record(clock::time_point intended, std::uint64_t nanoseconds) {
    auto index = index_of(intended);
    std::lock_guard lock{mutex_};
    latencies_[index].record(nanoseconds);
  }
  void count_overloaded(clock::time_point intended) {
    auto index = index_of(intended);
    std::lock_guard lock{mutex_};
    ++overloaded_[index];
  }
  /// Read once every reply is in.
  const std::vector<histogram>& latencies() const { return latencies_; }
  const std::vector<std::uint64_t>& overloaded() const { return overloaded_; }
  clock::duration width() const { return width_; }

private:
  std::size_t index_of(clock::time_point intended) const {
    auto offset = std::max(clock::duration::zero(), intended - origin_);
    return std::min<std::size_t>(static_cast<std::size_t>(offset / width_), latencies_.size() - 1);
  }

  clock::time_point origin_;
  clock::duration width_;
  // Replies arrive on the engine's threads; at a recovery phase's rate, one lock per reply costs nothing.
  std::mutex mutex_;
  std::vector<histogram> latencies_;
  std::vector<std::uint64_t> overloaded_;
};

/// One phase of commands (setup, warm-up, measured or recovery).
struct command_phase {
  command_phase(run_state& state, workload_plan workload, std::unique_ptr<phase_budget> limits, bool is_measured)
    : run(state), plan(std::move(workload)), budget(std::move(limits)), measured(is_measured) {}

  /// Counts a reply in the tally; notes a wrong outcome as a problem.
  void count_reply(clock::time_point now, clock::time_point intended, std::string_view expected,
                   const cqrs::command_result& result, const std::string& order) {
    bool accepted = result.has_value();
    bool overloaded = !accepted && result.error().code == cqrs::errc::overloaded;
    // A rule broken because an earlier command of the order was refused as overloaded is the workload's, not the
    // engine's: counted apart, not as a problem. (The refusal comes back inside send(), before the next command.)
    if (windows)
      overloaded ? windows->count_overloaded(intended) : windows->record(intended, nanoseconds(now - intended));
    if (overloaded) {
      run.lost_to_overload(order);
      // Refused at once and did no work: kept out of the latencies, which describe the commands the engine ran.
      recorder.count_only([&](outcome_tally& tally) {
        ++tally.overloaded;
        tally.invalid_answered += expected.empty() ? 0 : 1;
        tally.invalid_overloaded += expected.empty() ? 0 : 1;
      });
      return;
    }
    if (!accepted && result.error().code == cqrs::errc::store_failure)
      stop_if_unhealthy();
    bool explained = !accepted && run.lost_to_overload_before(order);
    auto completion = static_cast<std::int64_t>(nanoseconds(now - run.origin));
    recorder.record(nanoseconds(now - intended), [&](outcome_tally& tally) {
      ++(accepted ? tally.accepted : tally.rejected);
      if (!expected.empty()) {
        ++tally.invalid_answered;
        if (!accepted) {
          ++tally.invalid_rejected;
          if (result.error().code != expected && !explained)
            ++tally.wrong_code;
        }
      } else if (!accepted) {
        ++(explained ? tally.rejected_after_overload : tally.valid_rejected);
      }
      tally.last_completion_ns = std::max(tally.last_completion_ns, completion);
    });
    if (explained)
      return;
    if (expected.empty() && !accepted)
      run.note_problem("a valid command on " + order + " was rejected: " + result.error().code + ": "
                       + result.error().message);
    else if (!expected.empty() && accepted)
      run.note_problem("an invalid command on " + order + " was accepted (it breaks " + std::string{expected} + ")");
    else if (!expected.empty() && result.error().code != expected)
      run.note_problem("an invalid command on " + order + " was rejected as " + result.error().code + " instead of "
                       + std::string{expected});
  }

  /// An engine whose store failed refuses every later command: the clients stop at their next order instead of
  /// sending the rest of the run into refusals.
  void stop_if_unhealthy() {
    if (stopped_unhealthy.load(std::memory_order_relaxed))
      return; // stopped already: the refusals still coming in need no second look at the engine
    auto health = run.engine->health();
    if (health.healthy || stopped_unhealthy.exchange(true))
      return;
    budget->stop();
    run.note_problem("the engine stopped accepting writes (" + health.reason + "); the run stopped sending");
  }

  bool samples_visibility(std::uint64_t accepted_so_far) const {
    return measured && run.options.visibility_every != 0 && accepted_so_far % run.options.visibility_every == 0;
  }
  bool reads_back(std::uint64_t accepted_so_far) const {
    return measured && run.options.consistency == read_consistency::read_your_writes && run.options.ryw_every != 0
           && accepted_so_far % run.options.ryw_every == 0;
  }

  run_state& run;
  workload_plan plan;
  std::unique_ptr<phase_budget> budget;
  bool measured;
  striped_recorder recorder;
  /// The recovery phase's latencies window by window (no other phase keeps them).
  std::unique_ptr<windowed_latencies> windows;
  /// Clients (closed loop) or pacers and commands (open loop) still running.
  pending_counter running;
  std::atomic<bool> stopped_unhealthy{false};
  /// Orders whose PlaceOrder was refused as overloaded: their other commands were never sent.
  std::atomic<std::uint64_t> orders_dropped{0};
};

class async_client;

/// Host threads that start clients and continue those whose step completed on the spot (inside the call that
/// started it: an engine may answer a ready query on the calling thread). Such a client goes back to the end of
/// its driver's queue instead of looping, so no thread ever spins on one client and clients still interleave.
/// Steps that complete later, on an engine thread, continue there: the next command goes out from the callback.
class client_drivers {
public:
  explicit client_drivers(std::size_t threads) {
    for (std::size_t index = 0; index < std::max<std::size_t>(1, threads); ++index)
      drivers_.push_back(std::make_unique<driver>());
    for (auto& one : drivers_)
      one->thread = std::jthread{[this, raw = one.get()] { serve(*raw); }};
  }
  ~client_drivers() { stop(); }
  client_drivers(const client_drivers&) = delete;
  client_drivers& operator=(const client_drivers&) = delete;

  std::size_t size() const { return drivers_.size(); }

  /// Queues a client to start its next step on driver `index`.
  void post(std::size_t index, async_client& client) {
    auto& one = *drivers_[index % drivers_.size()];
    {
      std::lock_guard lock{one.mutex};
      one.queue.push_back(&client);
    }
    one.ready.notify_one();
  }

  /// Lets every driver finish its queue and joins them.
  void stop() {
    for (auto& one : drivers_) {
      {
        std::lock_guard lock{one->mutex};
        one->stopping = true;
      }
      one->ready.notify_one();
    }
    for (auto& one : drivers_)
      if (one->thread.joinable())
        one->thread.join();
  }

private:
  struct driver {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<async_client*> queue;
    bool stopping = false;
    std::jthread thread;
  };

  void serve(driver& one);

  std::vector<std::unique_ptr<driver>> drivers_;
};

/// A client as a small state machine: each step (a command, a query) is started by resume() and its completion
/// calls step_done(), which starts the next step at once on the completing thread.
class async_client {
public:
  async_client(client_drivers& drivers, std::size_t driver) : drivers_(drivers), driver_(driver) {}
  virtual ~async_client() = default;

  /// Starts the next step (or finishes the client).
  void resume() {
    state_.store(starting);
    if (!start_next()) {
      finished();
      return;
    }
    int expected = starting;
    if (state_.compare_exchange_strong(expected, waiting))
      return; // the completion will continue
    // The step completed before start_next returned: a driver continues, after the clients queued before.
    drivers_.post(driver_, *this);
  }

  /// Hands the client to its driver to start.
  void start() { drivers_.post(driver_, *this); }

protected:
  /// Starts one step; false when the client is done.
  virtual bool start_next() = 0;
  /// The client is done; the last thing it does.
  virtual void finished() = 0;

  /// Called last in every step's completion.
  void step_done() {
    int expected = starting;
    if (state_.compare_exchange_strong(expected, completed))
      return; // resume() is still inside start_next and hands the client on
    resume();
  }

private:
  enum : int { starting, waiting, completed };
  client_drivers& drivers_;
  std::size_t driver_;
  std::atomic<int> state_{waiting};
};

void client_drivers::serve(driver& one) {
  for (;;) {
    async_client* client = nullptr;
    {
      std::unique_lock lock{one.mutex};
      one.ready.wait(lock, [&] { return one.stopping || !one.queue.empty(); });
      if (one.queue.empty())
        return;
      client = one.queue.front();
      one.queue.pop_front();
    }
    client->resume();
  }
}

/// A closed-loop client: sends a command, waits for its reply (and, with ryw, reads its write back), repeats.
class command_client final : public async_client {
public:
  command_client(command_phase& phase, client_drivers& drivers, std::uint64_t index)
    : async_client(drivers, index % drivers.size()), phase_(phase), script_(phase.plan, *phase.budget, index) {}

  std::uint64_t sent() const { return sent_; }
  std::uint64_t invalid_sent() const { return invalid_sent_; }

private:
  bool start_next() override {
    auto& engine = *phase_.run.engine;
    if (read_back_) {
      read_sent_at_ = clock::now();
      engine.query(
        readmodels::get_order_summary{script_.order_id()},
        [this](cqrs::query_result<std::optional<readmodels::order_summary>> answer) { on_read_back(answer); },
        cqrs::at_least(*read_back_));
      return true;
    }
    auto planned = script_.next();
    if (!planned)
      return false;
    ++sent_;
    if (!planned->expected_rejection.empty())
      ++invalid_sent_;
    expected_ = planned->expected_rejection;
    ids_ = phase_.run.next_command_ids();
    sent_at_ = clock::now();
    engine.send(std::move(planned->command), [this](cqrs::command_result result) { on_reply(result); }, ids_);
    return true;
  }

  void finished() override { phase_.running.done(); }

  void on_reply(const cqrs::command_result& result) {
    auto now = clock::now();
    phase_.run.acknowledge(ids_, result);
    phase_.count_reply(now, sent_at_, expected_, result, script_.order_id());
    if (!result && result.error().code == cqrs::errc::overloaded && script_.drop_unplaced_order())
      phase_.orders_dropped.fetch_add(1, std::memory_order_relaxed);
    if (result && result->events > 0) {
      ++accepted_;
      if (phase_.samples_visibility(accepted_))
        phase_.run.sample_visibility(now, sample_context{result->position, script_.order_id(), script_.customer_id()});
      if (phase_.reads_back(accepted_))
        read_back_ = result->position;
    }
    step_done();
  }

  void on_read_back(const cqrs::query_result<std::optional<readmodels::order_summary>>& answer) {
    phase_.run.count_read_back(answer, *read_back_, script_.order_id(), read_sent_at_);
    read_back_.reset();
    step_done();
  }

  command_phase& phase_;
  client_script script_;
  std::string_view expected_;
  cqrs::command_options ids_;
  clock::time_point sent_at_{};
  std::uint64_t sent_ = 0;
  std::uint64_t invalid_sent_ = 0;
  std::uint64_t accepted_ = 0;
  std::optional<cqrs::log_position> read_back_;
  clock::time_point read_sent_at_{};
};

/// Waits for a phase's `running` count to reach zero, drawing progress and sampling what is in flight.
/// Returns the mean of the samples.
double wait_for_phase(command_phase& phase, progress_meter& meter, const std::function<std::int64_t()>& in_flight) {
  double sum = 0;
  std::uint64_t samples = 0;
  while (!phase.running.wait_for_zero(std::chrono::milliseconds{10})) {
    auto outstanding = in_flight ? std::max<std::int64_t>(0, in_flight()) : 0;
    sum += static_cast<double>(outstanding);
    ++samples;
    meter.update([&] { return phase.recorder.count(); }, static_cast<std::uint64_t>(outstanding));
  }
  return samples ? sum / static_cast<double>(samples) : 0;
}

phase_result collect(command_phase& phase, clock::time_point started) {
  phase_result result;
  result.tally = phase.recorder.tally();
  result.latencies = phase.recorder.latencies();
  result.orders_dropped = phase.orders_dropped.load();
  result.started = started;
  result.last_reply = result.tally.last_completion_ns > 0
                        ? phase.run.origin + std::chrono::nanoseconds{result.tally.last_completion_ns}
                        : started;
  result.seconds = std::max(0.0, seconds_between(started, result.last_reply));
  auto replies = result.tally.accepted + result.tally.rejected;
  result.commands_per_s = result.seconds > 0 ? static_cast<double>(replies) / result.seconds : 0;
  return result;
}

/// C clients in a closed loop until the budget is spent.
phase_result run_closed_phase(run_state& run, workload_plan plan, std::unique_ptr<phase_budget> budget,
                              std::uint64_t clients, bool measured, progress_meter& meter, const std::string& label,
                              std::uint64_t expected_total, double expected_seconds) {
  auto phase = std::make_shared<command_phase>(run, std::move(plan), std::move(budget), measured);
  auto drivers = std::make_shared<client_drivers>(run.options.drivers);
  auto members = std::make_shared<std::vector<std::unique_ptr<command_client>>>();
  run.keep_alive.push_back(phase);
  run.keep_alive.push_back(drivers);
  run.keep_alive.push_back(members);
  for (std::uint64_t index = 0; index < clients; ++index)
    members->push_back(std::make_unique<command_client>(*phase, *drivers, index));
  meter.begin(label, expected_total, expected_seconds);
  phase->running.add(static_cast<std::int64_t>(clients));
  auto started = clock::now();
  for (auto& client : *members)
    client->start();
  wait_for_phase(*phase, meter, {});
  drivers->stop();
  auto result = collect(*phase, started);
  meter.end(result.tally.accepted + result.tally.rejected);
  for (const auto& client : *members) {
    result.sent += client->sent();
    result.invalid_sent += client->invalid_sent();
  }
  return result;
}

/// CPU time (user + system) of the calling thread.
double thread_cpu_seconds() {
  timespec used{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used);
  return static_cast<double>(used.tv_sec) + static_cast<double>(used.tv_nsec) / 1e9;
}

/// One pacer of the open loop: issues its clients' commands round-robin at intended times, never waiting for a
/// reply; a reply's latency counts from the command's intended time, so a late pacer shows as latency.
class pacer {
public:
  pacer(command_phase& phase, std::vector<std::uint64_t> clients, double commands_per_second)
    : phase_(phase),
      interval_(std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(1.0 / commands_per_second))) {
    for (auto index : clients)
      scripts_.push_back(std::make_unique<client_script>(phase.plan, *phase.budget, index));
  }

  void run(clock::time_point start) {
    auto& engine = *phase_.run.engine;
    const auto& options = phase_.run.options;
    thread_ = std::this_thread::get_id();
    auto cpu_before = thread_cpu_seconds();
    waits_ = detail::pace(scripts_, interval_, start, options.max_in_flight, phase_.running,
                          [&](client_script& script, planned_command planned, clock::time_point intended) {
      ++sent_;
      if (!planned.expected_rejection.empty())
        ++invalid_sent_;
      ++since_sample_;
      bool sample = options.visibility_every != 0 && since_sample_ % options.visibility_every == 0;
      bool read_back = options.consistency == read_consistency::read_your_writes && options.ryw_every != 0
                       && since_sample_ % options.ryw_every == 0;
      std::string order = script.order_id();
      std::string customer = sample ? script.customer_id() : std::string{};
      phase_.running.add();
      auto ids = phase_.run.next_command_ids();
      engine.send(
        std::move(planned.command),
        [this, phase = &phase_, intended, expected = planned.expected_rejection, sample, read_back,
         order = std::move(order), customer = std::move(customer), ids](cqrs::command_result result) {
          // A refusal comes back inside send(), on this pacer's thread: the script is told once send() returns.
          if (!result && result.error().code == cqrs::errc::overloaded && std::this_thread::get_id() == thread_)
            refused_here_ = true;
          phase->run.acknowledge(ids, result);
          on_reply(*phase, intended, expected, sample, read_back, order, customer, result);
        },
        ids);
      if (refused_here_) {
        refused_here_ = false;
        if (script.drop_unplaced_order())
          phase_.orders_dropped.fetch_add(1, std::memory_order_relaxed);
      }
    });
    cpu_seconds_ = thread_cpu_seconds() - cpu_before;
  }

  std::uint64_t sent() const { return sent_; }
  std::uint64_t invalid_sent() const { return invalid_sent_; }
  std::uint64_t waits() const { return waits_; }
  /// CPU time of the thread while it ran this pacer (load_report::pacer_cpu_seconds says what it holds).
  double cpu_seconds() const { return cpu_seconds_; }

private:
  static void on_reply(command_phase& phase, clock::time_point intended, std::string_view expected, bool sample,
                       bool read_back, const std::string& order, const std::string& customer,
                       const cqrs::command_result& result) {
    auto now = clock::now();
    phase.count_reply(now, intended, expected, result, order);
    auto& run = phase.run;
    if (phase.measured && result && result->events > 0) {
      if (sample)
        run.sample_visibility(now, sample_context{result->position, order, customer});
      if (read_back) {
        auto position = result->position;
        run.queries_pending.add();
        run.engine->query(
          readmodels::get_order_summary{order},
          [&run, position, order, now](cqrs::query_result<std::optional<readmodels::order_summary>> answer) {
            run.count_read_back(answer, position, order, now);
            run.queries_pending.done();
          },
          cqrs::at_least(position));
      }
    }
    phase.running.done();
  }

  command_phase& phase_;
  clock::duration interval_;
  std::vector<std::unique_ptr<client_script>> scripts_;
  std::uint64_t sent_ = 0;
  std::uint64_t invalid_sent_ = 0;
  std::uint64_t since_sample_ = 0;
  std::uint64_t waits_ = 0;
  /// The pacing thread, and whether a command's refusal arrived on it, inside send(); touched by that thread only.
  std::thread::id thread_{};
  bool refused_here_ = false;
  double cpu_seconds_ = 0;
};

/// A phase at the recovery rate: the recovery phase of an open loop, made and paced by the measured phase's last
/// pacer thread the moment that phase stops sending, read by the main thread once that thread is joined; and the
/// calm phase before the measured one, which says what normal latency at that rate is.
struct recovery_run {
  std::shared_ptr<command_phase> phase;
  std::unique_ptr<pacer> paced;
  clock::time_point started{};
};

constexpr clock::duration recovery_window_width = std::chrono::milliseconds{100};

/// Sends a phase at the recovery rate from now on, on the calling thread; returns when its last command is sent.
/// `suffix` makes its orders new ones, apart from the measured phase's.
void pace_recovery(run_state& run, const workload_plan& measured_plan, std::string_view suffix,
                   recovery_run& recovery) {
  const auto& options = run.options;
  auto plan = measured_plan;
  plan.id_prefix += suffix;
  recovery.started = clock::now();
  auto budget = std::make_unique<phase_budget>(0, 0, recovery.started + seconds(options.recovery_seconds));
  recovery.phase = std::make_shared<command_phase>(run, std::move(plan), std::move(budget), false);
  auto windows = static_cast<std::size_t>(std::ceil(options.recovery_seconds * 1e9
                                                    / static_cast<double>(nanoseconds(recovery_window_width))));
  recovery.phase->windows =
    std::make_unique<windowed_latencies>(recovery.started, recovery_window_width, windows);
  std::vector<std::uint64_t> clients(options.clients);
  std::iota(clients.begin(), clients.end(), std::uint64_t{0});
  recovery.paced = std::make_unique<pacer>(*recovery.phase, std::move(clients), options.recovery_rate);
  recovery.phase->running.add();
  recovery.paced->run(recovery.started);
  recovery.phase->running.done();
}

/// The worst p99 of any 100 ms window of a phase at the recovery rate (0 when no window answered anything).
double worst_window_p99_us(const recovery_run& phase) {
  double worst = 0;
  for (const auto& latencies : phase.phase->windows->latencies())
    if (latencies.count() > 0)
      worst = std::max(worst, static_cast<double>(latencies.percentile(99.0)) / 1000.0);
  return worst;
}

/// The recovery phase's figures, once every reply is in: window by window, the steady state of its second half,
/// and when latency was normal again, measured against the calm phase before the overload.
overload_recovery summarise_recovery(const run_state& run, recovery_run& recovery, const recovery_run& calm) {
  overload_recovery report;
  report.rate = run.options.recovery_rate;
  report.seconds = run.options.recovery_seconds;
  report.commands = recovery.paced->sent();
  auto tally = recovery.phase->recorder.tally();
  report.accepted = tally.accepted;
  report.rejected = tally.rejected;
  report.overloaded = tally.overloaded;
  const auto& windows = *recovery.phase->windows;
  const auto& latencies = windows.latencies();
  histogram steady;
  for (std::size_t index = latencies.size() / 2; index < latencies.size(); ++index)
    steady.merge(latencies[index]);
  report.steady_p99_us = static_cast<double>(steady.percentile(99.0)) / 1000.0;
  report.calm_p99_us = static_cast<double>(calm.phase->recorder.latencies().percentile(99.0)) / 1000.0;
  report.calm_worst_window_p99_us = worst_window_p99_us(calm);
  // Normal is what the calm phase showed at the same rate, not the recovery phase's own second half: that one may
  // still be draining the overload's backlog. A 100 ms window's p99 jitters with the scheduler (a few ms on 2
  // cores), so the bound is twice the calm phase's worst window rather than its p99.
  report.normal_bound_us = 2 * report.calm_worst_window_p99_us;
  auto normal_bound_us = report.normal_bound_us;
  auto width_ms = std::chrono::duration<double, std::milli>(windows.width()).count();
  std::optional<std::size_t> last_abnormal;
  for (std::size_t index = 0; index < latencies.size(); ++index) {
    recovery_window window{static_cast<double>(index) * width_ms, summarise(latencies[index]),
                           windows.overloaded()[index]};
    if ((window.latency.count > 0 && window.latency.p99_us > normal_bound_us) || window.overloaded > 0)
      last_abnormal = index;
    report.windows.push_back(window);
  }
  if (!last_abnormal)
    report.normal_after_ms = 0;
  else if (*last_abnormal + 1 < latencies.size())
    report.normal_after_ms = static_cast<double>(*last_abnormal + 1) * width_ms;
  return report;
}

/// The calm phase before an overload: load_options::recovery_seconds at the recovery rate, all of it answered
/// before this returns, so that it measures that rate undisturbed.
std::shared_ptr<recovery_run> run_calm_phase(run_state& run, const workload_plan& measured_plan) {
  auto calm = std::make_shared<recovery_run>();
  run.keep_alive.push_back(calm);
  pace_recovery(run, measured_plan, "c", *calm);
  if (!calm->phase->running.wait_for_zero(std::chrono::seconds{60})) {
    run.note_problem("the calm phase's commands went unanswered for 60 s");
    return calm;
  }
  auto tally = calm->phase->recorder.tally();
  for (auto& problem : detail::count_problems("calm", calm->paced->sent(), calm->paced->invalid_sent(), tally))
    run.note_problem(problem);
  return calm;
}

/// The open loop: `pacers` threads share the rate and the clients (each client's commands come from one pacer,
/// so they reach their order in the order sent). Given the calm phase that ran before it, a measured phase is
/// followed at once by the recovery phase, paced by the thread of the pacer that finished last.
phase_result run_open_phase(run_state& run, workload_plan plan, std::unique_ptr<phase_budget> budget, bool measured,
                            progress_meter& meter, const std::string& label, std::uint64_t expected_total,
                            double expected_seconds, const recovery_run* calm = nullptr) {
  const auto& options = run.options;
  auto phase = std::make_shared<command_phase>(run, std::move(plan), std::move(budget), measured);
  run.keep_alive.push_back(phase);
  auto pacer_count = std::max<std::size_t>(1, std::min<std::size_t>(options.pacers, options.clients));
  auto pacers = std::make_shared<std::vector<std::unique_ptr<pacer>>>();
  run.keep_alive.push_back(pacers);
  for (std::size_t index = 0; index < pacer_count; ++index) {
    std::vector<std::uint64_t> owned;
    for (auto client = index; client < options.clients; client += pacer_count)
      owned.push_back(client);
    pacers->push_back(
      std::make_unique<pacer>(*phase, std::move(owned), options.rate / static_cast<double>(pacer_count)));
  }
  meter.begin(label, expected_total, expected_seconds);
  // Each pacer counts as running until it has issued its last command; each command until its reply.
  phase->running.add(static_cast<std::int64_t>(pacer_count));
  std::atomic<std::int64_t> pacers_running{static_cast<std::int64_t>(pacer_count)};
  auto recovery = std::make_shared<recovery_run>();
  run.keep_alive.push_back(recovery);
  bool recovers = calm != nullptr;
  auto started = clock::now();
  std::vector<std::jthread> threads;
  for (auto& one : *pacers)
    threads.emplace_back([&, paced = one.get()] {
      paced->run(started);
      bool last = pacers_running.fetch_sub(1) == 1;
      phase->running.done();
      if (last && recovers)
        pace_recovery(run, phase->plan, "r", *recovery);
    });
  auto sampled = wait_for_phase(*phase, meter, [&] { return phase->running.value() - pacers_running.load(); });
  threads.clear();
  auto result = collect(*phase, started);
  if (recovers && recovery->phase) {
    if (!recovery->phase->running.wait_for_zero(std::chrono::seconds{60})) {
      run.note_problem("the recovery phase's commands went unanswered for 60 s");
    } else {
      auto tally = recovery->phase->recorder.tally();
      for (auto& problem : detail::count_problems("recovery", recovery->paced->sent(), recovery->paced->invalid_sent(), tally))
        run.note_problem(problem);
      result.after_overload = summarise_recovery(run, *recovery, *calm);
      // Catch-up counts from the last reply of either phase.
      if (tally.last_completion_ns > 0)
        result.last_reply =
          std::max(result.last_reply, run.origin + std::chrono::nanoseconds{tally.last_completion_ns});
    }
  }
  meter.end(result.tally.accepted + result.tally.rejected);
  result.sampled_in_flight = sampled;
  for (const auto& one : *pacers) {
    result.sent += one->sent();
    result.invalid_sent += one->invalid_sent();
    result.pacer_waits += one->waits();
    result.pacer_cpu_seconds += one->cpu_seconds();
  }
  return result;
}

/// A query-phase client: `any` point lookups on the warm read models, one at a time, until told to stop.
class query_client final : public async_client {
public:
  /// Which read models the client may ask.
  struct targets {
    bool summaries = false;
    bool customers = false;
  };

  query_client(run_state& run, client_drivers& drivers, striped_recorder& recorder, pending_counter& running,
               const std::atomic<bool>& stop, const workload_plan& plan, std::uint64_t orders, targets asked,
               std::uint64_t index)
    : async_client(drivers, index % drivers.size()),
      run_(run),
      recorder_(recorder),
      running_(running),
      stop_(stop),
      plan_(plan),
      orders_(orders),
      asked_(asked),
      random_(plan.seed ^ (index * 0x2545f4914f6cdd1dULL)) {}

private:
  bool start_next() override {
    if (stop_.load(std::memory_order_relaxed))
      return false;
    auto number = next_random(random_) % orders_;
    sent_at_ = clock::now();
    // Three order summaries for one customer's statistics (when both read models are there).
    bool summary = asked_.summaries && (!asked_.customers || next_random(random_) % 4 != 0);
    if (summary)
      run_.engine->query(
        readmodels::get_order_summary{order_id(plan_, number)},
        [this](cqrs::query_result<std::optional<readmodels::order_summary>> answer) { answered(answer.has_value()); });
    else
      run_.engine->query(readmodels::get_customer_stats{customer_of(plan_, number)},
                         [this](cqrs::query_result<std::optional<readmodels::customer_stats_view>> answer) {
                           answered(answer.has_value());
                         });
    return true;
  }

  void finished() override { running_.done(); }

  void answered(bool ok) {
    auto now = clock::now();
    auto completion = static_cast<std::int64_t>(nanoseconds(now - run_.origin));
    recorder_.record(nanoseconds(now - sent_at_), [&](outcome_tally& tally) {
      ++(ok ? tally.accepted : tally.rejected);
      tally.last_completion_ns = std::max(tally.last_completion_ns, completion);
    });
    step_done();
  }

  run_state& run_;
  striped_recorder& recorder_;
  pending_counter& running_;
  const std::atomic<bool>& stop_;
  const workload_plan& plan_;
  std::uint64_t orders_;
  targets asked_;
  std::uint64_t random_;
  clock::time_point sent_at_{};
};

bool has_probe(const std::vector<read_model_probe>& probes, std::string_view name) {
  return std::any_of(probes.begin(), probes.end(), [&](const read_model_probe& probe) { return probe.name == name; });
}

struct query_phase_result {
  std::uint64_t answered = 0;
  std::uint64_t failed = 0;
  double queries_per_s = 0;
  latency_summary latency;
};

query_phase_result run_query_phase(run_state& run, const workload_plan& plan, std::uint64_t orders,
                                   progress_meter& meter) {
  struct query_phase {
    explicit query_phase(std::size_t threads) : drivers(threads) {}
    client_drivers drivers;
    striped_recorder recorder;
    pending_counter running;
    std::atomic<bool> stop{false};
    std::vector<std::unique_ptr<query_client>> clients;
  };
  const auto& options = run.options;
  auto phase = std::make_shared<query_phase>(options.drivers);
  run.keep_alive.push_back(phase);
  query_client::targets asked{has_probe(run.probes, readmodels::order_summaries::name),
                              has_probe(run.probes, readmodels::customer_stats::name)};
  for (std::uint64_t index = 0; index < options.clients; ++index)
    phase->clients.push_back(std::make_unique<query_client>(run, phase->drivers, phase->recorder, phase->running,
                                                            phase->stop, plan, orders, asked, index));
  meter.begin("queries", 0, options.query_seconds);
  phase->running.add(static_cast<std::int64_t>(options.clients));
  auto started = clock::now();
  auto deadline = started + seconds(options.query_seconds);
  for (auto& client : phase->clients)
    client->start();
  // The phase lasts a fixed time: the waits below measure it out, they synchronise nothing.
  while (!phase->running.wait_for_zero(std::chrono::milliseconds{10})) {
    if (clock::now() >= deadline || runs_interrupted())
      phase->stop.store(true);
    meter.update([&] { return phase->recorder.count(); }, 0);
  }
  phase->drivers.stop();
  auto tally = phase->recorder.tally();
  auto last = tally.last_completion_ns > 0 ? run.origin + std::chrono::nanoseconds{tally.last_completion_ns} : started;
  query_phase_result result;
  result.answered = tally.accepted;
  result.failed = tally.rejected;
  auto elapsed = seconds_between(started, last);
  result.queries_per_s = elapsed > 0 ? static_cast<double>(tally.accepted) / elapsed : 0;
  result.latency = summarise(phase->recorder.latencies());
  meter.end(tally.accepted + tally.rejected);
  return result;
}

/// Checks a phase's counts: every command answered, invalid ones all rejected with their code, no valid one.
void check_counts(const std::string& phase_name, const phase_result& phase, std::vector<std::string>& problems) {
  auto found = detail::count_problems(phase_name, phase.sent, phase.invalid_sent, phase.tally);
  problems.insert(problems.end(), found.begin(), found.end());
}

std::unique_ptr<cqrs::engine> make_engine(const load_options& options, const std::vector<read_model_probe>& probes) {
  auto engine = std::make_unique<cqrs::engine>(cqrs::options{.store = options.store,
                                                             .passivate_after = options.passivate_after,
                                                             .max_live_aggregates = options.max_live_aggregates,
                                                             .max_in_flight = options.engine_max_in_flight,
                                                             .max_queued_per_aggregate =
                                                               options.max_queued_per_aggregate,
                                                             .max_projection_lag = options.max_projection_lag,
                                                             .tuning = {.threads = options.threads,
                                                                        .policy = options.policy,
                                                                        .commands = options.command_dispatch,
                                                                        .queries = options.query_dispatch,
                                                                        .projections = options.projection_dispatch}});
  engine->add_aggregate<orders::order>();
  for (const auto& probe : probes)
    probe.add(*engine);
  return engine;
}

/// Waits until the read models caught up and compares each with the log; adds what it finds to `problems`.
std::vector<read_model_check> verify_read_models(cqrs::engine& engine, const std::vector<read_model_probe>& probes,
                                                 std::vector<std::string>& problems) {
  std::vector<read_model_check> checks;
  if (auto caught_up = engine.wait_until_caught_up(); !caught_up)
    problems.push_back("the read models did not catch up: " + caught_up.error().message);
  for (const auto& status : engine.statuses())
    if (status.failure)
      problems.push_back("projection " + status.name + " stopped at position "
                         + std::to_string(status.failure->position) + ": " + status.failure->message);
  for (const auto& probe : probes) {
    checks.push_back(probe.verify(engine));
    if (checks.back().difference)
      problems.push_back(checks.back().name + " differs from the log: " + *checks.back().difference);
  }
  return checks;
}

/// The rebuild's display for a progress style: the same medium as the load's progress (stderr).
demo::rebuild_display rebuild_display_for(progress_style style) {
  switch (style) {
  case progress_style::automatic:
    return isatty(STDERR_FILENO) == 1 ? demo::rebuild_display::live_line : demo::rebuild_display::lines;
  case progress_style::bar:
    return demo::rebuild_display::live_line;
  case progress_style::lines:
    return demo::rebuild_display::lines;
  case progress_style::none:
    break;
  }
  return demo::rebuild_display::none;
}

void take_problems(run_state& run, std::vector<std::string>& problems) {
  std::lock_guard lock{run.problems_mutex};
  problems.insert(problems.end(), run.problems.begin(), run.problems.end());
  if (run.problems_left_out > 0)
    problems.push_back("... and " + std::to_string(run.problems_left_out) + " more problems of that kind");
}

} // namespace

latency_summary summarise(const histogram& values) {
  auto micro = [](std::uint64_t nanos) { return static_cast<double>(nanos) / 1000.0; };
  latency_summary summary;
  summary.count = values.count();
  summary.mean_us = values.mean() / 1000.0;
  summary.p50_us = micro(values.percentile(50));
  summary.p90_us = micro(values.percentile(90));
  summary.p99_us = micro(values.percentile(99));
  summary.p999_us = micro(values.percentile(99.9));
  summary.max_us = micro(values.max());
  return summary;
}

std::vector<read_model_probe> order_read_model_probes() {
  using namespace readmodels;
  std::vector<read_model_probe> probes;
  probes.push_back(
    probe_for<order_summaries>([](const sample_context& context) { return get_order_summary{context.order_id}; },
                               [](const std::optional<order_summary>& summary, cqrs::log_position position) {
                                 return summary && summary->last_position >= position;
                               }));
  probes.push_back(probe_for<customer_stats>(
    [](const sample_context& context) { return get_customer_stats{context.customer_id}; },
    [](const std::optional<customer_stats_view>& stats, cqrs::log_position) { return stats.has_value(); }));
  probes.push_back(probe_for<orders_by_status>(
    [](const sample_context&) { return list_orders_by_status{orders::order_status::placed}; },
    [](const status_listing&, cqrs::log_position) { return true; }));
  probes.push_back(
    probe_for<top_products>([](const sample_context&) { return get_top_products{}; },
                            [](const std::vector<product_quantity>&, cqrs::log_position) { return true; }));
  return probes;
}

namespace detail {

std::optional<workload_plan> setup_plan(const load_options& options) {
  if (options.workload != workload_kind::hot)
    return std::nullopt;
  auto plan = measured_plan(options);
  plan.kind = workload_kind::setup;
  return plan;
}

std::unique_ptr<phase_budget> setup_budget(const load_options& options) {
  return std::make_unique<phase_budget>(options.aggregates, 0, phase_budget::clock::time_point::max());
}

std::optional<workload_plan> warmup_plan(const load_options& options) {
  if (options.warmup_seconds <= 0)
    return std::nullopt;
  auto plan = measured_plan(options);
  if (plan.kind == workload_kind::orders)
    plan.id_prefix = options.id_tag.empty() ? "w" : options.id_tag + "-w";
  return plan;
}

std::unique_ptr<phase_budget> warmup_budget(const load_options& options, phase_budget::clock::time_point start) {
  return std::make_unique<phase_budget>(0, 0, start + seconds(options.warmup_seconds));
}

workload_plan measured_plan(const load_options& options) {
  workload_plan plan;
  plan.kind = options.workload;
  plan.id_prefix = options.workload == workload_kind::orders ? "o" : "h";
  if (!options.id_tag.empty())
    plan.id_prefix = options.id_tag + "-" + plan.id_prefix;
  plan.items = options.items;
  plan.aggregates = options.aggregates;
  plan.seed = options.seed;
  plan.invalid_percent = options.invalid_percent;
  return plan;
}

std::unique_ptr<phase_budget> measured_budget(const load_options& options, phase_budget::clock::time_point start) {
  auto deadline =
    options.duration_seconds > 0 ? start + seconds(options.duration_seconds) : phase_budget::clock::time_point::max();
  std::uint64_t units = 0;
  std::uint64_t commands = options.commands;
  if (options.workload == workload_kind::orders && commands == 0 && options.duration_seconds <= 0)
    units = options.orders;
  if (options.workload == workload_kind::hot && commands == 0 && options.duration_seconds <= 0)
    commands = load_options::default_hot_commands;
  return std::make_unique<phase_budget>(units, commands, deadline);
}

std::uint64_t expected_commands(const load_options& options) {
  if (options.commands != 0)
    return options.commands;
  if (options.duration_seconds > 0)
    return 0;
  if (options.workload == workload_kind::orders)
    return options.orders * (options.items + 2);
  return load_options::default_hot_commands;
}

} // namespace detail

namespace {

/// A memory figure of /proc/self/status ("VmHWM:", "VmRSS:"), in MiB; nothing where the file has none.
std::optional<double> status_mb(std::string_view field) {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with(field))
      return std::stod(line.substr(field.size())) / 1024.0;
  return std::nullopt;
}

} // namespace

double peak_rss_mb() {
  if (auto peak = status_mb("VmHWM:"))
    return *peak;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& value) { return static_cast<double>(value.tv_sec) + value.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double resident_mb() {
  return status_mb("VmRSS:").value_or(0);
}

void reset_peak_rss() {
  std::ofstream clear{"/proc/self/clear_refs"};
  if (clear)
    clear << "5";
}

std::vector<read_model_probe> order_read_model_probes(const std::vector<std::string>& names) {
  auto all = order_read_model_probes();
  if (names.empty())
    return all;
  std::vector<read_model_probe> chosen;
  if (names.size() == 1 && names.front() == "none")
    return chosen;
  for (const auto& name : names) {
    auto found =
      std::find_if(all.begin(), all.end(), [&](const read_model_probe& probe) { return probe.name == name; });
    if (found == all.end())
      throw std::invalid_argument("no order read model is named " + name);
    chosen.push_back(*found);
  }
  return chosen;
}

load_report run_load(const load_options& options) {
  return run_load(options, order_read_model_probes(options.read_models));
}

load_report run_load(const load_options& chosen, std::vector<read_model_probe> probes) {
  auto options = chosen;
  if (options.id_tag.empty())
    options.id_tag = demo::run_tag(options.store.get());
  load_report report;
  report.options = options;
  if (options.consistency == read_consistency::read_your_writes
      && !has_probe(probes, readmodels::order_summaries::name))
    throw std::invalid_argument("read-your-writes reads order_summaries back: register it");
  reset_peak_rss();
  auto rss_before = resident_mb();
  progress_meter meter{options.progress, std::cerr};
  {
    run_state run{options, std::move(probes)};
    auto engine_started = clock::now();
    run.engine = make_engine(options, run.probes);
    auto head_before = run.engine->head();
    report.recovery = demo::catch_up_read_models(*run.engine, engine_started, rebuild_display_for(options.progress),
                                                 &std::cerr);
    if (report.recovery.error)
      throw std::runtime_error(*report.recovery.error);
    if (!options.ack_log.empty())
      run.open_ack_log(options.ack_log);
    auto label = std::string{to_string(options.workload)};

    if (auto plan = detail::setup_plan(options)) {
      auto setup =
        run_closed_phase(run, *plan, detail::setup_budget(options), std::clamp<std::uint64_t>(options.clients, 1, 64),
                         false, meter, "setup", options.aggregates, 0);
      check_counts("setup", setup, report.problems);
      report.setup_seconds = setup.seconds;
      (void)run.engine->wait_until_caught_up();
    }
    if (auto plan = detail::warmup_plan(options)) {
      auto budget = detail::warmup_budget(options, clock::now());
      auto warmup = options.rate > 0 ? run_open_phase(run, *plan, std::move(budget), false, meter, "warm-up", 0,
                                                      options.warmup_seconds)
                                     : run_closed_phase(run, *plan, std::move(budget), options.clients, false, meter,
                                                        "warm-up", 0, options.warmup_seconds);
      check_counts("warm-up", warmup, report.problems);
      (void)run.engine->wait_until_caught_up();
    }

    auto plan = detail::measured_plan(options);
    std::shared_ptr<recovery_run> calm;
    if (options.rate > 0 && options.recovery_seconds > 0 && options.recovery_rate > 0) {
      calm = run_calm_phase(run, plan);
      (void)run.engine->wait_until_caught_up();
    }
    auto budget = detail::measured_budget(options, clock::now());
    auto* budget_view = budget.get();
    auto expected = detail::expected_commands(options);
    auto cpu_before = process_cpu_seconds();
    auto measured = options.rate > 0 ? run_open_phase(run, plan, std::move(budget), true, meter, label, expected,
                                                      options.duration_seconds, calm.get())
                                     : run_closed_phase(run, plan, std::move(budget), options.clients, true, meter,
                                                        label, expected, options.duration_seconds);
    auto cpu_seconds = process_cpu_seconds() - cpu_before;
    report.cpu_us_per_command = measured.sent > 0 ? cpu_seconds * 1e6 / static_cast<double>(measured.sent) : 0;
    report.pacer_cpu_seconds = measured.pacer_cpu_seconds;
    report.process_cpu_seconds = cpu_seconds;
    report.engine_workers = options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
    report.sending_threads = options.rate > 0 ? options.pacers : options.drivers;
    // Catch-up: from the last reply until every read model has applied the log head.
    auto caught_up = run.engine->wait_until_caught_up();
    auto caught_up_at = clock::now();
    report.catchup_ms = caught_up ? seconds_between(measured.last_reply, caught_up_at) * 1000.0 : -1;
    if (!caught_up)
      report.problems.push_back("wait_until_caught_up failed: " + caught_up.error().message);
    // Visibility and read-back queries still out are answered before the figures are taken.
    if (!run.queries_pending.wait_for_zero(std::chrono::seconds{60}))
      report.problems.push_back("visibility or read-your-writes queries went unanswered for 60 s");
    // What the run's events cost in memory, log and read models together, before the query phase adds its own.
    report.events_appended = run.engine->head() - head_before;
    if (report.events_appended > 0)
      report.bytes_per_event =
        std::max(0.0, peak_rss_mb() - rss_before) * 1024.0 * 1024.0 / static_cast<double>(report.events_appended);

    check_counts("measured", measured, report.problems);
    report.commands = measured.sent;
    report.accepted = measured.tally.accepted;
    report.rejected = measured.tally.rejected;
    report.invalid_commands = measured.invalid_sent;
    report.invalid_rejected = measured.tally.invalid_rejected;
    report.valid_rejected = measured.tally.valid_rejected;
    report.wrong_code = measured.tally.wrong_code;
    report.interrupted = runs_interrupted();
    report.overloaded = measured.tally.overloaded;
    report.rejected_after_overload = measured.tally.rejected_after_overload;
    report.seconds = measured.seconds;
    report.commands_per_s = measured.commands_per_s;
    report.latency = summarise(measured.latencies);
    report.mean_in_flight = report.commands_per_s * report.latency.mean_us / 1e6;
    report.sampled_in_flight = measured.sampled_in_flight;
    report.pacer_waits = measured.pacer_waits;
    report.after_overload = measured.after_overload;

    report.visibility = summarise(run.visibility_all.latencies());
    for (std::size_t index = 0; index < run.probes.size(); ++index)
      if (run.probes[index].ask)
        report.visibility_by_model.emplace_back(run.probes[index].name, summarise(run.visibility[index]->latencies()));
    report.visibility_failures = run.visibility_failures.load();
    report.queries_overloaded = run.queries_overloaded.load();
    report.orders_dropped = measured.orders_dropped;
    if (report.visibility_failures > 0)
      report.problems.push_back(std::to_string(report.visibility_failures)
                                + " visibility queries failed or did not show the acknowledged write");
    report.read_your_writes = summarise(run.read_backs.latencies());
    report.ryw_failures = run.ryw_failures.load();
    if (report.ryw_failures > 0)
      report.problems.push_back(std::to_string(report.ryw_failures)
                                + " read-your-writes queries failed or did not show the write");

    auto placed = orders_placed(plan, budget_view->units_claimed());
    bool queryable = has_probe(run.probes, readmodels::order_summaries::name)
                     || has_probe(run.probes, readmodels::customer_stats::name);
    if (options.query_seconds > 0 && placed > 0 && queryable) {
      auto queries = run_query_phase(run, plan, placed, meter);
      report.queries = queries.answered;
      report.query_failures = queries.failed;
      report.queries_per_s = queries.queries_per_s;
      report.query_latency = queries.latency;
      if (queries.failed > 0)
        report.problems.push_back(std::to_string(queries.failed) + " queries of the query phase failed");
    }
    report.peak_rss_mb = peak_rss_mb();

    report.checks = verify_read_models(*run.engine, run.probes, report.problems);
    report.statistics = run.engine->statistics();
    take_problems(run, report.problems);
    {
      std::lock_guard lock{run.ack_mutex};
      report.acknowledgements = run.acknowledgements;
      if (run.ack_failures > 0)
        report.problems.push_back(std::to_string(run.ack_failures) + " lines could not be written to the acknowledgement log "
                                  + options.ack_log);
    }
  }
  report.verified = report.problems.empty();

  if (options.baselines && options.rate > 0) {
    report.raw_caf_open_loop = run_raw_caf_open_loop_baseline(options);
  } else if (options.baselines) {
    report.raw_caf = run_raw_caf_baseline(options);
    report.raw_caf_callbacks = run_raw_caf_callback_baseline(options);
    report.crud = run_crud_baseline(options);
  }
  return report;
}

rate_search find_rate(const load_options& base, double p99_bound_us, int steps) {
  rate_search search;
  search.p99_bound_us = p99_bound_us;
  auto options = base;
  options.rate = 0;
  options.baselines = false;
  options.query_seconds = 0;
  auto closed = run_load(options);
  search.closed_loop_peak_per_s = closed.commands_per_s;
  for (const auto& problem : closed.problems)
    search.problems.push_back("closed loop: " + problem);
  double passing = 0;
  double failing = closed.commands_per_s;
  for (int step = 0; step < steps && failing > 0; ++step) {
    auto rate = (passing + failing) / 2;
    options.rate = rate;
    auto open = run_load(options);
    rate_probe probe;
    probe.rate_per_s = rate;
    probe.achieved_per_s = open.commands_per_s;
    probe.latency = open.latency;
    probe.verified = open.verified;
    probe.passed = open.verified && open.latency.p99_us <= p99_bound_us && open.commands_per_s >= 0.95 * rate;
    for (const auto& problem : open.problems)
      search.problems.push_back("at " + std::to_string(static_cast<std::uint64_t>(rate)) + "/s: " + problem);
    (probe.passed ? passing : failing) = rate;
    search.probes.push_back(probe);
  }
  search.found_rate_per_s = passing;
  search.verified = search.problems.empty();
  return search;
}

std::vector<sweep_row> run_sweep(const load_options& base, const sweep_options& sweep,
                                 const std::function<void(const sweep_row&)>& on_row) {
  std::vector<sweep_row> rows;
  progress_meter meter{base.progress, std::cerr};
  for (auto aggregates : sweep.aggregates) {
    sweep_row row;
    row.aggregates = aggregates;
    reset_peak_rss();
    {
      auto options = base;
      options.workload = workload_kind::hot;
      options.aggregates = aggregates;
      options.visibility_every = 0;
      options.consistency = read_consistency::any;
      run_state run{options, order_read_model_probes(options.read_models)};
      run.engine = make_engine(options, run.probes);
      auto prefix = std::to_string(aggregates) + " aggregates";

      auto setup = run_closed_phase(run, *detail::setup_plan(options), detail::setup_budget(options), 64, false, meter,
                                    prefix + ", setup", aggregates, 0);
      check_counts(prefix + ", setup", setup, row.problems);
      row.setup_seconds = setup.seconds;
      row.setup_commands_per_s = setup.commands_per_s;
      (void)run.engine->wait_until_caught_up();

      for (auto clients : sweep.clients) {
        options.clients = clients;
        auto deadline =
          sweep.commands_per_cell == 0 ? clock::now() + seconds(sweep.cell_seconds) : clock::time_point::max();
        auto budget = std::make_unique<phase_budget>(0, sweep.commands_per_cell, deadline);
        auto cell_name = prefix + ", " + std::to_string(clients) + " clients";
        auto measured = run_closed_phase(run, detail::measured_plan(options), std::move(budget), clients, true, meter,
                                         cell_name, sweep.commands_per_cell, sweep.cell_seconds);
        sweep_cell cell;
        cell.aggregates = aggregates;
        cell.clients = clients;
        cell.commands = measured.sent;
        cell.seconds = measured.seconds;
        cell.commands_per_s = measured.commands_per_s;
        cell.latency = summarise(measured.latencies);
        cell.mean_in_flight = cell.commands_per_s * cell.latency.mean_us / 1e6;
        auto problems_before = row.problems.size();
        check_counts(cell_name, measured, row.problems);
        cell.correct = row.problems.size() == problems_before;
        row.cells.push_back(cell);
      }
      verify_read_models(*run.engine, run.probes, row.problems);
      take_problems(run, row.problems);
      row.peak_rss_mb = peak_rss_mb();
    }
    row.verified = row.problems.empty();
    if (on_row)
      on_row(row);
    rows.push_back(std::move(row));
  }
  return rows;
}

} // namespace bench
