// cqrs-load's command line: options reach the load options; bad values and combinations exit 2 with a clear word.
#include "bench/cli.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace {

bench::parse_outcome parse(const std::vector<const char*>& arguments) {
  std::vector<const char*> argv{"cqrs-load"};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return bench::parse_command_line(static_cast<int>(argv.size()), argv.data());
}

} // namespace

TEST_CASE("options reach the load options") {
  auto parsed =
    parse({"--workload",   "hot",     "--aggregates",  "16",     "--clients",        "512",   "--threads",  "1",
           "--policy",     "sharing", "--consistency", "ryw",    "--seed",           "9",     "--warmup-s", "0.5",
           "--duration-s", "2",       "--baseline",    "--json", "--query-dispatch", "actors",
           "--command-dispatch", "actors"});
  REQUIRE(parsed.options.has_value());
  const auto& load = parsed.options->load;
  CHECK(load.workload == bench::workload_kind::hot);
  CHECK(load.aggregates == 16);
  CHECK(load.clients == 512);
  CHECK(load.threads == 1);
  CHECK(load.policy == cqrs::scheduler_policy::sharing);
  CHECK(load.consistency == bench::read_consistency::read_your_writes);
  CHECK(load.seed == 9);
  CHECK(load.warmup_seconds == Approx(0.5));
  CHECK(load.duration_seconds == Approx(2));
  CHECK(load.baselines);
  CHECK(load.query_dispatch == cqrs::query_dispatch::query_actors);
  CHECK(load.command_dispatch == cqrs::command_dispatch::aggregate_actor);
  CHECK(parsed.options->json);
  CHECK_FALSE(parsed.options->sweep);
}

TEST_CASE("the rate search and its p99 bound reach the command line") {
  auto searched = parse({"--find-rate", "--p99-bound-us", "250"});
  REQUIRE(searched.options.has_value());
  CHECK(searched.options->find_rate);
  CHECK(searched.options->p99_bound_us == Approx(250));
  auto plain = parse({});
  REQUIRE(plain.options.has_value());
  CHECK_FALSE(plain.options->find_rate);
  CHECK(plain.options->p99_bound_us == Approx(1000));
}

TEST_CASE("the defaults are the issue's orders run") {
  auto parsed = parse({});
  REQUIRE(parsed.options.has_value());
  const auto& load = parsed.options->load;
  CHECK(load.workload == bench::workload_kind::orders);
  CHECK(load.orders == 20'000);
  CHECK(load.items == 8);
  CHECK(load.clients == 64);
  CHECK(load.rate == 0);
  CHECK_FALSE(parsed.options->json);
}

TEST_CASE("a sweep takes its grid, its cell length and its CSV file") {
  auto parsed = parse(
    {"--sweep", "--sweep-aggregates", "10,100", "--sweep-clients", "1,8", "--duration-s", "0.5", "--csv", "out.csv"});
  REQUIRE(parsed.options.has_value());
  CHECK(parsed.options->sweep);
  CHECK(parsed.options->sweep_settings.aggregates == std::vector<std::uint64_t>{10, 100});
  CHECK(parsed.options->sweep_settings.clients == std::vector<std::uint64_t>{1, 8});
  CHECK(parsed.options->sweep_settings.cell_seconds == Approx(0.5));
  CHECK(parsed.options->csv == "out.csv");
}

TEST_CASE("read models are chosen by name, or none") {
  auto some = parse({"--read-models", "order_summaries,top_products"});
  REQUIRE(some.options.has_value());
  CHECK(some.options->load.read_models == std::vector<std::string>{"order_summaries", "top_products"});
  CHECK(bench::order_read_model_probes(some.options->load.read_models).size() == 2);

  auto none = parse({"--read-models", "none"});
  REQUIRE(none.options.has_value());
  CHECK(bench::order_read_model_probes(none.options->load.read_models).empty());

  auto all = parse({});
  REQUIRE(all.options.has_value());
  CHECK(bench::order_read_model_probes(all.options->load.read_models).size() == 4);
}

TEST_CASE("help is printed on stdout with exit code 0") {
  auto parsed = parse({"--help"});
  CHECK_FALSE(parsed.options.has_value());
  CHECK(parsed.exit_code == 0);
  CHECK(parsed.output.find("--rate") != std::string::npos);
  CHECK(parsed.output.find("--baseline") != std::string::npos);
}

TEST_CASE("bad option values and combinations are usage errors with exit code 2 naming the option") {
  struct bad_case {
    std::vector<const char*> arguments;
    const char* named;
  };
  for (const auto& [arguments, named] : std::vector<bad_case>{
         {{"--clients", "0"}, "--clients"},
         {{"--clients", "many"}, "--clients"},
         {{"--workload", "cold"}, "--workload"},
         {{"--policy", "fifo"}, "--policy"},
         {{"--consistency", "strong"}, "--consistency"},
         {{"--threads", "0"}, "--threads"},
         {{"--duration-s", "-1"}, "--duration-s"},
         // NaN passes every comparison of a plain range check, and a negative count would wrap.
         {{"--duration-s", "nan"}, "--duration-s"},
         {{"--rate", "nan"}, "--rate"},
         {{"--query-s", "nan"}, "--query-s"},
         {{"--warmup-s", "inf"}, "--warmup-s"},
         {{"--seed", "-1"}, "--seed"},
         {{"--orders", "-5"}, "--orders"},
         {{"--rate", "1e3x"}, "--rate"},
         {{"--ack-log", ""}, "--ack-log"},
         {{"--no-such-option"}, "--no-such-option"},
         {{"--find-rate", "--rate", "1000"}, "--find-rate"},
         {{"--find-rate", "--baseline"}, "--find-rate"},
         {{"--find-rate", "--store", "sqlite:/tmp/cqrs-find-rate.db"}, "--find-rate"},
         {{"--find-rate", "--p99-bound-us", "0"}, "--p99-bound-us"},
         {{"--sweep", "--baseline"}, "--baseline"},
         {{"--sweep", "--rate", "5"}, "--rate"},
         {{"--sweep-clients", "1,x"}, "--sweep-clients"},
         {{"--read-models", "nope"}, "--read-models"},
         {{"--read-models", "none,top_products"}, "--read-models"},
         {{"--consistency", "ryw", "--read-models", "top_products"}, "--read-models"},
         {{"--rate", "1000", "--recovery-s", "1"}, "--recovery-rate"},
         {{"--recovery-s", "1", "--recovery-rate", "100"}, "--rate"},
         {{"--rate", "1000", "--recovery-s", "nan", "--recovery-rate", "100"}, "--recovery-s"},
         {{"--read-past-damage"}, "--read-past-damage"},
       }) {
    auto parsed = parse(arguments);
    INFO("named " << named << ": " << parsed.output);
    CHECK_FALSE(parsed.options.has_value());
    CHECK(parsed.exit_code == 2);
    CHECK(parsed.output.find(named) != std::string::npos);
  }
}
