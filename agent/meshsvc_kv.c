// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "agent/log.h"
#include "agent/meshsvc_kv.h"
#include "maps/backend.h"

/* Endpoint records of a big cluster come in pages of this many. */
#define RANGE_PAGE 5000

static int nomem(struct nm_etcd_err *err, const char *what)
{
	snprintf(err->msg, sizeof(err->msg), "failed to %s: out of memory",
		 what);
	return -ENOMEM;
}

void nm_meshsvc_stored_free(struct nm_meshsvc_stored_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		free(set->v[i].key);
		if (set->v[i].ok)
			nm_meshsvc_free(&set->v[i].svc);
	}
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

/* Refuse @m when an earlier good manifest claims one of its frontends. */
static void check_clash(struct nm_meshsvc_stored_set *set,
			struct nm_meshsvc_stored *m)
{
	char fes[NM_FRONTEND_STRLEN];
	struct nm_frontend fe;
	size_t i;

	for (i = 0; i < set->n; i++) {
		const struct nm_meshsvc_stored *o = &set->v[i];

		if (!o->ok || !nm_meshsvc_clash(&o->svc, &m->svc, &fe))
			continue;
		memset(&m->err, 0, sizeof(m->err));
		snprintf(m->err.file, sizeof(m->err.file), "%s", m->key);
		m->err.line = m->svc.line;
		snprintf(m->err.reason, sizeof(m->err.reason),
			 "frontend %s is claimed by MeshService %s/%s already",
			 nm_frontend_str(&fe, fes, sizeof(fes)), o->svc.ns,
			 o->svc.name);
		nm_meshsvc_free(&m->svc);
		m->ok = false;
		return;
	}
}

int nm_meshsvc_load(struct nm_etcd *c, const char *prefix, __s64 revision,
		    struct nm_meshsvc_stored_set *out, __s64 *rev,
		    struct nm_etcd_err *err)
{
	char dir[NM_KV_PREFIX_MAX + sizeof(NM_MESHSVC_KEY_DIR)];
	struct nm_etcd_range_opts o = { .prefix = true, .revision = revision };
	struct nm_meshsvc_stored_set set = {};
	struct nm_etcd_kvs kvs = {};
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = nm_meshsvc_dir(prefix, dir, sizeof(dir));
	if (ret) {
		snprintf(err->msg, sizeof(err->msg),
			 "failed to list MeshServices: prefix too long");
		return ret;
	}
	o.key = dir;
	ret = nm_etcd_range(c, &o, &kvs, err);
	if (ret)
		return ret;
	if (kvs.n) {
		set.v = calloc(kvs.n, sizeof(*set.v));
		if (!set.v) {
			ret = nomem(err, "list MeshServices");
			goto out;
		}
	}
	for (i = 0; i < kvs.n; i++) {
		struct nm_meshsvc_stored *m = &set.v[set.n];

		m->key = strdup(kvs.kv[i].key);
		if (!m->key) {
			ret = nomem(err, "list MeshServices");
			goto out;
		}
		m->mod_revision = kvs.kv[i].mod_revision;
		ret = nm_meshsvc_parse_stored(prefix, kvs.kv[i].key,
					      kvs.kv[i].value,
					      kvs.kv[i].value_len, &m->svc,
					      &m->err);
		if (ret == -ENOMEM) {
			free(m->key);
			ret = nomem(err, "parse MeshServices");
			goto out;
		}
		m->ok = !ret;
		if (m->ok)
			check_clash(&set, m);
		set.n++;
	}
	ret = 0;
	if (rev)
		*rev = kvs.revision;
	*out = set;
	memset(&set, 0, sizeof(set));
out:
	nm_meshsvc_stored_free(&set);
	nm_etcd_kvs_free(&kvs);
	return ret;
}

static void endpoints_free(struct nm_kv_endpoint *eps, size_t n)
{
	struct nm_kv_record rec;
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&rec, 0, sizeof(rec));
		rec.key.type = NM_KV_T_ENDPOINT;
		rec.ep = eps[i];
		nm_kv_record_free(&rec);
	}
	free(eps);
}

