#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Global services on scripts/testbed.sh (2 clusters x 1 node):
#
#   bench: xcluster_propagation_p50_ms X ms   a service record changed in
#   bench: xcluster_propagation_p99_ms X ms   cluster b's etcd until it is
#                                             programmed on a1 (cluster a)
#   bench: failover_median_ms X ms            cluster b cut off (uplink down,
#   bench: failover_worst_ms X ms             etcd stopped) until the first
#                                             new connection from a1 succeeds
#                                             in cluster a; 10 rounds
#
# The service prefers cluster b (affinity remote on a's record), so every
# new connection from a1 lands in b until b is declared unreachable (its
# heartbeat silent past the bound, 3 s by default); then a's standby
# backend takes over. Prints figures, never fails on time; exits non-zero
# only when it could not run at all. Everything lives in namespaces the
# testbed creates; all is removed on every way out.
#
# usage (as root): bench/bench_global.sh [BUILD_DIR]
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
BUILD=${1:-${NM_BUILD:-$TOP/build}}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || {
	echo "bench: global: no build directory ${1:-}" >&2
	exit 1
}
TB=$TOP/scripts/testbed.sh
PROBE=$BUILD/tests/e2e/nm_probe
PREFIX="nmg$$"
VIP=10.96.0.10
PORT=8080
ROUNDS=${NM_BENCH_ROUNDS:-10}
SAMPLES=100

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nm-bench.XXXXXX") || exit 1
export NM_BUILD=$BUILD NMTB_PREFIX=$PREFIX NMTB_DIR=$WORK/tb
PIDS=()

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	"$TB" down >/dev/null 2>&1
	rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

skip() {
	echo "bench: global skipped: $*"
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root"
for cmd in jq etcd etcdctl curl; do
	command -v "$cmd" >/dev/null || skip "missing $cmd (scripts/deps.sh)"
done
[ -x "$PROBE" ] || skip "$PROBE not built (make all)"
[ -x "$BUILD/nodemesh-cni" ] || skip "$BUILD/nodemesh-cni not built (make all)"

tb() { timeout 120 "$TB" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
pod_ns() { awk '{ print $3; exit }' "$NMTB_DIR/pods/$1.meta"; }

# record CLUSTER BACKEND_IP AFFINITY WEIGHT: cluster's record for web.
record() {
	local doc
	doc=$(jq -cn --arg ns default --arg ip "$2" --arg aff "$3" \
		--argjson w "$4" --argjson port "$PORT" \
		'{schema: 1, namespace: $ns, name: "web",
		  frontends: ["10.96.0.10:80/tcp"],
		  backends: [{ip: $ip, port: $port, proto: "tcp"}],
		  global: true, shared: true, affinity: $aff, weight: $w}')
	tb etcdctl "$1" -- put "nodemesh/state/services/v1/$1/default/web" "$doc" >/dev/null
}

# put_b BODY: a put of b's record (put_body) through etcd's JSON gateway with curl, whose start
# costs a few ms where etcdctl's costs tens: the clock starts before it.
put_b() {
	nsenter --net="/run/netns/$PREFIX-fabric" -- curl -sf -m 5 \
		-X POST -d "$1" "http://172.30.2.250:2379/v3/kv/put" >/dev/null
}

# The gateway's put request for b's record DOC.
put_body() {
	jq -cn --arg k "nodemesh/state/services/v1/b/default/web" \
		--arg v "$1" '{key: ($k | @base64), value: ($v | @base64)}'
}

# b's record for web with cluster weight W.
b_doc() {
	jq -cn --arg ip "$B_IP" --argjson w "$1" --argjson port "$PORT" \
		'{schema: 1, namespace: "default", name: "web",
		  frontends: ["10.96.0.10:80/tcp"],
		  backends: [{ip: $ip, port: $port, proto: "tcp"}],
		  global: true, shared: true, affinity: "none", weight: $w}'
}

# b_has_weight W: a1 programs b's backend with weight W. Text and grep,
# not JSON and jq: a poll costs a few ms, not tens.
b_has_weight() {
	"$BUILD/nodemeshctl" --pin-root "/sys/fs/bpf/$PREFIX/a1" service list 2>/dev/null |
		grep -q " $B_IP:$PORT weight $1 "
}

# who answers one new connection from the client ("" on failure).
answer() {
	tb exec client -- "$PROBE" connect "$VIP:80" --count 1 --timeout-ms "${1:-200}" 2>/dev/null
}

percentile() { # percentile P: of the numbers on stdin
	sort -n | awk -v p="$1" '{ v[NR] = $1 } END {
		if (!NR) { print "nan"; exit }
		i = int((NR * p + 99) / 100); if (i < 1) i = 1; print v[i] }'
}

tb up -c 2 -m 1 >/dev/null || skip "testbed did not come up"
tb pod add a a1 client app=client >/dev/null || skip "pod add failed"
tb pod add a a1 web-a app=web >/dev/null || skip "pod add failed"
tb pod add b b1 web-b app=web >/dev/null || skip "pod add failed"
A_IP=$(tb pod ip web-a)
B_IP=$(tb pod ip web-b)
for spec in "web-a a/web-a" "web-b b/web-b"; do
	read -r pod name <<<"$spec"
	nsenter --net="/run/netns/$(pod_ns "$pod")" -- "$PROBE" serve --port "$PORT" \
		--name "$name" &
	PIDS+=("$!")
done
record a "$A_IP" remote 1
record b "$B_IP" none 1
for _ in $(seq 100); do
	[ "$(answer)" = b/web-b ] && break
	sleep 0.1
done
[ "$(answer)" = b/web-b ] || skip "the service never reached cluster b"

# Propagation: b's record changes weight; a1 programs it.
samples=()
for i in $(seq 2 $((SAMPLES + 1))); do
	body=$(put_body "$(b_doc "$i")")
	t0=$(now_ms)
	put_b "$body" || skip "put into b's etcd failed"
	until b_has_weight "$i"; do
		[ $(($(now_ms) - t0)) -gt 10000 ] && break
	done
	samples+=($(($(now_ms) - t0)))
done
printf '%s\n' "${samples[@]}" | percentile 50 |
	awk '{ printf "bench: xcluster_propagation_p50_ms %s ms\n", $1 }'
printf '%s\n' "${samples[@]}" | percentile 99 |
	awk '{ printf "bench: xcluster_propagation_p99_ms %s ms\n", $1 }'

# Failover: cut b off, count until a new connection lands in a.
B_NS=$PREFIX-b1
fails=()
for _ in $(seq "$ROUNDS"); do
	t0=$(now_ms)
	ip -n "$B_NS" link set eth0 down
	tb etcd stop b >/dev/null
	until [ "$(answer 100)" = a/web-a ]; do
		[ $(($(now_ms) - t0)) -gt 30000 ] && break
	done
	fails+=($(($(now_ms) - t0)))
	ip -n "$B_NS" link set eth0 up
	tb etcd start b >/dev/null
	t1=$(now_ms)
	until [ "$(answer 200)" = b/web-b ]; do
		[ $(($(now_ms) - t1)) -gt 30000 ] && break
		sleep 0.1
	done
done
printf '%s\n' "${fails[@]}" | percentile 50 |
	awk '{ printf "bench: failover_median_ms %s ms\n", $1 }'
printf '%s\n' "${fails[@]}" | sort -n | tail -1 |
	awk '{ printf "bench: failover_worst_ms %s ms\n", $1 }'
