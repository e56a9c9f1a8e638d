#include "util/page_backing.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace kvpool {
namespace {

// smaps fields that count huge-page-mapped kB of a mapping.
constexpr const char* kHugeFields[] = {"AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:",
                                       "Shared_Hugetlb:", "Private_Hugetlb:"};

// True when `line` is a mapping's first line ("start-end perms ..."): hex
// digits, a '-', hex digits. A field line ("Size:  8 kB") has a ':' first.
bool IsMappingLine(const std::string& line, uint64_t* start, uint64_t* end) {
  char* p = nullptr;
  *start = std::strtoull(line.c_str(), &p, 16);
  if (p == line.c_str() || *p != '-') return false;
  *end = std::strtoull(p + 1, nullptr, 16);
  return true;
}

}  // namespace

uint64_t HugePageBytesMapped(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const uint64_t want = reinterpret_cast<uintptr_t>(address);
  std::string line;
  bool inside = false;
  uint64_t kib = 0;
  while (std::getline(smaps, line)) {
    uint64_t start = 0, end = 0;
    if (IsMappingLine(line, &start, &end)) {
      if (inside) break;  // the next mapping: done
      inside = start <= want && want < end;
      continue;
    }
    if (!inside) continue;
    for (const char* field : kHugeFields) {
      const size_t n = std::strlen(field);
      if (line.compare(0, n, field) == 0) kib += std::strtoull(line.c_str() + n, nullptr, 10);
    }
  }
  return kib << 10;
}

std::string ShmemHugePagesSetting() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string line;
  std::getline(in, line);
  const size_t open = line.find('['), close = line.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return "unknown";
  return line.substr(open + 1, close - open - 1);
}

uint64_t FreeHugePages() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  while (meminfo >> key >> value) {
    if (key == "HugePages_Free:") return value;
    meminfo.ignore(256, '\n');
  }
  return 0;
}

}  // namespace kvpool
