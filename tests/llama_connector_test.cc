// The llama.cpp connector end to end with the tiny model: restoring a cached
// prefix gives logits bit-identical to recomputing it with the same batch
// split, and whatever goes wrong (short prompts, another model or KV type, a
// full pool, a failing or corrupt device) ends in a correct recompute.
#include <gtest/gtest.h>

#if KVPOOL_HAVE_LLAMA

#include "llama_io.h"
#include "llama_test_env.h"
#include "model_writer.h"
#include "pool_helpers.h"
#include "testing/fault_device.h"

namespace kvpool::testing {
namespace {

constexpr uint32_t kChunk = 32;

// A context, a pool (DRAM devices, the second one behind a fault device)
// and a connector. The contexts decode in pieces of 64 tokens.
class ConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = LoadTestModel(TestModelPath());
    if (!model_) GTEST_SKIP() << "cannot load " << TestModelPath() << " (llama_models fixture)";
  }

  void Open(const ContextSpec& spec = {}, uint64_t dram_bytes = 8 << 20) {
    ctx_ = NewContext(model_.get(), spec);
    ASSERT_TRUE(ctx_);
    auto shape = llama::Connector::KvShape(ctx_.get(), kChunk);
    ASSERT_TRUE(shape.ok()) << shape.status().ToString();
    PoolOptions o;
    o.shape = *shape;
    o.devices.push_back(DramOptions("dram0", dram_bytes));
    o.devices.push_back(DramOptions("dram1", dram_bytes));
    pool_ = MakePool(o, [this](size_t i, std::unique_ptr<Device> d) {
      return i == 1 ? NewFaultDevice(std::move(d), plan_) : std::move(d);
    });
    ASSERT_NE(pool_, nullptr);
    conn_ = Connect(ctx_.get(), {.model_path = TestModelPath()});
  }

  std::unique_ptr<llama::Connector> Connect(llama_context* ctx, const llama::ConnectorOptions& o) {
    auto c = llama::Connector::Create(ctx, *pool_, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  llama::PrefillResult Prefill(llama::Connector& c, const std::vector<int32_t>& tokens) {
    auto r = c.Prefill(tokens);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    c.Flush();
    return r.ok() ? *r : llama::PrefillResult{};
  }

  // Logits of `prompt`'s last token decoded again, alone, after one decode of
  // the whole prompt (as a Prefill does): what restoring all but that token
  // must reproduce bit for bit.
  std::vector<float> LastTokenAgain(const std::vector<int32_t>& prompt,
                                    const ContextSpec& spec = {}) {
    ContextPtr ref = NewContext(model_.get(), spec);
    EXPECT_TRUE(llama::DecodeTokens(ref.get(), prompt, 0, 0).ok());
    const auto last = static_cast<int32_t>(prompt.size() - 1);
    llama_memory_seq_rm(llama_get_memory(ref.get()), 0, last, -1);
    EXPECT_TRUE(llama::DecodeTokens(ref.get(), std::span(prompt).last(1), last, 0).ok());
    return LastLogits(ref.get());
  }

  // Logits of `prefix` + `suffix` computed from scratch in a second context.
  std::vector<float> Reference(const std::vector<int32_t>& prefix,
                               const std::vector<int32_t>& suffix, const ContextSpec& spec = {}) {
    ContextPtr ref = NewContext(model_.get(), spec);
    return Recompute(ref.get(), prefix, suffix);
  }

  ModelPtr model_;
  ContextPtr ctx_;
  std::shared_ptr<FaultPlan> plan_ = std::make_shared<FaultPlan>();
  std::unique_ptr<PoolImpl> pool_;
  std::unique_ptr<llama::Connector> conn_;
  const std::vector<int32_t> prefix_ = TestTokens(3 * kChunk, 11);
  const std::vector<int32_t> suffix_ = TestTokens(20, 12);
};

class ExactnessTest : public ConnectorTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ExactnessTest, RestoredPrefixGivesBitIdenticalLogitsAndState) {
  const ContextSpec spec{.flash_attn = GetParam()};
  Open(spec);
  llama::PrefillResult cold = Prefill(*conn_, prefix_);
  EXPECT_EQ(cold.restored_tokens, 0u);
  EXPECT_EQ(cold.computed_tokens, prefix_.size());
  EXPECT_EQ(cold.offload_chunks, 3u);
  EXPECT_EQ(conn_->Stats().offloaded_chunks, 3u);

