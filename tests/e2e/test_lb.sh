#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# End-to-end service load balancing on one node: a node namespace, a client
# pod and three backend pods (b1 b2 b3 on :8080), the datapath attached by
# nodemeshctl at tc ingress of all four host-side veths, and the service
# 10.96.0.10:80/tcp -> the three backends. TAP on stdout; exit 0 iff no test
# failed.
#
# usage (as root): tests/e2e/test_lb.sh BUILD_DIR
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

VIP=$NM_VIP
SVC="$VIP:80/tcp"
ATTACH_OPTS=(--maglev-tables 16 --ct-max 16384)

nm_e2e_start "nm-e2e-$$" 8

# nodemeshctl runs in the node namespace (attach takes interface names).
ctl() {
	timeout 30 nsenter --net="/run/netns/$NM_NODE" -- \
		"$CTL" --pin-root "$PIN_ROOT" "$@"
}

# Run the probe in the client pod.
client() {
	nm_exec "$NM_CLIENT" "$PROBE" "$@"
}

attach_all() {
	ctl attach "${NM_IFACES[@]}" "${ATTACH_OPTS[@]}"
}

# prog_ids: "IFACE=ID ..." of the tc ingress programs on the host-side veths.
prog_ids() {
	local ifc id
	for ifc in "${NM_IFACES[@]}"; do
		id=$(tc -n "$NM_NODE" filter show dev "$ifc" ingress |
			sed -n 's/.* id \([0-9][0-9]*\) .*/\1/p' | head -n 1)
		printf '%s=%s ' "$ifc" "${id:-none}"
	done
	echo
}

# upsert_tcp [EXCLUDE_NAME]: the TCP service over every backend but one.
upsert_tcp() {
	# shellcheck disable=SC2046 # one word per backend
	ctl service upsert "$SVC" $(nm_backend_specs "${1:-}")
}

# expect_names "OUTPUT" WANTED... : each wanted name appears at least once.
expect_names() {
	local out=$1 name ok=0
	shift
	for name in "$@"; do
		if ! grep -qx "$name" <<<"$out"; then
			echo "backend $name never answered"
			ok=1
		fi
	done
	return "$ok"
}

nm_lb_topology_up "$PREFIX" "$PROBE" || nm_bail "failed to build the netns topology"

# The wiring alone must carry traffic before any datapath is attached.
if ! out=$(client connect "${NM_BACKEND_IPS[0]}:$NM_BACKEND_PORT" 2>&1); then
	nm_diag "$out"
	nm_bail "topology broken: client cannot reach b1 without the datapath"
fi

NM_PIN_ROOTS+=("$PIN_ROOT")
nm_diag "attach: ${NM_IFACES[*]} (pin root $PIN_ROOT)"
if ! out=$(attach_all 2>&1); then
	nm_diag "$out"
	nm_bail "nodemeshctl attach failed"
fi
nm_indent <<<"$out"
if ! out=$(upsert_tcp 2>&1); then
	nm_diag "$out"
	nm_bail "nodemeshctl service upsert $SVC failed"
fi

# (a) 60 connections to the VIP all succeed and reach all three backends.
t_vip_spread() {
	local out rc

	out=$(client connect "$VIP:80" --count 60 --timeout-ms 2000)
	rc=$?
	echo "spread: $(nm_spread <<<"$out")"
	[ "$rc" -eq 0 ] || return 1
	[ "$(grep -c . <<<"$out")" -eq 60 ] || return 1
	expect_names "$out" "${NM_BACKEND_NAMES[@]}"
}
nm_test "60 connections to the VIP reach all three backends" t_vip_spread

# (b) A backend addressed directly is not touched by the load balancer.
t_direct() {
	local out

	out=$(client connect "${NM_BACKEND_IPS[1]}:$NM_BACKEND_PORT" \
		--count 5) || return 1
	echo "answers: $(nm_spread <<<"$out")"
	[ "$(sort -u <<<"$out")" = "${NM_BACKEND_NAMES[1]}" ]
}
nm_test "direct connection to a backend IP reaches that backend" t_direct

# (c) ICMP passes the datapath both ways.
t_ping() {
	nm_exec "$NM_CLIENT" ping -n -c 3 -i 0.2 -W 1 "${NM_BACKEND_IPS[0]}"
}
nm_test "ping from the client to a backend" t_ping

