// The SQLite event store's connections: handles that close and finalize themselves, the helpers a row loop calls
// (inline, since they run for every row), the schema and statement texts, and opening the write connection (with
// its schema checks, creation and upgrades) and the read connections, each with its statements prepared.
#pragma once

#include "actors/detail/store_support.hpp"
#include "actors/sqlite_event_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>

namespace cqrs::detail::sqlite {

struct connection_closer {
  void operator()(sqlite3* database) const noexcept { sqlite3_close_v2(database); }
};
using connection = std::unique_ptr<sqlite3, connection_closer>;

struct statement_finalizer {
  void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};
using statement = std::unique_ptr<sqlite3_stmt, statement_finalizer>;

/// Resets a statement when the scope ends, so that an early return or an exception never leaves a statement
/// mid-way (which would keep a read transaction, and its WAL snapshot, open).
class reset_on_exit {
public:
  explicit reset_on_exit(sqlite3_stmt* statement) : statement_(statement) {}
  reset_on_exit(const reset_on_exit&) = delete;
  reset_on_exit& operator=(const reset_on_exit&) = delete;
  ~reset_on_exit() { sqlite3_reset(statement_); }

private:
  sqlite3_stmt* statement_;
};

/// SQLite's message for the connection's last error, with its extended code (which names the failing operation).
std::string error_text(sqlite3* database);
std::expected<statement, std::string> prepare(sqlite3* database, std::string_view sql);
std::expected<void, std::string> execute(sqlite3* database, const char* sql);
/// The first column of the first row of a query (0 when it returns no row or NULL).
std::expected<std::int64_t, std::string> query_integer(sqlite3* database, std::string_view sql);

inline void bind_text(sqlite3_stmt* statement, int index, std::string_view text) {
  // SQLITE_STATIC: every bound text outlives the statement's step and reset.
  sqlite3_bind_text64(statement, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

// Columns are read through sqlite3_column_value: the sqlite3_column_* functions each take the connection's mutex
// and check for a failed allocation, a third of the cost of reading a row here. SQLite calls reading an
// unprotected value "not threadsafe", which is about that mutex: every connection of this store is opened
// NOMUTEX and used by one thread at a time anyway.
inline std::string_view column_text(sqlite3_stmt* statement, int index) {
  auto* value = sqlite3_column_value(statement, index);
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(value));
  if (!text)
    return {};
  return {text, static_cast<std::size_t>(sqlite3_value_bytes(value))};
}

inline std::int64_t column_integer(sqlite3_stmt* statement, int index) {
  return sqlite3_value_int64(sqlite3_column_value(statement, index));
}

using detail::from_microseconds;
using detail::to_microseconds;

inline constexpr std::string_view schema_sql = R"sql(
CREATE TABLE events (
  position INTEGER PRIMARY KEY,
  stream_type TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  type TEXT NOT NULL,
  timestamp INTEGER NOT NULL,
  command_id TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  payload TEXT NOT NULL,
  checksum INTEGER NOT NULL,
  UNIQUE (stream_type, stream_id, version)
);
)sql";

/// Command ids that senders chose (append_request::remember_command_id) have a table of their own, which
/// find_command reads: an index on every event's command id cost the writer a third B-tree insert per event, for
/// the engine-generated ids that nothing looks up. Each row names the positions of the command's events. Part of
/// the schema of a new file, and made by the upgrade to schema version 3.
inline constexpr std::string_view commands_table_sql = R"sql(
CREATE TABLE commands (
  command_id TEXT PRIMARY KEY,
  first_position INTEGER NOT NULL,
  last_position INTEGER NOT NULL
) WITHOUT ROWID;
)sql";
inline constexpr std::string_view record_command_sql =
  "INSERT OR IGNORE INTO commands (command_id, first_position, last_position) VALUES (?1, ?2, ?3)";

/// Brings a file of schema version 2 (every command id indexed) to version 3, after commands_table_sql: version 2
/// kept no mark of which ids senders chose, so every id moves to the commands table. An id on events far apart (a
/// command appended twice by racing senders) spans them; find_command reads only its own rows in the span.
inline constexpr std::string_view move_command_ids_sql = R"sql(
INSERT INTO commands SELECT command_id, min(position), max(position) FROM events GROUP BY command_id;
DROP INDEX IF EXISTS events_by_command;
)sql";

/// Brings a file of schema version 1 (no checksums) to version 2: each event gets the checksum of what it holds
/// now, so damage done before the upgrade is not found; damage done after it is.
inline constexpr std::string_view upgrade_to_checksums_sql = R"sql(
ALTER TABLE events ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0;
)sql";

