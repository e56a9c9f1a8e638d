#include "fio.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "bench_util.h"
#include "util/page_backing.h"

namespace kvpool::cli {
namespace {

constexpr uint64_t kHugePageBytes = 2ull << 20;

// The mount point of a hugetlbfs of 2 MiB pages, or "".
std::string HugetlbfsMount() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream f(line);
    std::string dev, dir, type, opts;
    f >> dev >> dir >> type >> opts;
    if (type != "hugetlbfs") continue;
    if (opts.find("pagesize=") != std::string::npos && opts.find("pagesize=2M") == std::string::npos) {
      continue;
    }
    return dir;
  }
  return "";
}

// fio's --iomem for `job`; says in `res` which memory that is.
std::string IoMem(const FioJob& job, FioResult* res) {
  const std::string mount = HugetlbfsMount();
  // fio allocates queue_depth buffers of block_bytes, plus alignment.
  const uint64_t need = (uint64_t{job.queue_depth} * job.block_bytes) / kHugePageBytes + 2;
  if (!mount.empty() && FreeHugePages() >= need) {
    res->huge_pages = true;
    res->memory = "2 MiB huge pages (" + mount + ")";
    return " --iomem=mmaphuge:" + mount + "/kvpool-fio-buffers";
  }
  res->memory = "4 KiB pages (malloc; no hugetlbfs with free 2 MiB pages)";
  return "";
}

}  // namespace

Result<FioResult> RunFio(const FioJob& j) {
  if (std::system("command -v fio >/dev/null 2>&1") != 0) {
    return Status::Unsupported("fio is not installed (scripts/setup.sh installs it)");
  }
  FioResult res;
  std::string cmd = "fio --name=kvpool-ceiling --output-format=json --ioengine=io_uring "
                    "--direct=1 --fixedbufs=1 --registerfiles=1 --numjobs=1 --thread=1 "
                    "--invalidate=1 --norandommap=1 --randrepeat=0";
  cmd += IoMem(j, &res);
  cmd += " --filename=" + j.filename;
  cmd += " --rw=" + std::string(j.random ? "randread" : "read");
  cmd += " --bs=" + std::to_string(j.block_bytes);
  cmd += " --iodepth=" + std::to_string(j.queue_depth);
  cmd += " --offset=" + std::to_string(j.offset);
  cmd += " --size=" + std::to_string(j.size);
  cmd += " --io_size=" + std::to_string(j.io_bytes);
  Result<CommandOutput> run = RunCommand(cmd + " 2>/dev/null");
  if (!run.ok()) return run.status();
  nlohmann::json r = nlohmann::json::parse(run->text, nullptr, false);
  if (run->exit_code != 0 || r.is_discarded() || !r.contains("jobs") || r["jobs"].empty()) {
    return Status::IOError("fio failed (exit " + std::to_string(run->exit_code) + "): " + cmd);
  }
  const auto& job = r["jobs"][0];
  res.command = cmd;
  res.runtime_seconds = job["job_runtime"].get<double>() / 1000.0;
  double bytes = job["read"]["io_bytes"].get<double>();
  res.gibps = res.runtime_seconds > 0 ? bytes / res.runtime_seconds / double(1ull << 30) : 0;
  res.user_seconds = job["usr_cpu"].get<double>() / 100.0 * res.runtime_seconds;
  res.system_seconds = job["sys_cpu"].get<double>() / 100.0 * res.runtime_seconds;
  return res;
}

}  // namespace kvpool::cli
