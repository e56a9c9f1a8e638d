// Deterministic pseudo-random numbers for benchmark traces: the same
// sequence on every platform and standard library (splitmix64).
#pragma once

#include <cstdint>
#include <initializer_list>

namespace kvpool::cli {

// The splitmix64 finalizer: a bijection that spreads every input bit.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// One 64-bit value from several, starting from `salt` (so that two users of
// the same parts get unrelated values).
inline uint64_t MixParts(uint64_t salt, std::initializer_list<uint64_t> parts) {
  uint64_t h = salt;
  for (uint64_t p : parts) h = Mix64(h ^ Mix64(p));
  return h;
}

class SeededRng {
 public:
  explicit SeededRng(uint64_t seed) : state_(Mix64(seed)) {}
  uint64_t Next() { return state_ = Mix64(state_); }
  double Uniform() { return double(Next() >> 11) / double(1ull << 53); }  // [0, 1)

 private:
  uint64_t state_;
};

}  // namespace kvpool::cli
