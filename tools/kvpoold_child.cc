#include "kvpoold_child.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench_util.h"
#include "util/clock.h"

namespace kvpool::cli {
namespace {

bool DaemonIsExecutable(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// SIGINT, SIGTERM or SIGHUP while the bench runs: stop kvpoold, remove the
// bench's files (unless --keep) and exit 128 + signal. Everything the
// handler reads is fixed before it is installed, except `child`.
struct DaemonSignalState {
  std::atomic<pid_t> child{-1};
  std::vector<std::string> files;  // removed with unlink
  std::string dir;                 // removed with rmdir when the bench made it; "" = not
  bool keep = false;
};
DaemonSignalState g_daemon_signal;

extern "C" void DaemonOnSignal(int sig) {
  pid_t pid = g_daemon_signal.child.exchange(-1);
  if (pid > 0) {  // only async-signal-safe calls here
    kill(pid, SIGTERM);
    bool gone = false;
    for (int i = 0; i < 1000 && !gone; ++i) {
      gone = waitpid(pid, nullptr, WNOHANG) == pid;
      timespec ts{0, 10 * 1000 * 1000};
      if (!gone) nanosleep(&ts, nullptr);
    }
    if (!gone) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  if (!g_daemon_signal.keep) {
    for (const std::string& f : g_daemon_signal.files) unlink(f.c_str());
    if (!g_daemon_signal.dir.empty()) rmdir(g_daemon_signal.dir.c_str());
  }
  static const char kStopped[] = "kvpool bench daemon: interrupted; kvpoold stopped\n";
  static const char kPlain[] = "kvpool bench daemon: interrupted\n";
  ssize_t ignored =
      pid > 0 ? write(2, kStopped, sizeof(kStopped) - 1) : write(2, kPlain, sizeof(kPlain) - 1);
  (void)ignored;
  _exit(128 + sig);
}

}  // namespace

Result<std::string> DaemonFindKvpoold(const std::string& given) {
  if (!given.empty()) {
    if (DaemonIsExecutable(given)) return given;
    return Status::NotFound("--kvpoold '" + given + "' is not an executable file");
  }
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec)
    return Status::NotFound("cannot read /proc/self/exe (" + ec.message() +
                            "); pass --kvpoold PATH");
  const std::filesystem::path dir = exe.parent_path();
  const std::vector<std::filesystem::path> tried = {
      dir / "kvpoold", (dir / ".." / "daemon" / "kvpoold").lexically_normal()};
  for (const auto& p : tried) {
    if (DaemonIsExecutable(p)) return p.string();
  }
  return Status::NotFound("kvpoold not found: tried " + tried[0].string() + " and " +
                          tried[1].string() + "; build it (ninja kvpoold) or pass --kvpoold PATH");
}

DaemonProcessUsage DaemonProcessUsage::Of(pid_t pid) {
  DaemonProcessUsage u;
  if (pid <= 0) {
    const CpuTimes cpu = CpuTimes::Now();
    u.cpu_seconds = cpu.user + cpu.system;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    u.minor_faults = static_cast<uint64_t>(ru.ru_minflt);
    return u;
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 > line.size()) return u;
  std::istringstream fields(line.substr(paren + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; fields >> f; ++i) {  // field 3 is the state (proc(5))
    if (i == 10) u.minor_faults = std::strtoull(f.c_str(), nullptr, 10);
    if (i == 14 || i == 15) ticks += std::atof(f.c_str());
    if (i == 15) break;
  }
  u.cpu_seconds = ticks / double(sysconf(_SC_CLK_TCK));
  return u;
}

DaemonSignalGuard::DaemonSignalGuard(std::vector<std::string> files, std::string dir, bool keep) {
  g_daemon_signal.files = std::move(files);
  g_daemon_signal.dir = std::move(dir);
  g_daemon_signal.keep = keep;
  struct sigaction sa {};
  sa.sa_handler = DaemonOnSignal;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; ++i) {
    sigaddset(&sa.sa_mask, kSignals[i]);  // one handler at a time
  }
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &sa, &old_[i]);
}

DaemonSignalGuard::~DaemonSignalGuard() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &old_[i], nullptr);
}

