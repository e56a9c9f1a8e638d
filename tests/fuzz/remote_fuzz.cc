// libFuzzer entry point for what the redis device reads from the network
// (src/tier/redis/): segment values and chunk records (any cluster client
// may write them), CLUSTER SLOTS replies and MOVED/ASK errors. The first
// input byte picks the parser, the rest is its input; RESP input goes
// through hiredis's reader first. A crash, sanitizer report or broken
// invariant (__builtin_trap) is a finding. RESP input passes RespGuard
// before hiredis's reader, as it does in NodeConnection: whatever the guard
// accepts must not make the reader allocate beyond libFuzzer's RSS limit.
// scripts/fuzz.sh builds and runs it.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tier/redis/remote_format.h"
#include "tier/redis/resp_guard.h"
#include "tier/redis/slot_map.h"

namespace kvpool::redis {
namespace {

void Check(bool invariant) {
  if (!invariant) __builtin_trap();
}

constexpr ChunkKey kKey{0x0123456789abcdefull, 0xfedcba9876543210ull};

void FuzzSegment(std::string_view v) {
  // The header's own claims, so that the fuzzer can reach the payload checks.
  const uint32_t length = v.size() >= kSegmentHeaderBytes
                              ? static_cast<uint32_t>(v.size() - kSegmentHeaderBytes)
                              : 0;
  auto p = ParseSegmentValue(v, kKey, 3, length, 42);
  if (p.ok()) {
    Check(p->size() == length);
    Check(EncodeSegmentHeader(kKey, 3, length, 42) == v.substr(0, kSegmentHeaderBytes));
  } else {
    Check(!p.status().message().empty());
  }
}

void FuzzRecord(std::string_view v) {
  for (uint32_t layers : {1u, 2u, 32u}) {
    auto r = ParseChunkRecord(v, kKey, layers, 4096);
    if (!r.ok()) {
      Check(!r.status().message().empty());
      continue;
    }
    Check(r->checksums.size() == layers && r->key == kKey);
    Check(EncodeChunkRecord(*r, 4096) == v);  // the only encoding of its content
  }
}

void FuzzResp(std::string_view v, bool redirect) {
  const HostPort from{"10.0.0.1", 7000};
  if (redirect) {
    if (auto r = ParseRedirect(v, from)) Check(r->slot < kClusterSlots && r->target.port > 0);
    return;
  }
  // Fed in two pieces, so that the guard's state across reads is exercised.
  RespGuard guard;
  const size_t half = v.size() / 2;
  if (!guard.Scan(v.substr(0, half)).ok() || !guard.Scan(v.substr(half)).ok()) return;
  redisReader* reader = redisReaderCreate();
  if (redisReaderFeed(reader, v.data(), v.size()) == REDIS_OK) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader, &reply) == REDIS_OK && reply != nullptr) {
      auto ranges = ParseClusterSlots(static_cast<redisReply*>(reply), from);
      if (ranges.ok()) {
        Check(!ranges->empty());
        for (const SlotRange& r : *ranges) {
          Check(r.first <= r.last && r.last < kClusterSlots && r.master.port > 0);
        }
      }
      freeReplyObject(reply);
    }
  }
  redisReaderFree(reader);
}

}  // namespace
}  // namespace kvpool::redis

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: kvpool::redis::FuzzSegment(body); break;
    case 1: kvpool::redis::FuzzRecord(body); break;
    case 2: kvpool::redis::FuzzResp(body, /*redirect=*/false); break;
    default: kvpool::redis::FuzzResp(body, /*redirect=*/true); break;
  }
  return 0;
}
