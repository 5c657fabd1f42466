# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Shared helpers for the e2e tests and scripts/demo.sh: a netns testbed on
# one machine (a node namespace, pod namespaces wired to it ptp-style), a TAP
# reporter, and a cleanup that removes everything this shell created.
#
# Safety: every address lives inside namespaces created here. The node
# namespace has no default route and no link to the root namespace; the only
# default routes are inside pod namespaces and point at the node. Nothing is
# configured in the root namespace. Processes are stopped by pid.
#
# Commands run in a namespace with nsenter --net, not ip netns exec: the
# latter remounts /sys and so hides the bpffs at /sys/fs/bpf, where the maps
# are pinned.

NM_PIDS=()	# background processes to stop, by pid
NM_NETNS=()	# namespaces to delete, in creation order
NM_PIN_ROOTS=()	# bpffs pin roots to remove
NM_TMPDIRS=()	# scratch directories to remove
NM_LAST_PID=
NM_GATEWAY=169.254.1.1	# link-local gateway of every pod, on the host-side veths

# ------------------------------------------------------------------ TAP

NM_TAP_N=0
NM_TAP_FAILED=0

nm_diag() {
	printf '# %s\n' "$*"
}

# Prefix every line of stdin with "# ", so command output stays valid TAP.
nm_indent() {
	sed -u 's/^/#   /'
}

nm_plan() {
	echo "1..$1"
}

nm_ok() {
	NM_TAP_N=$((NM_TAP_N + 1))
	echo "ok $NM_TAP_N - $1"
}

nm_not_ok() {
	NM_TAP_N=$((NM_TAP_N + 1))
	NM_TAP_FAILED=$((NM_TAP_FAILED + 1))
	echo "not ok $NM_TAP_N - $1"
}

# nm_skip NAME REASON
nm_skip() {
	NM_TAP_N=$((NM_TAP_N + 1))
	echo "ok $NM_TAP_N - $1 # SKIP $2"
}

# Skip a whole test file before its plan: "1..0 # SKIP reason", exit 0.
nm_skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

# Stop after the plan: the runner counts the tests not reported as failed.
nm_bail() {
	echo "Bail out! $*"
	exit 1
}

# nm_test NAME FUNCTION [ARGS...]: run FUNCTION in this shell, its output
# shown as TAP diagnostics, and report ok/not ok by its exit status.
nm_test() {
	local name=$1 out rc
	shift
	out=$(mktemp)
	"$@" >"$out" 2>&1
	rc=$?
	nm_indent <"$out"
	rm -f "$out"
	if [ "$rc" -eq 0 ]; then
		nm_ok "$name"
	else
		nm_not_ok "$name"
	fi
}

# Exit status for the end of a test file: 0 iff no test failed.
nm_tap_status() {
	[ "$NM_TAP_FAILED" -eq 0 ]
}

# -------------------------------------------------------------- cleanup

# Forget a pid we already reaped (so cleanup never signals a reused pid).
nm_pid_forget() {
	local i
	for i in "${!NM_PIDS[@]}"; do
		[ "${NM_PIDS[$i]}" = "$1" ] && unset 'NM_PIDS[i]'
	done
}

nm_cleanup() {
	local pid ns dir i tries

	for pid in "${NM_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${NM_PIDS[@]}"; do
		tries=0
		while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 20 ]; do
			sleep 0.1
			tries=$((tries + 1))
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	NM_PIDS=()

	# Pods first, then the node: deleting a namespace deletes its veths
	# and with them the tc programs attached to them.
	for ((i = ${#NM_NETNS[@]} - 1; i >= 0; i--)); do
		ns=${NM_NETNS[i]}
		ip netns del "$ns" 2>/dev/null
	done
	NM_NETNS=()

	for dir in "${NM_PIN_ROOTS[@]}"; do
		case "$dir" in
		/sys/fs/bpf/nm-?*) rm -rf -- "$dir" ;;
		*) nm_diag "not removing unexpected pin root '$dir'" ;;
		esac
	done
	NM_PIN_ROOTS=()

	for dir in "${NM_TMPDIRS[@]}"; do
		rm -rf -- "$dir"
	done
	NM_TMPDIRS=()
}

