// The shared event store: a PostgreSQL database holds the log, which several engine processes may append to and
// follow at once; appends from many threads share commits, readers are woken by LISTEN/NOTIFY.
#pragma once

#include "actors/event_store.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace cqrs {

/// Settings of a PostgreSQL store; every field has a sensible default.
struct postgres_options {
  /// The schema (namespace) that holds the store's tables, created with them when it does not exist. Stores with
  /// different schemas in one database are separate logs.
  std::string schema = "cqrs";
  /// Most append requests that share one transaction (group commit); the rest wait for the next one.
  std::size_t max_batch_appends = 512;
  /// How often the head is read again when no notification came (a notification lost with a dropped connection).
  std::chrono::milliseconds head_check_interval{2000};
  /// The first wait before reconnecting after a lost connection; each failed attempt doubles it up to the maximum.
  std::chrono::milliseconds reconnect_delay{50};
  std::chrono::milliseconds max_reconnect_delay{2000};
  /// The longest a commit may hold the log's lock: the server cancels a statement of the writer's that runs longer,
  /// and ends its transaction when it waits longer between statements (a process paused mid-commit would otherwise
  /// hold up every other process's appends). The batch then goes again. 0: no limit.
  std::chrono::milliseconds transaction_timeout{5000};
};

/// What a store has committed since it was opened, and how its connection fared.
struct postgres_store_statistics {
  /// Committed transactions.
  std::uint64_t transactions = 0;
  /// Accepted append requests.
  std::uint64_t appends = 0;
  /// Events in the accepted appends.
  std::uint64_t events = 0;
  /// Append requests refused for a version conflict.
  std::uint64_t conflicts = 0;
  /// Append requests waiting for a commit right now (queued behind the one being committed).
  std::uint64_t queued = 0;
  std::uint64_t snapshots = 0;
  std::uint64_t dead_letters = 0;
  /// Connections opened again after one was lost (writer, listener and readers).
  std::uint64_t reconnects = 0;
  /// Batches whose COMMIT was sent but never answered (the connection dropped): resolved after reconnecting by
  /// looking for their first event, as committed or as not committed (then committed again).
  std::uint64_t unknown_outcomes_committed = 0;
  std::uint64_t unknown_outcomes_retried = 0;
  /// Batches sent the short way (the head and the versions taken as this writer knows them, checked by the server)
  /// that went again the long way: another process had appended, or a stream was further along than expected.
  std::uint64_t optimistic_retries = 0;
  /// Append requests refused because the partition lease they were made under no longer held (errc::fenced).
  std::uint64_t fenced = 0;
  /// Heads the listener connection learnt before the writer did (by notification or by the safety re-read): other
  /// processes' commits, and now and then this store's own, whose notification came first.
  std::uint64_t foreign_heads = 0;
  /// Chunks of 1,024 committed positions that read_all decoded into its shared cache, and chunk reads it served
  /// from there (as in the SQLite store).
  std::uint64_t chunks_decoded = 0;
  std::uint64_t chunks_reused = 0;
};