/*
 * The cluster's endpoint records at @revision, decoded as a mirror would;
 * one that does not validate is left out (its mirrors reject it too).
 */
static int load_endpoints(struct nm_etcd *c, const struct nm_kv_ctx *ctx,
			  __s64 revision, struct nm_kv_endpoint **out,
			  size_t *n_out, struct nm_etcd_err *err)
{
	char dir[NM_KV_KEY_MAX + 1], why[NM_KV_ERR_LEN];
	struct nm_etcd_range_opts o = { .prefix = true,
					.revision = revision,
					.page_size = RANGE_PAGE };
	struct nm_kv_endpoint *eps = NULL;
	struct nm_etcd_kvs kvs = {};
	struct nm_kv_record rec;
	size_t i, n = 0;
	int ret;

	ret = nm_kv_state_prefix(ctx->prefix, NM_KV_ENDPOINTS, ctx->cluster,
				 dir, sizeof(dir));
	if (ret) {
		snprintf(
			err->msg, sizeof(err->msg),
			"failed to list endpoints of cluster %s: prefix too long",
			ctx->cluster);
		return ret;
	}
	o.key = dir;
	ret = nm_etcd_range(c, &o, &kvs, err);
	if (ret)
		return ret;
	if (kvs.n) {
		eps = calloc(kvs.n, sizeof(*eps));
		if (!eps) {
			ret = nomem(err, "list endpoints");
			goto out;
		}
	}
	for (i = 0; i < kvs.n; i++) {
		ret = nm_kv_decode(ctx, kvs.kv[i].key, kvs.kv[i].value,
				   kvs.kv[i].value_len, &rec, why, sizeof(why));
		if (ret == -ENOMEM) {
			ret = nomem(err, "decode endpoints");
			goto out;
		}
		if (ret || rec.key.type != NM_KV_T_ENDPOINT) {
			if (!ret)
				nm_kv_record_free(&rec);
			pr_debug("MeshService export skips %s: %s",
				 kvs.kv[i].key, ret ? why : "not an endpoint");
			continue;
		}
		eps[n++] = rec.ep;
	}
	*out = eps;
	*n_out = n;
	eps = NULL;
	n = 0;
	ret = 0;
out:
	endpoints_free(eps, n);
	nm_etcd_kvs_free(&kvs);
	return ret;
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct nm_etcd_kv *)a)->key,
		      ((const struct nm_etcd_kv *)b)->key);
}

static struct nm_etcd_kv *kv_find(const struct nm_etcd_kvs *kvs,
				  const char *key)
{
	struct nm_etcd_kv k = { .key = (char *)key };

	return kvs->n ? bsearch(&k, kvs->kv, kvs->n, sizeof(*kvs->kv), kv_cmp) :
			NULL;
}

/* Everything under @dir at @rev, sorted by key for kv_find(). */
static int range_sorted(struct nm_etcd *c, const char *dir, __s64 rev,
			struct nm_etcd_kvs *out, struct nm_etcd_err *err)
{
	struct nm_etcd_range_opts o = { .key = dir,
					.prefix = true,
					.revision = rev };
	int ret;

	ret = nm_etcd_range(c, &o, out, err);
	if (!ret)
		qsort(out->kv, out->n, sizeof(*out->kv), kv_cmp);
	return ret;
}

/* ---- the grace table ---- */

void nm_meshsvc_grace_reset(struct nm_meshsvc_grace *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		free(g->v[i].key);
	free(g->v);
	g->v = NULL;
	g->n = g->cap = 0;
}

static struct nm_meshsvc_grace_ent *grace_find(struct nm_meshsvc_grace *g,
					       const char *key,
					       const struct nm_kv_backend *be)
{
	size_t i;

	for (i = 0; i < g->n; i++) {
		struct nm_meshsvc_grace_ent *e = &g->v[i];

		if (e->ip == be->ip && e->port == be->port &&
		    e->proto == be->proto && !strcmp(e->key, key))
			return e;
	}
	return NULL;
}

