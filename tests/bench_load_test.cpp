// Short load runs through the load tester's library: they assert correctness (counts, verification, the checks
// catching a broken read model), never speed.
#include "bench/baselines.hpp"
#include "bench/load.hpp"
#include "bench/report.hpp"
#include "delegating_store.hpp"
#include "readmodels/order_views.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace {

/// A small, quick run: few orders and clients, a short query phase, dense visibility sampling.
bench::load_options small_run() {
  bench::load_options options;
  options.orders = 300;
  options.items = 4;
  options.clients = 8;
  options.threads = 2;
  options.visibility_every = 4;
  options.query_seconds = 0.1;
  return options;
}

bool mentions(const std::vector<std::string>& problems, const std::string& text) {
  return std::any_of(problems.begin(), problems.end(),
                     [&](const std::string& problem) { return problem.find(text) != std::string::npos; });
}

/// A deliberately broken read model: order summaries that skip every 100th event they are given.
struct dropping_summaries {
  static constexpr std::string_view name = "dropping_summaries";
  using subscribes_to = cqrs::events_of<orders::event>;

  readmodels::order_summaries inner;
  std::uint64_t seen = 0;

  void apply(const cqrs::envelope& meta, const orders::event& event) {
    if (++seen % 100 != 0)
      inner.apply(meta, event);
  }
  bool operator==(const dropping_summaries&) const = default;
};

/// Registers the broken model and verifies what it holds against true order summaries folded from the log.
bench::read_model_probe dropping_probe() {
  bench::read_model_probe probe;
  probe.name = std::string{dropping_summaries::name};
  probe.add = [](cqrs::engine& engine) { engine.add_projection<dropping_summaries>(); };
  probe.verify = [](const cqrs::engine& engine) {
    return bench::verify_against_log<dropping_summaries, readmodels::order_summaries>(
      engine, [](const dropping_summaries& live) -> const readmodels::order_summaries& { return live.inner; });
  };
  return probe;
}

} // namespace

TEST_CASE("a short orders run in a closed loop ends verified with every invalid command rejected") {
  auto report = bench::run_load(small_run());
  INFO(report.problems.size() << " problems, first: " << (report.problems.empty() ? "" : report.problems.front()));
  CHECK(report.verified);
  CHECK(report.problems.empty());
  CHECK(report.accepted == 300 * 6);
  CHECK(report.accepted + report.rejected == report.commands);
  CHECK(report.invalid_commands > 0);
  CHECK(report.invalid_rejected == report.invalid_commands);
  CHECK(report.rejected == report.invalid_commands);
  CHECK(report.valid_rejected == 0);
  REQUIRE(report.checks.size() == 4);
  for (const auto& check : report.checks) {
    INFO(check.name);
    CHECK_FALSE(check.difference.has_value());
    // Caught up: each read model applied every event the run appended (a fresh store: the head).
    CHECK(check.checkpoint == report.events_appended);
  }
  CHECK(report.events_appended == report.accepted);
  CHECK(report.latency.count == report.commands);
  CHECK(report.visibility.count > 0);
  REQUIRE(report.visibility_by_model.size() == 4);
  for (const auto& [name, latency] : report.visibility_by_model) {
    INFO(name);
    CHECK(latency.count > 0);
  }
  CHECK(report.visibility_failures == 0);
  CHECK(report.queries > 0);
  CHECK(report.query_failures == 0);
  CHECK(report.peak_rss_mb > 0);
  // A measured phase of 1,800 commands takes CPU time, and the run names the threads it used.
  CHECK(report.cpu_us_per_command > 0);
  CHECK(report.engine_workers == small_run().threads);
  CHECK(report.sending_threads == small_run().drivers);
}

namespace {

/// An in-memory store whose disk "fills up" after `good_appends` appends: every later append fails and failure()
/// says so, as a durable store's would.
class filling_store final : public test_support::delegating_store {
public:
  explicit filling_store(int good_appends) : left_(good_appends) {}

