#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The whole mesh on scripts/testbed.sh: two clusters (a, b) of two nodes,
# a real etcd per cluster, a real agent per node, pods wired by the CNI
# chain ptp + nodemesh-cni, traffic over the VXLAN overlay:
#
#   a1: client-fe (app=frontend), client-other (app=other), srv-a1
#   a2: srv-a2 (app=web)            b1: srv-b1 (app=web), sink-b1
#   b2: client-b
#
# Pod to pod TCP (same node, other node, other cluster), a global service
# with backends in both clusters, a MeshNetworkPolicy on cluster b letting
# in cluster a's frontends only, a VXLAN packet from an address that is no
# node, an agent restart under an open cross-cluster connection, and a
# pod's removal.
#
# Safety: every address lives in namespaces the testbed (and this file,
# for the rogue sender) creates; nothing routes out of them. Servers are
# stopped by pid; the testbed is taken down on every way out.
#
# usage (as root): tests/e2e/test_mesh.sh BUILD_DIR
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

BUILD=$(cd "$BUILD" && pwd) || nm_skip_all "no build directory $1"
TB=$TOP/scripts/testbed.sh
VIP=10.96.0.10
PORT=8080
SINK_PORT=9999

[ -x "$BUILD/nodemesh-agent" ] || nm_skip_all "$BUILD/nodemesh-agent not built (make all)"
[ -x "$BUILD/nodemesh-cni" ] || nm_skip_all "$BUILD/nodemesh-cni not built (make all)"
for cmd in etcd etcdctl jq curl socat; do
	command -v "$cmd" >/dev/null || nm_skip_all "missing $cmd (scripts/deps.sh)"
done
[ -x /usr/lib/cni/ptp ] || nm_skip_all "CNI ptp plugin missing (scripts/deps.sh)"

nm_e2e_start "nmt$$" 18
nm_tmpdir WORK || nm_bail "no scratch dir"
export NM_BUILD=$BUILD NMTB_PREFIX=$PREFIX NMTB_DIR=$WORK/tb
ROGUE=$PREFIX-rogue

# The testbed goes first (its records live in WORK), then what lib.sh
# tracks: the servers by pid, the rogue namespace, WORK.
on_exit() {
	"$TB" down >/dev/null 2>&1 || nm_diag "testbed down failed"
	nm_cleanup
}
trap on_exit EXIT

tb() { timeout 120 "$TB" "$@"; }
pod_ns() { awk '{ print $3; exit }' "$NMTB_DIR/pods/$1.meta"; }
ip_of() { tb pod ip "$1"; }
probe() { # probe POD ARGS...: nm_probe in POD
	local pod=$1
	shift
	tb exec "$pod" -- "$PROBE" "$@"
}

# connect_names POD IP COUNT: the names COUNT connections to IP:PORT got.
connect_names() {
	probe "$1" connect "$2:$PORT" --count "$3" --timeout-ms 3000
}

# expect_names POD TARGET_POD NAME: 3 connections, each answered by NAME.
expect_names() {
	local out
	out=$(connect_names "$1" "$(ip_of "$2")" 3) || { echo "$out"; return 1; }
	echo "$1 -> $2: $(tr '\n' ' ' <<<"$out")"
	[ "$(grep -cx "$3" <<<"$out")" -eq 3 ]
}

# metric NODE DIR REASON: packets counted under (DIR, REASON) on NODE.
metric() {
	tb ctl "$1" -- -o json map dump metrics |
		jq --arg d "$2" --arg r "$3" \
			'[.[] | select(.dir == $d and .reason == $r) | .packets] | add // 0'
}

policy_drops() { # policy_drops NODE: policy drops toward pods on NODE
	tb ctl "$1" -- -o json map dump metrics |
		jq '[.[] | select((.dir == "to_pod" or .dir == "from_overlay") and
			(.reason == "drop_policy_default" or .reason == "drop_policy_deny")) |
			.packets] | add // 0'
}

has_ipcache() { # has_ipcache NODE IP
	tb ctl "$1" -- map dump ipcache | grep -q "^$2/32 "
}

# --------------------------------------------------------------- tests

NODES=(a1 a2 b1 b2)
# pod node labels server-name
PODS=(
	"client-fe a1 app=frontend -"
	"client-other a1 app=other -"
	"srv-a1 a1 app=server a/srv-a1"
	"srv-a2 a2 app=web a/srv-a2"
	"srv-b1 b1 app=web b/srv-b1"
	"sink-b1 b1 app=sink b/sink-b1"
	"client-b b2 app=client -"
)

nodes_known() {
	local n
	for n in "${NODES[@]}"; do
		[ "$(tb ctl "$n" -- map dump nodes | grep -c '^node ')" -eq 4 ] || return 1
	done
}

