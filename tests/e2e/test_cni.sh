#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# nodemesh-cni chained after the standard ptp plugin, against a real agent.
# A node namespace holds an "uplink" with the node IP (MTU 1400, so
# the agent's pod MTU is below ptp's 1450 and ADD has to lower it) and
# runs nodemesh-agent; a pod namespace gets its eth0 from ptp (host-local
# IPAM, data in the scratch dir), then nodemesh-cni registers it. Both
# plugins run inside the node namespace with the CNI environment, the way
# a runtime on that node would run them.
#
# etcd is the shared fixture (nm_etcd_start): it listens on 127.0.0.1 of
# the root namespace, which the node namespace cannot reach, so two socat
# relays join them through a unix socket in the scratch dir (a path is
# reachable from every network namespace). Nothing is configured in the
# root namespace.
#
# Safety: every address lives in the namespaces created here; processes
# are stopped by pid, namespaces, pin root and scratch dir removed on every
# way out (trap in lib.sh).
#
# usage (as root): tests/e2e/test_cni.sh BUILD_DIR
# shellcheck disable=SC2016 # $x in jq filters is jq's, not the shell's
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

AGENT=$BUILD/nodemesh-agent
CNI=$BUILD/nodemesh-cni
CNI_PATH=/usr/lib/cni
NODE_IP=192.168.79.1
UPLINK_MTU=1400
PTP_MTU=1450
SUBNET=10.244.1.0/24
CID="c0ffee$$" # the pod's container id
IFNAME=eth0

[ -x "$AGENT" ] || nm_skip_all "$AGENT not built (make all)"
[ -x "$CNI" ] || nm_skip_all "$CNI not built (make all)"
for p in ptp host-local; do
	[ -x "$CNI_PATH/$p" ] ||
		nm_skip_all "$CNI_PATH/$p missing (containernetworking-plugins)"
done
for c in etcd etcdctl jq socat; do
	command -v "$c" >/dev/null || nm_skip_all "$c missing (scripts/deps.sh)"
done
nm_e2e_start "nm-cni-$$" 16

NODE="$PREFIX-node"
POD="$PREFIX-pod"
NETNS=/run/netns/$POD
NM_PIN_ROOTS+=("$PIN_ROOT")
nm_tmpdir WORK || nm_bail "no scratch dir"
SOCK=$WORK/agent.sock
STATE=$WORK/state

# ------------------------------------------------------------ helpers

ctl() { nm_exec "$NODE" timeout 30 "$CTL" --pin-root "$PIN_ROOT" --state-dir "$STATE" "$@"; }

# json_ok DOC JQ_ARGS...: DOC is one JSON value and the filter holds on
# it (jq 1.6 -e alone passes empty input).
json_ok() {
	local doc=$1
	shift
	[ -n "$doc" ] && jq -e "$@" <<<"$doc" >/dev/null
}

agent_log() {
	echo "--- agent.log (tail)"
	tail -20 "$WORK/agent.log"
}

# ptp's configuration; host-local keeps its leases in the scratch dir.
ptp_conf() {
	jq -cn --arg dir "$WORK/ipam" --arg subnet "$SUBNET" \
		--argjson mtu "$PTP_MTU" \
		'{cniVersion: "1.0.0", name: "nm-cni-e2e", type: "ptp", mtu: $mtu,
		  ipam: {type: "host-local", subnet: $subnet, dataDir: $dir}}'
}

# nodemesh-cni's configuration, as a runtime builds it for the second
# plugin of the list; prevResult only when given (ADD, CHECK).
# nm_conf [PREV_RESULT]
nm_conf() {
	jq -cn --arg sock "$SOCK" --argjson prev "${1:-null}" \
		'{cniVersion: "1.0.0", name: "nm-cni-e2e", type: "nodemesh-cni",
		  agentSocket: $sock, labels: {app: "web", tier: "static"},
		  runtimeConfig: {labels: {tier: "frontend"}}}
		 + (if $prev == null then {} else {prevResult: $prev} end)'
}

