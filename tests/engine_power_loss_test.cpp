// Power loss under the SQLite store: at a simulated crash every write not yet synced is lost (the newest one may
// be torn), then the file is reopened. With synchronous=full no acknowledged command is ever lost; with normal only
// an unsynced tail is, and the file is never corrupt. Run over every crash point of a short workload.
#include "engine_support.hpp"

#include "actors/sqlite_event_store.hpp"
#include "sqlite_fault_vfs.hpp"
#include "store_test_support.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using namespace test_support;

namespace {

/// What one crash point showed.
struct crash_outcome {
  /// Commands acknowledged before the power went, in the order they were sent (one at a time).
  std::vector<std::string> acknowledged;
  /// The command ids of the events the reopened file holds, in log order; or why it did not open.
  std::vector<std::string> survived;
  std::string reopen_error;
  bool power_went = false;
};

/// Runs `commands` deposits through an engine on a fresh file, the power going after `operations` writes and
/// syncs; loses what was not synced (tearing the newest write when `tear`), and reads the file back.
crash_outcome run_until_power_loss(const std::filesystem::path& folder, std::int64_t operations, bool tear,
                                   cqrs::sqlite_synchronous synchronous, int commands) {
  auto path = (folder / ("events-" + std::to_string(operations) + (tear ? "-torn" : "") + ".db")).string();
  auto& faults = sqlite_fault_vfs();
  faults.clear();
  crash_outcome outcome;
  {
    auto opened = cqrs::open_sqlite_event_store(path, {.synchronous = synchronous, .vfs = fault_vfs_name});
    REQUIRE(opened);
    faults.tracking_power = true;
    faults.operations_until_power_loss = operations;
    auto engine = bank_engine({.store = *opened});
    for (int index = 0; index < commands; ++index) {
      auto id = "deposit-" + std::to_string(index);
      auto reply = index == 0 ? run(*engine, bank::open_account{"a", "owner"}, {id, ""})
                              : run(*engine, bank::deposit{"a", 1}, {id, ""});
      if (!reply)
        break; // the store failed its commit: the engine refuses everything from here on
      outcome.acknowledged.push_back(id);
    }
    outcome.power_went = faults.power_lost.load();
    faults.power_lost = true; // whatever the engine and the store write as they close is lost too
  }
  faults.lose_unsynced_writes(tear);
  std::filesystem::remove(path + "-shm"); // shared memory: gone with the power
  faults.clear();
  auto reopened = cqrs::open_sqlite_event_store(path);
  if (!reopened) {
    outcome.reopen_error = reopened.error().message;
    return outcome;
  }
  (*reopened)->add_event_types(cqrs::event_codecs<bank::event>());
  try {
    (*reopened)->read_all(0, (*reopened)->head(), [&](const cqrs::envelope& event) {
      outcome.survived.push_back(event.command_id);
      return true;
    });
  } catch (const std::exception& error) {
    outcome.reopen_error = std::string{"reading the log: "} + error.what();
  }
  reopened->reset();
  for (const auto* suffix : {"", "-wal", "-shm"})
    std::filesystem::remove(path + suffix);
  return outcome;
}

/// True when `prefix` is the start of `whole`.
bool starts_with(const std::vector<std::string>& whole, const std::vector<std::string>& prefix) {
  return prefix.size() <= whole.size() && std::equal(prefix.begin(), prefix.end(), whole.begin());
}

/// Crash points to try: CQRS_POWER_LOSS_POINTS (a soak) or 300; two per count of writes and syncs (whole, torn).
std::int64_t crash_points() {
  if (const char* points = std::getenv("CQRS_POWER_LOSS_POINTS"))
    return std::max<std::int64_t>(1, std::atoll(points));
  return 300;
}

/// Commands per run, enough that the crash points fall inside the workload (a command costs about three writes
/// and syncs: the WAL frames, the sync, now and then a checkpoint).
int commands_per_run() {
  return static_cast<int>(std::max<std::int64_t>(40, crash_points() / 5));
}

/// Runs every crash point under `synchronous`, each outcome checked by `check` (the file opened and read back
/// first), and checks that the crash points reached into the workload.
template <class Check>
void at_every_crash_point(cqrs::sqlite_synchronous synchronous, const char* mode, Check check) {
  temporary_folder folder;
  std::int64_t crashes = 0;
  for (std::int64_t point = 0; point < crash_points(); ++point) {
    bool tear = point % 2 == 1;
    auto outcome = run_until_power_loss(folder.path(), point / 2, tear, synchronous, commands_per_run());
    INFO(mode << ": power lost after " << point / 2 << " writes and syncs" << (tear ? ", the last one torn" : ""));
    INFO(outcome.reopen_error);
    REQUIRE(outcome.reopen_error.empty());
    check(outcome);
    crashes += outcome.power_went ? 1 : 0;
  }
  CHECK(crashes > 0);
  if (std::getenv("CQRS_POWER_LOSS_POINTS"))
    WARN(mode << ": " << crash_points() << " crash points, " << crashes << " of them inside the workload of "
              << commands_per_run() << " commands");
}

} // namespace

TEST_CASE("power loss at any write: with synchronous=full no acknowledged command is lost, the file opens",
          "[store][sqlite][power]") {
  at_every_crash_point(cqrs::sqlite_synchronous::full, "synchronous=full", [](const crash_outcome& outcome) {
    // Every acknowledged command survived, in order; beyond them at most the one whose commit the power cut
    // short may have made it (it was durable but not yet acknowledged).
    REQUIRE(starts_with(outcome.survived, outcome.acknowledged));
    CHECK(outcome.survived.size() <= outcome.acknowledged.size() + 1);
  });
}

TEST_CASE("power loss with synchronous=normal loses at most an unsynced tail and never corrupts the file",
          "[store][sqlite][power]") {
  at_every_crash_point(cqrs::sqlite_synchronous::normal, "synchronous=normal", [](const crash_outcome& outcome) {
    // What survived is a prefix of what was sent: acknowledged commands may be missing from the end, never from
    // the middle, and nothing unsent appears.
    std::vector<std::string> sent = outcome.acknowledged;
    sent.push_back("deposit-" + std::to_string(outcome.acknowledged.size()));
    REQUIRE(starts_with(sent, outcome.survived));
  });
}
