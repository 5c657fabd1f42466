#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# A multi-cluster nodemesh testbed of network namespaces on one machine:
# a fabric namespace with a bridge, one real etcd per cluster listening on
# that bridge, one namespace per node with a real nodemesh-agent, and pods
# as namespaces wired by the standard CNI ptp plugin with nodemesh-cni
# chained after it.
#
#   testbed.sh up [-c N] [-m M] [-d DIR]     N clusters (a, b, ...) of M nodes
#   testbed.sh down [-d DIR]                 remove everything up created
#   testbed.sh status [-d DIR]
#   testbed.sh pod add CLUSTER NODE POD [k=v,k2=v2]
#   testbed.sh pod del CLUSTER NODE POD
#   testbed.sh pod ip POD...
#   testbed.sh exec NODE|POD|fabric -- CMD...
#   testbed.sh ctl NODE -- NODEMESHCTL_ARGS...
#   testbed.sh etcdctl CLUSTER -- ETCDCTL_ARGS...
#   testbed.sh etcd stop|start CLUSTER
#   testbed.sh agent start|stop|restart NODE
#
# Every command takes -d DIR before its arguments too (default $NMTB_DIR,
# else /run/nmtb). The namespace prefix is $NMTB_PREFIX (default nmtb) at
# 'up' and recorded in DIR for the other commands; binaries come from
# $NM_BUILD (default: build/ next to this script's directory).
#
# Layout, for cluster number c (a = 1, b = 2, ...) and node number n:
#   PREFIX-fabric   bridge br0; etcd of cluster c on http://172.30.c.250:2379
#                   (its peer URL on 127.0.0.1 inside the fabric namespace)
#   PREFIX-<c><n>   node (e.g. PREFIX-a1): eth0 172.30.c.n/16 on br0, MTU
#                   1500, forwarding on, no default route; its agent, pod
#                   CIDR 10.c.n.0/24, maps pinned under /sys/fs/bpf/PREFIX/a1
#   PREFIX-<node>-<pod>  pod: eth0 from ptp (MTU 1450), default route via
#                   the node
#
# Safety: every address lives inside namespaces created here and nothing
# routes out of them; the root namespace's addresses, routes and links are
# never touched (veth pairs are created inside the namespaces). Processes
# are stopped by the pids recorded in DIR.
#
# Commands run in a namespace with nsenter --net, not ip netns exec: the
# latter remounts /sys and so hides the bpffs at /sys/fs/bpf.
set -u

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${NM_BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || BUILD=$PWD/$BUILD ;; esac
AGENT=$BUILD/nodemesh-agent
CTL=$BUILD/nodemeshctl
CNI=$BUILD/nodemesh-cni
CNI_DIR=${NMTB_CNI_PATH:-/usr/lib/cni}
DIR=${NMTB_DIR:-/run/nmtb}

POD_MTU=1450
UNDERLAY_MTU=1500
ETCD_PEER_PORT_BASE=12380

# Recorded at 'up' in DIR/testbed.env, read back by every other command.
PREFIX=${NMTB_PREFIX:-nmtb}
CLUSTERS=0
NODES_PER=0

die() {
	echo "testbed: $*" >&2
	exit 1
}

warn() {
	echo "testbed: $*" >&2
}

usage() {
	sed -n '/^#   testbed.sh/s/^#   //p' "${BASH_SOURCE[0]}" |
		awk '{ print (NR == 1 ? "usage: " : "       ") $0 }' >&2
	exit 2
}

# ------------------------------------------------------------- naming

# Cluster number 1.. -> name a..z, and back.
cluster_name() {
	local letters=abcdefghijklmnopqrstuvwxyz
	echo "${letters:$(($1 - 1)):1}"
}

cluster_id() {
	local letters=abcdefghijklmnopqrstuvwxyz i
	for ((i = 0; i < 26; i++)); do
		[ "${letters:i:1}" = "$1" ] && { echo $((i + 1)); return 0; }
	done
	return 1
}

fabric_ns() { echo "$PREFIX-fabric"; }
node_ns() { echo "$PREFIX-$1"; }
etcd_ip() { echo "172.30.$1.250"; }
etcd_url() { echo "http://$(etcd_ip "$1"):2379"; }
pin_root() { echo "/sys/fs/bpf/$PREFIX/$1"; }

# node_parse NODE: sets N_CLUSTER, N_CID, N_NUM, N_IP, N_NAME for a node of
# this testbed ("a1"), or fails.
node_parse() {
	local name=$1 c num

	c=${name:0:1}
	num=${name:1}
	case "$num" in '' | *[!0-9]* | 0*) return 1 ;; esac
	N_CID=$(cluster_id "$c") || return 1
	[ "$N_CID" -le "$CLUSTERS" ] && [ "$num" -le "$NODES_PER" ] || return 1
	N_CLUSTER=$c
	N_NUM=$num
	N_IP="172.30.$N_CID.$num"
}

