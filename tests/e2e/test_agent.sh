#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Two clusters, two nodes, two real agents. Clusters east (id 1) and west
# (id 2) each have an etcd on 127.0.0.1 (free ports, scratch data dirs).
# node-a (east) and node-b (west) each run nodemesh-agent with their own
# pin root under /sys/fs/bpf and their own state dir; node-b follows east
# from the start, node-a gets west.yaml dropped into its remote-cluster dir
# at runtime. Pods are registered with 'nodemeshctl endpoint add' (no veths:
# the maps are what we assert), the agents publish them, the other node's
# ipcache and identities show them.
#
# Safety: nothing listens beyond 127.0.0.1, no interface or route is
# touched; every process is stopped by pid and the pin roots and scratch
# dirs are removed on every way out (trap in lib.sh).
#
# usage (as root): tests/e2e/test_agent.sh BUILD_DIR
set -u

BUILD=${1:?usage: $0 BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"

AGENT=$BUILD/nodemesh-agent
TTL=6 # lease TTL of both agents, seconds
IP_A=192.168.77.1 # node addresses: data only, never configured
IP_B=192.168.77.2
EP_A=10.1.0.5 # node-a's pod (east)
EP_B=10.2.0.7 # node-b's pod (west)

[ -x "$AGENT" ] || nm_skip_all "$AGENT not built (make all)"
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
	nm_skip_all "etcd or etcdctl missing (scripts/deps.sh)"
nm_e2e_start "nm-agent-$$" 15

PIN_A="$PIN_ROOT-a"
PIN_B="$PIN_ROOT-b"
NM_PIN_ROOTS+=("$PIN_A" "$PIN_B")
nm_tmpdir WORK || nm_bail "no scratch dir"
STATE_A=$WORK/state-a
STATE_B=$WORK/state-b
DIR_A=$WORK/clusters-a # node-a's remote clusters: empty at start
DIR_B=$WORK/clusters-b # node-b's: east
mkdir -p "$DIR_A" "$DIR_B" || nm_bail "mkdir"

nm_etcd_start EAST || nm_bail "failed to start etcd for east"
nm_etcd_start WEST || nm_bail "failed to start etcd for west"
nm_diag "east etcd $EAST, west etcd $WEST"

# config FILE CLUSTER ID URL PIN STATE DIR
config() {
	cat >"$1" <<YAML
cluster: $2
cluster_id: $3
etcd:
  endpoints: [$4]
pin_root: $5
state_dir: $6
remote_clusters_dir: $7
tunnel: disabled # two agents share this namespace; the overlay has its own test
YAML
}

# remote FILE NAME ID URL
remote() {
	cat >"$1" <<YAML
name: $2
id: $3
endpoints: [$4]
YAML
}

config "$WORK/a.yaml" east 1 "$EAST" "$PIN_A" "$STATE_A" "$DIR_A"
config "$WORK/b.yaml" west 2 "$WEST" "$PIN_B" "$STATE_B" "$DIR_B"
remote "$DIR_B/east.yaml" east 1 "$EAST"
remote "$WORK/west.yaml" west 2 "$WEST"

ctl_a() { timeout 30 "$CTL" --pin-root "$PIN_A" --state-dir "$STATE_A" "$@"; }
ctl_b() { timeout 30 "$CTL" --pin-root "$PIN_B" --state-dir "$STATE_B" "$@"; }

PID_A=
PID_B=
start_agent() { # start_agent a|b
	local n=$1 ip cfg
	if [ "$n" = a ]; then ip=$IP_A cfg=$WORK/a.yaml; else ip=$IP_B cfg=$WORK/b.yaml; fi
	"$AGENT" --config "$cfg" --node "node-$n" --node-ip "$ip" \
		--pod-cidr "10.9.$([ "$n" = a ] && echo 1 || echo 2).0/24" \
		--lease-ttl "$TTL" -v >>"$WORK/agent-$n.log" 2>&1 </dev/null &
	NM_PIDS+=("$!")
	if [ "$n" = a ]; then PID_A=$!; else PID_B=$!; fi
}

agent_logs() {
	local n
	for n in a b; do
		[ -f "$WORK/agent-$n.log" ] || continue
		echo "--- agent-$n.log (tail)"
		tail -15 "$WORK/agent-$n.log"
	done
}

# status_of a|b CLUSTER: that cluster's object of the node's status JSON.
status_of() {
	"ctl_$1" status -o json | grep -o "{\"name\":\"$2\"[^}]*}"
}

# field JSON_OBJECT NAME: a scalar field's raw value.
field() {
	sed -n "s/.*\"$2\":\\(\"[^\"]*\"\\|[^,}]*\\).*/\\1/p" <<<"$1"
}

# local_identity a|b IP: the identity endpoint add gave the pod at IP.
local_identity() {
	"ctl_$1" -o json endpoint list |
		grep -o "\"ip\":\"$2\",\"endpoint_id\":[0-9]*,\"identity\":[0-9]*" |
		sed 's/.*"identity"://'
}

# has_ipcache a|b IP IDENTITY TUNNEL
has_ipcache() {
	"ctl_$1" map dump ipcache |
		grep -q "^$2/32 *identity $3 .*tunnel $4\$"
}

no_ipcache() {
	! "ctl_$1" map dump ipcache | grep -q "^$2/32 "
}

has_identity() {
	"ctl_$1" identity list | grep -q "^$2 "
}

# --------------------------------------------------------------- tests

t_bad_config() {
	local out rc
	printf 'cluster: east\ncluster_id: 70000\n' >"$WORK/bad-config.yaml"
	out=$("$AGENT" --config "$WORK/bad-config.yaml" --node x \
		--node-ip 192.168.77.9 2>&1)
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq 1 ] && grep -q "bad-config.yaml:2:" <<<"$out"
}
nm_test "a bad config is refused with FILE:LINE and exit 1" t_bad_config

