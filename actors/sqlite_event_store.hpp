// The durable event store: one SQLite file (WAL mode) holds the log; appends from many threads share commits.
#pragma once

#include "actors/event_store.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace cqrs {

/// When a commit counts as done.
enum class sqlite_synchronous {
  /// Each commit is fsynced before append() returns: neither a crash nor a power loss loses an acknowledged event.
  full,
  /// Commits reach the operating system but are fsynced only at checkpoints: an application crash loses nothing,
  /// but a power loss or kernel crash may lose the last acknowledged commits (never corrupts the file).
  normal,
};

/// How much an existing file is checked when it is opened.
enum class sqlite_open_check {
  /// PRAGMA quick_check: reads every page (about 2 s per GB measured here), finds a damaged or truncated file.
  quick_check,
  /// Only the header, the schema and the last position: instant, damage shows up later as read errors.
  header_only,
};

/// Settings of a SQLite store; every field has a sensible default.
struct sqlite_options {
  sqlite_synchronous synchronous = sqlite_synchronous::full;
  /// How long a connection waits for a lock held by another connection before it reports the file as busy.
  std::chrono::milliseconds busy_timeout{5000};
  /// Most append requests that share one transaction (group commit); the rest wait for the next one.
  std::size_t max_batch_appends = 512;
  sqlite_open_check open_check = sqlite_open_check::quick_check;
  /// The SQLite VFS to open the file through; empty means SQLite's default. Tests inject I/O faults this way.
  std::string vfs{};
  /// Reads refuse a log that was changed after it was written: a missing position or version (an event deleted)
  /// or an event that fails its checksum ends the read with event_read_error naming it, so that recovery and
  /// rebuilds never fold a log that is not the one written. True reads on past them instead (the changed event as
  /// it now is), counted in statistics().damage_passed: for salvaging what a damaged file still holds.
  bool read_past_damage = false;
};

/// What a store has committed since it was opened: group commit shows as fewer transactions than appends.
struct sqlite_store_statistics {
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
  /// Snapshots written (each one committed with a transaction; a newer one of the same stream replaces it).
  std::uint64_t snapshots = 0;
  /// Chunks of 1,024 committed positions that read_all decoded from the file into its shared cache.
  std::uint64_t chunks_decoded = 0;
  /// Chunk reads that read_all served from that cache (decoded earlier by another reader, or by a reader ahead).
  std::uint64_t chunks_reused = 0;
  /// Dead letters written (one per projection and position; a rebuild that skips an event again writes it again).
  std::uint64_t dead_letters = 0;
  /// Gaps and checksum mismatches that reads went past (only with sqlite_options::read_past_damage).
  std::uint64_t damage_passed = 0;
  /// Snapshots passed over because they failed their checksum (their streams were replayed instead).
  std::uint64_t damaged_snapshots = 0;
};

/// The event log in a SQLite file (table `events`, one row per event; table `commands`, the positions of each
/// command whose sender chose its id; table `snapshots`, the latest snapshot of each stream; see the schema in
/// detail/sqlite_connection.hpp).
///
/// A writer thread, started at open, commits every append: append_async encodes the request on the caller's
/// thread, queues it and returns; append() does the same and waits. The writer takes everything queued (up to
/// max_batch_appends) into one transaction (group commit), so appends that arrive together from many threads
/// share its fsync; a request refused for its version does not affect the others. An append's callback runs on
/// the writer thread once its transaction is durable (per `synchronous`), after the listeners heard the new
/// head; refusals found before queueing (invalid request, unhealthy store) are answered on the caller's thread.
/// Callbacks and listeners must be short, since the next transaction waits for them; what they throw is dropped.
/// They may append: append() on the writer thread commits its request at once instead of waiting for itself.
/// Saved snapshots and dead letters ride along with the next transaction (without appends they are committed on
/// their own about a second later); load_snapshot sees snapshots at once. The destructor commits everything queued and calls every
/// callback before it returns (so never drop the store's last reference inside a callback or a listener).
/// After a failed write or commit the store is unhealthy: it refuses every later append at once (reads go on),
/// because it no longer knows what the file holds; reopen it to continue. Requests of the failed batch were not
/// acknowledged; if the failure was a failed fsync and the process dies before the store is closed, their events
/// may still reappear at the next open (a failed fsync leaves the data's fate to the operating system).
///
/// Reads run on pooled read connections concurrently with appends and with each other. They decode payloads
/// with the codecs given to add_event_types; an event they cannot decode ends the read with event_read_error. Each
/// event is stored with a checksum over its envelope and payload (event_checksum.hpp), checked when it is read.
/// read_all decodes the committed log in chunks of 1,024 positions that it keeps in a bounded shared cache (256
/// chunks, 64 MB of payload text), so that readers walking the log together (the engine's projections
/// rebuilding at start) decode each event once; a reader that finds its chunk being decoded by another decodes
/// the next ones meanwhile. Committed events never change, so the cache needs no invalidation. The writer keeps
/// the events it commits, as they were appended (payload objects, not decoded JSON), in the chunk at the head,
/// which readers follow without reading the file; full chunks join the cache. Like the in-memory store, such a
/// read hands out the appended payload itself, so a codec that does not round-trip shows only after a reopen.
/// Listeners are called after each commit on the writer thread, outside the store's locks.
/// One store per file: a second writer (another store or process) is detected and makes the store unhealthy.
class sqlite_event_store : public event_store {
public:
  /// False once a commit failed; append() then fails at once with errc::store_failure.
  virtual bool healthy() const = 0;
  /// Why the store became unhealthy, or nothing while it is healthy.
  std::optional<std::string> failure() const override = 0;
  virtual sqlite_store_statistics statistics() const = 0;
  /// The file holding the log.
  virtual const std::string& path() const = 0;
};

/// The application id in the file's header ("CQRS"): marks the file as an event log of this engine.
inline constexpr std::int32_t sqlite_application_id = 0x43515253;
/// The schema version this program writes and understands; files with a newer one are refused at open. Version 2
/// added a checksum per event, version 3 the table of sender-chosen command ids (instead of an index on every
/// event's command id); older files are upgraded when they are opened for writing.
inline constexpr std::int32_t sqlite_schema_version = 3;

/// Opens the event log at `path`, creating it (and its schema) when the file does not exist. A file that is not
/// an event log, has a newer schema, or is damaged is refused with errc::store_failure and a message saying why.
/// The store converts to std::shared_ptr<event_store> for cqrs::options::store.
std::expected<std::shared_ptr<sqlite_event_store>, store_error> open_sqlite_event_store(const std::string& path,
                                                                                       sqlite_options options = {});

} // namespace cqrs
