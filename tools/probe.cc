#include "probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench_util.h"
#include "config.h"
#include "core/bandwidth_probe.h"
#include "core/device_runner.h"
#include "default_config.h"
#include "tier/dram_device.h"
#include "util/aligned_buffer.h"

#if KVPOOL_HAVE_URING
#include <liburing.h>
#endif
#if KVPOOL_HAVE_NUMA
#include <numa.h>
#endif
#if KVPOOL_HAVE_SPDK
#include "tier/spdk/spdk_device.h"
#endif

namespace kvpool::cli {
namespace {

using nlohmann::json;

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return in ? line : "unavailable";
}

std::string MeminfoField(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      return v.substr(v.find_first_not_of(' '));
    }
  }
  return "?";
}

json ProbeNuma() {
#if KVPOOL_HAVE_NUMA
  if (numa_available() < 0) return {{"available", false}, {"nodes", 1}};
  json nodes = json::array();
  for (int n = 0; n <= numa_max_node(); ++n) {
    long long free_bytes = 0;
    long long size = numa_node_size64(n, &free_bytes);
    nodes.push_back({{"node", n}, {"bytes", size}, {"free_bytes", free_bytes}});
  }
  return {{"available", true}, {"nodes", nodes.size()}, {"per_node", nodes}};
#else
  return {{"available", false}, {"reason", "built without libnuma"}};
#endif
}

json ProbeHugePages() {
  bool mounted = false;
  std::ifstream mounts("/proc/mounts");
  for (std::string line; std::getline(mounts, line);) mounted |= line.find(" hugetlbfs ") != std::string::npos;
  return {{"nr_hugepages", ReadFirstLine("/proc/sys/vm/nr_hugepages")},
          {"free", MeminfoField("HugePages_Free")},
          {"hugetlbfs_mounted", mounted},
          {"transparent", ReadFirstLine("/sys/kernel/mm/transparent_hugepage/enabled")}};
}

json ProbeUring() {
#if KVPOOL_HAVE_URING
  json j;
  io_uring ring{};
  int rc = io_uring_queue_init(8, &ring, 0);
  j["available"] = rc == 0;
  if (rc != 0) {
    j["error"] = std::string("io_uring_queue_init: ") + strerror(-rc);
    return j;
  }
  static char buf[4096] __attribute__((aligned(4096)));
  iovec iov{buf, sizeof(buf)};
  j["registered_buffers"] = io_uring_register_buffers(&ring, &iov, 1) == 0;
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  j["registered_files"] = io_uring_register_files(&ring, &fd, 1) == 0;
  ::close(fd);
  if (io_uring_probe* p = io_uring_get_probe_ring(&ring)) {
    j["read_fixed"] = io_uring_opcode_supported(p, IORING_OP_READ_FIXED) != 0;
    io_uring_free_probe(p);
  }
  io_uring_queue_exit(&ring);
  io_uring sq{};
  io_uring_params params{};
  params.flags = IORING_SETUP_SQPOLL;
  rc = io_uring_queue_init_params(8, &sq, &params);
  j["sqpoll"] = rc == 0;
  if (rc == 0) io_uring_queue_exit(&sq);
  return j;
#else
  return {{"available", false}, {"error", "built without liburing"}};
#endif
}

// Whether SPDK is built in and, if so, whether its environment comes up here
// (with PCI when a configured SPDK device is PCIe).
json ProbeSpdk(const PoolOptions& o) {
#if KVPOOL_HAVE_SPDK
  bool pci = false;
  for (const auto& d : o.devices) {
    std::string t = d.transport;
    for (char& c : t) c = char(std::tolower(static_cast<unsigned char>(c)));
    pci |= d.kind == DeviceKind::kSpdk && t.find("trtype:pcie") != std::string::npos;
  }
  auto env = ProbeSpdkEnv(pci);
  if (!env.ok()) {
    return {{"available", false}, {"built_in", true}, {"env_init", false},
            {"error", env.status().ToString()}};
  }
  return {{"available", true}, {"built_in", true}, {"env_init", true}, {"env", *env}};
#else
  (void)o;
  return {{"available", false}, {"built_in", false},
          {"reason", "not built in: install SPDK, put its pkg-config files on PKG_CONFIG_PATH "
                     "and configure with -DKVPOOL_WITH_SPDK=ON (docs/spdk.md)"}};
#endif
}

// The nearest directory at or above `path` that exists ("." when none does).
std::string NearestExistingDir(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  while (!p.empty() && !std::filesystem::is_directory(p, ec)) {
    if (!p.has_relative_path()) break;
    p = p.parent_path();
  }
  return p.empty() ? "." : p.string();
}

// Whether files in `dir` (or, when it does not exist, its nearest existing
// parent: a probe creates no directory) can be opened with O_DIRECT.
json ProbeDirect(const std::string& dir) {
  std::string at = NearestExistingDir(dir);
  json j{{"path", dir}};
  if (std::filesystem::path(at) != std::filesystem::absolute(dir)) j["tested_in"] = at;
  std::string path = at + "/.kvpool-odirect-probe";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
  int err = errno;
  if (fd >= 0) {
    ::close(fd);
    ::unlink(path.c_str());
    j["o_direct"] = true;
    return j;
  }
  j["o_direct"] = false;
  j["error"] = strerror(err);
  return j;
}

