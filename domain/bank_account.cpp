// The bank account's rules (decide) and state transitions (evolve).
#include "domain/bank_account.hpp"

#include "actors/overloaded.hpp"

#include <optional>

namespace bank {
namespace {

using cqrs::overloaded;

// Rules shared by deposit and withdraw: the account must be open and the amount positive.
std::optional<cqrs::rejection> check_transaction(const account& state, std::int64_t amount_cents) {
  if (!state.opened)
    return cqrs::reject(codes::not_opened, "the account has not been opened");
  if (state.closed)
    return cqrs::reject(codes::closed, "the account is closed");
  if (amount_cents <= 0)
    return cqrs::reject(codes::invalid_amount,
                        "amount must be positive, got " + std::to_string(amount_cents) + " cents");
  return std::nullopt;
}

} // namespace

std::string_view aggregate_id(const command& cmd) {
  return std::visit([](const auto& one) -> std::string_view { return one.account_id; }, cmd);
}

cqrs::decision<event> decide(const account& state, const command& cmd) {
  return std::visit(
    overloaded{
      [&](const open_account& open) -> cqrs::decision<event> {
        if (state.opened)
          return cqrs::reject(codes::already_opened, "account " + open.account_id + " is already open");
        if (open.owner.empty())
          return cqrs::reject(codes::missing_owner, "an account needs an owner");
        return account_opened{open.owner};
      },
      [&](const deposit& money) -> cqrs::decision<event> {
        if (auto refusal = check_transaction(state, money.amount_cents))
          return *refusal;
        return money_deposited{money.amount_cents};
      },
      [&](const withdraw& money) -> cqrs::decision<event> {
        if (auto refusal = check_transaction(state, money.amount_cents))
          return *refusal;
        if (money.amount_cents > state.balance_cents)
          return cqrs::reject(codes::insufficient_funds, "balance " + std::to_string(state.balance_cents)
                                                           + " cents is below " + std::to_string(money.amount_cents));
        return money_withdrawn{money.amount_cents};
      },
      [&](const close_account&) -> cqrs::decision<event> {
        if (!state.opened)
          return cqrs::reject(codes::not_opened, "the account has not been opened");
        if (state.closed)
          return cqrs::reject(codes::closed, "the account is already closed");
        if (state.balance_cents != 0)
          return cqrs::reject(codes::nonzero_balance, "withdraw the balance before closing");
        return account_closed{};
      },
    },
    cmd);
}

account evolve(account state, const event& evt) {
  std::visit(overloaded{
               [&](const account_opened& opened) {
                 state.opened = true;
                 state.owner = opened.owner;
               },
               [&](const money_deposited& money) {
                 state.balance_cents += money.amount_cents;
                 ++state.transactions;
               },
               [&](const money_withdrawn& money) {
                 state.balance_cents -= money.amount_cents;
                 ++state.transactions;
               },
               [&](const account_closed&) { state.closed = true; },
             },
             evt);
  return state;
}

} // namespace bank
