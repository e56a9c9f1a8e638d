// Checksum64 is XXH3-64 whatever the CPU. CopyWithChecksum
// (util/checksum.h) copies exactly and returns Checksum64 of what it wrote,
// at every length around its piece size and at any alignment; a DRAM
// region's reads carry that checksum to the runner, which still refuses a
// payload that is not the one the index expects.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/device_runner.h"
#include "core/io_waiter.h"
#include "test_util.h"
#include "util/aligned_buffer.h"
#include "util/checksum.h"

namespace kvpool::testing {
namespace {

// Every extent and checkpoint on disk holds these values, so they must not
// depend on which vector unit the hash ran on (util/checksum.cc dispatches at
// run time). Reference values: XXH3-64 of bytes i % 251, from libxxhash's
// SSE2 path and its AVX-512 path, which agree.
TEST(ChecksumTest, ValuesAreXxh3OnEveryCpuPath) {
  const struct {
    size_t length;
    uint64_t xxh3;
  } known[] = {{0, 0x2d06800538d394c2}, {3, 0x5f4299fc161c9cbb},
               {240, 0x375a384d957fe865}, {4088, 0x57226523a3a0ac17},
               {32769, 0x38d6f80a8d7ba192}, {1048576, 0x6e0d7ac36b8c10ff}};
  std::vector<std::byte> data(1 << 20), copy(data.size());
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte(uint8_t(i % 251));
  for (const auto& k : known) {
    EXPECT_EQ(Checksum64(data.data(), k.length), k.xxh3) << k.length << " bytes";
    EXPECT_EQ(CopyWithChecksum(copy.data(), data.data(), k.length), k.xxh3) << k.length;
  }
}

TEST(ChecksumTest, CopyWithChecksumEqualsCopyThenChecksum) {
  // util/checksum.cc: pieces of the plain path; streamed blocks and the
  // length where streaming starts (x86-64); destinations at every alignment
  // the head of a streamed copy handles (its stores need 32 bytes).
  constexpr size_t kPiece = 32 << 10, kBlock = 16 << 10, kStream = 64 << 10;
  const size_t lengths[] = {0, 1, 63, 4096, kPiece - 1, kPiece, kPiece + 1, 3 * kPiece + 17,
                            kStream - 1, kStream, kStream + 1, kStream + 3 * kBlock + 15,
                            (1 << 20), (1 << 20) + 13};
  std::vector<std::byte> src((2 << 20) + 64), dst(src.size());
  for (size_t i = 0; i < src.size(); ++i) src[i] = std::byte(uint8_t(i * 131 + i / 977));
  for (size_t length : lengths) {
    for (size_t shift : {0, 1, 7, 16, 31, 32}) {
      std::memset(dst.data(), 0xee, dst.size());
      const uint64_t got = CopyWithChecksum(dst.data() + shift, src.data() + 3, length);
      EXPECT_EQ(got, Checksum64(src.data() + 3, length)) << length << " bytes, shift " << shift;
      EXPECT_EQ(std::memcmp(dst.data() + shift, src.data() + 3, length), 0) << length;
      EXPECT_EQ(dst[shift + length], std::byte{0xee}) << "wrote past " << length << " bytes";
    }
  }
}

TEST(ChecksumTest, DramReadsCarryTheirChecksumAndStillFailOnMismatch) {
  constexpr uint32_t kPayload = 256 << 10, kSegments = 4;
  auto dev = OpenDevice(DramOptions("dram", 2 * kSegments * kPayload), kPayload, ChunkKey{});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  auto runner = DeviceRunner::Start(std::move(dev).value(), 0);
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  AlignedBuffer src(size_t{kSegments} * kPayload), dst(src.size());
  for (size_t i = 0; i < src.size(); ++i) src.data()[i] = std::byte(uint8_t(i * 13 + i / 4096));
  std::vector<SegmentIo> ops(kSegments);
  for (uint32_t i = 0; i < kSegments; ++i) {
    ops[i] = SegmentIo{IoKind::kWrite, i, kPayload, src.data() + size_t{i} * kPayload};
  }
  IoWaiter waiter;
  ASSERT_TRUE(waiter.Run(**runner, ops).ok());
  for (uint32_t i = 0; i < kSegments; ++i) {
    ops[i].kind = IoKind::kRead;
    ops[i].buffer = dst.data() + size_t{i} * kPayload;
  }
  ASSERT_TRUE(waiter.Run(**runner, ops).ok());
  EXPECT_EQ(std::memcmp(dst.data(), src.data(), src.size()), 0);
  for (const SegmentIo& op : ops) {
    ASSERT_TRUE(op.delivered_checksum_known);
    EXPECT_EQ(op.delivered_checksum, op.checksum);
  }
  ops[2].checksum ^= 1ull << 40;
  Status s = waiter.Run(**runner, ops);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_EQ(ops[2].status.code(), StatusCode::kCorruption);
  EXPECT_TRUE(ops[1].status.ok());
}

}  // namespace
}  // namespace kvpool::testing
