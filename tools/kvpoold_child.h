// kvpoold as a child process of a benchmark: found next to the kvpool
// binary, started with a config, ready once it says so, always stopped
// (SIGTERM, then SIGKILL; PR_SET_PDEATHSIG if the parent dies), and stopped
// too when the benchmark is interrupted. Also the CPU and page faults of a
// process, to put beside its throughput.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <kvpool/result.h>

namespace kvpool::cli {

// --kvpoold `given` when not empty (NotFound unless it is an executable
// file), else the kvpoold next to this binary, else ../daemon/kvpoold.
Result<std::string> DaemonFindKvpoold(const std::string& given);

// CPU seconds (user + system, all threads) and minor page faults of a
// process: `pid` from /proc, or this process (pid <= 0) from getrusage.
struct DaemonProcessUsage {
  double cpu_seconds = 0;
  uint64_t minor_faults = 0;

  static DaemonProcessUsage Of(pid_t pid);
  DaemonProcessUsage operator-(const DaemonProcessUsage& o) const {
    return {cpu_seconds - o.cpu_seconds, minor_faults - o.minor_faults};
  }
};

// While it lives, SIGINT, SIGTERM or SIGHUP stop the running
// DaemonChildProcess (if any), remove `files` and then `dir` (when not
// empty) unless `keep`, and exit with 128 + signal. One at a time.
class DaemonSignalGuard {
 public:
  DaemonSignalGuard(std::vector<std::string> files, std::string dir, bool keep);
  ~DaemonSignalGuard();
  DaemonSignalGuard(const DaemonSignalGuard&) = delete;
  DaemonSignalGuard& operator=(const DaemonSignalGuard&) = delete;

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction old_[3]{};
};

// One kvpoold child: started with a config, its stdout and stderr in a log
// file, ready once it printed "kvpoold: serving". Always stopped: SIGTERM,
// then SIGKILL after kStopSeconds, by Stop() or the destructor; it also gets
// SIGTERM if this process dies (PR_SET_PDEATHSIG).
class DaemonChildProcess {
 public:
  static constexpr int kReadySeconds = 120;  // kvpoold's open (recovery) until "serving"
  static constexpr int kStopSeconds = 60;    // SIGTERM until SIGKILL

  // `exe` --config `config`, output into `log`. IOError (with the log's
  // tail) when it cannot start, exits before serving, or is not serving
  // within kReadySeconds.
  static Result<std::unique_ptr<DaemonChildProcess>> Start(const std::string& exe,
                                                           const std::string& config,
                                                           const std::string& log);

  ~DaemonChildProcess() { (void)Stop(); }
  DaemonChildProcess(const DaemonChildProcess&) = delete;
  DaemonChildProcess& operator=(const DaemonChildProcess&) = delete;

  // SIGTERM and wait; SIGKILL when it does not exit in time. OK when it
  // exited 0, else IOError with its log. Idempotent.
  Status Stop();

  pid_t pid() const { return pid_; }
  // The "N chunks recovered" of kvpoold's serving line; 0 when absent.
  uint64_t RecoveredChunks() const;
  double ready_seconds() const { return ready_seconds_; }
  double stop_seconds() const { return stop_seconds_; }
  std::string Log() const;
  std::string LogTail() const;  // the last 4000 bytes of Log(), or "(empty)"

 private:
  DaemonChildProcess() = default;
  pid_t pid_ = -1;
  std::string log_;
  double ready_seconds_ = 0;
  double stop_seconds_ = 0;
};

}  // namespace kvpool::cli
