// SPDX-License-Identifier: GPL-2.0
/*
 * Desired map state from decoded records, and its comparison with the
 * maps (agent/desired.h). Follows agent/sink.c rule for rule; where the
 * sink's result depends on the order records arrived in (two claims on
 * one key), every claim is accepted.
 */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "agent/desired.h"
#include "agent/maglev.h"
#include "maps/service.h"

/* ---- helpers ------------------------------------------------------------ */

static int ip_cmp(__be32 a, __be32 b)
{
	__u32 x = ntohl(a), y = ntohl(b);

	return x < y ? -1 : x > y;
}

/* Frontends in the order people read them: VIP, then port, then protocol. */
static int fe_cmp(const struct nm_frontend *a, const struct nm_frontend *b)
{
	int c = ip_cmp(a->vip, b->vip);

	if (c)
		return c;
	if (a->port != b->port)
		return ntohs(a->port) < ntohs(b->port) ? -1 : 1;
	return a->proto < b->proto ? -1 : a->proto > b->proto;
}

static bool fe_eq(const struct nm_frontend *a, const struct nm_frontend *b)
{
	return a->vip == b->vip && a->port == b->port && a->proto == b->proto;
}

static void *grow(void *v, size_t *cap, size_t size, size_t need)
{
	size_t n = *cap ? *cap : 16;
	void *nv;

	if (need <= *cap)
		return v;
	while (n < need)
		n *= 2;
	nv = realloc(v, n * size);
	if (!nv)
		return NULL;
	*cap = n;
	return nv;
}

bool nm_desired_ignored(const char *prefix, const char *key)
{
	size_t plen;

	if (!prefix)
		prefix = NM_KV_PREFIX_DEFAULT;
	plen = strlen(prefix);
	if (strncmp(key, prefix, plen))
		return false;
	key += plen;
	return !strncmp(key, "policies/", 9) || !strncmp(key, "services/", 9);
}

/* ---- building ----------------------------------------------------------- */

/* A node record, as endpoints name it: (cluster, node name) -> node IP. */
struct noderef {
	size_t cluster; /* index into the clusters */
	const char *name;
	__be32 ip;
};

