#include "kv_layout.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "kvpool_llama.h"

namespace kvpool::llama {
namespace {

constexpr int32_t kGgmlF32 = 0;  // ggml_type values (ggml.h)
constexpr int32_t kGgmlF16 = 1;
constexpr int32_t kGgmlBf16 = 30;

uint32_t FloatBytes(int32_t type) {
  return type == kGgmlF32 ? 4 : (type == kGgmlF16 || type == kGgmlBf16) ? 2 : 0;
}

}  // namespace

SegmentLayout LayoutForFormat(const StateFormat& format) {
  if (format.v_trans || format.layers.empty()) return SegmentLayout::kJoined;
  const uint64_t row = format.layers[0].k_row;
  for (const LayerFormat& l : format.layers) {
    if (l.k_row != row || l.v_row != row) return SegmentLayout::kJoined;
  }
  return SegmentLayout::kSplit;
}

namespace {

// A shape in bytes: `layers` segments of chunk_tokens x cell_bytes each.
Result<ModelShape> ByteShape(uint32_t layers, uint32_t chunk_tokens, uint64_t cell_bytes) {
  if (cell_bytes % 2 != 0) return Status::Unsupported("odd KV bytes per cell");
  ModelShape s;
  s.layers = layers;
  s.chunk_tokens = chunk_tokens;
  s.kv_heads = 1;
  s.dtype_bytes = 1;
  s.head_dim = static_cast<uint32_t>(cell_bytes / 2);
  return s;
}

Result<ModelShape> JoinedShape(const StateFormat& format, uint32_t kv_heads,
                               uint32_t chunk_tokens) {
  const LayerFormat& first = format.layers[0];
  const uint32_t bytes = FloatBytes(first.k_type);
  const bool natural = bytes != 0 && first.k_type == first.v_type && first.k_row == first.v_row &&
                       kv_heads > 0 && first.k_row % (uint64_t{bytes} * kv_heads) == 0;
  const uint32_t layers = static_cast<uint32_t>(format.layers.size());
  ModelShape s;
  if (natural) {
    s.layers = layers;
    s.chunk_tokens = chunk_tokens;
    s.kv_heads = kv_heads;
    s.dtype_bytes = bytes;
    s.head_dim = static_cast<uint32_t>(first.k_row / bytes / kv_heads);
  } else {
    KVP_ASSIGN_OR_RETURN(s, ByteShape(layers, chunk_tokens, first.CellBytes()));
  }
  s.name = "llama.cpp-" + std::to_string(layers) + "x" + std::to_string(first.CellBytes()) + "B";
  return s;
}

}  // namespace

Result<ModelShape> ShapeForFormat(const StateFormat& format, uint32_t kv_heads,
                                  uint32_t chunk_tokens) {
  if (format.layers.empty()) return Status::InvalidArgument("empty llama.cpp state format");
  const LayerFormat& first = format.layers[0];
  for (const LayerFormat& l : format.layers) {
    if (l.CellBytes() != first.CellBytes()) {
      return Status::Unsupported("layers of different KV sizes (sliding-window or hybrid models)");
    }
  }
  ModelShape s;
  if (LayoutForFormat(format) == SegmentLayout::kSplit) {
    const uint32_t layers = static_cast<uint32_t>(2 * format.layers.size());
    KVP_ASSIGN_OR_RETURN(s, ByteShape(layers, chunk_tokens, first.k_row));
    s.name = "llama.cpp-" + std::to_string(format.layers.size()) + "x(K,V)x" +
             std::to_string(first.k_row) + "B";
  } else {
    KVP_ASSIGN_OR_RETURN(s, JoinedShape(format, kv_heads, chunk_tokens));
  }
  KVP_RETURN_IF_ERROR(s.Validate());
  return s;
}

uint64_t FormatFingerprint(const StateFormat& format) {
  std::vector<uint64_t> words = {0x6b76706f6f6c6c31ull /* "kvpooll1" */, format.layers.size(),
                                 format.v_trans ? 1u : 0u};
  for (const LayerFormat& l : format.layers) {
    words.insert(words.end(), {uint64_t(uint32_t(l.k_type)), l.k_row, uint64_t(uint32_t(l.v_type)),
                               l.v_row, l.v_elem, l.n_embd_v});
  }
  return XXH3_64bits(words.data(), words.size() * sizeof(uint64_t));
}

Namespace MakeNamespace(uint64_t model_fingerprint, const StateFormat& format,
                        const ModelShape& shape, std::string_view tenant_salt) {
  const uint64_t words[3] = {model_fingerprint, FormatFingerprint(format), shape.Fingerprint()};
  return Namespace::Make(XXH3_64bits(words, sizeof(words)), tenant_salt);
}

Result<uint64_t> FingerprintModelFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open model '" + path + "': " + std::strerror(errno));
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  std::vector<char> buf(8 << 20);
  Status status;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      status = Status::IOError("cannot read model '" + path + "': " + std::strerror(errno));
    if (n <= 0) break;
    XXH3_64bits_update(st, buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (!status.ok()) return status;
  return h;
}

}  // namespace kvpool::llama
