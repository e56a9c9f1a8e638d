#include "ipc/stats_json.h"

namespace kvpool {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(
    DeviceStats, name, kind, role, bandwidth_gibps, bandwidth_probed, solo_gibps, live_gibps,
    contention_group, in_placement, capacity_bytes, used_bytes, segments, reads, writes, bytes_read,
    bytes_written, busy_seconds, errors, evicted_segments, copy_segments, queued_read_bytes,
    in_flight_seconds, mean_in_flight, bounced_segments, direct_alignment)

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(
    PoolStats, devices, chunks, segments, glt_bytes, glt_bytes_per_segment, lookups, hit_chunks,
    retrieved_chunks, miss_chunks_on_error, offloaded_chunks, evicted_chunks, offload_rejected_chunks,
    recovered_chunks, unreachable_reclaimed_chunks, copy_chunks, hot_probation_chunks,
    hot_protected_chunks, copies_admitted, copies_promoted, copies_dropped, copy_fallbacks,
    bytes_read_from_copies, bytes_read_from_home, retrieve_errors, remote_lookups,
    remote_hit_chunks, remote_published_chunks, remote_write_failures, remote_fallbacks,
    bytes_read_from_remote, remote_invalidated_chunks)

namespace ipc {

nlohmann::json PoolStatsToJson(const PoolStats& stats) { return stats; }

PoolStats PoolStatsFromJson(const nlohmann::json& j) {
  try {
    return j.get<PoolStats>();
  } catch (const nlohmann::json::exception&) {
    return PoolStats{};
  }
}

}  // namespace ipc
}  // namespace kvpool
