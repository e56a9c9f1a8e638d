// kvpool/model_shape.h: the shape of a model's KV cache, and its segments.
//
// A segment is the unit of placement: the K and V rows of one chunk of
// `chunk_tokens` tokens for one layer. Its payload is
//   2 (K and V) x chunk_tokens x kv_heads x head_dim x dtype_bytes
// bytes, and it occupies that many bytes rounded up to kSegmentAlignment on a
// device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/result.h>

namespace kvpool {

inline constexpr size_t kSegmentAlignment = 4096;

enum class LayerKind : uint8_t {
  kFull = 0,           // attends to the whole prefix: every chunk is stored
  kSlidingWindow = 1,  // attends to the last `sliding_window` tokens only
};

struct ModelShape {
  std::string name = "custom";
  uint32_t layers = 0;        // transformer layers holding KV
  uint32_t kv_heads = 0;      // KV heads per layer (after GQA)
  uint32_t head_dim = 0;      // elements per head
  uint32_t dtype_bytes = 2;   // bytes per element. Default: 2 (BF16/FP16)
  uint32_t chunk_tokens = 256;  // tokens per chunk. Default: 256
  uint32_t sliding_window = 0;  // tokens kept by kSlidingWindow layers; 0 = none
  // Per-layer kinds; empty means every layer is kFull. When not empty its
  // size must equal `layers`.
  std::vector<LayerKind> layer_kinds;

  // Bytes of one (chunk, layer) segment's payload; at most 1 GiB for a shape
  // that Validate accepts. Products that overflow saturate at SIZE_MAX (never
  // wrap), so an invalid shape can never look like a small one.
  size_t SegmentPayloadBytes() const;
  // Payload rounded up to kSegmentAlignment: what a segment occupies on a device.
  // SIZE_MAX when the payload saturated.
  size_t SegmentBytes() const;
  // KV bytes per token over all layers (saturates like SegmentPayloadBytes).
  size_t BytesPerToken() const;
  LayerKind KindOf(uint32_t layer) const;

  // A 64-bit digest of every field that changes the KV bytes. Two shapes with
  // the same fingerprint produce interchangeable segments.
  uint64_t Fingerprint() const;

  // OK, or InvalidArgument naming the first bad field ("shape.head_dim ...").
  // Products are computed with overflow checks: a segment payload over 1 GiB
  // (or one that would overflow) is refused naming the factor that passes it.
  Status Validate() const;

  // A copy whose per-token KV is shrunk by `scale` (0 < scale <= 1) by
  // reducing head_dim (kept a multiple of 8 bytes of payload), for machines
  // too small for the full sweep. The name gains a "@scale" suffix.
  Result<ModelShape> Scaled(double scale) const;

  // Presets: "llama-3.1-8b", "qwen3-30b-a3b", "gpt-oss-20b", "tiny".
  static Result<ModelShape> Preset(std::string_view name);
  static std::vector<std::string> PresetNames();
};

}  // namespace kvpool