  llama::PrefillResult warm = Prefill(*conn_, Concat(prefix_, suffix_));
  EXPECT_EQ(warm.cached_chunks, 3u);
  EXPECT_EQ(warm.restored_tokens, prefix_.size());
  EXPECT_EQ(warm.computed_tokens, suffix_.size());
  EXPECT_TRUE(warm.fallback.empty()) << warm.fallback;
  uint64_t served = 0;
  for (const auto& d : warm.sources) served += d.bytes;
  const ModelShape& shape = pool_->options().shape;
  EXPECT_EQ(served, 3u * shape.layers * shape.SegmentPayloadBytes());
  // V rows: the segments land in llama.cpp's blob, nothing is copied between.
  // V transposed: each restored byte goes through staging once.
  EXPECT_EQ(warm.assembled_bytes, GetParam() ? 0u : served);
  std::vector<float> logits = LastLogits(ctx_.get());
  auto state = llama::TakeSnapshot(ctx_.get(), 0);
  ASSERT_TRUE(state.ok());

  ContextPtr ref = NewContext(model_.get(), spec);
  EXPECT_TRUE(BitEqual(logits, Recompute(ref.get(), prefix_, suffix_)));
  auto ref_state = llama::TakeSnapshot(ref.get(), 0);
  ASSERT_TRUE(ref_state.ok());
  ASSERT_EQ(state->blob.size(), ref_state->blob.size());
  EXPECT_EQ(std::memcmp(state->blob.data(), ref_state->blob.data(), state->blob.size()), 0)
      << "KV after restore + suffix differs from the recomputed KV";
}

// Partial chunks: the same prompt again is restored to its last token, as
// llama-server's own cache does, from full chunks and a partial one, with
// either segment layout; the partial chunk at a prompt's end survives the
// generation after it.
TEST_P(ExactnessTest, TheSamePromptAgainIsRestoredToItsLastToken) {
  const ContextSpec spec{.flash_attn = GetParam()};
  Open(spec);
  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);  // 3 chunks + 20 tokens
  llama::PrefillResult cold = Prefill(*conn_, prompt);
  EXPECT_EQ(cold.offload_chunks, 3u);
  EXPECT_EQ(conn_->Stats().offloaded_partial_chunks, 1u);

  llama::PrefillResult again = Prefill(*conn_, prompt);
  EXPECT_EQ(again.cached_chunks, 3u);
  EXPECT_EQ(again.restored_tokens, prompt.size() - 1);
  EXPECT_EQ(again.partial_tokens, suffix_.size() - 1);
  EXPECT_EQ(again.computed_tokens, 1u);
  EXPECT_TRUE(again.fallback.empty()) << again.fallback;
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), LastTokenAgain(prompt, spec)));
  EXPECT_EQ(conn_->Stats().restored_partial_chunks, 1u);

  // Shorter than a chunk: a partial chunk alone.
  const std::vector<int32_t> short_prompt = TestTokens(kChunk - 5, 3);
  Prefill(*conn_, short_prompt);
  llama::PrefillResult short_again = Prefill(*conn_, short_prompt);
  EXPECT_EQ(short_again.cached_chunks, 0u);
  EXPECT_EQ(short_again.restored_tokens, short_prompt.size() - 1);
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), LastTokenAgain(short_prompt, spec)));

  // A prompt that parts from the stored one inside the partial chunk uses
  // none of it (its key covers every token of it).
  std::vector<int32_t> other = prompt;
  other[3 * kChunk + 5] += 1;
  EXPECT_EQ(Prefill(*conn_, other).restored_tokens, 3 * kChunk);
}

