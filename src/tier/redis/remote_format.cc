#include "tier/redis/remote_format.h"

#include <cstring>

#include "format/codec.h"
#include "util/checksum.h"

namespace kvpool::redis {
namespace {

constexpr char kSegmentMagic[4] = {'K', 'V', 'R', 'S'};
constexpr char kRecordMagic[4] = {'K', 'V', 'R', 'C'};
constexpr size_t kRecordFixedBytes = 48;
constexpr uint32_t kMaxLayers = 4096;

std::byte* Bytes(std::string& s) { return reinterpret_cast<std::byte*>(s.data()); }
const std::byte* Bytes(std::string_view s) { return reinterpret_cast<const std::byte*>(s.data()); }

void PutHead(std::string& out, const char (&magic)[4]) {
  std::memcpy(out.data(), magic, 4);
  out[4] = static_cast<char>(kFormatVersion & 0xff);
  out[5] = static_cast<char>(kFormatVersion >> 8);
}

// Corruption unless `v` starts with `magic` at the supported version.
Status CheckHead(std::string_view v, const char (&magic)[4], const char* what) {
  if (std::memcmp(v.data(), magic, 4) != 0) {
    return Status::Corruption(std::string(what) + ": bad magic");
  }
  const uint16_t version = static_cast<uint16_t>(static_cast<uint8_t>(v[4]) |
                                                 (static_cast<uint8_t>(v[5]) << 8));
  if (version != kFormatVersion) {
    return Status::Corruption(std::string(what) + ": format version " + std::to_string(version) +
                              ", this kvpool reads " + std::to_string(kFormatVersion));
  }
  return Status::OK();
}

}  // namespace

std::string EncodeSegmentHeader(const ChunkKey& chunk, uint32_t layer, uint32_t length,
                                uint64_t checksum) {
  std::string out(kSegmentHeaderBytes, '\0');
  PutHead(out, kSegmentMagic);
  std::byte* b = Bytes(out);
  format::Put32(b, 8, layer);
  format::Put32(b, 12, length);
  format::Put64(b, 16, checksum);
  format::PutKey(b, 24, chunk);
  format::Put64(b, 40, Checksum64(b, 40));
  return out;
}

Result<std::span<const std::byte>> ParseSegmentValue(std::string_view value, const ChunkKey& chunk,
                                                     uint32_t layer, uint32_t length,
                                                     uint64_t checksum) {
  if (value.size() < kSegmentHeaderBytes) {
    return Status::Corruption("segment value of " + std::to_string(value.size()) +
                              " bytes is shorter than its header");
  }
  KVP_RETURN_IF_ERROR(CheckHead(value, kSegmentMagic, "segment value"));
  const std::byte* b = Bytes(value);
  if (format::Get64(b, 40) != Checksum64(b, 40)) {
    return Status::Corruption("segment value: header checksum mismatch");
  }
  if (format::GetKey(b, 24) != chunk || format::Get32(b, 8) != layer) {
    return Status::Corruption("segment value names another chunk or layer");
  }
  const uint32_t stored = format::Get32(b, 12);
  if (stored != length || value.size() - kSegmentHeaderBytes != length) {
    return Status::Corruption("segment value holds " +
                              std::to_string(value.size() - kSegmentHeaderBytes) +
                              " payload bytes (header says " + std::to_string(stored) +
                              "), expected " + std::to_string(length));
  }
  if (format::Get64(b, 16) != checksum) {
    return Status::Corruption("segment value: checksum differs from its chunk record");
  }
  return std::span<const std::byte>(b + kSegmentHeaderBytes, length);
}

std::string EncodeChunkRecord(const RemoteChunk& chunk, uint32_t segment_bytes) {
  const uint32_t layers = static_cast<uint32_t>(chunk.checksums.size());
  std::string out(kRecordFixedBytes + 8 * size_t{layers} + 8, '\0');
  PutHead(out, kRecordMagic);
  std::byte* b = Bytes(out);
  format::Put32(b, 8, layers);
  format::Put32(b, 12, segment_bytes);
  format::PutKey(b, 16, chunk.key);
  format::PutKey(b, 32, chunk.parent);
  for (uint32_t l = 0; l < layers; ++l) format::Put64(b, kRecordFixedBytes + 8 * l, chunk.checksums[l]);
  const size_t body = out.size() - 8;
  format::Put64(b, body, Checksum64(b, body));
  return out;
}

Result<RemoteChunk> ParseChunkRecord(std::string_view value, const ChunkKey& key, uint32_t layers,
                                     uint32_t segment_bytes) {
  if (value.size() < kRecordFixedBytes + 8) {
    return Status::Corruption("chunk record of " + std::to_string(value.size()) +
                              " bytes is too short");
  }
  KVP_RETURN_IF_ERROR(CheckHead(value, kRecordMagic, "chunk record"));
  const std::byte* b = Bytes(value);
  const uint32_t n = format::Get32(b, 8);
  if (n == 0 || n > kMaxLayers || value.size() != kRecordFixedBytes + 8 * size_t{n} + 8) {
    return Status::Corruption("chunk record: " + std::to_string(n) + " layers in " +
                              std::to_string(value.size()) + " bytes");
  }
  const size_t body = value.size() - 8;
  if (format::Get64(b, body) != Checksum64(b, body)) {
    return Status::Corruption("chunk record: checksum mismatch");
  }
  if (n != layers || format::Get32(b, 12) != segment_bytes) {
    return Status::Corruption("chunk record: " + std::to_string(n) + " layers of " +
                              std::to_string(format::Get32(b, 12)) + " bytes, this pool has " +
                              std::to_string(layers) + " of " + std::to_string(segment_bytes));
  }
  RemoteChunk out;
  out.key = format::GetKey(b, 16);
  if (out.key != key) return Status::Corruption("chunk record names another chunk");
  out.parent = format::GetKey(b, 32);
  out.checksums.resize(n);
  for (uint32_t l = 0; l < n; ++l) out.checksums[l] = format::Get64(b, kRecordFixedBytes + 8 * l);
  return out;
}

}  // namespace kvpool::redis
