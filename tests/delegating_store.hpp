// A base for the tests' own stores: every call goes to an in-memory store, so that a test store overrides only
// what it changes (how appends commit, when they fail).
#pragma once

#include "actors/event_store.hpp"

#include <memory>
#include <optional>
#include <string>

namespace test_support {

class delegating_store : public cqrs::event_store {
public:
  std::expected<cqrs::append_result, cqrs::store_error> append(cqrs::append_request request) override {
    return inner_->append(std::move(request));
  }
  cqrs::stream_version read_stream(const cqrs::stream_id& stream, cqrs::stream_version after,
                                   const cqrs::event_visitor& visit) const override {
    return inner_->read_stream(stream, after, visit);
  }
  void read_all(cqrs::log_position after, cqrs::log_position up_to, const cqrs::event_visitor& visit) const override {
    inner_->read_all(after, up_to, visit);
  }
  cqrs::log_position head() const override { return inner_->head(); }
  std::uint64_t subscribe(cqrs::head_listener listener) override { return inner_->subscribe(std::move(listener)); }
  void unsubscribe(std::uint64_t subscription) override { inner_->unsubscribe(subscription); }
  std::optional<cqrs::recorded_command> find_command(const std::string& command_id) const override {
    return inner_->find_command(command_id);
  }
  void save_snapshot(cqrs::snapshot taken) override { inner_->save_snapshot(std::move(taken)); }
  std::optional<cqrs::snapshot> load_snapshot(const cqrs::stream_id& stream) const override {
    return inner_->load_snapshot(stream);
  }

protected:
  /// Where every call lands: the store's contents.
  cqrs::event_store& inner() { return *inner_; }

private:
  std::shared_ptr<cqrs::event_store> inner_ = cqrs::make_memory_event_store();
};

} // namespace test_support
