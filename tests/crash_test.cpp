// cqrs-crash-test: runs cqrs-load on one log (a SQLite file, or a PostgreSQL schema) round after round and kills it
// with SIGKILL mid-load; after every crash, every acknowledged command must be in the log (cqrs-store verify
// --ack-log) and the four order read models rebuilt from the log must equal a fold of it. Exit 0 only when every
// round verified.
//
//   cqrs-crash-test --load PATH --store-tool PATH --dir DIR [--rounds N] [--seed N] [--new-log-every N]
//                   [--postgres CONNINFO | --postgres-state FILE]
//
// Each round recovers the log the rounds before left; with --new-log-every N, every N rounds start on a new log,
// so that a long soak keeps its rounds short (verifying and rebuilding take time in proportion to the log). With
// --postgres the log is schema crash_test of that database (--postgres-state: the connection string is FILE's
// first line, as the test server's state file has it), dropped at the start.
#include "demo/store_choice.hpp"
#include "child_process.hpp"
#include "demo/order_engine.hpp"
#include "demo/verification.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

struct settings {
  std::string load;
  std::string store_tool;
  std::string directory;
  std::uint64_t rounds = 20;
  std::optional<std::uint64_t> seed;
  /// Rounds per log; 0: one log for every round.
  std::uint64_t new_log_every = 0;
  /// The PostgreSQL database to crash on; empty: a SQLite file in `directory`.
  std::string postgres;
};

// The options, or nothing after printing what is wrong.
std::optional<settings> parse(int argc, char** argv) {
  settings chosen;
  for (int index = 1; index < argc; ++index) {
    std::string name = argv[index];
    if (index + 1 >= argc) {
      std::cerr << "cqrs-crash-test: " << name << " needs a value\n";
      return std::nullopt;
    }
    std::string value = argv[++index];
    try {
      if (name == "--load")
        chosen.load = value;
      else if (name == "--store-tool")
        chosen.store_tool = value;
      else if (name == "--dir")
        chosen.directory = value;
      else if (name == "--rounds")
        chosen.rounds = std::stoull(value);
      else if (name == "--seed")
        chosen.seed = std::stoull(value);
      else if (name == "--new-log-every")
        chosen.new_log_every = std::stoull(value);
      else if (name == "--postgres")
        chosen.postgres = value;
      else if (name == "--postgres-state") {
        std::ifstream state{value};
        if (!std::getline(state, chosen.postgres) || chosen.postgres.empty()) {
          std::cerr << "cqrs-crash-test: no connection string in " << value << '\n';
          return std::nullopt;
        }
      }
      else {
        std::cerr << "cqrs-crash-test: unknown option " << name << '\n';
        return std::nullopt;
      }
    } catch (const std::exception&) {
      std::cerr << "cqrs-crash-test: " << name << " needs a number, got " << value << '\n';
      return std::nullopt;
    }
  }
  if (chosen.load.empty() || chosen.store_tool.empty() || chosen.directory.empty() || chosen.rounds == 0) {
    std::cerr << "usage: cqrs-crash-test --load PATH --store-tool PATH --dir DIR [--rounds N>0] [--seed N] "
                 "[--new-log-every N] [--postgres CONNINFO | --postgres-state FILE]\n";
    return std::nullopt;
  }
  return chosen;
}

// Starts `program` with `arguments`, its stdout and stderr going to `output`; the child's pid, or -1.
pid_t start(const std::string& program, const std::vector<std::string>& arguments, const std::string& output) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& argument : arguments)
    argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  pid_t child = fork();
  if (child == 0) {
    int file = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (file >= 0) {
      dup2(file, STDOUT_FILENO);
      dup2(file, STDERR_FILENO);
    }
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  return child;
}

std::uintmax_t size_of(const std::string& path) {
  struct stat info{};
  return ::stat(path.c_str(), &info) == 0 ? static_cast<std::uintmax_t>(info.st_size) : 0;
}

std::string contents(const std::string& path) {
  std::ifstream file{path};
  return {std::istreambuf_iterator<char>{file}, std::istreambuf_iterator<char>{}};
}

