// What cqrs-store's inspections of a SQLite file and of a PostgreSQL schema share: the problem list verify prints,
// the checks it makes row by row (positions, payloads, stream versions, acknowledgements), and the JSON lines of
// dump and dead-letters.
#pragma once

#include <boost/json/basic_parser.hpp>
#include <boost/json/parser.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace store_inspection {

/// Problems found by verify, printed as they are found (the first few of each kind) and counted.
class problem_list {
public:
  explicit problem_list(std::ostream& out) : out_(out) {}

  void add(const std::string& kind, const std::string& message);
  std::uint64_t total() const { return total_; }

private:
  static constexpr std::uint64_t shown_per_kind = 20;
  std::ostream& out_;
  std::map<std::string, std::uint64_t> counts_;
  std::uint64_t total_ = 0;
};

/// "2024-05-01T12:00:00.123456Z" from microseconds since the epoch.
std::string utc_time(std::int64_t microseconds);
std::string json_string(std::string_view text);

/// One event as stored, for dump.
struct stored_event {
  std::int64_t position = 0;
  std::string_view stream_type;
  std::string_view stream_id;
  std::int64_t version = 0;
  std::string_view type;
  std::int64_t timestamp = 0;
  std::string_view command_id;
  std::string_view correlation_id;
  std::string_view payload;
};

/// The event as one JSON line of dump (payload as stored, or as text with its error when it is not JSON).
std::string event_line(const stored_event& event, boost::json::parser& parser);
/// A dead letter as one JSON line of dead-letters.
std::string dead_letter_line(std::string_view projection, std::int64_t position, std::string_view type,
                             std::string_view reason, std::int64_t recorded);

/// Checks each event in position order: positions gap-free from 1, a type name, a payload that is valid JSON and
/// that the engine's codec of its type (the order and the bank domain) decodes.
class event_checker {
public:
  explicit event_checker(problem_list& problems) : problems_(problems) {}
  void check(std::int64_t position, std::string_view type, std::string_view payload);
  std::int64_t count() const { return count_; }

private:
  problem_list& problems_;
  std::int64_t expected_ = 1;
  std::int64_t count_ = 0;
  boost::json::parser parser_;
};

/// Checks every stream's versions contiguous from 1 in the order of their positions; fed in stream, then version
/// order.
class stream_checker {
public:
  explicit stream_checker(problem_list& problems) : problems_(problems) {}
  void check(std::string_view type, std::string_view id, std::int64_t version, std::int64_t position);
  std::int64_t streams() const { return streams_; }

private:
  problem_list& problems_;
  std::string type_;
  std::string id_;
  std::int64_t expected_ = 1;
  std::int64_t last_position_ = 0;
  std::int64_t streams_ = 0;
};

/// One line "command_id position" of an acknowledgement log.
struct acknowledgement {
  std::string command_id;
  std::int64_t position = 0;
  std::int64_t line = 0;
};

/// The acknowledgements listed in the file (blank lines skipped; malformed ones and an unreadable file added to
/// the problems). Stops early when `interrupted` is set.
std::vector<acknowledgement> read_acknowledgements(const std::string& ack_log, problem_list& problems,
                                                   const std::atomic<bool>& interrupted);
/// Adds a problem unless the event at the acknowledged position exists (`stored` is its command id) and belongs
/// to the acknowledged command.
void check_acknowledgement(const acknowledgement& acknowledged, const std::optional<std::string_view>& stored,
                           problem_list& problems);

} // namespace store_inspection
