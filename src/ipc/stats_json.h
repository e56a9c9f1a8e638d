// PoolStats as JSON: what kvpoold's Stats reply, `kvpool stat` and the C
// API's kvpool_stats_json carry. Field names are the C++ member names.
#pragma once

#include <nlohmann/json.hpp>

#include <kvpool/pool.h>

namespace kvpool::ipc {

nlohmann::json PoolStatsToJson(const PoolStats& stats);
// Missing fields keep their defaults, so older and newer daemons interoperate.
PoolStats PoolStatsFromJson(const nlohmann::json& j);

}  // namespace kvpool::ipc
