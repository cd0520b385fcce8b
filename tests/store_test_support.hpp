// Shared helpers for the event store tests: temporary folders, bank-event requests, raw SQLite access to a file.
#pragma once

#include "actors/detail/sqlite_checksum_function.hpp"
#include "actors/event_codec.hpp"
#include "actors/event_store.hpp"
#include "domain/bank_account.hpp"

#include <boost/describe.hpp>
#include <sqlite3.h>

#include <barrier>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <variant>
#include <vector>

/// A test-local aggregate event with one string field: carries empty and huge payloads.
namespace blobs {
struct blob_written {
  static constexpr std::string_view type_name = "BlobWritten.v1";
  std::string data;
  bool operator==(const blob_written&) const = default;
};
BOOST_DESCRIBE_STRUCT(blob_written, (), (data))
using event = std::variant<blob_written>;
} // namespace blobs

namespace test_support {

/// A fresh folder under the system's temporary folder, removed with everything in it when the test ends.
class temporary_folder {
public:
  temporary_folder() {
    auto pattern = (std::filesystem::temp_directory_path() / "cqrs-store-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data()))
      throw std::runtime_error("cannot create a temporary folder from " + pattern);
    path_ = pattern;
  }
  temporary_folder(const temporary_folder&) = delete;
  temporary_folder& operator=(const temporary_folder&) = delete;
  ~temporary_folder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  /// A file name inside the folder.
  std::string file(std::string_view name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

private:
  std::filesystem::path path_;
};

inline std::shared_ptr<const cqrs::stream_id> account_stream(std::string id) {
  return std::make_shared<const cqrs::stream_id>(cqrs::stream_id{"account", std::move(id)});
}

/// Starts `threads` writer threads, each with its own account stream "w<n>", that run `body(n, stream)` once all of
/// them (and whoever else `start` counts) have arrived at `start`; the threads join when the result is destroyed.
template <class Body>
std::vector<std::jthread> start_writers(int threads, std::barrier<>& start, Body body) {
  std::vector<std::jthread> writers;
  for (int writer = 0; writer < threads; ++writer)
    writers.emplace_back([&start, body, writer] {
      auto own = account_stream("w" + std::to_string(writer));
      start.arrive_and_wait();
      body(writer, own);
    });
  return writers;
}

/// A request appending one deposit event per amount.
inline cqrs::append_request deposits(std::shared_ptr<const cqrs::stream_id> stream, cqrs::stream_version expected,
                                     std::vector<std::int64_t> amounts, std::string command_id = "cmd-1",
                                     std::string correlation_id = "corr-1") {
  cqrs::append_request request{std::move(stream), expected, std::move(command_id), std::move(correlation_id), {}};
  for (auto amount : amounts)
    request.events.push_back(
      cqrs::new_event{bank::money_deposited::type_name, bank::event{bank::money_deposited{amount}}});
  return request;
}

/// The request with its command id marked as the sender's choice (a retry may re-send it): find_command finds it.
inline cqrs::append_request remembered(cqrs::append_request request) {
  request.remember_command_id = true;
  return request;
}

/// The deposited amount an envelope carries (-1 when it is not a deposit).
inline std::int64_t amount_of(const cqrs::envelope& event) {
  const auto* payload = event.event_as<bank::event>();
  if (!payload || !std::holds_alternative<bank::money_deposited>(*payload))
    return -1;
  return std::get<bank::money_deposited>(*payload).amount_cents;
}

/// Registers the codecs of every event type the store tests write: bank events and blobs.
inline void register_test_event_types(cqrs::event_store& store) {
  store.add_event_types(cqrs::event_codecs<bank::event>());
  store.add_event_types(cqrs::event_codecs<blobs::event>());
}

/// A raw SQLite connection, for tests that build or damage files behind the store's back.
class raw_database {
public:
  explicit raw_database(const std::string& path) {
    if (sqlite3_open(path.c_str(), &database_) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path + ": " + sqlite3_errmsg(database_));
  }
  raw_database(const raw_database&) = delete;
  raw_database& operator=(const raw_database&) = delete;
  ~raw_database() { sqlite3_close_v2(database_); }

  /// Runs SQL; throws on an error, so that a test never goes on with a file it did not manage to prepare.
  void execute(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(database_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : "unknown error";
      sqlite3_free(message);
      throw std::runtime_error("SQL failed: " + sql + ": " + text);
    }
  }

  /// Runs SQL that changes stored events or snapshots, then gives every one the checksum of what it now holds: as
  /// if a faulty program had written them so, which lets a test show what the reader does past the checksum.
  void execute_resealed(const std::string& sql) {
    if (!cqrs::detail::register_checksum_functions(database_))
      throw std::runtime_error(std::string{"cannot register the checksum functions: "} + sqlite3_errmsg(database_));
    execute(sql + "; " + std::string{cqrs::detail::reseal_events_sql} + "; "
            + std::string{cqrs::detail::reseal_snapshots_sql});
  }

  /// The first column of the first row as an integer.
  std::int64_t integer(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(database_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK)
      throw std::runtime_error("SQL failed: " + sql + ": " + sqlite3_errmsg(database_));
    std::int64_t value = 0;
    if (sqlite3_step(statement) == SQLITE_ROW)
      value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return value;
  }

private:
  sqlite3* database_ = nullptr;
};

} // namespace test_support
