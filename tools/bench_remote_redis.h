// The Redis side of `kvpool bench remote`: cluster nodes as the bench names
// them, the cluster's masters, and redis-benchmark (the reference) run and
// parsed, all through redis-cli and redis-benchmark (redis-tools).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include <kvpool/result.h>

namespace kvpool::cli {

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// "host:port[,host:port...]"; InvalidArgument naming --nodes and the bad
// entry. Hosts are names or IPv4 addresses (letters, digits, '.', '-', '_').
Result<std::vector<Endpoint>> ParseEndpoints(const std::string& text);

struct ShellResult {
  int rc = 0;
  std::string output;  // stdout and stderr, lines joined with "; ", trimmed
};
// Runs `command` with /bin/sh; rc is its exit status (-1 when it could not run).
ShellResult RunShell(const std::string& command);

// The cluster's masters not marked failed (CLUSTER NODES of the first seed
// that answers), in port order. IOError naming the seeds when none answers
// or redis-cli is missing.
Result<std::vector<Endpoint>> ClusterMasters(const std::vector<Endpoint>& seeds);

// One `redis-benchmark --cluster -t set,get` run.
struct RedisBenchmarkJob {
  Endpoint seed;
  size_t value_bytes = 0;  // -d
  size_t requests = 0;     // -n, for SET and then for GET
  size_t keyspace = 0;     // -r: keys per master
  uint32_t clients = 0;    // -c: spread over the masters round-robin
  uint32_t pipeline = 0;   // -P
  uint32_t threads = 0;    // --threads
};

// The reference for a redis device of `io_threads` x `queue_depth` reading
// `segments` segments of `payload_bytes` from `masters` masters: values of
// payload + the 48-byte segment header; as many connections as the device
// holds (one per thread and master: -c io_threads x masters, where plain
// -c io_threads would leave masters without clients) and as many requests in
// flight (-P queue_depth / masters, rounded up); as many requests as
// segments; a keyspace small enough that the SETs cover it (8 SETs per key)
// so that the GETs find values.
RedisBenchmarkJob ReferenceJob(const Endpoint& seed, size_t payload_bytes, size_t segments,
                               size_t masters, uint32_t io_threads, uint32_t queue_depth);
std::string RedisBenchmarkCommand(const RedisBenchmarkJob& job);

struct RedisBenchmarkResult {
  std::string command;
  double set_rps = 0;
  double get_rps = 0;
  uint64_t get_hits = 0;    // keyspace_hits over the masters during the run
  uint64_t get_misses = 0;  // keyspace_misses: GETs answered nil (no value bytes)
  double get_gibps = 0;     // get_rps x hit fraction x value_bytes
  double HitFraction() const {
    const uint64_t n = get_hits + get_misses;
    return n == 0 ? 0 : double(get_hits) / double(n);
  }
};

// Runs `job` (bounded to 10 minutes) and reads the masters' keyspace
// counters around it. IOError with redis-benchmark's output when it fails
// or prints no GET line; Unsupported when it is not installed.
Result<RedisBenchmarkResult> RunRedisBenchmark(const RedisBenchmarkJob& job,
                                               const std::vector<Endpoint>& masters);

// Deletes, on every master, the keys redis-benchmark's SET test writes
// ("key:{<tag>}:<12 digits>"). Best effort.
void RemoveRedisBenchmarkKeys(const std::vector<Endpoint>& masters);

nlohmann::json ToJson(const RedisBenchmarkResult& r);

}  // namespace kvpool::cli
