// The PostgreSQL event store: group commit by a writer thread that numbers events under the head's row lock,
// pooled readers, a listener connection for the heads other processes commit, reconnection with backoff and the
// resolution of commits whose outcome a dropped connection hid. Connections and schema: detail/postgres_connection.
#include "actors/postgres_event_store.hpp"
#include "actors/detail/chunk_cache.hpp"
#include "actors/detail/event_codecs.hpp"
#include "actors/detail/group_commit.hpp"
#include "actors/detail/postgres_connection.hpp"
#include "actors/detail/store_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace cqrs {
namespace {

using namespace detail::postgres;
using detail::codec_cursor;
using detail::pending_append;

/// A read fetches at most this many events per query, so that huge logs are never buffered whole.
constexpr int page_events = 1024;
/// Idle read connections kept for reuse; more concurrent readers open (and later close) their own.
constexpr std::size_t max_idle_readers = 8;
/// Stream versions the writer remembers; beyond this the cache starts over (versions reload from the server).
constexpr std::size_t max_cached_streams = std::size_t{1} << 20;
/// How long a closing store keeps trying to reach the server for what is still queued.
constexpr std::chrono::seconds closing_patience{5};

/// Whether the text is UTF-8 without NUL characters, which PostgreSQL's text columns refuse.
bool storable_text(std::string_view text) {
  for (std::size_t index = 0; index < text.size();) {
    auto byte = static_cast<unsigned char>(text[index]);
    std::size_t length = byte < 0x80            ? 1
                         : (byte >> 5) == 0x6   ? 2
                         : (byte >> 4) == 0xE   ? 3
                         : (byte >> 3) == 0x1E ? 4
                                                : 0;
    if (byte == 0 || length == 0 || index + length > text.size())
      return false;
    for (std::size_t next = 1; next < length; ++next)
      if ((static_cast<unsigned char>(text[index + next]) >> 6) != 0x2)
        return false;
    index += length;
  }
  return true;
}

/// Whether JSON text holds the escape \u0000, which jsonb refuses.
bool has_escaped_nul(std::string_view json) {
  for (auto found = json.find('\\'); found != std::string_view::npos; found = json.find('\\', found + 2))
    if (json.substr(found + 1, 5) == "u0000")
      return true;
  return false;
}

/// The pages' queries, prepared on every read connection.
constexpr const char* log_page = "log_page";
constexpr const char* stream_page = "stream_page";
constexpr const char* stream_version_query = "stream_version";

/// A read connection with its statements prepared.
struct reader {
  connection link;
};

std::expected<std::unique_ptr<reader>, std::string> open_reader(const std::string& conninfo, const names& store) {
  auto opened = connect(conninfo);
  if (!opened)
    return std::unexpected(std::move(opened.error()));
  auto prepared = std::make_unique<reader>(reader{std::move(*opened)});
  // The pages come back in binary (see decode_row): the server sends the integers and the timestamp as they are
  // stored instead of formatting them as text.
  const std::string columns = "position, stream_type, stream_id, version, type_name, recorded, command_id, "
                              "correlation_id, payload FROM "
                              + store.events;
  const std::pair<const char*, std::string> statements[] = {
    {log_page, "SELECT " + columns + " WHERE position > $1 AND position <= $2 ORDER BY position LIMIT "
                 + std::to_string(page_events)},
    {stream_page, "SELECT " + columns + " WHERE stream_type = $1 AND stream_id = $2 AND version > $3 ORDER BY "
                    "version LIMIT " + std::to_string(page_events)},
    {stream_version_query, "SELECT coalesce(max(version), 0) FROM " + store.events
                             + " WHERE stream_type = $1 AND stream_id = $2"},
  };
  for (const auto& [name, sql] : statements) {
    result done{PQprepare(prepared->link.get(), name, sql.c_str(), 0, nullptr)};
    if (!done || PQresultStatus(done.get()) != PGRES_COMMAND_OK)
      return std::unexpected(std::string{"cannot prepare a read: "} + PQerrorMessage(prepared->link.get()));
  }
  return prepared;
}

/// Runs a prepared statement with text parameters; its rows in binary (PostgreSQL's send formats).
std::expected<result, failure> run_prepared(PGconn* link, const char* name, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& param : params)
    values.push_back(param.c_str());
  return checked(link, PQexecPrepared(link, name, static_cast<int>(values.size()), values.data(), nullptr, nullptr,
                                      1));
}

/// A bigint column of a binary row (network byte order).
std::int64_t binary_integer(const PGresult* rows, int row, int column) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(PQgetvalue(rows, row, column));
  if (PQgetlength(rows, row, column) != 8)
    return 0;
  std::uint64_t number = 0;
  for (int index = 0; index < 8; ++index)
    number = (number << 8) | bytes[index];
  return static_cast<std::int64_t>(number);
}

/// A timestamptz column of a binary row: microseconds since 2000-01-01, as microseconds since 1970-01-01.
std::int64_t binary_timestamp(const PGresult* rows, int row, int column) {
  constexpr std::int64_t epoch_difference = 946'684'800'000'000;
  return binary_integer(rows, row, column) + epoch_difference;
}

/// A jsonb column of a binary row: its format version (1), then its JSON text.
std::string_view binary_json(const PGresult* rows, int row, int column) {
  auto bytes = value(rows, row, column);
  return bytes.empty() ? bytes : bytes.substr(1);
}

/// How one attempt at a batch's transaction ended.
enum class attempt_outcome {
  committed,
  /// The connection dropped before COMMIT was sent: the server rolled the transaction back.
  not_committed,
  /// The connection dropped after COMMIT was sent: it may or may not have committed.
  unknown,
  /// The server refused a statement: the transaction was rolled back.
  refused,
};

struct attempt {
  attempt_outcome outcome = attempt_outcome::committed;
  std::string message{};
  /// The server's SQLSTATE when it refused the transaction.
  std::string state{};
  /// False when nothing went to the server (the short way, every request refused by the writer's own versions).
  bool sent = true;
  /// The head after the transaction (the locked head when it appended nothing).
  log_position head = 0;
  /// The first accepted request's first event, which identifies the transaction after a dropped COMMIT.
  const pending_append* first_accepted = nullptr;
  std::uint64_t accepted = 0;
  std::uint64_t accepted_events = 0;
  std::uint64_t refused = 0;
  /// Requests refused because their lease fence no longer held (counted in `refused` too).
  std::uint64_t fenced = 0;
  detail::shared_stream_map<stream_version> versions{};
  /// When the events were recorded (microseconds since the epoch).
  std::int64_t timestamp = 0;
};

