// SPDX-License-Identifier: GPL-2.0
/*
 * The kvstore schema (DESIGN §4): key parsing, and the JSON documents of
 * every record kind, encoded for publishing our own records and decoded
 * plus validated for mirroring any cluster's. Pure: no I/O, no maps.
 *
 * Keys, under a configurable prefix (default "nodemesh/"):
 *
 *   cluster/<c>                          {schema, name, id, capabilities[]}
 *   heartbeat/<c>                        {schema, ts}
 *   synced/<c>/<kind>                    {schema, ts}
 *   state/nodes/v1/<c>/<node>            {schema, name, cluster, cluster_id,
 *                                         node_ip, pod_cidrs[], boot_id}
 *   state/endpoints/v1/<c>/<ns>/<pod>    {schema, namespace, name, ip, node,
 *                                         labels{}, identity, state?}
 *   state/identities/v1/<c>/<id>         {schema, labels{}}
 *   state/services/v1/<c>/<ns>/<name>    {schema, namespace, name,
 *                                         frontends[], backends[], global,
 *                                         shared, affinity, weight,
 *                                         priority}
 *
 * Versioning: "schema" is the major version of a document, 1 today. A
 * change old readers can safely ignore adds a field and keeps the number
 * (unknown fields are allowed); a change they must not misread bumps it,
 * and readers refuse numbers they do not know. The "v1" in state keys
 * versions the key layout.
 *
 * Numbers: small bounded values (ids, ports, weights) are JSON integers;
 * 64-bit values (identities, timestamps) are decimal strings, because
 * JSON readers that use doubles lose precision past 2^53.
 */
#ifndef NM_AGENT_KVSTORE_H
#define NM_AGENT_KVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/labels.h"
#include "agent/parse.h"
#include "agent/policy.h"

#define NM_KV_PREFIX_DEFAULT "nodemesh/"
#define NM_KV_SCHEMA 1

/* Bounds on what a remote cluster may make us hold. */
#define NM_KV_PREFIX_MAX 128
#define NM_KV_KEY_MAX 512
#define NM_KV_VALUE_MAX (64U << 10)
#define NM_KV_LABELS_MAX 64
#define NM_KV_POD_CIDRS_MAX 16
#define NM_KV_POD_CIDR_MIN_LEN 8 /* wider would swallow whole /0../7 */
#define NM_KV_FRONTENDS_MAX 64
#define NM_KV_BACKENDS_MAX 512
#define NM_KV_CAPS_MAX 32
#define NM_KV_CLUSTER_MAX 63 /* DNS label */
#define NM_KV_NS_MAX 63 /* DNS label */
#define NM_KV_NAME_MAX 253 /* DNS subdomain (nodes, pods); services: label */
#define NM_KV_BOOT_ID_MAX 64
#define NM_KV_CAP_MAX 63
/* A buffer this size always holds a whole rejection message. */
#define NM_KV_ERR_LEN 768

/* The state kinds (the <kind> of state/ and synced/ keys). */
enum nm_kv_kind {
	NM_KV_NODES = 0,
	NM_KV_ENDPOINTS = 1,
	NM_KV_IDENTITIES = 2,
	NM_KV_SERVICES = 3,
	NM_KV_KINDS = 4,
};

/* What a key names, and so which document its value holds. */
enum nm_kv_type {
	NM_KV_T_CLUSTER = 0,
	NM_KV_T_HEARTBEAT = 1,
	NM_KV_T_SYNCED = 2,
	NM_KV_T_NODE = 3,
	NM_KV_T_ENDPOINT = 4,
	NM_KV_T_IDENTITY = 5,
	NM_KV_T_SERVICE = 6,
};

struct nm_kv_key {
	enum nm_kv_type type;
	enum nm_kv_kind kind; /* state types and synced; NODES otherwise */
	char cluster[NM_KV_CLUSTER_MAX + 1];
	char ns[NM_KV_NS_MAX + 1]; /* endpoints and services, else "" */
	/* node, pod or service name; the decimal id for identities */
	char name[NM_KV_NAME_MAX + 1];
	__u64 id; /* identities, else 0 */
};

/* The connection a record came from: what it must agree with. */
struct nm_kv_ctx {
	const char *prefix; /* NULL: NM_KV_PREFIX_DEFAULT */
	const char *cluster; /* the cluster this etcd belongs to */
	__u16 cluster_id;
};

struct nm_kv_cluster {
	char *name;
	__u16 id;
	__u32 schema; /* NM_KV_SCHEMA */
	char **capabilities;
	size_t n_capabilities;
};

/*
 * heartbeat/<c> and synced/<c>/<kind>: the writer's wall clock, for
 * display. Measure staleness on the reader's monotonic clock from the
 * last change seen, so clock skew cannot hide a dead cluster.
 */
struct nm_kv_stamp {
	__u64 ts_ms; /* milliseconds since the epoch */
};

