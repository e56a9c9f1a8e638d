#include "partial_chunk.h"

#include <algorithm>
#include <cstring>

#include "kv_layout.h"

namespace kvpool::llama {

std::optional<PartialChunk> FindPartialChunk(Pool& pool, const Namespace& ns,
                                             std::span<const int32_t> tokens,
                                             std::span<const ChunkKey> full_keys,
                                             uint32_t chunk_tokens) {
  const size_t start = full_keys.size() * chunk_tokens;
  if (tokens.size() <= start + 1) return std::nullopt;  // nothing restorable after them
  const size_t usable = tokens.size() - 1 - start;      // the last token is decoded
  const ChunkKey parent = full_keys.empty() ? ChunkKey{} : full_keys.back();
  const size_t longest = std::min<size_t>(chunk_tokens - 1, tokens.size() - start);
  std::vector<ChunkKey> candidates;  // candidates[i] holds longest - i tokens
  for (size_t n = longest; n > 0; --n) {
    candidates.push_back(PartialChunkKey(ns, parent, tokens.subspan(start, n)));
  }
  const size_t i = pool.FindChild(full_keys, candidates);
  if (i >= candidates.size()) return std::nullopt;
  const size_t n = longest - i;
  return PartialChunk{candidates[i], full_keys.size(), static_cast<uint32_t>(std::min(n, usable))};
}

std::vector<PartialChunk> PartialChunksAt(const Namespace& ns, std::span<const int32_t> tokens,
                                          std::span<const ChunkKey> full_keys,
                                          std::span<const size_t> ends, uint32_t chunk_tokens) {
  std::vector<PartialChunk> out;
  for (const size_t end : ends) {
    const size_t chunk = end / chunk_tokens;
    const auto cells = static_cast<uint32_t>(end % chunk_tokens);
    if (end > tokens.size() || cells == 0 || chunk > full_keys.size()) continue;
    const ChunkKey parent = chunk == 0 ? ChunkKey{} : full_keys[chunk - 1];
    const ChunkKey key = PartialChunkKey(ns, parent, tokens.subspan(chunk * chunk_tokens, cells));
    const bool seen = std::any_of(out.begin(), out.end(),
                                  [&](const PartialChunk& p) { return p.key == key; });
    if (!seen) out.push_back({key, chunk, cells});
  }
  return out;
}

namespace {

// A kSplit pool layer's first byte of chunk `chunk` in the blob, and its row size.
std::pair<size_t, size_t> SplitRun(const ParsedState& state, uint32_t layer, size_t chunk,
                                   uint32_t chunk_tokens) {
  const size_t row = state.format.layers[0].k_row;
  const size_t model_layer = layer / 2;
  const size_t base = layer % 2 == 0 ? state.k_offset[model_layer] : state.v_offset[model_layer];
  return {base + chunk * chunk_tokens * row, row};
}

}  // namespace

void CopyOutPartial(const ParsedState& state, const std::byte* blob, bool split,
                    uint32_t chunk_tokens, size_t chunk, uint32_t cells, uint32_t layer,
                    std::byte* segment) {
  if (!split) {
    CopyOutSegment(state, blob, static_cast<uint32_t>(chunk), chunk_tokens, layer, segment, cells);
    return;
  }
  const auto [offset, row] = SplitRun(state, layer, chunk, chunk_tokens);
  std::memcpy(segment, blob + offset, cells * row);
}

void CopyInPartial(const ParsedState& state, std::byte* blob, bool split, uint32_t chunk_tokens,
                   size_t chunk, uint32_t cells, uint32_t layer, const std::byte* segment) {
  if (!split) {
    CopyInSegment(state, blob, static_cast<uint32_t>(chunk), chunk_tokens, layer, segment, cells);
    return;
  }
  const auto [offset, row] = SplitRun(state, layer, chunk, chunk_tokens);
  std::memcpy(blob + offset, segment, cells * row);
}

}  // namespace kvpool::llama
