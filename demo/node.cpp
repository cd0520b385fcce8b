// cqrs-node: one engine process of a cluster on a shared PostgreSQL log, with the order domain. It joins the
// cluster named by the store's schema, serves commands forwarded by the other nodes, and, with --clients, drives
// order commands of its own for --duration-s seconds (cqrs-load --nodes starts several). It reports on stdout, one
// line each, for the programs and tests that watch it:
//   listening NODE HOST:PORT              once joined
//   owned N                               whenever the number of partitions it holds changes
//   started                               when its clients start (with --clients)
//   forwarding                            once it has sent commands to other nodes and run theirs
//   fenced N                              whenever appends refused by the fence (its lease was gone) reach N
//   report {JSON}                         at the end: its commands, the cluster counters, the read-model check
// Accepted commands go to --acks FILE as they are answered ("command-id position version"), so that what a node
// acknowledged can be checked against the log even after it was killed.
#include "demo/order_engine.hpp"
#include "demo/signals.hpp"
#include "demo/store_choice.hpp"
#include "demo/verification.hpp"
#include "domain/orders.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace {

struct node_settings {
  std::string store = "";
  cqrs::cluster_options cluster{};
  std::int64_t lease_ms = 3000;
  int clients = 0;
  int orders_per_client = 20;
  double duration_s = 0;
  std::string acks;
  /// Start the clients once this many nodes are live and this node holds its share of the partitions.
  std::size_t wait_for_nodes = 1;
};

/// What one node's clients did.
struct client_totals {
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  /// Commands answered unavailable and sent again with the same id.
  std::uint64_t resent = 0;
  std::map<std::string, std::uint64_t> rejections;
  std::vector<double> latencies_us;
  /// The same latencies split by where the command ran: here, or forwarded to its owner (attributed by the node's
  /// forward counter, exact with one client per node).
  std::vector<double> local_us;
  std::vector<double> forwarded_us;
};

void say(const std::string& line) {
  static std::mutex mutex;
  std::lock_guard lock{mutex};
  std::cout << line << std::endl;
}

/// Appends accepted commands to the acknowledgement file, one write each, so that a kill loses none written.
class ack_file {
public:
  explicit ack_file(const std::string& path) {
    if (!path.empty())
      descriptor_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
  }
  ~ack_file() {
    if (descriptor_ >= 0)
      ::close(descriptor_);
  }
  bool usable(const std::string& path) const { return path.empty() || descriptor_ >= 0; }
  void record(const std::string& command_id, const cqrs::accepted& outcome) {
    if (descriptor_ < 0 || outcome.events == 0)
      return;
    auto line = command_id + " " + std::to_string(outcome.position) + " " + std::to_string(outcome.version) + "\n";
    (void)!::write(descriptor_, line.data(), line.size());
  }

private:
  int descriptor_ = -1;
};

/// One closed-loop client: places its orders, then adds items to them in turn, until `stop`.
void run_client(cqrs::engine& engine, const std::string& node, int client, int orders, std::atomic<bool>& stop,
                ack_file& acks, client_totals& totals) {
  std::mt19937_64 random{static_cast<std::uint64_t>(client) * 7919 + std::hash<std::string>{}(node)};
  std::vector<bool> placed(static_cast<std::size_t>(orders), false);
  for (std::uint64_t sequence = 0; !stop.load(); ++sequence) {
    auto order = static_cast<int>(sequence % static_cast<std::uint64_t>(orders));
    auto order_id = node + "-c" + std::to_string(client) + "-o" + std::to_string(order);
    orders::command command = placed[order]
                                ? orders::command{orders::add_item{order_id, "sku-" + std::to_string(random() % 50),
                                                                   1 + static_cast<std::int64_t>(random() % 3), 250}}
                                : orders::command{orders::place_order{order_id, "customer-" + std::to_string(client)}};
    cqrs::command_options ids{node + "-c" + std::to_string(client) + "-" + std::to_string(sequence), {}};
    auto started = std::chrono::steady_clock::now();
    auto forwarded_before = engine.cluster()->forwarded_out;
    while (true) {
      auto result = std::visit([&](auto one) { return engine.send(std::move(one), ids).get(); }, command);
      if (result) {
        placed[order] = true;
        ++totals.accepted;
        acks.record(ids.command_id, *result);
        break;
      }
      if (result.error().code == cqrs::errc::unavailable && !stop.load()) {
        ++totals.resent; // its outcome is unknown: the same id learns it, and never runs it twice
        continue;
      }
      ++totals.rejected;
      ++totals.rejections[result.error().code];
      if (totals.rejections[result.error().code] == 1)
        std::cerr << "cqrs-node " << node << ": " << result.error().code << ": " << result.error().message << "\n";
      break;
    }
    auto took = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count();
    totals.latencies_us.push_back(took);
    (engine.cluster()->forwarded_out != forwarded_before ? totals.forwarded_us : totals.local_us).push_back(took);
  }
}