t_start() {
	start_agent a
	start_agent b
	nm_wait_for 15 ctl_a status || { agent_logs; return 1; }
	nm_wait_for 15 ctl_b status || { agent_logs; return 1; }
	# Pods register once the agents have loaded the datapath.
	ctl_a endpoint add "$EP_A" --iface lo --namespace shop \
		--labels app=web --name web-1 || return 1
	ctl_b endpoint add "$EP_B" --iface lo --namespace shop \
		--labels app=db --name db-1 || return 1
	ID_A=$(local_identity a "$EP_A")
	ID_B=$(local_identity b "$EP_B")
	echo "identity of web-1 (east) $ID_A, of db-1 (west) $ID_B"
	[ -n "$ID_A" ] && [ -n "$ID_B" ]
}
nm_test "both agents start, serve status, and pods register" t_start

# node-a's pins have the default Maglev M (16381); a config asking for
# another is refused by the loader before anything is touched.
t_pinned_size_mismatch() {
	local out rc
	config "$WORK/a-sized.yaml" east 1 "$EAST" "$PIN_A" \
		"$WORK/state-sized" "$DIR_A"
	printf 'datapath:\n  maglev_m: 7\n' >>"$WORK/a-sized.yaml"
	out=$(timeout 30 "$AGENT" --config "$WORK/a-sized.yaml" --node node-x \
		--node-ip 192.168.77.9 2>&1)
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -eq 1 ] &&
		grep -q "Maglev table size 7 asked, pinned maps have 16381" <<<"$out"
}
nm_test "datapath sizes other than the pins' stop the agent (exit 1)" \
	t_pinned_size_mismatch

t_remote_ipcache_b() {
	if ! nm_wait_for 15 has_ipcache b "$EP_A" "$ID_A" "$IP_A"; then
		ctl_b map dump ipcache
		nm_etcdctl "$EAST" get --prefix nodemesh/state/
		agent_logs
		return 1
	fi
	ctl_b map dump ipcache
}
nm_test "node-b's ipcache gets node-a's pod: east identity, tunnel node-a" \
	t_remote_ipcache_b

t_remote_identity_b() {
	nm_wait_for 10 has_identity b "$ID_A" || { ctl_b identity list; return 1; }
	ctl_b identity list | grep "^$ID_A "
}
nm_test "node-b knows east's identity of web-1 with its labels" \
	t_remote_identity_b

