// PoolOptions::Validate: the one place where pool options are checked.
#include <kvpool/options.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

namespace kvpool {
namespace {

namespace fs = std::filesystem;

Status Bad(const std::string& field, const std::string& why) {
  return Status::InvalidArgument(field + " " + why);
}

// The nearest existing ancestor of `path` (or `path` itself).
fs::path ExistingAncestor(fs::path p) {
  std::error_code ec;
  p = fs::absolute(p, ec);
  while (!p.empty() && !fs::exists(p, ec)) {
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  return p;
}

Status CheckWritablePath(const std::string& field, const std::string& path, bool want_dir) {
  if (path.empty()) return Bad(field, "is required for this device kind");
  std::error_code ec;
  if (fs::exists(path, ec)) {
    bool is_dir = fs::is_directory(path, ec);
    if (want_dir && !is_dir) return Bad(field, "'" + path + "' exists and is not a directory");
    if (!want_dir && is_dir) return Bad(field, "'" + path + "' is a directory, expected a file");
    if (::access(path.c_str(), R_OK | W_OK) != 0) {
      return Bad(field, "'" + path + "' is not readable and writable");
    }
    return Status::OK();
  }
  fs::path anc = ExistingAncestor(path);
  if (!fs::is_directory(anc, ec) || ::access(anc.c_str(), W_OK | X_OK) != 0) {
    return Bad(field, "'" + path + "' cannot be created: '" + anc.string() + "' is not writable");
  }
  return Status::OK();
}

// "host:port" with a non-empty host and a port in [1, 65535].
bool IsHostPort(const std::string& s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= s.size()) return false;
  uint32_t port = 0;
  for (size_t i = colon + 1; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9' || port > 65535) return false;
    port = port * 10 + static_cast<uint32_t>(s[i] - '0');
  }
  return port >= 1 && port <= 65535;
}

Status ValidateRedis(const DeviceOptions& d, const std::string& f) {
  if (d.nodes.empty()) return Bad(f + ".nodes", "must list at least one \"host:port\" seed node");
  for (size_t j = 0; j < d.nodes.size(); ++j) {
    if (!IsHostPort(d.nodes[j])) {
      return Bad(f + ".nodes[" + std::to_string(j) + "]",
                 "'" + d.nodes[j] + "' is not \"host:port\" with a port in [1, 65535]");
    }
  }
  if (d.timeout_ms == 0 || d.timeout_ms > 600000) {
    return Bad(f + ".timeout_ms", "must be in [1, 600000]");
  }
  if (!d.user.empty() && d.password.empty()) return Bad(f + ".user", "needs a password");
  if (d.key_prefix.size() > 256) return Bad(f + ".key_prefix", "must be at most 256 bytes");
  return Status::OK();
}

Status ValidateDevice(const DeviceOptions& d, size_t i) {
  const std::string f = "devices[" + std::to_string(i) + "]";
  if (d.capacity_bytes == 0) return Bad(f + ".capacity_bytes", "must be > 0");
  if (d.capacity_bytes % 4096 != 0) {
    return Bad(f + ".capacity_bytes", "must be a multiple of 4096, got " +
                                          std::to_string(d.capacity_bytes));
  }
  if (d.io_threads > 64) return Bad(f + ".io_threads", "must be in [0, 64] (0 = automatic)");
  if (d.queue_depth == 0 || d.queue_depth > 4096) {
    return Bad(f + ".queue_depth", "must be in [1, 4096]");
  }
  if (d.bandwidth_gibps < 0) return Bad(f + ".bandwidth_gibps", "must be >= 0");
  if (d.throttle_gibps < 0) return Bad(f + ".throttle_gibps", "must be >= 0");
  if (d.numa_node < kEachNumaNode) return Bad(f + ".numa_node", "must be >= 0, -1 or \"each\"");
  if (d.kind != DeviceKind::kDram && d.numa_node == kEachNumaNode) {
    return Bad(f + ".numa_node", "\"each\" applies to dram devices only");
  }
  switch (d.kind) {
    case DeviceKind::kDram: return Status::OK();
    case DeviceKind::kFilePerChunk: return CheckWritablePath(f + ".path", d.path, true);
    case DeviceKind::kExtent:
      if (d.engine != "uring" && d.engine != "psync") {
        return Bad(f + ".engine", "must be \"uring\" or \"psync\", got \"" + d.engine + "\"");
      }
      return CheckWritablePath(f + ".path", d.path, false);
    case DeviceKind::kSpdk:
      if (d.transport.empty()) return Bad(f + ".transport", "is required for an spdk device");
      return Status::OK();
    case DeviceKind::kRedis: return ValidateRedis(d, f);
  }
  return Bad(f + ".kind", "is unknown");
}

}  // namespace

std::string_view DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kDram: return "dram";
    case DeviceKind::kFilePerChunk: return "file";
    case DeviceKind::kExtent: return "extent";
    case DeviceKind::kSpdk: return "spdk";
    case DeviceKind::kRedis: return "redis";
  }
  return "unknown";
}