std::string DirOf(const DeviceOptions& d) {
  if (d.kind == DeviceKind::kFilePerChunk) return d.path;
  return std::filesystem::path(d.path).parent_path().string();
}

// A directory made for the probe (mkdtemp), removed with everything in it
// at destruction.
class ScratchDir {
 public:
  // In `parent`, named ".kvpool-probe-XXXXXX".
  static Result<std::unique_ptr<ScratchDir>> Create(const std::string& parent) {
    std::string templ = parent + "/.kvpool-probe-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      return Status::IOError("cannot create a probe directory in '" + parent +
                             "': " + strerror(errno));
    }
    return std::unique_ptr<ScratchDir>(new ScratchDir(templ));
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

bool IsBlockDevice(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
}

// What is probed for one configured device. A probe never allocates more
// than its probe size: DRAM regions shrink to it; an extent file or chunk
// directory is replaced by a probe-sized twin in a scratch directory beside
// it (same filesystem), so the configured path is neither created nor
// touched. Block devices and SPDK namespaces are probed in place, writing
// only to free slots (at most half of them) and freeing them afterwards.
struct ProbeTarget {
  DeviceOptions options;                // what is opened
  std::unique_ptr<ScratchDir> scratch;  // removed after the probe
  double max_free_fraction = 1.0;
  std::string where;                    // for the report
};

Result<ProbeTarget> PlanTarget(const DeviceOptions& d, uint64_t probe_bytes, uint32_t payload) {
  ProbeTarget t;
  t.options = d;
  t.options.bandwidth_gibps = 0;
  const uint64_t size =
      std::max<uint64_t>(RoundUp(probe_bytes, 4096), RoundUp(payload, 4096));
  if (d.kind == DeviceKind::kDram) {
    t.options.capacity_bytes = std::min(d.capacity_bytes, size);
    t.where = "probe-sized region";
    return t;
  }
  if (d.kind == DeviceKind::kSpdk || IsBlockDevice(d.path)) {
    t.max_free_fraction = 0.5;
    t.where = "in place (free slots only)";
    return t;
  }
  std::filesystem::path p = std::filesystem::absolute(d.path);
  std::error_code ec;
  if (!std::filesystem::is_directory(p.parent_path(), ec)) {
    return Status::InvalidArgument("device '" + d.name + "': directory of '" + d.path +
                                   "' does not exist; the probe creates no directory");
  }
  KVP_ASSIGN_OR_RETURN(t.scratch, ScratchDir::Create(p.parent_path().string()));
  t.options.path = t.scratch->path() + "/" + p.filename().string();
  t.options.capacity_bytes = size;
  t.options.reformat = false;
  t.where = "probe-sized twin in " + t.scratch->path();
  return t;
}

// Opens every target and measures them: each alone, then each contention
// group jointly. Targets that cannot be opened get an "error" entry.
json MeasureDevices(std::vector<DeviceOptions> devices, const PoolOptions& o, uint32_t mib) {
  const uint32_t payload = static_cast<uint32_t>(o.shape.SegmentPayloadBytes());
  const uint64_t probe_bytes = uint64_t{mib} << 20;
  const ChunkKey pool_id = Namespace::Make(o.shape.Fingerprint(), o.tenant_salt).id;
  json out = json::array();
  std::vector<ProbeTarget> targets;
  std::vector<std::unique_ptr<DeviceRunner>> runners;
  std::vector<size_t> entry_of;  // runner -> index in `out`
  for (const DeviceOptions& d : devices) {
    json j{{"name", d.name}, {"kind", DeviceKindName(d.kind)}};
    auto t = PlanTarget(d, probe_bytes, payload);
    if (!t.ok()) {
      out.push_back((j["error"] = t.status().ToString(), j));
      continue;
    }
    j["probed"] = t->where;
    auto dev = OpenDevice(t->options, payload, pool_id);
    if (!dev.ok()) {
      out.push_back((j["error"] = dev.status().ToString(), j));
      continue;
    }
    j["chosen"] = (*dev)->Describe();
    auto runner = DeviceRunner::Start(std::move(dev).value(), uint16_t(runners.size()));
    if (!runner.ok()) {
      out.push_back((j["error"] = runner.status().ToString(), j));
      continue;
    }
    entry_of.push_back(out.size());
    out.push_back(j);
    runners.push_back(std::move(runner).value());
    targets.push_back(std::move(t).value());
  }
  // One fraction for all: in-place devices keep half their free slots.
  MeasureSettings settings;
  settings.segment_payload = payload;
  settings.probe_bytes = probe_bytes;
  settings.max_free_fraction = 1.0;
  settings.all_at_once = true;
  for (const ProbeTarget& t : targets) {
    settings.max_free_fraction = std::min(settings.max_free_fraction, t.max_free_fraction);
  }
  std::vector<DeviceRunner*> rs;
  for (auto& r : runners) rs.push_back(r.get());
  std::vector<DeviceProbe> probes = kvpool::MeasureDevices(rs, settings);
  for (size_t k = 0; k < probes.size(); ++k) {
    json& j = out[entry_of[k]];
    const DeviceProbe& p = probes[k];
    j["group"] = p.group;
    if (p.source == ProbeSource::kDefault) {
      j["error"] = p.note;
      continue;
    }
    j["read_gibps"] = p.solo.read_gibps;  // solo
    j["write_gibps"] = p.solo.write_gibps;
    j["placement_gibps"] = p.placement_gibps;  // joint-scaled
    j["group_joint_gibps"] = p.group_joint_gibps;
    j["live_gibps"] = p.all_at_once_gibps;  // while every device reads at once
  }
  runners.clear();  // close the devices before their scratch directories go
  targets.clear();
  return out;
}

