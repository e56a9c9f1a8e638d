#!/usr/bin/env bash
# A local 6-node Redis Cluster (3 masters, 1 replica each) for kvpool's
# `redis` device tests.
#
#   redis_cluster.sh start DIR BASE_PORT [BIND_IP]
#       Starts redis-server on BASE_PORT..BASE_PORT+5 (cluster bus: port+10000),
#       each in DIR/<port>/ (nodes.conf, redis.pid, redis.log), creates the
#       cluster and waits (at most ~30 s) until every node reports
#       cluster_state:ok with all 16384 slots assigned and every replica's
#       link to its master is up. Servers already running
#       from DIR are stopped first. KVPOOL_REDIS_MAXMEMORY=8mb (say) caps every
#       node's memory with allkeys-lru eviction.
#   redis_cluster.sh stop DIR
#       SIGTERM to every pid in DIR/*/redis.pid, SIGKILL after 3 s. Idempotent.
#   redis_cluster.sh masters DIR BASE_PORT [IP]
#       Prints the port of each current master, one a line.
#
# Exit status: 0; 77 when redis-server is not installed; 1 with a message
# naming what failed otherwise.
set -euo pipefail

NODES=6

die() {
  echo "redis_cluster.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: redis_cluster.sh start DIR BASE_PORT [BIND_IP] | stop DIR | masters DIR BASE_PORT [IP]" >&2
  exit 2
}

require_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server not installed (scripts/setup.sh installs it)"
    exit 77
  fi
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli not installed (scripts/setup.sh installs it)"
}

check_port() {
  local p=$1
  [[ $p =~ ^[0-9]+$ ]] && ((p >= 1 && p + NODES - 1 + 10000 <= 65535)) ||
    die "BASE_PORT '$p' is not a port from which $NODES ports and their cluster bus ports (+10000) fit"
}

# True when process $1 runs. A zombie does not: a daemonized server that
# exited is reparented to pid 1, which may be slow to reap it (or never).
running() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# True when process $1 is a redis-server (a stale pid file may name a reused pid).
is_redis() {
  [[ $(cat "/proc/$1/comm" 2>/dev/null) == redis-server* ]]
}

# True when pid file $1 names a running process.
pid_alive() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && running "$pid"
}

cmd_stop() {
  local dir=$1 pidfile pid pids=()
  [[ -d $dir ]] || return 0
  shopt -s nullglob
  for pidfile in "$dir"/*/redis.pid; do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || continue
    if running "$pid" && is_redis "$pid"; then
      kill -CONT "$pid" 2>/dev/null || true  # a stopped node cannot act on SIGTERM
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 3)) alive
  while ((${#pids[@]} > 0)); do
    alive=()
    for pid in "${pids[@]}"; do
      running "$pid" && alive+=("$pid")
    done
    pids=("${alive[@]+"${alive[@]}"}")
    ((${#pids[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
      break
    fi
    sleep 0.1
  done
  for pidfile in "$dir"/*/redis.pid; do rm -f "$pidfile"; done
  return 0
}

# Prints "cluster info" of one node, nothing when it does not answer.
cluster_info() {
  timeout 2 redis-cli -h "$1" -p "$2" cluster info 2>/dev/null | tr -d '\r' || true
}

# True when the node reports cluster_state:ok with every slot assigned and,
# for a replica, its link to its master is up (the initial sync is done).
node_ok() {
  local info repl
  info=$(cluster_info "$1" "$2")
  grep -qx 'cluster_state:ok' <<<"$info" && grep -qx 'cluster_slots_assigned:16384' <<<"$info" ||
    return 1
  repl=$(timeout 2 redis-cli -h "$1" -p "$2" info replication 2>/dev/null | tr -d '\r' || true)
  grep -qx 'role:master' <<<"$repl" || grep -qx 'master_link_status:up' <<<"$repl"
}

