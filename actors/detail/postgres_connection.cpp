// The PostgreSQL store's connections, text formats and schema (see postgres_connection.hpp).
#include "actors/detail/postgres_connection.hpp"
#include "actors/postgres_event_store.hpp"

#include <charconv>
#include <ctime>
#include <optional>
#include <stdexcept>

namespace cqrs::detail::postgres {
namespace {

/// The schema, in the order of its statements. `log_head` has one row: its row lock serializes committing
/// transactions (see postgres_event_store.hpp), and its position is the log's head. Timestamps are timestamptz
/// (microseconds, as the engine keeps them); payloads jsonb; command ids chosen by senders get their own table.
constexpr std::string_view schema_template = R"sql(
CREATE TABLE @.store_info (
  name text PRIMARY KEY,
  value text NOT NULL
);
CREATE TABLE @.log_head (
  id integer PRIMARY KEY CHECK (id = 1),
  position bigint NOT NULL
);
INSERT INTO @.log_head VALUES (1, 0);
CREATE TABLE @.events (
  position bigint PRIMARY KEY,
  stream_type text NOT NULL,
  stream_id text NOT NULL,
  version bigint NOT NULL,
  type_name text NOT NULL,
  recorded timestamptz NOT NULL,
  command_id text NOT NULL,
  correlation_id text NOT NULL,
  payload jsonb NOT NULL,
  lease_epoch bigint NOT NULL DEFAULT 0,
  UNIQUE (stream_type, stream_id, version)
);
CREATE TABLE @.commands (
  command_id text PRIMARY KEY,
  first_position bigint NOT NULL,
  last_position bigint NOT NULL
);
CREATE TABLE @.snapshots (
  stream_type text NOT NULL,
  stream_id text NOT NULL,
  version bigint NOT NULL,
  format integer NOT NULL,
  state text NOT NULL,
  PRIMARY KEY (stream_type, stream_id)
);
CREATE TABLE @.dead_letters (
  projection text NOT NULL,
  position bigint NOT NULL,
  type_name text NOT NULL,
  reason text NOT NULL,
  recorded timestamptz NOT NULL,
  PRIMARY KEY (projection, position)
);
)sql";

/// The tables of a cluster of engine processes (cluster.hpp): one lease row per partition of the aggregates, whose
/// epoch grows with each new owner, and the members' heartbeats. Created with the schema, and added at open to a
/// schema of version 1.
constexpr std::string_view cluster_tables_template = R"sql(
CREATE TABLE IF NOT EXISTS @.partition_leases (
  partition integer PRIMARY KEY,
  owner text NOT NULL,
  epoch bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS @.cluster_members (
  node text PRIMARY KEY,
  address text NOT NULL,
  heartbeat timestamptz NOT NULL
);
)sql";

/// What else a version 1 schema lacks: the epoch of the partition lease each event was appended under (0: none).
constexpr std::string_view upgrade_from_version_1 =
  "ALTER TABLE @.events ADD COLUMN IF NOT EXISTS lease_epoch bigint NOT NULL DEFAULT 0;";

/// "cqrs-engine" in store_info marks a schema as an event log of this engine.
constexpr std::string_view application = "cqrs-engine";

std::string replace_all(std::string_view text, std::string_view from, const std::string& to) {
  std::string out;
  std::size_t start = 0;
  while (true) {
    auto found = text.find(from, start);
    out.append(text.substr(start, found - start));
    if (found == std::string_view::npos)
      return out;
    out += to;
    start = found + from.size();
  }
}

failure failure_of(PGconn* link, const PGresult* rows) {
  std::string message = rows ? PQresultErrorMessage(rows) : "";
  if (message.empty())
    message = PQerrorMessage(link);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
    message.pop_back();
  const char* field = rows ? PQresultErrorField(rows, PG_DIAG_SQLSTATE) : nullptr;
  std::string state = field ? field : "";
  // An error the server sent has a SQLSTATE; one without is libpq's own (the connection closed, a read failed).
  // Class 08 and the shutdown states (57P01 to 57P03) end the connection too, though libpq may not know it yet.
  bool lost = PQstatus(link) == CONNECTION_BAD || state.empty() || state.starts_with("08")
              || state == "57P01" || state == "57P02" || state == "57P03";
  return failure{message.empty() ? "no answer from the server" : message, lost, state};
}

/// The results of the query sent last, in order, or the first failure among them. Every result is read, also
/// after a failure, so that the connection is ready for the next query.
std::expected<std::vector<result>, failure> remaining_results(PGconn* link) {
  std::vector<result> results;
  std::optional<failure> failed;
  while (auto* raw = PQgetResult(link)) {
    auto one = checked(link, raw);
    if (!one && !failed)
      failed = std::move(one.error());
    else if (one)
      results.push_back(std::move(*one));
  }
  if (!failed && PQstatus(link) == CONNECTION_BAD)
    failed = failure_of(link, nullptr);
  if (failed)
    return std::unexpected(std::move(*failed));
  return results;
}

} // namespace

