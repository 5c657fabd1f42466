// SPDX-License-Identifier: GPL-2.0
/*
 * Publishing this node into its own cluster's etcd (DESIGN §4):
 *
 *   cluster/<c>                      once, no lease (every node writes the
 *                                    same document)
 *   state/nodes/v1/<c>/<node>        under the node's lease
 *   state/endpoints/v1/<c>/<ns>/<pod> under the lease, one per entry of
 *                                    nm_endpoints_v1, re-scanned every
 *                                    second (adds, changes and deletes)
 *   state/identities/v1/<c>/<id>     no lease, allocated by transaction
 *                                    (agent/identity_kv.h)
 *   heartbeat/<c>                    under the lease of the elected writer
 *   synced/<c>/<kind>                no lease, once this node's initial set
 *                                    is published
 *   state/services/v1/<c>/<ns>/<name> no lease, by the heartbeat writer
 *                                    only: the export of each MeshService
 *                                    manifest (agent/meshsvc_kv.h), every
 *                                    second, written when it changed
 *
 * Two threads. The lease thread grants the lease, renews it every TTL/3,
 * grants a new one when etcd says it expired, and runs the heartbeat
 * election every second: create-if-absent of heartbeat/<c> under our lease;
 * the holder rewrites it every second, the others retry the create, so a
 * dead writer's key expires with its lease and another node takes over
 * within the TTL. The record thread publishes the cluster, node and
 * endpoint records, and all of them again under each new lease.
 *
 * Endpoints come from the pinned nm_endpoints_v1 (identity), the state
 * directory's identities.json (their labels) and endpoints.json (pod
 * names; without one the pod is named ip-A-B-C-D). Each endpoint's
 * identity is made to exist in etcd; when the kvstore's id differs from
 * the one derived locally (a collision seen in another order elsewhere),
 * the endpoint is published with the kvstore's id and a warning is logged.
 * Pods added through the agent's API already carry the kvstore's id; only
 * 'nodemeshctl endpoint add' can produce such a difference. A pod drained
 * through the API (cni.json marks it terminating) is published with
 * "state": "terminating".
 */
#ifndef NM_AGENT_PUBLISH_H
#define NM_AGENT_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "agent/loader.h"
#include "agent/parse.h"
#include "agent/state.h"

#define NM_PUBLISH_TTL_DEFAULT 10 /* seconds */

struct nm_publish_conf {
	struct nm_etcd *etcd; /* this cluster's etcd; not owned */
	const char *prefix; /* NULL: NM_KV_PREFIX_DEFAULT */
	const char *cluster;
	__u16 cluster_id;
	const char *node; /* DNS subdomain */
	__be32 node_ip;
	const struct nm_cidr *pod_cidrs;
	size_t n_pod_cidrs;
	const char *boot_id; /* NULL: /proc/sys/kernel/random/boot_id */
	const struct nm_maps *maps; /* nm_endpoints_v1 is read; not owned */
	const struct nm_state *state; /* not owned */
	__s64 ttl_s; /* 0: NM_PUBLISH_TTL_DEFAULT */
	long scan_ms; /* endpoint re-scan and heartbeat period, 0: 1000 */
};

struct nm_publish_stats {
	__u64 lease; /* current lease id, 0 while none */
	__s64 ttl_s; /* granted TTL */
	bool lease_ok; /* granted and last renewal succeeded */
	bool leader; /* we write heartbeat/<cluster> */
	bool synced; /* the initial set is published */
	__u64 grants; /* leases granted (1 + re-grants) */
	__u64 endpoints; /* endpoint records published now */
	__u64 identity_mismatches; /* endpoints whose kvstore id differs */
	__u64 services; /* MeshService records exported (the leader; else 0) */
	__u64 services_refused; /* manifests not exported (the leader) */
	__u64 errors; /* failed etcd writes, ever */
	char last_error[NM_ETCD_ERR_MAX]; /* "" when none */
};

struct nm_publisher;

/* Start both threads; the strings and @pod_cidrs of @conf are copied. */
int nm_publish_start(const struct nm_publish_conf *conf,
		     struct nm_publisher **out, char *err, size_t errlen);
/*
 * Stop the threads and free. With @revoke the lease is revoked, so the
 * node, endpoint and heartbeat records vanish at once instead of at TTL.
 */
void nm_publish_stop(struct nm_publisher *p, bool revoke);
void nm_publish_get_stats(struct nm_publisher *p, struct nm_publish_stats *out);

/* This boot's id (/proc/sys/kernel/random/boot_id) into @buf. */
int nm_boot_id(char *buf, size_t len);

#endif /* NM_AGENT_PUBLISH_H */
