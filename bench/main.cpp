// cqrs-load: the command line of the load tester; the logic lives in cqrs_bench (bench/load.hpp).
#include "bench/cli.hpp"
#include "bench/ledger.hpp"
#include "bench/report.hpp"
#include "bench/workload.hpp"
#include "demo/signals.hpp"

#include <exception>
#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
  demo::handle_interrupts("cqrs-load: interrupted; finishing the orders in progress (a second signal ends at once)\n",
                          [] { bench::interrupt_runs(); });
  auto parsed = bench::parse_command_line(argc, argv);
  if (!parsed.options) {
    (parsed.exit_code == bench::exit_verified ? std::cout : std::cerr) << parsed.output;
    return parsed.exit_code;
  }
  auto& request = *parsed.options;
  if (request.ledger) {
    try {
      auto ledger = bench::measure_cost_ledger();
      bench::print_ledger(std::cout, ledger);
      if (request.json)
        std::cout << bench::json_line(ledger_to_json(ledger)) << std::endl;
      return ledger.allocations_counted ? bench::exit_verified : bench::exit_not_verified;
    } catch (const std::exception& error) {
      std::cerr << "cqrs-load: " << error.what() << '\n';
      return bench::exit_not_verified;
    }
  }
  if (request.cluster.nodes > 0) {
    try {
      auto report = bench::run_cluster_load(request.cluster);
      bench::print_cluster_table(std::cout, report);
      if (request.json)
        std::cout << bench::json_line(bench::cluster_report_to_json(request.cluster, report)) << std::endl;
      return report.verified ? bench::exit_verified : bench::exit_not_verified;
    } catch (const std::exception& error) {
      std::cerr << "cqrs-load: " << error.what() << '\n';
      return bench::exit_not_verified;
    }
  }
  auto store = demo::open_store(request.store);
  if (!store) {
    std::cerr << "cqrs-load: " << store.error() << '\n';
    return bench::exit_not_verified;
  }
  request.load.store = *store;
  request.load.store_description = request.store.describe();
  try {
    if (request.sweep) {
      auto rows = bench::run_sweep(request.load, request.sweep_settings);
      bench::print_sweep_table(std::cout, rows);
      std::ofstream csv{request.csv};
      if (!csv) {
        std::cerr << "cqrs-load: cannot write " << request.csv << '\n';
        return bench::exit_usage;
      }
      bench::write_sweep_csv(csv, rows);
      std::cout << "sweep written to " << request.csv << '\n';
      auto json = bench::sweep_to_json(request.load, rows);
      if (request.json)
        std::cout << bench::json_line(json) << std::endl;
      return demo::exit_code_after_interrupts(json["verified"].as_bool() ? bench::exit_verified
                                                                          : bench::exit_not_verified);
    }
    if (request.find_rate) {
      auto search = bench::find_rate(request.load, request.p99_bound_us);
      bench::print_rate_search(std::cout, search);
      if (request.json)
        std::cout << bench::json_line(bench::rate_search_to_json(request.load, search)) << std::endl;
      return demo::exit_code_after_interrupts(search.verified ? bench::exit_verified : bench::exit_not_verified);
    }
    auto report = bench::run_load(request.load);
    bench::print_table(std::cout, report);
    if (request.json)
      std::cout << bench::json_line(bench::to_json(report)) << std::endl;
    return demo::exit_code_after_interrupts(report.verified ? bench::exit_verified : bench::exit_not_verified);
  } catch (const std::exception& error) {
    std::cerr << "cqrs-load: " << error.what() << '\n';
    return bench::exit_not_verified;
  }
}
