#include "model_writer.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "ggml.h"
#include "gguf.h"

namespace kvpool::mkmodel {
namespace {

struct GgufDeleter {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;
using GgmlPtr = std::unique_ptr<ggml_context, GgmlDeleter>;
struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t NameSeed(uint64_t seed, const char* name) {
  uint64_t h = seed ^ 0xcbf29ce484222325ull;  // FNV-1a over the tensor name
  for (const char* p = name; *p; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 0x100000001b3ull;
  return h;
}

Result<ggml_type> ParseWeightType(const std::string& name) {
  if (name == "q8_0") return GGML_TYPE_Q8_0;
  if (name == "q4_0") return GGML_TYPE_Q4_0;
  if (name == "f16") return GGML_TYPE_F16;
  return Status::InvalidArgument("weight type must be q8_0, q4_0 or f16, got '" + name + "'");
}

uint32_t FileType(ggml_type t) {  // llama_ftype values (llama.h)
  return t == GGML_TYPE_Q8_0 ? 7 : t == GGML_TYPE_Q4_0 ? 2 : 1;
}

// Copies every tokenizer.* key of `vocab` into `dst`.
Status CopyTokenizer(const std::string& vocab_path, gguf_context* dst) {
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  GgufPtr vocab(gguf_init_from_file(vocab_path.c_str(), params));
  if (!vocab) return Status::IOError("cannot read GGUF vocabulary '" + vocab_path + "'");
  if (gguf_find_key(vocab.get(), "tokenizer.ggml.tokens") < 0) {
    return Status::InvalidArgument("'" + vocab_path + "' has no tokenizer.ggml.tokens");
  }
  GgufPtr tmp(gguf_init_empty());
  gguf_set_kv(tmp.get(), vocab.get());
  std::vector<std::string> drop;
  for (int64_t i = 0; i < gguf_get_n_kv(tmp.get()); ++i) {
    std::string key = gguf_get_key(tmp.get(), i);
    if (key.rfind("tokenizer.", 0) != 0) drop.push_back(key);
  }
  for (const std::string& key : drop) gguf_remove_key(tmp.get(), key.c_str());
  gguf_set_kv(dst, tmp.get());
  return Status::OK();
}

void SetHyperParameters(const ModelSpec& s, ggml_type wtype, gguf_context* g) {
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_str(g, "general.name", ("kvpool-random-" + s.name).c_str());
  gguf_set_val_str(
      g, "general.description",
      "kvpool-mkmodel: seeded RANDOM weights at a real shape; text output is gibberish");
  gguf_set_val_u32(g, "general.file_type", FileType(wtype));
  gguf_set_val_u32(g, "llama.context_length", s.n_ctx_train);
  gguf_set_val_u32(g, "llama.embedding_length", s.n_embd);
  gguf_set_val_u32(g, "llama.block_count", s.n_layer);
  gguf_set_val_u32(g, "llama.feed_forward_length", s.n_ff);
  gguf_set_val_u32(g, "llama.attention.head_count", s.n_head);
  gguf_set_val_u32(g, "llama.attention.head_count_kv", s.n_head_kv);
  gguf_set_val_u32(g, "llama.rope.dimension_count", s.n_embd / s.n_head);
  gguf_set_val_f32(g, "llama.rope.freq_base", 10000.0f);
  gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
}

struct TensorSpec {
  std::string name;
  int64_t ne0 = 0;  // input features (fan-in), or the length of a 1-D tensor
  int64_t ne1 = 1;  // output features (rows)
  bool norm = false;
};

std::vector<TensorSpec> Tensors(const ModelSpec& s, int64_t n_vocab) {
  const int64_t kv = int64_t{s.n_embd} / s.n_head * s.n_head_kv;
  std::vector<TensorSpec> t = {{"token_embd.weight", s.n_embd, n_vocab},
                               {"output_norm.weight", s.n_embd, 1, true},
                               {"output.weight", s.n_embd, n_vocab}};
  for (uint32_t l = 0; l < s.n_layer; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    t.push_back({p + "attn_norm.weight", s.n_embd, 1, true});
    t.push_back({p + "attn_q.weight", s.n_embd, s.n_embd});
    t.push_back({p + "attn_k.weight", s.n_embd, kv});
    t.push_back({p + "attn_v.weight", s.n_embd, kv});
    t.push_back({p + "attn_output.weight", s.n_embd, s.n_embd});
    t.push_back({p + "ffn_norm.weight", s.n_embd, 1, true});
    t.push_back({p + "ffn_gate.weight", s.n_embd, s.n_ff});
    t.push_back({p + "ffn_down.weight", s.n_ff, s.n_embd});
    t.push_back({p + "ffn_up.weight", s.n_embd, s.n_ff});
  }
  return t;
}

// Generates and encodes one tensor's data, a block of rows at a time.
Status WriteTensorData(const TensorSpec& t, ggml_type type, uint64_t seed, FILE* f) {
  const int64_t rows_per_block = std::max<int64_t>(1, (1 << 22) / t.ne0);
  std::vector<float> src;
  std::vector<uint8_t> dst;
  uint64_t state = NameSeed(seed, t.name.c_str());
  const float a = std::sqrt(3.0f / static_cast<float>(t.ne0));  // variance 1/fan_in
  for (int64_t r0 = 0; r0 < t.ne1; r0 += rows_per_block) {
    const int64_t rows = std::min(rows_per_block, t.ne1 - r0);
    src.resize(rows * t.ne0);
    for (float& v : src) {
      v = t.norm ? 1.0f : (2.0f * static_cast<float>(SplitMix(state) >> 40) * 0x1p-24f - 1.0f) * a;
    }
    size_t bytes = 0;
    if (type == GGML_TYPE_F32) {
      dst.resize(src.size() * sizeof(float));
      std::memcpy(dst.data(), src.data(), dst.size());
      bytes = dst.size();
    } else if (type == GGML_TYPE_F16) {
      dst.resize(src.size() * sizeof(ggml_fp16_t));
      ggml_fp32_to_fp16_row(src.data(), reinterpret_cast<ggml_fp16_t*>(dst.data()), src.size());
      bytes = dst.size();
    } else {
      dst.resize(ggml_row_size(type, t.ne0) * rows);
      bytes = ggml_quantize_chunk(type, src.data(), dst.data(), 0, rows, t.ne0, nullptr);
    }
    if (std::fwrite(dst.data(), 1, bytes, f) != bytes) return Status::IOError("short write");
  }
  return Status::OK();
}

Status PadTo(FILE* f, long offset) {
  long pos = std::ftell(f);
  if (pos > offset) return Status::Corruption("tensor data overran its GGUF offset");
  for (; pos < offset; ++pos) std::fputc(0, f);
  return Status::OK();
}

}  // namespace

std::vector<std::string> PresetNames() { return {"tiny", "smol", "tinyllama"}; }

Result<ModelSpec> PresetSpec(std::string_view name) {
  if (name == "tiny") return ModelSpec{"tiny", 256, 4, 4, 2, 768, "q8_0"};
  if (name == "smol") return ModelSpec{"smol", 576, 30, 9, 3, 1536, "q8_0"};
  if (name == "tinyllama") return ModelSpec{"tinyllama", 2048, 22, 32, 4, 5632, "q4_0"};
  return Status::InvalidArgument("unknown model preset '" + std::string(name) +
                                 "' (tiny, smol, tinyllama)");
}

Status WriteModel(const ModelSpec& spec, const std::string& vocab, const std::string& out,
                  uint64_t seed) {
  KVP_ASSIGN_OR_RETURN(ggml_type wtype, ParseWeightType(spec.weight_type));
  if (spec.n_head == 0 || spec.n_embd % spec.n_head != 0 || spec.n_head_kv == 0 ||
      spec.n_head % spec.n_head_kv != 0) {
    return Status::InvalidArgument("model '" + spec.name +
                                   "': heads must divide n_embd and n_head");
  }
  GgufPtr g(gguf_init_empty());
  KVP_RETURN_IF_ERROR(CopyTokenizer(vocab, g.get()));
  SetHyperParameters(spec, wtype, g.get());
  const int64_t n_vocab = gguf_get_arr_n(g.get(), gguf_find_key(g.get(), "tokenizer.ggml.tokens"));

  std::vector<TensorSpec> tensors = Tensors(spec, n_vocab);
  ggml_init_params ip{ggml_tensor_overhead() * (tensors.size() + 1), nullptr, /*no_alloc=*/true};
  GgmlPtr meta(ggml_init(ip));
  std::vector<ggml_type> types;
  for (const TensorSpec& t : tensors) {
    ggml_type type = t.norm ? GGML_TYPE_F32 : wtype;
    if (t.ne0 % ggml_blck_size(type) != 0) {
      return Status::InvalidArgument(t.name + ": " + std::to_string(t.ne0) +
                                     " columns are not a multiple of the quantization block");
    }
    ggml_tensor* x = t.norm ? ggml_new_tensor_1d(meta.get(), type, t.ne0)
                            : ggml_new_tensor_2d(meta.get(), type, t.ne0, t.ne1);
    ggml_set_name(x, t.name.c_str());
    gguf_add_tensor(g.get(), x);
    types.push_back(type);
  }

  const std::string tmp = out + ".tmp";
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(out).parent_path(), ec);
  if (!gguf_write_to_file(g.get(), tmp.c_str(), /*only_meta=*/true)) {
    return Status::IOError("cannot write '" + tmp + "'");
  }
  std::unique_ptr<FILE, FileCloser> f(std::fopen(tmp.c_str(), "ab"));
  if (!f) return Status::IOError("cannot append to '" + tmp + "'");
  const size_t data_offset = gguf_get_meta_size(g.get());
  for (size_t i = 0; i < tensors.size(); ++i) {
    KVP_RETURN_IF_ERROR(
        PadTo(f.get(), static_cast<long>(data_offset + gguf_get_tensor_offset(g.get(), i))));
    Status s = WriteTensorData(tensors[i], types[i], seed, f.get());
    if (!s.ok()) return s.WithContext("'" + tmp + "' tensor " + tensors[i].name);
  }
  const size_t last = tensors.size() - 1;
  KVP_RETURN_IF_ERROR(
      PadTo(f.get(), static_cast<long>(data_offset + gguf_get_tensor_offset(g.get(), last) +
                                       gguf_get_tensor_size(g.get(), last))));
  if (std::fflush(f.get()) != 0) return Status::IOError("cannot flush '" + tmp + "'");
  f.reset();
  std::filesystem::rename(tmp, out, ec);
  if (ec) return Status::IOError("cannot rename '" + tmp + "' to '" + out + "': " + ec.message());
  return Status::OK();
}

}  // namespace kvpool::mkmodel
