// CopyXxh3 (util/xxh3_copy.h) must return exactly XXH3_64bits of what it
// copied: its value is compared with checksums written by libxxhash on
// every device. Checked at every length class of XXH3's long-input loop
// (around 1 KiB blocks, the copy's 16 KiB groups, the last stripe) and on
// random bytes, where a wrong lane or key offset could not cancel out; into
// 64-byte-aligned destinations (the 512-bit loop, where the CPU takes it)
// and destinations 32 bytes off (always the 256-bit loop).
#include "util/xxh3_copy.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "util/aligned_buffer.h"

namespace kvpool::testing {
namespace {

class CopyXxh3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CopyXxh3Supported()) GTEST_SKIP() << "this CPU has no AVX2: CopyXxh3 is not used here";
  }
};

// Destination offsets from a 4096-aligned buffer: 0 takes the 512-bit loop
// where the CPU prefers it, 32 never does.
constexpr size_t kDestinationShifts[] = {0, 32};

// Copies src[src_shift, +length) to dst_shift bytes into an aligned buffer
// and checks the bytes, the hash and that nothing around them was written.
void Check(const std::vector<std::byte>& src, size_t src_shift, size_t length) {
  for (size_t dst_shift : kDestinationShifts) {
    AlignedBuffer dst(length + 128);
    std::memset(dst.data(), 0xee, dst.size());
    const std::byte* from = src.data() + src_shift;
    std::byte* to = dst.data() + dst_shift;
    const uint64_t got = CopyXxh3(to, from, length);
    EXPECT_EQ(got, XXH3_64bits(from, length))
        << length << " bytes, source shift " << src_shift << ", destination shift " << dst_shift;
    EXPECT_EQ(std::memcmp(to, from, length), 0)
        << length << " bytes, destination shift " << dst_shift;
    EXPECT_EQ(to[length], std::byte{0xee}) << "wrote past " << length << " bytes";
    if (dst_shift > 0) {
      EXPECT_EQ(to[-1], std::byte{0xee}) << "wrote before the destination";
    }
  }
}

std::vector<std::byte> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return out;
}

TEST_F(CopyXxh3Test, EqualsXxh3AroundEveryBoundaryOfItsLoops) {
  constexpr long kBlock = 1024, kGroup = 16 << 10;
  const std::vector<std::byte> src = RandomBytes((3 << 20) + 256, 7);
  std::vector<size_t> lengths = {241, 255, 256, 1023, 1024, 1025, 2047, 2048, 2049, 4096 + 64};
  for (long groups : {1L, 2L, 3L, 16L, 64L, 128L}) {
    for (long delta : {-kBlock - 1, -64L, -1L, 0L, 1L, 63L, 64L, kBlock - 1, kBlock, kBlock + 1}) {
      lengths.push_back(static_cast<size_t>(groups * kGroup + delta));
    }
  }
  lengths.push_back((2 << 20) + 4096 + 7);
  for (size_t length : lengths) {
    for (size_t shift : {0, 3, 64}) Check(src, shift, length);
  }
}

TEST_F(CopyXxh3Test, EqualsXxh3OnStructuredData) {
  // Repeated and zero bytes exercise the products' zero halves.
  std::vector<std::byte> zeros((1 << 20) + 64), pattern((1 << 20) + 64);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = std::byte(uint8_t(i % 251));
  for (size_t length : {size_t{65536}, size_t{1} << 20, (size_t{1} << 20) - 4096 + 9}) {
    Check(zeros, 0, length);
    Check(pattern, 0, length);
  }
}

TEST_F(CopyXxh3Test, AFlippedByteAnywhereChangesTheHash) {
  std::vector<std::byte> src = RandomBytes(256 << 10, 11);
  AlignedBuffer dst(src.size() + 64);
  for (size_t dst_shift : kDestinationShifts) {
    std::byte* to = dst.data() + dst_shift;
    const uint64_t clean = CopyXxh3(to, src.data(), src.size());
    for (size_t at : {size_t{0}, size_t{1023}, size_t{16384}, size_t{100000}, src.size() - 1}) {
      src[at] ^= std::byte{0x10};
      EXPECT_NE(CopyXxh3(to, src.data(), src.size()), clean) << "byte " << at;
      src[at] ^= std::byte{0x10};
    }
  }
}

TEST_F(CopyXxh3Test, TakesThe512BitLoopOnlyWhereTheClockHolds) {
  // AVX-512 with VBMI2 (Ice Lake and later, Zen 4 and later); not on
  // Skylake-SP or Cascade Lake, whose clocks drop for 512-bit integer work.
  const bool expected = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vbmi2");
  EXPECT_EQ(CopyXxh3Uses512BitLoop(), expected);
  std::printf("loops compared with libxxhash on this CPU: 256-bit%s\n",
              expected ? " and 512-bit" : " only");
}

}  // namespace
}  // namespace kvpool::testing
