#include "util/xxh3_copy.h"

#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kvpool {
namespace {

// XXH3's constants, from the libxxhash that Checksum64 calls (its header
// compiled into this file, renamed, so nothing here can drift from it): the
// default secret, the primes, and the geometry of its long-input loop.
constexpr const uint8_t* kSecret = XXH3_kSecret;
constexpr size_t kSecretSize = sizeof(XXH3_kSecret);  // 192
constexpr uint64_t kPrime32_1 = XXH_PRIME32_1;
constexpr uint64_t kPrime32_2 = XXH_PRIME32_2;
constexpr uint64_t kPrime32_3 = XXH_PRIME32_3;
constexpr uint64_t kPrime64_1 = XXH_PRIME64_1;
constexpr uint64_t kPrime64_2 = XXH_PRIME64_2;
constexpr uint64_t kPrime64_3 = XXH_PRIME64_3;
constexpr uint64_t kPrime64_4 = XXH_PRIME64_4;
constexpr uint64_t kPrime64_5 = XXH_PRIME64_5;

constexpr size_t kStripe = 64;                                    // bytes per accumulation
constexpr size_t kStripesPerBlock = (kSecretSize - kStripe) / 8;  // 16
constexpr size_t kBlock = kStripe * kStripesPerBlock;             // 1 KiB between scrambles
constexpr size_t kScrambleKey = kSecretSize - kStripe;  // secret offset of the scramble key
constexpr size_t kLastStripeKey = kScrambleKey - 7;     // ... of the last stripe's key
constexpr size_t kMergeKey = 11;                        // ... of the merge keys

// The copy's unit: four 4 KiB pages read side by side (four hardware
// prefetch streams), i.e. 16 blocks.
constexpr size_t kPage = 4096;
constexpr size_t kPages = 4;
constexpr size_t kGroup = kPage * kPages;
constexpr size_t kBlocksPerPage = kPage / kBlock;
constexpr size_t kBlocksPerGroup = kGroup / kBlock;
// How far ahead of its loads each page's stream asks for lines (software
// prefetch). 8 lines per stream measured best: copy and hash of 1 GiB in
// 1 MiB calls on 2 threads at 0.97x of one memcpy call over each thread's
// whole half (0.88x without prefetch; 2, 12, 16 and 32 lines were slower).
constexpr size_t kPrefetchAhead = 512;

struct Acc {
  uint64_t lane[8];
};

uint64_t Read64(const void* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// What one stripe adds to the accumulators, under `key`.
void AddStripe(Acc& sum, const std::byte* stripe, const uint8_t* key) {
  for (int i = 0; i < 8; ++i) {
    const uint64_t data = Read64(stripe + 8 * i);
    const uint64_t mixed = data ^ Read64(key + 8 * i);
    sum.lane[i ^ 1] += data;
    sum.lane[i] += (mixed & 0xFFFFFFFFu) * (mixed >> 32);
  }
}

void Add(Acc& acc, const Acc& sum) {
  for (int i = 0; i < 8; ++i) acc.lane[i] += sum.lane[i];
}

void Scramble(Acc& acc) {
  for (int i = 0; i < 8; ++i) {
    uint64_t a = acc.lane[i];
    a ^= a >> 47;
    a ^= Read64(kSecret + kScrambleKey + 8 * i);
    acc.lane[i] = a * kPrime32_1;
  }
}

// The 128-bit product of a and b, its halves xor-ed.
uint64_t Fold64(uint64_t a, uint64_t b) {
  __extension__ using U128 = unsigned __int128;
  const U128 p = static_cast<U128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

uint64_t Merge(const Acc& acc, size_t length) {
  uint64_t h = static_cast<uint64_t>(length) * kPrime64_1;
  for (int i = 0; i < 4; ++i) {
    const uint8_t* key = kSecret + kMergeKey + 16 * i;
    h += Fold64(acc.lane[2 * i] ^ Read64(key), acc.lane[2 * i + 1] ^ Read64(key + 8));
  }
  h ^= h >> 37;
  h *= 0x165667919E3779F9ull;
  return h ^ (h >> 32);
}

// The sum of `stripes` stripes of `p`, stripe s under key s * 8.
Acc SumStripes(const std::byte* p, size_t stripes) {
  Acc sum{};
  for (size_t s = 0; s < stripes; ++s) AddStripe(sum, p + s * kStripe, kSecret + 8 * s);
  return sum;
}

#if defined(__x86_64__)

#define KVP_AVX2 __attribute__((target("avx2")))

// Copies one group (kGroup bytes) with non-temporal stores and writes the
// sums of its 16 blocks, in input order, to sums[0..15]. REQUIRES: d
// 32-byte aligned.
KVP_AVX2 void CopyGroup256(std::byte* d, const std::byte* s, Acc* sums) {
  // Two 256-bit halves of a stripe; each page has its own running sum.
  __m256i lo[kPages], hi[kPages];
  for (size_t p = 0; p < kPages; ++p) lo[p] = hi[p] = _mm256_setzero_si256();
  for (size_t line = 0; line < kPage; line += kStripe) {
    const size_t stripe = (line / kStripe) % kStripesPerBlock;
    const __m256i key_lo =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kSecret + 8 * stripe));
    const __m256i key_hi =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kSecret + 8 * stripe + 32));
    // Unrolled even at -O2, so that the running sums stay in registers.
#pragma GCC unroll 4
    for (size_t p = 0; p < kPages; ++p) {
      const auto* src = reinterpret_cast<const __m256i*>(s + p * kPage + line);
      _mm_prefetch(reinterpret_cast<const char*>(src) + kPrefetchAhead, _MM_HINT_T0);
      const __m256i a = _mm256_loadu_si256(src);
      const __m256i b = _mm256_loadu_si256(src + 1);
      auto* dst = reinterpret_cast<__m256i*>(d + p * kPage + line);
      _mm256_stream_si256(dst, a);
      _mm256_stream_si256(dst + 1, b);
      const __m256i ma = _mm256_xor_si256(a, key_lo);
      const __m256i mb = _mm256_xor_si256(b, key_hi);
      const __m256i pa = _mm256_mul_epu32(ma, _mm256_srli_epi64(ma, 32));
      const __m256i pb = _mm256_mul_epu32(mb, _mm256_srli_epi64(mb, 32));
      const __m256i swap_a = _mm256_shuffle_epi32(a, _MM_SHUFFLE(1, 0, 3, 2));
      const __m256i swap_b = _mm256_shuffle_epi32(b, _MM_SHUFFLE(1, 0, 3, 2));
      lo[p] = _mm256_add_epi64(lo[p], _mm256_add_epi64(pa, swap_a));
      hi[p] = _mm256_add_epi64(hi[p], _mm256_add_epi64(pb, swap_b));
    }
    if (stripe == kStripesPerBlock - 1) {
      const size_t block = line / kBlock;
#pragma GCC unroll 4
      for (size_t p = 0; p < kPages; ++p) {
        Acc& out = sums[p * kBlocksPerPage + block];
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.lane), lo[p]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.lane + 4), hi[p]);
        lo[p] = hi[p] = _mm256_setzero_si256();
      }
    }
  }
}

