// On-device format of extent devices: every number that is part of the
// format. docs/format.md describes the layout these constants define.
//
// NEVER renumber, resize or reuse a value below: extents written by an older
// kvpool must keep reading the same. Add new fields in reserved space and
// bump kFormatVersion only when an older reader would misread new data.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvpool::format {

// Version 1: superblock, A/B checkpoints, one 4 KiB header per slot.
inline constexpr uint32_t kFormatVersion = 1;

// Every on-device structure is aligned to and padded to this many bytes.
inline constexpr uint32_t kBlockBytes = 4096;
// The data area (slots) starts at a multiple of this many bytes.
inline constexpr uint64_t kDataAlignment = 1u << 20;

// 8-byte ASCII magics, stored as bytes in this order.
inline constexpr char kSuperblockMagic[8] = {'K', 'V', 'P', 'O', 'O', 'L', 'S', 'B'};
inline constexpr char kSlotMagic[8] = {'K', 'V', 'P', 'S', 'L', 'O', 'T', 'H'};
inline constexpr char kCheckpointMagic[8] = {'K', 'V', 'P', 'C', 'K', 'P', 'T', 'H'};

// --- Superblock: block 0 of the extent (kBlockBytes bytes) ---
namespace sb {
inline constexpr size_t kMagic = 0;             // 8 bytes
inline constexpr size_t kVersion = 8;           // u32
inline constexpr size_t kBytes = 12;            // u32, kBlockBytes
inline constexpr size_t kFlags = 16;            // u64, 0 (reserved)
inline constexpr size_t kPoolId = 24;           // 16 bytes: hi u64, lo u64
inline constexpr size_t kDeviceId = 40;         // 16 bytes: hi u64, lo u64
inline constexpr size_t kSlotPayload = 56;      // u32, payload bytes per slot (multiple of 4096)
inline constexpr size_t kSlotHeaderBytes = 60;  // u32, kBlockBytes
inline constexpr size_t kSlotCount = 64;        // u64
inline constexpr size_t kSlotBytes = 72;        // u64, header + payload
inline constexpr size_t kCheckpointA = 80;      // u64, byte offset of checkpoint copy A
inline constexpr size_t kCheckpointB = 88;      // u64, byte offset of checkpoint copy B
inline constexpr size_t kCheckpointBytes = 96;  // u64, bytes of one copy
inline constexpr size_t kDataOffset = 104;      // u64, byte offset of slot 0
inline constexpr size_t kTotalBytes = 112;      // u64, bytes the extent uses
inline constexpr size_t kCreatedNs = 120;       // u64, creation time, Unix ns
inline constexpr size_t kDeviceName = 128;      // 64 bytes, NUL-padded
inline constexpr size_t kCreatedBy = 192;       // 64 bytes, NUL-padded
inline constexpr size_t kTextBytes = 64;
inline constexpr size_t kChecksum = 4088;  // u64, XXH3-64 of bytes [0, 4088)
}  // namespace sb

// --- Slot header: the first kBlockBytes of every slot ---
namespace slot {
inline constexpr size_t kMagic = 0;         // 8 bytes
inline constexpr size_t kVersion = 8;       // u32
inline constexpr size_t kHeaderBytes = 12;  // u32, kBlockBytes
inline constexpr size_t kChunk = 16;        // 16 bytes: hi u64, lo u64
inline constexpr size_t kParent = 32;       // 16 bytes: hi u64, lo u64
inline constexpr size_t kLayer = 48;        // u32
inline constexpr size_t kLength = 52;       // u32, payload bytes (> 0)
inline constexpr size_t kPayloadSum = 56;   // u64, XXH3-64 of the payload's `length` bytes
inline constexpr size_t kSequence = 64;     // u64, the pool's write sequence number
inline constexpr size_t kWriteId = 72;      // u64, the device's write counter
inline constexpr size_t kPoolId = 80;       // 16 bytes
inline constexpr size_t kDeviceId = 96;     // 16 bytes
inline constexpr size_t kSlotIndex = 112;   // u32, this slot's index (misdirected writes)
inline constexpr size_t kReserved = 116;    // u32, 0
inline constexpr size_t kChecksum = 120;    // u64, XXH3-64 of bytes [0, 120)
inline constexpr size_t kUsedBytes = 128;   // bytes [128, 4096) are zero and ignored
}  // namespace slot

// --- Checkpoint copy: one header block, then slot_count entries ---
namespace ckpt {
inline constexpr size_t kMagic = 0;         // 8 bytes
inline constexpr size_t kVersion = 8;       // u32
inline constexpr size_t kEntryBytes = 12;   // u32, kEntrySize
inline constexpr size_t kGeneration = 16;   // u64, > 0; the newest valid copy wins
inline constexpr size_t kDeviceId = 24;     // 16 bytes
inline constexpr size_t kSlotCount = 40;    // u64
inline constexpr size_t kNextWriteId = 48;  // u64, larger than every write id in the entries
inline constexpr size_t kEntriesSum = 56;   // u64, XXH3-64 of the slot_count entries
inline constexpr size_t kWrittenNs = 64;    // u64, Unix ns
inline constexpr size_t kFlags = 72;        // u32, bit 0: written at a clean close
inline constexpr size_t kChecksum = 120;    // u64, XXH3-64 of bytes [0, 120)
inline constexpr uint32_t kFlagClean = 1;

// One entry per slot, kEntrySize bytes, starting kBlockBytes after the header.
inline constexpr size_t kEntrySize = 64;
inline constexpr size_t kEntryChunk = 0;      // 16 bytes
inline constexpr size_t kEntryParent = 16;    // 16 bytes
inline constexpr size_t kEntrySequence = 32;  // u64
inline constexpr size_t kEntryWriteId = 40;   // u64, last write id seen for the slot
inline constexpr size_t kEntrySum = 48;       // u64, payload checksum
inline constexpr size_t kEntryLayer = 56;     // u32
inline constexpr size_t kEntryLength = 60;    // u32, 0 = the slot is free
}  // namespace ckpt

}  // namespace kvpool::format
