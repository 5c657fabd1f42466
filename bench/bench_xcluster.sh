#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Cross-cluster pod to pod throughput and latency on scripts/testbed.sh
# (2 clusters x 1 node, VXLAN overlay through the nodemesh datapath), and
# the same figures for a baseline with no BPF: two node namespaces on the
# same kind of fabric bridge, a plain kernel VXLAN device (VNI 42, fixed
# remote, UDP 4789) between them and pod namespaces routed over it, same
# MTUs (underlay 1500, pods 1450).
#
#   bench: xcluster_tcp_gbps X Gbit/s        iperf3 -t 5, pod a -> pod b
#   bench: baseline_vxlan_tcp_gbps X Gbit/s
#   bench: xcluster_rr_us X us               1-byte TCP round trips (bench/rr)
#   bench: baseline_vxlan_rr_us X us
#
# Prints figures and never fails on time; exits non-zero only when it could
# not run at all. Everything lives in namespaces created here (prefix
# nmb<pid>), nothing routes out of them, servers are stopped by pid and
# all is removed on every way out.
#
# usage (as root): bench/bench_xcluster.sh [BUILD_DIR]
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
BUILD=${1:-${NM_BUILD:-$TOP/build}}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || {
	echo "bench: xcluster: no build directory ${1:-}" >&2
	exit 1
}
TB=$TOP/scripts/testbed.sh
RR=$BUILD/bench/rr
PREFIX="nmb$$"
IPERF_PORT=5201
RR_PORT=7000
RR_COUNT=10000

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nm-bench.XXXXXX") || exit 1
export NM_BUILD=$BUILD NMTB_PREFIX=$PREFIX NMTB_DIR=$WORK/tb
PIDS=()
BASE_NS=()
status=0

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local pid ns
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	"$TB" down >/dev/null 2>&1
	for ns in "${BASE_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

skip() {
	echo "bench: xcluster skipped: $*"
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root"
for cmd in iperf3 jq etcd etcdctl; do
	command -v "$cmd" >/dev/null || skip "missing $cmd (scripts/deps.sh)"
done
[ -x "$RR" ] || skip "$RR not built (make all)"
[ -x "$BUILD/nodemesh-cni" ] || skip "$BUILD/nodemesh-cni not built (make all)"

in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" -- "$@"
}

# bg NS CMD...: start CMD in NS, its pid in PIDS (nsenter execs CMD).
bg() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" -- "$@" >>"$WORK/servers.log" 2>&1 </dev/null &
	PIDS+=("$!")
}

wait_file() {
	local tries=50
	while [ ! -s "$1" ] && [ "$tries" -gt 0 ]; do
		sleep 0.1
		tries=$((tries - 1))
	done
	[ -s "$1" ]
}

# servers SERVER_NS TAG: iperf3 and rr servers in SERVER_NS.
servers() {
	bg "$1" iperf3 -s -p "$IPERF_PORT" -B "$3" --pidfile "$WORK/iperf-$2.pid"
	bg "$1" "$RR" server --port "$RR_PORT" --pidfile "$WORK/rr-$2.pid"
	wait_file "$WORK/iperf-$2.pid" && wait_file "$WORK/rr-$2.pid"
}