# What the kubelet passes every plugin of the list.
K8S_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1"

# plugin PLUGIN COMMAND CONTAINER_ID [NETNS]: run a CNI plugin inside the
# node namespace with the CNI environment only; the config on stdin.
# Every plugin gets the same CNI_ARGS, as from a runtime: NODEMESH_LABELS
# is written k:v so the Go plugins' parser accepts it.
plugin() {
	local args="$K8S_ARGS;NODEMESH_LABELS=team:payments"
	nm_exec "$NODE" env -i PATH="$PATH" CNI_COMMAND="$2" \
		CNI_CONTAINERID="$3" CNI_NETNS="${4-$NETNS}" CNI_IFNAME="$IFNAME" \
		CNI_PATH="$CNI_PATH" CNI_ARGS="$args" "$1"
}

# agent_get PATH: a GET on the agent's socket; the body of a 200 answer
# on stdout, anything else fails.
agent_get() {
	local resp
	resp=$(printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" |
		timeout 10 socat -t 5 - UNIX-CONNECT:"$SOCK") || return 1
	head -1 <<<"$resp" | grep -q '^HTTP/1\.[01] 200 ' || {
		head -1 <<<"$resp" >&2
		return 1
	}
	sed '1,/^\r$/d' <<<"$resp"
}

ep_list() { ctl -o json endpoint list; }

# has_endpoints IP N: the endpoint map has IP N times.
has_endpoints() {
	json_ok "$(ep_list)" --arg ip "$1" --argjson n "$2" \
		'[.[] | select(.ip == $ip)] | length == $n'
}

# bpf_hooks IFACE: on how many of IFACE's tc hooks (ingress, egress) a
# BPF program runs; fails if tc cannot show them.
bpf_hooks() {
	local hook f n=0
	for hook in ingress egress; do
		f=$(tc -n "$NODE" filter show dev "$1" "$hook") || return 1
		grep -q " bpf " <<<"$f" && n=$((n + 1))
	done
	echo "$n"
}

mtu_of() { # mtu_of NS IFACE
	ip -n "$1" -o link show dev "$2" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'
}

# ------------------------------------------------------------ testbed

nm_node_add "$NODE" || nm_bail "failed to create node namespace $NODE"
ip netns add "$POD" || nm_bail "failed to create pod namespace $POD"
NM_NETNS+=("$POD")
# A veth pair with both ends in the node: the uplink is only an address
# and an MTU here, and not every kernel has the dummy driver.
ip -n "$NODE" link add nm-uplink mtu "$UPLINK_MTU" type veth \
	peer name nm-uplink-p mtu "$UPLINK_MTU" &&
	ip -n "$NODE" addr add "$NODE_IP/24" dev nm-uplink &&
	ip -n "$NODE" link set nm-uplink-p up &&
	ip -n "$NODE" link set nm-uplink up ||
	nm_bail "failed to set up the node's uplink in $NODE"

nm_etcd_start ETCD || nm_bail "failed to start etcd"
ETCD_PORT=${ETCD##*:}
socat UNIX-LISTEN:"$WORK/etcd.sock",fork TCP:127.0.0.1:"$ETCD_PORT" \
	</dev/null 2>>"$WORK/relay.log" &
NM_PIDS+=("$!")
nm_bg "$NODE" socat TCP-LISTEN:"$ETCD_PORT",bind=127.0.0.1,fork,reuseaddr \
	UNIX-CONNECT:"$WORK/etcd.sock" </dev/null 2>>"$WORK/relay.log"
nm_diag "etcd $ETCD, relayed into $NODE"

cat >"$WORK/agent.yaml" <<YAML
cluster: east
cluster_id: 1
etcd:
  endpoints: [http://127.0.0.1:$ETCD_PORT]
pin_root: $PIN_ROOT
state_dir: $STATE
tunnel: disabled # the overlay has its own test
YAML

# --------------------------------------------------------------- tests

t_version() {
	local out rc
	out=$(plugin "$CNI" VERSION "" </dev/null)
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq 0 ] &&
		json_ok "$out" '.cniVersion == "1.0.0" and
			.supportedVersions == ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]'
}
nm_test "VERSION prints the supported spec versions" t_version

