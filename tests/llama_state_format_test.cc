// llama.cpp's per-sequence state, cut into (chunk, layer) segments and put
// back together. These tests pin the state format of the pinned llama.cpp:
// if it ever changes, they fail here rather than the connector restoring
// wrong KV.
#include <gtest/gtest.h>

#if KVPOOL_HAVE_LLAMA

#include <cstring>
#include <optional>
#include <span>

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

// Snapshots of sequence 0 after decoding the first `prefix_chunks` chunks of
// `tokens`, and after decoding the rest; nullopt (with a failure) if either fails.
struct PrefixAndFull {
  Snapshot prefix;
  Snapshot full;
};
std::optional<PrefixAndFull> DecodeInTwoSteps(llama_context* ctx, std::span<const int32_t> tokens,
                                              uint32_t prefix_chunks) {
  const uint32_t cut = prefix_chunks * kChunk;
  if (!llama::DecodeTokens(ctx, tokens.first(cut), 0, 0).ok()) return std::nullopt;
  auto prefix = llama::TakeSnapshot(ctx, 0);
  EXPECT_TRUE(prefix.ok()) << prefix.status().ToString();
  if (!prefix.ok() || !llama::DecodeTokens(ctx, tokens.subspan(cut), cut, 0).ok()) {
    return std::nullopt;
  }
  auto full = llama::TakeSnapshot(ctx, 0);
  EXPECT_TRUE(full.ok()) << full.status().ToString();
  if (!full.ok()) return std::nullopt;
  return PrefixAndFull{std::move(prefix).value(), std::move(full).value()};
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
  auto snaps = DecodeInTwoSteps(ctx.get(), TestTokens(2 * kChunk + 7, 2), 2);
  ASSERT_TRUE(snaps);
  const Snapshot* prefix = &snaps->prefix;
  Snapshot* full = &snaps->full;
  EXPECT_EQ(full->state.cells, 2 * kChunk + 7);

  Bytes rebuilt = Reassemble(*full, 2);
  EXPECT_TRUE(SameBytes(rebuilt, prefix->blob));

  // llama.cpp takes the rebuilt blob back, and then holds exactly the prefix.
  ASSERT_TRUE(llama::RestoreSnapshot(ctx.get(), 0, rebuilt.span()).ok());
  auto back = llama::TakeSnapshot(ctx.get(), 0);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(SameBytes(back->blob, prefix->blob));
}

// V rows: pool segments are runs of the blob itself (SplitSegmentsOf). Moving
// a prefix's segments between two blobs, and shrinking a blob in place after
// a short read (KeepFirstCells), both give llama.cpp's own prefix blob.
TEST(StateFormat, SplitSegmentsAreRunsOfTheBlob) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  ContextPtr ctx = NewContext(model.get(), {.flash_attn = true});
  ASSERT_TRUE(ctx);
  auto snaps = DecodeInTwoSteps(ctx.get(), TestTokens(3 * kChunk + 5, 6), 2);
  ASSERT_TRUE(snaps);
  const Snapshot* prefix = &snaps->prefix;
  Snapshot* full = &snaps->full;
  const llama::StateFormat& f = full->state.format;
  ASSERT_EQ(llama::LayoutForFormat(f), llama::SegmentLayout::kSplit);

  Bytes moved(f.BlobBytes(2 * kChunk), 4096);
  auto to = llama::WriteSeqStateHeaders(f, 0, 2 * kChunk, moved.span());
  ASSERT_TRUE(to.ok()) << to.status().ToString();
  const ConstKvBuffer from =
      llama::SplitSegmentsOf<const std::byte>(full->state, full->blob.data(), kChunk);
  const KvBuffer dest = llama::SplitSegmentsOf(*to, moved.data(), kChunk);
  ASSERT_EQ(dest.layer_base.size(), 2 * f.layers.size());
  for (uint32_t pl = 0; pl < dest.layer_base.size(); ++pl) {
    for (size_t c = 0; c < 2; ++c)
      std::memcpy(dest.Segment(c, pl), from.Segment(c, pl), dest.chunk_stride);
  }
  EXPECT_TRUE(SameBytes(moved, prefix->blob));
  // Every run starts 4-byte aligned in a 4096-aligned blob (F16 rows): the
  // O_DIRECT memory alignment of NVMe, so extents there read into it
  // directly (docs/llama_cpp.md); never 4096-aligned, because of the 12
  // bytes of type and row size before each layer's rows.
  for (uint32_t pl = 0; pl < dest.layer_base.size(); ++pl) {
    const auto at = reinterpret_cast<uintptr_t>(dest.Segment(0, pl));
    EXPECT_EQ(at % 4, 0u) << "pool layer " << pl;
    EXPECT_NE(at % 4096, 0u) << "pool layer " << pl;
  }

  // From chunk 1 on: the same runs, addressed from there.
  const ConstKvBuffer tail =
      llama::SplitSegmentsOf<const std::byte>(full->state, full->blob.data(), kChunk, 1);
  EXPECT_EQ(tail.Segment(2, 3), from.Segment(2, 3));

  auto kept = llama::KeepFirstCells(full->state, 2 * kChunk, full->blob.span());
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  full->blob.Resize(f.BlobBytes(2 * kChunk));
  EXPECT_TRUE(SameBytes(full->blob, prefix->blob));
  EXPECT_EQ(kept->k_offset, to->k_offset);
  EXPECT_EQ(kept->v_offset, to->v_offset);
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
  // Flash attention on (V rows): K and V are separate segments of one chunk's
  // rows (2 KV heads x 64 x F16 = 256 B), so the pool has twice the layers.
  EXPECT_EQ(shape->layers, 8u);
  EXPECT_EQ(shape->SegmentPayloadBytes(), kChunk * 256u);
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
  EXPECT_EQ(shape->layers, 8u);
  EXPECT_EQ(shape->SegmentPayloadBytes(), kChunk * 136u);
  EXPECT_EQ(shape->dtype_bytes, 1u);
}

TEST(StateFormat, TransposedVKeepsKAndVOfALayerInOneSegment) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  ContextPtr ctx = NewContext(model.get(), {.flash_attn = false});
  ASSERT_TRUE(ctx);
  auto shape = llama::Connector::KvShape(ctx.get(), kChunk);
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  EXPECT_EQ(shape->layers, 4u);
  EXPECT_EQ(shape->kv_heads, 2u);
  EXPECT_EQ(shape->head_dim, 64u);
  EXPECT_EQ(shape->dtype_bytes, 2u);
  EXPECT_EQ(shape->SegmentPayloadBytes(), kChunk * 512u);
}

}  // namespace
}  // namespace kvpool::testing

#else  // !KVPOOL_HAVE_LLAMA

TEST(LlamaNotBuilt, Skip) { GTEST_SKIP() << "llama.cpp is not built: run scripts/setup_llama.sh"; }

#endif
