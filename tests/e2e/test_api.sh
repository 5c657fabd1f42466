#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The agent's endpoint API, as the CNI plugin drives it. One node namespace
# runs an etcd (cluster east) and a real nodemesh-agent (tunnel: disabled);
# two pod namespaces hang off it by veth pairs. curl talks to the agent's
# unix socket: POST adds an endpoint (maps, tc filters on the veth, the
# kvstore's identity, the record in etcd), a re-POST answers the same, GET
# finds it, also after an agent restart, a taken address is 409, bad bodies
# are 400 with a reason (413 when too big), POST .../drain marks a pod
# terminating (published so, kept by a retried ADD), DELETE removes
# everything and a second DELETE says deleted:false.
#
# Safety: etcd listens on 127.0.0.1 inside the node namespace; the node
# address is data only, never configured; every address lives in the
# namespaces made here. Processes are stopped by pid, namespaces, pin root
# and scratch dirs removed on every way out (trap in lib.sh).
#
# usage (as root): tests/e2e/test_api.sh BUILD_DIR
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

AGENT=$BUILD/nodemesh-agent
NODE_IP=192.168.78.1 # data only: the agent's --node-ip
IP1=10.244.9.5
IP2=10.244.9.6
CID1=4f1a9c0e7b2d
CID2=Pod_B.77 # no DNS name: the pod name is derived from it

[ -x "$AGENT" ] || nm_skip_all "$AGENT not built (make all)"
for cmd in etcd etcdctl curl jq; do
	command -v "$cmd" >/dev/null || nm_skip_all "$cmd missing (scripts/deps.sh)"
done
nm_e2e_start "nm-api-$$" 15

NODE="$PREFIX-node"
POD1="$PREFIX-p1"
POD2="$PREFIX-p2"
NM_PIN_ROOTS+=("$PIN_ROOT")
nm_tmpdir WORK || nm_bail "no scratch dir"
STATE=$WORK/state
SOCK=$STATE/agent.sock
LOG=$WORK/agent.log

nm_node_add "$NODE" || nm_bail "failed to create node namespace"
nm_pod_add "$NODE" "$POD1" nm-p1 "$IP1" || nm_bail "failed to create pod 1"
nm_pod_add "$NODE" "$POD2" nm-p2 "$IP2" || nm_bail "failed to create pod 2"
MAC1=$(nm_pod_mac "$POD1")

# etcd in the node namespace, where the agent runs: lib.sh's helper starts
# and probes it through these wrappers (etcd is only ever started in the
# background; exec keeps its pid the one the helper records).
etcd() { exec nsenter --net="/run/netns/$NODE" -- etcd "$@"; }
etcdctl() { nsenter --net="/run/netns/$NODE" -- etcdctl "$@"; }
ss() { nsenter --net="/run/netns/$NODE" -- ss "$@"; }
nm_etcd_start EAST || nm_bail "failed to start etcd"
nm_diag "east etcd $EAST (in $NODE)"

cat >"$WORK/agent.yaml" <<YAML
cluster: east
cluster_id: 1
etcd:
  endpoints: [$EAST]
pin_root: $PIN_ROOT
state_dir: $STATE
tunnel: disabled
YAML

ctl() { nm_exec "$NODE" timeout 30 "$CTL" --pin-root "$PIN_ROOT" --state-dir "$STATE" "$@"; }

AGENT_PID=
start_agent() {
	nm_bg "$NODE" "$AGENT" --config "$WORK/agent.yaml" --node node-1 \
		--node-ip "$NODE_IP" -v >>"$LOG" 2>&1 </dev/null
	AGENT_PID=$NM_LAST_PID
	nm_wait_for 15 api GET /v1/status
}

stop_agent() {
	kill "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	nm_pid_forget "$AGENT_PID"
}

agent_log() {
	echo "--- agent.log (tail)"
	tail -20 "$LOG"
}

# api METHOD PATH [BODY]: the body of the answer to BODY_OUT, the status
# to CODE; succeeds when the status is 2xx.
CODE=
BODY_OUT=
api() {
	local args=(-sS --max-time 30 --unix-socket "$SOCK" -X "$1"
		-o "$WORK/answer" -w '%{http_code}')
	[ $# -ge 3 ] && args+=(-H 'Content-Type: application/json'
		--data-binary "$3")
	CODE=$(curl "${args[@]}" "http://localhost$2") || CODE=000
	BODY_OUT=$(cat "$WORK/answer" 2>/dev/null)
	[ "${CODE:0:1}" = 2 ]
}

