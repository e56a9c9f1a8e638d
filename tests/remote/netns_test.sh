#!/usr/bin/env bash
# Two pool processes on two network namespaces joined by a veth pair: the
# cluster and the writer in one, the reader in the other, so the reader can
# reach the cluster only over the link. Exit 77 (skipped), saying why, where
# network namespaces cannot be made (not root, no `ip netns`, no veth).
# Usage: netns_test.sh REMOTE_PEER SOURCE_DIR WORK_DIR
set -uo pipefail
PEER="$1"; SRC="$2"; WORK="$3"
NS_A="kvpool-a-$$"; NS_B="kvpool-b-$$"
IP_A=10.231.$(( $$ % 250 )).1; IP_B=10.231.$(( $$ % 250 )).2
PORT=$(( 24000 + ($$ % 100) * 10 ))

skip() { echo "netns_test skipped: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "ip (iproute2) is not installed"
command -v redis-server >/dev/null || skip "redis-server is not installed (scripts/setup.sh installs it)"
ip netns add "$NS_A" 2>/dev/null || skip "ip netns add failed (no network namespaces here)"

cleanup() {
  ip netns exec "$NS_A" "$SRC/scripts/redis_cluster.sh" stop "$WORK/cluster" >/dev/null 2>&1
  ip netns del "$NS_A" 2>/dev/null; ip netns del "$NS_B" 2>/dev/null
}
trap cleanup EXIT
ip netns add "$NS_B" || skip "ip netns add failed for a second namespace"
ip link add "veth-a$$" type veth peer name "veth-b$$" 2>/dev/null || skip "veth pairs are not supported"
ip link set "veth-a$$" netns "$NS_A" && ip link set "veth-b$$" netns "$NS_B" || exit 1
ip -n "$NS_A" addr add "$IP_A/24" dev "veth-a$$" && ip -n "$NS_B" addr add "$IP_B/24" dev "veth-b$$"
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set "veth-a$$" up && ip -n "$NS_B" link set "veth-b$$" up || exit 1

rm -rf "$WORK"; mkdir -p "$WORK"
ip netns exec "$NS_A" "$SRC/scripts/redis_cluster.sh" start "$WORK/cluster" "$PORT" "$IP_A" || {
  echo "netns_test: the cluster did not start in $NS_A"; exit 1; }
# The reader's namespace has no route to the writer's loopback: only the link.
if ip netns exec "$NS_B" redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
  echo "netns_test: the cluster answers on the reader's loopback; namespaces are not apart"; exit 1
fi
NODES="$IP_A:$PORT,$IP_A:$((PORT + 1))"
ip netns exec "$NS_A" "$PEER" write --nodes "$NODES" --dir "$WORK/a" --chunks 24 --seed 9 || exit 1
ip netns exec "$NS_B" "$PEER" read --nodes "$NODES" --dir "$WORK/b" --chunks 24 --seed 9 || exit 1
echo "netns_test: a pool in $NS_B read every chunk a pool in $NS_A stored, over the veth link"
