// How each bank event changes the balances and totals views.
#include "readmodels/bank_views.hpp"

#include "actors/overloaded.hpp"

namespace readmodels {

using cqrs::overloaded;

void account_balances::apply(const cqrs::envelope& meta, const bank::event& event) {
  auto& account = accounts[meta.aggregate_id()];
  account.last_position = meta.position;
  std::visit(overloaded{
               [&](const bank::account_opened& opened) { account.owner = opened.owner; },
               [&](const bank::money_deposited& money) { account.balance_cents += money.amount_cents; },
               [&](const bank::money_withdrawn& money) { account.balance_cents -= money.amount_cents; },
               [&](const bank::account_closed&) { account.closed = true; },
             },
             event);
}

std::optional<account_balance> account_balances::answer(const get_balance& query) const {
  auto found = accounts.find(query.account_id);
  if (found == accounts.end())
    return std::nullopt;
  return found->second;
}

void bank_totals::apply(const cqrs::envelope&, const bank::event& event) {
  std::visit(overloaded{
               [&](const bank::account_opened&) { ++totals.open_accounts; },
               [&](const bank::money_deposited& money) {
                 ++totals.deposits;
                 totals.money_held_cents += money.amount_cents;
               },
               [&](const bank::money_withdrawn& money) {
                 ++totals.withdrawals;
                 totals.money_held_cents -= money.amount_cents;
               },
               [&](const bank::account_closed&) {
                 --totals.open_accounts;
                 ++totals.closed_accounts;
               },
             },
             event);
}

bank_totals_view bank_totals::answer(const get_bank_totals&) const {
  return totals;
}

} // namespace readmodels
