// Chooses, opens and recovers the event store of cqrs-demo and cqrs-load.
#include "demo/store_choice.hpp"

#include <algorithm>
#include <cstdio>
#include <future>
#include <random>

namespace demo {

std::string store_choice::describe() const {
  if (!durable())
    return "memory";
  if (!postgres_conninfo.empty())
    return "postgres:" + postgres_conninfo + " (schema=" + postgres_schema + ")";
  return "sqlite:" + sqlite_path + " (synchronous="
         + (synchronous == cqrs::sqlite_synchronous::full ? "full" : "normal")
         + (read_past_damage ? ", reading past damage" : "") + ")";
}

std::expected<store_choice, std::string> parse_store_choice(std::string_view store,
                                                            std::optional<std::string_view> sync,
                                                            bool read_past_damage) {
  store_choice choice;
  constexpr std::string_view sqlite_prefix = "sqlite:";
  constexpr std::string_view postgres_prefix = "postgres:";
  if (store.starts_with(sqlite_prefix)) {
    choice.sqlite_path = std::string{store.substr(sqlite_prefix.size())};
    if (choice.sqlite_path.empty())
      return std::unexpected("--store sqlite:PATH needs a file path after \"sqlite:\"");
  } else if (store.starts_with(postgres_prefix)) {
    auto location = cqrs::parse_postgres_location(store.substr(postgres_prefix.size()));
    if (!location)
      return std::unexpected("--store postgres:CONNINFO needs a connection string after \"postgres:\": "
                             + location.error());
    choice.postgres_conninfo = std::move(location->conninfo);
    choice.postgres_schema = std::move(location->schema);
  } else if (store != "memory") {
    return std::unexpected("--store must be memory, sqlite:PATH or postgres:CONNINFO, got \"" + std::string{store}
                           + "\"");
  }
  if (sync) {
    if (choice.sqlite_path.empty())
      return std::unexpected(std::string{"--sync applies to --store sqlite:PATH only"});
    if (*sync == "normal")
      choice.synchronous = cqrs::sqlite_synchronous::normal;
    else if (*sync != "full")
      return std::unexpected("--sync must be full or normal, got \"" + std::string{*sync} + "\"");
  }
  if (read_past_damage && choice.sqlite_path.empty())
    return std::unexpected(std::string{"--read-past-damage applies to --store sqlite:PATH only"});
  choice.read_past_damage = read_past_damage;
  return choice;
}

std::expected<std::shared_ptr<cqrs::event_store>, std::string> open_store(const store_choice& choice) {
  if (!choice.durable())
    return std::shared_ptr<cqrs::event_store>{};
  if (!choice.postgres_conninfo.empty()) {
    auto opened = cqrs::open_postgres_event_store(choice.postgres_conninfo, {.schema = choice.postgres_schema});
    if (!opened)
      return std::unexpected("cannot open the event store " + choice.describe() + ": " + opened.error().message);
    return std::shared_ptr<cqrs::event_store>{std::move(*opened)};
  }
  auto opened = cqrs::open_sqlite_event_store(
    choice.sqlite_path,
    cqrs::sqlite_options{.synchronous = choice.synchronous, .read_past_damage = choice.read_past_damage});
  if (!opened)
    return std::unexpected("cannot open the event store " + choice.sqlite_path + ": " + opened.error().message);
  return std::shared_ptr<cqrs::event_store>{std::move(*opened)};
}

std::string run_tag(const cqrs::event_store* store) {
  if (!store)
    return {};
  auto head = store->head();
  if (head == 0)
    return {};
  // The head alone already differs from every earlier run that appended anything; the random part keeps two runs
  // that start from one head (the first appended nothing) apart as well.
  std::random_device entropy;
  char random_part[9];
  std::snprintf(random_part, sizeof random_part, "%08x", static_cast<unsigned>(entropy()));
  return "r" + std::to_string(head) + "x" + random_part;
}

recovery_report catch_up_read_models(cqrs::engine& engine, std::chrono::steady_clock::time_point started,
                                     rebuild_display display, std::ostream* out) {
  using clock = std::chrono::steady_clock;
  recovery_report report;
  report.events = engine.head();
  if (report.events == 0)
    return report;
  if (!out)
    display = rebuild_display::none;
  // The rebuild is awaited on the future; the statuses polled meanwhile only feed the display.
  auto caught_up =
    std::async(std::launch::async, [&engine] { return engine.wait_until_caught_up(std::chrono::hours{24}); });
  auto last_line = clock::now();
  auto show = [&](bool final_line) {
    std::uint64_t applied = report.events;
    for (const auto& status : engine.statuses())
      applied = std::min<std::uint64_t>(applied, status.checkpoint);
    if (final_line)
      applied = report.events;
    auto percent = 100.0 * static_cast<double>(applied) / static_cast<double>(report.events);
    char line[160];
    std::snprintf(line, sizeof line, "rebuilding read models: %llu / %llu events (%.0f%%)",
                  static_cast<unsigned long long>(applied), static_cast<unsigned long long>(report.events), percent);
    if (display == rebuild_display::live_line)
      *out << '\r' << line << (final_line ? "\n" : "") << std::flush;
    else
      *out << line << '\n' << std::flush;
  };
  while (caught_up.wait_for(std::chrono::milliseconds{200}) != std::future_status::ready) {
    if (display == rebuild_display::live_line)
      show(false);
    else if (display == rebuild_display::lines && clock::now() - last_line >= std::chrono::seconds{1}) {
      show(false);
      last_line = clock::now();
    }
  }
  auto outcome = caught_up.get();
  report.seconds = std::chrono::duration<double>(clock::now() - started).count();
  if (!outcome) {
    report.error = "the read models did not catch up with the log: " + outcome.error().message;
    if (display == rebuild_display::live_line)
      *out << '\n';
    return report;
  }
  report.events_per_s = report.seconds > 0 ? static_cast<double>(report.events) / report.seconds : 0;
  if (display != rebuild_display::none)
    show(true);
  return report;
}

} // namespace demo
