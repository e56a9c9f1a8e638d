// The file-per-chunk device: the path today's offloading systems take. Each
// chunk stored here is one file named by its key in `path`; the segment of
// layer l sits at offset l x slot bytes inside it. Every segment operation
// opens, reads or writes, and closes its file through the kernel filesystem.
// Buffered by default; DeviceOptions::direct_io opens with O_DIRECT and Open
// fails, naming the directory, when the filesystem refuses it.
#pragma once

#include "tier/device.h"

namespace kvpool {

Result<std::unique_ptr<Device>> OpenFilePerChunkDevice(const DeviceOptions& options,
                                                       uint32_t segment_payload_bytes);

}  // namespace kvpool
