// The shared state of one Retrieve or Offload request. A state keeps itself
// alive (keep_alive) while any of its operations is queued or in flight, so
// a caller may drop its handle at any time. Before a request completes it
// drops every chunk reference, and RequestEnd() is the last thing it does
// with the pool, so a pool can be destroyed once its requests have ended.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <kvpool/pool.h>

#include "core/completion.h"
#include "core/glt.h"
#include "core/hot_set.h"
#include "tier/device.h"
#include "util/clock.h"

namespace kvpool {
class PoolImpl;
}

namespace kvpool::internal {

// The one check of a caller's buffer (`name` is "source" or "destination"):
// one base per layer, first_chunk within the keys, and chunks that do not
// overlap. InvalidArgument naming the field.
template <typename Byte>
Status CheckKvBuffer(const KvBufferT<Byte>& b, const char* name, size_t keys, uint32_t layers,
                     size_t payload) {
  const std::string field = std::string(name) + ".";
  if (b.layer_base.size() != layers) {
    return Status::InvalidArgument(field + "layer_base has " + std::to_string(b.layer_base.size()) +
                                   " layers, the model has " + std::to_string(layers));
  }
  if (b.first_chunk > keys) {
    return Status::InvalidArgument(field + "first_chunk " + std::to_string(b.first_chunk) +
                                   " is past the last key (" + std::to_string(keys) + ")");
  }
  if (keys - b.first_chunk > 1 && b.chunk_stride < payload) {
    return Status::InvalidArgument(field + "chunk_stride " + std::to_string(b.chunk_stride) +
                                   " is smaller than a segment (" + std::to_string(payload) +
                                   " bytes): segments would overlap");
  }
  return Status::OK();
}

inline constexpr uint8_t kFromCopy = 1;
inline constexpr uint8_t kFromRemote = 2;

struct RetrieveState final : public IoOwner, public RetrieveCompletion {
  // Reads chunks [first, first + chunks) of the records' prefix.
  RetrieveState(PoolImpl* pool, size_t first, size_t chunks, uint32_t layers,
                LayerReadyFn on_layer);

  void OnIoComplete(SegmentIo& io) override;
  // A read of a DRAM or remote copy failed: forget that copy and read the
  // home copy.
  void FallBackToHome(SegmentIo& io, size_t chunk, uint32_t layer);
  // A verified read of a chunk being promoted: write it into the new copy.
  void IssuePromotion(const SegmentIo& read, size_t chunk, uint32_t layer);
  // A promotion write that will not happen (its read failed) or did.
  void PromotionDone(size_t chunk, bool ok);
  // Announces finished layers in order.
  void AnnounceLayers();
  // Run by the thread that finished the request's last op, after every other
  // op's thread is done with the state: publishes the result and releases
  // keep_alive. (Completing from AnnounceLayers let a thread still inside it
  // touch a state that the caller had already freed.)
  void Complete();
  // For a request with no chunk to read: announces every layer with `valid`.
  void CompleteEmpty(size_t valid);

  Result<size_t> Wait() override;
  bool Done() const override;
  double ElapsedSeconds() const override;
  Status error() const override;

  PoolImpl* pool;
  const size_t first;   // chunks the caller already holds
  const size_t chunks;  // chunks read by this request
  const uint32_t layers;
  LayerReadyFn on_layer;
  std::vector<ChunkRef> records;  // the chunks read, first .. first + chunks - 1
  std::vector<SegmentIo> ops;     // layer-major: index = layer * chunks + (chunk - first)
  // Per chunk: the ready DRAM copy the plan reads from (or null), and the
  // new copy this read fills (promotion; or null).
  std::vector<CopyRef> read_copies;
  std::vector<CopyRef> promos;
  // Per read op: kFromCopy while it reads read_copies[chunk], kFromRemote
  // while it reads the remote copy of a chunk held here, else 0.
  std::vector<uint8_t> from_copy;
  std::vector<SegmentIo> promo_ops;  // per read op index; used for promoted chunks
  std::unique_ptr<std::atomic<uint64_t>[]> layer_remaining;
  std::atomic<size_t> first_bad;  // relative to `first`
  // Reads plus promotion writes; the op that takes it to 0 calls Complete().
  std::atomic<size_t> ops_remaining;
  std::shared_ptr<RetrieveState> keep_alive;
  Clock::time_point start = Clock::now();

  std::mutex announce_mu;    // serializes layer callbacks
  uint32_t next_layer = 0;  // guarded by announce_mu
  mutable std::mutex mu;    // never held while a callback runs
  std::condition_variable cv;
  bool done = false;        // guarded by mu
  size_t valid = 0;         // guarded by mu
  Status first_error;       // guarded by mu: first I/O or checksum error
  double elapsed = 0;       // guarded by mu
};

struct OffloadState final : public IoOwner, public OffloadCompletion {
  struct Chunk {
    ChunkRef record;
    CopyRef copy;  // its new DRAM copy, or null
    std::atomic<uint32_t> remaining{0};  // home writes, plus copy writes
    std::atomic<bool> failed{false};     // a home write failed
    // Remote copy (chunks [0, remote_count)): the record it publishes, the
    // segment writes left, whether one failed, and the chunk record value.
    ChunkRef remote_record;
    std::atomic<uint32_t> remote_left{0};
    std::atomic<bool> remote_failed{false};
    std::string record_value;
  };

  OffloadState(PoolImpl* pool, size_t chunks);
  void OnIoComplete(SegmentIo& io) override;
  void FinishChunk(Chunk& chunk);
  // A remote segment write or a chunk record write completed.
  void OnRemoteWrite(SegmentIo& io, size_t chunk, bool record);
  // Writes chunk `j`'s record once its segments are all in.
  void PublishRemote(size_t j);
  // One part of the request ended: a chunk's local writes, or its remote
  // copy. The last one completes the request.
  void PartDone();
  // Marks the request done and ends the pool request.
  void Complete();

  Result<size_t> Wait() override;
  bool Done() const override;

  PoolImpl* pool;
  uint32_t layers = 0;
  std::unique_ptr<Chunk[]> chunks;
  size_t chunk_count = 0;
  size_t copy_count = 0;  // chunks [0, copy_count) also get a DRAM copy
  size_t remote_count = 0;  // chunks [0, remote_count) also get a remote copy
  // Home writes, layer-major: index = layer * chunk_count + chunk; then the
  // copy writes: copy_base() + layer * copy_count + chunk; then the remote
  // segment writes: remote_base() + layer * remote_count + chunk.
  std::vector<SegmentIo> ops;
  // Chunk record writes, one per remote chunk: index = record_base() + chunk.
  std::vector<SegmentIo> record_ops;
  size_t copy_base() const { return chunk_count * layers; }
  size_t remote_base() const { return copy_base() + copy_count * layers; }
  size_t record_base() const { return remote_base() + remote_count * layers; }
  // Parts not yet done: one per chunk, plus one per remote copy.
  std::atomic<size_t> parts_left{0};
  std::atomic<size_t> stored{0};
  size_t rejected = 0;  // chunks that found no room
  std::shared_ptr<OffloadState> keep_alive;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // guarded by mu
  Status first_error;  // guarded by mu
};

}  // namespace kvpool::internal
