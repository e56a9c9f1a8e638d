#include "default_config.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config.h"
#include "format/constants.h"
#include "format/superblock.h"

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

// "<n>MiB" when `bytes` is a whole number of MiB, "<bytes>" otherwise.
std::string BytesValue(uint64_t bytes) {
  constexpr uint64_t kMiB = 1ull << 20;
  return Quote(bytes % kMiB == 0 ? std::to_string(bytes / kMiB) + "MiB" : std::to_string(bytes));
}

// The payload capacity an extent file was formatted for (slots x slot
// payload), or 0 when `path` holds no valid kvpool superblock.
uint64_t FormattedCapacity(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> block(format::kBlockBytes);
  if (!in.read(block.data(), static_cast<std::streamsize>(block.size()))) return 0;
  const format::DecodedSuperblock d =
      format::DecodeSuperblock(reinterpret_cast<const std::byte*>(block.data()));
  if (d.state != format::SuperblockState::kValid) return 0;
  return d.sb.layout.slot_count * d.sb.layout.slot_payload_bytes;
}

// A quarter of the free disk at `state_dir`, capped at 8 GiB, in 64 MiB
// steps; an extent already formatted there keeps its size, so that the
// space it took does not shrink the next run's configuration (which the
// extent would refuse).
uint64_t ExtentCapacity(const std::string& state_dir) {
  if (uint64_t kept = FormattedCapacity(state_dir + "/ssd0.extent"); kept > 0) return kept;
  constexpr uint64_t kCap = 8ull << 30;
  return std::min(kCap, FreeBytes(state_dir) / 4) / (64ull << 20) * (64ull << 20);
}

}  // namespace

std::string DefaultConfigToml(const std::string& state_dir) {
  const uint64_t extent = ExtentCapacity(state_dir);
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
         Quote(state_dir + "/ssd0.extent") + "\ncapacity = " + BytesValue(extent) +
         "\nengine = \"uring\"\nqueue_depth = 32\n\n";
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
