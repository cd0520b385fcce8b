// Shared by the fuzz targets on damaged event log files (store_file, store_verify): a few event logs built once by
// the SQLite store (the "base" logs), what the store read back from each of them intact, and the input format that
// damages a copy of their bytes. No CAF: the store and the inspection library are CAF-free.
#pragma once

#include "actors/detail/sqlite_checksum_function.hpp"
#include "actors/event_codec.hpp"
#include "actors/sqlite_event_store.hpp"
#include "domain/bank_account.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <any>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace store_fuzz {

/// The folder of this process's files (see scratch_folder), once it exists.
inline std::string& scratch_path() {
  static std::string path;
  return path;
}

/// Ends the run with a message: a target's oracle failed (libFuzzer keeps the input), or its setup did. The trap
/// skips destructors, so the scratch folder goes first (the input alone reproduces the failure).
[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "store fuzz: %s\n", why.c_str());
  std::fflush(stderr);
  if (!scratch_path().empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(scratch_path(), ignored);
  }
  __builtin_trap();
}

/// The codecs of the bank events the base logs hold, by type name.
inline const std::map<std::string, cqrs::event_type_codec, std::less<>>& bank_codecs() {
  static const auto codecs = [] {
    std::map<std::string, cqrs::event_type_codec, std::less<>> result;
    for (auto& codec : cqrs::event_codecs<bank::event>())
      result.emplace(std::string{codec.type_name}, std::move(codec));
    return result;
  }();
  return codecs;
}

inline std::vector<cqrs::event_type_codec> bank_codec_list() { return cqrs::event_codecs<bank::event>(); }

/// An event as a store served it, every field comparable; the payload as its codec encodes it.
struct served_event {
  cqrs::log_position position = 0;
  std::string stream_type;
  std::string stream_id;
  cqrs::stream_version version = 0;
  std::string type_name;
  /// Microseconds since the epoch.
  std::int64_t timestamp = 0;
  std::string command_id;
  std::string correlation_id;
  /// The payload as its codec encodes it (for messages), and its value.
  std::string payload;
  bank::event value;

  bool operator==(const served_event&) const = default;

  /// For failure messages; damaged text may hold any byte, so those outside printable ASCII show as \xNN.
  std::string describe() const {
    auto shown = [](const std::string& text) {
      std::string result;
      for (unsigned char character : text) {
        if (character >= 0x20 && character < 0x7f) {
          result += static_cast<char>(character);
        } else {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\x%02x", character);
          result += escaped;
        }
      }
      return result;
    };
    return "event " + std::to_string(position) + " (" + shown(stream_type) + "/" + shown(stream_id) + " v"
           + std::to_string(version) + " " + shown(type_name) + " at " + std::to_string(timestamp) + " command "
           + shown(command_id) + " correlation " + shown(correlation_id) + " payload " + shown(payload) + ")";
  }
};

inline std::int64_t microseconds_of(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

inline std::int64_t microseconds_of(const cqrs::envelope& event) { return microseconds_of(event.timestamp); }

/// Whether the store served exactly that event (its timestamp aside when the store chose it in this run). Compared
/// field by field rather than through served(), which encodes the payload: reads compare every event they serve.
inline bool same_event(const cqrs::envelope& event, const served_event& expected, bool with_timestamp = true) {
  const auto* value = event.event_as<bank::event>();
  return event.position == expected.position && event.version == expected.version
         && event.stream->type == expected.stream_type && event.stream->id == expected.stream_id
         && event.type_name == expected.type_name && (!with_timestamp || microseconds_of(event) == expected.timestamp)
         && event.command_id == expected.command_id && event.correlation_id == expected.correlation_id && value
         && *value == expected.value;
}

inline served_event served(const cqrs::envelope& event) {
  served_event result;
  result.position = event.position;
  result.stream_type = event.stream->type;
  result.stream_id = event.stream->id;
  result.version = event.version;
  result.type_name = std::string{event.type_name};
  result.timestamp = microseconds_of(event);
  result.command_id = event.command_id;
  result.correlation_id = event.correlation_id;
  auto codec = bank_codecs().find(event.type_name);
  result.payload = codec != bank_codecs().end() ? codec->second.encode(event.payload) : "(no codec)";
  if (const auto* value = event.event_as<bank::event>())
    result.value = *value;
  return result;
}

/// A folder of its own for this process's files (under $TMPDIR, else /dev/shm, else /tmp), removed at exit.
class scratch_folder {
public:
  scratch_folder() {
    std::filesystem::path parent = "/tmp";
    std::error_code ignored;
    if (const char* folder = std::getenv("TMPDIR"); folder && *folder)
      parent = folder;
    else if (std::filesystem::is_directory("/dev/shm", ignored))
      parent = "/dev/shm";
    auto pattern = (parent / "cqrs-store-fuzz-XXXXXX").string();
    if (!::mkdtemp(pattern.data()))
      fail("cannot create a scratch folder from " + pattern);
    path_ = pattern;
    scratch_path() = pattern;
  }
  scratch_folder(const scratch_folder&) = delete;
  scratch_folder& operator=(const scratch_folder&) = delete;
  ~scratch_folder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  std::string file(std::string_view name) const { return (path_ / name).string(); }

private:
  std::filesystem::path path_;
};

inline scratch_folder& scratch() {
  static scratch_folder folder;
  return folder;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream input{path, std::ios::binary};
  return std::string{std::istreambuf_iterator<char>{input}, std::istreambuf_iterator<char>{}};
}

inline void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream output{path, std::ios::binary | std::ios::trunc};
  output.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!output)
    fail("cannot write " + path);
}