static int noderef_cmp(const void *pa, const void *pb)
{
	const struct noderef *a = pa, *b = pb;

	if (a->cluster != b->cluster)
		return a->cluster < b->cluster ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* One frontend of one service record. */
struct fe_rec {
	struct nm_frontend fe;
	const struct nm_desired_cluster *c;
	const struct nm_kv_record *rec;
};

/* The sink orders a frontend's records by (cluster id, key string). */
static int nsname_cmp(const struct nm_kv_key *a, const struct nm_kv_key *b)
{
	char x[NM_KV_NS_MAX + NM_KV_NAME_MAX + 2];
	char y[NM_KV_NS_MAX + NM_KV_NAME_MAX + 2];

	snprintf(x, sizeof(x), "%s/%s", a->ns, a->name);
	snprintf(y, sizeof(y), "%s/%s", b->ns, b->name);
	return strcmp(x, y);
}

static int fe_rec_cmp(const void *pa, const void *pb)
{
	const struct fe_rec *a = pa, *b = pb;
	int c = fe_cmp(&a->fe, &b->fe);

	if (c)
		return c;
	if (a->c->id != b->c->id)
		return a->c->id < b->c->id ? -1 : 1;
	return nsname_cmp(&a->rec->key, &b->rec->key);
}

static int want_node_cmp(const void *pa, const void *pb)
{
	const struct nm_want_node *a = pa, *b = pb;
	int c = ip_cmp(a->ip, b->ip);

	if (c)
		return c;
	return a->cluster_id < b->cluster_id ? -1 :
					       a->cluster_id > b->cluster_id;
}

static int want_ip_cmp(const void *pa, const void *pb)
{
	const struct nm_want_ip *a = pa, *b = pb;
	int c = ip_cmp(a->ip, b->ip);

	if (c)
		return c;
	if (a->identity != b->identity)
		return a->identity < b->identity ? -1 : 1;
	return ip_cmp(a->tunnel, b->tunnel);
}

/* This node's own pods: the CNI writes them (LOCAL), not the sink. */
static bool ep_is_local(const struct nm_desired_cluster *c,
			const struct nm_kv_record *r, const char *local_node)
{
	return c->local && local_node && local_node[0] && r->ep.node &&
	       !strcmp(r->ep.node, local_node);
}

static __be32 node_ip_of(const struct noderef *refs, size_t n, size_t cluster,
			 const char *name)
{
	struct noderef probe = { .cluster = cluster, .name = name }, *r;

	if (!name)
		return 0;
	r = bsearch(&probe, refs, n, sizeof(*refs), noderef_cmp);
	return r ? r->ip : 0;
}

/*
 * nm_svc_merge() over the frontend's records @fr[0..n), as the sink does:
 * *@want false when none of them contributes (not this node's to program).
 */
static int merge_fe(const struct fe_rec *fr, size_t n, __u16 local_id,
		    bool *want, struct nm_want_svc *out)
{
	struct nm_merge_src **src;
	struct nm_merge_in *in;
	size_t i, made = 0;
	int err = -ENOMEM;

	*want = false;
	in = calloc(n, sizeof(*in));
	src = calloc(n, sizeof(*src));
	if (!in || !src)
		goto out;
	for (made = 0; made < n; made++) {
		const struct nm_desired_cluster *c = fr[made].c;

		err = nm_merge_in_from_kv(&in[made], &fr[made].rec->svc, c->id,
					  c->local || c->reachable, &src[made]);
		if (err)
			goto out;
	}
	out->fe = fr[0].fe;
	err = 0;
	*want = nm_svc_merge_contributes(in, n, local_id);
	if (*want)
		err = nm_svc_merge(in, n, local_id, &out->fe, &out->be,
				   &out->n_be);
out:
	for (i = 0; src && i < made; i++)
		free(src[i]);
	free(src);
	free(in);
	return err;
}

int nm_desired_build(const struct nm_desired_cluster *c, size_t n,
		     const char *local_node, struct nm_desired *out)
{
	struct noderef *refs = NULL;
	struct fe_rec *fr = NULL;
	size_t n_nodes = 0, n_eps = 0, n_fr = 0, n_refs = 0, i, j, k, end;
	__u16 local_id = 0;
	bool want;
	int err = -ENOMEM;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		if (c[i].local)
			local_id = c[i].id;
		for (j = 0; j < c[i].n_recs; j++) {
			const struct nm_kv_record *r = &c[i].recs[j];

			if (r->key.type == NM_KV_T_NODE)
				n_nodes++;
			else if (r->key.type == NM_KV_T_ENDPOINT)
				n_eps++;
			else if (r->key.type == NM_KV_T_SERVICE)
				n_fr += r->svc.n_frontends;
		}
	}
	refs = calloc(n_nodes ?: 1, sizeof(*refs));
	fr = calloc(n_fr ?: 1, sizeof(*fr));
	out->nodes = calloc(n_nodes ?: 1, sizeof(*out->nodes));
	out->ips = calloc(n_eps ?: 1, sizeof(*out->ips));
	/* At most one service per frontend of a record. */
	out->svcs = calloc(n_fr ?: 1, sizeof(*out->svcs));
	if (!refs || !fr || !out->nodes || !out->ips || !out->svcs)
		goto err_free;

	/* Nodes first: endpoints take their tunnel endpoint from them. */
	for (i = 0; i < n; i++) {
		for (j = 0; j < c[i].n_recs; j++) {
			const struct nm_kv_record *r = &c[i].recs[j];

			if (r->key.type != NM_KV_T_NODE)
				continue;
			out->nodes[out->n_nodes].ip = r->node.node_ip;
			out->nodes[out->n_nodes].cluster_id =
				r->node.cluster_id;
			out->n_nodes++;
			refs[n_refs].cluster = i;
			refs[n_refs].name = r->key.name;
			refs[n_refs].ip = r->node.node_ip;
			n_refs++;
		}
	}
	qsort(refs, n_refs, sizeof(*refs), noderef_cmp);
	qsort(out->nodes, out->n_nodes, sizeof(*out->nodes), want_node_cmp);

	n_fr = 0;
	for (i = 0; i < n; i++) {
		for (j = 0; j < c[i].n_recs; j++) {
			const struct nm_kv_record *r = &c[i].recs[j];
			struct nm_want_ip *w = &out->ips[out->n_ips];

			if (r->key.type == NM_KV_T_SERVICE) {
				/* The decoder refuses a frontend listed twice. */
				for (k = 0; k < r->svc.n_frontends; k++) {
					fr[n_fr].fe.vip =
						r->svc.frontends[k].vip;
					fr[n_fr].fe.port =
						r->svc.frontends[k].port;
					fr[n_fr].fe.proto =
						r->svc.frontends[k].proto;
					fr[n_fr].c = &c[i];
					fr[n_fr].rec = r;
					n_fr++;
				}
				continue;
			}
			if (r->key.type != NM_KV_T_ENDPOINT ||
			    ep_is_local(&c[i], r, local_node))
				continue;
			w->ip = r->ep.ip;
			w->identity = r->ep.identity;
			w->tunnel = node_ip_of(refs, n_refs, i, r->ep.node);
			out->n_ips++;
		}
	}
	qsort(out->ips, out->n_ips, sizeof(*out->ips), want_ip_cmp);

	/* Each frontend's records, in the sink's order: (cluster id, key). */
	qsort(fr, n_fr, sizeof(*fr), fe_rec_cmp);
	for (i = 0; i < n_fr; i = end) {
		for (end = i + 1; end < n_fr && fe_eq(&fr[end].fe, &fr[i].fe);
		     end++)
			;
		err = merge_fe(&fr[i], end - i, local_id, &want,
			       &out->svcs[out->n_svcs]);
		if (err)
			goto err_free;
		if (want)
			out->n_svcs++;
	}
	free(refs);
	free(fr);
	return 0;

err_free:
	free(refs);
	free(fr);
	nm_desired_free(out);
	return err;
}