std::expected<result, failure> checked(PGconn* link, PGresult* raw) {
  result rows{raw};
  auto status = rows ? PQresultStatus(rows.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY)
    return rows;
  return std::unexpected(failure_of(link, rows.get()));
}

std::expected<connection, std::string> connect(const std::string& conninfo) {
  connection link{PQconnectdb(conninfo.c_str())};
  if (!link)
    return std::unexpected("out of memory opening a connection");
  if (PQstatus(link.get()) != CONNECTION_OK) {
    std::string message = PQerrorMessage(link.get());
    while (!message.empty() && message.back() == '\n')
      message.pop_back();
    return std::unexpected(message);
  }
  // The store's own statements are the only ones on its connections: notices (such as "relation already
  // exists, skipping") would only reach stderr.
  PQsetNoticeProcessor(link.get(), [](void*, const char*) {}, nullptr);
  return link;
}

std::expected<result, failure> execute(PGconn* link, const std::string& sql) {
  return checked(link, PQexec(link, sql.c_str()));
}

std::expected<std::vector<result>, failure> execute_each(PGconn* link, const std::string& sql) {
  if (PQsendQuery(link, sql.c_str()) != 1)
    return std::unexpected(failure_of(link, nullptr));
  return remaining_results(link);
}

std::expected<result, failure> execute(PGconn* link, const std::string& sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& param : params)
    values.push_back(param.c_str());
  return checked(link, PQexecParams(link, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                    nullptr, nullptr, 0));
}

std::expected<void, failure> copy_in(PGconn* link, const std::string& sql, std::string_view rows) {
  result started{PQexec(link, sql.c_str())};
  if (!started || PQresultStatus(started.get()) != PGRES_COPY_IN)
    return std::unexpected(failure_of(link, started.get()));
  // Sent in pieces: PQputCopyData takes an int length.
  constexpr std::size_t piece = std::size_t{1} << 30;
  for (std::size_t offset = 0; offset < rows.size(); offset += piece) {
    auto part = rows.substr(offset, piece);
    if (PQputCopyData(link, part.data(), static_cast<int>(part.size())) != 1)
      return std::unexpected(failure_of(link, nullptr));
  }
  if (PQputCopyEnd(link, nullptr) != 1)
    return std::unexpected(failure_of(link, nullptr));
  // The COPY's result, then those of the statements after it.
  auto results = remaining_results(link);
  if (!results)
    return std::unexpected(std::move(results.error()));
  return {};
}

std::int64_t integer_value(const PGresult* rows, int row, int column) {
  auto text = value(rows, row, column);
  std::int64_t number = 0;
  std::from_chars(text.data(), text.data() + text.size(), number);
  return number;
}

void append_copy_field(std::string& row, std::string_view text) {
  for (char character : text) {
    switch (character) {
      case '\\': row += "\\\\"; break;
      case '\t': row += "\\t"; break;
      case '\n': row += "\\n"; break;
      case '\r': row += "\\r"; break;
      default: row += character;
    }
  }
}

std::string quoted(PGconn* link, std::string_view text) {
  std::unique_ptr<char, decltype(&PQfreemem)> escaped{PQescapeLiteral(link, text.data(), text.size()), &PQfreemem};
  if (!escaped)
    throw std::runtime_error(std::string{"cannot quote a value for PostgreSQL: "} + PQerrorMessage(link));
  return escaped.get();
}

std::string text_array(const std::vector<std::string_view>& values) {
  std::string literal = "{";
  for (std::size_t index = 0; index < values.size(); ++index) {
    if (index > 0)
      literal += ',';
    literal += '"';
    for (char character : values[index]) {
      if (character == '"' || character == '\\')
        literal += '\\';
      literal += character;
    }
    literal += '"';
  }
  literal += '}';
  return literal;
}

std::string timestamp_text(std::int64_t microseconds_since_epoch) {
  auto seconds = microseconds_since_epoch / 1'000'000;
  auto micros = microseconds_since_epoch % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    --seconds;
  }
  std::time_t time = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char text[64];
  auto length = std::snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", utc.tm_year + 1900,
                              utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                              static_cast<long long>(micros));
  return std::string(text, static_cast<std::size_t>(length));
}

names::names(const std::string& name)
    : schema('"' + name + '"'), events(schema + ".events"), commands(schema + ".commands"),
      snapshots(schema + ".snapshots"), dead_letters(schema + ".dead_letters"), log_head(schema + ".log_head"),
      store_info(schema + ".store_info"), partition_leases(schema + ".partition_leases"),
      cluster_members(schema + ".cluster_members"), channel_identifier('"' + name + "_events\""),
      channel_literal('\'' + name + "_events'"), lease_channel_identifier('"' + name + "_leases\""),
      lease_channel_literal('\'' + name + "_leases'") {}