// Blocks until the acknowledgement log grows past `before` (inotify: woken by the child's writes), the child ends
// (then reaped, and `child_ended` set), or `limit` passes. True when it grew.
bool wait_for_first_ack(int watch, const std::string& ack_log, std::uintmax_t before, pid_t child,
                        std::chrono::seconds limit, bool& child_ended) {
  auto deadline = steady::now() + limit;
  for (;;) {
    if (size_of(ack_log) > before)
      return true;
    int status = 0;
    if (waitpid(child, &status, WNOHANG) == child) {
      child_ended = true;
      return false;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    if (left <= 0)
      return false;
    // Also wakes up now and then to notice a child that died without writing (inotify does not tell that).
    pollfd ready{watch, POLLIN, 0};
    if (poll(&ready, 1, static_cast<int>(std::min<long long>(left, 100))) > 0) {
      char events[4096];
      (void)!read(watch, events, sizeof events);
    }
  }
}

// Opens the log (a --store SPEC) with an engine and the order domain, lets the read models rebuild from the log and
// compares each with a fold of the log. The first problem, or nothing.
std::optional<std::string> check_read_models(const std::string& spec, std::uint64_t& events) {
  auto choice = demo::parse_store_choice(spec, std::nullopt);
  if (!choice)
    return choice.error();
  auto store = demo::open_store(*choice);
  if (!store)
    return store.error();
  cqrs::engine engine{cqrs::options{.store = *store, .tuning = {.threads = 2}}};
  demo::add_order_domain(engine);
  events = engine.head();
  auto verified = demo::verify_engine(engine);
  return verified.report.first_difference();
}

// Drops the schema and everything in it (a new log); the error, or nothing.
std::optional<std::string> drop_schema(const std::string& conninfo, const std::string& schema) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> link{PQconnectdb(conninfo.c_str()), &PQfinish};
  if (PQstatus(link.get()) != CONNECTION_OK)
    return "cannot connect to " + conninfo + ": " + PQerrorMessage(link.get());
  PQsetNoticeProcessor(link.get(), [](void*, const char*) {}, nullptr);
  std::unique_ptr<PGresult, decltype(&PQclear)> dropped{
    PQexec(link.get(), ("DROP SCHEMA IF EXISTS " + schema + " CASCADE").c_str()), &PQclear};
  if (PQresultStatus(dropped.get()) != PGRES_COMMAND_OK)
    return "cannot drop schema " + schema + ": " + PQresultErrorMessage(dropped.get());
  return std::nullopt;
}

} // namespace