/// A connection for the writer. A writer that stops mid-transaction (a paused process) would hold the log's lock
/// and stall every other process's appends: the server ends its statements and transactions after
/// transaction_timeout.
std::expected<connection, std::string> connect_writer(const std::string& conninfo,
                                                       const postgres_options& options) {
  auto link = connect(conninfo);
  if (!link || options.transaction_timeout.count() <= 0)
    return link;
  auto limit = std::to_string(options.transaction_timeout.count());
  auto set = execute(link->get(),
                     "SET statement_timeout = " + limit + "; SET idle_in_transaction_session_timeout = " + limit);
  if (!set)
    return std::unexpected(set.error().message);
  return link;
}

class postgres_store final : public postgres_event_store {
public:
  postgres_store(std::string conninfo, postgres_options options, connection writer, std::unique_ptr<reader> first,
                 log_position head)
      : conninfo_(std::move(conninfo)), options_(std::move(options)), names_(options_.schema),
        writer_(std::move(writer)), writer_head_(head), head_(head),
        committer_(options_.max_batch_appends,
                   [this](std::vector<pending_append>& batch, const std::vector<snapshot>& snapshots,
                          const std::vector<dead_letter>& dead_letters) {
                     return commit(batch, snapshots, dead_letters);
                   },
                   listeners_) {
    idle_readers_.push_back(std::move(first));
    if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
      wake_[0] = wake_[1] = -1;
    listener_ = std::thread{[this] { run_listener(); }};
  }

  /// Commits everything queued (trying to reach the server for a while if it cannot) and answers every request.
  ~postgres_store() override {
    closing_.store(true, std::memory_order_release);
    {
      std::lock_guard lock{backoff_mutex_};
    }
    backoff_.notify_all();
    if (wake_[1] >= 0) {
      char byte = 0;
      [[maybe_unused]] auto written = write(wake_[1], &byte, 1);
    }
    listener_.join();
    committer_.stop();
    for (int descriptor : wake_)
      if (descriptor >= 0)
        close(descriptor);
  }

  postgres_store(const postgres_store&) = delete;
  postgres_store& operator=(const postgres_store&) = delete;

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
    auto rows = read_query(
      "SELECT c.first_position, c.last_position, e.stream_type, e.stream_id, max(e.version), count(*), "
      "(extract(epoch FROM min(e.recorded)) * 1000000)::bigint FROM "
        + names_.commands + " c JOIN " + names_.events
        + " e ON e.position BETWEEN c.first_position AND c.last_position WHERE c.command_id = $1 "
          "GROUP BY 1, 2, 3, 4",
      {command_id}, "looking up command " + command_id);
    if (PQntuples(rows.get()) == 0)
      return std::nullopt;
    auto* row = rows.get();
    return recorded_command{stream_id{std::string{value(row, 0, 2)}, std::string{value(row, 0, 3)}},
                            static_cast<log_position>(integer_value(row, 0, 0)),
                            static_cast<log_position>(integer_value(row, 0, 1)),
                            static_cast<stream_version>(integer_value(row, 0, 4)),
                            static_cast<std::size_t>(integer_value(row, 0, 5)),
                            detail::from_microseconds(integer_value(row, 0, 6))};
  }

  void save_snapshot(snapshot taken) override {
    if (healthy_.load(std::memory_order_acquire))
      committer_.save_snapshot(std::move(taken));
  }

  void record_dead_letter(dead_letter letter) override {
    if (healthy_.load(std::memory_order_acquire))
      committer_.record_dead_letter(std::move(letter));
  }

  std::optional<snapshot> load_snapshot(const stream_id& stream) const override {
    // Snapshots not yet committed first: one that reaches the server meanwhile is then found there.
    auto result = committer_.waiting_snapshot(stream);
    auto rows = read_query("SELECT version, format, state FROM " + names_.snapshots
                             + " WHERE stream_type = $1 AND stream_id = $2",
                           {stream.type, stream.id}, "reading the snapshot of " + stream.to_string());
    if (PQntuples(rows.get()) == 1) {
      auto version = static_cast<stream_version>(integer_value(rows.get(), 0, 0));
      if (!result || version > result->version)
        result = snapshot{stream, version, static_cast<std::uint32_t>(integer_value(rows.get(), 0, 1)),
                          std::string{value(rows.get(), 0, 2)}};
    }
    return result;
  }

  stream_version read_stream(const stream_id& stream, stream_version after_version,
                             const event_visitor& visit) const override {
    auto shared_stream = std::make_shared<const stream_id>(stream);
    codec_cursor codecs{codecs_.snapshot()};
    auto from = after_version;
    bool delivered = false;
    bool version_asked = false;
    while (true) {
      auto rows = read_prepared(stream_page, {stream.type, stream.id, std::to_string(from)},
                                "reading stream " + stream.to_string());
      auto count = PQntuples(rows.get());
      for (int row = 0; row < count; ++row) {
        envelope event;
        event.stream = shared_stream;
        decode_row(rows.get(), row, event, codecs);
        if (event.version != from + 1)
          throw event_read_error("stream " + stream.to_string() + " has no event at version "
                                   + std::to_string(from + 1) + " (the next one is " + std::to_string(event.version)
                                   + "): the log in schema " + options_.schema + " was changed",
                                 event.position, std::string{event.type_name});
        if (!visit(event))
          return current_stream_version(stream);
        from = event.version;
        delivered = true;
      }
      if (count == page_events)
        continue;
      // The last page ended the stream as its query saw it.
      if (delivered || from == 0)
        return from;
      // Nothing after `after_version`: if events arrived since, read them too rather than report a version whose
      // events the visitor never saw.
      auto version = current_stream_version(stream);
      if (version <= from || version_asked)
        return std::max(version, from);
      version_asked = true;
    }
  }

  void read_all(log_position after_position, log_position up_to, const event_visitor& visit) const override {
    // Complete chunks come from the shared cache, decoded once for all readers; the chunk at the head from the
    // events the writer kept as it committed them. What neither holds is read page by page from the server.
    bool stopped = false;
    auto next = cache_.read(after_position, up_to, head_, visit, stopped);
    if (!stopped)
      read_direct(next, up_to, visit);
  }

  /// read_all from the server, decoding each event for this reader alone.
  void read_direct(log_position after_position, log_position up_to, const event_visitor& visit) const {
    codec_cursor codecs{codecs_.snapshot()};
    auto next = after_position;
    // Events of one stream share its id, as the engine's own envelopes do; a page interleaves many streams.
    std::unordered_map<std::string, std::shared_ptr<const stream_id>, detail::string_hash, std::equal_to<>> streams;
    while (next < up_to) {
      auto last = std::min<log_position>(up_to, INT64_MAX);
      auto rows = read_prepared(log_page, {std::to_string(next), std::to_string(last)}, "reading the log");
      auto count = PQntuples(rows.get());
      if (streams.size() > 4 * page_events)
        streams.clear();
      for (int row = 0; row < count; ++row) {
        envelope event;
        auto type = value(rows.get(), row, 1);
        auto id = value(rows.get(), row, 2);
        auto found = streams.find(id);
        if (found == streams.end() || found->second->type != type)
          found = streams.insert_or_assign(std::string{id}, std::make_shared<const stream_id>(
                                                              stream_id{std::string{type}, std::string{id}}))
                    .first;
        event.stream = found->second;
        decode_row(rows.get(), row, event, codecs);
        // Positions are gap-free by construction (numbered under the head's lock); a missing one means rows were
        // deleted, and going on would fold a log that is not the one written.
        if (event.position != next + 1)
          throw event_read_error("the log has no event at position " + std::to_string(next + 1)
                                   + " (the next one is " + std::to_string(event.position) + "): schema "
                                   + options_.schema + " was changed",
                                 next + 1, "");
        if (!visit(event))
          return;
        next = event.position;
      }
      if (count < page_events)
        return;
    }
  }

  log_position head() const override { return head_.load(std::memory_order_acquire); }

  void add_event_types(std::vector<event_type_codec> codecs) override { codecs_.add(std::move(codecs)); }

  std::uint64_t subscribe(head_listener listener) override { return listeners_.subscribe(std::move(listener)); }
  void unsubscribe(std::uint64_t subscription) override { listeners_.unsubscribe(subscription); }

  bool healthy() const override { return healthy_.load(std::memory_order_acquire); }

  std::optional<std::string> failure() const override {
    std::lock_guard lock{status_mutex_};
    return failure_;
  }

  std::optional<std::string> degraded() const override {
    std::lock_guard lock{status_mutex_};
    if (degraded_.empty())
      return std::nullopt;
    std::string reasons;
    for (const auto& [problem, reason] : degraded_)
      reasons += (reasons.empty() ? "" : "; ") + reason;
    return reasons;
  }

  postgres_store_statistics statistics() const override {
    postgres_store_statistics result;
    result.transactions = transactions_.load(std::memory_order_relaxed);
    result.appends = appends_.load(std::memory_order_relaxed);
    result.events = events_.load(std::memory_order_relaxed);
    result.conflicts = conflicts_.load(std::memory_order_relaxed);
    result.queued = committer_.queued();
    result.snapshots = snapshots_.load(std::memory_order_relaxed);
    result.dead_letters = dead_letters_.load(std::memory_order_relaxed);
    result.reconnects = reconnects_.load(std::memory_order_relaxed);
    result.unknown_outcomes_committed = unknown_committed_.load(std::memory_order_relaxed);
    result.unknown_outcomes_retried = unknown_retried_.load(std::memory_order_relaxed);
    result.optimistic_retries = optimistic_retries_.load(std::memory_order_relaxed);
    result.fenced = fenced_.load(std::memory_order_relaxed);
    result.foreign_heads = foreign_heads_.load(std::memory_order_relaxed);
    result.chunks_decoded = cache_.decoded();
    result.chunks_reused = cache_.reused();
    return result;
  }

  const std::string& conninfo() const override { return conninfo_; }
  const std::string& schema() const override { return options_.schema; }