t_up() {
	tb up -c 2 -m 2 || return 1
	if ! nm_wait_for 20 nodes_known; then
		tb status
		tb ctl a1 -- map dump nodes
		return 1
	fi
	tb ctl a1 -- map dump nodes
}
nm_test "testbed up: 2 clusters x 2 nodes, every node knows all 4" t_up
[ "$NM_TAP_FAILED" -eq 0 ] || nm_bail "testbed did not come up"

all_pods_known() {
	local n spec pod
	for n in "${NODES[@]}"; do
		for spec in "${PODS[@]}"; do
			read -r pod _ <<<"$spec"
			has_ipcache "$n" "$(ip_of "$pod")" || return 1
		done
	done
}

t_pods() {
	local spec pod node labels name mtu
	for spec in "${PODS[@]}"; do
		read -r pod node labels name <<<"$spec"
		tb pod add "${node:0:1}" "$node" "$pod" "$labels" || return 1
	done
	jq -e '.cniVersion == "1.0.0" and (.ips | length) == 1' \
		"$NMTB_DIR/pods/srv-b1.json" >/dev/null || return 1
	if ! nm_wait_for 20 all_pods_known; then
		tb ctl a1 -- map dump ipcache
		return 1
	fi
	tb ctl a1 -- map dump ipcache
	# (Not /sys/class/net: nsenter --net leaves the root's sysfs mounted.)
	mtu=$(tb exec srv-b1 -- ip -j link show eth0 | jq '.[0].mtu')
	echo "srv-b1 eth0 MTU $mtu"
	[ "$mtu" = 1450 ]
}
nm_test "7 pods through ptp + nodemesh-cni; every node's ipcache has them all" \
	t_pods

declare -A SERVER_PID
t_servers() {
	local spec pod node labels name
	for spec in "${PODS[@]}"; do
		read -r pod node labels name <<<"$spec"
		[ "$name" = - ] && continue
		nm_bg "$(pod_ns "$pod")" "$PROBE" serve --port "$PORT" \
			--name "$name" --udp --pidfile "$WORK/$pod.pid"
		SERVER_PID[$pod]=$NM_LAST_PID
	done
	# The sink records every datagram it gets on SINK_PORT.
	nm_bg "$(pod_ns sink-b1)" socat -u "UDP-RECV:$SINK_PORT" \
		"OPEN:$WORK/sink.log,creat,append"
	for spec in "${PODS[@]}"; do
		read -r pod node labels name <<<"$spec"
		[ "$name" = - ] && continue
		nm_wait_file "$WORK/$pod.pid" 5 || { echo "$pod: no server"; return 1; }
	done
}
nm_test "servers listen in srv-a1, srv-a2, srv-b1, sink-b1" t_servers

nm_test "TCP pod to pod, same node (client-fe -> srv-a1)" \
	expect_names client-fe srv-a1 a/srv-a1
nm_test "TCP pod to pod, other node of the cluster (client-fe -> srv-a2 on a2)" \
	expect_names client-fe srv-a2 a/srv-a2

t_cross_cluster() {
	expect_names client-fe srv-b1 b/srv-b1 &&
		expect_names client-b srv-a1 a/srv-a1
}
nm_test "TCP pod to pod across clusters (a1 -> b1 and b2 -> a1)" t_cross_cluster

# ------------------------------------------------------ global service

svc_record() { # svc_record CLUSTER BACKEND_IP
	jq -cn --arg ip "$2" '{schema: 1, namespace: "default", name: "web",
		frontends: ["10.96.0.10:80/tcp"],
		backends: [{ip: $ip, port: 8080, proto: "tcp"}],
		global: true, shared: true}'
}

svc_programmed() {
	local n
	for n in "${NODES[@]}"; do
		[ "$(tb ctl "$n" -- -o json service list |
			jq --arg fe "$VIP:80/tcp" \
				'[.[] | select(.frontend == $fe) | .backend_count] | add // 0')" \
			-eq 2 ] || return 1
	done
}

t_service_records() {
	tb etcdctl a -- put nodemesh/state/services/v1/a/default/web \
		"$(svc_record a "$(ip_of srv-a2)")" || return 1
	tb etcdctl b -- put nodemesh/state/services/v1/b/default/web \
		"$(svc_record b "$(ip_of srv-b1)")" || return 1
	nm_wait_for 15 svc_programmed || { tb ctl a1 -- service list; return 1; }
	tb ctl b2 -- service list
}
nm_test "service web: one backend per cluster, programmed on all 4 nodes" \
	t_service_records

