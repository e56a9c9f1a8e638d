#include "bench_reopen.h"

#include <sys/statvfs.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iostream>

#include <kvpool/kvpool.h>

#include "core/pool_impl.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"

namespace kvpool::cli {
namespace {

constexpr uint32_t kDefaultSlots = 1u << 20;
constexpr uint32_t kMinSlots = 1024;
constexpr uint32_t kBatchChunks = 4096;  // chunks per Offload call
constexpr size_t kInFlightBatches = 8;

// One layer, 2 x 16 tokens x 1 head x 64 x 2 B = 4 KiB per segment: one
// chunk is one slot.
ModelShape BenchShape() {
  ModelShape s;
  s.name = "bench-reopen-4k";
  s.layers = 1;
  s.kv_heads = 1;
  s.head_dim = 64;
  s.dtype_bytes = 2;
  s.chunk_tokens = 16;
  return s;
}

// Bytes of file per slot (header block + payload) and a margin for the
// superblock and checkpoints (128 B per slot, plus alignment).
uint64_t ExtentBytes(uint64_t slots) { return slots * (8192 + 128) + (4ull << 20); }

uint64_t FreeBytes(const std::string& dir) {
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return 0;
  return uint64_t{st.f_bavail} * st.f_frsize;
}

uint64_t Mix(uint64_t x) {  // splitmix64: distinct, non-zero-looking keys
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

PoolOptions BenchOptions(const std::string& path, uint32_t slots, const std::string& engine) {
  PoolOptions o;
  o.shape = BenchShape();
  o.high_watermark = 1.0;  // keep every chunk: the device ends full
  o.low_watermark = 0.99;
  DeviceOptions d;
  d.name = "ssd0";
  d.kind = DeviceKind::kExtent;
  d.path = path;
  d.capacity_bytes = uint64_t{slots} * o.shape.SegmentBytes();
  d.bandwidth_gibps = 1.0;  // configured: no probe, the reopen times recovery only
  d.engine = engine;
  d.io_threads = 2;
  d.queue_depth = 64;
  o.devices.push_back(d);
  return o;
}

// Offloads `chunks` chunks, each batch its own prefix, several batches in
// flight. Returns the number stored.
Result<uint64_t> Fill(Pool& pool, uint64_t chunks) {
  const size_t seg = pool.options().shape.SegmentPayloadBytes();
  AlignedBuffer data(seg * kBatchChunks);
  for (size_t i = 0; i < data.size(); i += 8) {
    uint64_t v = Mix(i);
    std::memcpy(data.data() + i, &v, 8);
  }
  ConstKvBuffer source{{data.data()}, seg, 0};
  std::deque<std::pair<std::vector<ChunkKey>, OffloadHandle>> in_flight;
  uint64_t stored = 0;
  auto wait_oldest = [&]() -> Status {
    auto n = in_flight.front().second.Wait();
    in_flight.pop_front();
    if (!n.ok()) return n.status();
    stored += *n;
    return Status::OK();
  };
  for (uint64_t first = 0; first < chunks; first += kBatchChunks) {
    const uint64_t n = std::min<uint64_t>(kBatchChunks, chunks - first);
    std::vector<ChunkKey> keys(n);
    for (uint64_t i = 0; i < n; ++i) keys[i] = {Mix(2 * (first + i) + 1), Mix(2 * (first + i) + 2)};
    auto h = pool.Offload(keys, source);
    if (!h.ok()) return h.status();
    in_flight.emplace_back(std::move(keys), std::move(h).value());
    if (in_flight.size() >= kInFlightBatches) KVP_RETURN_IF_ERROR(wait_oldest());
  }
  while (!in_flight.empty()) KVP_RETURN_IF_ERROR(wait_oldest());
  return stored;
}

}  // namespace

void AddReopenBenchOptions(CLI::App& c, ReopenBenchOptions& o) {
  c.add_option("--dir", o.dir, "directory for the extent file (created if missing)");
  c.add_option("--slots", o.slots, "slots of the extent device (0 = 1M, fewer if the disk is short)")
      ->check(CLI::Range(0u, 1u << 30));
  c.add_option("--engine", o.engine, "extent engine: uring or psync");
  c.add_flag("--keep", o.keep, "keep the extent file");
}

int RunBenchReopen(const ReopenBenchOptions& bo) {
  std::error_code ec;
  std::filesystem::create_directories(bo.dir, ec);
  if (ec) return std::cerr << "kvpool bench reopen: --dir '" << bo.dir << "': " << ec.message() << "\n", 2;
  const std::string path = bo.dir + "/bench-reopen.extent";
  std::filesystem::remove(path, ec);
  uint32_t slots = bo.slots;
  if (slots == 0) {
    const uint64_t free_bytes = FreeBytes(bo.dir);
    slots = kDefaultSlots;
    while (slots > kMinSlots && 2 * ExtentBytes(slots) > free_bytes) slots /= 2;
  }
  if (slots < kMinSlots) slots = kMinSlots;
  if (ExtentBytes(slots) > FreeBytes(bo.dir)) {
    std::cerr << "kvpool bench reopen: " << slots << " slots need " << (ExtentBytes(slots) >> 20)
              << " MiB in '" << bo.dir << "'; only " << (FreeBytes(bo.dir) >> 20) << " MiB free\n";
    return 2;
  }
  PoolOptions options = BenchOptions(path, slots, bo.engine);
  auto pool = Pool::Open(options);
  if (!pool.ok() && pool.status().code() == StatusCode::kUnsupported && bo.engine == "uring") {
    std::cerr << "kvpool bench reopen: io_uring unavailable (" << pool.status().ToString()
              << "); using psync\n";
    options = BenchOptions(path, slots, "psync");
    pool = Pool::Open(options);
  }
  if (!pool.ok()) return std::cerr << "kvpool bench reopen: " << pool.status().ToString() << "\n", 1;

  Clock::time_point t = Clock::now();
  auto stored = Fill(**pool, slots);
  const double fill_s = SecondsSince(t);
  if (!stored.ok()) return std::cerr << "kvpool bench reopen: fill: " << stored.status().ToString() << "\n", 1;
  t = Clock::now();
  pool->reset();  // close: flushes and checkpoints
  const double close_s = SecondsSince(t);

  // Reopen in its two steps: the device's own recovery (reading its slot
  // headers), then the pool's (GLT rebuild, slots marked used).
  t = Clock::now();
  const ChunkKey pool_id = Namespace::Make(options.shape.Fingerprint(), options.tenant_salt).id;
  auto device = OpenDevice(options.devices[0],
                           static_cast<uint32_t>(options.shape.SegmentPayloadBytes()), pool_id);
  const double device_s = SecondsSince(t);
  if (!device.ok()) {
    return std::cerr << "kvpool bench reopen: reopen: " << device.status().ToString() << "\n", 1;
  }
  std::vector<std::unique_ptr<Device>> devices;
  devices.push_back(std::move(device).value());
  Clock::time_point pool_start = Clock::now();
  auto reopened = PoolImpl::Create(options, std::move(devices));
  const double pool_s = SecondsSince(pool_start);
  const double reopen_s = SecondsSince(t);
  if (!reopened.ok()) {
    return std::cerr << "kvpool bench reopen: reopen: " << reopened.status().ToString() << "\n", 1;
  }
  const uint64_t recovered = (*reopened)->Stats().recovered_chunks;
  reopened->reset();
  if (!bo.keep) std::filesystem::remove(path, ec);
  std::printf("bench reopen: slots %u, chunks stored %llu, chunks recovered %llu, reopen %.3f s "
              "(device scan %.3f s, pool recovery %.3f s; fill %.1f s, close %.2f s, engine %s, %s)\n",
              slots, static_cast<unsigned long long>(*stored),
              static_cast<unsigned long long>(recovered), reopen_s, device_s, pool_s, fill_s, close_s,
              options.devices[0].engine.c_str(), bo.keep ? path.c_str() : "file removed");
  return recovered == *stored ? 0 : 1;
}

}  // namespace kvpool::cli