# Clean up on every exit; INT and TERM exit (running the EXIT trap).
nm_trap_setup() {
	trap nm_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# nm_e2e_start PREFIX PLAN: the prologue of a test run as "$0 BUILD_DIR"
# (BUILD set): sets PROBE, CTL, PREFIX and PIN_ROOT=/sys/fs/bpf/PREFIX,
# installs the cleanup trap, skips the whole file with the reason when the
# kernel lacks something or a binary is not built, then prints the plan.
nm_e2e_start() {
	local reason

	PROBE=$BUILD/tests/e2e/nm_probe
	CTL=$BUILD/nodemeshctl
	PREFIX=$1
	PIN_ROOT="/sys/fs/bpf/$PREFIX"
	nm_trap_setup
	reason=$(nm_kernel_probe) || nm_skip_all "$reason"
	[ -x "$PROBE" ] || nm_skip_all "$PROBE not built (make all)"
	[ -x "$CTL" ] || nm_skip_all "$CTL not built (make all)"
	nm_plan "$2"
}

# nm_tmpdir VAR: make a scratch directory, removed on cleanup, path in VAR.
# (Not used as $(nm_tmpdir): the subshell would lose the cleanup entry.)
nm_tmpdir() {
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/nm-e2e.XXXXXX") || return 1
	NM_TMPDIRS+=("$d")
	printf -v "$1" '%s' "$d"
}

# ------------------------------------------------------------ namespaces

# nm_exec NS CMD...: run CMD in the network namespace NS (mounts untouched).
nm_exec() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" -- "$@"
}

# nm_bg NS CMD...: start CMD in NS in the background; its pid goes to
# NM_LAST_PID and to the cleanup list (nsenter execs, so it is CMD's pid).
nm_bg() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" -- "$@" &
	NM_LAST_PID=$!
	NM_PIDS+=("$NM_LAST_PID")
}

# Print why this machine cannot run the netns testbed; return 1 if so.
nm_kernel_probe() {
	local ns="nm-probe-$$" cmd ok=1 why=

	if [ "$(id -u)" -ne 0 ]; then
		echo "needs root"
		return 1
	fi
	for cmd in ip tc nsenter timeout sysctl; do
		if ! command -v "$cmd" >/dev/null; then
			echo "missing command: $cmd"
			return 1
		fi
	done
	if ! ip netns add "$ns" 2>/dev/null; then
		echo "kernel or ip lacks network namespaces (ip netns add failed)"
		return 1
	fi
	if ! ip -n "$ns" link add nmp0 type veth peer name nmp1 2>/dev/null; then
		why="kernel lacks veth (ip link add type veth failed)"
		ok=0
	elif ! tc -n "$ns" qdisc add dev nmp0 clsact 2>/dev/null; then
		why="kernel lacks the tc clsact qdisc (sch_ingress)"
		ok=0
	fi
	ip netns del "$ns" 2>/dev/null
	if [ "$ok" -eq 0 ]; then
		echo "$why"
		return 1
	fi
	if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != "bpf_fs" ]; then
		echo "no bpffs mounted at /sys/fs/bpf"
		return 1
	fi
	return 0
}

# nm_node_add NS: a node namespace that forwards between its pods.
nm_node_add() {
	local ns=$1

	ip netns add "$ns" || return 1
	NM_NETNS+=("$ns")
	ip -n "$ns" link set lo up || return 1
	# Forwarding inside the node namespace only.
	nm_exec "$ns" sysctl -qw net.ipv4.ip_forward=1 || return 1
}

# nm_pod_add NODE POD HOSTIF ADDR: a pod namespace with eth0 = ADDR/32,
# default route via the link-local gateway on the node's side of the veth
# (HOSTIF, in NODE), and a /32 route to the pod in NODE (ptp-style wiring).
nm_pod_add() {
	local node=$1 pod=$2 hostif=$3 addr=$4

	ip netns add "$pod" || return 1
	NM_NETNS+=("$pod")
	ip -n "$pod" link set lo up || return 1
	ip -n "$node" link add "$hostif" type veth peer name eth0 \
		netns "$pod" || return 1
	ip -n "$node" addr add "$NM_GATEWAY/32" dev "$hostif" scope link ||
		return 1
	ip -n "$node" link set "$hostif" up || return 1
	ip -n "$node" route add "$addr/32" dev "$hostif" scope link ||
		return 1

	ip -n "$pod" addr add "$addr/32" dev eth0 || return 1
	ip -n "$pod" link set eth0 up || return 1
	ip -n "$pod" route add default via "$NM_GATEWAY" dev eth0 onlink ||
		return 1
}

