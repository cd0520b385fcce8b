// Fuzz target: the SQLite store on an event log file whose bytes were damaged (store_file_support.hpp builds the
// intact logs and says how an input damages a copy). The store must refuse the file at open, refuse a read with
// event_read_error, or serve what the intact log holds: every event it hands out is the intact log's event at that
// position, field for field, and a read serves a gap-free run of positions (of versions, for a stream) from where
// it started, so that damage is refused or invisible (a shorter log), never a changed or reordered event. Reading
// past damage (sqlite_options::read_past_damage) may serve changed events, but only once it counted damage.
// Appending to the damaged file must not crash either, and what it appended reads back as appended.
//
// The mode byte: bits 0-1 the base log, bit 2 opens with the header-only check (else quick_check), bit 3 reads
// past damage, bit 4 appends after reading, bits 5-7 where the reads start (eighths of the log for read_all,
// versions for read_stream).
#include "fuzz/store_file_support.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace {

using store_fuzz::fail;
using store_fuzz::served_event;

/// What the damaged log may serve: at each position the intact log's event, or an event appended in this run.
class expected_log {
public:
  explicit expected_log(const store_fuzz::base_log& base) : base_(base) {}

  bool holds(const cqrs::envelope& event) const {
    if (event.position >= 1 && event.position <= base_.events.size()
        && store_fuzz::same_event(event, base_.events[event.position - 1]))
      return true;
    // The store chose an appended event's timestamp at commit; the rest was appended.
    auto found = appended_.find(event.position);
    return found != appended_.end() && store_fuzz::same_event(event, found->second, false);
  }

  void appended(served_event event) { appended_.insert_or_assign(event.position, std::move(event)); }
  std::size_t size() const { return base_.events.size() + appended_.size(); }
  const store_fuzz::base_log& base() const { return base_; }

private:
  const store_fuzz::base_log& base_;
  std::map<cqrs::log_position, served_event> appended_;
};

/// Runs the reads on one opened store and holds what they serve to the expected log.
class reads {
public:
  reads(const cqrs::sqlite_event_store& store, const expected_log& expected, bool past_damage)
      : store_(store), expected_(expected), past_damage_(past_damage) {}

  void log(cqrs::log_position after) {
    std::optional<std::string> deviation;
    auto next = after;
    judge("read_all from " + std::to_string(after), deviation, [&] {
      store_.read_all(after, store_.head(), [&](const cqrs::envelope& event) {
        if (!deviation && event.position != next + 1)
          deviation = "position " + std::to_string(event.position) + " after " + std::to_string(next);
        else if (!deviation && !expected_.holds(event))
          deviation = "a changed " + store_fuzz::served(event).describe();
        next = event.position;
        count_served();
        return true;
      });
    });
  }

  void stream(const cqrs::stream_id& stream, cqrs::stream_version after) {
    std::optional<std::string> deviation;
    auto next = after;
    judge("read_stream " + stream.to_string() + " from " + std::to_string(after), deviation, [&] {
      store_.read_stream(stream, after, [&](const cqrs::envelope& event) {
        if (!deviation && event.version != next + 1)
          deviation = "version " + std::to_string(event.version) + " after " + std::to_string(next);
        else if (!deviation && !(*event.stream == stream))
          deviation = "an event of another stream: " + store_fuzz::served(event).describe();
        else if (!deviation && !expected_.holds(event))
          deviation = "a changed " + store_fuzz::served(event).describe();
        next = event.version;
        count_served();
        return true;
      });
    });
  }

  /// find_command for a command of the intact log: nothing (its rows hidden), a refusal, or what some of the
  /// intact rows of that command say (a damaged index may hide some), never another stream or a later position.
  void command(const std::string& command_id) {
    std::optional<cqrs::recorded_command> found;
    try {
      found = store_.find_command(command_id);
    } catch (const cqrs::event_read_error&) {
      return;
    }
    if (!found)
      return;
    std::optional<std::string> deviation;
    std::size_t rows = 0;
    for (const auto& event : expected_.base().events) {
      if (event.command_id != command_id)
        continue;
      ++rows;
      if (event.stream_type != found->stream.type || event.stream_id != found->stream.id)
        deviation = "the stream " + found->stream.to_string();
    }
    auto first = expected_.base().first_of(command_id);
    auto last = expected_.base().last_of(command_id);
    if (!first || !last || found->first_position < first->position || found->last_position > last->position
        || found->first_position > found->last_position || found->events == 0 || found->events > rows
        || found->version < first->version || found->version > last->version
        || store_fuzz::microseconds_of(found->timestamp) < first->timestamp
        || store_fuzz::microseconds_of(found->timestamp) > last->timestamp)
      deviation = "positions " + std::to_string(found->first_position) + " to " + std::to_string(found->last_position)
                  + ", version " + std::to_string(found->version) + ", " + std::to_string(found->events) + " events";
    if (!deviation)
      return;
    if (!past_damage_)
      fail("find_command " + command_id + " answered " + *deviation);
    if (store_.statistics().damage_passed == 0)
      fail("find_command " + command_id + " read past damage, but the store counted none: " + *deviation);
  }

private:
  /// A read must end: one that serves far more events than the log holds goes round in circles.
  void count_served() {
    if (++served_ > 4 * (expected_.size() + 16))
      fail("a read served " + std::to_string(served_) + " events from a log of " + std::to_string(expected_.size()));
  }

