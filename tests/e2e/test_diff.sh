#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# 'nodemeshctl diff' on scripts/testbed.sh: two clusters (a, b) of one node
# each, pods on both and a global MeshService in both clusters. The maps of
# a1 equal what both etcds ask for; entries corrupted behind the agent's
# back (a bogus /32, a deleted node entry, a Maglev slot, a service
# rewritten by hand) are reported exactly, one line each, and exit 1; an
# agent restart (which sweeps), an etcd restart of cluster b and a
# compaction of b's etcd that a1's watch missed (it re-lists) each leave
# the maps equal again. An etcd or pin root that cannot be read is exit 2
# with the reason.
#
# Safety: everything lives in the testbed's namespaces (the firewall rule
# cutting a1 off from b's etcd too); the testbed is taken down on every
# way out.
#
# usage (as root): tests/e2e/test_diff.sh BUILD_DIR
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

BUILD=$(cd "$BUILD" && pwd) || nm_skip_all "no build directory $1"
TB=$TOP/scripts/testbed.sh
VIP=10.96.0.10
B_ETCD=172.30.2.250

[ -x "$BUILD/nodemesh-agent" ] || nm_skip_all "$BUILD/nodemesh-agent not built (make all)"
[ -x "$BUILD/nodemesh-cni" ] || nm_skip_all "$BUILD/nodemesh-cni not built (make all)"
for cmd in etcd etcdctl jq curl bpftool iptables; do
	command -v "$cmd" >/dev/null || nm_skip_all "missing $cmd (scripts/deps.sh)"
done
[ -x /usr/lib/cni/ptp ] || nm_skip_all "CNI ptp plugin missing (scripts/deps.sh)"

nm_e2e_start "ndf$$" 13
nm_tmpdir WORK || nm_bail "no scratch dir"
export NM_BUILD=$BUILD NMTB_PREFIX=$PREFIX NMTB_DIR=$WORK/tb

on_exit() {
	"$TB" down >/dev/null 2>&1 || nm_diag "testbed down failed"
	nm_cleanup
}
trap on_exit EXIT

tb() { timeout 120 "$TB" "$@"; }
ip_of() { tb pod ip "$1"; }

# diff_a1 [ARGS...]: a1's diff against its own config, exit status kept.
diff_a1() {
	tb ctl a1 -- "$@" diff --config "$NMTB_DIR/a1/agent.yaml"
}

# equal: a1's maps equal the desired state (prints nothing, exit 0).
equal() {
	local out rc
	out=$(diff_a1 2>/dev/null)
	rc=$?
	[ "$rc" -eq 0 ] && [ -z "$out" ]
}

# wait_equal S: equal within S seconds; the differences left otherwise.
wait_equal() {
	if ! nm_wait_for "$1" equal; then
		diff_a1
		return 1
	fi
	echo "a1: diff empty, exit 0"
}

# cl NODE CLUSTER: that cluster's object of NODE's status.
cl() {
	tb ctl "$1" -- -o json status | jq -ce --arg c "$2" '.clusters[] | select(.name == $c)'
}

# ghost NAME IP: an endpoint record of cluster b on a node with no agent,
# so no publisher owns (or deletes) it.
ghost() {
	jq -cn --arg name "$1" --arg ip "$2" '{schema: 1, namespace: "default",
		name: $name, ip: $ip, node: "b9",
		labels: {app: "ghost", "nodemesh.io/cluster": "b",
			 "nodemesh.io/namespace": "default"},
		identity: "33554700"}'
}

has_ipcache() { # has_ipcache NODE IP
	tb ctl "$1" -- map dump ipcache | grep -q "^$2/32 "
}

# --------------------------------------------------------------- tests

nodes_known() {
	local n
	for n in a1 b1; do
		[ "$(tb ctl "$n" -- map dump nodes | grep -c '^node ')" -eq 2 ] || return 1
	done
}

t_up() {
	tb up -c 2 -m 1 || return 1
	nm_wait_for 20 nodes_known || { tb ctl a1 -- map dump nodes; return 1; }
}
nm_test "testbed up: 2 clusters x 1 node, both nodes known on both" t_up
[ "$NM_TAP_FAILED" -eq 0 ] || nm_bail "testbed did not come up"

cat >"$WORK/web.yaml" <<YAML
apiVersion: nodemesh.io/v1alpha1
kind: MeshService
metadata:
  name: web
  namespace: default
spec:
  vip: $VIP
  ports:
    - {port: 80, targetPort: 8080, protocol: TCP}
  selector: {app: web}
  global: true
