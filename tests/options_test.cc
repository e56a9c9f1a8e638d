// PoolOptions validation and TOML loading: every error is InvalidArgument and
// names the offending field; a valid file gives exactly the options it says.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "test_util.h"

namespace kvpool::testing {
namespace {

PoolOptions ValidOptions() {
  PoolOptions o;
  o.shape = *ModelShape::Preset("tiny");
  o.devices.push_back(DramOptions("d0", 1 << 20));
  return o;
}

// `s` is InvalidArgument and its message mentions `field`.
void ExpectNames(const Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(field), std::string::npos)
      << "message does not name '" << field << "': " << s.message();
}

template <typename T>
void ExpectNames(const Result<T>& r, const std::string& field) {
  ASSERT_FALSE(r.ok()) << "expected an error naming " << field;
  ExpectNames(r.status(), field);
}

TEST(Options, ValidOptionsPass) { EXPECT_TRUE(ValidOptions().Validate().ok()); }

TEST(Options, ZeroCapacityNamesTheField) {
  PoolOptions o = ValidOptions();
  o.devices.push_back(DramOptions("d1", 0));
  ExpectNames(o.Validate(), "devices[1].capacity_bytes");
  auto pool = Pool::Open(o);
  ExpectNames(pool, "devices[1].capacity_bytes");
}

TEST(Options, UnalignedCapacityNamesTheField) {
  PoolOptions o = ValidOptions();
  o.devices[0].capacity_bytes = (1 << 20) + 512;
  ExpectNames(o.Validate(), "devices[0].capacity_bytes");
}

TEST(Options, BadWatermarksNameTheField) {
  PoolOptions o = ValidOptions();
  o.high_watermark = 1.5;
  ExpectNames(o.Validate(), "high_watermark");
  o.high_watermark = 0;
  ExpectNames(o.Validate(), "high_watermark");
  o = ValidOptions();
  o.low_watermark = o.high_watermark;
  ExpectNames(o.Validate(), "low_watermark");
  o.low_watermark = -0.1;
  ExpectNames(o.Validate(), "low_watermark");
}

TEST(Options, OtherFieldsAreChecked) {
  PoolOptions o = ValidOptions();
  o.devices[0].io_threads = 65;
  ExpectNames(o.Validate(), "devices[0].io_threads");
  o = ValidOptions();
  o.devices[0].queue_depth = 0;
  ExpectNames(o.Validate(), "devices[0].queue_depth");
  o = ValidOptions();
  o.devices[0].bandwidth_gibps = -1;
  ExpectNames(o.Validate(), "devices[0].bandwidth_gibps");
  o = ValidOptions();
  o.devices.push_back(DramOptions("d0", 1 << 20));
  ExpectNames(o.Validate(), "devices[1].name");
  o = ValidOptions();
  o.devices.clear();
  ExpectNames(o.Validate(), "devices");
  o = ValidOptions();
  o.shape.head_dim = 0;
  ExpectNames(o.Validate(), "shape.head_dim");
  o = ValidOptions();
  o.max_pending_writes = 0;
  ExpectNames(o.Validate(), "max_pending_writes");
}

TEST(Options, FileDeviceNeedsAPath) {
  PoolOptions o = ValidOptions();
  DeviceOptions f;
  f.kind = DeviceKind::kFilePerChunk;
  f.name = "files";
  f.capacity_bytes = 1 << 20;
  o.devices.push_back(f);
  ExpectNames(o.Validate(), "devices[1].path");
}

TEST(Options, PathUnderARegularFileCannotBeCreated) {
  TempDir dir;
  std::string file = dir.path() + "/plain";
  std::ofstream(file) << "not a directory";
  PoolOptions o = ValidOptions();
  DeviceOptions f;
  f.kind = DeviceKind::kFilePerChunk;
  f.capacity_bytes = 1 << 20;
  f.path = file + "/kv";
  o.devices[0] = f;
  ExpectNames(o.Validate(), "devices[0].path");
  // An existing regular file where a directory is expected.
  o.devices[0].path = file;
  ExpectNames(o.Validate(), "devices[0].path");
  auto pool = Pool::Open(o);
  ExpectNames(pool, "devices[0].path");
}

TEST(Options, PathUnderProcIsRefused) {
  // Validation catches it where /proc is not writable; as root the check
  // passes and opening the device refuses it. Either way: InvalidArgument
  // naming the path.
  PoolOptions o = ValidOptions();
  DeviceOptions f;
  f.kind = DeviceKind::kFilePerChunk;
  f.name = "files";
  f.capacity_bytes = 1 << 20;
  f.path = "/proc/kvpool-options-test/kv";
  o.devices[0] = f;
  auto pool = Pool::Open(o);
  ExpectNames(pool, "/proc/kvpool-options-test/kv");
}

TEST(Options, UnwritableDirectoryIsRefused) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  TempDir dir;
  std::string locked = dir.path() + "/locked";
  ASSERT_EQ(::mkdir(locked.c_str(), 0500), 0);
  PoolOptions o = ValidOptions();
  DeviceOptions f;
  f.kind = DeviceKind::kFilePerChunk;
  f.capacity_bytes = 1 << 20;
  f.path = locked + "/kv";
  o.devices[0] = f;
  ExpectNames(o.Validate(), "devices[0].path");
}