struct nm_kv_node {
	char *name;
	char *cluster;
	__u16 cluster_id;
	__be32 node_ip;
	struct nm_cidr *pod_cidrs;
	size_t n_pod_cidrs;
	char *boot_id;
};

struct nm_kv_endpoint {
	char *namespace;
	char *name;
	__be32 ip;
	char *node;
	struct nm_labels labels; /* incl. nodemesh.io/cluster and /namespace */
	__u64 identity; /* nm_identity_pack() */
	/*
	 * NM_BE_ACTIVE, or NM_BE_TERMINATING while the pod drains: service
	 * exports then offer it for established flows only. Optional "state"
	 * field, absent when active, so records of active pods read as before.
	 */
	__u8 state;
};

struct nm_kv_identity {
	__u64 id; /* from the key */
	struct nm_labels labels;
};

enum nm_kv_affinity {
	NM_KV_AFF_NONE = 0,
	NM_KV_AFF_LOCAL = 1,
	NM_KV_AFF_REMOTE = 2,
};

struct nm_kv_backend {
	__be32 ip;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 state; /* enum nm_backend_state; default active */
	__u16 weight; /* 1..65535; default 1 */
	char *node; /* optional: NULL when absent */
};

struct nm_kv_service {
	char *namespace;
	char *name;
	struct nm_frontend *frontends;
	size_t n_frontends;
	struct nm_kv_backend *backends;
	size_t n_backends;
	bool global; /* merge with same ns/name of other clusters */
	bool shared; /* offer these backends to other clusters */
	enum nm_kv_affinity affinity; /* default none */
	/*
	 * This cluster's share against other clusters' records (svcmerge):
	 * 1..65535, default 1. The encoder writes 0 as the default.
	 */
	__u16 weight;
	__u8 priority; /* tier among clusters, lower preferred; default 0 */
};

struct nm_kv_record {
	struct nm_kv_key key;
	union {
		struct nm_kv_cluster cluster; /* NM_KV_T_CLUSTER */
		struct nm_kv_stamp stamp; /* NM_KV_T_HEARTBEAT, _SYNCED */
		struct nm_kv_node node; /* NM_KV_T_NODE */
		struct nm_kv_endpoint ep; /* NM_KV_T_ENDPOINT */
		struct nm_kv_identity identity; /* NM_KV_T_IDENTITY */
		struct nm_kv_service svc; /* NM_KV_T_SERVICE */
	};
};


/* "nodes", "endpoints", ...; NULL when out of range. */
const char *nm_kv_kind_name(enum nm_kv_kind kind);
const char *nm_kv_affinity_name(enum nm_kv_affinity aff);

/*
 * Split @key (which must start with @prefix, NULL for the default) into
 * its parts, checking every component's syntax. -EINVAL with a reason in
 * @err (not prefixed with the key).
 */
int nm_kv_key_parse(const char *prefix, const char *key, struct nm_kv_key *out,
		    char *err, size_t errlen);
/* The key of @k under @prefix; -ENAMETOOLONG if @len is too small. */
int nm_kv_key_format(const char *prefix, const struct nm_kv_key *k, char *buf,
		     size_t len);
/* "<prefix>state/<kind>/v1/<cluster>/": what a mirror lists and watches. */
int nm_kv_state_prefix(const char *prefix, enum nm_kv_kind kind,
		       const char *cluster, char *buf, size_t len);

/*
 * A key seen on @ctx's connection (e.g. a delete event): parsed, and its
 * cluster must be @ctx's. -EINVAL with "rejected KEY from cluster C: why".
 */
int nm_kv_key_check(const struct nm_kv_ctx *ctx, const char *key,
		    struct nm_kv_key *out, char *err, size_t errlen);

/*
 * Decode and validate the value @val (@len bytes, not NUL-terminated) of
 * @key as received on @ctx's connection. On success @out owns its memory
 * (nm_kv_record_free). On failure @out is zeroed, and -EINVAL (-ENOMEM)
 * comes with "rejected KEY from cluster C: why" in @err.
 */
int nm_kv_decode(const struct nm_kv_ctx *ctx, const char *key, const void *val,
		 size_t len, struct nm_kv_record *out, char *err,
		 size_t errlen);

/*
 * Encode @rec (its key included) for publishing in @ctx's cluster. The
 * result is decoded again before it is returned, so we never publish what
 * a peer would reject. *key_out and *val_out are malloc'd (val_out NUL-
 * terminated, *val_len without the NUL). -EINVAL with a reason in @err.
 */
int nm_kv_encode(const struct nm_kv_ctx *ctx, const struct nm_kv_record *rec,
		 char **key_out, char **val_out, size_t *val_len, char *err,
		 size_t errlen);

void nm_kv_record_free(struct nm_kv_record *rec);

#endif /* NM_AGENT_KVSTORE_H */
