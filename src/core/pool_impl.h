// The Pool implementation: devices (each behind a DeviceRunner), the GLT,
// placement, eviction, the hot set of DRAM copies (core/copies.cc) and the
// two request kinds (retrieval/retrieve.cc, core/offload.cc).
//
// Device roles (docs/design.md): in copies mode, when the pool has a device
// other than DRAM, DRAM regions are *cache* devices holding copies of hot
// chunks and every other device is a *home* device; every chunk lives whole
// on home devices. Otherwise (partition mode, or DRAM only) every device is
// a home device and there are no copies.
//
// A remote device (tier/remote_tier.h; at most one) is neither: it holds a
// third copy of stored chunks, shared with other pools, and chunks found
// only there ("remote-only": every segment on the remote device) are
// indexed here on a local miss (core/remote.cc).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <semaphore>
#include <unordered_map>
#include <vector>

#include <kvpool/pool.h>

#include "core/device_runner.h"
#include "core/glt.h"
#include "core/hot_set.h"
#include "retrieval/read_plan.h"
#include "tier/remote_tier.h"

namespace kvpool {
namespace internal {
struct RetrieveState;
}

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
  size_t FindChild(std::span<const ChunkKey> prefix,
                   std::span<const ChunkKey> candidates) override;
  Result<RetrieveHandle> Retrieve(std::span<const ChunkKey> keys, const KvBuffer& destination,
                                  LayerReadyFn on_layer_ready) override;
  Result<OffloadHandle> Offload(std::span<const ChunkKey> keys,
                                const ConstKvBuffer& source) override;
  size_t Remove(std::span<const ChunkKey> keys) override;
  void Flush() override;
  PoolStats Stats() const override;
  Status ReprobeBandwidths() override;

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

  bool is_cache(uint16_t device) const { return is_cache_[device]; }
  // The remote device, or kNoDevice.
  uint16_t remote() const { return remote_; }
  RemoteTier* remote_tier() { return remote_tier_; }
  // A read of `key` from the remote device failed with `why`: a segment
  // missing or damaged there unpublishes the chunk (RemoteTier::Invalidate).
  void InvalidateRemote(const ChunkKey& key, const Status& why);
  // True for devices that hold chunks whole: neither cache nor remote.
  bool is_home(uint16_t device) const { return !is_cache_[device] && device != remote_; }
  // True when offloads should also write remote copies now.
  bool remote_writable() const {
    return remote_ != kNoDevice && runners_[remote_]->in_placement();
  }
  HotSet* hot_set() { return hot_.get(); }  // null without cache devices

  // Inserts a writing record for a chunk not yet present and counts it as a
  // child of its parent key. Returns false when the key is present.
  bool ClaimChunk(const ChunkRef& record);
  // A chunk finished writing: make it visible. Returns false (and publishes
  // nothing) when the chunk was removed while it was being written.
  bool PublishChunk(const ChunkRef& record);
  // Removes a chunk from the table (eviction, removal, corruption) with its
  // DRAM copy.
  bool EraseChunk(const ChunkKey& key, const ChunkRecord* expected);

  // --- DRAM copies (core/copies.cc) ---
  // New copies for the first chunks of `keys` (copy j is keys[j]'s), given
  // to the hot set (not yet ready): slots on the cache devices, spread over
  // them by bandwidth layer by layer, after making room in the hot set.
  // Fewer than keys.size() (or none) when the DRAM slots are still held by
  // reads of dropped copies. A key erased from the table meanwhile keeps no
  // copy: its copy is dropped again at once (freed with the caller's refs).
  std::vector<CopyRef> AllocateCopies(std::span<const ChunkKey> keys);
  // A copy's last write finished: it becomes readable, or is dropped when a
  // write failed.
  void FinishCopy(const ChunkKey& key, const CopyRef& copy);
  // A copy failed a read or a write: the chunk keeps its home copy.
  void DropCopy(const ChunkKey& key, const CopySet* copy);
  void ReleaseWriteBudget(uint32_t n) { write_budget_.release(n); }
  void RequestBegin();
  void RequestEnd();