Result<DeviceKind> ParseDeviceKind(std::string_view name) {
  for (DeviceKind k : {DeviceKind::kDram, DeviceKind::kFilePerChunk, DeviceKind::kExtent,
                       DeviceKind::kSpdk, DeviceKind::kRedis}) {
    if (DeviceKindName(k) == name) return k;
  }
  return Status::InvalidArgument("unknown device kind '" + std::string(name) +
                                 "' (known: dram, file, extent, spdk, redis)");
}

std::string_view PlacementModeName(PlacementMode mode) {
  return mode == PlacementMode::kPartition ? "partition" : "copies";
}

Result<PlacementMode> ParsePlacementMode(std::string_view name) {
  if (name == "copies") return PlacementMode::kCopies;
  if (name == "partition") return PlacementMode::kPartition;
  return Status::InvalidArgument("placement: unknown mode '" + std::string(name) +
                                 "' (known: copies, partition)");
}

Status PoolOptions::Validate() const {
  KVP_RETURN_IF_ERROR(shape.Validate());
  if (devices.empty()) return Bad("devices", "must list at least one device");
  std::set<std::string> names;
  for (size_t i = 0; i < devices.size(); ++i) {
    KVP_RETURN_IF_ERROR(ValidateDevice(devices[i], i));
    if (!devices[i].name.empty() && !names.insert(devices[i].name).second) {
      return Bad("devices[" + std::to_string(i) + "].name",
                 "'" + devices[i].name + "' is used by another device");
    }
  }
  if (devices.size() > 65535) return Bad("devices", "must list at most 65535 devices");
  size_t remotes = 0;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i].kind == DeviceKind::kRedis && ++remotes > 1) {
      return Bad("devices[" + std::to_string(i) + "].kind", "\"redis\": a pool has at most one remote tier");
    }
  }
  if (remotes == devices.size()) {
    return Bad("devices", "need a local device besides the remote tier (a dram region or a disk)");
  }
  if (max_pending_writes == 0) return Bad("max_pending_writes", "must be > 0");
  if (!(high_watermark > 0 && high_watermark <= 1)) {
    return Bad("high_watermark", "must be in (0, 1]");
  }
  if (!(low_watermark > 0 && low_watermark < high_watermark)) {
    return Bad("low_watermark", "must be in (0, high_watermark)");
  }
  if (probe_mib == 0) return Bad("probe_mib", "must be > 0");
  if (!(hot_probation_fraction > 0 && hot_probation_fraction < 1)) {
    return Bad("hot_probation_fraction", "must be in (0, 1)");
  }
  if (max_write_delay_ms == 0) return Bad("max_write_delay_ms", "must be > 0");
  return Status::OK();
}

}  // namespace kvpool
