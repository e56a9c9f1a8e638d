// A pool process for the remote-tier tests that span processes and network
// namespaces (netns_test.sh): `write` stores deterministic chunks into a pool
// of a local file device plus the cluster; `read` opens another such pool
// and checks that it finds and reads back every chunk, byte for byte.
//   remote_peer write|read --nodes H:P[,H:P...] --dir DIR --chunks N --seed S
// Exit status: 0 on success, 1 on a failed check (printed), 2 on bad usage.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include <kvpool/kvpool.h>

#include "test_util.h"

namespace kvpool::testing {
namespace {

struct Args {
  std::string mode, nodes, dir;
  size_t chunks = 16;
  uint64_t seed = 1;
};

ModelShape Shape() {
  ModelShape s;
  s.name = "remote-peer";
  s.layers = 4;
  s.kv_heads = 2;
  s.head_dim = 32;
  return s;
}

bool Parse(int argc, char** argv, Args* a) {
  if (argc < 2) return false;
  a->mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--nodes") a->nodes = v;
    else if (k == "--dir") a->dir = v;
    else if (k == "--chunks") a->chunks = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--seed") a->seed = std::strtoull(v.c_str(), nullptr, 10);
    else return false;
  }
  return (a->mode == "write" || a->mode == "read") && !a->nodes.empty() && !a->dir.empty();
}

PoolOptions Options(const Args& a) {
  PoolOptions o;
  o.shape = Shape();
  DeviceOptions f;
  f.name = "ssd";
  f.kind = DeviceKind::kFilePerChunk;
  f.path = a.dir;
  f.capacity_bytes = 64ull << 20;
  f.bandwidth_gibps = 1;
  o.devices.push_back(f);
  DeviceOptions r;
  r.name = "remote";
  r.kind = DeviceKind::kRedis;
  std::stringstream ss(a.nodes);
  for (std::string n; std::getline(ss, n, ',');) r.nodes.push_back(n);
  r.capacity_bytes = 64ull << 20;
  r.bandwidth_gibps = 1;
  r.key_prefix = "peer:";
  r.timeout_ms = 2000;
  o.devices.push_back(r);
  return o;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "remote_peer: %s\n", what.c_str());
  return 1;
}

int Run(const Args& a) {
  auto pool = Pool::Open(Options(a));
  if (!pool.ok()) return Fail("open: " + pool.status().ToString());
  const ModelShape shape = Shape();
  const auto keys = MakeKeys(shape, a.chunks, a.seed);
  KvData expected(shape, a.chunks, a.seed);
  if (a.mode == "write") {
    auto h = (*pool)->Offload(keys, expected.ConstView());
    if (!h.ok()) return Fail("offload: " + h.status().ToString());
    auto n = h->Wait();
    const PoolStats s = (*pool)->Stats();
    if (!n.ok() || *n != a.chunks || s.remote_published_chunks != a.chunks) {
      return Fail("stored " + std::to_string(n.ok() ? *n : 0) + " chunks, published " +
                  std::to_string(s.remote_published_chunks) + " of " + std::to_string(a.chunks));
    }
    std::printf("remote_peer: wrote %zu chunks\n", a.chunks);
    return 0;
  }
  const size_t found = (*pool)->Lookup(keys);
  if (found != a.chunks) return Fail("found " + std::to_string(found) + " of " + std::to_string(a.chunks));
  KvData got(shape, a.chunks);
  auto h = (*pool)->Retrieve(keys, got.View(), {});
  if (!h.ok()) return Fail("retrieve: " + h.status().ToString());
  auto n = h->Wait();
  if (!n.ok() || *n != a.chunks) return Fail("retrieved " + std::to_string(n.ok() ? *n : 0));
  if (!got.SameAs(expected, a.chunks)) return Fail("bytes differ from what the writer stored");
  std::printf("remote_peer: read %zu chunks (%llu bytes from the remote tier), all equal\n",
              a.chunks, static_cast<unsigned long long>((*pool)->Stats().bytes_read_from_remote));
  return 0;
}

}  // namespace
}  // namespace kvpool::testing

int main(int argc, char** argv) {
  kvpool::testing::Args a;
  if (!kvpool::testing::Parse(argc, argv, &a)) {
    std::fprintf(stderr, "usage: remote_peer write|read --nodes H:P[,...] --dir DIR [--chunks N] [--seed S]\n");
    return 2;
  }
  return kvpool::testing::Run(a);
}