# expect CODE METHOD PATH [BODY]: the answer had that status.
expect() {
	local want=$1
	shift
	api "$@"
	echo "$1 $2 -> $CODE $BODY_OUT"
	[ "$CODE" = "$want" ]
}

body1() {
	cat <<JSON
{"container_id":"$CID1","ifname":"eth0","netns":"/run/netns/$POD1",
 "namespace":"shop","name":"web-1","labels":{"app":"web","tier":"front"},
 "ip":"$IP1","mac":"$MAC1","host_ifname":"nm-p1"}
JSON
}

# The same address for another container, on another veth.
body_conflict() {
	cat <<JSON
{"container_id":"$CID2","ifname":"eth0","namespace":"shop",
 "ip":"$IP1","host_ifname":"nm-p2"}
JSON
}

body2() {
	cat <<JSON
{"container_id":"$CID2","ifname":"eth0","namespace":"shop",
 "labels":{"app":"db"},"ip":"$IP2","host_ifname":"nm-p2"}
JSON
}

# Field of the last answer.
jf() {
	jq -r "$1" <<<"$BODY_OUT"
}

map_has_endpoint() {
	ctl -o json endpoint list | jq -e --arg ip "$1" \
		'.[] | select(.ip == $ip)' >/dev/null
}

etcd_has() {
	nm_etcdctl "$EAST" get --print-value-only "$1" | grep -q .
}

filters_on() {
	tc -n "$NODE" filter show dev "$1" ingress | grep -q nm_from_pod &&
		tc -n "$NODE" filter show dev "$1" egress | grep -q nm_to_pod
}

# --------------------------------------------------------------- tests

t_start() {
	start_agent || { agent_log; return 1; }
	echo "GET /v1/status -> $CODE"
	[ "$(jf .cluster)" = east ] || jf .
}
nm_test "the agent starts in the node namespace and serves its socket" t_start

FIRST=
t_post() {
	expect 200 POST /v1/endpoints "$(body1)" || { agent_log; return 1; }
	FIRST=$BODY_OUT
	ID1=$(jf .identity)
	EID1=$(jf .endpoint_id)
	[ "$(jf .container_id)" = "$CID1" ] && [ "$(jf .ifname)" = eth0 ] &&
		[ "$(jf .ip)" = "$IP1" ] && [ "$(jf .host_ifname)" = nm-p1 ] &&
		[[ "$(jf .mtu)" =~ ^[0-9]+$ ]] && [[ "$EID1" =~ ^[0-9]+$ ]] &&
		[[ "$(jf '.identity | type')" = string ]] &&
		[[ "$ID1" =~ ^[0-9]+$ ]] || return 1
	echo "\$ nodemeshctl endpoint list"
	ctl endpoint list
	ctl endpoint list | grep -q "^$IP1 .*iface nm-p1 name shop/web-1 " ||
		return 1
	ctl -o json endpoint list | jq -e --arg ip "$IP1" --argjson id "$ID1" \
		--arg mac "$MAC1" --argjson eid "$EID1" \
		'.[] | select(.ip == $ip and .identity == $id and .mac == $mac and .endpoint_id == $eid)' ||
		return 1
	ctl map dump ipcache | grep "^$IP1/32 " | grep -q local
}
nm_test "POST adds the endpoint: answer, endpoint map, LOCAL ipcache entry" t_post

t_filters() {
	tc -n "$NODE" filter show dev nm-p1 ingress
	tc -n "$NODE" filter show dev nm-p1 egress
	filters_on nm-p1
}
nm_test "POST attaches nm_from_pod and nm_to_pod on the host veth" t_filters

