#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Two-cluster demo, for a person to watch, on scripts/testbed.sh: clusters
# a and b of two nodes each (a real etcd per cluster, a real agent per
# node, pods wired by ptp + nodemesh-cni, VXLAN between nodes), then
#
#   1. a global service whose backends live in both clusters: requests from
#      a pod in each cluster land in both (a tally per cluster);
#   2. a cross-cluster MeshNetworkPolicy on cluster b letting cluster a's
#      frontends in and nobody else: one client gets in, another does not.
#
# Everything lives in namespaces the testbed creates and is removed on exit.
#
# usage (as root): scripts/demo.sh [BUILD_DIR]
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$TOP/build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || {
	echo "demo: no build directory ${1:-}" >&2
	exit 1
}
TB=$TOP/scripts/testbed.sh
PROBE=$BUILD/tests/e2e/nm_probe
VIP=10.96.0.10
PORT=8080
CONNS=30

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nm-demo.XXXXXX") || exit 1
export NM_BUILD=$BUILD NMTB_PREFIX="nmdemo$$" NMTB_DIR=$WORK/tb
PIDS=()

step() {
	printf '\n==> %s\n' "$*"
}

die() {
	echo "demo: $*" >&2
	exit 1
}

# show WHERE CMD...: print the command as typed at WHERE, run it indented.
show() {
	local where=$1
	shift
	printf '  [%s] $ %s\n' "$where" "${1##*/} ${*:2}"
	"$@" 2>&1 | sed 's/^/      /'
	return "${PIPESTATUS[0]}"
}

tb() { timeout 120 "$TB" "$@"; }

# shellcheck disable=SC2317 # run by the EXIT trap
on_exit() {
	local pid
	step "Tearing down: servers, agents, etcds, namespaces, pinned maps"
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	"$TB" down 2>&1 | sed 's/^/  /'
	rm -rf -- "$WORK"
}