YAML

svc_programmed() { # svc_programmed NODE: both clusters' backends active
	[ "$(tb ctl "$1" -- -o json service list |
		jq --arg fe "$VIP:80/tcp" \
			'[.[] | select(.frontend == $fe) | .backend_count] | add // 0')" \
		-eq 2 ]
}

t_workload() {
	tb pod add a a1 web-a app=web || return 1
	tb pod add b b1 web-b app=web || return 1
	tb pod add b b1 other-b app=other || return 1
	tb ctl a1 -- service apply -f "$WORK/web.yaml" \
		--config "$NMTB_DIR/a1/agent.yaml" || return 1
	tb ctl b1 -- service apply -f "$WORK/web.yaml" \
		--config "$NMTB_DIR/b1/agent.yaml" || return 1
	nm_wait_for 20 svc_programmed a1 || { tb ctl a1 -- service list; return 1; }
	nm_wait_for 10 has_ipcache a1 "$(ip_of other-b)" || return 1
	tb ctl a1 -- service list
}
nm_test "3 pods, MeshService web in both clusters: programmed on a1" t_workload

t_equal() {
	local js
	wait_equal 15 || return 1
	js=$(diff_a1 -o json) || { echo "$js"; return 1; }
	echo "$js"
	jq -e '.equal and (.differences | length) == 0 and .rejected == 0 and
		([.clusters[].name] | sort) == ["a", "b"] and
		(.clusters[] | select(.name == "b") | .reachable_from) == "agent"' \
		<<<"$js" >/dev/null
}
nm_test "in step: diff prints nothing and exits 0; -o json says equal" t_equal

BOGUS=10.2.1.99
BOGUS_ID=33554700 # (2, 268)
t_corrupt() {
	local out rc want
	tb ctl a1 -- ipcache upsert "$BOGUS" --identity "$BOGUS_ID" \
		--tunnel 172.30.2.9 || return 1
	bpftool map delete pinned "/sys/fs/bpf/$PREFIX/a1/nm_nodes_v1" \
		key 172 30 2 1 || return 1
	out=$(diff_a1)
	rc=$?
	want="nodes: missing 172.30.2.1 (cluster 2)
ipcache: stale $BOGUS/32 (identity $BOGUS_ID tunnel 172.30.2.9)"
	echo "exit $rc:"
	echo "$out"
	[ "$rc" -eq 1 ] && [ "$out" = "$want" ]
}
nm_test "bogus /32 added, b1's node entry deleted: exactly those two lines, exit 1" \
	t_corrupt

t_corrupt_json() {
	local js
	js=$(diff_a1 -o json)
	[ $? -eq 1 ] || return 1
	jq -c '.differences[]' <<<"$js"
	jq -e --arg k "$BOGUS/32" '(.equal | not) and (.differences | length) == 2 and
		.differences[0].map == "nodes" and .differences[0].kind == "missing" and
		.differences[0].key == "172.30.2.1" and .differences[0].map_value == null and
		.differences[0].desired.cluster_id == 2 and
		.differences[1].map == "ipcache" and .differences[1].kind == "stale" and
		.differences[1].key == $k and .differences[1].desired == null and
		.differences[1].map_value.tunnel_endpoint == "172.30.2.9"' \
		<<<"$js" >/dev/null
}
nm_test "-o json: the same two differences, with map, kind, key and both values" \
	t_corrupt_json

# le32 N: the four bytes of N, little end first (bpftool key/value).
le32() {
	echo "$(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255))"
}

t_corrupt_maglev() {
	local m t out rc
	m=$(tb ctl a1 -- -o json map dump config | jq .maglev_m)
	t=$(tb ctl a1 -- -o json service list |
		jq --arg fe "$VIP:80/tcp" '.[] | select(.frontend == $fe) | .table_id')
	[ -n "$m" ] && [ -n "$t" ] || return 1
	# One slot of the live table to a backend id no service has.
	# shellcheck disable=SC2046 # four byte words
	bpftool map update pinned "/sys/fs/bpf/$PREFIX/a1/nm_maglev_v1" \
		key $(le32 $((t * m))) value $(le32 999999) || return 1
	out=$(diff_a1)
	rc=$?
	echo "exit $rc:"
	echo "$out"
	[ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 3 ] &&
		[ "$(tail -n 1 <<<"$out")" = "services: $VIP:80/tcp: differs maglev table: 1 of $m slots" ]
}
nm_test "one Maglev slot of web's live table overwritten: reported as 1 of M slots" \
	t_corrupt_maglev