#define KVP_AVX512 __attribute__((target("avx512f")))

// GCC 12's AVX-512 headers pass an undefined vector as the unused merge
// source of unmasked intrinsics, which -Wuninitialized reports once they
// are inlined (GCC bug 105593, fixed in GCC 13).
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// CopyGroup256 with 512-bit registers: one load, one store and one running
// sum per stripe and page, half the instructions, which leaves the loop
// bound by memory on CPUs whose 256-bit loop is not quite (2-4 % more
// throughput on 2 threads of a Zen 5 host). REQUIRES: d 64-byte aligned.
KVP_AVX512 void CopyGroup512(std::byte* d, const std::byte* s, Acc* sums) {
  __m512i sum[kPages];
  for (size_t p = 0; p < kPages; ++p) sum[p] = _mm512_setzero_si512();
  for (size_t line = 0; line < kPage; line += kStripe) {
    const size_t stripe = (line / kStripe) % kStripesPerBlock;
    const __m512i key = _mm512_loadu_si512(kSecret + 8 * stripe);
#pragma GCC unroll 4
    for (size_t p = 0; p < kPages; ++p) {
      const std::byte* src = s + p * kPage + line;
      _mm_prefetch(reinterpret_cast<const char*>(src) + kPrefetchAhead, _MM_HINT_T0);
      const __m512i a = _mm512_loadu_si512(src);
      _mm512_stream_si512(reinterpret_cast<__m512i*>(d + p * kPage + line), a);
      const __m512i m = _mm512_xor_si512(a, key);
      const __m512i product = _mm512_mul_epu32(m, _mm512_srli_epi64(m, 32));
      const __m512i swapped = _mm512_shuffle_epi32(a, _MM_PERM_BADC);  // lane i ^ 1
      sum[p] = _mm512_add_epi64(sum[p], _mm512_add_epi64(product, swapped));
    }
    if (stripe == kStripesPerBlock - 1) {
      const size_t block = line / kBlock;
#pragma GCC unroll 4
      for (size_t p = 0; p < kPages; ++p) {
        _mm512_storeu_si512(sums[p * kBlocksPerPage + block].lane, sum[p]);
        sum[p] = _mm512_setzero_si512();
      }
    }
  }
}

