// SPDX-License-Identifier: GPL-2.0
/*
 * Policy compiler: policies x the identities this node knows -> the
 * nm_policy_v1 entries of its local endpoints. Pure; entries are emitted
 * freely, then sorted once and de-duplicated (deny first, then the lowest
 * rule id), so the cost is O(entries log entries) plus one selector match
 * per (rule item, identity).
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "agent/labels.h"
#include "agent/policy.h"
#include "maps/endpoint.h"
#include "maps/identity.h"

struct id_ref {
	__u64 id;
	size_t idx;
};

struct cctx {
	const struct nm_identity_info *ids;
	size_t n_ids;
	const char *local_cluster;
	/* Per identity, its namespace and cluster labels (NULL if none). */
	const char **id_ns;
	const char **id_cluster;
	struct nm_policy_entry *e;
	size_t n, cap;
	__u64 *peers;
	size_t n_peers;
};

static int cmp_id_ref(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

static int cmp_policy(const void *a, const void *b)
{
	const struct nm_policy *x = *(const struct nm_policy *const *)a;
	const struct nm_policy *y = *(const struct nm_policy *const *)b;
	int c = strcmp(x->namespace, y->namespace);

	return c ? c : strcmp(x->name, y->name);
}

/*
 * memcmp order of a 16-byte key, as two big-endian words: the sort is
 * most of the compile time and libc's memcmp call dominated it.
 */
static int cmp_key_bytes(const struct nm_policy_key *a,
			 const struct nm_policy_key *b)
{
	__u64 x[2], y[2];
	int i;

	memcpy(x, a, sizeof(x));
	memcpy(y, b, sizeof(y));
	for (i = 0; i < 2; i++) {
		x[i] = be64toh(x[i]);
		y[i] = be64toh(y[i]);
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	}
	return 0;
}

_Static_assert(sizeof(struct nm_policy_key) == 2 * sizeof(__u64),
	       "cmp_key_bytes compares the key as two words");

/* Key bytes first; on equal keys the winner sorts first: deny, then the
 * lowest rule id. */
static int cmp_entry(const void *a, const void *b)
{
	const struct nm_policy_entry *x = a, *y = b;
	int c = cmp_key_bytes(&x->key, &y->key);

	if (c)
		return c;
	if (x->val.verdict != y->val.verdict)
		return x->val.verdict == NM_POLICY_DENY ? -1 : 1;
	return x->val.rule_id < y->val.rule_id ?
		       -1 :
		       x->val.rule_id > y->val.rule_id;
}

static int cmp_cidr(const void *a, const void *b)
{
	const struct nm_cidr *x = a, *y = b;
	__u32 xa = ntohl(x->addr), ya = ntohl(y->addr);

	if (xa != ya)
		return xa < ya ? -1 : 1;
	return (int)x->len - (int)y->len;
}

static __u32 prefix_mask(__u8 len)
{
	return len ? ~0U << (32 - len) : 0;
}

/* Does prefix @inner lie inside @outer? */
static bool cidr_inside(const struct nm_cidr *inner,
			const struct nm_cidr *outer)
{
	return inner->len >= outer->len &&
	       (ntohl(inner->addr) & prefix_mask(outer->len)) ==
		       ntohl(outer->addr);
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

int nm_policy_cidrs(const struct nm_policy_set *set, struct nm_cidr **out,
		    size_t *n)
{
	struct nm_cidr *v = NULL;
	size_t total = 0, i, j, r, k, m = 0;
	const struct nm_peer_rule *rule;
	int kind;

	for (i = 0; i < set->n; i++)
		for (kind = 0; kind < NM_RULE_KINDS; kind++)
			for (r = 0; r < set->v[i].n_rules[kind]; r++)
				total += set->v[i].rules[kind][r].n_cidrs;
	if (total) {
		v = calloc(total, sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (i = 0; i < set->n; i++) {
		for (kind = 0; kind < NM_RULE_KINDS; kind++) {
			for (r = 0; r < set->v[i].n_rules[kind]; r++) {
				rule = &set->v[i].rules[kind][r];
				for (k = 0; k < rule->n_cidrs; k++) {
					/* /0 is WORLD, not a CIDR identity. */
					if (!rule->cidrs[k].len)
						continue;
					v[m].addr = rule->cidrs[k].addr;
					v[m].len = rule->cidrs[k].len;
					m++;
				}
			}
		}
	}
	if (m)
		qsort(v, m, sizeof(*v), cmp_cidr);
	for (i = 0, j = 0; i < m; i++) {
		if (j && !cmp_cidr(&v[j - 1], &v[i]))
			continue;
		v[j++] = v[i];
	}
	if (!j) {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = j;
	return 0;
}

static int push_entry(struct cctx *c, __u32 ep, __u64 peer, __u16 port,
		      __u8 proto, __u8 dir, __u8 verdict, __u32 rule_id)
{
	struct nm_policy_entry *e;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;

		e = realloc(c->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		c->e = e;
		c->cap = cap;
	}
	e = &c->e[c->n++];
	/* Hash keys compare byte by byte: padding included. */
	memset(e, 0, sizeof(*e));
	e->key.identity = peer;
	e->key.endpoint_id = ep;
	e->key.dport = htons(port);
	e->key.proto = proto;
	e->key.dir = dir;
	e->val.rule_id = rule_id;
	e->val.verdict = verdict;
	return 0;
}

static bool peer_selected(const struct cctx *c, const struct nm_policy *p,
			  const struct nm_peer_rule *rule, size_t i)
{
	const struct nm_identity_info *id = &c->ids[i];
	size_t s;

	if (id->is_cidr) {
		for (s = 0; s < rule->n_cidrs; s++) {
			if (cidr_inside(&id->cidr, &rule->cidrs[s]))
				return true;
		}
		return false;
	}
	for (s = 0; s < rule->n_endpoints; s++) {
		const struct nm_selector *sel = &rule->endpoints[s];

		/* Implicit scope: the policy's namespace, the local cluster. */
		if (!nm_selector_has_key(sel, NM_LABEL_NAMESPACE) &&
		    !str_eq(c->id_ns[i], p->namespace))
			continue;
		if (!nm_selector_has_key(sel, NM_LABEL_CLUSTER) &&
		    !str_eq(c->id_cluster[i], c->local_cluster))
			continue;
		if (nm_selector_match(sel, &id->labels))
			return true;
	}
	return false;
}

/* c->peers = the identities @rule selects, sorted and unique. */
static void rule_peers(struct cctx *c, const struct nm_policy *p,
		       const struct nm_peer_rule *rule)
{
	bool world = false;
	size_t i, j;

	c->n_peers = 0;
	if (!rule->n_endpoints && !rule->n_cidrs) {
		c->peers[c->n_peers++] = NM_ID_ANY;
		return;
	}
	for (i = 0; i < c->n_ids; i++) {
		if (peer_selected(c, p, rule, i))
			c->peers[c->n_peers++] = c->ids[i].id;
	}
	for (i = 0; i < rule->n_cidrs; i++)
		world |= !rule->cidrs[i].len;
	if (world)
		c->peers[c->n_peers++] = NM_ID_WORLD;
	qsort(c->peers, c->n_peers, sizeof(*c->peers), cmp_u64);
	for (i = 0, j = 0; i < c->n_peers; i++) {
		if (j && c->peers[j - 1] == c->peers[i])
			continue;
		c->peers[j++] = c->peers[i];
	}
	c->n_peers = j;
}

static int emit_rule(struct cctx *c, const struct nm_policy *p,
		     enum nm_rule_kind kind, const struct nm_peer_rule *rule,
		     __u32 rule_id, const __u32 *sel_eps, size_t n_sel)
{
	__u8 dir = kind == NM_RULE_INGRESS || kind == NM_RULE_INGRESS_DENY ?
			   NM_POLICY_INGRESS :
			   NM_POLICY_EGRESS;
	__u8 verdict = kind == NM_RULE_INGRESS || kind == NM_RULE_EGRESS ?
			       NM_POLICY_ALLOW :
			       NM_POLICY_DENY;
	static const struct nm_port_rule any_port = { 0 };
	const struct nm_port_rule *ports = rule->n_ports ? rule->ports :
							   &any_port;
	size_t n_ports = rule->n_ports ? rule->n_ports : 1;
	size_t e, i, j;
	int ret;

	rule_peers(c, p, rule);
	for (e = 0; e < n_sel; e++) {
		for (i = 0; i < c->n_peers; i++) {
			for (j = 0; j < n_ports; j++) {
				const struct nm_port_rule *pr = &ports[j];

				if (pr->port && !pr->proto) {
					/* ANY: one key per protocol. */
					ret = push_entry(c, sel_eps[e],
							 c->peers[i], pr->port,
							 IPPROTO_TCP, dir,
							 verdict, rule_id);
					if (!ret)
						ret = push_entry(c, sel_eps[e],
								 c->peers[i],
								 pr->port,
								 IPPROTO_UDP,
								 dir, verdict,
								 rule_id);
				} else {
					ret = push_entry(c, sel_eps[e],
							 c->peers[i], pr->port,
							 pr->proto, dir,
							 verdict, rule_id);
				}
				if (ret)
					return ret;
			}
		}
	}
	return 0;
}

/* Endpoints of @p: its namespace, the local cluster, its selector. */
static size_t select_endpoints(const struct cctx *c, const struct nm_policy *p,
			       const struct nm_ep_info *eps, size_t n_eps,
			       const size_t *ep_id_idx, __u32 *sel_eps,
			       size_t *sel_idx)
{
	size_t i, n = 0;

	for (i = 0; i < n_eps; i++) {
		size_t k = ep_id_idx[i];

		if (c->ids[k].is_cidr || !str_eq(c->id_ns[k], p->namespace) ||
		    !str_eq(c->id_cluster[k], c->local_cluster) ||
		    !nm_selector_match(&p->endpoint_selector,
				       &c->ids[k].labels))
			continue;
		sel_eps[n] = eps[i].endpoint_id;
		sel_idx[n] = i;
		n++;
	}
	return n;
}

int nm_policy_compile(const struct nm_policy_set *set,
		      const struct nm_identity_info *ids, size_t n_ids,
		      const struct nm_ep_info *eps, size_t n_eps,
		      const char *local_cluster, struct nm_compiled *out)
{
	struct nm_compiled res = { 0 };
	const struct nm_policy **order = NULL;
	struct id_ref *by_id = NULL, key, *hit;
	struct cctx c = { 0 };
	size_t *ep_id_idx = NULL, *sel_idx = NULL;
	__u32 *sel_eps = NULL, rule_id = 0;
	size_t i, j, n_rules = 0, n_sel;
	int ret = -ENOMEM, kind;

	if (!local_cluster)
		return -EINVAL;
	c.ids = ids;
	c.n_ids = n_ids;
	c.local_cluster = local_cluster;

	/* +1 everywhere: calloc(0) may return NULL, and WORLD needs a slot. */
	order = calloc(set->n + 1, sizeof(*order));
	by_id = calloc(n_ids + 1, sizeof(*by_id));
	c.id_ns = calloc(n_ids + 1, sizeof(*c.id_ns));
	c.id_cluster = calloc(n_ids + 1, sizeof(*c.id_cluster));
	c.peers = calloc(n_ids + 1, sizeof(*c.peers));
	ep_id_idx = calloc(n_eps + 1, sizeof(*ep_id_idx));
	sel_idx = calloc(n_eps + 1, sizeof(*sel_idx));
	sel_eps = calloc(n_eps + 1, sizeof(*sel_eps));
	res.eps = calloc(n_eps + 1, sizeof(*res.eps));
	if (!order || !by_id || !c.id_ns || !c.id_cluster || !c.peers ||
	    !ep_id_idx || !sel_idx || !sel_eps || !res.eps)
		goto out;
	res.n_eps = n_eps;

	/* Rule ids follow namespace/name order, not input order. */
	for (i = 0; i < set->n; i++) {
		order[i] = &set->v[i];
		for (kind = 0; kind < NM_RULE_KINDS; kind++)
			n_rules += set->v[i].n_rules[kind];
	}
	qsort(order, set->n, sizeof(*order), cmp_policy);
	for (i = 1; i < set->n; i++) {
		if (!cmp_policy(&order[i - 1], &order[i])) {
			ret = -EINVAL;
			goto out;
		}
	}
	res.rules = calloc(n_rules + 1, sizeof(*res.rules));
	if (!res.rules)
		goto out;
	res.n_rules = n_rules;

	for (i = 0; i < n_ids; i++) {
		by_id[i].id = ids[i].id;
		by_id[i].idx = i;
		c.id_ns[i] = nm_labels_get(&ids[i].labels, NM_LABEL_NAMESPACE);
		c.id_cluster[i] =
			nm_labels_get(&ids[i].labels, NM_LABEL_CLUSTER);
	}
	qsort(by_id, n_ids, sizeof(*by_id), cmp_id_ref);
	for (i = 1; i < n_ids; i++) {
		if (by_id[i - 1].id == by_id[i].id) {
			ret = -EINVAL;
			goto out;
		}
	}
	for (i = 0; i < n_eps; i++) {
		key.id = eps[i].identity;
		hit = bsearch(&key, by_id, n_ids, sizeof(*by_id), cmp_id_ref);
		if (!hit) {
			ret = -EINVAL;
			goto out;
		}
		ep_id_idx[i] = hit->idx;
		res.eps[i].endpoint_id = eps[i].endpoint_id;
	}

	for (i = 0; i < set->n; i++) {
		const struct nm_policy *p = order[i];

		n_sel = select_endpoints(&c, p, eps, n_eps, ep_id_idx, sel_eps,
					 sel_idx);
		for (j = 0; j < n_sel; j++) {
			if (p->enforces[NM_POLICY_INGRESS])
				res.eps[sel_idx[j]].flags |=
					NM_EP_F_INGRESS_POLICY;
			if (p->enforces[NM_POLICY_EGRESS])
				res.eps[sel_idx[j]].flags |=
					NM_EP_F_EGRESS_POLICY;
		}
		for (kind = 0; kind < NM_RULE_KINDS; kind++) {
			for (j = 0; j < p->n_rules[kind]; j++) {
				struct nm_rule_ref *ref = &res.rules[rule_id];

				ref->rule_id = ++rule_id;
				ref->ns = p->namespace;
				ref->name = p->name;
				ref->kind = (enum nm_rule_kind)kind;
				ref->index = j;
				if (!n_sel)
					continue;
				ret = emit_rule(&c, p, (enum nm_rule_kind)kind,
						&p->rules[kind][j],
						ref->rule_id, sel_eps, n_sel);
				if (ret)
					goto out;
			}
		}
	}

	if (c.n)
		qsort(c.e, c.n, sizeof(*c.e), cmp_entry);
	for (i = 0, j = 0; i < c.n; i++) {
		if (j && !cmp_key_bytes(&c.e[j - 1].key, &c.e[i].key))
			continue;
		c.e[j++] = c.e[i];
	}
	res.entries = c.e;
	res.n = j;
	c.e = NULL;
	*out = res;
	memset(&res, 0, sizeof(res));
	ret = 0;
out:
	nm_compiled_free(&res);
	free(c.e);
	free(sel_eps);
	free(sel_idx);
	free(ep_id_idx);
	free(c.peers);
	free(c.id_cluster);
	free(c.id_ns);
	free(by_id);
	free(order);
	return ret;
}

void nm_compiled_free(struct nm_compiled *c)
{
	free(c->entries);
	free(c->eps);
	free(c->rules);
	memset(c, 0, sizeof(*c));
}
