#include "probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
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

// Whether files in `dir` can be opened with O_DIRECT.
json ProbeDirect(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::string path = dir + "/.kvpool-odirect-probe";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
  int err = errno;
  if (fd >= 0) {
    ::close(fd);
    ::unlink(path.c_str());
    return {{"path", dir}, {"o_direct", true}};
  }
  return {{"path", dir}, {"o_direct", false}, {"error", strerror(err)}};
}

std::string DirOf(const DeviceOptions& d) {
  if (d.kind == DeviceKind::kFilePerChunk) return d.path;
  return std::filesystem::path(d.path).parent_path().string();
}

json MeasureDevice(const DeviceOptions& d, const PoolOptions& o, uint32_t mib) {
  json j{{"name", d.name}, {"kind", DeviceKindName(d.kind)}};
  uint32_t payload = static_cast<uint32_t>(o.shape.SegmentPayloadBytes());
  ChunkKey pool_id = Namespace::Make(o.shape.Fingerprint(), o.tenant_salt).id;
  auto dev = OpenDevice(d, payload, pool_id);
  if (!dev.ok()) return j["error"] = dev.status().ToString(), j;
  j["chosen"] = (*dev)->Describe();
  auto runner = DeviceRunner::Start(std::move(dev).value(), 0);
  if (!runner.ok()) return j["error"] = runner.status().ToString(), j;
  auto r = MeasureBandwidth(**runner, payload, uint64_t{mib} << 20);
  if (!r.ok()) return j["error"] = r.status().ToString(), j;
  j["read_gibps"] = r->read_gibps;
  j["write_gibps"] = r->write_gibps;
  return j;
}

void PrintReport(const json& j) {
  std::printf("machine: %s\n", j["machine"].get<std::string>().c_str());
  std::printf("NUMA: %s\n", j["numa"].dump().c_str());
  std::printf("huge pages: %s\n", j["huge_pages"].dump().c_str());
  std::printf("io_uring: %s\n", j["io_uring"].dump().c_str());
  std::printf("SPDK: %s\n", j["spdk"].dump().c_str());
  for (const auto& p : j["o_direct"]) std::printf("O_DIRECT: %s\n", p.dump().c_str());
  if (!j.contains("devices")) return;
  Table t({"device", "kind", "read GiB/s", "write GiB/s", "chosen"});
  for (const auto& d : j["devices"]) {
    if (d.contains("error")) {
      t.Add({d["name"], d["kind"], "-", "-", "error: " + d["error"].get<std::string>()});
      continue;
    }
    t.Add({d["name"], d["kind"], Fixed(d["read_gibps"], 2), Fixed(d["write_gibps"], 2),
           d["chosen"]});
  }
  std::printf("\ndevices (%s MiB written then read cold per device):\n%s",
              j["probe_mib"].dump().c_str(), t.Render().c_str());
}

}  // namespace

int RunProbe(const ProbeOptions& po) {
  auto loaded = LoadConfig(po.config, po.state_dir);
  if (!loaded.ok()) return std::cerr << "kvpool probe: " << loaded.status().ToString() << "\n", 2;
  const PoolOptions& o = *loaded;
  json j{{"machine", MachineDescription()}, {"date", NowIso8601()}, {"numa", ProbeNuma()},
         {"huge_pages", ProbeHugePages()}, {"io_uring", ProbeUring()},
         {"spdk", ProbeSpdk(o)},
         {"probe_mib", po.probe_mib}};
  json direct = json::array();
  for (const auto& d : o.devices) {
    if (d.kind == DeviceKind::kFilePerChunk || d.kind == DeviceKind::kExtent) {
      direct.push_back(ProbeDirect(DirOf(d)));
    }
  }
  j["o_direct"] = direct;
  if (po.measure) {
    json devices = json::array();
    for (auto d : o.devices) {
      if (d.name.empty()) d.name = std::string(DeviceKindName(d.kind)) + std::to_string(devices.size());
      devices.push_back(MeasureDevice(d, o, po.probe_mib));
    }
    j["devices"] = devices;
  }
  PrintReport(j);
  if (!po.json.empty()) std::ofstream(po.json) << j.dump(2) << "\n";
  return 0;
}

}  // namespace kvpool::cli