/// The event log in a PostgreSQL schema (tables `events`, `commands`, `snapshots`, `dead_letters`, `log_head`
/// and `store_info`; see the schema in detail/postgres_connection.cpp).
///
/// Positions are gap-free and in commit order across every process appending to the log: each transaction takes
/// the row lock of `log_head` before it numbers its events and keeps it until it has committed, so a transaction
/// numbers its events only after every lower number is committed and visible. Commits are serialized by that lock;
/// group commit keeps them few.
///
/// A writer thread commits every append, as in the SQLite store: it takes everything queued (up to
/// max_batch_appends) into one transaction, checks each request's expected version under the lock, copies the
/// events in, moves the head and notifies, and answers each request once its COMMIT returned (synchronous_commit
/// as the server is set). While no other process appends, a transaction takes two round trips: the writer numbers
/// from the head it knows and takes the versions it does not know to be the expected ones, and the server checks
/// both (the head under the lock; versions by an event at each expected version and the unique index); when
/// either is wrong the transaction rolls back and goes again with the head and versions read under the lock first
/// (statistics().optimistic_retries).
///
/// A lost connection is retried with backoff while appends wait (degraded() says why); a batch whose COMMIT went
/// unanswered is looked up by its first event after reconnecting, so it is acknowledged once if it committed and
/// committed again if it did not. A batch the server refuses (an error that is not a lost connection) leaves the
/// store unhealthy, as a failed commit does in the SQLite store.
///
/// Reads run on pooled connections; read_all and read_stream fetch pages of 1,024 events and decode them with the
/// codecs given to add_event_types. read_all keeps decoded chunks in a bounded cache shared by its readers, and
/// the writer keeps the events it commits there too, as the SQLite store does (detail/chunk_cache.hpp). A listener
/// connection LISTENs for the heads other processes commit (and re-reads the head every head_check_interval, should
/// a notification be lost); head() is the highest head seen.
/// An append under a lease fence (a cluster node's, see cluster.hpp) is checked in its transaction: the lease row
/// of its partition must still have the fence's epoch and not have expired, and is share-locked until the commit,
/// so a node taking the lease over waits for the transaction and then sees its events. A fence that no longer holds
/// refuses that request with errc::fenced (statistics().fenced). Each event keeps the epoch it was appended under
/// (column lease_epoch, 0 without a fence), so that the log itself shows one writer per partition at a time.
/// Only commands appended with remember_command_id are found by find_command (their ids have a table of their
/// own, so that engine-generated ids cost no index). Payloads are kept as jsonb, which cannot hold the NUL
/// character: an event whose JSON has one is refused with invalid_request.
class postgres_event_store : public event_store {
public:
  /// False once the server refused a batch; append() then fails at once with errc::store_failure.
  virtual bool healthy() const = 0;
  std::optional<std::string> failure() const override = 0;
  virtual postgres_store_statistics statistics() const = 0;
  /// The connection string the store was opened with.
  virtual const std::string& conninfo() const = 0;
  /// The schema that holds the log.
  virtual const std::string& schema() const = 0;
};

/// Where a log is: a libpq connection string and the schema in that database.
struct postgres_location {
  std::string conninfo;
  std::string schema = postgres_options{}.schema;
};

/// Splits "CONNINFO" with an optional "schema=NAME" among its words (how the programs' --store postgres:... names
/// a schema; libpq has no such keyword) into the connection string and the schema. The connection string is
/// libpq's key=value form; a URI form takes no schema word. An empty connection string is an error.
inline std::expected<postgres_location, std::string> parse_postgres_location(std::string_view text) {
  postgres_location location;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find_first_of(" \t", start);
    auto word = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (word.starts_with("schema="))
      location.schema = std::string{word.substr(7)};
    else if (!word.empty())
      location.conninfo += (location.conninfo.empty() ? "" : " ") + std::string{word};
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }
  if (location.conninfo.empty())
    return std::unexpected(std::string{"no connection string, e.g. \"host=/run/postgresql dbname=app\""});
  return location;
}

/// The schema version this program writes and understands; a schema with a newer one is refused at open, an older
/// one upgraded (version 2 added the cluster's partition leases and members, and each event's lease epoch).
inline constexpr int postgres_schema_version = 2;

/// Opens the event log in `options.schema` of the database that `conninfo` names (libpq's syntax, e.g.
/// "host=/tmp/socket dbname=app" or "postgresql://user@host/app"), creating the schema and its tables when they do
/// not exist. A schema that holds other tables, or a newer schema version, is refused with errc::store_failure and
/// a message saying why, as is a server that cannot be reached. The store converts to
/// std::shared_ptr<event_store> for cqrs::options::store.
std::expected<std::shared_ptr<postgres_event_store>, store_error> open_postgres_event_store(
  const std::string& conninfo, postgres_options options = {});

} // namespace cqrs
