// Formatting a load report and a sweep.
#include "bench/report.hpp"

#include <cmath>
#include <cstdio>
#include <string>

namespace bench {
namespace {

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

/// 1234567.8 -> "1,234,568".
std::string grouped(double value) {
  auto digits = std::to_string(static_cast<long long>(std::llround(value)));
  std::string result;
  auto start = digits[0] == '-' ? std::size_t{1} : std::size_t{0};
  for (std::size_t index = 0; index < digits.size(); ++index) {
    if (index > start && (digits.size() - index) % 3 == 0)
      result += ',';
    result += digits[index];
  }
  return result;
}

/// Microseconds as the most readable unit: "850 us", "12.3 ms".
std::string duration_text(double microseconds) {
  if (microseconds >= 10'000)
    return format("%.1f ms", microseconds / 1000);
  if (microseconds >= 1000)
    return format("%.2f ms", microseconds / 1000);
  if (microseconds >= 10)
    return format("%.0f us", microseconds);
  return format("%.1f us", microseconds);
}

std::string latency_line(const latency_summary& latency) {
  return "p50 " + duration_text(latency.p50_us) + "  p90 " + duration_text(latency.p90_us) + "  p99 "
         + duration_text(latency.p99_us) + "  p99.9 " + duration_text(latency.p999_us) + "  max "
         + duration_text(latency.max_us) + "  (mean " + duration_text(latency.mean_us) + ")";
}

void row(std::ostream& out, const std::string& name, const std::string& value) {
  out << "  " << name << std::string(name.size() < 24 ? 24 - name.size() : 1, ' ') << value << '\n';
}

void print_problems(std::ostream& out, const std::vector<std::string>& problems) {
  for (const auto& problem : problems)
    out << "  problem: " << problem << '\n';
}

std::string_view policy_name(cqrs::scheduler_policy policy) {
  return policy == cqrs::scheduler_policy::sharing ? "sharing" : "stealing";
}

/// Commands per second counted until the read side had applied them all: the last reply, plus the catch-up after
/// it (a program whose read models lag still owes that work when its last reply goes out).
double caught_up_rate(double commands, double seconds, double catchup_ms) {
  auto total = seconds + std::max(0.0, catchup_ms) / 1000.0;
  return total > 0 ? commands / total : 0;
}

double round_to(double value, int decimals) {
  auto scale = std::pow(10.0, decimals);
  return std::round(value * scale) / scale;
}

void put_latency(boost::json::object& object, const std::string& prefix, const latency_summary& latency) {
  object[prefix + "p50_us"] = round_to(latency.p50_us, 2);
  object[prefix + "p90_us"] = round_to(latency.p90_us, 2);
  object[prefix + "p99_us"] = round_to(latency.p99_us, 2);
  object[prefix + "p999_us"] = round_to(latency.p999_us, 2);
  object[prefix + "max_us"] = round_to(latency.max_us, 2);
  object[prefix + "mean_us"] = round_to(latency.mean_us, 2);
}

} // namespace

void print_table(std::ostream& out, const load_report& report) {
  const auto& options = report.options;
  out << "cqrs-load: " << to_string(options.workload) << " workload, " << options.clients << " clients, "
      << (options.rate > 0 ? "open loop at " + grouped(options.rate) + " commands/s" : std::string{"closed loop"})
      << ", " << options.threads << " engine threads (" << policy_name(options.policy) << "), commands on "
      << (options.command_dispatch == cqrs::command_dispatch::aggregate_actor ? "aggregate actors" : "the sender")
      << ", consistency "
      << (options.consistency == read_consistency::read_your_writes ? "ryw" : "any") << ", seed " << options.seed
      << '\n';
  if (options.workload == workload_kind::orders)
    row(out, "shape", std::to_string(options.items) + " items per order");
  else
    row(out, "shape",
        std::to_string(options.aggregates) + " orders, add/remove pairs (setup "
          + format("%.2f s", report.setup_seconds) + ")");
  row(out, "commands",
      grouped(static_cast<double>(report.commands)) + " (" + grouped(static_cast<double>(report.accepted))
        + " accepted, " + grouped(static_cast<double>(report.rejected)) + " rejected; "
        + grouped(static_cast<double>(report.invalid_commands)) + " invalid, "
        + grouped(static_cast<double>(report.invalid_rejected)) + " of them rejected)"
        + (report.overloaded == 0 ? std::string{}
                                  : "; " + grouped(static_cast<double>(report.overloaded))
                                      + " refused as overloaded, "
                                      + grouped(static_cast<double>(report.rejected_after_overload))
                                      + " rejected as a consequence, "
                                      + grouped(static_cast<double>(report.orders_dropped))
                                      + " orders dropped after their placing was refused"));
  row(out, "throughput", grouped(report.commands_per_s) + " commands/s over " + format("%.2f s", report.seconds)
                           + (report.interrupted ? " (interrupted by a signal)" : ""));
  row(out, "latency", latency_line(report.latency));
  auto in_flight = format("%.1f", report.mean_in_flight) + " (Little's law: throughput x mean latency)";
  if (options.rate > 0)
    in_flight += ", " + format("%.1f", report.sampled_in_flight) + " sampled"
                 + (report.pacer_waits ? ", pacers waited " + std::to_string(report.pacer_waits) + " times" : "");
  row(out, "in flight", in_flight);
  row(out, "cpu", format("%.2f us", report.cpu_us_per_command) + " per command (process user + system, "
                    + std::to_string(report.engine_workers) + " engine workers, " + std::to_string(report.sending_threads)
                    + (options.rate > 0 ? " pacer" : " driver") + (report.sending_threads == 1 ? " thread)" : " threads)")
                    + (options.rate > 0 ? "; the pacers used " + format("%.2f s", report.pacer_cpu_seconds) + " of "
                                            + format("%.2f s", report.process_cpu_seconds)
                                        : std::string{}));
  if (report.visibility.count > 0) {
    row(out, "visibility",
        "p50 " + duration_text(report.visibility.p50_us) + "  p99 " + duration_text(report.visibility.p99_us) + "  max "
          + duration_text(report.visibility.max_us) + "  (" + grouped(static_cast<double>(report.visibility.count))
          + " samples, ack -> at_least answer)");
    for (const auto& [name, latency] : report.visibility_by_model)
      row(out, "  " + name,
          "p50 " + duration_text(latency.p50_us) + "  p99 " + duration_text(latency.p99_us) + "  max "
            + duration_text(latency.max_us));
  }
  if (report.read_your_writes.count > 0)
    row(out, "read-your-writes",
        latency_line(report.read_your_writes) + ", " + std::to_string(report.ryw_failures) + " stale");
  if (report.after_overload) {
    const auto& recovery = *report.after_overload;
    std::string windows;
    for (std::size_t index = 0; index < recovery.windows.size() && index < 10; ++index)
      windows += (index ? ", " : "") + duration_text(recovery.windows[index].latency.p99_us);
    row(out, "recovery",
        grouped(recovery.rate) + " commands/s for " + format("%.1f s", recovery.seconds) + " after it: "
          + grouped(static_cast<double>(recovery.commands)) + " sent, "
          + grouped(static_cast<double>(recovery.overloaded)) + " refused as overloaded; p99 per 100 ms "
          + windows + (recovery.windows.size() > 10 ? ", ..." : "") + "; steady p99 "
          + duration_text(recovery.steady_p99_us) + "; before the overload p99 "
          + duration_text(recovery.calm_p99_us) + ", worst window " + duration_text(recovery.calm_worst_window_p99_us)
          + "; "
          + (recovery.normal_after_ms >= 0
               ? "normal (p99 within " + duration_text(recovery.normal_bound_us) + ") "
                   + format("%.0f ms", recovery.normal_after_ms) + " after the overload"
               : "not normal again (p99 within " + duration_text(recovery.normal_bound_us) + ") within the phase"));
  }
  row(out, "catch-up",
      report.catchup_ms >= 0 ? format("%.2f ms", report.catchup_ms) + " (last reply -> caught up)"
                             : std::string{"failed"});
  if (report.queries > 0) {
    row(out, "queries",
        grouped(report.queries_per_s) + " queries/s (" + std::to_string(options.clients) + " clients on "
          + std::to_string(options.drivers) + " driver threads, any, answered by "
          + (options.query_dispatch == cqrs::query_dispatch::query_actors ? "query actors" : "the calling thread")
          + ")");
    row(out, "query latency", latency_line(report.query_latency));
  }
  row(out, "peak RSS", format("%.0f MiB", report.peak_rss_mb)
                        + (report.events_appended > 0
                             ? ", " + format("%.0f", report.bytes_per_event) + " bytes per event appended ("
                                 + grouped(static_cast<double>(report.events_appended)) + " events)"
                             : std::string{}));
  row(out, "store", options.store_description);
  if (report.recovery.events > 0)
    row(out, "recovery",
        grouped(static_cast<double>(report.recovery.events)) + " events rebuilt into the read models in "
          + format("%.2f s", report.recovery.seconds) + " (" + grouped(report.recovery.events_per_s) + " events/s)");
  if (!options.ack_log.empty())
    row(out, "ack log", grouped(static_cast<double>(report.acknowledgements)) + " lines appended to " + options.ack_log);
  if (report.statistics)
    row(out, "aggregates",
        grouped(static_cast<double>(report.statistics->live_aggregates)) + " live, "
          + grouped(static_cast<double>(report.statistics->peak_live_aggregates)) + " at peak, "
          + grouped(static_cast<double>(report.statistics->aggregates_passivated)) + " passivated (max live "
          + (options.max_live_aggregates ? grouped(static_cast<double>(options.max_live_aggregates)) : std::string{"none"})
          + ", idle after " + (options.passivate_after.count() ? format("%.0f ms", static_cast<double>(options.passivate_after.count())) : std::string{"never"}) + ")");
  std::string checks;
  for (const auto& check : report.checks)
    checks += (checks.empty() ? "" : ", ") + check.name + (check.difference ? " DIFFERS" : " ok");
  row(out, "read models", checks.empty() ? "none" : checks);
  row(out, "verified", report.verified ? "yes" : "NO");
  auto baseline_line = [&](const baseline_figures& baseline) {
    auto ratio = baseline.commands_per_s > 0 ? report.commands_per_s / baseline.commands_per_s : 0;
    row(out, baseline.name,
        grouped(baseline.commands_per_s) + " commands/s, p99 " + duration_text(baseline.latency.p99_us) + ", in flight "
          + format("%.1f", baseline.mean_in_flight) + ", cpu " + format("%.2f us", baseline.cpu_us_per_command)
          + " per command"
          + (baseline.catchup_ms >= 0 ? ", read side caught up " + duration_text(baseline.catchup_ms * 1000.0) + " later"
                                      : "")
          + " -> engine " + format("%.2fx", ratio)
          + (baseline.verified ? "" : "  (NOT verified)"));
  };
  if (report.raw_caf || report.raw_caf_callbacks || report.crud || report.raw_caf_open_loop)
    out << "baselines (same workload, same invocation):\n";
  if (report.raw_caf_open_loop)
    baseline_line(*report.raw_caf_open_loop);
  if (report.raw_caf)
    baseline_line(*report.raw_caf);
  if (report.raw_caf_callbacks)
    baseline_line(*report.raw_caf_callbacks);
  if (report.crud)
    baseline_line(*report.crud);
  print_problems(out, report.problems);
  if (report.raw_caf)
    print_problems(out, report.raw_caf->problems);
  if (report.raw_caf_callbacks)
    print_problems(out, report.raw_caf_callbacks->problems);
  if (report.crud)
    print_problems(out, report.crud->problems);
  if (report.raw_caf_open_loop)
    print_problems(out, report.raw_caf_open_loop->problems);
}

boost::json::object to_json(const load_report& report) {
  const auto& options = report.options;
  boost::json::object object;
  object["workload"] = std::string{to_string(options.workload)};
  object["clients"] = options.clients;
  object["threads"] = options.threads;
  object["policy"] = std::string{policy_name(options.policy)};
  object["drivers"] = options.drivers;
  object["command_dispatch"] =
    options.command_dispatch == cqrs::command_dispatch::aggregate_actor ? "actors" : "caller";
  object["query_dispatch"] = options.query_dispatch == cqrs::query_dispatch::query_actors ? "actors" : "caller";
  object["projections"] = options.projection_dispatch == cqrs::projection_dispatch::projection_actor   ? "actors"
                          : options.projection_dispatch == cqrs::projection_dispatch::appending_thread ? "appending"
                                                                                                      : "query-helps";
  object["consistency"] = options.consistency == read_consistency::read_your_writes ? "ryw" : "any";
  object["loop"] = options.rate > 0 ? "open" : "closed";
  object["rate"] = options.rate;
  object["seed"] = options.seed;
  if (options.workload == workload_kind::orders)
    object["items"] = options.items;
  else
    object["aggregates"] = options.aggregates;
  object["commands"] = report.commands;
  object["accepted"] = report.accepted;
  object["rejected"] = report.rejected;
  object["invalid_commands"] = report.invalid_commands;
  object["invalid_rejected"] = report.invalid_rejected;
  object["valid_rejected"] = report.valid_rejected;
  object["interrupted"] = report.interrupted;
  object["overloaded"] = report.overloaded;
  object["rejected_after_overload"] = report.rejected_after_overload;
  object["orders_dropped"] = report.orders_dropped;
  object["queries_overloaded"] = report.queries_overloaded;
  object["seconds"] = round_to(report.seconds, 4);
  object["commands_per_s"] = round_to(report.commands_per_s, 0);
  put_latency(object, "", report.latency);
  object["mean_in_flight"] = round_to(report.mean_in_flight, 2);
  object["cpu_us_per_command"] = round_to(report.cpu_us_per_command, 3);
  object["engine_workers"] = report.engine_workers;
  object[options.rate > 0 ? "pacer_threads" : "driver_threads"] = report.sending_threads;
  object["process_cpu_s"] = round_to(report.process_cpu_seconds, 3);
  if (options.rate > 0) {
    object["sampled_in_flight"] = round_to(report.sampled_in_flight, 2);
    object["pacer_cpu_s"] = round_to(report.pacer_cpu_seconds, 3);
  }
  object["visibility_every"] = options.visibility_every;
  object["visibility_samples"] = report.visibility.count;
  object["visibility_p50_us"] = round_to(report.visibility.p50_us, 2);
  object["visibility_p99_us"] = round_to(report.visibility.p99_us, 2);
  object["visibility_max_us"] = round_to(report.visibility.max_us, 2);
  if (report.read_your_writes.count > 0) {
    object["ryw_queries"] = report.read_your_writes.count;
    object["ryw_p99_us"] = round_to(report.read_your_writes.p99_us, 2);
    object["ryw_stale"] = report.ryw_failures;
  }
  if (report.after_overload) {
    const auto& recovery = *report.after_overload;
    boost::json::object phase;
    phase["rate"] = round_to(recovery.rate, 0);
    phase["seconds"] = round_to(recovery.seconds, 3);
    phase["commands"] = recovery.commands;
    phase["accepted"] = recovery.accepted;
    phase["rejected"] = recovery.rejected;
    phase["overloaded"] = recovery.overloaded;
    phase["steady_p99_us"] = round_to(recovery.steady_p99_us, 2);
    phase["calm_p99_us"] = round_to(recovery.calm_p99_us, 2);
    phase["calm_worst_window_p99_us"] = round_to(recovery.calm_worst_window_p99_us, 2);
    phase["normal_bound_us"] = round_to(recovery.normal_bound_us, 2);
    phase["normal_after_ms"] = round_to(recovery.normal_after_ms, 1);
    boost::json::array windows;
    for (const auto& window : recovery.windows)
      windows.push_back(boost::json::object{{"start_ms", round_to(window.start_ms, 1)},
                                            {"answered", window.latency.count},
                                            {"overloaded", window.overloaded},
                                            {"p50_us", round_to(window.latency.p50_us, 2)},
                                            {"p99_us", round_to(window.latency.p99_us, 2)}});
    phase["windows"] = std::move(windows);
    object["after_overload"] = std::move(phase);
  }
  object["catchup_ms"] = round_to(report.catchup_ms, 3);
  object["queries"] = report.queries;
  object["queries_per_s"] = round_to(report.queries_per_s, 0);
  object["query_p99_us"] = round_to(report.query_latency.p99_us, 2);
  object["peak_rss_mb"] = round_to(report.peak_rss_mb, 1);
  object["events_appended"] = report.events_appended;
  object["bytes_per_event"] = round_to(report.bytes_per_event, 1);
  object["store"] = options.store_description;
  object["recovery_events"] = report.recovery.events;
  object["recovery_events_per_s"] = round_to(report.recovery.events_per_s, 0);
  if (!options.ack_log.empty())
    object["acknowledgements"] = report.acknowledgements;
  object["max_live_aggregates"] = options.max_live_aggregates;
  object["engine_max_in_flight"] = options.engine_max_in_flight;
  object["max_queued_per_aggregate"] = options.max_queued_per_aggregate;
  object["max_projection_lag"] = options.max_projection_lag;
  object["passivate_after_ms"] = options.passivate_after.count();
  if (report.statistics) {
    object["live_aggregates"] = report.statistics->live_aggregates;
    object["peak_live_aggregates"] = report.statistics->peak_live_aggregates;
    object["aggregates_passivated"] = report.statistics->aggregates_passivated;
  }
  object["verified"] = report.verified;
  boost::json::array problems;
  for (const auto& problem : report.problems)
    problems.emplace_back(problem);
  object["problems"] = std::move(problems);
  auto engine_caught_up = caught_up_rate(static_cast<double>(report.accepted + report.rejected), report.seconds,
                                         report.catchup_ms);
  object["caught_up_commands_per_s"] = round_to(engine_caught_up, 0);
  auto add_baseline = [&](const std::string& prefix, const std::optional<baseline_figures>& baseline) {
    if (!baseline)
      return;
    object[prefix + "_commands_per_s"] = round_to(baseline->commands_per_s, 0);
    object[prefix + "_p99_us"] = round_to(baseline->latency.p99_us, 2);
    object[prefix + "_mean_in_flight"] = round_to(baseline->mean_in_flight, 2);
    object[prefix + "_cpu_us_per_command"] = round_to(baseline->cpu_us_per_command, 3);
    if (baseline->catchup_ms >= 0) {
      object[prefix + "_catchup_ms"] = round_to(baseline->catchup_ms, 3);
      auto rate = caught_up_rate(static_cast<double>(baseline->commands), baseline->seconds, baseline->catchup_ms);
      object[prefix + "_caught_up_commands_per_s"] = round_to(rate, 0);
      object["ratio_" + prefix + "_caught_up"] = rate > 0 ? round_to(engine_caught_up / rate, 3) : 0.0;
    }
    object[prefix + "_verified"] = baseline->verified;
    object["ratio_" + prefix] =
      baseline->commands_per_s > 0 ? round_to(report.commands_per_s / baseline->commands_per_s, 3) : 0.0;
  };
  add_baseline("raw_caf", report.raw_caf);
  add_baseline("raw_caf_callbacks", report.raw_caf_callbacks);
  add_baseline("crud", report.crud);
  add_baseline("raw_caf_open_loop", report.raw_caf_open_loop);
  if (report.raw_caf_open_loop) {
    const auto& open = *report.raw_caf_open_loop;
    object["raw_caf_open_loop_p999_us"] = round_to(open.latency.p999_us, 2);
    // Above 1: the engine's tail is that much shorter than the hand-written program's at the same rate.
    object["ratio_raw_caf_open_loop_p99"] =
      report.latency.p99_us > 0 ? round_to(open.latency.p99_us / report.latency.p99_us, 3) : 0.0;
  }
  return object;
}

std::string json_line(const boost::json::value& value) {
  switch (value.kind()) {
  case boost::json::kind::object: {
    std::string text = "{";
    for (const auto& member : value.get_object()) {
      if (text.size() > 1)
        text += ',';
      text += boost::json::serialize(boost::json::string(member.key())) + ":" + json_line(member.value());
    }
    return text + "}";
  }
  case boost::json::kind::array: {
    std::string text = "[";
    for (const auto& element : value.get_array()) {
      if (text.size() > 1)
        text += ',';
      text += json_line(element);
    }
    return text + "]";
  }
  case boost::json::kind::double_: {
    auto number = value.get_double();
    if (!std::isfinite(number))
      return "null";
    char text[64];
    std::snprintf(text, sizeof text, "%.15g", number);
    return text;
  }
  default:
    return boost::json::serialize(value);
  }
}

void print_sweep_table(std::ostream& out, const std::vector<sweep_row>& rows) {
  if (rows.empty())
    return;
  out << "sweep: commands/s and p99 per aggregates (rows) x clients (columns); setup = placing the orders\n";
  char cell[64];
  std::snprintf(cell, sizeof cell, "%12s", "aggregates");
  out << cell;
  for (const auto& one : rows.front().cells) {
    std::snprintf(cell, sizeof cell, " | %22s", (std::to_string(one.clients) + " clients").c_str());
    out << cell;
  }
  std::snprintf(cell, sizeof cell, " | %11s | %8s | verified\n", "setup", "peak RSS");
  out << cell;
  for (const auto& current : rows) {
    std::snprintf(cell, sizeof cell, "%12s", grouped(static_cast<double>(current.aggregates)).c_str());
    out << cell;
    for (const auto& one : current.cells) {
      auto text = grouped(one.commands_per_s) + "/s " + duration_text(one.latency.p99_us);
      std::snprintf(cell, sizeof cell, " | %22s", text.c_str());
      out << cell;
    }
    std::snprintf(cell, sizeof cell, " | %9s/s", grouped(current.setup_commands_per_s).c_str());
    out << cell;
    std::snprintf(cell, sizeof cell, " | %4.0f MiB", current.peak_rss_mb);
    out << cell << " | " << (current.verified ? "yes" : "NO") << '\n';
  }
  for (const auto& current : rows)
    for (const auto& problem : current.problems)
      out << "  problem (" << current.aggregates << " aggregates): " << problem << '\n';
}

void write_sweep_csv(std::ostream& out, const std::vector<sweep_row>& rows) {
  out << "aggregates,clients,commands,seconds,commands_per_s,p50_us,p99_us,p999_us,max_us,mean_in_flight,"
         "setup_commands_per_s,peak_rss_mb,cell_correct,row_verified\n";
  for (const auto& current : rows)
    for (const auto& one : current.cells) {
      char line[512];
      std::snprintf(line, sizeof line, "%llu,%llu,%llu,%.4f,%.0f,%.2f,%.2f,%.2f,%.2f,%.2f,%.0f,%.1f,%s,%s\n",
                    static_cast<unsigned long long>(one.aggregates), static_cast<unsigned long long>(one.clients),
                    static_cast<unsigned long long>(one.commands), one.seconds, one.commands_per_s, one.latency.p50_us,
                    one.latency.p99_us, one.latency.p999_us, one.latency.max_us, one.mean_in_flight,
                    current.setup_commands_per_s, current.peak_rss_mb, one.correct ? "true" : "false",
                    current.verified ? "true" : "false");
      out << line;
    }
}

boost::json::object sweep_to_json(const load_options& options, const std::vector<sweep_row>& rows) {
  boost::json::object object;
  object["workload"] = "sweep";
  object["threads"] = options.threads;
  object["policy"] = std::string{policy_name(options.policy)};
  boost::json::array cells;
  bool verified = !rows.empty();
  for (const auto& current : rows) {
    verified = verified && current.verified;
    for (const auto& one : current.cells) {
      boost::json::object cell;
      cell["aggregates"] = one.aggregates;
      cell["clients"] = one.clients;
      cell["commands"] = one.commands;
      cell["commands_per_s"] = round_to(one.commands_per_s, 0);
      put_latency(cell, "", one.latency);
      cell["mean_in_flight"] = round_to(one.mean_in_flight, 2);
      cell["setup_commands_per_s"] = round_to(current.setup_commands_per_s, 0);
      cell["peak_rss_mb"] = round_to(current.peak_rss_mb, 1);
      cells.emplace_back(std::move(cell));
    }
  }
  object["cells"] = std::move(cells);
  object["verified"] = verified;
  return object;
}

} // namespace bench

namespace bench {

void print_rate_search(std::ostream& out, const rate_search& search) {
  out << "rate search: the highest open-loop rate with p99 <= " << duration_text(search.p99_bound_us)
      << " (kept up: at least 95% of the rate achieved)\n";
  row(out, "closed loop", grouped(search.closed_loop_peak_per_s) + " commands/s (the peak searched below)");
  for (const auto& probe : search.probes)
    row(out, grouped(probe.rate_per_s) + "/s",
        grouped(probe.achieved_per_s) + "/s achieved, p50 " + duration_text(probe.latency.p50_us) + "  p99 "
          + duration_text(probe.latency.p99_us) + "  p99.9 " + duration_text(probe.latency.p999_us) + "  "
          + (probe.passed ? "passed" : "failed") + (probe.verified ? "" : " (NOT verified)"));
  auto fraction = search.closed_loop_peak_per_s > 0 ? search.found_rate_per_s / search.closed_loop_peak_per_s : 0;
  row(out, "found", grouped(search.found_rate_per_s) + " commands/s = " + format("%.0f%%", fraction * 100)
                      + " of the closed-loop peak");
  print_problems(out, search.problems);
}

boost::json::object rate_search_to_json(const load_options& options, const rate_search& search) {
  boost::json::object object;
  object["workload"] = std::string{to_string(options.workload)};
  object["clients"] = options.clients;
  object["threads"] = options.threads;
  object["pacer_threads"] = options.pacers;
  object["p99_bound_us"] = round_to(search.p99_bound_us, 1);
  object["closed_loop_peak_per_s"] = round_to(search.closed_loop_peak_per_s, 0);
  object["find_rate_per_s"] = round_to(search.found_rate_per_s, 0);
  object["find_rate_fraction"] = search.closed_loop_peak_per_s > 0
                                   ? round_to(search.found_rate_per_s / search.closed_loop_peak_per_s, 3)
                                   : 0.0;
  boost::json::array probes;
  for (const auto& probe : search.probes) {
    boost::json::object one;
    one["rate_per_s"] = round_to(probe.rate_per_s, 0);
    one["achieved_per_s"] = round_to(probe.achieved_per_s, 0);
    put_latency(one, "", probe.latency);
    one["passed"] = probe.passed;
    probes.emplace_back(std::move(one));
  }
  object["probes"] = std::move(probes);
  boost::json::array problems;
  for (const auto& problem : search.problems)
    problems.emplace_back(problem);
  object["problems"] = std::move(problems);
  object["verified"] = search.verified;
  return object;
}

} // namespace bench
