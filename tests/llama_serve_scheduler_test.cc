// The batching scheduler of kvpool serve on the tiny model, without HTTP:
// continuous batching gives every request the tokens it gets alone, the pool
// is its prompt cache across slots and tenants, and cancels, a full queue and
// prompts too long for a slot end cleanly.
#include <gtest/gtest.h>

#if KVPOOL_HAVE_LLAMA

#include <thread>

#include "llama_test_env.h"
#include "pool_helpers.h"
#include "scheduler.h"

namespace kvpool::testing {
namespace {

using serve::GenerationEvent;
using serve::GenerationRequest;
using serve::GenerationStream;
using serve::Scheduler;
using serve::SchedulerOptions;
using serve::ServeModel;

constexpr uint32_t kChunkTokens = 64;

struct Outcome {
  std::string text;
  std::string finish_reason;
  serve::Timings timings;
  Status error;
};

Outcome Drain(GenerationStream& stream) {
  Outcome o;
  GenerationEvent e;
  while (stream.Next(&e)) {
    if (e.kind == GenerationEvent::Kind::kText) o.text += e.text;
    if (e.kind == GenerationEvent::Kind::kDone) {
      o.finish_reason = e.finish_reason;
      o.timings = e.timings;
    }
    if (e.kind == GenerationEvent::Kind::kError) o.error = e.error;
  }
  return o;
}

GenerationRequest Greedy(std::vector<int32_t> prompt, int32_t max_tokens, std::string tenant = "") {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0;
  r.max_tokens = max_tokens;
  r.tenant = std::move(tenant);
  return r;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = ServeModel::Load(TestModelPath(), "tiny");
    if (!m.ok()) GTEST_SKIP() << m.status().ToString() << " (llama_models fixture)";
    model_ = std::move(*m);
  }

  // A pool shaped for the model's KV (DRAM only: the cache, not the devices,
  // is under test here).
  void OpenPool() {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    ContextPtr probe(llama_init_from_model(model_->get(), cp));
    auto shape = llama::Connector::KvShape(probe.get(), kChunkTokens);
    ASSERT_TRUE(shape.ok()) << shape.status().ToString();
    PoolOptions o;
    o.shape = *shape;
    o.devices.push_back(DramOptions("dram0", 16 << 20));
    pool_ = MakePool(o);
    ASSERT_NE(pool_, nullptr);
  }

