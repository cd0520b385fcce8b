// The SQLite event store: group commit by a writer thread, pooled readers, the decoded-chunk cache, snapshots and
// dead letters; its connections, schema and open checks are in detail/sqlite_connection.hpp.
#include "actors/sqlite_event_store.hpp"
#include "actors/detail/chunk_cache.hpp"
#include "actors/detail/event_codecs.hpp"
#include "actors/detail/group_commit.hpp"
#include "actors/detail/sqlite_connection.hpp"
#include "actors/detail/store_support.hpp"
#include "actors/event_checksum.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cqrs {
namespace {

using namespace detail::sqlite;
using detail::codec_cursor;
using detail::pending_append;

/// A read fetches at most this many events (or bytes of payload) before it hands them to the visitor, so that
/// its read transaction (which holds back WAL checkpoints) stays short and huge payloads are not all buffered.
constexpr std::size_t fetch_events = 1024;
constexpr std::size_t fetch_bytes = std::size_t{4} << 20;
/// Idle read connections kept for reuse; more concurrent readers open (and later close) their own.
constexpr std::size_t max_idle_readers = 8;
/// Stream versions the writer remembers; beyond this the cache starts over (versions reload from the file).
constexpr std::size_t max_cached_streams = std::size_t{1} << 20;

/// Events a read fetched in one go, and whether the query ran out or failed after them.
struct chunk {
  std::vector<envelope> events;
  bool exhausted = false;
  std::optional<event_read_error> failure;

  void clear() {
    events.clear();
    exhausted = false;
    failure.reset();
  }
};

class sqlite_store final : public sqlite_event_store {
public:
  sqlite_store(std::string path, sqlite_options options, writer write, std::unique_ptr<reader> first_reader,
               log_position head)
      : path_(std::move(path)), options_(std::move(options)), writer_(std::move(write)), head_(head),
        committer_(options_.max_batch_appends,
                   [this](std::vector<pending_append>& batch, const std::vector<snapshot>& snapshots,
                          const std::vector<dead_letter>& dead_letters) {
                     return commit(batch, snapshots, dead_letters);
                   },
                   listeners_) {
    idle_readers_.push_back(std::move(first_reader));
  }

  /// Commits everything queued (appends and snapshots) and calls every queued callback before it returns.
  ~sqlite_store() override { committer_.stop(); }

  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;

  std::expected<append_result, store_error> append(append_request request) override {
    auto accepted = accept(std::move(request), {});
    if (!accepted)
      return std::unexpected(std::move(accepted.error()));
    return committer_.append(std::move(*accepted));
  }

  bool appends_in_background() const override { return true; }

  void append_async(append_request request, append_callback done) override {
    auto accepted = accept(std::move(request), {});
    if (!accepted) {
      done(std::unexpected(std::move(accepted.error())));
      return;
    }
    accepted->done = std::move(done);
    committer_.append_async(std::move(*accepted));
  }

  std::optional<recorded_command> find_command(const std::string& command_id) const override {
    if (command_id.empty())
      return std::nullopt;
    auto lease = take_reader();
    auto* query = lease.get()->find_command.get();
    reset_on_exit reset{query};
    bind_text(query, 1, command_id);
    // The stream of its first event; its last position and version, its earliest time. A damaged row would name
    // another stream or version to a re-sent command, so each must pass its checksum, as events read do.
    std::optional<recorded_command> found;
    std::int64_t earliest = 0;
    int step = SQLITE_ROW;
    while ((step = sqlite3_step(query)) == SQLITE_ROW) {
      auto position = static_cast<log_position>(column_integer(query, 0));
      auto type = column_text(query, 1);
      auto id = column_text(query, 2);
      auto version = static_cast<stream_version>(column_integer(query, 3));
      auto timestamp = column_integer(query, 5);
      check_checksum(stored_event_fields{position, type, id, version, column_text(query, 4), timestamp,
                                         column_text(query, 6), column_text(query, 7), column_text(query, 8)},
                     column_integer(query, 9), "event " + std::to_string(position) + " of command " + command_id,
                     "");
      // A damaged index can list a row twice; counted twice, it would add an event to the answer.
      if (found && position <= found->last_position) {
        if (!passed_over_damage())
          throw event_read_error("command " + command_id + " lists event " + std::to_string(position) + " twice: "
                                   + path_ + " was changed",
                                 position, std::string{column_text(query, 4)});
        continue;
      }
      if (!found) {
        found = recorded_command{stream_id{std::string{type}, std::string{id}}, position, position, version, 0, {}};
        earliest = timestamp;
      }
      found->last_position = position;
      found->version = std::max(found->version, version);
      ++found->events;
      earliest = std::min(earliest, timestamp);
    }
    if (step != SQLITE_DONE)
      throw event_read_error("looking up command " + command_id + " in " + path_
                               + " failed: " + error_text(lease.get()->database.get()),
                             0, "");
    if (found)
      found->timestamp = from_microseconds(earliest);
    return found;
  }