void nm_desired_free(struct nm_desired *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; d->svcs && i < d->n_svcs; i++)
		free(d->svcs[i].be);
	free(d->svcs);
	free(d->ips);
	free(d->nodes);
	memset(d, 0, sizeof(*d));
}

/* ---- comparing ---------------------------------------------------------- */

static struct nm_diff *diff_add(struct nm_diffs *o, enum nm_diff_map map,
				enum nm_diff_kind kind, enum nm_diff_what what)
{
	struct nm_diff *nv, *d;

	nv = grow(o->v, &o->cap, sizeof(*o->v), o->n + 1);
	if (!nv)
		return NULL;
	o->v = nv;
	d = &o->v[o->n++];
	memset(d, 0, sizeof(*d));
	d->map = map;
	d->kind = kind;
	d->what = what;
	return d;
}

static int actual_node_cmp(const void *pa, const void *pb)
{
	return ip_cmp(((const struct nm_actual_node *)pa)->ip,
		      ((const struct nm_actual_node *)pb)->ip);
}

static int actual_ip_cmp(const void *pa, const void *pb)
{
	return ip_cmp(((const struct nm_actual_ip *)pa)->ip,
		      ((const struct nm_actual_ip *)pb)->ip);
}

/* Sorted copy of @n elements of @size bytes. */
static void *sorted_copy(const void *v, size_t n, size_t size,
			 int (*cmp)(const void *, const void *))
{
	void *c = malloc((n ?: 1) * size);

	if (!c)
		return NULL;
	if (n)
		memcpy(c, v, n * size);
	qsort(c, n, size, cmp);
	return c;
}