# spread POD: 40 connections to the VIP land in both clusters.
spread() {
	local out a b
	out=$(probe "$1" connect "$VIP:80" --count 40 --timeout-ms 3000) ||
		{ echo "$out"; return 1; }
	a=$(grep -c '^a/' <<<"$out")
	b=$(grep -c '^b/' <<<"$out")
	echo "$1: cluster a $a, cluster b $b"
	[ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ $((a + b)) -eq 40 ]
}
nm_test "40 connections from client-fe (cluster a) to $VIP:80 reach both clusters" \
	spread client-fe
nm_test "40 connections from client-b (cluster b) to $VIP:80 reach both clusters" \
	spread client-b

# -------------------------------------------------------------- policy

cat >"$WORK/policy.yaml" <<YAML
apiVersion: nodemesh.io/v1alpha1
kind: MeshNetworkPolicy
metadata:
  name: web-from-a-frontends
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: web
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
            nodemesh.io/cluster: a
      toPorts:
        - ports:
            - port: $PORT
              protocol: TCP
YAML

t_policy_allow() {
	tb ctl b1 -- policy apply -f "$WORK/policy.yaml" || return 1
	tb ctl b2 -- policy apply -f "$WORK/policy.yaml" || return 1
	tb ctl b1 -- policy get "$(ip_of srv-b1)"
	expect_names client-fe srv-b1 b/srv-b1
}
nm_test "policy on cluster b: client-fe (cluster a, app=frontend) gets in" \
	t_policy_allow

DROPS_BEFORE=0
t_policy_deny() {
	local out
	DROPS_BEFORE=$(policy_drops b1)
	if out=$(probe client-other connect "$(ip_of srv-b1):$PORT" \
		--timeout-ms 1500 2>&1); then
		echo "client-other got in: $out"
		return 1
	fi
	echo "client-other: $out"
}
nm_test "policy on cluster b: client-other (app=other) is refused" \
	t_policy_deny

t_policy_counted() {
	local after
	after=$(policy_drops b1)
	echo "policy drops on b1: $DROPS_BEFORE -> $after"
	[ "$after" -gt "$DROPS_BEFORE" ] || { tb ctl b1 -- map dump metrics; return 1; }
}
nm_test "b1 counts the refused packets as policy drops" t_policy_counted

# ----------------------------------------------------- rogue VXLAN sender

rogue_up() {
	local fab=$PREFIX-fabric
	ip netns add "$ROGUE" || return 1
	NM_NETNS+=("$ROGUE")
	ip -n "$ROGUE" link set lo up || return 1
	# No IPv6 chatter from the rogue: only what the test sends. (A kernel
	# without IPv6 has none anyway.)
	nm_exec "$ROGUE" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
	ip -n "$fab" link add tb-rogue type veth peer name eth0 netns "$ROGUE" ||
		return 1
	ip -n "$fab" link set tb-rogue master br0 up || return 1
	ip -n "$ROGUE" addr add 172.30.99.1/16 dev eth0 || return 1
	ip -n "$ROGUE" link set eth0 up || return 1
	ip -n "$ROGUE" link add vx0 type vxlan id 300 remote 172.30.2.1 \
		dstport 4789 dev eth0 || return 1
	ip -n "$ROGUE" link set vx0 mtu 1450 up || return 1
	ip -n "$ROGUE" addr add 10.99.0.1/32 dev vx0 || return 1
	ip -n "$ROGUE" route add "$1/32" dev vx0 || return 1
	ip -n "$ROGUE" neigh add "$1" lladdr 02:00:00:00:00:01 dev vx0 \
		nud permanent
}

ip_in() { # ip_in POD: IPv4 packets the pod's stack received
	# shellcheck disable=SC2016 # awk's $4
	tb exec "$1" -- awk '/^Ip: [0-9]/ { print $4 }' /proc/net/snmp
}

UNKNOWN_BEFORE=0
t_rogue() {
	local sink in0 in1 i
	sink=$(ip_of sink-b1)
	rogue_up "$sink" || return 1
	UNKNOWN_BEFORE=$(metric b1 from_overlay drop_unknown_node)
	in0=$(ip_in sink-b1)
	for i in 1 2 3; do
		echo "rogue $i" | nm_exec "$ROGUE" socat -u - \
			"UDP-SENDTO:$sink:$SINK_PORT" || return 1
	done
	if nm_exec "$ROGUE" "$PROBE" connect "$sink:$PORT" --timeout-ms 1000; then
		echo "the rogue's TCP connection got through"
		return 1
	fi
	sleep 0.3
	in1=$(ip_in sink-b1)
	echo "sink-b1 IPv4 packets received: $in0 -> $in1; sink log: $(wc -c <"$WORK/sink.log" 2>/dev/null || echo 0) bytes"
	[ "$in0" -eq "$in1" ] || return 1
	[ ! -s "$WORK/sink.log" ] || return 1
	# The same datagram from a pod of cluster a arrives.
	echo "from client-fe" | tb exec client-fe -- socat -u - \
		"UDP-SENDTO:$sink:$SINK_PORT" || return 1
	nm_wait_for 5 grep -q "from client-fe" "$WORK/sink.log" || return 1
	echo "sink log: $(cat "$WORK/sink.log")"
}
nm_test "VXLAN from 172.30.99.1 (no node) to sink-b1: nothing arrives; a pod's datagram does" \
	t_rogue

