#include "metrics_server.h"

#include <httplib.h>

#include "metrics/prometheus.h"

namespace kvpool::daemon {
namespace {

struct TenantFamily {
  const char* key;   // field of the tenant's JSON
  const char* name;  // metric name
  const char* type;
  const char* help;
};

const TenantFamily kTenantFamilies[] = {
    {"quota_bytes", "kvpoold_tenant_quota_bytes", "gauge", "Bytes the tenant may hold (0 = unlimited)."},
    {"used_bytes", "kvpoold_tenant_used_bytes", "gauge", "Bytes of the tenant's chunks."},
    {"chunks", "kvpoold_tenant_chunks", "gauge", "Chunks the tenant holds."},
    {"clients", "kvpoold_tenant_clients", "gauge", "Clients connected as the tenant."},
    {"connects", "kvpoold_tenant_connects_total", "counter", "Connections accepted."},
    {"refused", "kvpoold_tenant_refused_total", "counter", "Connections refused for their credentials."},
    {"lookups", "kvpoold_tenant_lookups_total", "counter", "Prefix lookups."},
    {"hit_chunks", "kvpoold_tenant_hit_chunks_total", "counter", "Chunks found by lookups."},
    {"retrieved_chunks", "kvpoold_tenant_retrieved_chunks_total", "counter", "Chunks read back."},
    {"retrieved_bytes", "kvpoold_tenant_retrieved_bytes_total", "counter", "Bytes read back."},
    {"offloaded_chunks", "kvpoold_tenant_offloaded_chunks_total", "counter", "Chunks stored."},
    {"offloaded_bytes", "kvpoold_tenant_offloaded_bytes_total", "counter", "Bytes stored."},
    {"quota_evicted_chunks", "kvpoold_tenant_quota_evicted_chunks_total", "counter",
     "Chunks removed to keep the tenant within its quota."},
    {"quota_refused_chunks", "kvpoold_tenant_quota_refused_chunks_total", "counter",
     "Chunks not stored: more than the whole quota."},
    {"bad_requests", "kvpoold_tenant_bad_requests_total", "counter", "Requests refused as malformed."},
};

bool LoopbackHost(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

std::string DaemonMetricsText(const nlohmann::json& stats, const PoolStats& pool) {
  metrics::Exposition e;
  metrics::AddPoolFamilies(e, pool);
  e.Single("kvpoold_clients", "gauge", "Clients connected.", static_cast<uint64_t>(stats["clients"].size()));
  e.Single("kvpoold_refused_clients_total", "counter", "Connections refused: daemon.max_clients reached.",
           stats.value("refused_clients", uint64_t{0}));
  e.Single("kvpoold_bandwidth_reprobes_total", "counter", "Device bandwidths measured again (SIGHUP).",
           stats.value("bandwidth_reprobes", uint64_t{0}));
  const nlohmann::json& tenants = stats["tenants"];
  for (const TenantFamily& f : kTenantFamilies) {
    e.Family(f.name, f.type, f.help);
    for (const auto& t : tenants) {
      std::string labels = "tenant=\"" + metrics::EscapeLabelValue(t.value("name", "")) + "\"";
      e.Sample(f.name, labels, t.value(f.key, uint64_t{0}));
    }
  }
  return e.Take();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                            std::function<std::string()> text) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("daemon.metrics '" + address + "' must be HOST:PORT");
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (!LoopbackHost(host)) {
    return Status::InvalidArgument("daemon.metrics host '" + host + "' is not a loopback address");
  }
  int port = 0;
  try {
    port = std::stoi(address.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) return Status::InvalidArgument("daemon.metrics port in '" + address + "' is not valid");
  std::unique_ptr<MetricsServer> m(new MetricsServer());
  m->server_ = std::make_unique<httplib::Server>();
  m->server_->Get("/metrics", [text](const httplib::Request&, httplib::Response& res) {
    res.set_content(text(), metrics::kPrometheusContentType);
  });
  m->port_ = port == 0 ? m->server_->bind_to_any_port(host) : (m->server_->bind_to_port(host, port) ? port : -1);
  if (m->port_ <= 0) return Status::IOError("daemon.metrics: cannot bind " + address);
  m->thread_ = std::thread([srv = m->server_.get()] { srv->listen_after_bind(); });
  return m;
}

MetricsServer::~MetricsServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace kvpool::daemon
