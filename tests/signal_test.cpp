// The signal test: cqrs-load and cqrs-demo under load get SIGINT (or SIGTERM) and must end cleanly: every command
// answered, the summary and its checks printed, exit code 128 + the signal. Usage: cqrs-signal-test --load PATH
// --demo PATH
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

/// Reads the child's output until `text` appears (true) or the output ends (false); `seen` collects it all.
bool read_until(int output, const std::string& text, std::string& seen) {
  char buffer[4096];
  while (seen.find(text) == std::string::npos) {
    auto count = read(output, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR)
      continue;
    if (count <= 0)
      return false;
    seen.append(buffer, static_cast<std::size_t>(count));
  }
  return true;
}

void read_to_end(int output, std::string& seen) {
  char buffer[4096];
  while (true) {
    auto count = read(output, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR)
      continue;
    if (count <= 0)
      return;
    seen.append(buffer, static_cast<std::size_t>(count));
  }
}

int wait_for(pid_t child) {
  int status = 0;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
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
  bool loaded = read_until(child.output, run.progress, output);
  kill(child.pid, signal_number);
  read_to_end(child.output, output);
  close(child.output);
  auto code = wait_for(child.pid);
  std::vector<std::string> failures;
  if (!loaded)
    failures.push_back("no progress line came before the output ended");
  if (code != 128 + signal_number)
    failures.push_back("exit code " + std::to_string(code) + ", expected " + std::to_string(128 + signal_number));
  for (const auto& expected : run.expected)
    if (output.find(expected) == std::string::npos)
      failures.push_back("the output lacks " + expected);
  for (const auto& failure : failures)
    std::cerr << name << ": " << failure << '\n';
  if (!failures.empty())
    std::cerr << "output:\n" << output << '\n';
  else
    std::cout << name << ": ended cleanly with exit code " << code << '\n';
  return failures.empty();
}

} // namespace

int main(int argc, char** argv) {
  std::string load;
  std::string demo;
  for (int index = 1; index + 1 < argc; ++index) {
    if (std::strcmp(argv[index], "--load") == 0)
      load = argv[index + 1];
    if (std::strcmp(argv[index], "--demo") == 0)
      demo = argv[index + 1];
  }
  if (load.empty() || demo.empty()) {
    std::cerr << "usage: cqrs-signal-test --load PATH --demo PATH\n";
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
                   "[1.0s] commands",
                   {"interrupted; stopping the clients", "Stopped by a signal", "\"stopped_by_signal\":true",
                    "\nverified\n"}};
  bool passed = true;
  for (const auto& [run, name] : {std::pair{&load_run, "cqrs-load"}, std::pair{&demo_run, "cqrs-demo"}})
    for (auto [signal_number, signal_name] : {std::pair{SIGINT, "SIGINT"}, std::pair{SIGTERM, "SIGTERM"}})
      passed = interrupted_cleanly(*run, signal_number, std::string{name} + " " + signal_name) && passed;
  return passed ? 0 : 1;
}
