#include "ipc/wire.h"

#include <cstring>
#include <limits>

namespace kvpool::ipc {
namespace {

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(std::byte(v)); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Key(const ChunkKey& k) { U64(k.hi), U64(k.lo); }
  void Text(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out_.insert(out_.end(), p, p + s.size());
  }
  void Keys(const std::vector<ChunkKey>& keys) {
    U32(static_cast<uint32_t>(keys.size()));
    for (const ChunkKey& k : keys) Key(k);
  }
  std::vector<std::byte> Take() { return std::move(out_); }

 private:
  void Le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(std::byte(v >> (8 * i)));
  }
  std::vector<std::byte> out_;
};

// Reads fields in order; the first short or out-of-limit field makes every
// later read a no-op and is reported by Finish() naming the field.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}

  uint64_t Le(int bytes, const char* field) {
    if (!Need(static_cast<size_t>(bytes), field)) return 0;
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | std::to_integer<uint64_t>(in_[pos_ + i]);
    pos_ += static_cast<size_t>(bytes);
    return v;
  }
  uint8_t U8(const char* f) { return static_cast<uint8_t>(Le(1, f)); }
  uint32_t U32(const char* f) { return static_cast<uint32_t>(Le(4, f)); }
  uint64_t U64(const char* f) { return Le(8, f); }
  ChunkKey Key(const char* f) {
    ChunkKey k;
    k.hi = U64(f);
    k.lo = U64(f);
    return k;
  }
  std::string Text(const char* field) {
    uint32_t n = U32(field);
    if (n > kMaxText) return Fail(field, "is " + std::to_string(n) + " bytes, over the limit"), "";
    if (!Need(n, field)) return "";
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  // A count of items of `item_bytes` each, checked against `limit` and
  // against the bytes left before the caller allocates for them.
  uint32_t Count(const char* field, uint32_t limit, size_t item_bytes) {
    uint32_t n = U32(field);
    if (n > limit) return Fail(field, std::to_string(n) + " is over the limit of " + std::to_string(limit)), 0;
    if (!Need(size_t{n} * item_bytes, field)) return 0;
    return n;
  }
  std::vector<ChunkKey> Keys(const char* field) {
    uint32_t n = Count(field, kMaxKeys, 16);
    std::vector<ChunkKey> keys(n);
    for (auto& k : keys) k = Key(field);
    return keys;
  }
  Status Finish() {
    if (error_.ok() && pos_ != in_.size()) {
      error_ = Status::InvalidArgument(std::to_string(in_.size() - pos_) +
                                       " trailing bytes after the message");
    }
    return error_;
  }
  bool ok() const { return error_.ok(); }

 private:
  bool Need(size_t n, const char* field) {
    if (!error_.ok()) return false;
    if (in_.size() - pos_ < n) {
      Fail(field, "is cut short (" + std::to_string(in_.size() - pos_) + " bytes left, " +
                      std::to_string(n) + " needed)");
      return false;
    }
    return true;
  }
  void Fail(const char* field, const std::string& what) {
    if (error_.ok()) error_ = Status::InvalidArgument(std::string(field) + " " + what);
  }

  std::span<const std::byte> in_;
  size_t pos_ = 0;
  Status error_;
};

template <typename T>
Result<T> Done(Reader& r, T value) {
  Status s = r.Finish();
  if (!s.ok()) return s;
  return value;
}

void WriteSpan(Writer& w, const RegionSpan& s) {
  w.Keys(s.keys);
  w.U64(s.first_chunk);
  w.U64(s.chunk_stride);
  w.U32(static_cast<uint32_t>(s.layer_offset.size()));
  for (uint64_t off : s.layer_offset) w.U64(off);
}

RegionSpan ReadSpan(Reader& r) {
  RegionSpan s;
  s.keys = r.Keys("keys");
  s.first_chunk = r.U64("first_chunk");
  s.chunk_stride = r.U64("chunk_stride");
  uint32_t layers = r.Count("layer_offset", kMaxLayers, 8);
  s.layer_offset.resize(layers);
  for (auto& off : s.layer_offset) off = r.U64("layer_offset");
  return s;
}

}  // namespace

void EncodeHeader(const Header& h, std::byte out[kHeaderBytes]) {
  auto put = [&](size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out[at + i] = std::byte(v >> (8 * i));
  };
  put(0, kMagic, 4);
  put(4, kVersion, 2);
  put(6, static_cast<uint16_t>(h.type), 2);
  put(8, h.request_id, 8);
  put(16, h.body_len, 4);
  put(20, 0, 4);
}

