// Shared helpers for the engine tests: an engine wired with the bank domain, and waits on it with a deadline.
#pragma once

#include "actors/engine.hpp"
#include "domain/bank_account.hpp"
#include "readmodels/bank_views.hpp"
#include "waiting.hpp"

#include <boost/core/demangle.hpp>

#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <typeinfo>

namespace test_support {

/// An engine with the bank account aggregate and both bank read models registered.
inline std::unique_ptr<cqrs::engine> bank_engine(cqrs::options settings = {}) {
  if (settings.tuning.threads == 0)
    settings.tuning.threads = 2;
  auto engine = std::make_unique<cqrs::engine>(std::move(settings));
  engine->add_aggregate<bank::account>();
  engine->add_projection<readmodels::account_balances>();
  engine->add_projection<readmodels::bank_totals>();
  return engine;
}

/// Sends a command and waits for its reply; throws timed_out when none came within `limit`.
template <class Command>
cqrs::command_result run(cqrs::engine& engine, Command command, cqrs::command_options ids = {},
                         std::chrono::milliseconds limit = default_limit) {
  auto reply = engine.send(std::move(command), std::move(ids));
  // The command's type named only when the deadline passed: run() sits in loops of thousands of commands.
  if (reply.wait_for(limit) == std::future_status::timeout)
    throw timed_out("the reply to a " + boost::core::demangle(typeid(Command).name()), limit);
  return reply.get();
}

/// engine.wait_until_caught_up with the tests' deadline: its outcome (a projection that stopped on an error is the
/// caller's to check), or timed_out when the read models did not reach the head within `limit`.
inline std::expected<void, cqrs::query_error> caught_up_within(cqrs::engine& engine,
                                                               std::chrono::milliseconds limit = default_limit) {
  auto outcome = engine.wait_until_caught_up(limit);
  if (!outcome && outcome.error().code == cqrs::errc::timeout)
    throw timed_out("every read model to apply the log head (" + outcome.error().message + ")", limit);
  return outcome;
}

/// Opens an account and returns the accepted reply (the test fails if it is rejected).
inline cqrs::accepted open(cqrs::engine& engine, const std::string& id, const std::string& owner = "owner") {
  auto reply = run(engine, bank::open_account{id, owner});
  if (!reply)
    throw std::runtime_error("opening " + id + " was rejected: " + reply.error().code);
  return *reply;
}

/// The events of the whole log, in order.
inline std::vector<cqrs::envelope> log_of(const cqrs::event_store& store) {
  std::vector<cqrs::envelope> events;
  store.read_all(0, store.head(), [&](const cqrs::envelope& event) {
    events.push_back(event);
    return true;
  });
  return events;
}

} // namespace test_support
