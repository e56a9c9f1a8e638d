#include "serve_bench_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "serve_bench_client.h"

namespace kvpool::cli {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// In the child: output to the log, then exec. Never returns.
[[noreturn]] void ExecWithLog(const std::vector<std::string>& argv, const std::string& log) {
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
  }
  const int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  std::perror(("exec " + argv[0]).c_str());
  ::_exit(127);
}

}  // namespace

ServedProcess::~ServedProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

Status ServedProcess::Start(const std::vector<std::string>& argv, const std::string& log_path,
                            int port, double timeout_seconds) {
  if (pid_ > 0) return Status::Busy("a server is already running");
  log_path_ = log_path;
  {
    std::ofstream log(log_path, std::ios::app);
    log << "\n== start:";
    for (const std::string& a : argv) log << " " << a;
    log << "\n";
  }
  const pid_t pid = ::fork();
  if (pid < 0) return Status::IOError("fork failed");
  if (pid == 0) ExecWithLog(argv, log_path);
  pid_ = pid;
  const ServeChatClient client("127.0.0.1", port);
  const Clock::time_point t0 = Clock::now();
  while (SecondsSince(t0) < timeout_seconds) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Aborted(argv[0] + " ended before it was ready (" + DescribeExit(status) +
                             "); its log " + log_path + " ends with:\n" + LogTail(log_path, 1500));
    }
    if (client.Healthy()) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Stop(5);
  return Status::Aborted(argv[0] + " not ready after " + std::to_string(int(timeout_seconds)) +
                         " s; its log " + log_path + " ends with:\n" + LogTail(log_path, 1500));
}

std::string ServedProcess::Stop(double grace_seconds) {
  if (pid_ <= 0) return "not running";
  ::kill(pid_, SIGTERM);
  const Clock::time_point t0 = Clock::now();
  int status = 0;
  while (SecondsSince(t0) < grace_seconds) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return DescribeExit(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return DescribeExit(status) + " (after SIGKILL)";
}

std::string LogTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  return text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
}

}  // namespace kvpool::cli