static int cmp_nodes(const struct nm_desired *want,
		     const struct nm_actual *have, struct nm_diffs *out)
{
	struct nm_actual_node *a;
	size_t i = 0, j = 0, k, end;
	struct nm_diff *d;
	int c, err = 0;

	a = sorted_copy(have->nodes, have->n_nodes, sizeof(*a),
			actual_node_cmp);
	if (!a)
		return -ENOMEM;
	while (i < want->n_nodes || j < have->n_nodes) {
		if (i == want->n_nodes)
			c = 1;
		else if (j == have->n_nodes)
			c = -1;
		else
			c = ip_cmp(want->nodes[i].ip, a[j].ip);
		/* want->nodes[i..end): every claim on this IP. */
		for (end = i; c <= 0 && end < want->n_nodes &&
			      want->nodes[end].ip == want->nodes[i].ip;
		     end++)
			;
		if (c > 0) {
			d = diff_add(out, NM_DIFF_NODES, NM_DIFF_STALE,
				     NM_DIFF_W_ENTRY);
			if (!d)
				goto enomem;
			d->addr = a[j].ip;
			d->have.cluster_id = a[j].val.cluster_id;
			j++;
			continue;
		}
		if (c < 0) {
			d = diff_add(out, NM_DIFF_NODES, NM_DIFF_MISSING,
				     NM_DIFF_W_ENTRY);
			if (!d)
				goto enomem;
			d->addr = want->nodes[i].ip;
			d->want.cluster_id = want->nodes[i].cluster_id;
			i = end;
			continue;
		}
		for (k = i; k < end; k++)
			if (want->nodes[k].cluster_id == a[j].val.cluster_id)
				break;
		if (k == end) {
			d = diff_add(out, NM_DIFF_NODES, NM_DIFF_DIFFERS,
				     NM_DIFF_W_ENTRY);
			if (!d)
				goto enomem;
			d->addr = a[j].ip;
			d->have.cluster_id = a[j].val.cluster_id;
			d->want.cluster_id = want->nodes[i].cluster_id;
		}
		i = end;
		j++;
	}
	goto out;
enomem:
	err = -ENOMEM;
out:
	free(a);
	return err;
}

static void ip_side(struct nm_diff_side *s, __u64 identity, __be32 tunnel,
		    __u8 flags)
{
	s->identity = identity;
	s->tunnel = tunnel;
	s->flags = flags;
}

static int cmp_ipcache(const struct nm_desired *want,
		       const struct nm_actual *have, struct nm_diffs *out)
{
	const __u8 foreign = NM_IPC_F_LOCAL | NM_IPC_F_CIDR;
	struct nm_actual_ip *a;
	const struct nm_want_ip *w;
	size_t i = 0, j = 0, k, end;
	struct nm_diff *d;
	int c, err = 0;

	a = sorted_copy(have->ips, have->n_ips, sizeof(*a), actual_ip_cmp);
	if (!a)
		return -ENOMEM;
	while (i < want->n_ips || j < have->n_ips) {
		if (i == want->n_ips)
			c = 1;
		else if (j == have->n_ips)
			c = -1;
		else
			c = ip_cmp(want->ips[i].ip, a[j].ip);
		for (end = i; c <= 0 && end < want->n_ips &&
			      want->ips[end].ip == want->ips[i].ip;
		     end++)
			;
		w = c <= 0 ? &want->ips[i] : NULL;
		if (c > 0) {
			/* This node's pods and policy CIDRs are not ours. */
			if (!(a[j].val.flags & foreign)) {
				d = diff_add(out, NM_DIFF_IPCACHE,
					     NM_DIFF_STALE, NM_DIFF_W_ENTRY);
				if (!d)
					goto enomem;
				d->addr = a[j].ip;
				ip_side(&d->have, a[j].val.identity,
					a[j].val.tunnel_endpoint,
					a[j].val.flags);
			}
			j++;
			continue;
		}
		if (c < 0) {
			d = diff_add(out, NM_DIFF_IPCACHE, NM_DIFF_MISSING,
				     NM_DIFF_W_ENTRY);
			if (!d)
				goto enomem;
			d->addr = w->ip;
			ip_side(&d->want, w->identity, w->tunnel, 0);
			i = end;
			continue;
		}
		/*
		 * A pod of this node holds the address: the sink never
		 * overwrites it. A CIDR /32 under a claimed address must have
		 * been overwritten by the sink (flags 0).
		 */
		for (k = i; k < end; k++)
			if (want->ips[k].identity == a[j].val.identity &&
			    want->ips[k].tunnel == a[j].val.tunnel_endpoint &&
			    !a[j].val.flags)
				break;
		if (k == end && !(a[j].val.flags & NM_IPC_F_LOCAL)) {
			d = diff_add(out, NM_DIFF_IPCACHE, NM_DIFF_DIFFERS,
				     NM_DIFF_W_ENTRY);
			if (!d)
				goto enomem;
			d->addr = a[j].ip;
			ip_side(&d->have, a[j].val.identity,
				a[j].val.tunnel_endpoint, a[j].val.flags);
			ip_side(&d->want, w->identity, w->tunnel, 0);
		}
		i = end;
		j++;
	}
	goto out;
enomem:
	err = -ENOMEM;
out:
	free(a);
	return err;
}