Result<Header> DecodeHeader(std::span<const std::byte> bytes) {
  Reader r(bytes.first(std::min(bytes.size(), kHeaderBytes)));
  uint32_t magic = r.U32("header.magic");
  uint16_t version = static_cast<uint16_t>(r.Le(2, "header.version"));
  uint16_t type = static_cast<uint16_t>(r.Le(2, "header.type"));
  Header h;
  h.request_id = r.U64("header.request_id");
  h.body_len = r.U32("header.body_len");
  r.U32("header.reserved");
  KVP_RETURN_IF_ERROR(r.Finish());
  if (magic != kMagic) return Status::InvalidArgument("header.magic is not \"KVPD\": not a kvpoold peer");
  if (version != kVersion) {
    return Status::InvalidArgument("header.version " + std::to_string(version) +
                                   " is not the supported version " + std::to_string(kVersion));
  }
  if (type < static_cast<uint16_t>(MsgType::kHello) || type > static_cast<uint16_t>(MsgType::kFindChild)) {
    return Status::InvalidArgument("header.type " + std::to_string(type) + " is not a message type");
  }
  if (h.body_len > kMaxBodyBytes) {
    return Status::InvalidArgument("header.body_len " + std::to_string(h.body_len) +
                                   " is over the limit of " + std::to_string(kMaxBodyBytes));
  }
  h.type = static_cast<MsgType>(type);
  return h;
}

std::vector<std::byte> Frame(MsgType type, uint64_t request_id, std::span<const std::byte> body) {
  std::vector<std::byte> frame(kHeaderBytes + body.size());
  EncodeHeader(Header{type, request_id, static_cast<uint32_t>(body.size())}, frame.data());
  if (!body.empty()) std::memcpy(frame.data() + kHeaderBytes, body.data(), body.size());
  return frame;
}

std::vector<std::byte> EncodeHello(const Hello& m) {
  Writer w;
  w.Text(m.tenant);
  w.U64(m.region_bytes);
  return w.Take();
}

Result<Hello> DecodeHello(std::span<const std::byte> body) {
  Reader r(body);
  Hello m;
  m.tenant = r.Text("hello.tenant");
  m.region_bytes = r.U64("hello.region_bytes");
  return Done(r, std::move(m));
}

std::vector<std::byte> EncodeHelloOk(const HelloOk& m) {
  Writer w;
  const ModelShape& s = m.shape;
  w.Text(s.name);
  for (uint32_t v : {s.layers, s.kv_heads, s.head_dim, s.dtype_bytes, s.chunk_tokens, s.sliding_window}) w.U32(v);
  w.U32(static_cast<uint32_t>(s.layer_kinds.size()));
  for (LayerKind k : s.layer_kinds) w.U8(static_cast<uint8_t>(k));
  w.U64(m.session_id);
  w.U64(m.max_region_bytes);
  return w.Take();
}

Result<HelloOk> DecodeHelloOk(std::span<const std::byte> body) {
  Reader r(body);
  HelloOk m;
  ModelShape& s = m.shape;
  s.name = r.Text("hello_ok.shape.name");
  for (uint32_t* v : {&s.layers, &s.kv_heads, &s.head_dim, &s.dtype_bytes, &s.chunk_tokens, &s.sliding_window}) {
    *v = r.U32("hello_ok.shape");
  }
  uint32_t kinds = r.Count("hello_ok.shape.layer_kinds", kMaxLayers, 1);
  for (uint32_t i = 0; i < kinds; ++i) {
    uint8_t k = r.U8("hello_ok.shape.layer_kinds");
    s.layer_kinds.push_back(k == 1 ? LayerKind::kSlidingWindow : LayerKind::kFull);
  }
  m.session_id = r.U64("hello_ok.session_id");
  m.max_region_bytes = r.U64("hello_ok.max_region_bytes");
  return Done(r, std::move(m));
}

std::vector<std::byte> EncodeKeyList(const KeyList& m) {
  Writer w;
  w.Keys(m.keys);
  return w.Take();
}

Result<KeyList> DecodeKeyList(std::span<const std::byte> body) {
  Reader r(body);
  KeyList m;
  m.keys = r.Keys("keys");
  return Done(r, std::move(m));
}

