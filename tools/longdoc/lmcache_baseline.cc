#include "lmcache_baseline.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "util/clock.h"
#include "util/errno_status.h"

namespace kvpool::cli {

LmcacheBaseline::LmcacheBaseline(LmcacheOptions options)
    : options_(std::move(options)),
      chunk_bytes_(options_.shape.SegmentPayloadBytes() * options_.shape.layers) {}

Result<std::unique_ptr<LmcacheBaseline>> LmcacheBaseline::Open(const LmcacheOptions& options) {
  std::error_code ec;
  if (!options.keep_files) std::filesystem::remove_all(options.disk_dir, ec);
  std::filesystem::create_directories(options.disk_dir, ec);
  if (ec) {
    return Status::InvalidArgument("baseline disk_dir '" + options.disk_dir +
                                   "' cannot be created: " + ec.message());
  }
  return std::unique_ptr<LmcacheBaseline>(new LmcacheBaseline(options));
}

std::string LmcacheBaseline::ChunkPath(const ChunkKey& key) const {
  return options_.disk_dir + "/" + key.ToHex() + ".pt";
}

std::vector<std::byte> LmcacheBaseline::Gather(const ConstKvBuffer& src, size_t c) const {
  const size_t seg = options_.shape.SegmentPayloadBytes();
  std::vector<std::byte> chunk(chunk_bytes_);
  for (uint32_t l = 0; l < options_.shape.layers; ++l) {
    std::memcpy(chunk.data() + l * seg, src.Segment(c, l), seg);
  }
  return chunk;
}

void LmcacheBaseline::Scatter(const std::vector<std::byte>& chunk, const KvBuffer& dst,
                              size_t c) const {
  const size_t seg = options_.shape.SegmentPayloadBytes();
  for (uint32_t l = 0; l < options_.shape.layers; ++l) {
    std::memcpy(dst.Segment(c, l), chunk.data() + l * seg, seg);
  }
}

void LmcacheBaseline::PutCpu(const ChunkKey& key, std::vector<std::byte> chunk) {
  if (chunk.size() > options_.cpu_capacity_bytes) return;
  while (cpu_bytes_ + chunk.size() > options_.cpu_capacity_bytes && !lru_.empty()) {
    cpu_bytes_ -= lru_.back().second.size();
    cpu_.erase(lru_.back().first);
    lru_.pop_back();
  }
  cpu_bytes_ += chunk.size();
  cpu_bytes_written_ += chunk.size();
  lru_.emplace_front(key, std::move(chunk));
  cpu_[key] = lru_.begin();
}

Status LmcacheBaseline::WriteChunkFile(const ChunkKey& key, const std::vector<std::byte>& chunk) {
  std::string path = ChunkPath(key);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  ssize_t n = ::write(fd, chunk.data(), chunk.size());
  int err = errno;
  if (n == static_cast<ssize_t>(chunk.size()) && options_.drop_file_cache) {
    ::fdatasync(fd);  // dirty pages cannot be dropped
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  }
  ::close(fd);
  if (n != static_cast<ssize_t>(chunk.size())) return ErrnoStatus(n < 0 ? err : EIO, "write " + path);
  disk_bytes_written_ += chunk.size();
  return Status::OK();
}

Status LmcacheBaseline::ReadChunkFile(const ChunkKey& key, std::vector<std::byte>* chunk) {
  std::string path = ChunkPath(key);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  chunk->resize(chunk_bytes_);
  size_t done = 0;
  while (done < chunk_bytes_) {
    ssize_t n = ::read(fd, chunk->data() + done, chunk_bytes_ - done);
    if (n <= 0) {
      ::close(fd);
      return n < 0 ? ErrnoStatus(errno, "read " + path) : Status::IOError("short read of " + path);
    }
    done += static_cast<size_t>(n);
  }
  if (options_.drop_file_cache) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  return Status::OK();
}

Result<double> LmcacheBaseline::Store(std::span<const ChunkKey> keys, const ConstKvBuffer& src) {
  Clock::time_point t = Clock::now();
  for (size_t c = src.first_chunk; c < keys.size(); ++c) {
    std::vector<std::byte> chunk = Gather(src, c);
    KVP_RETURN_IF_ERROR(WriteChunkFile(keys[c], chunk));
    PutCpu(keys[c], std::move(chunk));
  }
  return SecondsSince(t);
}

Result<LoadResult> LmcacheBaseline::Load(std::span<const ChunkKey> keys, const KvBuffer& dst) {
  trace_.clear();
  LoadResult r;
  Clock::time_point start = Clock::now();
  std::vector<std::byte> buffer;
  for (size_t c = dst.first_chunk; c < keys.size(); ++c) {
    Clock::time_point t = Clock::now();
    auto hit = cpu_.find(keys[c]);
    if (hit != cpu_.end()) {
      lru_.splice(lru_.begin(), lru_, hit->second);
      Scatter(hit->second->second, dst, c);
      trace_.push_back({c, true});
      cpu_work_.bytes_read += chunk_bytes_;
      cpu_work_.busy_seconds += SecondsSince(t);
      continue;
    }
    Status s = ReadChunkFile(keys[c], &buffer);
    if (!s.ok()) break;  // a miss ends the usable prefix
    Scatter(buffer, dst, c);
    trace_.push_back({c, false});
    disk_work_.bytes_read += chunk_bytes_;
    disk_work_.busy_seconds += SecondsSince(t);
    if (options_.promote_disk_hits) PutCpu(keys[c], buffer);
  }
  r.seconds = SecondsSince(start);
  r.chunks = dst.first_chunk + trace_.size();
  r.layer_ready.assign(options_.shape.layers, r.seconds);
  return r;
}

void LmcacheBaseline::MakeCold() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(options_.disk_dir, ec)) {
    int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

std::vector<DeviceWork> LmcacheBaseline::Work() const { return {cpu_work_, disk_work_}; }

}  // namespace kvpool::cli
