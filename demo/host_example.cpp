// The README's host example: embed the engine, register a domain, send a command, read your own write.
#include "actors/engine.hpp"
#include "domain/bank_account.hpp"
#include "readmodels/bank_views.hpp"

#include <iostream>

int main() {
  cqrs::engine engine{cqrs::options{.tuning = {.threads = 2}}};
  engine.add_aggregate<bank::account>();
  engine.add_projection<readmodels::account_balances>();

  auto opened = engine.send(bank::open_account{"acc-1", "Ada"}).get();
  auto deposited = engine.send(bank::deposit{"acc-1", 2500}).get();
  auto refused = engine.send(bank::withdraw{"acc-1", 9999}).get();
  if (!opened || !deposited || refused)
    return 1;
  std::cout << "rejected as expected: " << refused.error().code << '\n';

  // Read-your-writes: wait until the read model has applied the deposit's position.
  auto balance = engine.query(readmodels::get_balance{"acc-1"}, cqrs::at_least(deposited->position)).get();
  if (!balance || !*balance)
    return 1;
  std::cout << "balance of acc-1: " << (*balance)->balance_cents << " cents\n";
}  // the destructor drains commands in flight and stops the engine
