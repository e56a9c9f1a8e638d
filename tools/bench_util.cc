#include "bench_util.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "core/pool_impl.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"

namespace kvpool::cli {

void FillPattern(std::byte* data, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(data + i, &x, 8);
  }
  for (; i < n; ++i) data[i] = std::byte(x >> (8 * (i % 8)));
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double rank = p / 100.0 * double(v.size() - 1);
  size_t lo = static_cast<size_t>(rank);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - double(lo));
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 50); }

CpuTimes CpuTimes::Now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](timeval t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return {secs(ru.ru_utime), secs(ru.ru_stime)};
}

bool DropCachesGlobal() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, "3", 1) == 1;
  ::close(fd);
  return ok;
}

std::string DropCaches(Pool& pool) {
  if (DropCachesGlobal()) return "drop_caches";
  if (auto* impl = dynamic_cast<PoolImpl*>(&pool)) impl->DropCaches();
  return "fadvise-dontneed";
}

MemcpyCeiling::MemcpyCeiling(size_t bytes) : src_(bytes), dst_(bytes) {
  FillPattern(src_.data(), bytes, 1);
  std::memcpy(dst_.data(), src_.data(), bytes);  // fault the pages in
}

double MemcpyCeiling::Gibps(unsigned threads) {
  threads = std::max(1u, threads);
  const size_t bytes = src_.size();
  // Each thread copies one contiguous slice, cut at 4 KiB.
  const size_t slice = (bytes / threads + 4095) / 4096 * 4096;
  auto copy_slice = [&](unsigned i) {
    const size_t off = std::min(bytes, size_t{i} * slice);
    std::memcpy(dst_.data() + off, src_.data() + off, std::min(slice, bytes - off));
  };
  std::vector<double> runs;
  for (int r = 0; r < 3; ++r) {
    Clock::time_point t = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back(copy_slice, i);
    copy_slice(0);
    for (auto& th : pool) th.join();
    runs.push_back(double(bytes) / SecondsSince(t) / double(1ull << 30));
  }
  return Median(runs);
}

std::string Table::Render() const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::ostringstream out;
  for (size_t r = 0; r < rows_.size(); ++r) {
    for (size_t i = 0; i < rows_[r].size(); ++i) {
      out << (i ? "  " : "") << rows_[r][i] << std::string(width[i] - rows_[r][i].size(), ' ');
    }
    out << "\n";
    if (r == 0) {
      size_t total = 0;
      for (size_t w : width) total += w + 2;
      out << std::string(total > 2 ? total - 2 : 0, '-') << "\n";
    }
  }
  return out.str();
}

Result<CommandOutput> RunCommand(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return Status::IOError("cannot run: " + command);
  CommandOutput out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.text.append(buf, n);
  const int status = ::pclose(p);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string MachineDescription() {
  utsname u{};
  uname(&u);
  std::string cpu = "unknown cpu";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " cores (" + cpu + "), " +
         Fixed(double(pages) * double(page) / double(1ull << 30), 1) + " GiB RAM, " +
         u.sysname + " " + u.release;
}

uint64_t MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    uint64_t kib = 0;
    in >> kib;
    if (key == "MemAvailable:") return kib << 10;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

std::string NowIso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace kvpool::cli
