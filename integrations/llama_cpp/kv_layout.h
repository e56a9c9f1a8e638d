// From llama.cpp's state format to kvpool's ModelShape and Namespace.
// Internal to kvpool_llama.
#pragma once

#include <cstdint>
#include <string_view>

#include <kvpool/keys.h>
#include <kvpool/model_shape.h>

#include "state_format.h"

namespace kvpool::llama {

// A shape with layers = the format's layer count whose SegmentPayloadBytes()
// equals chunk_tokens x (K + V bytes per cell) of a layer. When K and V are
// the same 16- or 32-bit float type the shape is the natural one (kv_heads,
// head_dim, dtype_bytes); otherwise (quantized KV) it is expressed in bytes
// (kv_heads 1, dtype_bytes 1). Unsupported when layers differ in size.
Result<ModelShape> ShapeForFormat(const StateFormat& format, uint32_t kv_heads,
                                  uint32_t chunk_tokens);

// Digest of everything in the format that changes segment bytes: layer
// count, K/V types, row sizes, V transposition.
uint64_t FormatFingerprint(const StateFormat& format);

// The namespace of (model file, KV format and shape, tenant).
Namespace MakeNamespace(uint64_t model_fingerprint, const StateFormat& format,
                        const ModelShape& shape, std::string_view tenant_salt);

}  // namespace kvpool::llama
