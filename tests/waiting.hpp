// Waiting in the tests for what another thread brings about, with a deadline: a broken engine fails the test
// rather than hang it.
#pragma once

#include <chrono>
#include <thread>

namespace test_support {

/// Yields until `condition()` holds. False when it did not within `limit`: the caller fails the test (after
/// releasing whatever other threads wait for, so that joining them cannot hang).
template <class Condition>
[[nodiscard]] bool spin_until(Condition condition, std::chrono::milliseconds limit = std::chrono::seconds{30}) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::yield();
  }
  return true;
}

} // namespace test_support
