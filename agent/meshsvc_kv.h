// SPDX-License-Identifier: GPL-2.0
/*
 * MeshService manifests in the cluster's own etcd, and the exporter that
 * turns them into the cluster's service records (agent/meshsvc.h is the
 * pure half):
 *
 *   <prefix>services/v1/<ns>/<name>             the manifest, YAML as given
 *                                               ('nodemeshctl service apply')
 *   <prefix>state/services/v1/<c>/<ns>/<name>   its export: a service record
 *                                               (no lease; the exporter)
 *   <prefix>services/exported/<ns>/<name>       the exporter's mark: that
 *                                               record is the exporter's
 *
 * A round makes the records the exporter marked what the manifests and the
 * cluster's endpoint records say, so it keeps nothing in memory and any
 * node can run it (the publisher runs it on the node that writes the
 * heartbeat): a record whose manifest went while no exporter ran goes at
 * the next round. Records it never marked (written by hand or by another
 * tool) are left alone, unless a manifest of the same name takes them
 * over. A manifest that does not parse leaves its record as it is: what
 * cannot be read is not taken as "gone". Mirrors skip <prefix>services/.
 *
 * The one thing a round remembers is the grace table: a backend our last
 * record holds whose endpoint is gone stays in the record, terminating,
 * for a grace period from the round that first missed it. A restarting
 * agent revokes its lease and its endpoint records are gone for about a
 * second; without the grace every node would drop those backends and
 * reselect their established flows. The table lives in memory only: a
 * new exporter starts with an empty one, so a backend the old exporter
 * was already keeping gets a full grace again from the new one's first
 * round (at most two periods in all).
 */
#ifndef NM_AGENT_MESHSVC_KV_H
#define NM_AGENT_MESHSVC_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "agent/meshsvc.h"

#define NM_MESHSVC_MARK_DIR "services/exported/"

/* One manifest as found in etcd. */
struct nm_meshsvc_stored {
	char *key;
	__s64 mod_revision;
	bool ok; /* parsed, and no earlier manifest claims its frontends */
	struct nm_meshsvc svc; /* when ok */
	struct nm_error err; /* when not: "KEY:LINE: reason" */
};

struct nm_meshsvc_stored_set {
	struct nm_meshsvc_stored *v; /* in key order */
	size_t n;
};

/*
 * Every manifest under @prefix (NULL: the default) at @revision (0: the
 * latest; *@rev, if not NULL, gets the revision read). A manifest that
 * claims a frontend an earlier one (in key order) claims is not ok.
 */
int nm_meshsvc_load(struct nm_etcd *c, const char *prefix, __s64 revision,
		    struct nm_meshsvc_stored_set *out, __s64 *rev,
		    struct nm_etcd_err *err);
void nm_meshsvc_stored_free(struct nm_meshsvc_stored_set *set);

struct nm_meshsvc_sync_stats {
	size_t manifests; /* found */
	size_t refused; /* of them not exported: see @refusal */
	size_t exported; /* records the exporter holds after the round */
	size_t written; /* puts of this round */
	size_t deleted; /* deletes of this round */
	size_t dropped; /* backends past NM_KV_BACKENDS_MAX, left out */
	size_t graced; /* backends kept terminating: their endpoint is gone */
	char refusal[NM_KV_ERR_LEN]; /* the first refusal; "" when none */
};

/* A backend of a record whose endpoint went, and since when. */
struct nm_meshsvc_grace_ent {
	char *key; /* the service record's */
	__be32 ip;
	__be16 port;
	__u8 proto;
	__u64 first_missing_ns; /* CLOCK_MONOTONIC */
	__u64 round; /* last round that saw it missing */
};

/*
 * The exporter's grace table, owned by its caller and kept across rounds:
 * initialise with { .period_ns = ... } (0: no grace, a backend goes with
 * its endpoint). An entry goes when its backend comes back, when its
 * record no longer holds it (the grace ran out, or its manifest went).
 */
struct nm_meshsvc_grace {
	__u64 period_ns;
	__u64 round;
	struct nm_meshsvc_grace_ent *v;
	size_t n, cap;
};

/* Forget every entry; the period stays. */
void nm_meshsvc_grace_reset(struct nm_meshsvc_grace *g);

/*
 * One exporter round for the cluster of @ctx: read the manifests, the
 * cluster's endpoint records, its service records and the marks at one
 * revision, put each record whose document changed (no lease; its mark
 * first) and delete the marked ones whose manifest is gone (then their
 * marks). Nothing is written when a read fails. @grace (NULL: none) keeps
 * vanished backends terminating, see above. Returns 0 or the first error,
 * with @err saying what failed; @st is filled either way.
 */
int nm_meshsvc_sync(struct nm_etcd *c, const struct nm_kv_ctx *ctx,
		    struct nm_meshsvc_grace *grace,
		    struct nm_meshsvc_sync_stats *st, struct nm_etcd_err *err);

#endif /* NM_AGENT_MESHSVC_KV_H */
