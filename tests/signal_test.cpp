// The signal test: cqrs-load and cqrs-demo under load get SIGINT (or SIGTERM) and must end cleanly: every command
// answered, the summary and its checks printed, exit code 128 + the signal; so must cqrs-store in the middle of a
// dump. Usage: cqrs-signal-test --load PATH --demo PATH --store-tool PATH
#include "child_process.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

namespace {

struct child_process {
  pid_t pid = -1;
  int output = -1; // the read end of the child's stdout and stderr
};

child_process start(const std::string& program, const std::vector<std::string>& arguments) {
  int pipe_ends[2];
  if (pipe(pipe_ends) != 0)
    return {};
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& argument : arguments)
    argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  pid_t child = fork();
  if (child == 0) {
    dup2(pipe_ends[1], STDOUT_FILENO);
    dup2(pipe_ends[1], STDERR_FILENO);
    close(pipe_ends[0]);
    close(pipe_ends[1]);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  close(pipe_ends[1]);
  return {child, pipe_ends[0]};
}

/// How reading the child's output ended.
enum class reading { found, ended, timed_out };

/// Reads the child's output into `seen` until `text` appears in it (or, with an empty `text`, until the output
/// ends), the output ends, or `limit` passes.
reading read_until(int output, const std::string& text, std::string& seen,
                   std::chrono::milliseconds limit = test_support::child_limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  char buffer[4096];
  while (text.empty() || seen.find(text) == std::string::npos) {
    pollfd readable{output, POLLIN, 0};
    auto ready = poll(&readable, 1, test_support::milliseconds_until(deadline));
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready == 0)
      return reading::timed_out;
    auto count = read(output, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR)
      continue;
    if (count <= 0)
      return reading::ended;
    seen.append(buffer, static_cast<std::size_t>(count));
  }
  return reading::found;
}

/// A program under test: how to start a run far longer than the test, the text of its first progress line, and
/// what its output must hold after a signal ended it.
struct subject {
  std::string program;
  std::vector<std::string> arguments;
  std::string progress;
  std::vector<std::string> expected;
};

/// One round: the run, and a signal once its first progress line shows it under load.
bool interrupted_cleanly(const subject& run, int signal_number, const std::string& name) {
  auto child = start(run.program, run.arguments);
  if (child.pid < 0) {
    std::cerr << name << ": cannot start " << run.program << '\n';
    return false;
  }
  std::string output;
  auto loaded = read_until(child.output, run.progress, output);
  kill(child.pid, signal_number);
  // The output ends when the child does; a child that outlives its deadline is killed by exit_code_within, and
  // then what it wrote last is read.
  auto ended = read_until(child.output, "", output);
  auto code = test_support::exit_code_within(
    child.pid, ended == reading::timed_out ? std::chrono::milliseconds{0} : test_support::child_limit);
  if (ended == reading::timed_out)
    read_until(child.output, "", output);
  close(child.output);
  auto limit = std::to_string(test_support::child_limit.count() / 1000) + " s";
  std::vector<std::string> failures;
  if (loaded == reading::ended)
    failures.push_back("no progress line came before the output ended");
  if (loaded == reading::timed_out)
    failures.push_back("no progress line came within " + limit);
  if (ended == reading::timed_out)
    failures.push_back("its output did not end within " + limit + " of the signal");
  if (!code)
    failures.push_back("it did not exit within " + limit + " of the signal (killed)");
  else if (*code != 128 + signal_number)
    failures.push_back("exit code " + std::to_string(*code) + ", expected " + std::to_string(128 + signal_number));
  for (const auto& expected : run.expected)
    if (output.find(expected) == std::string::npos)
      failures.push_back("the output lacks " + expected);
  for (const auto& failure : failures)
    std::cerr << name << ": " << failure << '\n';
  if (!failures.empty())
    std::cerr << "output:\n" << output << '\n';
  else
    std::cout << name << ": ended cleanly with exit code " << *code << '\n';
  return failures.empty();
}

} // namespace

int main(int argc, char** argv) {
  std::string load;
  std::string demo;
  std::string store_tool;
  for (int index = 1; index + 1 < argc; ++index) {
    if (std::strcmp(argv[index], "--load") == 0)
      load = argv[index + 1];
    if (std::strcmp(argv[index], "--demo") == 0)
      demo = argv[index + 1];
    if (std::strcmp(argv[index], "--store-tool") == 0)
      store_tool = argv[index + 1];
  }
  if (load.empty() || demo.empty() || store_tool.empty()) {
    std::cerr << "usage: cqrs-signal-test --load PATH --demo PATH --store-tool PATH\n";
    return 2;
  }
  // 100 million orders would take hours, and a million orders of the demo minutes: only the signal ends them in time.
  subject load_run{load,
                   {"--orders", "100000000", "--query-s", "0", "--progress", "lines", "--json"},
                   "orders: ",
                   {"interrupted; finishing the orders in progress", "(interrupted by a signal)",
                    "\"interrupted\":true", "\"verified\":true", "\"problems\":[]"}};
  subject demo_run{demo,
                   {"--orders", "1000000", "--customers", "100000", "--json"},
                   "s] commands ", // not "[1.0s] commands": on a loaded machine the first tick may print [1.1s]
                   {"interrupted; stopping the clients", "Stopped by a signal", "\"stopped_by_signal\":true",
                    "\nverified\n"}};
  // A log far larger than the pipe: the dump blocks writing once this test stops reading (after its first line),
  // so the signal always comes while it is in the middle of the log, whatever the machine's speed.
  char folder_template[] = "/tmp/cqrs-signal-test-XXXXXX";
  if (!mkdtemp(folder_template)) {
    std::cerr << "cannot make a temporary folder: " << std::strerror(errno) << '\n';
    return 1;
  }
  std::string folder = folder_template;
  auto log_file = folder + "/signal.db";
  std::string setup_output;
  // 2,000 orders make a dump of about a megabyte, far beyond a pipe's 64 KiB, and take seconds even under TSan.
  auto setup = start(load, {"--orders", "2000", "--query-s", "0", "--progress", "none", "--store", "sqlite:" + log_file,
                            "--sync", "normal"});
  if (setup.pid < 0) {
    std::cerr << "cannot start " << load << '\n';
    return 1;
  }
  // Read to the end before closing: a pipe closed early would end the writer by SIGPIPE, not tell what went wrong.
  auto written = read_until(setup.output, "", setup_output);
  auto setup_code = test_support::exit_code_within(
    setup.pid, written == reading::timed_out ? std::chrono::milliseconds{0} : test_support::child_limit);
  close(setup.output);
  if (setup_code != 0) {
    std::cerr << "writing the log for cqrs-store failed ("
              << (written == reading::timed_out ? "its output did not end within the limit"
                                                : "exit code " + std::to_string(setup_code ? *setup_code : -1))
              << "):\n"
              << setup_output << '\n';
    std::filesystem::remove_all(folder);
    return 1;
  }
  subject store_run{store_tool, {"dump", log_file}, "{\"position\":1,", {"cqrs-store: interrupted, stopping"}};

  bool passed = true;
  for (const auto& [run, name] : {std::pair{&load_run, "cqrs-load"}, std::pair{&demo_run, "cqrs-demo"},
                                  std::pair{&store_run, "cqrs-store dump"}})
    for (auto [signal_number, signal_name] : {std::pair{SIGINT, "SIGINT"}, std::pair{SIGTERM, "SIGTERM"}})
      passed = interrupted_cleanly(*run, signal_number, std::string{name} + " " + signal_name) && passed;
  std::filesystem::remove_all(folder);
  return passed ? 0 : 1;
}
