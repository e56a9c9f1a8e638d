// Brings cached chunks from the pool into a llama.cpp sequence. Internal to
// kvpool_llama.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include <kvpool/pool.h>

#include "kv_layout.h"
#include "kvpool_llama.h"
#include "llama_io.h"
#include "partial_chunk.h"

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

  // Reads the chunks of `keys` (present at lookup) and, when `partial` is not
  // null, the first partial->cells cells of that partial chunk after them
  // (read into a small staging buffer and copied), and puts them into the
  // sequence, which must be empty. With split segments (kv_layout.h) the pool
  // reads full chunks straight into llama.cpp's blob. With joined segments it
  // reads them into a staging buffer, and each layer is copied into the blob
  // as soon as the pool announces it, while later layers are still being read.
  // Returns the number of cells restored: all of them, fewer after a device
  // error or eviction (the partial chunk only counts when every full chunk
  // came), 0 when the blob was rejected; sets `failure` when it is not all of
  // them. Fills r's timings and sources.
  size_t Restore(std::span<const ChunkKey> keys, const PartialChunk* partial, PrefillResult& r,
                 std::string* failure);

  // Allocates and touches the buffers for restoring `tokens` tokens.
  void Reserve(size_t tokens);

 private:
  // Reusable buffers (a restore of n chunks needs n x chunk KV for the blob,
  // and as much again for staging joined segments):
  // grown on demand, never shrunk, so that repeated restores do not pay
  // page faults on fresh memory.
  KvBuffer Staging(size_t chunks);
  KvBuffer PartialStaging();  // one chunk
  std::span<std::byte> Blob(size_t bytes);
  // Retrieves the full chunks into the blob (split) or staging (joined, copying
  // layers into the blob as they complete; copied_ says which). Wait()'s count.
  Result<size_t> RetrieveFull(std::span<const ChunkKey> keys, const ParsedState& layout,
                              std::span<std::byte> blob, PrefillResult& r);
  // The partial chunk's read, started and finished around RetrieveFull; a
  // failure is described in `failure` and makes FinishPartial false.
  std::optional<RetrieveHandle> StartPartial(const PartialChunk* partial, std::string* failure);
  bool FinishPartial(std::optional<RetrieveHandle>& handle, std::string* failure);
  // Copies the partial chunk's cells from its staging into the blob; returns the bytes.
  size_t CopyInPartialChunk(const ParsedState& layout, const PartialChunk& partial);
  // Joined segments: copies layer `layer` of the first `chunks` chunks from
  // staging into the blob; returns the bytes copied.
  size_t CopyLayer(const ParsedState& layout, const KvBuffer& staging, size_t chunks,
                   uint32_t layer);
  // Makes the blob hold only its first `cells` cells, after a short read;
  // returns its layout and adds the bytes copied to r.assembled_bytes.
  // Joined segments only need the headers rewritten (and every layer copied
  // again: copied_ is reset).
  Result<ParsedState> Shrink(const ParsedState& layout, uint32_t cells, PrefillResult& r);

  llama_context* ctx_;
  Pool& pool_;
  const StateFormat& format_;
  const ModelShape& shape_;
  const bool split_;  // segments land in the blob: no staging, no copy
  const int32_t seq_id_;
  Bytes staging_;
  Bytes partial_;
  Bytes blob_;
  KvBuffer staged_;            // where the current restore's full chunks land
  std::vector<bool> copied_;   // joined: layers already copied into the blob
};

}  // namespace kvpool::llama
