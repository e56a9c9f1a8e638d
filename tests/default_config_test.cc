// The embedded default configuration (tools/default_config.h) sizes its
// extent from the free disk the first time; once the extent exists it keeps
// the size that file was formatted for, so that a second run with the same
// state directory opens it instead of refusing a changed geometry.
#include "default_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "extent_test_util.h"
#include "test_util.h"

namespace kvpool::testing {
namespace {

// The extent device's capacity line of the default configuration.
std::string ExtentCapacityLine(const std::string& toml) {
  const size_t ssd = toml.find("name = \"ssd0\"");
  if (ssd == std::string::npos) return "";
  const size_t at = toml.find("capacity = ", ssd);
  return toml.substr(at, toml.find('\n', at) - at);
}

TEST(DefaultConfig, AnExistingExtentKeepsTheSizeItWasFormattedFor) {
  if (!KVPOOL_HAVE_EXTENT) GTEST_SKIP() << "built without the extent device";
  TempDir dir;
  {
    DeviceOptions d = ExtentOptions("ssd0", dir.path() + "/ssd0.extent", 300ull << 20, "psync");
    auto dev = OpenExtentDevice(d, 1 << 20, ChunkKey{0xdef, 1});
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  }
  EXPECT_EQ(ExtentCapacityLine(cli::DefaultConfigToml(dir.path())), "capacity = \"300MiB\"");
  auto options = cli::LoadConfig("", dir.path());
  ASSERT_TRUE(options.ok()) << options.status().ToString();
}

TEST(DefaultConfig, AFileThatIsNoExtentIsSizedFromTheFreeDisk) {
  if (!KVPOOL_HAVE_EXTENT) GTEST_SKIP() << "built without the extent device";
  TempDir dir;
  const std::string fresh = ExtentCapacityLine(cli::DefaultConfigToml(dir.path()));
  std::ofstream(dir.path() + "/ssd0.extent") << std::string(8192, '\0');
  EXPECT_EQ(ExtentCapacityLine(cli::DefaultConfigToml(dir.path())), fresh);
}

}  // namespace
}  // namespace kvpool::testing
