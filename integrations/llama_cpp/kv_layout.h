// From llama.cpp's state format to kvpool's ModelShape and Namespace.
// Internal to kvpool_llama.
#pragma once

#include <cstdint>
#include <string_view>

#include <kvpool/keys.h>
#include <kvpool/model_shape.h>
#include <kvpool/pool.h>

#include "state_format.h"

namespace kvpool::llama {

// How a chunk's KV is cut into pool segments.
enum class SegmentLayout {
  // Pool layer 2l is model layer l's K rows of the chunk's cells, pool layer
  // 2l + 1 its V rows. Each segment is one run of llama.cpp's state blob, so
  // restores land in the blob and offloads read from it: no copy between.
  // Needs V rows (not transposed) and one row size for every K and V row.
  kSplit,
  // Pool layer l is layer l's K rows followed by its V bytes (state_format.h),
  // copied through a staging buffer. For every other format: transposed V
  // (flash attention off), K and V of different row sizes.
  kJoined,
};

// kSplit whenever the format allows it, else kJoined.
SegmentLayout LayoutForFormat(const StateFormat& format);

// The pool shape for `format` cut as LayoutForFormat says, in chunks of
// `chunk_tokens`. kJoined: layers = the format's layer count, each segment
// chunk_tokens x (K + V bytes per cell) of a layer. kSplit: twice the layers,
// each segment chunk_tokens x one row. When a segment is K and V of one
// 16- or 32-bit float type the shape is the natural one (kv_heads, head_dim,
// dtype_bytes); otherwise (quantized KV, split segments) it is expressed in
// bytes (kv_heads 1, dtype_bytes 1). Unsupported when layers differ in size.
Result<ModelShape> ShapeForFormat(const StateFormat& format, uint32_t kv_heads,
                                  uint32_t chunk_tokens);

// The segments of a kSplit blob laid out as `state` says, as a pool buffer
// whose chunk `first_chunk` is the blob's chunk `first_chunk`.
// REQUIRES: LayoutForFormat(state.format) == kSplit.
template <typename Byte>
KvBufferT<Byte> SplitSegmentsOf(const ParsedState& state, Byte* blob, uint32_t chunk_tokens,
                                size_t first_chunk = 0) {
  KvBufferT<Byte> b;
  b.chunk_stride = size_t{chunk_tokens} * state.format.layers[0].k_row;
  b.first_chunk = first_chunk;
  const size_t skip = first_chunk * b.chunk_stride;
  for (size_t l = 0; l < state.k_offset.size(); ++l) {
    b.layer_base.push_back(blob + state.k_offset[l] + skip);
    b.layer_base.push_back(blob + state.v_offset[l] + skip);
  }
  return b;
}

// Digest of everything in the format that changes segment bytes: layer
// count, K/V types, row sizes, V transposition.
uint64_t FormatFingerprint(const StateFormat& format);

// The namespace of (model file, KV format and shape, tenant).
Namespace MakeNamespace(uint64_t model_fingerprint, const StateFormat& format,
                        const ModelShape& shape, std::string_view tenant_salt);

}  // namespace kvpool::llama
