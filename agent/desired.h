// SPDX-License-Identifier: GPL-2.0
/*
 * Desired map state: what the map sink (agent/sink.c) would make of every
 * cluster's records, computed from scratch, and its comparison with what
 * the pinned maps hold. Pure (no I/O, no maps): 'nodemeshctl diff' lists
 * the clusters and reads the maps, this says what differs.
 *
 * Desired state, per map, as the sink writes it:
 *
 *   nm_nodes_v1    every node record: node IP -> cluster id (node ids
 *                  are assigned by the agent, so not compared).
 *   nm_ipcache_v1  every endpoint record but this node's own pods: pod
 *                  IP/32 -> identity, tunnel endpoint = the node IP of
 *                  the endpoint's node record in its cluster (0 if none).
 *   services       every frontend named by a service record: the backend
 *                  set nm_svc_merge() makes of the records naming it.
 *
 * Records that claim one key twice (a pod IP or node IP reused before the
 * old record's delete arrived) are all kept: the sink writes the newest
 * claim it saw, which depends on arrival order, so the map may hold any
 * of them.
 *
 * Entries owned by others are not compared: ipcache entries flagged
 * NM_IPC_F_LOCAL (this node's pods) and CIDR entries no record claims;
 * services programmed by 'nodemeshctl service upsert' (a backend with
 * cluster id 0, or none at all) that no record names.
 */
#ifndef NM_AGENT_DESIRED_H
#define NM_AGENT_DESIRED_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/kvstore.h"
#include "agent/parse.h"
#include "agent/svc.h"
#include "agent/svcmerge.h"
#include "maps/ipcache.h"
#include "maps/node.h"

/* One cluster's valid records, as its mirror would hand them over. */
struct nm_desired_cluster {
	const char *name;
	__u16 id;
	bool local; /* the agent's own cluster */
	bool reachable; /* as the agent sees it; always true when local */
	const struct nm_kv_record *recs;
	size_t n_recs;
};

struct nm_want_node {
	__be32 ip;
	__u16 cluster_id;
};

struct nm_want_ip {
	__be32 ip; /* a /32 */
	__u64 identity;
	__be32 tunnel; /* 0: the endpoint's node is not known */
};

struct nm_want_svc {
	struct nm_frontend fe;
	struct nm_merge_be *be; /* nm_svc_merge()'s output, owned */
	size_t n_be;
};

struct nm_desired {
	struct nm_want_node *nodes; /* sorted by IP; one per claim */
	size_t n_nodes;
	struct nm_want_ip *ips; /* sorted by IP; one per claim */
	size_t n_ips;
	struct nm_want_svc *svcs; /* sorted by frontend, one each */
	size_t n_svcs;
};

/*
 * Keys the mirror skips (neither applied nor counted as rejected): the
 * manifests under <prefix>policies/ and <prefix>services/, which are no
 * records. @prefix NULL: NM_KV_PREFIX_DEFAULT.
 */
bool nm_desired_ignored(const char *prefix, const char *key);

/*
 * The desired state of @n clusters' records on node @local_node (its pods
 * are left to the CNI). Returns 0 or -ENOMEM (then @out is empty).
 */
int nm_desired_build(const struct nm_desired_cluster *c, size_t n,
		     const char *local_node, struct nm_desired *out);
void nm_desired_free(struct nm_desired *d);

/* ---- what the maps hold -------------------------------------------------- */

struct nm_actual_node {
	__be32 ip;
	struct nm_node_val val;
};

struct nm_actual_ip {
	__be32 ip; /* /32 entries only: the sink writes no other length */
	struct nm_ipcache_val val;
};

struct nm_actual {
	const struct nm_actual_node *nodes; /* any order */
	size_t n_nodes;
	const struct nm_actual_ip *ips; /* any order */
	size_t n_ips;
	const struct nm_svc_list *svcs;
	/*
	 * Per svcs->svcs[i], its live Maglev table (maglev_m slots), or NULL
	 * for none read; @tables NULL: no table is compared.
	 */
	const __u32 *const *tables;
	__u32 maglev_m;
};

/* ---- differences --------------------------------------------------------- */

enum nm_diff_map {
	NM_DIFF_NODES = 0,
	NM_DIFF_IPCACHE = 1,
	NM_DIFF_SERVICES = 2,
};

enum nm_diff_kind {
	NM_DIFF_MISSING = 0, /* desired, not in the map */
	NM_DIFF_STALE = 1, /* in the map, not desired */
	NM_DIFF_DIFFERS = 2, /* in both, other values */
};

/* What of an entry differs. */
enum nm_diff_what {
	NM_DIFF_W_ENTRY = 0, /* a node, an ipcache /32, a whole service */
	NM_DIFF_W_BACKEND = 1, /* one backend of a service */
	NM_DIFF_W_ALGO = 2, /* a service's load-balancing algorithm */
	NM_DIFF_W_ACTIVE = 3, /* a service's backend_count */
	NM_DIFF_W_MAGLEV = 4, /* a service's Maglev table */
};

/* One side of a difference; which fields mean something depends on it. */
struct nm_diff_side {
	__u16 cluster_id; /* nodes; backends */
	__u64 identity; /* ipcache */
	__be32 tunnel; /* ipcache */
	__u8 flags; /* ipcache */
	__u8 proto; /* backends */
	__u8 state; /* backends */
	__u16 weight; /* backends */
	__u32 n; /* services: backends; active count; algo; slots differing */
	__u32 n2; /* services: active backends of an entry; Maglev M */
};

struct nm_diff {
	enum nm_diff_map map;
	enum nm_diff_kind kind;
	enum nm_diff_what what;
	__be32 addr; /* node IP, pod IP, backend address */
	__be16 port; /* backend port */
	struct nm_frontend fe; /* services */
	struct nm_diff_side have; /* the map's; not for MISSING */
	struct nm_diff_side want; /* the desired; not for STALE */
};

struct nm_diffs {
	struct nm_diff *v; /* per map, each in key order */
	size_t n, cap;
};

/*
 * Every difference between @want and @have, appended to @out (grouped by
 * map: nodes, ipcache, services). Returns 0 or -ENOMEM.
 */
int nm_desired_compare(const struct nm_desired *want,
		       const struct nm_actual *have, struct nm_diffs *out);
void nm_diffs_free(struct nm_diffs *d);

/* "nodes", "ipcache", "services"; "missing", "stale", "differs". */
const char *nm_diff_map_name(enum nm_diff_map m);
const char *nm_diff_kind_name(enum nm_diff_kind k);

#define NM_DIFF_STRLEN 256

/* The key alone: "172.30.2.1", "10.2.1.10/32", "10.96.0.10:80/tcp backend 10.2.1.10:8080". */
char *nm_diff_key(const struct nm_diff *d, char *buf, size_t len);
/*
 * One line for people, without the newline:
 *   nodes: missing 172.30.2.1 (cluster 2)
 *   ipcache: differs 10.2.1.10/32: map identity X tunnel A, etcd identity Y tunnel B
 *   services: 10.96.0.10:80/tcp: missing backend 10.2.1.10:8080 (cluster 2, active)
 */
char *nm_diff_str(const struct nm_diff *d, char *buf, size_t len);

#endif /* NM_AGENT_DESIRED_H */