agent_ready() { json_ok "$(agent_get /v1/endpoints)" '.endpoints'; }

t_agent() {
	nm_bg "$NODE" "$AGENT" --config "$WORK/agent.yaml" --node node-1 \
		--node-ip "$NODE_IP" --socket "$SOCK" -v \
		>>"$WORK/agent.log" 2>&1 </dev/null
	AGENT_PID=$NM_LAST_PID
	nm_wait_for 20 agent_ready || { agent_log; return 1; }
	agent_get /v1/endpoints
}
nm_test "the agent starts in the node namespace and serves /v1/endpoints" \
	t_agent

t_ptp_add() {
	PREV=$(ptp_conf | plugin "$CNI_PATH/ptp" ADD "$CID") || {
		echo "ptp ADD failed: $PREV"
		return 1
	}
	echo "$PREV"
	POD_IP=$(jq -r '.ips[0].address | split("/")[0]' <<<"$PREV")
	HOST_IF=$(jq -r '.interfaces[] | select(.sandbox == null) | .name' \
		<<<"$PREV")
	echo "pod $POD_IP, host veth $HOST_IF"
	[ -n "$POD_IP" ] && [ -n "$HOST_IF" ] &&
		[ "$(mtu_of "$POD" "$IFNAME")" = "$PTP_MTU" ]
}
nm_test "ptp ADD creates the pod's veth ($PTP_MTU) and address" t_ptp_add
[ -n "${POD_IP:-}" ] && [ -n "${HOST_IF:-}" ] || nm_bail "no usable prevResult from ptp"

# A runtime retries ADD on "try again later" (11), e.g. while the agent
# is still connecting to etcd. cni_add [NETNS]: exit in RC, output in OUT.
cni_add() {
	local tries=50
	while :; do
		OUT=$(nm_conf "$PREV" | plugin "$CNI" ADD "$CID" "${1-$NETNS}")
		RC=$?
		[ "$RC" -ne 0 ] && [ "$(jq -r .code <<<"$OUT" 2>/dev/null)" = 11 ] &&
			[ "$tries" -gt 0 ] || break
		tries=$((tries - 1))
		sleep 0.2
	done
}

# The agent registers the pod, then its MTU cannot be set (CNI_NETNS is
# no namespace): the plugin takes the endpoint back before failing.
t_add_rollback() {
	: >"$WORK/not-a-netns"
	cni_add "$WORK/not-a-netns"
	echo "exit $RC: $OUT"
	[ "$RC" -eq 1 ] && json_ok "$OUT" '.code == 103' || return 1
	grep "deleted endpoint" "$WORK/agent.log" | tail -1
	has_endpoints "$POD_IP" 0 && [ "$(bpf_hooks "$HOST_IF")" = 0 ]
}
nm_test "an ADD failing after the agent's answer takes the endpoint back" \
	t_add_rollback

t_add() {
	cni_add
	echo "exit $RC: $OUT"
	[ "$RC" -eq 0 ] || { agent_log; return 1; }
	# The result is prevResult, cniVersion that of the config.
	json_ok "$OUT" --argjson prev "$PREV" '. == ($prev + {cniVersion: "1.0.0"})'
}
nm_test "nodemesh-cni ADD exits 0 and prints prevResult as its result" t_add

