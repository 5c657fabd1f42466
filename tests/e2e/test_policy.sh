#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# End-to-end identity policy on one node: three client pods labelled
# app=frontend, app=backend-x and app=other, and a server pod (app=server)
# serving TCP on 8080 and 9090, all registered with 'nodemeshctl endpoint
# add' after the datapath is attached on their host-side veths. Policies
# are applied with 'nodemeshctl policy apply' and checked with real TCP
# connections. TAP on stdout; exit 0 iff no test failed.
#
# usage (as root): tests/e2e/test_policy.sh BUILD_DIR
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

NS=shop
SERVER=$NM_POL_SERVER_IP
FAIL_MS=700 # a denied SYN is dropped: the connect times out after this

nm_e2e_start "nm-pol-$$" 16

# nodemeshctl runs in the node namespace, with this test's pins and state.
ctl() {
	timeout 30 nsenter --net="/run/netns/$NM_NODE" -- \
		"$CTL" --pin-root "$PIN_ROOT" --state-dir "$STATE" "$@"
}

# reach CLIENT PORT: one connection from CLIENT's pod to the server.
reach() {
	nm_exec "$PREFIX-$1" "$PROBE" connect "$SERVER:$2" \
		--timeout-ms "$FAIL_MS" >/dev/null 2>&1
}

# expect CLIENT PORT yes|no
expect() {
	if reach "$1" "$2"; then
		[ "$3" = yes ] && { echo "$1 -> :$2 connected (expected)"; return 0; }
		echo "$1 -> :$2 connected, expected it to be refused"
		return 1
	fi
	[ "$3" = no ] && { echo "$1 -> :$2 refused (expected)"; return 0; }
	echo "$1 -> :$2 refused, expected it to connect"
	return 1
}

# access_matrix: "frontend:8080=yes ..." for every client and port.
access_matrix() {
	local c p r
	for c in "${NM_POL_CLIENTS[@]}"; do
		for p in "${NM_POL_PORTS[@]}"; do
			if reach "$c" "$p"; then r=yes; else r=no; fi
			printf '%s:%s=%s ' "$c" "$p" "$r"
		done
	done
	echo
}

# manifest FILE [EXTRA]: the server's policy; ingress allows frontend on
# TCP 8080, EXTRA (YAML under spec) is appended.
manifest() {
	cat >"$1" <<YAML
apiVersion: nodemesh.io/v1alpha1
kind: MeshNetworkPolicy
metadata:
  name: server-ingress
  namespace: $NS
spec:
  endpointSelector:
    matchLabels:
      app: server
${2:-  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
      toPorts:
        - ports:
            - port: 8080
              protocol: TCP}
YAML
}

nm_policy_topology_up "$PREFIX" "$PROBE" ||
	nm_bail "failed to build the netns topology"
STATE=$NM_WORKDIR/state
export NODEMESH_CLUSTER=e2e NODEMESH_CLUSTER_ID=7

if ! out=$(access_matrix) || [[ "$out" == *=no* ]]; then
	nm_diag "$out"
	nm_bail "topology broken: clients cannot reach the server without the datapath"
fi

NM_PIN_ROOTS+=("$PIN_ROOT")
if ! out=$(ctl attach "${NM_IFACES[@]}" --maglev-tables 4 --ct-max 16384 2>&1); then
	nm_indent <<<"$out"
	nm_bail "nodemeshctl attach failed"
fi
nm_indent <<<"$out"
for i in "${!NM_POL_CLIENTS[@]}"; do
	name=${NM_POL_CLIENTS[i]}
	if ! out=$(ctl endpoint add "${NM_POL_CLIENT_IPS[i]}" \
		--iface "nm-$name" --namespace "$NS" --labels "app=$name" \
		--name "$name" --mac "$(nm_pod_mac "$PREFIX-$name")" 2>&1); then
		nm_indent <<<"$out"
		nm_bail "nodemeshctl endpoint add $name failed"
	fi
done
if ! out=$(ctl endpoint add "$SERVER" --iface nm-server --namespace "$NS" \
	--labels app=server,tier=api --name server 2>&1); then
	nm_indent <<<"$out"
	nm_bail "nodemeshctl endpoint add server failed"
fi

# (1) Both programs are attached on every pod's veth.
t_attached() {
	local ifc ok=0
	for ifc in "${NM_IFACES[@]}"; do
		tc -n "$NM_NODE" filter show dev "$ifc" ingress | grep -q nm_from_pod ||
			{ echo "no nm_from_pod on $ifc ingress"; ok=1; }
		tc -n "$NM_NODE" filter show dev "$ifc" egress | grep -q nm_to_pod ||
			{ echo "no nm_to_pod on $ifc egress"; ok=1; }
	done
	return "$ok"
}
nm_test "nm_from_pod at tc ingress and nm_to_pod at tc egress of every pod" t_attached