Result<std::unique_ptr<DaemonChildProcess>> DaemonChildProcess::Start(const std::string& exe,
                                                                      const std::string& config,
                                                                      const std::string& log) {
  std::unique_ptr<DaemonChildProcess> c(new DaemonChildProcess);
  c->log_ = log;
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("cannot create '" + log + "': " + strerror(errno));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<std::string> args = {exe, "--config", config};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  Clock::time_point t = Clock::now();
  // vfork, not fork: fork would copy the page tables of this multi-GiB
  // process and write-protect all of its memory (copy-on-write), so that
  // the next in-process round would pay a page fault per 4 KiB it writes.
  // No handler of ours may run in the child: signals wait until it has its
  // default dispositions (posix_spawn does the same).
  sigset_t all, mask;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &mask);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  pid_t pid = vfork();
  if (pid == 0) {  // the parent's memory: only system calls from here to execv
    sigaction(SIGINT, &dfl, nullptr);
    sigaction(SIGTERM, &dfl, nullptr);
    sigaction(SIGHUP, &dfl, nullptr);
    sigprocmask(SIG_SETMASK, &mask, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  ::close(fd);
  if (null_fd >= 0) ::close(null_fd);
  if (pid < 0) return Status::IOError("vfork for kvpoold: " + std::string(strerror(fork_errno)));
  c->pid_ = pid;
  g_daemon_signal.child.store(pid);
  // Ready when the log says so; an early exit or a timeout is an error.
  for (;;) {
    const std::string text = c->Log();
    if (text.find("kvpoold: serving") != std::string::npos) break;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      g_daemon_signal.child.store(-1);
      c->pid_ = -1;
      std::string how = WIFEXITED(status)
                            ? "exited with status " + std::to_string(WEXITSTATUS(status))
                            : "was killed by signal " + std::to_string(WTERMSIG(status));
      if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && text.empty())
        how += " (could not execute " + exe + ")";
      return Status::IOError("kvpoold (" + exe + " --config " + config + ") " + how +
                             " before serving; its log " + log + ":\n" + c->LogTail());
    }
    if (SecondsSince(t) > kReadySeconds) {
      (void)c->Stop();
      return Status::IOError("kvpoold did not print \"kvpoold: serving\" within " +
                             std::to_string(kReadySeconds) + " s; its log " + log + ":\n" +
                             c->LogTail());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  c->ready_seconds_ = SecondsSince(t);
  return c;
}

Status DaemonChildProcess::Stop() {
  if (pid_ <= 0) return Status::OK();
  g_daemon_signal.child.store(
      -1);  // from here on a signal leaves it to this stop (or PR_SET_PDEATHSIG)
  Clock::time_point t = Clock::now();
  kill(pid_, SIGTERM);
  int status = 0;
  bool killed = false;
  for (;;) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    if (SecondsSince(t) > kStopSeconds) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  stop_seconds_ = SecondsSince(t);
  if (killed) {
    return Status::IOError("kvpoold did not exit within " + std::to_string(kStopSeconds) +
                           " s of SIGTERM and was killed; its log " + log_ + ":\n" + LogTail());
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::IOError("kvpoold ended with " +
                           (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                                              : "signal " + std::to_string(WTERMSIG(status))) +
                           " after SIGTERM; its log " + log_ + ":\n" + LogTail());
  }
  return Status::OK();
}

uint64_t DaemonChildProcess::RecoveredChunks() const {
  const std::string text = Log();
  const size_t at = text.find(" chunks recovered");
  if (at == std::string::npos) return 0;
  size_t b = at;
  while (b > 0 && std::isdigit(static_cast<unsigned char>(text[b - 1]))) --b;
  return b < at ? std::strtoull(text.c_str() + b, nullptr, 10) : 0;
}

std::string DaemonChildProcess::Log() const {
  std::ifstream in(log_);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string DaemonChildProcess::LogTail() const {
  std::string text = Log();
  if (text.size() > 4000) text = "..." + text.substr(text.size() - 4000);
  return text.empty() ? "(empty)" : text;
}

}  // namespace kvpool::cli
