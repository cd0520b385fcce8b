// Read models of the bank domain: balances per account and bank-wide totals, with their queries.
#pragma once

#include "actors/envelope.hpp"
#include "domain/bank_account.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace readmodels {

/// One account as the balances view shows it.
struct account_balance {
  std::string owner;
  std::int64_t balance_cents = 0;
  bool closed = false;
  /// Log position of the last event applied to this account.
  cqrs::log_position last_position = 0;

  bool operator==(const account_balance&) const = default;
};

struct get_balance;

/// Balance per account.
struct account_balances {
  static constexpr std::string_view name = "account_balances";
  using subscribes_to = cqrs::events_of<bank::event>;

  std::map<std::string, account_balance, std::less<>> accounts;

  void apply(const cqrs::envelope& meta, const bank::event& event);
  std::optional<account_balance> answer(const get_balance& query) const;

  bool operator==(const account_balances&) const = default;
};

/// The balance of one account, or nothing if the view has not seen it opened.
struct get_balance {
  using projection = account_balances;
  std::string account_id;
};

/// Bank-wide figures.
struct bank_totals_view {
  std::uint64_t open_accounts = 0;
  std::uint64_t closed_accounts = 0;
  std::uint64_t deposits = 0;
  std::uint64_t withdrawals = 0;
  std::int64_t money_held_cents = 0;

  bool operator==(const bank_totals_view&) const = default;
};

struct get_bank_totals;

struct bank_totals {
  static constexpr std::string_view name = "bank_totals";
  using subscribes_to = cqrs::events_of<bank::event>;

  bank_totals_view totals;

  void apply(const cqrs::envelope& meta, const bank::event& event);
  bank_totals_view answer(const get_bank_totals& query) const;

  bool operator==(const bank_totals&) const = default;
};

struct get_bank_totals {
  using projection = bank_totals;
};

} // namespace readmodels
