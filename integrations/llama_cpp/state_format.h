// The per-sequence state format of the pinned llama.cpp (node-llama-cpp
// 3.22.1, llama.cpp de3ff81), as written by llama_state_seq_get_data for a
// unified llama_kv_cache (src/llama-kv-cache.cpp state_write/state_read):
//
//   u32 magic 0xaf143cd8, i32 seq_id, u32 n_stream
//   per stream: u32 cell_count; when > 0:
//     meta, per cell: i32 pos, u32 n_seq_id (1), i32 seq_id
//     u32 v_trans, u32 n_layer
//     per layer: i32 k_type, u64 k_row_bytes, cell_count x k_row_bytes (K rows)
//     v_trans == 0: per layer: i32 v_type, u64 v_row_bytes, cell_count x v_row_bytes
//     v_trans == 1: per layer: i32 v_type, u32 v_elem_bytes, u32 n_embd_v,
//                   n_embd_v rows of cell_count x v_elem_bytes (V transposed)
//
// This file parses such a blob, cuts its cells into (chunk, layer) segments
// and assembles a blob back from segments. A segment of chunk c and layer l
// holds the layer's K rows of the chunk's cells, then its V bytes of those
// cells (for transposed V, n_embd_v runs of chunk_tokens elements). Segments
// do not depend on how many cells the blob holds, so any prefix of chunks
// can be reassembled. The parser rejects anything else (cell extensions of
// M-RoPE models, cells shared by several sequences, a byte count that does
// not add up) with Corruption, so that a changed format fails loudly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <kvpool/result.h>

namespace kvpool::llama {

inline constexpr uint32_t kSeqStateMagic = 0xaf143cd8;

struct LayerFormat {
  int32_t k_type = 0;     // ggml_type of the K cache
  uint64_t k_row = 0;     // K bytes per cell
  int32_t v_type = 0;     // ggml_type of the V cache
  uint64_t v_row = 0;     // V bytes per cell (transposed: v_elem x n_embd_v)
  uint32_t v_elem = 0;    // transposed V only: bytes per element
  uint32_t n_embd_v = 0;  // transposed V only: elements per cell

  uint64_t CellBytes() const { return k_row + v_row; }
  bool operator==(const LayerFormat&) const = default;
};

// What does not depend on the number of cells.
struct StateFormat {
  uint32_t n_stream = 1;
  uint32_t stream = 0;  // the stream that holds the sequence's cells
  bool v_trans = false;
  std::vector<LayerFormat> layers;

  // K and V bytes of one cell in every layer.
  uint64_t CellBytes() const;
  // Exact size of a blob holding `cells` cells.
  size_t BlobBytes(uint32_t cells) const;
  bool operator==(const StateFormat&) const = default;
};

// A blob's format and where its parts are.
struct ParsedState {
  StateFormat format;
  int32_t seq_id = 0;
  uint32_t cells = 0;
  std::vector<int32_t> positions;  // pos of each cell, in cell order
  std::vector<size_t> k_offset;    // first K byte of each layer
  std::vector<size_t> v_offset;    // first V byte of each layer

  // True when cell i holds position i for every cell (a sequence decoded
  // from position 0 into an empty cache): then chunk c is cells
  // [c x chunk_tokens, (c+1) x chunk_tokens).
  bool PositionsAreCellIndices() const;
};

// Parses a blob of llama_state_seq_get_data. `n_layer` is the model's layer
// count. Errors: Corruption naming what did not match, including any byte
// count that does not add up to blob.size() exactly. A blob of an empty
// sequence parses with cells == 0 and an empty format.layers.
Result<ParsedState> ParseSeqState(std::span<const std::byte> blob, uint32_t n_layer);

// Writes the headers and cell metadata of a blob for `cells` cells at
// positions 0..cells-1 of sequence `seq_id` into `blob` (of exactly
// format.BlobBytes(cells) bytes) and returns where the K and V data go.
// REQUIRES: format came from ParseSeqState of a non-empty blob.
Result<ParsedState> WriteSeqStateHeaders(const StateFormat& format, int32_t seq_id, uint32_t cells,
                                         std::span<std::byte> blob);

// Shrinks a blob with V rows (not transposed) laid out as `state` says to its
// first `cells` cells, in place: moves their K and V rows to where a blob of
// `cells` cells keeps them, writes that blob's headers and returns its layout.
// The first format.BlobBytes(cells) bytes of `blob` are then that blob.
// REQUIRES: !state.format.v_trans, 0 < cells <= state.cells,
// blob.size() >= state.format.BlobBytes(state.cells).
Result<ParsedState> KeepFirstCells(const ParsedState& state, uint32_t cells,
                                   std::span<std::byte> blob);

// Segment payload of one (chunk, layer): chunk_tokens x CellBytes of the layer.
size_t SegmentBytes(const LayerFormat& layer, uint32_t chunk_tokens);

// Copies chunk `chunk`'s cells of layer `layer` from `blob` into `segment`
// (SegmentBytes bytes), or back. `cells` (default 0 = chunk_tokens) copies
// only the chunk's first cells, for a partial chunk: the segment keeps a
// whole chunk's layout and its bytes for the other cells are not touched.
// REQUIRES: chunk x chunk_tokens + cells <= state.cells, cells <= chunk_tokens.
void CopyOutSegment(const ParsedState& state, const std::byte* blob, uint32_t chunk,
                    uint32_t chunk_tokens, uint32_t layer, std::byte* segment, uint32_t cells = 0);
void CopyInSegment(const ParsedState& state, std::byte* blob, uint32_t chunk, uint32_t chunk_tokens,
                   uint32_t layer, const std::byte* segment, uint32_t cells = 0);

}  // namespace kvpool::llama