double percentile(std::vector<double>& values, double share) {
  if (values.empty())
    return 0;
  auto index = static_cast<std::size_t>(share * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return values[index];
}

int run(node_settings settings) {
  // First: the store's threads must start with SIGINT and SIGTERM blocked, so that the signal thread gets them.
  static std::atomic<bool> stop{false};
  demo::handle_interrupts("cqrs-node: stopping\n", [] { stop.store(true); });
  auto choice = demo::parse_store_choice(settings.store, std::nullopt);
  if (!choice || choice->postgres_conninfo.empty()) {
    std::cerr << "cqrs-node: --store must be postgres:CONNINFO (the cluster's shared log)"
              << (choice ? "" : ": " + choice.error()) << "\n";
    return 2;
  }
  auto store = demo::open_store(*choice);
  if (!store) {
    std::cerr << "cqrs-node: " << store.error() << "\n";
    return 1;
  }
  settings.cluster.lease_duration = std::chrono::milliseconds{settings.lease_ms};
  cqrs::options options;
  options.store = *store;
  options.cluster = settings.cluster;
  std::unique_ptr<cqrs::engine> engine;
  try {
    engine = std::make_unique<cqrs::engine>(options);
  } catch (const std::exception& error) {
    std::cerr << "cqrs-node: " << error.what() << "\n";
    return 1;
  }
  demo::add_order_domain(*engine);
  auto joined = *engine->cluster();
  say("listening " + joined.node + " " + joined.address);

  ack_file acks{settings.acks};
  if (!acks.usable(settings.acks)) {
    std::cerr << "cqrs-node: cannot write " << settings.acks << "\n";
    return 1;
  }
  // Reports what moves: the partitions held and the appends the fence refused.
  std::atomic<bool> watching{true};
  std::thread watcher{[&] {
    std::size_t owned = ~std::size_t{0};
    std::uint64_t fenced = 0;
    bool forwarding = false;
    while (watching.load()) {
      auto now = *engine->cluster();
      if (!forwarding && now.forwarded_out > 0 && now.forwarded_in > 0) {
        forwarding = true;
        say("forwarding");
      }
      if (now.owned.size() != owned)
        say("owned " + std::to_string(owned = now.owned.size()));
      if (now.fenced_appends != fenced)
        say("fenced " + std::to_string(fenced = now.fenced_appends));
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
  }};

  if (settings.clients > 0) {
    auto partitions = settings.cluster.partitions;
    auto nodes = settings.wait_for_nodes;
    auto balanced = [&](const cqrs::cluster_status& status) {
      return status.live_nodes >= nodes && status.owned.size() >= partitions / nodes
             && status.owned.size() <= (partitions + nodes - 1) / nodes;
    };
    if (!engine->wait_for_cluster(balanced, std::chrono::seconds{60}))
      std::cerr << "cqrs-node: the cluster did not reach " << nodes << " balanced nodes in 60 s; starting anyway\n";
    say("started");
  }
  auto started = std::chrono::steady_clock::now();
  std::vector<client_totals> totals(static_cast<std::size_t>(settings.clients));
  {
    std::vector<std::jthread> clients;
    for (int client = 0; client < settings.clients; ++client)
      clients.emplace_back([&, client] {
        run_client(*engine, joined.node, client, settings.orders_per_client, stop, acks, totals[client]);
      });
    auto deadline = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                std::chrono::duration<double>(settings.duration_s));
    while (!stop.load() && (settings.duration_s <= 0 || std::chrono::steady_clock::now() < deadline))
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    stop.store(true);
  }
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  client_totals all;
  for (auto& one : totals) {
    all.accepted += one.accepted;
    all.rejected += one.rejected;
    all.resent += one.resent;
    for (const auto& [code, count] : one.rejections)
      all.rejections[code] += count;
    all.latencies_us.insert(all.latencies_us.end(), one.latencies_us.begin(), one.latencies_us.end());
    all.local_us.insert(all.local_us.end(), one.local_us.begin(), one.local_us.end());
    all.forwarded_us.insert(all.forwarded_us.end(), one.forwarded_us.begin(), one.forwarded_us.end());
  }
  auto verified = demo::verify_engine(*engine);
  auto status = *engine->cluster();
  watching.store(false);
  watcher.join();

  boost::json::object report;
  report["node"] = status.node;
  report["seconds"] = seconds;
  report["accepted"] = all.accepted;
  report["rejected"] = all.rejected;
  report["resent"] = all.resent;
  boost::json::object codes;
  for (const auto& [code, count] : all.rejections)
    codes[code] = count;
  report["rejections"] = std::move(codes);
  report["commands_per_s"] = seconds > 0 ? static_cast<double>(all.accepted) / seconds : 0.0;
  report["p50_us"] = percentile(all.latencies_us, 0.50);
  report["p99_us"] = percentile(all.latencies_us, 0.99);
  report["local_p50_us"] = percentile(all.local_us, 0.50);
  report["forwarded_p50_us"] = percentile(all.forwarded_us, 0.50);
  report["forwarded_out"] = status.forwarded_out;
  report["forwarded_in"] = status.forwarded_in;
  report["fenced_appends"] = status.fenced_appends;
  report["retries"] = status.retries;
  report["unavailable"] = status.unavailable;
  report["leases_acquired"] = status.leases_acquired;
  report["leases_lost"] = status.leases_lost;
  report["owned"] = status.owned.size();
  report["read_models_match"] = verified.report.verified();
  if (auto difference = verified.report.first_difference())
    report["read_model_difference"] = *difference;
  report["head"] = engine->head();
  engine->shutdown();
  say("report " + boost::json::serialize(report));
  return verified.report.verified() ? 0 : 3;
}

} // namespace

