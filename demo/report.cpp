// The end-of-run summary and JSON of a simulation.
#include "demo/report.hpp"

#include <cmath>
#include <iomanip>
#include <sstream>

namespace demo {
namespace {

// How many of the latest orders of each status the summary lists.
constexpr std::size_t latest_shown = 5;

std::string hexadecimal(std::uint64_t value) {
  std::ostringstream text;
  text << std::hex << std::setw(16) << std::setfill('0') << value;
  return text.str();
}

double percent(std::uint64_t part, std::uint64_t whole) {
  return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

double per_second(std::uint64_t count, std::chrono::duration<double> elapsed) {
  return elapsed.count() > 0 ? static_cast<double>(count) / elapsed.count() : 0.0;
}

void print_read_models(std::ostream& out, const order_read_models& models, std::size_t clients) {
  out << "\nTop products (units shipped):\n";
  auto top = models.products.model.answer(readmodels::get_top_products{});
  if (top.empty())
    out << "  (nothing shipped)\n";
  for (std::size_t rank = 0; rank < top.size(); ++rank)
    out << "  " << std::setw(2) << rank + 1 << ". " << std::left << std::setw(12) << top[rank].sku << std::right
        << std::setw(8) << top[rank].quantity << '\n';

  out << "\nOrders by status (latest first";
  out << (clients > 1 ? "; with several clients the latest follow the commit order, so they differ between runs):\n"
                      : "):\n");
  for (auto status : {orders::order_status::placed, orders::order_status::shipped, orders::order_status::cancelled}) {
    auto listing = models.statuses.model.answer(readmodels::list_orders_by_status{status});
    out << "  " << std::left << std::setw(10) << orders::to_string(status) << std::right << std::setw(8)
        << listing.count;
    if (!listing.latest_order_ids.empty())
      out << "   latest:";
    for (std::size_t index = 0; index < listing.latest_order_ids.size() && index < latest_shown; ++index)
      out << ' ' << listing.latest_order_ids[index];
    out << '\n';
  }
}

} // namespace

void print_summary(std::ostream& out, const simulation_result& result) {
  const auto& options = result.options;
  auto flags = out.flags();
  out << std::fixed << std::setprecision(2);
  out << "\nSimulated " << options.orders << " orders of " << options.customers << " customers: seed "
      << options.seed << ", " << options.clients << " client threads, " << options.engine_threads
      << " engine threads\n";
  out << "Clients ran " << result.elapsed.count() << " s: " << result.commands << " commands ("
      << std::setprecision(0) << per_second(result.commands, result.elapsed) << "/s), " << result.accepted
      << " accepted, " << result.rejected << " rejected (" << result.deliberate << " broke a rule on purpose), "
      << result.events << " events, " << result.queries << " queries\n";
  if (result.recovery.events > 0)
    out << "Recovered the store: the read models rebuilt from " << result.recovery.events << " events in "
        << std::setprecision(2) << result.recovery.seconds << " s (" << std::setprecision(0)
        << result.recovery.events_per_s << " events/s)\n";
  if (result.stopped_by_signal)
    out << "Stopped by a signal before every order was done; the orders sent so far were answered and are "
           "verified below.\n";
  if (result.stopped_by_duration)
    out << "Stopped by --duration-s before every order was done: how far a bounded run gets depends on the "
           "machine, so it is not deterministic.\n";

  out << "\nRejections by rule:\n";
  if (result.rejections_by_code.empty())
    out << "  (none)\n";
  for (const auto& [code, count] : result.rejections_by_code)
    out << "  " << std::left << std::setw(26) << code << std::right << std::setw(6) << count << '\n';
  out << "  replies other than the rules predict: " << result.unexpected_replies << '\n';

  if (result.read_models)
    print_read_models(out, *result.read_models, options.clients);

  out << std::setprecision(1);
  out << "\nReads of the client's own last write, right after its reply:\n";
  out << "  any               " << std::setw(7) << result.any_reads << " reads, " << std::setw(6)
      << result.stale_reads << " stale (" << percent(result.stale_reads, result.any_reads)
      << "%): the projection had not applied the write yet\n";
  out << "  read-your-writes  " << std::setw(7) << result.ryw_reads << " reads, " << std::setw(6)
      << result.ryw_violations << " stale (" << percent(result.ryw_violations, result.ryw_reads)
      << "%): at_least(reply position) waits for it\n";
  if (result.failed_queries)
    out << "  queries without an answer: " << result.failed_queries << '\n';
  const auto& lag = result.visibility_lag;
  out << "Visibility lag (command reply to the answer of its at_least read), " << lag.samples
      << " samples: p50 " << lag.p50_us << " us, p90 " << lag.p90_us << " us, p99 " << lag.p99_us << " us, max "
      << lag.max_us << " us\n";
  out << "Peak projection lag seen (events behind the log head):";
  for (const auto& peak : result.peak_lags)
    out << ' ' << peak.name << ' ' << peak.lag << (&peak == &result.peak_lags.back() ? "" : ",");
  out << '\n';
  out << "Read models digest: " << hexadecimal(result.digest) << " without positions (same for one seed), "
      << hexadecimal(result.exact_digest) << " with positions (same for one seed with one client)\n";

  out << "\nVerification: caught up, then each read model compared with one rebuilt from the log (" << result.events
      << " events):\n";
  if (result.verification.engine_error)
    out << "  " << *result.verification.engine_error << '\n';
  for (const auto& check : result.verification.checks)
    out << "  " << std::left << std::setw(18) << check.read_model << std::right
        << (check.difference ? "differs: " + *check.difference : std::string{"equal"}) << '\n';
  if (auto failure = result.failure())
    out << "NOT verified: " << *failure << '\n';
  else
    out << "verified\n";
  out.flags(flags);
}

boost::json::object to_json(const simulation_result& result) {
  const auto& options = result.options;
  // Parentheses, not braces, around a null: boost::json::value{nullptr} would be an array holding a null.
  auto null = boost::json::value(nullptr);
  boost::json::object json;
  json["seed"] = options.seed;
  json["customers"] = options.customers;
  json["orders"] = options.orders;
  json["clients"] = options.clients;
  json["threads"] = options.engine_threads;
  json["duration_ms"] = options.duration.count() > 0 ? boost::json::value(options.duration.count()) : null;
  json["stopped_by_duration"] = result.stopped_by_duration;
  json["stopped_by_signal"] = result.stopped_by_signal;
  json["elapsed_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(result.elapsed).count();
  json["commands"] = result.commands;
  json["accepted"] = result.accepted;
  json["rejected"] = result.rejected;
  json["deliberate"] = result.deliberate;
  json["unexpected_replies"] = result.unexpected_replies;
  boost::json::object rejections;
  for (const auto& [code, count] : result.rejections_by_code)
    rejections[code] = count;
  json["rejections_by_code"] = std::move(rejections);
  json["events"] = result.events;
  json["recovery_events"] = result.recovery.events;
  json["recovery_events_per_s"] = static_cast<std::uint64_t>(std::llround(result.recovery.events_per_s));
  json["queries"] = result.queries;
  json["any_reads"] = result.any_reads;
  json["stale_reads"] = result.stale_reads;
  json["ryw_reads"] = result.ryw_reads;
  json["ryw_violations"] = result.ryw_violations;
  json["failed_queries"] = result.failed_queries;
  json["lag_samples"] = result.visibility_lag.samples;
  json["lag_p50_us"] = result.visibility_lag.p50_us;
  json["lag_p90_us"] = result.visibility_lag.p90_us;
  json["lag_p99_us"] = result.visibility_lag.p99_us;
  json["lag_max_us"] = result.visibility_lag.max_us;
  json["digest"] = hexadecimal(result.digest);
  json["exact_digest"] = hexadecimal(result.exact_digest);
  json["verified"] = result.passed();
  auto failure = result.failure();
  json["failure"] = failure ? boost::json::value(*failure) : null;
  return json;
}

} // namespace demo
