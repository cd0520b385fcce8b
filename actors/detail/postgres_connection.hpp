// The PostgreSQL event store's connections: libpq handles that close and clear themselves, running statements
// with their errors as values, the text formats the writer sends (COPY rows, array literals, timestamps), and the
// schema: its names, its creation and the checks at open.
#pragma once

#include "actors/envelope.hpp"

#include <libpq-fe.h>

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cqrs::detail::postgres {

struct connection_closer {
  void operator()(PGconn* connection) const noexcept { PQfinish(connection); }
};
using connection = std::unique_ptr<PGconn, connection_closer>;

struct result_clearer {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using result = std::unique_ptr<PGresult, result_clearer>;

/// Why a statement failed, and whether the connection is gone with it (then the statement may or may not have
/// run on the server).
struct failure {
  std::string message;
  bool connection_lost = false;
  /// The server's SQLSTATE, when the server answered with an error.
  std::string state{};
};

/// The statement's result, or why it failed (taking ownership of `raw`, which may be nullptr).
std::expected<result, failure> checked(PGconn* link, PGresult* raw);

/// Opens a connection; the message says why it could not.
std::expected<connection, std::string> connect(const std::string& conninfo);

/// Runs one or more statements without parameters; the result of the last one.
std::expected<result, failure> execute(PGconn* link, const std::string& sql);
/// Runs several statements without parameters in one round trip; the result of each, in order. The first that fails
/// ends the run (the server skips the rest).
std::expected<std::vector<result>, failure> execute_each(PGconn* link, const std::string& sql);
/// Runs one statement with text parameters ($1, $2, ...).
std::expected<result, failure> execute(PGconn* link, const std::string& sql, const std::vector<std::string>& params);
/// Runs a COPY ... FROM STDIN and sends `rows` (COPY's text format) as its data. `sql` may go on with more
/// statements after the COPY, which the server runs once the data is in: one round trip for all of them after the
/// COPY's own.
std::expected<void, failure> copy_in(PGconn* link, const std::string& sql, std::string_view rows);

inline std::string_view value(const PGresult* rows, int row, int column) {
  return {PQgetvalue(rows, row, column), static_cast<std::size_t>(PQgetlength(rows, row, column))};
}
std::int64_t integer_value(const PGresult* rows, int row, int column);

/// Appends `text` as one field of COPY's text format (backslash escapes for the characters that would end it).
void append_copy_field(std::string& row, std::string_view text);
/// A text[] literal of the values, for = ANY($1) and unnest($1).
std::string text_array(const std::vector<std::string_view>& values);
/// `text` as a string literal for a statement without parameters (libpq's escaping for the connection's encoding).
std::string quoted(PGconn* link, std::string_view text);
/// An instant as a timestamptz literal in UTC with microseconds ("2026-12-04 05:06:07.123456+00").
std::string timestamp_text(std::int64_t microseconds_since_epoch);

/// The store's names in one schema, quoted for SQL, and its notification channel.
struct names {
  explicit names(const std::string& schema);
  std::string schema;
  std::string events;
  std::string commands;
  std::string snapshots;
  std::string dead_letters;
  std::string log_head;
  std::string store_info;
  std::string partition_leases;
  std::string cluster_members;
  /// The channel commits notify on, as an identifier (LISTEN) and as a literal (pg_notify).
  std::string channel_identifier;
  std::string channel_literal;
  /// The channel a cluster node notifies on when it takes or gives up partition leases.
  std::string lease_channel_identifier;
  std::string lease_channel_literal;
};

/// Whether `schema` can name a store: 1 to 48 characters, so that its channel fits PostgreSQL's 63-byte names.
std::expected<void, std::string> check_schema_name(const std::string& schema);

/// Creates the schema and its tables when they do not exist (under an advisory lock, so that processes opening
/// the store together create it once), or checks that the existing schema is a store of a version this program
/// reads. Returns the log's head.
std::expected<log_position, std::string> check_or_create(PGconn* link, const names& store);

} // namespace cqrs::detail::postgres
