// SPDX-License-Identifier: GPL-2.0
/*
 * Global services merge (agent/svcmerge.h). Candidates are collected from
 * the contributing records, sorted by address and then by a total order
 * on everything else, so the duplicate kept is the same whatever the
 * input order; tiers are decided on the kept set only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "agent/svcmerge.h"
#include "maps/backend.h"

int nm_merge_in_from_kv(struct nm_merge_in *in, const struct nm_kv_service *svc,
			__u16 cluster_id, bool reachable,
			struct nm_merge_src **src)
{
	struct nm_merge_src *b = NULL;
	size_t i;

	if (svc->n_backends) {
		b = calloc(svc->n_backends, sizeof(*b));
		if (!b)
			return -ENOMEM;
	}
	for (i = 0; i < svc->n_backends; i++) {
		b[i].addr = svc->backends[i].ip;
		b[i].port = svc->backends[i].port;
		b[i].proto = svc->backends[i].proto;
		b[i].state = svc->backends[i].state;
		b[i].weight = svc->backends[i].weight;
	}
	memset(in, 0, sizeof(*in));
	in->cluster_id = cluster_id;
	in->reachable = reachable;
	in->global = svc->global;
	in->shared = svc->shared;
	in->affinity = (__u8)svc->affinity;
	in->priority = svc->priority;
	in->weight = svc->weight;
	in->backends = b;
	in->n_backends = svc->n_backends;
	*src = b;
	return 0;
}

/* What the local records say; @have false when there is none. */
struct local_view {
	bool have;
	bool global;
	__u8 affinity;
};

static struct local_view local_view(const struct nm_merge_in *in, size_t n,
				    __u16 local_id)
{
	struct local_view v = { .global = true };
	size_t i;

	for (i = 0; i < n; i++) {
		if (in[i].cluster_id != local_id)
			continue;
		/* Several local records: the strictest reading of them. */
		if (v.have && v.affinity != in[i].affinity)
			v.affinity = NM_KV_AFF_NONE;
		else if (!v.have)
			v.affinity = in[i].affinity;
		v.global = v.global && in[i].global;
		v.have = true;
	}
	if (!v.have)
		v.affinity = NM_KV_AFF_NONE;
	return v;
}

static bool contributes(const struct nm_merge_in *r,
			const struct local_view *lv, __u16 local_id)
{
	if (r->cluster_id == local_id)
		return true;
	return r->global && r->shared && (!lv->have || lv->global);
}

bool nm_svc_merge_contributes(const struct nm_merge_in *in, size_t n,
			      __u16 local_cluster_id)
{
	struct local_view lv = local_view(in, n, local_cluster_id);
	size_t i;

	for (i = 0; i < n; i++)
		if (contributes(&in[i], &lv, local_cluster_id))
			return true;
	return false;
}

static __u8 affinity_rank(__u8 affinity, bool local)
{
	switch (affinity) {
	case NM_KV_AFF_LOCAL:
		return local ? 0 : 1;
	case NM_KV_AFF_REMOTE:
		return local ? 1 : 0;
	default:
		return 0;
	}
}

struct cand {
	struct nm_merge_be m;
	bool reachable;
};

#define CMP(x, y)                                  \
	do {                                       \
		if ((x) != (y))                    \
			return (x) < (y) ? -1 : 1; \
	} while (0)

/* Address first, then the tie-breaks of the header, then the rest. */
static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	CMP(ntohl(x->m.spec.addr), ntohl(y->m.spec.addr));
	CMP(ntohs(x->m.spec.port), ntohs(y->m.spec.port));
	CMP(x->m.spec.cluster_id, y->m.spec.cluster_id);
	CMP(x->m.tier_rank, y->m.tier_rank);
	CMP(x->m.priority, y->m.priority);
	CMP(x->m.own_state, y->m.own_state);
	CMP(y->m.spec.weight, x->m.spec.weight); /* higher first */
	CMP(y->reachable, x->reachable);
	return 0;
}

