// A quick throughput check of the engine: closed-loop senders (each awaits every reply) against bank accounts,
// with 1 and 64 concurrent senders, and the same 64 senders pipelining through the callback form.
// The full load tester is cqrs-load; this gives a first figure in a few seconds.
#include "actors/engine.hpp"
#include "domain/bank_account.hpp"
#include "readmodels/bank_views.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <mutex>
#include <condition_variable>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct figures {
  double commands_per_second = 0;
  std::uint64_t commands = 0;
};

std::unique_ptr<cqrs::engine> make_engine(int accounts) {
  auto engine = std::make_unique<cqrs::engine>(cqrs::options{.tuning = {.threads = 2}});
  engine->add_aggregate<bank::account>();
  engine->add_projection<readmodels::account_balances>();
  for (int account = 0; account < accounts; ++account)
    (void)engine->send(bank::open_account{"acc-" + std::to_string(account), "owner"}).get();
  return engine;
}

/// `senders` threads, each sending one command and waiting for its reply before the next.
figures closed_loop(int senders, int accounts, std::chrono::milliseconds duration) {
  auto engine = make_engine(accounts);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0};
  std::latch ready{senders + 1};
  std::vector<std::jthread> threads;
  for (int sender = 0; sender < senders; ++sender)
    threads.emplace_back([&, sender] {
      auto id = "acc-" + std::to_string(sender % accounts);
      std::uint64_t count = 0;
      ready.arrive_and_wait();
      while (!stop.load(std::memory_order_relaxed)) {
        if (engine->send(bank::deposit{id, 1}).get())
          ++count;
      }
      done += count;
    });
  ready.arrive_and_wait();
  auto start = clock_type::now();
  std::this_thread::sleep_for(duration); // the measuring window, not synchronisation
  stop = true;
  threads.clear();
  auto seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  return {static_cast<double>(done.load()) / seconds, done.load()};
}

/// `senders` logical clients, each with one command outstanding, driven by reply callbacks (no blocked threads).
figures callback_loop(int senders, int accounts, std::chrono::milliseconds duration) {
  auto engine = make_engine(accounts);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0};
  std::atomic<int> finished{0};
  std::mutex mutex;
  std::condition_variable all_finished;
  std::vector<std::function<void()>> next(senders);
  for (int sender = 0; sender < senders; ++sender) {
    next[sender] = [&, sender, id = "acc-" + std::to_string(sender % accounts)] {
      engine->send(bank::deposit{id, 1}, [&, sender](cqrs::command_result result) {
        if (result)
          done.fetch_add(1, std::memory_order_relaxed);
        if (!stop.load(std::memory_order_relaxed)) {
          next[sender]();
        } else if (++finished == senders) {
          std::lock_guard lock{mutex};
          all_finished.notify_all();
        }
      });
    };
  }
  auto start = clock_type::now();
  for (auto& client : next)
    client();
  std::this_thread::sleep_for(duration); // the measuring window, not synchronisation
  stop = true;
  auto seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  auto measured = done.load();
  std::unique_lock lock{mutex};
  all_finished.wait(lock, [&] { return finished.load() == senders; });
  return {static_cast<double>(measured) / seconds, measured};
}

} // namespace

int main(int argc, char** argv) {
  auto seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  if (seconds <= 0) {
    std::fprintf(stderr, "usage: cqrs-quick-bench [seconds per run, default 2]\n");
    return 2;
  }
  auto window = std::chrono::milliseconds{static_cast<long>(seconds * 1000)};
  constexpr int accounts = 1000;
  auto one = closed_loop(1, accounts, window);
  auto many = closed_loop(64, accounts, window);
  auto callbacks = callback_loop(64, accounts, window);
  std::printf("closed loop,  1 sender  (future per command): %10.0f commands/s (%llu commands)\n",
              one.commands_per_second, static_cast<unsigned long long>(one.commands));
  std::printf("closed loop, 64 senders (future per command): %10.0f commands/s (%llu commands)\n",
              many.commands_per_second, static_cast<unsigned long long>(many.commands));
  std::printf("closed loop, 64 clients (callback form)     : %10.0f commands/s (%llu commands)\n",
              callbacks.commands_per_second, static_cast<unsigned long long>(callbacks.commands));
}
