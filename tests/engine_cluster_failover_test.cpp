// Cluster nodes as separate processes (build/bin/cqrs-node) on the test server: one killed with SIGKILL under load
// (through cqrs-load --nodes 3), and one paused with SIGSTOP past its lease, whose appends the fence then refuses.
#include "child_process.hpp"
#include "postgres_test_support.hpp"
#include "waiting.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace test_support;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr double failover_margin_s = 10.0;
#else
constexpr double failover_margin_s = 2.0;
#endif

/// A program started with its stdout on a pipe, read line by line with a deadline.
class program {
public:
  explicit program(std::vector<std::string> arguments) {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0)
      throw std::runtime_error("cannot make a pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(ends[1], STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& argument : arguments)
        argv.push_back(argument.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(ends[1]);
    output_ = ends[0];
  }
  program(const program&) = delete;
  program& operator=(const program&) = delete;
  ~program() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGKILL);
      reap(pid_);
    }
    ::close(output_);
  }

  /// The next line that starts with `prefix` (earlier lines are kept in `seen`); throws after `limit`.
  std::string line_starting(const std::string& prefix, std::chrono::milliseconds limit = default_limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (true) {
      for (auto end = pending_.find('\n'); end != std::string::npos; end = pending_.find('\n')) {
        auto line = pending_.substr(0, end);
        pending_.erase(0, end + 1);
        seen.push_back(line);
        if (line.starts_with(prefix))
          return line;
      }
      pollfd ready{output_, POLLIN, 0};
      if (::poll(&ready, 1, milliseconds_until(deadline)) <= 0)
        throw timed_out("a line \"" + prefix + "...\" from the program", limit);
      char buffer[4096];
      auto got = ::read(output_, buffer, sizeof buffer);
      if (got <= 0)
        throw std::runtime_error("the program ended before it printed \"" + prefix + "...\"");
      pending_.append(buffer, static_cast<std::size_t>(got));
    }
  }

  void signal(int number) { ::kill(pid_, number); }

  std::optional<int> exit_code(std::chrono::milliseconds limit = child_limit) {
    reaped_ = true;
    return exit_code_within(pid_, limit);
  }

  std::vector<std::string> seen;

private:
  pid_t pid_ = -1;
  int output_ = -1;
  bool reaped_ = false;
  std::string pending_;
};

boost::json::object json_after(const std::string& line, const std::string& prefix) {
  return boost::json::parse(line.substr(prefix.size())).as_object();
}

std::int64_t integer(const boost::json::object& object, const char* key) {
  return object.at(key).to_number<std::int64_t>();
}

/// Every stream of the log has versions 1..n, and its events' lease epochs never go down along them (a second
/// writer after a takeover would append under an older epoch than the events before it).
void check_one_writer_per_stream(const std::string& schema) {
  auto conninfo = postgres_conninfo();
  CHECK(run_sql(conninfo, "SELECT count(*) FROM (SELECT 1 FROM " + schema + ".events GROUP BY stream_type, "
                          "stream_id HAVING min(version) <> 1 OR max(version) <> count(*)) s") == "0");
  CHECK(run_sql(conninfo, "SELECT count(*) FROM (SELECT lease_epoch < lag(lease_epoch) OVER (PARTITION BY "
                          "stream_type, stream_id ORDER BY version) AS down FROM " + schema + ".events) s WHERE down")
        == "0");
  CHECK(run_sql(conninfo, "SELECT count(*) FROM " + schema + ".events WHERE lease_epoch = 0") == "0");
}

/// The acknowledged commands of an ack file ("command-id position version") missing from the log.
int missing_acknowledgements(const std::string& schema, const std::string& file) {
  std::ifstream in{file};
  std::string id;
  std::string position;
  std::string version;
  std::string ids;
  std::string positions;
  int count = 0;
  while (in >> id >> position >> version) {
    ids += (ids.empty() ? "" : ",") + id;
    positions += (positions.empty() ? "" : ",") + position;
    ++count;
  }
  REQUIRE(count > 0);
  return std::stoi(run_sql(postgres_conninfo(), "SELECT count(*) FROM unnest('{" + ids + "}'::text[], '{" + positions
                                                  + "}'::bigint[]) a(id, p) WHERE NOT EXISTS (SELECT 1 FROM " + schema
                                                  + ".events e WHERE e.position = a.p AND e.command_id = a.id)"));
}

std::string temporary_folder() {
  char pattern[] = "/tmp/cqrs-cluster-test-XXXXXX";
  if (!::mkdtemp(pattern))
    throw std::runtime_error("cannot make a temporary folder");
  return pattern;
}

} // namespace