static __u32 n_active(const struct nm_merge_be *be, size_t n)
{
	__u32 a = 0;
	size_t i;

	for (i = 0; i < n; i++)
		a += be[i].spec.state == NM_BE_ACTIVE;
	return a;
}

static void be_side_want(struct nm_diff_side *s,
			 const struct nm_backend_spec *b, __u8 proto)
{
	s->cluster_id = b->cluster_id;
	s->proto = proto;
	s->state = b->state;
	s->weight = b->weight;
}

static void be_side_have(struct nm_diff_side *s, const struct nm_backend_val *v)
{
	s->cluster_id = v->cluster_id;
	s->proto = v->proto;
	s->state = v->state;
	s->weight = v->weight;
}

/*
 * The Maglev table the desired set gives with the map's backend ids
 * (@ids[i] for want's backend i), against the map's live @table.
 */
static int cmp_maglev(const struct nm_want_svc *w, const __u32 *ids,
		      const __u32 *table, __u32 m, size_t *differ)
{
	struct nm_maglev_backend *be;
	__u32 *t;
	size_t i, n = 0;
	int err = -ENOMEM;

	be = calloc(w->n_be ?: 1, sizeof(*be));
	t = calloc(m, sizeof(*t));
	if (!be || !t)
		goto out;
	/* What nm_svc_upsert() puts in the table: active backends only. */
	for (i = 0; i < w->n_be; i++) {
		const struct nm_backend_spec *b = &w->be[i].spec;

		if (b->state != NM_BE_ACTIVE)
			continue;
		be[n].id = ids[i];
		be[n].addr = b->addr;
		be[n].port = b->port;
		be[n].proto = w->fe.proto;
		be[n].weight = b->weight;
		n++;
	}
	err = nm_maglev_build(be, n, m, t);
	if (err)
		goto out;
	*differ = nm_maglev_diff(t, table, m);
out:
	free(t);
	free(be);
	return err;
}

