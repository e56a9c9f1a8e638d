// A C++ program against the installed kvpool (find_package(kvpool)): opens
// an in-process pool from the TOML file argv[1] with kvpool::OpenPool,
// offloads one chunk, retrieves it and compares the bytes. Also calls the C
// API, which the same library carries. Exit status 0 when they match.
#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

#include <kvpool/c.h>
#include <kvpool/client.h>
#include <kvpool/kvpool.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s POOL.toml\n", argv[0]);
    return 2;
  }
  auto pool = kvpool::OpenPool(argv[1]);
  if (!pool.ok()) {
    std::fprintf(stderr, "hello.cc: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  const kvpool::ModelShape& shape = (*pool)->options().shape;
  const size_t seg = shape.SegmentPayloadBytes();
  std::vector<int32_t> tokens(shape.chunk_tokens);
  std::iota(tokens.begin(), tokens.end(), 5);
  const auto ns = kvpool::Namespace::Make(shape.Fingerprint(), "");
  const std::vector<kvpool::ChunkKey> keys = kvpool::ChainChunkKeys(ns, tokens, shape.chunk_tokens);

  std::vector<std::vector<std::byte>> src(shape.layers, std::vector<std::byte>(seg));
  std::vector<std::vector<std::byte>> dst(shape.layers, std::vector<std::byte>(seg));
  kvpool::ConstKvBuffer in;
  kvpool::KvBuffer out;
  for (uint32_t l = 0; l < shape.layers; ++l) {
    for (size_t i = 0; i < seg; ++i) src[l][i] = static_cast<std::byte>(i * 11 + l);
    in.layer_base.push_back(src[l].data());
    out.layer_base.push_back(dst[l].data());
  }
  in.chunk_stride = out.chunk_stride = seg;

  auto offload = (*pool)->Offload(keys, in);
  auto stored = offload.ok() ? offload->Wait() : kvpool::Result<size_t>(offload.status());
  if (!stored.ok() || *stored != 1) {
    std::fprintf(stderr, "hello.cc: offload: %s\n", stored.status().ToString().c_str());
    return 1;
  }
  auto retrieve = (*pool)->Retrieve(keys, out, {});
  auto held = retrieve.ok() ? retrieve->Wait() : kvpool::Result<size_t>(retrieve.status());
  if (!held.ok() || *held != 1 || src != dst) {
    std::fprintf(stderr, "hello.cc: retrieve: %s\n", held.status().ToString().c_str());
    return 1;
  }
  std::printf("hello.cc: ok (%u layers, %zu bytes per segment; C API says '%s')\n", shape.layers,
              seg, kvpool_status_name(KVPOOL_OK));
  return 0;
}
