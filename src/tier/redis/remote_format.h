// What the redis device stores (docs/remote.md): values are untrusted input
// (any client of the cluster may write them), so every parser checks
// lengths, names and checksums and reports Corruption naming what is wrong.
//
//   segment value  48-byte header, then the payload:
//     0  magic "KVRS"          4  version (u16), reserved (u16)
//     8  layer (u32)          12  payload length (u32)
//    16  payload checksum (u64, XXH3 as the runner computes it)
//    24  chunk key (16)       40  XXH3 of bytes [0, 40) (u64)
//   chunk record
//     0  magic "KVRC"          4  version (u16), reserved (u16)
//     8  layers (u32)         12  segment payload bytes (u32)
//    16  chunk key (16)       32  parent key (16)
//    48  layers x checksum (u64)  then XXH3 of everything before (u64)
// Integers are little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <kvpool/keys.h>
#include <kvpool/result.h>

#include "tier/remote_tier.h"

namespace kvpool::redis {

inline constexpr uint16_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 48;

// The header of the value holding (chunk, layer).
std::string EncodeSegmentHeader(const ChunkKey& chunk, uint32_t layer, uint32_t length,
                                uint64_t checksum);

// The payload of `value` when it holds (chunk, layer) with `length` bytes
// whose checksum is `checksum`; Corruption naming the mismatch otherwise.
Result<std::span<const std::byte>> ParseSegmentValue(std::string_view value, const ChunkKey& chunk,
                                                     uint32_t layer, uint32_t length,
                                                     uint64_t checksum);

std::string EncodeChunkRecord(const RemoteChunk& chunk, uint32_t segment_bytes);

// The record of `key` for a model of `layers` layers and `segment_bytes`
// segments; Corruption naming the mismatch otherwise.
Result<RemoteChunk> ParseChunkRecord(std::string_view value, const ChunkKey& key, uint32_t layers,
                                     uint32_t segment_bytes);

}  // namespace kvpool::redis