// --- TOML ---

constexpr char kMinimal[] = R"(
[model]
preset = "tiny"

[[device]]
kind = "dram"
capacity = "1MiB"
)";

TEST(OptionsToml, MinimalFileParses) {
  auto o = ParsePoolOptions(kMinimal, "cfg.toml");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->shape.name, "tiny");
  ASSERT_EQ(o->devices.size(), 1u);
  EXPECT_EQ(o->devices[0].capacity_bytes, 1u << 20);
  EXPECT_EQ(o->high_watermark, 0.95);
}

TEST(OptionsToml, FullFileRoundTripsToTheExpectedOptions) {
  TempDir dir;
  std::string text = R"(
state_dir = ")" + dir.path() +
                     R"(/state"
tenant_salt = "acme"
max_pending_writes = 128
high_watermark = 0.9
low_watermark = 0.7
probe_mib = 8

[model]
preset = "llama-3.1-8b"
chunk_tokens = 128
dtype_bytes = 1

[[device]]
kind = "dram"
name = "mem"
capacity = "4GiB"
bandwidth_gibps = 12.5
io_threads = 2
queue_depth = 16
huge_pages = true

[[device]]
kind = "file"
name = "disk"
path = ")" + dir.path() +
                     R"(/files"
capacity = 1073741824
direct_io = false
throttle_gibps = 0.5

[[device]]
kind = "extent"
path = ")" + dir.path() +
                     R"(/extent.img"
capacity = "512 MiB"
engine = "psync"
sqpoll = false
zero_copy = false
reformat = true
)";
  auto o = ParsePoolOptions(text, "full.toml");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->state_dir, dir.path() + "/state");
  EXPECT_EQ(o->tenant_salt, "acme");
  EXPECT_EQ(o->max_pending_writes, 128u);
  EXPECT_EQ(o->high_watermark, 0.9);
  EXPECT_EQ(o->low_watermark, 0.7);
  EXPECT_EQ(o->probe_mib, 8u);
  EXPECT_EQ(o->shape.name, "llama-3.1-8b");
  EXPECT_EQ(o->shape.layers, 32u);
  EXPECT_EQ(o->shape.kv_heads, 8u);
  EXPECT_EQ(o->shape.head_dim, 128u);
  EXPECT_EQ(o->shape.chunk_tokens, 128u);
  EXPECT_EQ(o->shape.dtype_bytes, 1u);
  ASSERT_EQ(o->devices.size(), 3u);
  const DeviceOptions& mem = o->devices[0];
  EXPECT_EQ(mem.kind, DeviceKind::kDram);
  EXPECT_EQ(mem.name, "mem");
  EXPECT_EQ(mem.capacity_bytes, 4ull << 30);
  EXPECT_EQ(mem.bandwidth_gibps, 12.5);
  EXPECT_EQ(mem.io_threads, 2u);
  EXPECT_EQ(mem.queue_depth, 16u);
  EXPECT_TRUE(mem.huge_pages);
  const DeviceOptions& disk = o->devices[1];
  EXPECT_EQ(disk.kind, DeviceKind::kFilePerChunk);
  EXPECT_EQ(disk.path, dir.path() + "/files");
  EXPECT_EQ(disk.capacity_bytes, 1ull << 30);
  EXPECT_FALSE(disk.direct_io);
  EXPECT_EQ(disk.throttle_gibps, 0.5);
  EXPECT_EQ(disk.io_threads, 0u) << "defaults stay (0 = automatic, resolved at open)";
  const DeviceOptions& ext = o->devices[2];
  EXPECT_EQ(ext.kind, DeviceKind::kExtent);
  EXPECT_EQ(ext.name, "") << "Pool::Open fills default names";
  EXPECT_EQ(ext.capacity_bytes, 512ull << 20);
  EXPECT_FALSE(ext.zero_copy);
  EXPECT_TRUE(disk.zero_copy) << "defaults stay";
  EXPECT_EQ(ext.engine, "psync");
  EXPECT_TRUE(ext.reformat);
}

