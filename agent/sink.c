// SPDX-License-Identifier: GPL-2.0
/*
 * The map sink (agent/sink.h): mirrored records of every cluster into the
 * pinned maps.
 *
 * Bookkeeping, all under s->lock:
 *   recs       key string -> struct rec, a copy of what the record said;
 *   nrefs      (cluster, node name) -> its node record (if seen) and the
 *              endpoint records that name it (tunnel fix-ups);
 *   ipslots    pod IP -> endpoint records claiming it (the newest claim
 *              owns nm_ipcache_v1[ip/32]; an IP reused by a new pod
 *              before the old pod's delete arrives stays the new pod's);
 *   nodeslots  node IP -> node records claiming it (newest owns the entry);
 *   feslots    frontend -> service records naming it, sorted by (cluster
 *              id, key), and the merged set last programmed;
 *   clusters   cluster name -> counters, id and reachability.
 *
 * Every change runs the same way: unlink the key's old record from its
 * slots, link the new one, then bring each touched slot's map entry to
 * what its claims say (new slots first, so an endpoint that moves is
 * written at its new place before the old one goes). A map write that
 * fails puts the old record back and syncs the touched slots again, so a
 * key is either fully applied or left as it was. Slots are synced by
 * comparing with what we last wrote: a re-upsert that changes nothing
 * writes nothing, and an endpoint re-upserted in place is overwritten,
 * never deleted and re-added.
 *
 * Services: every cluster's service record with the same frontend goes
 * through nm_svc_merge() (agent/svcmerge.h: global, shared, affinity,
 * weight, priority, reachability), cluster_id set per backend. A
 * frontend no record contributes to (only remote records that are not
 * shared, say) is not programmed. A remote cluster marked unreachable
 * (nm_sink_set_reachable) has every frontend it has a record for
 * re-merged at the next nm_sink_flush(): one service write each, and
 * only where the merged set changes. A frontend that nodemeshctl
 * programmed by hand is taken over by the first record naming it.
 *
 * Identities: the records' identities are merged into identities.json at
 * nm_sink_flush(), which reloads the file under the pin root's lock first
 * (nodemeshctl allocates local identities into the same file), then runs
 * the policy writer. A removed identity is dropped from the file unless a
 * local endpoint still uses it. The ids merged are also listed in the
 * state file "kvstore-identities", so that the next run's nm_sink_sweep()
 * can tell them from nodemeshctl's: until that sweep, the list keeps what
 * the previous run left in it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <bpf/bpf.h>

#include "agent/identity.h"
#include "agent/log.h"
#include "agent/policy_apply.h"
#include "agent/sink.h"
#include "agent/svc.h"
#include "agent/svcmerge.h"
#include "maps/identity.h"
#include "maps/ipcache.h"
#include "maps/node.h"

/* ---- growable arrays ---------------------------------------------------- */

/*
 * Grow the array @v of *@cap elements of @size bytes: to @first elements,
 * or twice as many. The new array (*@cap updated), or NULL with @v kept.
 */
static void *vec_grow(void *v, size_t *cap, size_t size, size_t first)
{
	size_t n = *cap ? *cap * 2 : first;
	void *nv;

	nv = realloc(v, n * size);
	if (!nv)
		return NULL;
	*cap = n;
	return nv;
}

/* ---- pointer vectors ---------------------------------------------------- */

struct pvec {
	void **v;
	size_t n, cap;
};

static int pvec_insert(struct pvec *p, size_t at, void *x)
{
	void **nv;

	if (p->n == p->cap) {
		nv = vec_grow(p->v, &p->cap, sizeof(*nv), 4);
		if (!nv)
			return -ENOMEM;
		p->v = nv;
	}
	if (at > p->n)
		at = p->n;
	memmove(&p->v[at + 1], &p->v[at], (p->n - at) * sizeof(*p->v));
	p->v[at] = x;
	p->n++;
	return 0;
}

static ssize_t pvec_find(const struct pvec *p, const void *x)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->v[i] == x)
			return (ssize_t)i;
	return -1;
}

/* Remove @x, keeping the order; its former index, or -1. */
static ssize_t pvec_remove(struct pvec *p, const void *x)
{
	ssize_t i = pvec_find(p, x);

	if (i < 0)
		return -1;
	memmove(&p->v[i], &p->v[i + 1], (p->n - (size_t)i - 1) * sizeof(*p->v));
	p->n--;
	return i;
}

static void pvec_free(struct pvec *p)
{
	free(p->v);
	memset(p, 0, sizeof(*p));
}

/* ---- state -------------------------------------------------------------- */

struct rec;

struct cstats {
	char name[NM_KV_CLUSTER_MAX + 1];
	__u16 id; /* 0 until known */
	bool unreachable; /* zeroed: a cluster is reachable until told not */
	bool reach_dirty; /* its frontends await a re-merge at flush */
	struct nm_sink_stats st;
};

/* A node of some cluster, as endpoints name it. */
struct nref {
	char cluster[NM_KV_CLUSTER_MAX + 1];
	char *name;
	struct rec *node; /* its node record, NULL until seen */
	__u32 node_id; /* 0 while no node record has been seen */
	struct pvec eps; /* endpoint records on this node */
};

/* nm_ipcache_v1[ip/32], claimed by endpoint records. */
struct ipslot {
	__be32 ip;
	struct pvec claims; /* oldest first; the last one is written */
	bool written;
	bool cidr_under; /* a policy CIDR entry matched before we wrote */
	struct nm_ipcache_val cur;
};

/* nm_nodes_v1[ip], claimed by node records. */
struct nodeslot {
	__be32 ip;
	struct pvec claims; /* oldest first; the last one is written */
	bool written;
	struct nm_node_val cur;
};

/* One frontend and the service records of every cluster naming it. */
struct feslot {
	struct nm_frontend fe;
	struct pvec recs; /* sorted by (cluster id, key) */
	bool programmed;
	struct nm_merge_be *be; /* the merged set last programmed */
	size_t n_be;
};

struct rec {
	char *key;
	enum nm_kv_type type;
	struct cstats *cs;
	union {
		struct {
			struct nref *ref;
			__be32 ip;
			__u16 cluster_id;
			struct nodeslot *slot;
			size_t pos; /* index in slot->claims while unlinked */
		} node;
		struct {
			struct nref *ref; /* NULL for this node's own endpoints */
			__be32 ip;
			__u64 identity;
			struct ipslot *slot;
			size_t pos;
			bool local;
		} ep;
		struct {
			__u64 id;
			struct nm_labels labels;
		} id;
		struct {
			__u16 cluster_id;
			bool global, shared;
			__u8 affinity, priority;
			__u16 weight;
			struct nm_frontend *fe;
			size_t n_fe;
			struct nm_merge_src *be;
			size_t n_be;
		} svc;
	};
};

struct nm_sink {
	pthread_mutex_t lock;
	struct nm_maps *maps;
	/* Free ids and each service's backends: no map scan per service. */
	struct nm_svc_index *svc_idx;
	const struct nm_state *state;
	char local_cluster[NM_KV_CLUSTER_MAX + 1];
	char local_node[NM_KV_NAME_MAX + 1];
	__u16 local_cluster_id;
	void *recs, *nrefs, *ipslots, *nodeslots, *feslots, *clusters;
	size_t n_ids; /* identity records held */
	unsigned char *node_ids; /* bitmap of assigned node ids */
	__u64 *dropped; /* identities removed since the last flush */
	size_t n_dropped, cap_dropped;
	bool ids_dirty; /* identity records changed since the last flush */
	bool policy_dirty; /* a policy CIDR entry may need restoring */
	bool reach_dirty; /* some cluster's reachability changed */
	__u64 *prev_ids; /* kvstore identities of an earlier run, sorted */
	size_t n_prev_ids; /* (until nm_sink_sweep() settles them) */
};

#define KV_IDS_FILE "kvstore-identities"

/* Slots an operation touched, in the order they are synced. */
enum slot_kind { SL_IP, SL_NODE, SL_FE };

