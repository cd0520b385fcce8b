// cqrs-store's shared checks and JSON lines (see inspection_support.hpp).
#include "tools/inspection_support.hpp"

#include "actors/event_codec.hpp"
#include "domain/bank_account.hpp"
#include "domain/orders.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

namespace store_inspection {
namespace {

/// The codecs of the event types the project's programs store, by type name: the order domain (cqrs-demo,
/// cqrs-load) and the bank example. verify decodes every payload with them, as the engine would on recovery.
std::map<std::string, cqrs::event_type_codec, std::less<>> known_codecs() {
  std::map<std::string, cqrs::event_type_codec, std::less<>> codecs;
  for (auto& codec : cqrs::event_codecs<orders::event>())
    codecs.emplace(std::string{codec.type_name}, std::move(codec));
  for (auto& codec : cqrs::event_codecs<bank::event>())
    codecs.emplace(std::string{codec.type_name}, std::move(codec));
  return codecs;
}

} // namespace

void problem_list::add(const std::string& kind, const std::string& message) {
  auto& count = counts_[kind];
  if (++count <= shown_per_kind)
    out_ << "problem: " << message << '\n';
  else if (count == shown_per_kind + 1)
    out_ << "problem: (further " << kind << " problems are counted, not shown)\n";
  ++total_;
}

std::string utc_time(std::int64_t microseconds) {
  std::time_t seconds = static_cast<std::time_t>(microseconds / 1000000);
  auto fraction = microseconds % 1000000;
  if (fraction < 0) {
    fraction += 1000000;
    --seconds;
  }
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[96]; // room for any int the compiler thinks tm's fields may hold
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, static_cast<long long>(fraction));
  return text;
}

std::string json_string(std::string_view text) { return boost::json::serialize(boost::json::string_view{text}); }

std::string event_line(const stored_event& event, boost::json::parser& parser) {
  std::string line;
  line += "{\"position\":" + std::to_string(event.position);
  line += ",\"stream_type\":" + json_string(event.stream_type);
  line += ",\"stream_id\":" + json_string(event.stream_id);
  line += ",\"version\":" + std::to_string(event.version);
  line += ",\"type\":" + json_string(event.type);
  line += ",\"timestamp\":" + std::to_string(event.timestamp);
  line += ",\"time\":\"" + utc_time(event.timestamp) + "\"";
  line += ",\"command_id\":" + json_string(event.command_id);
  line += ",\"correlation_id\":" + json_string(event.correlation_id);
  boost::system::error_code error;
  parser.reset();
  parser.write(event.payload.data(), event.payload.size(), error); // the whole text: trailing garbage is an error
  if (!error) {
    // The stored text as it is; JSON allows raw line breaks only as whitespace, which a JSON line cannot hold.
    std::string text{event.payload};
    for (auto& character : text)
      if (character == '\n' || character == '\r')
        character = ' ';
    line += ",\"payload\":" + text + "}";
  } else {
    line += ",\"payload\":null,\"payload_text\":" + json_string(event.payload)
            + ",\"payload_error\":" + json_string(error.message()) + "}";
  }
  return line;
}

std::string dead_letter_line(std::string_view projection, std::int64_t position, std::string_view type,
                             std::string_view reason, std::int64_t recorded) {
  return "{\"projection\":" + json_string(projection) + ",\"position\":" + std::to_string(position)
         + ",\"type\":" + json_string(type) + ",\"reason\":" + json_string(reason) + ",\"recorded\":\""
         + utc_time(recorded) + "\"}";
}

void event_checker::check(std::int64_t position, std::string_view type, std::string_view payload) {
  static const auto codecs = known_codecs();
  ++count_;
  if (position != expected_)
    problems_.add("position", position > expected_
                                ? "positions " + std::to_string(expected_) + " to " + std::to_string(position - 1)
                                    + " are missing (gap before position " + std::to_string(position) + ")"
                                : "position " + std::to_string(position) + " out of order");
  expected_ = position + 1;
  if (type.empty())
    problems_.add("type", "event " + std::to_string(position) + " has no type name");
  boost::system::error_code error;
  parser_.reset();
  parser_.write(payload.data(), payload.size(), error); // the whole text: trailing garbage is an error too
  if (error) {
    problems_.add("payload", "event " + std::to_string(position) + " (" + std::string{type}
                               + ") has a payload that is not valid JSON: " + error.message());
    return;
  }
  auto codec = codecs.find(type);
  if (codec == codecs.end()) {
    if (!type.empty())
      problems_.add("type", "event " + std::to_string(position) + " has the type " + std::string{type}
                              + ", which no event of the order or bank domain has: the engine would refuse it");
    return;
  }
  if (auto decoded = codec->second.decode(payload); !decoded)
    problems_.add("payload", "event " + std::to_string(position) + " (" + std::string{type}
                               + ") does not decode as the engine reads it: " + decoded.error());
}

void stream_checker::check(std::string_view type, std::string_view id, std::int64_t version, std::int64_t position) {
  if (streams_ == 0 || type != type_ || id != id_) {
    type_ = type;
    id_ = id;
    expected_ = 1;
    last_position_ = 0;
    ++streams_;
  }
  auto name = type_ + "/" + id_;
  if (version != expected_)
    problems_.add("version", "stream " + name + " has version " + std::to_string(version) + " where version "
                               + std::to_string(expected_) + " should be (event " + std::to_string(position) + ")");
  if (position <= last_position_)
    problems_.add("version", "stream " + name + " version " + std::to_string(version) + " is at position "
                               + std::to_string(position) + ", before its previous version's position "
                               + std::to_string(last_position_));
  expected_ = version + 1;
  last_position_ = position;
}

std::vector<acknowledgement> read_acknowledgements(const std::string& ack_log, problem_list& problems,
                                                   const std::atomic<bool>& interrupted) {
  std::vector<acknowledgement> acknowledged;
  std::ifstream lines{ack_log};
  if (!lines) {
    problems.add("ack", "cannot read the acknowledgement log " + ack_log);
    return acknowledged;
  }
  std::string line;
  std::int64_t number = 0;
  while (!interrupted.load(std::memory_order_relaxed) && std::getline(lines, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    std::istringstream fields{line};
    acknowledgement parsed{{}, 0, number};
    std::string rest;
    if (!(fields >> parsed.command_id >> parsed.position) || (fields >> rest) || parsed.position <= 0) {
      problems.add("ack", ack_log + " line " + std::to_string(number) + " is not \"command_id position\": " + line);
      continue;
    }
    acknowledged.push_back(std::move(parsed));
  }
  return acknowledged;
}

void check_acknowledgement(const acknowledgement& acknowledged, const std::optional<std::string_view>& stored,
                           problem_list& problems) {
  auto what = "acknowledged command " + acknowledged.command_id + " at position "
              + std::to_string(acknowledged.position) + " (line " + std::to_string(acknowledged.line) + "), but ";
  if (!stored)
    problems.add("ack", what + "the log has no event there");
  else if (*stored != acknowledged.command_id)
    problems.add("ack", what + "that event belongs to command " + std::string{*stored});
}

} // namespace store_inspection
