// cqrs-store's commands on an event log file, read-only through SQLite; see store_inspection.hpp.
#include "tools/store_inspection.hpp"
#include "tools/inspection_support.hpp"

#include "actors/event_checksum.hpp"
#include "actors/event_codec.hpp"
#include "actors/sqlite_event_store.hpp"
#include "domain/bank_account.hpp"
#include "domain/orders.hpp"

#include <boost/json.hpp>
#include <sqlite3.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace store_inspection {
namespace {

/// `path` as a SQLite URI file name ("file:" and the path, with the characters a URI gives meaning escaped).
std::string file_uri(const std::string& path, std::string_view parameters) {
  std::string uri = "file:";
  for (char character : path) {
    if (character == '%' || character == '?' || character == '#') {
      static constexpr char digits[] = "0123456789ABCDEF";
      uri += '%';
      uri += digits[static_cast<unsigned char>(character) >> 4];
      uri += digits[static_cast<unsigned char>(character) & 0xF];
    } else {
      uri += character;
    }
  }
  return uri + "?" + std::string{parameters};
}

} // namespace

log_file::log_file(const std::string& path) : path_(path) {
  // The tool only reads. A file closed cleanly has no write-ahead log beside it: opened as immutable, SQLite
  // then writes nothing at all (no -wal, no -shm, no lock), so a read-only file or folder reads as well. A file
  // with a -wal (an engine has it open, or was killed) holds commits that are only in that log, and reading them
  // needs the -shm index beside it: opened read-only, which SQLite can only do where it may create that.
  std::error_code ignored;
  bool has_write_ahead_log = std::filesystem::exists(path + "-wal", ignored);
  auto uri = file_uri(path, has_write_ahead_log ? "mode=ro" : "mode=ro&immutable=1");
  if (sqlite3_open_v2(uri.c_str(), &database_, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) != SQLITE_OK) {
    error_ = "cannot open " + path + ": " + (database_ ? sqlite3_errmsg(database_) : "out of memory");
    if (has_write_ahead_log)
      *error_ += " (its write-ahead log " + path + "-wal holds commits not merged into it yet; reading them needs "
                 "to create " + path + "-shm beside it: copy the files to a folder you may write to)";
  }
}

log_file::~log_file() { sqlite3_close_v2(database_); }

log_file::query::query(sqlite3* database, std::string_view sql) : database_(database) {
  if (sqlite3_prepare_v2(database, sql.data(), static_cast<int>(sql.size()), &statement_, nullptr) != SQLITE_OK)
    error_ = sqlite3_errmsg(database);
}

log_file::query::~query() { sqlite3_finalize(statement_); }

log_file::query& log_file::query::bind(int index, std::int64_t value) {
  if (statement_)
    sqlite3_bind_int64(statement_, index, value);
  return *this;
}

log_file::query& log_file::query::bind(int index, const std::string& text) {
  if (statement_)
    sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

bool log_file::query::next() {
  if (!statement_)
    return false;
  auto step = sqlite3_step(statement_);
  if (step == SQLITE_ROW)
    return true;
  if (step != SQLITE_DONE)
    error_ = sqlite3_errmsg(database_);
  return false;
}

std::int64_t log_file::query::integer(int column) const { return sqlite3_column_int64(statement_, column); }

std::string_view log_file::query::text(int column) const {
  const auto* value = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
  return value ? std::string_view{value, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))}
               : std::string_view{};
}

std::pair<std::int64_t, std::optional<std::string>> log_file::integer(std::string_view sql) const {
  auto result = run(sql);
  std::int64_t value = result.next() ? result.integer(0) : 0;
  return {value, result.error()};
}

namespace {

std::string hex(std::int64_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "%#x", static_cast<unsigned>(static_cast<std::uint32_t>(value)));
  return text;
}

/// The file's schema version when it is an event log this tool understands (version 1, before checksums, to the
/// current one); prints why not and returns nothing otherwise.
std::optional<std::int64_t> check_header(const log_file& file, problem_list* problems, std::ostream& errors) {
  auto report = [&](const std::string& message) {
    if (problems)
      problems->add("header", message);
    else
      errors << "cqrs-store: " << message << '\n';
  };
  auto [application_id, application_error] = file.integer("PRAGMA application_id");
  if (application_error) {
    report(file.path() + " is not a readable SQLite database: " + *application_error);
    return std::nullopt;
  }
  if (application_id != cqrs::sqlite_application_id) {
    report(file.path() + " is not a cqrs event log (application id " + hex(application_id) + ", expected "
           + hex(cqrs::sqlite_application_id) + ")");
    return std::nullopt;
  }
  auto [schema_version, schema_error] = file.integer("PRAGMA user_version");
  if (schema_error || schema_version < 1 || schema_version > cqrs::sqlite_schema_version) {
    report(file.path() + " has event log schema version " + std::to_string(schema_version) + "; this tool reads "
           + "versions 1 to " + std::to_string(cqrs::sqlite_schema_version));
    return std::nullopt;
  }
  auto [tables, table_error] =
    file.integer("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'events'");
  if (table_error || tables != 1) {
    report(file.path() + " has no events table" + (table_error ? ": " + *table_error : std::string{}));
    return std::nullopt;
  }
  return schema_version;
}