int main(int argc, char** argv) {
  auto chosen = parse(argc, argv);
  if (!chosen)
    return 2;
  std::filesystem::create_directories(chosen->directory);
  auto database = chosen->directory + "/crash.db";
  auto store_spec =
    chosen->postgres.empty() ? "sqlite:" + database : "postgres:" + chosen->postgres + " schema=crash_test";
  auto ack_log = chosen->directory + "/crash.ack";
  // The acknowledgement log is emptied, not removed: the inotify watch below follows its inode.
  auto start_new_log = [&] {
    if (chosen->postgres.empty()) {
      for (const auto* suffix : {"", "-wal", "-shm", "-journal"})
        std::filesystem::remove(database + suffix);
    } else if (auto dropped = drop_schema(chosen->postgres, "crash_test")) {
      std::cerr << "cqrs-crash-test: " << *dropped << '\n';
      std::exit(1);
    }
    std::ofstream empty{ack_log, std::ios::trunc};
  };
  start_new_log();

  auto seed = chosen->seed ? *chosen->seed : std::random_device{}();
  std::cout << "cqrs-crash-test: " << chosen->rounds << " rounds on " << store_spec << ", seed " << seed
            << " (rerun with --seed " << seed << ")" << std::endl;
  std::mt19937_64 random{seed};
  std::uniform_int_distribution<int> crash_after_ms{100, 700};

  int watch = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (watch < 0 || inotify_add_watch(watch, ack_log.c_str(), IN_MODIFY) < 0) {
    std::cerr << "cqrs-crash-test: inotify on " << ack_log << ": " << std::strerror(errno) << '\n';
    return 1;
  }

  auto limit_seconds = test_support::child_limit.count() / 1000;
  auto started = steady::now();
  for (std::uint64_t round = 1; round <= chosen->rounds; ++round) {
    if (chosen->new_log_every > 0 && round > 1 && (round - 1) % chosen->new_log_every == 0)
      start_new_log();
    auto output = chosen->directory + "/load-round-" + std::to_string(round) + ".log";
    auto acks_before = size_of(ack_log);
    auto round_started = steady::now();
    auto child = start(chosen->load,
                       {"--store", store_spec, "--ack-log", ack_log, "--duration-s", "60", "--clients", "64",
                        "--progress", "none", "--query-s", "0", "--seed", std::to_string(round)},
                       output);
    if (child < 0) {
      std::cerr << "round " << round << ": cannot start " << chosen->load << ": " << std::strerror(errno) << '\n';
      return 1;
    }
    bool child_ended = false;
    if (!wait_for_first_ack(watch, ack_log, acks_before, child, std::chrono::seconds{30}, child_ended)) {
      if (!child_ended) {
        kill(child, SIGKILL);
        (void)test_support::exit_code_within(child);
      }
      std::cerr << "round " << round << ": cqrs-load acknowledged nothing within 30 s or ended early; its output:\n"
                << contents(output) << '\n';
      return 1;
    }
    auto first_ack_after = steady::now() - round_started;
    // The crash moment, drawn from the seed: not a synchronisation, the load runs on meanwhile.
    auto delay = crash_after_ms(random);
    std::this_thread::sleep_for(std::chrono::milliseconds{delay});
    kill(child, SIGKILL);
    auto ended = test_support::exit_code_within(child);
    if (!ended) {
      std::cerr << "round " << round << ": cqrs-load did not end within " << limit_seconds << " s of SIGKILL\n";
      return 1;
    }
    if (*ended != 128 + SIGKILL) {
      std::cerr << "round " << round << ": cqrs-load ended with " << *ended << " before the kill; its output:\n"
                << contents(output) << '\n';
      return 1;
    }

    auto verify_started = steady::now();
    auto verify_output = chosen->directory + "/verify-round-" + std::to_string(round) + ".log";
    auto verifier = start(chosen->store_tool, {"verify", "--ack-log", ack_log, store_spec}, verify_output);
    auto verified = verifier < 0 ? std::optional<int>{-1} : test_support::exit_code_within(verifier);
    if (!verified) {
      std::cerr << "round " << round << ": cqrs-store verify did not end within " << limit_seconds
                << " s (killed); its output:\n"
                << contents(verify_output) << '\n';
      return 1;
    }
    if (*verified != 0) {
      std::cerr << "round " << round << ": cqrs-store verify exited " << *verified << ":\n"
                << contents(verify_output) << '\n';
      return 1;
    }
    auto rebuild_started = steady::now();
    std::uint64_t events = 0;
    if (auto problem = check_read_models(store_spec, events)) {
      std::cerr << "round " << round << ": the read models rebuilt from the log disagree with it: " << *problem
                << '\n';
      return 1;
    }
    auto verdict = contents(verify_output);
    while (!verdict.empty() && verdict.back() == '\n')
      verdict.pop_back();
    auto seconds = [](steady::duration elapsed) { return std::chrono::duration<double>(elapsed).count(); };
    std::cout << "round " << round << ": first acknowledgement after " << seconds(first_ack_after) << " s, killed "
              << delay << " ms later; " << verdict << " (" << seconds(rebuild_started - verify_started)
              << " s); read models equal their fold of " << events << " events ("
              << seconds(steady::now() - rebuild_started) << " s)" << std::endl;
  }
  close(watch);
  std::cout << "every round verified in " << std::chrono::duration<double>(steady::now() - started).count() << " s"
            << std::endl;
  return 0;
}