all_nodes() {
	local c n
	for ((c = 1; c <= CLUSTERS; c++)); do
		for ((n = 1; n <= NODES_PER; n++)); do
			echo "$(cluster_name "$c")$n"
		done
	done
}

# ------------------------------------------------------------ records

# record FILE LINE: append LINE to DIR/FILE (namespaces, pin roots) before
# the thing exists, so 'down' removes it even after a failure half-way.
record() {
	echo "$2" >>"$DIR/$1"
}

# records FILE: the lines of DIR/FILE, each once, in first-seen order.
records() {
	[ -f "$DIR/$1" ] || return 0
	awk 'NF && !seen[$0]++' "$DIR/$1"
}

load_env() {
	local k v
	[ -f "$DIR/testbed.env" ] || die "no testbed in $DIR (testbed.sh up first)"
	while IFS='=' read -r k v; do
		case "$k" in
		PREFIX) PREFIX=$v ;;
		CLUSTERS) CLUSTERS=$v ;;
		NODES_PER) NODES_PER=$v ;;
		esac
	done <"$DIR/testbed.env"
}

# ---------------------------------------------------------- processes

# alive PID: running and not a zombie.
alive() {
	local st
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# ours PID EXE: PID is alive and runs EXE (its basename), so a recorded pid
# that the kernel gave to another process since is never signalled.
ours() {
	local exe
	alive "$1" || return 1
	exe=$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | head -1)
	[ "$(basename -- "$exe")" = "$2" ]
}

# stop_pidfile FILE EXE [TERM_WAIT_S]: SIGTERM, wait, SIGKILL; removes FILE.
stop_pidfile() {
	local file=$1 exe=$2 tries pid

	[ -f "$file" ] || return 0
	pid=$(cat "$file")
	if ours "$pid" "$exe"; then
		kill -TERM "$pid" 2>/dev/null
		tries=$((${3:-10} * 20))
		while alive "$pid" && [ "$tries" -gt 0 ]; do
			sleep 0.05
			tries=$((tries - 1))
		done
		if alive "$pid"; then
			warn "$exe (pid $pid) ignored SIGTERM; killing it"
			kill -KILL "$pid" 2>/dev/null
			tries=100
			while alive "$pid" && [ "$tries" -gt 0 ]; do
				sleep 0.05
				tries=$((tries - 1))
			done
		fi
	fi
	rm -f "$file"
}

# in_ns NS CMD...: run CMD in network namespace NS.
in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" -- "$@"
}

# --------------------------------------------------------------- etcd

etcdctl_c() { # etcdctl_c CID ARGS...
	local cid=$1
	shift
	ETCDCTL_API=3 in_ns "$(fabric_ns)" etcdctl --endpoints="$(etcd_url "$cid")" \
		--dial-timeout=2s --command-timeout=5s "$@"
}

etcd_start() { # etcd_start CID
	local cid=$1 name d url pport
	name=$(cluster_name "$cid")
	d=$DIR/etcd/$name
	url=$(etcd_url "$cid")
	pport=$((ETCD_PEER_PORT_BASE + cid))
	mkdir -p "$d" || return 1
	nsenter --net="/run/netns/$(fabric_ns)" -- \
		etcd --name "$name" --data-dir "$d/data" \
		--listen-client-urls "$url" --advertise-client-urls "$url" \
		--listen-peer-urls "http://127.0.0.1:$pport" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "$name=http://127.0.0.1:$pport" \
		--initial-cluster-token "$PREFIX-$name" \
		--logger zap --log-level warn >>"$d/etcd.log" 2>&1 </dev/null &
	echo $! >"$d/etcd.pid"
}

etcd_healthy() { # etcd_healthy CID
	etcdctl_c "$1" endpoint health >/dev/null 2>&1
}

# -------------------------------------------------------------- agents

agent_sock() { echo "$DIR/$1/agent.sock"; }

agent_ready() { # agent_ready NODE
	curl -sf --max-time 2 --unix-socket "$(agent_sock "$1")" \
		http://localhost/v1/status >/dev/null 2>&1
}