/// Whether the file has a table of that name (the store adds some at open, so older files lack them).
bool has_table(const log_file& file, std::string_view name) {
  auto rows = file.run("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1");
  rows.bind(1, std::string{name});
  return rows.next() && rows.integer(0) == 1;
}

} // namespace

int run_stats(const log_file& file, const output& to) {
  auto schema_version = check_header(file, nullptr, to.errors);
  if (!schema_version)
    return exit_problems;
  auto [events, events_error] = file.integer("SELECT count(*) FROM events");
  auto [streams, streams_error] =
    file.integer("SELECT count(*) FROM (SELECT DISTINCT stream_type, stream_id FROM events)");
  auto [last, last_error] = file.integer("SELECT coalesce(max(position), 0) FROM events");
  std::int64_t snapshots = 0;
  std::optional<std::string> snapshots_error;
  if (has_table(file, "snapshots"))
    std::tie(snapshots, snapshots_error) = file.integer("SELECT count(*) FROM snapshots");
  std::int64_t dead_letters = 0;
  std::optional<std::string> dead_letters_error;
  if (has_table(file, "dead_letters"))
    std::tie(dead_letters, dead_letters_error) = file.integer("SELECT count(*) FROM dead_letters");
  std::int64_t commands = 0;
  std::optional<std::string> commands_error;
  if (has_table(file, "commands"))
    std::tie(commands, commands_error) = file.integer("SELECT count(*) FROM commands");
  for (const auto& error :
       {events_error, streams_error, last_error, snapshots_error, dead_letters_error, commands_error})
    if (error) {
      to.errors << "cqrs-store: reading " << file.path() << " failed: " << *error << '\n';
      return exit_problems;
    }
  std::error_code ignored;
  auto size = std::filesystem::file_size(file.path(), ignored);
  auto wal_size = std::filesystem::file_size(file.path() + "-wal", ignored);
  if (wal_size == static_cast<std::uintmax_t>(-1))
    wal_size = 0;
  to.out << "file: " << file.path() << '\n'
            << "file size: " << size << " bytes (write-ahead log: " << wal_size << " bytes)\n"
            << "schema version: " << *schema_version
            << (*schema_version < 2 ? " (no checksums: the engine adds them when it opens the file)" : "") << '\n'
            << "events: " << events << '\n'
            << "streams: " << streams << '\n'
            << "last position: " << last << '\n'
            << "snapshots: " << snapshots << '\n'
            << "dead letters: " << dead_letters << '\n'
            << "recorded command ids: " << commands
            << (*schema_version < 3 ? " (every command id is indexed: the engine moves them when it opens the file)"
                                    : "")
            << '\n';
  return exit_ok;
}

std::optional<std::pair<std::string, std::string>> split_stream(const std::string& stream) {
  auto slash = stream.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == stream.size())
    return std::nullopt;
  return std::pair{stream.substr(0, slash), stream.substr(slash + 1)};
}

int run_dump(const log_file& file, const std::string& stream, std::int64_t from, const output& to) {
  if (!check_header(file, nullptr, to.errors))
    return exit_problems;
  std::string sql = "SELECT position, stream_type, stream_id, version, type, timestamp, command_id, "
                    "correlation_id, payload FROM events WHERE position >= ?1";
  std::optional<std::pair<std::string, std::string>> only;
  if (!stream.empty()) {
    only = split_stream(stream);
    sql += " AND stream_type = ?2 AND stream_id = ?3";
  }
  sql += " ORDER BY position";
  auto rows = file.run(sql);
  rows.bind(1, from);
  if (only)
    rows.bind(2, only->first).bind(3, only->second);
  boost::json::parser parser;
  while (!to.interrupted.load(std::memory_order_relaxed) && rows.next())
    to.out << event_line(stored_event{rows.integer(0), rows.text(1), rows.text(2), rows.integer(3), rows.text(4),
                                      rows.integer(5), rows.text(6), rows.text(7), rows.text(8)},
                         parser)
           << '\n';
  if (rows.error()) {
    to.errors << "cqrs-store: reading " << file.path() << " failed: " << *rows.error() << '\n';
    return exit_problems;
  }
  return exit_ok;
}

