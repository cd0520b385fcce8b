// A store for the engine tests that commits in the background only once a test opens its gate.
#pragma once

#include "delegating_store.hpp"

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

namespace test_support {

/// A store that commits in the background, on its own thread, only once its gate is open: until then every
/// append waits, so the commands that made them stay in flight for as long as a test needs. A test opens it also
/// when it fails before it meant to (at_scope_exit, declared after the engine): the engine's shutdown waits for the
/// held commands.
class gated_store final : public delegating_store {
public:
  gated_store() : worker_([this] { run(); }) {}
  ~gated_store() override {
    {
      std::lock_guard lock{mutex_};
      stopping_ = true;
      open_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  /// Lets every waiting append, and every later one, commit.
  void open_gate() {
    {
      std::lock_guard lock{mutex_};
      open_ = true;
    }
    wake_.notify_all();
  }
  /// Appends waiting behind the gate.
  std::size_t waiting() const {
    std::lock_guard lock{mutex_};
    return queue_.size();
  }

  bool appends_in_background() const override { return true; }
  void append_async(cqrs::append_request request, cqrs::append_callback done) override {
    {
      std::lock_guard lock{mutex_};
      queue_.emplace_back(std::move(request), std::move(done));
    }
    wake_.notify_all();
  }
  std::expected<cqrs::append_result, cqrs::store_error> append(cqrs::append_request request) override {
    std::promise<std::expected<cqrs::append_result, cqrs::store_error>> outcome;
    auto future = outcome.get_future();
    append_async(std::move(request), [&outcome](auto result) { outcome.set_value(std::move(result)); });
    // No deadline: it waits for the gate like every append, and each test opens the gate when it ends.
    return future.get();
  }
  std::optional<std::string> failure() const override { return std::nullopt; }

private:
  void run() {
    std::unique_lock lock{mutex_};
    while (true) {
      wake_.wait(lock, [this] { return stopping_ || (open_ && !queue_.empty()); });
      if (queue_.empty())
        return;
      auto [request, done] = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      done(inner().append(std::move(request)));
      lock.lock();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<cqrs::append_request, cqrs::append_callback>> queue_;
  bool open_ = false;
  bool stopping_ = false;
  std::jthread worker_;
};

} // namespace test_support
