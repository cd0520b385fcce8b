// A SQLite VFS for tests: the default "unix" VFS, except that writes and syncs fail or slow down on demand, and
// that it can simulate a power loss: every write not yet synced is undone, as a disk's volatile cache loses it.
#pragma once

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace test_support {

/// What the fault VFS does to files opened through it; 0 means "pass through".
struct sqlite_faults {
  /// SQLite result code every xWrite and xTruncate returns instead of writing (e.g. SQLITE_FULL).
  std::atomic<int> failing_writes{0};
  /// SQLite result code every xSync returns instead of syncing (e.g. SQLITE_IOERR_FSYNC).
  std::atomic<int> failing_syncs{0};
  /// Extra time every xSync takes: a slow disk.
  std::atomic<int> sync_delay_microseconds{0};
  /// A disk that stalls: from hold_syncs() until release_syncs(), every xSync waits. A test learns that the
  /// writer reached its sync from wait_for_held_syncs, woken by the sync itself (no polling).
  void hold_syncs() {
    std::lock_guard lock{hold_mutex};
    holding = true;
  }
  void release_syncs() {
    {
      std::lock_guard lock{hold_mutex};
      holding = false;
    }
    hold_changed.notify_all();
  }
  /// True once `count` syncs are held; false when they were not within `limit`.
  bool wait_for_held_syncs(int count, std::chrono::milliseconds limit) {
    std::unique_lock lock{hold_mutex};
    return hold_changed.wait_for(lock, limit, [&] { return held >= count; });
  }
  /// Called by xSync: waits while syncs are held.
  void pass_hold() {
    std::unique_lock lock{hold_mutex};
    if (!holding)
      return;
    ++held;
    hold_changed.notify_all();
    hold_changed.wait(lock, [this] { return !holding; });
    --held;
  }
  std::mutex hold_mutex;
  std::condition_variable hold_changed;
  bool holding = false;
  int held = 0;

  /// Power loss: while `tracking_power` is set, every write and truncation keeps what it replaced until the file is
  /// synced (a sync makes it durable; the real fsync is skipped, durability is what this simulates). After
  /// `operations_until_power_loss` more writes, truncations and syncs the power goes: from then on they all fail
  /// with SQLITE_IOERR, and lose_unsynced_writes() undoes what was never synced.
  std::atomic<bool> tracking_power{false};
  std::atomic<std::int64_t> operations_until_power_loss{-1};
  std::atomic<bool> power_lost{false};

  void clear() {
    failing_writes = 0;
    failing_syncs = 0;
    sync_delay_microseconds = 0;
    release_syncs();
    tracking_power = false;
    operations_until_power_loss = -1;
    power_lost = false;
    std::lock_guard lock{unsynced_mutex};
    unsynced.clear();
  }

  /// What one write or truncation replaced: the bytes at `offset` that existed, the file's size before, and how
  /// many bytes the write wrote there (0 for a truncation).
  struct undo {
    std::string path;
    sqlite3_int64 offset = 0;
    std::string replaced;
    sqlite3_int64 size_before = 0;
    sqlite3_int64 written = 0;
  };
  std::mutex unsynced_mutex;
  /// Every unsynced change of every file, oldest first.
  std::vector<undo> unsynced;

  /// After the files were closed: undoes, newest first, every change not synced, as a power loss leaves the disk;
  /// with `tear`, the newest write stays half done (its first half on the disk). Returns the changes undone.
  std::size_t lose_unsynced_writes(bool tear) {
    std::lock_guard lock{unsynced_mutex};
    std::map<std::string, int> files;
    std::size_t undone = 0;
    for (auto change = unsynced.rbegin(); change != unsynced.rend(); ++change, ++undone) {
      auto [found, opened] = files.try_emplace(change->path, -1);
      if (opened)
        found->second = ::open(change->path.c_str(), O_RDWR | O_CLOEXEC);
      int file = found->second;
      if (file < 0)
        continue;
      auto kept = tear && undone == 0 ? change->written / 2 : 0;
      auto restored_from = std::min<sqlite3_int64>(kept, static_cast<sqlite3_int64>(change->replaced.size()));
      if (static_cast<sqlite3_int64>(change->replaced.size()) > restored_from)
        (void)!::pwrite(file, change->replaced.data() + restored_from,
                        change->replaced.size() - static_cast<std::size_t>(restored_from),
                        static_cast<off_t>(change->offset + restored_from));
      auto size = std::max(change->size_before, change->offset + kept);
      struct stat status {};
      if (::fstat(file, &status) == 0 && status.st_size > size)
        (void)!::ftruncate(file, static_cast<off_t>(size));
    }
    for (auto& [path, file] : files)
      if (file >= 0)
        ::close(file);
    unsynced.clear();
    return undone;
  }
};

/// The name to pass as sqlite_options::vfs.
inline constexpr const char* fault_vfs_name = "cqrs-test-faults";

namespace detail {

inline sqlite_faults& fault_state() {
  static sqlite_faults faults;
  return faults;
}

inline sqlite3_vfs*& real_vfs() {
  static sqlite3_vfs* vfs = nullptr;
  return vfs;
}

/// Our file: SQLite allocates szOsFile bytes; the real VFS's file lives right after this header.
struct fault_file {
  sqlite3_file base;
  sqlite3_file* real;
  /// The file's name, valid until xClose (SQLite's promise); null for temporary files.
  const char* path;
};

inline const char* path_of(sqlite3_file* file) { return reinterpret_cast<fault_file*>(file)->path; }

/// Counts one write, truncation or sync against the power: true when the power is out (now or before).
inline bool power_out() {
  auto& faults = fault_state();
  if (faults.power_lost.load())
    return true;
  if (faults.operations_until_power_loss.load() >= 0 && faults.operations_until_power_loss.fetch_sub(1) == 0) {
    faults.power_lost = true;
    return true;
  }
  return false;
}

/// Keeps what a write or truncation of `file` is about to replace, until the file is synced.
inline void remember_replaced(sqlite3_file* file, sqlite3_int64 offset, sqlite3_int64 length, sqlite3_int64 written) {
  auto* real = reinterpret_cast<fault_file*>(file)->real;
  const char* path = path_of(file);
  if (!path)
    return;
  sqlite3_int64 size = 0;
  real->pMethods->xFileSize(real, &size);
  sqlite_faults::undo change{path, offset, {}, size, written};
  if (offset < size) {
    change.replaced.resize(static_cast<std::size_t>(std::min(length, size - offset)));
    real->pMethods->xRead(real, change.replaced.data(), static_cast<int>(change.replaced.size()), offset);
  }
  std::lock_guard lock{fault_state().unsynced_mutex};
  fault_state().unsynced.push_back(std::move(change));
}

inline sqlite3_file* real_of(sqlite3_file* file) { return reinterpret_cast<fault_file*>(file)->real; }

inline int fault_close(sqlite3_file* file) { return real_of(file)->pMethods->xClose(real_of(file)); }
inline int fault_read(sqlite3_file* file, void* buffer, int amount, sqlite3_int64 offset) {
  return real_of(file)->pMethods->xRead(real_of(file), buffer, amount, offset);
}
inline int fault_write(sqlite3_file* file, const void* buffer, int amount, sqlite3_int64 offset) {
  if (int failure = fault_state().failing_writes.load())
    return failure;
  if (fault_state().tracking_power.load()) {
    if (power_out())
      return SQLITE_IOERR_WRITE;
    remember_replaced(file, offset, amount, amount);
  }
  return real_of(file)->pMethods->xWrite(real_of(file), buffer, amount, offset);
}
inline int fault_truncate(sqlite3_file* file, sqlite3_int64 size) {
  if (int failure = fault_state().failing_writes.load())
    return failure;
  if (fault_state().tracking_power.load()) {
    if (power_out())
      return SQLITE_IOERR_TRUNCATE;
    sqlite3_int64 current = 0;
    real_of(file)->pMethods->xFileSize(real_of(file), &current);
    if (size < current)
      remember_replaced(file, size, current - size, 0);
  }
  return real_of(file)->pMethods->xTruncate(real_of(file), size);
}
inline int fault_sync(sqlite3_file* file, int flags) {
  if (fault_state().tracking_power.load()) {
    if (power_out())
      return SQLITE_IOERR_FSYNC;
    // Synced: what was written is on the disk now. The real fsync is skipped; this simulation is the durability.
    if (const char* path = path_of(file)) {
      std::lock_guard lock{fault_state().unsynced_mutex};
      std::erase_if(fault_state().unsynced, [path](const sqlite_faults::undo& change) { return change.path == path; });
    }
    return SQLITE_OK;
  }
  if (int delay = fault_state().sync_delay_microseconds.load())
    std::this_thread::sleep_for(std::chrono::microseconds{delay});
  fault_state().pass_hold();
  if (int failure = fault_state().failing_syncs.load())
    return failure;
  return real_of(file)->pMethods->xSync(real_of(file), flags);
}
inline int fault_file_size(sqlite3_file* file, sqlite3_int64* size) {
  return real_of(file)->pMethods->xFileSize(real_of(file), size);
}
inline int fault_lock(sqlite3_file* file, int level) { return real_of(file)->pMethods->xLock(real_of(file), level); }
inline int fault_unlock(sqlite3_file* file, int level) {
  return real_of(file)->pMethods->xUnlock(real_of(file), level);
}
inline int fault_check_reserved_lock(sqlite3_file* file, int* result) {
  return real_of(file)->pMethods->xCheckReservedLock(real_of(file), result);
}
inline int fault_file_control(sqlite3_file* file, int operation, void* argument) {
  return real_of(file)->pMethods->xFileControl(real_of(file), operation, argument);
}
inline int fault_sector_size(sqlite3_file* file) { return real_of(file)->pMethods->xSectorSize(real_of(file)); }
inline int fault_device_characteristics(sqlite3_file* file) {
  return real_of(file)->pMethods->xDeviceCharacteristics(real_of(file));
}
inline int fault_shm_map(sqlite3_file* file, int region, int size, int extend, void volatile** memory) {
  return real_of(file)->pMethods->xShmMap(real_of(file), region, size, extend, memory);
}
inline int fault_shm_lock(sqlite3_file* file, int offset, int count, int flags) {
  return real_of(file)->pMethods->xShmLock(real_of(file), offset, count, flags);
}
inline void fault_shm_barrier(sqlite3_file* file) { real_of(file)->pMethods->xShmBarrier(real_of(file)); }
inline int fault_shm_unmap(sqlite3_file* file, int delete_flag) {
  return real_of(file)->pMethods->xShmUnmap(real_of(file), delete_flag);
}
inline int fault_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** pointer) {
  return real_of(file)->pMethods->xFetch(real_of(file), offset, amount, pointer);
}
inline int fault_unfetch(sqlite3_file* file, sqlite3_int64 offset, void* pointer) {
  return real_of(file)->pMethods->xUnfetch(real_of(file), offset, pointer);
}

inline const sqlite3_io_methods fault_methods = {
  3,
  fault_close,
  fault_read,
  fault_write,
  fault_truncate,
  fault_sync,
  fault_file_size,
  fault_lock,
  fault_unlock,
  fault_check_reserved_lock,
  fault_file_control,
  fault_sector_size,
  fault_device_characteristics,
  fault_shm_map,
  fault_shm_lock,
  fault_shm_barrier,
  fault_shm_unmap,
  fault_fetch,
  fault_unfetch,
};

inline int fault_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto* ours = reinterpret_cast<fault_file*>(file);
  ours->real = reinterpret_cast<sqlite3_file*>(ours + 1);
  ours->path = name;
  int opened = real_vfs()->xOpen(real_vfs(), name, ours->real, flags, out_flags);
  // SQLite calls xClose only on files whose pMethods is set, so a failed open leaves it null.
  ours->base.pMethods = ours->real->pMethods ? &fault_methods : nullptr;
  return opened;
}