  struct Counters {
    std::atomic<uint64_t> lookups{0}, hit_chunks{0}, retrieved_chunks{0}, miss_chunks_on_error{0},
        offloaded_chunks{0}, evicted_chunks{0}, offload_rejected_chunks{0}, recovered_chunks{0},
        unreachable_reclaimed_chunks{0}, copies_admitted{0}, copies_promoted{0},
        copies_dropped{0}, copy_fallbacks{0}, bytes_read_from_copies{0},
        bytes_read_from_home{0}, retrieve_errors{0}, remote_lookups{0}, remote_hit_chunks{0},
        remote_published_chunks{0}, remote_write_failures{0}, remote_fallbacks{0},
        bytes_read_from_remote{0}, remote_invalidated_chunks{0};
  };
  Counters& counters() { return counters_; }

  // Benchmarks: make the next reads cold on every device (see Device::DropCaches).
  void DropCaches();
  // Benchmarks: persist every device's metadata now, as closing does
  // (Device::Checkpoint), leaving the pool open, so that the background
  // checkpoint an offload leaves due (ExtentOptions::checkpoint_interval)
  // does not land inside the reads timed next. Returns the first error.
  Status CheckpointDevices();
  // Benchmarks and probe: the device descriptions, in device order.
  std::vector<std::string> DescribeDevices() const;

 private:
  explicit PoolImpl(PoolOptions options);
  Status StartRunners(std::vector<std::unique_ptr<Device>> devices);
  void AssignRoles();
  void Recover();
  // A ready record for a chunk found whole; null when a slot is claimed twice.
  ChunkRef AdoptChunk(const ChunkKey& key, const ChunkKey& parent,
                      const std::vector<const RecoveredPart*>& by_layer);
  // Drops recovered chunks that no Lookup can reach (an ancestor is
  // missing) and frees their slots. Returns how many.
  size_t ReclaimUnreachable();
  void Touch(std::span<const ChunkRef> records);
  // Leading ready records of `keys`; past the local ones, the chunks the
  // remote tier has (AdoptRemote).
  std::vector<ChunkRef> FindPrefix(std::span<const ChunkKey> keys);
  // Asks the remote tier for keys[start..] and indexes the leading chunks it
  // has as remote-only records (core/remote.cc), appended to `out`.
  void AdoptRemote(std::span<const ChunkKey> keys, size_t start, std::vector<ChunkRef>* out);
  // `n` slots of the remote device for remote-only records, evicting least
  // recently used leaves when short. Fewer when eviction cannot free them.
  std::vector<uint32_t> AllocateRemoteSlots(uint32_t n);

  // Placement of `segments` new segments over the home devices: slots per
  // device, interleaved. Evicts when short of room. May place fewer than
  // asked (NoSpace).
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
  // Erases `rec` if it is still a leaf, with its copy. Returns false when
  // it is not (or is gone).
  bool EraseLeaf(const ChunkRef& rec);
  // REQUIRES family_mu_: ready, and no record in the table names it parent.
  bool IsLeafLocked(const ChunkRecord& rec) const;
  void CountChildLocked(const ChunkKey& parent, int delta);

  // Read planning (retrieval/retrieve.cc): the bandwidth and queued work
  // each device is planned with; the usable prefix of `records` (a chunk
  // with a layer on no usable device ends it) and, per segment of it, the
  // device to read (`plan`, layer-major).
  std::vector<DeviceLoad> PlanLoads() const;
  size_t PlanRetrieval(const std::vector<ChunkRef>& records, const std::vector<CopyRef>& copies,
                       std::vector<uint16_t>* plan);
  // Gives chunks the hot set admitted a new copy, filled by this read.
  void StartPromotions(internal::RetrieveState& st, const std::vector<HotSet::Access>& access);

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
  std::vector<bool> is_cache_;   // per device: holds DRAM copies
  uint16_t remote_ = kNoDevice;  // the remote device
  RemoteTier* remote_tier_ = nullptr;
  std::unique_ptr<HotSet> hot_;  // null without cache devices
  std::mutex place_mu_;   // serializes placement and eviction decisions
  // Orders claims, publications and erasures, and guards children_. Taken
  // before a GLT shard lock or the hot set's lock, never while holding one.
  mutable std::mutex family_mu_;
  // Per parent key: records in the table (writing or ready) that name it
  // as parent. A chunk with children is never evicted, so a prefix is
  // trimmed from its tail and an offload extending it never loses its head.
  std::unordered_map<ChunkKey, uint32_t, ChunkKeyHash> children_;
  std::atomic<uint64_t> ready_chunks_{0};  // changed under family_mu_
  std::mutex requests_mu_;
  std::condition_variable requests_cv_;
  uint64_t active_requests_ = 0;  // guarded by requests_mu_
  Counters counters_;
};

}  // namespace kvpool