#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#undef KVP_AVX512

// Whether to take the 512-bit loop: AVX-512 with VBMI2, i.e. Ice Lake,
// Sapphire Rapids and later Intel cores and AMD Zen 4 and later, whose
// clocks drop little or not at all for 512-bit integer work. Skylake-SP and Cascade Lake
// (AVX-512F without VBMI2) do lower the whole core's clock for it, which
// would slow whatever else runs there (inference, say), so they keep the
// 256-bit loop, as glibc's memcpy does.
bool Prefer512() {
  static const bool prefer = __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vbmi2");
  return prefer;
}

using CopyGroupFn = void (*)(std::byte*, const std::byte*, Acc*);

CopyGroupFn PickCopyGroup(const std::byte* d) {
  return Prefer512() && reinterpret_cast<uintptr_t>(d) % 64 == 0 ? CopyGroup512 : CopyGroup256;
}

#undef KVP_AVX2

#endif  // __x86_64__

}  // namespace

bool CopyXxh3Uses512BitLoop() {
#if defined(__x86_64__)
  return Prefer512();
#else
  return false;
#endif
}

bool CopyXxh3Supported() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

uint64_t CopyXxh3(std::byte* d, const std::byte* s, size_t length) {
  Acc acc{{kPrime32_3, kPrime64_1, kPrime64_2, kPrime64_3, kPrime64_4, kPrime32_2, kPrime64_5,
           kPrime32_1}};
  // Blocks before the last one (the one holding byte length - 1) are whole
  // and scrambled after; the last one is summed differently (below).
  const size_t whole_blocks = (length - 1) / kBlock;
  size_t block = 0, off = 0;
#if defined(__x86_64__)
  Acc sums[kBlocksPerGroup];
  const CopyGroupFn copy_group = PickCopyGroup(d);
  for (; off + kGroup <= length; off += kGroup) {
    copy_group(d + off, s + off, sums);
    for (size_t b = 0; b < kBlocksPerGroup && block < whole_blocks; ++b, ++block) {
      Add(acc, sums[b]);
      Scramble(acc);
    }
  }
  _mm_sfence();  // the streamed stores are ordered before the caller's next ones
#endif
  std::memcpy(d + off, s + off, length - off);
  for (; block < whole_blocks; ++block) {
    Add(acc, SumStripes(s + block * kBlock, kStripesPerBlock));
    Scramble(acc);
  }
  const size_t last = whole_blocks * kBlock;
  Add(acc, SumStripes(s + last, (length - 1 - last) / kStripe));
  Acc final_stripe{};
  AddStripe(final_stripe, s + length - kStripe, kSecret + kLastStripeKey);
  Add(acc, final_stripe);
  return Merge(acc, length);
}

}  // namespace kvpool
