#include "default_config.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "config.h"

namespace kvpool::cli {
namespace {

uint64_t FreeBytes(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return 0;
  return uint64_t{st.f_bavail} * st.f_frsize;
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

std::string DefaultConfigToml(const std::string& state_dir) {
  constexpr uint64_t kCap = 8ull << 30;
  uint64_t extent = std::min(kCap, FreeBytes(state_dir) / 4) / (64ull << 20) * (64ull << 20);
  std::string t;
  t += "# kvpool default configuration (print it with `kvpool config`).\n";
  t += "state_dir = " + Quote(state_dir) + "\n\n";
  t += "[model]\npreset = \"llama-3.1-8b\"\n\n";
  t += "# Two host-memory regions (one per NUMA node on multi-socket machines).\n";
  t += "[[device]]\nname = \"dram0\"\nkind = \"dram\"\ncapacity = \"1GiB\"\n\n";
  t += "[[device]]\nname = \"dram1\"\nkind = \"dram\"\ncapacity = \"1GiB\"\n\n";
#if KVPOOL_HAVE_EXTENT
  if (extent >= (256ull << 20)) {
    t += "# KV-passthrough: raw offsets of one preallocated file, O_DIRECT + io_uring.\n";
    t += "[[device]]\nname = \"ssd0\"\nkind = \"extent\"\npath = " +
         Quote(state_dir + "/ssd0.extent") + "\ncapacity = \"" +
         std::to_string(extent >> 20) + "MiB\"\nengine = \"uring\"\nqueue_depth = 32\n\n";
    return t;
  }
#endif
  (void)extent;
  t += "# One file per chunk through the kernel filesystem.\n";
  t += "[[device]]\nname = \"files0\"\nkind = \"file\"\npath = " + Quote(state_dir + "/files0") +
       "\ncapacity = \"2GiB\"\n";
  return t;
}

Result<PoolOptions> LoadConfig(const std::string& path, const std::string& state_dir) {
  if (!path.empty()) return LoadPoolOptions(path);
  return ParsePoolOptions(DefaultConfigToml(state_dir), "<default config>");
}

}  // namespace kvpool::cli
