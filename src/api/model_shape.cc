#include <kvpool/model_shape.h>

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>

namespace kvpool {
namespace {

ModelShape Make(std::string name, uint32_t layers, uint32_t heads, uint32_t dim) {
  ModelShape s;
  s.name = std::move(name);
  s.layers = layers;
  s.kv_heads = heads;
  s.head_dim = dim;
  return s;
}

Status Field(const char* field, const std::string& why) {
  return Status::InvalidArgument(std::string("shape.") + field + " " + why);
}

constexpr size_t kSaturated = std::numeric_limits<size_t>::max();
constexpr uint64_t kMaxSegmentPayload = uint64_t{1} << 30;

// a * b, or kSaturated when the product does not fit (or `a` is saturated).
size_t MulSat(size_t a, size_t b) {
  size_t p;
  return a == kSaturated || __builtin_mul_overflow(a, b, &p) ? kSaturated : p;
}

// One factor of a product and the field it comes from.
struct Factor {
  const char* field;
  uint32_t value;
};

// Multiplies 2 x factors, stopping at the first factor whose product passes
// `limit`: returns that factor's field, or nullptr when the product fits.
// Every partial product is <= limit <= 2^32 before a multiply by a u32, so
// nothing overflows 64 bits.
const char* FirstFactorOver(std::initializer_list<Factor> factors, uint64_t limit) {
  uint64_t p = 2;
  for (const Factor& f : factors) {
    if (__builtin_mul_overflow(p, uint64_t{f.value}, &p) || p > limit) return f.field;
  }
  return nullptr;
}

}  // namespace

size_t ModelShape::SegmentPayloadBytes() const {
  return MulSat(MulSat(MulSat(MulSat(2, chunk_tokens), kv_heads), head_dim), dtype_bytes);
}

size_t ModelShape::SegmentBytes() const {
  size_t p = SegmentPayloadBytes();
  if (p > kSaturated - (kSegmentAlignment - 1)) return kSaturated;
  return (p + kSegmentAlignment - 1) / kSegmentAlignment * kSegmentAlignment;
}

size_t ModelShape::BytesPerToken() const {
  return MulSat(MulSat(MulSat(MulSat(2, layers), kv_heads), head_dim), dtype_bytes);
}

LayerKind ModelShape::KindOf(uint32_t layer) const {
  return layer < layer_kinds.size() ? layer_kinds[layer] : LayerKind::kFull;
}

uint64_t ModelShape::Fingerprint() const {
  uint64_t words[6] = {layers, kv_heads, head_dim, dtype_bytes, chunk_tokens, sliding_window};
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, words, sizeof(words));
  XXH3_64bits_update(st, layer_kinds.data(), layer_kinds.size());
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

Status ModelShape::Validate() const {
  if (layers == 0 || layers > 4096) return Field("layers", "must be in [1, 4096]");
  if (kv_heads == 0) return Field("kv_heads", "must be > 0");
  if (head_dim == 0) return Field("head_dim", "must be > 0");
  if (dtype_bytes == 0 || dtype_bytes > 8) return Field("dtype_bytes", "must be in [1, 8]");
  if (chunk_tokens == 0) return Field("chunk_tokens", "must be > 0");
  // Checked in 64 bits, factor by factor, so that a product that would wrap
  // (to 0: a 0-byte segment) is refused, naming the factor that passes the limit.
  if (const char* f = FirstFactorOver({{"dtype_bytes", dtype_bytes}, {"head_dim", head_dim},
                                       {"kv_heads", kv_heads}, {"chunk_tokens", chunk_tokens}},
                                      kMaxSegmentPayload)) {
    return Field(f, "makes a segment (2 x chunk_tokens x kv_heads x head_dim x dtype_bytes) "
                    "larger than 1 GiB");
  }
  // Per-token KV over all layers: at most 4096 x 1 GiB, so it fits; checked
  // anyway so that BytesPerToken never saturates for a valid shape.
  if (const char* f = FirstFactorOver({{"dtype_bytes", dtype_bytes}, {"head_dim", head_dim},
                                       {"kv_heads", kv_heads}, {"layers", layers}},
                                      uint64_t{1} << 62)) {
    return Field(f, "makes the KV bytes per token overflow");
  }
  if (!layer_kinds.empty() && layer_kinds.size() != layers) {
    return Field("layer_kinds", "must list one kind per layer (" + std::to_string(layers) + ")");
  }
  bool any_window = std::find(layer_kinds.begin(), layer_kinds.end(),
                              LayerKind::kSlidingWindow) != layer_kinds.end();
  if (any_window && sliding_window == 0) {
    return Field("sliding_window", "must be > 0 when a layer is sliding-window");
  }
  return Status::OK();
}

Result<ModelShape> ModelShape::Scaled(double scale) const {
  if (!(scale > 0 && scale <= 1)) {
    return Status::InvalidArgument("scale must be in (0, 1], got " + std::to_string(scale));
  }
  ModelShape s = *this;
  if (scale == 1) return s;
  s.head_dim = std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(head_dim * scale)));
  // Keep the payload a multiple of 4 KiB where possible (O_DIRECT friendly).
  while (s.head_dim > 1 && s.SegmentPayloadBytes() % kSegmentAlignment != 0) --s.head_dim;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "@%g", static_cast<double>(s.head_dim) / head_dim);
  s.name += buf;
  return s;
}

Result<ModelShape> ModelShape::Preset(std::string_view name) {
  if (name == "llama-3.1-8b") return Make("llama-3.1-8b", 32, 8, 128);
  if (name == "qwen3-30b-a3b") return Make("qwen3-30b-a3b", 48, 4, 128);
  if (name == "gpt-oss-20b") {
    ModelShape s = Make("gpt-oss-20b", 24, 8, 64);
    s.sliding_window = 128;
    for (uint32_t l = 0; l < s.layers; ++l) {
      s.layer_kinds.push_back(l % 2 == 0 ? LayerKind::kSlidingWindow : LayerKind::kFull);
    }
    return s;
  }
  if (name == "tiny") return Make("tiny", 4, 2, 16);
  std::string known;
  for (const auto& n : PresetNames()) known += (known.empty() ? "" : ", ") + n;
  return Status::InvalidArgument("unknown model preset '" + std::string(name) +
                                 "' (known: " + known + ")");
}

std::vector<std::string> ModelShape::PresetNames() {
  return {"llama-3.1-8b", "qwen3-30b-a3b", "gpt-oss-20b", "tiny"};
}

}  // namespace kvpool
