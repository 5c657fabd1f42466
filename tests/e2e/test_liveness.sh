#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Heartbeat-bound liveness on scripts/testbed.sh: two clusters (a, b) of
# one node each, the default bound of 3 s. Cluster b's etcd stopped: its
# heartbeat goes silent, and within the bound + 1 s a1's agent shows b
# unreachable in 'nodemeshctl status' and in GET /v1/metrics, while b1
# keeps its own cluster reachable (the local cluster never is cut off by
# its own etcd). b's etcd started again on its data: a1 re-lists b and
# re-admits it within a few seconds, two transitions counted. A path to
# b's etcd that drops packets silently: unreachable, then re-admitted
# within seconds of the path's return. A remote
# cluster whose etcd never answers is unreachable once the bound has
# passed since its mirror started.
#
# Safety: everything lives in the testbed's namespaces; the testbed is
# taken down on every way out.
#
# usage (as root): tests/e2e/test_liveness.sh BUILD_DIR
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

BUILD=$(cd "$BUILD" && pwd) || nm_skip_all "no build directory $1"
TB=$TOP/scripts/testbed.sh
BOUND_MS=3000 # the agent's default heartbeat_bound_ms

[ -x "$BUILD/nodemesh-agent" ] || nm_skip_all "$BUILD/nodemesh-agent not built (make all)"
for cmd in etcd etcdctl jq curl; do
	command -v "$cmd" >/dev/null || nm_skip_all "missing $cmd (scripts/deps.sh)"
done

nm_e2e_start "nml$$" 9
nm_tmpdir WORK || nm_bail "no scratch dir"
export NM_BUILD=$BUILD NMTB_PREFIX=$PREFIX NMTB_DIR=$WORK/tb

on_exit() {
	"$TB" down >/dev/null 2>&1 || nm_diag "testbed down failed"
	nm_cleanup
}
trap on_exit EXIT

