// What the connector asks of llama.cpp: decoding, and taking a sequence's
// state out and putting it back. Internal to kvpool_llama.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <vector>
#include <span>

#include <kvpool/result.h>

#include "kvpool_llama.h"
#include "state_format.h"

namespace kvpool::llama {

// Heap bytes that are not zero-filled, optionally 4096-aligned (for O_DIRECT
// devices, whose fast path reads into aligned memory). From 4 MiB on they
// are whole 2 MiB pages, 2 MiB-aligned and advised for transparent huge
// pages (AllocateAligned, util/aligned_buffer.h): direct reads into 4 KiB
// pages move one DMA segment per page, and copies into them miss the TLB
// every 4 KiB. capacity() is size rounded up to the alignment used.
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(size_t n, size_t alignment = 64);
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  // Changes size() without touching the memory. REQUIRES: n <= capacity().
  void Resize(size_t n) { size_ = n; }
  std::span<std::byte> span() { return {data(), size_}; }
  std::span<const std::byte> span() const { return {data(), size_}; }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, Free> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Snapshot buffers kept for reuse. A blob of a long sequence is tens to
// hundreds of MiB: malloc hands such blocks back to the kernel on free, so a
// fresh one pays a page fault per 4 KiB on every snapshot (~150 ms for
// 50 MiB on this project's VMs, in the engine's critical path). Keeps at most
// `max_kept` buffers, the largest. Thread-safe.
class BlobRecycler {
 public:
  explicit BlobRecycler(size_t max_kept = 2) : max_kept_(max_kept) {}
  // A buffer of size n: a kept one whose capacity suffices, else a new one
  // with 1/8 headroom (so that a growing sequence reuses it).
  Bytes Take(size_t n);
  void Give(Bytes b);

 private:
  const size_t max_kept_;
  std::mutex mu_;
  std::vector<Bytes> kept_;
};

// A sequence's state as llama_state_seq_get_data writes it, parsed.
struct Snapshot {
  Bytes blob;
  ParsedState state;
};

// llama_state_seq_get_size + get_data + ParseSeqState. Errors: Aborted when
// llama.cpp reports a failure, Corruption when the blob does not parse or
// its sizes do not add up to llama_state_seq_get_size exactly.
// With `recycler`, the blob comes from it (give it back when done).
Result<Snapshot> TakeSnapshot(llama_context* ctx, int32_t seq_id,
                              BlobRecycler* recycler = nullptr);

// The state format of the context's KV cache: parsed from a snapshot of the
// sequence when it holds cells; otherwise one BOS token is decoded into it,
// snapshotted and removed again.
Result<StateFormat> ProbeStateFormat(llama_context* ctx, int32_t seq_id);

// llama_state_seq_set_data; Corruption when llama.cpp rejects the blob (the
// sequence is then empty).
Status RestoreSnapshot(llama_context* ctx, int32_t seq_id, std::span<const std::byte> blob);

// Removes every cell of the sequence.
void ClearSequence(llama_context* ctx, int32_t seq_id);

uint32_t ModelLayers(const llama_context* ctx);
uint32_t ModelKvHeads(const llama_context* ctx);

}  // namespace kvpool::llama
