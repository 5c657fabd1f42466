// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>

#include "agent/log.h"
#include "agent/policy_apply.h"
#include "maps/identity.h"
#include "maps/ipcache.h"
#include "maps/policy.h"

#define POLICY_DIR "policies"

static int ep_cmp(const void *a, const void *b)
{
	const struct nm_ep_rec *x = a, *y = b;

	return x->val.endpoint_id < y->val.endpoint_id ?
		       -1 :
		       x->val.endpoint_id > y->val.endpoint_id;
}

int nm_endpoints_read(const struct nm_maps *maps, struct nm_ep_rec **out,
		      size_t *n)
{
	struct nm_endpoint_key key = {}, next = {};
	struct nm_ep_rec *v = NULL, *nv;
	size_t cnt = 0;
	bool first = true;
	int err;

	while (!bpf_map_get_next_key(maps->endpoints, first ? NULL : &key,
				     &next)) {
		key = next;
		first = false;
		nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			err = -ENOMEM;
			goto err_free;
		}
		v = nv;
		memset(&v[cnt], 0, sizeof(v[cnt]));
		v[cnt].addr = key.addr;
		if (bpf_map_lookup_elem(maps->endpoints, &key, &v[cnt].val))
			continue; /* deleted while we walked */
		cnt++;
	}
	if (errno != ENOENT) {
		err = -errno;
		pr_warn("failed to iterate map %s on %s: %s", NM_MAP_ENDPOINTS,
			maps->pin_root, strerror(-err));
		goto err_free;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), ep_cmp);
	*out = v;
	*n = cnt;
	return 0;

err_free:
	free(v);
	return err;
}

/* ---- the manifest store ------------------------------------------------- */

static bool yaml_name(const char *name)
{
	size_t len = strlen(name);

	return len > 5 && !strcmp(name + len - 5, ".yaml") && name[0] != '.';
}

int nm_policy_store_load(const struct nm_state *st, struct nm_policy_set *set,
			 struct nm_error *err)
{
	char dir[PATH_MAX + 16], path[PATH_MAX * 2 + 512];
	struct nm_policy_set one;
	DIR *top, *nsd = NULL;
	struct dirent *ns, *f;
	int ret = 0;

	memset(set, 0, sizeof(*set));
	memset(err, 0, sizeof(*err));
	snprintf(dir, sizeof(dir), "%s/" POLICY_DIR, st->dir);
	top = opendir(dir);
	if (!top) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		pr_warn("failed to open directory %s: %s", dir, strerror(-ret));
		return ret;
	}
	while ((ns = readdir(top))) {
		if (ns->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, ns->d_name);
		nsd = opendir(path);
		if (!nsd)
			continue; /* not a directory */
		while ((f = readdir(nsd))) {
			if (!yaml_name(f->d_name))
				continue;
			snprintf(path, sizeof(path), "%s/%s/%s", dir,
				 ns->d_name, f->d_name);
			ret = nm_policy_parse_file(path, &one, err);
			if (!ret)
				ret = nm_policy_set_merge(set, &one);
			nm_policy_set_free(&one);
			if (ret)
				goto err_close;
		}
		closedir(nsd);
		nsd = NULL;
	}
	closedir(top);
	return 0;

err_close:
	if (nsd)
		closedir(nsd);
	closedir(top);
	nm_policy_set_free(set);
	return ret;
}

static int store_rel(char *buf, size_t len, const char *ns, const char *name)
{
	if ((size_t)snprintf(buf, len, POLICY_DIR "/%s/%s.yaml", ns, name) >=
	    len)
		return -ENAMETOOLONG;
	return 0;
}

/* Document separators and ends are not part of a stored document. */
static bool doc_marker(const char *line, size_t len)
{
	return len >= 3 &&
	       (!strncmp(line, "---", 3) || !strncmp(line, "...", 3)) &&
	       (len == 3 || line[3] == ' ' || line[3] == '\t' ||
		line[3] == '\r');
}

/*
 * Lines @from..@to (1-based, inclusive; 0 = to the end) of @buf, without
 * document markers, into a malloc'd string.
 */
static char *slice_lines(const char *buf, size_t len, unsigned int from,
			 unsigned int to, size_t *outlen)
{
	const char *p = buf, *end = buf + len;
	unsigned int line = 1;
	char *out;
	size_t n = 0;

	out = malloc(len + 1);
	if (!out)
		return NULL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);

		if (line >= from && (!to || line <= to) &&
		    !doc_marker(p, nl ? (size_t)(nl - p) : l)) {
			memcpy(out + n, p, l);
			n += l;
		}
		p += l;
		line++;
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

