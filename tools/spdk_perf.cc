#include "spdk_perf.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"

namespace kvpool::cli {
namespace {

bool Executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

double Seconds(const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; }

// The highest CPU this process may run on, as a core mask for -c.
std::string CoreMask() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cpu = 0;
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 63; c >= 0; --c) {
      if (CPU_ISSET(c, &set)) {
        cpu = c;
        break;
      }
    }
  }
  std::ostringstream mask;
  mask << "0x" << std::hex << (uint64_t{1} << cpu);
  return mask.str();
}

}  // namespace

std::string FindSpdkNvmePerf() {
  std::vector<std::string> dirs;
  if (const char* d = std::getenv("KVPOOL_SPDK_DIR"); d != nullptr && *d != '\0') {
    dirs.push_back(std::string(d) + "/bin");
  }
  dirs.push_back("/opt/spdk/bin");
  dirs.push_back("/usr/local/bin");
  for (const std::string& d : dirs) {
    if (Executable(d + "/spdk_nvme_perf")) return d + "/spdk_nvme_perf";
  }
  if (std::system("command -v spdk_nvme_perf >/dev/null 2>&1") == 0) return "spdk_nvme_perf";
  return "";
}

double ParseSpdkPerfMibps(const std::string& report) {
  std::istringstream lines(report);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("Total", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream fields(line.substr(colon + 1));
    double iops = -1, mibps = -1;
    if (fields >> iops >> mibps && mibps >= 0) return mibps;
  }
  return -1;
}

Result<SpdkPerfResult> RunSpdkNvmePerf(const SpdkPerfJob& job) {
  const std::string perf = FindSpdkNvmePerf();
  if (perf.empty()) {
    return Status::Unsupported(
        "spdk_nvme_perf not found (set KVPOOL_SPDK_DIR to SPDK's install prefix; checked "
        "$KVPOOL_SPDK_DIR/bin, /opt/spdk/bin, /usr/local/bin, $PATH)");
  }
  SpdkPerfResult res;
  std::string lib = perf.find('/') != std::string::npos
                        ? perf.substr(0, perf.rfind('/')) + "/../lib"
                        : std::string();
  std::string cmd = lib.empty() ? "" : "LD_LIBRARY_PATH=" + lib + ":${LD_LIBRARY_PATH:-} ";
  cmd += perf + " --no-huge -s 1024 -c " + CoreMask() + " -w randread" + " -o " +
         std::to_string(job.block_bytes) + " -q " + std::to_string(job.queue_depth) + " -t " +
         std::to_string(job.seconds) + " -r '" + job.transport + "'";
  res.command = cmd;
  rusage before{}, after{};
  ::getrusage(RUSAGE_CHILDREN, &before);
  const auto t0 = std::chrono::steady_clock::now();
  Result<CommandOutput> run = RunCommand(cmd + " 2>&1");
  if (!run.ok()) return run.status();
  res.runtime_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::getrusage(RUSAGE_CHILDREN, &after);
  const std::string& out = run->text;
  const int rc = run->exit_code;
  const double mibps = ParseSpdkPerfMibps(out);
  if (rc != 0 || mibps < 0) {
    const std::string tail = out.size() > 400 ? out.substr(out.size() - 400) : out;
    return Status::IOError("spdk_nvme_perf failed (exit " + std::to_string(rc) + "): " + cmd +
                           ": " + tail);
  }
  res.gibps = mibps / 1024.0;
  res.gib = res.gibps * job.seconds;
  res.user_seconds = Seconds(after.ru_utime) - Seconds(before.ru_utime);
  res.system_seconds = Seconds(after.ru_stime) - Seconds(before.ru_stime);
  return res;
}

}  // namespace kvpool::cli