/// Added at open to new and existing files alike (they were added after the first files were written; they only
/// add, so a program of the same schema version that does not know them still reads the file). dead_letters holds
/// the events that projections under the `skip` policy passed over, one row per projection and position.
inline constexpr std::string_view schema_additions_sql = R"sql(
CREATE TABLE IF NOT EXISTS snapshots (
  stream_type TEXT NOT NULL,
  stream_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  format INTEGER NOT NULL,
  state TEXT NOT NULL,
  checksum INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (stream_type, stream_id)
);
CREATE TABLE IF NOT EXISTS dead_letters (
  projection TEXT NOT NULL,
  position INTEGER NOT NULL,
  type TEXT NOT NULL,
  reason TEXT NOT NULL,
  recorded INTEGER NOT NULL,
  PRIMARY KEY (projection, position)
);
)sql";

inline constexpr std::string_view insert_sql =
  "INSERT INTO events (position, stream_type, stream_id, version, type, timestamp, command_id, correlation_id, "
  "payload, checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
inline constexpr std::string_view stream_version_sql =
  "SELECT version FROM events WHERE stream_type = ?1 AND stream_id = ?2 ORDER BY version DESC LIMIT 1";
inline constexpr std::string_view last_position_sql = "SELECT max(position) FROM events";
inline constexpr std::string_view stream_events_sql =
  "SELECT position, version, type, timestamp, command_id, correlation_id, payload, checksum FROM events "
  "WHERE stream_type = ?1 AND stream_id = ?2 AND version > ?3 ORDER BY version";
/// Whole rows, not aggregates over them: each one's checksum is checked before it answers a re-sent command.
inline constexpr std::string_view find_command_sql =
  "SELECT e.position, e.stream_type, e.stream_id, e.version, e.type, e.timestamp, e.command_id, e.correlation_id, "
  "e.payload, e.checksum FROM commands c JOIN events e ON e.position BETWEEN c.first_position AND c.last_position "
  "WHERE c.command_id = ?1 AND e.command_id = ?1 ORDER BY e.position";
/// Snapshots tables written before snapshot checksums get the column; the snapshots they hold get the checksum
/// of what they hold now, as events did at the upgrade to schema version 2.
inline constexpr std::string_view add_snapshot_checksums_sql =
  "ALTER TABLE snapshots ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0; ";
inline constexpr std::string_view load_snapshot_sql =
  "SELECT version, format, state, checksum FROM snapshots WHERE stream_type = ?1 AND stream_id = ?2";
/// Keeps the snapshot of the higher version when the file already has one for the stream, unless that one fails
/// its checksum: its version may be the changed byte, and it would otherwise never be replaced.
inline constexpr std::string_view save_snapshot_sql =
  "INSERT INTO snapshots (stream_type, stream_id, version, format, state, checksum) "
  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
  "ON CONFLICT (stream_type, stream_id) DO UPDATE SET version = excluded.version, format = excluded.format, "
  "state = excluded.state, checksum = excluded.checksum WHERE excluded.version >= snapshots.version "
  "OR snapshots.checksum != cqrs_snapshot_checksum(snapshots.stream_type, snapshots.stream_id, "
  "snapshots.version, snapshots.format, snapshots.state)";
/// A projection that skips the same event again (a rebuild) updates its row: the reason and time of the last skip.
inline constexpr std::string_view save_dead_letter_sql =
  "INSERT INTO dead_letters (projection, position, type, reason, recorded) VALUES (?1, ?2, ?3, ?4, ?5) "
  "ON CONFLICT (projection, position) DO UPDATE SET type = excluded.type, reason = excluded.reason, "
  "recorded = excluded.recorded";
inline constexpr std::string_view log_events_sql =
  "SELECT position, stream_type, stream_id, version, type, timestamp, command_id, correlation_id, payload, "
  "checksum FROM events WHERE position > ?1 AND position <= ?2 ORDER BY position";

/// A read connection and its prepared statements.
struct reader {
  connection database;
  statement stream_events;
  statement stream_version;
  statement log_events;
  statement find_command;
  statement load_snapshot;
};

/// The write connection and its prepared statements; used by the writer thread only.
struct writer {
  connection database;
  statement begin;
  statement commit;
  statement rollback;
  statement insert;
  statement stream_version;
  statement last_position;
  statement save_snapshot;
  statement save_dead_letter;
  statement record_command;
};

/// A read connection with its statements prepared.
std::expected<std::unique_ptr<reader>, std::string> open_reader(const std::string& path, const sqlite_options& options);
/// The write connection: an existing file's header, schema and pages checked (older versions upgraded), or the
/// schema created in a new one; the tables added since created; its statements prepared.
std::expected<writer, std::string> open_writer(const std::string& path, const sqlite_options& options);

} // namespace cqrs::detail::sqlite