/* One frontend in both: its backends, then algo, count and table. */
static int cmp_svc(const struct nm_want_svc *w, const struct nm_svc_info *h,
		   const __u32 *table, __u32 m, struct nm_diffs *out)
{
	unsigned char *seen = NULL;
	__u32 *ids = NULL;
	size_t i, j, n0 = out->n, differ;
	struct nm_diff *d;
	int err = -ENOMEM;

	seen = calloc(h->n_backends ?: 1, 1);
	ids = calloc(w->n_be ?: 1, sizeof(*ids));
	if (!seen || !ids)
		goto out;
	for (i = 0; i < w->n_be; i++) {
		const struct nm_backend_spec *b = &w->be[i].spec;
		const struct nm_backend_val *v = NULL;

		for (j = 0; j < h->n_backends; j++) {
			if (!seen[j] && h->backends[j].val.addr == b->addr &&
			    h->backends[j].val.port == b->port) {
				v = &h->backends[j].val;
				seen[j] = 1;
				ids[i] = h->backends[j].id;
				break;
			}
		}
		if (v && v->proto == w->fe.proto &&
		    v->cluster_id == b->cluster_id && v->state == b->state &&
		    v->weight == b->weight)
			continue;
		d = diff_add(out, NM_DIFF_SERVICES,
			     v ? NM_DIFF_DIFFERS : NM_DIFF_MISSING,
			     NM_DIFF_W_BACKEND);
		if (!d)
			goto out;
		d->fe = w->fe;
		d->addr = b->addr;
		d->port = b->port;
		be_side_want(&d->want, b, w->fe.proto);
		if (v)
			be_side_have(&d->have, v);
	}
	for (j = 0; j < h->n_backends; j++) {
		if (seen[j])
			continue;
		d = diff_add(out, NM_DIFF_SERVICES, NM_DIFF_STALE,
			     NM_DIFF_W_BACKEND);
		if (!d)
			goto out;
		d->fe = w->fe;
		d->addr = h->backends[j].val.addr;
		d->port = h->backends[j].val.port;
		be_side_have(&d->have, &h->backends[j].val);
	}
	if (h->val.algo != NM_LB_MAGLEV) {
		d = diff_add(out, NM_DIFF_SERVICES, NM_DIFF_DIFFERS,
			     NM_DIFF_W_ALGO);
		if (!d)
			goto out;
		d->fe = w->fe;
		d->have.n = h->val.algo;
		d->want.n = NM_LB_MAGLEV;
	}
	/* Count and table follow from the set: only news when it matches. */
	if (out->n != n0) {
		err = 0;
		goto out;
	}
	if (h->val.backend_count != n_active(w->be, w->n_be)) {
		d = diff_add(out, NM_DIFF_SERVICES, NM_DIFF_DIFFERS,
			     NM_DIFF_W_ACTIVE);
		if (!d)
			goto out;
		d->fe = w->fe;
		d->have.n = h->val.backend_count;
		d->want.n = n_active(w->be, w->n_be);
	}
	if (table) {
		/* A set no table can hold (more than M): the sink fails too. */
		err = cmp_maglev(w, ids, table, m, &differ);
		if (err == -EINVAL)
			differ = 0;
		else if (err)
			goto out;
		if (differ) {
			d = diff_add(out, NM_DIFF_SERVICES, NM_DIFF_DIFFERS,
				     NM_DIFF_W_MAGLEV);
			if (!d) {
				err = -ENOMEM;
				goto out;
			}
			d->fe = w->fe;
			d->have.n = (__u32)differ;
			d->have.n2 = m;
			d->want.n2 = m;
		}
	}
	err = 0;
out:
	free(ids);
	free(seen);
	return err;
}

/* Indices of @l's services, sorted by frontend. */
static int svc_order_cmp(const void *pa, const void *pb, void *arg)
{
	const struct nm_svc_list *l = arg;

	return fe_cmp(&l->svcs[*(const size_t *)pa].fe,
		      &l->svcs[*(const size_t *)pb].fe);
}

static int cmp_services(const struct nm_desired *want,
			const struct nm_actual *have, struct nm_diffs *out)
{
	static const struct nm_svc_list none;
	const struct nm_svc_list *l = have->svcs ? have->svcs : &none;
	size_t *ord, i = 0, j = 0;
	struct nm_diff *d;
	int c, err = 0;

	ord = calloc(l->n ?: 1, sizeof(*ord));
	if (!ord)
		return -ENOMEM;
	for (j = 0; j < l->n; j++)
		ord[j] = j;
	qsort_r(ord, l->n, sizeof(*ord), svc_order_cmp, (void *)l);
	j = 0;
	while (i < want->n_svcs || j < l->n) {
		const struct nm_svc_info *h = j < l->n ? &l->svcs[ord[j]] :
							 NULL;
		const struct nm_want_svc *w =
			i < want->n_svcs ? &want->svcs[i] : NULL;

		c = !w ? 1 : !h ? -1 : fe_cmp(&w->fe, &h->fe);
		if (c > 0) {
			/* 'nodemeshctl service upsert' owns the rest. */
			if (nm_svc_from_kvstore(h)) {
				d = diff_add(out, NM_DIFF_SERVICES,
					     NM_DIFF_STALE, NM_DIFF_W_ENTRY);
				if (!d)
					goto enomem;
				d->fe = h->fe;
				d->have.n = (__u32)h->n_backends;
				d->have.n2 = h->val.backend_count;
			}
			j++;
			continue;
		}
		if (c < 0) {
			d = diff_add(out, NM_DIFF_SERVICES, NM_DIFF_MISSING,
				     NM_DIFF_W_ENTRY);
			if (!d)
				goto enomem;
			d->fe = w->fe;
			d->want.n = (__u32)w->n_be;
			d->want.n2 = n_active(w->be, w->n_be);
			i++;
			continue;
		}
		err = cmp_svc(w, h, have->tables ? have->tables[ord[j]] : NULL,
			      have->maglev_m, out);
		if (err)
			goto out;
		i++;
		j++;
	}
	goto out;
enomem:
	err = -ENOMEM;
out:
	free(ord);
	return err;
}