static int out_cmp(const void *a, const void *b)
{
	const struct nm_merge_be *x = a, *y = b;

	CMP(x->spec.cluster_id, y->spec.cluster_id);
	CMP(ntohl(x->spec.addr), ntohl(y->spec.addr));
	CMP(ntohs(x->spec.port), ntohs(y->spec.port));
	return 0;
}

#undef CMP

static bool ready(const struct cand *c)
{
	return c->reachable && c->m.own_state == NM_BE_ACTIVE;
}

/* Tier order: (affinity rank, priority). */
static bool tier_lt(const struct nm_merge_be *a, const struct nm_merge_be *b)
{
	return a->tier_rank < b->tier_rank ||
	       (a->tier_rank == b->tier_rank && a->priority < b->priority);
}

int nm_svc_merge(const struct nm_merge_in *in, size_t n, __u16 local_cluster_id,
		 const struct nm_frontend *fe, struct nm_merge_be **out,
		 size_t *n_out)
{
	struct local_view lv = local_view(in, n, local_cluster_id);
	const struct nm_merge_be *best = NULL;
	struct nm_merge_be *res = NULL;
	struct cand *c = NULL;
	size_t total = 0, nc = 0, nk = 0, i, j;
	int err = 0;

	*out = NULL;
	*n_out = 0;
	for (i = 0; i < n; i++)
		if (contributes(&in[i], &lv, local_cluster_id))
			total += in[i].n_backends;
	if (!total)
		return 0;
	c = calloc(total, sizeof(*c));
	if (!c)
		return -ENOMEM;

	for (i = 0; i < n; i++) {
		const struct nm_merge_in *r = &in[i];
		bool local = r->cluster_id == local_cluster_id;
		__u32 rw = r->weight ?: 1;

		if (!contributes(r, &lv, local_cluster_id))
			continue;
		for (j = 0; j < r->n_backends; j++) {
			const struct nm_merge_src *b = &r->backends[j];
			struct cand *x = &c[nc];
			__u32 w = (b->weight ?: 1) * rw;

			if (b->proto != fe->proto)
				continue;
			x->m.spec.addr = b->addr;
			x->m.spec.port = b->port;
			x->m.spec.weight = (__u16)(w > 65535 ? 65535 : w);
			x->m.spec.cluster_id = r->cluster_id;
			x->m.own_state = b->state;
			x->m.tier_rank = affinity_rank(lv.affinity, local);
			x->m.priority = r->priority;
			x->reachable = local || r->reachable;
			nc++;
		}
	}
	if (!nc)
		goto out;

	/* One per (addr, port): the first of its run in this order. */
	qsort(c, nc, sizeof(*c), cand_cmp);
	for (i = 0; i < nc; i++) {
		if (nk && c[nk - 1].m.spec.addr == c[i].m.spec.addr &&
		    c[nk - 1].m.spec.port == c[i].m.spec.port)
			continue;
		c[nk++] = c[i];
	}

	for (i = 0; i < nk; i++)
		if (ready(&c[i]) && (!best || tier_lt(&c[i].m, best)))
			best = &c[i].m;

	res = calloc(nk, sizeof(*res));
	if (!res) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nk; i++) {
		struct nm_merge_be *m = &res[i];

		*m = c[i].m;
		if (!c[i].reachable)
			m->spec.state = NM_BE_QUARANTINED;
		else if (m->own_state != NM_BE_ACTIVE)
			m->spec.state = m->own_state;
		else if (!tier_lt(best, m)) /* same tier as the best */
			m->spec.state = NM_BE_ACTIVE;
		else
			m->spec.state = NM_BE_STANDBY;
		m->preferred = m->spec.state == NM_BE_ACTIVE;
	}
	qsort(res, nk, sizeof(*res), out_cmp);
	*out = res;
	*n_out = nk;
out:
	free(c);
	return err;
}