static void grace_drop(struct nm_meshsvc_grace *g,
		       struct nm_meshsvc_grace_ent *e)
{
	free(e->key);
	*e = g->v[--g->n];
}

static struct nm_meshsvc_grace_ent *grace_add(struct nm_meshsvc_grace *g,
					      const char *key,
					      const struct nm_kv_backend *be,
					      __u64 now_ns)
{
	struct nm_meshsvc_grace_ent *e, *v;
	size_t cap;

	if (g->n == g->cap) {
		cap = g->cap ? g->cap * 2 : 8;
		v = realloc(g->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		g->v = v;
		g->cap = cap;
	}
	e = &g->v[g->n];
	e->key = strdup(key);
	if (!e->key)
		return NULL;
	e->ip = be->ip;
	e->port = be->port;
	e->proto = be->proto;
	e->first_missing_ns = now_ns;
	e->round = g->round;
	g->n++;
	return e;
}

/* Entries this round did not see: their record no longer holds them. */
static void grace_gc(struct nm_meshsvc_grace *g)
{
	size_t i = 0;

	while (i < g->n) {
		if (g->v[i].round != g->round)
			grace_drop(g, &g->v[i]);
		else
			i++;
	}
}

struct round {
	struct nm_etcd *c;
	const struct nm_kv_ctx *ctx;
	struct nm_meshsvc_grace *grace; /* NULL or no period: no grace */
	__u64 now_ns;
	struct nm_etcd_kvs cur; /* the cluster's service records */
	struct nm_etcd_kvs marks; /* the exporter's marks */
	bool *keep; /* per mark: its manifest is still there */
	struct nm_kv_endpoint *eps;
	size_t n_eps;
	struct nm_meshsvc_sync_stats *st;
	struct nm_etcd_err *err;
	int ret; /* the first write error */
};

static void refuse(struct round *r, const struct nm_error *e)
{
	r->st->refused++;
	if (!r->st->refusal[0])
		nm_error_str(e, r->st->refusal, sizeof(r->st->refusal));
}

/* A write failed: log it, keep the first for the caller. */
static void write_failed(struct round *r, int ret,
			 const struct nm_etcd_err *werr)
{
	pr_warn("%s", werr->msg);
	if (!r->ret) {
		r->ret = ret;
		*r->err = *werr;
	}
}

/* The record and mark keys of @ns/@name. */
static int keys_of(const struct round *r, const char *ns, const char *name,
		   char *key, char *mark)
{
	struct nm_kv_key k = { .type = NM_KV_T_SERVICE,
			       .kind = NM_KV_SERVICES };
	int n;

	snprintf(k.cluster, sizeof(k.cluster), "%s", r->ctx->cluster);
	snprintf(k.ns, sizeof(k.ns), "%s", ns);
	snprintf(k.name, sizeof(k.name), "%s", name);
	if (nm_kv_key_format(r->ctx->prefix, &k, key, NM_KV_KEY_MAX + 1))
		return -ENAMETOOLONG;
	n = snprintf(mark, NM_KV_KEY_MAX + 1, "%s%s%s/%s",
		     r->ctx->prefix ?: NM_KV_PREFIX_DEFAULT,
		     NM_MESHSVC_MARK_DIR, ns, name);
	return n > 0 && n <= NM_KV_KEY_MAX ? 0 : -ENAMETOOLONG;
}

/* Our mark on @mark from now on (it may be there already). */
static int hold(struct round *r, const char *mark, const char *key)
{
	struct nm_etcd_kv *kv = kv_find(&r->marks, mark);
	struct nm_etcd_err werr = {};
	int ret;

	if (kv) {
		r->keep[kv - r->marks.kv] = true;
		r->st->exported++;
		return 0;
	}
	/* The mark goes first: a record is never ours without one. */
	ret = nm_etcd_put(r->c, mark, key, strlen(key), 0, NULL, &werr);
	if (ret) {
		write_failed(r, ret, &werr);
		return ret;
	}
	r->st->exported++;
	return 0;
}

static struct nm_kv_backend *be_find(struct nm_kv_backend *v, size_t n,
				     const struct nm_kv_backend *be)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (v[i].ip == be->ip && v[i].port == be->port &&
		    v[i].proto == be->proto)
			return &v[i];
	}
	return NULL;
}

