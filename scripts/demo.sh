#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# One-node demo of service load balancing, for a person to watch: a node
# namespace, a client pod and three backend pods, the nodemesh datapath on
# the pods' veths, a service VIP spread over the backends, then one backend
# removed. Everything lives in namespaces created here and is removed on exit.
#
# usage (as root): scripts/demo.sh [BUILD_DIR]
set -u

BUILD=${1:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$TOP/tests/e2e/lib.sh"

PROBE=$BUILD/tests/e2e/nm_probe
CTL=$BUILD/nodemeshctl
PREFIX="nm-demo-$$"
PIN_ROOT="/sys/fs/bpf/$PREFIX"
VIP=$NM_VIP
SVC="$VIP:80/tcp"
CONNS=30

step() {
	printf '\n==> %s\n' "$*"
}

die() {
	echo "demo: $*" >&2
	exit 1
}

# Show a command as the person would type it in that namespace, then run it.
ctl() {
	printf '  [node]   $ nodemeshctl %s\n' "$*"
	timeout 30 nsenter --net="/run/netns/$NM_NODE" -- \
		"$CTL" --pin-root "$PIN_ROOT" "$@" 2>&1 | sed 's/^/      /'
	return "${PIPESTATUS[0]}"
}

# spread N: N connections from the client to the VIP, one bar per backend.
spread() {
	local out name n

	printf '  [client] $ nm_probe connect %s:80 --count %d\n' "$VIP" "$1"
	out=$(nm_exec "$NM_CLIENT" "$PROBE" connect "$VIP:80" --count "$1") ||
		die "connections to the VIP failed"
	for name in "${NM_BACKEND_NAMES[@]}"; do
		n=$(grep -cx "$name" <<<"$out")
		printf '      %-3s %3d  %s\n' "$name" "$n" \
			"$(printf '%*s' "$n" '' | tr ' ' '#')"
	done
}

on_exit() {
	step "Tearing down: stopping the backends, deleting namespaces and $PIN_ROOT"
	nm_cleanup
	echo "  done."
}

reason=$(nm_kernel_probe) || die "cannot run here: $reason"
[ -x "$PROBE" ] || die "$PROBE not built (run make all)"
[ -x "$CTL" ] || die "$CTL not built (run make all)"

nm_trap_setup
trap on_exit EXIT

step "Building one node namespace with a client pod and three backend pods"
nm_lb_topology_up "$PREFIX" "$PROBE" || die "failed to build the topology"
NM_PIN_ROOTS+=("$PIN_ROOT")
printf '  node     %-22s forwards between pods, no route out\n' "$NM_NODE"
printf '  client   %-22s %s  (host side: nm-client)\n' "$NM_CLIENT" \
	"$NM_CLIENT_IP"
for i in "${!NM_BACKEND_NAMES[@]}"; do
	printf '  %-8s %-22s %s  (host side: nm-%s) serving :%s\n' \
		"${NM_BACKEND_NAMES[i]}" "${NM_BACKEND_NS[i]}" \
		"${NM_BACKEND_IPS[i]}" "${NM_BACKEND_NAMES[i]}" \
		"$NM_BACKEND_PORT"
done

step "Loading the datapath: nm_from_pod at tc ingress and nm_to_pod at tc egress of every pod's veth"
ctl attach "${NM_IFACES[@]}" --maglev-tables 16 --ct-max 16384 ||
	die "attach failed"

step "Creating the service $SVC -> the three backends (Maglev)"
# shellcheck disable=SC2046 # one word per backend
ctl service upsert "$SVC" $(nm_backend_specs) || die "service upsert failed"
ctl service list

step "Opening $CONNS connections from the client to $VIP:80"
spread "$CONNS"

step "Conntrack: each connection has a forward entry (client -> VIP, backend)"
echo "  and a reply entry (backend -> client, rev-NAT to the VIP)"
printf '  [node]   $ nodemeshctl map dump ct | head\n'
timeout 30 nsenter --net="/run/netns/$NM_NODE" -- \
	"$CTL" --pin-root "$PIN_ROOT" map dump ct | head | sed 's/^/      /'

gone=${NM_BACKEND_NAMES[1]}
step "Removing backend $gone from the service"
# shellcheck disable=SC2046 # one word per backend
ctl service upsert "$SVC" $(nm_backend_specs "$gone") ||
	die "service upsert failed"
ctl service list

step "Opening $CONNS new connections: none reaches $gone"
spread "$CONNS"