t_add_remote_at_runtime() {
	no_ipcache a "$EP_B" || return 1
	# Written aside and renamed in, as a ConfigMap update does.
	cp "$WORK/west.yaml" "$DIR_A/.west.yaml.tmp" &&
		mv "$DIR_A/.west.yaml.tmp" "$DIR_A/west.yaml" || return 1
	if ! nm_wait_for 15 has_ipcache a "$EP_B" "$ID_B" "$IP_B"; then
		ctl_a map dump ipcache
		agent_logs
		return 1
	fi
	ctl_a map dump ipcache
}
nm_test "west.yaml dropped into node-a's dir connects: node-b's pod appears" \
	t_add_remote_at_runtime

t_remote_identity_a() {
	nm_wait_for 10 has_identity a "$ID_B" || { ctl_a identity list; return 1; }
	ctl_a identity list | grep "^$ID_B "
}
nm_test "node-a's identity list has west's identity of db-1" \
	t_remote_identity_a

# cluster_ok a|b CLUSTER: connected, synced, records, heartbeat < 3 s.
cluster_ok() {
	local o hb
	o=$(status_of "$1" "$2") || return 1
	hb=$(field "$o" last_heartbeat_s)
	[ "$(field "$o" connected)" = true ] &&
		[ "$(field "$o" synced)" = true ] &&
		[ "$(field "$o" records)" -gt 0 ] &&
		[ "$hb" != null ] && awk -v h="$hb" 'BEGIN { exit !(h < 3) }'
}

t_status() {
	nm_wait_for 10 cluster_ok a east || { ctl_a status; return 1; }
	nm_wait_for 10 cluster_ok a west || { ctl_a status; return 1; }
	ctl_a status
	ctl_a status -o json | grep -q '"heartbeat_leader":true' &&
		ctl_b status -o json | grep -q '"heartbeat_leader":true'
}
nm_test "status: east and west connected, synced, records, recent heartbeat" \
	t_status

t_refused_file() {
	printf 'name: north\nid: 3\nendpoints: [ftp://x]\n' >"$DIR_A/north.yaml"
	nm_wait_for 10 sh -c "'$CTL' --state-dir '$STATE_A' status -o json |
		grep -q '\"file\":\"$DIR_A/north.yaml\",\"line\":3'" ||
		{ ctl_a status -o json; return 1; }
	ctl_a status | sed -n '/refused/,$p'
	rm -f "$DIR_A/north.yaml"
	cluster_ok a west
}
nm_test "a bad remote-cluster file is listed with FILE:LINE, west keeps working" \
	t_refused_file

