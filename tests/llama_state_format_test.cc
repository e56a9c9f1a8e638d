// llama.cpp's per-sequence state, cut into (chunk, layer) segments and put
// back together. These tests pin the state format of the pinned llama.cpp:
// if it ever changes, they fail here rather than the connector restoring
// wrong KV.
#include <gtest/gtest.h>

#if KVPOOL_HAVE_LLAMA

#include <cstring>

#include "kv_layout.h"
#include "llama_io.h"
#include "llama_test_env.h"
#include "state_format.h"

namespace kvpool::testing {
namespace {

using llama::Bytes;
using llama::ParsedState;
using llama::Snapshot;

constexpr uint32_t kChunk = 32;

// Reassembles `chunks` chunks of `from` through segment buffers.
Bytes Reassemble(const Snapshot& from, uint32_t chunks) {
  const llama::StateFormat& f = from.state.format;
  Bytes blob(f.BlobBytes(chunks * kChunk));
  auto to = llama::WriteSeqStateHeaders(f, from.state.seq_id, chunks * kChunk, blob.span());
  EXPECT_TRUE(to.ok()) << to.status().ToString();
  for (uint32_t l = 0; l < f.layers.size(); ++l) {
    std::vector<std::byte> segment(llama::SegmentBytes(f.layers[l], kChunk));
    for (uint32_t c = 0; c < chunks; ++c) {
      llama::CopyOutSegment(from.state, from.blob.data(), c, kChunk, l, segment.data());
      llama::CopyInSegment(*to, blob.data(), c, kChunk, l, segment.data());
    }
  }
  return blob;
}

bool SameBytes(const Bytes& a, const Bytes& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

class StateFormatTest : public ::testing::TestWithParam<bool> {};  // flash attention

TEST_P(StateFormatTest, ParsedSizesAddUpAndSplitReassemblesIdentically) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  ContextPtr ctx = NewContext(model.get(), {.flash_attn = GetParam()});
  ASSERT_TRUE(ctx);
  std::vector<int32_t> tokens = TestTokens(3 * kChunk, 1);
  ASSERT_TRUE(llama::DecodeTokens(ctx.get(), tokens, 0, 0).ok());

  auto snap = llama::TakeSnapshot(ctx.get(), 0);  // parses; fails unless sizes add up exactly
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  const ParsedState& s = snap->state;
  EXPECT_EQ(s.cells, 3 * kChunk);
  EXPECT_TRUE(s.PositionsAreCellIndices());
  EXPECT_EQ(s.format.v_trans, !GetParam());
  ASSERT_EQ(s.format.layers.size(), 4u);
  // tiny: 2 KV heads x 64, F16: 256 bytes of K and of V per cell and layer.
  EXPECT_EQ(s.format.layers[0].k_row, 256u);
  EXPECT_EQ(s.format.layers[0].v_row, 256u);
  EXPECT_EQ(s.format.BlobBytes(s.cells), llama_state_seq_get_size(ctx.get(), 0));

  Bytes again = Reassemble(*snap, 3);
  EXPECT_TRUE(SameBytes(again, snap->blob)) << "split + reassemble changed the blob";
}

TEST_P(StateFormatTest, PrefixOfALongerSequenceReassemblesToThePrefixState) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  ContextPtr ctx = NewContext(model.get(), {.flash_attn = GetParam()});
  ASSERT_TRUE(ctx);
  std::vector<int32_t> tokens = TestTokens(2 * kChunk + 7, 2);
  ASSERT_TRUE(llama::DecodeTokens(ctx.get(), std::span(tokens).first(2 * kChunk), 0, 0).ok());
  auto prefix = llama::TakeSnapshot(ctx.get(), 0);
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  ASSERT_TRUE(
      llama::DecodeTokens(ctx.get(), std::span(tokens).subspan(2 * kChunk), 2 * kChunk, 0).ok());
  auto full = llama::TakeSnapshot(ctx.get(), 0);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->state.cells, 2 * kChunk + 7);

  Bytes rebuilt = Reassemble(*full, 2);
  EXPECT_TRUE(SameBytes(rebuilt, prefix->blob));