# nm_wait_file FILE [TIMEOUT_S]: wait until FILE exists and is not empty.
nm_wait_file() {
	local file=$1 tries=$((${2:-5} * 10))

	while [ ! -s "$file" ] && [ "$tries" -gt 0 ]; do
		sleep 0.1
		tries=$((tries - 1))
	done
	[ -s "$file" ]
}

# ----------------------------------------- one node, a client, 3 backends

NM_CLIENT_IP=10.244.1.10
NM_BACKEND_NAMES=(b1 b2 b3)
NM_BACKEND_IPS=(10.244.1.11 10.244.1.12 10.244.1.13)
NM_BACKEND_PORT=8080
# shellcheck disable=SC2034 # used by the scripts that source this file
NM_VIP=10.96.0.10

# nm_lb_topology_up PREFIX PROBE_BIN: build the node (PREFIX-node), the
# client pod (PREFIX-client) and backends (PREFIX-b1..b3), each backend
# running "nm_probe serve" (TCP and UDP) on port 8080 under its name. Sets
# NM_NODE, NM_CLIENT, NM_BACKEND_NS[], NM_IFACES[] and NM_WORKDIR.
nm_lb_topology_up() {
	local prefix=$1 probe=$2 i name

	nm_tmpdir NM_WORKDIR || return 1
	NM_NODE="$prefix-node"
	NM_CLIENT="$prefix-client"
	NM_BACKEND_NS=()
	NM_IFACES=(nm-client)

	nm_node_add "$NM_NODE" || return 1
	nm_pod_add "$NM_NODE" "$NM_CLIENT" nm-client "$NM_CLIENT_IP" ||
		return 1
	for i in "${!NM_BACKEND_NAMES[@]}"; do
		name=${NM_BACKEND_NAMES[i]}
		NM_BACKEND_NS+=("$prefix-$name")
		NM_IFACES+=("nm-$name")
		nm_pod_add "$NM_NODE" "$prefix-$name" "nm-$name" \
			"${NM_BACKEND_IPS[i]}" || return 1
		nm_bg "$prefix-$name" "$probe" serve --port "$NM_BACKEND_PORT" \
			--name "$name" --udp --pidfile "$NM_WORKDIR/$name.pid"
	done
	# The pid file is written once the sockets listen.
	for name in "${NM_BACKEND_NAMES[@]}"; do
		if ! nm_wait_file "$NM_WORKDIR/$name.pid" 5; then
			echo "backend $name did not start" >&2
			return 1
		fi
	done
}

# "b1:10.244.1.11:8080 ..." -> backend specs, optionally without one name.
# nm_backend_specs [EXCLUDE_NAME]
nm_backend_specs() {
	local i
	for i in "${!NM_BACKEND_NAMES[@]}"; do
		[ "${NM_BACKEND_NAMES[i]}" = "${1:-}" ] && continue
		echo "${NM_BACKEND_IPS[i]}:$NM_BACKEND_PORT"
	done
}

# Per-name counts of stdin ("NAME" per line) as "b1=20 b2=19 b3=21".
nm_spread() {
	sort | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " } END { print "" }'
}

