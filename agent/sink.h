// SPDX-License-Identifier: GPL-2.0
/*
 * The map sink: applies mirrored kvstore records of every cluster to the
 * pinned maps of this node, behind one mutex (mirrors call it from their
 * threads). What each record becomes:
 *
 *   node      nm_nodes_v1[node_ip] = {cluster_id, ...}; pod CIDRs are not
 *             routed yet (overlay issue).
 *   endpoint  nm_ipcache_v1[ip/32] = {identity, tunnel_endpoint = the
 *             node_ip of its node (0 until the node record is seen, fixed
 *             up when it arrives)}. This node's own endpoints are left
 *             alone (nodemeshctl/CNI own them, flag NM_IPC_F_LOCAL).
 *   identity  added to the identity store with its labels (remote and
 *             local clusters alike) so policy selectors can match it;
 *             policy is recompiled (coalesced: at most one recompile per
 *             nm_sink_flush()).
 *   service   each frontend's backends are the merge (nm_svc_merge(),
 *             agent/svcmerge.h) of every cluster's record with that
 *             frontend and of each cluster's reachability (cluster_id set
 *             in nm_backend_val), programmed with nm_svc_upsert when it
 *             changes; the frontend is deleted when no record contributes
 *             to it any more.
 *   cluster, heartbeat, synced: no map state (the mirror tracks them).
 *
 * A remove undoes exactly what the upsert of that key did; upserting a
 * key again replaces its previous contribution.
 */
#ifndef NM_AGENT_SINK_H
#define NM_AGENT_SINK_H

#include <stdbool.h>
#include <linux/types.h>

#include "agent/kvstore.h"
#include "agent/loader.h"
#include "agent/state.h"
#include "agent/svcmerge.h"

struct nm_sink;

struct nm_sink_conf {
	struct nm_maps *maps; /* opened pinned maps; not owned */
	const struct nm_state *state; /* identities.json, policies; not owned */
	const char *local_cluster;
	__u16 local_cluster_id;
	const char *local_node; /* this node's name: its endpoints are local */
};

int nm_sink_open(const struct nm_sink_conf *conf, struct nm_sink **out);
void nm_sink_close(struct nm_sink *s);

/* The two nm_mirror_sink callbacks; @arg is the struct nm_sink. */
int nm_sink_upsert(void *arg, const struct nm_kv_record *rec);
int nm_sink_remove(void *arg, const struct nm_kv_key *key);

/*
 * The id of cluster @cluster, for the cluster_id of its service backends
 * (service records carry none). The daemon sets it for every cluster it
 * connects, before starting its mirror; cluster and node records also
 * set it. A service record of a cluster whose id is not known fails
 * with -EAGAIN.
 */
int nm_sink_set_cluster_id(struct nm_sink *s, const char *cluster, __u16 id);

/*
 * Mark remote cluster @cluster (un)reachable: its backends stay in the
 * maps, quarantined while it is unreachable (established flows go on).
 * Remembered per name, also before any record of the cluster arrives;
 * the local cluster is always reachable (a call for it does nothing).
 * Takes effect at the next nm_sink_flush(), which re-merges every
 * frontend with a record of the cluster: one service write per frontend
 * whose merged set changes. 0, -EINVAL (name too long) or -ENOMEM.
 */
int nm_sink_set_reachable(struct nm_sink *s, const char *cluster,
			  bool reachable);

/*
 * Re-merge the services of clusters whose reachability changed (a failed
 * one is retried at the next flush), then recompile policy and save
 * identities if records changed them. 0 or the first error.
 */
int nm_sink_flush(struct nm_sink *s);

/*
 * Remove what an earlier run of the agent wrote and this sink does not
 * hold now: keys deleted while the agent was down, clusters dropped from
 * the config meanwhile. The sink starts empty, so this is only right once
 * every mirror feeding it has completed its first list; the daemon calls
 * it then, once. What counts as ours:
 *
 *   nm_ipcache_v1   /32 entries flagged neither NM_IPC_F_LOCAL (a pod of
 *                   this node) nor NM_IPC_F_CIDR (a policy CIDR); the sink
 *                   writes no other prefix length. A /32 written by hand
 *                   ('nodemeshctl ipcache upsert', flags 0) looks the same
 *                   and is swept too: the kvstore owns remote addresses.
 *   nm_nodes_v1     every entry (only the sink writes it).
 *   services        those whose backends all carry a cluster id: the sink
 *                   tags each backend with its cluster's id (1..65535),
 *                   'nodemeshctl service upsert' writes cluster_id 0. A
 *                   service without backends cannot be told apart and is
 *                   left alone. A frontend named only by records that do
 *                   not contribute (an unshared remote service) is not
 *                   held, so it is swept.
 *   identities      those an earlier sink merged from the kvstore into
 *                   identities.json, which it lists in the state file
 *                   "kvstore-identities" (read at nm_sink_open): dropped
 *                   at the flush this ends with, unless a local endpoint
 *                   uses one. Identities added by nodemeshctl are never
 *                   listed there, so never swept.
 *
 * Every candidate is tried; returns 0 or the first error (logged).
 */
int nm_sink_sweep(struct nm_sink *s);

struct nm_sink_stats {
	__u64 nodes, endpoints, identities, services; /* currently held */
	bool reachable; /* as last set (nm_sink_set_reachable); true if never */
};
void nm_sink_get_stats(struct nm_sink *s, const char *cluster,
		       struct nm_sink_stats *out);

/*
 * The merged backend set last programmed for @fe (with each backend's own
 * state and tier), for status and debugging: *@out malloc'd, NULL when
 * the set is empty. -ENOENT when the sink has not programmed @fe.
 */
int nm_sink_get_service(struct nm_sink *s, const struct nm_frontend *fe,
			struct nm_merge_be **out, size_t *n_out);

#endif /* NM_AGENT_SINK_H */
