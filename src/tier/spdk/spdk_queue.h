// The SPDK engine of the extent device: one NVMe I/O qpair per RawQueue (per
// worker thread), bounce buffers in DMA-able memory (spdk_dma_zmalloc), and
// direct transfers (raw_queue.h) as NVMe scatter lists: the slot header and
// a payload's partial last block in the bounce buffer, the payload's whole
// blocks in the caller's memory. Over NVMe/TCP any aligned memory goes
// direct; over PCIe and RDMA only memory SPDK can translate
// (spdk_mem_register, spdk_dma_malloc), the rest is bounced. Completions are
// polled by the calling thread (spdk_nvme_qpair_process_completions)
// inside Run/RunStream: the worker spins while its transfers are in flight
// (yielding the CPU every 64 empty polls) and sleeps in the runner between
// batches, so polling costs CPU only while there is I/O. Its cost is counted
// in SpdkPollStats (Device::Describe shows it).
//
// A transfer that fails is -EIO; one not completed within the controller's
// timeout, or a qpair that disconnects, fails the controller: the qpair is
// freed (no late completion can touch a buffer), every transfer in flight
// gets -ETIMEDOUT or -EIO, and the queue fails every later transfer at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <kvpool/result.h>

#include "tier/extent/raw_queue.h"
#include "tier/spdk/spdk_controller.h"

namespace kvpool {

// A queue of `depth` transfers of at most `buffer_bytes` each. Errors:
// NoSpace (DMA memory; raise KVPOOL_SPDK_MEM_MB), IOError (no qpair).
Result<std::unique_ptr<RawQueue>> NewSpdkQueue(std::shared_ptr<SpdkController> controller,
                                               uint32_t depth, size_t buffer_bytes);

}  // namespace kvpool