# write_agent_config NODE: DIR/NODE/agent.yaml and its remote-cluster files.
write_agent_config() {
	local node=$1 d c
	node_parse "$node" || return 1
	d=$DIR/$node
	mkdir -p "$d/state" "$d/remotes" "$d/ipam" || return 1
	{
		echo "cluster: $N_CLUSTER"
		echo "cluster_id: $N_CID"
		echo "etcd:"
		echo "  endpoints: [$(etcd_url "$N_CID")]"
		echo "pin_root: $(pin_root "$node")"
		echo "state_dir: $d/state"
		echo "remote_clusters_dir: $d/remotes"
		# The overlay: the default once the config knows the key.
		if grep -q '"tunnel"' "$TOP/agent/config.c" 2>/dev/null; then
			echo "tunnel: vxlan"
		fi
	} >"$d/agent.yaml" || return 1
	for ((c = 1; c <= CLUSTERS; c++)); do
		[ "$c" -eq "$N_CID" ] && continue
		printf 'name: %s\nid: %s\nendpoints: [%s]\n' "$(cluster_name "$c")" \
			"$c" "$(etcd_url "$c")" >"$d/remotes/$(cluster_name "$c").yaml" ||
			return 1
	done
}

# agent_spawn NODE: start NODE's agent in its namespace (no waiting).
agent_spawn() {
	local node=$1 d
	node_parse "$node" || return 1
	d=$DIR/$node
	if [ -f "$d/agent.pid" ] && ours "$(cat "$d/agent.pid")" nodemesh-agent; then
		warn "agent of $node already runs (pid $(cat "$d/agent.pid"))"
		return 1
	fi
	record pinroots "$(pin_root "$node")"
	echo "--- start $(date '+%F %T')" >>"$d/agent.log"
	nsenter --net="/run/netns/$(node_ns "$node")" -- \
		"$AGENT" --config "$d/agent.yaml" --node "$node" \
		--node-ip "$N_IP" --pod-cidr "10.$N_CID.$N_NUM.0/24" \
		--socket "$(agent_sock "$node")" -v >>"$d/agent.log" 2>&1 </dev/null &
	echo $! >"$d/agent.pid"
}

# agent_wait TIMEOUT_S NODE...: until every agent answers GET /v1/status.
agent_wait() {
	local tries=$(($1 * 10)) node pending
	shift
	while :; do
		pending=()
		for node in "$@"; do
			agent_ready "$node" && continue
			if ! alive "$(cat "$DIR/$node/agent.pid" 2>/dev/null)"; then
				warn "agent of $node exited; log $DIR/$node/agent.log:"
				tail -n 15 "$DIR/$node/agent.log" | sed 's/^/  /' >&2
				return 1
			fi
			pending+=("$node")
		done
		[ "${#pending[@]}" -eq 0 ] && return 0
		tries=$((tries - 1))
		if [ "$tries" -le 0 ]; then
			warn "agents not answering on their sockets: ${pending[*]}"
			return 1
		fi
		sleep 0.1
		set -- "${pending[@]}"
	done
}

agent_stop() { # agent_stop NODE
	stop_pidfile "$DIR/$1/agent.pid" nodemesh-agent 10
}

# ------------------------------------------------------------------ up

