// kvpool/options.h: how a pool is configured.
//
// Every field states its unit and default. PoolOptions::Validate() is the one
// place where options are checked; Pool::Open calls it. Options can be built
// in code or loaded from TOML (see docs/configuration.md for the file format).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/model_shape.h>
#include <kvpool/result.h>

namespace kvpool {

enum class DeviceKind : uint8_t {
  kDram = 0,          // a host-memory region (one NUMA node, or a configured region)
  kFilePerChunk = 1,  // one file per chunk in a directory, through the kernel filesystem
  kExtent = 2,        // raw offsets of one preallocated file or block device, O_DIRECT
  kSpdk = 3,          // an NVMe namespace through SPDK's user-space driver
  kRedis = 4,         // the remote tier: a Redis Cluster shared by many pools (docs/remote.md)
};

// "dram", "file", "extent", "spdk", "redis".
std::string_view DeviceKindName(DeviceKind kind);
Result<DeviceKind> ParseDeviceKind(std::string_view name);

inline constexpr int kEachNumaNode = -2;

struct DeviceOptions {
  // Unique name used in stats and on-device identity. Default: "<kind><index>".
  std::string name;
  DeviceKind kind = DeviceKind::kDram;
  // kFilePerChunk: a directory (created if missing). kExtent: a file (created
  // and preallocated if missing) or a block device. Unused for kDram.
  std::string path;
  // Bytes this device may hold. Required (> 0), a multiple of 4096.
  uint64_t capacity_bytes = 0;
  // Read bandwidth in GiB/s used for placement. Default: 0 = measure with a
  // short probe at open (cached in PoolOptions::state_dir).
  double bandwidth_gibps = 0;
  // Worker threads driving this device, at most 64. Default: 0 = automatic
  // at Pool::Open: a DRAM region's reads are copies and checksums, bound by
  // CPU, so each DRAM region gets an equal share of the CPUs this process may
  // run on (at least 1, at most 8); every other kind gets 1, which keeps
  // queue_depth transfers in flight.
  uint32_t io_threads = 0;
  // Segments in flight per worker thread. Default: 32.
  uint32_t queue_depth = 32;

  // kDram: NUMA node to bind the region to. Default: -1 = no binding.
  // kEachNumaNode: one region of `capacity_bytes` per NUMA node, each bound
  // to its node and named "<name>-node<k>" (one region when there is no NUMA).
  int numa_node = -1;
  // kDram: back the region with 2 MiB huge pages (falls back to THP advice
  // with a warning when none are reserved). Default: false.
  bool huge_pages = false;
  // kFilePerChunk: open files with O_DIRECT; Open fails naming the path when
  // the filesystem refuses it. Default: false (buffered, as today's systems).
  bool direct_io = false;
  // kExtent: I/O engine, "uring" (io_uring, registered buffers and file) or
  // "psync" (pread/pwrite workers, still O_DIRECT). Default: "uring".
  std::string engine = "uring";
  // kExtent: use an SQPOLL kernel thread. Costs a core. Default: false.
  bool sqpoll = false;
  // kExtent, kSpdk: move payloads straight between the device and caller
  // memory aligned as the device asks (DeviceStats::direct_alignment: what
  // the kernel reports for O_DIRECT, 4096 on SPDK) with vectored O_DIRECT,
  // the header through a side buffer;
  // false copies every payload through the queue's bounce buffers. Caller
  // memory in 4 KiB pages makes one segment many DMA segments: on a queue
  // whose max_segments is below a segment's page count (virtio-blk: 254)
  // each transfer is split and bounce buffers can be faster. Huge-page
  // backed memory does not have that cost. kSpdk: the same, as NVMe scatter
  // lists; over PCIe and RDMA only for memory registered with SPDK, over
  // NVMe/TCP for any aligned memory (docs/spdk.md). Default: true.
  bool zero_copy = true;
  // kExtent: erase a superblock that belongs to another pool or geometry
  // instead of failing. Default: false (data is never touched silently).
  bool reformat = false;
  // kSpdk: SPDK transport ID, e.g. "trtype:TCP traddr:127.0.0.1 trsvcid:4420 subnqn:...".
  std::string transport;

