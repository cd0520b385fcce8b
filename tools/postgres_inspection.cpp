// cqrs-store's commands on a PostgreSQL schema, read-only through libpq; see postgres_inspection.hpp.
#include "tools/postgres_inspection.hpp"

#include "actors/postgres_event_store.hpp"
#include "tools/inspection_support.hpp"

#include <libpq-fe.h>

#include <boost/json/parser.hpp>

#include <charconv>
#include <functional>
#include <string_view>
#include <vector>

namespace store_inspection {
namespace {

using result = std::unique_ptr<PGresult, decltype(&PQclear)>;

/// Runs a statement with text parameters; the result, or the server's message.
std::pair<result, std::optional<std::string>> query(const postgres_log& log, const std::string& sql,
                                                    const std::vector<std::string>& params = {}) {
  std::vector<const char*> values;
  for (const auto& param : params)
    values.push_back(param.c_str());
  result rows{PQexecParams(log.connection(), sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                           nullptr, nullptr, 0),
              &PQclear};
  auto status = rows ? PQresultStatus(rows.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
    return {std::move(rows), std::nullopt};
  std::string message = rows ? PQresultErrorMessage(rows.get()) : PQerrorMessage(log.connection());
  while (!message.empty() && message.back() == '\n')
    message.pop_back();
  return {std::move(rows), message};
}

std::string_view text(const PGresult* rows, int row, int column) {
  return {PQgetvalue(rows, row, column), static_cast<std::size_t>(PQgetlength(rows, row, column))};
}

std::int64_t integer(const PGresult* rows, int row, int column) {
  auto value = text(rows, row, column);
  std::int64_t number = 0;
  std::from_chars(value.data(), value.data() + value.size(), number);
  return number;
}

/// The first column of the first row of a query, as a number, or why it could not be read.
std::pair<std::int64_t, std::optional<std::string>> single_integer(const postgres_log& log, const std::string& sql) {
  auto [rows, error] = query(log, sql);
  if (error)
    return {0, error};
  return {PQntuples(rows.get()) > 0 ? integer(rows.get(), 0, 0) : 0, std::nullopt};
}

/// Runs the query through a cursor, 10,000 rows at a time, calling `each` for every row until it returns false or
/// `interrupted` is set. The error, if the query failed.
std::optional<std::string> for_each_row(const postgres_log& log, const std::string& sql,
                                        const std::vector<std::string>& params,
                                        const std::function<bool(const PGresult*, int)>& each,
                                        const std::atomic<bool>& interrupted) {
  if (auto [declared, error] = query(log, "DECLARE inspected NO SCROLL CURSOR FOR " + sql, params); error)
    return error;
  std::optional<std::string> failure;
  bool going = true;
  while (going && !interrupted.load(std::memory_order_relaxed)) {
    auto [rows, error] = query(log, "FETCH 10000 FROM inspected");
    if (error) {
      failure = error;
      break;
    }
    auto count = PQntuples(rows.get());
    for (int row = 0; row < count && going && !interrupted.load(std::memory_order_relaxed); ++row)
      going = each(rows.get(), row);
    if (count < 10000)
      break;
  }
  query(log, "CLOSE inspected");
  return failure;
}

/// The schema version when the schema is an event log this tool reads; prints why not and returns nothing
/// otherwise (as a problem when `problems` is given).
std::optional<std::int64_t> check_store_info(const postgres_log& log, problem_list* problems, std::ostream& errors) {
  auto report = [&](const std::string& message) {
    if (problems)
      problems->add("header", message);
    else
      errors << "cqrs-store: " << message << '\n';
  };
  auto [rows, error] = query(log, "SELECT name, value FROM " + log.schema() + ".store_info");
  if (error) {
    report(log.name() + " holds no event log (" + *error + ")");
    return std::nullopt;
  }
  std::string application;
  std::int64_t version = 0;
  for (int row = 0; row < PQntuples(rows.get()); ++row) {
    if (text(rows.get(), row, 0) == "application")
      application = text(rows.get(), row, 1);
    else if (text(rows.get(), row, 0) == "schema_version")
      version = integer(rows.get(), row, 1);
  }
  if (application != "cqrs-engine") {
    report(log.name() + " is not a cqrs event log (its store_info names \"" + application + "\")");
    return std::nullopt;
  }
  if (version < 1 || version > cqrs::postgres_schema_version) {
    report(log.name() + " has event log schema version " + std::to_string(version) + "; this tool reads version "
           + std::to_string(cqrs::postgres_schema_version));
    return std::nullopt;
  }
  return version;
}

const std::string event_columns = "position, stream_type, stream_id, version, type_name, "
                                  "(extract(epoch FROM recorded) * 1000000)::bigint, command_id, correlation_id, "
                                  "payload::text";

} // namespace

postgres_log::postgres_log(const std::string& conninfo, const std::string& schema)
    : name_("postgres:" + conninfo + " schema=" + schema), schema_(schema) {
  for (char character : schema)
    if (!((character >= 'a' && character <= 'z') || (character >= '0' && character <= '9') || character == '_')) {
      error_ = "schema name \"" + schema + "\" is not one the store uses (lower-case letters, digits, underscores)";
      return;
    }
  connection_ = PQconnectdb(conninfo.c_str());
  if (PQstatus(connection_) != CONNECTION_OK) {
    std::string message = PQerrorMessage(connection_);
    while (!message.empty() && message.back() == '\n')
      message.pop_back();
    error_ = "cannot connect to " + name_ + ": " + message;
    return;
  }
  PQsetNoticeProcessor(connection_, [](void*, const char*) {}, nullptr);
  // One snapshot for every query, read-only: the log as of one moment, never changed by the tool.
  if (auto [began, error] = query(*this, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); error)
    error_ = "cannot begin a read-only transaction on " + name_ + ": " + *error;
}

postgres_log::~postgres_log() {
  if (connection_)
    PQfinish(connection_);
}

int run_stats(const postgres_log& log, const output& to) {
  auto version = check_store_info(log, nullptr, to.errors);
  if (!version)
    return exit_problems;
  const auto& schema = log.schema();
  std::pair<std::int64_t, std::optional<std::string>> figures[] = {
    single_integer(log, "SELECT count(*) FROM " + schema + ".events"),
    single_integer(log, "SELECT count(*) FROM (SELECT DISTINCT stream_type, stream_id FROM " + schema + ".events) s"),
    single_integer(log, "SELECT position FROM " + schema + ".log_head"),
    single_integer(log, "SELECT count(*) FROM " + schema + ".commands"),
    single_integer(log, "SELECT count(*) FROM " + schema + ".snapshots"),
    single_integer(log, "SELECT count(*) FROM " + schema + ".dead_letters"),
    single_integer(log, "SELECT pg_total_relation_size('" + schema + ".events')"),
  };
  for (const auto& [value, error] : figures)
    if (error) {
      to.errors << "cqrs-store: reading " << log.name() << " failed: " << *error << '\n';
      return exit_problems;
    }
  to.out << "database: " << log.name() << '\n'
         << "events table size: " << figures[6].first << " bytes (with its indexes)\n"
         << "schema version: " << *version << '\n'
         << "events: " << figures[0].first << '\n'
         << "streams: " << figures[1].first << '\n'
         << "last position: " << figures[2].first << '\n'
         << "recorded command ids: " << figures[3].first << '\n'
         << "snapshots: " << figures[4].first << '\n'
         << "dead letters: " << figures[5].first << '\n';
  return exit_ok;
}

int run_dump(const postgres_log& log, const std::string& stream, std::int64_t from, const output& to) {
  if (!check_store_info(log, nullptr, to.errors))
    return exit_problems;
  std::string sql = "SELECT " + event_columns + " FROM " + log.schema() + ".events WHERE position >= $1";
  std::vector<std::string> params{std::to_string(from)};
  if (!stream.empty()) {
    auto only = split_stream(stream);
    sql += " AND stream_type = $2 AND stream_id = $3";
    params.push_back(only->first);
    params.push_back(only->second);
  }
  boost::json::parser parser;
  auto error = for_each_row(
    log, sql + " ORDER BY position", params,
    [&](const PGresult* rows, int row) {
      to.out << event_line(stored_event{integer(rows, row, 0), text(rows, row, 1), text(rows, row, 2),
                                        integer(rows, row, 3), text(rows, row, 4), integer(rows, row, 5),
                                        text(rows, row, 6), text(rows, row, 7), text(rows, row, 8)},
                           parser)
             << '\n';
      return true;
    },
    to.interrupted);
  if (error) {
    to.errors << "cqrs-store: reading " << log.name() << " failed: " << *error << '\n';
    return exit_problems;
  }
  return exit_ok;
}

int run_verify(const postgres_log& log, const std::string& ack_log, const output& to) {
  problem_list problems{to.out};
  if (!check_store_info(log, &problems, to.errors)) {
    to.out << log.name() << ": FAILED (" << problems.total() << " problem)\n";
    return exit_problems;
  }
  const auto& schema = log.schema();
  auto read_failed = [&](const std::string& what, const std::optional<std::string>& error) {
    if (error)
      problems.add("read", "reading " + what + " of " + log.name() + " failed: " + *error);
  };

  event_checker events{problems};
  std::int64_t last_position = 0;
  read_failed("the events", for_each_row(
                              log, "SELECT position, type_name, payload::text FROM " + schema + ".events ORDER BY "
                                   "position",
                              {},
                              [&](const PGresult* rows, int row) {
                                last_position = integer(rows, row, 0);
                                events.check(last_position, text(rows, row, 1), text(rows, row, 2));
                                return true;
                              },
                              to.interrupted));
  // The head is what followers read up to: one behind the last event would hide it, one beyond would be a
  // position no event has.
  auto [head, head_error] = single_integer(log, "SELECT position FROM " + schema + ".log_head WHERE id = 1");
  read_failed("the head", head_error);
  if (!head_error && !to.interrupted.load() && head != last_position)
    problems.add("head", "log_head is at position " + std::to_string(head) + ", but the last event is at "
                           + std::to_string(last_position));

  stream_checker streams{problems};
  read_failed("the streams", for_each_row(
                               log, "SELECT stream_type, stream_id, version, position FROM " + schema
                                      + ".events ORDER BY stream_type, stream_id, version",
                               {},
                               [&](const PGresult* rows, int row) {
                                 streams.check(text(rows, row, 0), text(rows, row, 1), integer(rows, row, 2),
                                               integer(rows, row, 3));
                                 return true;
                               },
                               to.interrupted));

  std::int64_t snapshots = 0;
  read_failed("the snapshots",
              for_each_row(log,
                           "SELECT s.stream_type, s.stream_id, s.version, coalesce((SELECT max(e.version) FROM "
                             + schema + ".events e WHERE e.stream_type = s.stream_type AND e.stream_id = "
                                        "s.stream_id), 0) FROM "
                             + schema + ".snapshots s ORDER BY 1, 2",
                           {},
                           [&](const PGresult* rows, int row) {
                             ++snapshots;
                             if (integer(rows, row, 2) > integer(rows, row, 3))
                               problems.add("snapshot", "the snapshot of " + std::string{text(rows, row, 0)} + "/"
                                                          + std::string{text(rows, row, 1)} + " (version "
                                                          + std::to_string(integer(rows, row, 2))
                                                          + ") is beyond its stream's last version "
                                                          + std::to_string(integer(rows, row, 3))
                                                          + " (the engine passes over it and replays the stream)");
                             return true;
                           },
                           to.interrupted));

  // A recorded command id answers a re-sent command: its positions must hold its own events.
  read_failed("the recorded command ids",
              for_each_row(log,
                           "SELECT c.command_id, c.first_position, c.last_position, count(e.position), "
                           "count(e.position) FILTER (WHERE e.command_id = c.command_id) FROM "
                             + schema + ".commands c LEFT JOIN " + schema
                             + ".events e ON e.position BETWEEN c.first_position AND c.last_position GROUP BY 1, 2, "
                               "3 ORDER BY 2",
                           {},
                           [&](const PGresult* rows, int row) {
                             auto span = integer(rows, row, 2) - integer(rows, row, 1) + 1;
                             if (integer(rows, row, 3) != span || integer(rows, row, 4) != span)
                               problems.add("command", "recorded command " + std::string{text(rows, row, 0)}
                                                         + " names positions " + std::to_string(integer(rows, row, 1))
                                                         + " to " + std::to_string(integer(rows, row, 2))
                                                         + ", which do not all hold events of that command");
                             return true;
                           },
                           to.interrupted));

  std::int64_t acknowledged = 0;
  if (!ack_log.empty()) {
    auto listed = read_acknowledgements(ack_log, problems, to.interrupted);
    acknowledged = static_cast<std::int64_t>(listed.size());
    // Looked up 10,000 at a time.
    for (std::size_t start = 0; start < listed.size() && !to.interrupted.load(); start += 10000) {
      auto end = std::min(listed.size(), start + 10000);
      std::string positions = "{";
      for (auto index = start; index < end; ++index)
        positions += (index == start ? "" : ",") + std::to_string(listed[index].position);
      positions += "}";
      auto [rows, error] = query(log, "SELECT position, command_id FROM " + schema
                                        + ".events WHERE position = ANY($1::bigint[])",
                                 {positions});
      if (error) {
        read_failed("the acknowledged events", error);
        break;
      }
      std::map<std::int64_t, std::string_view> stored;
      for (int row = 0; row < PQntuples(rows.get()); ++row)
        stored.emplace(integer(rows.get(), row, 0), text(rows.get(), row, 1));
      for (auto index = start; index < end; ++index) {
        auto found = stored.find(listed[index].position);
        check_acknowledgement(listed[index],
                              found == stored.end() ? std::nullopt : std::optional<std::string_view>{found->second},
                              problems);
      }
    }
  }

  to.out << log.name() << ": " << events.count() << " events, " << streams.streams() << " streams, " << snapshots
         << " snapshots";
  if (!ack_log.empty())
    to.out << ", " << acknowledged << " acknowledgements";
  if (to.interrupted.load()) {
    to.out << ": INTERRUPTED after those, " << problems.total() << " problems so far\n";
    return exit_problems;
  }
  if (problems.total() == 0) {
    to.out << ": ok\n";
    return exit_ok;
  }
  to.out << ": FAILED (" << problems.total() << " problems)\n";
  return exit_problems;
}

int run_dead_letters(const postgres_log& log, const output& to) {
  if (!check_store_info(log, nullptr, to.errors))
    return exit_problems;
  auto error = for_each_row(
    log,
    "SELECT projection, position, type_name, reason, (extract(epoch FROM recorded) * 1000000)::bigint FROM "
      + log.schema() + ".dead_letters ORDER BY projection, position",
    {},
    [&](const PGresult* rows, int row) {
      to.out << dead_letter_line(text(rows, row, 0), integer(rows, row, 1), text(rows, row, 2), text(rows, row, 3),
                                 integer(rows, row, 4))
             << '\n';
      return true;
    },
    to.interrupted);
  if (error) {
    to.errors << "cqrs-store: reading the dead letters of " << log.name() << " failed: " << *error << '\n';
    return exit_problems;
  }
  return exit_ok;
}

} // namespace store_inspection