TEST(OptionsToml, ModelScaleAndCustomShape) {
  auto o = ParsePoolOptions(R"(
[model]
name = "mine"
layers = 6
kv_heads = 2
head_dim = 64
[[device]]
kind = "dram"
capacity = 65536
)",
                            "custom.toml");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->shape.name, "mine");
  EXPECT_EQ(o->shape.layers, 6u);
  EXPECT_EQ(o->shape.head_dim, 64u);
  auto scaled = ParsePoolOptions(R"(
[model]
preset = "llama-3.1-8b"
scale = 0.5
[[device]]
kind = "dram"
capacity = "64MiB"
)",
                                 "scaled.toml");
  ASSERT_TRUE(scaled.ok()) << scaled.status().ToString();
  EXPECT_EQ(scaled->shape.head_dim, 64u);
  EXPECT_EQ(scaled->shape.layers, 32u);
}

TEST(OptionsToml, SizeStringsParse) {
  struct {
    const char* text;
    uint64_t bytes;
  } cases[] = {{"\"4GiB\"", 4ull << 30},   {"\"4 GiB\"", 4ull << 30},  {"\"512MiB\"", 512ull << 20},
               {"\"64KiB\"", 64ull << 10}, {"\"1TiB\"", 1ull << 40},   {"\"8192B\"", 8192},
               {"\"8192\"", 8192},         {"\"1.5GiB\"", 3ull << 29}, {"1048576", 1048576}};
  for (const auto& c : cases) {
    std::string text = std::string("[model]\npreset = \"tiny\"\n[[device]]\nkind = \"dram\"\n") +
                       "capacity = " + c.text + "\n";
    auto o = ParsePoolOptions(text, "size.toml");
    ASSERT_TRUE(o.ok()) << c.text << ": " << o.status().ToString();
    EXPECT_EQ(o->devices[0].capacity_bytes, c.bytes) << c.text;
  }
}

TEST(OptionsToml, BadSizesNameTheKey) {
  for (const char* bad : {"\"4GB\"", "\"GiB\"", "\"\"", "\".\"", "\".GiB\"", "\"1.2.3GiB\"",
                          "\"99999999999999999999TiB\"", "-4096", "true", "\"4 GiB extra\""}) {
    std::string text = std::string("[model]\npreset = \"tiny\"\n[[device]]\nkind = \"dram\"\n") +
                       "capacity = " + bad + "\n";
    auto o = ParsePoolOptions(text, "size.toml");
    SCOPED_TRACE(bad);
    ExpectNames(o, "device[0].capacity");
  }
}

TEST(OptionsToml, ZeroAndUnalignedCapacityNameTheField) {
  auto zero = ParsePoolOptions(
      "[model]\npreset = \"tiny\"\n[[device]]\nkind = \"dram\"\ncapacity = 0\n", "zero.toml");
  ExpectNames(zero, "devices[0].capacity_bytes");
  ExpectNames(zero, "zero.toml");
  auto odd = ParsePoolOptions(
      "[model]\npreset = \"tiny\"\n[[device]]\nkind = \"dram\"\ncapacity = 5000\n", "odd.toml");
  ExpectNames(odd, "devices[0].capacity_bytes");
}

TEST(OptionsToml, UnknownDeviceKindNamesTheField) {
  auto o = ParsePoolOptions(R"(
[model]
preset = "tiny"
[[device]]
kind = "dram"
capacity = "1MiB"
[[device]]
kind = "tape"
capacity = "1MiB"
)",
                            "kinds.toml");
  ExpectNames(o, "device[1].kind");
  ExpectNames(o, "tape");
  auto missing =
      ParsePoolOptions("[model]\npreset = \"tiny\"\n[[device]]\ncapacity = 4096\n", "nokind.toml");
  ExpectNames(missing, "device[0].kind");
}

TEST(OptionsToml, MissingPathForFileDeviceNamesTheField) {
  auto o = ParsePoolOptions(
      "[model]\npreset = \"tiny\"\n[[device]]\nkind = \"file\"\ncapacity = \"1MiB\"\n",
      "nopath.toml");
  ExpectNames(o, "devices[0].path");
}

TEST(OptionsToml, UnknownKeysAreErrors) {
  auto top = ParsePoolOptions(std::string("high_watermrk = 0.9\n") + kMinimal, "top.toml");
  ExpectNames(top, "high_watermrk");
  auto dev = ParsePoolOptions(std::string(kMinimal) + "capacty = \"1MiB\"\n", "dev.toml");
  ExpectNames(dev, "device[0].capacty");
  auto model = ParsePoolOptions(
      "[model]\npreset = \"tiny\"\nhead_dims = 4\n[[device]]\nkind = \"dram\"\ncapacity = 4096\n",
      "model.toml");
  ExpectNames(model, "model.head_dims");
}