  void save_snapshot(snapshot taken) override {
    if (!healthy_.load(std::memory_order_acquire))
      return; // the writer would drop it anyway
    committer_.save_snapshot(std::move(taken));
  }

  void record_dead_letter(dead_letter letter) override {
    if (!healthy_.load(std::memory_order_acquire))
      return; // the writer would drop it anyway
    committer_.record_dead_letter(std::move(letter));
  }

  std::optional<snapshot> load_snapshot(const stream_id& stream) const override {
    // Snapshots not yet committed first: one that moves to the file meanwhile is then found there.
    auto result = committer_.waiting_snapshot(stream);
    auto lease = take_reader();
    auto* query = lease.get()->load_snapshot.get();
    reset_on_exit reset{query};
    bind_text(query, 1, stream.type);
    bind_text(query, 2, stream.id);
    auto step = sqlite3_step(query);
    if (step == SQLITE_ROW) {
      auto version = static_cast<stream_version>(column_integer(query, 0));
      auto format_version = static_cast<std::uint32_t>(column_integer(query, 1));
      auto state = column_text(query, 2);
      // A snapshot is a shortcut: one whose bytes were changed is passed over, and the stream is replayed instead.
      if (static_cast<std::uint64_t>(column_integer(query, 3))
          != snapshot_checksum(stored_snapshot_fields{stream.type, stream.id, version, format_version, state}))
        damaged_snapshots_.fetch_add(1, std::memory_order_relaxed);
      else if (!result || version > result->version)
        result = snapshot{stream, version, format_version, std::string{state}};
    } else if (step != SQLITE_DONE) {
      throw event_read_error("reading the snapshot of " + stream.to_string() + " from " + path_
                               + " failed: " + error_text(lease.get()->database.get()),
                             0, "");
    }
    return result;
  }

  stream_version read_stream(const stream_id& stream, stream_version after_version,
                             const event_visitor& visit) const override {
    auto shared_stream = std::make_shared<const stream_id>(stream);
    codec_cursor codecs{codec_snapshot()};
    chunk fetched;
    auto from = after_version;
    bool delivered = false;
    bool version_asked = false;
    while (true) {
      fetched.clear();
      {
        auto lease = take_reader();
        auto* query = lease.get()->stream_events.get();
        reset_on_exit reset{query};
        bind_text(query, 1, stream.type);
        bind_text(query, 2, stream.id);
        sqlite3_bind_int64(query, 3, static_cast<sqlite3_int64>(from));
        fetch(query, lease.get()->database.get(), fetched, [&](sqlite3_stmt* row, envelope& event) {
          event.stream = shared_stream;
          event.position = static_cast<log_position>(column_integer(row, 0));
          event.version = static_cast<stream_version>(column_integer(row, 1));
          return decode_into(event, codecs, column_text(row, 2), column_integer(row, 3), column_text(row, 4),
                             column_text(row, 5), column_text(row, 6), column_integer(row, 7));
        });
      }
      for (auto& event : fetched.events) {
        // Versions too are gap-free: a missing one is an event deleted from the file, and the state folded
        // without it would be wrong.
        if (event.version != from + 1 && !passed_over_damage())
          throw event_read_error("stream " + stream.to_string() + " has no event at version "
                                   + std::to_string(from + 1) + " (the next one is " + std::to_string(event.version)
                                   + ", at position " + std::to_string(event.position) + "): " + path_
                                   + " was changed",
                                 event.position, std::string{event.type_name});
        if (!visit(event))
          return current_stream_version(stream);
        from = event.version;
        delivered = true;
      }
      if (fetched.failure)
        throw *fetched.failure;
      // The last chunk ended the stream as its snapshot saw it, so the last event's version is the stream's
      // version consistent with what the visitor saw.
      if (fetched.exhausted && delivered)
        return from;
      // A stream read from its start that had no events in that snapshot is at version 0 as the visitor saw it;
      // every new aggregate asks this, and a second query for it costs as much as the first.
      if (fetched.exhausted && from == 0)
        return 0;
      if (fetched.exhausted) {
        // Nothing after `after_version` in that snapshot; if events arrived since, read them too rather than
        // report a version whose events the visitor never saw.
        auto version = current_stream_version(stream);
        if (version <= from)
          return version;
        // The read after the version query sees at least what that query saw, so finding nothing again means the
        // file's index names versions that its rows do not have (a damaged b-tree): asking again would never end.
        if (version_asked) {
          if (!passed_over_damage())
            throw event_read_error("stream " + stream.to_string() + " is at version " + std::to_string(version)
                                     + " by its index, but has no event after version " + std::to_string(from)
                                     + ": " + path_ + " was changed",
                                   0, "");
          return from;
        }
        version_asked = true;
      }
    }
  }