tb() { timeout 60 "$TB" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# cl NODE CLUSTER: that cluster's object of NODE's status.
cl() {
	tb ctl "$1" -- -o json status | jq -ce --arg c "$2" '.clusters[] | select(.name == $c)'
}

# clq NODE CLUSTER JQ_FILTER: true when the filter holds for it. (jq -e
# is true on empty input: a failed status or an absent cluster is not.)
clq() {
	local o
	o=$(cl "$1" "$2") && [ -n "$o" ] && jq -e "$3" <<<"$o" >/dev/null
}

metrics() { # metrics NODE
	curl -sf --max-time 5 --unix-socket "$NMTB_DIR/$1/agent.sock" \
		http://localhost/v1/metrics
}

# metric NODE NAME CLUSTER: one sample's value.
metric() {
	metrics "$1" | awk -v m="$2{cluster=\"$3\"}" '$1 == m { print $2 }'
}

# A fresh heartbeat, as the status test of test_agent.sh wants it.
b_live() {
	clq a1 b '.synced and .reachable and .last_heartbeat_s != null and .last_heartbeat_s < 2'
}

t_up() {
	tb up -c 2 -m 1 || return 1
	if ! nm_wait_for 20 b_live; then
		tb ctl a1 -- status
		return 1
	fi
	tb ctl a1 -- status
	tb ctl a1 -- -o json status | jq -e ".heartbeat_bound_ms == $BOUND_MS" >/dev/null &&
		tb ctl a1 -- status | grep -q "bound 3.0 s" &&
		tb ctl a1 -- status | grep -q REACHABLE &&
		clq a1 b '.transitions == 0 and .last_transition_s == null and .unreachable_since_s == null'
}
nm_test "testbed up: a1 mirrors b, reachable, bound $BOUND_MS ms in status" t_up
[ "$NM_TAP_FAILED" -eq 0 ] || nm_bail "testbed did not come up"

t_metrics() {
	local hdr body
	hdr=$(curl -sf -o "$WORK/metrics" -D - --max-time 5 \
		--unix-socket "$NMTB_DIR/a1/agent.sock" http://localhost/v1/metrics) ||
		return 1
	body=$(cat "$WORK/metrics")
	grep -i '^content-type:' <<<"$hdr"
	grep -E '^nodemesh_(heartbeat_bound|cluster_)' <<<"$body"
	grep -qi '^content-type: text/plain; version=0.0.4' <<<"$hdr" &&
		grep -qx 'nodemesh_heartbeat_bound_seconds 3' <<<"$body" &&
		grep -qx 'nodemesh_cluster_reachable{cluster="b"} 1' <<<"$body" &&
		grep -qx 'nodemesh_cluster_reachable{cluster="a"} 1' <<<"$body" &&
		grep -qx 'nodemesh_cluster_transitions_total{cluster="b"} 0' <<<"$body" &&
		grep -q '^nodemesh_cluster_heartbeat_age_seconds{cluster="b"} [0-9.]*$' <<<"$body" &&
		grep -q '^nodemesh_mirror_records{cluster="b"} [1-9]' <<<"$body" &&
		grep -q '^# TYPE nodemesh_mirror_rejected_total counter$' <<<"$body"
}
nm_test "GET /v1/metrics: Prometheus text with the bound, reachability and mirror counters" \
	t_metrics

T_STOP=0
b_unreachable() {
	clq a1 b '.reachable == false'
}
t_cut() {
	local dt
	# From before the stop: a slow shutdown counts against the bound.
	T_STOP=$(now_ms)
	tb etcd stop b || return 1
	# Polled as fast as status answers: the bound is what is measured.
	while ! b_unreachable; do
		dt=$(($(now_ms) - T_STOP))
		if [ "$dt" -gt $((BOUND_MS + 3000)) ]; then
			tb ctl a1 -- status
			return 1
		fi
		sleep 0.05
	done
	dt=$(($(now_ms) - T_STOP))
	echo "b unreachable on a1 $dt ms after its etcd stopped (bound $BOUND_MS ms)"
	tb ctl a1 -- status
	grep 'cluster b unreachable' "$NMTB_DIR/a1/agent.log" | tail -1
	[ "$dt" -le $((BOUND_MS + 1000)) ] &&
		clq a1 b '.transitions == 1 and .unreachable_since_s != null and .last_transition_s != null'
}
nm_test "b's etcd stopped: a1 shows b unreachable within the bound + 1 s" t_cut

t_cut_metrics() {
	local r t
	r=$(metric a1 nodemesh_cluster_reachable b)
	t=$(metric a1 nodemesh_cluster_transitions_total b)
	echo "a1: nodemesh_cluster_reachable{cluster=\"b\"} $r, transitions $t"
	[ "$r" = 0 ] && [ "$t" = 1 ] &&
		[ "$(metric a1 nodemesh_cluster_reachable a)" = 1 ] &&
		tb ctl a1 -- status | grep -Eq '^b +.* no [0-9.]+s'
}
nm_test "metrics on a1: nodemesh_cluster_reachable{cluster=\"b\"} 0, one transition" \
	t_cut_metrics

t_local_stays() {
	# b1's own etcd is down too; its own cluster is never cut off.
	cl b1 b
	clq b1 b '.local and .reachable and .transitions == 0' &&
		[ "$(metric b1 nodemesh_cluster_reachable b)" = 1 ]
}
nm_test "b1 keeps its own cluster b reachable while b's etcd is down" \
	t_local_stays

b_back() {
	clq a1 b '.reachable == true'
}
t_back() {
	local t0 dt
	tb etcd start b || return 1
	t0=$(now_ms)
	if ! nm_wait_for 15 b_back; then
		tb ctl a1 -- status
		tail -n 20 "$NMTB_DIR/a1/agent.log"
		return 1
	fi
	dt=$(($(now_ms) - t0))
	echo "b reachable again on a1 $dt ms after its etcd answered" \
		"($((($(now_ms) - T_STOP) / 1000)) s after the stop)"
	tb ctl a1 -- status
	grep -E 'cluster b: heartbeats resumed|cluster b reachable again' \
		"$NMTB_DIR/a1/agent.log" | tail -2
	[ "$dt" -le 6000 ] &&
		clq a1 b '.transitions == 2 and .unreachable_since_s == null and .relists >= 1 and .connected'
}
nm_test "b's etcd back on its data: b re-listed and reachable again, 2 transitions" \
	t_back

t_back_metrics() {
	metrics a1 | grep -E '^nodemesh_(cluster_(reachable|transitions_total)|mirror_relists_total)\{cluster="b"\}'
	[ "$(metric a1 nodemesh_cluster_reachable b)" = 1 ] &&
		[ "$(metric a1 nodemesh_cluster_transitions_total b)" = 2 ] &&
		grep -q 'cluster b: heartbeats resumed' "$NMTB_DIR/a1/agent.log"
}
nm_test "metrics on a1: b reachable again, transitions_total 2; the re-list logged" \
	t_back_metrics

# A path that fails without a reset: a1's packets to b's etcd dropped by a
# rule inside a1's namespace. The heartbeats stop, b goes unreachable;
# once the path is back, b must be re-admitted in seconds (the stream
# resumes, or is replaced), not after TCP keepalive gives it up.
CUT="OUTPUT -d 172.30.2.250 -p tcp --dport 2379 -j DROP"
b_down() {
	clq a1 b '.reachable == false'
}
t_silent() {
	local t0 dt
	# shellcheck disable=SC2086 # CUT is a rule, word-split on purpose
	tb exec a1 -- iptables -A $CUT || return 1
	t0=$(now_ms)
	if ! nm_wait_for 10 b_down; then
		# shellcheck disable=SC2086
		tb exec a1 -- iptables -D $CUT
		tb ctl a1 -- status
		return 1
	fi
	echo "b unreachable on a1 $(($(now_ms) - t0)) ms after the drop rule"
	sleep 2
	# shellcheck disable=SC2086
	tb exec a1 -- iptables -D $CUT || return 1
	t0=$(now_ms)
	if ! nm_wait_for 20 b_back; then
		tb ctl a1 -- status
		tail -n 20 "$NMTB_DIR/a1/agent.log"
		return 1
	fi
	dt=$(($(now_ms) - t0))
	echo "b reachable again $dt ms after the path returned"
	[ "$dt" -le 5000 ]
}
nm_test "a silently dead stream (packets dropped): b unreachable, re-admitted within 5 s of the path's return" \
	t_silent

c_unreachable() {
	clq a1 c '.reachable == false and .transitions == 1 and .last_heartbeat_s == null'
}
t_never_heard() {
	local t0 dt
	# Nothing listens on a1's loopback port 1: the mirror retries forever.
	printf 'name: c\nid: 3\nendpoints: [http://127.0.0.1:1]\n' \
		>"$NMTB_DIR/a1/remotes/c.yaml" || return 1
	t0=$(now_ms)
	nm_wait_for 15 clq a1 c '.' || { tb ctl a1 -- status; return 1; }
	if ! nm_wait_for 10 c_unreachable; then
		tb ctl a1 -- status
		return 1
	fi
	dt=$(($(now_ms) - t0))
	echo "c unreachable $dt ms after its file was written"
	grep 'cluster c unreachable' "$NMTB_DIR/a1/agent.log" | tail -1
	metrics a1 | grep -x 'nodemesh_cluster_heartbeat_age_seconds{cluster="c"} +Inf' &&
		[ "$(metric a1 nodemesh_cluster_reachable c)" = 0 ] &&
		[ "$dt" -ge "$BOUND_MS" ] || return 1
	rm -f "$NMTB_DIR/a1/remotes/c.yaml"
	nm_wait_for 10 sh -c "! '$TB' ctl a1 -- -o json status | jq -e '.clusters[] | select(.name == \"c\")'"
}
nm_test "a cluster whose etcd never answers is unreachable once the bound passed" \
	t_never_heard

nm_tap_status
