// Internal: the writer thread of a durable store: queues appends from many threads and commits them in batches,
// one transaction each (group commit), with the snapshots and dead letters that ride along; then tells the head's
// listeners and answers every request of the batch. The store supplies the transaction itself.
#pragma once

#include "actors/detail/store_support.hpp"
#include "actors/event_store.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <expected>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace cqrs::detail {

/// One append request waiting for the writer thread to commit it.
struct pending_append {
  append_request request;
  /// The events' payloads as JSON text, encoded on the appender's thread before it queues.
  std::vector<std::string> payloads;
  /// Called with `result` once the request's transaction is over.
  append_callback done;
  std::expected<append_result, store_error> result =
    std::unexpected(store_error{std::string{errc::store_failure}, "not run"});
};

/// Runs one transaction for the batch, the snapshots and the dead letters, and sets every request's result;
/// returns the new head if events were committed. Called on the writer thread only, and must not throw.
using commit_function = std::function<std::optional<log_position>(
  std::vector<pending_append>& batch, const std::vector<snapshot>& snapshots,
  const std::vector<dead_letter>& dead_letters)>;

class group_commit {
public:
  /// Snapshots and dead letters wait for the next appends' transaction, so that they cost no commit of their own;
  /// without appends they are committed on their own after this delay, or at once when this many are waiting.
  static constexpr std::chrono::milliseconds side_write_delay{1000};
  static constexpr std::size_t max_waiting_side_writes = 1024;

  /// Starts the writer thread; `commit` and `listeners` must outlive the stop() that ends it.
  group_commit(std::size_t max_batch_appends, commit_function commit, head_listeners& listeners);
  /// Stops the writer if stop() was not called.
  ~group_commit();
  group_commit(const group_commit&) = delete;
  group_commit& operator=(const group_commit&) = delete;

  /// Commits everything queued (appends, snapshots, dead letters), answers every request and ends the thread.
  void stop();

  /// Queues the request and waits for its outcome; on the writer thread itself (a listener or a callback that
  /// appends, which cannot wait for itself), commits it at once, between two batches.
  std::expected<append_result, store_error> append(pending_append pending);
  /// Queues the request; its `done` runs on the writer thread once its transaction is over.
  void append_async(pending_append pending);

  /// Keeps the snapshot for the next transaction (the latest of each stream).
  void save_snapshot(snapshot taken);
  void record_dead_letter(dead_letter letter);
  /// The stream's snapshot that is saved but not yet committed, if any: what load_snapshot must see first.
  std::optional<snapshot> waiting_snapshot(const stream_id& stream) const;

  /// Append requests waiting behind the transaction being committed.
  std::size_t queued() const;

private:
  void run();
  void enqueue(pending_append pending);
  /// Snapshots and dead letters waiting for the next transaction; called with mutex_ held.
  std::size_t side_writes_waiting() const { return waiting_snapshots_.size() + waiting_dead_letters_.size(); }
  /// Marks the first side write's deadline; called with mutex_ held, before the side write is added.
  void side_write_arrives();

  const std::size_t max_batch_appends_;
  commit_function commit_;
  head_listeners& listeners_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<pending_append> queue_;
  /// Snapshots waiting for the next transaction (the latest of each stream), and those in the running one.
  std::unordered_map<stream_id, snapshot, stream_id_hash> waiting_snapshots_;
  std::vector<snapshot> writing_snapshots_;
  std::vector<dead_letter> waiting_dead_letters_;
  std::chrono::steady_clock::time_point side_writes_due_;
  bool stopping_ = false;

  /// Last member: it starts once everything it uses is constructed.
  std::thread thread_;
};

} // namespace cqrs::detail