t_corrupt_service() {
	local out
	# Programmed by hand: cluster id 0, b's backend gone.
	tb ctl a1 -- service upsert "$VIP:80/tcp" "$(ip_of web-a):8080" \
		>/dev/null || return 1
	out=$(diff_a1)
	[ $? -eq 1 ] || return 1
	echo "$out"
	grep -qx "services: $VIP:80/tcp: differs backend $(ip_of web-a):8080: map (cluster 0, active), etcd (cluster 1, active)" <<<"$out" &&
		grep -qx "services: $VIP:80/tcp: missing backend $(ip_of web-b):8080 (cluster 2, active)" <<<"$out" &&
		[ "$(wc -l <<<"$out")" -eq 4 ]
}
nm_test "service rewritten by hand: its backends are reported against etcd's" \
	t_corrupt_service

t_restart() {
	tb agent restart a1 || return 1
	wait_equal 20 || return 1
	! has_ipcache a1 "$BOGUS"
}
nm_test "agent restart (it re-lists and sweeps): diff empty again" t_restart

t_unreadable() {
	local out rc
	out=$(tb exec a1 -- "$BUILD/nodemeshctl" --pin-root "$WORK/no-pins" \
		diff --config "$NMTB_DIR/a1/agent.yaml" --socket "$NMTB_DIR/a1/agent.sock" 2>&1)
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq 2 ] && grep -q "$WORK/no-pins" <<<"$out"
}
nm_test "maps that cannot be read: exit 2 with the reason" t_unreadable

t_etcd_restart() {
	local out rc
	tb etcd stop b || return 1
	out=$(diff_a1 2>&1)
	rc=$?
	echo "b's etcd down: exit $rc: $out"
	if [ "$rc" -ne 2 ] || ! grep -q "failed to list cluster b" <<<"$out"; then
		tb etcd start b
		return 1
	fi
	tb etcd start b || return 1
	wait_equal 20
}
nm_test "etcd of b stopped: diff exits 2 naming b; started again: diff empty" \
	t_etcd_restart

b_connected() { # b_connected true|false: a1's watch on b is up or not
	cl a1 b | jq -e ".connected == $1" >/dev/null
}

CUT="OUTPUT -d $B_ETCD -p tcp --dport 2379 -j REJECT --reject-with tcp-reset"
RELISTS0=0
t_ghost() {
	tb etcdctl b -- put nodemesh/state/endpoints/v1/b/default/ghost \
		"$(ghost ghost 10.2.1.200)" >/dev/null || return 1
	nm_wait_for 10 has_ipcache a1 10.2.1.200 || return 1
	wait_equal 10 || return 1
	RELISTS0=$(cl a1 b | jq .relists)
}
nm_test "an endpoint record of b with no node (ghost): programmed, diff empty" \
	t_ghost

t_compaction() {
	local rev relists
	# Cut a1 off from b's etcd, so that it misses what follows.
	# shellcheck disable=SC2086 # CUT is a rule, word-split on purpose
	tb exec a1 -- iptables -A $CUT || return 1
	if ! nm_wait_for 10 b_connected false; then
		# shellcheck disable=SC2086
		tb exec a1 -- iptables -D $CUT
		return 1
	fi
	tb etcdctl b -- del nodemesh/state/endpoints/v1/b/default/ghost &&
		tb etcdctl b -- put nodemesh/state/endpoints/v1/b/default/ghost2 \
			"$(ghost ghost2 10.2.1.201)" &&
		tb etcdctl b -- del nodemesh/state/endpoints/v1/b/default/ghost2
	rev=$(tb etcdctl b -- get nodemesh/ --prefix --limit 1 -w json | jq .header.revision)
	echo "compacting b at revision $rev"
	tb etcdctl b -- compact "$rev"
	# shellcheck disable=SC2086
	tb exec a1 -- iptables -D $CUT || return 1
	wait_equal 20 || return 1
	relists=$(cl a1 b | jq .relists)
	echo "a1's re-lists of b: $RELISTS0 -> $relists"
	[ "$relists" -gt "$RELISTS0" ] && ! has_ipcache a1 10.2.1.200
}
nm_test "ghost deleted and b compacted while a1 was cut off: re-listed, diff empty" \
	t_compaction

t_down() {
	"$TB" down || return 1
	[ ! -e "$NMTB_DIR" ] && [ ! -e "/sys/fs/bpf/$PREFIX" ]
}
nm_test "testbed down removes namespaces, pins and its directory" t_down

nm_tap_status