  /// Runs the read, which notes in `deviation` the first event it should not have served; a refusal
  /// (event_read_error) is fine, but what the read served before it is judged all the same.
  template <class Read>
  void judge(const std::string& what, const std::optional<std::string>& deviation, Read read) {
    served_ = 0;
    try {
      read();
    } catch (const cqrs::event_read_error&) {
    }
    if (!deviation)
      return;
    if (!past_damage_)
      fail(what + " served " + *deviation);
    // Counted when the damaged event was first decoded, which may have been by an earlier read: read_all's cache
    // keeps decoded chunks for every later reader.
    if (store_.statistics().damage_passed == 0)
      fail(what + " read past damage, but the store counted none: " + *deviation);
  }

  const cqrs::sqlite_event_store& store_;
  const expected_log& expected_;
  bool past_damage_;
  std::size_t served_ = 0;
};

/// The appended events as the store will serve them (their timestamp aside).
void expect_appended(expected_log& expected, const cqrs::append_request& request, const cqrs::append_result& result) {
  auto version = result.version - request.events.size();
  for (std::size_t index = 0; index < request.events.size(); ++index) {
    served_event event;
    event.position = result.first_position + index;
    event.stream_type = request.stream->type;
    event.stream_id = request.stream->id;
    event.version = version + index + 1;
    event.type_name = std::string{request.events[index].type_name};
    event.command_id = request.command_id;
    event.correlation_id = request.correlation_id;
    event.payload =
      store_fuzz::bank_codecs().find(event.type_name)->second.encode(request.events[index].payload);
    event.value = *std::any_cast<bank::event>(&request.events[index].payload);
    expected.appended(std::move(event));
  }
}

cqrs::append_request deposit(const cqrs::stream_id& stream, cqrs::stream_version expected, std::string command_id) {
  cqrs::append_request request{std::make_shared<const cqrs::stream_id>(stream), expected, command_id, "corr-fuzz", {}};
  // Recorded, so that find_command reads the commands table of the damaged file.
  request.remember_command_id = true;
  if (expected == 0)
    request.events.push_back({bank::account_opened::type_name, bank::event{bank::account_opened{"fuzz"}}});
  request.events.push_back({bank::money_deposited::type_name, bank::event{bank::money_deposited{4242}}});
  return request;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto damaged = store_fuzz::damaged_copy(data, size);
  const auto& base = *damaged.base;
  bool header_only = damaged.mode & 4;
  bool past_damage = damaged.mode & 8;
  bool append = damaged.mode & 16;
  cqrs::stream_version start = damaged.mode >> 5;

  static const auto path = store_fuzz::scratch().file("damaged.db");
  store_fuzz::place_files(path, damaged.files);
  cqrs::sqlite_options options;
  options.synchronous = cqrs::sqlite_synchronous::normal;
  options.busy_timeout = std::chrono::milliseconds{2000};
  options.open_check = header_only ? cqrs::sqlite_open_check::header_only : cqrs::sqlite_open_check::quick_check;
  options.read_past_damage = past_damage;
  auto opened = cqrs::open_sqlite_event_store(path, options);
  if (!opened) {
    if (opened.error().code != cqrs::errc::store_failure || opened.error().message.empty())
      fail("open refused without saying why as a store failure: " + opened.error().code);
    return 0;
  }
  auto& store = **opened;
  store.add_event_types(store_fuzz::bank_codec_list());
  expected_log expected{base};
  reads check{store, expected, past_damage};

  check.log(0);
  if (start > 0)
    check.log(base.events.size() * start / 8);
  for (const auto& stream : base.streams)
    check.stream(stream, start);
  for (std::size_t eighth = 0; eighth < 8; ++eighth)
    check.command(base.events[base.events.size() * eighth / 8].command_id);
  check.command(base.events.back().command_id);
  // Snapshots have no checksum to hold them to (a changed state is served): the read must not crash.
  try {
    (void)store.load_snapshot(base.streams.front());
  } catch (const cqrs::event_read_error&) {
  }

  if (append) {
    cqrs::stream_id fresh{"account", "fuzz-new"};
    // The second append expects the stream's intact version: refused for a conflict if damage hid some of it.
    cqrs::stream_version intact_version = 0;
    for (const auto& event : base.events)
      if (event.stream_id == base.streams.front().id)
        intact_version = event.version;
    for (auto request :
         {deposit(fresh, 0, "cmd-fuzz-1"), deposit(base.streams.front(), intact_version, "cmd-fuzz-2")}) {
      auto kept = request;
      auto result = store.append(std::move(request));
      if (result)
        expect_appended(expected, kept, *result);
      else if (result.error().message.empty())
        fail("an append was refused without saying why");
    }
    check.log(0);
    check.stream(fresh, 0);
    check.stream(base.streams.front(), 0);
  }
  return 0;
}