# nm_pod_mac NS: the MAC address of eth0 in pod NS.
nm_pod_mac() {
	ip -n "$1" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# ------------------------- one node, three labelled clients, one server

# shellcheck disable=SC2034 # used by the scripts that source this file
NM_POL_CLIENTS=(frontend backend-x other)
NM_POL_CLIENT_IPS=(10.244.2.10 10.244.2.11 10.244.2.12)
NM_POL_SERVER_IP=10.244.2.20
NM_POL_PORTS=(8080 9090)

# nm_policy_topology_up PREFIX PROBE_BIN: the node (PREFIX-node), client
# pods PREFIX-frontend, PREFIX-backend-x, PREFIX-other and a server pod
# PREFIX-server running "nm_probe serve" (name "server") on 8080 and 9090.
# Host-side veths are nm-<name>. Sets NM_NODE, NM_SERVER, NM_IFACES[] and
# NM_WORKDIR.
nm_policy_topology_up() {
	local prefix=$1 probe=$2 i name port

	nm_tmpdir NM_WORKDIR || return 1
	NM_NODE="$prefix-node"
	NM_SERVER="$prefix-server"
	NM_IFACES=()

	nm_node_add "$NM_NODE" || return 1
	for i in "${!NM_POL_CLIENTS[@]}"; do
		name=${NM_POL_CLIENTS[i]}
		NM_IFACES+=("nm-$name")
		nm_pod_add "$NM_NODE" "$prefix-$name" "nm-$name" \
			"${NM_POL_CLIENT_IPS[i]}" || return 1
	done
	NM_IFACES+=(nm-server)
	nm_pod_add "$NM_NODE" "$NM_SERVER" nm-server "$NM_POL_SERVER_IP" ||
		return 1
	for port in "${NM_POL_PORTS[@]}"; do
		nm_bg "$NM_SERVER" "$probe" serve --port "$port" --name server \
			--pidfile "$NM_WORKDIR/server-$port.pid"
	done
	for port in "${NM_POL_PORTS[@]}"; do
		if ! nm_wait_file "$NM_WORKDIR/server-$port.pid" 5; then
			echo "server on port $port did not start" >&2
			return 1
		fi
	done
}

# ------------------------------------------------------------------ etcd

# nm_etcd_start VAR: a real etcd on 127.0.0.1 (free ports, data in a scratch
# directory removed on cleanup); its client URL goes to VAR, its pid to
# NM_LAST_PID and the cleanup list. Waits until it answers.
nm_etcd_start() {
	local var=$1 dir cport pport try tries pid url

	nm_tmpdir dir || return 1
	for try in 1 2 3 4 5; do
		cport=$((20000 + RANDOM % 20000))
		pport=$((cport + 1))
		# Taken ports make etcd exit; then the next try picks others.
		if ss -Hltn "( sport = :$cport or sport = :$pport )" | grep -q .; then
			continue
		fi
		url="http://127.0.0.1:$cport"
		rm -rf -- "$dir/data"
		etcd --name nm --data-dir "$dir/data" \
			--listen-client-urls "$url" --advertise-client-urls "$url" \
			--listen-peer-urls "http://127.0.0.1:$pport" \
			--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
			--initial-cluster "nm=http://127.0.0.1:$pport" \
			--initial-cluster-token "nm-e2e-$$-$cport" \
			--logger zap --log-level warn >>"$dir/etcd.log" 2>&1 </dev/null &
		pid=$!
		NM_PIDS+=("$pid")
		tries=100
		while [ "$tries" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
			if ETCDCTL_API=3 etcdctl --endpoints="$url" \
				--dial-timeout=1s endpoint health >/dev/null 2>&1; then
				NM_LAST_PID=$pid
				printf -v "$var" '%s' "$url"
				return 0
			fi
			sleep 0.1
			tries=$((tries - 1))
		done
		nm_etcd_stop "$pid"
	done
	echo "etcd did not start (log: $dir/etcd.log)" >&2
	sed 's/^/etcd: /' "$dir/etcd.log" | tail -5 >&2
	return 1
}

# nm_etcd_stop PID: stop an etcd (or any process we started) by pid.
nm_etcd_stop() {
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	nm_pid_forget "$1"
}

# nm_etcdctl URL ARGS...: etcdctl with the v3 API against one etcd.
nm_etcdctl() {
	local url=$1
	shift
	ETCDCTL_API=3 etcdctl --endpoints="$url" --dial-timeout=2s \
		--command-timeout=5s "$@"
}

# nm_wait_for TIMEOUT_S CMD...: run CMD every 0.2 s until it succeeds.
nm_wait_for() {
	local tries=$(($1 * 5))
	shift
	while [ "$tries" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		tries=$((tries - 1))
	done
	"$@"
}
