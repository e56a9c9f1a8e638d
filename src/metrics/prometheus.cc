#include "metrics/prometheus.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kvpool::metrics {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// HELP text escapes only backslash and line feed.
std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void AddPool(Exposition& e, const PoolStats& p) {
  const char* c = "counter";
  const char* g = "gauge";
  e.Single("kvpool_pool_chunks", g, "Chunks visible to lookups.", p.chunks);
  e.Single("kvpool_pool_segments", g, "Segments stored (chunks times layers).", p.segments);
  e.Single("kvpool_pool_glt_bytes", g, "Memory of the global lookup table.", p.glt_bytes);
  e.Single("kvpool_pool_copy_chunks", g, "Chunks with a DRAM copy.", p.copy_chunks);
  e.Single("kvpool_pool_hot_probation_chunks", g, "DRAM copies read at most once.",
           p.hot_probation_chunks);
  e.Single("kvpool_pool_hot_protected_chunks", g, "DRAM copies read at least twice.",
           p.hot_protected_chunks);
  e.Single("kvpool_pool_recovered_chunks", g, "Chunks rebuilt from the devices at open.",
           p.recovered_chunks);
  e.Single("kvpool_pool_lookups_total", c, "Prefix lookups.", p.lookups);
  e.Single("kvpool_pool_hit_chunks_total", c, "Chunks found by lookups.", p.hit_chunks);
  e.Single("kvpool_pool_retrieved_chunks_total", c, "Chunks read back.", p.retrieved_chunks);
  e.Single("kvpool_pool_miss_chunks_on_error_total", c,
           "Chunks dropped from a retrieval by device errors or checksum mismatches.",
           p.miss_chunks_on_error);
  e.Single("kvpool_pool_offloaded_chunks_total", c, "Chunks stored.", p.offloaded_chunks);
  e.Single("kvpool_pool_evicted_chunks_total", c, "Chunks evicted for space.",
           p.evicted_chunks);
  e.Single("kvpool_pool_offload_rejected_chunks_total", c,
           "Chunks not stored: no space even after eviction.", p.offload_rejected_chunks);
  e.Single("kvpool_pool_copies_admitted_total", c, "DRAM copies made on offload.",
           p.copies_admitted);
  e.Single("kvpool_pool_copies_promoted_total", c, "DRAM copies made from a read.",
           p.copies_promoted);
  e.Single("kvpool_pool_copies_dropped_total", c, "DRAM copies given up.", p.copies_dropped);
  e.Single("kvpool_pool_copy_fallbacks_total", c,
           "Segment reads of a copy that failed and were read again from home.",
           p.copy_fallbacks);
  e.Single("kvpool_pool_read_from_copies_bytes_total", c,
           "Retrieval bytes served by DRAM copies.", p.bytes_read_from_copies);
  e.Single("kvpool_pool_read_from_home_bytes_total", c, "Retrieval bytes served by home devices.",
           p.bytes_read_from_home);
  e.Single("kvpool_pool_retrieve_errors_total", c, "Retrievals cut short by a device error.",
           p.retrieve_errors);
  e.Single("kvpool_pool_remote_lookups_total", c, "Local misses asked of the remote tier.",
           p.remote_lookups);
  e.Single("kvpool_pool_remote_hit_chunks_total", c, "Chunks found in the remote tier.",
           p.remote_hit_chunks);
  e.Single("kvpool_pool_remote_published_chunks_total", c,
           "Chunks this pool stored whole in the remote tier.", p.remote_published_chunks);
  e.Single("kvpool_pool_remote_write_failures_total", c,
           "Chunks whose remote copy could not be stored.", p.remote_write_failures);
  e.Single("kvpool_pool_remote_fallbacks_total", c,
           "Reads of a remote copy that failed and were read again locally.", p.remote_fallbacks);
  e.Single("kvpool_pool_read_from_remote_bytes_total", c,
           "Retrieval bytes served by the remote tier.", p.bytes_read_from_remote);
  e.Single("kvpool_pool_remote_invalidated_chunks_total", c,
           "Chunks unpublished from the remote tier: a segment was missing or damaged.",
           p.remote_invalidated_chunks);
}

// One per-device family: its name, type, help and the value of a device.
struct DeviceFamily {
  const char* name;
  const char* type;
  const char* help;
  double (*value)(const DeviceStats&);
};

double AsDouble(uint64_t v) { return static_cast<double>(v); }

