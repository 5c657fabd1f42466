#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Global services from MeshService manifests on scripts/testbed.sh: two
# clusters (a, b) of two nodes, a real etcd per cluster, a real agent per
# node, pods wired by the CNI chain:
#
#   a1: client-a (app=client), web-a2 (app=web)    a2: web-a1 (app=web)
#   b1: web-b1 (app=web)                           b2: client-b (app=client)
#   (later a2: web-a3)
#
# The manifest 'web' (VIP:80 -> 8080, selector app=web) is applied with
# 'nodemeshctl service apply' in both clusters; each cluster's heartbeat
# writer exports it from its endpoint records, and every node merges the
# two records. Then: a drained (terminating) backend keeps its open
# connection and gets no new one; shared=false in b keeps b's backends
# from a while b's pods still reach a's; affinity local on a prefers a's
# backends, falls back to b's when none is ready and comes back; cluster
# weights 1:3 split 2,000 connections; cluster b cut off (its etcd stopped,
# its nodes' uplinks down) gives way to a's backends within the heartbeat
# bound + 1 s and is re-admitted when it is back; a deleted manifest takes
# its record with it.
#
# Safety: every address lives in namespaces the testbed creates; nothing
# routes out of them. Servers are stopped by pid; the testbed is taken
# down on every way out.
#
# usage (as root): tests/e2e/test_global.sh BUILD_DIR
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

BUILD=$(cd "$BUILD" && pwd) || nm_skip_all "no build directory $1"
TB=$TOP/scripts/testbed.sh
VIP=10.96.0.20
PORT=80
TPORT=8080
BOUND_MS=3000 # the agent's default heartbeat_bound_ms

[ -x "$BUILD/nodemesh-agent" ] || nm_skip_all "$BUILD/nodemesh-agent not built (make all)"
[ -x "$BUILD/nodemesh-cni" ] || nm_skip_all "$BUILD/nodemesh-cni not built (make all)"
for cmd in etcd etcdctl jq curl; do
	command -v "$cmd" >/dev/null || nm_skip_all "missing $cmd (scripts/deps.sh)"
done
[ -x /usr/lib/cni/ptp ] || nm_skip_all "CNI ptp plugin missing (scripts/deps.sh)"

nm_e2e_start "nmg$$" 16
nm_tmpdir WORK || nm_bail "no scratch dir"
export NM_BUILD=$BUILD NMTB_PREFIX=$PREFIX NMTB_DIR=$WORK/tb

on_exit() {
	"$TB" down >/dev/null 2>&1 || nm_diag "testbed down failed"
	nm_cleanup
}
trap on_exit EXIT