# (2) Endpoints and identities: four endpoints, distinct identities in our cluster.
t_endpoints() {
	local out n
	echo "\$ nodemeshctl endpoint list"
	out=$(ctl endpoint list) || return 1
	echo "$out"
	[ "$(grep -c '^10\.244\.2\.' <<<"$out")" -eq 4 ] || return 1
	n=$(ctl -o json endpoint list | grep -o '"identity":[0-9]*' | sort -u | wc -l)
	[ "$n" -eq 4 ] || { echo "expected 4 identities, got $n"; return 1; }
	grep -q 'app=frontend,nodemesh.io/cluster=e2e,nodemesh.io/namespace=shop' <<<"$out"
}
nm_test "endpoint add: four endpoints with identities from their labels" t_endpoints

# (3) No policy: every client reaches the server on both ports.
t_open() {
	local out
	out=$(access_matrix)
	echo "$out"
	[[ "$out" != *=no* ]]
}
nm_test "before any policy all three clients reach the server" t_open

# (4) Apply: only frontend reaches 8080.
t_apply() {
	local ok=0
	manifest "$NM_WORKDIR/allow.yaml"
	ctl policy validate -f "$NM_WORKDIR/allow.yaml" || return 1
	ctl policy apply -f "$NM_WORKDIR/allow.yaml" || return 1
	ctl policy list
	expect frontend 8080 yes || ok=1
	expect frontend 9090 no || ok=1
	expect backend-x 8080 no || ok=1
	expect other 8080 no || ok=1
	expect other 9090 no || ok=1
	return "$ok"
}
nm_test "allow app=frontend on TCP 8080: frontend reaches 8080 only, others refused" t_apply

# (5) policy get shows the allow rule and default deny.
t_get() {
	local out
	out=$(ctl policy get "$SERVER") || return 1
	echo "$out"
	grep -q 'ingress allow from .*tcp/8080 .*app=frontend.*shop/server-ingress ingress\[0\]' <<<"$out" &&
		grep -q 'ingress default deny' <<<"$out"
}
nm_test "policy get shows the allow rule and default deny for the server" t_get

# (6) The monitor reports the deny with the server's endpoint and the source labels.
t_monitor() {
	local out=$NM_WORKDIR/monitor.out err=$NM_WORKDIR/monitor.err pid sid line
	rm -f "$out" "$err"
	nm_bg "$NM_NODE" "$CTL" --pin-root "$PIN_ROOT" --state-dir "$STATE" \
		monitor --count 1 --timeout 10 >"$out" 2>"$err"
	pid=$NM_LAST_PID
	nm_wait_file "$err" 5 || { echo "monitor did not start"; return 1; }
	reach other 8080 && { echo "other connected"; return 1; }
	wait "$pid"
	nm_pid_forget "$pid"
	cat "$out"
	sid=$(ctl -o json endpoint list | tr '}' '\n' | grep "\"$SERVER\"" |
		sed -n 's/.*"endpoint_id":\([0-9]*\).*/\1/p')
	line=$(grep -m1 ' deny ' "$out") || { echo "no deny event"; return 1; }
	[[ "$line" == *"to-pod"* ]] || { echo "not to-pod"; return 1; }
	[[ "$line" == *"${NM_POL_CLIENT_IPS[2]}:"*" -> $SERVER:8080"* ]] ||
		{ echo "wrong tuple"; return 1; }
	[[ "$line" == *"endpoint $sid $SERVER"* ]] ||
		{ echo "server endpoint $sid not named"; return 1; }
	[[ "$line" == *"app=other"* ]] || { echo "source labels missing"; return 1; }
	[[ "$line" == *"drop_policy_default"* ]]
}
nm_test "monitor prints the deny event with endpoint and source identity labels" t_monitor

# (7) ingressDeny for frontend on 8080 beats the allow.
t_deny_wins() {
	local ok=0
	manifest "$NM_WORKDIR/deny.yaml" "  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
      toPorts:
        - ports:
            - port: 8080
              protocol: TCP
  ingressDeny:
    - fromEndpoints:
        - matchLabels:
            app: frontend
      toPorts:
        - ports:
            - port: 8080"
	ctl policy apply -f "$NM_WORKDIR/deny.yaml" || return 1
	ctl policy get "$SERVER"
	expect frontend 8080 no || ok=1
	ctl policy apply -f "$NM_WORKDIR/allow.yaml" || return 1
	expect frontend 8080 yes || ok=1
	return "$ok"
}
nm_test "ingressDeny for app=frontend on 8080 beats the allow" t_deny_wins

