// A device wrapper that injects faults on chosen operations, for tests.
// Faults are armed through a shared FaultPlan that the test keeps.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>

#include "tier/device.h"

namespace kvpool::testing {

struct FaultPlan {
  // Reads of these slots fail with an I/O error.
  std::set<uint32_t> fail_read_slots;
  // Reads of these slots return data with one bit flipped.
  std::set<uint32_t> flip_read_slots;
  // Every read fails / every write fails.
  bool fail_all_reads = false;
  bool fail_all_writes = false;
  // Flip one bit in the N-th read from now (1 = next), 0 = off.
  uint64_t flip_nth_read = 0;
  // The `slow_read_count` reads after the next `slow_reads_after` reads each
  // take `read_delay` longer (a disturbed machine, for probes); data intact.
  uint64_t slow_reads_after = 0;
  uint64_t slow_read_count = 0;
  std::chrono::microseconds read_delay{0};

  std::mutex mu;  // guards all of the above
  std::atomic<uint64_t> injected{0};
};

std::unique_ptr<Device> NewFaultDevice(std::unique_ptr<Device> inner,
                                       std::shared_ptr<FaultPlan> plan);

}  // namespace kvpool::testing