  std::unique_ptr<Scheduler> Start(int32_t slots, bool with_pool, size_t max_queued = 64) {
    SchedulerOptions o;
    o.slots = slots;
    o.n_ctx = 1024 * static_cast<uint32_t>(slots);
    o.n_batch = 128;  // prompts take several steps, interleaved with generation
    o.threads = 1;
    o.max_queued = max_queued;
    o.pool = with_pool ? pool_.get() : nullptr;
    o.model_fingerprint = 42;
    auto s = Scheduler::Create(*model_, o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  Outcome Run(Scheduler& s, GenerationRequest r) {
    auto stream = s.Submit(std::move(r));
    EXPECT_TRUE(stream.ok()) << stream.status().ToString();
    return stream.ok() ? Drain(**stream) : Outcome{};
  }

  std::unique_ptr<ServeModel> model_;
  std::unique_ptr<PoolImpl> pool_;
  const std::vector<int32_t> doc_ = TestTokens(5 * kChunkTokens + 10, 3);
};

std::vector<int32_t> With(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// llama.cpp's CPU kernels accumulate in another order when a matrix
// multiplication has more rows (a batch of several sequences), so a batched
// greedy completion may part from the one-sequence run at a near-tie of two
// logits (random weights have many). The first tokens must agree: wrong
// positions, sequences or logits indices would change them at once.
TEST_F(SchedulerTest, BatchedRequestsStartAsEachDoesAlone) {
  std::vector<GenerationRequest> requests;
  for (uint64_t i = 0; i < 3; ++i) requests.push_back(Greedy(TestTokens(150 + 40 * i, 20 + i), 24));
  std::vector<Outcome> alone;
  uint64_t steps_alone = 0;
  {
    auto one = Start(1, false);
    ASSERT_TRUE(one);
    for (const auto& r : requests) alone.push_back(Run(*one, r));
    steps_alone = one->Stats().decode_steps;
  }
  auto three = Start(3, false);
  ASSERT_TRUE(three);
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (const auto& r : requests) streams.push_back(*three->Submit(r));
  for (size_t i = 0; i < streams.size(); ++i) {
    Outcome o = Drain(*streams[i]);
    ASSERT_TRUE(o.error.ok()) << o.error.ToString();
    ASSERT_GE(alone[i].text.size(), 12u);
    EXPECT_EQ(o.text.substr(0, 12), alone[i].text.substr(0, 12)) << "request " << i;
    EXPECT_EQ(o.finish_reason, alone[i].finish_reason);
  }
  // One llama_decode per step over all three: far fewer steps than alone.
  EXPECT_LT(three->Stats().decode_steps * 2, steps_alone);
}

TEST_F(SchedulerTest, ThePoolServesAPrefixToAnotherSlotAndTheSameTokensFollow) {
  OpenPool();
  const auto q1 = TestTokens(12, 7), q2 = TestTokens(9, 8);
  Outcome reference;
  {
    auto plain = Start(1, false);
    ASSERT_TRUE(plain);
    reference = Run(*plain, Greedy(With(doc_, q2), 16));
  }
  auto s = Start(2, true);
  ASSERT_TRUE(s);
  Outcome first = Run(*s, Greedy(With(doc_, q1), 16));
  ASSERT_TRUE(first.error.ok()) << first.error.ToString();
  EXPECT_EQ(first.timings.cache_n, 0u);
  // Occupy the slot that holds the document, so that the next request goes
  // to the other slot and can only reuse through the pool.
  auto busy = s->Submit(Greedy(With(doc_, q1), 400));
  ASSERT_TRUE(busy.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Outcome second = Run(*s, Greedy(With(doc_, q2), 16));
  (*busy)->Cancel();
  Drain(**busy);
  ASSERT_TRUE(second.error.ok()) << second.error.ToString();
  EXPECT_EQ(second.timings.pool_n, 5 * kChunkTokens);
  EXPECT_EQ(second.timings.cache_n, second.timings.pool_n);
  EXPECT_EQ(second.timings.prompt_n, doc_.size() + q2.size() - 5 * kChunkTokens);
  EXPECT_EQ(second.text, reference.text) << "a restored prefix changed the completion";

  // Another tenant shares neither the pool's chunks nor the slots' KV.
  Outcome other = Run(*s, Greedy(With(doc_, q2), 4, "someone-else"));
  EXPECT_EQ(other.timings.cache_n, 0u);
  EXPECT_EQ(other.timings.pool_n, 0u);
}

// The probe of `kvpool bench serve`: a prompt, another one in the same
// slot, then the first again. The pool restores it to its last token (full
// chunks and the partial chunk stored at the prompt's end), not only to its
// last full chunk.
TEST_F(SchedulerTest, TheSamePromptAfterAnotherIsRestoredToItsLastToken) {
  OpenPool();
  auto s = Start(1, true);
  ASSERT_TRUE(s);
  const std::vector<int32_t> prompt = With(doc_, TestTokens(12, 7));
  Outcome first = Run(*s, Greedy(prompt, 8));
  ASSERT_TRUE(first.error.ok()) << first.error.ToString();
  // Stored in the background when the request ended: 5 full chunks, and
  // partial chunks at the prompt's end (342 tokens) and the generation's (350).
  for (int i = 0; i < 1000 && pool_->Stats().chunks < 7; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(pool_->Stats().chunks, 7u);
  Outcome other = Run(*s, Greedy(TestTokens(3 * kChunkTokens, 10), 8));
  ASSERT_TRUE(other.error.ok()) << other.error.ToString();
  Outcome again = Run(*s, Greedy(prompt, 8));
  ASSERT_TRUE(again.error.ok()) << again.error.ToString();
  EXPECT_EQ(again.timings.pool_n, prompt.size() - 1);
  EXPECT_EQ(again.timings.cache_n, prompt.size() - 1);
  EXPECT_EQ(again.timings.prompt_n, 1u);
  EXPECT_FALSE(again.text.empty());
}

TEST_F(SchedulerTest, TheSlotsOwnKvIsReusedForTheNextTurn) {
  auto s = Start(1, false);
  ASSERT_TRUE(s);
  Outcome a = Run(*s, Greedy(doc_, 8));
  Outcome b = Run(*s, Greedy(With(doc_, TestTokens(20, 9)), 8));
  EXPECT_EQ(a.timings.cache_n, 0u);
  EXPECT_EQ(b.timings.cache_n, doc_.size());
  EXPECT_EQ(b.timings.pool_n, 0u);
  EXPECT_EQ(s->Stats().slot_reused_tokens, doc_.size());
}

TEST_F(SchedulerTest, ACancelledRequestFreesItsSlot) {
  auto s = Start(1, false);
  ASSERT_TRUE(s);
  auto stream = s->Submit(Greedy(TestTokens(50, 4), 100000));
  ASSERT_TRUE(stream.ok());
  GenerationEvent e;
  ASSERT_TRUE((*stream)->Next(&e));
  (*stream)->Cancel();
  Outcome o = Drain(**stream);
  EXPECT_EQ(o.error.code(), StatusCode::kAborted);
  Outcome next = Run(*s, Greedy(TestTokens(50, 5), 4));
  EXPECT_TRUE(next.error.ok()) << next.error.ToString();
  EXPECT_EQ(next.timings.predicted_n, 4u);
  EXPECT_EQ(s->Stats().cancelled, 1u);
}

TEST_F(SchedulerTest, AFullQueueAndAnOversizedPromptAreRefusedWithTheNumbers) {
  auto s = Start(1, false, /*max_queued=*/1);
  ASSERT_TRUE(s);
  auto running = s->Submit(Greedy(TestTokens(50, 4), 100000));
  ASSERT_TRUE(running.ok());
  GenerationEvent e;
  ASSERT_TRUE((*running)->Next(&e));  // it holds the slot now
  auto queued = s->Submit(Greedy(TestTokens(50, 5), 4));
  ASSERT_TRUE(queued.ok());
  auto refused = s->Submit(Greedy(TestTokens(50, 6), 4));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kBusy);
  EXPECT_NE(refused.status().message().find("--max-queue 1"), std::string::npos);

  auto too_long = s->Submit(Greedy(TestTokens(1024, 7), 4));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), StatusCode::kNoSpace);
  EXPECT_NE(too_long.status().message().find("1024"), std::string::npos);

  (*running)->Cancel();
  Drain(**running);
  EXPECT_TRUE(Drain(**queued).error.ok());
  EXPECT_EQ(s->Stats().rejected_queue_full, 1u);
}

TEST_F(SchedulerTest, ShutdownEndsRunningAndQueuedRequests) {
  auto s = Start(1, false);
  ASSERT_TRUE(s);
  auto running = s->Submit(Greedy(TestTokens(50, 4), 100000));
  auto queued = s->Submit(Greedy(TestTokens(50, 5), 4));
  ASSERT_TRUE(running.ok() && queued.ok());
  s->Shutdown();
  EXPECT_EQ(Drain(**running).error.code(), StatusCode::kAborted);
  EXPECT_EQ(Drain(**queued).error.code(), StatusCode::kAborted);
  EXPECT_EQ(s->Submit(Greedy(TestTokens(5, 1), 1)).status().code(), StatusCode::kAborted);
}

}  // namespace
}  // namespace kvpool::testing

#else  // !KVPOOL_HAVE_LLAMA

TEST(LlamaNotBuilt, Skip) { GTEST_SKIP() << "llama.cpp is not built: run scripts/setup_llama.sh"; }

#endif