t_etcd() {
	local key=nodemesh/state/endpoints/v1/east/shop/web-1 rec
	# The maps carry the kvstore's identity from the start.
	nm_etcdctl "$EAST" get --print-value-only \
		"nodemesh/state/identities/v1/east/$ID1" | tee "$WORK/id.json"
	jq -e '.labels.app == "web" and .labels["nodemesh.io/namespace"] == "shop"' \
		"$WORK/id.json" >/dev/null || return 1
	nm_wait_for 10 etcd_has "$key" || { agent_log; return 1; }
	rec=$(nm_etcdctl "$EAST" get --print-value-only "$key")
	echo "$key: $rec"
	jq -e --arg id "$ID1" --arg ip "$IP1" \
		'.identity == $id and .ip == $ip and .node == "node-1"' <<<"$rec" \
		>/dev/null || return 1
	# No disagreement for the publisher to report.
	api GET /v1/status && [ "$(jf .publisher.identity_mismatches)" = 0 ]
}
nm_test "the identity is the kvstore's and the endpoint record is in etcd" t_etcd

t_repost() {
	expect 200 POST /v1/endpoints "$(body1)" || return 1
	[ "$BODY_OUT" = "$FIRST" ] || { echo "first: $FIRST"; return 1; }
	[ "$(ctl -o json endpoint list | jq length)" = 1 ]
}
nm_test "a re-POST of the same container interface is idempotent" t_repost

t_get() {
	expect 200 GET "/v1/endpoints/$CID1/eth0" || return 1
	[ "$BODY_OUT" = "$FIRST" ] || return 1
	expect 200 GET /v1/endpoints || return 1
	[ "$(jf '.endpoints | length')" = 1 ] &&
		[ "$(jf '.endpoints[0].container_id')" = "$CID1" ] || return 1
	expect 404 GET "/v1/endpoints/$CID1/eth1" &&
		[ -n "$(jf .error)" ] || return 1
	expect 405 PUT /v1/endpoints
}
nm_test "GET answers one endpoint, the list, 404 for an unknown one" t_get

t_conflict() {
	expect 409 POST /v1/endpoints "$(body_conflict)" || return 1
	jf .error | grep -q "held by container $CID1" || return 1
	# Nothing of the refused request is left behind.
	! filters_on nm-p2 && [ "$(ctl -o json endpoint list | jq length)" = 1 ]
}
nm_test "an address held by another container is 409, nothing attached" \
	t_conflict

