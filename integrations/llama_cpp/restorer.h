// Brings cached chunks from the pool into a llama.cpp sequence. Internal to
// kvpool_llama.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <kvpool/pool.h>

#include "kv_layout.h"
#include "kvpool_llama.h"
#include "llama_io.h"

namespace kvpool::llama {

class Restorer {
 public:
  Restorer(llama_context* ctx, Pool& pool, const StateFormat& format, const ModelShape& shape,
           int32_t seq_id)
      : ctx_(ctx),
        pool_(pool),
        format_(format),
        shape_(shape),
        split_(LayoutForFormat(format) == SegmentLayout::kSplit),
        seq_id_(seq_id) {}

  // Reads the chunks of `keys` (present at lookup) and puts them into the
  // sequence, which must be empty. With split segments (kv_layout.h) the pool
  // reads them straight into llama.cpp's blob. With joined segments it reads
  // them into a staging buffer, and each layer is copied into the blob as
  // soon as the pool announces it, while later layers are still being read.
  // Returns the number of chunks restored (all of them,
  // fewer after a device error or eviction, 0 when the blob was rejected)
  // and sets `failure` when it is not all of them. Fills r's timings and sources.
  size_t Restore(std::span<const ChunkKey> keys, PrefillResult& r, std::string* failure);

  // Allocates and touches the buffers for restoring `chunks` chunks.
  void Reserve(size_t chunks);

 private:
  // Reusable buffers (a restore of n chunks needs n x chunk KV for the blob,
  // and as much again for staging joined segments):
  // grown on demand, never shrunk, so that repeated restores do not pay
  // page faults on fresh memory.
  KvBuffer Staging(size_t chunks);
  std::span<std::byte> Blob(size_t bytes);
  // Joined segments: copies layer `layer` of the first `chunks` chunks from
  // staging into the blob; returns the bytes copied.
  size_t CopyLayer(const ParsedState& layout, const KvBuffer& staging, size_t chunks,
                   uint32_t layer);
  // Makes the blob hold only the first `chunks` chunks, after a short read;
  // returns its layout and adds the bytes copied to r.assembled_bytes.
  // Joined segments only need the headers rewritten (and every layer copied
  // again, `copied` is reset).
  Result<ParsedState> Shrink(const ParsedState& layout, size_t chunks, std::vector<bool>& copied,
                             PrefillResult& r);

  llama_context* ctx_;
  Pool& pool_;
  const StateFormat& format_;
  const ModelShape& shape_;
  const bool split_;  // segments land in the blob: no staging, no copy
  const int32_t seq_id_;
  Bytes staging_;
  Bytes blob_;
};

}  // namespace kvpool::llama
