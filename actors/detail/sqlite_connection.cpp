// The SQLite event store's connections; see sqlite_connection.hpp.
#include "actors/detail/sqlite_connection.hpp"

#include "actors/detail/sqlite_checksum_function.hpp"

#include <cstdio>
#include <utility>

namespace cqrs::detail::sqlite {

using namespace std::string_view_literals;

std::string error_text(sqlite3* database) {
  return std::string{sqlite3_errmsg(database)} + " (SQLite code " + std::to_string(sqlite3_extended_errcode(database))
         + ")";
}

std::expected<statement, std::string> prepare(sqlite3* database, std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v3(database, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw,
                         nullptr)
      != SQLITE_OK) {
    sqlite3_finalize(raw);
    return std::unexpected(error_text(database));
  }
  return statement{raw};
}

std::expected<void, std::string> execute(sqlite3* database, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(database, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errmsg(database);
    sqlite3_free(message);
    return std::unexpected(text + " (SQLite code " + std::to_string(sqlite3_extended_errcode(database)) + ")");
  }
  return {};
}

std::expected<std::int64_t, std::string> query_integer(sqlite3* database, std::string_view sql) {
  auto prepared = prepare(database, sql);
  if (!prepared)
    return std::unexpected(std::move(prepared.error()));
  auto step = sqlite3_step(prepared->get());
  if (step == SQLITE_ROW)
    return sqlite3_column_int64(prepared->get(), 0);
  if (step == SQLITE_DONE)
    return 0;
  return std::unexpected(error_text(database));
}

namespace {

std::expected<connection, std::string> open_connection(const std::string& path, int flags,
                                                       const sqlite_options& options) {
  sqlite3* raw = nullptr;
  auto opened = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                                options.vfs.empty() ? nullptr : options.vfs.c_str());
  connection database{raw};
  if (opened != SQLITE_OK)
    return std::unexpected(raw ? error_text(raw) : std::string{sqlite3_errstr(opened)});
  sqlite3_busy_timeout(raw, static_cast<int>(options.busy_timeout.count()));
  return database;
}


std::string hex(std::int64_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "%#x", static_cast<unsigned>(static_cast<std::uint32_t>(value)));
  return text;
}

/// Upgrades a file of schema version 1 to 2 in one transaction: a crash meanwhile leaves it at version 1. The
/// connection has the checksum functions.
std::expected<void, std::string> add_checksums(sqlite3* database, const std::string& path) {
  auto upgrade = "BEGIN IMMEDIATE; " + std::string{upgrade_to_checksums_sql} + std::string{detail::reseal_events_sql}
                 + "; PRAGMA user_version = 2; COMMIT;";
  if (auto upgraded = execute(database, upgrade.c_str()); !upgraded) {
    (void)execute(database, "ROLLBACK");
    return std::unexpected("cannot upgrade " + path + " from schema version 1 to 2 (checksums): " + upgraded.error());
  }
  return {};
}

/// Upgrades a file of schema version 2 to 3 in one transaction: the command ids move from an index on every
/// event to the commands table.
std::expected<void, std::string> move_command_ids(sqlite3* database, const std::string& path) {
  auto upgrade = "BEGIN IMMEDIATE; " + std::string{commands_table_sql} + std::string{move_command_ids_sql}
                 + "PRAGMA user_version = 3; COMMIT;";
  if (auto upgraded = execute(database, upgrade.c_str()); !upgraded) {
    (void)execute(database, "ROLLBACK");
    return std::unexpected("cannot upgrade " + path + " from schema version 2 to 3 (a table of command ids): "
                           + upgraded.error());
  }
  return {};
}

