// cqrs-store's commands on an event log in a PostgreSQL schema: read-only through libpq directly, never through the
// store, in one repeatable-read snapshot, so that a log an engine is appending to is examined as of one moment.
#pragma once

#include "tools/store_inspection.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

struct pg_conn;

namespace store_inspection {

/// A read-only connection to the log in one schema, inside one read-only repeatable-read transaction.
class postgres_log {
public:
  postgres_log(const std::string& conninfo, const std::string& schema);
  postgres_log(const postgres_log&) = delete;
  postgres_log& operator=(const postgres_log&) = delete;
  ~postgres_log();

  /// Why the log could not be opened, if it could not.
  const std::optional<std::string>& open_error() const { return error_; }
  /// "postgres:CONNINFO schema=NAME", for messages.
  const std::string& name() const { return name_; }
  const std::string& schema() const { return schema_; }
  pg_conn* connection() const { return connection_; }

private:
  std::string name_;
  std::string schema_;
  pg_conn* connection_ = nullptr;
  std::optional<std::string> error_;
};

int run_stats(const postgres_log& log, const output& to);
int run_dump(const postgres_log& log, const std::string& stream, std::int64_t from, const output& to);
/// Checks the schema version, positions gap-free from 1 and the head, payloads, stream versions, snapshots, the
/// recorded command ids and, unless `ack_log` is empty, the acknowledgements listed in that file.
int run_verify(const postgres_log& log, const std::string& ack_log, const output& to);
int run_dead_letters(const postgres_log& log, const output& to);

} // namespace store_inspection