static void log_be(const char *what, const char *key,
		   const struct nm_kv_backend *be)
{
	char ip[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &be->ip, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	pr_info("%s: backend %s:%u/%s %s", key, ip, ntohs(be->port),
		be->proto == IPPROTO_UDP ? "udp" : "tcp", what);
}

/*
 * Add to @rec, as terminating, the backends our last record at @key held
 * whose endpoint is gone, until the grace period from the round that
 * first missed them ran out: a restarting agent's endpoints vanish for a
 * second, and established flows to them must not be reselected. 0 or
 * -ENOMEM.
 */
static int keep_missing(struct round *r, const char *key, const char *mark,
			struct nm_kv_record *rec)
{
	struct nm_meshsvc_grace *g = r->grace;
	struct nm_kv_service *s = &rec->svc;
	const size_t n_new = s->n_backends;
	struct nm_meshsvc_grace_ent *e;
	struct nm_kv_backend *ob, *v;
	char why[NM_KV_ERR_LEN];
	struct nm_etcd_kv *cur;
	struct nm_kv_record old;
	size_t i;
	int ret;

	cur = kv_find(&r->cur, key);
	/* Only a record we wrote says what we exported before. */
	if (!g || !g->period_ns || !cur || !kv_find(&r->marks, mark))
		return 0;
	ret = nm_kv_decode(r->ctx, cur->key, cur->value, cur->value_len, &old,
			   why, sizeof(why));
	if (ret == -ENOMEM)
		return -ENOMEM;
	if (ret) {
		pr_debug("%s: previous export unreadable: %s", key, why);
		return 0;
	}
	ret = 0;
	if (old.key.type != NM_KV_T_SERVICE || !old.svc.n_backends)
		goto out;
	v = realloc(s->backends,
		    (n_new + old.svc.n_backends) * sizeof(*s->backends));
	if (!v) {
		ret = -ENOMEM;
		goto out;
	}
	s->backends = v;
	for (i = 0; i < old.svc.n_backends; i++) {
		ob = &old.svc.backends[i];
		e = grace_find(g, key, ob);
		if (be_find(s->backends, n_new, ob)) {
			/* Back (or never gone): no grace to run. */
			if (e) {
				log_be("is back", key, ob);
				grace_drop(g, e);
			}
			continue;
		}
		if (be_find(s->backends + n_new, s->n_backends - n_new, ob))
			continue; /* listed twice */
		if (!e) {
			e = grace_add(g, key, ob, r->now_ns);
			if (!e) {
				ret = -ENOMEM;
				goto out;
			}
			log_be("kept terminating: its endpoint is gone", key,
			       ob);
		}
		/* Seen: the entry lives while the record holds the backend. */
		e->round = g->round;
		if (r->now_ns - e->first_missing_ns >= g->period_ns) {
			log_be("removed: its grace ran out", key, ob);
			continue;
		}
		if (s->n_backends >= NM_KV_BACKENDS_MAX) {
			r->st->dropped++;
			continue;
		}
		/* The node string moves over; old's copy must not free it. */
		s->backends[s->n_backends] = *ob;
		s->backends[s->n_backends].state = NM_BE_TERMINATING;
		s->n_backends++;
		ob->node = NULL;
		r->st->graced++;
	}
	qsort(s->backends, s->n_backends, sizeof(*s->backends),
	      nm_meshsvc_backend_cmp);
out:
	nm_kv_record_free(&old);
	return ret;
}

static int export_one(struct round *r, const struct nm_meshsvc_stored *m)
{
	char key[NM_KV_KEY_MAX + 1], mark[NM_KV_KEY_MAX + 1];
	char ns[NM_KV_NS_MAX + 1], name[NM_KV_NS_MAX + 1];
	char why[NM_KV_ERR_LEN];
	struct nm_etcd_err werr = {};
	struct nm_etcd_kv *cur, *kv;
	struct nm_kv_record rec;
	char *ekey = NULL, *val = NULL;
	size_t len, dropped;
	struct nm_error e;
	int ret;

	if (nm_meshsvc_key_parse(r->ctx->prefix, m->key, ns, sizeof(ns), name,
				 sizeof(name)) ||
	    keys_of(r, ns, name, key, mark)) {
		refuse(r, &m->err);
		return 0;
	}
	if (!m->ok) {
		/* Unreadable is not gone: its record stays ours and as it is. */
		refuse(r, &m->err);
		kv = kv_find(&r->marks, mark);
		if (kv) {
			r->keep[kv - r->marks.kv] = true;
			r->st->exported++;
		}
		return 0;
	}
	ret = nm_meshsvc_export(&m->svc, r->ctx->cluster, r->eps, r->n_eps,
				&rec, &dropped);
	if (ret)
		return nomem(r->err, "export MeshServices");
	if (dropped) {
		r->st->dropped += dropped;
		pr_warn("MeshService %s/%s selects more than %u backends: %zu left out",
			m->svc.ns, m->svc.name, NM_KV_BACKENDS_MAX, dropped);
	}
	ret = keep_missing(r, key, mark, &rec);
	if (ret) {
		nm_kv_record_free(&rec);
		return nomem(r->err, "export MeshServices");
	}
	ret = nm_kv_encode(r->ctx, &rec, &ekey, &val, &len, why, sizeof(why));
	nm_kv_record_free(&rec);
	if (ret == -ENOMEM)
		return nomem(r->err, "encode MeshService exports");
	if (ret) {
		/* The manifest parsed: this is a bug, not the user's. */
		memset(&e, 0, sizeof(e));
		snprintf(e.file, sizeof(e.file), "%s", m->key);
		snprintf(e.reason, sizeof(e.reason), "%.*s",
			 (int)sizeof(e.reason) - 1, why);
		refuse(r, &e);
		kv = kv_find(&r->marks, mark);
		if (kv)
			r->keep[kv - r->marks.kv] = true;
		return 0;
	}
	if (hold(r, mark, ekey))
		goto out;
	cur = kv_find(&r->cur, ekey);
	if (cur && cur->value_len == len && !memcmp(cur->value, val, len))
		goto out;
	ret = nm_etcd_put(r->c, ekey, val, len, 0, NULL, &werr);
	if (ret) {
		write_failed(r, ret, &werr);
		goto out;
	}
	r->st->written++;
	pr_info("exported MeshService %s/%s to %s", m->svc.ns, m->svc.name,
		ekey);
out:
	free(val);
	free(ekey);
	return 0;
}

/* A mark whose manifest is gone: its record, then the mark. */
static void unexport(struct round *r, const struct nm_etcd_kv *mk)
{
	char key[NM_KV_KEY_MAX + 1], mark[NM_KV_KEY_MAX + 1];
	char ns[NM_KV_NS_MAX + 1], name[NM_KV_NS_MAX + 1];
	size_t plen = strlen(r->ctx->prefix ?: NM_KV_PREFIX_DEFAULT) +
		      strlen(NM_MESHSVC_MARK_DIR);
	struct nm_etcd_err werr = {};
	const char *slash;
	int ret;

	slash = strchr(mk->key + plen, '/');
	if (!slash || (size_t)(slash - mk->key - plen) >= sizeof(ns) ||
	    strlen(slash + 1) >= sizeof(name))
		goto drop_mark; /* not one we wrote */
	snprintf(ns, sizeof(ns), "%.*s", (int)(slash - mk->key - plen),
		 mk->key + plen);
	snprintf(name, sizeof(name), "%s", slash + 1);
	if (!nm_dns_label_ok(ns) || !nm_dns_label_ok(name) ||
	    keys_of(r, ns, name, key, mark))
		goto drop_mark;
	if (kv_find(&r->cur, key)) {
		ret = nm_etcd_delete(r->c, key, false, NULL, NULL, &werr);
		if (ret) {
			/* The mark stays: the next round tries again. */
			write_failed(r, ret, &werr);
			r->st->exported++;
			return;
		}
		r->st->deleted++;
		pr_info("removed %s: its MeshService is gone", key);
	}
drop_mark:
	ret = nm_etcd_delete(r->c, mk->key, false, NULL, NULL, &werr);
	if (ret)
		write_failed(r, ret, &werr);
}

int nm_meshsvc_sync(struct nm_etcd *c, const struct nm_kv_ctx *ctx,
		    struct nm_meshsvc_grace *grace,
		    struct nm_meshsvc_sync_stats *st, struct nm_etcd_err *err)
{
	char dir[NM_KV_KEY_MAX + 1];
	struct nm_meshsvc_stored_set man = {};
	struct round r = {
		.c = c, .ctx = ctx, .grace = grace, .st = st, .err = err
	};
	struct timespec ts;
	__s64 rev = 0;
	size_t i;
	int ret;

	memset(st, 0, sizeof(*st));
	if (grace) {
		if (clock_gettime(CLOCK_MONOTONIC, &ts)) {
			ret = -errno;
			snprintf(err->msg, sizeof(err->msg),
				 "failed to export MeshServices: clock: %s",
				 strerror(errno));
			return ret;
		}
		r.now_ns = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
		grace->round++;
	}
	/* One revision for every read: a consistent picture. */
	ret = nm_meshsvc_load(c, ctx->prefix, 0, &man, &rev, err);
	if (ret)
		return ret;
	st->manifests = man.n;
	ret = load_endpoints(c, ctx, rev, &r.eps, &r.n_eps, err);
	if (ret)
		goto out_man;
	ret = nm_kv_state_prefix(ctx->prefix, NM_KV_SERVICES, ctx->cluster, dir,
				 sizeof(dir));
	if (!ret)
		ret = range_sorted(c, dir, rev, &r.cur, err);
	if (ret == -ENAMETOOLONG)
		snprintf(
			err->msg, sizeof(err->msg),
			"failed to list services of cluster %s: prefix too long",
			ctx->cluster);
	if (ret)
		goto out_eps;
	snprintf(dir, sizeof(dir), "%s%s", ctx->prefix ?: NM_KV_PREFIX_DEFAULT,
		 NM_MESHSVC_MARK_DIR);
	ret = range_sorted(c, dir, rev, &r.marks, err);
	if (ret)
		goto out_cur;
	r.keep = calloc(r.marks.n + 1, sizeof(*r.keep));
	if (!r.keep) {
		ret = nomem(err, "export MeshServices");
		goto out_marks;
	}
	for (i = 0; i < man.n; i++) {
		ret = export_one(&r, &man.v[i]);
		if (ret)
			goto out_keep;
	}
	/* Only what we marked is ours to remove: not hand-written records. */
	for (i = 0; i < r.marks.n; i++) {
		if (!r.keep[i])
			unexport(&r, &r.marks.kv[i]);
	}
	/* Every manifest was seen: what no record holds has no grace to run. */
	if (grace)
		grace_gc(grace);
	ret = r.ret;
out_keep:
	free(r.keep);
out_marks:
	nm_etcd_kvs_free(&r.marks);
out_cur:
	nm_etcd_kvs_free(&r.cur);
out_eps:
	endpoints_free(r.eps, r.n_eps);
out_man:
	nm_meshsvc_stored_free(&man);
	return ret;
}