namespace {

/// Positions gap-free from 1, every event's checksum (from schema version 2), and every payload valid JSON that
/// the engine's codec of its type decodes, in one pass in position order.
std::int64_t verify_positions_and_payloads(const log_file& file, std::int64_t schema_version,
                                           problem_list& problems, const std::atomic<bool>& interrupted) {
  auto rows = file.run(schema_version >= 2 ? "SELECT position, type, payload, stream_type, stream_id, version, "
                                             "timestamp, command_id, correlation_id, checksum FROM events "
                                             "ORDER BY position"
                                           : "SELECT position, type, payload FROM events ORDER BY position");
  event_checker events{problems};
  while (!interrupted.load(std::memory_order_relaxed) && rows.next()) {
    auto position = rows.integer(0);
    if (schema_version >= 2) {
      auto computed = cqrs::event_checksum(cqrs::stored_event_fields{
        static_cast<cqrs::log_position>(position), rows.text(3), rows.text(4),
        static_cast<cqrs::stream_version>(rows.integer(5)), rows.text(1), rows.integer(6), rows.text(7),
        rows.text(8), rows.text(2)});
      if (static_cast<std::uint64_t>(rows.integer(9)) != computed)
        problems.add("checksum", "event " + std::to_string(position) + " (" + std::string{rows.text(3)} + "/"
                                   + std::string{rows.text(4)} + " v" + std::to_string(rows.integer(5))
                                   + ") fails its checksum: its stored bytes were changed after it was written; "
                                     "the engine would refuse it");
    }
    events.check(position, rows.text(1), rows.text(2));
  }
  if (rows.error())
    problems.add("read", "reading the events of " + file.path() + " failed: " + *rows.error());
  return events.count();
}

/// Every stream's versions contiguous from 1, in the order of their positions.
std::int64_t verify_stream_versions(const log_file& file, problem_list& problems,
                                    const std::atomic<bool>& interrupted) {
  auto rows = file.run("SELECT stream_type, stream_id, version, position FROM events "
                       "ORDER BY stream_type, stream_id, version");
  stream_checker streams{problems};
  while (!interrupted.load(std::memory_order_relaxed) && rows.next())
    streams.check(rows.text(0), rows.text(1), rows.integer(2), rows.integer(3));
  if (rows.error())
    problems.add("read", "reading the streams of " + file.path() + " failed: " + *rows.error());
  return streams.streams();
}

/// The columns the engine reads and writes in each table, so that a file it would refuse at open (it prepares its
/// statements there) fails verify too. The snapshots' checksum column is added at open to files that lack it.
struct table_columns {
  std::string_view table;
  std::vector<std::string_view> columns;
  /// Created by the engine at open when missing (a file written before it had none): no table is no damage.
  bool added_at_open = false;
};

void verify_schema(const log_file& file, std::int64_t schema_version, problem_list& problems) {
  std::vector<table_columns> tables{
    {"events",
     {"position", "stream_type", "stream_id", "version", "type", "timestamp", "command_id", "correlation_id",
      "payload"}},
    {"snapshots", {"stream_type", "stream_id", "version", "format", "state"}, true},
    {"dead_letters", {"projection", "position", "type", "reason", "recorded"}, true}};
  if (schema_version >= 2)
    tables[0].columns.push_back("checksum");
  if (schema_version >= 3)
    tables.push_back({"commands", {"command_id", "first_position", "last_position"}});
  for (const auto& [table, columns, added_at_open] : tables) {
    if (!has_table(file, table)) {
      if (!added_at_open)
        problems.add("schema", file.path() + " has schema version " + std::to_string(schema_version) + " but no "
                                 + std::string{table} + " table: the engine cannot open the file");
      continue;
    }
    for (auto column : columns) {
      auto found = file.run("SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2");
      found.bind(1, std::string{table}).bind(2, std::string{column});
      if (found.next() && found.integer(0) == 0)
        problems.add("schema", "the " + std::string{table} + " table of " + file.path() + " has no column "
                                 + std::string{column} + ": the engine cannot open the file");
      if (found.error())
        problems.add("read", "reading the columns of " + file.path() + " failed: " + *found.error());
    }
  }
}

/// Each recorded command id (schema version 3) against the events it names: a re-sent command with that id is
/// answered from them, so every position in its span must hold an event, and its first and last one of that
/// command.
void verify_recorded_commands(const log_file& file, problem_list& problems, const std::atomic<bool>& interrupted) {
  if (!has_table(file, "commands"))
    return;
  auto rows = file.run("SELECT c.command_id, c.first_position, c.last_position, count(e.position), "
                       "(SELECT command_id FROM events WHERE position = c.first_position), "
                       "(SELECT command_id FROM events WHERE position = c.last_position) FROM commands c "
                       "LEFT JOIN events e ON e.position BETWEEN c.first_position AND c.last_position "
                       "GROUP BY c.command_id ORDER BY c.first_position");
  while (!interrupted.load(std::memory_order_relaxed) && rows.next()) {
    auto id = rows.text(0);
    auto first = rows.integer(1);
    auto last = rows.integer(2);
    if (first > last || rows.integer(3) != last - first + 1 || rows.text(4) != id || rows.text(5) != id)
      problems.add("command", "recorded command " + std::string{id} + " names positions " + std::to_string(first)
                                + " to " + std::to_string(last)
                                + ", which do not begin and end with events of that command (a re-sent command "
                                  "with that id would be answered wrongly or decided again)");
  }
  if (rows.error())
    problems.add("read", "reading the recorded command ids of " + file.path() + " failed: " + *rows.error());
}

/// Each snapshot against its checksum and its stream: the engine passes over a snapshot that fails either and
/// replays the stream instead, so such a snapshot costs time, not correctness, but it is damage all the same.
/// Returns the number of snapshots read.
std::int64_t verify_snapshots(const log_file& file, problem_list& problems, const std::atomic<bool>& interrupted) {
  if (!has_table(file, "snapshots"))
    return 0;
  auto [has_checksums, columns_error] =
    file.integer("SELECT count(*) FROM pragma_table_info('snapshots') WHERE name = 'checksum'");
  if (columns_error) {
    problems.add("read", "reading the columns of " + file.path() + " failed: " + *columns_error);
    return 0;
  }
  // A snapshots table from before snapshot checksums reads 0 in their place (and is not checked against them).
  auto rows = file.run("SELECT s.stream_type, s.stream_id, s.version, s.format, s.state, "
                       + std::string{has_checksums ? "s.checksum" : "0"}
                       + ", (SELECT max(e.version) FROM events e WHERE e.stream_type = s.stream_type AND "
                         "e.stream_id = s.stream_id) FROM snapshots s ORDER BY s.stream_type, s.stream_id");
  std::int64_t snapshots = 0;
  while (!interrupted.load(std::memory_order_relaxed) && rows.next()) {
    ++snapshots;
    auto type = rows.text(0);
    auto id = rows.text(1);
    auto version = rows.integer(2);
    auto name = "the snapshot of " + std::string{type} + "/" + std::string{id} + " (version "
                + std::to_string(version) + ")";
    cqrs::stored_snapshot_fields fields{type, id, static_cast<cqrs::stream_version>(version),
                                        static_cast<std::uint32_t>(rows.integer(3)), rows.text(4)};
    if (has_checksums && static_cast<std::uint64_t>(rows.integer(5)) != cqrs::snapshot_checksum(fields))
      problems.add("snapshot", name + " fails its checksum: its stored bytes were changed (the engine passes over "
                                      "it and replays the stream)");
    if (version > rows.integer(6))
      problems.add("snapshot", name + " is beyond its stream's last version " + std::to_string(rows.integer(6))
                                 + " (the engine passes over it and replays the stream)");
  }
  if (rows.error())
    problems.add("read", "reading the snapshots of " + file.path() + " failed: " + *rows.error());
  return snapshots;
}

/// Each line "command_id position": the event at that position exists and has that command id.
std::int64_t verify_acknowledgements(const log_file& file, const std::string& ack_log, problem_list& problems,
                                     const std::atomic<bool>& interrupted) {
  auto acknowledged = read_acknowledgements(ack_log, problems, interrupted);
  for (const auto& each : acknowledged) {
    if (interrupted.load(std::memory_order_relaxed))
      break;
    auto row = file.run("SELECT command_id FROM events WHERE position = ?1");
    row.bind(1, each.position);
    std::optional<std::string_view> stored;
    if (row.next())
      stored = row.text(0);
    if (row.error())
      problems.add("read", "reading event " + std::to_string(each.position) + " failed: " + *row.error());
    else
      check_acknowledgement(each, stored, problems);
  }
  return static_cast<std::int64_t>(acknowledged.size());
}

} // namespace