/// Checks an existing file's header, schema and pages, or creates the schema in a new one; a file of schema
/// version 1 or 2 is upgraded to the current one.
std::expected<void, std::string> check_or_create(sqlite3* database, const std::string& path,
                                                 const sqlite_options& options) {
  // Reading the header is the first real read: a file that is not SQLite at all fails here.
  auto application_id = query_integer(database, "PRAGMA application_id");
  std::expected<std::int64_t, std::string> schema_version = 0;
  std::expected<std::int64_t, std::string> tables = 0;
  if (application_id)
    schema_version = query_integer(database, "PRAGMA user_version");
  if (application_id && schema_version)
    tables = query_integer(database, "SELECT count(*) FROM sqlite_schema");
  if (!application_id || !schema_version || !tables) {
    auto why = !application_id ? application_id.error() : !schema_version ? schema_version.error() : tables.error();
    if ((sqlite3_errcode(database) & 0xff) == SQLITE_CORRUPT)
      return std::unexpected(path + " is damaged: " + why);
    return std::unexpected(path + " is not a readable SQLite database: " + why);
  }

  if (*application_id == 0 && *tables == 0 && *schema_version == 0) {
    // A new (or empty) file. WAL is switched on only here and for our own files: never in a foreign one.
    if (auto wal = execute(database, "PRAGMA journal_mode = WAL"); !wal)
      return std::unexpected("cannot switch " + path + " to WAL mode: " + wal.error());
    auto create = "BEGIN IMMEDIATE; " + std::string{schema_sql} + std::string{commands_table_sql}
                  + " PRAGMA application_id = "
                  + std::to_string(sqlite_application_id)
                  + "; PRAGMA user_version = " + std::to_string(sqlite_schema_version) + "; COMMIT;";
    if (auto created = execute(database, create.c_str()); !created) {
      (void)execute(database, "ROLLBACK");
      return std::unexpected("cannot create the event log schema in " + path + ": " + created.error());
    }
    return {};
  }
  if (*application_id != sqlite_application_id)
    return std::unexpected(
      *application_id == 0
        ? path + " is not a cqrs event log: it is a SQLite database of another application (no application id)"
        : path + " is not a cqrs event log: its application id is " + hex(*application_id) + ", expected "
            + hex(sqlite_application_id));
  if (*schema_version > sqlite_schema_version)
    return std::unexpected(path + " has event log schema version " + std::to_string(*schema_version)
                           + ", newer than the version " + std::to_string(sqlite_schema_version)
                           + " this program understands: open it with a newer cqrs-engine");
  if (*schema_version < 1)
    return std::unexpected(path + " has event log schema version " + std::to_string(*schema_version)
                           + ", which this program cannot read (it writes version "
                           + std::to_string(sqlite_schema_version) + ")");
  auto events_table = query_integer(database, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                              "name = 'events'");
  if (!events_table || *events_table != 1)
    return std::unexpected(path + " is damaged: it is marked as a cqrs event log but has no events table");
  if (options.open_check == sqlite_open_check::quick_check) {
    auto check = prepare(database, "PRAGMA quick_check(5)");
    if (!check)
      return std::unexpected(path + " is damaged: " + check.error());
    std::string problems;
    int step = SQLITE_ROW;
    while ((step = sqlite3_step(check->get())) == SQLITE_ROW) {
      auto line = column_text(check->get(), 0);
      if (line != "ok")
        problems += (problems.empty() ? "" : "; ") + std::string{line};
    }
    if (step != SQLITE_DONE)
      return std::unexpected(path + " is damaged: " + error_text(database));
    if (!problems.empty())
      return std::unexpected(path + " is damaged: " + problems);
  }
  if (auto wal = execute(database, "PRAGMA journal_mode = WAL"); !wal)
    return std::unexpected("cannot switch " + path + " to WAL mode: " + wal.error());
  if (*schema_version == 1)
    if (auto upgraded = add_checksums(database, path); !upgraded)
      return upgraded;
  if (*schema_version < 3)
    return move_command_ids(database, path);
  return {};
}

} // namespace