TEST(OptionsToml, WrongTypesNameTheKey) {
  auto o = ParsePoolOptions(std::string(kMinimal) + "io_threads = \"two\"\n", "type.toml");
  ExpectNames(o, "device[0].io_threads");
  auto w = ParsePoolOptions(std::string("high_watermark = \"high\"\n") + kMinimal, "type.toml");
  ExpectNames(w, "high_watermark");
}

TEST(OptionsToml, BadWatermarksNameTheField) {
  auto o = ParsePoolOptions(std::string("high_watermark = 0.5\nlow_watermark = 0.6\n") + kMinimal,
                            "wm.toml");
  ExpectNames(o, "low_watermark");
  auto h = ParsePoolOptions(std::string("high_watermark = 1.2\n") + kMinimal, "wm.toml");
  ExpectNames(h, "high_watermark");
}

TEST(OptionsToml, SyntaxErrorNamesTheLine) {
  auto o = ParsePoolOptions("[model]\npreset = \"tiny\"\nlayers = = 3\n", "broken.toml");
  ExpectNames(o, "broken.toml:3");
  auto unterminated = ParsePoolOptions("[model]\n\n\n\npreset = \"tiny\n", "open.toml");
  ExpectNames(unterminated, "open.toml:5");
}

TEST(OptionsToml, MissingTablesAreErrors) {
  ExpectNames(ParsePoolOptions("[[device]]\nkind = \"dram\"\ncapacity = 4096\n", "m.toml"),
              "[model]");
  ExpectNames(ParsePoolOptions("[model]\npreset = \"tiny\"\n", "d.toml"), "[[device]]");
  ExpectNames(ParsePoolOptions("[model]\npreset = \"llama-9\"\n[[device]]\nkind = \"dram\"\n"
                               "capacity = 4096\n",
                               "p.toml"),
              "model.preset");
}

TEST(OptionsToml, LoadPoolOptionsReadsAFileAndNamesItInErrors) {
  TempDir dir;
  std::string path = dir.path() + "/pool.toml";
  std::ofstream(path) << kMinimal;
  auto o = LoadPoolOptions(path);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->devices[0].capacity_bytes, 1u << 20);
  std::ofstream(path) << kMinimal << "bogus = 1\n";
  ExpectNames(LoadPoolOptions(path), path);
  ExpectNames(LoadPoolOptions(dir.path() + "/absent.toml"), dir.path() + "/absent.toml");
}

TEST(Options, RedisDevicesAreReadAndChecked) {
  const char* toml = R"(
[model]
preset = "tiny"
[[device]]
kind = "dram"
capacity = "1MiB"
[[device]]
kind = "redis"
capacity = "64MiB"
nodes = ["10.0.0.1:7000", "redis-2:7001"]
user = "kv"
password = "secret"
key_prefix = "fleet:"
timeout_ms = 250
ttl_s = 3600
)";
  auto o = ParsePoolOptions(toml, "<test>");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  const DeviceOptions& r = o->devices[1];
  EXPECT_EQ(r.kind, DeviceKind::kRedis);
  EXPECT_EQ(r.nodes, (std::vector<std::string>{"10.0.0.1:7000", "redis-2:7001"}));
  EXPECT_EQ(r.user, "kv");
  EXPECT_EQ(r.key_prefix, "fleet:");
  EXPECT_EQ(r.timeout_ms, 250u);
  EXPECT_EQ(r.ttl_s, 3600u);
  EXPECT_TRUE(o->Validate().ok());

  PoolOptions bad = *o;
  bad.devices[1].nodes = {"10.0.0.1:7000", "nohost"};
  ExpectNames(bad.Validate(), "devices[1].nodes[1]");
  bad.devices[1].nodes = {"h:70000"};
  ExpectNames(bad.Validate(), "devices[1].nodes[0]");
  bad.devices[1].nodes.clear();
  ExpectNames(bad.Validate(), "devices[1].nodes");
  bad = *o;
  bad.devices[1].timeout_ms = 0;
  ExpectNames(bad.Validate(), "devices[1].timeout_ms");
  bad = *o;
  bad.devices[1].password.clear();
  ExpectNames(bad.Validate(), "devices[1].user");
  bad = *o;
  bad.devices.push_back(bad.devices[1]);
  bad.devices[2].name = "second";
  ExpectNames(bad.Validate(), "devices[2].kind");
  bad = *o;
  bad.devices.erase(bad.devices.begin());
  ExpectNames(bad.Validate(), "local device");
  ExpectNames(ParsePoolOptions("[model]\npreset = \"tiny\"\n[[device]]\nkind = \"redis\"\n"
                               "capacity = 4096\nnodes = \"h:1\"\n", "<test>"),
              "device[0].nodes");
}

}  // namespace
}  // namespace kvpool::testing