// The remaining VFS methods reach the real VFS with the real VFS as their first argument.
inline int fault_delete(sqlite3_vfs*, const char* name, int sync_folder) {
  return real_vfs()->xDelete(real_vfs(), name, sync_folder);
}
inline int fault_access(sqlite3_vfs*, const char* name, int flags, int* result) {
  return real_vfs()->xAccess(real_vfs(), name, flags, result);
}
inline int fault_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return real_vfs()->xFullPathname(real_vfs(), name, size, out);
}
inline void* fault_dl_open(sqlite3_vfs*, const char* name) { return real_vfs()->xDlOpen(real_vfs(), name); }
inline void fault_dl_error(sqlite3_vfs*, int size, char* out) { real_vfs()->xDlError(real_vfs(), size, out); }
inline void (*fault_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return real_vfs()->xDlSym(real_vfs(), handle, symbol);
}
inline void fault_dl_close(sqlite3_vfs*, void* handle) { real_vfs()->xDlClose(real_vfs(), handle); }
inline int fault_randomness(sqlite3_vfs*, int size, char* out) {
  return real_vfs()->xRandomness(real_vfs(), size, out);
}
inline int fault_sleep(sqlite3_vfs*, int microseconds) { return real_vfs()->xSleep(real_vfs(), microseconds); }
inline int fault_current_time(sqlite3_vfs*, double* now) { return real_vfs()->xCurrentTime(real_vfs(), now); }
inline int fault_last_error(sqlite3_vfs*, int size, char* out) {
  return real_vfs()->xGetLastError(real_vfs(), size, out);
}
inline int fault_current_time_int64(sqlite3_vfs*, sqlite3_int64* now) {
  return real_vfs()->xCurrentTimeInt64(real_vfs(), now);
}

} // namespace detail