const DeviceFamily kDeviceFamilies[] = {
    {"kvpool_pool_device_capacity_bytes", "gauge", "Capacity of the device.",
     [](const DeviceStats& d) { return AsDouble(d.capacity_bytes); }},
    {"kvpool_pool_device_used_bytes", "gauge", "Bytes in use.",
     [](const DeviceStats& d) { return AsDouble(d.used_bytes); }},
    {"kvpool_pool_device_segments", "gauge", "Segments stored.",
     [](const DeviceStats& d) { return AsDouble(d.segments); }},
    {"kvpool_pool_device_copy_segments", "gauge", "DRAM copy segments held (cache role).",
     [](const DeviceStats& d) { return AsDouble(d.copy_segments); }},
    {"kvpool_pool_device_queued_read_bytes", "gauge", "Read bytes queued or in flight.",
     [](const DeviceStats& d) { return AsDouble(d.queued_read_bytes); }},
    {"kvpool_pool_device_bandwidth_bytes_per_second", "gauge",
     "Read bandwidth used for placement (probed or configured).",
     [](const DeviceStats& d) { return d.bandwidth_gibps * kGiB; }},
    {"kvpool_pool_device_live_bandwidth_bytes_per_second", "gauge",
     "Observed read throughput over busy time (0 until enough reads).",
     [](const DeviceStats& d) { return d.live_gibps * kGiB; }},
    {"kvpool_pool_device_in_placement", "gauge",
     "1 while the device takes new data, 0 once taken out for errors.",
     [](const DeviceStats& d) { return d.in_placement ? 1.0 : 0.0; }},
    {"kvpool_pool_device_reads_total", "counter", "Read operations.",
     [](const DeviceStats& d) { return AsDouble(d.reads); }},
    {"kvpool_pool_device_writes_total", "counter", "Write operations.",
     [](const DeviceStats& d) { return AsDouble(d.writes); }},
    {"kvpool_pool_device_read_bytes_total", "counter", "Bytes read.",
     [](const DeviceStats& d) { return AsDouble(d.bytes_read); }},
    {"kvpool_pool_device_written_bytes_total", "counter", "Bytes written.",
     [](const DeviceStats& d) { return AsDouble(d.bytes_written); }},
    {"kvpool_pool_device_busy_seconds_total", "counter",
     "Wall time with at least one operation in flight.",
     [](const DeviceStats& d) { return d.busy_seconds; }},
    {"kvpool_pool_device_errors_total", "counter", "I/O errors and checksum mismatches.",
     [](const DeviceStats& d) { return AsDouble(d.errors); }},
    {"kvpool_pool_device_evicted_segments_total", "counter", "Segments evicted.",
     [](const DeviceStats& d) { return AsDouble(d.evicted_segments); }},
    {"kvpool_pool_device_in_flight_seconds_total", "counter",
     "Transfers in flight integrated over time; its rate is the mean queue depth reached.",
     [](const DeviceStats& d) { return d.in_flight_seconds; }},
    {"kvpool_pool_device_bounced_segments_total", "counter",
     "Operations whose payload went through a bounce buffer (unaligned caller memory).",
     [](const DeviceStats& d) { return AsDouble(d.bounced_segments); }},
    {"kvpool_pool_device_direct_alignment_bytes", "gauge",
     "Alignment of caller memory that moves without a bounce buffer; 0: always copied.",
     [](const DeviceStats& d) { return AsDouble(d.direct_alignment); }},
};

std::string DeviceLabels(const DeviceStats& d) {
  return "device=\"" + EscapeLabelValue(d.name) + "\",kind=\"" + EscapeLabelValue(d.kind) +
         "\",role=\"" + EscapeLabelValue(d.role) + "\"";
}

void AddDevices(Exposition& e, const PoolStats& p) {
  if (p.devices.empty()) return;
  std::vector<std::string> labels;
  for (const DeviceStats& d : p.devices) labels.push_back(DeviceLabels(d));
  for (const DeviceFamily& f : kDeviceFamilies) {
    e.Family(f.name, f.type, f.help);
    for (size_t i = 0; i < p.devices.size(); ++i) e.Sample(f.name, labels[i], f.value(p.devices[i]));
  }
}

}  // namespace

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

std::string FormatValue(uint64_t v) { return std::to_string(v); }

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void Exposition::Family(std::string_view name, std::string_view type, std::string_view help) {
  text_.append("# HELP ").append(name).append(" ").append(EscapeHelp(help)).append("\n");
  text_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void AddPoolFamilies(Exposition& e, const PoolStats& p) {
  AddPool(e, p);
  AddDevices(e, p);
}

}  // namespace kvpool::metrics
