// cqrs-load --nodes N (see cluster_load.hpp): node processes, the kill, and the checks of the log.
#include "bench/cluster_load.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

namespace bench {
namespace {

using clock_type = std::chrono::steady_clock;

/// One cqrs-node child: its pid, and what it said on stdout (read by a thread of its own).
struct node_process {
  std::string name;
  pid_t pid = -1;
  int output = -1;
  bool listening = false;
  bool started = false;
  bool ended = false;
  std::size_t owned = 0;
  std::string report_line;
  std::thread reader;
};

class node_group {
public:
  ~node_group() {
    for (auto& node : nodes_)
      if (node->pid > 0 && !reaped_.contains(node->pid)) {
        ::kill(node->pid, SIGKILL);
        ::waitpid(node->pid, nullptr, 0);
      }
    for (auto& node : nodes_)
      if (node->reader.joinable())
        node->reader.join();
  }

  void start(const std::string& program, const std::vector<std::string>& arguments, std::string name) {
    int pipe_ends[2];
    if (::pipe2(pipe_ends, O_CLOEXEC) != 0)
      throw std::runtime_error("cannot make a pipe for a node");
    auto node = std::make_unique<node_process>();
    node->name = std::move(name);
    auto pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("cannot start a node process");
    if (pid == 0) {
      ::dup2(pipe_ends[1], STDOUT_FILENO);
      ::close(pipe_ends[0]);
      ::close(pipe_ends[1]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(program.c_str()));
      for (const auto& argument : arguments)
        argv.push_back(const_cast<char*>(argument.c_str()));
      argv.push_back(nullptr);
      ::execv(program.c_str(), argv.data());
      std::perror("cqrs-load: cannot run cqrs-node");
      ::_exit(127);
    }
    ::close(pipe_ends[1]);
    node->pid = pid;
    node->output = pipe_ends[0];
    auto* raw = node.get();
    nodes_.push_back(std::move(node));
    raw->reader = std::thread([this, raw] { read_lines(*raw); });
  }

  /// Waits until `condition()` holds (checked whenever a node says something); false after `limit`.
  template <class Condition>
  bool wait(Condition condition, std::chrono::milliseconds limit) {
    std::unique_lock lock{mutex_};
    return changed_.wait_for(lock, limit, [&] { return condition(); });
  }

  void kill(node_process& node) {
    ::kill(node.pid, SIGKILL);
    ::waitpid(node.pid, nullptr, 0);
    std::lock_guard lock{mutex_};
    reaped_.insert({node.pid, true});
  }

