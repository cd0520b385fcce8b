// cqrs_event_checksum(...) and cqrs_snapshot_checksum(...) as SQL functions: the store upgrades files written
// before checksums with them and replaces damaged snapshots, and tests reseal rows they changed on purpose.
#pragma once

#include "actors/event_checksum.hpp"

#include <sqlite3.h>

#include <cstdint>
#include <string_view>

namespace cqrs::detail {

namespace checksum_arguments {

inline std::int64_t integer(sqlite3_value** arguments, int index) {
  return sqlite3_value_int64(arguments[index]);
}

inline std::string_view text(sqlite3_value** arguments, int index) {
  const auto* bytes = reinterpret_cast<const char*>(sqlite3_value_text(arguments[index]));
  return bytes ? std::string_view{bytes, static_cast<std::size_t>(sqlite3_value_bytes(arguments[index]))}
               : std::string_view{};
}

} // namespace checksum_arguments

/// Registers cqrs_event_checksum(position, stream_type, stream_id, version, type, timestamp, command_id,
/// correlation_id, payload) and cqrs_snapshot_checksum(stream_type, stream_id, version, format, state) on the
/// connection; false when SQLite refuses.
inline bool register_checksum_functions(sqlite3* database) {
  auto event_function = [](sqlite3_context* context, int, sqlite3_value** arguments) {
    using namespace checksum_arguments;
    auto checksum = event_checksum(stored_event_fields{
      static_cast<log_position>(integer(arguments, 0)), text(arguments, 1), text(arguments, 2),
      static_cast<stream_version>(integer(arguments, 3)), text(arguments, 4), integer(arguments, 5),
      text(arguments, 6), text(arguments, 7), text(arguments, 8)});
    sqlite3_result_int64(context, static_cast<sqlite3_int64>(checksum));
  };
  auto snapshot_function = [](sqlite3_context* context, int, sqlite3_value** arguments) {
    using namespace checksum_arguments;
    auto checksum = snapshot_checksum(stored_snapshot_fields{
      text(arguments, 0), text(arguments, 1), static_cast<stream_version>(integer(arguments, 2)),
      static_cast<std::uint32_t>(integer(arguments, 3)), text(arguments, 4)});
    sqlite3_result_int64(context, static_cast<sqlite3_int64>(checksum));
  };
  constexpr int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
  return sqlite3_create_function_v2(database, "cqrs_event_checksum", 9, flags, nullptr, event_function, nullptr,
                                    nullptr, nullptr)
           == SQLITE_OK
         && sqlite3_create_function_v2(database, "cqrs_snapshot_checksum", 5, flags, nullptr, snapshot_function,
                                       nullptr, nullptr, nullptr)
              == SQLITE_OK;
}

/// The SQL that gives every event the checksum of what it holds now.
inline constexpr std::string_view reseal_events_sql =
  "UPDATE events SET checksum = cqrs_event_checksum(position, stream_type, stream_id, version, type, timestamp, "
  "command_id, correlation_id, payload)";

/// The SQL that gives every snapshot the checksum of what it holds now.
inline constexpr std::string_view reseal_snapshots_sql =
  "UPDATE snapshots SET checksum = cqrs_snapshot_checksum(stream_type, stream_id, version, format, state)";

} // namespace cqrs::detail