struct touch {
	enum slot_kind kind;
	void *slot;
};

struct touched {
	struct touch v[2 * NM_KV_FRONTENDS_MAX + 2];
	size_t n;
	struct touch *more; /* tunnel fix-ups of a node's endpoints */
	size_t n_more, cap_more;
};

/* ---- tree compare functions --------------------------------------------- */

static int rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rec *)a)->key,
		      ((const struct rec *)b)->key);
}

static int nref_cmp(const void *a, const void *b)
{
	const struct nref *x = a, *y = b;
	int c = strcmp(x->cluster, y->cluster);

	return c ?: strcmp(x->name, y->name);
}

static int ipslot_cmp(const void *a, const void *b)
{
	__u32 x = ntohl(((const struct ipslot *)a)->ip);
	__u32 y = ntohl(((const struct ipslot *)b)->ip);

	return x < y ? -1 : x > y;
}

static int nodeslot_cmp(const void *a, const void *b)
{
	__u32 x = ntohl(((const struct nodeslot *)a)->ip);
	__u32 y = ntohl(((const struct nodeslot *)b)->ip);

	return x < y ? -1 : x > y;
}

static int feslot_cmp(const void *a, const void *b)
{
	const struct feslot *x = a, *y = b;

	return memcmp(&x->fe, &y->fe, sizeof(x->fe));
}

static int cstats_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cstats *)a)->name,
		      ((const struct cstats *)b)->name);
}

/* tfind() that returns the element, not the node. */
static void *tget(const void *probe, void *const *root,
		  int (*cmp)(const void *, const void *))
{
	void **p = tfind(probe, root, cmp);

	return p ? *p : NULL;
}

/*
 * tget(), or else add a copy of @probe (@size bytes, zero but for the key)
 * to the tree: the element, or NULL when out of memory.
 */
static void *tget_add(const void *probe, void **root, size_t size,
		      int (*cmp)(const void *, const void *))
{
	void *x = tget(probe, root, cmp);

	if (x)
		return x;
	x = malloc(size);
	if (!x)
		return NULL;
	memcpy(x, probe, size);
	if (!tsearch(x, root, cmp)) {
		free(x);
		return NULL;
	}
	return x;
}

/* ---- helpers ------------------------------------------------------------ */

static const char *ip_s(__be32 ip, char *buf)
{
	if (!inet_ntop(AF_INET, &ip, buf, INET_ADDRSTRLEN))
		strcpy(buf, "?");
	return buf;
}

