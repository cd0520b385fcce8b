// Shared helpers for the engine tests: an engine wired with the bank domain, and small waiting helpers.
#pragma once

#include "actors/engine.hpp"
#include "domain/bank_account.hpp"
#include "readmodels/bank_views.hpp"

#include <memory>
#include <string>

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

/// Sends a command and waits for its reply.
template <class Command>
cqrs::command_result run(cqrs::engine& engine, Command command, cqrs::command_options ids = {}) {
  return engine.send(std::move(command), std::move(ids)).get();
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
