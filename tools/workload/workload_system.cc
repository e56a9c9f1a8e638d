#include "workload_system.h"

#include <filesystem>

#include "core/pool_impl.h"

namespace kvpool::cli {
namespace {

class PoolWorkloadSystem final : public WorkloadSystem {
 public:
  PoolWorkloadSystem(std::string name, PoolOptions options, std::unique_ptr<Pool> pool)
      : name_(std::move(name)), options_(std::move(options)), pool_(std::move(pool)) {}

  std::string name() const override { return name_; }

  Result<size_t> Load(std::span<const ChunkKey> keys, const KvBuffer& dst) override {
    size_t present = pool_->Lookup(keys);
    if (present == 0) return size_t{0};
    auto h = pool_->Retrieve(keys.first(present), dst, {});
    if (!h.ok()) return h.status();
    return h->Wait();
  }

  Status Store(std::span<const ChunkKey> keys, const ConstKvBuffer& src, size_t) override {
    auto h = pool_->Offload(keys, src);  // the pool skips chunks already present
    if (!h.ok()) return h.status();
    auto n = h->Wait();
    // NoSpace: nothing fit; the request still ran (its chunks are misses later).
    if (!n.ok() && n.status().code() != StatusCode::kNoSpace) return n.status();
    return Status::OK();
  }

  Result<uint64_t> Restart() override {
    pool_.reset();  // joins the workers; persistent devices keep their data
    auto pool = Pool::Open(options_);
    if (!pool.ok()) return pool.status().WithContext(name_ + " reopen");
    pool_ = std::move(pool).value();
    return pool_->Stats().recovered_chunks;
  }

  void MakeCold() override {
    if (auto* impl = dynamic_cast<PoolImpl*>(pool_.get())) impl->DropCaches();
  }

  SystemCounters Counters() const override {
    PoolStats s = pool_->Stats();
    SystemCounters c;
    uint64_t dram = 0, all = 0;
    for (const DeviceStats& d : s.devices) {
      c.devices.push_back({d.name, d.kind, d.role, d.bytes_read, d.bytes_written});
      all += d.bytes_read;
      if (d.kind == DeviceKindName(DeviceKind::kDram)) dram += d.bytes_read;
    }
    if (options_.placement == PlacementMode::kCopies) {
      // Device reads include copying chunks into DRAM; the pool counts the
      // bytes each retrieval took from a copy or from home.
      c.dram_bytes_served = s.bytes_read_from_copies;
      c.bytes_served = s.bytes_read_from_copies + s.bytes_read_from_home;
    } else {
      c.dram_bytes_served = dram;
      c.bytes_served = all;
    }
    return c;
  }

 private:
  std::string name_;
  PoolOptions options_;
  std::unique_ptr<Pool> pool_;
};

class BaselineWorkloadSystem final : public WorkloadSystem {
 public:
  BaselineWorkloadSystem(std::string name, LmcacheOptions options,
                         std::unique_ptr<LmcacheBaseline> base)
      : name_(std::move(name)), options_(std::move(options)), base_(std::move(base)) {}

  std::string name() const override { return name_; }

  Result<size_t> Load(std::span<const ChunkKey> keys, const KvBuffer& dst) override {
    auto r = base_->Load(keys, dst);  // walks the chunks until the first miss
    if (!r.ok()) return r.status();
    return r->chunks;
  }

  Status Store(std::span<const ChunkKey> keys, const ConstKvBuffer& src, size_t cached) override {
    ConstKvBuffer rest = src;  // the same memory, addressed from chunk `cached`
    for (const std::byte*& base : rest.layer_base) base += cached * src.chunk_stride;
    rest.first_chunk = src.first_chunk + cached;
    auto s = base_->Store(keys, rest);
    return s.ok() ? Status::OK() : s.status();
  }

  Result<uint64_t> Restart() override {
    base_.reset();  // the CPU tier is gone; the chunk files stay
    auto b = LmcacheBaseline::Open(options_);
    if (!b.ok()) return b.status().WithContext(name_ + " reopen");
    base_ = std::move(b).value();
    uint64_t files = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(options_.disk_dir, ec)) {
      files += e.path().extension() == ".pt" ? 1 : 0;
    }
    return files;
  }

  void MakeCold() override { base_->MakeCold(); }

  SystemCounters Counters() const override {
    std::vector<DeviceWork> w = base_->Work();  // cpu tier, disk tier
    SystemCounters c;
    c.devices.push_back({w[0].name, w[0].kind, "cache", w[0].bytes_read, base_->cpu_bytes_written()});
    c.devices.push_back({w[1].name, w[1].kind, "home", w[1].bytes_read, base_->disk_bytes_written()});
    c.dram_bytes_served = w[0].bytes_read;
    c.bytes_served = w[0].bytes_read + w[1].bytes_read;
    return c;
  }

 private:
  std::string name_;
  LmcacheOptions options_;
  std::unique_ptr<LmcacheBaseline> base_;
};

}  // namespace

SystemCounters operator-(const SystemCounters& after, const SystemCounters& before) {
  SystemCounters d = after;
  for (size_t i = 0; i < d.devices.size() && i < before.devices.size(); ++i) {
    d.devices[i].bytes_read -= before.devices[i].bytes_read;
    d.devices[i].bytes_written -= before.devices[i].bytes_written;
  }
  d.dram_bytes_served -= before.dram_bytes_served;
  d.bytes_served -= before.bytes_served;
  return d;
}

Result<std::unique_ptr<WorkloadSystem>> OpenPoolWorkloadSystem(std::string name,
                                                               const PoolOptions& options) {
  auto pool = Pool::Open(options);
  if (!pool.ok()) return pool.status().WithContext(name);
  return std::unique_ptr<WorkloadSystem>(
      new PoolWorkloadSystem(std::move(name), options, std::move(pool).value()));
}

Result<std::unique_ptr<WorkloadSystem>> OpenBaselineWorkloadSystem(std::string name,
                                                                   const LmcacheOptions& options) {
  LmcacheOptions o = options;
  o.keep_files = true;
  o.drop_file_cache = true;
  o.promote_disk_hits = true;
  auto b = LmcacheBaseline::Open(o);
  if (!b.ok()) return b.status().WithContext(name);
  return std::unique_ptr<WorkloadSystem>(
      new BaselineWorkloadSystem(std::move(name), o, std::move(b).value()));
}

}  // namespace kvpool::cli