/// An event log file's main file and write-ahead log (empty when it has none, as after a clean close).
struct log_bytes {
  std::string database;
  std::string write_ahead_log;
};

/// Puts the files at `path`, with nothing beside them that an earlier run left (-wal, -shm, -journal).
inline void place_files(const std::string& path, const log_bytes& files) {
  std::error_code ignored;
  for (const char* suffix : {"-wal", "-shm", "-journal"})
    std::filesystem::remove(path + suffix, ignored);
  write_bytes(path, files.database);
  if (!files.write_ahead_log.empty())
    write_bytes(path + "-wal", files.write_ahead_log);
}

/// One of the logs the inputs damage: its bytes and what the store read back from it intact.
struct base_log {
  std::string name;
  log_bytes files;
  /// In position order: events[p - 1] is the event at position p.
  std::vector<served_event> events;
  std::vector<cqrs::stream_id> streams;

  /// The first and the last event of the command in the intact log, if it has one.
  const served_event* first_of(const std::string& command_id) const {
    for (const auto& event : events)
      if (event.command_id == command_id)
        return &event;
    return nullptr;
  }
  const served_event* last_of(const std::string& command_id) const {
    for (auto event = events.rbegin(); event != events.rend(); ++event)
      if (event->command_id == command_id)
        return &*event;
    return nullptr;
  }

  /// The event of that stream and version in the intact log, if there is one.
  const served_event* find(const cqrs::stream_id& stream, cqrs::stream_version version) const {
    for (const auto& event : events)
      if (event.version == version && event.stream_id == stream.id && event.stream_type == stream.type)
        return &event;
    return nullptr;
  }
};

namespace detail {

/// An empty SQLite file with the given page size: the store takes a file without tables for a new log. Small pages
/// give a few dozen events a b-tree of several levels and overflow pages, so that damage meets every structure.
inline void create_empty_file(const std::string& path, int page_size) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::filesystem::remove(path + suffix, ignored);
  sqlite3* database = nullptr;
  if (sqlite3_open(path.c_str(), &database) != SQLITE_OK)
    fail("cannot create " + path);
  auto sql = "PRAGMA page_size = " + std::to_string(page_size)
             + "; CREATE TABLE placeholder (x); DROP TABLE placeholder; VACUUM;";
  char* message = nullptr;
  if (sqlite3_exec(database, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK)
    fail("cannot prepare " + path + ": " + (message ? message : "?"));
  sqlite3_close(database);
}

/// A raw connection for what the store does not do itself: fixing timestamps, writing a commit left in the log.
class raw_connection {
public:
  explicit raw_connection(const std::string& path) {
    if (sqlite3_open(path.c_str(), &database_) != SQLITE_OK
        || !cqrs::detail::register_checksum_functions(database_))
      fail("cannot open " + path + " directly");
  }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;
  ~raw_connection() { sqlite3_close(database_); }