TEST_F(ConnectorTest, ThePromptsEndIsStoredBesideTheGenerationsEnd) {
  Open();
  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);
  ASSERT_TRUE(conn_->Restore(prompt, "").ok());
  ASSERT_TRUE(llama::DecodeTokens(ctx_.get(), prompt, 0, 0).ok());
  std::vector<int32_t> tokens = prompt;
  for (int32_t t : TestTokens(30, 14)) {  // "generation" across a chunk boundary
    ASSERT_TRUE(
        llama::DecodeTokens(ctx_.get(), {&t, 1}, static_cast<int32_t>(tokens.size()), 0).ok());
    tokens.push_back(t);
  }
  auto handed = conn_->Offload(tokens, "", prompt.size());
  ASSERT_TRUE(handed.ok()) << handed.status().ToString();
  EXPECT_EQ(*handed, 4u);
  conn_->Flush();
  EXPECT_EQ(conn_->Stats().offloaded_partial_chunks, 2u);
  // The prompt again: its own partial chunk, not the generation's chunk 3.
  EXPECT_EQ(conn_->CachedTokens(prompt, ""), prompt.size() - 1);
  // The conversation going on: the generation's partial chunk.
  const std::vector<int32_t> next_turn = Concat(tokens, TestTokens(10, 15));
  EXPECT_EQ(conn_->CachedTokens(next_turn, ""), tokens.size());
  // Nothing new to store: no snapshot, nothing handed over.
  auto none = conn_->Offload(tokens, "", prompt.size());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
  EXPECT_EQ(conn_->Stats().offload_jobs, 1u);
}

TEST_F(ConnectorTest, ACorruptPartialChunkIsRecomputedAfterTheFullChunks) {
  Open();
  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);
  Prefill(*conn_, prompt);
  const std::vector<ChunkKey> keys = ChainChunkKeys(conn_->ns(), prefix_, kChunk);
  const ChunkKey partial =
      PartialChunkKey(conn_->ns(), keys.back(), std::span(suffix_).first(suffix_.size()));
  ChunkRef rec = pool_->glt().Find(partial);
  ASSERT_NE(rec, nullptr) << "the partial chunk is stored under its key";
  EXPECT_EQ(rec->parent, keys.back()) << "as a child of the last full chunk";
  bool armed = false;
  for (uint32_t l = 0; l < rec->layers && !armed; ++l) {
    if (rec->segment(l).device != 1) continue;
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->flip_read_slots.insert(rec->segment(l).slot);
    armed = true;
  }
  ASSERT_TRUE(armed) << "the partial chunk has no segment on the faulty device";

  llama::PrefillResult r = Prefill(*conn_, prompt);
  EXPECT_EQ(r.restored_tokens, 3 * kChunk);
  EXPECT_EQ(r.partial_tokens, 0u);
  EXPECT_EQ(r.computed_tokens, suffix_.size());
  EXPECT_NE(r.fallback.find("partial chunk"), std::string::npos) << r.fallback;
  EXPECT_EQ(conn_->Stats().recomputed_tokens, suffix_.size() - 1);
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), Reference(prefix_, suffix_)));
}

INSTANTIATE_TEST_SUITE_P(FlashAttention, ExactnessTest, ::testing::Bool(),
                         [](const auto& p) { return p.param ? "VRows" : "VTransposed"; });

TEST_F(ConnectorTest, PromptsOfAtMostOneChunkRestoreNothingWithoutPartialChunks) {
  Open();
  conn_ = Connect(ctx_.get(), {.model_path = TestModelPath(), .partial_chunks = false});
  std::vector<int32_t> short_prompt = TestTokens(kChunk - 5, 3);
  llama::PrefillResult r = Prefill(*conn_, short_prompt);
  EXPECT_EQ(r.cached_chunks, 0u);
  EXPECT_EQ(r.restored_tokens, 0u);
  EXPECT_EQ(r.computed_tokens, short_prompt.size());
  EXPECT_EQ(r.offload_chunks, 0u);
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), Reference(short_prompt, {})));

  // Exactly one chunk: stored, but never restored by itself (a token must be decoded).
  std::vector<int32_t> one = TestTokens(kChunk, 4);
  EXPECT_EQ(Prefill(*conn_, one).offload_chunks, 1u);
  EXPECT_EQ(Prefill(*conn_, one).restored_tokens, 0u);
  r = Prefill(*conn_, Concat(one, {7}));
  EXPECT_EQ(r.restored_tokens, kChunk);
  EXPECT_EQ(r.computed_tokens, 1u);
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), Reference(one, {7})));
  EXPECT_EQ(conn_->Stats().prefills, 4u);
}