cmd_up() {
	local c n node ns fab cid pending tries opt nodes=()

	OPTIND=1
	CLUSTERS=2
	NODES_PER=2
	while getopts c:m:d: opt; do
		case "$opt" in
		c) CLUSTERS=$OPTARG ;;
		m) NODES_PER=$OPTARG ;;
		d) DIR=$OPTARG ;;
		*) usage ;;
		esac
	done
	shift $((OPTIND - 1))
	[ $# -eq 0 ] || usage
	case "$CLUSTERS" in '' | *[!0-9]*) die "-c wants a number" ;; esac
	case "$NODES_PER" in '' | *[!0-9]*) die "-m wants a number" ;; esac
	if [ "$CLUSTERS" -lt 1 ] || [ "$CLUSTERS" -gt 26 ]; then die "-c: 1..26 clusters"; fi
	if [ "$NODES_PER" -lt 1 ] || [ "$NODES_PER" -gt 200 ]; then die "-m: 1..200 nodes"; fi
	case "$PREFIX" in
	[a-z]*) ;;
	*) die "prefix '$PREFIX' must start with a lowercase letter" ;;
	esac
	case "$PREFIX" in *[!a-z0-9-]*) die "prefix '$PREFIX': only a-z, 0-9 and '-'" ;; esac

	preflight
	[ -e "$DIR/testbed.env" ] && die "a testbed is already up in $DIR (testbed.sh down -d $DIR)"
	[ -e "/run/netns/$(fabric_ns)" ] &&
		die "namespace $(fabric_ns) exists already (another testbed with prefix $PREFIX?)"
	[ -e "/sys/fs/bpf/$PREFIX" ] && die "/sys/fs/bpf/$PREFIX exists already (another testbed with prefix $PREFIX?)"
	for node in $(all_nodes); do
		[ -e "/run/netns/$(node_ns "$node")" ] &&
			die "namespace $(node_ns "$node") exists already (another testbed with prefix $PREFIX?)"
	done
	mkdir -p "$DIR" || die "cannot create $DIR"
	DIR=$(cd "$DIR" && pwd)
	printf 'PREFIX=%s\nCLUSTERS=%s\nNODES_PER=%s\n' "$PREFIX" "$CLUSTERS" \
		"$NODES_PER" >"$DIR/testbed.env" || die "cannot write $DIR"
	mkdir -p "$DIR/pods"

	# From here on a failure tears down what was built.
	trap 'warn "up failed; tearing down"; cmd_down_dir; exit 1' ERR
	trap 'warn "interrupted; tearing down"; cmd_down_dir; exit 130' INT TERM
	set -E
	fab=$(fabric_ns)
	record netns "$fab"
	ip netns add "$fab"
	ip -n "$fab" link set lo up
	# A fixed MAC: otherwise the bridge takes its lowest port's, and a port
	# added later (a test's extra namespace) changes it under the nodes'
	# ARP caches, cutting them off from the etcds for seconds.
	ip -n "$fab" link add br0 address 02:00:00:00:00:fe type bridge
	ip -n "$fab" link set br0 up
	for ((c = 1; c <= CLUSTERS; c++)); do
		ip -n "$fab" addr add "$(etcd_ip "$c")/16" dev br0
	done

	for ((c = 1; c <= CLUSTERS; c++)); do
		etcd_start "$c"
	done

	for node in $(all_nodes); do
		node_parse "$node"
		ns=$(node_ns "$node")
		nodes+=("$node")
		record netns "$ns"
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		# Both ends are born inside the testbed: the fabric end here,
		# the node end moved to its namespace at creation.
		ip -n "$fab" link add "tb-$node" mtu "$UNDERLAY_MTU" type veth \
			peer name eth0 mtu "$UNDERLAY_MTU" netns "$ns"
		ip -n "$fab" link set "tb-$node" master br0 up
		ip -n "$ns" addr add "$N_IP/16" dev eth0
		ip -n "$ns" link set eth0 up
		in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
		write_agent_config "$node"
	done

	# Every etcd answers before any agent starts.
	pending=$CLUSTERS
	tries=300
	while [ "$pending" -gt 0 ]; do
		pending=0
		for ((c = 1; c <= CLUSTERS; c++)); do
			etcd_healthy "$c" && continue
			pending=$((pending + 1))
			if ! alive "$(cat "$DIR/etcd/$(cluster_name "$c")/etcd.pid")"; then
				warn "etcd of cluster $(cluster_name "$c") exited:"
				tail -n 5 "$DIR/etcd/$(cluster_name "$c")/etcd.log" >&2
				false
			fi
		done
		[ "$pending" -eq 0 ] && break
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || { warn "etcd did not come up"; false; }
		sleep 0.1
	done

	for node in "${nodes[@]}"; do
		agent_spawn "$node"
	done
	agent_wait 60 "${nodes[@]}"
	trap - ERR INT TERM
	set +E

	echo "testbed up in $DIR: $CLUSTERS cluster(s) x $NODES_PER node(s), prefix $PREFIX"
	for ((cid = 1; cid <= CLUSTERS; cid++)); do
		echo "  cluster $(cluster_name "$cid") (id $cid): etcd $(etcd_url "$cid")"
	done
	for node in "${nodes[@]}"; do
		node_parse "$node"
		echo "  node $node: ns $(node_ns "$node"), $N_IP, pods 10.$N_CID.$N_NUM.0/24, agent pid $(cat "$DIR/$node/agent.pid")"
	done
}

preflight() {
	local cmd
	[ "$(id -u)" -eq 0 ] || die "needs root"
	for cmd in ip nsenter etcd etcdctl jq curl sysctl awk; do
		command -v "$cmd" >/dev/null || die "missing command $cmd (scripts/deps.sh)"
	done
	[ -x "$AGENT" ] || die "$AGENT not built (make all)"
	[ -x "$CTL" ] || die "$CTL not built (make all)"
	[ -x "$CNI_DIR/ptp" ] || die "CNI plugin $CNI_DIR/ptp missing (containernetworking-plugins)"
	[ -x "$CNI_DIR/host-local" ] ||
		die "CNI plugins ptp/host-local missing in $CNI_DIR (containernetworking-plugins)"
	[ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ] ||
		die "no bpffs mounted at /sys/fs/bpf"
}

# ---------------------------------------------------------------- down

