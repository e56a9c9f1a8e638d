// A local 6-node Redis Cluster (3 masters, 1 replica each) for the tests of
// the `redis` device and its cluster client, started with
// scripts/redis_cluster.sh on 127.0.0.1 in a fresh directory under
// $KVPOOL_TEST_TMP (or /tmp), on ports found free. The destructor stops every
// server; a watchdog process also stops them if the test process dies first.
//
// Use RedisCluster::StartOrSkip() from a suite's SetUpTestSuite: when
// redis-server is not installed it prints why and exits 77 (ctest: skipped).
// Requires KVPOOL_SOURCE_DIR (the script's tree), set by tests/CMakeLists.txt.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace kvpool::testing {

// The model shape of the remote pool and fault tests: 4 layers of 64 KiB
// segments.
inline ModelShape RemoteTestShape() {
  ModelShape s;
  s.name = "4x2x32";
  s.layers = 4;
  s.kv_heads = 2;
  s.head_dim = 32;
  return s;
}

// Output and exit status of a child process.
struct ProcessResult {
  int rc = -1;  // exit code; 128 + signal when killed; -1 when it could not run
  std::string out;
};

// Runs argv[0] (looked up in PATH) with `args`; captures stdout, and stderr
// too when `with_stderr`. Never goes through a shell.
inline ProcessResult RunProcess(const std::vector<std::string>& argv, bool with_stderr) {
  ProcessResult r;
  int fds[2];
  if (argv.empty() || ::pipe2(fds, O_CLOEXEC) != 0) return r;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    if (with_stderr) ::dup2(fds[1], 2);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return r;
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      r.out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class RedisCluster {
 public:
  static constexpr int kNodes = 6;

  // Starts the cluster; when redis-server is missing prints the reason and
  // exits 77. Any other failure: FAIL()s and returns nullptr.
  static std::unique_ptr<RedisCluster> StartOrSkip() {
    auto c = std::make_unique<RedisCluster>();
    if (!c->skip_reason().empty()) {
      std::printf("[  SKIPPED ] %s\n", c->skip_reason().c_str());
      std::fflush(stdout);
      c.reset();
      std::exit(77);
    }
    if (!c->error().empty()) {
      ADD_FAILURE() << c->error();
      return nullptr;
    }
    return c;
  }

  RedisCluster() : dir_(tmp_.path() + "/redis") {
    base_port_ = PickBasePort();
    if (base_port_ < 0) {
      error_ = "no free range of 6 ports (and their bus ports) found for the Redis Cluster";
      return;
    }
    StartWatchdog();
    const ProcessResult r = RunProcess({Script(), "start", dir_, std::to_string(base_port_), ip_}, true);
    if (r.rc == 77) {
      skip_reason_ = Trim(r.out);
    } else if (r.rc != 0) {
      error_ = "redis_cluster.sh start " + dir_ + " " + std::to_string(base_port_) + " failed (rc " +
               std::to_string(r.rc) + "): " + r.out;
    }
  }

  ~RedisCluster() {
    for (int port : stopped_) Cont(port);
    RunProcess({Script(), "stop", dir_}, true);
    if (watchdog_ > 0) {
      ::close(watchdog_pipe_);  // the watchdog runs stop once more (nothing left) and exits
      int status = 0;
      ::waitpid(watchdog_, &status, 0);
    }
  }

  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  const std::string& error() const { return error_; }
  const std::string& skip_reason() const { return skip_reason_; }
  const std::string& dir() const { return dir_; }
  const std::string& ip() const { return ip_; }
  int base_port() const { return base_port_; }
  std::vector<int> ports() const {
    std::vector<int> p;
    for (int i = 0; i < kNodes; ++i) p.push_back(base_port_ + i);
    return p;
  }
  std::vector<std::string> seeds() const {
    std::vector<std::string> s;
    for (int p : ports()) s.push_back(ip_ + ":" + std::to_string(p));
    return s;
  }
  std::string Address(int port) const { return ip_ + ":" + std::to_string(port); }

  // Pid of the server on `port`; -1 when it has none (killed, not started).
  pid_t Pid(int port) const {
    std::ifstream in(dir_ + "/" + std::to_string(port) + "/redis.pid");
    long pid = -1;
    if (!(in >> pid)) return -1;
    return static_cast<pid_t>(pid);
  }

  // SIGKILLs the node on `port` and waits until it is gone.
  void Kill(int port) {
    const pid_t pid = Pid(port);
    if (pid <= 0) return;
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGKILL);
    for (int i = 0; i < 200 && Running(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::remove((dir_ + "/" + std::to_string(port) + "/redis.pid").c_str());
    killed_.insert(port);
    stopped_.erase(port);
  }
  // SIGSTOP: the node hangs (holds connections, answers nothing), as behind a partition.
  void Stop(int port) {
    if (Pid(port) > 0 && ::kill(Pid(port), SIGSTOP) == 0) stopped_.insert(port);
  }
  void Cont(int port) {
    if (Pid(port) > 0) ::kill(Pid(port), SIGCONT);
    stopped_.erase(port);
  }

  // redis-cli -h <ip> <args...>; its stdout, '\r' removed, trailing newlines trimmed.
  std::string RedisCli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"redis-cli", "-h", ip_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out = RunProcess(argv, false).out;
    std::erase(out, '\r');
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  // redis-cli against the node on `port`.
  std::string NodeCli(int port, std::vector<std::string> args) const {
    args.insert(args.begin(), {"-p", std::to_string(port)});
    return RedisCli(args);
  }
  std::string NodeId(int port) const { return NodeCli(port, {"cluster", "myid"}); }

  // Ports of the masters that a live node's CLUSTER NODES lists as not failed.
  std::vector<int> Masters() const {
    std::vector<int> out;
    for (const NodeLine& n : ClusterNodes()) {
      if (n.master && !n.failed) out.push_back(n.port);
    }
    return out;
  }

  // Port of the master that owns `slot` according to a live node; -1 if none.
  int MasterForSlot(int slot) const {
    if (slot < 0 || slot >= 16384) return -1;
    return SlotMasters()[static_cast<size_t>(slot)];
  }
  // MasterForSlot of every slot, from one CLUSTER NODES.
  std::vector<int> SlotMasters() const {
    std::vector<int> owner(16384, -1);
    for (const NodeLine& n : ClusterNodes()) {
      if (!n.master || n.failed) continue;
      for (auto [first, last] : n.ranges) {
        for (int s = std::max(first, 0); s <= last && s < 16384; ++s) owner[static_cast<size_t>(s)] = n.port;
      }
    }
    return owner;
  }

  // Waits (at most `limit`) until every live node reports cluster_state:ok
  // with all 16384 slots assigned and ok (none failing).
  bool WaitHealthy(std::chrono::milliseconds limit = std::chrono::seconds(20)) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      bool all = true;
      for (int p : LivePorts()) {
        const std::string info = NodeCli(p, {"cluster", "info"});
        if (info.find("cluster_state:ok") == std::string::npos ||
            info.find("cluster_slots_assigned:16384") == std::string::npos ||
            info.find("cluster_slots_ok:16384") == std::string::npos) {
          all = false;
          break;
        }
      }
      if (all) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::vector<int> LivePorts() const {
    std::vector<int> out;
    for (int p : ports()) {
      if (!killed_.count(p) && !stopped_.count(p)) out.push_back(p);
    }
    return out;
  }

 private:
  struct NodeLine {
    int port = 0;
    bool master = false;
    bool failed = false;
    std::vector<std::pair<int, int>> ranges;
  };

  static std::string Script() { return std::string(KVPOOL_SOURCE_DIR) + "/scripts/redis_cluster.sh"; }

  static std::string Trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
  }

  static bool Running(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    const size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
  }

  // True when 127.0.0.1:port can be bound (as redis-server does, SO_REUSEADDR).
  static bool PortFree(int port) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    const int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(s);
    return ok;
  }

  // 20000 + 10 k: the servers' ports and their bus ports (+10000) stay below
  // the ephemeral range. Starts from the pid so that concurrent runs differ.
  static int PickBasePort() {
    static int instance = 0;
    const int start = static_cast<int>((::getpid() + 7 * instance++) % 100);
    for (int i = 0; i < 100; ++i) {
      const int base = 20000 + ((start + i) % 100) * 10;
      bool free = true;
      for (int p = base; p < base + kNodes && free; ++p) free = PortFree(p) && PortFree(p + 10000);
      if (free) return base;
    }
    return -1;
  }

  // A child that waits for this process to go away (its pipe closes), then
  // stops the cluster: no server outlives a crashed or killed test.
  void StartWatchdog() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Hold nothing but the read end: no other pipe may wait on this child.
      ::close_range(3, static_cast<unsigned>(fds[0]) - 1, 0);
      ::close_range(static_cast<unsigned>(fds[0]) + 1, ~0U, 0);
      char c;
      while (::read(fds[0], &c, 1) != 0) {
        if (errno != EINTR) break;
      }
      const std::string script = Script();
      ::execl("/bin/bash", "bash", script.c_str(), "stop", dir_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ::close(fds[0]);
    if (pid < 0) {
      ::close(fds[1]);
      return;
    }
    watchdog_ = pid;
    watchdog_pipe_ = fds[1];
  }

  std::vector<NodeLine> ClusterNodes() const {
    for (int p : LivePorts()) {
      const std::string text = NodeCli(p, {"cluster", "nodes"});
      if (text.empty()) continue;
      std::vector<NodeLine> out;
      std::istringstream lines(text);
      std::string line;
      while (std::getline(lines, line)) {
        std::istringstream f(line);
        std::vector<std::string> w;
        for (std::string s; f >> s;) w.push_back(s);
        if (w.size() < 8) continue;
        NodeLine n;
        const std::string addr = w[1].substr(0, w[1].find('@'));
        n.port = std::atoi(addr.substr(addr.rfind(':') + 1).c_str());
        const std::string flags = "," + w[2] + ",";
        n.master = flags.find(",master,") != std::string::npos;
        n.failed = flags.find(",fail,") != std::string::npos;
        for (size_t i = 8; i < w.size(); ++i) {
          if (w[i].empty() || w[i][0] == '[') continue;  // [slot->-id]: migrating marks
          const size_t dash = w[i].find('-');
          const int first = std::atoi(w[i].substr(0, dash).c_str());
          const int last = dash == std::string::npos ? first : std::atoi(w[i].substr(dash + 1).c_str());
          n.ranges.emplace_back(first, last);
        }
        out.push_back(std::move(n));
      }
      return out;
    }
    return {};
  }

  TempDir tmp_;  // declared first: removed after the servers are stopped
  std::string dir_;
  std::string ip_ = "127.0.0.1";
  int base_port_ = -1;
  std::string error_;
  std::string skip_reason_;
  std::set<int> killed_;
  std::set<int> stopped_;
  pid_t watchdog_ = -1;
  int watchdog_pipe_ = -1;
};

}  // namespace kvpool::testing