cmd_start() {
  local dir=$1 base=$2 ip=${3:-127.0.0.1} p i
  check_port "$base"
  mkdir -p "$dir" || die "cannot create $dir"
  dir=$(cd "$dir" && pwd)
  cmd_stop "$dir"

  local extra=()
  if [[ -n ${KVPOOL_REDIS_MAXMEMORY:-} ]]; then
    extra=(--maxmemory "$KVPOOL_REDIS_MAXMEMORY" --maxmemory-policy allkeys-lru)
  fi
  local addrs=()
  for ((i = 0; i < NODES; i++)); do
    p=$((base + i))
    rm -rf "${dir:?}/$p"
    mkdir -p "$dir/$p"
    redis-server --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 1500 --appendonly no --save '' --daemonize yes \
      --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" \
      --bind "$ip" --port "$p" --dir "$dir/$p" --protected-mode no \
      --cluster-require-full-coverage no --cluster-allow-reads-when-down no \
      --cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0 \
      "${extra[@]+"${extra[@]}"}" ||
      die "redis-server on $ip:$p did not start (see $dir/$p/redis.log)"
    addrs+=("$ip:$p")
  done

  # Every server answers PING before the cluster is created.
  local deadline=$((SECONDS + 10))
  for ((i = 0; i < NODES; i++)); do
    p=$((base + i))
    until [[ $(timeout 2 redis-cli -h "$ip" -p "$p" ping 2>/dev/null | tr -d '\r') == PONG ]]; do
      if ((SECONDS >= deadline)); then
        tail -n 5 "$dir/$p/redis.log" >&2 2>/dev/null || true
        cmd_stop "$dir"
        die "redis-server on $ip:$p does not answer PING (see $dir/$p/redis.log)"
      fi
      sleep 0.1
    done
  done

  if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
      >"$dir/create.log" 2>&1; then
    tail -n 20 "$dir/create.log" >&2
    cmd_stop "$dir"
    die "redis-cli --cluster create ${addrs[*]} failed (see $dir/create.log)"
  fi

  deadline=$((SECONDS + 30))
  local waiting
  while :; do
    waiting=()
    for ((i = 0; i < NODES; i++)); do
      p=$((base + i))
      node_ok "$ip" "$p" || waiting+=("$ip:$p")
    done
    ((${#waiting[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      cmd_stop "$dir"
      die "cluster not ok after 30 s: ${waiting[*]} not reporting cluster_state:ok with 16384 slots assigned (or, for a replica, master_link_status:up)"
    fi
    sleep 0.2
  done
  echo "redis cluster up: ${addrs[*]} (dir $dir)"
}

cmd_masters() {
  local dir=$1 base=$2 ip=${3:-127.0.0.1} p i nodes=""
  check_port "$base"
  [[ -d $dir ]] || die "no cluster directory $dir"
  for ((i = 0; i < NODES; i++)); do
    p=$((base + i))
    pid_alive "$dir/$p/redis.pid" || continue
    nodes=$(timeout 2 redis-cli -h "$ip" -p "$p" cluster nodes 2>/dev/null | tr -d '\r' || true)
    [[ -n $nodes ]] && break
  done
  [[ -n $nodes ]] || die "no node of $dir on $ip:$base..$((base + NODES - 1)) answers CLUSTER NODES"
  # <id> <ip:port@cport[,hostname]> <flags> ...: masters not marked failed.
  awk '$3 ~ /(^|,)master(,|$)/ && $3 !~ /(^|,)fail(,|$)/ {
         split($2, a, "@"); n = split(a[1], b, ":"); print b[n] }' <<<"$nodes" | sort -n
}

(($# >= 1)) || usage
case $1 in
  start)
    (($# == 3 || $# == 4)) || usage
    require_redis
    cmd_start "$2" "$3" "${4:-}"
    ;;
  stop)
    (($# == 2)) || usage
    cmd_stop "$2"
    ;;
  masters)
    (($# == 3 || $# == 4)) || usage
    require_redis
    cmd_masters "$2" "$3" "${4:-}"
    ;;
  *) usage ;;
esac