t_bad_bodies() {
	local big ok=0
	expect 400 POST /v1/endpoints '{"container_id":"x"' &&
		jf .error | grep -q "malformed JSON" || ok=1
	expect 400 POST /v1/endpoints \
		"$(body1 | sed 's/"app":"web"/"nodemesh.io\/namespace":"kube-system"/')" &&
		jf .error | grep -q "nodemesh.io/namespace is set by nodemesh" || ok=1
	expect 400 POST /v1/endpoints "$(body1 | sed 's/"ip":"[^"]*"/"ip":"10.244.9"/')" &&
		jf .error | grep -q "bad ip '10.244.9'" || ok=1
	expect 400 POST /v1/endpoints "$(body1 | sed 's/"host_ifname":"nm-p1"/"host_ifname":"nm-gone"/')" &&
		jf .error | grep -q "failed to find host interface nm-gone" || ok=1
	expect 400 POST /v1/endpoints "$(body1 | sed 's/"name":"web-1",//; s/"namespace":"shop"/"namespace":"Shop"/')" &&
		jf .error | grep -q "must be a DNS label" || ok=1
	big=$(head -c 70000 /dev/zero | tr '\0' ' ')
	expect 413 POST /v1/endpoints "{$big}" || ok=1
	expect 400 DELETE "/v1/endpoints/bad:id/eth0" &&
		jf .error | grep -q "bad container id" || ok=1
	# The endpoint is as it was.
	expect 200 GET "/v1/endpoints/$CID1/eth0" && [ "$BODY_OUT" = "$FIRST" ] || ok=1
	return "$ok"
}
nm_test "bad bodies are 400 with the reason, a huge one 413" t_bad_bodies

t_second() {
	expect 200 POST /v1/endpoints "$(body2)" || return 1
	[ "$(jf .endpoint_id)" != "$EID1" ] && filters_on nm-p2 || return 1
	# The name comes from the container id.
	nm_wait_for 10 etcd_has nodemesh/state/endpoints/v1/east/shop/pod-b-77
}
nm_test "a second pod without a name gets one from its container id" t_second

t_restart() {
	stop_agent
	start_agent || { agent_log; return 1; }
	expect 200 GET "/v1/endpoints/$CID1/eth0" || return 1
	[ "$(jf 'del(.mtu)')" = "$(jq 'del(.mtu)' <<<"$FIRST")" ] || return 1
	expect 200 GET /v1/endpoints && [ "$(jf '.endpoints | length')" = 2 ]
}
nm_test "the endpoints survive an agent restart (GET after restart)" t_restart

ep_state() { # ep_state KEY: the "state" of an endpoint record ("null": none)
	nm_etcdctl "$EAST" get --print-value-only "$1" | jq -r .state
}

t_drain() {
	local ok=0 key=nodemesh/state/endpoints/v1/east/shop/pod-b-77
	expect 405 GET "/v1/endpoints/$CID2/eth0/drain" || ok=1
	expect 400 POST "/v1/endpoints/$CID2/eth0/drain" '{}' || ok=1
	expect 404 POST "/v1/endpoints/$CID2/eth0/stop" || ok=1
	expect 404 POST /v1/endpoints/nope/eth0/drain &&
		jf .error | grep -q "no endpoint for container nope" || ok=1
	expect 200 POST "/v1/endpoints/$CID2/eth0/drain" &&
		[ "$(jf .state)" = terminating ] || ok=1
	# Again: still 200; the other pod stays active.
	expect 200 POST "/v1/endpoints/$CID2/eth0/drain" || ok=1
	expect 200 GET "/v1/endpoints/$CID1/eth0" && [ "$(jf .state)" = active ] || ok=1
	# A retried CNI ADD keeps the drain.
	expect 200 POST /v1/endpoints "$(body2)" && [ "$(jf .state)" = terminating ] || ok=1
	# The CLI finds the container by address.
	ctl endpoint drain "$IP2" --socket "$SOCK" || ok=1
	if ctl endpoint drain 10.244.9.99 --socket "$SOCK"; then ok=1; fi
	nm_wait_for 10 eval "[ \"\$(ep_state $key)\" = terminating ]" ||
		{ agent_log; ok=1; }
	echo "$key: state $(ep_state "$key"); web-1: state $(ep_state \
		nodemesh/state/endpoints/v1/east/shop/web-1)"
	[ "$(ep_state nodemesh/state/endpoints/v1/east/shop/web-1)" = null ] || ok=1
	return "$ok"
}
nm_test "POST .../drain: the pod is terminating, published so, a retried ADD keeps it" \
	t_drain

t_delete() {
	expect 200 DELETE "/v1/endpoints/$CID1/eth0" || return 1
	[ "$(jf .deleted)" = true ] || return 1
	! map_has_endpoint "$IP1" || { echo "endpoint left"; return 1; }
	! ctl map dump ipcache | grep -q "^$IP1/32 " || { echo "ipcache left"; return 1; }
	! filters_on nm-p1 || { echo "filters left"; return 1; }
	expect 404 GET "/v1/endpoints/$CID1/eth0" || return 1
	# The other pod is untouched.
	map_has_endpoint "$IP2" && filters_on nm-p2
}
nm_test "DELETE removes endpoint, ipcache entry and tc filters" t_delete

t_unpublished() {
	nm_wait_for 10 eval '! etcd_has nodemesh/state/endpoints/v1/east/shop/web-1' ||
		{ agent_log; return 1; }
	etcd_has nodemesh/state/endpoints/v1/east/shop/pod-b-77
}
nm_test "the deleted endpoint leaves etcd within seconds" t_unpublished

t_delete_again() {
	expect 200 DELETE "/v1/endpoints/$CID1/eth0" &&
		[ "$(jf .deleted)" = false ]
}
nm_test "a second DELETE answers deleted:false" t_delete_again

# The veth goes first (the pod is gone): DELETE still cleans up.
t_delete_gone_veth() {
	ip -n "$NODE" link del nm-p2 || return 1
	expect 200 DELETE "/v1/endpoints/$CID2/eth0" &&
		[ "$(jf .deleted)" = true ] || return 1
	! map_has_endpoint "$IP2" && expect 200 GET /v1/endpoints &&
		[ "$(jf '.endpoints | length')" = 0 ]
}
nm_test "DELETE after the veth is gone removes the endpoint" t_delete_gone_veth

nm_tap_status
