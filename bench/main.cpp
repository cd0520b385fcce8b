// cqrs-load: the command line of the load tester; the logic lives in cqrs_bench (bench/load.hpp).
#include "bench/cli.hpp"
#include "bench/ledger.hpp"
#include "bench/report.hpp"

#include "bench/workload.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <thread>

namespace {

/// SIGINT and SIGTERM go to one thread (every other thread, started later, inherits them blocked): the first ends
/// the run early and cleanly (the orders in progress finish, the figures and checks are printed, the store is
/// closed), a second ends the process at once.
std::atomic<int> first_signal{0};

void handle_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread{[signals] {
    int received = 0;
    while (sigwait(&signals, &received) == 0) {
      if (first_signal.exchange(received) != 0)
        std::_Exit(128 + received);
      static constexpr char notice[] =
        "cqrs-load: interrupted; finishing the orders in progress (a second signal ends at once)\n";
      (void)!::write(STDERR_FILENO, notice, sizeof notice - 1);
      bench::interrupt_runs();
    }
  }}.detach();
}

/// The exit code: 128 + the signal when one ended the run early, else the run's own.
int exit_code(int code) {
  auto received = first_signal.load();
  return received != 0 ? 128 + received : code;
}

} // namespace

int main(int argc, char** argv) {
  handle_signals();
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
      return exit_code(json["verified"].as_bool() ? bench::exit_verified : bench::exit_not_verified);
    }
    if (request.find_rate) {
      auto search = bench::find_rate(request.load, request.p99_bound_us);
      bench::print_rate_search(std::cout, search);
      if (request.json)
        std::cout << bench::json_line(bench::rate_search_to_json(request.load, search)) << std::endl;
      return exit_code(search.verified ? bench::exit_verified : bench::exit_not_verified);
    }
    auto report = bench::run_load(request.load);
    bench::print_table(std::cout, report);
    if (request.json)
      std::cout << bench::json_line(bench::to_json(report)) << std::endl;
    return exit_code(report.verified ? bench::exit_verified : bench::exit_not_verified);
  } catch (const std::exception& error) {
    std::cerr << "cqrs-load: " << error.what() << '\n';
    return bench::exit_not_verified;
  }
}