  std::expected<cqrs::append_result, cqrs::store_error> append(cqrs::append_request request) override {
    if (left_.fetch_sub(1) <= 0) {
      full_.store(true);
      return std::unexpected(cqrs::store_error{std::string{cqrs::errc::store_failure}, "disk full (injected)"});
    }
    return inner().append(std::move(request));
  }
  std::optional<std::string> failure() const override {
    return full_.load() ? std::optional<std::string>{"disk full (injected)"} : std::nullopt;
  }

private:
  std::atomic<int> left_;
  std::atomic<bool> full_{false};
};

} // namespace

TEST_CASE("a run stops sending once the engine turns unhealthy, and says why") {
  auto options = small_run();
  options.orders = 3000; // 18,000 commands planned
  options.store = std::make_shared<filling_store>(200);
  auto report = bench::run_load(options);
  CHECK_FALSE(report.verified);
  CHECK(mentions(report.problems, "the engine stopped accepting writes"));
  CHECK(mentions(report.problems, "disk full (injected)"));
  // Each client ends the order it is in (at most 6 commands each), then stops.
  CHECK(report.commands < 200 + 8 * 7 + 10);
  CHECK(report.accepted <= 200);
}

TEST_CASE("a run past the engine's bound counts overloaded replies apart and still ends verified") {
  auto options = small_run();
  // Commands wait for their aggregates' actors, so 8 clients keep more than 2 in flight: most are refused at once.
  options.command_dispatch = cqrs::command_dispatch::aggregate_actor;
  options.engine_max_in_flight = 2;
  auto report = bench::run_load(options);
  INFO(report.problems.size() << " problems, first: " << (report.problems.empty() ? "" : report.problems.front()));
  CHECK(report.verified);
  CHECK(report.problems.empty());
  CHECK(report.overloaded > 0);
  CHECK(report.accepted < 300 * 6);
  CHECK(report.accepted + report.rejected + report.overloaded == report.commands);
  CHECK(report.valid_rejected == 0);
  // Rules broken only because an earlier command of the order was refused are counted apart, as such (a ship of
  // an order all of whose items were refused); an order whose placing was refused is dropped by its client.
  CHECK(report.rejected <= report.invalid_commands + report.rejected_after_overload);
  CHECK(report.orders_dropped > 0);
  // The latencies describe the commands the engine ran, not the refusals.
  CHECK(report.latency.count == report.accepted + report.rejected);
}

TEST_CASE("an open-loop run with a recovery phase measures it window by window after the measured phase") {
  auto options = small_run();
  options.rate = 20'000;
  options.recovery_seconds = 0.5;
  options.recovery_rate = 2'000;
  auto report = bench::run_load(options);
  INFO(report.problems.size() << " problems, first: " << (report.problems.empty() ? "" : report.problems.front()));
  CHECK(report.verified);
  CHECK(report.problems.empty());
  REQUIRE(report.after_overload);
  const auto& recovery = *report.after_overload;
  CHECK(recovery.commands > 0);
  CHECK(recovery.accepted + recovery.rejected + recovery.overloaded == recovery.commands);
  REQUIRE(recovery.windows.size() == 5);
  std::uint64_t answered = 0;
  for (const auto& window : recovery.windows)
    answered += window.latency.count + window.overloaded;
  CHECK(answered == recovery.commands);
  CHECK(recovery.windows[1].start_ms == Approx(100.0));
  // Normal is measured by the calm phase before the measured one: it ran, at the same rate.
  CHECK(recovery.calm_p99_us > 0);
  CHECK(recovery.calm_worst_window_p99_us >= recovery.calm_p99_us * 0.5);
  CHECK(recovery.normal_bound_us == Approx(2 * recovery.calm_worst_window_p99_us));
  // "Normal after" means what it says: from that window on, every p99 within the bound and nothing refused; the
  // window before it was not normal.
  REQUIRE(recovery.normal_after_ms >= -1.0);
  if (recovery.normal_after_ms >= 0)
    for (const auto& window : recovery.windows) {
      if (window.start_ms >= recovery.normal_after_ms) {
        CHECK(window.overloaded == 0);
        CHECK(window.latency.p99_us <= recovery.normal_bound_us);
      } else if (window.start_ms + 100.0 == Approx(recovery.normal_after_ms)) {
        CHECK((window.overloaded > 0 || window.latency.p99_us > recovery.normal_bound_us));
      }
    }
  // Its commands are new orders of their own: none was rejected as a clash with the measured phase's.
  CHECK(report.valid_rejected == 0);
  // The pacer's CPU time is part of the process's (with the default dispatch it runs the commands too).
  CHECK(report.pacer_cpu_seconds > 0);
  CHECK(report.pacer_cpu_seconds <= report.process_cpu_seconds + 0.02);
}