void PrintReport(const json& j) {
  std::printf("machine: %s\n", j["machine"].get<std::string>().c_str());
  std::printf("NUMA: %s\n", j["numa"].dump().c_str());
  std::printf("huge pages: %s\n", j["huge_pages"].dump().c_str());
  std::printf("io_uring: %s\n", j["io_uring"].dump().c_str());
  std::printf("SPDK: %s\n", j["spdk"].dump().c_str());
  for (const auto& p : j["o_direct"]) std::printf("O_DIRECT: %s\n", p.dump().c_str());
  if (!j.contains("devices")) return;
  Table t({"device", "kind", "group", "solo read GiB/s", "write GiB/s", "placement GiB/s",
           "group joint GiB/s", "live GiB/s", "probed", "chosen"});
  for (const auto& d : j["devices"]) {
    std::string group = d.value("group", "-");
    if (d.contains("error")) {
      t.Add({d["name"], d["kind"], group, "-", "-", "-", "-", "-", d.value("probed", "-"),
             "error: " + d["error"].get<std::string>()});
      continue;
    }
    double joint = d["group_joint_gibps"];
    t.Add({d["name"], d["kind"], group, Fixed(d["read_gibps"], 2), Fixed(d["write_gibps"], 2),
           Fixed(d["placement_gibps"], 2), joint > 0 ? Fixed(joint, 2) : "alone",
           d.value("live_gibps", 0.0) > 0 ? Fixed(d["live_gibps"], 2) : "-", d["probed"],
           d["chosen"]});
  }
  std::printf("\ndevices (up to %s MiB written then read cold per device, alone; then each "
              "contention group read at once: placement = solo x joint / sum of solos; then "
              "every device at once, as a pool read: live = bytes / busy time):\n%s",
              j["probe_mib"].dump().c_str(), t.Render().c_str());
  if (j.contains("scratch")) std::printf("%s\n", j["scratch"].get<std::string>().c_str());
}

}  // namespace

int RunProbe(const ProbeOptions& po) {
  // Without --config, the default configuration is rooted in a scratch
  // directory on the state directory's filesystem (its nearest existing
  // parent), so that nothing of full size is created and nothing is left.
  std::unique_ptr<ScratchDir> scratch;
  std::string state_dir = po.state_dir;
  if (po.config.empty()) {
    auto s = ScratchDir::Create(NearestExistingDir(po.state_dir));
    if (!s.ok()) return std::cerr << "kvpool probe: " << s.status().ToString() << "\n", 2;
    scratch = std::move(s).value();
    state_dir = scratch->path();
  }
  auto loaded = LoadConfig(po.config, state_dir);
  if (!loaded.ok()) return std::cerr << "kvpool probe: " << loaded.status().ToString() << "\n", 2;
  const PoolOptions& o = *loaded;
  json j{{"machine", MachineDescription()}, {"date", NowIso8601()}, {"numa", ProbeNuma()},
         {"huge_pages", ProbeHugePages()}, {"io_uring", ProbeUring()},
         {"spdk", ProbeSpdk(o)},
         {"probe_mib", po.probe_mib}};
  if (scratch) {
    j["scratch"] = "no --config: the default configuration's devices were probed at probe size "
                   "in " + scratch->path() + " (on the filesystem of the state directory '" +
                   po.state_dir + "'), removed afterwards";
  }
  std::vector<DeviceOptions> devices;
  for (size_t i = 0; i < o.devices.size(); ++i) {
    DeviceOptions d = o.devices[i];
    if (d.name.empty()) d.name = std::string(DeviceKindName(d.kind)) + std::to_string(i);
    for (DeviceOptions& e : ExpandNumaRegions(d)) devices.push_back(std::move(e));
  }
  ResolveIoThreads(devices);  // as Pool::Open does: the probe measures the pool's workers
  json direct = json::array();
  for (const auto& d : devices) {
    if (d.kind == DeviceKind::kFilePerChunk || d.kind == DeviceKind::kExtent) {
      direct.push_back(ProbeDirect(DirOf(d)));
    }
  }
  j["o_direct"] = direct;
  if (po.measure) j["devices"] = MeasureDevices(devices, o, po.probe_mib);
  PrintReport(j);
  if (!po.json.empty()) std::ofstream(po.json) << j.dump(2) << "\n";
  return 0;
}

}  // namespace kvpool::cli
