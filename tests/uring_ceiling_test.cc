// `kvpool bench device`'s second ceiling: plain io_uring reads that land
// each in its own place. It must read every block it claims to, and fail
// loudly (naming the file) rather than report a rate for reads that did
// not happen.
#include "uring_ceiling.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "test_util.h"

namespace kvpool::testing {
namespace {

constexpr uint32_t kBlock = 64 << 10;

// A file of `blocks` blocks of arbitrary bytes.
std::string MakeFile(const TempDir& dir, uint32_t blocks) {
  const std::string path = dir.path() + "/data";
  std::ofstream out(path, std::ios::binary);
  std::string block(kBlock, 'k');
  for (uint32_t i = 0; i < blocks; ++i) out << block;
  return path;
}

class UringCeilingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto probe = cli::RunUringCeiling({dir_.path() + "/none", 0, kBlock, kBlock, kBlock, 1});
    if (probe.status().code() == StatusCode::kUnsupported)
      GTEST_SKIP() << probe.status().ToString();
  }
  TempDir dir_;
};

TEST_F(UringCeilingTest, ReadsEveryBlockOfTheRegion) {
  const std::string path = MakeFile(dir_, 64);
  for (uint32_t depth : {1u, 8u}) {
    auto r = cli::RunUringCeiling({path, 0, 64ull * kBlock, 32ull * kBlock, kBlock, depth});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_GT(*r, 0);
  }
}

TEST_F(UringCeilingTest, AShortFileIsAnIOErrorNamingIt) {
  const std::string path = MakeFile(dir_, 4);  // the job claims 8 blocks, all read
  auto r = cli::RunUringCeiling({path, 0, 8ull * kBlock, 8ull * kBlock, kBlock, 4});
  EXPECT_EQ(r.status().code(), StatusCode::kIOError);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().ToString();
}

TEST_F(UringCeilingTest, BadJobsAndMissingFilesAreNamed) {
  const std::string path = MakeFile(dir_, 4);
  EXPECT_EQ(
      cli::RunUringCeiling({path, 0, 4ull * kBlock, 8ull * kBlock, kBlock, 1}).status().code(),
      StatusCode::kInvalidArgument);  // more bytes than the region
  EXPECT_EQ(cli::RunUringCeiling({path, 0, 4ull * kBlock, kBlock, 1000, 1}).status().code(),
            StatusCode::kInvalidArgument);  // not a multiple of 4 KiB
  auto missing = cli::RunUringCeiling({dir_.path() + "/none", 0, kBlock, kBlock, kBlock, 1});
  EXPECT_EQ(missing.status().code(), StatusCode::kIOError) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("/none"), std::string::npos);
}

}  // namespace
}  // namespace kvpool::testing