static int line_cmp(const void *a, const void *b)
{
	const struct nm_policy *x = *(const struct nm_policy *const *)a;
	const struct nm_policy *y = *(const struct nm_policy *const *)b;

	return x->line < y->line ? -1 : x->line > y->line;
}

int nm_policy_store_write(const struct nm_state *st, const char *file,
			  const char *buf, size_t len,
			  const struct nm_policy_set *parsed)
{
	const struct nm_policy **order = NULL;
	struct nm_policy_set check = {};
	struct nm_error perr;
	char rel[PATH_MAX], msg[1024];
	char *doc = NULL;
	size_t i, dlen;
	int err = 0;

	if (parsed->n == 1) {
		err = store_rel(rel, sizeof(rel), parsed->v[0].namespace,
				parsed->v[0].name);
		return err ?: nm_state_write(st, rel, buf, len);
	}
	/* Several documents: each is stored alone, cut at document starts. */
	order = calloc(parsed->n, sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (i = 0; i < parsed->n; i++)
		order[i] = &parsed->v[i];
	qsort(order, parsed->n, sizeof(*order), line_cmp);
	for (i = 0; i < parsed->n; i++) {
		unsigned int to = i + 1 < parsed->n ? order[i + 1]->line - 1 :
						      0;

		doc = slice_lines(buf, len, order[i]->line, to, &dlen);
		if (!doc) {
			err = -ENOMEM;
			goto out;
		}
		/* The cut must give back exactly this policy, or we store nothing. */
		err = nm_policy_parse(doc, dlen, file, &check, &perr);
		if (err || check.n != 1 ||
		    strcmp(check.v[0].namespace, order[i]->namespace) ||
		    strcmp(check.v[0].name, order[i]->name)) {
			pr_warn("failed to split document of policy %s/%s on %s: %s",
				order[i]->namespace, order[i]->name, file,
				err ? nm_error_str(&perr, msg, sizeof(msg)) :
				      "the cut did not give back that policy");
			err = -EINVAL;
			goto out;
		}
		nm_policy_set_free(&check);
		err = store_rel(rel, sizeof(rel), order[i]->namespace,
				order[i]->name);
		if (!err)
			err = nm_state_write(st, rel, doc, dlen);
		if (err)
			goto out;
		free(doc);
		doc = NULL;
	}
out:
	nm_policy_set_free(&check);
	free(doc);
	free(order);
	return err;
}

int nm_policy_store_remove(const struct nm_state *st, const char *ns,
			   const char *name)
{
	char rel[PATH_MAX];
	int err;

	err = store_rel(rel, sizeof(rel), ns, name);
	return err ?: nm_state_remove(st, rel);
}

bool nm_policy_selects(const struct nm_policy *p,
		       const struct nm_labels *labels)
{
	const char *ns = nm_labels_get(labels, NM_LABEL_NAMESPACE);

	/* The endpointSelector selects pods of the policy's namespace only. */
	return ns && !strcmp(ns, p->namespace) &&
	       nm_selector_match(&p->endpoint_selector, labels);
}

/* ---- compile and write --------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
	const struct nm_policy_entry *x = a, *y = b;

	return memcmp(&x->key, &y->key, sizeof(x->key));
}

static int policy_read(const struct nm_maps *maps, struct nm_policy_entry **out,
		       size_t *n)
{
	struct nm_policy_key key = {}, next = {};
	struct nm_policy_entry *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	bool first = true;
	int err;

	while (!bpf_map_get_next_key(maps->policy, first ? NULL : &key,
				     &next)) {
		key = next;
		first = false;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 256;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				goto err_free;
			}
			v = nv;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		v[cnt].key = key;
		if (bpf_map_lookup_elem(maps->policy, &key, &v[cnt].val))
			continue;
		cnt++;
	}
	if (errno != ENOENT) {
		err = -errno;
		pr_warn("failed to iterate map %s on %s: %s", NM_MAP_POLICY,
			maps->pin_root, strerror(-err));
		goto err_free;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), entry_cmp);
	*out = v;
	*n = cnt;
	return 0;

err_free:
	free(v);
	return err;
}

/*
 * Endpoints to compile for: the map's, with @pending added or replacing
 * the one at its address. Endpoints whose identity is unknown are left
 * out (with a warning): the compiler needs their labels.
 */
static int gather_eps(const struct nm_maps *maps, const struct nm_idstore *ids,
		      const struct nm_ep_rec *pending, struct nm_ep_rec **recs,
		      size_t *n_recs, struct nm_ep_info **infos)
{
	struct nm_ep_rec *r = NULL, *nr;
	struct nm_ep_info *inf = NULL;
	char ip[INET_ADDRSTRLEN];
	size_t n = 0, i, k = 0;
	int err;

	err = nm_endpoints_read(maps, &r, &n);
	if (err)
		return err;
	if (pending) {
		for (i = 0; i < n && r[i].addr != pending->addr; i++)
			;
		if (i == n) {
			nr = realloc(r, (n + 1) * sizeof(*r));
			if (!nr) {
				err = -ENOMEM;
				goto err_free;
			}
			r = nr;
			n++;
		}
		r[i] = *pending;
	}
	inf = calloc(n + 1, sizeof(*inf));
	if (!inf) {
		err = -ENOMEM;
		goto err_free;
	}
	for (i = 0; i < n; i++) {
		if (!nm_idstore_find(ids, r[i].val.identity)) {
			pr_warn("endpoint %s has unknown identity %llu: left out of policy",
				inet_ntop(AF_INET, &r[i].addr, ip, sizeof(ip)) ?:
					"?",
				(unsigned long long)r[i].val.identity);
			continue;
		}
		r[k] = r[i];
		inf[k].endpoint_id = r[i].val.endpoint_id;
		inf[k].identity = r[i].val.identity;
		k++;
	}
	*recs = r;
	*n_recs = k;
	*infos = inf;
	return 0;

err_free:
	free(inf);
	free(r);
	return err;
}

int nm_policy_compile_node(const struct nm_maps *maps,
			   const struct nm_state *st,
			   const struct nm_idstore *ids,
			   const struct nm_policy_set *set,
			   struct nm_compiled *out)
{
	struct nm_ep_info *inf = NULL;
	struct nm_ep_rec *recs = NULL;
	size_t n = 0;
	int err;

	err = gather_eps(maps, ids, NULL, &recs, &n, &inf);
	if (err)
		return err;
	err = nm_policy_compile(set, ids->v, ids->n, inf, n, st->node.cluster,
				out);
	if (err)
		pr_warn("failed to compile policy on %s: %s", st->dir,
			strerror(-err));
	free(inf);
	free(recs);
	return err;
}

static int map_write(int fd, const void *key, const void *val, const char *map,
		     const char *root)
{
	if (bpf_map_update_elem(fd, key, val, BPF_ANY)) {
		int err = -errno;

		pr_warn("failed to write map %s on %s: %s", map, root,
			strerror(-err));
		return err;
	}
	return 0;
}

static int map_delete(int fd, const void *key, const char *map,
		      const char *root)
{
	if (bpf_map_delete_elem(fd, key) && errno != ENOENT) {
		int err = -errno;

		pr_warn("failed to delete from map %s on %s: %s", map, root,
			strerror(-err));
		return err;
	}
	return 0;
}

static void ipc_cidr_key(const struct nm_cidr *c, struct nm_ipcache_key *k)
{
	memset(k, 0, sizeof(*k));
	k->prefixlen = c->len;
	k->addr = c->addr;
}

int nm_policy_sync(struct nm_maps *maps, const struct nm_state *st,
		   struct nm_idstore *ids, const struct nm_policy_set *set,
		   const struct nm_ep_rec *pending, struct nm_sync_stats *stats,
		   struct nm_compiled *out)
{
	struct nm_cidr_change *cadd = NULL, *cdel = NULL;
	struct nm_policy_entry *old = NULL, *want;
	struct nm_compiled c = {};
	struct nm_ep_info *inf = NULL;
	struct nm_ep_rec *recs = NULL;
	struct nm_cidr *cidrs = NULL;
	size_t n_cidrs = 0, n_cadd = 0, n_cdel = 0, n_old = 0, n_recs = 0;
	size_t i, j;
	int err, cmp;

	memset(stats, 0, sizeof(*stats));
	err = nm_policy_cidrs(set, &cidrs, &n_cidrs);
	if (err)
		goto out;
	err = nm_identity_sync_cidrs(ids, cidrs, n_cidrs, &cadd, &n_cadd, &cdel,
				     &n_cdel);
	if (err)
		goto out;
	if (n_cadd || n_cdel) {
		err = nm_idstore_save(st, ids);
		if (err)
			goto out;
	}
	stats->cidr_added = n_cadd;
	stats->cidr_removed = n_cdel;

	err = gather_eps(maps, ids, pending, &recs, &n_recs, &inf);
	if (err)
		goto out;
	err = nm_policy_compile(set, ids->v, ids->n, inf, n_recs,
				st->node.cluster, &c);
	if (err) {
		pr_warn("failed to compile policy on %s: %s", st->dir,
			strerror(-err));
		goto out;
	}
	err = policy_read(maps, &old, &n_old);
	if (err)
		goto out;
	want = c.entries;
	if (c.n) /* no entries: entries may be NULL, which qsort must not get */
		qsort(want, c.n, sizeof(*want), entry_cmp);

	/* 1. New entries and changed values. */
	for (i = 0, j = 0; i < c.n; i++) {
		while (j < n_old && entry_cmp(&old[j], &want[i]) < 0)
			j++;
		cmp = j < n_old ? entry_cmp(&old[j], &want[i]) : 1;
		if (!cmp && old[j].val.rule_id == want[i].val.rule_id &&
		    old[j].val.verdict == want[i].val.verdict) {
			stats->unchanged++;
			continue;
		}
		err = map_write(maps->policy, &want[i].key, &want[i].val,
				NM_MAP_POLICY, maps->pin_root);
		if (err)
			goto out;
		if (cmp)
			stats->added++;
		else
			stats->changed++;
	}

	/*
	 * 2. ipcache entries of CIDR identities: every one, so an entry lost
	 * (e.g. under a deleted endpoint's /32) comes back. A pod's own /32
	 * entry is more specific knowledge than a rule's CIDR: it stays.
	 */
	for (i = 0; i < ids->n; i++) {
		struct nm_ipcache_val v = { .identity = ids->v[i].id,
					    .flags = NM_IPC_F_CIDR };
		struct nm_ipcache_val cur;
		struct nm_ipcache_key k;

		if (!ids->v[i].is_cidr)
			continue;
		ipc_cidr_key(&ids->v[i].cidr, &k);
		if (!bpf_map_lookup_elem(maps->ipcache, &k, &cur) &&
		    (!(cur.flags & NM_IPC_F_CIDR) ||
		     cur.identity == v.identity))
			continue;
		err = map_write(maps->ipcache, &k, &v, NM_MAP_IPCACHE,
				maps->pin_root);
		if (err)
			goto out;
	}

	/* 3./4. The pending endpoint with its flags, then flags turning on. */
	for (i = 0; i < n_recs; i++) {
		struct nm_endpoint_key k = { .addr = recs[i].addr };
		struct nm_endpoint_val v = recs[i].val;
		bool is_pending = pending && pending->addr == recs[i].addr;
		__u8 want_f = c.eps[i].flags;

		if (is_pending) {
			v.flags = want_f;
		} else {
			if ((v.flags | want_f) == v.flags)
				continue;
			v.flags |= want_f;
			stats->flags_on++;
		}
		err = map_write(maps->endpoints, &k, &v, NM_MAP_ENDPOINTS,
				maps->pin_root);
		if (err)
			goto out;
		recs[i].val.flags = v.flags;
	}

	/* 5. Flags turning off. */
	for (i = 0; i < n_recs; i++) {
		struct nm_endpoint_key k = { .addr = recs[i].addr };
		struct nm_endpoint_val v = recs[i].val;

		if (v.flags == c.eps[i].flags)
			continue;
		v.flags = c.eps[i].flags;
		err = map_write(maps->endpoints, &k, &v, NM_MAP_ENDPOINTS,
				maps->pin_root);
		if (err)
			goto out;
		stats->flags_off++;
	}

	/* 6. ipcache entries of dropped CIDR identities, if still theirs. */
	for (i = 0; i < n_cdel; i++) {
		struct nm_ipcache_val v;
		struct nm_ipcache_key k;

		ipc_cidr_key(&cdel[i].cidr, &k);
		if (bpf_map_lookup_elem(maps->ipcache, &k, &v) ||
		    !(v.flags & NM_IPC_F_CIDR) || v.identity != cdel[i].id)
			continue;
		err = map_delete(maps->ipcache, &k, NM_MAP_IPCACHE,
				 maps->pin_root);
		if (err)
			goto out;
	}

	/* 7. Entries no longer produced. */
	for (i = 0, j = 0; i < n_old; i++) {
		while (j < c.n && entry_cmp(&want[j], &old[i]) < 0)
			j++;
		if (j < c.n && !entry_cmp(&want[j], &old[i]))
			continue;
		err = map_delete(maps->policy, &old[i].key, NM_MAP_POLICY,
				 maps->pin_root);
		if (err)
			goto out;
		stats->removed++;
	}
	if (out) {
		*out = c;
		memset(&c, 0, sizeof(c));
	}
out:
	nm_compiled_free(&c);
	free(old);
	free(inf);
	free(recs);
	free(cdel);
	free(cadd);
	free(cidrs);
	return err;
}