  // llama.cpp takes the rebuilt blob back, and then holds exactly the prefix.
  ASSERT_TRUE(llama::RestoreSnapshot(ctx.get(), 0, rebuilt.span()).ok());
  auto back = llama::TakeSnapshot(ctx.get(), 0);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(SameBytes(back->blob, prefix->blob));
}

INSTANTIATE_TEST_SUITE_P(FlashAttention, StateFormatTest, ::testing::Bool(),
                         [](const auto& p) { return p.param ? "VRows" : "VTransposed"; });

TEST(StateFormat, TruncatedOrPaddedBlobsAreCorruption) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  ContextPtr ctx = NewContext(model.get());
  ASSERT_TRUE(ctx);
  std::vector<int32_t> tokens = TestTokens(40, 3);
  ASSERT_TRUE(llama::DecodeTokens(ctx.get(), tokens, 0, 0).ok());
  auto snap = llama::TakeSnapshot(ctx.get(), 0);
  ASSERT_TRUE(snap.ok());
  std::span<const std::byte> blob = snap->blob.span();
  EXPECT_EQ(llama::ParseSeqState(blob.first(blob.size() - 1), 4).status().code(),
            StatusCode::kCorruption);
  std::vector<std::byte> longer(blob.begin(), blob.end());
  longer.push_back(std::byte{0});
  EXPECT_EQ(llama::ParseSeqState(longer, 4).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(llama::ParseSeqState(blob, 5).status().code(), StatusCode::kCorruption);  // layer count
  std::vector<std::byte> bad_magic(blob.begin(), blob.end());
  bad_magic[0] ^= std::byte{1};
  EXPECT_EQ(llama::ParseSeqState(bad_magic, 4).status().code(), StatusCode::kCorruption);
}

TEST(StateFormat, EmptySequenceParsesWithNoCells) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  ContextPtr ctx = NewContext(model.get());
  ASSERT_TRUE(ctx);
  auto snap = llama::TakeSnapshot(ctx.get(), 0);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->state.cells, 0u);
}

TEST(StateFormat, ShapeMatchesTheStateWithOrWithoutCells) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  ContextPtr ctx = NewContext(model.get());
  ASSERT_TRUE(ctx);
  auto shape = llama::Connector::KvShape(ctx.get(), kChunk);
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  EXPECT_EQ(shape->layers, 4u);
  EXPECT_EQ(shape->kv_heads, 2u);
  EXPECT_EQ(shape->head_dim, 64u);
  EXPECT_EQ(shape->dtype_bytes, 2u);
  EXPECT_EQ(shape->SegmentPayloadBytes(), kChunk * 512u);
  EXPECT_EQ(llama_memory_seq_pos_max(llama_get_memory(ctx.get()), 0), -1)
      << "probe left cells behind";

  std::vector<int32_t> tokens = TestTokens(3, 4);
  ASSERT_TRUE(llama::DecodeTokens(ctx.get(), tokens, 0, 0).ok());
  auto again = llama::Connector::KvShape(ctx.get(), kChunk);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->Fingerprint(), shape->Fingerprint());
  EXPECT_EQ(llama_memory_seq_pos_max(llama_get_memory(ctx.get()), 0), 2)
      << "probe changed the sequence";
}

TEST(StateFormat, QuantizedKvGetsAByteShape) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  ContextPtr ctx = NewContext(model.get(), {.kv_type = GGML_TYPE_Q8_0});
  ASSERT_TRUE(ctx);
  auto shape = llama::Connector::KvShape(ctx.get(), kChunk);
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  // Q8_0 rows of 128 elements: 4 blocks of 34 bytes, for K and for V.
  EXPECT_EQ(shape->SegmentPayloadBytes(), kChunk * 2u * 136u);
  EXPECT_EQ(shape->dtype_bytes, 1u);
}

}  // namespace
}  // namespace kvpool::testing

#else  // !KVPOOL_HAVE_LLAMA

TEST(LlamaNotBuilt, Skip) { GTEST_SKIP() << "llama.cpp is not built: run scripts/setup_llama.sh"; }

#endif