int nm_desired_compare(const struct nm_desired *want,
		       const struct nm_actual *have, struct nm_diffs *out)
{
	int err;

	err = cmp_nodes(want, have, out);
	if (!err)
		err = cmp_ipcache(want, have, out);
	if (!err)
		err = cmp_services(want, have, out);
	return err;
}

void nm_diffs_free(struct nm_diffs *d)
{
	if (!d)
		return;
	free(d->v);
	memset(d, 0, sizeof(*d));
}

/* ---- text --------------------------------------------------------------- */

const char *nm_diff_map_name(enum nm_diff_map m)
{
	switch (m) {
	case NM_DIFF_NODES:
		return "nodes";
	case NM_DIFF_IPCACHE:
		return "ipcache";
	case NM_DIFF_SERVICES:
		return "services";
	default:
		return "?";
	}
}

const char *nm_diff_kind_name(enum nm_diff_kind k)
{
	switch (k) {
	case NM_DIFF_MISSING:
		return "missing";
	case NM_DIFF_STALE:
		return "stale";
	case NM_DIFF_DIFFERS:
		return "differs";
	default:
		return "?";
	}
}

static const char *ip_s(__be32 ip, char *buf)
{
	if (!inet_ntop(AF_INET, &ip, buf, INET_ADDRSTRLEN))
		strcpy(buf, "?");
	return buf;
}

char *nm_diff_key(const struct nm_diff *d, char *buf, size_t len)
{
	char fe[NM_FRONTEND_STRLEN], ip[INET_ADDRSTRLEN];

	if (d->map == NM_DIFF_NODES) {
		snprintf(buf, len, "%s", ip_s(d->addr, ip));
		return buf;
	}
	if (d->map == NM_DIFF_IPCACHE) {
		snprintf(buf, len, "%s/32", ip_s(d->addr, ip));
		return buf;
	}
	nm_frontend_str(&d->fe, fe, sizeof(fe));
	switch (d->what) {
	case NM_DIFF_W_BACKEND:
		snprintf(buf, len, "%s backend %s:%u", fe, ip_s(d->addr, ip),
			 ntohs(d->port));
		break;
	case NM_DIFF_W_ALGO:
		snprintf(buf, len, "%s algo", fe);
		break;
	case NM_DIFF_W_ACTIVE:
		snprintf(buf, len, "%s active", fe);
		break;
	case NM_DIFF_W_MAGLEV:
		snprintf(buf, len, "%s maglev", fe);
		break;
	default:
		snprintf(buf, len, "%s", fe);
		break;
	}
	return buf;
}

/* "identity 33554688 tunnel 172.30.2.1[ local][ cidr]" */
static void ip_val_str(const struct nm_diff_side *s, char *buf, size_t len)
{
	char tun[INET_ADDRSTRLEN];

	snprintf(buf, len, "identity %llu tunnel %s%s%s",
		 (unsigned long long)s->identity, ip_s(s->tunnel, tun),
		 s->flags & NM_IPC_F_LOCAL ? " local" : "",
		 s->flags & NM_IPC_F_CIDR ? " cidr" : "");
}