TEST_F(ConnectorTest, OffloadAfterGenerationStoresTheNewChunks) {
  Open();
  conn_ = Connect(ctx_.get(), {.model_path = TestModelPath(), .reserve_tokens = 1024});
  std::vector<int32_t> tokens = TestTokens(40, 5);
  EXPECT_EQ(Prefill(*conn_, tokens).offload_chunks, 1u);
  // "Generation": 30 more tokens, one llama_decode each.
  for (int32_t t : TestTokens(30, 6)) {
    ASSERT_TRUE(
        llama::DecodeTokens(ctx_.get(), {&t, 1}, static_cast<int32_t>(tokens.size()), 0).ok());
    tokens.push_back(t);
  }
  auto handed = conn_->Offload(tokens);
  ASSERT_TRUE(handed.ok()) << handed.status().ToString();
  EXPECT_EQ(*handed, 1u);  // chunk 0 is in the pool and not copied out again; chunk 1 is new
  conn_->Flush();
  EXPECT_EQ(conn_->Stats().offloaded_chunks, 2u);
  EXPECT_EQ(conn_->Offload(TestTokens(100, 7)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(conn_->Stats().offload_skipped, 1u);

  EXPECT_EQ(conn_->Stats().offloaded_partial_chunks, 2u);  // at 40 and at 70 tokens

  // Two full chunks and the 6 generated tokens of the partial chunk at 70.
  llama::PrefillResult r = Prefill(*conn_, Concat(tokens, {9}));
  EXPECT_EQ(r.restored_tokens, tokens.size());
  EXPECT_EQ(r.partial_tokens, tokens.size() - 2 * kChunk);
  EXPECT_EQ(r.computed_tokens, 1u);
  // The restored KV is that of the generation: the reference decodes it the
  // same way, then the new token.
  ContextPtr ref = NewContext(model_.get());
  ASSERT_TRUE(llama::DecodeTokens(ref.get(), std::span(tokens).first(40), 0, 0).ok());
  for (size_t i = 40; i < tokens.size(); ++i) {
    ASSERT_TRUE(llama::DecodeTokens(ref.get(), {&tokens[i], 1}, static_cast<int32_t>(i), 0).ok());
  }
  const int32_t next = 9;
  ASSERT_TRUE(
      llama::DecodeTokens(ref.get(), {&next, 1}, static_cast<int32_t>(tokens.size()), 0).ok());
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), LastLogits(ref.get())));
}

TEST_F(ConnectorTest, AnotherModelKvTypeOrTenantIsAMiss) {
  Open();
  Prefill(*conn_, prefix_);
  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);
  ASSERT_EQ(Prefill(*conn_, prompt).restored_tokens, prefix_.size());

  // Another model file (same shape, other weights).
  TempDir dir;
  const std::string other = dir.path() + "/other.gguf";
  auto spec = mkmodel::PresetSpec("tiny");
  ASSERT_TRUE(mkmodel::WriteModel(*spec, KVPOOL_TEST_VOCAB, other, 7).ok());
  ModelPtr other_model = LoadTestModel(other);
  ASSERT_TRUE(other_model);
  ContextPtr other_ctx = NewContext(other_model.get());
  auto c = Connect(other_ctx.get(), {.model_path = other});
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(Prefill(*c, prompt).cached_chunks, 0u);

  // Same segment size, other KV type: BF16 instead of F16.
  const ContextSpec bf16{.kv_type = GGML_TYPE_BF16};
  ContextPtr x = NewContext(model_.get(), bf16);
  ASSERT_TRUE(x);
  auto cx = Connect(x.get(), {.model_path = TestModelPath()});
  ASSERT_NE(cx, nullptr);
  EXPECT_EQ(Prefill(*cx, prompt).cached_chunks, 0u);
  EXPECT_TRUE(BitEqual(LastLogits(x.get()), Reference(prompt, {}, bf16)));

  // V transposed is cut into other segments (K and V joined): Create says so.
  ContextPtr vt = NewContext(model_.get(), {.flash_attn = false});
  auto joined = llama::Connector::Create(vt.get(), *pool_, {.model_path = TestModelPath()});
  EXPECT_EQ(joined.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(joined.status().message().find("KvShape"), std::string::npos)
      << joined.status().ToString();

  // Another tenant.
  auto tenant = Connect(ctx_.get(), {.model_path = TestModelPath(), .tenant_salt = "b"});
  EXPECT_EQ(Prefill(*tenant, prompt).cached_chunks, 0u);

  // Q8_0 KV has other segment sizes: the pool cannot hold it, Create says so.
  ContextPtr q8 = NewContext(model_.get(), {.kv_type = GGML_TYPE_Q8_0});
  auto bad = llama::Connector::Create(q8.get(), *pool_, {.model_path = TestModelPath()});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("KvShape"), std::string::npos) << bad.status().ToString();

  EXPECT_EQ(llama::Connector::Create(ctx_.get(), *pool_, {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(llama::Connector::Create(ctx_.get(), *pool_, {.model_path = dir.path() + "/none.gguf"})
                .status()
                .code(),
            StatusCode::kIOError);
}

TEST_F(ConnectorTest, FullPoolRecomputesAndSaysSo) {
  Open({}, 16 << 10);  // one segment of 16 KiB per device: a chunk needs 4
  llama::PrefillResult r = Prefill(*conn_, prefix_);
  EXPECT_EQ(r.offload_chunks, 3u);
  llama::ConnectorStats s = conn_->Stats();
  EXPECT_EQ(s.offloaded_chunks, 0u);
  EXPECT_EQ(s.offload_failures, 1u);
  EXPECT_NE(s.last_error.find("no space"), std::string::npos) << s.last_error;

  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);
  r = Prefill(*conn_, prompt);
  EXPECT_EQ(r.restored_tokens, 0u);
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), Reference(prompt, {})));
}

