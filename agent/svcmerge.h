// SPDX-License-Identifier: GPL-2.0
/*
 * Global services: from every cluster's service record for one frontend
 * to the backend set this node programs. Pure (no I/O, no maps), so the
 * map sink and 'nodemeshctl diff' compute the same thing, and every node
 * given the same records and reachability computes the same set (the
 * Maglev table is a function of the set).
 *
 * Rules:
 *   - The local cluster's record always contributes. A remote record
 *     contributes when it is global and shared and the local record, if
 *     there is one, is global too.
 *   - A remote cluster that is unreachable (heartbeat silent past the
 *     bound) keeps its backends in the set as NM_BE_QUARANTINED: out of
 *     selection, established flows continue.
 *   - Each backend's weight is its own times its cluster record's weight
 *     (capped at 65535).
 *   - Tiers: (affinity rank, priority), lowest first. Affinity comes from
 *     the local record (none without one): local ranks the local cluster
 *     0 and the others 1, remote the other way round, none ranks all 0;
 *     priority is each cluster record's own. The lowest tier holding an
 *     active backend is selected; active backends of other tiers become
 *     NM_BE_STANDBY (ready, not preferred). No active backend anywhere:
 *     nothing is selected and the service drops new flows.
 *   - Terminating and quarantined backends keep their state.
 *   - The output is sorted by (cluster_id, addr, port) and has no
 *     duplicates (the first record offering an address wins, records
 *     taken in cluster id order).
 *
 * Corner cases, settled so that the result never depends on input order:
 * an address offered twice within one cluster id goes to the lower tier,
 * then the better own state (active first), then the higher weight; a
 * frontend claimed by several local records is global only if all of them
 * are, and has their affinity only if they all agree (none otherwise).
 * Backends of an unreachable cluster are quarantined whatever their own
 * state (the cluster's liveness is what the reader needs to see). A
 * weight of 0 (record or backend) counts as 1.
 */
#ifndef NM_AGENT_SVCMERGE_H
#define NM_AGENT_SVCMERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/kvstore.h"
#include "agent/parse.h"

/* A backend as its cluster's record offers it. */
struct nm_merge_src {
	__be32 addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 state; /* the record's: enum nm_backend_state */
	__u16 weight; /* 1..65535 */
};

/* One cluster's record for the frontend being merged. */
struct nm_merge_in {
	__u16 cluster_id;
	bool reachable; /* taken as true for the local cluster */
	bool global;
	bool shared;
	__u8 affinity; /* enum nm_kv_affinity; only the local record's counts */
	__u8 priority; /* lower preferred */
	__u16 weight; /* this cluster's weight */
	const struct nm_merge_src *backends;
	size_t n_backends;
};

/* A merged backend: the spec to program plus why it has its state. */
struct nm_merge_be {
	struct nm_backend_spec spec; /* state as programmed */
	__u8 own_state; /* the state its record gave */
	bool preferred; /* in the selected tier */
	__u8 tier_rank; /* affinity rank */
	__u8 priority;
};

/*
 * @in from a decoded record of cluster @cluster_id (e.g. by a CLI that
 * reads etcd): the backends are copied into *@src (malloc'd, NULL when
 * none), which the caller frees once done with @in. 0 or -ENOMEM.
 */
int nm_merge_in_from_kv(struct nm_merge_in *in, const struct nm_kv_service *svc,
			__u16 cluster_id, bool reachable,
			struct nm_merge_src **src);

/*
 * Whether any of the @n records contributes. If none does the frontend
 * is not this node's to program (a remote record that is not shared, say);
 * if one does it is programmed, with no backends if the merge has none.
 */
bool nm_svc_merge_contributes(const struct nm_merge_in *in, size_t n,
			      __u16 local_cluster_id);

/*
 * Merge @n records (any order) for frontend @fe into @out (malloc'd,
 * *n_out entries; NULL and 0 when nothing contributes). Backends of
 * another protocol than @fe's are skipped. Returns 0 or -ENOMEM.
 */
int nm_svc_merge(const struct nm_merge_in *in, size_t n, __u16 local_cluster_id,
		 const struct nm_frontend *fe, struct nm_merge_be **out,
		 size_t *n_out);

#endif /* NM_AGENT_SVCMERGE_H */
