// The superblock: block 0 of an extent. It says which pool and geometry the
// extent was formatted for, so that an extent is never reused by another
// pool or shape without an explicit reformat.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <kvpool/keys.h>

#include "format/layout.h"

namespace kvpool::format {

struct Superblock {
  uint32_t version = 0;
  ChunkKey pool_id;    // the pool's 128-bit id (namespace of shape + tenant)
  ChunkKey device_id;  // random, drawn at format time; stamped in every slot header
  Layout layout;
  uint64_t created_ns = 0;  // Unix time of formatting, ns
  std::string device_name;  // DeviceOptions::name at format time (informative)
  std::string created_by;   // "kvpool <version> on <host>" (informative)
};

// Fills `block` (kBlockBytes bytes) with `sb`, checksum included.
void EncodeSuperblock(const Superblock& sb, std::byte* block);

enum class SuperblockState {
  kMissing,  // no superblock magic: never formatted (or not ours)
  kCorrupt,  // our magic, but a bad checksum or an unknown version
  kValid,
};

struct DecodedSuperblock {
  SuperblockState state = SuperblockState::kMissing;
  Superblock sb;        // meaningful when kValid
  std::string problem;  // why, when kCorrupt
};

// Decodes block 0 (kBlockBytes bytes). A valid superblock also has a layout
// that agrees with ComputeLayout for its own slot count and payload.
DecodedSuperblock DecodeSuperblock(const std::byte* block);

}  // namespace kvpool::format