TEST_F(ConnectorTest, FailingDeviceRecomputesAndSaysSo) {
  Open();
  Prefill(*conn_, prefix_);
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->fail_all_reads = true;
  }
  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);
  llama::PrefillResult r = Prefill(*conn_, prompt);
  EXPECT_EQ(r.cached_chunks, 3u);
  EXPECT_EQ(r.restored_tokens, 0u);
  EXPECT_EQ(r.computed_tokens, prompt.size());
  EXPECT_FALSE(r.fallback.empty());
  llama::ConnectorStats s = conn_->Stats();
  EXPECT_EQ(s.restore_failures, 1u);
  EXPECT_EQ(s.recomputed_tokens, prefix_.size());
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), Reference(prompt, {})));
}

TEST_F(ConnectorTest, CorruptSegmentRestoresOnlyTheChunksBeforeIt) {
  Open();
  Prefill(*conn_, prefix_);
  // Flip a bit in a segment of chunk 1 that lives on the faulty device.
  std::vector<ChunkKey> keys = ChainChunkKeys(conn_->ns(), prefix_, kChunk);
  ChunkRef rec = pool_->glt().Find(keys[1]);
  ASSERT_NE(rec, nullptr);
  bool armed = false;
  for (uint32_t l = 0; l < rec->layers; ++l) {
    if (rec->segment(l).device != 1) continue;
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->flip_read_slots.insert(rec->segment(l).slot);
    armed = true;
    break;
  }
  ASSERT_TRUE(armed) << "chunk 1 has no segment on the faulty device";

  llama::PrefillResult r = Prefill(*conn_, Concat(prefix_, suffix_));
  EXPECT_EQ(r.restored_tokens, kChunk);
  EXPECT_FALSE(r.fallback.empty());
  // The blob was read for 3 chunks: the rows of the one kept are moved together.
  EXPECT_EQ(r.assembled_bytes, size_t{kChunk} * pool_->options().shape.BytesPerToken());
  // Reference: chunk 0's KV as the first Prefill computed it (in the piece
  // [0, 64)), then everything after it decoded in pieces from 32.
  ContextPtr ref = NewContext(model_.get());
  ASSERT_TRUE(llama::DecodeTokens(ref.get(), std::span(prefix_).first(64), 0, 0).ok());
  llama_memory_seq_rm(llama_get_memory(ref.get()), 0, kChunk, -1);
  std::vector<int32_t> rest(prefix_.begin() + kChunk, prefix_.end());
  rest = Concat(rest, suffix_);
  ASSERT_TRUE(llama::DecodeTokens(ref.get(), rest, kChunk, 0).ok());
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), LastLogits(ref.get())));
}

