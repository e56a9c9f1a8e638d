// kvpool/pool.h: one logical KV-cache pool over every DRAM region and SSD.
//
// A Pool owns its devices and one global lookup table (GLT) mapping each
// (chunk, layer) segment to (device, slot, checksum). Offload spreads a
// batch's segments over devices in proportion to their read bandwidth;
// Retrieve reads a prefix from all devices at once and reports each layer as
// soon as it has landed.
//
// Thread-safety: every method of Pool may be called from any thread
// concurrently. Callbacks run on kvpool's internal threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <kvpool/keys.h>
#include <kvpool/options.h>
#include <kvpool/result.h>

namespace kvpool {

// Where the segments of a run of chunks live in caller memory. Segment
// (chunk c, layer l) occupies ModelShape::SegmentPayloadBytes() bytes at
//   layer_base[l] + (c - first_chunk) * chunk_stride
// For O_DIRECT devices the fast path needs segments aligned as the device
// asks (DeviceStats::direct_alignment; 4096-byte alignment always suffices);
// other buffers are served through a bounce copy.
template <typename Byte>
struct KvBufferT {
  std::vector<Byte*> layer_base;  // one per layer
  size_t chunk_stride = 0;        // bytes between consecutive chunks of a layer
  size_t first_chunk = 0;         // chunk index held at layer_base[l]

  Byte* Segment(size_t chunk, uint32_t layer) const {
    return layer_base[layer] + (chunk - first_chunk) * chunk_stride;
  }
};
using KvBuffer = KvBufferT<std::byte>;
using ConstKvBuffer = KvBufferT<const std::byte>;

// Called once per layer, in increasing layer order, when every segment of that
// layer has landed (or failed). `valid_chunks` is the number of leading chunks
// whose segments were verified in every layer announced so far; it never
// grows from one call to the next. Only the final count returned by
// RetrieveHandle::Wait() is authoritative: a failure in a later layer can
// shrink it. Runs on an internal thread; must not block or call back into
// the pool's Retrieve/Offload.
using LayerReadyFn = std::function<void(uint32_t layer, size_t valid_chunks)>;

namespace internal {
class RetrieveCompletion;
class OffloadCompletion;
}  // namespace internal

class RetrieveHandle {
 public:
  RetrieveHandle() = default;
  explicit RetrieveHandle(std::shared_ptr<internal::RetrieveCompletion> state);
  // Blocks until every read finished. Returns the number of leading chunks
  // delivered byte-exact to the destination; chunks past it are a miss and
  // their destination bytes are unspecified.
  Result<size_t> Wait();
  bool Done() const;
  // Seconds this request spent between submission and its last completion.
  double ElapsedSeconds() const;
  // After Wait(): the first device error (IOError, Corruption) that cut the
  // result short, naming the device and slot; OK when none did. A failed
  // read of a DRAM copy that was served again from the persistent copy does
  // not cut the result short and is only counted (PoolStats::copy_fallbacks).
  Status error() const;

 private:
  std::shared_ptr<internal::RetrieveCompletion> state_;
};

class OffloadHandle {
 public:
  OffloadHandle() = default;
  explicit OffloadHandle(std::shared_ptr<internal::OffloadCompletion> state);
  // Blocks until every segment of the request is written or failed. Returns
  // the number of chunks newly stored (chunks already present are skipped).
  // Errors: NoSpace when nothing fit, IOError when a device failed.
  Result<size_t> Wait();
  bool Done() const;