  void execute(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(database_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK)
      fail("SQL on a base log failed: " + sql + ": " + (message ? message : "?"));
  }

private:
  sqlite3* database_ = nullptr;
};

/// Every base log is built the same in every process, so that a kept input meets the same bytes each time it
/// is replayed: SQLite's random numbers (the write-ahead log's salts) start from a fixed seed, and the events'
/// timestamps, which the store takes from the clock, are replaced by fixed ones (and the events resealed).
inline void seed_randomness() { sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, 20240501, nullptr); }

inline void fix_timestamps(const std::string& path) {
  raw_connection database{path};
  database.execute("UPDATE events SET timestamp = 1714564800000000 + position * 1000003; "
                   + std::string{cqrs::detail::reseal_events_sql} + "; VACUUM;");
}

inline std::shared_ptr<cqrs::sqlite_event_store> open_for_setup(const std::string& path) {
  cqrs::sqlite_options options;
  options.synchronous = cqrs::sqlite_synchronous::normal;
  auto opened = cqrs::open_sqlite_event_store(path, options);
  if (!opened)
    fail("cannot open " + path + " to build a base log: " + opened.error().message);
  (*opened)->add_event_types(bank_codec_list());
  return *opened;
}

/// Appends `count` events to the stream in appends of up to `per_append`: an opening (with a long owner for the
/// first stream, whose payload then spans overflow pages), then deposits and withdrawals.
class history_writer {
public:
  /// Command ids are `prefix` and a number: unique within the log, as the engine's are.
  history_writer(cqrs::sqlite_event_store& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}

  void append(const cqrs::stream_id& stream, std::size_t count, std::size_t per_append) {
    auto shared = std::make_shared<const cqrs::stream_id>(stream);
    auto& version = versions_[stream.id];
    while (count > 0) {
      ++commands_;
      cqrs::append_request request{shared, version, prefix_ + std::to_string(commands_),
                                   "corr-" + std::to_string(commands_ % 4), {}};
      for (std::size_t index = 0; index < per_append && count > 0; ++index, --count) {
        auto next = version + request.events.size() + 1;
        if (next == 1) {
          auto owner = stream.id == "a-1" ? std::string(700, 'o') : "owner of " + stream.id;
          request.events.push_back({bank::account_opened::type_name, bank::event{bank::account_opened{owner}}});
        } else if (next % 3 == 0) {
          request.events.push_back(
            {bank::money_withdrawn::type_name, bank::event{bank::money_withdrawn{static_cast<std::int64_t>(next)}}});
        } else {
          request.events.push_back({bank::money_deposited::type_name,
                                    bank::event{bank::money_deposited{static_cast<std::int64_t>(next * 100)}}});
        }
      }
      auto appended = store_.append(std::move(request));
      if (!appended)
        fail("appending to a base log failed: " + appended.error().message);
      version = appended->version;
    }
  }

  void close(const cqrs::stream_id& stream) {
    auto& version = versions_[stream.id];
    ++commands_;
    cqrs::append_request request{std::make_shared<const cqrs::stream_id>(stream), version,
                                 prefix_ + std::to_string(commands_), "corr-close", {}};
    request.events.push_back({bank::account_closed::type_name, bank::event{bank::account_closed{}}});
    auto appended = store_.append(std::move(request));
    if (!appended)
      fail("appending to a base log failed: " + appended.error().message);
    version = appended->version;
  }

  cqrs::stream_version version(const cqrs::stream_id& stream) { return versions_[stream.id]; }

private:
  cqrs::sqlite_event_store& store_;
  std::string prefix_;
  std::map<std::string, cqrs::stream_version> versions_;
  std::uint64_t commands_ = 0;
};

inline cqrs::stream_id account(std::size_t number) { return {"account", "a-" + std::to_string(number)}; }

inline void save_account_snapshot(cqrs::sqlite_event_store& store, const cqrs::stream_id& stream,
                                  cqrs::stream_version version) {
  store.save_snapshot(cqrs::snapshot{stream, version, 65537,
                                     R"({"opened":true,"closed":false,"owner":"owner","balance_cents":)"
                                       + std::to_string(version * 100) + R"(,"transactions":)"
                                       + std::to_string(version) + "}"});
}