// Restore without decode (for engines that batch the rest with other
// sequences), per-call tenants, and the bounded offload backlog.
TEST_F(ConnectorTest, RestoreLeavesTheRestToTheCallerInTheTenantsNamespace) {
  Open();
  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);
  EXPECT_EQ(conn_->CachedTokens(prompt, "alpha"), 0u);
  auto cold = conn_->Restore(prompt, "alpha");
  ASSERT_TRUE(cold.ok()) << cold.status().ToString();
  EXPECT_EQ(cold->restored_tokens, 0u);
  EXPECT_EQ(cold->computed_tokens, prompt.size());
  ASSERT_TRUE(llama::DecodeTokens(ctx_.get(), prompt, 0, 0).ok());
  auto handed = conn_->Offload(prompt, "alpha");
  ASSERT_TRUE(handed.ok()) << handed.status().ToString();
  EXPECT_EQ(*handed, 3u);
  conn_->Flush();

  // Three full chunks and the partial one: all but the last token.
  EXPECT_EQ(conn_->CachedTokens(prompt, "alpha"), prompt.size() - 1);
  EXPECT_EQ(conn_->CachedTokens(prompt, "beta"), 0u) << "tenants must not share chunks";
  EXPECT_EQ(conn_->CachedTokens(prompt, ""), 0u) << "the connector's own salt is another tenant";
  const std::vector<int32_t> longer = Concat(prompt, TestTokens(40, 13));
  EXPECT_EQ(conn_->CachedTokens(longer, "alpha"), prompt.size())
      << "a longer prompt uses every cell of the partial chunk";

  auto warm = conn_->Restore(prompt, "alpha");
  ASSERT_TRUE(warm.ok()) << warm.status().ToString();
  EXPECT_EQ(warm->restored_tokens, prompt.size() - 1);
  EXPECT_EQ(warm->computed_tokens, 1u);
  EXPECT_EQ(warm->decode_seconds, 0.0);
  const auto last = static_cast<int32_t>(prompt.size() - 1);
  ASSERT_TRUE(llama::DecodeTokens(ctx_.get(), std::span(prompt).last(1), last, 0).ok());
  EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), LastTokenAgain(prompt)));
}

// An engine that first asks what the pool holds, then restores: the restore
// reads what the search found without searching again, and a hint that does
// not fit the prompt (another prompt's, another tenant's, a stale one) costs
// a search or a recompute, never wrong KV.
TEST_F(ConnectorTest, RestoreTakesWhatFindCachedFoundAndChecksIt) {
  Open();
  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);  // 3 chunks + 20 tokens
  Prefill(*conn_, prompt);
  const std::vector<int32_t> other = Concat(TestTokens(2 * kChunk, 21), suffix_);
  Prefill(*conn_, other);

  const llama::CachedPrefix found = conn_->FindCached(prompt, "");
  EXPECT_EQ(found.tokens, prompt.size() - 1);
  EXPECT_EQ(found.full_keys.size(), 3u);
  EXPECT_EQ(found.partial_length, suffix_.size());
  EXPECT_EQ(found.partial_cells, suffix_.size() - 1);
  EXPECT_EQ(conn_->CachedTokens(prompt, ""), found.tokens);

  // Restores with `hint`, decodes the rest and compares the logits with
  // `reference`. Returns the pool lookups it took.
  auto restore_and_check = [&](const llama::CachedPrefix& hint, std::string_view tenant,
                               size_t want_restored,
                               const std::vector<float>& reference) -> uint64_t {
    const uint64_t lookups = pool_->Stats().lookups;
    auto r = conn_->Restore(prompt, tenant, hint);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return 0;
    const uint64_t took = pool_->Stats().lookups - lookups;
    const size_t n = r->restored_tokens;
    EXPECT_EQ(n, want_restored);
    EXPECT_TRUE(llama::DecodeTokens(ctx_.get(), std::span(prompt).subspan(n),
                                    static_cast<int32_t>(n), 0)
                    .ok());
    EXPECT_TRUE(BitEqual(LastLogits(ctx_.get()), reference)) << "restored " << n;
    return took;
  };
  const std::vector<float> all_but_last = LastTokenAgain(prompt);
  const std::vector<float> from_scratch = Reference({}, prompt);
  // Its own search's answer: read without searching again.
  const uint64_t reads = restore_and_check(found, "", prompt.size() - 1, all_but_last);
  // What a search adds: the full-chunk Lookup and the partial chunk's FindChild.
  const uint64_t search = 2;
  // Another prompt's answer: searched again, restored right.
  EXPECT_EQ(restore_and_check(conn_->FindCached(other, ""), "", prompt.size() - 1, all_but_last),
            reads + search);
  // The answer for another tenant: searched in that tenant, which holds nothing.
  EXPECT_EQ(restore_and_check(found, "beta", 0, from_scratch), search);
  // A forged partial chunk length: searched again.
  llama::CachedPrefix forged = found;
  forged.partial_length -= 1;
  EXPECT_EQ(restore_and_check(forged, "", prompt.size() - 1, all_but_last), reads + search);
  // Stale: chunks 1 and 2 went away after the search. The restore reads what
  // is left, chunk 0 (computed in the piece [0, 64)), and the rest is decoded
  // from 32.
  ASSERT_EQ(pool_->Remove(std::span(found.full_keys).subspan(1)), 2u);
  ContextPtr ref = NewContext(model_.get());
  ASSERT_TRUE(llama::DecodeTokens(ref.get(), std::span(prompt).first(64), 0, 0).ok());
  llama_memory_seq_rm(llama_get_memory(ref.get()), 0, kChunk, -1);
  ASSERT_TRUE(llama::DecodeTokens(ref.get(), std::span(prompt).subspan(kChunk), kChunk, 0).ok());
  restore_and_check(found, "", kChunk, LastLogits(ref.get()));
}

