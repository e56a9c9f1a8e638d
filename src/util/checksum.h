// Checksums of segment payloads (XXH3-64). Used in exactly one place on the
// read and write paths (core/device_runner.cc) and by on-device headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvpool {

uint64_t Checksum64(const void* data, size_t length);

// Copies `length` bytes from `src` to `dst` (which must not overlap) and
// returns Checksum64 of the bytes copied, crossing memory once for reading
// and once for writing: a small payload is hashed from `dst` piece by piece
// while in cache; on x86-64 a payload of 64 KiB or more is copied with
// non-temporal stores (`dst` is not pulled into the cache) and hashed from
// the registers the copy loaded (util/xxh3_copy.h; CPUs with AVX2 and a
// 32-byte aligned `dst`), otherwise each 16 KiB block is hashed from `src`
// right after the copy read it into L1.
// REQUIRES: nothing writes `src` during the call (a device's slot is never
// rewritten while a read of it is in flight), so the bytes hashed are the
// bytes delivered.
uint64_t CopyWithChecksum(void* dst, const void* src, size_t length);

}  // namespace kvpool