tb() { timeout 120 "$TB" "$@"; }
pod_ns() { awk '{ print $3; exit }' "$NMTB_DIR/pods/$1.meta"; }
probe() { # probe POD ARGS...: nm_probe in POD
	local pod=$1
	shift
	tb exec "$pod" -- "$PROBE" "$@"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

NODES_A=(a1 a2)
NODES_B=(b1 b2)
NODES=("${NODES_A[@]}" "${NODES_B[@]}")
declare -A IP

# ------------------------------------------------------------- helpers

# manifest FILE [SPEC_LINE...]: the MeshService 'web', global, plus lines.
manifest() {
	local f=$1
	shift
	{
		cat <<YAML
apiVersion: nodemesh.io/v1alpha1
kind: MeshService
metadata: {name: web, namespace: default}
spec:
  vip: $VIP
  ports:
    - {port: $PORT, targetPort: $TPORT, protocol: TCP}
  selector: {app: web}
  global: true
YAML
		[ $# -gt 0 ] && printf '  %s\n' "$@"
	} >"$f"
}

# apply CLUSTER [SPEC_LINE...]: write and apply 'web' in CLUSTER.
apply() {
	local c=$1 f
	shift
	f=$WORK/web-$c.yaml
	manifest "$f" "$@"
	tb ctl "${c}1" -- service apply -f "$f" --config "$NMTB_DIR/${c}1/agent.yaml"
}

# be_json NODE: the backends of the VIP's TCP frontend on NODE.
be_json() {
	tb ctl "$1" -- -o json service list |
		jq -c --arg fe "$VIP:$PORT/tcp" '[.[] | select(.frontend == $fe) | .backends[]]'
}

# ips STATE NODE: addresses of NODE's backends in STATE, sorted, one line.
ips() {
	be_json "$2" | jq -r --arg s "$1" '.[] | select(.state == $s) | .addr' |
		sort | tr '\n' ' '
}

# want_on STATE "NODE..." POD...: on every NODE the backends in STATE are
# exactly the PODs' addresses.
want_on() {
	local state=$1 nodes=$2 want n p
	shift 2
	want=$(for p in "$@"; do echo "${IP[$p]}"; done | sort | tr '\n' ' ')
	for n in $nodes; do
		[ "$(ips "$state" "$n")" = "$want" ] || return 1
	done
}

# expect STATE "NODE..." POD...: want_on, waited for up to 15 s; on failure
# show what the nodes have.
expect() {
	local n
	nm_wait_for 15 want_on "$@" && return 0
	echo "want $1 backends on $2: $(shift 2; for p in "$@"; do printf '%s=%s ' "$p" "${IP[$p]}"; done)"
	for n in $2; do
		echo "$n:"
		tb ctl "$n" -- service list | sed -n "\|^$VIP:$PORT/tcp|,/^[0-9]/p"
	done
	return 1
}

# record CLUSTER: CLUSTER's exported record of 'web' (empty: none).
record() {
	tb etcdctl "$1" -- get --print-value-only \
		"nodemesh/state/services/v1/$1/default/web"
}
has_record() { [ -n "$(record "$1")" ]; }
no_record() { [ -z "$(record "$1")" ]; }

# weight_is NODE POD W: NODE programs POD's backend with weight W.
weight_is() {
	be_json "$1" | jq -e --arg a "${IP[$2]}" --argjson w "$3" \
		'[.[] | select(.addr == $a and .weight == $w)] | length == 1' >/dev/null
}

# names POD COUNT: the server names COUNT connections from POD got.
names() {
	probe "$1" connect "$VIP:$PORT" --count "$2" --timeout-ms 3000
}

# only POD COUNT NAME...: every one of COUNT connections lands on a NAME.
only() {
	local pod=$1 count=$2 out n
	shift 2
	out=$(names "$pod" "$count") || { echo "$out"; return 1; }
	echo "$pod: $(sort <<<"$out" | uniq -c | tr -s ' \n' ' ')"
	for n in "$@"; do
		out=$(grep -vx "$n" <<<"$out")
	done
	[ -z "$out" ]
}

# both POD COUNT: COUNT connections land in both clusters.
both() {
	local out a b
	out=$(names "$1" "$2") || { echo "$out"; return 1; }
	a=$(grep -c '^a/' <<<"$out")
	b=$(grep -c '^b/' <<<"$out")
	echo "$1: cluster a $a, cluster b $b"
	[ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ $((a + b)) -eq "$2" ]
}

# serve POD NAME: nm_probe answering NAME on TPORT in POD.
serve() {
	nm_bg "$(pod_ns "$1")" "$PROBE" serve --port "$TPORT" --name "$2" \
		--pidfile "$WORK/$1.pid"
	nm_wait_file "$WORK/$1.pid" 5
}

# ------------------------------------------------------------ topology

t_up() {
	local spec pod node labels
	tb up -c 2 -m 2 || return 1
	for spec in "client-a a1 app=client" "web-a2 a1 app=web" \
		"web-a1 a2 app=web" "web-b1 b1 app=web" "client-b b2 app=client"; do
		read -r pod node labels <<<"$spec"
		tb pod add "${node:0:1}" "$node" "$pod" "$labels" || return 1
		IP[$pod]=$(tb pod ip "$pod") || return 1
	done
	serve web-a1 a/web-a1 && serve web-a2 a/web-a2 && serve web-b1 b/web-b1
}
nm_test "testbed 2 x 2 up, 5 pods, servers in web-a1, web-a2, web-b1" t_up
[ "$NM_TAP_FAILED" -eq 0 ] || nm_bail "testbed did not come up"

# ------------------------------------------------ manifests -> records

t_apply() {
	local bad=$WORK/bad.yaml c
	# A refused manifest stores nothing.
	manifest "$bad" "affinity: nearest"
	if tb ctl a1 -- service apply -f "$bad" --config "$NMTB_DIR/a1/agent.yaml"; then
		echo "a bad manifest was applied"
		return 1
	fi
	[ -z "$(tb etcdctl a -- get --prefix nodemesh/services/ --keys-only)" ] || return 1
	apply a && apply b || return 1
	for c in a b; do
		nm_wait_for 10 has_record "$c" || return 1
		echo "cluster $c exports: $(record "$c")"
	done
	tb ctl a1 -- service manifests --config "$NMTB_DIR/a1/agent.yaml"
}
nm_test "service apply in a and b (a refused manifest stores nothing); each cluster exports its record" \
	t_apply

t_merged() {
	expect active "${NODES[*]}" web-a1 web-a2 web-b1 || return 1
	tb ctl b2 -- --cluster-id 2 service list
}
nm_test "every node's service list has the backends of both clusters" t_merged

t_spread() {
	both client-a 40 && both client-b 40
}
nm_test "40 connections from a pod of each cluster land in both clusters" t_spread

# --------------------------------------------------- terminating backend

HOLD=
t_drain() {
	local ready=$WORK/hold.ready try name st
	# A held connection that landed on web-a2 (the source port decides).
	for try in $(seq 30); do
		rm -f "$ready"
		nm_bg "$(pod_ns client-b)" "$PROBE" hold "$VIP:$PORT" \
			--duration-ms 15000 --interval-ms 200 --timeout-ms 20000 \
			--ready-file "$ready" >"$WORK/hold.out" 2>&1
		HOLD=$NM_LAST_PID
		nm_wait_file "$ready" 5 || { cat "$WORK/hold.out"; return 1; }
		name=$(cat "$ready")
		[ "$name" = a/web-a2 ] && break
		kill "$HOLD" 2>/dev/null
		wait "$HOLD" 2>/dev/null
		nm_pid_forget "$HOLD"
		HOLD=
	done
	[ -n "$HOLD" ] || { echo "no held connection landed on web-a2"; return 1; }
	echo "held connection on $name after $try tries; draining ${IP[web-a2]}"
	tb ctl a1 -- endpoint drain "${IP[web-a2]}" --socket "$NMTB_DIR/a1/agent.sock" ||
		return 1
	expect terminating "${NODES[*]}" web-a2 || return 1
	expect active "${NODES[*]}" web-a1 web-b1 || return 1
	st=$(tb etcdctl a -- get --print-value-only \
		nodemesh/state/endpoints/v1/a/default/web-a2 | jq -r .state)
	echo "endpoint record of web-a2: state $st"
	[ "$st" = terminating ]
}
nm_test "endpoint drain web-a2: published terminating, every node has it terminating" \
	t_drain

t_no_new() {
	only client-a 40 a/web-a1 b/web-b1 && only client-b 40 a/web-a1 b/web-b1
}
nm_test "no new connection lands on the terminating backend" t_no_new

t_hold_done() {
	local rc
	[ -n "$HOLD" ] || return 1
	wait "$HOLD"
	rc=$?
	nm_pid_forget "$HOLD"
	cat "$WORK/hold.out"
	[ "$rc" -eq 0 ] && grep -q '^ok a/web-a2 ' "$WORK/hold.out"
}
nm_test "the connection open on it completes (15 s of echoes)" t_hold_done

# ------------------------------------------------------------ shared

t_not_shared() {
	apply b "shared: false" || return 1
	expect active "${NODES_A[*]}" web-a1 || return 1
	expect active "${NODES_B[*]}" web-a1 web-b1 || return 1
	only client-a 30 a/web-a1 && both client-b 40
}
nm_test "shared=false in b: a's nodes use a's backends only; b's pods still reach a's" \
	t_not_shared

# ---------------------------------------------------------- affinity

t_affinity_local() {
	apply b || return 1
	apply a "affinity: local" || return 1
	expect active "${NODES_A[*]}" web-a1 || return 1
	expect standby "${NODES_A[*]}" web-b1 || return 1
	only client-a 30 a/web-a1
}
nm_test "affinity local on a: a's pods use only a's ready backend, b's stand by" \
	t_affinity_local

t_affinity_fallback() {
	tb ctl a2 -- endpoint drain "${IP[web-a1]}" --socket "$NMTB_DIR/a2/agent.sock" ||
		return 1
	expect active "${NODES_A[*]}" web-b1 || return 1
	only client-a 30 b/web-b1
}
nm_test "affinity local: a's last ready backend drains, b's take over" \
	t_affinity_fallback

t_affinity_back() {
	tb pod add a a2 web-a3 app=web || return 1
	IP[web-a3]=$(tb pod ip web-a3) || return 1
	serve web-a3 a/web-a3 || return 1
	expect active "${NODES_A[*]}" web-a3 || return 1
	expect standby "${NODES_A[*]}" web-b1 || return 1
	only client-a 30 a/web-a3
}
nm_test "affinity local: a ready backend in a again (web-a3), back to local" \
	t_affinity_back

# ----------------------------------------------------------- weights

t_weights() {
	local out a b w
	apply a "weight: 1" || return 1
	apply b "weight: 3" || return 1
	# One ready backend a cluster: the clusters' weights are the split.
	expect active "${NODES_A[*]}" web-a3 web-b1 || return 1
	nm_wait_for 10 weight_is a1 web-b1 3 || { be_json a1; return 1; }
	out=$(names client-a 2000) || { tail -3 <<<"$out"; return 1; }
	a=$(grep -c '^a/' <<<"$out")
	b=$(grep -c '^b/' <<<"$out")
	# 1:3 is a 75% share for b; within 10% of it: 67.5%..82.5%.
	w=$((b * 1000 / (a + b)))
	echo "2000 connections: cluster a $a, cluster b $b (b's share $((w / 10)).$((w % 10))%)"
	[ $((a + b)) -eq 2000 ] && [ "$w" -ge 675 ] && [ "$w" -le 825 ]
}
nm_test "weights 1:3 (a:b): 2,000 new connections split within 10% of 1:3" \
	t_weights

# ---------------------------------------------------- cut off, failover

CUT_T0=0
t_failover() {
	local t1 name elapsed n
	apply a "affinity: remote" || return 1
	apply b || return 1
	expect active "${NODES_A[*]}" web-b1 || return 1
	only client-a 10 b/web-b1 || return 1
	CUT_T0=$(now_ms)
	date '+%T.%N cutting cluster b off'
	for n in "${NODES_B[@]}"; do
		ip -n "$PREFIX-$n" link set eth0 down || return 1
	done
	tb etcd stop b || return 1
	# New connections from a: the first to succeed must come from a.
	while :; do
		name=$(probe client-a connect "$VIP:$PORT" --timeout-ms 250 2>/dev/null)
		t1=$(now_ms)
		[ "$name" = a/web-a3 ] && break
		[ $((t1 - CUT_T0)) -gt 30000 ] && { echo "no failover in 30 s"; return 1; }
	done
	elapsed=$((t1 - CUT_T0))
	echo "first new connection after the cut: $name after $elapsed ms (bound $BOUND_MS ms)"
	tb ctl a1 -- status | sed -n '/^CLUSTER/,$p'
	[ "$elapsed" -le $((BOUND_MS + 1000)) ]
}
nm_test "cluster b cut off (etcd stopped, uplinks down): a's pods connect again within the bound + 1 s" \
	t_failover

t_readmit() {
	local n
	for n in "${NODES_B[@]}"; do
		ip -n "$PREFIX-$n" link set eth0 up || return 1
	done
	tb etcd start b || return 1
	expect active "${NODES_A[*]}" web-b1 || return 1
	only client-a 10 b/web-b1
}
nm_test "cluster b back: re-admitted, a's pods prefer it again" t_readmit

# ------------------------------------------------------- manifest gone

t_deleted() {
	tb ctl a1 -- service delete default/web --config "$NMTB_DIR/a1/agent.yaml" ||
		return 1
	nm_wait_for 10 no_record a || return 1
	# b's nodes lose a's backends; a's nodes, with no record of their own,
	# take b's global record.
	expect active "${NODES_B[*]}" web-b1 || return 1
	expect active "${NODES_A[*]}" web-b1 || return 1
	[ -z "$(ips standby b1)$(ips terminating b1)" ] || { be_json b1; return 1; }
}
nm_test "service delete in a: a's record goes, b's nodes drop a's backends" t_deleted

t_down() {
	"$TB" down || return 1
	[ ! -e "$NMTB_DIR" ] && [ ! -e "/sys/fs/bpf/$PREFIX" ] &&
		! ip netns list | grep -q "^$PREFIX-"
}
nm_test "testbed down removes namespaces, pins and its directory" t_down

nm_tap_status
