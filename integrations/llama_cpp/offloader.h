// Stores snapshots' new chunks into the pool on a background thread.
// Internal to kvpool_llama.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <kvpool/pool.h>

#include "kvpool_llama.h"
#include "llama_io.h"
#include "partial_chunk.h"

namespace kvpool::llama {

// ConnectorStats shared by the caller's thread and the offload thread.
class StatsBox {
 public:
  template <typename Fn>
  void Update(Fn&& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    fn(stats_);
  }
  ConnectorStats Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  mutable std::mutex mu_;
  ConnectorStats stats_;
};

// Bytes between consecutive chunks of one layer in a staging buffer: the
// segment payload rounded up to 4 KiB, so O_DIRECT devices take the fast path.
size_t StagingStride(const ModelShape& shape);

class Offloader {
 public:
  // `split`: the shape's segments are split K and V rows (kv_layout.h), which
  // the pool writes straight from the snapshot; otherwise they are copied
  // out into a staging buffer first. `max_pending_bytes`: snapshot bytes
  // queued at most (0 = unbounded). Blobs of stored snapshots go back to
  // `recycler` when it is not null.
  Offloader(Pool& pool, const ModelShape& shape, bool split, StatsBox& stats,
            size_t max_pending_bytes = 0, BlobRecycler* recycler = nullptr);
  ~Offloader();  // finishes queued jobs, then joins
  Offloader(const Offloader&) = delete;
  Offloader& operator=(const Offloader&) = delete;

  // Stores chunks [first, keys.size()) of `snapshot` (whose cells are at
  // positions 0.. in cell order and number at least keys.size() x chunk_tokens),
  // then each of `partials` (chunk <= keys.size(), its cells in the snapshot)
  // as a child of the full chunk before it.
  // Returns false, storing nothing, when the snapshot would take the queued
  // bytes over max_pending_bytes (a snapshot is always taken when none waits).
  bool Submit(Snapshot snapshot, std::vector<ChunkKey> keys, size_t first,
              std::vector<PartialChunk> partials = {});
  // Blocks until every submitted job finished.
  void Flush();

 private:
  struct Job {
    Snapshot snapshot;
    std::vector<ChunkKey> keys;
    size_t first = 0;
    std::vector<PartialChunk> partials;
  };
  void Run();
  void Store(Job& job);
  // The job's segments: in its snapshot (split), or copied into `staging`.
  ConstKvBuffer Segments(const Job& job, Bytes& staging) const;
  // Copies the cells of each partial chunk into `staging` (zeros after
  // them), one whole chunk per partial chunk and layer; returns a buffer
  // per partial chunk.
  std::vector<ConstKvBuffer> PartialSegments(const Job& job, Bytes& staging) const;
  // Stores `source`'s chunks [source.first_chunk, keys.size()); counts them.
  void StoreChunks(std::span<const ChunkKey> keys, const ConstKvBuffer& source, bool partial);
  // Hands the snapshot's blob back to the recycler; once per job.
  void ReleaseBlob(Job& job);

  Pool& pool_;
  const ModelShape shape_;
  StatsBox& stats_;
  const size_t max_pending_bytes_;
  BlobRecycler* const recycler_;
  const bool split_;
  size_t pending_bytes_ = 0;  // blobs of queued and running jobs
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kvpool::llama