cmd_down() {
	local opt
	OPTIND=1
	while getopts d: opt; do
		case "$opt" in
		d) DIR=$OPTARG ;;
		*) usage ;;
		esac
	done
	shift $((OPTIND - 1))
	[ $# -eq 0 ] || usage
	if [ ! -f "$DIR/testbed.env" ]; then
		echo "testbed: nothing to take down in $DIR"
		return 0
	fi
	load_env
	cmd_down_dir
	echo "testbed down ($DIR removed)"
}

# Tear down what DIR's records name; tolerant of anything missing.
cmd_down_dir() {
	local f ns root i list pid stoppers

	trap - ERR
	set +E
	# Agents first (they revoke their leases in their etcd), in parallel.
	# (Waiting for the stoppers by pid: after a failed up, the daemons
	# themselves are children of this shell too.)
	stoppers=()
	for f in "$DIR"/*/agent.pid; do
		[ -f "$f" ] || continue
		stop_pidfile "$f" nodemesh-agent 10 &
		stoppers+=($!)
	done
	for pid in "${stoppers[@]}"; do
		wait "$pid"
	done
	stoppers=()
	for f in "$DIR"/etcd/*/etcd.pid; do
		[ -f "$f" ] || continue
		stop_pidfile "$f" etcd 5 &
		stoppers+=($!)
	done
	for pid in "${stoppers[@]}"; do
		wait "$pid"
	done

	# Pods, then nodes, then the fabric: the reverse of creation.
	mapfile -t list < <(records netns)
	for ((i = ${#list[@]} - 1; i >= 0; i--)); do
		ns=${list[i]}
		case "$ns" in
		"$PREFIX"-*) ;;
		*) warn "not deleting unexpected namespace '$ns'"; continue ;;
		esac
		[ -e "/run/netns/$ns" ] || continue
		ip netns del "$ns" 2>/dev/null || warn "failed to delete namespace $ns"
	done

	while read -r root; do
		case "$root" in
		"/sys/fs/bpf/$PREFIX"/?*) rm -rf -- "$root" ;;
		*) warn "not removing unexpected pin root '$root'" ;;
		esac
	done < <(records pinroots)
	[ -d "/sys/fs/bpf/$PREFIX" ] && rmdir "/sys/fs/bpf/$PREFIX" 2>/dev/null

	case "$DIR" in
	/ | "") warn "not removing '$DIR'" ;;
	*) rm -rf -- "$DIR" ;;
	esac
}

# -------------------------------------------------------------- status