std::expected<void, std::string> check_schema_name(const std::string& schema) {
  auto valid = !schema.empty() && schema.size() <= 48 && !(schema[0] >= '0' && schema[0] <= '9');
  for (char character : schema)
    valid = valid && ((character >= 'a' && character <= 'z') || (character >= '0' && character <= '9')
                      || character == '_');
  if (!valid)
    return std::unexpected("schema name \"" + schema
                           + "\" is not usable: 1 to 48 lower-case letters, digits or underscores, not starting with "
                             "a digit");
  return {};
}

std::expected<log_position, std::string> check_or_create(PGconn* link, const names& store) {
  auto fail = [](std::string what, const failure& error) {
    return std::unexpected(std::move(what) + ": " + error.message);
  };
  auto began = execute(link, "BEGIN");
  if (!began)
    return fail("cannot begin a transaction", began.error());
  auto rollback = [&] { execute(link, "ROLLBACK"); };
  // One opener at a time creates or checks: the lock ends with the transaction.
  auto locked = execute(link, "SELECT pg_advisory_xact_lock(hashtext('cqrs-engine schema ' || $1))",
                        {store.schema});
  if (!locked) {
    rollback();
    return fail("cannot lock the schema", locked.error());
  }
  auto tables = execute(link,
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
                        {store.schema.substr(1, store.schema.size() - 2)});
  if (!tables) {
    rollback();
    return fail("cannot list the tables of schema " + store.schema, tables.error());
  }
  bool has_info = false;
  std::string found_tables;
  for (int row = 0; row < PQntuples(tables->get()); ++row) {
    auto name = value(tables->get(), row, 0);
    has_info = has_info || name == "store_info";
    found_tables += (found_tables.empty() ? "" : ", ") + std::string{name};
  }
  if (found_tables.empty()) {
    auto created = execute(link, "CREATE SCHEMA IF NOT EXISTS " + store.schema + ";"
                                   + replace_all(schema_template, "@", store.schema)
                                   + replace_all(cluster_tables_template, "@", store.schema) + "INSERT INTO "
                                   + store.store_info + " VALUES ('application', '" + std::string{application}
                                   + "'), ('schema_version', '" + std::to_string(postgres_schema_version) + "')");
    if (!created) {
      rollback();
      return fail("cannot create the store's tables in schema " + store.schema, created.error());
    }
  } else {
    if (!has_info) {
      rollback();
      return std::unexpected("schema " + store.schema + " holds tables (" + found_tables
                             + ") but no event log of this engine: choose another schema (postgres_options::schema)");
    }
    auto info = execute(link, "SELECT name, value FROM " + store.store_info);
    if (!info) {
      rollback();
      return fail("cannot read " + store.store_info, info.error());
    }
    std::string found_application;
    std::int64_t version = 0;
    for (int row = 0; row < PQntuples(info->get()); ++row) {
      auto name = value(info->get(), row, 0);
      if (name == "application")
        found_application = value(info->get(), row, 1);
      else if (name == "schema_version")
        version = integer_value(info->get(), row, 1);
    }
    if (found_application != application) {
      rollback();
      return std::unexpected("schema " + store.schema + " is not an event log of this engine (its store_info names \""
                             + found_application + "\")");
    }
    if (version > postgres_schema_version) {
      rollback();
      return std::unexpected("schema " + store.schema + " has schema version " + std::to_string(version)
                             + ", newer than this program's " + std::to_string(postgres_schema_version)
                             + ": open it with a newer program");
    }
    if (version < postgres_schema_version) {
      auto upgraded = execute(link, replace_all(upgrade_from_version_1, "@", store.schema)
                                      + replace_all(cluster_tables_template, "@", store.schema) + "UPDATE "
                                      + store.store_info + " SET value = '" + std::to_string(postgres_schema_version)
                                      + "' WHERE name = 'schema_version'");
      if (!upgraded) {
        rollback();
        return fail("cannot upgrade schema " + store.schema + " from version " + std::to_string(version),
                    upgraded.error());
      }
    }
  }
  auto head = execute(link, "SELECT position FROM " + store.log_head + " WHERE id = 1");
  if (!head || PQntuples(head->get()) != 1) {
    rollback();
    return std::unexpected("cannot read the head of the log in " + store.log_head
                           + (head ? std::string{": it has no row"} : ": " + head.error().message));
  }
  auto position = static_cast<log_position>(integer_value(head->get(), 0, 0));
  auto committed = execute(link, "COMMIT");
  if (!committed)
    return fail("cannot commit the schema of " + store.schema, committed.error());
  return position;
}

} // namespace cqrs::detail::postgres