TEST_CASE("a node killed with SIGKILL under load: its partitions are served again within the lease and a margin, "
          "and the log holds every acknowledged command with one writer per stream",
          "[cluster][postgres][failover]") {
  auto schema = fresh_schema("killed");
  auto folder = temporary_folder();
  constexpr int lease_ms = 1500;
  program load{{CQRS_LOAD_PROGRAM, "--nodes", "3", "--clients", "3", "--duration-s", "6", "--kill-node-after-s", "2",
                "--lease-ms", std::to_string(lease_ms), "--partitions", "32", "--acks-dir", folder, "--json",
                "--store", "postgres:" + postgres_conninfo() + " schema=" + schema}};
  auto report = json_after(load.line_starting("{", std::chrono::seconds{120}), "");
  CHECK(load.exit_code() == 0);
  INFO(boost::json::serialize(report));
  CHECK(report.at("verified").as_bool());
  // Served again within the lease, one heartbeat (a quarter of it) and a stated margin: 2 s for a loaded machine,
  // 10 s in sanitizer builds, whose nodes run several times slower.
  REQUIRE(report.contains("failover_s"));
  CHECK(report.at("failover_s").to_number<double>() < lease_ms / 1000.0 * 1.25 + failover_margin_s);
  CHECK(integer(report, "acknowledged") > 0);
  CHECK(integer(report, "acknowledged_missing") == 0);
  CHECK(report.at("read_models_match").as_bool());
  // The killed node's acknowledgements are in the log too: checked here on its own.
  CHECK(missing_acknowledgements(schema, folder + "/node-3.acks") == 0);
  check_one_writer_per_stream(schema);
  std::filesystem::remove_all(folder);
}

TEST_CASE("a node paused past its lease: another takes over, its appends are refused by the fence, and it rejoins "
          "as a follower of those partitions",
          "[cluster][postgres][failover]") {
  auto schema = fresh_schema("paused");
  auto folder = temporary_folder();
  auto node = [&](const std::string& name) {
    return std::make_unique<program>(std::vector<std::string>{
      CQRS_NODE_PROGRAM, "--store", "postgres:" + postgres_conninfo() + " schema=" + schema, "--name", name,
      "--lease-ms", "1000", "--partitions", "16", "--clients", "2", "--wait-for-nodes", "2", "--acks",
      folder + "/" + name + ".acks"});
  };
  auto paused = node("paused");
  auto other = node("other");
  // Both running, connected to each other, each forwarding to the other.
  paused->line_starting("forwarding");
  other->line_starting("forwarding");

  paused->signal(SIGSTOP);
  // The other node takes every partition once the paused one's leases expired.
  other->line_starting("owned 16");
  // While the paused node's heartbeat waits on its member row, it cannot learn that it lost its leases: resumed,
  // its clients' commands run against the leases it still believes it holds, and the fence refuses their appends.
  {
    std::unique_ptr<PGconn, decltype(&PQfinish)> lock{PQconnectdb(postgres_conninfo().c_str()), &PQfinish};
    REQUIRE(PQstatus(lock.get()) == CONNECTION_OK);
    auto exec = [&](const std::string& sql) {
      std::unique_ptr<PGresult, decltype(&PQclear)> done{PQexec(lock.get(), sql.c_str()), &PQclear};
      auto status = PQresultStatus(done.get());
      REQUIRE((status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK));
    };
    exec("BEGIN");
    exec("SELECT 1 FROM " + schema + ".cluster_members WHERE node = 'paused' FOR UPDATE");
    paused->signal(SIGCONT);
    paused->line_starting("fenced ");
    exec("COMMIT");
  }
  // Its heartbeat goes on: it learns that the leases are the other's and sends the refused commands there; the
  // partitions are spread again once the other sees it live.
  paused->line_starting("owned 8");

  other->signal(SIGTERM);
  paused->signal(SIGTERM);
  auto other_report = json_after(other->line_starting("report "), "report ");
  auto paused_report = json_after(paused->line_starting("report "), "report ");
  CHECK(other->exit_code() == 0);
  CHECK(paused->exit_code() == 0);
  INFO(boost::json::serialize(paused_report));
  CHECK(integer(paused_report, "fenced_appends") > 0);
  CHECK(integer(paused_report, "leases_lost") > 0);
  // The commands the fence refused went on to the new owner and were answered there.
  CHECK(integer(other_report, "forwarded_in") > 0);
  CHECK(integer(paused_report, "forwarded_out") > 0);
  CHECK(paused_report.at("read_models_match").as_bool());
  CHECK(other_report.at("read_models_match").as_bool());
  CHECK(missing_acknowledgements(schema, folder + "/paused.acks") == 0);
  CHECK(missing_acknowledgements(schema, folder + "/other.acks") == 0);
  check_one_writer_per_stream(schema);
  std::filesystem::remove_all(folder);
}
