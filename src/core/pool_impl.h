// The Pool implementation: devices (each behind a DeviceRunner), the GLT,
// placement, eviction and the two request kinds (retrieval/retrieve.cc,
// core/offload.cc).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <semaphore>
#include <vector>

#include <kvpool/pool.h>

#include "core/device_runner.h"
#include "core/glt.h"

namespace kvpool {

// A segment a persistent device found at open, with the device it is on.
struct RecoveredPart {
  uint16_t device;
  RecoveredSegment segment;
};

class PoolImpl final : public Pool, public SlotReleaser {
 public:
  // Takes ownership of already opened devices (tests inject their own).
  // `options.devices` must describe `devices` one to one.
  static Result<std::unique_ptr<PoolImpl>> Create(PoolOptions options,
                                                  std::vector<std::unique_ptr<Device>> devices);
  ~PoolImpl() override;

  const PoolOptions& options() const override { return options_; }
  size_t Lookup(std::span<const ChunkKey> keys) override;
  Result<RetrieveHandle> Retrieve(std::span<const ChunkKey> keys, const KvBuffer& destination,
                                  LayerReadyFn on_layer_ready) override;
  Result<OffloadHandle> Offload(std::span<const ChunkKey> keys,
                                const ConstKvBuffer& source) override;
  size_t Remove(std::span<const ChunkKey> keys) override;
  void Flush() override;
  PoolStats Stats() const override;

  // SlotReleaser: called when the last reference to a record goes away.
  void ReleaseSegments(const SegmentLoc* segments, uint32_t count) override;

  // --- for requests and eviction (internal) ---
  Glt& glt() { return glt_; }
  DeviceRunner& runner(uint16_t id) { return *runners_[id]; }
  size_t device_count() const { return runners_.size(); }
  uint32_t layers() const { return options_.shape.layers; }
  uint32_t segment_payload() const {
    return static_cast<uint32_t>(options_.shape.SegmentPayloadBytes());
  }
  uint64_t NextSequence() { return sequence_.fetch_add(1, std::memory_order_relaxed); }

  // A chunk finished writing: make it visible and count it under its parent.
  // Returns false (and publishes nothing) when the chunk was removed while
  // it was being written.
  bool PublishChunk(const ChunkRef& record);
  // Removes a chunk from the table (eviction, removal, corruption).
  bool EraseChunk(const ChunkKey& key, const ChunkRecord* expected);
  void ReleaseWriteBudget(uint32_t n) { write_budget_.release(n); }
  void RequestBegin();
  void RequestEnd();

  struct Counters {
    std::atomic<uint64_t> lookups{0}, hit_chunks{0}, retrieved_chunks{0}, miss_chunks_on_error{0},
        offloaded_chunks{0}, evicted_chunks{0}, offload_rejected_chunks{0}, recovered_chunks{0};
  };
  Counters& counters() { return counters_; }

  // Benchmarks: make the next reads cold on every device (see Device::DropCaches).
  void DropCaches();
  // Benchmarks and probe: the device descriptions, in device order.
  std::vector<std::string> DescribeDevices() const;

 private:
  explicit PoolImpl(PoolOptions options);
  Status StartRunners(std::vector<std::unique_ptr<Device>> devices);
  void Recover();
  // A ready record for a chunk found whole; null when a slot is claimed twice.
  ChunkRef AdoptChunk(const ChunkKey& key, const ChunkKey& parent,
                      const std::vector<const RecoveredPart*>& by_layer);
  void Touch(std::span<const ChunkRef> records);
  // Leading ready records of `keys`.
  std::vector<ChunkRef> FindPrefix(std::span<const ChunkKey> keys);

  // Placement of `segments` new segments: slots per device, interleaved.
  // Evicts when short of room. May place fewer than asked (NoSpace).
  struct Placement {
    std::vector<uint16_t> device;  // per segment, layer-major
    std::vector<std::vector<uint32_t>> slots;  // per device, consumed in order
  };
  Placement Place(uint64_t segments);
  void EvictForRoom(uint64_t segments);
  void EvictAboveWatermarks();
  // Evicts least-recently-used prefix tails; `want[d]` segments on device d
  // (or anywhere when `anywhere` > 0). Returns chunks evicted.
  uint64_t EvictLru(std::vector<uint64_t> want, uint64_t anywhere);
  void AcquireWriteBudget();

  friend class OffloadBuilder;

  PoolOptions options_;
  std::vector<std::unique_ptr<DeviceRunner>> runners_;
  Glt glt_;
  // Set at close: records dropped by the final GLT clear keep their slots
  // on persistent devices (they are the cache that survives the restart).
  std::atomic<bool> closing_{false};
  std::atomic<uint64_t> clock_{1};
  std::atomic<uint64_t> sequence_{1};
  std::counting_semaphore<> write_budget_;
  std::mutex place_mu_;   // serializes placement and eviction decisions
  // Orders PublishChunk against EraseChunk so that a chunk counts in its
  // parent's resident_children exactly while it is ready in the table.
  // Taken before a GLT shard lock, never while holding one.
  std::mutex family_mu_;
  std::mutex requests_mu_;
  std::condition_variable requests_cv_;
  uint64_t active_requests_ = 0;  // guarded by requests_mu_
  Counters counters_;
};

}  // namespace kvpool
