// cqrs_event_checksum(...) as a SQL function: the store upgrades files written before checksums with it, and tests
// reseal events they changed on purpose.
#pragma once

#include "actors/event_checksum.hpp"

#include <sqlite3.h>

#include <string_view>

namespace cqrs::detail {

/// Registers cqrs_event_checksum(position, stream_type, stream_id, version, type, timestamp, command_id,
/// correlation_id, payload) on the connection; false when SQLite refuses.
inline bool register_event_checksum_function(sqlite3* database) {
  auto function = [](sqlite3_context* context, int, sqlite3_value** arguments) {
    auto integer = [&](int index) { return sqlite3_value_int64(arguments[index]); };
    auto text = [&](int index) {
      const auto* bytes = reinterpret_cast<const char*>(sqlite3_value_text(arguments[index]));
      return bytes ? std::string_view{bytes, static_cast<std::size_t>(sqlite3_value_bytes(arguments[index]))}
                   : std::string_view{};
    };
    auto checksum = event_checksum(stored_event_fields{static_cast<log_position>(integer(0)), text(1), text(2),
                                                       static_cast<stream_version>(integer(3)), text(4), integer(5),
                                                       text(6), text(7), text(8)});
    sqlite3_result_int64(context, static_cast<sqlite3_int64>(checksum));
  };
  return sqlite3_create_function_v2(database, "cqrs_event_checksum", 9, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                                    function, nullptr, nullptr, nullptr)
         == SQLITE_OK;
}

/// The SQL that gives every event the checksum of what it holds now.
inline constexpr std::string_view reseal_events_sql =
  "UPDATE events SET checksum = cqrs_event_checksum(position, stream_type, stream_id, version, type, timestamp, "
  "command_id, correlation_id, payload)";

} // namespace cqrs::detail