  /// Waits for every node not killed to exit; their exit codes by name.
  std::map<std::string, int> reap_all() {
    std::map<std::string, int> codes;
    for (auto& node : nodes_) {
      if (reaped_.contains(node->pid))
        continue;
      int status = 0;
      ::waitpid(node->pid, &status, 0);
      reaped_.insert({node->pid, true});
      codes[node->name] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    for (auto& node : nodes_)
      if (node->reader.joinable())
        node->reader.join();
    return codes;
  }

  std::vector<std::unique_ptr<node_process>>& nodes() { return nodes_; }
  std::mutex& mutex() { return mutex_; }

private:
  void read_lines(node_process& node) {
    std::string pending;
    char buffer[4096];
    while (true) {
      auto got = ::read(node.output, buffer, sizeof buffer);
      if (got <= 0)
        break;
      pending.append(buffer, static_cast<std::size_t>(got));
      std::size_t end;
      while ((end = pending.find('\n')) != std::string::npos) {
        auto line = pending.substr(0, end);
        pending.erase(0, end + 1);
        std::lock_guard lock{mutex_};
        if (line.starts_with("listening "))
          node.listening = true;
        else if (line == "started")
          node.started = true;
        else if (line.starts_with("owned "))
          node.owned = std::stoul(line.substr(6));
        else if (line.starts_with("report "))
          node.report_line = line.substr(7);
        changed_.notify_all();
      }
    }
    ::close(node.output);
    std::lock_guard lock{mutex_};
    node.ended = true;
    changed_.notify_all();
  }

  std::vector<std::unique_ptr<node_process>> nodes_;
  std::map<pid_t, bool> reaped_;
  std::mutex mutex_;
  std::condition_variable changed_;
};

std::string program_beside_this_one(const std::string& name) {
  std::error_code error;
  auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? name : (self.parent_path() / name).string();
}

/// The first column of the first row of a query on the log, as a number.
std::uint64_t count_of(PGconn* link, const std::string& sql) {
  std::unique_ptr<PGresult, decltype(&PQclear)> rows{PQexec(link, sql.c_str()), &PQclear};
  if (PQresultStatus(rows.get()) != PGRES_TUPLES_OK || PQntuples(rows.get()) != 1)
    throw std::runtime_error("cannot check the log (" + sql + "): " + PQresultErrorMessage(rows.get()));
  return std::stoull(PQgetvalue(rows.get(), 0, 0));
}

/// Checks the log against the acknowledgement files and for one writer per stream at a time.
void check_log(const cluster_load_options& options, const std::vector<std::string>& ack_files,
               cluster_load_report& report) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> link{PQconnectdb(options.conninfo.c_str()), &PQfinish};
  if (PQstatus(link.get()) != CONNECTION_OK)
    throw std::runtime_error(std::string{"cannot connect to check the log: "} + PQerrorMessage(link.get()));
  auto events = "\"" + options.schema + "\".events";
  // The acknowledgements go in as a temporary table, joined with the log on position and command id.
  std::unique_ptr<PGresult, decltype(&PQclear)> created{
    PQexec(link.get(), "CREATE TEMPORARY TABLE acks (command_id text, position bigint)"), &PQclear};
  if (PQresultStatus(created.get()) != PGRES_COMMAND_OK)
    throw std::runtime_error(std::string{"cannot check the log: "} + PQresultErrorMessage(created.get()));
  for (const auto& file : ack_files) {
    std::ifstream in{file};
    std::string line;
    std::string rows;
    while (std::getline(in, line)) {
      std::istringstream fields{line};
      std::string id;
      std::uint64_t position = 0;
      if (fields >> id >> position)
        rows += id + "\t" + std::to_string(position) + "\n";
    }
    std::unique_ptr<PGresult, decltype(&PQclear)> copy{PQexec(link.get(), "COPY acks FROM STDIN"), &PQclear};
    if (PQresultStatus(copy.get()) != PGRES_COPY_IN
        || PQputCopyData(link.get(), rows.data(), static_cast<int>(rows.size())) != 1
        || PQputCopyEnd(link.get(), nullptr) != 1)
      throw std::runtime_error(std::string{"cannot load the acknowledgements: "} + PQerrorMessage(link.get()));
    while (auto* result = PQgetResult(link.get()))
      PQclear(result);
  }
  report.acknowledged = count_of(link.get(), "SELECT count(*) FROM acks");
  report.acknowledged_missing =
    count_of(link.get(), "SELECT count(*) FROM acks a WHERE NOT EXISTS (SELECT 1 FROM " + events
                           + " e WHERE e.position = a.position AND e.command_id = a.command_id)");
  report.streams = count_of(link.get(), "SELECT count(*) FROM (SELECT DISTINCT stream_type, stream_id FROM " + events
                                          + ") s");
  report.streams_with_gaps =
    count_of(link.get(), "SELECT count(*) FROM (SELECT stream_type, stream_id FROM " + events
                           + " GROUP BY stream_type, stream_id HAVING min(version) <> 1 OR max(version) <> count(*)) s");
  report.epochs_going_down =
    count_of(link.get(), "SELECT count(*) FROM (SELECT lease_epoch < lag(lease_epoch) OVER (PARTITION BY stream_type, "
                         "stream_id ORDER BY version) AS down FROM " + events + ") s WHERE down");
  report.events_without_lease = count_of(link.get(), "SELECT count(*) FROM " + events + " WHERE lease_epoch = 0");
}

double number(const boost::json::object& report, const char* key) {
  const auto* value = report.if_contains(key);
  return value && value->is_number() ? value->to_number<double>() : 0.0;
}

} // namespace

cluster_load_report run_cluster_load(const cluster_load_options& options) {
  cluster_load_report report;
  auto program = options.node_program.empty() ? program_beside_this_one("cqrs-node") : options.node_program;
  report.acks_folder = options.acks_folder;
  if (report.acks_folder.empty()) {
    char pattern[] = "/tmp/cqrs-cluster-load-XXXXXX";
    if (!::mkdtemp(pattern))
      throw std::runtime_error("cannot make a folder for the acknowledgements");
    report.acks_folder = pattern;
  }
  std::filesystem::create_directories(report.acks_folder);
  std::vector<std::string> ack_files;
  node_group group;
  for (std::size_t index = 0; index < options.nodes; ++index) {
    auto name = "node-" + std::to_string(index + 1);
    ack_files.push_back(report.acks_folder + "/" + name + ".acks");
    group.start(program,
                {"--store", "postgres:" + options.conninfo + " schema=" + options.schema, "--name", name,
                 "--lease-ms", std::to_string(options.lease_ms), "--partitions", std::to_string(options.partitions),
                 "--clients", std::to_string(options.clients_per_node), "--duration-s",
                 std::to_string(options.duration_seconds), "--wait-for-nodes", std::to_string(options.nodes),
                 "--acks", ack_files.back()},
                name);
  }
  auto& nodes = group.nodes();
  auto all = [&](auto predicate) {
    return std::all_of(nodes.begin(), nodes.end(), [&](const auto& node) { return predicate(*node); });
  };
  if (!group.wait([&] { return all([](const node_process& node) { return node.started || node.ended; }); },
                  std::chrono::seconds{90}))
    report.problems.push_back("the nodes did not all start their load within 90 s");
  auto load_started = clock_type::now();
  if (options.kill_node_after_seconds > 0 && options.nodes > 1) {
    auto& victim = *nodes.back();
    std::this_thread::sleep_until(load_started + std::chrono::duration_cast<clock_type::duration>(
                                                   std::chrono::duration<double>(options.kill_node_after_seconds)));
    group.kill(victim);
    auto killed_at = clock_type::now();
    // Served again once the survivors hold every partition between them.
    auto served = group.wait(
      [&] {
        std::size_t owned = 0;
        for (const auto& node : nodes)
          if (node.get() != &victim)
            owned += node->owned;
        return owned == options.partitions;
      },
      std::chrono::milliseconds{options.lease_ms * 10});
    if (served)
      report.failover_seconds = std::chrono::duration<double>(clock_type::now() - killed_at).count();
    else
      report.problems.push_back("the survivors did not take over every partition within ten leases");
  }
  auto codes = group.reap_all();
  report.seconds = std::chrono::duration<double>(clock_type::now() - load_started).count();

  report.read_models_match = true;
  double forwarded = 0;
  for (std::size_t index = 0; index < nodes.size(); ++index) {
    auto& node = *nodes[index];
    node_outcome outcome;
    outcome.name = node.name;
    outcome.killed = options.kill_node_after_seconds > 0 && options.nodes > 1 && index + 1 == nodes.size();
    if (!outcome.killed) {
      boost::system::error_code error;
      auto parsed = boost::json::parse(node.report_line, error);
      if (error || !parsed.is_object()) {
        report.problems.push_back(node.name + " gave no report (exit code " + std::to_string(codes[node.name]) + ")");
        report.read_models_match = false;
      } else {
        outcome.report = parsed.as_object();
        report.accepted += static_cast<std::uint64_t>(number(outcome.report, "accepted"));
        forwarded += number(outcome.report, "forwarded_out");
        const auto* match = outcome.report.if_contains("read_models_match");
        report.read_models_match = report.read_models_match && match && match->is_bool() && match->as_bool();
      }
    }
    report.nodes.push_back(std::move(outcome));
  }
  double measured = 0;
  for (const auto& node : report.nodes)
    measured = std::max(measured, number(node.report, "seconds"));
  report.commands_per_s = measured > 0 ? static_cast<double>(report.accepted) / measured : 0;
  report.forwarded_share = report.accepted > 0 ? forwarded / static_cast<double>(report.accepted) : 0;
  try {
    check_log(options, ack_files, report);
  } catch (const std::exception& error) {
    report.problems.push_back(error.what());
  }
  report.verified = report.problems.empty() && report.read_models_match && report.acknowledged_missing == 0
                    && report.streams_with_gaps == 0 && report.epochs_going_down == 0
                    && report.events_without_lease == 0 && report.acknowledged > 0;
  return report;
}

void print_cluster_table(std::ostream& out, const cluster_load_report& report) {
  out << "cluster of " << report.nodes.size() << " nodes on one PostgreSQL log\n";
  out << std::left << std::setw(10) << "node" << std::right << std::setw(12) << "commands/s" << std::setw(12)
      << "p50 us" << std::setw(12) << "p99 us" << std::setw(12) << "forwarded" << std::setw(12) << "served"
      << std::setw(10) << "fenced" << std::setw(10) << "retries" << "\n";
  for (const auto& node : report.nodes) {
    out << std::left << std::setw(10) << node.name << std::right;
    if (node.killed) {
      out << "  killed with SIGKILL\n";
      continue;
    }
    out << std::fixed << std::setprecision(0) << std::setw(12) << number(node.report, "commands_per_s")
        << std::setw(12) << number(node.report, "p50_us") << std::setw(12) << number(node.report, "p99_us")
        << std::setw(12) << number(node.report, "forwarded_out") << std::setw(12)
        << number(node.report, "forwarded_in") << std::setw(10) << number(node.report, "fenced_appends")
        << std::setw(10) << number(node.report, "retries") << "\n";
  }
  out << std::setprecision(0) << "total: " << report.commands_per_s << " commands/s, " << std::setprecision(1)
      << report.forwarded_share * 100 << "% forwarded to their owner\n";
  if (report.failover_seconds)
    out << std::setprecision(2) << "failover: every partition of the killed node served again after "
        << *report.failover_seconds << " s\n";
  out << "log: " << report.acknowledged << " acknowledged commands, " << report.acknowledged_missing
      << " missing; " << report.streams << " streams, " << report.streams_with_gaps << " with gaps, "
      << report.epochs_going_down << " with a second writer; " << report.events_without_lease
      << " events without a lease; read models " << (report.read_models_match ? "equal" : "NOT equal")
      << " to the log on every node\n";
  for (const auto& problem : report.problems)
    out << "problem: " << problem << "\n";
  out << (report.verified ? "verified" : "NOT verified") << "\n";
}

boost::json::object cluster_report_to_json(const cluster_load_options& options, const cluster_load_report& report) {
  boost::json::object json;
  json["mode"] = "cluster";
  json["nodes_started"] = options.nodes;
  json["clients_per_node"] = options.clients_per_node;
  json["lease_ms"] = options.lease_ms;
  json["partitions"] = options.partitions;
  boost::json::array nodes;
  for (const auto& node : report.nodes) {
    boost::json::object entry = node.report;
    entry["name"] = node.name;
    entry["killed"] = node.killed;
    nodes.push_back(std::move(entry));
  }
  json["nodes"] = std::move(nodes);
  json["commands_per_s"] = report.commands_per_s;
  json["accepted"] = report.accepted;
  json["forwarded_share"] = report.forwarded_share;
  if (report.failover_seconds)
    json["failover_s"] = *report.failover_seconds;
  json["acknowledged"] = report.acknowledged;
  json["acknowledged_missing"] = report.acknowledged_missing;
  json["streams"] = report.streams;
  json["streams_with_gaps"] = report.streams_with_gaps;
  json["epochs_going_down"] = report.epochs_going_down;
  json["events_without_lease"] = report.events_without_lease;
  json["read_models_match"] = report.read_models_match;
  json["acks_folder"] = report.acks_folder;
  boost::json::array problems;
  for (const auto& problem : report.problems)
    problems.push_back(boost::json::string{problem});
  json["problems"] = std::move(problems);
  json["verified"] = report.verified;
  return json;
}

} // namespace bench