int main(int argc, char** argv) {
  node_settings settings;
  CLI::App app{"One engine process of a cluster on a shared PostgreSQL log (order domain)", "cqrs-node"};
  app.add_option("--store", settings.store, "postgres:CONNINFO of the shared log (schema=NAME picks the cluster)")
    ->required();
  app.add_option("--name", settings.cluster.node_name, "This node's name, unique in the cluster (default HOST:PORT)");
  app.add_option("--host", settings.cluster.host, "The address other nodes reach this one at")
    ->capture_default_str();
  app.add_option("--port", settings.cluster.port, "TCP port for the other nodes; 0 picks a free one")
    ->capture_default_str();
  app.add_option("--partitions", settings.cluster.partitions, "Partitions of the aggregates (the same on every node)")
    ->capture_default_str()
    ->check(CLI::Range(1, 4096));
  app.add_option("--lease-ms", settings.lease_ms, "Partition lease duration in milliseconds")
    ->capture_default_str()
    ->check(CLI::Range(100, 600000));
  app.add_option("--clients", settings.clients, "Closed-loop clients sending order commands from this node (0: serve "
                                                "only)")
    ->capture_default_str()
    ->check(CLI::Range(0, 1024));
  app.add_option("--orders-per-client", settings.orders_per_client, "Orders each client places, then adds items to")
    ->capture_default_str()
    ->check(CLI::Range(1, 100000));
  app.add_option("--duration-s", settings.duration_s, "How long the clients run; 0 until SIGINT or SIGTERM")
    ->capture_default_str()
    ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--wait-for-nodes", settings.wait_for_nodes,
                 "Start the clients once this many nodes are live and the partitions are spread over them")
    ->capture_default_str()
    ->check(CLI::Range(1, 1024));
  app.add_option("--acks", settings.acks, "File to append each acknowledged command to (id, position, version)");
  CLI11_PARSE(app, argc, argv);
  return run(std::move(settings));
}