private:
  // --- Reads ---

  /// A read connection borrowed from the pool, given back when the lease ends unless it broke.
  class reader_lease {
  public:
    reader_lease(const postgres_store& store, std::unique_ptr<reader> borrowed)
        : store_(store), reader_(std::move(borrowed)) {}
    reader_lease(const reader_lease&) = delete;
    reader_lease& operator=(const reader_lease&) = delete;
    ~reader_lease() {
      if (!lost_ && PQstatus(reader_->link.get()) == CONNECTION_OK)
        store_.give_back(std::move(reader_));
    }
    PGconn* link() const { return reader_->link.get(); }
    /// The connection failed as a lost one does: it is closed instead of going back to the pool.
    void lost() { lost_ = true; }

  private:
    const postgres_store& store_;
    std::unique_ptr<reader> reader_;
    bool lost_ = false;
  };

  /// An idle read connection, or a new one (waiting for the server while it cannot be reached: reads wait out an
  /// outage as appends do, unless the store is closing).
  reader_lease take_reader(bool again) const {
    {
      std::lock_guard lock{readers_mutex_};
      if (!idle_readers_.empty()) {
        auto borrowed = std::move(idle_readers_.back());
        idle_readers_.pop_back();
        return reader_lease{*this, std::move(borrowed)};
      }
    }
    auto opened = with_backoff("a reader cannot reach PostgreSQL", "reads wait and are retried", again,
                               std::chrono::milliseconds{0}, [this] { return open_reader(conninfo_, names_); });
    if (!opened)
      throw event_read_error("cannot open a read connection to PostgreSQL while the store closes", 0, "");
    return reader_lease{*this, std::move(*opened)};
  }

  void give_back(std::unique_ptr<reader> returned) const {
    std::unique_lock lock{readers_mutex_};
    if (idle_readers_.size() < max_idle_readers)
      idle_readers_.push_back(std::move(returned));
  }

  /// Runs a read on a pooled connection; a lost connection is dropped and the read runs again on another one
  /// (each read is one statement, so running it again is harmless). Throws event_read_error when the server
  /// refuses it, or when the store closes while the server cannot be reached.
  template <class Run>
  result read_with_retry(Run run, const std::string& what) const {
    bool again = false;
    while (true) {
      auto lease = take_reader(again);
      auto rows = run(lease.link());
      if (rows)
        return std::move(*rows);
      if (!rows.error().connection_lost || closing_.load(std::memory_order_acquire))
        throw event_read_error(what + " from PostgreSQL failed: " + rows.error().message, 0, "");
      lease.lost();
      again = true;
    }
  }

  result read_prepared(const char* statement, const std::vector<std::string>& params, const std::string& what) const {
    return read_with_retry([&](PGconn* link) { return run_prepared(link, statement, params); }, what);
  }

  result read_query(const std::string& sql, const std::vector<std::string>& params, const std::string& what) const {
    return read_with_retry([&](PGconn* link) { return execute(link, sql, params); }, what);
  }

  /// Reads and decodes complete chunk `index` for the cache; nullptr when it is not all there.
  std::shared_ptr<const detail::decoded_chunk> decode_chunk(log_position index) const {
    using detail::chunk_events;
    auto rows = read_prepared(
      log_page, {std::to_string(index * chunk_events), std::to_string((index + 1) * chunk_events)}, "reading the log");
    if (PQntuples(rows.get()) != static_cast<int>(chunk_events))
      return nullptr;
    auto result = std::make_shared<detail::decoded_chunk>();
    codec_cursor codecs{codecs_.snapshot()};
    std::unordered_map<std::string, std::shared_ptr<const stream_id>, detail::string_hash, std::equal_to<>> streams;
    for (int row = 0; row < static_cast<int>(chunk_events); ++row) {
      auto& event = result->events[static_cast<std::size_t>(row)];
      auto type = value(rows.get(), row, 1);
      auto id = value(rows.get(), row, 2);
      auto found = streams.find(id);
      if (found == streams.end() || found->second->type != type)
        found = streams.insert_or_assign(std::string{id}, std::make_shared<const stream_id>(
                                                            stream_id{std::string{type}, std::string{id}}))
                  .first;
      event.stream = found->second;
      decode_row(rows.get(), row, event, codecs);
      if (event.position != index * chunk_events + static_cast<log_position>(row) + 1)
        return nullptr; // the direct read names the gap
      result->bytes += static_cast<std::size_t>(PQgetlength(rows.get(), row, 8));
    }
    result->filled.store(chunk_events, std::memory_order_release);
    return result;
  }

  /// Fills the envelope from a binary page row (its stream already set); throws event_read_error when the payload
  /// does not decode.
  static void decode_row(const PGresult* rows, int row, envelope& event, codec_cursor& codecs) {
    event.position = static_cast<log_position>(binary_integer(rows, row, 0));
    event.version = static_cast<stream_version>(binary_integer(rows, row, 3));
    detail::decode_payload(event, codecs, value(rows, row, 4), binary_json(rows, row, 8));
    event.timestamp = detail::from_microseconds(binary_timestamp(rows, row, 5));
    event.command_id = value(rows, row, 6);
    event.correlation_id = value(rows, row, 7);
  }

  stream_version current_stream_version(const stream_id& stream) const {
    auto rows = read_prepared(stream_version_query, {stream.type, stream.id}, "reading the version of "
                                                                                + stream.to_string());
    return static_cast<stream_version>(binary_integer(rows.get(), 0, 0));
  }

  // --- Appends ---

  /// Checks the request and encodes its payloads on the appender's thread, so that the writer only copies text.
  std::expected<pending_append, store_error> accept(append_request request, append_callback done) const {
    auto invalid = [](std::string message) {
      return std::unexpected(store_error{std::string{errc::invalid_request}, std::move(message)});
    };
    if (auto unusable = detail::unusable_request(request, true))
      return std::unexpected(std::move(*unusable));
    if (!healthy_.load(std::memory_order_acquire))
      return std::unexpected(unhealthy_error());
    for (auto text : {std::string_view{request.stream->type}, std::string_view{request.stream->id},
                      std::string_view{request.command_id}, std::string_view{request.correlation_id}})
      if (!storable_text(text))
        return invalid("stream " + request.stream->to_string()
                       + ": its ids must be UTF-8 text without NUL characters to be stored in PostgreSQL; nothing "
                         "was appended");
    auto payloads = codecs_.encode(request.events);
    if (!payloads)
      return std::unexpected(std::move(payloads.error()));
    for (std::size_t index = 0; index < payloads->size(); ++index)
      if (has_escaped_nul((*payloads)[index]) || !storable_text((*payloads)[index]))
        return invalid("an event of type \"" + std::string{request.events[index].type_name}
                       + "\" encodes to JSON with a NUL character (\\u0000) or bytes that are not UTF-8, which "
                         "PostgreSQL's jsonb cannot hold; nothing was appended");
    return pending_append{std::move(request), std::move(*payloads), std::move(done)};
  }

  /// Commits the batch (see group_commit.hpp): retries over lost connections until it knows the outcome.
  std::optional<log_position> commit(std::vector<pending_append>& batch, const std::vector<snapshot>& snapshots,
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
      for (auto& pending : batch)
        pending.result = std::unexpected(unhealthy_error());
      return std::nullopt;
    }
    while (true) {
      auto* link = writer_connection();
      if (!link) {
        fail_unreachable(batch, "nothing of this append was written");
        return std::nullopt;
      }
      auto tried = run_transaction(link, batch, snapshots, dead_letters);
      if (tried.outcome == attempt_outcome::committed)
        return finish(batch, snapshots, dead_letters, tried);
      if (tried.outcome == attempt_outcome::refused) {
        fail_batch(batch, "PostgreSQL refused the batch (" + tried.message + ")");
        return std::nullopt;
      }
      // The connection is gone, and with it what the writer knew of the log.
      writer_.reset();
      versions_.clear();
      if (tried.outcome == attempt_outcome::unknown && tried.first_accepted) {
        auto found = resolve(tried);
        if (!found) {
          fail_unreachable(batch, "whether this append was committed is unknown: look its command id up after the "
                                  "server is back");
          return std::nullopt;
        }
        if (*found) {
          unknown_committed_.fetch_add(1, std::memory_order_relaxed);
          return finish(batch, snapshots, dead_letters, tried);
        }
        unknown_retried_.fetch_add(1, std::memory_order_relaxed);
      }
      for (auto& pending : batch)
        pending.result = std::unexpected(store_error{std::string{errc::store_failure}, "not run"});
    }
  }

  /// One transaction for the batch: lock the head, check versions, copy the events in, move the head, notify,
  /// commit. Sets each request's result as it would be if the transaction commits.
  ///
  /// While no other process appends, the writer knows the head, and the versions of the streams it appended to;
  /// a stream it does not know is taken to be at the version its append expects. The transaction then goes in two
  /// round trips: it checks under the lock that the head is the one it numbered from and that each such stream has
  /// its expected version (or fails, division by zero), and the unique (stream, version) index refuses an event
  /// whose stream was further along. Either failure rolls back and the batch goes again the long way, reading the
  /// head and the versions under the lock first.
  attempt run_transaction(PGconn* link, std::vector<pending_append>& batch, const std::vector<snapshot>& snapshots,
                          const std::vector<dead_letter>& dead_letters) {
    if (optimistic_ && snapshots.empty() && dead_letters.empty()) {
      auto tried = attempt_transaction(link, batch, snapshots, dead_letters, true);
      if (tried.outcome != attempt_outcome::refused || (tried.state != "22012" && tried.state != "23505"))
        return tried;
      optimistic_ = false;
      optimistic_retries_.fetch_add(1, std::memory_order_relaxed);
    }
    return attempt_transaction(link, batch, snapshots, dead_letters, false);
  }

  /// The transaction of run_transaction, the short way (`optimistic`) or the long way.
  attempt attempt_transaction(PGconn* link, std::vector<pending_append>& batch,
                              const std::vector<snapshot>& snapshots, const std::vector<dead_letter>& dead_letters,
                              bool optimistic) {
    attempt tried;
    auto lost_or_refused = [&](const detail::postgres::failure& error, attempt_outcome if_lost) {
      // A statement the server cancelled (statement_timeout: this writer stalled mid-transaction), or a deadlock
      // it broke by ending this transaction, rolled it back, as a lost connection before COMMIT does: the batch
      // goes again.
      auto cancelled = error.state == "57014" || error.state == "40P01";
      tried.outcome = error.connection_lost ? if_lost : cancelled ? attempt_outcome::not_committed
                                                                   : attempt_outcome::refused;
      tried.message = error.message;
      tried.state = error.state;
      if (!error.connection_lost)
        execute(link, "ROLLBACK");
      return tried;
    };
    // The row lock on log_head is held to the end of the transaction: see postgres_event_store.hpp. The versions
    // the writer does not know are read in the same round trip, after the lock (so that they are the committed
    // ones); should the head show that another process appended meanwhile, every version is read again.
    if (versions_.size() + batch.size() > max_cached_streams)
      versions_.clear();
    auto head = writer_head_;
    detail::shared_stream_map<stream_version> assumed;
    auto fences = distinct_fences(batch);
    // The short way takes every fence to hold (the server checks); the long way reads which do, under share locks
    // that keep a new owner from taking those leases until this transaction ends.
    std::set<std::pair<std::uint32_t, std::uint64_t>> held;
    if (optimistic) {
      held.insert(fences.begin(), fences.end());
      for (const auto& pending : batch)
        if (!versions_.contains(*pending.request.stream))
          assumed.try_emplace(pending.request.stream, pending.request.expected_version);
    } else {
      auto unknown = unknown_streams(batch);
      auto locked = execute_each(link, "BEGIN; SELECT position FROM " + names_.log_head + " WHERE id = 1 FOR UPDATE;"
                                         + held_fences_query(fences) + versions_query(link, unknown));
      if (!locked)
        return lost_or_refused(locked.error(), attempt_outcome::not_committed);
      head = static_cast<log_position>(integer_value((*locked)[1].get(), 0, 0));
      if (!fences.empty()) {
        const auto* rows = (*locked)[2].get();
        for (int row = 0; row < PQntuples(rows); ++row)
          held.emplace(static_cast<std::uint32_t>(integer_value(rows, row, 0)),
                       static_cast<std::uint64_t>(integer_value(rows, row, 1)));
      }
      // The next batch may go the short way again unless another process appends meanwhile.
      optimistic_ = head == writer_head_;
      if (head != writer_head_) {
        // Another process appended since this writer last committed: its cached versions may be stale.
        versions_.clear();
        writer_head_ = head;
        unknown = unknown_streams(batch);
        auto reread = execute(link, versions_query(link, unknown));
        if (!reread)
          return lost_or_refused(reread.error(), attempt_outcome::not_committed);
        keep_versions(unknown, reread->get());
      } else if (!unknown.empty()) {
        keep_versions(unknown, locked->back().get());
      }
    }

    auto timestamp = detail::to_microseconds(std::chrono::system_clock::now());
    tried.timestamp = timestamp;
    auto recorded = timestamp_text(timestamp);
    auto next_position = head + 1;
    std::string rows;
    std::vector<std::string_view> command_ids;
    std::vector<std::string> command_firsts;
    std::vector<std::string> command_lasts;
    tried.versions.reserve(batch.size());
    for (auto& pending : batch) {
      auto& request = pending.request;
      if (request.fence.epoch != 0 && !held.contains({request.fence.partition, request.fence.epoch})) {
        pending.result = std::unexpected(store_error{
          std::string{errc::fenced}, "partition " + std::to_string(request.fence.partition) + " is no longer held "
                                       "under lease epoch " + std::to_string(request.fence.epoch)
                                       + " (another node took it over, or the lease expired)"});
        ++tried.refused;
        ++tried.fenced;
        continue;
      }
      stream_version current = 0;
      if (auto known = tried.versions.find(*request.stream); known != tried.versions.end())
        current = known->second;
      else if (auto cached = versions_.find(*request.stream); cached != versions_.end())
        current = cached->second;
      else
        current = assumed.at(request.stream);
      if (current != request.expected_version) {
        pending.result = std::unexpected(store_error{
          std::string{errc::concurrency_conflict}, "stream " + request.stream->to_string() + " is at version "
                                                     + std::to_string(current) + ", expected "
                                                     + std::to_string(request.expected_version)});
        ++tried.refused;
        continue;
      }
      append_result result;
      result.first_position = next_position;
      for (std::size_t index = 0; index < request.events.size(); ++index, ++next_position) {
        rows += std::to_string(next_position);
        rows += '\t';
        append_copy_field(rows, request.stream->type);
        rows += '\t';
        append_copy_field(rows, request.stream->id);
        rows += '\t';
        rows += std::to_string(current + index + 1);
        rows += '\t';
        append_copy_field(rows, request.events[index].type_name);
        rows += '\t';
        rows += recorded;
        rows += '\t';
        append_copy_field(rows, request.command_id);
        rows += '\t';
        append_copy_field(rows, request.correlation_id);
        rows += '\t';
        append_copy_field(rows, pending.payloads[index]);
        rows += '\t';
        rows += std::to_string(request.fence.epoch);
        rows += '\n';
      }
      result.last_position = next_position - 1;
      result.version = current + request.events.size();
      tried.versions.insert_or_assign(request.stream, result.version);
      if (request.remember_command_id && !request.command_id.empty()) {
        command_ids.push_back(request.command_id);
        command_firsts.push_back(std::to_string(result.first_position));
        command_lasts.push_back(std::to_string(result.last_position));
      }
      pending.result = result;
      if (!tried.first_accepted)
        tried.first_accepted = &pending;
      ++tried.accepted;
      tried.accepted_events += request.events.size();
    }
    for (const auto& taken : snapshots) {
      auto saved = execute(link,
                           "INSERT INTO " + names_.snapshots + " VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
                             "(stream_type, stream_id) DO UPDATE SET version = excluded.version, format = "
                             "excluded.format, state = excluded.state WHERE "
                             + names_.snapshots + ".version <= excluded.version",
                           {taken.stream.type, taken.stream.id, std::to_string(taken.version),
                            std::to_string(taken.format_version), taken.state});
      if (!saved)
        return lost_or_refused(saved.error(), attempt_outcome::not_committed);
    }
    for (const auto& letter : dead_letters) {
      auto kept = execute(link,
                          "INSERT INTO " + names_.dead_letters + " VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
                            "(projection, position) DO UPDATE SET type_name = excluded.type_name, reason = "
                            "excluded.reason, recorded = excluded.recorded",
                          {letter.projection, std::to_string(letter.failure.position), letter.failure.type_name,
                           letter.failure.message, timestamp_text(detail::to_microseconds(letter.recorded))});
      if (!kept)
        return lost_or_refused(kept.error(), attempt_outcome::not_committed);
    }
    tried.head = next_position - 1;
    if (tried.accepted == 0 && optimistic) {
      tried.sent = false; // every request was refused for its version: no transaction at all
      return tried;
    }
    if (tried.accepted == 0) {
      auto committed = execute(link, "COMMIT");
      if (!committed)
        return lost_or_refused(committed.error(), attempt_outcome::unknown);
      tried.outcome = attempt_outcome::committed;
      return tried;
    }
    // The events, the recorded command ids, the head, the notification and the COMMIT in one query string (the
    // short way with the lock and its checks before them): the server runs the statements after the COPY once its
    // rows are in, so this is two round trips, the COPY's and the rest's. A connection lost anywhere in it leaves
    // the outcome unknown, resolved as after a COMMIT.
    auto head_text = std::to_string(tried.head);
    std::string sql;
    if (optimistic)
      sql = "BEGIN; SELECT 1 / (position = " + std::to_string(head) + ")::int FROM " + names_.log_head
            + " WHERE id = 1 FOR UPDATE; " + assumed_versions_check(link, assumed) + fences_check(fences);
    sql += "COPY " + names_.events + " (position, stream_type, stream_id, version, type_name, recorded, "
                      "command_id, correlation_id, payload, lease_epoch) FROM STDIN; ";
    if (!command_ids.empty()) {
      std::vector<std::string_view> firsts(command_firsts.begin(), command_firsts.end());
      std::vector<std::string_view> lasts(command_lasts.begin(), command_lasts.end());
      // A command id already recorded (the same command appended twice by racing senders) keeps its first entry.
      sql += "INSERT INTO " + names_.commands + " SELECT * FROM unnest(" + quoted(link, text_array(command_ids))
             + "::text[], " + quoted(link, text_array(firsts)) + "::bigint[], " + quoted(link, text_array(lasts))
             + "::bigint[]) ON CONFLICT (command_id) DO NOTHING; ";
    }
    sql += "UPDATE " + names_.log_head + " SET position = " + head_text + " WHERE id = 1; SELECT pg_notify("
           + names_.channel_literal + ", '" + head_text + "'); COMMIT";
    if (auto committed = copy_in(link, sql, rows); !committed)
      return lost_or_refused(committed.error(), attempt_outcome::unknown);
    tried.outcome = attempt_outcome::committed;
    return tried;
  }

  /// A statement that fails (division by zero) unless each stream taken to be at a version above 0 has an event
  /// at that version; "" when there is none. The unique (stream, version) index refuses a stream further along,
  /// this one a stream not as far along as its append expects.
  std::string assumed_versions_check(PGconn* link, const detail::shared_stream_map<stream_version>& assumed) const {
    std::vector<std::shared_ptr<const stream_id>> streams;
    std::vector<std::string> versions;
    for (const auto& [stream, version] : assumed) {
      if (version == 0)
        continue;
      streams.push_back(stream);
      versions.push_back(std::to_string(version));
    }
    if (versions.empty())
      return {};
    std::vector<std::string_view> version_texts(versions.begin(), versions.end());
    return "SELECT 1 / (count(*) = " + std::to_string(versions.size()) + ")::int FROM unnest("
           + stream_arrays(link, streams) + ", " + quoted(link, text_array(version_texts))
           + "::bigint[]) AS s(t, i, v) WHERE EXISTS (SELECT 1 FROM " + names_.events
           + " e WHERE e.stream_type = s.t AND e.stream_id = s.i AND e.version = s.v); ";
  }

  /// The batch's lease fences (partition, epoch), each once; none for appends without a lease.
  static std::vector<std::pair<std::uint32_t, std::uint64_t>> distinct_fences(const std::vector<pending_append>& batch) {
    std::set<std::pair<std::uint32_t, std::uint64_t>> seen;
    for (const auto& pending : batch)
      if (pending.request.fence.epoch != 0)
        seen.emplace(pending.request.fence.partition, pending.request.fence.epoch);
    return {seen.begin(), seen.end()};
  }

  /// The leases among `fences` that hold now (epoch current, not expired), share-locked to the transaction's end:
  /// "SELECT partition, epoch FROM ... FOR SHARE;", or "" for no fences.
  std::string held_fences_query(const std::vector<std::pair<std::uint32_t, std::uint64_t>>& fences) const {
    if (fences.empty())
      return {};
    return "SELECT partition, epoch FROM " + names_.partition_leases + " WHERE " + fences_condition(fences)
           + " ORDER BY partition FOR SHARE;";
  }

  /// A statement that fails (division by zero) unless every one of `fences` holds, share-locking their leases;
  /// "" for no fences.
  std::string fences_check(const std::vector<std::pair<std::uint32_t, std::uint64_t>>& fences) const {
    if (fences.empty())
      return {};
    return "SELECT 1 / (count(*) = " + std::to_string(fences.size()) + ")::int FROM (SELECT 1 FROM "
           + names_.partition_leases + " WHERE " + fences_condition(fences) + " ORDER BY partition FOR SHARE) AS held; ";
  }

  static std::string fences_condition(const std::vector<std::pair<std::uint32_t, std::uint64_t>>& fences) {
    std::string pairs;
    for (const auto& [partition, epoch] : fences)
      pairs += (pairs.empty() ? "(" : ", (") + std::to_string(partition) + ", " + std::to_string(epoch) + ")";
    return "(partition, epoch) IN (" + pairs + ") AND expires_at > now()";
  }

  /// The streams' types and ids as two text[] literals, "'{...}'::text[], '{...}'::text[]", for unnest.
  static std::string stream_arrays(PGconn* link, const std::vector<std::shared_ptr<const stream_id>>& streams) {
    std::vector<std::string_view> types;
    std::vector<std::string_view> ids;
    for (const auto& stream : streams) {
      types.push_back(stream->type);
      ids.push_back(stream->id);
    }
    return quoted(link, text_array(types)) + "::text[], " + quoted(link, text_array(ids)) + "::text[]";
  }

  /// The batch's streams whose versions the writer does not know, each once.
  std::vector<std::shared_ptr<const stream_id>> unknown_streams(const std::vector<pending_append>& batch) const {
    std::vector<std::shared_ptr<const stream_id>> missing;
    detail::shared_stream_map<bool> asked;
    for (const auto& pending : batch) {
      const auto& stream = pending.request.stream;
      if (!versions_.contains(*stream) && asked.emplace(stream, true).second)
        missing.push_back(stream);
    }
    return missing;
  }

  /// A query for the versions of `streams`, one row each in their order; "" when there are none.
  std::string versions_query(PGconn* link, const std::vector<std::shared_ptr<const stream_id>>& streams) const {
    if (streams.empty())
      return {};
    return "SELECT coalesce((SELECT max(version) FROM " + names_.events
           + " e WHERE e.stream_type = s.t AND e.stream_id = s.i), 0) FROM unnest(" + stream_arrays(link, streams)
           + ") WITH ORDINALITY AS s(t, i, n) ORDER BY s.n";
  }

  void keep_versions(const std::vector<std::shared_ptr<const stream_id>>& streams, const PGresult* rows) {
    for (std::size_t index = 0; index < streams.size(); ++index)
      versions_.insert_or_assign(streams[index],
                                 static_cast<stream_version>(integer_value(rows, static_cast<int>(index), 0)));
  }

  /// After a COMMIT went unanswered: whether the transaction committed, found by its first event (position,
  /// stream, version and command id, which no other transaction can share); nothing when the server cannot be
  /// reached before the store closes.
  std::optional<bool> resolve(const attempt& tried) {
    const auto& first = *tried.first_accepted;
    const auto& request = first.request;
    while (true) {
      auto* link = writer_connection();
      if (!link)
        return std::nullopt;
      auto rows = execute(link,
                          "SELECT stream_type, stream_id, version, command_id FROM " + names_.events
                            + " WHERE position = $1",
                          {std::to_string(first.result->first_position)});
      if (!rows) {
        writer_.reset();
        continue;
      }
      if (PQntuples(rows->get()) == 0)
        return false;
      return value(rows->get(), 0, 0) == request.stream->type && value(rows->get(), 0, 1) == request.stream->id
             && static_cast<stream_version>(integer_value(rows->get(), 0, 2)) == request.expected_version + 1
             && value(rows->get(), 0, 3) == request.command_id;
    }
  }

  /// Books a committed transaction; returns the new head if this commit raised it (listeners are then told).
  std::optional<log_position> finish(std::vector<pending_append>& batch, const std::vector<snapshot>& snapshots,
                                     const std::vector<dead_letter>& dead_letters, attempt& tried) {
    conflicts_.fetch_add(tried.refused - tried.fenced, std::memory_order_relaxed);
    fenced_.fetch_add(tried.fenced, std::memory_order_relaxed);
    snapshots_.fetch_add(snapshots.size(), std::memory_order_relaxed);
    dead_letters_.fetch_add(dead_letters.size(), std::memory_order_relaxed);
    if (tried.sent)
      transactions_.fetch_add(1, std::memory_order_relaxed);
    if (tried.accepted == 0)
      return std::nullopt;
    if (versions_.size() + tried.versions.size() > max_cached_streams)
      versions_.clear();
    for (auto& [stream, version] : tried.versions)
      versions_.insert_or_assign(stream, version);
    writer_head_ = tried.head;
    appends_.fetch_add(tried.accepted, std::memory_order_relaxed);
    events_.fetch_add(tried.accepted_events, std::memory_order_relaxed);
    keep_committed(batch, tried.timestamp);
    // The store tells its listeners itself, not through the writer's loop: see announce().
    announce(tried.head);
    return std::nullopt;
  }

  /// Keeps the batch's committed events, as appended (no decoding), in the cache's chunk at the head for readers:
  /// the engine's projections then follow this process's own events without reading them back.
  void keep_committed(std::vector<pending_append>& batch, std::int64_t timestamp) {
    auto time = detail::from_microseconds(timestamp);
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

  /// Raises head() to `head` if it is higher; true if it was.
  /// Raises the head and tells the listeners, when `head` is beyond what they heard. The writer (this store's
  /// commits) and the listener thread (other processes' commits, and sometimes this store's own, heard first
  /// through the notification) both learn heads; under one lock the listeners hear them one at a time and in
  /// increasing order, as from the other stores. What a listener throws is dropped. Returns whether it was new.
  bool announce(log_position head) {
    std::lock_guard lock{announcing_};
    if (!raise_head(head))
      return false;
    try {
      listeners_.notify(head);
    } catch (...) {
    }
    return true;
  }

  bool raise_head(log_position head) {
    auto current = head_.load(std::memory_order_acquire);
    while (current < head)
      if (head_.compare_exchange_weak(current, head, std::memory_order_acq_rel))
        return true;
    return false;
  }

  /// The writer's connection, opened again with backoff when it was lost (degraded() says so meanwhile); nullptr
  /// when the store is closing and the server stayed out of reach for closing_patience.
  PGconn* writer_connection() {
    if (writer_ && PQstatus(writer_.get()) == CONNECTION_OK)
      return writer_.get();
    writer_.reset();
    auto opened = with_backoff("the writer cannot reach PostgreSQL", "appends wait and are retried", true,
                               closing_patience, [this] { return connect_writer(conninfo_, options_); });
    if (!opened)
      return nullptr;
    writer_ = std::move(*opened);
    return writer_.get();
  }

  /// Opens a connection with `open` (an expected<connection-like, std::string>), retrying with backoff until it
  /// succeeds, or until the store has been closing for `patience`. Meanwhile degraded() says "<problem>
  /// (<libpq's message>); <consequence>". `again`: a connection was lost (counted in reconnects), rather than a
  /// first one opened.
  template <class Open>
  auto with_backoff(const std::string& problem, const std::string& consequence, bool again,
                    std::chrono::milliseconds patience, Open open) const
    -> std::optional<typename decltype(open())::value_type> {
    auto delay = options_.reconnect_delay;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    while (true) {
      auto opened = open();
      if (opened) {
        if (again)
          reconnects_.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock{status_mutex_};
        degraded_.erase(problem);
        return std::move(*opened);
      }
      {
        std::lock_guard lock{status_mutex_};
        degraded_[problem] = problem + " (" + opened.error() + "); " + consequence;
      }
      auto now = std::chrono::steady_clock::now();
      if (closing_.load(std::memory_order_acquire)) {
        if (!deadline)
          deadline = now + patience;
        if (now >= *deadline)
          return std::nullopt;
      }
      std::unique_lock lock{backoff_mutex_};
      backoff_.wait_for(lock, delay);
      delay = std::min(delay * 2, options_.max_reconnect_delay);
    }
  }

  /// Fails the batch because the store closed while the server could not be reached.
  void fail_unreachable(std::vector<pending_append>& batch, const std::string& outcome) {
    std::string reason = degraded().value_or("PostgreSQL could not be reached");
    for (auto& pending : batch)
      pending.result = std::unexpected(
        store_error{std::string{errc::store_failure}, "the store closed while " + reason + "; " + outcome});
  }

  /// Marks the store unhealthy and fails every request of the batch: nothing is acknowledged.
  void fail_batch(std::vector<pending_append>& batch, std::string reason) {
    {
      std::lock_guard lock{status_mutex_};
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
    return store_error{std::string{errc::store_failure},
                       "the PostgreSQL store is unhealthy after " + failure().value_or("a failure")
                         + "; reopen it to continue"};
  }

  // --- Following other processes' commits ---

  /// The listener thread: LISTENs on the log's channel and raises the head to what other processes commit;
  /// re-reads the head when nothing was heard for head_check_interval (or after reconnecting).
  void run_listener() {
    connection link;
    bool again = false;
    while (!closing_.load(std::memory_order_acquire)) {
      if (!link) {
        auto opened = with_backoff("the listener cannot reach PostgreSQL",
                                   "commits of other processes are not followed meanwhile", again,
                                   std::chrono::milliseconds{0}, [this] { return connect(conninfo_); });
        again = true;
        if (!opened)
          return;
        link = std::move(*opened);
        if (!execute(link.get(), "LISTEN " + names_.channel_identifier)) {
          link.reset();
          continue;
        }
        if (!check_head(link.get())) {
          link.reset();
          continue;
        }
      }
      pollfd watched[2] = {{PQsocket(link.get()), POLLIN, 0}, {wake_[0], POLLIN, 0}};
      auto ready = poll(watched, wake_[0] >= 0 ? 2 : 1, static_cast<int>(options_.head_check_interval.count()));
      if (ready < 0)
        continue; // interrupted by a signal
      if (wake_[0] >= 0 && (watched[1].revents & POLLIN))
        continue; // closing: the loop's condition ends it
      if (ready == 0) {
        if (!check_head(link.get()))
          link.reset();
        continue;
      }
      if (!PQconsumeInput(link.get())) {
        link.reset();
        continue;
      }
      while (PGnotify* heard = PQnotifies(link.get())) {
        log_position head = 0;
        std::string_view text{heard->extra};
        std::from_chars(text.data(), text.data() + text.size(), head);
        PQfreemem(heard);
        heard_head(head);
      }
    }
  }

  /// The safety re-read: the head as the server has it.
  bool check_head(PGconn* link) {
    auto rows = execute(link, "SELECT position FROM " + names_.log_head + " WHERE id = 1");
    if (!rows || PQntuples(rows->get()) != 1)
      return false;
    heard_head(static_cast<log_position>(integer_value(rows->get(), 0, 0)));
    return true;
  }

  void heard_head(log_position head) {
    if (announce(head))
      foreign_heads_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Held while the head is raised and the listeners told (announce()).
  std::mutex announcing_;
  const std::string conninfo_;
  const postgres_options options_;
  const names names_;

  // The writer's state: touched only on the writer thread.
  connection writer_;
  detail::shared_stream_map<stream_version> versions_;
  log_position writer_head_;

  std::atomic<log_position> head_;
  std::atomic<bool> healthy_{true};
  std::atomic<bool> closing_{false};
  mutable std::mutex status_mutex_;
  std::optional<std::string> failure_;
  /// Why each part that lost its connection waits (keyed by its problem), while it does.
  mutable std::map<std::string, std::string> degraded_;
  mutable std::mutex backoff_mutex_;
  mutable std::condition_variable backoff_;
  int wake_[2] = {-1, -1};

  std::atomic<std::uint64_t> transactions_{0};
  std::atomic<std::uint64_t> appends_{0};
  std::atomic<std::uint64_t> events_{0};
  std::atomic<std::uint64_t> conflicts_{0};
  std::atomic<std::uint64_t> snapshots_{0};
  std::atomic<std::uint64_t> dead_letters_{0};
  mutable std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> unknown_committed_{0};
  std::atomic<std::uint64_t> unknown_retried_{0};
  std::atomic<std::uint64_t> optimistic_retries_{0};
  std::atomic<std::uint64_t> fenced_{0};
  /// Whether the next batch goes the short way (see run_transaction); writer thread only.
  bool optimistic_ = true;
  std::atomic<std::uint64_t> foreign_heads_{0};

  mutable std::mutex readers_mutex_;
  mutable std::vector<std::unique_ptr<reader>> idle_readers_;

  detail::codec_registry codecs_;
  detail::head_listeners listeners_;
  /// read_all's decoded chunks (detail/chunk_cache.hpp).
  detail::chunk_cache cache_{[this](log_position index) { return decode_chunk(index); }};

  /// Its writer thread starts once everything it uses is constructed.
  detail::group_commit committer_;
  std::thread listener_;
};

} // namespace

std::expected<std::shared_ptr<postgres_event_store>, store_error> open_postgres_event_store(const std::string& conninfo,
                                                                                           postgres_options options) {
  auto refuse = [](std::string message) {
    return std::unexpected(store_error{std::string{errc::store_failure}, std::move(message)});
  };
  if (auto valid = check_schema_name(options.schema); !valid)
    return refuse(std::move(valid.error()));
  auto writer = connect_writer(conninfo, options);
  if (!writer)
    return refuse("cannot connect to PostgreSQL: " + writer.error());
  names store{options.schema};
  auto head = check_or_create(writer->get(), store);
  if (!head)
    return refuse("cannot open the event log in schema " + options.schema + ": " + head.error());
  auto first_reader = open_reader(conninfo, store);
  if (!first_reader)
    return refuse("cannot open a read connection to PostgreSQL: " + first_reader.error());
  return std::make_shared<postgres_store>(conninfo, std::move(options), std::move(*writer), std::move(*first_reader),
                                          *head);
}

} // namespace cqrs