TEST_CASE("a hot run with read-your-writes reads every write back") {
  auto options = small_run();
  options.workload = bench::workload_kind::hot;
  options.aggregates = 4;
  options.clients = 16;
  options.commands = 3000;
  options.consistency = bench::read_consistency::read_your_writes;
  options.ryw_every = 2;
  options.visibility_every_model = true;
  auto report = bench::run_load(options);
  INFO((report.problems.empty() ? "" : report.problems.front()));
  CHECK(report.verified);
  CHECK(report.commands >= 3000);
  CHECK(report.read_your_writes.count > 0);
  CHECK(report.ryw_failures == 0);
  CHECK(report.valid_rejected == 0);
  // Every sampled acknowledgement asked every read model.
  REQUIRE(report.visibility_by_model.size() == 4);
  for (const auto& [name, latency] : report.visibility_by_model)
    CHECK(latency.count * 4 == report.visibility.count);
}

TEST_CASE("an open-loop run sends at its rate, never ahead of the intended times, and ends verified") {
  auto options = small_run();
  options.rate = 20'000;
  options.commands = 2000;
  options.pacers = 2;
  auto report = bench::run_load(options);
  INFO((report.problems.empty() ? "" : report.problems.front()));
  CHECK(report.verified);
  // Orders of 6 commands are claimed until 2000 commands are: 334 orders, plus the invalid commands.
  CHECK(report.accepted == 334 * 6);
  CHECK(report.commands == report.accepted + report.invalid_commands);
  CHECK(report.latency.count == report.commands);
  // Each pacer sends one command per 100 us of intended time: the last one is not due before ~0.1 s.
  CHECK(report.seconds >= 0.09);
}

TEST_CASE("a warm-up sends its own orders and leaves the measured count as asked") {
  auto options = small_run();
  options.warmup_seconds = 0.1;
  options.query_seconds = 0;
  auto report = bench::run_load(options);
  CHECK(report.verified);
  CHECK(report.accepted == 300 * 6);
  CHECK(report.commands == 300 * 6 + report.invalid_commands);
  CHECK(report.queries == 0);
}

TEST_CASE("a read model that drops every 100th event is reported as not verified") {
  auto probes = bench::order_read_model_probes();
  probes.push_back(dropping_probe());
  auto options = small_run();
  options.query_seconds = 0;
  auto report = bench::run_load(options, probes);
  CHECK_FALSE(report.verified);
  REQUIRE(report.checks.size() == 5);
  for (const auto& check : report.checks) {
    INFO(check.name);
    CHECK(check.difference.has_value() == (check.name == "dropping_summaries"));
  }
  CHECK(mentions(report.problems, "dropping_summaries differs from the log"));
  // The commands themselves were all answered correctly: only the read model is wrong.
  CHECK(report.valid_rejected == 0);
  CHECK(report.invalid_rejected == report.invalid_commands);
}

