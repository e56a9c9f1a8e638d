// The full "keeps what it is given" case: 8 documents x 16K tokens (32 layers
// x 8 KV heads x 32 dims, 4 GiB of KV) into 2 x 256 MiB DRAM + a 4 GiB
// extent keep 512 of 512 chunks, byte-exact, before and after a restart.
// Label "large": skipped under sanitizers; needs 4.1 GiB free in the test
// directory (exit 77 otherwise).
#include <sys/statvfs.h>

#include "copies_scenario.h"

namespace kvpool::testing {
namespace {

TEST(KeepsWhatItIsGiven, EightLongDocumentsIntoDramAndAnExtent) {
  ModelShape shape;
  shape.name = "32x8x32";
  shape.layers = 32;
  shape.kv_heads = 8;
  shape.head_dim = 32;
  KeepScenario s{shape, 8, 64, 256ull << 20, 4ull << 30};
  TempDir probe;
  struct statvfs v {};
  if (::statvfs(probe.path().c_str(), &v) == 0 &&
      uint64_t(v.f_bavail) * v.f_frsize < s.extent_bytes + (512ull << 20)) {
    std::cout << "skipped: less than 4.5 GiB free under " << probe.path() << std::endl;
    std::exit(77);
  }
  RunKeepScenario(s);
}

}  // namespace
}  // namespace kvpool::testing