  void read_all(log_position after_position, log_position up_to, const event_visitor& visit) const override {
    // Complete chunks come from the shared cache, decoded once for all readers; the chunk at the head from the
    // events the writer kept as it committed them. What neither holds is read from the file.
    bool stopped = false;
    auto next = cache_.read(after_position, up_to, head_, visit, stopped);
    if (!stopped)
      read_direct(next, up_to, visit);
  }

  /// read_all straight from the file, decoding each event for this reader alone.
  void read_direct(log_position after_position, log_position up_to, const event_visitor& visit) const {
    codec_cursor codecs{codec_snapshot()};
    chunk fetched;
    auto next = after_position;
    std::shared_ptr<const stream_id> last_stream;
    while (next < up_to) {
      fetched.clear();
      {
        auto lease = take_reader();
        auto* query = lease.get()->log_events.get();
        reset_on_exit reset{query};
        sqlite3_bind_int64(query, 1, static_cast<sqlite3_int64>(next));
        sqlite3_bind_int64(query, 2, static_cast<sqlite3_int64>(std::min<log_position>(up_to, INT64_MAX)));
        fetch(query, lease.get()->database.get(), fetched, [&](sqlite3_stmt* row, envelope& event) {
          event.position = static_cast<log_position>(column_integer(row, 0));
          auto type = column_text(row, 1);
          auto id = column_text(row, 2);
          // Consecutive events of one stream share its id, as the engine's own envelopes do.
          if (!last_stream || last_stream->type != type || last_stream->id != id)
            last_stream = std::make_shared<const stream_id>(stream_id{std::string{type}, std::string{id}});
          event.stream = last_stream;
          event.version = static_cast<stream_version>(column_integer(row, 3));
          return decode_into(event, codecs, column_text(row, 4), column_integer(row, 5), column_text(row, 6),
                             column_text(row, 7), column_text(row, 8), column_integer(row, 9));
        });
      }
      for (auto& event : fetched.events) {
        // Positions are gap-free by construction; a missing one means the file was changed under the engine, and
        // going on would fold a log that is not the one written: stop there, naming it.
        if (event.position != next + 1 && !passed_over_damage())
          throw event_read_error("the log has no event at position " + std::to_string(next + 1) + " (the next one is "
                                   + std::to_string(event.position) + "): " + path_ + " was changed",
                                 next + 1, "");
        if (!visit(event))
          return;
        next = event.position;
      }
      if (fetched.failure)
        throw *fetched.failure;
      if (fetched.events.empty())
        return;
    }
  }

  log_position head() const override { return head_.load(std::memory_order_acquire); }

  void add_event_types(std::vector<event_type_codec> codecs) override {
    codecs_.add(std::move(codecs));
  }

  std::uint64_t subscribe(head_listener listener) override { return listeners_.subscribe(std::move(listener)); }
  void unsubscribe(std::uint64_t subscription) override { listeners_.unsubscribe(subscription); }

  bool healthy() const override { return healthy_.load(std::memory_order_acquire); }

  std::optional<std::string> failure() const override {
    std::lock_guard lock{failure_mutex_};
    return failure_;
  }

