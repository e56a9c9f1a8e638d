// Checkpoints of an extent's slot table (format: format/checkpoint.h).
//
// Write() is crash-safe: it snapshots the table, makes every write the
// snapshot counts durable (BlockTarget::Flush: fdatasync or NVMe Flush), then
// writes the next generation over the OLDER of the two copies and flushes
// again. A crash at any point leaves
// at least one valid copy, and a valid copy never claims a slot write that
// is not on stable storage.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <kvpool/result.h>

#include "format/checkpoint.h"
#include "format/layout.h"
#include "tier/extent/block_target.h"
#include "tier/extent/slot_table.h"
#include "util/aligned_buffer.h"

namespace kvpool {

struct LoadedCheckpoint {
  format::CheckpointHeader header;
  std::vector<format::SlotEntry> entries;  // one per slot
};

// The newest valid copy for this device, or nullopt when neither copy is
// valid (never written, torn, or from an earlier format). IOError when the
// copies cannot be read.
Result<std::optional<LoadedCheckpoint>> LoadCheckpoint(BlockTarget& target,
                                                       const format::Layout& layout,
                                                       const ChunkKey& device_id,
                                                       const std::string& what);

// Writes zeroed headers over both copies (used when formatting).
Status EraseCheckpoints(BlockTarget& target, const format::Layout& layout,
                        const std::string& what);

class Checkpointer {
 public:
  // `target`, `table` and `next_write_id` must outlive this object. `generation` is
  // the generation of the newest valid copy (0: none).
  Checkpointer(BlockTarget* target, const format::Layout& layout, const ChunkKey& device_id,
               SlotTable* table, const std::atomic<uint64_t>* next_write_id, uint64_t generation,
               std::string what);
  ~Checkpointer();  // stops the background thread (without a final write)

  // Writes the table as the next generation; `clean` marks a close.
  // Serialized with itself; never holds a lock that the I/O path takes.
  Status Write(bool clean);
  // Calls Write(false) every `interval` while the table is dirty.
  void StartBackground(std::chrono::milliseconds interval);
  void Stop();

 private:
  void Loop(std::chrono::milliseconds interval);
  Status WriteLocked(bool clean);

  BlockTarget* const target_;
  const format::Layout layout_;
  const ChunkKey device_id_;
  SlotTable* const table_;
  const std::atomic<uint64_t>* const next_write_id_;
  const std::string what_;

  std::mutex write_mu_;   // serializes Write
  uint64_t generation_;   // guarded by write_mu_
  AlignedBuffer buffer_;  // guarded by write_mu_; one copy's bytes
  bool warned_ = false;   // guarded by write_mu_

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace kvpool
