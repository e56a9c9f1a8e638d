// libFuzzer entry point for kvpoold's wire decoders (src/ipc/wire.cc), which
// read bytes from any local process. The first input byte picks a decoder,
// the rest is its body; the header decoder also reads the first 24 bytes.
// A decoded message must encode and decode back to itself, and a region
// check must never overflow: a crash, sanitizer report or broken invariant
// (__builtin_trap) is a finding. scripts/fuzz.sh builds and runs it.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ipc/wire.h"

namespace kvpool::ipc {
namespace {

void Check(bool invariant) {
  if (!invariant) __builtin_trap();
}

template <typename T, typename Encode, typename Decode>
void RoundTrip(std::span<const std::byte> body, Decode decode, Encode encode) {
  Result<T> first = decode(body);
  if (!first.ok()) {
    Check(!first.status().message().empty());
    return;
  }
  std::vector<std::byte> again = encode(*first);
  Result<T> second = decode(again);
  Check(second.ok());
  Check(encode(*second) == again);
}

bool SameSpan(const RegionSpan& a, const RegionSpan& b) {
  return a.keys == b.keys && a.first_chunk == b.first_chunk && a.chunk_stride == b.chunk_stride &&
         a.layer_offset == b.layer_offset;
}

void CheckRegion(const RegionSpan& span) {
  // Whatever the numbers, the check answers without overflowing; what it
  // accepts lies inside the region.
  const uint64_t region = 64ull << 20;
  const size_t payload = 16384;
  const auto layers = static_cast<uint32_t>(span.layer_offset.size());
  Status s = CheckSpanInRegion(span, layers, payload, region);
  if (!s.ok() || span.keys.size() <= span.first_chunk) return;
  const uint64_t last = span.keys.size() - 1 - span.first_chunk;
  for (uint64_t off : span.layer_offset) Check(off + last * span.chunk_stride + payload <= region);
}

}  // namespace
}  // namespace kvpool::ipc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvpool::ipc;
  if (size == 0) return 0;
  std::span<const std::byte> all(reinterpret_cast<const std::byte*>(data), size);
  std::span<const std::byte> body = all.subspan(1);
  (void)DecodeHeader(body);
  switch (data[0] % 8) {
    case 0: RoundTrip<Hello>(body, DecodeHello, EncodeHello); break;
    case 1: RoundTrip<HelloOk>(body, DecodeHelloOk, EncodeHelloOk); break;
    case 2: RoundTrip<KeyList>(body, DecodeKeyList, EncodeKeyList); break;
    case 3: {
      RoundTrip<Retrieve>(body, DecodeRetrieve, EncodeRetrieve);
      if (auto r = DecodeRetrieve(body); r.ok()) CheckRegion(r->span);
      break;
    }
    case 4: {
      RoundTrip<RegionSpan>(body, DecodeOffload, EncodeOffload);
      if (auto r = DecodeOffload(body); r.ok()) {
        CheckRegion(*r);
        auto again = DecodeOffload(EncodeOffload(*r));
        Check(again.ok() && SameSpan(*again, *r));
      }
      break;
    }
    case 5: RoundTrip<Reply>(body, DecodeReply, EncodeReply); break;
    case 6: RoundTrip<LayerReady>(body, DecodeLayerReady, EncodeLayerReady); break;
    default: RoundTrip<FindChildKeys>(body, DecodeFindChild, EncodeFindChild); break;
  }
  return 0;
}
