// kvpool-mkmodel's models: deterministic bytes, real shapes, loadable by llama.cpp.
#include <gtest/gtest.h>

#if KVPOOL_HAVE_LLAMA

#include <fstream>
#include <iterator>

#include "llama_test_env.h"
#include "model_writer.h"

namespace kvpool::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(MkModel, SameInputsGiveTheSameBytes) {
  TempDir dir;
  auto spec = mkmodel::PresetSpec("tiny");
  ASSERT_TRUE(spec.ok());
  for (const char* name : {"/a.gguf", "/b.gguf"}) {
    ASSERT_TRUE(mkmodel::WriteModel(*spec, KVPOOL_TEST_VOCAB, dir.path() + name, 42).ok());
  }
  ASSERT_TRUE(mkmodel::WriteModel(*spec, KVPOOL_TEST_VOCAB, dir.path() + "/c.gguf", 43).ok());
  const std::string a = ReadAll(dir.path() + "/a.gguf");
  EXPECT_GT(a.size(), 20u << 20);
  EXPECT_TRUE(a == ReadAll(dir.path() + "/b.gguf")) << "two runs gave different bytes";
  EXPECT_FALSE(a == ReadAll(dir.path() + "/c.gguf")) << "the seed is ignored";
  // The fixture's model was made by the command-line tool with the default seed.
  EXPECT_TRUE(a == ReadAll(TestModelPath())) << "kvpool-mkmodel and WriteModel disagree";
}

TEST(MkModel, ModelsHaveTheirShapeAndTokenizer) {
  KVPOOL_REQUIRE_TEST_MODEL(model, TestModelPath());
  EXPECT_EQ(llama_model_n_embd(model.get()), 256);
  EXPECT_EQ(llama_model_n_layer(model.get()), 4);
  EXPECT_EQ(llama_model_n_head(model.get()), 4);
  EXPECT_EQ(llama_model_n_head_kv(model.get()), 2);
  const llama_vocab* vocab = llama_model_get_vocab(model.get());
  EXPECT_EQ(llama_vocab_n_tokens(vocab), 32000);
  const std::string text = "The quick brown fox";
  std::vector<llama_token> tokens(64);
  int n = llama_tokenize(vocab, text.c_str(), static_cast<int32_t>(text.size()), tokens.data(), 64,
                         true, false);
  EXPECT_GT(n, 3);  // BOS + real word pieces
}

TEST(MkModel, BadInputsAreNamed) {
  TempDir dir;
  EXPECT_EQ(mkmodel::PresetSpec("huge").status().code(), StatusCode::kInvalidArgument);
  auto spec = mkmodel::PresetSpec("tiny");
  Status s = mkmodel::WriteModel(*spec, dir.path() + "/missing.gguf", dir.path() + "/x.gguf", 1);
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_NE(s.message().find("missing.gguf"), std::string::npos) << s.ToString();
  mkmodel::ModelSpec odd = *spec;
  odd.weight_type = "q5_k";
  EXPECT_EQ(mkmodel::WriteModel(odd, KVPOOL_TEST_VOCAB, dir.path() + "/x.gguf", 1).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvpool::testing

#else  // !KVPOOL_HAVE_LLAMA

TEST(LlamaNotBuilt, Skip) { GTEST_SKIP() << "llama.cpp is not built: run scripts/setup_llama.sh"; }

#endif