t_add_registered() {
	ep_list
	has_endpoints "$POD_IP" 1 || return 1
	tc -n "$NODE" filter show dev "$HOST_IF" ingress
	tc -n "$NODE" filter show dev "$HOST_IF" egress
	[ "$(bpf_hooks "$HOST_IF")" = 2 ] || return 1
	# What the agent stored: container, pod name, labels of its identity.
	DOC=$(agent_get "/v1/endpoints/$CID/$IFNAME") || return 1
	echo "$DOC"
	json_ok "$DOC" --arg ip "$POD_IP" --arg cid "$CID" --arg hif "$HOST_IF" \
		'.ip == $ip and .container_id == $cid and .host_ifname == $hif' ||
		return 1
	ctl identity list | grep "app=web" | grep "team=payments" |
		grep "tier=frontend" | grep "nodemesh.io/namespace=shop"
}
nm_test "ADD registers the endpoint: map entry, tc programs, labels merged" \
	t_add_registered

t_mtu() {
	local want pod host
	want=$(jq -r .mtu <<<"$DOC")
	pod=$(mtu_of "$POD" "$IFNAME")
	host=$(mtu_of "$NODE" "$HOST_IF")
	echo "agent's pod MTU $want; pod $IFNAME $pod, host $HOST_IF $host"
	[ "$want" -lt "$PTP_MTU" ] && [ "$pod" = "$want" ] && [ "$host" = "$want" ]
}
nm_test "ADD lowers the pod's and the host veth's MTU to the agent's" t_mtu

t_add_again() {
	cni_add
	echo "exit $RC: $OUT"
	[ "$RC" -eq 0 ] && has_endpoints "$POD_IP" 1
}
nm_test "a repeated ADD is idempotent (one endpoint)" t_add_again

t_check() {
	local out rc
	out=$(nm_conf "$PREV" | plugin "$CNI" CHECK "$CID")
	rc=$?
	echo "exit $rc: '$out'"
	[ "$rc" -eq 0 ] && [ -z "$out" ]
}
nm_test "CHECK succeeds silently" t_check

t_check_mismatch() {
	local out rc prev
	prev=$(jq -c '.ips[0].address = "10.244.1.250/24"' <<<"$PREV")
	out=$(nm_conf "$prev" | plugin "$CNI" CHECK "$CID")
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq 1 ] &&
		json_ok "$out" '.code == 102 and (.msg | contains("10.244.1.250"))'
}
nm_test "CHECK against another address fails (code 102)" t_check_mismatch

# expect_error CODE FRAGMENT COMMAND_ENV... : run nodemesh-cni with stdin
# as given, expect exit 1 and a CNI error object with CODE and FRAGMENT.
expect_error() {
	local code=$1 frag=$2 out rc
	shift 2
	out=$(nm_exec "$NODE" env -i "$@" "$CNI")
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq 1 ] &&
		json_ok "$out" --argjson code "$code" --arg frag "$frag" \
			'.code == $code and (.msg | contains($frag)) and
			 .cniVersion == "1.0.0"'
}