// Tagged [raw-caf]: left out of ThreadSanitizer runs (see tests/bench_tests.cmake).
TEST_CASE("both baselines run the same commands as the engine and check themselves", "[raw-caf]") {
  auto options = small_run();
  options.baselines = true;
  options.query_seconds = 0;
  auto report = bench::run_load(options);
  CHECK(report.verified);
  REQUIRE(report.raw_caf.has_value());
  REQUIRE(report.raw_caf_callbacks.has_value());
  REQUIRE(report.crud.has_value());
  for (const auto* baseline : {&*report.raw_caf, &*report.raw_caf_callbacks, &*report.crud}) {
    INFO(baseline->name << ": " << (baseline->problems.empty() ? "" : baseline->problems.front()));
    CHECK(baseline->verified);
    CHECK(baseline->commands == report.commands);
    CHECK(baseline->rejected == report.rejected);
    CHECK(baseline->commands_per_s > 0);
  }
  auto json = bench::to_json(report);
  for (const char* field : {"workload",
                            "clients",
                            "commands",
                            "rejected",
                            "commands_per_s",
                            "p50_us",
                            "p99_us",
                            "p999_us",
                            "visibility_p99_us",
                            "catchup_ms",
                            "queries_per_s",
                            "peak_rss_mb",
                            "verified",
                            "mean_in_flight",
                            "raw_caf_commands_per_s",
                            "crud_commands_per_s",
                            "ratio_raw_caf",
                            "ratio_crud",
                            "raw_caf_callbacks_commands_per_s",
                            "ratio_raw_caf_callbacks",
                            "cpu_us_per_command",
                            "raw_caf_cpu_us_per_command",
                            "raw_caf_callbacks_cpu_us_per_command",
                            "crud_cpu_us_per_command",
                            "engine_workers",
                            "driver_threads",
                            "events_appended",
                            "bytes_per_event"}) {
    INFO(field);
    CHECK(json.contains(field));
  }
  CHECK(json.at("verified").as_bool());
  auto line = bench::json_line(json);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(boost::json::parse(line).as_object().at("commands").to_number<std::uint64_t>() == report.commands);
}

TEST_CASE("with a rate, the raw-CAF baseline runs the same open loop and checks itself", "[raw-caf]") {
  auto options = small_run();
  options.baselines = true;
  options.query_seconds = 0;
  options.rate = 20000;
  auto report = bench::run_load(options);
  CHECK(report.verified);
  CHECK_FALSE(report.raw_caf.has_value()); // the closed-loop baselines do not apply
  REQUIRE(report.raw_caf_open_loop.has_value());
  const auto& open = *report.raw_caf_open_loop;
  INFO(open.problems.size() << " problems, first: " << (open.problems.empty() ? "" : open.problems.front()));
  CHECK(open.verified);
  CHECK(open.commands == report.commands);
  CHECK(open.rejected == report.rejected);
  CHECK(open.latency.count == open.commands);
  // Paced at the same rate: 1,500 commands at 20,000/s take 75 ms, whoever sends them.
  CHECK(open.seconds >= 0.07);
  auto json = bench::to_json(report);
  for (const char* field : {"raw_caf_open_loop_commands_per_s", "raw_caf_open_loop_p99_us",
                            "raw_caf_open_loop_p999_us", "ratio_raw_caf_open_loop_p99"}) {
    INFO(field);
    CHECK(json.contains(field));
  }
}

TEST_CASE("a rate search probes open loops below the closed-loop peak and keeps the best that passed") {
  auto options = small_run();
  options.query_seconds = 0;
  options.visibility_every = 0;
  // A bound no run can miss: each probe goes up after a pass and down after a failure to keep up, and the rate found
  // is the best that passed.
  auto generous = bench::find_rate(options, 60e6, 3);
  INFO(generous.problems.size() << " problems, first: " << (generous.problems.empty() ? "" : generous.problems.front()));
  CHECK(generous.verified);
  REQUIRE(generous.probes.size() == 3);
  CHECK(generous.closed_loop_peak_per_s > 0);
  CHECK(generous.probes[0].rate_per_s == Approx(generous.closed_loop_peak_per_s / 2));
  double best = 0;
  for (std::size_t index = 0; index < generous.probes.size(); ++index) {
    const auto& probe = generous.probes[index];
    CHECK(probe.passed == (probe.verified && probe.achieved_per_s >= 0.95 * probe.rate_per_s));
    if (probe.passed)
      best = std::max(best, probe.rate_per_s);
    if (index + 1 < generous.probes.size()) {
      if (probe.passed)
        CHECK(generous.probes[index + 1].rate_per_s > probe.rate_per_s);
      else
        CHECK(generous.probes[index + 1].rate_per_s < probe.rate_per_s);
    }
  }
  CHECK(generous.found_rate_per_s == best);
  // A bound none can meet: every probe fails, each below the one before, and nothing is found.
  auto strict = bench::find_rate(options, 0.001, 2);
  REQUIRE(strict.probes.size() == 2);
  CHECK_FALSE(strict.probes[0].passed);
  CHECK(strict.probes[1].rate_per_s < strict.probes[0].rate_per_s);
  CHECK(strict.found_rate_per_s == 0);
}

