// What cqrs-store does to an event log file (stats, dump, verify, dead letters), apart from its command line: the
// tool calls it, and the fuzz target store_verify runs verify on damaged files through it. It reads the file
// read-only through SQLite directly, never through the store, so that it can examine a damaged file. No CAF.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

struct sqlite3;
struct sqlite3_stmt;

namespace store_inspection {

/// Exit codes: everything holds, something does not (or the file cannot be read), the command line is wrong.
inline constexpr int exit_ok = 0;
inline constexpr int exit_problems = 1;
inline constexpr int exit_usage = 2;

/// Where a command writes, and the flag that cuts it short (set by a signal handler): the row loops end at the
/// next row, and verify then says the run was interrupted.
struct output {
  std::ostream& out;
  std::ostream& errors;
  const std::atomic<bool>& interrupted;
};

/// A read-only connection to an event log file and the statements run on it; failures come back as messages.
class log_file {
public:
  explicit log_file(const std::string& path);
  log_file(const log_file&) = delete;
  log_file& operator=(const log_file&) = delete;
  ~log_file();

  /// Why the file could not be opened, if it could not.
  const std::optional<std::string>& open_error() const { return error_; }
  const std::string& path() const { return path_; }

  /// A prepared statement that finalizes itself; steps it row by row.
  class query {
  public:
    query(sqlite3* database, std::string_view sql);
    query(const query&) = delete;
    query& operator=(const query&) = delete;
    ~query();

    query& bind(int index, std::int64_t value);
    query& bind(int index, const std::string& text);

    /// True while there is a row; after it returns false, error() says whether the query failed.
    bool next();
    const std::optional<std::string>& error() const { return error_; }

    std::int64_t integer(int column) const;
    std::string_view text(int column) const;

  private:
    sqlite3* database_;
    sqlite3_stmt* statement_ = nullptr;
    std::optional<std::string> error_;
  };

  query run(std::string_view sql) const { return query{database_, sql}; }

  /// The first column of the first row, or why it could not be read.
  std::pair<std::int64_t, std::optional<std::string>> integer(std::string_view sql) const;

private:
  std::string path_;
  sqlite3* database_ = nullptr;
  std::optional<std::string> error_;
};

/// TYPE/ID split at the first '/' (ids may contain more); nothing when either part is empty.
std::optional<std::pair<std::string, std::string>> split_stream(const std::string& stream);

/// Number of events and streams, last position, file size.
int run_stats(const log_file& file, const output& to);
/// The events from position `from` on (of one stream, TYPE/ID, unless `stream` is empty) as JSON lines.
int run_dump(const log_file& file, const std::string& stream, std::int64_t from, const output& to);
/// Checks positions, checksums, stream versions, payloads and, unless `ack_log` is empty, the acknowledgements
/// listed in that file; prints each problem and a summary line. exit_ok when everything holds.
int run_verify(const log_file& file, const std::string& ack_log, const output& to);
/// The dead letters as JSON lines in projection and position order.
int run_dead_letters(const log_file& file, const output& to);

} // namespace store_inspection
