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
  return PartialChunk{candidates[i], full_keys.size(), static_cast<uint32_t>(std::min(n, usable)),
                      static_cast<uint32_t>(n)};
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
    if (!seen) out.push_back({key, chunk, cells, cells});
  }
  return out;
}

void CopyOutPartial(const ParsedState& state, const std::byte* blob, bool split,
                    uint32_t chunk_tokens, const PartialChunk& p, const KvBuffer& segments) {
  if (!split) {
    for (size_t l = 0; l < segments.layer_base.size(); ++l) {
      CopyOutSegment(state, blob, static_cast<uint32_t>(p.chunk), chunk_tokens,
                     static_cast<uint32_t>(l), segments.layer_base[l], p.cells);
    }
    return;
  }
  const ConstKvBuffer runs = SplitSegmentsOf(state, blob, chunk_tokens);
  const size_t row = runs.chunk_stride / chunk_tokens;
  for (size_t l = 0; l < segments.layer_base.size(); ++l) {
    std::memcpy(segments.layer_base[l], runs.Segment(p.chunk, static_cast<uint32_t>(l)),
                p.cells * row);
  }
}

void CopyInPartial(const ParsedState& state, std::byte* blob, bool split, uint32_t chunk_tokens,
                   const PartialChunk& p, const KvBuffer& segments) {
  if (!split) {
    for (size_t l = 0; l < segments.layer_base.size(); ++l) {
      CopyInSegment(state, blob, static_cast<uint32_t>(p.chunk), chunk_tokens,
                    static_cast<uint32_t>(l), segments.layer_base[l], p.cells);
    }
    return;
  }
  const KvBuffer runs = SplitSegmentsOf(state, blob, chunk_tokens);
  const size_t row = runs.chunk_stride / chunk_tokens;
  for (size_t l = 0; l < segments.layer_base.size(); ++l) {
    std::memcpy(runs.Segment(p.chunk, static_cast<uint32_t>(l)), segments.layer_base[l],
                p.cells * row);
  }
}

}  // namespace kvpool::llama