# tcp CLIENT_NS SERVER_IP NAME: iperf3 throughput for one path.
tcp() {
	local ns=$1 ip=$2 name=$3 out gbps tries=20

	# iperf3 answers "busy" until its previous test is closed: retry a bit.
	while :; do
		out=$(in_ns "$ns" timeout 30 iperf3 -c "$ip" -p "$IPERF_PORT" -t 5 -J 2>&1)
		gbps=$(jq -r '.end.sum_received.bits_per_second // empty | . / 1e9 |
			(. * 100 | round) / 100' <<<"$out" 2>/dev/null)
		[ -n "$gbps" ] && break
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || break
		sleep 0.2
	done
	if [ -n "$gbps" ]; then
		printf 'bench: %s_tcp_gbps %.2f Gbit/s\n' "$name" "$gbps"
	else
		echo "# ${name}: iperf3 failed: $(jq -r '.error // empty' <<<"$out" 2>/dev/null || tail -1 <<<"$out")"
		status=1
	fi
}

# rr CLIENT_NS SERVER_IP NAME: mean 1-byte TCP round trip for one path.
rr() {
	local us
	if us=$(in_ns "$1" timeout 60 "$RR" client "$2:$RR_PORT" --count "$RR_COUNT"); then
		echo "bench: ${3}_rr_us $us us"
	else
		echo "# ${3}: rr failed"
		status=1
	fi
}

# ----------------------------------------------------- nodemesh testbed

if ! "$TB" up -c 2 -m 1 >"$WORK/up.log" 2>&1; then
	echo "bench: xcluster: testbed up failed:" >&2
	tail -5 "$WORK/up.log" >&2
	exit 1
fi
if ! "$TB" pod add a a1 client app=client >/dev/null ||
	! "$TB" pod add b b1 server app=server >/dev/null; then
	echo "bench: xcluster: pod add failed" >&2
	exit 1
fi
SERVER_IP=$("$TB" pod ip server)
CLIENT_NS=$(awk '{ print $3 }' "$NMTB_DIR/pods/client.meta")
SERVER_NS=$(awk '{ print $3 }' "$NMTB_DIR/pods/server.meta")
# The client's node learns the server from cluster b's etcd.
tries=100
until "$TB" ctl a1 -- map dump ipcache | grep -q "^$SERVER_IP/32 .*tunnel 172.30.2.1"; do
	tries=$((tries - 1))
	if [ "$tries" -le 0 ]; then
		echo "bench: xcluster: node a1 never learned $SERVER_IP" >&2
		exit 1
	fi
	sleep 0.1
done
servers "$SERVER_NS" xc "$SERVER_IP" || { echo "bench: xcluster: servers did not start" >&2; exit 1; }

# ------------------------------------------------ baseline: kernel VXLAN

FAB=$PREFIX-bfab
N1=$PREFIX-bn1
N2=$PREFIX-bn2
P1=$PREFIX-bp1
P2=$PREFIX-bp2

# base_node NODE NUM: a node on the baseline fabric, 172.29.0.NUM/16, with a
# kernel VXLAN device toward the other node and a pod 10.29.NUM.10.
base_node() {
	local ns=$1 n=$2 pod=$3 peer=$((3 - $2))

	ip netns add "$ns" || return 1
	BASE_NS+=("$ns")
	ip -n "$ns" link set lo up &&
		ip -n "$FAB" link add "bb-$n" mtu 1500 type veth peer name eth0 mtu 1500 netns "$ns" &&
		ip -n "$FAB" link set "bb-$n" master br0 up &&
		ip -n "$ns" addr add "172.29.0.$n/16" dev eth0 &&
		ip -n "$ns" link set eth0 up &&
		in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1 &&
		ip -n "$ns" link add vx0 type vxlan id 42 remote "172.29.0.$peer" \
			local "172.29.0.$n" dstport 4789 dev eth0 &&
		ip -n "$ns" link set vx0 mtu 1450 up &&
		ip -n "$ns" addr add "10.28.0.$n/24" dev vx0 &&
		ip -n "$ns" route add "10.29.$peer.0/24" via "10.28.0.$peer" dev vx0 || return 1

	# The pod: ptp-style, /32 on eth0, default route via the node.
	ip netns add "$pod" || return 1
	BASE_NS+=("$pod")
	ip -n "$pod" link set lo up &&
		ip -n "$ns" link add "bp-$n" mtu 1450 type veth peer name eth0 mtu 1450 netns "$pod" &&
		ip -n "$ns" addr add 169.254.1.1/32 dev "bp-$n" scope link &&
		ip -n "$ns" link set "bp-$n" up &&
		ip -n "$ns" route add "10.29.$n.10/32" dev "bp-$n" scope link &&
		ip -n "$pod" addr add "10.29.$n.10/32" dev eth0 &&
		ip -n "$pod" link set eth0 up &&
		ip -n "$pod" route add default via 169.254.1.1 dev eth0 onlink
}

base_up() {
	ip netns add "$FAB" || return 1
	BASE_NS+=("$FAB")
	ip -n "$FAB" link set lo up &&
		ip -n "$FAB" link add br0 address 02:00:00:00:00:fe type bridge &&
		ip -n "$FAB" link set br0 up &&
		base_node "$N1" 1 "$P1" &&
		base_node "$N2" 2 "$P2"
}

if ! base_up; then
	echo "bench: xcluster: baseline namespaces failed" >&2
	exit 1
fi
# Pods are reachable once the VXLAN neighbours resolve.
tries=50
until in_ns "$P1" ping -c1 -W1 -q 10.29.2.10 >/dev/null 2>&1; do
	tries=$((tries - 1))
	[ "$tries" -gt 0 ] || { echo "bench: xcluster: baseline pods cannot reach each other" >&2; exit 1; }
	sleep 0.1
done
servers "$P2" base 10.29.2.10 || { echo "bench: xcluster: baseline servers did not start" >&2; exit 1; }

echo "# xcluster: pod a1/client -> pod b1/server ($SERVER_IP) through the nodemesh datapath and VXLAN overlay, pod MTU 1450"
echo "# baseline_vxlan: pod -> pod over a kernel VXLAN device (id 42, fixed remote, UDP 4789), no BPF, pod MTU 1450"
tcp "$CLIENT_NS" "$SERVER_IP" xcluster
tcp "$P1" 10.29.2.10 baseline_vxlan
echo "# $RR_COUNT round trips of 1 byte on one TCP connection (TCP_NODELAY), mean"
rr "$CLIENT_NS" "$SERVER_IP" xcluster
rr "$P1" 10.29.2.10 baseline_vxlan

exit "$status"
