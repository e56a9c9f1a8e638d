// Checksums of segment payloads (XXH3-64). Used in exactly one place on the
// read and write paths (core/device_runner.cc) and by on-device headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvpool {

uint64_t Checksum64(const void* data, size_t length);

}  // namespace kvpool