/// Registers the fault VFS once (under fault_vfs_name, not as the default) and returns its switches.
inline sqlite_faults& sqlite_fault_vfs() {
  static std::once_flag registered;
  std::call_once(registered, [] {
    auto* real = sqlite3_vfs_find("unix");
    if (!real)
      throw std::runtime_error("SQLite has no unix VFS to wrap");
    detail::real_vfs() = real;
    static sqlite3_vfs vfs{};
    vfs.iVersion = 2;
    vfs.szOsFile = static_cast<int>(sizeof(detail::fault_file)) + real->szOsFile;
    vfs.mxPathname = real->mxPathname;
    vfs.zName = fault_vfs_name;
    vfs.xOpen = detail::fault_open;
    vfs.xDelete = detail::fault_delete;
    vfs.xAccess = detail::fault_access;
    vfs.xFullPathname = detail::fault_full_pathname;
    vfs.xDlOpen = detail::fault_dl_open;
    vfs.xDlError = detail::fault_dl_error;
    vfs.xDlSym = detail::fault_dl_sym;
    vfs.xDlClose = detail::fault_dl_close;
    vfs.xRandomness = detail::fault_randomness;
    vfs.xSleep = detail::fault_sleep;
    vfs.xCurrentTime = detail::fault_current_time;
    vfs.xGetLastError = detail::fault_last_error;
    vfs.xCurrentTimeInt64 = detail::fault_current_time_int64;
    if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK)
      throw std::runtime_error("cannot register the fault VFS");
  });
  return detail::fault_state();
}

} // namespace test_support
