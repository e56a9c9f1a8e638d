// What an extent lives on: a file or block device driven through the kernel
// (extent_file.h) or an NVMe namespace driven from user space through SPDK
// (tier/spdk/). The on-device format is the same on both, byte for byte.
//
// The extent's metadata (superblock, checkpoints, the emptiness check) goes
// through the synchronous calls below; its slot data goes through the
// RawQueue engines the target makes (one per worker thread). Metadata calls
// may come from any thread; a target serializes them itself as needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <kvpool/result.h>

#include "tier/extent/raw_queue.h"

namespace kvpool {

class BlockTarget {
 public:
  virtual ~BlockTarget() = default;

  // Transfers exactly `bytes` at `offset` (both multiples of 4096; `buffer`
  // 4096-aligned, ordinary memory). Errors start with `what`.
  virtual Status ReadAt(std::byte* buffer, size_t bytes, uint64_t offset,
                        const std::string& what) = 0;
  virtual Status WriteAt(const std::byte* buffer, size_t bytes, uint64_t offset,
                         const std::string& what) = 0;
  // Makes every write that has completed so far durable (fdatasync, NVMe Flush).
  virtual Status Flush(const std::string& what) = 0;

  // Bytes addressable now.
  virtual uint64_t size() const = 0;
  // Makes the target at least `bytes` long (files grow; a fixed-size device
  // that is smaller is NoSpace naming both sizes).
  virtual Status EnsureSize(uint64_t bytes) = 0;
  // True when the target holds nothing worth keeping (reads as zeros).
  virtual Result<bool> LooksEmpty() = 0;
  // True when this open created the target (a new file): it is formatted.
  virtual bool created() const { return false; }
  // Where the extent is, for messages: a path, or an SPDK transport ID.
  virtual const std::string& location() const = 0;

  // A data-path engine for one worker thread: `depth` bounce buffers of
  // `buffer_bytes` each (a multiple of 4096).
  virtual Result<std::unique_ptr<RawQueue>> NewEngine(uint32_t depth, size_t buffer_bytes) = 0;
  // The alignment of caller memory that a direct transfer (raw_queue.h) may
  // use: a power of two from 1 to 4096. Default 4096.
  virtual size_t direct_alignment() const { return 4096; }
  // The target's part of Device::Describe(): engine, buffers, location.
  virtual std::string Describe() const = 0;
};

}  // namespace kvpool
