// GET /metrics: the scheduler's and the pool's counters in the Prometheus
// text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// Every family has # HELP and # TYPE lines; counters end in _total; names
// are kvpool_serve_* (requests, tokens, slots, offloads) and kvpool_pool_*
// (the pool; per-device families carry the labels device, kind and role).
// Quantities are in base units: bytes, seconds, bytes per second.
#pragma once

#include <string>
#include <string_view>

#include <kvpool/pool.h>

#include "metrics/prometheus.h"
#include "scheduler.h"

namespace kvpool::serve {

// The content type of PrometheusText's output.
inline constexpr const char* kPrometheusContentType = metrics::kPrometheusContentType;

// `pool` may be null (no pool families then).
std::string PrometheusText(const SchedulerStats& s, const PoolStats* pool);

// A label value as the format writes it: backslash, double quote and line
// feed escaped as \\, \" and \n.
std::string EscapeLabelValue(std::string_view value);

}  // namespace kvpool::serve
