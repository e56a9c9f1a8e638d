// The kvpoold wire protocol (docs/daemon.md): length-prefixed binary frames
// over a Unix stream socket. Every integer is little-endian.
//
//   frame  = header (24 bytes) body (header.body_len bytes)
//   header = magic u32 "KVPD" | version u16 | type u16 | request_id u64 |
//            body_len u32 | reserved u32 (0)
//
// A client sends requests with request ids of its choice; the daemon answers
// each with exactly one Reply (or HelloOk) carrying the same id, and before
// that a Retrieve may get LayerReady events. Segment bytes never travel in
// frames: requests name offsets in the client's shared region.
//
// Decoders take untrusted bytes: every length is checked against the bytes
// present and against the protocol's limits before anything is allocated,
// and errors are InvalidArgument naming the field. They are fuzzed
// (tests/fuzz/wire_fuzz.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <kvpool/keys.h>
#include <kvpool/model_shape.h>
#include <kvpool/result.h>

namespace kvpool::ipc {

inline constexpr uint32_t kMagic = 0x4450564bu;  // "KVPD" read as little-endian
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 24;
inline constexpr uint32_t kMaxBodyBytes = 4u << 20;
inline constexpr uint32_t kMaxKeys = 1u << 16;     // chunks per request
inline constexpr uint32_t kMaxLayers = 4096;
inline constexpr uint32_t kMaxText = 1u << 20;     // strings (names, messages, JSON)

enum class MsgType : uint16_t {
  kHello = 1,       // client: tenant, region size; carries the region's memfd
  kHelloOk = 2,     // daemon: the pool's shape, the session id
  kLookup = 3,      // client: keys
  kRetrieve = 4,    // client: keys + where each layer goes in the region
  kOffload = 5,     // client: keys + where each layer comes from in the region
  kRemove = 6,      // client: keys
  kFlush = 7,       // client: nothing
  kStats = 8,       // client: nothing; Reply.text is the daemon's JSON
  kReply = 9,       // daemon: status + value (+ text)
  kLayerReady = 10, // daemon: one layer of a Retrieve has landed
  kFindChild = 11,  // client: a prefix's keys, then candidate keys
};

struct Header {
  MsgType type = MsgType::kReply;
  uint64_t request_id = 0;
  uint32_t body_len = 0;
};

struct Hello {
  std::string tenant;
  uint64_t region_bytes = 0;
};

struct HelloOk {
  ModelShape shape;
  uint64_t session_id = 0;
  uint64_t max_region_bytes = 0;
};

struct KeyList {
  std::vector<ChunkKey> keys;
};

// FindChild: the parent's chained prefix, then the candidate leaves.
struct FindChildKeys {
  std::vector<ChunkKey> prefix;
  std::vector<ChunkKey> candidates;
};

// A run of chunks in the client's shared region, as a KvBuffer of offsets:
// segment (c, l) is at layer_offset[l] + (c - first_chunk) * chunk_stride.
struct RegionSpan {
  std::vector<ChunkKey> keys;
  uint64_t first_chunk = 0;
  uint64_t chunk_stride = 0;
  std::vector<uint64_t> layer_offset;
};

struct Retrieve {
  RegionSpan span;
  bool layer_events = false;  // send LayerReady per layer
};

struct Reply {
  StatusCode code = StatusCode::kOk;
  uint64_t value = 0;  // present/retrieved/stored/removed count
  std::string text;    // the error message, or the Stats JSON
};

struct LayerReady {
  uint32_t layer = 0;
  uint64_t valid_chunks = 0;
};

// Header. DecodeHeader checks magic, version, the type's range and body_len
// against kMaxBodyBytes.
void EncodeHeader(const Header& h, std::byte out[kHeaderBytes]);
Result<Header> DecodeHeader(std::span<const std::byte> bytes);

// Bodies. A frame is EncodeHeader + the body; Frame() builds both.
std::vector<std::byte> EncodeHello(const Hello& m);
std::vector<std::byte> EncodeHelloOk(const HelloOk& m);
std::vector<std::byte> EncodeKeyList(const KeyList& m);
std::vector<std::byte> EncodeFindChild(const FindChildKeys& m);
std::vector<std::byte> EncodeRetrieve(const Retrieve& m);
std::vector<std::byte> EncodeOffload(const RegionSpan& m);
std::vector<std::byte> EncodeReply(const Reply& m);
std::vector<std::byte> EncodeLayerReady(const LayerReady& m);

Result<Hello> DecodeHello(std::span<const std::byte> body);
Result<HelloOk> DecodeHelloOk(std::span<const std::byte> body);
Result<KeyList> DecodeKeyList(std::span<const std::byte> body);
Result<FindChildKeys> DecodeFindChild(std::span<const std::byte> body);
Result<Retrieve> DecodeRetrieve(std::span<const std::byte> body);
Result<RegionSpan> DecodeOffload(std::span<const std::byte> body);
Result<Reply> DecodeReply(std::span<const std::byte> body);
Result<LayerReady> DecodeLayerReady(std::span<const std::byte> body);

// Header + body in one buffer. REQUIRES: body.size() <= kMaxBodyBytes.
std::vector<std::byte> Frame(MsgType type, uint64_t request_id, std::span<const std::byte> body);

// Checks that every segment of `span` (payload bytes each, `layers` layers)
// lies inside a region of `region_bytes`, without overflow. InvalidArgument
// naming the layer and the offset otherwise.
Status CheckSpanInRegion(const RegionSpan& span, uint32_t layers, size_t payload,
                         uint64_t region_bytes);

}  // namespace kvpool::ipc
