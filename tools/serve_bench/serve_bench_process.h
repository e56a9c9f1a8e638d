// A server process of `kvpool bench serve`: started from an argument list
// with its output going to a log file, ready when GET /health answers 200,
// stopped with SIGTERM (then SIGKILL after a grace period).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <kvpool/status.h>

namespace kvpool::cli {

class ServedProcess {
 public:
  ServedProcess() = default;
  ServedProcess(const ServedProcess&) = delete;
  ServedProcess& operator=(const ServedProcess&) = delete;
  // Kills a process still running (SIGKILL): a bench that fails midway
  // leaves no server behind.
  ~ServedProcess();

  // Starts argv[0] with `argv` (stdout and stderr appended to `log_path`)
  // and waits until http://127.0.0.1:`port`/health answers 200. Fails when
  // the process exits first or `timeout_seconds` pass (then it is killed).
  Status Start(const std::vector<std::string>& argv, const std::string& log_path, int port,
               double timeout_seconds);
  // SIGTERM, then waits up to `grace_seconds` for the exit (SIGKILL after).
  // Returns how the process ended, e.g. "exit 0", "signal 9 (after SIGKILL)".
  std::string Stop(double grace_seconds);
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// The last `max_bytes` of a log file (for error messages).
std::string LogTail(const std::string& path, size_t max_bytes);

}  // namespace kvpool::cli