t_malformed() {
	local before after b_agent a_agent env bad=0 good
	env=(CNI_COMMAND=ADD CNI_CONTAINERID=bad$$ CNI_NETNS="$NETNS"
		CNI_IFNAME=eth9 CNI_PATH="$CNI_PATH")
	good=$(nm_conf "$PREV")
	before=$(ep_list) || return 1
	b_agent=$(agent_get /v1/endpoints) || return 1
	echo 'not json' | expect_error 6 "failed to decode" "${env[@]}" || bad=1
	printf '' | expect_error 6 "empty input" "${env[@]}" || bad=1
	jq -c 'del(.cniVersion)' <<<"$good" |
		expect_error 7 "missing field cniVersion" "${env[@]}" || bad=1
	jq -c 'del(.name)' <<<"$good" |
		expect_error 7 "missing field name" "${env[@]}" || bad=1
	jq -c 'del(.type)' <<<"$good" |
		expect_error 7 "missing field type" "${env[@]}" || bad=1
	jq -c '.labels = ["app"]' <<<"$good" |
		expect_error 7 "field labels must be an object" "${env[@]}" || bad=1
	jq -c '.prevResult.interfaces = 3' <<<"$good" |
		expect_error 7 "prevResult.interfaces must be an array" \
			"${env[@]}" || bad=1
	jq -c 'del(.prevResult)' <<<"$good" |
		expect_error 7 "missing field prevResult" "${env[@]}" || bad=1
	jq -c '.cniVersion = "0.2.0"' <<<"$good" |
		expect_error 1 "incompatible CNI version" "${env[@]}" || bad=1
	expect_error 4 "missing environment variable CNI_IFNAME" \
		"${env[@]:0:3}" "${env[@]:4}" <<<"$good" || bad=1
	expect_error 4 "missing environment variable CNI_COMMAND" \
		"${env[@]:1}" <<<"$good" || bad=1
	[ "$bad" -eq 0 ] || return 1
	after=$(ep_list) || return 1
	a_agent=$(agent_get /v1/endpoints) || return 1
	[ "$before" = "$after" ] && [ "$b_agent" = "$a_agent" ] || {
		diff <(echo "$before") <(echo "$after")
		diff <(echo "$b_agent") <(echo "$a_agent")
		return 1
	}
}
nm_test "malformed input: CNI error object, exit 1, endpoints unchanged" \
	t_malformed

t_unreachable() {
	local out rc
	out=$(jq -c --arg s "$WORK/none.sock" '.agentSocket = $s' \
		<<<"$(nm_conf)" | plugin "$CNI" DEL "$CID")
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq 1 ] && json_ok "$out" --arg s "$WORK/none.sock" \
		'.code == 11 and (.msg | contains($s)) and
		 (.details | contains("No such file or directory"))'
}
nm_test "an unreachable agent is 'try again later' (code 11)" t_unreachable

t_del() {
	local out rc
	# Reverse order: nodemesh-cni, then ptp; DEL carries no prevResult.
	out=$(nm_conf | plugin "$CNI" DEL "$CID")
	rc=$?
	echo "exit $rc: '$out'"
	[ "$rc" -eq 0 ] && [ -z "$out" ] || { agent_log; return 1; }
	has_endpoints "$POD_IP" 0 || { ep_list; return 1; }
	[ "$(bpf_hooks "$HOST_IF")" = 0 ] || return 1
	ptp_conf | plugin "$CNI_PATH/ptp" DEL "$CID" || return 1
	! ip -n "$NODE" link show dev "$HOST_IF" 2>/dev/null
}
nm_test "DEL (nodemesh-cni, then ptp) removes endpoint, programs and veth" \
	t_del

t_del_idempotent() {
	local out rc
	# Again, with the pod's namespace gone as well.
	ip netns del "$POD" || return 1
	out=$(nm_conf | plugin "$CNI" DEL "$CID")
	rc=$?
	echo "DEL again: exit $rc: '$out'"
	[ "$rc" -eq 0 ] && [ -z "$out" ] || return 1
	out=$(nm_conf | plugin "$CNI" DEL "unknown$$" "")
	rc=$?
	echo "DEL of an unknown container, no netns: exit $rc: '$out'"
	[ "$rc" -eq 0 ] && [ -z "$out" ]
}
nm_test "DEL is idempotent: again, and for an unknown container" \
	t_del_idempotent

t_check_after_del() {
	local out rc
	out=$(nm_conf "$PREV" | plugin "$CNI" CHECK "$CID")
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq 1 ] && json_ok "$out" '.code == 101'
}
nm_test "CHECK after DEL: the agent has no such endpoint (code 101)" \
	t_check_after_del

t_agent_alive() {
	kill -0 "$AGENT_PID" && agent_get /v1/status >/dev/null
}
nm_test "the agent is still up and serving" t_agent_alive

nm_tap_status