namespace {

/// A small hot run: 2000 commands of add/remove pairs on 5 orders.
bench::load_options small_hot_run() {
  auto options = small_run();
  options.workload = bench::workload_kind::hot;
  options.aggregates = 5;
  options.commands = 2000;
  return options;
}

} // namespace

TEST_CASE("the CRUD baseline places the hot orders before the measured pairs and checks itself") {
  auto crud = bench::run_crud_baseline(small_hot_run());
  INFO((crud.problems.empty() ? "" : crud.problems.front()));
  CHECK(crud.verified);
  CHECK(crud.commands >= 2000);
  CHECK(crud.latency.count == crud.commands);
}

TEST_CASE("the raw-CAF baseline places the hot orders before the measured pairs and checks itself", "[raw-caf]") {
  auto raw = bench::run_raw_caf_baseline(small_hot_run());
  auto callbacks = bench::run_raw_caf_callback_baseline(small_hot_run());
  auto crud = bench::run_crud_baseline(small_hot_run());
  INFO((raw.problems.empty() ? "" : raw.problems.front())
       << (callbacks.problems.empty() ? "" : callbacks.problems.front()));
  CHECK(raw.verified);
  CHECK(callbacks.verified);
  CHECK(raw.commands == crud.commands);
  CHECK(raw.rejected == crud.rejected);
  CHECK(callbacks.commands == crud.commands);
}

TEST_CASE("a small sweep measures every cell and verifies each row") {
  auto options = small_run();
  bench::sweep_options sweep;
  sweep.aggregates = {50, 200};
  sweep.clients = {1, 4};
  sweep.commands_per_cell = 400;
  auto rows = bench::run_sweep(options, sweep);
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) {
    INFO(row.aggregates << " aggregates: " << (row.problems.empty() ? "" : row.problems.front()));
    CHECK(row.verified);
    REQUIRE(row.cells.size() == 2);
    for (const auto& cell : row.cells) {
      CHECK(cell.correct);
      CHECK(cell.commands >= 400);
      CHECK(cell.latency.count == cell.commands);
    }
  }
  std::ostringstream csv;
  bench::write_sweep_csv(csv, rows);
  auto text = csv.str();
  CHECK(std::count(text.begin(), text.end(), '\n') == 1 + 4);
  CHECK(bench::sweep_to_json(options, rows).at("verified").as_bool());
}

TEST_CASE("the acknowledgement log names every accepted command at the position of its last event", "[load]") {
  auto path = std::filesystem::temp_directory_path() / ("cqrs-ack-" + std::to_string(::getpid()) + ".log");
  std::filesystem::remove(path);
  auto store = cqrs::make_memory_event_store();
  auto options = small_run();
  options.store = store;
  options.ack_log = path.string();

  auto first = bench::run_load(options);
  REQUIRE(first.verified);
  REQUIRE(first.acknowledgements == first.accepted);
  // A second run on the same store and log: the store holds events, so the run takes a tag of its own.
  auto second = bench::run_load(options);
  REQUIRE(second.verified);
  REQUIRE_FALSE(second.options.id_tag.empty());

  std::map<cqrs::log_position, std::string> command_at;
  store->read_all(0, store->head(), [&](const cqrs::envelope& event) {
    command_at[event.position] = event.command_id;
    return true;
  });
  std::ifstream lines{path};
  std::string command_id;
  cqrs::log_position position = 0;
  std::set<std::string> seen;
  std::uint64_t count = 0;
  while (lines >> command_id >> position) {
    ++count;
    CHECK(command_at[position] == command_id);
    CHECK(seen.insert(command_id).second);
  }
  CHECK(count == first.accepted + second.accepted);
  std::filesystem::remove(path);
}