std::expected<std::unique_ptr<reader>, std::string> open_reader(const std::string& path,
                                                                const sqlite_options& options) {
  auto database = open_connection(path, SQLITE_OPEN_READONLY, options);
  if (!database)
    return std::unexpected(std::move(database.error()));
  auto result = std::make_unique<reader>();
  result->database = std::move(*database);
  auto* raw = result->database.get();
  for (auto [target, sql] : {std::pair{&result->stream_events, stream_events_sql},
                             std::pair{&result->stream_version, stream_version_sql},
                             std::pair{&result->log_events, log_events_sql},
                             std::pair{&result->find_command, find_command_sql},
                             std::pair{&result->load_snapshot, load_snapshot_sql}}) {
    auto prepared = prepare(raw, sql);
    if (!prepared)
      return std::unexpected(std::move(prepared.error()));
    *target = std::move(*prepared);
  }
  return result;
}

std::expected<writer, std::string> open_writer(const std::string& path, const sqlite_options& options) {
  auto database = open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options);
  if (!database)
    return std::unexpected("cannot open " + path + ": " + database.error());
  auto* raw = database->get();
  if (sqlite3_db_readonly(raw, "main") == 1)
    return std::unexpected("cannot open " + path + " for writing (read-only file or folder)");
  // The upgrade of a version 1 file, and saving a snapshot over a damaged one, compute checksums in SQL.
  if (!detail::register_checksum_functions(raw))
    return std::unexpected("cannot register the checksum functions on " + path + ": " + error_text(raw));
  if (auto checked = check_or_create(raw, path, options); !checked)
    return std::unexpected(std::move(checked.error()));
  // A snapshots table without the checksum column (written before snapshot checksums) gets it in the same
  // transaction as the other additions.
  auto snapshot_checksums = query_integer(raw, "SELECT count(*) = 1 FROM sqlite_schema WHERE type = 'table' AND "
                                               "name = 'snapshots' AND NOT EXISTS (SELECT 1 FROM "
                                               "pragma_table_info('snapshots') WHERE name = 'checksum')");
  if (!snapshot_checksums)
    return std::unexpected("cannot read the schema of " + path + ": " + snapshot_checksums.error());
  auto additions = "BEGIN IMMEDIATE; "
                   + (*snapshot_checksums ? std::string{add_snapshot_checksums_sql}
                                              + std::string{detail::reseal_snapshots_sql} + "; "
                                          : std::string{})
                   + std::string{schema_additions_sql} + " COMMIT;";
  if (auto added = execute(raw, additions.c_str()); !added) {
    (void)execute(raw, "ROLLBACK");
    return std::unexpected("cannot add the snapshots and the dead letters tables to " + path
                           + ": " + added.error());
  }
  auto mode = options.synchronous == sqlite_synchronous::full ? "PRAGMA synchronous = FULL"
                                                              : "PRAGMA synchronous = NORMAL";
  if (auto synchronous = execute(raw, mode); !synchronous)
    return std::unexpected("cannot set the synchronous mode of " + path + ": " + synchronous.error());
  // After a burst the write-ahead log is cut back to this size at the next checkpoint instead of keeping its peak.
  if (auto limit = execute(raw, "PRAGMA journal_size_limit = 67108864"); !limit)
    return std::unexpected("cannot limit the write-ahead log of " + path + ": " + limit.error());
  writer result;
  result.database = std::move(*database);
  for (auto [target, sql] : {std::pair{&result.begin, "BEGIN IMMEDIATE"sv}, std::pair{&result.commit, "COMMIT"sv},
                             std::pair{&result.rollback, "ROLLBACK"sv}, std::pair{&result.insert, insert_sql},
                             std::pair{&result.stream_version, stream_version_sql},
                             std::pair{&result.last_position, last_position_sql},
                             std::pair{&result.save_snapshot, save_snapshot_sql},
                             std::pair{&result.save_dead_letter, save_dead_letter_sql},
                             std::pair{&result.record_command, record_command_sql}}) {
    auto prepared = prepare(raw, sql);
    if (!prepared)
      return std::unexpected(path + " does not have the event log's schema: " + prepared.error());
    *target = std::move(*prepared);
  }
  return result;
}

} // namespace cqrs::detail::sqlite
