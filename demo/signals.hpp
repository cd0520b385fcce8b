// SIGINT and SIGTERM for the programs: the first asks the run to end cleanly, a second ends the process at once.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

namespace demo {

namespace detail {
inline std::atomic<int> first_signal{0};
} // namespace detail

/// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread it starts later) and hands them to a
/// thread of their own: the first prints `notice` on stderr and calls `stop` (which must only set flags), a
/// second ends the process at once with 128 + the signal. Call it first thing in main.
inline void handle_interrupts(std::string notice, std::function<void()> stop) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread{[signals, notice = std::move(notice), stop = std::move(stop)] {
    int received = 0;
    while (sigwait(&signals, &received) == 0) {
      if (detail::first_signal.exchange(received) != 0)
        std::_Exit(128 + received);
      (void)!::write(STDERR_FILENO, notice.data(), notice.size());
      stop();
    }
  }}.detach();
}

/// The exit code: 128 + the signal when one asked the run to end early, else `code`.
inline int exit_code_after_interrupts(int code) {
  auto received = detail::first_signal.load();
  return received != 0 ? 128 + received : code;
}

} // namespace demo
