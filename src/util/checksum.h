// Checksums of segment payloads (XXH3-64). Used in exactly one place on the
// read and write paths (core/device_runner.cc) and by on-device headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvpool {

uint64_t Checksum64(const void* data, size_t length);

// Copies `length` bytes from `src` to `dst` (which must not overlap) and
// returns Checksum64 of the bytes written to `dst`. Each piece is hashed from
// `dst` while it is still in cache, so a large payload crosses the memory
// bus once instead of twice.
uint64_t CopyWithChecksum(void* dst, const void* src, size_t length);

}  // namespace kvpool