# (8) An established connection survives losing its allow; a new one is refused.
t_established() {
	local ready=$NM_WORKDIR/hold.ready log=$NM_WORKDIR/hold.log pid rc ok=0
	rm -f "$ready"
	nm_bg "$PREFIX-frontend" "$PROBE" hold "$SERVER:8080" --duration-ms 4000 \
		--interval-ms 100 --timeout-ms 2000 --ready-file "$ready" \
		>"$log" 2>&1
	pid=$NM_LAST_PID
	if ! nm_wait_file "$ready" 5; then
		echo "hold never connected"
		ok=1
	else
		sleep 0.5
		# The same policy, now allowing only backend-x.
		manifest "$NM_WORKDIR/other.yaml" "  ingress:
    - fromEndpoints:
        - matchLabels:
            app: backend-x
      toPorts:
        - ports:
            - port: 8080
              protocol: TCP"
		ctl policy apply -f "$NM_WORKDIR/other.yaml" || ok=1
		expect frontend 8080 no || ok=1
		expect backend-x 8080 yes || ok=1
	fi
	wait "$pid"
	rc=$?
	nm_pid_forget "$pid"
	cat "$log"
	[ "$rc" -eq 0 ] || { echo "hold exited $rc"; ok=1; }
	ctl policy apply -f "$NM_WORKDIR/allow.yaml" >/dev/null || ok=1
	return "$ok"
}
nm_test "established connection survives removal of its allow; new ones refused" t_established

# (9) A malformed manifest is refused with file:line and changes nothing.
t_malformed() {
	local bad=$NM_WORKDIR/bad.yaml before after mb ma out ok=0
	manifest "$bad" "  ingress:
    - fromEndpoints:
        - matchLabels:
            app: other
      toPorts:
        - ports:
            - port: 70000"
	before=$(ctl policy list)
	mb=$(access_matrix)
	out=$(ctl policy apply -f "$bad" 2>&1) && { echo "bad manifest applied"; ok=1; }
	echo "$out"
	grep -q "^$bad:[0-9][0-9]*: " <<<"$out" || { echo "no file:line"; ok=1; }
	out=$(ctl policy validate -f "$bad" 2>&1) && { echo "validate passed"; ok=1; }
	grep -q "^$bad:[0-9][0-9]*: " <<<"$out" || { echo "validate: no file:line"; ok=1; }
	after=$(ctl policy list)
	ma=$(access_matrix)
	echo "access before: $mb"
	echo "access after:  $ma"
	[ "$before" = "$after" ] || { echo "policy list changed"; ok=1; }
	[ "$mb" = "$ma" ] || { echo "access changed"; ok=1; }
	return "$ok"
}
nm_test "malformed manifest refused with file:line, nothing changes" t_malformed

# (10) Only entries that differ are written: re-applying changes nothing.
t_idempotent() {
	local out
	out=$(ctl policy apply -f "$NM_WORKDIR/allow.yaml") || return 1
	echo "$out"
	grep -q '0 added, 0 changed, 0 removed' <<<"$out"
}
nm_test "re-applying the same policy writes no entry" t_idempotent

# (11) A new endpoint selected by the policy is enforced from its first packet.
t_new_endpoint() {
	local out ok=0
	# Re-register the server under the same labels: same identity, same id.
	out=$(ctl -o json endpoint list | tr '}' '\n' | grep "\"$SERVER\"")
	ctl endpoint add "$SERVER" --iface nm-server --namespace "$NS" \
		--labels app=server,tier=api || return 1
	[ "$out" = "$(ctl -o json endpoint list | tr '}' '\n' | grep "\"$SERVER\"")" ] ||
		{ echo "endpoint changed on re-add"; ok=1; }
	expect other 8080 no || ok=1
	expect frontend 8080 yes || ok=1
	return "$ok"
}
nm_test "re-adding an endpoint keeps its identity, id and enforcement" t_new_endpoint

# (12) policy delete restores access for all.
t_delete() {
	local out
	ctl policy delete "$NS/server-ingress" || return 1
	out=$(ctl policy list)
	echo "$out"
	grep -q 'no policies' <<<"$out" || return 1
	out=$(ctl map dump policy)
	[ -z "$out" ] || { echo "policy map not empty: $out"; return 1; }
	out=$(access_matrix)
	echo "$out"
	[[ "$out" != *=no* ]]
}
nm_test "policy delete restores access for all clients" t_delete