TEST_F(ConnectorTest, AnOffloadBacklogOverItsBoundIsSkippedNotQueued) {
  Open();
  // One byte of backlog: the first snapshot is always taken, a second one
  // while the first still waits is refused.
  conn_ = Connect(ctx_.get(), {.model_path = TestModelPath(), .max_pending_offload_bytes = 1});
  const std::vector<int32_t> prompt = Concat(prefix_, suffix_);
  ASSERT_TRUE(llama::DecodeTokens(ctx_.get(), prompt, 0, 0).ok());
  size_t accepted = 0, refused = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = conn_->Offload(prompt, "t" + std::to_string(i));
    if (r.ok()) ++accepted;
    else if (r.status().code() == StatusCode::kBusy) ++refused;
  }
  conn_->Flush();
  EXPECT_GE(accepted, 1u);
  EXPECT_EQ(accepted + refused, 20u);
  EXPECT_EQ(conn_->Stats().offload_skipped, refused);
  EXPECT_EQ(conn_->Stats().offload_jobs, accepted);
}


// Snapshot buffers are reused, so that a snapshot does not pay page faults.
TEST(BlobRecyclerTest, ReusesAKeptBufferThatIsLargeEnoughAndKeepsTheLargest) {
  llama::BlobRecycler recycler(/*max_kept=*/2);
  llama::Bytes a = recycler.Take(1000);
  EXPECT_EQ(a.size(), 1000u);
  EXPECT_GE(a.capacity(), 1000u);
  const std::byte* memory = a.data();
  recycler.Give(std::move(a));
  llama::Bytes b = recycler.Take(900);
  EXPECT_EQ(b.data(), memory) << "a kept buffer that is large enough is reused";
  EXPECT_EQ(b.size(), 900u);
  llama::Bytes big = recycler.Take(1 << 20);
  EXPECT_NE(big.data(), memory);
  recycler.Give(std::move(b));
  recycler.Give(std::move(big));
  recycler.Give(llama::Bytes(10));  // a third one: the smallest goes
  llama::Bytes again = recycler.Take(1000);
  EXPECT_EQ(again.data(), memory);
}


}  // namespace
}  // namespace kvpool::testing

#else  // !KVPOOL_HAVE_LLAMA

TEST(LlamaNotBuilt, Skip) { GTEST_SKIP() << "llama.cpp is not built: run scripts/setup_llama.sh"; }

#endif