cmd_status() {
	local opt c node pid st name ip json f line
	OPTIND=1
	while getopts d: opt; do
		case "$opt" in
		d) DIR=$OPTARG ;;
		*) usage ;;
		esac
	done
	shift $((OPTIND - 1))
	load_env
	echo "testbed $DIR: prefix $PREFIX, $CLUSTERS cluster(s) x $NODES_PER node(s)"
	echo "clusters:"
	for ((c = 1; c <= CLUSTERS; c++)); do
		name=$(cluster_name "$c")
		pid=$(cat "$DIR/etcd/$name/etcd.pid" 2>/dev/null)
		st=down
		ours "$pid" etcd && st=running
		etcd_healthy "$c" && st="$st, healthy"
		printf '  %-2s id %-3s etcd %-26s pid %-8s %s\n' "$name" "$c" \
			"$(etcd_url "$c")" "${pid:--}" "$st"
	done
	echo "nodes:"
	for node in $(all_nodes); do
		node_parse "$node"
		pid=$(cat "$DIR/$node/agent.pid" 2>/dev/null)
		st="agent down"
		ours "$pid" nodemesh-agent && st="agent running"
		printf '  %-4s %-14s pods 10.%s.%s.0/24  agent pid %-8s %s\n' \
			"$node" "$N_IP" "$N_CID" "$N_NUM" "${pid:--}" "$st"
		if agent_ready "$node"; then
			ctl_run "$node" -o json status 2>/dev/null | jq -r '
				"       lease \(if .lease.ok then "ok" else "LOST" end), " +
				"\(.publisher.endpoints) endpoint(s) published, clusters: " +
				([.clusters[] | "\(.name) \(if .synced then "synced" elif .connected then "connected" else "DOWN" end)" +
				  " (\(.records) records\(if .rejected > 0 then ", \(.rejected) rejected" else "" end))"] | join(", "))' 2>/dev/null ||
				echo "       (nodemeshctl status failed)"
		fi
	done
	echo "pods:"
	for f in "$DIR"/pods/*.meta; do
		[ -f "$f" ] || continue
		name=$(basename "$f" .meta)
		line=$(cat "$f")
		json=$DIR/pods/$name.json
		ip=$(jq -r '.ips[0].address // "-"' "$json" 2>/dev/null)
		# shellcheck disable=SC2086 # meta is "CLUSTER NODE NS CNI"
		set -- $line
		printf '  %-16s cluster %-2s node %-4s %-18s %s\n' "$name" "$1" \
			"$2" "${ip:--}" "$([ "${4:-0}" = 1 ] || echo '(no nodemesh-cni)')"
	done
}

# ----------------------------------------------------------------- ctl

# ctl_run NODE ARGS...: nodemeshctl with NODE's pin root and state dir, in
# its namespace; 'status' and 'diff' are pointed at the agent's socket.
ctl_run() {
	local node=$1 i cmd_at=-1 a
	shift
	node_parse "$node" || die "no node '$node' in this testbed"
	local args=("$@")
	for ((i = 0; i < ${#args[@]}; i++)); do
		a=${args[i]}
		case "$a" in
		--pin-root | --state-dir | --cluster | --cluster-id | -o) i=$((i + 1)) ;;
		-*) ;;
		*) cmd_at=$i; break ;;
		esac
	done
	if [ "$cmd_at" -ge 0 ] && { [ "${args[cmd_at]}" = status ] ||
		[ "${args[cmd_at]}" = diff ]; }; then
		case " ${args[*]} " in
		*" --socket "*) ;;
		*) args+=(--socket "$(agent_sock "$node")") ;;
		esac
	fi
	in_ns "$(node_ns "$node")" "$CTL" --pin-root "$(pin_root "$node")" \
		--state-dir "$DIR/$node/state" "${args[@]}"
}

cmd_ctl() {
	local node=${1:-}
	[ -n "$node" ] || usage
	shift
	[ "${1:-}" = -- ] && shift
	load_env
	ctl_run "$node" "$@"
}

cmd_etcdctl() {
	local c=${1:-} cid
	[ -n "$c" ] || usage
	shift
	[ "${1:-}" = -- ] && shift
	load_env
	if ! cid=$(cluster_id "$c") || [ "$cid" -gt "$CLUSTERS" ]; then
		die "no cluster '$c' in this testbed"
	fi
	etcdctl_c "$cid" "$@"
}

# etcd stop: SIGTERM (its watchers see their streams end); start: the same
# data dir, so the cluster comes back with its keys and its cluster id.
cmd_etcd() {
	local op=${1:-} c=${2:-} cid pidf tries
	{ [ -n "$op" ] && [ -n "$c" ]; } || usage
	load_env
	if ! cid=$(cluster_id "$c") || [ "$cid" -gt "$CLUSTERS" ]; then
		die "no cluster '$c' in this testbed"
	fi
	pidf=$DIR/etcd/$c/etcd.pid
	case "$op" in
	stop) stop_pidfile "$pidf" etcd 5 ;;
	start)
		if [ -f "$pidf" ] && ours "$(cat "$pidf")" etcd; then
			warn "etcd of cluster $c already runs (pid $(cat "$pidf"))"
			return 1
		fi
		etcd_start "$cid" || return 1
		tries=300
		until etcd_healthy "$cid"; do
			if ! alive "$(cat "$pidf")"; then
				warn "etcd of cluster $c exited:"
				tail -n 5 "$DIR/etcd/$c/etcd.log" >&2
				return 1
			fi
			tries=$((tries - 1))
			[ "$tries" -gt 0 ] || { warn "etcd of cluster $c did not come up"; return 1; }
			sleep 0.1
		done
		;;
	*) usage ;;
	esac
}

# ns_of NAME: the namespace of a node, a pod, or "fabric".
ns_of() {
	local name=$1
	if [ "$name" = fabric ]; then
		fabric_ns
	elif node_parse "$name"; then
		node_ns "$name"
	elif [ -f "$DIR/pods/$name.meta" ]; then
		awk '{ print $3; exit }' "$DIR/pods/$name.meta"
	else
		return 1
	fi
}

cmd_exec() {
	local name=${1:-} ns
	[ -n "$name" ] || usage
	shift
	[ "${1:-}" = -- ] && shift
	[ $# -gt 0 ] || usage
	load_env
	ns=$(ns_of "$name") || die "no node or pod '$name' in this testbed"
	in_ns "$ns" "$@"
}

cmd_agent() {
	local op=${1:-} node=${2:-}
	{ [ -n "$op" ] && [ -n "$node" ]; } || usage
	load_env
	node_parse "$node" || die "no node '$node' in this testbed"
	case "$op" in
	stop) agent_stop "$node" ;;
	start)
		agent_spawn "$node" || return 1
		agent_wait 60 "$node"
		;;
	restart)
		agent_stop "$node"
		agent_spawn "$node" || return 1
		agent_wait 60 "$node"
		;;
	*) usage ;;
	esac
}

# ---------------------------------------------------------------- pods

# labels_json "k=v,k2=v2" -> {"k":"v","k2":"v2"}
labels_json() {
	jq -cn --arg s "$1" '
		$s | split(",") | map(select(length > 0)) |
		map(if test("^[^=]+=") then . else error("label \(.) is not KEY=VALUE") end |
		    capture("^(?<key>[^=]+)=(?<value>.*)$")) | from_entries'
}

# cni_call CMD PLUGIN NODE_NS CONTAINER_ID NETNS POD < NETCONF: one plugin.
cni_call() {
	local cmd=$1 plugin=$2 nodens=$3 cid=$4 netns=$5 pod=$6
	in_ns "$nodens" env CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" \
		CNI_NETNS="/run/netns/$netns" CNI_IFNAME=eth0 CNI_PATH="$CNI_DIR" \
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$pod" \
		timeout 60 "$plugin"
}

# pod_conf NODE: the network config both plugins get.
pod_conf() {
	node_parse "$1" || return 1
	jq -cn --arg subnet "10.$N_CID.$N_NUM.0/24" \
		--arg start "10.$N_CID.$N_NUM.10" --arg gw "10.$N_CID.$N_NUM.1" \
		--arg data "$DIR/$1/ipam" --argjson mtu "$POD_MTU" '{
		cniVersion: "1.0.0", name: "nodemesh", type: "ptp", mtu: $mtu,
		ipam: {type: "host-local", ranges: [[{subnet: $subnet,
			rangeStart: $start, gateway: $gw}]],
			routes: [{dst: "0.0.0.0/0"}], dataDir: $data}}'
}

# nm_conf BASE PREV LABELS NODE: nodemesh-cni's config.
nm_conf() {
	jq -c --argjson prev "$2" --argjson labels "$3" --arg sock "$(agent_sock "$4")" \
		'. + {type: "nodemesh-cni", prevResult: $prev, agentSocket: $sock,
		      runtimeConfig: {labels: $labels}}' <<<"$1"
}

pod_args() { # pod_args CLUSTER NODE POD: checks, sets P_NS, P_CID
	local cluster=$1 node=$2 pod=$3
	node_parse "$node" || die "no node '$node' in this testbed"
	[ "$N_CLUSTER" = "$cluster" ] || die "node $node is not in cluster $cluster"
	case "$pod" in
	"" | *[!a-z0-9-]* | -*) die "pod name '$pod': lowercase letters, digits and '-'" ;;
	esac
	if [ "$pod" = fabric ] || node_parse "$pod"; then
		die "pod name '$pod' is a node's name"
	fi
	node_parse "$node"
	P_NS="$PREFIX-$node-$pod"
	P_CID="$node-$pod"
}

cmd_pod() {
	local op=${1:-}
	[ -n "$op" ] || usage
	shift
	load_env
	case "$op" in
	add) pod_add "$@" ;;
	del) pod_del "$@" ;;
	ip) pod_ip "$@" ;;
	*) usage ;;
	esac
}

pod_add() {
	local cluster=${1:-} node=${2:-} pod=${3:-} labels conf prev out rc nodens use_cni=1
	{ [ -n "$pod" ] && [ $# -le 4 ]; } || usage
	pod_args "$cluster" "$node" "$pod"
	labels=$(labels_json "${4:-}" 2>/dev/null) || die "bad labels '${4:-}' (want k=v,k2=v2)"
	[ -e "$DIR/pods/$pod.meta" ] && die "pod $pod exists already"
	[ -e "/run/netns/$P_NS" ] && die "namespace $P_NS exists already"
	nodens=$(node_ns "$node")
	if [ ! -x "$CNI" ]; then
		warn "$CNI not built: pod $pod gets ptp only (no nodemesh datapath)"
		use_cni=0
	fi
	conf=$(pod_conf "$node") || die "cannot build the network config"

	record netns "$P_NS"
	ip netns add "$P_NS" || die "cannot create namespace $P_NS"
	ip -n "$P_NS" link set lo up
	echo "$cluster $node $P_NS $use_cni" >"$DIR/pods/$pod.meta"

	out=$(cni_call ADD "$CNI_DIR/ptp" "$nodens" "$P_CID" "$P_NS" "$pod" <<<"$conf")
	rc=$?
	if [ "$rc" -ne 0 ]; then
		warn "ptp ADD for $pod failed (exit $rc): $out"
		cni_call DEL "$CNI_DIR/ptp" "$nodens" "$P_CID" "$P_NS" "$pod" <<<"$conf" >/dev/null 2>&1
		pod_forget "$pod"
		return 1
	fi
	prev=$out
	if [ "$use_cni" -eq 1 ]; then
		out=$(nm_conf "$conf" "$prev" "$labels" "$node" |
			cni_call ADD "$CNI" "$nodens" "$P_CID" "$P_NS" "$pod")
		rc=$?
		if [ "$rc" -ne 0 ]; then
			warn "nodemesh-cni ADD for $pod failed (exit $rc): $out"
			nm_conf "$conf" "$prev" "$labels" "$node" |
				cni_call DEL "$CNI" "$nodens" "$P_CID" "$P_NS" "$pod" >/dev/null 2>&1
			jq -c --argjson prev "$prev" '. + {prevResult: $prev}' <<<"$conf" |
				cni_call DEL "$CNI_DIR/ptp" "$nodens" "$P_CID" "$P_NS" "$pod" >/dev/null 2>&1
			pod_forget "$pod"
			return 1
		fi
	fi
	printf '%s\n' "$out" >"$DIR/pods/$pod.json"
	printf '%s\n' "$prev" >"$DIR/pods/$pod.ptp.json"
	printf '%s\n' "$labels" >"$DIR/pods/$pod.labels"
	echo "pod $pod on $node: $(jq -r '.ips[0].address' <<<"$out") (ns $P_NS)"
}

pod_forget() {
	ip netns del "$P_NS" 2>/dev/null
	rm -f "$DIR/pods/$1.meta" "$DIR/pods/$1.json" "$DIR/pods/$1.ptp.json" \
		"$DIR/pods/$1.labels"
}

pod_del() {
	local cluster=${1:-} node=${2:-} pod=${3:-} conf prev labels nodens meta rc=0 out
	{ [ -n "$pod" ] && [ $# -eq 3 ]; } || usage
	pod_args "$cluster" "$node" "$pod"
	[ -f "$DIR/pods/$pod.meta" ] || die "no pod $pod"
	read -r meta <"$DIR/pods/$pod.meta"
	# shellcheck disable=SC2086 # "CLUSTER NODE NS CNI"
	set -- $meta
	{ [ "$1" = "$cluster" ] && [ "$2" = "$node" ]; } || die "pod $pod is on $1/$2, not $cluster/$node"
	nodens=$(node_ns "$node")
	conf=$(pod_conf "$node")
	prev=$(cat "$DIR/pods/$pod.ptp.json" 2>/dev/null)
	[ -n "$prev" ] || prev='{}'
	labels=$(cat "$DIR/pods/$pod.labels" 2>/dev/null)
	[ -n "$labels" ] || labels='{}'
	if [ "${4:-0}" = 1 ]; then
		out=$(nm_conf "$conf" "$prev" "$labels" "$node" |
			cni_call DEL "$CNI" "$nodens" "$P_CID" "$P_NS" "$pod") ||
			{ rc=1; warn "nodemesh-cni DEL for $pod failed: $out"; }
	fi
	out=$(jq -c --argjson prev "$prev" '. + {prevResult: $prev}' <<<"$conf" |
		cni_call DEL "$CNI_DIR/ptp" "$nodens" "$P_CID" "$P_NS" "$pod") ||
		{ rc=1; warn "ptp DEL for $pod failed: $out"; }
	pod_forget "$pod"
	return "$rc"
}

pod_ip() {
	local pod rc=0 ip
	[ $# -gt 0 ] || usage
	for pod in "$@"; do
		ip=$(jq -r '.ips[0].address // empty' "$DIR/pods/$pod.json" 2>/dev/null)
		if [ -z "$ip" ]; then
			warn "no pod $pod"
			rc=1
			continue
		fi
		echo "${ip%/*}"
	done
	return "$rc"
}

# ---------------------------------------------------------------- main

# A -d DIR may come before any command's arguments.
while [ $# -gt 0 ]; do
	case "$1" in
	-d) [ $# -ge 2 ] || usage; DIR=$2; shift 2 ;;
	-h | --help) usage ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || usage
cmd=$1
shift
if [ "$cmd" != up ] && [ "$cmd" != down ] && [ "$cmd" != status ] &&
	[ "${1:-}" = -d ]; then
	[ $# -ge 2 ] || usage
	DIR=$2
	shift 2
fi
case "$cmd" in
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
status) cmd_status "$@" ;;
pod) cmd_pod "$@" ;;
exec) cmd_exec "$@" ;;
ctl) cmd_ctl "$@" ;;
etcdctl) cmd_etcdctl "$@" ;;
etcd) cmd_etcd "$@" ;;
agent) cmd_agent "$@" ;;
*) usage ;;
esac