# (13) A CIDR rule: ipcache gets a CIDR identity, removed with the policy.
t_cidr() {
	local f=$NM_WORKDIR/cidr.yaml out ok=0
	manifest "$f" "  ingress:
    - fromCIDR:
        - 10.244.2.0/24
      toPorts:
        - ports:
            - port: 9090"
	ctl policy apply -f "$f" || return 1
	out=$(ctl map dump ipcache)
	echo "$out"
	# A pod's own /32 keeps its identity; the rest of the prefix is the CIDR's.
	grep -q "${NM_POL_CLIENT_IPS[1]}/32 .* local" <<<"$out" ||
		{ echo "pod entry replaced"; ok=1; }
	grep -q "10.244.2.0/24 .* cidr" <<<"$out" ||
		{ echo "no CIDR entry"; ok=1; }
	ctl identity list | grep -q "cidr:10.244.2.0/24" ||
		{ echo "no CIDR identity"; ok=1; }
	ctl policy delete -f "$f" || ok=1
	out=$(ctl map dump ipcache)
	grep -q ' cidr' <<<"$out" && { echo "CIDR entry left"; ok=1; }
	[ "$(grep -c ' local' <<<"$out")" -eq 4 ] || { echo "pod entries lost"; ok=1; }
	return "$ok"
}
nm_test "CIDR rule gets a CIDR identity and ipcache entry, removed with it" t_cidr

# (14) endpoint delete removes the endpoint and its ipcache entry.
t_endpoint_delete() {
	local out
	ctl endpoint delete "${NM_POL_CLIENT_IPS[2]}" || return 1
	out=$(ctl map dump ipcache; ctl map dump endpoints)
	echo "$out"
	! grep -q "${NM_POL_CLIENT_IPS[2]}" <<<"$out"
}
nm_test "endpoint delete removes the endpoint and its ipcache entry" t_endpoint_delete

# (15) A peer selector naming another cluster matches that cluster only.
t_remote_cluster() {
	local f=$NM_WORKDIR/west.yaml out rid ok=0
	out=$(ctl -o json identity add --cluster-id 9 \
		--labels app=frontend,nodemesh.io/namespace=$NS,nodemesh.io/cluster=west) ||
		return 1
	echo "$out"
	rid=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$out")
	manifest "$f" "  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
            nodemesh.io/cluster: west
      toPorts:
        - ports:
            - port: 8080
              protocol: TCP"
	ctl policy apply -f "$f" || return 1
	out=$(ctl policy get "$SERVER")
	echo "$out"
	grep -q "allow from 9/.*nodemesh.io/cluster=west" <<<"$out" ||
		{ echo "no allow for west's frontend"; ok=1; }
	grep -q "from 7/" <<<"$out" && { echo "local identity allowed"; ok=1; }
	ctl -o json map dump policy | grep -q "\"identity\":$rid," ||
		{ echo "identity $rid not in nm_policy_v1"; ok=1; }
	expect frontend 8080 no || ok=1
	ctl policy delete -f "$f" || ok=1
	expect frontend 8080 yes || ok=1
	return "$ok"
}
nm_test "a selector naming cluster west matches west's identity, not ours" t_remote_cluster

# (16) map list shows the policy maps; monitor -o json prints one object per event.
t_map_list_json_monitor() {
	local out=$NM_WORKDIR/mon.json err=$NM_WORKDIR/mon.err f=$NM_WORKDIR/allow.yaml
	local pid m name ok=0
	m=$(ctl map list) || return 1
	echo "$m"
	for name in nm_ipcache_v1 nm_endpoints_v1 nm_policy_v1 nm_events_v1; do
		grep -q "^$name " <<<"$m" || { echo "$name not listed"; ok=1; }
	done
	ctl policy apply -f "$f" >/dev/null || return 1
	rm -f "$out" "$err"
	nm_bg "$NM_NODE" "$CTL" --pin-root "$PIN_ROOT" --state-dir "$STATE" \
		-o json monitor --count 1 --timeout 10 >"$out" 2>"$err"
	pid=$NM_LAST_PID
	nm_wait_file "$err" 5 || { echo "monitor did not start"; return 1; }
	reach backend-x 8080 && { echo "backend-x connected"; ok=1; }
	wait "$pid"
	nm_pid_forget "$pid"
	cat "$out"
	[ "$(grep -c . "$out")" -eq 1 ] || { echo "expected one line"; ok=1; }
	grep -q '"verdict":"deny"' "$out" || ok=1
	grep -q '"src_labels":{"app":"backend-x"' "$out" || ok=1
	ctl policy delete "$NS/server-ingress" >/dev/null || ok=1
	return "$ok"
}
nm_test "map list shows the policy maps; monitor -o json prints a deny object" t_map_list_json_monitor

nm_tap_status