 private:
  std::shared_ptr<internal::OffloadCompletion> state_;
};

struct DeviceStats {
  std::string name;
  std::string kind;
  // "home": holds every chunk's persistent copy (or, in a pool without
  // persistent devices and in partition mode, the only copy). "cache": a
  // DRAM region holding copies of the hot set.
  std::string role;
  double bandwidth_gibps = 0;    // weight used for placement (joint probe, or configured)
  bool bandwidth_probed = false;  // measured at open (true) or configured
  double solo_gibps = 0;         // probed alone; 0 when configured
  // Observed read throughput (EWMA over read batches, GiB/s of busy time);
  // 0 until enough reads were seen. Read plans use it once known.
  double live_gibps = 0;
  std::string contention_group;  // devices probed together share a bottleneck
  bool in_placement = true;       // false once the device was taken out for errors
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t segments = 0;
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  double busy_seconds = 0;  // wall time with at least one operation in flight
  uint64_t errors = 0;      // I/O errors and checksum mismatches
  uint64_t evicted_segments = 0;
  uint64_t copy_segments = 0;     // cache role: DRAM copies held
  uint64_t queued_read_bytes = 0; // reads queued or in flight now
  // Block devices (extent, SPDK): transfers in flight, integrated over time
  // (transfer-seconds), and its mean over busy_seconds: the queue depth the
  // device actually reached, as fio reports it. 0 for other devices.
  double in_flight_seconds = 0;
  double mean_in_flight = 0;
  // Block devices: operations whose payload went through a bounce buffer
  // (caller memory not aligned to direct_alignment, or an engine without
  // direct transfers) instead of moving straight to or from the caller's
  // memory.
  uint64_t bounced_segments = 0;
  // Block devices: the alignment of caller memory that moves without a
  // bounce buffer, as the kernel reports it for O_DIRECT (4 on NVMe, 512 on
  // virtio-blk; 4096 where it does not say). 0: the device copies every
  // payload (DRAM, files, zero_copy off).
  uint32_t direct_alignment = 0;
};

struct PoolStats {
  std::vector<DeviceStats> devices;
  uint64_t chunks = 0;             // chunks visible to Lookup
  uint64_t segments = 0;
  uint64_t glt_bytes = 0;          // memory of the lookup table
  double glt_bytes_per_segment = 0;
  uint64_t lookups = 0;
  uint64_t hit_chunks = 0;
  uint64_t retrieved_chunks = 0;
  uint64_t miss_chunks_on_error = 0;  // chunks dropped from a retrieval by errors
  uint64_t offloaded_chunks = 0;
  uint64_t evicted_chunks = 0;
  uint64_t offload_rejected_chunks = 0;  // no space even after eviction
  uint64_t recovered_chunks = 0;         // rebuilt from devices at open
  uint64_t unreachable_reclaimed_chunks = 0;  // at open: no path from a first chunk
  // Hot set (copies mode): chunks with a DRAM copy, by segment.
  uint64_t copy_chunks = 0;
  uint64_t hot_probation_chunks = 0;
  uint64_t hot_protected_chunks = 0;
  uint64_t copies_admitted = 0;   // DRAM copies made on offload
  uint64_t copies_promoted = 0;   // DRAM copies made from a read
  uint64_t copies_dropped = 0;    // DRAM copies given up (the chunk stays)
  uint64_t copy_fallbacks = 0;    // segment reads of a copy that failed and were re-read from home
  uint64_t bytes_read_from_copies = 0;  // retrieval bytes served by DRAM copies
  uint64_t bytes_read_from_home = 0;    // retrieval bytes served by home devices
  uint64_t retrieve_errors = 0;   // retrievals cut short by a device error
  // Remote tier (docs/remote.md).
  uint64_t remote_lookups = 0;           // local misses asked of the remote tier
  uint64_t remote_hit_chunks = 0;        // chunks found there and indexed here
  uint64_t remote_published_chunks = 0;  // chunks this pool stored there whole
  uint64_t remote_write_failures = 0;    // chunks whose remote copy failed (kept locally)
  uint64_t remote_fallbacks = 0;         // reads of a remote copy that failed and were re-read locally
  uint64_t bytes_read_from_remote = 0;   // retrieval bytes served by the remote tier
  uint64_t remote_invalidated_chunks = 0;  // unpublished there: a segment was missing or damaged
};

class Pool {
 public:
  // Opens every device, measures bandwidths that are not configured, and
  // recovers persistent devices. Errors: InvalidArgument (options, naming the
  // field), IOError (a device could not be opened; the message names it),
  // Unsupported (a device kind not built in).
  static Result<std::unique_ptr<Pool>> Open(const PoolOptions& options);

  virtual ~Pool() = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  virtual const PoolOptions& options() const = 0;

  // Number of leading chunks of `keys` (a chained prefix) fully present.
  virtual size_t Lookup(std::span<const ChunkKey> keys) = 0;

  // The index of the first of `candidates` present as a child of
  // prefix.back() (of no chunk when `prefix` is empty), or
  // candidates.size(): one query for a leaf whose key the caller can only
  // guess among several, such as a partial chunk (keys.h). The pool's own
  // devices are searched for every candidate; a remote tier, when there is
  // one, is asked for candidates[0] only, so that a search costs at most one
  // round trip to it. Counts as one lookup. `prefix` is what the caller's
  // Lookup found; it is not checked again.
  virtual size_t FindChild(std::span<const ChunkKey> prefix,
                           std::span<const ChunkKey> candidates) = 0;

  // Reads the leading present chunks of `keys` into `destination`, skipping
  // chunks [0, destination.first_chunk) that the caller already holds (for
  // example from another tier). Wait() returns the number n of leading chunks
  // of `keys` now in the caller's hands: destination.first_chunk plus the
  // chunks read byte-exact, or the number present when that is smaller.
  // REQUIRES: destination covers chunks [first_chunk, keys.size()) for every
  // layer and stays valid until Wait() returns. `on_layer_ready` may be
  // empty; its valid_chunks counts from chunk 0 like Wait().
  virtual Result<RetrieveHandle> Retrieve(std::span<const ChunkKey> keys,
                                          const KvBuffer& destination,
                                          LayerReadyFn on_layer_ready) = 0;

  // Stores chunks [source.first_chunk, keys.size()) of the chained prefix
  // `keys` in the background. Chunks already present are skipped. A chunk
  // becomes visible to Lookup only once all its segments are written. Blocks
  // while the write queue is full (PoolOptions::max_pending_writes).
  // REQUIRES: `source` stays valid and unmodified until Wait() returns.
  virtual Result<OffloadHandle> Offload(std::span<const ChunkKey> keys,
                                        const ConstKvBuffer& source) = 0;

  // Removes these chunks (and frees their space once no read uses them).
  // Returns how many were present.
  virtual size_t Remove(std::span<const ChunkKey> keys) = 0;

  // Blocks until every offload submitted so far finished.
  virtual void Flush() = 0;

  virtual PoolStats Stats() const = 0;

  // Measures again the read bandwidth of every device whose bandwidth is not
  // configured (the probe cache in state_dir is bypassed, then updated) and
  // places and plans with the new values. REQUIRES: no Retrieve, Offload or
  // Stats call in flight: the probe's reads would be timed together with
  // theirs, and it rewrites what Stats reads.
  // Unsupported for a pool in kvpoold (the daemon does it on SIGHUP).
  virtual Status ReprobeBandwidths() = 0;

 protected:
  Pool() = default;
};

}  // namespace kvpool