/// What the store reads back from the intact files: the expectation every damaged copy is held to.
inline void read_back(base_log& base, std::size_t appended) {
  auto path = scratch().file("read-back.db");
  place_files(path, base.files);
  {
    auto store = open_for_setup(path);
    store->read_all(0, store->head(), [&](const cqrs::envelope& event) {
      base.events.push_back(served(event));
      return true;
    });
  }
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm"})
    std::filesystem::remove(path + suffix, ignored);
  if (base.events.size() != appended)
    fail("base log " + base.name + " reads back " + std::to_string(base.events.size()) + " events, "
         + std::to_string(appended) + " were appended");
  for (std::size_t index = 0; index < base.events.size(); ++index)
    if (base.events[index].position != index + 1)
      fail("base log " + base.name + " has a gap at position " + std::to_string(index + 1));
}

/// A few dozen events of six interleaved streams, two snapshots and a dead letter, closed cleanly.
inline base_log small_log() {
  base_log base{"small", {}, {}, {}};
  auto path = scratch().file("build-small.db");
  seed_randomness();
  create_empty_file(path, 512);
  std::size_t appended = 0;
  {
    auto store = open_for_setup(path);
    history_writer history{*store, "cmd-"};
    for (std::size_t round = 0; round < 3; ++round)
      for (std::size_t number = 1; number <= 6; ++number) {
        auto count = 1 + (number + round) % 3;
        history.append(account(number), count, 2);
        appended += count;
      }
    history.close(account(6));
    ++appended;
    save_account_snapshot(*store, account(1), history.version(account(1)));
    save_account_snapshot(*store, account(2), 2);
    store->record_dead_letter(cqrs::dead_letter{"balances", cqrs::projection_failure{4, "MoneyDeposited.v1", "boom"},
                                                std::chrono::system_clock::time_point{}});
  }
  fix_timestamps(path);
  base.files.database = read_bytes(path);
  for (std::size_t number = 1; number <= 6; ++number)
    base.streams.push_back(account(number));
  read_back(base, appended);
  return base;
}

/// More than one chunk of read_all's shared cache (1,024 positions): reads go through the decoded-chunk path.
inline base_log large_log() {
  base_log base{"large", {}, {}, {}};
  auto path = scratch().file("build-large.db");
  seed_randomness();
  create_empty_file(path, 1024);
  std::size_t appended = 0;
  {
    auto store = open_for_setup(path);
    history_writer history{*store, "cmd-"};
    for (std::size_t round = 0; round < 5; ++round)
      for (std::size_t number = 1; number <= 30; ++number) {
        history.append(account(number), 7 + round % 2, 8);
        appended += 7 + round % 2;
      }
    save_account_snapshot(*store, account(3), history.version(account(3)));
  }
  fix_timestamps(path);
  base.files.database = read_bytes(path);
  for (std::size_t number = 1; number <= 30; ++number)
    base.streams.push_back(account(number));
  read_back(base, appended);
  return base;
}

/// The SQL that inserts an event as the store would, its checksum computed by SQLite.
inline std::string insert_event(cqrs::log_position position, const cqrs::stream_id& stream,
                                cqrs::stream_version version, const bank::event& event, const std::string& command_id) {
  auto type = std::visit([](const auto& alternative) { return std::string{alternative.type_name}; }, event);
  auto payload = bank_codecs().find(type)->second.encode(std::any{event});
  auto quoted = [](const std::string& text) {
    std::string result = "'";
    for (char character : text)
      result += character == '\'' ? std::string{"''"} : std::string{character};
    return result + "'";
  };
  auto values = std::to_string(position) + ", " + quoted(stream.type) + ", " + quoted(stream.id) + ", "
                + std::to_string(version) + ", " + quoted(type) + ", "
                + std::to_string(1714564800000000 + position * 1000003) + ", " + quoted(command_id) + ", "
                + quoted("corr-wal") + ", " + quoted(payload);
  return "INSERT INTO events (position, stream_type, stream_id, version, type, timestamp, command_id, "
         "correlation_id, payload, checksum) VALUES ("
         + values + ", cqrs_event_checksum(" + values + "));";
}