# (f) The CLI dumps show the service and the conntrack entries.
t_cli_dump() {
	local out ok=0

	client connect "$VIP:80" --count 3 >/dev/null || return 1
	echo "\$ nodemeshctl service list"
	ctl service list
	echo "\$ nodemeshctl map dump services"
	out=$(ctl map dump services 2>&1)
	echo "$out"
	grep -qF "$VIP" <<<"$out" || { echo "no $VIP in services"; ok=1; }
	echo "\$ nodemeshctl map dump ct"
	out=$(ctl map dump ct 2>&1)
	head -n 20 <<<"$out"
	grep -qF "$VIP" <<<"$out" || { echo "no $VIP in ct"; ok=1; }
	return "$ok"
}
nm_test "nodemeshctl map dump services/ct show the VIP" t_cli_dump

# (g) The maps carry BTF: bpftool prints field names.
t_bpftool_btf() {
	local out field ok=0

	out=$(bpftool map dump pinned "$PIN_ROOT/nm_services_v1" 2>&1) ||
		{ echo "$out"; return 1; }
	head -n 30 <<<"$out"
	for field in vip dport svc_id; do
		grep -q "\"$field\"" <<<"$out" ||
			{ echo "field $field not printed"; ok=1; }
	done
	return "$ok"
}
nm_test "bpftool map dump of nm_services_v1 prints field names" t_bpftool_btf

# (d) A long-lived connection survives a backend-set change that removes
# another backend, and a loader restart that reuses the pinned maps.
t_hold() {
	local ready=$NM_WORKDIR/hold.ready log=$NM_WORKDIR/hold.log
	local pid landed victim name rc before after ok=0

	rm -f "$ready"
	nm_bg "$NM_CLIENT" "$PROBE" hold "$VIP:80" --duration-ms 6000 \
		--interval-ms 100 --timeout-ms 2000 --ready-file "$ready" \
		>"$log" 2>&1
	pid=$NM_LAST_PID
	if ! nm_wait_file "$ready" 5; then
		echo "hold never connected"
		ok=1
	else
		landed=$(head -n 1 "$ready")
		for name in "${NM_BACKEND_NAMES[@]}"; do
			[ "$name" != "$landed" ] && { victim=$name; break; }
		done
		echo "hold landed on $landed; removing $victim"
		sleep 1
		upsert_tcp "$victim" || { echo "upsert without $victim failed"; ok=1; }
		sleep 1
		before=$(prog_ids)
		echo "re-attaching on ${NM_IFACES[*]}"
		attach_all || { echo "re-attach failed"; ok=1; }
		after=$(prog_ids)
		echo "programs before: $before"
		echo "programs after:  $after"
		# A restart loads a new program; the old one must be gone.
		for name in $after; do
			case " $before " in
			*" $name "*) echo "program not replaced: $name"; ok=1 ;;
			esac
			case "$name" in
			*=none) echo "no program attached: $name"; ok=1 ;;
			esac
		done
	fi
	wait "$pid"
	rc=$?
	nm_pid_forget "$pid"
	cat "$log"
	[ "$rc" -eq 0 ] || { echo "hold exited $rc"; ok=1; }
	[ "$ok" -eq 0 ] && grep -q "^ok $landed " "$log"
}
nm_test "long-lived connection survives backend change and re-attach" t_hold

# (e) After a backend leaves the service, new connections never reach it.
t_remove_backend() {
	local gone=${NM_BACKEND_NAMES[1]} out rc

	upsert_tcp || return 1
	upsert_tcp "$gone" || return 1
	out=$(client connect "$VIP:80" --count 30 --timeout-ms 2000)
	rc=$?
	echo "without $gone: $(nm_spread <<<"$out")"
	[ "$rc" -eq 0 ] || return 1
	if grep -qx "$gone" <<<"$out"; then
		echo "removed backend $gone still answered"
		return 1
	fi
	expect_names "$out" "${NM_BACKEND_NAMES[0]}" "${NM_BACKEND_NAMES[2]}"
}
nm_test "removed backend gets no new connections" t_remove_backend

# (h) UDP service: each request from a fresh source port, answered by name.
t_udp() {
	local out rc

	# shellcheck disable=SC2046 # one word per backend
	ctl service upsert "$VIP:53/udp" $(nm_backend_specs) || return 1
	out=$(client connect "$VIP:53" --udp --count 30 --timeout-ms 2000)
	rc=$?
	echo "spread: $(nm_spread <<<"$out")"
	[ "$rc" -eq 0 ] || return 1
	expect_names "$out" "${NM_BACKEND_NAMES[@]}"
}
nm_test "UDP service spreads requests over all backends" t_udp

nm_tap_status
