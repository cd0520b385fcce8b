// Child processes of the standalone test programs (the crash test, the signal test), waited for with a deadline: a
// program under test that does not end fails the test with a message rather than hang it until ctest's timeout.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>

namespace test_support {

/// How long a test program waits for a child's output or its end before it fails: far beyond what any takes, also
/// in sanitizer builds.
inline constexpr std::chrono::milliseconds child_limit = std::chrono::seconds{30};

/// Milliseconds left until `deadline`, as poll() takes them (0 once it passed).
inline int milliseconds_until(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 1'000'000'000));
}

/// Reaps a child that has ended or is about to: its exit code, 128 + the signal that ended it, or -1.
inline int reap(pid_t child) {
  int status = 0;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

/// Waits for `child` to end within `limit`: its exit code, 128 + the signal that ended it, or -1 when it cannot be
/// waited for. Nothing when it had not ended by then; it is then killed (SIGKILL) and reaped, so that no child
/// outlives a failed test.
inline std::optional<int> exit_code_within(pid_t child, std::chrono::milliseconds limit = child_limit) {
  // A pidfd becomes readable when the child ends: a wait with a timeout, where waitpid has none. Opened by its
  // system call: glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage, so C++ cannot link to it.
  auto handle = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  if (handle >= 0) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    pollfd ended{handle, POLLIN, 0};
    int ready = 0;
    do
      ready = poll(&ended, 1, milliseconds_until(deadline));
    while (ready < 0 && errno == EINTR);
    close(handle);
    if (ready == 0) {
      kill(child, SIGKILL);
      reap(child);
      return std::nullopt;
    }
  }
  // Without pidfds (kernels before 5.3) the wait has no deadline: ctest's timeout is the last resort there.
  return reap(child);
}

} // namespace test_support