  sqlite_store_statistics statistics() const override {
    sqlite_store_statistics result{transactions_.load(std::memory_order_relaxed),
                                   appends_.load(std::memory_order_relaxed),
                                   events_.load(std::memory_order_relaxed),
                                   conflicts_.load(std::memory_order_relaxed),
                                   0,
                                   snapshots_.load(std::memory_order_relaxed)};
    result.chunks_decoded = cache_.decoded();
    result.chunks_reused = cache_.reused();
    result.damage_passed = damage_passed_.load(std::memory_order_relaxed);
    result.damaged_snapshots = damaged_snapshots_.load(std::memory_order_relaxed);
    result.dead_letters = dead_letters_.load(std::memory_order_relaxed);
    result.queued = committer_.queued();
    return result;
  }

  const std::string& path() const override { return path_; }

private:
  /// A read connection borrowed from the pool, given back when the lease ends.
  class reader_lease {
  public:
    reader_lease(const sqlite_store& store, std::unique_ptr<reader> borrowed)
        : store_(store), reader_(std::move(borrowed)) {}
    reader_lease(const reader_lease&) = delete;
    reader_lease& operator=(const reader_lease&) = delete;
    ~reader_lease() { store_.give_back(std::move(reader_)); }
    reader* get() const { return reader_.get(); }

  private:
    const sqlite_store& store_;
    std::unique_ptr<reader> reader_;
  };

  reader_lease take_reader() const {
    {
      std::lock_guard lock{readers_mutex_};
      if (!idle_readers_.empty()) {
        auto borrowed = std::move(idle_readers_.back());
        idle_readers_.pop_back();
        return reader_lease{*this, std::move(borrowed)};
      }
    }
    auto opened = open_reader(path_, options_);
    if (!opened)
      throw event_read_error("cannot open a read connection to " + path_ + ": " + opened.error(), 0, "");
    return reader_lease{*this, std::move(*opened)};
  }

  void give_back(std::unique_ptr<reader> returned) const {
    std::unique_lock lock{readers_mutex_};
    if (idle_readers_.size() < max_idle_readers)
      idle_readers_.push_back(std::move(returned));
    // Otherwise the surplus connection closes when `returned` goes out of scope, after the lock is released.
  }

private:
  /// Reads and decodes the chunk's events from the file; nullptr when it is not all there or does not decode.
  std::shared_ptr<const detail::decoded_chunk> decode_chunk(log_position index) const {
    auto result = std::make_shared<detail::decoded_chunk>();
    std::size_t count = 0;
    codec_cursor codecs{codec_snapshot()};
    // Events of one stream share its id (the engine's own envelopes do too); the order workload interleaves
    // many streams, so remember every stream of the chunk rather than only the last one.
    std::unordered_map<std::string_view, std::shared_ptr<const stream_id>> streams;
    auto lease = take_reader();
    auto* query = lease.get()->log_events.get();
    reset_on_exit reset{query};
    sqlite3_bind_int64(query, 1, static_cast<sqlite3_int64>(index * detail::chunk_events));
    sqlite3_bind_int64(query, 2, static_cast<sqlite3_int64>((index + 1) * detail::chunk_events));
    int step = SQLITE_ROW;
    while ((step = sqlite3_step(query)) == SQLITE_ROW && count < detail::chunk_events) {
      auto& event = result->events[count++];
      event.position = static_cast<log_position>(column_integer(query, 0));
      // Each position in turn, as read_direct checks: a damaged b-tree (a page linked twice) can give 1,024 rows
      // in the range with some twice and others missing. The direct read then refuses at the first one out of turn.
      if (event.position != index * detail::chunk_events + count)
        return nullptr;
      auto type = column_text(query, 1);
      auto id = column_text(query, 2);
      if (auto found = streams.find(id); found != streams.end() && found->second->type == type) {
        event.stream = found->second;
      } else {
        if (found != streams.end())
          streams.erase(found);
        auto fresh = std::make_shared<const stream_id>(stream_id{std::string{type}, std::string{id}});
        // Keyed by the stream's own copy of the id, which outlives the row.
        streams.emplace(std::string_view{fresh->id}, fresh);
        event.stream = std::move(fresh);
      }
      event.version = static_cast<stream_version>(column_integer(query, 3));
      result->bytes += decode_into(event, codecs, column_text(query, 4), column_integer(query, 5),
                                   column_text(query, 6), column_text(query, 7), column_text(query, 8),
                                   column_integer(query, 9));
    }
    if (step != SQLITE_DONE || count != detail::chunk_events)
      return nullptr;
    result->filled.store(count, std::memory_order_release);
    return result;
  }

