// cqrs-demo: the command line of the order simulation and of script mode; the logic lives in cqrs_demo_lib.
#include "demo/cli_checks.hpp"
#include "demo/order_engine.hpp"
#include "demo/report.hpp"
#include "demo/script.hpp"
#include "demo/signals.hpp"
#include "demo/simulation.hpp"
#include "demo/store_choice.hpp"

#include <CLI/CLI.hpp>

#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <exception>
#include <fstream>
#include <iostream>

namespace {

// Exit codes: what a shell script calling the demo can rely on.
constexpr int exit_verified = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

constexpr const char* description =
  "cqrs-demo: a seeded simulation of an order business on the CQRS engine. Client threads place orders, add and\n"
  "remove items, have the warehouse ship them or cancel them; about 2% of the commands break a rule on purpose.\n"
  "After some commands a client reads its own write back, half the time at once (`any`: possibly stale, and the\n"
  "demo counts how often) and half the time with read-your-writes (at_least(reply position): never stale).\n"
  "At the end every read model is compared with one rebuilt from the event log.";

constexpr const char* footer =
  R"(Determinism: one seed (with the same --customers and --orders) sends the same commands, gets the same
accepted and rejected counts and ends in the same read models, whatever --threads and --clients: each client
owns its customers and their orders and decides each command from its own replies only. With several clients
the log positions follow the commit order across clients, so positions and the "latest" orders of each status
differ from run to run (the summary's first digest leaves them out); with --clients 1 everything is identical.
--duration-s stops the run at a point in time, so a bounded run is not deterministic.

Script mode (--script FILE, or - for stdin): one JSON object per line, answered by one JSON line each:
  {"type":"PlaceOrder","order_id":"o-1","customer_id":"c-1"}
  {"type":"AddItem","order_id":"o-1","sku":"apple","qty":2,"unit_price_cents":150}
  {"type":"RemoveItem","order_id":"o-1","sku":"apple"}
  {"type":"ShipOrder","order_id":"o-1"}
  {"type":"CancelOrder","order_id":"o-1","reason":"changed my mind"}      ("reason" is optional)
  {"query":"get_order_summary","order_id":"o-1"}
  {"query":"get_customer_stats","customer_id":"c-1"}
  {"query":"list_orders_by_status","status":"placed"}                    (placed, shipped or cancelled)
  {"query":"top_products"}
Replies: {"line":N,"type":...,"accepted":true,"version":V,"position":P}, or "accepted":false with "code" and
"message"; {"line":N,"query":...,"answer":...}. A query reads the script's own writes (the default,
"consistency":"read_your_writes") or answers at once ("consistency":"any"). A bad line (malformed JSON, unknown
type, missing or mistyped field, over 64 KiB, nested too deep) gets {"line":N,"error":"line N: ..."}, sends
nothing, and the script goes on. Blank lines are skipped silently. A count goes to stderr at the end.

Stores: --store sqlite:PATH keeps the log in a SQLite file (created when missing; --sync full, the default,
fsyncs each commit); --store postgres:CONNINFO in a PostgreSQL database (libpq's connection string; the tables,
created when missing, are in schema cqrs unless a schema=NAME in CONNINFO names another; several processes may
share it; ./cqrs.sh pg starts a throwaway server). An existing log is recovered: the read models rebuild from it (with progress) and the
summary reports the recovery rate; the new run's customer and order ids then start with a run tag taken from the
log's head, so they never meet the aggregates already stored. A log that is not an event log exits with 1.

Exit status: 0 verified (script: no bad line), 1 not verified (script: some line was bad, or the store cannot be
opened), 2 bad options.)";

// The terminal's width, or 0 when it cannot be told.
std::size_t terminal_width() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0)
    return size.ws_col;
  return 0;
}

