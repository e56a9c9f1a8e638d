// Small helpers shared by the bench commands: data, statistics, tables,
// cold caches, CPU accounting and the machine description.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <kvpool/pool.h>

#include "util/aligned_buffer.h"

namespace kvpool::cli {

// Fills `n` bytes deterministically from `seed` (fast xorshift).
void FillPattern(std::byte* data, size_t n, uint64_t seed);

// num / den for reports' ratios: 0 when den is not positive (nothing measured).
inline double Div(double num, double den) { return den > 0 ? num / den : 0; }

double Median(std::vector<double> v);
double Percentile(std::vector<double> v, double p);  // p in [0, 100]

struct CpuTimes {
  double user = 0;
  double system = 0;
  static CpuTimes Now();  // this process, all threads
  CpuTimes operator-(const CpuTimes& o) const { return {user - o.user, system - o.system}; }
};

// Makes the next reads of `pool` cold. As root: sync + /proc/sys/vm/drop_caches;
// otherwise posix_fadvise(DONTNEED) per file. Returns which one was used.
std::string DropCaches(Pool& pool);
// sync + /proc/sys/vm/drop_caches; false when not permitted (not root).
bool DropCachesGlobal();

// The DRAM ceiling: memcpy between two buffers of `bytes`, allocated and
// faulted in once (as a pool's DRAM regions are), so that measuring it
// between a bench's retrievals allocates and frees nothing.
class MemcpyCeiling {
 public:
  explicit MemcpyCeiling(size_t bytes);
  // GiB/s of the copy split over `threads` threads (one contiguous slice
  // each, thread start included): median of 3.
  double Gibps(unsigned threads);

 private:
  AlignedBuffer src_, dst_;
};

// Text table: header row, then rows; columns padded to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Runs `command` with /bin/sh and returns what it wrote to stdout (add
// "2>&1" to the command for stderr too) and its exit code (-1 when it did
// not exit normally). IOError when the shell cannot be started.
struct CommandOutput {
  int exit_code = 0;
  std::string text;
};
Result<CommandOutput> RunCommand(const std::string& command);

std::string Fixed(double v, int digits);
std::string MachineDescription();  // cores, memory, kernel, CPU model
uint64_t MemAvailableBytes();       // /proc/meminfo's MemAvailable; 0 when unknown
std::string NowIso8601();

}  // namespace kvpool::cli
