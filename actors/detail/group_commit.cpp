// The durable stores' writer thread (see group_commit.hpp).
#include "actors/detail/group_commit.hpp"

#include <algorithm>
#include <utility>

namespace cqrs::detail {
namespace {

/// A synchronous append waiting for its request's outcome (on the appender's stack).
struct append_waiter {
  std::mutex mutex;
  std::condition_variable completed;
  std::optional<std::expected<append_result, store_error>> result;
};

} // namespace

group_commit::group_commit(std::size_t max_batch_appends, commit_function commit, head_listeners& listeners)
    : max_batch_appends_(std::max<std::size_t>(max_batch_appends, 1)), commit_(std::move(commit)),
      listeners_(listeners), thread_([this] { run(); }) {}

group_commit::~group_commit() { stop(); }

void group_commit::stop() {
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  changed_.notify_one();
  if (thread_.joinable())
    thread_.join();
}

std::expected<append_result, store_error> group_commit::append(pending_append pending) {
  if (std::this_thread::get_id() == thread_.get_id()) {
    std::vector<pending_append> batch;
    batch.push_back(std::move(pending));
    if (auto committed = commit_(batch, {}, {}))
      listeners_.notify(*committed);
    return std::move(batch.front().result);
  }
  append_waiter waiter;
  pending.done = [&waiter](std::expected<append_result, store_error> result) {
    std::lock_guard lock{waiter.mutex};
    waiter.result = std::move(result);
    // Notified under the lock: the waiter's stack frame may end as soon as the lock is released.
    waiter.completed.notify_one();
  };
  enqueue(std::move(pending));
  std::unique_lock lock{waiter.mutex};
  waiter.completed.wait(lock, [&] { return waiter.result.has_value(); });
  return std::move(*waiter.result);
}

void group_commit::append_async(pending_append pending) { enqueue(std::move(pending)); }

void group_commit::enqueue(pending_append pending) {
  {
    std::lock_guard lock{mutex_};
    queue_.push_back(std::move(pending));
  }
  changed_.notify_one();
}

void group_commit::side_write_arrives() {
  if (side_writes_waiting() == 0)
    side_writes_due_ = std::chrono::steady_clock::now() + side_write_delay;
}

void group_commit::save_snapshot(snapshot taken) {
  {
    std::lock_guard lock{mutex_};
    side_write_arrives();
    auto found = waiting_snapshots_.find(taken.stream);
    if (found == waiting_snapshots_.end())
      waiting_snapshots_.emplace(taken.stream, std::move(taken));
    else if (taken.version >= found->second.version)
      found->second = std::move(taken);
  }
  changed_.notify_one();
}

void group_commit::record_dead_letter(dead_letter letter) {
  {
    std::lock_guard lock{mutex_};
    side_write_arrives();
    waiting_dead_letters_.push_back(std::move(letter));
  }
  changed_.notify_one();
}

std::optional<snapshot> group_commit::waiting_snapshot(const stream_id& stream) const {
  std::optional<snapshot> result;
  std::lock_guard lock{mutex_};
  if (auto found = waiting_snapshots_.find(stream); found != waiting_snapshots_.end())
    result = found->second;
  for (const auto& taken : writing_snapshots_)
    if (taken.stream == stream && (!result || taken.version > result->version))
      result = taken;
  return result;
}

std::size_t group_commit::queued() const {
  std::lock_guard lock{mutex_};
  return queue_.size();
}

void group_commit::run() {
  std::unique_lock lock{mutex_};
  auto batch_ready = [this] {
    return stopping_ || !queue_.empty() || side_writes_waiting() >= max_waiting_side_writes;
  };
  while (true) {
    if (!batch_ready()) {
      if (side_writes_waiting() == 0) {
        changed_.wait(lock, [&] { return batch_ready() || side_writes_waiting() > 0; });
        continue; // snapshots and dead letters alone wait for appends, or for their delay
      }
      if (!changed_.wait_until(lock, side_writes_due_, batch_ready)
          && std::chrono::steady_clock::now() < side_writes_due_)
        continue; // woken for a snapshot saved meanwhile: keep waiting
    }
    if (queue_.empty() && side_writes_waiting() == 0)
      return; // closing, and everything queued is committed
    std::vector<pending_append> batch;
    batch.reserve(std::min(queue_.size(), max_batch_appends_));
    while (!queue_.empty() && batch.size() < max_batch_appends_) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    for (auto& [stream, taken] : waiting_snapshots_)
      writing_snapshots_.push_back(std::move(taken));
    waiting_snapshots_.clear();
    auto dead_letters = std::move(waiting_dead_letters_);
    waiting_dead_letters_.clear();
    lock.unlock();
    // writing_snapshots_ changes only here, under the lock: the writer reads it without.
    auto committed = commit_(batch, writing_snapshots_, dead_letters);
    lock.lock();
    writing_snapshots_.clear();
    lock.unlock();
    // Listeners hear the new head before any request of the batch is answered, as with the in-memory store.
    // Neither listeners nor callbacks may end the writer thread: what they throw is dropped.
    if (committed) {
      try {
        listeners_.notify(*committed);
      } catch (...) {
      }
    }
    for (auto& pending : batch) {
      try {
        pending.done(std::move(pending.result));
      } catch (...) {
      }
    }
    lock.lock();
  }
}

} // namespace cqrs::detail
