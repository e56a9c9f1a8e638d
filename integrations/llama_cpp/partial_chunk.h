// Partial chunks: the cells at the end of a stored sequence that do not fill
// a chunk. Internal to kvpool_llama.
//
// Without them a prompt is restored to its last full chunk and up to
// chunk_tokens - 1 tokens are decoded again, even when the very same prompt
// was stored a moment ago. A partial chunk holds those cells: its key is
// PartialChunkKey(ns, last full chunk's key, its tokens), it is stored as a
// leaf child of that full chunk (so eviction takes it before its parent),
// and its segments keep a whole chunk's layout with zeros after its cells.
//
// A restore looks for the longest partial chunk whose tokens the prompt
// continues with after its restored full chunks, and takes as many of its
// cells as the prompt can use (all but the prompt's last token are
// restorable). A store writes one per "end" it is given: the end of the
// sequence, and the end of the prompt, so that the same prompt sent again is
// restored to its last token whatever was generated after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <kvpool/keys.h>
#include <kvpool/pool.h>

#include "state_format.h"

namespace kvpool::llama {

struct PartialChunk {
  ChunkKey key;
  size_t chunk = 0;     // full chunks before it: its cells start at chunk x chunk_tokens
  uint32_t cells = 0;   // cells to restore (a restore) or that it holds (a store)
  uint32_t length = 0;  // tokens it holds (the key covers them): >= cells
};

// The partial chunk to restore after `full_keys`, the full chunks of
// `tokens` the pool holds: the longest one present whose tokens `tokens`
// continues with, with cells = what of it the prompt uses (at most
// tokens.size() - 1 cells in all). One Pool::FindChild over the candidate
// lengths, longest first (the whole rest of a prompt sent again is the
// first, the one a remote tier is asked for). nullopt when none is present
// or no cell of one would be used.
std::optional<PartialChunk> FindPartialChunk(Pool& pool, const Namespace& ns,
                                             std::span<const int32_t> tokens,
                                             std::span<const ChunkKey> full_keys,
                                             uint32_t chunk_tokens);

// The partial chunks that store `tokens` up to each of `ends` (a sequence
// end that is not a multiple of chunk_tokens; others are skipped, and so are
// ends past tokens.size() and duplicates). `full_keys` are the keys of
// every full chunk of `tokens`.
std::vector<PartialChunk> PartialChunksAt(const Namespace& ns, std::span<const int32_t> tokens,
                                          std::span<const ChunkKey> full_keys,
                                          std::span<const size_t> ends, uint32_t chunk_tokens);

// Copies `partial`'s cells (partial.cells of chunk partial.chunk) of every
// pool layer between a blob laid out as `state` says and `segments`, whose
// layer_base[l] is pool layer l's segment of the partial chunk (a whole
// chunk's layout). `split`: the shape cuts segments as kv_layout.h's kSplit.
// REQUIRES: partial.chunk x chunk_tokens + partial.cells <= state.cells,
// one layer_base per pool layer.
void CopyOutPartial(const ParsedState& state, const std::byte* blob, bool split,
                    uint32_t chunk_tokens, const PartialChunk& partial, const KvBuffer& segments);
void CopyInPartial(const ParsedState& state, std::byte* blob, bool split, uint32_t chunk_tokens,
                   const PartialChunk& partial, const KvBuffer& segments);

}  // namespace kvpool::llama