/* The key of @k as one string: what records are indexed by. */
static int key_str(const struct nm_kv_key *k, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%d/%s/%s/%s", (int)k->type, k->cluster,
			 k->ns, k->name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

#define KEY_LEN (16 + NM_KV_CLUSTER_MAX + NM_KV_NS_MAX + NM_KV_NAME_MAX)

/* A readable name for log lines: "endpoint east/shop/web-1". */
static void key_desc(const struct nm_kv_key *k, char *buf, size_t len)
{
	static const char *const types[] = {
		[NM_KV_T_CLUSTER] = "cluster",
		[NM_KV_T_HEARTBEAT] = "heartbeat",
		[NM_KV_T_SYNCED] = "synced",
		[NM_KV_T_NODE] = "node",
		[NM_KV_T_ENDPOINT] = "endpoint",
		[NM_KV_T_IDENTITY] = "identity",
		[NM_KV_T_SERVICE] = "service",
	};
	const char *t = (unsigned int)k->type <
					sizeof(types) / sizeof(types[0]) ?
				types[k->type] :
				"record";

	if (k->ns[0])
		snprintf(buf, len, "%s %s/%s/%s", t, k->cluster, k->ns,
			 k->name);
	else
		snprintf(buf, len, "%s %s/%s", t, k->cluster, k->name);
}

static struct cstats *cstats_get(struct nm_sink *s, const char *cluster)
{
	struct cstats probe = {};

	snprintf(probe.name, sizeof(probe.name), "%s", cluster);
	return tget_add(&probe, &s->clusters, sizeof(probe), cstats_cmp);
}

static __u64 *stat_of(struct rec *r)
{
	switch (r->type) {
	case NM_KV_T_NODE:
		return &r->cs->st.nodes;
	case NM_KV_T_ENDPOINT:
		return &r->cs->st.endpoints;
	case NM_KV_T_IDENTITY:
		return &r->cs->st.identities;
	default:
		return &r->cs->st.services;
	}
}

static void rec_free(struct rec *r)
{
	if (!r)
		return;
	if (r->type == NM_KV_T_IDENTITY)
		nm_labels_free(&r->id.labels);
	if (r->type == NM_KV_T_SERVICE) {
		free(r->svc.fe);
		free(r->svc.be);
	}
	free(r->key);
	free(r);
}

/* Our copy of what @rec says; nothing linked yet. */
static int rec_new(struct nm_sink *s, const struct nm_kv_record *rec,
		   const char *key, struct rec **out)
{
	const struct nm_kv_key *k = &rec->key;
	struct rec *r;
	size_t i;
	int err = -ENOMEM;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->type = k->type;
	r->key = strdup(key);
	r->cs = cstats_get(s, k->cluster);
	if (!r->key || !r->cs)
		goto err_free;
	switch (k->type) {
	case NM_KV_T_NODE:
		r->node.ip = rec->node.node_ip;
		r->node.cluster_id = rec->node.cluster_id;
		break;
	case NM_KV_T_ENDPOINT:
		r->ep.ip = rec->ep.ip;
		r->ep.identity = rec->ep.identity;
		/* This node's pods are nodemeshctl's/CNI's, not ours. */
		r->ep.local = s->local_node[0] && rec->ep.node &&
			      !strcmp(k->cluster, s->local_cluster) &&
			      !strcmp(rec->ep.node, s->local_node);
		break;
	case NM_KV_T_IDENTITY:
		r->id.id = rec->identity.id;
		err = nm_labels_copy(&r->id.labels, &rec->identity.labels);
		if (err)
			goto err_free;
		break;
	case NM_KV_T_SERVICE:
		/* Records carry no id: the one the daemon or records told us. */
		r->svc.cluster_id = r->cs->id;
		if (!r->svc.cluster_id) {
			err = -EAGAIN;
			goto err_free;
		}
		r->svc.fe =
			calloc(rec->svc.n_frontends ?: 1, sizeof(*r->svc.fe));
		r->svc.be =
			calloc(rec->svc.n_backends ?: 1, sizeof(*r->svc.be));
		if (!r->svc.fe || !r->svc.be)
			goto err_free;
		/* Field by field: slots compare whole structs, pad included. */
		for (i = 0; i < rec->svc.n_frontends; i++) {
			r->svc.fe[i].vip = rec->svc.frontends[i].vip;
			r->svc.fe[i].port = rec->svc.frontends[i].port;
			r->svc.fe[i].proto = rec->svc.frontends[i].proto;
		}
		r->svc.n_fe = rec->svc.n_frontends;
		for (i = 0; i < rec->svc.n_backends; i++) {
			const struct nm_kv_backend *b = &rec->svc.backends[i];

			r->svc.be[i].addr = b->ip;
			r->svc.be[i].port = b->port;
			r->svc.be[i].proto = b->proto;
			r->svc.be[i].state = b->state;
			r->svc.be[i].weight = b->weight;
		}
		r->svc.n_be = rec->svc.n_backends;
		r->svc.global = rec->svc.global;
		r->svc.shared = rec->svc.shared;
		r->svc.affinity = (__u8)rec->svc.affinity;
		r->svc.priority = rec->svc.priority;
		r->svc.weight = rec->svc.weight;
		break;
	default:
		break;
	}
	*out = r;
	return 0;

err_free:
	rec_free(r);
	return err;
}

/* ---- node ids ----------------------------------------------------------- */

#define NODE_ID_BITS (NM_NODES_MAX + 1)

static int node_id_alloc(struct nm_sink *s, __u32 *id)
{
	__u32 i;

	/* Lowest free id >= 1: small, and reused after a node leaves. */
	for (i = 1; i < NODE_ID_BITS; i++) {
		if (s->node_ids[i / 8] & (1U << (i % 8)))
			continue;
		s->node_ids[i / 8] |= (unsigned char)(1U << (i % 8));
		*id = i;
		return 0;
	}
	return -ENOSPC;
}

static void node_id_free(struct nm_sink *s, __u32 id)
{
	if (id && id < NODE_ID_BITS)
		s->node_ids[id / 8] &= (unsigned char)~(1U << (id % 8));
}

/* ---- slot lookup and creation ------------------------------------------- */

static struct nref *nref_get(struct nm_sink *s, const char *cluster,
			     const char *name)
{
	struct nref probe = {}, *n;

	snprintf(probe.cluster, sizeof(probe.cluster), "%s", cluster);
	probe.name = (char *)name;
	n = tget(&probe, &s->nrefs, nref_cmp);
	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	memcpy(n->cluster, probe.cluster, sizeof(n->cluster));
	n->name = strdup(name);
	if (!n->name || !tsearch(n, &s->nrefs, nref_cmp)) {
		free(n->name);
		free(n);
		return NULL;
	}
	return n;
}

static struct ipslot *ipslot_get(struct nm_sink *s, __be32 ip)
{
	struct ipslot probe = { .ip = ip };

	return tget_add(&probe, &s->ipslots, sizeof(probe), ipslot_cmp);
}

static struct nodeslot *nodeslot_get(struct nm_sink *s, __be32 ip)
{
	struct nodeslot probe = { .ip = ip };

	return tget_add(&probe, &s->nodeslots, sizeof(probe), nodeslot_cmp);
}

static struct feslot *feslot_get(struct nm_sink *s,
				 const struct nm_frontend *fe)
{
	struct feslot probe = {};

	probe.fe.vip = fe->vip;
	probe.fe.port = fe->port;
	probe.fe.proto = fe->proto;
	return tget_add(&probe, &s->feslots, sizeof(probe), feslot_cmp);
}

/* ---- touched slots ------------------------------------------------------ */

static int touch(struct touched *t, enum slot_kind kind, void *slot)
{
	struct touch *nv;
	size_t i;

	if (!slot)
		return 0;
	for (i = 0; i < t->n; i++)
		if (t->v[i].slot == slot)
			return 0;
	for (i = 0; i < t->n_more; i++)
		if (t->more[i].slot == slot)
			return 0;
	if (t->n < sizeof(t->v) / sizeof(t->v[0])) {
		t->v[t->n++] = (struct touch){ kind, slot };
		return 0;
	}
	if (t->n_more == t->cap_more) {
		nv = vec_grow(t->more, &t->cap_more, sizeof(*nv), 64);
		if (!nv)
			return -ENOMEM;
		t->more = nv;
	}
	t->more[t->n_more++] = (struct touch){ kind, slot };
	return 0;
}

static struct touch *touch_at(struct touched *t, size_t i)
{
	return i < t->n ? &t->v[i] : &t->more[i - t->n];
}

/* ---- syncing one slot with its map entry -------------------------------- */

static __be32 nref_ip(const struct nref *ref)
{
	return ref && ref->node ? ref->node->node.ip : 0;
}

static int ipslot_sync(struct nm_sink *s, struct ipslot *x)
{
	struct nm_ipcache_key k = { .prefixlen = 32, .addr = x->ip };
	struct nm_ipcache_val want = {}, cur = {};
	struct nm_maps *maps = s->maps;
	char ip[INET_ADDRSTRLEN];
	bool have_cur;
	int err;

	if (x->claims.n) {
		struct rec *r = x->claims.v[x->claims.n - 1];

		want.identity = r->ep.identity;
		want.tunnel_endpoint = nref_ip(r->ep.ref);
		if (x->written && !memcmp(&want, &x->cur, sizeof(want)))
			return 0;
	} else if (!x->written) {
		return 0;
	}

	/* nodemeshctl writes local pods under the same lock: no race. */
	err = nm_maps_lock(maps);
	if (err)
		return err;
	have_cur = !bpf_map_lookup_elem(maps->ipcache, &k, &cur);
	/* A LOCAL match can only be this very /32: a pod of this node. */
	if (have_cur && (cur.flags & NM_IPC_F_LOCAL)) {
		pr_debug("left ipcache %s/32 alone: a local endpoint holds it",
			 ip_s(x->ip, ip));
		x->written = false;
		goto out;
	}
	if (x->claims.n) {
		if (!x->written && have_cur && (cur.flags & NM_IPC_F_CIDR))
			x->cidr_under = true;
		if (bpf_map_update_elem(maps->ipcache, &k, &want, BPF_ANY)) {
			err = -errno;
			pr_warn("failed to write ipcache entry %s/32 on %s: %s",
				ip_s(x->ip, ip), maps->pin_root,
				strerror(-err));
			goto out;
		}
		x->written = true;
		x->cur = want;
		goto out;
	}
	if (bpf_map_delete_elem(maps->ipcache, &k) && errno != ENOENT) {
		err = -errno;
		pr_warn("failed to delete ipcache entry %s/32 on %s: %s",
			ip_s(x->ip, ip), maps->pin_root, strerror(-err));
		goto out;
	}
	x->written = false;
	/* The policy writer puts back a CIDR /32 we may have covered. */
	if (x->cidr_under)
		s->policy_dirty = true;
	x->cidr_under = false;
out:
	nm_maps_unlock(maps);
	return err;
}

static int nodeslot_sync(struct nm_sink *s, struct nodeslot *x)
{
	struct nm_node_key k = { .node_ip = x->ip };
	struct nm_node_val want = {};
	struct nm_maps *maps = s->maps;
	char ip[INET_ADDRSTRLEN];
	int err;

	if (x->claims.n) {
		struct rec *r = x->claims.v[x->claims.n - 1];

		want.cluster_id = r->node.cluster_id;
		want.node_id = r->node.ref->node_id;
		if (x->written && !memcmp(&want, &x->cur, sizeof(want)))
			return 0;
		if (bpf_map_update_elem(maps->nodes, &k, &want, BPF_ANY)) {
			err = -errno;
			pr_warn("failed to write node %s on %s: %s",
				ip_s(x->ip, ip), maps->pin_root,
				strerror(-err));
			return err;
		}
		x->written = true;
		x->cur = want;
		return 0;
	}
	if (!x->written)
		return 0;
	if (bpf_map_delete_elem(maps->nodes, &k) && errno != ENOENT) {
		err = -errno;
		pr_warn("failed to delete node %s on %s: %s", ip_s(x->ip, ip),
			maps->pin_root, strerror(-err));
		return err;
	}
	x->written = false;
	return 0;
}

/*
 * Merge the records of @x's frontend: *@want false when none contributes
 * (the frontend is not ours to program), else the set in *@out.
 */
static int fe_merge(const struct nm_sink *s, const struct feslot *x, bool *want,
		    struct nm_merge_be **out, size_t *n_out)
{
	struct nm_merge_in *in;
	size_t i;
	int err = 0;

	*want = false;
	*out = NULL;
	*n_out = 0;
	if (!x->recs.n)
		return 0;
	in = calloc(x->recs.n, sizeof(*in));
	if (!in)
		return -ENOMEM;
	for (i = 0; i < x->recs.n; i++) {
		const struct rec *r = x->recs.v[i];

		in[i].cluster_id = r->svc.cluster_id;
		in[i].reachable = !r->cs->unreachable;
		in[i].global = r->svc.global;
		in[i].shared = r->svc.shared;
		in[i].affinity = r->svc.affinity;
		in[i].priority = r->svc.priority;
		in[i].weight = r->svc.weight;
		in[i].backends = r->svc.be;
		in[i].n_backends = r->svc.n_be;
	}
	*want = nm_svc_merge_contributes(in, x->recs.n, s->local_cluster_id);
	if (*want)
		err = nm_svc_merge(in, x->recs.n, s->local_cluster_id, &x->fe,
				   out, n_out);
	free(in);
	return err;
}

static bool same_specs(const struct nm_merge_be *a, size_t na,
		       const struct nm_merge_be *b, size_t nb)
{
	size_t i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (memcmp(&a[i].spec, &b[i].spec, sizeof(a[i].spec)))
			return false;
	return true;
}

static int feslot_sync(struct nm_sink *s, struct feslot *x)
{
	struct nm_backend_spec *spec = NULL;
	struct nm_merge_be *m = NULL;
	size_t n = 0, i;
	bool want;
	int err;

	err = fe_merge(s, x, &want, &m, &n);
	if (err)
		return err;
	if (!want) {
		if (!x->programmed)
			return 0;
		err = nm_svc_delete_idx(s->maps, s->svc_idx, &x->fe);
		if (err && err != -ENOENT)
			return err;
		x->programmed = false;
		free(x->be);
		x->be = NULL;
		x->n_be = 0;
		return 0;
	}
	/* Same specs: nothing to write, but keep why each has its state. */
	if (x->programmed && same_specs(m, n, x->be, x->n_be))
		goto keep;
	spec = calloc(n ?: 1, sizeof(*spec));
	if (!spec) {
		err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < n; i++)
		spec[i] = m[i].spec;
	err = nm_svc_upsert_idx(s->maps, s->svc_idx, &x->fe, spec, n,
				NM_LB_MAGLEV);
	if (err)
		goto out_free;
	x->programmed = true;
keep:
	free(x->be);
	x->be = m;
	x->n_be = n;
	m = NULL;
out_free:
	free(spec);
	free(m);
	return err;
}

static int slot_sync(struct nm_sink *s, const struct touch *t)
{
	switch (t->kind) {
	case SL_IP:
		return ipslot_sync(s, t->slot);
	case SL_NODE:
		return nodeslot_sync(s, t->slot);
	default:
		return feslot_sync(s, t->slot);
	}
}

/* Sync every touched slot; stops at the first failure. */
static int sync_touched(struct nm_sink *s, struct touched *t)
{
	size_t i;
	int err;

	for (i = 0; i < t->n + t->n_more; i++) {
		err = slot_sync(s, touch_at(t, i));
		if (err)
			return err;
	}
	return 0;
}

/* After a failure: the old records are linked again, bring maps back. */
static void resync_touched(struct nm_sink *s, struct touched *t,
			   const char *desc)
{
	size_t i;
	int err;

	for (i = 0; i < t->n + t->n_more; i++) {
		err = slot_sync(s, touch_at(t, i));
		if (err)
			pr_warn("failed to roll back %s on %s: %s", desc,
				s->maps->pin_root, strerror(-err));
	}
}

/* Free touched slots nobody claims and that hold nothing in the maps. */
static void gc_touched(struct nm_sink *s, struct touched *t)
{
	size_t i;

	for (i = 0; i < t->n + t->n_more; i++) {
		struct touch *x = touch_at(t, i);

		if (x->kind == SL_IP) {
			struct ipslot *p = x->slot;

			if (p->claims.n || p->written)
				continue;
			tdelete(p, &s->ipslots, ipslot_cmp);
			pvec_free(&p->claims);
			free(p);
		} else if (x->kind == SL_NODE) {
			struct nodeslot *p = x->slot;

			if (p->claims.n || p->written)
				continue;
			tdelete(p, &s->nodeslots, nodeslot_cmp);
			pvec_free(&p->claims);
			free(p);
		} else {
			struct feslot *p = x->slot;

			if (p->recs.n || p->programmed)
				continue;
			tdelete(p, &s->feslots, feslot_cmp);
			pvec_free(&p->recs);
			free(p->be);
			free(p);
		}
	}
}

static void nref_gc(struct nm_sink *s, struct nref *n)
{
	if (!n)
		return;
	if (!n->node && n->node_id) {
		node_id_free(s, n->node_id);
		n->node_id = 0;
	}
	if (n->node || n->eps.n)
		return;
	tdelete(n, &s->nrefs, nref_cmp);
	pvec_free(&n->eps);
	free(n->name);
	free(n);
}

/* ---- linking records into slots ----------------------------------------- */

static int svc_pos(const struct feslot *x, const struct rec *r)
{
	size_t i;

	/* Sorted by (cluster id, key): the union does not depend on arrival. */
	for (i = 0; i < x->recs.n; i++) {
		const struct rec *o = x->recs.v[i];

		if (o->svc.cluster_id > r->svc.cluster_id ||
		    (o->svc.cluster_id == r->svc.cluster_id &&
		     strcmp(o->key, r->key) > 0))
			break;
	}
	return (int)i;
}

/* Touch the ipcache slots of the endpoints on @ref: their tunnel follows it. */
static int touch_eps(struct touched *t, const struct nref *ref)
{
	size_t i;
	int err = 0;

	for (i = 0; !err && i < ref->eps.n; i++)
		err = touch(t, SL_IP, ((struct rec *)ref->eps.v[i])->ep.slot);
	return err;
}

/*
 * Link @r into its slots, appending what it touches to @t. Slots are
 * found (created) and touched first, so a failure leaves nothing linked;
 * slots created for nothing are freed by gc_touched().
 */
static int rec_link(struct nm_sink *s, struct rec *r, const char *cluster,
		    const char *node, struct touched *t)
{
	struct feslot *x;
	struct nref *ref;
	size_t i, j;
	int err;

	switch (r->type) {
	case NM_KV_T_NODE:
		ref = nref_get(s, cluster, node);
		if (!ref)
			return -ENOMEM;
		r->node.ref = ref; /* for nref_gc(), even on failure */
		if (!ref->node_id) {
			err = node_id_alloc(s, &ref->node_id);
			if (err)
				return err;
		}
		r->node.slot = nodeslot_get(s, r->node.ip);
		if (!r->node.slot)
			return -ENOMEM;
		err = touch(t, SL_NODE, r->node.slot) ?: touch_eps(t, ref);
		if (!err)
			err = pvec_insert(&r->node.slot->claims, (size_t)-1, r);
		if (err)
			return err;
		ref->node = r;
		return 0;
	case NM_KV_T_ENDPOINT:
		if (r->ep.local)
			return 0;
		ref = nref_get(s, cluster, node);
		if (!ref)
			return -ENOMEM;
		r->ep.ref = ref;
		r->ep.slot = ipslot_get(s, r->ep.ip);
		if (!r->ep.slot)
			return -ENOMEM;
		err = touch(t, SL_IP, r->ep.slot);
		if (err)
			return err;
		if (pvec_insert(&ref->eps, (size_t)-1, r))
			return -ENOMEM;
		if (pvec_insert(&r->ep.slot->claims, (size_t)-1, r)) {
			pvec_remove(&ref->eps, r);
			return -ENOMEM;
		}
		return 0;
	case NM_KV_T_SERVICE:
		for (i = 0; i < r->svc.n_fe; i++) {
			x = feslot_get(s, &r->svc.fe[i]);
			if (!x)
				return -ENOMEM;
			err = touch(t, SL_FE, x);
			if (err)
				return err;
		}
		for (i = 0; i < r->svc.n_fe; i++) {
			x = feslot_get(s, &r->svc.fe[i]);
			if (pvec_find(&x->recs, r) >= 0)
				continue; /* the same frontend listed twice */
			if (pvec_insert(&x->recs, (size_t)svc_pos(x, r), r))
				goto err_svc;
		}
		return 0;
	default:
		return 0;
	}

err_svc:
	for (j = 0; j < i; j++) {
		x = feslot_get(s, &r->svc.fe[j]);
		if (x)
			pvec_remove(&x->recs, r);
	}
	return -ENOMEM;
}

/*
 * Undo rec_link(), keeping the positions in @r for rec_relink(). Only the
 * touching can fail, and it comes first.
 */
static int rec_unlink(struct nm_sink *s, struct rec *r, struct touched *t)
{
	struct feslot probe = {}, *x;
	ssize_t pos;
	size_t i;
	int err = 0;

	switch (r->type) {
	case NM_KV_T_NODE:
		err = touch(t, SL_NODE, r->node.slot) ?:
							touch_eps(t, r->node.ref);
		if (err)
			return err;
		pos = pvec_remove(&r->node.slot->claims, r);
		r->node.pos = pos < 0 ? 0 : (size_t)pos;
		/* A re-upsert links the new record first: keep it. */
		if (r->node.ref->node == r)
			r->node.ref->node = NULL;
		return 0;
	case NM_KV_T_ENDPOINT:
		if (r->ep.local)
			return 0;
		err = touch(t, SL_IP, r->ep.slot);
		if (err)
			return err;
		pvec_remove(&r->ep.ref->eps, r);
		pos = pvec_remove(&r->ep.slot->claims, r);
		r->ep.pos = pos < 0 ? 0 : (size_t)pos;
		return 0;
	case NM_KV_T_SERVICE:
		for (i = 0; i < r->svc.n_fe && !err; i++) {
			probe.fe = r->svc.fe[i];
			x = tget(&probe, &s->feslots, feslot_cmp);
			err = touch(t, SL_FE, x);
		}
		if (err)
			return err;
		for (i = 0; i < r->svc.n_fe; i++) {
			probe.fe = r->svc.fe[i];
			x = tget(&probe, &s->feslots, feslot_cmp);
			if (x)
				pvec_remove(&x->recs, r);
		}
		return 0;
	default:
		return 0;
	}
}

/* Put an unlinked @r back where it was (for a rollback). */
static void rec_relink(struct nm_sink *s, struct rec *r)
{
	size_t i;
	int err = 0;

	switch (r->type) {
	case NM_KV_T_NODE:
		if (!r->node.ref->node)
			r->node.ref->node = r;
		err = pvec_insert(&r->node.slot->claims, r->node.pos, r);
		break;
	case NM_KV_T_ENDPOINT:
		if (r->ep.local)
			return;
		err = pvec_insert(&r->ep.ref->eps, (size_t)-1, r) ?:
			      pvec_insert(&r->ep.slot->claims, r->ep.pos, r);
		break;
	case NM_KV_T_SERVICE:
		for (i = 0; i < r->svc.n_fe && !err; i++) {
			struct feslot *x = feslot_get(s, &r->svc.fe[i]);

			if (!x) {
				err = -ENOMEM;
				break;
			}
			if (pvec_find(&x->recs, r) < 0)
				err = pvec_insert(&x->recs,
						  (size_t)svc_pos(x, r), r);
		}
		break;
	default:
		break;
	}
	if (err)
		pr_warn("failed to restore record %s in the sink: out of memory",
			r->key);
}

/* The nref @r points at, for nref_gc after it was unlinked. */
static struct nref *rec_nref(const struct rec *r)
{
	if (r->type == NM_KV_T_NODE)
		return r->node.ref;
	if (r->type == NM_KV_T_ENDPOINT)
		return r->ep.ref;
	return NULL;
}

static bool has_map_state(enum nm_kv_type type)
{
	return type == NM_KV_T_NODE || type == NM_KV_T_ENDPOINT ||
	       type == NM_KV_T_IDENTITY || type == NM_KV_T_SERVICE;
}

static void dropped_forget(struct nm_sink *s, __u64 id)
{
	size_t i;

	for (i = 0; i < s->n_dropped; i++) {
		if (s->dropped[i] == id) {
			s->dropped[i] = s->dropped[--s->n_dropped];
			return;
		}
	}
}

static int dropped_add(struct nm_sink *s, __u64 id)
{
	__u64 *nv;

	if (s->n_dropped == s->cap_dropped) {
		nv = vec_grow(s->dropped, &s->cap_dropped, sizeof(*nv), 16);
		if (!nv)
			return -ENOMEM;
		s->dropped = nv;
	}
	s->dropped[s->n_dropped++] = id;
	return 0;
}

/* ---- kvstore identity list ---------------------------------------------- */

/* twalk_r() context: the identity records, as the idstore wants them. */
struct id_walk {
	struct nm_identity_info *v;
	size_t n, cap;
};

static void collect_id(const void *node, VISIT which, void *arg)
{
	const struct rec *r = *(struct rec *const *)node;
	struct id_walk *w = arg;

	if ((which != postorder && which != leaf) ||
	    r->type != NM_KV_T_IDENTITY || w->n == w->cap)
		return;
	w->v[w->n].id = r->id.id;
	w->v[w->n].labels = r->id.labels; /* borrowed: merge copies */
	w->n++;
}

static int u64_cmp(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

static bool u64_in(const __u64 *v, size_t n, __u64 x)
{
	return n && bsearch(&x, v, n, sizeof(*v), u64_cmp);
}

/* KV_IDS_FILE: one decimal id a line. Absent: none. */
static int kv_ids_load(const struct nm_state *st, __u64 **out, size_t *n_out)
{
	size_t len, n = 0, cap = 0;
	__u64 *v = NULL, *nv;
	char *buf = NULL, *p, *end;
	unsigned long long id;
	int err;

	*out = NULL;
	*n_out = 0;
	err = nm_state_read(st, KV_IDS_FILE, &buf, &len);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	for (p = buf; *p; p = end) {
		if (*p == '\n') {
			end = p + 1;
			continue;
		}
		errno = 0;
		id = strtoull(p, &end, 10);
		if (errno || end == p || *p < '0' || *p > '9' ||
		    (*end && *end != '\n')) {
			err = -EBADMSG;
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[n++] = id;
	}
	qsort(v, n, sizeof(*v), u64_cmp);
	*out = v;
	*n_out = n;
	v = NULL;
out:
	free(v);
	free(buf);
	return err;
}

/* Write @a plus @b (duplicates are harmless) as KV_IDS_FILE. */
static int kv_ids_save(const struct nm_state *st, const struct id_walk *a,
		       const __u64 *b, size_t nb)
{
	size_t len = 0, i;
	char *buf;
	int err;

	buf = malloc((a->n + nb) * 21 + 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < a->n; i++)
		len += (size_t)sprintf(buf + len, "%llu\n",
				       (unsigned long long)a->v[i].id);
	for (i = 0; i < nb; i++)
		len += (size_t)sprintf(buf + len, "%llu\n",
				       (unsigned long long)b[i]);
	err = nm_state_write(st, KV_IDS_FILE, buf, len);
	free(buf);
	return err;
}

/* ---- the interface ------------------------------------------------------ */

int nm_sink_open(const struct nm_sink_conf *conf, struct nm_sink **out)
{
	struct nm_sink *s;
	int err;

	if (!conf->maps || !conf->state || !conf->local_cluster ||
	    !conf->local_cluster_id ||
	    strlen(conf->local_cluster) > NM_KV_CLUSTER_MAX ||
	    (conf->local_node && strlen(conf->local_node) > NM_KV_NAME_MAX)) {
		pr_warn("failed to open map sink: maps, state, local cluster name and id are needed");
		return -EINVAL;
	}
	if (conf->maps->nodes < 0) {
		pr_warn("failed to open map sink on %s: map %s is not open",
			conf->maps->pin_root, NM_MAP_NODES);
		return -EBADF;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->node_ids = calloc(NODE_ID_BITS / 8 + 1, 1);
	if (!s->node_ids) {
		err = -ENOMEM;
		goto err_free;
	}
	/* Filled by one scan at the first service write, under the lock. */
	err = nm_svc_index_new(conf->maps, &s->svc_idx);
	if (err)
		goto err_free;
	err = pthread_mutex_init(&s->lock, NULL);
	if (err) {
		err = -err;
		goto err_idx;
	}
	s->maps = conf->maps;
	s->state = conf->state;
	strcpy(s->local_cluster, conf->local_cluster);
	if (conf->local_node)
		strcpy(s->local_node, conf->local_node);
	s->local_cluster_id = conf->local_cluster_id;
	err = nm_sink_set_cluster_id(s, s->local_cluster, s->local_cluster_id);
	if (err)
		goto err_mutex;
	/* Unreadable: nothing of the earlier run's is swept, the rest works. */
	err = kv_ids_load(s->state, &s->prev_ids, &s->n_prev_ids);
	if (err)
		pr_warn("failed to read %s/%s: %s (identities of an earlier run will not be swept)",
			s->state->dir, KV_IDS_FILE, strerror(-err));
	*out = s;
	return 0;

err_mutex:
	pthread_mutex_destroy(&s->lock);
err_idx:
	nm_svc_index_free(s->svc_idx);
err_free:
	free(s->node_ids);
	free(s);
	return err;
}

static void free_ipslot(void *p)
{
	struct ipslot *x = p;

	pvec_free(&x->claims);
	free(x);
}

static void free_nodeslot(void *p)
{
	struct nodeslot *x = p;

	pvec_free(&x->claims);
	free(x);
}

static void free_feslot(void *p)
{
	struct feslot *x = p;

	pvec_free(&x->recs);
	free(x->be);
	free(x);
}

static void free_nref(void *p)
{
	struct nref *n = p;

	pvec_free(&n->eps);
	free(n->name);
	free(n);
}

static void free_rec(void *p)
{
	rec_free(p);
}

void nm_sink_close(struct nm_sink *s)
{
	if (!s)
		return;
	/* Maps keep what was mirrored: a restarted agent re-lists over it. */
	tdestroy(s->recs, free_rec);
	tdestroy(s->nrefs, free_nref);
	tdestroy(s->ipslots, free_ipslot);
	tdestroy(s->nodeslots, free_nodeslot);
	tdestroy(s->feslots, free_feslot);
	tdestroy(s->clusters, free);
	pthread_mutex_destroy(&s->lock);
	nm_svc_index_free(s->svc_idx);
	free(s->prev_ids);
	free(s->dropped);
	free(s->node_ids);
	free(s);
}

/*
 * Replace the record at @key with @nr (NULL: remove it), syncing the maps.
 * @cluster and @node name the node @nr refers to.
 */
static int apply(struct nm_sink *s, const char *key, const char *desc,
		 struct rec *nr, const char *cluster, const char *node)
{
	struct rec probe = { .key = (char *)key }, *old;
	struct touched t = {};
	struct nref *old_ref = NULL, *new_ref = NULL;
	bool old_unlinked = false;
	void **slot;
	int err;

	slot = tfind(&probe, &s->recs, rec_cmp);
	old = slot ? *slot : NULL;
	if (!old && !nr)
		return 0; /* never held, or held nothing */
	old_ref = old ? rec_nref(old) : NULL;
	/* New first: its slots are synced before the old ones are left. */
	if (nr) {
		err = rec_link(s, nr, cluster, node, &t);
		new_ref = rec_nref(nr);
		if (err)
			goto err_gc;
	}
	if (old) {
		err = rec_unlink(s, old, &t);
		if (err)
			goto err_unlink_new;
		old_unlinked = true;
	}
	err = sync_touched(s, &t);
	if (err)
		goto err_relink_old;

	/* Applied: swap the record in the index. */
	if (old && nr) {
		*slot = nr; /* same key: the tree order holds */
	} else if (nr) {
		if (!tsearch(nr, &s->recs, rec_cmp)) {
			/* Maps hold it but we cannot: undo them too. */
			err = -ENOMEM;
			goto err_unlink_new;
		}
	} else {
		tdelete(old, &s->recs, rec_cmp);
	}
	if (old)
		--*stat_of(old);
	if (nr)
		++*stat_of(nr);
	if (old && old->type == NM_KV_T_IDENTITY) {
		s->n_ids--;
		/* A re-list repeats identities: recompile only for news. */
		if (!nr || nr->id.id != old->id.id ||
		    !nm_labels_equal(&nr->id.labels, &old->id.labels))
			s->ids_dirty = true;
		if ((!nr || nr->id.id != old->id.id) &&
		    dropped_add(s, old->id.id))
			pr_warn("failed to note dropped identity %llu: out of memory (it stays in identities.json)",
				(unsigned long long)old->id.id);
	}
	if (nr && nr->type == NM_KV_T_IDENTITY) {
		s->n_ids++;
		if (!old)
			s->ids_dirty = true;
		dropped_forget(s, nr->id.id);
	}
	gc_touched(s, &t);
	nref_gc(s, old_ref);
	if (new_ref != old_ref)
		nref_gc(s, new_ref);
	rec_free(old);
	free(t.more);
	return 0;

err_relink_old:
err_unlink_new:
	/* The new record out first: a node's ref then takes the old back. */
	if (nr && rec_unlink(s, nr, &t))
		pr_warn("failed to roll back %s on %s: out of memory", desc,
			s->maps->pin_root);
	if (old_unlinked)
		rec_relink(s, old);
	resync_touched(s, &t, desc);
err_gc:
	gc_touched(s, &t);
	nref_gc(s, new_ref);
	if (old_ref != new_ref)
		nref_gc(s, old_ref);
	free(t.more);
	return err;
}

int nm_sink_upsert(void *arg, const struct nm_kv_record *rec)
{
	struct nm_sink *s = arg;
	const struct nm_kv_key *k = &rec->key;
	char key[KEY_LEN], desc[KEY_LEN + 16];
	const char *node = NULL;
	struct rec *nr = NULL;
	int err;

	/* Cluster and node records tell the cluster's id (checked by decode). */
	if (k->type == NM_KV_T_CLUSTER || k->type == NM_KV_T_NODE) {
		err = nm_sink_set_cluster_id(s, k->cluster,
					     k->type == NM_KV_T_CLUSTER ?
						     rec->cluster.id :
						     rec->node.cluster_id);
		if (err)
			return err;
	}
	if (!has_map_state(k->type))
		return 0;
	key_desc(k, desc, sizeof(desc));
	err = key_str(k, key, sizeof(key));
	if (err) {
		pr_warn("failed to apply %s on %s: key too long", desc,
			s->maps->pin_root);
		return err;
	}
	if (k->type == NM_KV_T_NODE)
		node = k->name;
	else if (k->type == NM_KV_T_ENDPOINT)
		node = rec->ep.node ? rec->ep.node : "";

	pthread_mutex_lock(&s->lock);
	err = rec_new(s, rec, key, &nr);
	if (err == -EAGAIN) {
		pr_warn("failed to apply %s on %s: the id of cluster %s is not known yet (nm_sink_set_cluster_id)",
			desc, s->maps->pin_root, k->cluster);
		goto out;
	}
	if (err) {
		pr_warn("failed to apply %s on %s: %s", desc, s->maps->pin_root,
			strerror(-err));
		goto out;
	}
	err = apply(s, key, desc, nr, k->cluster, node);
	if (err) {
		pr_warn("failed to apply %s on %s: %s (previous state kept)",
			desc, s->maps->pin_root, strerror(-err));
		rec_free(nr);
	}
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

int nm_sink_remove(void *arg, const struct nm_kv_key *k)
{
	struct nm_sink *s = arg;
	char key[KEY_LEN], desc[KEY_LEN + 16];
	int err;

	if (!has_map_state(k->type))
		return 0;
	key_desc(k, desc, sizeof(desc));
	err = key_str(k, key, sizeof(key));
	if (err) {
		pr_warn("failed to remove %s on %s: key too long", desc,
			s->maps->pin_root);
		return err;
	}
	pthread_mutex_lock(&s->lock);
	err = apply(s, key, desc, NULL, NULL, NULL);
	if (err)
		pr_warn("failed to remove %s on %s: %s (previous state kept)",
			desc, s->maps->pin_root, strerror(-err));
	pthread_mutex_unlock(&s->lock);
	return err;
}

int nm_sink_set_cluster_id(struct nm_sink *s, const char *cluster, __u16 id)
{
	struct cstats *c;
	int err = 0;

	if (!id || strlen(cluster) > NM_KV_CLUSTER_MAX)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	c = cstats_get(s, cluster);
	if (!c) {
		pr_warn("failed to note id %u of cluster %s: out of memory", id,
			cluster);
		err = -ENOMEM;
		goto out;
	}
	if (c->id && c->id != id)
		pr_warn("cluster %s changes id from %u to %u: services mirrored so far keep %u until re-listed",
			cluster, c->id, id, c->id);
	c->id = id;
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

int nm_sink_set_reachable(struct nm_sink *s, const char *cluster,
			  bool reachable)
{
	struct cstats *c;
	int err = 0;

	if (strlen(cluster) > NM_KV_CLUSTER_MAX)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	/* Our own backends are never cut off by our own heartbeat. */
	if (!strcmp(cluster, s->local_cluster))
		goto out;
	/* Kept even before any record of it arrives. */
	c = cstats_get(s, cluster);
	if (!c) {
		pr_warn("failed to mark cluster %s %s: out of memory", cluster,
			reachable ? "reachable" : "unreachable");
		err = -ENOMEM;
		goto out;
	}
	if (c->unreachable == !reachable)
		goto out;
	c->unreachable = !reachable;
	c->reach_dirty = true;
	s->reach_dirty = true;
	pr_debug("cluster %s %s: its services re-merge at the next flush",
		 cluster, reachable ? "reachable" : "unreachable");
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

void nm_sink_get_stats(struct nm_sink *s, const char *cluster,
		       struct nm_sink_stats *out)
{
	struct cstats probe = {}, *c;

	memset(out, 0, sizeof(*out));
	out->reachable = true;
	if (strlen(cluster) > NM_KV_CLUSTER_MAX)
		return;
	strcpy(probe.name, cluster);
	pthread_mutex_lock(&s->lock);
	c = tget(&probe, &s->clusters, cstats_cmp);
	if (c) {
		*out = c->st;
		out->reachable = !c->unreachable;
	}
	pthread_mutex_unlock(&s->lock);
}

int nm_sink_get_service(struct nm_sink *s, const struct nm_frontend *fe,
			struct nm_merge_be **out, size_t *n_out)
{
	struct feslot probe = {}, *x;
	int err = 0;

	*out = NULL;
	*n_out = 0;
	probe.fe.vip = fe->vip;
	probe.fe.port = fe->port;
	probe.fe.proto = fe->proto;
	pthread_mutex_lock(&s->lock);
	x = tget(&probe, &s->feslots, feslot_cmp);
	if (!x || !x->programmed) {
		err = -ENOENT;
		goto out;
	}
	if (x->n_be) {
		*out = malloc(x->n_be * sizeof(**out));
		if (!*out) {
			err = -ENOMEM;
			goto out;
		}
		memcpy(*out, x->be, x->n_be * sizeof(**out));
	}
	*n_out = x->n_be;
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* twalk_r() context: the frontends a reachability change touches. */
struct fe_walk {
	struct pvec v;
	int err;
};

static void collect_reach_fe(const void *node, VISIT which, void *arg)
{
	struct feslot *x = *(struct feslot *const *)node;
	struct fe_walk *w = arg;
	size_t i;

	if (which != postorder && which != leaf)
		return;
	for (i = 0; i < x->recs.n; i++) {
		if (!((const struct rec *)x->recs.v[i])->cs->reach_dirty)
			continue;
		if (pvec_insert(&w->v, (size_t)-1, x))
			w->err = -ENOMEM;
		return;
	}
}

static void clear_reach_dirty(const void *node, VISIT which, void *arg)
{
	(void)arg;
	if (which == postorder || which == leaf)
		(*(struct cstats *const *)node)->reach_dirty = false;
}

/*
 * Re-merge every frontend with a record of a cluster whose reachability
 * changed. All are tried; on a failure the change stays pending and the
 * next flush tries again (frontends already in step write nothing).
 */
static int remerge_reach(struct nm_sink *s)
{
	char fes[NM_FRONTEND_STRLEN];
	struct fe_walk w = {};
	size_t i;
	int err, ret = 0;

	twalk_r(s->feslots, collect_reach_fe, &w);
	if (w.err) {
		pr_warn("failed to re-merge services on %s after a reachability change: out of memory",
			s->maps->pin_root);
		ret = w.err;
		goto out;
	}
	for (i = 0; i < w.v.n; i++) {
		struct feslot *x = w.v.v[i];

		err = feslot_sync(s, x);
		if (!err)
			continue;
		pr_warn("failed to re-merge service %s on %s after a reachability change: %s",
			nm_frontend_str(&x->fe, fes, sizeof(fes)),
			s->maps->pin_root, strerror(-err));
		ret = ret ?: err;
	}
	if (ret)
		goto out;
	twalk_r(s->clusters, clear_reach_dirty, NULL);
	s->reach_dirty = false;
out:
	pvec_free(&w.v);
	return ret;
}

int nm_sink_flush(struct nm_sink *s)
{
	const struct nm_state *st = s->state;
	struct nm_idstore ids = {};
	struct nm_policy_set set = {};
	struct nm_sync_stats stats;
	struct nm_error perr = {};
	struct nm_ep_rec *eps = NULL;
	struct id_walk w = {};
	__u64 *del = NULL;
	size_t n_eps = 0, n_del = 0, i, j;
	char msg[1024];
	bool changed;
	int err = 0, reach_err = 0;

	pthread_mutex_lock(&s->lock);
	/* Services first: leaving a dead cluster is what is waited for. */
	if (s->reach_dirty)
		reach_err = remerge_reach(s);
	if (!s->ids_dirty && !s->policy_dirty)
		goto out;
	w.cap = s->n_ids;
	w.v = calloc(w.cap ?: 1, sizeof(*w.v));
	del = calloc(s->n_dropped ?: 1, sizeof(*del));
	if (!w.v || !del) {
		err = -ENOMEM;
		pr_warn("failed to flush identities on %s: out of memory",
			st->dir);
		goto out;
	}
	twalk_r(s->recs, collect_id, &w);

	/* nodemeshctl writes identities.json and policy under this lock. */
	err = nm_maps_lock(s->maps);
	if (err)
		goto out;
	/* Local pods may still use an identity its cluster dropped. */
	err = nm_endpoints_read(s->maps, &eps, &n_eps);
	if (err)
		goto out_unlock;
	for (i = 0; i < s->n_dropped; i++) {
		for (j = 0; j < n_eps && eps[j].val.identity != s->dropped[i];
		     j++)
			;
		if (j == n_eps)
			del[n_del++] = s->dropped[i];
	}
	err = nm_idstore_load(st, &ids);
	if (err)
		goto out_unlock;
	err = nm_idstore_merge(&ids, w.v, w.n, del, n_del, &changed);
	if (err) {
		pr_warn("failed to merge mirrored identities on %s: %s",
			st->dir, strerror(-err));
		goto out_ids;
	}
	if (changed) {
		err = nm_idstore_save(st, &ids);
		if (err)
			goto out_ids;
	}
	/* After the save: a crash in between leaves new ids unlisted (kept). */
	if (s->ids_dirty) {
		err = kv_ids_save(st, &w, s->prev_ids, s->n_prev_ids);
		if (err) {
			pr_warn("failed to write %s/%s: %s", st->dir,
				KV_IDS_FILE, strerror(-err));
			goto out_ids;
		}
	}
	err = nm_policy_store_load(st, &set, &perr);
	if (err) {
		pr_warn("failed to load applied policies on %s: %s", st->dir,
			perr.reason[0] ? nm_error_str(&perr, msg, sizeof(msg)) :
					 strerror(-err));
		goto out_ids;
	}
	err = nm_policy_sync(s->maps, st, &ids, &set, NULL, &stats, NULL);
	if (err)
		goto out_set;
	pr_debug(
		"flushed %zu mirrored identities (%zu dropped) on %s: policy +%zu ~%zu -%zu",
		w.n, n_del, st->dir, stats.added, stats.changed, stats.removed);
	s->ids_dirty = false;
	s->policy_dirty = false;
	s->n_dropped = 0;
out_set:
	nm_policy_set_free(&set);
out_ids:
	nm_idstore_free(&ids);
out_unlock:
	nm_maps_unlock(s->maps);
out:
	pthread_mutex_unlock(&s->lock);
	free(eps);
	free(del);
	free(w.v);
	return reach_err ?: err;
}

/* ---- sweeping what an earlier run left ---------------------------------- */

static bool ip_held(struct nm_sink *s, __be32 ip)
{
	struct ipslot probe = { .ip = ip }, *x;

	x = tget(&probe, &s->ipslots, ipslot_cmp);
	return x && (x->claims.n || x->written);
}

static bool node_held(struct nm_sink *s, __be32 ip)
{
	struct nodeslot probe = { .ip = ip }, *x;

	x = tget(&probe, &s->nodeslots, nodeslot_cmp);
	return x && (x->claims.n || x->written);
}

/* Held: programmed. Records no merge takes (not shared) hold nothing. */
static bool fe_held(struct nm_sink *s, const struct nm_frontend *fe)
{
	struct feslot probe = {}, *x;

	probe.fe.vip = fe->vip;
	probe.fe.port = fe->port;
	probe.fe.proto = fe->proto;
	x = tget(&probe, &s->feslots, feslot_cmp);
	return x && x->programmed;
}

/*
 * Unheld remote /32s. Under the pin-root lock: nodemeshctl sets the LOCAL
 * flag under it, so a pod added meanwhile is never taken for ours. Keys
 * are collected first: deleting while walking restarts the walk.
 */
static int sweep_ipcache(struct nm_sink *s, size_t *swept)
{
	struct nm_ipcache_key key, next, *del = NULL, *nv;
	struct nm_maps *maps = s->maps;
	struct nm_ipcache_val v;
	size_t n = 0, cap = 0, i;
	char ip[INET_ADDRSTRLEN];
	bool first = true;
	int err;

	*swept = 0;
	err = nm_maps_lock(maps);
	if (err)
		return err;
	while (!bpf_map_get_next_key(maps->ipcache, first ? NULL : &key,
				     &next)) {
		key = next;
		first = false;
		if (key.prefixlen != 32 || ip_held(s, key.addr) ||
		    bpf_map_lookup_elem(maps->ipcache, &key, &v) ||
		    (v.flags & (NM_IPC_F_LOCAL | NM_IPC_F_CIDR)))
			continue;
		if (n == cap) {
			nv = vec_grow(del, &cap, sizeof(*nv), 256);
			if (!nv) {
				err = -ENOMEM;
				goto out;
			}
			del = nv;
		}
		del[n++] = key;
	}
	if (errno != ENOENT) {
		err = -errno;
		pr_warn("failed to walk ipcache on %s: %s", maps->pin_root,
			strerror(-err));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!bpf_map_delete_elem(maps->ipcache, &del[i])) {
			pr_debug("swept ipcache %s/32", ip_s(del[i].addr, ip));
			++*swept;
		} else if (errno != ENOENT && !err) {
			err = -errno;
			pr_warn("failed to sweep ipcache entry %s/32 on %s: %s",
				ip_s(del[i].addr, ip), maps->pin_root,
				strerror(-err));
		}
	}
	/* A policy CIDR /32 may have been hidden under one: put it back. */
	if (*swept)
		s->policy_dirty = true;
out:
	nm_maps_unlock(maps);
	free(del);
	return err;
}

/* Unheld nodes: only the sink writes nm_nodes_v1. */
static int sweep_nodes(struct nm_sink *s, size_t *swept)
{
	struct nm_node_key key, next, *del = NULL, *nv;
	struct nm_maps *maps = s->maps;
	size_t n = 0, cap = 0, i;
	char ip[INET_ADDRSTRLEN];
	bool first = true;
	int err = 0;

	*swept = 0;
	while (!bpf_map_get_next_key(maps->nodes, first ? NULL : &key, &next)) {
		key = next;
		first = false;
		if (node_held(s, key.node_ip))
			continue;
		if (n == cap) {
			nv = vec_grow(del, &cap, sizeof(*nv), 64);
			if (!nv) {
				err = -ENOMEM;
				goto out;
			}
			del = nv;
		}
		del[n++] = key;
	}
	if (errno != ENOENT) {
		err = -errno;
		pr_warn("failed to walk nodes on %s: %s", maps->pin_root,
			strerror(-err));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!bpf_map_delete_elem(maps->nodes, &del[i])) {
			++*swept;
		} else if (errno != ENOENT && !err) {
			err = -errno;
			pr_warn("failed to sweep node %s on %s: %s",
				ip_s(del[i].node_ip, ip), maps->pin_root,
				strerror(-err));
		}
	}
out:
	free(del);
	return err;
}

static int sweep_services(struct nm_sink *s, size_t *swept)
{
	struct nm_svc_list list = {};
	char fes[NM_FRONTEND_STRLEN];
	size_t i;
	int err, ret = 0;

	*swept = 0;
	err = nm_svc_list(s->maps, &list);
	if (err) {
		pr_warn("failed to list services on %s: %s", s->maps->pin_root,
			strerror(-err));
		return err;
	}
	for (i = 0; i < list.n; i++) {
		const struct nm_svc_info *svc = &list.svcs[i];

		if (fe_held(s, &svc->fe) || !nm_svc_from_kvstore(svc))
			continue;
		/*
		 * A 'service upsert' between the list and this delete would
		 * be lost; nm_svc_delete_idx() takes the lock itself, and
		 * nodemeshctl taking over a mirrored frontend is rare.
		 */
		err = nm_svc_delete_idx(s->maps, s->svc_idx, &svc->fe);
		if (!err) {
			pr_debug("swept service %s",
				 nm_frontend_str(&svc->fe, fes, sizeof(fes)));
			++*swept;
		} else if (err != -ENOENT && !ret) {
			ret = err;
			pr_warn("failed to sweep service %s on %s: %s",
				nm_frontend_str(&svc->fe, fes, sizeof(fes)),
				s->maps->pin_root, strerror(-err));
		}
	}
	nm_svc_list_free(&list);
	return ret;
}

/* Earlier runs' kvstore identities no record holds: dropped at flush. */
static int sweep_identities(struct nm_sink *s, size_t *swept)
{
	struct id_walk w = {};
	__u64 *held;
	size_t i;
	int err = 0;

	*swept = 0;
	if (!s->n_prev_ids)
		goto out;
	w.cap = s->n_ids;
	w.v = calloc(w.cap ?: 1, sizeof(*w.v));
	held = calloc(w.cap ?: 1, sizeof(*held));
	if (!w.v || !held) {
		err = -ENOMEM;
		goto out_free;
	}
	twalk_r(s->recs, collect_id, &w);
	for (i = 0; i < w.n; i++)
		held[i] = w.v[i].id;
	qsort(held, w.n, sizeof(*held), u64_cmp);
	for (i = 0; i < s->n_prev_ids; i++) {
		if (u64_in(held, w.n, s->prev_ids[i]))
			continue;
		err = dropped_add(s, s->prev_ids[i]);
		if (err)
			goto out_free;
		++*swept;
	}
	/* Settled: from now on the list is what this sink holds. */
	free(s->prev_ids);
	s->prev_ids = NULL;
	s->n_prev_ids = 0;
	s->ids_dirty = true;
out_free:
	free(held);
	free(w.v);
out:
	return err;
}

int nm_sink_sweep(struct nm_sink *s)
{
	size_t n_ip = 0, n_node = 0, n_svc = 0, n_id = 0;
	int err, ret;

	pthread_mutex_lock(&s->lock);
	ret = sweep_ipcache(s, &n_ip);
	err = sweep_nodes(s, &n_node);
	ret = ret ?: err;
	err = sweep_services(s, &n_svc);
	ret = ret ?: err;
	err = sweep_identities(s, &n_id);
	if (err)
		pr_warn("failed to sweep identities on %s: %s", s->state->dir,
			strerror(-err));
	ret = ret ?: err;
	pthread_mutex_unlock(&s->lock);
	pr_info("swept what an earlier run left on %s: %zu ipcache entries, %zu nodes, %zu services, %zu identities",
		s->maps->pin_root, n_ip, n_node, n_svc, n_id);
	/* The identities go, and CIDR entries come back, with the flush. */
	err = nm_sink_flush(s);
	return ret ?: err;
}
