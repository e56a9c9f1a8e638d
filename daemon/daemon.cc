#include "daemon.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "ipc/stats_json.h"
#include "metrics_server.h"
#include "util/log.h"

namespace kvpool::daemon {

Result<std::unique_ptr<Daemon>> Daemon::Open(DaemonOptions options) {
  KVP_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<Daemon> d(new Daemon(std::move(options)));
  KVP_ASSIGN_OR_RETURN(d->pool_, Pool::Open(d->options_.pool));
  const ModelShape& shape = d->pool_->options().shape;
  d->tenants_ = std::make_unique<TenantRegistry>(d->options_.tenants, uint64_t{shape.layers} * shape.SegmentBytes());
  KVP_ASSIGN_OR_RETURN(d->listener_, ipc::ListenUnix(d->options_.socket_path, d->options_.socket_mode, 128));
  if (!d->options_.metrics_address.empty()) {
    KVP_ASSIGN_OR_RETURN(d->metrics_, MetricsServer::Start(d->options_.metrics_address, [raw = d.get()] {
                           return raw->MetricsText();
                         }));
  }
  return d;
}

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

Daemon::~Daemon() {
  Stop();
  Reap(/*all=*/true);
  metrics_.reset();
  if (listener_.valid()) unlink(options_.socket_path.c_str());
}

void Daemon::Run() {
  while (!stopping_.load()) {
    pollfd p{listener_.get(), POLLIN, 0};
    int r = poll(&p, 1, 200);
    Reap(/*all=*/false);
    if (r <= 0 || stopping_.load()) continue;
    auto sock = ipc::AcceptUnix(listener_.get());
    if (!sock.ok()) {
      if (sock.status().code() == StatusCode::kAborted) break;
      log::Warn("kvpoold: " + sock.status().ToString());
      continue;
    }
    Admit(std::move(*sock));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : sessions_) s->Shutdown();  // accepted requests still complete
  }
  Reap(/*all=*/true);
  pool_->Flush();
}

void Daemon::Stop() {
  stopping_.store(true);
}

void Daemon::Admit(ipc::Fd sock) {
  auto peer = ipc::PeerCredentials(sock.get());
  if (!peer.ok()) return log::Warn("kvpoold: " + peer.status().ToString());
  std::lock_guard<std::mutex> lock(mu_);
  if (sessions_.size() >= options_.max_clients) {
    refused_clients_.fetch_add(1);
    ipc::Reply busy{StatusCode::kBusy, 0,
                    "kvpoold serves daemon.max_clients = " + std::to_string(options_.max_clients) + " clients already"};
    (void)ipc::SendAll(sock.get(), ipc::Frame(ipc::MsgType::kReply, 0, ipc::EncodeReply(busy)), -1, 1000);
    return;
  }
  sessions_.push_back(std::make_unique<Session>(*this, std::move(sock), *peer, next_session_.fetch_add(1)));
  sessions_.back()->Start();
}

void Daemon::Reap(bool all) {
  std::list<std::unique_ptr<Session>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (all || (*it)->finished()) {
        done.push_back(std::move(*it));
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : done) {
    if (all) s->Shutdown();
    s->Join();
  }
}

Status Daemon::Reprobe() {
  gate_.Pause();  // new requests wait; those in flight finish
  Status st;
  {
    std::unique_lock<std::shared_mutex> probing(probe_mu_);  // and no Stats() reads the bandwidths
    st = pool_->ReprobeBandwidths();
  }
  gate_.Resume();
  (st.ok() ? reprobes_ : failed_reprobes_).fetch_add(1);
  return st;
}

void IoGate::Enter() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !paused_; });
  ++active_;
}

void IoGate::Leave() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
  }
  cv_.notify_all();
}

void IoGate::Pause() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !paused_; });  // one pause at a time
  paused_ = true;
  cv_.wait(lock, [&] { return active_ == 0; });
}

void IoGate::Resume() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
  }
  cv_.notify_all();
}

bool Daemon::IsAdmin(const ipc::PeerCred& peer) const {
  const auto& admins = options_.admin_uids;
  return peer.uid == getuid() || std::find(admins.begin(), admins.end(), peer.uid) != admins.end();
}

nlohmann::json Daemon::StatsJson(const Tenant* only) {
  nlohmann::json j;
  j["pool"] = ipc::PoolStatsToJson(CurrentPoolStats());
  j["tenants"] = nlohmann::json::array();
  for (Tenant* t : tenants_->All()) {
    if (only == nullptr || only == t) j["tenants"].push_back(t->StatsJson(*pool_));
  }
  nlohmann::json clients = nlohmann::json::array();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : sessions_) {
      if (s->finished() || (only != nullptr && s->tenant() != only)) continue;
      clients.push_back({{"session", s->id()},
                         {"pid", s->peer().pid},
                         {"uid", s->peer().uid},
                         {"tenant", s->tenant() ? s->tenant()->name() : ""}});
    }
  }
  j["clients"] = std::move(clients);
  j["refused_clients"] = refused_clients_.load();
  j["bandwidth_reprobes"] = reprobes_.load();
  j["failed_bandwidth_reprobes"] = failed_reprobes_.load();
  j["socket"] = options_.socket_path;
  if (metrics_) j["metrics_port"] = metrics_->port();
  return j;
}

int Daemon::metrics_port() const { return metrics_ ? metrics_->port() : 0; }

std::string Daemon::MetricsText() { return DaemonMetricsText(StatsJson(nullptr), CurrentPoolStats()); }

kvpool::PoolStats Daemon::CurrentPoolStats() {
  std::shared_lock<std::shared_mutex> lock(probe_mu_);
  return pool_->Stats();
}

}  // namespace kvpool::daemon