/* "cluster 2, active[, weight 3][, udp]" against frontend protocol @proto. */
static void be_val_str(const struct nm_diff_side *s, __u8 proto, char *buf,
		       size_t len)
{
	char w[24] = "", p[16] = "";

	if (s->weight != 1)
		snprintf(w, sizeof(w), ", weight %u", s->weight);
	if (s->proto != proto)
		snprintf(p, sizeof(p), ", %s", nm_proto_name(s->proto));
	snprintf(buf, len, "cluster %u, %s%s%s", s->cluster_id,
		 nm_backend_state_name(s->state), w, p);
}

char *nm_diff_str(const struct nm_diff *d, char *buf, size_t len)
{
	const char *map = nm_diff_map_name(d->map);
	const char *kind = nm_diff_kind_name(d->kind);
	const struct nm_diff_side *one = d->kind == NM_DIFF_STALE ? &d->have :
								    &d->want;
	char key[NM_DIFF_STRLEN], fe[NM_FRONTEND_STRLEN], ip[INET_ADDRSTRLEN];
	char a[96], b[96];

	nm_diff_key(d, key, sizeof(key));
	switch (d->map) {
	case NM_DIFF_NODES:
		if (d->kind == NM_DIFF_DIFFERS)
			snprintf(buf, len,
				 "%s: %s %s: map cluster %u, etcd cluster %u",
				 map, kind, key, d->have.cluster_id,
				 d->want.cluster_id);
		else
			snprintf(buf, len, "%s: %s %s (cluster %u)", map, kind,
				 key, one->cluster_id);
		return buf;
	case NM_DIFF_IPCACHE:
		if (d->kind == NM_DIFF_DIFFERS) {
			ip_val_str(&d->have, a, sizeof(a));
			ip_val_str(&d->want, b, sizeof(b));
			snprintf(buf, len, "%s: %s %s: map %s, etcd %s", map,
				 kind, key, a, b);
		} else {
			ip_val_str(one, a, sizeof(a));
			snprintf(buf, len, "%s: %s %s (%s)", map, kind, key, a);
		}
		return buf;
	default:
		break;
	}
	nm_frontend_str(&d->fe, fe, sizeof(fe));
	switch (d->what) {
	case NM_DIFF_W_ENTRY:
		snprintf(buf, len, "%s: %s %s (%u backend%s, %u active)", map,
			 kind, fe, one->n, one->n == 1 ? "" : "s", one->n2);
		break;
	case NM_DIFF_W_BACKEND:
		if (d->kind == NM_DIFF_DIFFERS) {
			be_val_str(&d->have, d->fe.proto, a, sizeof(a));
			be_val_str(&d->want, d->fe.proto, b, sizeof(b));
			snprintf(
				buf, len,
				"%s: %s: differs backend %s:%u: map (%s), etcd (%s)",
				map, fe, ip_s(d->addr, ip), ntohs(d->port), a,
				b);
		} else {
			be_val_str(one, d->fe.proto, a, sizeof(a));
			snprintf(buf, len, "%s: %s: %s backend %s:%u (%s)", map,
				 fe, kind, ip_s(d->addr, ip), ntohs(d->port),
				 a);
		}
		break;
	case NM_DIFF_W_ALGO:
		snprintf(buf, len, "%s: %s: differs algo: map %s, etcd %s", map,
			 fe, nm_lb_algo_name((__u8)d->have.n),
			 nm_lb_algo_name((__u8)d->want.n));
		break;
	case NM_DIFF_W_ACTIVE:
		snprintf(buf, len,
			 "%s: %s: differs active backends: map %u, etcd %u",
			 map, fe, d->have.n, d->want.n);
		break;
	case NM_DIFF_W_MAGLEV:
		snprintf(buf, len,
			 "%s: %s: differs maglev table: %u of %u slots", map,
			 fe, d->have.n, d->have.n2);
		break;
	}
	return buf;
}
