#include "fio.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace kvpool::cli {

Result<FioResult> RunFio(const FioJob& j) {
  if (std::system("command -v fio >/dev/null 2>&1") != 0) {
    return Status::Unsupported("fio is not installed (scripts/setup.sh installs it)");
  }
  std::string cmd = "fio --name=kvpool-ceiling --output-format=json --ioengine=io_uring "
                    "--direct=1 --fixedbufs=1 --registerfiles=1 --numjobs=1 --thread=1 "
                    "--invalidate=1 --norandommap=1 --randrepeat=0";
  cmd += " --filename=" + j.filename;
  cmd += " --rw=" + std::string(j.random ? "randread" : "read");
  cmd += " --bs=" + std::to_string(j.block_bytes);
  cmd += " --iodepth=" + std::to_string(j.queue_depth);
  cmd += " --offset=" + std::to_string(j.offset);
  cmd += " --size=" + std::to_string(j.size);
  cmd += " --io_size=" + std::to_string(j.io_bytes);
  FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return Status::IOError("cannot run fio");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  nlohmann::json r = nlohmann::json::parse(out, nullptr, false);
  if (rc != 0 || r.is_discarded() || !r.contains("jobs") || r["jobs"].empty()) {
    return Status::IOError("fio failed (exit " + std::to_string(rc) + "): " + cmd);
  }
  const auto& job = r["jobs"][0];
  FioResult res;
  res.command = cmd;
  res.runtime_seconds = job["job_runtime"].get<double>() / 1000.0;
  double bytes = job["read"]["io_bytes"].get<double>();
  res.gibps = res.runtime_seconds > 0 ? bytes / res.runtime_seconds / double(1ull << 30) : 0;
  res.user_seconds = job["usr_cpu"].get<double>() / 100.0 * res.runtime_seconds;
  res.system_seconds = job["sys_cpu"].get<double>() / 100.0 * res.runtime_seconds;
  return res;
}

}  // namespace kvpool::cli
