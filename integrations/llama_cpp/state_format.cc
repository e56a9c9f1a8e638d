#include "state_format.h"

#include <cstring>
#include <string>

namespace kvpool::llama {
namespace {

constexpr size_t kCellMetaBytes = 12;  // i32 pos, u32 n_seq_id (= 1), i32 seq_id

Status Bad(const std::string& what) {
  return Status::Corruption("llama.cpp sequence state: " + what +
                            " (the state format of the pinned llama.cpp changed?)");
}

// Bounds-checked little-endian reader over a blob.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> b) : b_(b) {}
  template <typename T>
  bool Get(T* v) {
    if (b_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Skip(uint64_t n) {
    if (b_.size() - pos_ < n) return false;
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }

 private:
  std::span<const std::byte> b_;
  size_t pos_ = 0;
};

// Writes at increasing offsets; with an empty span it only counts them.
class Writer {
 public:
  explicit Writer(std::span<std::byte> b) : b_(b) {}
  template <typename T>
  void Put(T v) {
    if (!b_.empty()) std::memcpy(b_.data() + pos_, &v, sizeof(T));
    pos_ += sizeof(T);
  }
  void Skip(uint64_t n) { pos_ += n; }
  size_t pos() const { return pos_; }

 private:
  std::span<std::byte> b_;
  size_t pos_ = 0;
};

Status ParseMeta(Reader& r, ParsedState& s) {
  s.positions.resize(s.cells);
  for (uint32_t i = 0; i < s.cells; ++i) {
    uint32_t n_seq = 0;
    int32_t seq = 0;
    if (!r.Get(&s.positions[i]) || !r.Get(&n_seq)) return Bad("truncated cell metadata");
    if (n_seq != 1)
      return Bad("cell " + std::to_string(i) + " lists " + std::to_string(n_seq) +
                 " sequences, expected 1");
    if (!r.Get(&seq)) return Bad("truncated cell metadata");
  }
  return Status::OK();
}

Status ParseK(Reader& r, ParsedState& s, uint32_t n_layer) {
  for (uint32_t l = 0; l < n_layer; ++l) {
    LayerFormat& f = s.format.layers[l];
    if (!r.Get(&f.k_type) || !r.Get(&f.k_row))
      return Bad("truncated K header of layer " + std::to_string(l));
    s.k_offset[l] = r.pos();
    if (f.k_row == 0 || f.k_row > (1u << 24) || !r.Skip(f.k_row * s.cells)) {
      return Bad("K rows of layer " + std::to_string(l) + " do not fit the blob");
    }
  }
  return Status::OK();
}

Status ParseV(Reader& r, ParsedState& s, uint32_t n_layer) {
  for (uint32_t l = 0; l < n_layer; ++l) {
    LayerFormat& f = s.format.layers[l];
    bool ok = r.Get(&f.v_type);
    if (s.format.v_trans) {
      ok = ok && r.Get(&f.v_elem) && r.Get(&f.n_embd_v);
      f.v_row = uint64_t{f.v_elem} * f.n_embd_v;
    } else {
      ok = ok && r.Get(&f.v_row);
    }
    if (!ok) return Bad("truncated V header of layer " + std::to_string(l));
    s.v_offset[l] = r.pos();
    if (f.v_row == 0 || f.v_row > (1u << 24) || !r.Skip(f.v_row * s.cells)) {
      return Bad("V data of layer " + std::to_string(l) + " does not fit the blob");
    }
  }
  return Status::OK();
}

Status ParseCells(Reader& r, ParsedState& s, uint32_t n_layer) {
  KVP_RETURN_IF_ERROR(ParseMeta(r, s));
  uint32_t v_trans = 0;
  uint32_t layers = 0;
  if (!r.Get(&v_trans) || !r.Get(&layers)) return Bad("truncated layer header");
  if (v_trans > 1) return Bad("v_trans is " + std::to_string(v_trans));
  if (layers != n_layer) {
    return Bad("blob has " + std::to_string(layers) + " layers, the model " +
               std::to_string(n_layer));
  }
  s.format.v_trans = v_trans == 1;
  s.format.layers.resize(n_layer);
  s.k_offset.resize(n_layer);
  s.v_offset.resize(n_layer);
  KVP_RETURN_IF_ERROR(ParseK(r, s, n_layer));
  return ParseV(r, s, n_layer);
}

}  // namespace

uint64_t StateFormat::CellBytes() const {
  uint64_t n = 0;
  for (const LayerFormat& l : layers) n += l.CellBytes();
  return n;
}

size_t StateFormat::BlobBytes(uint32_t cells) const {
  size_t n = 3 * sizeof(uint32_t) + n_stream * sizeof(uint32_t);
  if (cells == 0) return n;
  n += cells * kCellMetaBytes + 2 * sizeof(uint32_t);
  const size_t v_header = v_trans ? 3 * sizeof(uint32_t) : sizeof(int32_t) + sizeof(uint64_t);
  for (const LayerFormat& l : layers) {
    n += sizeof(int32_t) + sizeof(uint64_t) + v_header + cells * l.CellBytes();
  }
  return n;
}

bool ParsedState::PositionsAreCellIndices() const {
  for (uint32_t i = 0; i < cells; ++i) {
    if (positions[i] != static_cast<int32_t>(i)) return false;
  }
  return true;
}

Result<ParsedState> ParseSeqState(std::span<const std::byte> blob, uint32_t n_layer) {
  Reader r(blob);
  ParsedState s;
  uint32_t magic = 0;
  if (!r.Get(&magic) || magic != kSeqStateMagic) return Bad("bad magic");
  if (!r.Get(&s.seq_id) || !r.Get(&s.format.n_stream)) return Bad("truncated header");
  if (s.format.n_stream == 0 || s.format.n_stream > 4096) {
    return Bad("n_stream is " + std::to_string(s.format.n_stream));
  }
  bool seen = false;
  for (uint32_t st = 0; st < s.format.n_stream; ++st) {
    uint32_t cells = 0;
    if (!r.Get(&cells)) return Bad("truncated stream header");
    if (cells == 0) continue;
    if (seen) return Bad("cells in more than one stream");
    seen = true;
    s.format.stream = st;
    s.cells = cells;
    KVP_RETURN_IF_ERROR(ParseCells(r, s, n_layer));
  }
  if (r.left() != 0) {
    return Bad(std::to_string(r.left()) + " bytes left over after parsing " +
               std::to_string(blob.size()));
  }
  if (s.cells > 0 && s.format.BlobBytes(s.cells) != blob.size()) {
    return Bad("computed size " + std::to_string(s.format.BlobBytes(s.cells)) + " != blob size " +
               std::to_string(blob.size()));
  }
  return s;
}

namespace {

// The layout of a blob of `cells` cells at positions 0..cells-1, with its
// headers and cell metadata written into `blob` unless it is empty.
ParsedState LayOut(const StateFormat& format, int32_t seq_id, uint32_t cells,
                   std::span<std::byte> blob) {
  ParsedState s;
  s.format = format;
  s.seq_id = seq_id;
  s.cells = cells;
  const uint32_t n_layer = static_cast<uint32_t>(format.layers.size());
  s.k_offset.resize(n_layer);
  s.v_offset.resize(n_layer);
  Writer w(blob);
  w.Put(kSeqStateMagic);
  w.Put(seq_id);
  w.Put(format.n_stream);
  for (uint32_t st = 0; st < format.n_stream; ++st) {
    if (st != format.stream) {
      w.Put(uint32_t{0});
      continue;
    }
    w.Put(cells);
    for (uint32_t i = 0; i < cells; ++i) {
      w.Put(static_cast<int32_t>(i));
      w.Put(uint32_t{1});
      w.Put(seq_id);
    }
    w.Put(uint32_t{format.v_trans ? 1u : 0u});
    w.Put(n_layer);
    for (uint32_t l = 0; l < n_layer; ++l) {
      w.Put(format.layers[l].k_type);
      w.Put(format.layers[l].k_row);
      s.k_offset[l] = w.pos();
      w.Skip(format.layers[l].k_row * cells);
    }
    for (uint32_t l = 0; l < n_layer; ++l) {
      const LayerFormat& f = format.layers[l];
      w.Put(f.v_type);
      if (format.v_trans) {
        w.Put(f.v_elem);
        w.Put(f.n_embd_v);
      } else {
        w.Put(f.v_row);
      }
      s.v_offset[l] = w.pos();
      w.Skip(f.v_row * cells);
    }
  }
  s.positions.resize(cells);
  for (uint32_t i = 0; i < cells; ++i) s.positions[i] = static_cast<int32_t>(i);
  return s;
}

}  // namespace

Result<ParsedState> WriteSeqStateHeaders(const StateFormat& format, int32_t seq_id, uint32_t cells,
                                         std::span<std::byte> blob) {
  if (cells == 0 || format.layers.empty()) {
    return Status::InvalidArgument("WriteSeqStateHeaders: needs cells > 0 and a parsed format");
  }
  if (blob.size() != format.BlobBytes(cells)) {
    return Status::InvalidArgument("WriteSeqStateHeaders: blob of " + std::to_string(blob.size()) +
                                   " bytes, format needs " +
                                   std::to_string(format.BlobBytes(cells)));
  }
  return LayOut(format, seq_id, cells, blob);
}

Result<ParsedState> KeepFirstCells(const ParsedState& state, uint32_t cells,
                                   std::span<std::byte> blob) {
  const StateFormat& f = state.format;
  if (f.v_trans || cells == 0 || cells > state.cells || blob.size() < f.BlobBytes(state.cells)) {
    return Status::InvalidArgument("KeepFirstCells: needs V rows and 0 < " + std::to_string(cells) +
                                   " <= " + std::to_string(state.cells) + " cells");
  }
  // Runs only move towards the front, in blob order, so none lands on one not
  // yet moved; the headers go into the gaps between them afterwards.
  const ParsedState to = LayOut(f, state.seq_id, cells, {});
  for (size_t l = 0; l < f.layers.size(); ++l) {
    std::memmove(blob.data() + to.k_offset[l], blob.data() + state.k_offset[l],
                 size_t{cells} * f.layers[l].k_row);
  }
  for (size_t l = 0; l < f.layers.size(); ++l) {
    std::memmove(blob.data() + to.v_offset[l], blob.data() + state.v_offset[l],
                 size_t{cells} * f.layers[l].v_row);
  }
  return WriteSeqStateHeaders(f, state.seq_id, cells, blob.first(f.BlobBytes(cells)));
}

size_t SegmentBytes(const LayerFormat& layer, uint32_t chunk_tokens) {
  return static_cast<size_t>(chunk_tokens) * layer.CellBytes();
}

namespace {

// Calls copy(blob_offset, segment_offset, bytes) for every run of bytes of
// the first `cells` cells of (chunk, layer), in segment order. The segment
// keeps the layout of a whole chunk of `t` cells either way.
template <typename Fn>
void ForEachRun(const ParsedState& s, uint32_t chunk, uint32_t t, uint32_t cells, uint32_t layer,
                Fn&& copy) {
  const LayerFormat& f = s.format.layers[layer];
  const size_t first = static_cast<size_t>(chunk) * t;
  copy(s.k_offset[layer] + first * f.k_row, 0, cells * f.k_row);
  const size_t v_seg = t * f.k_row;
  if (!s.format.v_trans) {
    copy(s.v_offset[layer] + first * f.v_row, v_seg, cells * f.v_row);
    return;
  }
  const size_t run = static_cast<size_t>(t) * f.v_elem;
  const size_t row = static_cast<size_t>(s.cells) * f.v_elem;
  for (uint32_t j = 0; j < f.n_embd_v; ++j) {
    copy(s.v_offset[layer] + j * row + first * f.v_elem, v_seg + j * run, cells * f.v_elem);
  }
}

}  // namespace

void CopyOutSegment(const ParsedState& state, const std::byte* blob, uint32_t chunk,
                    uint32_t chunk_tokens, uint32_t layer, std::byte* segment, uint32_t cells) {
  ForEachRun(state, chunk, chunk_tokens, cells == 0 ? chunk_tokens : cells, layer,
             [&](size_t b, size_t seg, size_t n) { std::memcpy(segment + seg, blob + b, n); });
}

void CopyInSegment(const ParsedState& state, std::byte* blob, uint32_t chunk, uint32_t chunk_tokens,
                   uint32_t layer, const std::byte* segment, uint32_t cells) {
  ForEachRun(state, chunk, chunk_tokens, cells == 0 ? chunk_tokens : cells, layer,
             [&](size_t b, size_t seg, size_t n) { std::memcpy(blob + b, segment + seg, n); });
}

}  // namespace kvpool::llama
