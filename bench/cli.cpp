// cqrs-load's options through CLI11; every bad value or combination is a usage error (exit 2).
#include "bench/cli.hpp"
#include "demo/cli_checks.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <map>
#include <sstream>

namespace bench {
namespace {

constexpr const char* description =
  "cqrs-load: the load tester of the CQRS engine. Clients send order commands in a closed loop (each waits for\n"
  "every reply; clients are callback-driven state machines, not threads) or, with --rate, in an open loop paced\n"
  "from intended send times (latency counted from the intended time: no coordinated omission). It measures\n"
  "commands/s, latency percentiles, visibility latency (ack -> each read model answers at_least(position)),\n"
  "catch-up after the last command, queries/s on warm read models, mean commands in flight and peak RSS, then\n"
  "verifies every read model against a fold of the log and that every invalid command (about 1%) was rejected.";

constexpr const char* footer =
  R"(Workloads:
  orders  per order: PlaceOrder, K x AddItem, ShipOrder (--orders N --items K); every order is a new aggregate
  hot     AddItem/RemoveItem pairs on --aggregates long-lived orders (placed first, not measured): contention
          on a few serial aggregates; --commands (default 500000) or --duration-s bounds it
--baseline also runs, in the same invocation and on the same workload, a hand-written raw-CAF program (client
actors doing request/response; and again with callback clients, the engine's shape) and a one-mutex CRUD loop,
and prints the engine's ratio to each; with --rate, the raw-CAF program in the same open loop instead (its
pacer threads send at the same intended times), with the ratios of throughput and of p99.
--sweep measures the hot shape over aggregates x clients (--sweep-aggregates, --sweep-clients), each cell for
--duration-s (default 1) or --commands, and writes --csv (default sweep.csv).
--find-rate runs the workload in a closed loop, then in open loops at rates bisected between 0 and that peak
(the first at half of it, seven in all), and reports the highest rate that kept up with p99 <= --p99-bound-us
(default 1000) as find_rate_per_s, beside closed_loop_peak_per_s.

--store sqlite:PATH runs on a durable SQLite log (--sync full, the default, fsyncs each commit), --store
postgres:CONNINFO on a PostgreSQL log (libpq's connection string; schema=NAME in it chooses the schema, default
cqrs; commits as the server's synchronous_commit says); an existing log is recovered first (the read models rebuild from it, reported as the recovery rate) and the run's order and
command ids start with a tag taken from its head. --ack-log FILE appends "command_id position" for every accepted
command before its client sends the next one (for cqrs-store verify --ack-log after a crash).

Exit status: 0 verified, 1 not verified (a read model differs from the log, a count is off; or the store or the
ack log cannot be opened), 2 bad options.)";

template <class Value>
CLI::Option* add_count(CLI::App& app, const std::string& name, Value& value, const std::string& text, Value lowest,
                       Value highest) {
  return app.add_option(name, value, text)
    ->type_name("N")
    ->capture_default_str()
    ->check(demo::within(lowest, highest));
}

} // namespace

parse_outcome parse_command_line(int argc, const char* const* argv) {
  command_line parsed;
  auto& load = parsed.load;
  double duration = 0;
  std::string workload = "orders";
  std::string policy = "stealing";
  std::string consistency = "any";
  std::string progress = "auto";
  std::string command_dispatch = "caller";
  std::string query_dispatch = "caller";
  std::string projection_dispatch = "query-helps";
  bool baseline = false;
  std::string store = "memory";
  std::string sync;
  std::uint64_t passivate_after_ms = static_cast<std::uint64_t>(load.passivate_after.count());

  CLI::App app{description, "cqrs-load"};
  app.footer(footer);
  app.get_formatter()->column_width(32);
  app.add_option("--workload", workload, "orders or hot")
    ->type_name("NAME")
    ->capture_default_str()
    ->check(CLI::IsMember({"orders", "hot"}));
  add_count(app, "--orders", load.orders, "Orders workload: orders to send", std::uint64_t{1},
            std::uint64_t{100'000'000});
  add_count(app, "--items", load.items, "Orders workload: AddItem commands per order", std::uint64_t{1},
            std::uint64_t{1000});
  add_count(app, "--aggregates", load.aggregates, "Hot workload: orders the clients contend on", std::uint64_t{1},
            std::uint64_t{10'000'000});
  add_count(app, "--clients", load.clients, "Concurrent clients (callback-driven, not threads)", std::uint64_t{1},
            std::uint64_t{100'000});
  add_count(app, "--commands", load.commands, "Measured commands instead of the workload's default (0: default)",
            std::uint64_t{0}, std::uint64_t{10'000'000'000});
  auto* duration_option = app.add_option("--duration-s", duration, "Measure for this long instead (sweep: per cell)")
                            ->type_name("SECONDS")
                            ->check(demo::within(0.001, 86'400.0));
  add_count(app, "--threads", load.threads, "Engine worker threads", std::size_t{1}, std::size_t{256});
  app.add_option("--policy", policy, "CAF scheduler: stealing or sharing")
    ->type_name("NAME")
    ->capture_default_str()
    ->check(CLI::IsMember({"stealing", "sharing"}));
  app
    .add_option("--consistency", consistency,
                "any, or ryw: every --ryw-every accepted commands a client reads its write back at_least(position)")
    ->type_name("NAME")
    ->capture_default_str()
    ->check(CLI::IsMember({"any", "ryw"}));
  add_count(app, "--ryw-every", load.ryw_every, "Accepted commands per read-your-writes query", std::uint64_t{1},
            std::uint64_t{1'000'000});
  app.add_option("--seed", load.seed, "Seed of the workload's random generators")
    ->type_name("N")
    ->capture_default_str()
    ->check(demo::not_negative<std::uint64_t>());
  app.add_option("--warmup-s", load.warmup_seconds, "Unmeasured load before the measurement")
    ->type_name("SECONDS")
    ->capture_default_str()
    ->check(demo::within(0.0, 3600.0));
  app.add_option("--rate", load.rate, "Open loop: commands per second in all (0: closed loop)")
    ->type_name("PER_S")
    ->check(demo::within(0.0, 100'000'000.0));
  add_count(app, "--pacers", load.pacers, "Open loop: pacer threads", std::size_t{1}, std::size_t{64});
  add_count(app, "--max-in-flight", load.max_in_flight, "Open loop: pacers wait while this many are outstanding",
            std::uint64_t{1}, std::uint64_t{100'000'000});
  app.add_option("--recovery-s", load.recovery_seconds,
                 "Open loop: after the measured phase, this long at --recovery-rate, latency per 100 ms window (how "
                 "soon it is normal after an overload, normal being what a calm phase as long at that rate showed "
                 "before it)")
    ->type_name("SECONDS")
    ->check(demo::within(0.1, 3600.0));
  app.add_option("--recovery-rate", load.recovery_rate, "Open loop: commands per second of the recovery phase")
    ->type_name("PER_S")
    ->check(demo::within(1.0, 100'000'000.0));
  add_count(app, "--engine-max-in-flight", load.engine_max_in_flight,
            "The engine's bound on commands in flight and waiting queries; beyond it they are refused as "
            "overloaded (0: no bound)",
            std::size_t{0}, std::size_t{1'000'000'000});
  add_count(app, "--max-projection-lag", load.max_projection_lag,
            "The engine refuses commands as overloaded while a read model is more than N positions behind (0: never)",
            std::uint64_t{0}, std::uint64_t{1'000'000'000});
  add_count(app, "--max-queued-per-aggregate", load.max_queued_per_aggregate,
            "The engine's bound on commands waiting for one aggregate (0: no bound)", std::size_t{0},
            std::size_t{1'000'000'000});
  add_count(app, "--drivers", load.drivers, "Host threads that start clients and continue those answered on the spot",
            std::size_t{1}, std::size_t{256});
  app
    .add_option("--command-dispatch", command_dispatch,
                "A command to an idle aggregate runs on the sending thread (caller) or on its aggregate's actor "
                "(actors)")
    ->type_name("NAME")
    ->capture_default_str()
    ->check(CLI::IsMember({"caller", "actors"}));
  app
    .add_option("--query-dispatch", query_dispatch,
                "Ready queries answered on the caller's thread (caller) or by the engine's query actors (actors)")
    ->type_name("NAME")
    ->capture_default_str()
    ->check(CLI::IsMember({"caller", "actors"}));
  app
    .add_option("--projections", projection_dispatch,
                "New events applied to the read models by the projection actors, and by a query that waits for "
                "them (query-helps), by the appending thread (appending), or only by the projection actors (actors)")
    ->type_name("NAME")
    ->capture_default_str()
    ->check(CLI::IsMember({"query-helps", "appending", "actors"}));
  add_count(app, "--visibility-every", load.visibility_every,
            "Sample visibility on one accepted command in N, asking one read model in turn (0: none)", std::uint64_t{0},
            std::uint64_t{1'000'000'000});
  app.add_flag("--visibility-every-model", load.visibility_every_model,
               "Ask every read model at each sampled acknowledgement");
  app.add_option("--query-s", load.query_seconds, "Length of the query phase (0: none)")
    ->type_name("SECONDS")
    ->capture_default_str()
    ->check(demo::within(0.0, 3600.0));
  app.add_option("--invalid-percent", load.invalid_percent, "Share of commands that must be rejected")
    ->type_name("PERCENT")
    ->capture_default_str()
    ->check(demo::within(0.0, 50.0));
  std::vector<std::string> read_models;
  app
    .add_option("--read-models", read_models,
                "Read models to register: none, or some of order_summaries,customer_stats,orders_by_status,"
                "top_products (default: all four)")
    ->type_name("NAME,...")
    ->delimiter(',')
    ->check(CLI::IsMember({"none", "order_summaries", "customer_stats", "orders_by_status", "top_products"}));
  app.add_flag("--baseline", baseline,
               "Also run the raw-CAF (actor and callback clients) and CRUD baselines, or with --rate the raw-CAF open loop; print ratios");
  app.add_flag("--sweep", parsed.sweep, "Sweep aggregates x clients (hot shape) instead of one run");
  app.add_option("--csv", parsed.csv, "Sweep: CSV file to write")->type_name("FILE")->capture_default_str();
  app.add_option("--sweep-aggregates", parsed.sweep_settings.aggregates, "Sweep: aggregate counts")
    ->type_name("N,...")
    ->delimiter(',')
    ->check(demo::within(std::uint64_t{1}, std::uint64_t{10'000'000}));
  app.add_option("--sweep-clients", parsed.sweep_settings.clients, "Sweep: client counts")
    ->type_name("N,...")
    ->delimiter(',')
    ->check(demo::within(std::uint64_t{1}, std::uint64_t{100'000}));
  app.add_option("--store", store, demo::store_option_help)->type_name("SPEC")->capture_default_str();
  auto* sync_option = app.add_option("--sync", sync, demo::sync_option_help)->type_name("MODE");
  bool read_past_damage = false;
  app.add_flag("--read-past-damage", read_past_damage, demo::read_past_damage_help);
  app.add_option("--ack-log", load.ack_log, "Append \"command_id position\" for every accepted command to FILE")
    ->type_name("FILE")
    ->check(demo::file_name());
  add_count(app, "--max-live", load.max_live_aggregates,
            "Most aggregate actors alive at once; beyond it idle ones passivate (0: no limit)", std::size_t{0},
            std::size_t{1'000'000'000});
  add_count(app, "--passivate-after-ms", passivate_after_ms,
            "Aggregate actors idle this long passivate (0: never)", std::uint64_t{0}, std::uint64_t{86'400'000});
  app.add_flag("--json", parsed.json, "Print one JSON object as the last line of stdout");
  app.add_flag("--ledger", parsed.ledger,
               "Print the cost per operation (allocations, CAF messages, locks, atomic updates) and exit");
  app.add_flag("--find-rate", parsed.find_rate,
               "Search the highest open-loop rate whose p99 stays within --p99-bound-us (a closed-loop run, then "
               "open-loop runs bisecting up to its peak) instead of one run");
  app.add_option("--p99-bound-us", parsed.p99_bound_us, "--find-rate: the p99 bound, in microseconds")
    ->type_name("US")
    ->capture_default_str()
    ->check(demo::within(1.0, 60'000'000.0));
  add_count(app, "--nodes", parsed.cluster.nodes,
            "Start N cqrs-node processes on loopback around the --store postgres: log and drive them (--clients "
            "each)",
            std::size_t{0}, std::size_t{64});
  app.add_option("--kill-node-after-s", parsed.cluster.kill_node_after_seconds,
                 "--nodes: kill the last node with SIGKILL this long into the load, and time the failover")
    ->type_name("S")
    ->check(CLI::Range(0.0, 86400.0));
  add_count(app, "--lease-ms", parsed.cluster.lease_ms, "--nodes: partition lease duration", std::int64_t{100},
            std::int64_t{600000});
  add_count(app, "--partitions", parsed.cluster.partitions, "--nodes: partitions of the aggregates",
            std::uint32_t{1}, std::uint32_t{4096});
  app.add_option("--acks-dir", parsed.cluster.acks_folder,
                 "--nodes: folder for the nodes' acknowledgement files (default: a new temporary folder)")
    ->type_name("DIR");
  app.add_option("--progress", progress, "auto (a bar on a terminal, lines otherwise), bar, lines or none")
    ->type_name("STYLE")
    ->capture_default_str()
    ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));

  parse_outcome outcome;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    std::ostringstream out;
    std::ostringstream err;
    auto code = app.exit(error, out, err);
    outcome.exit_code = code == 0 ? exit_verified : exit_usage;
    outcome.output = code == 0 ? out.str() : "cqrs-load: " + err.str();
    return outcome;
  }

  auto usage_error = [&](const std::string& message) {
    outcome.exit_code = exit_usage;
    outcome.output = "cqrs-load: " + message + "\nRun with --help for more information.\n";
    return outcome;
  };
  load.workload = workload == "hot" ? workload_kind::hot : workload_kind::orders;
  load.policy = policy == "sharing" ? cqrs::scheduler_policy::sharing : cqrs::scheduler_policy::stealing;
  load.command_dispatch = command_dispatch == "actors" ? cqrs::command_dispatch::aggregate_actor
                                                       : cqrs::command_dispatch::caller_when_idle;
  load.query_dispatch =
    query_dispatch == "actors" ? cqrs::query_dispatch::query_actors : cqrs::query_dispatch::caller_when_ready;
  load.projection_dispatch = projection_dispatch == "actors"      ? cqrs::projection_dispatch::projection_actor
                            : projection_dispatch == "appending" ? cqrs::projection_dispatch::appending_thread
                                                                 : cqrs::projection_dispatch::projection_actor_or_waiting_query;
  load.consistency = consistency == "ryw" ? read_consistency::read_your_writes : read_consistency::any;
  static const std::map<std::string, progress_style> styles{{"auto", progress_style::automatic},
                                                            {"bar", progress_style::bar},
                                                            {"lines", progress_style::lines},
                                                            {"none", progress_style::none}};
  load.progress = styles.at(progress);
  load.baselines = baseline;
  load.passivate_after = std::chrono::milliseconds{static_cast<std::int64_t>(passivate_after_ms)};
  auto chosen_store = demo::parse_store_choice(
    store, sync_option->count() > 0 ? std::optional<std::string_view>{sync} : std::nullopt, read_past_damage);
  if (!chosen_store)
    return usage_error(chosen_store.error());
  parsed.store = *chosen_store;
  if (parsed.cluster.nodes > 0) {
    if (parsed.store.postgres_conninfo.empty())
      return usage_error("--nodes runs node processes on a shared PostgreSQL log: add --store postgres:CONNINFO");
    if (parsed.sweep || parsed.ledger || parsed.find_rate || baseline || load.rate > 0)
      return usage_error("--nodes runs closed-loop clients on each node: drop --sweep, --ledger, --find-rate, "
                         "--baseline and --rate");
    parsed.cluster.conninfo = parsed.store.postgres_conninfo;
    parsed.cluster.schema = parsed.store.postgres_schema;
    parsed.cluster.clients_per_node = static_cast<std::size_t>(load.clients);
    parsed.cluster.duration_seconds = duration > 0 ? duration : 10.0;
  }
  if ((load.recovery_seconds > 0) != (load.recovery_rate > 0))
    return usage_error("--recovery-s and --recovery-rate go together");
  if (load.recovery_seconds > 0 && (load.rate <= 0 || baseline))
    return usage_error("--recovery-s follows an open loop's measured phase: add --rate, drop --baseline");
  if (parsed.ledger && (parsed.sweep || baseline || parsed.store.durable() || load.rate > 0))
    return usage_error("--ledger runs its own fixed operations on in-memory engines: drop --sweep, --baseline, "
                       "--store and --rate");
  if (parsed.find_rate && (parsed.sweep || parsed.ledger || baseline || load.rate > 0 || parsed.store.durable()
                           || !load.ack_log.empty()))
    return usage_error("--find-rate chooses its own rates on new in-memory engines: drop --sweep, --ledger, "
                       "--baseline, --rate, --store and --ack-log");
  if (parsed.sweep && parsed.store.durable())
    return usage_error("--sweep makes an engine per row on a new in-memory store; drop --store");
  if (parsed.sweep && !load.ack_log.empty())
    return usage_error("--sweep writes no acknowledgement log; drop --ack-log");
  if (std::find(read_models.begin(), read_models.end(), "none") != read_models.end()) {
    if (read_models.size() > 1)
      return usage_error("--read-models none cannot be combined with read model names");
    load.read_models = {"none"};
  } else {
    load.read_models = read_models;
  }
  if (load.consistency == read_consistency::read_your_writes && !load.read_models.empty()
      && std::find(load.read_models.begin(), load.read_models.end(), "order_summaries") == load.read_models.end())
    return usage_error("--consistency ryw reads order_summaries back: add it to --read-models");
  if (parsed.sweep && !load.read_models.empty())
    return usage_error("--sweep registers all four read models; drop --read-models");
  if (parsed.sweep) {
    if (baseline)
      return usage_error("--sweep and --baseline cannot be combined: run the baseline on one configuration");
    if (load.rate > 0)
      return usage_error("--sweep runs closed loops; drop --rate");
    if (parsed.sweep_settings.aggregates.empty() || parsed.sweep_settings.clients.empty())
      return usage_error("--sweep-aggregates and --sweep-clients need at least one value each");
    parsed.sweep_settings.cell_seconds = duration_option->count() > 0 ? duration : 1.0;
    parsed.sweep_settings.commands_per_cell = load.commands;
    if (duration_option->count() > 0 && load.commands > 0)
      return usage_error("--sweep cells last --duration-s or --commands, not both");
  } else {
    load.duration_seconds = duration;
    if (load.rate > 0 && load.rate < 1)
      return usage_error("--rate must be at least 1 command per second (or 0 for a closed loop)");
  }
  outcome.options = std::move(parsed);
  return outcome;
}

} // namespace bench