t_rogue_counted() {
	local after
	after=$(metric b1 from_overlay drop_unknown_node)
	echo "b1 from_overlay drop_unknown_node: $UNKNOWN_BEFORE -> $after"
	[ "$after" -ge $((UNKNOWN_BEFORE + 4)) ]
}
nm_test "b1 counts them as drop_unknown_node (from_overlay)" t_rogue_counted

# ------------------------------------------------------- agent restart

HOLD_MS=8000
t_restart() {
	local pid0 pid1 hold rc t0 t1
	pid0=$(cat "$NMTB_DIR/b1/agent.pid")
	rm -f "$WORK/hold.ready"
	nm_bg "$(pod_ns client-fe)" "$PROBE" hold "$(ip_of srv-b1):$PORT" \
		--duration-ms "$HOLD_MS" --interval-ms 100 --timeout-ms 15000 \
		--ready-file "$WORK/hold.ready" >"$WORK/hold.out" 2>&1
	hold=$NM_LAST_PID
	nm_wait_file "$WORK/hold.ready" 5 || { cat "$WORK/hold.out"; return 1; }
	t0=$(date +%s%N)
	date '+%T.%N restarting b1'
	tb agent restart b1 || return 1
	t1=$(date +%s%N)
	pid1=$(cat "$NMTB_DIR/b1/agent.pid")
	echo "b1 agent pid $pid0 -> $pid1, restarted in $(((t1 - t0) / 1000000)) ms"
	wait "$hold"
	rc=$?
	nm_pid_forget "$hold"
	cat "$WORK/hold.out"
	if [ "$rc" -ne 0 ]; then
		date '+%T.%N'
		tb exec client-fe -- ss -tnie
		tb ctl a1 -- map dump ipcache
		tb ctl b1 -- map dump ipcache
		tb ctl a1 -- map dump metrics
		tb ctl b1 -- map dump metrics
		tb ctl b1 -- map dump ct
		tail -n 25 "$NMTB_DIR/b1/agent.log"
		return 1
	fi
	[ "$pid0" != "$pid1" ] || return 1
	# Echoes must have run after the new agent was up.
	if [ $(((t1 - t0) / 1000000)) -gt $((HOLD_MS - 1500)) ]; then
		echo "the restart outlasted the connection's exchange"
		return 1
	fi
}
nm_test "agent restart on b1 under an open a1 -> b1 TCP connection: it keeps echoing" \
	t_restart

t_after_restart() {
	nm_wait_for 15 has_ipcache a1 "$(ip_of srv-b1)" || return 1
	expect_names client-fe srv-b1 b/srv-b1 || return 1
	if probe client-other connect "$(ip_of srv-b1):$PORT" --timeout-ms 1500; then
		echo "client-other got in after the restart"
		return 1
	fi
	return 0
}
nm_test "after the restart: client-fe still gets in, client-other still does not" \
	t_after_restart

# ------------------------------------------------------------- pod del

t_pod_del() {
	local ip
	ip=$(ip_of srv-a1)
	# Its server first, by pid.
	kill "${SERVER_PID[srv-a1]}" 2>/dev/null
	wait "${SERVER_PID[srv-a1]}" 2>/dev/null
	nm_pid_forget "${SERVER_PID[srv-a1]}"
	tb pod del a a1 srv-a1 || return 1
	[ ! -e "/run/netns/$PREFIX-a1-srv-a1" ] || return 1
	nm_wait_for 10 sh -c "! '$TB' ctl b1 -- map dump ipcache | grep -q '^$ip/32 '" ||
		{ tb ctl b1 -- map dump ipcache; return 1; }
	! tb ctl a1 -- endpoint list | grep -q "$ip"
}
nm_test "pod del: srv-a1's namespace, endpoint and remote ipcache entry go" \
	t_pod_del

t_down() {
	"$TB" down || return 1
	[ ! -e "$NMTB_DIR" ] && [ ! -e "/sys/fs/bpf/$PREFIX" ] &&
		! ip netns list | grep -q "^$PREFIX-[a-z]*[0-9]"
}
nm_test "testbed down removes namespaces, pins and its directory" t_down

nm_tap_status
