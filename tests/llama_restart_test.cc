// A prefix stored by one process is restored by another: the pool lives on
// an extent device, closed by the first process and recovered at open by the
// second. Both are this test binary, re-run with --gtest_filter on a
// DISABLED_ case (so that the children never run by themselves).
#include <gtest/gtest.h>

#if KVPOOL_HAVE_LLAMA

#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>

#include "extent_test_util.h"
#include "llama_test_env.h"

extern char** environ;

namespace kvpool::testing {
namespace {

constexpr uint32_t kChunk = 32;
constexpr const char* kDirEnv = "KVPOOL_LLAMA_RESTART_DIR";

std::vector<int32_t> Prefix() { return TestTokens(4 * kChunk, 21); }
std::vector<int32_t> Suffix() { return TestTokens(9, 22); }

std::string Engine() { return UringStatus().ok() ? "uring" : "psync"; }

// One process's life: model, context, pool on the extent file, connector.
struct Process {
  explicit Process(const std::string& dir) {
    model = LoadTestModel(TestModelPath());
    if (!model) return;
    ctx = NewContext(model.get());
    auto shape = llama::Connector::KvShape(ctx.get(), kChunk);
    EXPECT_TRUE(shape.ok()) << shape.status().ToString();
    PoolOptions o;
    o.shape = *shape;
    o.devices.push_back(ExtentOptions("ssd0", dir + "/ssd0.extent", 8 << 20, Engine(), 1.0));
    auto p = Pool::Open(o);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return;
    pool = std::move(p).value();
    auto c = llama::Connector::Create(ctx.get(), *pool, {.model_path = TestModelPath()});
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (c.ok()) conn = std::move(c).value();
  }
  ~Process() {
    conn.reset();  // flushes background offloads before the pool closes
    pool.reset();
  }

  ModelPtr model;
  ContextPtr ctx;
  std::unique_ptr<Pool> pool;
  std::unique_ptr<llama::Connector> conn;
};

const char* ChildDir() {
  const char* dir = std::getenv(kDirEnv);
  return dir ? dir : "";
}

std::vector<int32_t> Prompt() { return Concat(Prefix(), Suffix()); }

// Child 1: stores the prompt (4 full chunks and a partial one), then closes the pool.
TEST(LlamaRestartChild, DISABLED_Store) {
  Process p(ChildDir());
  ASSERT_NE(p.conn, nullptr);
  auto r = p.conn->Prefill(Prompt());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  p.conn->Flush();
  EXPECT_EQ(p.conn->Stats().offloaded_chunks, 4u) << p.conn->Stats().last_error;
  EXPECT_EQ(p.conn->Stats().offloaded_partial_chunks, 1u) << p.conn->Stats().last_error;
}

// Child 2: opens the pool again, restores the same prompt to its last token,
// writes the logits.
TEST(LlamaRestartChild, DISABLED_Load) {
  Process p(ChildDir());
  ASSERT_NE(p.conn, nullptr);
  EXPECT_EQ(p.pool->Stats().recovered_chunks, 5u);
  auto r = p.conn->Prefill(Prompt());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->restored_tokens, Prompt().size() - 1) << r->fallback;
  EXPECT_EQ(r->partial_tokens, Suffix().size() - 1) << r->fallback;
  ASSERT_EQ(r->sources.size(), 1u);
  EXPECT_EQ(r->sources[0].kind, "extent");
  std::vector<float> logits = LastLogits(p.ctx.get());
  std::ofstream out(std::string(ChildDir()) + "/logits.bin", std::ios::binary);
  out.write(reinterpret_cast<const char*>(logits.data()), logits.size() * sizeof(float));
}

// Runs this binary's `test` in a child process; returns its exit status.
int RunChild(const std::string& test, const std::string& dir) {
  std::string filter = "--gtest_filter=LlamaRestartChild." + test;
  std::string env = std::string(kDirEnv) + "=" + dir;
  std::vector<char*> argv = {const_cast<char*>("/proc/self/exe"), filter.data(),
                             const_cast<char*>("--gtest_also_run_disabled_tests"), nullptr};
  std::vector<char*> envp = {env.data()};
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0)
    return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(LlamaRestart, SecondProcessRestoresThePromptTheFirstStored) {
  ModelPtr model = LoadTestModel(TestModelPath());
  if (!model) GTEST_SKIP() << "cannot load " << TestModelPath() << " (llama_models fixture)";
  TempDir dir;
  ASSERT_EQ(RunChild("DISABLED_Store", dir.path()), 0) << "the storing process failed";
  ASSERT_EQ(RunChild("DISABLED_Load", dir.path()), 0) << "the restoring process failed";

  std::ifstream in(dir.path() + "/logits.bin", std::ios::binary);
  std::vector<float> logits(llama_vocab_n_tokens(llama_model_get_vocab(model.get())));
  in.read(reinterpret_cast<char*>(logits.data()), logits.size() * sizeof(float));
  ASSERT_TRUE(in.good());
  // Reference: the prompt decoded as the first process did, then its last
  // token again, alone, as the second process did after the restore.
  const std::vector<int32_t> prompt = Prompt();
  const auto last = static_cast<int32_t>(prompt.size() - 1);
  ContextPtr ref = NewContext(model.get());
  ASSERT_TRUE(llama::DecodeTokens(ref.get(), prompt, 0, 0).ok());
  llama_memory_seq_rm(llama_get_memory(ref.get()), 0, last, -1);
  ASSERT_TRUE(llama::DecodeTokens(ref.get(), std::span(prompt).last(1), last, 0).ok());
  EXPECT_TRUE(BitEqual(logits, LastLogits(ref.get())))
      << "logits after a restore in another process differ (engine " << Engine() << ")";
}

}  // namespace
}  // namespace kvpool::testing

#else  // !KVPOOL_HAVE_LLAMA

TEST(LlamaNotBuilt, Skip) { GTEST_SKIP() << "llama.cpp is not built: run scripts/setup_llama.sh"; }

#endif
