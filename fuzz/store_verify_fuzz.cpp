// Fuzz target: cqrs-store verify (store_inspection::run_verify) on an event log file whose bytes were damaged
// (store_file_support.hpp says how an input damages a copy of an intact log; only the mode byte's low two bits,
// the base log, count here). verify must give a verdict, ok or problems, and never crash; and its "ok" must be
// true: the store then opens the file and reads every event verify counted, each the intact log's event at that
// position, and every stream of the intact log without a refusal.
//
// Two refusals at open are allowed, for what verify does not see: the schema of the tables beyond their columns
// (verify checks that each has the columns the engine uses; the store's upserts also need the primary keys), and
// a header that makes SQLite open the file read-only (verify checks the header's write version only when no
// write-ahead log is beside the file, since page 1 may be newer in the log). With STORE_FUZZ_VERBOSE set the
// target prints those, and where verify and the store disagree the other way (verify finds problems, the store
// reads the whole intact log), which is allowed too: verify checks more.
#include "fuzz/store_file_support.hpp"
#include "tools/store_inspection.hpp"

#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

namespace {

using store_fuzz::fail;

/// The events verify counted, from its summary "PATH: N events, M streams: ok".
std::optional<std::uint64_t> counted_events(const std::string& output, const std::string& path) {
  auto summary = output.rfind(path + ": ");
  if (summary == std::string::npos)
    return std::nullopt;
  auto begin = output.data() + summary + path.size() + 2;
  std::uint64_t events = 0;
  auto [end, error] = std::from_chars(begin, output.data() + output.size(), events);
  if (error != std::errc{} || std::string_view{end, 7} != " events")
    return std::nullopt;
  return events;
}

/// How the store takes a file: why it does not read it as the intact log's first `events` events (nothing when it
/// does), and whether that is a refusal at open for something verify does not see.
struct store_verdict {
  std::optional<std::string> problem;
  bool unseen_by_verify = false;
};

store_verdict store_reads(const std::string& path, const store_fuzz::log_bytes& files,
                          const store_fuzz::base_log& base, std::uint64_t events) {
  cqrs::sqlite_options options;
  options.synchronous = cqrs::sqlite_synchronous::normal;
  options.busy_timeout = std::chrono::milliseconds{2000};
  auto opened = cqrs::open_sqlite_event_store(path, options);
  if (!opened) {
    // The messages of open_writer for its statements and for the tables it adds (snapshots, dead letters, the
    // command index); the events table's own columns are all read by verify, which fails on a missing one. And
    // SQLite's refusal to write a file whose header (perhaps page 1 in the write-ahead log) says read-only.
    const auto& message = opened.error().message;
    bool unseen = message.find("does not have the event log's schema") != std::string::npos
                  || message.find("cannot add the command index") != std::string::npos
                  || (!files.write_ahead_log.empty()
                      && message.find("attempt to write a readonly database") != std::string::npos);
    return {"the store refuses to open it: " + message, unseen};
  }
  auto& store = **opened;
  store.add_event_types(store_fuzz::bank_codec_list());
  if (store.head() != events)
    return {"the store's head is " + std::to_string(store.head())};
  std::optional<std::string> problem;
  cqrs::log_position next = 0;
  try {
    store.read_all(0, store.head(), [&](const cqrs::envelope& event) {
      if (event.position != next + 1 || event.position > base.events.size()
          || !store_fuzz::same_event(event, base.events[next])) {
        problem = "read_all served " + store_fuzz::served(event).describe() + " after position " + std::to_string(next);
        return false;
      }
      next = event.position;
      return true;
    });
    if (!problem && next != events)
      problem = "read_all served " + std::to_string(next) + " events";
    for (const auto& stream : base.streams) {
      if (problem)
        break;
      cqrs::stream_version version = 0;
      store.read_stream(stream, 0, [&](const cqrs::envelope& event) {
        const auto* intact = base.find(stream, event.version);
        if (event.version != version + 1 || !intact || !store_fuzz::same_event(event, *intact)) {
          problem = "read_stream " + stream.to_string() + " served " + store_fuzz::served(event).describe();
          return false;
        }
        version = event.version;
        return true;
      });
    }
  } catch (const cqrs::event_read_error& refused) {
    problem = std::string{"a read was refused: "} + refused.what();
  }
  return {problem};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool verbose = std::getenv("STORE_FUZZ_VERBOSE") != nullptr;
  auto damaged = store_fuzz::damaged_copy(data, size);
  static const auto path = store_fuzz::scratch().file("damaged.db");
  store_fuzz::place_files(path, damaged.files);

  std::ostringstream out;
  std::ostringstream errors;
  std::atomic<bool> not_interrupted{false};
  int verdict = store_inspection::exit_problems;
  {
    store_inspection::log_file file{path};
    if (!file.open_error())
      verdict = store_inspection::run_verify(file, "", {out, errors, not_interrupted});
  }
  if (verdict != store_inspection::exit_ok && verdict != store_inspection::exit_problems)
    fail("verify returned " + std::to_string(verdict));
  bool said_ok = verdict == store_inspection::exit_ok;
  if (said_ok != out.str().ends_with(": ok\n"))
    fail("verify's exit code and summary disagree: " + out.str());

  if (said_ok) {
    auto events = counted_events(out.str(), path);
    if (!events)
      fail("verify's summary does not count the events: " + out.str());
    auto taken = store_reads(path, damaged.files, *damaged.base, *events);
    if (taken.problem && !taken.unseen_by_verify)
      fail("verify says ok (" + out.str() + "), but " + *taken.problem);
    if (taken.problem && verbose)
      std::cerr << "verify says ok, but " << *taken.problem << '\n';
  } else if (verbose) {
    // The store reads the file again from its bytes: verify only read it, but place them anew all the same.
    store_fuzz::place_files(path, damaged.files);
    if (!store_reads(path, damaged.files, *damaged.base, damaged.base->events.size()).problem)
      std::cerr << "verify finds problems in a file the store reads whole:\n" << out.str();
  }
  return 0;
}