int run_script_mode(const std::string& path, std::size_t threads, std::shared_ptr<cqrs::event_store> store) {
  std::ifstream file;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      std::cerr << "cqrs-demo: cannot open script " << path << '\n';
      return exit_usage;
    }
  }
  std::istream& in = path == "-" ? std::cin : file;
  auto started = std::chrono::steady_clock::now();
  cqrs::engine engine{cqrs::options{.store = std::move(store), .tuning = {.threads = threads}}};
  demo::add_order_domain(engine);
  // The replies go to stdout, so the rebuild's progress stays off it; a failed rebuild shows in the queries.
  if (auto recovery = demo::catch_up_read_models(engine, started, demo::rebuild_display::none, nullptr);
      recovery.error)
    std::cerr << "cqrs-demo: " << *recovery.error << '\n';
  auto summary = demo::run_script(in, std::cout, engine);
  std::cerr << "script: " << summary.lines << " lines: " << summary.commands << " commands (" << summary.accepted
            << " accepted, " << summary.rejected << " rejected), " << summary.queries << " queries, "
            << summary.errors << " bad lines, " << summary.blank << " blank\n";
  return summary.errors == 0 && summary.failed_queries == 0 ? exit_verified : exit_failed;
}

} // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  // The simulation's clients stop before their next command on a first SIGINT or SIGTERM, and the run is verified.
  static std::atomic<bool> interrupted{false};
  demo::handle_interrupts("cqrs-demo: interrupted; stopping the clients and verifying (a second signal ends at once)\n",
                          [] { interrupted.store(true); });
  demo::simulation_options options;
  options.interrupt = &interrupted;
  double duration_seconds = 0;
  bool json = false;
  std::string script;
  std::string store_text = "memory";
  std::string sync_text;

  demo::store_choice chosen_store;

  CLI::App app{description, "cqrs-demo"};
  app.footer(footer);
  app.get_formatter()->column_width(30);
  // Ranges are checked by validators without a description, so the help shows "N" rather than the validator.
  auto range = [](auto lowest, auto highest) { return demo::within(lowest, highest); };
  auto* seed = app.add_option("--seed", options.seed, "Seed of every customer's random generator")
                 ->type_name("N")
                 ->capture_default_str()
                 ->check(demo::not_negative<std::uint64_t>());
  auto* customers = app.add_option("--customers", options.customers, "Simulated customers, 1..1000000")
                      ->type_name("N")
                      ->capture_default_str()
                      ->check(range(std::size_t{1}, std::size_t{1'000'000}));
  auto* orders = app.add_option("--orders", options.orders, "Orders in all, spread over the customers, 0..1000000")
                   ->type_name("N")
                   ->capture_default_str()
                   ->check(range(std::size_t{0}, std::size_t{1'000'000}));
  app.add_option("--threads", options.engine_threads, "Engine worker threads, 1..256")
    ->type_name("N")
    ->capture_default_str()
    ->check(range(std::size_t{1}, std::size_t{256}));
  auto* clients = app.add_option("--clients", options.clients,
                                 "Concurrent client threads, 1..256 and at most --customers")
                    ->type_name("N")
                    ->capture_default_str()
                    ->check(range(std::size_t{1}, std::size_t{256}));
  auto* duration = app.add_option("--duration-s", duration_seconds,
                                  "Stop sending commands after this many seconds, 0.001..86400 (then not deterministic)")
                     ->type_name("SECONDS")
                     ->check(range(0.001, 86'400.0));
  auto* json_flag = app.add_flag("--json", json, "End the output with one line: a JSON object of the results");
  app.add_option("--script", script, "Run the commands and queries of a JSON-lines FILE (- for stdin) instead")
    ->type_name("FILE")
    ->check(demo::file_name());
  app.add_option("--store", store_text, demo::store_option_help)->type_name("SPEC")->capture_default_str();
  auto* sync = app.add_option("--sync", sync_text, demo::sync_option_help)->type_name("MODE");
  bool read_past_damage = false;
  app.add_flag("--read-past-damage", read_past_damage, demo::read_past_damage_help);
  // The simulation's options mean nothing to a script; refused by hand rather than with CLI11's excludes(), which
  // would clutter every line of the help.
  auto simulation_only = {seed, customers, orders, clients, duration, json_flag};

  try {
    app.parse(argc, argv);
    if (!script.empty())
      for (auto* option : simulation_only)
        if (option->count() > 0)
          throw CLI::ValidationError(option->get_name() + " is an option of the simulation, not of --script");
    if (auto problem = demo::check(options); problem && script.empty())
      throw CLI::ValidationError(*problem);
    auto parsed_store = demo::parse_store_choice(
      store_text, sync->count() > 0 ? std::optional<std::string_view>{sync_text} : std::nullopt, read_past_damage);
    if (!parsed_store)
      throw CLI::ValidationError(parsed_store.error());
    chosen_store = *parsed_store;
  } catch (const CLI::ParseError& error) {
    // CLI11 exits 0 for --help and its own codes for errors; a usage error here is always 2.
    auto code = app.exit(error);
    return code == 0 ? exit_verified : exit_usage;
  }

  auto store = demo::open_store(chosen_store);
  if (!store) {
    std::cerr << "cqrs-demo: " << store.error() << '\n';
    return exit_failed;
  }
  try {
    if (!script.empty())
      return run_script_mode(script, options.engine_threads, *store);
    options.store = *store;
    if (auto tag = demo::run_tag(options.store.get()); !tag.empty())
      options.id_prefix = tag + "-";

    options.duration = std::chrono::milliseconds{static_cast<std::int64_t>(std::llround(duration_seconds * 1000))};
    bool terminal = isatty(STDOUT_FILENO) == 1;
    options.progress = terminal ? demo::progress_style::live_line : demo::progress_style::periodic_lines;
    options.progress_output = &std::cout;
    options.line_width = terminal ? terminal_width() : 0;
    std::cout << "cqrs-demo: seed " << options.seed << ", " << options.customers << " customers, " << options.orders
              << " orders, " << options.clients << " client threads, " << options.engine_threads
              << " engine threads" << (options.duration.count() ? ", bounded by --duration-s" : "") << ", store "
              << chosen_store.describe();
    if (!options.id_prefix.empty())
      std::cout << " (holds " << options.store->head() << " events: this run's ids start with " << options.id_prefix
                << ")";
    std::cout << '\n';
    std::cout.flush();

    auto result = demo::run_simulation(options);
    demo::print_summary(std::cout, result);
    if (json)
      std::cout << boost::json::serialize(demo::to_json(result)) << '\n';
    std::cout.flush();
    return demo::exit_code_after_interrupts(result.passed() ? exit_verified : exit_failed);
  } catch (const std::exception& error) {
    std::cout.flush();
    std::cerr << "cqrs-demo: " << error.what() << '\n';
    return exit_failed;
  }
}