/// A log whose last commits are only in its write-ahead log, as a killed engine leaves it: twenty events written
/// by the store and closed, then three commits in the log (one with a snapshot), copied before the log is merged.
inline base_log write_ahead_log() {
  base_log base{"write-ahead", {}, {}, {}};
  auto path = scratch().file("build-wal.db");
  seed_randomness();
  create_empty_file(path, 512);
  {
    auto store = open_for_setup(path);
    history_writer history{*store, "cmd-"};
    for (std::size_t number = 1; number <= 4; ++number)
      history.append(account(number), 5, 2);
  }
  fix_timestamps(path);
  {
    raw_connection database{path};
    database.execute("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;");
    database.execute("BEGIN; " + insert_event(21, account(1), 6, bank::money_deposited{77}, "cmd-wal-1")
                     + insert_event(22, account(1), 7, bank::money_withdrawn{7}, "cmd-wal-1")
                     + "INSERT INTO snapshots (stream_type, stream_id, version, format, state, checksum) "
                       "SELECT *, cqrs_snapshot_checksum(stream_type, stream_id, version, format, state) FROM "
                       "(SELECT 'account' AS stream_type, 'a-1' AS stream_id, 7 AS version, 65537 AS format, "
                       "'{\"opened\":true,\"closed\":false,\"owner\":\"o\",\"balance_cents\":70,"
                       "\"transactions\":6}' AS state); COMMIT;");
    database.execute("BEGIN; " + insert_event(23, account(2), 6, bank::money_deposited{77}, "cmd-wal-2")
                     + insert_event(24, account(2), 7, bank::money_withdrawn{7}, "cmd-wal-2") + " COMMIT;");
    database.execute("BEGIN; " + insert_event(25, account(5), 1, bank::account_opened{"late"}, "cmd-wal-3")
                     + insert_event(26, account(5), 2, bank::money_deposited{500}, "cmd-wal-3")
                     + insert_event(27, account(5), 3, bank::money_deposited{600}, "cmd-wal-3") + " COMMIT;");
    base.files.database = read_bytes(path);
    base.files.write_ahead_log = read_bytes(path + "-wal");
    if (base.files.write_ahead_log.empty())
      fail("the write-ahead base log has no write-ahead log");
  }
  for (std::size_t number = 1; number <= 5; ++number)
    base.streams.push_back(account(number));
  read_back(base, 27);
  return base;
}

} // namespace detail

/// The base logs, built on first use (LLVMFuzzerInitialize is not called by the replay in the ordinary build).
inline const std::vector<base_log>& base_logs() {
  static const std::vector<base_log> logs = [] {
    std::vector<base_log> result;
    result.push_back(detail::small_log());
    result.push_back(detail::large_log());
    result.push_back(detail::write_ahead_log());
    return result;
  }();
  return logs;
}

/// An input: one byte of mode (its low two bits choose the base log, the rest is the target's), then patches on
/// the base's bytes (its main file followed by its write-ahead log). A patch is three bytes of offset
/// (little-endian, modulo the current size), one of length and that many bytes, written there and growing the
/// bytes past their end; length 0 cuts the bytes at the offset instead. A truncated patch writes what it has.
struct damage {
  const base_log* base = nullptr;
  std::uint8_t mode = 0;
  log_bytes files;
};

inline damage damaged_copy(const std::uint8_t* data, std::size_t size) {
  damage result;
  if (size > 0)
    result.mode = data[0];
  const auto& logs = base_logs();
  result.base = &logs[(result.mode & 3) % logs.size()];
  std::string bytes = result.base->files.database + result.base->files.write_ahead_log;
  std::size_t at = 1;
  while (at + 4 <= size && !bytes.empty()) {
    std::size_t offset = (data[at] | data[at + 1] << 8 | data[at + 2] << 16) % bytes.size();
    std::size_t length = data[at + 3];
    at += 4;
    if (length == 0) {
      bytes.resize(offset);
      continue;
    }
    length = std::min(length, size - at);
    if (offset + length > bytes.size())
      bytes.resize(offset + length);
    std::copy(data + at, data + at + length, bytes.begin() + static_cast<std::ptrdiff_t>(offset));
    at += length;
  }
  // The main file keeps its length; what lies beyond it is the write-ahead log (a base without one gets none).
  auto split = result.base->files.write_ahead_log.empty() ? bytes.size()
                                                          : std::min(bytes.size(), result.base->files.database.size());
  result.files.database = bytes.substr(0, split);
  result.files.write_ahead_log = bytes.substr(split);
  return result;
}

} // namespace store_fuzz