std::vector<std::byte> EncodeFindChild(const FindChildKeys& m) {
  Writer w;
  w.Keys(m.prefix);
  w.Keys(m.candidates);
  return w.Take();
}

Result<FindChildKeys> DecodeFindChild(std::span<const std::byte> body) {
  Reader r(body);
  FindChildKeys m;
  m.prefix = r.Keys("prefix");
  m.candidates = r.Keys("candidates");
  return Done(r, std::move(m));
}

std::vector<std::byte> EncodeRetrieve(const Retrieve& m) {
  Writer w;
  WriteSpan(w, m.span);
  w.U8(m.layer_events ? 1 : 0);
  return w.Take();
}

Result<Retrieve> DecodeRetrieve(std::span<const std::byte> body) {
  Reader r(body);
  Retrieve m;
  m.span = ReadSpan(r);
  m.layer_events = r.U8("layer_events") != 0;
  return Done(r, std::move(m));
}

std::vector<std::byte> EncodeOffload(const RegionSpan& m) {
  Writer w;
  WriteSpan(w, m);
  return w.Take();
}

Result<RegionSpan> DecodeOffload(std::span<const std::byte> body) {
  Reader r(body);
  RegionSpan m = ReadSpan(r);
  return Done(r, std::move(m));
}

std::vector<std::byte> EncodeReply(const Reply& m) {
  Writer w;
  w.U8(static_cast<uint8_t>(m.code));
  w.U64(m.value);
  w.Text(m.text);
  return w.Take();
}

Result<Reply> DecodeReply(std::span<const std::byte> body) {
  Reader r(body);
  Reply m;
  uint8_t code = r.U8("reply.code");
  m.value = r.U64("reply.value");
  m.text = r.Text("reply.text");
  if (r.ok() && code > static_cast<uint8_t>(StatusCode::kAborted)) {
    return Status::InvalidArgument("reply.code " + std::to_string(code) + " is not a status code");
  }
  m.code = static_cast<StatusCode>(code);
  return Done(r, std::move(m));
}

std::vector<std::byte> EncodeLayerReady(const LayerReady& m) {
  Writer w;
  w.U32(m.layer);
  w.U64(m.valid_chunks);
  return w.Take();
}

Result<LayerReady> DecodeLayerReady(std::span<const std::byte> body) {
  Reader r(body);
  LayerReady m;
  m.layer = r.U32("layer_ready.layer");
  m.valid_chunks = r.U64("layer_ready.valid_chunks");
  return Done(r, std::move(m));
}

Status CheckSpanInRegion(const RegionSpan& span, uint32_t layers, size_t payload,
                         uint64_t region_bytes) {
  if (span.layer_offset.size() != layers) {
    return Status::InvalidArgument("layer_offset has " + std::to_string(span.layer_offset.size()) +
                                   " layers, the pool's model has " + std::to_string(layers));
  }
  if (span.first_chunk > span.keys.size()) {
    return Status::InvalidArgument("first_chunk " + std::to_string(span.first_chunk) +
                                   " is past the last key (" + std::to_string(span.keys.size()) + ")");
  }
  const uint64_t chunks = span.keys.size() - span.first_chunk;
  if (chunks == 0) return Status::OK();
  if (chunks > 1 && span.chunk_stride < payload) {
    return Status::InvalidArgument("chunk_stride " + std::to_string(span.chunk_stride) +
                                   " is smaller than a segment (" + std::to_string(payload) + " bytes)");
  }
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const uint64_t last = chunks - 1;
  if (span.chunk_stride != 0 && last > (kMax - payload) / span.chunk_stride) {
    return Status::InvalidArgument("chunk_stride " + std::to_string(span.chunk_stride) +
                                   " overflows the region's offsets");
  }
  const uint64_t extent = last * span.chunk_stride + payload;  // bytes one layer spans
  for (uint32_t l = 0; l < layers; ++l) {
    uint64_t off = span.layer_offset[l];
    if (extent > region_bytes || off > region_bytes - extent) {
      return Status::InvalidArgument("layer " + std::to_string(l) + " at offset " + std::to_string(off) +
                                     " spans " + std::to_string(extent) + " bytes, past the end of the " +
                                     std::to_string(region_bytes) + "-byte shared region");
    }
  }
  return Status::OK();
}

}  // namespace kvpool::ipc