  // kRedis (docs/remote.md). `capacity_bytes` bounds the remote-only chunks
  // (found in the cluster, held by no local device) this pool indexes; the
  // cluster's own memory is bounded by its maxmemory.
  // Seed nodes "host:port"; any one that answers gives the slot map. Required.
  std::vector<std::string> nodes;
  // ACL user and password (AUTH); empty: no AUTH. Default: "".
  std::string user;
  std::string password;
  // Prefix of every key; pools share chunks when prefix, model and tenant
  // salt are equal. Default: "kvpool:".
  std::string key_prefix = "kvpool:";
  // Bound on one batch of cluster commands, connect included; an operation
  // not answered in time is a miss. Commands whose node refused the
  // connection early in a batch are retried once on a fresh slot map, so a
  // batch takes at most 1.5x this. Milliseconds. Default: 500.
  uint32_t timeout_ms = 500;
  // Expiry of stored keys in seconds. Default: 0 = none (the cluster's
  // maxmemory policy evicts).
  uint32_t ttl_s = 0;

  // Emulation for tests and benchmarks: limit this device's bandwidth to this
  // many GiB/s (reads and writes). Default: 0 = unthrottled.
  double throttle_gibps = 0;
};

// How a pool with persistent devices uses its DRAM regions (docs/design.md).
enum class PlacementMode : uint8_t {
  // Every chunk is stored whole on the persistent devices (spread over them by
  // bandwidth); DRAM regions hold copies of the hot set. A pool without
  // persistent devices places chunks over its DRAM regions as `kPartition`.
  kCopies = 0,
  // Every chunk is split over all devices by bandwidth, DRAM included (the
  // published design; kept for comparison). DRAM-held segments do not
  // survive a restart, so neither do their chunks.
  kPartition = 1,
};

// "copies", "partition".
std::string_view PlacementModeName(PlacementMode mode);
Result<PlacementMode> ParsePlacementMode(std::string_view name);

struct PoolOptions {
  ModelShape shape;
  std::vector<DeviceOptions> devices;
  // Directory for the pool's state (bandwidth probe cache, default extent
  // files). Default: "" = keep no state (probes are not cached).
  std::string state_dir;
  // Tenant isolation: mixed into the namespace by callers through Namespace::Make.
  // Default: "".
  std::string tenant_salt;
  // Most segment writes queued or in flight at once across the pool; Offload
  // blocks the caller while the queue is full (backpressure). Default: 4096.
  uint32_t max_pending_writes = 4096;
  // Eviction watermarks (partition mode and DRAM-only pools; in copies mode
  // home devices are evicted only when an offload finds them full, and DRAM
  // copies follow the hot set) as fractions of each device's capacity: above `high`
  // least-recently-used prefix tails are evicted until usage is below `low`.
  // Defaults: 0.95 and 0.85.
  double high_watermark = 0.95;
  double low_watermark = 0.85;
  // Size of the bandwidth probe per device in MiB. Default: 64.
  uint32_t probe_mib = 64;

  // Where chunks live. Default: kCopies.
  PlacementMode placement = PlacementMode::kCopies;
  // Hot set (kCopies): the share of DRAM copy capacity kept for chunks seen
  // once (probation); chunks read again move to the protected rest, so a
  // one-off scan only ever displaces probation. In (0, 1). Default: 0.25.
  double hot_probation_fraction = 0.25;
  // Reads are served before writes, but no write waits longer than this many
  // milliseconds behind reads. Default: 20.
  uint32_t max_write_delay_ms = 20;

  // OK, or InvalidArgument naming the field (e.g. "devices[1].capacity_bytes").
  Status Validate() const;
};

// Parses TOML text; `origin` names the source in errors (a path, "<default>").
// Unknown keys are errors, so a typo never silently becomes a default.
Result<PoolOptions> ParsePoolOptions(std::string_view toml_text, std::string_view origin);
// A byte size: digits (a fraction allowed) and an optional unit B, KiB, MiB,
// GiB or TiB ("512MiB", "1.5 GiB"). InvalidArgument quoting the text.
Result<uint64_t> ParseByteSize(std::string_view text);
// Reads and parses a TOML file; errors name the path.
Result<PoolOptions> LoadPoolOptions(const std::string& path);

}  // namespace kvpool
