// `baseline`: the state of the art's offloading path, reproduced: LMCache's
// local CPU backend (a host-memory tier of limited capacity, LRU, whole
// chunks of all layers) checked first, then its local disk backend (one file
// per 256-token chunk holding all layers, named by the chunk hash, written
// and read with buffered I/O through the kernel filesystem). A load walks
// the chunks in order; each chunk is taken from the first tier that has it,
// one tier after the other, and the requesting thread does the I/O itself.
// All layers become usable when the whole load is done (no layer-wise
// delivery). See docs/baselines.md for what is reproduced and simplified.
#pragma once

#include <list>
#include <unordered_map>

#include "kv_system.h"

namespace kvpool::cli {

struct LmcacheOptions {
  ModelShape shape;
  uint64_t cpu_capacity_bytes = 0;  // host-memory tier
  std::string disk_dir;             // disk tier: one file per chunk
  // Keep the chunk files already in disk_dir at Open (a restart: they are
  // found again by name) instead of starting empty. Default: false.
  bool keep_files = false;
  // Drop each chunk file from the kernel page cache after it is written
  // (fdatasync, then POSIX_FADV_DONTNEED) and after it is read, so that the
  // page cache is not an extra, unbudgeted DRAM tier. Default: false.
  bool drop_file_cache = false;
  // Put a chunk read from disk into the CPU tier, as LMCache's storage
  // manager writes a hit of a non-CPU backend back to LocalCPUBackend.
  // Default: false.
  bool promote_disk_hits = false;
};

class LmcacheBaseline final : public KvSystem {
 public:
  // One access of a load, for tests: which tier served which chunk.
  struct Access {
    size_t chunk;
    bool from_cpu;
  };

  static Result<std::unique_ptr<LmcacheBaseline>> Open(const LmcacheOptions& options);

  std::string name() const override { return "baseline"; }
  Result<double> Store(std::span<const ChunkKey> keys, const ConstKvBuffer& source) override;
  Result<LoadResult> Load(std::span<const ChunkKey> keys, const KvBuffer& destination) override;
  void MakeCold() override;
  std::vector<DeviceWork> Work() const override;

  const std::vector<Access>& last_trace() const { return trace_; }
  // Bytes put into each tier since Open (stores, and promotions to the CPU tier).
  uint64_t cpu_bytes_written() const { return cpu_bytes_written_; }
  uint64_t disk_bytes_written() const { return disk_bytes_written_; }
  std::string ChunkPath(const ChunkKey& key) const;

 private:
  explicit LmcacheBaseline(LmcacheOptions options);
  void PutCpu(const ChunkKey& key, std::vector<std::byte> chunk);
  Status WriteChunkFile(const ChunkKey& key, const std::vector<std::byte>& chunk);
  Status ReadChunkFile(const ChunkKey& key, std::vector<std::byte>* chunk);
  std::vector<std::byte> Gather(const ConstKvBuffer& src, size_t chunk) const;
  void Scatter(const std::vector<std::byte>& chunk, const KvBuffer& dst, size_t c) const;

  LmcacheOptions options_;
  size_t chunk_bytes_;
  // LRU host-memory tier: most recent at the front.
  std::list<std::pair<ChunkKey, std::vector<std::byte>>> lru_;
  std::unordered_map<ChunkKey, decltype(lru_)::iterator, ChunkKeyHash> cpu_;
  uint64_t cpu_bytes_ = 0;
  std::vector<Access> trace_;
  DeviceWork cpu_work_{"cpu-tier", "dram"};
  DeviceWork disk_work_{"disk-tier", "file"};
  uint64_t cpu_bytes_written_ = 0;
  uint64_t disk_bytes_written_ = 0;
};

}  // namespace kvpool::cli
