#include "tier/extent/extent_superblock.h"

#include <sys/random.h>
#include <unistd.h>

#include <ctime>
#include <string>

#include "config.h"
#include "format/constants.h"
#include "tier/extent/checkpointer.h"
#include "util/aligned_buffer.h"
#include "util/log.h"

namespace kvpool {
namespace {

using format::Superblock;

ChunkKey RandomId() {
  ChunkKey id;
  uint64_t words[2] = {0, 0};
  if (getrandom(words, sizeof(words), 0) != ssize_t(sizeof(words))) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    words[0] = uint64_t(ts.tv_nsec) * 0x9e3779b97f4a7c15ull ^ uint64_t(getpid());
    words[1] = uint64_t(ts.tv_sec) * 0xbf58476d1ce4e5b9ull ^ uint64_t(clock());
  }
  id.hi = words[0];
  id.lo = words[1] | 1;  // never the zero id
  return id;
}

std::string CreatedBy() {
  char host[64] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string("kvpool ") + KVPOOL_VERSION + " on " + host;
}

std::string Geometry(const format::Layout& l) {
  return std::to_string(l.slot_count) + " slots of " + std::to_string(l.slot_payload_bytes) +
         " payload bytes";
}

// What makes `sb` unusable for (layout, pool_id); "" when nothing does.
std::string Difference(const Superblock& sb, const format::Layout& layout, const ChunkKey& pool_id,
                       uint64_t file_size) {
  std::string diff;
  if (sb.pool_id != pool_id) {
    diff = "belongs to another pool (pool id " + sb.pool_id.ToHex() + " on disk, " +
           pool_id.ToHex() + " expected: the model shape or tenant_salt differ)";
  }
  if (!(sb.layout == layout)) {
    diff += std::string(diff.empty() ? "" : " and ") + "was formatted for " + Geometry(sb.layout) +
            ", the options ask for " + Geometry(layout) +
            " (capacity_bytes or the model shape changed)";
  }
  if (diff.empty() && file_size < layout.total_bytes) {
    diff = "is shorter (" + std::to_string(file_size) + " bytes) than its superblock says (" +
           std::to_string(layout.total_bytes) + " bytes)";
  }
  return diff;
}

Status Format(BlockTarget& file, const format::Layout& layout, const DeviceOptions& options,
              const ChunkKey& pool_id, Superblock* sb) {
  const std::string what = "device '" + options.name + "'";
  KVP_RETURN_IF_ERROR(file.EnsureSize(layout.total_bytes));
  KVP_RETURN_IF_ERROR(EraseCheckpoints(file, layout, what));
  KVP_RETURN_IF_ERROR(file.Flush(what));
  sb->version = format::kFormatVersion;
  sb->pool_id = pool_id;
  sb->device_id = RandomId();  // old slot headers carry another id: all stale at once
  sb->layout = layout;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  sb->created_ns = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
  sb->device_name = options.name;
  sb->created_by = CreatedBy();
  AlignedBuffer block(format::kBlockBytes);
  format::EncodeSuperblock(*sb, block.data());
  KVP_RETURN_IF_ERROR(file.WriteAt(block.data(), block.size(), 0,
                                   what + ": writing the superblock of '" + file.location() + "'"));
  KVP_RETURN_IF_ERROR(file.Flush(what));
  log::Info(what + ": formatted extent '" + file.location() + "' for " + Geometry(layout));
  return Status::OK();
}

}  // namespace

Result<Superblock> AttachSuperblock(BlockTarget& file, const format::Layout& layout,
                                    const DeviceOptions& options, const ChunkKey& pool_id) {
  const std::string what = "device '" + options.name + "'";
  AlignedBuffer block(format::kBlockBytes);
  if (file.size() >= format::kBlockBytes) {
    KVP_RETURN_IF_ERROR(file.ReadAt(block.data(), block.size(), 0,
                                    what + ": reading the superblock of '" + file.location() +
                                        "'"));
  }
  format::DecodedSuperblock d = format::DecodeSuperblock(block.data());
  Superblock sb;
  if (d.state == format::SuperblockState::kValid) {
    std::string diff = Difference(d.sb, layout, pool_id, file.size());
    if (diff.empty()) return d.sb;
    if (!options.reformat) {
      return Status::InvalidArgument(what + ": extent '" + file.location() + "' " + diff +
                                     "; its data was left untouched (set reformat = true to "
                                     "erase it)");
    }
    log::Warn(what + ": reformatting extent '" + file.location() + "', which " + diff);
  } else if (!file.created() && !options.reformat) {
    KVP_ASSIGN_OR_RETURN(bool empty, file.LooksEmpty());
    if (!empty) {
      std::string why =
          d.state == format::SuperblockState::kCorrupt ? d.problem : "no kvpool superblock";
      return Status::InvalidArgument(what + ": '" + file.location() +
                                     "' is not empty and is not a kvpool extent (" + why +
                                     "); refusing to overwrite it (set reformat = true to erase "
                                     "it)");
    }
  }
  KVP_RETURN_IF_ERROR(Format(file, layout, options, pool_id, &sb));
  return sb;
}

}  // namespace kvpool
