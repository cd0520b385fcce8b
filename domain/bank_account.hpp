// A bank account aggregate: the small domain the engine's own tests exercise (commands, events, state, rules).
#pragma once

#include "actors/decision.hpp"

#include <boost/describe.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace bank {

// Commands: each names the account it targets.
struct open_account {
  std::string account_id;
  std::string owner;
};
struct deposit {
  std::string account_id;
  std::int64_t amount_cents = 0;
};
struct withdraw {
  std::string account_id;
  std::int64_t amount_cents = 0;
};
struct close_account {
  std::string account_id;
};
using command = std::variant<open_account, deposit, withdraw, close_account>;

// Events: stable versioned type names; the account id lives in the engine's envelope, not here.
struct account_opened {
  static constexpr std::string_view type_name = "AccountOpened.v1";
  std::string owner;
  bool operator==(const account_opened&) const = default;
};
struct money_deposited {
  static constexpr std::string_view type_name = "MoneyDeposited.v1";
  std::int64_t amount_cents = 0;
  bool operator==(const money_deposited&) const = default;
};
struct money_withdrawn {
  static constexpr std::string_view type_name = "MoneyWithdrawn.v1";
  std::int64_t amount_cents = 0;
  bool operator==(const money_withdrawn&) const = default;
};
struct account_closed {
  static constexpr std::string_view type_name = "AccountClosed.v1";
  bool operator==(const account_closed&) const = default;
};
BOOST_DESCRIBE_STRUCT(account_opened, (), (owner))
BOOST_DESCRIBE_STRUCT(money_deposited, (), (amount_cents))
BOOST_DESCRIBE_STRUCT(money_withdrawn, (), (amount_cents))
BOOST_DESCRIBE_STRUCT(account_closed, (), ())
using event = std::variant<account_opened, money_deposited, money_withdrawn, account_closed>;

/// The account's state, folded from its events.
struct account {
  using command = bank::command;
  using event = bank::event;
  static constexpr std::string_view type_name = "account";

  bool opened = false;
  bool closed = false;
  std::string owner;
  std::int64_t balance_cents = 0;
  /// Number of deposits and withdrawals applied.
  std::uint64_t transactions = 0;

  bool operator==(const account&) const = default;
};

// The state's JSON form, for snapshots.
BOOST_DESCRIBE_STRUCT(account, (), (opened, closed, owner, balance_cents, transactions))

/// Rejection codes, one per rule.
namespace codes {
inline constexpr const char* already_opened = "account_already_opened";
inline constexpr const char* not_opened = "account_not_opened";
inline constexpr const char* closed = "account_closed";
inline constexpr const char* invalid_amount = "invalid_amount";
inline constexpr const char* insufficient_funds = "insufficient_funds";
inline constexpr const char* nonzero_balance = "nonzero_balance";
inline constexpr const char* missing_owner = "missing_owner";
} // namespace codes

/// The account a command targets.
std::string_view aggregate_id(const command& cmd);

/// Decides what a command does to an account; never mutates; a broken rule comes back as a rejection.
cqrs::decision<event> decide(const account& state, const command& cmd);

/// Folds one event into the state; total, because replay depends on it.
account evolve(account state, const event& evt);

} // namespace bank