int run_verify(const log_file& file, const std::string& ack_log, const output& to) {
  problem_list problems{to.out};
  auto schema_version = check_header(file, &problems, to.errors);
  if (!schema_version) {
    to.out << file.path() << ": FAILED (" << problems.total() << " problem)\n";
    return exit_problems;
  }
  // SQLite reads a file whose header has a write version above 2 (byte 18) but will not write it: the engine
  // refuses it at open (when it must switch it to WAL mode) or at its first append; this tool only reads and would
  // not notice. With a write-ahead log beside the file, SQLite may take page 1, and the header with it, from there:
  // the file's bytes do not say.
  std::error_code no_log;
  if (!std::filesystem::exists(file.path() + "-wal", no_log)) {
    std::ifstream header{file.path(), std::ios::binary};
    char bytes[19] = {};
    if (header.read(bytes, sizeof bytes) && static_cast<unsigned char>(bytes[18]) > 2)
      problems.add("header", file.path() + " has file format write version "
                               + std::to_string(static_cast<unsigned char>(bytes[18]))
                               + " in its header (byte 18; SQLite writes 1 or 2): SQLite will not write to it, so "
                                 "the engine cannot append to it");
  }
  // The engine upgrades a version 1 file by adding the checksum column; one that has it already (a version 2 file
  // whose header was changed) it refuses to open, and its checksums would go unchecked here.
  if (*schema_version < 2) {
    auto column = file.run("SELECT count(*) FROM pragma_table_info('events') WHERE name = 'checksum'");
    if (column.next() && column.integer(0) > 0)
      problems.add("header", file.path() + " has schema version 1 (no checksums) in its header, but its events "
                               "table has the checksum column of version 2: the engine would refuse to upgrade it");
    if (column.error())
      problems.add("read", "reading the columns of " + file.path() + " failed: " + *column.error());
  }
  // The engine upgrades a version 2 file by creating the commands table; one that has it (a version 3 file whose
  // header was changed) it cannot upgrade, and so refuses to open.
  if (*schema_version == 2 && has_table(file, "commands"))
    problems.add("header", file.path() + " has schema version 2 (every command id indexed) in its header, but it "
                             "has the commands table of version 3: the engine would refuse to upgrade it");
  // integrity_check, not quick_check: it also matches every index entry to its row (N log N rather than N). The
  // engine reads streams through the index on (stream_type, stream_id, version); an entry naming another row or
  // version passes quick_check and the checks below, which read the table, and the engine then refuses the stream.
  auto check = file.run("PRAGMA integrity_check(20)");
  while (check.next())
    if (check.text(0) != "ok")
      problems.add("integrity", "SQLite integrity check: " + std::string{check.text(0)});
  if (check.error())
    problems.add("integrity", "SQLite integrity check failed: " + *check.error());
  verify_schema(file, *schema_version, problems);
  auto events = verify_positions_and_payloads(file, *schema_version, problems, to.interrupted);
  auto streams = verify_stream_versions(file, problems, to.interrupted);
  auto snapshots = verify_snapshots(file, problems, to.interrupted);
  verify_recorded_commands(file, problems, to.interrupted);
  std::int64_t acknowledged = 0;
  if (!ack_log.empty())
    acknowledged = verify_acknowledgements(file, ack_log, problems, to.interrupted);

  to.out << file.path() << ": " << events << " events, " << streams << " streams, " << snapshots << " snapshots";
  if (!ack_log.empty())
    to.out << ", " << acknowledged << " acknowledgements";
  if (*schema_version < 2)
    to.out << " (schema version 1: no checksums to check)";
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

/// The dead letters as JSON lines in projection and position order: the events that projections under the `skip`
/// policy passed over.
int run_dead_letters(const log_file& file, const output& to) {
  if (!check_header(file, nullptr, to.errors))
    return exit_problems;
  if (!has_table(file, "dead_letters"))
    return exit_ok; // written before dead letters were kept: there are none
  auto rows = file.run("SELECT projection, position, type, reason, recorded FROM dead_letters "
                       "ORDER BY projection, position");
  while (!to.interrupted.load(std::memory_order_relaxed) && rows.next())
    to.out << dead_letter_line(rows.text(0), rows.integer(1), rows.text(2), rows.text(3), rows.integer(4)) << '\n';
  if (rows.error()) {
    to.errors << "cqrs-store: reading the dead letters of " << file.path() << " failed: " << *rows.error() << '\n';
    return exit_problems;
  }
  return exit_ok;
}

} // namespace store_inspection