  /// Steps a bound query and decodes its rows until the chunk is full, the query runs out or a row fails. The
  /// events before a failing row are kept: the visitor gets them before the failure is thrown.
  template <class Decode>
  void fetch(sqlite3_stmt* query, sqlite3* database, chunk& fetched, Decode decode) const {
    std::size_t bytes = 0;
    while (fetched.events.size() < fetch_events && bytes < fetch_bytes) {
      auto step = sqlite3_step(query);
      if (step == SQLITE_DONE) {
        fetched.exhausted = true;
        return;
      }
      if (step != SQLITE_ROW) {
        fetched.failure.emplace("reading " + path_ + " failed: " + error_text(database), 0, "");
        return;
      }
      auto& event = fetched.events.emplace_back();
      try {
        bytes += decode(query, event);
      } catch (const event_read_error& failure) {
        fetched.events.pop_back();
        fetched.failure = failure;
        return;
      }
    }
  }

  /// Fills the envelope's remaining fields from a row (its position, stream and version already set); throws
  /// event_read_error if the row fails its checksum or the payload cannot be decoded. Returns the payload's size,
  /// which bounds how much a read buffers.
  std::size_t decode_into(envelope& event, codec_cursor& codecs, std::string_view type, std::int64_t timestamp,
                          std::string_view command_id, std::string_view correlation_id, std::string_view payload,
                          std::int64_t stored_checksum) const {
    check_checksum(stored_event_fields{event.position, event.stream->type, event.stream->id, event.version, type,
                                       timestamp, command_id, correlation_id, payload},
                   stored_checksum, detail::describe(event), "; the read stops before it");
    detail::decode_payload(event, codecs, type, payload);
    event.timestamp = from_microseconds(timestamp);
    event.command_id = command_id;
    event.correlation_id = correlation_id;
    return payload.size();
  }

  /// Throws event_read_error naming `what` when the row's stored checksum is not the one of its fields (unless
  /// reads go on past damage).
  void check_checksum(const stored_event_fields& row, std::int64_t stored, const std::string& what,
                      std::string_view then) const {
    if (static_cast<std::uint64_t>(stored) != event_checksum(row) && !passed_over_damage())
      throw event_read_error(what + " fails its checksum: its stored bytes were changed in " + path_
                               + " after it was written" + std::string{then},
                             row.position, std::string{row.type_name});
  }