t_malformed_record() {
	local before after o
	before=$(ctl_a map dump ipcache) || return 1
	nm_etcdctl "$WEST" put nodemesh/state/endpoints/v1/west/shop/evil \
		'{"schema":1,"namespace":"shop","name":"evil","ip":"10.2.0.66","node":"node-b","labels":{"app":"x","nodemesh.io/cluster":"east","nodemesh.io/namespace":"shop"},"identity":"16777472"}' ||
		return 1
	nm_wait_for 10 sh -c "'$CTL' --state-dir '$STATE_A' status -o json |
		grep -o '{\"name\":\"west\"[^}]*}' | grep -q '\"rejected\":1,'" ||
		{ ctl_a status; return 1; }
	o=$(status_of a west)
	echo "west: $o"
	grep -q 'rejected nodemesh/state/endpoints/v1/west/shop/evil' <<<"$o" ||
		return 1
	sleep 1
	after=$(ctl_a map dump ipcache) || return 1
	[ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after"); return 1; }
	kill -0 "$PID_A" && ctl_a status >/dev/null
}
nm_test "a malformed record in west is rejected with its reason, maps untouched" \
	t_malformed_record

t_remove_remote() {
	rm -f "$DIR_A/west.yaml"
	nm_wait_for 15 no_ipcache a "$EP_B" || { ctl_a map dump ipcache; return 1; }
	! ctl_a status -o json | grep -q '{"name":"west"' || return 1
	# Put it back for the lease test.
	cp "$WORK/west.yaml" "$DIR_A/west.yaml" &&
		nm_wait_for 15 has_ipcache a "$EP_B" "$ID_B" "$IP_B"
}
nm_test "deleting west.yaml drains west from node-a; adding it back restores" \
	t_remove_remote

# A west record deleted while node-a's agent is down: the restarted agent
# starts with an empty sink, so only its sweep (once every cluster has
# listed) removes the entry the previous run wrote.
GHOST=10.2.0.77
GHOST_ID=33554688 # west (2) << 24 | 256
GHOST_KEY=nodemesh/state/endpoints/v1/west/shop/ghost
swept_a() {
	ctl_a status -o json | grep -q '"swept":true' &&
		cluster_ok a east && cluster_ok a west
}
t_restart_sweeps() {
	local rc
	nm_etcdctl "$WEST" put "$GHOST_KEY" \
		'{"schema":1,"namespace":"shop","name":"ghost","ip":"'"$GHOST"'","node":"node-b","labels":{"app":"ghost","nodemesh.io/cluster":"west","nodemesh.io/namespace":"shop"},"identity":"'"$GHOST_ID"'"}' ||
		return 1
	nm_wait_for 10 has_ipcache a "$GHOST" "$GHOST_ID" "$IP_B" ||
		{ ctl_a map dump ipcache; agent_logs; return 1; }
	kill -TERM "$PID_A"
	wait "$PID_A"
	rc=$?
	nm_pid_forget "$PID_A"
	[ "$rc" -eq 0 ] || { agent_logs; return 1; }
	nm_etcdctl "$WEST" del "$GHOST_KEY" || return 1
	# Down: nothing removes it.
	has_ipcache a "$GHOST" "$GHOST_ID" "$IP_B" || return 1
	start_agent a
	nm_wait_for 20 swept_a || { ctl_a status; agent_logs; return 1; }
	ctl_a status
	no_ipcache a "$GHOST" || { ctl_a map dump ipcache; agent_logs; return 1; }
	# What west still holds is kept.
	has_ipcache a "$EP_B" "$ID_B" "$IP_B" || { ctl_a map dump ipcache; return 1; }
	grep 'swept what an earlier run left' "$WORK/agent-a.log" | tail -1
}
nm_test "restart: a west record deleted while node-a was down is swept" \
	t_restart_sweeps

# The endpoints here sit on lo, written by 'nodemeshctl endpoint add' with
# nothing attached: a restarted agent swaps in its programs only where
# ours already are, so it leaves this namespace's lo as it found it.
t_restart_leaves_foreign_ifaces() {
	local f
	f=$(tc filter show dev lo ingress; tc filter show dev lo egress)
	[ -z "$f" ] || { echo "filters on lo: $f"; return 1; }
}
nm_test "restart: the agent attaches nothing to interfaces that had none of ours" \
	t_restart_leaves_foreign_ifaces

t_lease_expiry() {
	local t0 t1
	kill -KILL "$PID_B" && wait "$PID_B" 2>/dev/null
	nm_pid_forget "$PID_B"
	t0=$(date +%s)
	if ! nm_wait_for $((TTL + 6)) no_ipcache a "$EP_B"; then
		ctl_a map dump ipcache
		return 1
	fi
	t1=$(date +%s)
	echo "node-b's pod left node-a's ipcache $((t1 - t0)) s after kill -9 (TTL $TTL s)"
	nm_etcdctl "$WEST" get --prefix nodemesh/state/nodes/ --keys-only |
		grep -q node-b && return 1
	return 0
}
nm_test "kill -9 node-b's agent: its lease expires, its pod leaves node-a" \
	t_lease_expiry

t_sigterm_revokes() {
	local rc
	kill -TERM "$PID_A"
	wait "$PID_A"
	rc=$?
	nm_pid_forget "$PID_A"
	echo "node-a exited $rc"
	[ "$rc" -eq 0 ] || { agent_logs; return 1; }
	# Revoked, not expired: gone at once.
	if nm_etcdctl "$EAST" get --prefix nodemesh/state/ --keys-only |
		grep -E 'nodes/v1/east/node-a|endpoints/v1/east/'; then
		return 1
	fi
	[ ! -e "$STATE_A/agent.sock" ]
}
nm_test "SIGTERM: node-a exits 0 and its records vanish at once" \
	t_sigterm_revokes

nm_tap_status
