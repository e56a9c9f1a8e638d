#include "bench_remote_redis.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench_util.h"

namespace kvpool::cli {
namespace {

bool HostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// "ip:port@cport[,hostname]" (CLUSTER NODES' address field) or "host:port".
bool ParseAddress(const std::string& text, Endpoint* out) {
  const std::string addr = text.substr(0, text.find('@'));
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == addr.size()) return false;
  const std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
  if (!std::all_of(host.begin(), host.end(), HostChar)) return false;
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return false;
  const int p = std::atoi(port.c_str());
  if (p < 1 || p > 65535) return false;
  *out = Endpoint{host, static_cast<uint16_t>(p)};
  return true;
}

std::string Cli(const Endpoint& e) { return "redis-cli -h " + e.host + " -p " + std::to_string(e.port); }

// Sum of `field` ("keyspace_hits") over the masters' INFO stats.
uint64_t SumInfo(const std::vector<Endpoint>& masters, const std::string& field) {
  uint64_t sum = 0;
  for (const Endpoint& m : masters) {
    ShellResult r = RunShell("timeout 10 " + Cli(m) + " info stats");
    const size_t at = r.output.find(field + ":");
    if (at != std::string::npos) sum += std::strtoull(r.output.c_str() + at + field.size() + 1, nullptr, 10);
  }
  return sum;
}

// rps of `test` in redis-benchmark's --csv output ("GET","1234.56",...); 0 when absent.
double CsvRps(const std::string& out, const std::string& test) {
  const std::string key = "\"" + test + "\",\"";
  const size_t at = out.find(key);
  return at == std::string::npos ? 0 : std::strtod(out.c_str() + at + key.size(), nullptr);
}

}  // namespace

Result<std::vector<Endpoint>> ParseEndpoints(const std::string& text) {
  std::vector<Endpoint> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    Endpoint e;
    if (!ParseAddress(item, &e) || item.find('@') != std::string::npos) {
      return Status::InvalidArgument("--nodes: '" + item + "' is not host:port");
    }
    out.push_back(e);
  }
  if (out.empty()) return Status::InvalidArgument("--nodes: give at least one host:port");
  return out;
}

ShellResult RunShell(const std::string& command) {
  Result<CommandOutput> run = RunCommand(command + " 2>&1");
  if (!run.ok()) return {-1, run.status().message()};
  ShellResult r;
  r.rc = run->exit_code;
  std::stringstream lines(run->text);
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) r.output += (r.output.empty() ? "" : "; ") + line;
  }
  return r;
}

Result<std::vector<Endpoint>> ClusterMasters(const std::vector<Endpoint>& seeds) {
  if (RunShell("command -v redis-cli").rc != 0) {
    return Status::Unsupported("redis-cli is not installed (scripts/setup.sh installs redis-tools)");
  }
  std::string tried;
  for (const Endpoint& seed : seeds) {
    ShellResult r = RunShell("timeout 10 " + Cli(seed) + " cluster nodes");
    tried += (tried.empty() ? "" : ", ") + seed.ToString() + " (" + r.output.substr(0, 120) + ")";
    if (r.rc != 0) continue;
    std::vector<Endpoint> masters;
    std::stringstream in(r.output);
    for (std::string line; std::getline(in, line, ';');) {
      std::stringstream f(line);
      std::string id, addr, flags;
      f >> id >> addr >> flags;
      const std::string fl = "," + flags + ",";
      Endpoint e;
      if (fl.find(",master,") != std::string::npos && fl.find(",fail,") == std::string::npos &&
          ParseAddress(addr, &e)) {
        masters.push_back(e);
      }
    }
    if (masters.empty()) continue;
    std::sort(masters.begin(), masters.end(),
              [](const Endpoint& a, const Endpoint& b) { return a.port < b.port; });
    return masters;
  }
  return Status::IOError("no seed node answers CLUSTER NODES with masters: " + tried);
}

RedisBenchmarkJob ReferenceJob(const Endpoint& seed, size_t payload_bytes, size_t segments,
                               size_t masters, uint32_t io_threads, uint32_t queue_depth) {
  RedisBenchmarkJob j;
  const uint32_t m = static_cast<uint32_t>(std::max<size_t>(masters, 1));
  j.seed = seed;
  j.value_bytes = payload_bytes + 48;
  j.requests = segments;
  j.keyspace = std::max<size_t>(1, segments / (m * 8));
  j.clients = io_threads * m;
  j.pipeline = (queue_depth + m - 1) / m;
  j.threads = io_threads;
  return j;
}

std::string RedisBenchmarkCommand(const RedisBenchmarkJob& j) {
  return "redis-benchmark --cluster -h " + j.seed.host + " -p " + std::to_string(j.seed.port) +
         " -t set,get -d " + std::to_string(j.value_bytes) + " -n " + std::to_string(j.requests) +
         " -r " + std::to_string(j.keyspace) + " -c " + std::to_string(j.clients) + " -P " +
         std::to_string(j.pipeline) + " --threads " + std::to_string(j.threads) + " --csv -q";
}

Result<RedisBenchmarkResult> RunRedisBenchmark(const RedisBenchmarkJob& job,
                                               const std::vector<Endpoint>& masters) {
  if (RunShell("command -v redis-benchmark").rc != 0) {
    return Status::Unsupported("redis-benchmark is not installed (scripts/setup.sh installs redis-tools)");
  }
  RedisBenchmarkResult r;
  r.command = RedisBenchmarkCommand(job);
  const uint64_t hits0 = SumInfo(masters, "keyspace_hits");
  const uint64_t misses0 = SumInfo(masters, "keyspace_misses");
  ShellResult run = RunShell("timeout 600 " + r.command);
  r.set_rps = CsvRps(run.output, "SET");
  r.get_rps = CsvRps(run.output, "GET");
  if (run.rc != 0 || r.get_rps <= 0) {
    return Status::IOError("redis-benchmark failed (exit " + std::to_string(run.rc) +
                           "): " + run.output.substr(0, 600));
  }
  r.get_hits = SumInfo(masters, "keyspace_hits") - hits0;
  r.get_misses = SumInfo(masters, "keyspace_misses") - misses0;
  r.get_gibps = r.get_rps * r.HitFraction() * double(job.value_bytes) / double(1ull << 30);
  return r;
}

void RemoveRedisBenchmarkKeys(const std::vector<Endpoint>& masters) {
  const std::string pattern = "'key:{*}:" + [] {
    std::string d;
    for (int i = 0; i < 12; ++i) d += "[0-9]";
    return d;
  }() + "'";
  for (const Endpoint& m : masters) {
    RunShell("timeout 60 " + Cli(m) + " --scan --pattern " + pattern + " | xargs -r -n 100 " +
             Cli(m) + " unlink >/dev/null");
  }
}

nlohmann::json ToJson(const RedisBenchmarkResult& r) {
  return {{"command", r.command},       {"set_rps", r.set_rps},
          {"get_rps", r.get_rps},       {"get_hits", r.get_hits},
          {"get_misses", r.get_misses}, {"get_gibps", r.get_gibps}};
}

}  // namespace kvpool::cli