  /// Whether a read goes on past a gap or a checksum mismatch (sqlite_options::read_past_damage); each one passed
  /// is counted.
  bool passed_over_damage() const {
    if (!options_.read_past_damage)
      return false;
    damage_passed_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  stream_version current_stream_version(const stream_id& stream) const {
    auto lease = take_reader();
    auto* query = lease.get()->stream_version.get();
    reset_on_exit reset{query};
    bind_text(query, 1, stream.type);
    bind_text(query, 2, stream.id);
    auto step = sqlite3_step(query);
    if (step == SQLITE_ROW)
      return static_cast<stream_version>(column_integer(query, 0));
    if (step == SQLITE_DONE)
      return 0;
    throw event_read_error("reading " + path_ + " failed: " + error_text(lease.get()->database.get()), 0, "");
  }

  std::shared_ptr<const detail::codec_map> codec_snapshot() const { return codecs_.snapshot(); }

  /// Checks the request and encodes its payloads on the appender's thread, so that the writer only binds text.
  std::expected<pending_append, store_error> accept(append_request request, append_callback done) const {
    if (auto unusable = detail::unusable_request(request, false))
      return std::unexpected(std::move(*unusable));
    if (!healthy_.load(std::memory_order_acquire))
      return std::unexpected(unhealthy_error());
    auto payloads = codecs_.encode(request.events);
    if (!payloads)
      return std::unexpected(std::move(payloads.error()));
    return pending_append{std::move(request), std::move(*payloads), std::move(done)};
  }

  /// Runs one transaction for the batch, the snapshots and the dead letters and sets every request's result. Returns the new head
  /// if events were committed. Runs on the writer thread only, so the writer connection and the version cache
  /// need no lock.
  std::optional<log_position> commit(std::vector<pending_append>& batch,
                                     const std::vector<snapshot>& snapshots,
                                     const std::vector<dead_letter>& dead_letters) noexcept {
    try {
      return commit_or_throw(batch, snapshots, dead_letters);
    } catch (const std::exception& error) {
      fail_batch(batch, std::string{"the batch failed: "} + error.what());
    } catch (...) {
      fail_batch(batch, "the batch failed with a non-standard exception");
    }
    return std::nullopt;
  }

  std::optional<log_position> commit_or_throw(std::vector<pending_append>& batch,
                                              const std::vector<snapshot>& snapshots,
                                              const std::vector<dead_letter>& dead_letters) {
    if (!healthy_.load(std::memory_order_acquire)) {
      // Snapshots are dropped too (they are only a cache), and so are dead letters (status() still lists them).
      for (auto& pending : batch)
        pending.result = std::unexpected(unhealthy_error());
      return std::nullopt;
    }
    auto* database = writer_.database.get();
    auto run = [&](sqlite3_stmt* statement) {
      reset_on_exit reset{statement};
      return sqlite3_step(statement);
    };
    if (run(writer_.begin.get()) != SQLITE_DONE) {
      fail_batch(batch, "cannot begin a transaction on " + path_ + ": " + error_text(database));
      return std::nullopt;
    }
    // Another writer (a second store on this file, another process) would make the cached head and versions
    // wrong: refuse to build on them.
    log_position file_head = 0;
    {
      reset_on_exit reset{writer_.last_position.get()};
      if (sqlite3_step(writer_.last_position.get()) != SQLITE_ROW) {
        fail_batch(batch, "cannot read the last position of " + path_ + ": " + error_text(database));
        return std::nullopt;
      }
      file_head = static_cast<log_position>(column_integer(writer_.last_position.get(), 0));
    }
    auto head = head_.load(std::memory_order_relaxed);
    if (file_head != head) {
      fail_batch(batch, path_ + " was changed by another writer (its last position is " + std::to_string(file_head)
                          + ", this store wrote up to " + std::to_string(head) + ")");
      return std::nullopt;
    }

    auto timestamp = to_microseconds(std::chrono::system_clock::now());
    auto next_position = head + 1;
    detail::shared_stream_map<stream_version> batch_versions;
    batch_versions.reserve(batch.size());
    std::uint64_t accepted = 0;
    std::uint64_t accepted_events = 0;
    std::uint64_t refused = 0;
    for (auto& pending : batch) {
      auto& request = pending.request;
      stream_version current = 0;
      if (auto found = batch_versions.find(*request.stream); found != batch_versions.end()) {
        current = found->second;
      } else {
        auto loaded = cached_version(request.stream);
        if (!loaded) {
          fail_batch(batch, std::move(loaded.error()));
          return std::nullopt;
        }
        current = *loaded;
      }
      if (current != request.expected_version) {
        pending.result = std::unexpected(store_error{
          std::string{errc::concurrency_conflict}, "stream " + request.stream->to_string() + " is at version "
                                          + std::to_string(current) + ", expected "
                                          + std::to_string(request.expected_version)});
        ++refused;
        continue;
      }
      append_result result;
      result.first_position = next_position;
      auto* insert = writer_.insert.get();
      for (std::size_t index = 0; index < request.events.size(); ++index) {
        reset_on_exit reset{insert};
        sqlite3_bind_int64(insert, 1, static_cast<sqlite3_int64>(next_position));
        bind_text(insert, 2, request.stream->type);
        bind_text(insert, 3, request.stream->id);
        sqlite3_bind_int64(insert, 4, static_cast<sqlite3_int64>(current + index + 1));
        bind_text(insert, 5, request.events[index].type_name);
        sqlite3_bind_int64(insert, 6, timestamp);
        bind_text(insert, 7, request.command_id);
        bind_text(insert, 8, request.correlation_id);
        bind_text(insert, 9, pending.payloads[index]);
        sqlite3_bind_int64(insert, 10, static_cast<sqlite3_int64>(event_checksum(stored_event_fields{
                                         next_position, request.stream->type, request.stream->id,
                                         current + index + 1, request.events[index].type_name, timestamp,
                                         request.command_id, request.correlation_id, pending.payloads[index]})));
        if (sqlite3_step(insert) != SQLITE_DONE) {
          fail_batch(batch, "writing to " + path_ + " failed: " + error_text(database));
          return std::nullopt;
        }
        ++next_position;
      }
      result.last_position = next_position - 1;
      if (request.remember_command_id && !request.command_id.empty()) {
        auto* record = writer_.record_command.get();
        reset_on_exit reset{record};
        bind_text(record, 1, request.command_id);
        sqlite3_bind_int64(record, 2, static_cast<sqlite3_int64>(result.first_position));
        sqlite3_bind_int64(record, 3, static_cast<sqlite3_int64>(result.last_position));
        if (sqlite3_step(record) != SQLITE_DONE) {
          fail_batch(batch, "recording command " + request.command_id + " in " + path_
                              + " failed: " + error_text(database));
          return std::nullopt;
        }
      }
      result.version = current + request.events.size();
      batch_versions.insert_or_assign(request.stream, result.version);
      pending.result = result;
      ++accepted;
      accepted_events += request.events.size();
    }
    auto* save = writer_.save_snapshot.get();
    for (const auto& taken : snapshots) {
      reset_on_exit reset{save};
      bind_text(save, 1, taken.stream.type);
      bind_text(save, 2, taken.stream.id);
      sqlite3_bind_int64(save, 3, static_cast<sqlite3_int64>(taken.version));
      sqlite3_bind_int64(save, 4, static_cast<sqlite3_int64>(taken.format_version));
      bind_text(save, 5, taken.state);
      sqlite3_bind_int64(save, 6, static_cast<sqlite3_int64>(snapshot_checksum(stored_snapshot_fields{
                                    taken.stream.type, taken.stream.id, taken.version, taken.format_version,
                                    taken.state})));
      if (sqlite3_step(save) != SQLITE_DONE) {
        fail_batch(batch, "writing a snapshot of " + taken.stream.to_string() + " to " + path_
                            + " failed: " + error_text(database));
        return std::nullopt;
      }
    }
    auto* keep = writer_.save_dead_letter.get();
    for (const auto& letter : dead_letters) {
      reset_on_exit reset{keep};
      bind_text(keep, 1, letter.projection);
      sqlite3_bind_int64(keep, 2, static_cast<sqlite3_int64>(letter.failure.position));
      bind_text(keep, 3, letter.failure.type_name);
      bind_text(keep, 4, letter.failure.message);
      sqlite3_bind_int64(keep, 5, to_microseconds(letter.recorded));
      if (sqlite3_step(keep) != SQLITE_DONE) {
        fail_batch(batch, "writing a dead letter of projection " + letter.projection + " to " + path_
                            + " failed: " + error_text(database));
        return std::nullopt;
      }
    }
    if (run(writer_.commit.get()) != SQLITE_DONE) {
      fail_batch(batch, "the commit to " + path_ + " failed: " + error_text(database));
      return std::nullopt;
    }
    conflicts_.fetch_add(refused, std::memory_order_relaxed);
    snapshots_.fetch_add(snapshots.size(), std::memory_order_relaxed);
    dead_letters_.fetch_add(dead_letters.size(), std::memory_order_relaxed);
    if (accepted == 0) {
      if (!snapshots.empty() || !dead_letters.empty())
        transactions_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    if (versions_.size() + batch_versions.size() > max_cached_streams)
      versions_.clear();
    for (auto& [stream, version] : batch_versions)
      versions_.insert_or_assign(stream, version);
    transactions_.fetch_add(1, std::memory_order_relaxed);
    appends_.fetch_add(accepted, std::memory_order_relaxed);
    events_.fetch_add(accepted_events, std::memory_order_relaxed);
    keep_committed(batch, timestamp);
    head_.store(next_position - 1, std::memory_order_release);
    return next_position - 1;
  }

  /// Keeps the batch's committed events, as appended (no decoding), in the cache's chunk at the head for readers:
  /// the engine's projections then follow new events without reading the file.
  void keep_committed(std::vector<pending_append>& batch, std::int64_t timestamp) {
    auto time = from_microseconds(timestamp);
    for (auto& pending : batch) {
      if (!pending.result)
        continue;
      auto& request = pending.request;
      auto position = pending.result->first_position;
      auto version = pending.result->version - request.events.size();
      for (std::size_t index = 0; index < request.events.size(); ++index, ++position) {
        envelope event;
        event.stream = request.stream;
        event.version = ++version;
        event.position = position;
        event.type_name = request.events[index].type_name;
        event.timestamp = time;
        event.command_id = request.command_id;
        event.correlation_id = request.correlation_id;
        event.payload = std::move(request.events[index].payload);
        cache_.keep(std::move(event), pending.payloads[index].size());
      }
    }
  }

  /// The stream's committed version: from the cache, or from the file the first time the stream is appended to.
  std::expected<stream_version, std::string> cached_version(const std::shared_ptr<const stream_id>& shared) {
    const auto& stream = *shared;
    if (auto found = versions_.find(stream); found != versions_.end())
      return found->second;
    auto* query = writer_.stream_version.get();
    reset_on_exit reset{query};
    bind_text(query, 1, stream.type);
    bind_text(query, 2, stream.id);
    stream_version version = 0;
    auto step = sqlite3_step(query);
    if (step == SQLITE_ROW)
      version = static_cast<stream_version>(column_integer(query, 0));
    else if (step != SQLITE_DONE)
      return std::unexpected("reading the version of " + stream.to_string() + " from " + path_
                             + " failed: " + error_text(writer_.database.get()));
    if (versions_.size() >= max_cached_streams)
      versions_.clear();
    versions_.emplace(shared, version);
    return version;
  }

  /// Rolls back, marks the store unhealthy and fails every request of the batch: nothing is acknowledged.
  void fail_batch(std::vector<pending_append>& batch, std::string reason) {
    auto* database = writer_.database.get();
    if (!sqlite3_get_autocommit(database)) {
      // Some errors already rolled the transaction back; a second rollback is then harmless.
      reset_on_exit reset{writer_.rollback.get()};
      sqlite3_step(writer_.rollback.get());
    }
    {
      std::lock_guard lock{failure_mutex_};
      if (!failure_)
        failure_ = reason;
    }
    healthy_.store(false, std::memory_order_release);
    for (auto& pending : batch)
      pending.result = std::unexpected(
        store_error{std::string{errc::store_failure}, reason + "; nothing of this append was acknowledged and the "
                                                               "store refuses further appends until it is reopened"});
  }

  store_error unhealthy_error() const {
    return store_error{std::string{errc::store_failure}, "store " + path_ + " is unhealthy after "
                                                           + failure().value_or("a failure") + "; reopen it to continue"};
  }

  const std::string path_;
  sqlite_options options_;

  // The writer's state: touched only on the writer thread.
  writer writer_;
  detail::shared_stream_map<stream_version> versions_;

  std::atomic<log_position> head_;
  std::atomic<bool> healthy_{true};
  mutable std::mutex failure_mutex_;
  std::optional<std::string> failure_;
  std::atomic<std::uint64_t> transactions_{0};
  std::atomic<std::uint64_t> appends_{0};
  std::atomic<std::uint64_t> events_{0};
  std::atomic<std::uint64_t> conflicts_{0};
  std::atomic<std::uint64_t> snapshots_{0};
  std::atomic<std::uint64_t> dead_letters_{0};

  mutable std::mutex readers_mutex_;
  mutable std::vector<std::unique_ptr<reader>> idle_readers_;

  /// read_all's decoded chunks (detail/chunk_cache.hpp).
  detail::chunk_cache cache_{[this](log_position index) { return decode_chunk(index); }};
  mutable std::atomic<std::uint64_t> damage_passed_{0};
  mutable std::atomic<std::uint64_t> damaged_snapshots_{0};

  detail::codec_registry codecs_;

  detail::head_listeners listeners_;

  /// Last member: its writer thread starts once everything it uses is constructed.
  detail::group_commit committer_;
};

} // namespace

std::expected<std::shared_ptr<sqlite_event_store>, store_error> open_sqlite_event_store(const std::string& path,
                                                                                       sqlite_options options) {
  auto refuse = [](std::string message) {
    return std::unexpected(store_error{std::string{errc::store_failure}, std::move(message)});
  };
  if (sqlite3_threadsafe() == 0)
    return refuse("the SQLite library was built without thread support");
  auto write = open_writer(path, options);
  if (!write)
    return refuse(std::move(write.error()));
  auto head = query_integer(write->database.get(), last_position_sql);
  if (!head)
    return refuse("cannot read the last position of " + path + ": " + head.error());
  auto first_reader = open_reader(path, options);
  if (!first_reader)
    return refuse("cannot open a read connection to " + path + ": " + first_reader.error());
  return std::make_shared<sqlite_store>(path, std::move(options), std::move(*write), std::move(*first_reader),
                                        static_cast<log_position>(*head));
}

} // namespace cqrs