[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$PROBE" ] || die "$PROBE not built (run make all)"
[ -x "$BUILD/nodemesh-cni" ] || die "$BUILD/nodemesh-cni not built (run make all)"

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup

step "Bringing up two clusters (a, b) of two nodes: one etcd per cluster, one agent per node"
show host "$TB" up -c 2 -m 2 || die "testbed up failed"

step "Pods, wired by the CNI chain ptp + nodemesh-cni"
# pod node labels
PODS=(
	"client-a a1 app=frontend"
	"other-a a1 app=other"
	"web-a a2 app=web"
	"web-b b1 app=web"
	"client-b b2 app=frontend"
)
for spec in "${PODS[@]}"; do
	read -r pod node labels <<<"$spec"
	tb pod add "${node:0:1}" "$node" "$pod" "$labels" | sed 's/^/  /' ||
		die "pod add $pod failed"
done
ip_of() { tb pod ip "$1"; }
pod_ns() { awk '{ print $3; exit }' "$NMTB_DIR/pods/$1.meta"; }

for pod in web-a web-b; do
	nsenter --net="/run/netns/$(pod_ns "$pod")" -- "$PROBE" serve \
		--port "$PORT" --name "cluster-${pod#web-}/$pod" \
		--pidfile "$WORK/$pod.pid" >/dev/null 2>&1 </dev/null &
	PIDS+=("$!")
done
for pod in web-a web-b; do
	tries=50
	while [ ! -s "$WORK/$pod.pid" ] && [ "$tries" -gt 0 ]; do
		sleep 0.1
		tries=$((tries - 1))
	done
	[ -s "$WORK/$pod.pid" ] || die "server in $pod did not start"
done
echo "  web-a and web-b answer on :$PORT with their cluster and name"

# Every node learns every pod through the etcds (a few hundred ms).
learned() {
	local n p
	for n in a1 a2 b1 b2; do
		for p in web-a web-b client-a client-b other-a; do
			tb ctl "$n" -- map dump ipcache | grep -q "^$(ip_of "$p")/32 " ||
				return 1
		done
	done
}
tries=100
until learned; do
	tries=$((tries - 1))
	[ "$tries" -gt 0 ] || die "the nodes did not learn each other's pods"
	sleep 0.2
done
show a1 "$TB" ctl a1 -- map dump ipcache

# ------------------------------------------------------- global service

step "A global MeshService web ($VIP:80 -> app=web:$PORT), applied in each cluster"
cat >"$WORK/web-svc.yaml" <<YAML
apiVersion: nodemesh.io/v1alpha1
kind: MeshService
metadata: {name: web, namespace: default}
spec:
  vip: $VIP
  ports:
    - {port: 80, targetPort: $PORT, protocol: TCP}
  selector: {app: web}
  global: true
  shared: true
YAML
sed 's/^/      /' "$WORK/web-svc.yaml"
# Each cluster's heartbeat writer exports it with the cluster's own pods.
show a1 "$TB" ctl a1 -- service apply -f "$WORK/web-svc.yaml" \
	--config "$NMTB_DIR/a1/agent.yaml" || die "service apply failed"
show b1 "$TB" ctl b1 -- service apply -f "$WORK/web-svc.yaml" \
	--config "$NMTB_DIR/b1/agent.yaml" || die "service apply failed"

programmed() {
	local n
	for n in a1 a2 b1 b2; do
		[ "$(tb ctl "$n" -- -o json service list |
			jq '[.[] | select(.frontend == "10.96.0.10:80/tcp") | .backend_count] | add // 0')" -eq 2 ] ||
			return 1
	done
}
tries=100
until programmed; do
	tries=$((tries - 1))
	[ "$tries" -gt 0 ] || die "the service was not programmed on every node"
	sleep 0.2
done
echo "  every node merged both clusters' exports into one frontend:"
show a1 "$TB" ctl a1 -- service list

# tally POD: CONNS connections to the VIP from POD, a bar per cluster.
tally() {
	local out c n
	printf '  [%s] $ nm_probe connect %s:80 --count %d\n' "$1" "$VIP" "$CONNS"
	out=$(tb exec "$1" -- "$PROBE" connect "$VIP:80" --count "$CONNS" \
		--timeout-ms 3000) || die "connections from $1 failed"
	for c in a b; do
		n=$(grep -c "^cluster-$c/" <<<"$out")
		printf '      cluster %s %3d  %s\n' "$c" "$n" \
			"$(printf '%*s' "$n" '' | tr ' ' '#')"
	done
}
step "$CONNS requests from client-a (cluster a) and from client-b (cluster b)"
tally client-a
tally client-b

# --------------------------------------------------------------- policy

step "A cross-cluster policy on cluster b: web pods let in cluster a's frontends on :$PORT, nobody else"
cat >"$WORK/web-policy.yaml" <<YAML
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
sed 's/^/      /' "$WORK/web-policy.yaml"
for n in b1 b2; do
	show "$n" "$TB" ctl "$n" -- policy apply -f "$WORK/web-policy.yaml" ||
		die "policy apply failed on $n"
done
show b1 "$TB" ctl b1 -- policy get "$(ip_of web-b)"

# try POD: one connection to web-b, its outcome.
try() {
	local out
	printf '  [%s] $ nm_probe connect %s:%s --timeout-ms 1500\n' "$1" \
		"$(ip_of web-b)" "$PORT"
	if out=$(tb exec "$1" -- "$PROBE" connect "$(ip_of web-b):$PORT" \
		--timeout-ms 1500 2>&1); then
		echo "      allowed: answered by $out"
	else
		echo "      denied:  ${out#nm_probe: }"
	fi
}
step "client-a (cluster a, app=frontend), other-a (cluster a, app=other) and client-b (cluster b, app=frontend) connect to web-b"
try client-a
try other-a
try client-b
echo "  b1 counted the refused packets:"
printf '  [b1] $ nodemeshctl map dump metrics | grep drop_policy\n'
tb ctl b1 -- map dump metrics | grep drop_policy | sed 's/^/      /'
