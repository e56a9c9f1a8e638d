#include "stat_cmd.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "client/daemon_connection.h"

namespace kvpool::cli {
namespace {

std::string Mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

void PrintDevices(const nlohmann::json& pool) {
  std::printf("%-14s %-7s %-5s %10s %10s %9s %9s %11s %8s %8s %6s\n", "device", "kind", "role", "cap MiB",
              "used MiB", "segments", "reads", "read MiB", "GiB/s", "live", "errors");
  for (const auto& d : pool.value("devices", nlohmann::json::array())) {
    std::printf("%-14s %-7s %-5s %10s %10s %9llu %9llu %11s %8.2f %8.2f %6llu\n",
                d.value("name", "").c_str(), d.value("kind", "").c_str(), d.value("role", "").c_str(),
                Mib(d.value("capacity_bytes", uint64_t{0})).c_str(), Mib(d.value("used_bytes", uint64_t{0})).c_str(),
                static_cast<unsigned long long>(d.value("segments", uint64_t{0})),
                static_cast<unsigned long long>(d.value("reads", uint64_t{0})),
                Mib(d.value("bytes_read", uint64_t{0})).c_str(), d.value("bandwidth_gibps", 0.0),
                d.value("live_gibps", 0.0), static_cast<unsigned long long>(d.value("errors", uint64_t{0})));
  }
}

void PrintTenants(const nlohmann::json& tenants) {
  std::printf("\n%-14s %10s %10s %8s %7s %9s %9s %10s %10s %8s\n", "tenant", "quota MiB", "used MiB", "chunks",
              "clients", "lookups", "hits", "retrieved", "offloaded", "evicted");
  for (const auto& t : tenants) {
    auto u = [&](const char* k) { return static_cast<unsigned long long>(t.value(k, uint64_t{0})); };
    const uint64_t quota = t.value("quota_bytes", uint64_t{0});
    std::printf("%-14s %10s %10s %8llu %7llu %9llu %9llu %10llu %10llu %8llu\n", t.value("name", "").c_str(),
                quota == 0 ? "-" : Mib(quota).c_str(), Mib(t.value("used_bytes", uint64_t{0})).c_str(), u("chunks"),
                u("clients"), u("lookups"), u("hit_chunks"), u("retrieved_chunks"), u("offloaded_chunks"),
                u("quota_evicted_chunks"));
  }
}

}  // namespace

int RunStat(const StatOptions& options) {
  ipc::HelloOk hello;
  auto conn = client::DaemonConnection::Open(options.socket, "", nullptr, options.timeout_ms, &hello);
  if (!conn.ok()) {
    std::fprintf(stderr, "kvpool stat: %s\n", conn.status().ToString().c_str());
    return 1;
  }
  auto reply = (*conn)->Call(ipc::MsgType::kStats, {});
  if (!reply.ok()) {
    std::fprintf(stderr, "kvpool stat: %s\n", reply.status().ToString().c_str());
    return 1;
  }
  if (options.json) {
    std::printf("%s\n", reply->text.c_str());
    return 0;
  }
  auto j = nlohmann::json::parse(reply->text, nullptr, false);
  if (j.is_discarded()) {
    std::fprintf(stderr, "kvpool stat: the daemon's stats are not JSON\n");
    return 1;
  }
  const auto& pool = j["pool"];
  std::printf("kvpoold on %s: model %s, %llu chunks, %zu clients, %llu refused\n\n", options.socket.c_str(),
              hello.shape.name.c_str(), static_cast<unsigned long long>(pool.value("chunks", uint64_t{0})),
              j["clients"].size(), static_cast<unsigned long long>(j.value("refused_clients", uint64_t{0})));
  PrintDevices(pool);
  PrintTenants(j["tenants"]);
  return 0;
}

}  // namespace kvpool::cli
