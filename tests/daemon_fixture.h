// A kvpoold child process for the daemon tests: its configuration in a
// temporary directory (a DRAM region and an extent file that survive its
// restarts), start, signals, exit status.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <kvpool/client.h>

#include "test_util.h"

namespace kvpool::testing {

// The shape every daemon test uses: 4 layers of 16 KiB segments.
inline ModelShape DaemonTestShape() {
  ModelShape s;
  s.name = "daemon-test";
  s.layers = 4;
  s.kv_heads = 2;
  s.head_dim = 64;
  s.dtype_bytes = 2;
  s.chunk_tokens = 32;  // 2 * 32 * 2 * 64 * 2 = 16 KiB
  return s;
}

class DaemonProcess {
 public:
  // `daemon_toml` is appended inside [daemon] (e.g. tenants); `extra` after.
  // `probe`: the devices' bandwidths are measured (a small probe) instead of configured.
  explicit DaemonProcess(const TempDir& dir, std::string daemon_toml = "", uint64_t extent_mib = 64,
                         bool probe = false)
      : socket_(dir.path() + "/kvpoold.sock"), config_(dir.path() + "/kvpoold.toml") {
    const ModelShape s = DaemonTestShape();
    const std::string dram_bw = probe ? "" : "bandwidth_gibps = 8\n";
    const std::string ssd_bw = probe ? "" : "bandwidth_gibps = 2\n";
    std::ofstream out(config_);
    out << "probe_mib = 4\n[model]\nlayers = " << s.layers << "\nkv_heads = " << s.kv_heads << "\nhead_dim = " << s.head_dim
        << "\nchunk_tokens = " << s.chunk_tokens << "\n\n"
        << "[[device]]\nkind = \"dram\"\nname = \"dram0\"\ncapacity = \"8MiB\"\n" << dram_bw << "\n"
        << "[[device]]\nkind = \"extent\"\nname = \"ssd0\"\npath = \"" << dir.path() << "/ssd0.extent\"\n"
        << "capacity = \"" << extent_mib << "MiB\"\n" << ssd_bw << "engine = \"psync\"\n\n"
        << "[daemon]\nsocket = \"" << socket_ << "\"\n" << daemon_toml << "\n";
  }
  ~DaemonProcess() { Kill(SIGKILL); }

  const std::string& socket() const { return socket_; }
  std::string address() const { return "unix:" + socket_; }
  const std::string& config() const { return config_; }
  pid_t pid() const { return pid_; }

  // Starts kvpoold and waits until it accepts connections.
  void Start(const std::vector<std::string>& extra_args = {}) {
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<std::string> args = {KVPOOLD_PATH, "--config", config_};
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    ASSERT_GT(pid_, 0);
    for (int i = 0; i < 500; ++i) {
      ClientOptions o = Options();
      o.shared_bytes = 2 << 20;
      auto c = ClientPool::Connect(o);
      if (c.ok() || c.status().code() != StatusCode::kIOError) return;  // the daemon answered
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "kvpoold exited at start, status " << status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "kvpoold did not accept connections on " << socket_;
  }

  // Sends `sig`; for SIGKILL, SIGTERM and SIGINT also reaps the process and
  // returns its exit code (128 + signal when killed), else -1.
  int Kill(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    if (sig != SIGKILL && sig != SIGTERM && sig != SIGINT) return -1;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  ClientOptions Options(std::string tenant = "default") const {
    ClientOptions o;
    o.address = address();
    o.tenant = std::move(tenant);
    o.shared_bytes = 64 << 20;
    o.timeout_ms = 10000;  // generous: sanitizer builds are slow
    return o;
  }

 private:
  std::string socket_;
  std::string config_;
  pid_t pid_ = -1;
};

// Allocates shared buffers for `chunks` chunks of every layer (layer-major,
// one contiguous run per layer) and fills them from `seed` (0: zeros).
struct SharedKv {
  std::vector<SharedBuffer> layers;
  size_t seg = 0;

  SharedKv(ClientPool& pool, size_t chunks, uint64_t seed) {
    const ModelShape& s = pool.options().shape;
    seg = s.SegmentPayloadBytes();
    for (uint32_t l = 0; l < s.layers; ++l) {
      auto b = pool.AllocateShared(chunks * seg);
      EXPECT_TRUE(b.ok()) << b.status().ToString();
      if (!b.ok()) return;
      for (size_t i = 0; i < chunks * seg; ++i) {
        b->data()[i] = seed == 0 ? std::byte{0} : std::byte(static_cast<uint8_t>((seed * 131 + l * 17 + i * 7) >> 3));
      }
      layers.push_back(std::move(*b));
    }
  }
  KvBuffer View() {
    KvBuffer v;
    for (auto& b : layers) v.layer_base.push_back(b.data());
    v.chunk_stride = seg;
    return v;
  }
  ConstKvBuffer ConstView() {
    ConstKvBuffer v;
    for (auto& b : layers) v.layer_base.push_back(b.data());
    v.chunk_stride = seg;
    return v;
  }
  bool SameAs(const SharedKv& o, size_t chunks) const {
    for (size_t l = 0; l < layers.size(); ++l) {
      if (std::memcmp(layers[l].data(), o.layers[l].data(), chunks * seg) != 0) return false;
    }
    return true;
  }
};

}  // namespace kvpool::testing
