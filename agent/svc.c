// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>

#include "agent/log.h"
#include "agent/maglev.h"
#include "agent/svc.h"
#include "maps/maglev.h"

struct svc_ent {
	struct nm_svc_key key;
	struct nm_svc_val val;
};

struct be_ent {
	struct nm_backend_key key;
	struct nm_backend_val val;
};

/* Read a whole hash map into @out (pairs of key, value of @ksz + @vsz). */
static int scan_map(int fd, size_t ksz, size_t vsz, size_t max, void **out,
		    size_t *n, const char *name, const char *root)
{
	size_t esz = ksz + vsz, cnt = 0;
	char key[64] = {}, next[64] = {};
	char *buf;
	bool first = true;
	int err;

	/* One more than max_entries: a map can never hold more. */
	buf = calloc(max + 1, esz);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		err = bpf_map_get_next_key(fd, first ? NULL : key, next);
		if (err) {
			err = -errno;
			if (err == -ENOENT)
				break;
			pr_warn("failed to iterate map %s on %s: %s", name,
				root, strerror(-err));
			goto err_free;
		}
		first = false;
		memcpy(key, next, ksz);
		if (cnt > max)
			break;
		memcpy(buf + cnt * esz, key, ksz);
		err = bpf_map_lookup_elem(fd, key, buf + cnt * esz + ksz);
		if (err) {
			err = -errno;
			/* Deleted under us by another writer: skip it. */
			if (err == -ENOENT)
				continue;
			pr_warn("failed to read map %s on %s: %s", name, root,
				strerror(-err));
			goto err_free;
		}
		cnt++;
	}
	*out = buf;
	*n = cnt;
	return 0;

err_free:
	free(buf);
	return err;
}

static int scan_services(const struct nm_maps *maps, struct svc_ent **out,
			 size_t *n)
{
	return scan_map(maps->services, sizeof(struct nm_svc_key),
			sizeof(struct nm_svc_val), maps->cfg.services_max,
			(void **)out, n, NM_MAP_SERVICES, maps->pin_root);
}

static int scan_backends(const struct nm_maps *maps, struct be_ent **out,
			 size_t *n)
{
	return scan_map(maps->backends, sizeof(struct nm_backend_key),
			sizeof(struct nm_backend_val), maps->cfg.backends_max,
			(void **)out, n, NM_MAP_BACKENDS, maps->pin_root);
}

void nm_svc_key_from_frontend(const struct nm_frontend *fe,
			      struct nm_svc_key *key)
{
	memset(key, 0, sizeof(*key));
	key->vip = fe->vip;
	key->dport = fe->port;
	key->proto = fe->proto;
}

static void addr_port_str(__be32 addr, __be16 port, char *buf, size_t len)
{
	char a[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s:%u", a, ntohs(port));
}

bool nm_svc_from_kvstore(const struct nm_svc_info *svc)
{
	size_t i;

	if (!svc->n_backends)
		return false;
	for (i = 0; i < svc->n_backends; i++)
		if (!svc->backends[i].val.cluster_id)
			return false;
	return true;
}

int nm_svc_maglev_read(const struct nm_maps *maps, __u32 t, __u32 *keys,
		       __u32 *out)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	__u32 m = maps->cfg.maglev_m, count = m, prev = t * m - 1, next, i;
	int err;

	err = bpf_map_lookup_batch(maps->maglev, t ? &prev : NULL, &next, keys,
				   out, &count, &bopts);
	/* ENOENT just means the batch reached the end of the array. */
	if ((!err || errno == ENOENT) && count == m && keys[0] == t * m)
		return 0;
	for (i = 0; i < m; i++) {
		struct nm_maglev_key key = { .index = t * m + i };

		if (bpf_map_lookup_elem(maps->maglev, &key, &out[i]))
			return -errno;
	}
	return 0;
}

/* Write @m ids at table @table_id: one batch, or one by one if unsupported. */
static int write_table(const struct nm_maps *maps, __u32 table_id,
		       const __u32 *table)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	__u32 m = maps->cfg.maglev_m, count = m, i;
	struct nm_maglev_key *keys;
	int err;

	keys = calloc(m, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (i = 0; i < m; i++)
		keys[i].index = table_id * m + i;
	err = bpf_map_update_batch(maps->maglev, keys, table, &count, &bopts);
	if (!err)
		goto out;
	pr_debug("batch update of %s failed (%s), writing per element",
		 NM_MAP_MAGLEV, strerror(errno));
	for (i = 0; i < m; i++) {
		struct nm_maglev_val v = { .backend_id = table[i] };

		err = bpf_map_update_elem(maps->maglev, &keys[i], &v, BPF_ANY);
		if (err) {
			err = -errno;
			pr_warn("failed to write table %u of map %s on %s: %s",
				table_id, NM_MAP_MAGLEV, maps->pin_root,
				strerror(-err));
			goto out;
		}
	}
out:
	free(keys);
	return err;
}

/* ---- id bitmaps --------------------------------------------------------- */

/* Lowest free id in O(ids / 4096): a bit per id, a bit per full word. */
struct idbits {
	__u64 *used; /* bit per id */
	__u64 *full; /* bit per word of used: all of its 64 ids taken */
	__u32 nbits, nwords, nfull;
};

#define WORD_BIT(i) (1ULL << ((i) % 64))

/* All free; bits past nbits taken for good, so never handed out. */
static void idbits_reset(struct idbits *b)
{
	__u32 i;

	memset(b->used, 0, b->nwords * sizeof(*b->used));
	memset(b->full, 0, b->nfull * sizeof(*b->full));
	for (i = b->nbits; i < b->nwords * 64; i++)
		b->used[i / 64] |= WORD_BIT(i);
	if (b->nwords && b->used[b->nwords - 1] == ~0ULL)
		b->full[(b->nwords - 1) / 64] |= WORD_BIT(b->nwords - 1);
	for (i = b->nwords; i < b->nfull * 64; i++)
		b->full[i / 64] |= WORD_BIT(i);
}

static int idbits_init(struct idbits *b, __u32 nbits)
{
	b->nbits = nbits;
	b->nwords = (nbits + 63) / 64;
	b->nfull = (b->nwords + 63) / 64;
	b->used = calloc(b->nwords ?: 1, sizeof(*b->used));
	if (!b->used)
		return -ENOMEM;
	b->full = calloc(b->nfull ?: 1, sizeof(*b->full));
	if (!b->full) {
		free(b->used);
		b->used = NULL;
		return -ENOMEM;
	}
	idbits_reset(b);
	return 0;
}

static void idbits_free(struct idbits *b)
{
	free(b->full);
	free(b->used);
	memset(b, 0, sizeof(*b));
}

/* Ids past the range are not ours to hand out: nothing to note. */
static void idbits_set(struct idbits *b, __u32 id)
{
	if (id >= b->nbits)
		return;
	b->used[id / 64] |= WORD_BIT(id);
	if (b->used[id / 64] == ~0ULL)
		b->full[id / 4096] |= WORD_BIT(id / 64);
}

static void idbits_clear(struct idbits *b, __u32 id)
{
	if (id >= b->nbits)
		return;
	b->used[id / 64] &= ~WORD_BIT(id);
	b->full[id / 4096] &= ~WORD_BIT(id / 64);
}

/* The lowest free id, or nbits when every one is taken. */
static __u32 idbits_first_free(const struct idbits *b)
{
	__u32 f, w;

	for (f = 0; f < b->nfull; f++) {
		if (b->full[f] == ~0ULL)
			continue;
		w = f * 64 + (__u32)__builtin_ctzll(~b->full[f]);
		return w * 64 + (__u32)__builtin_ctzll(~b->used[w]);
	}
	return b->nbits;
}

static bool idbits_equal(const struct idbits *a, const struct idbits *b)
{
	return a->nbits == b->nbits &&
	       !memcmp(a->used, b->used, a->nwords * sizeof(*a->used));
}

/* ---- the index ---------------------------------------------------------- */

/* Backends carrying one svc_id, whether or not that service exists. */
struct ix_svc {
	struct nm_svc_backend *be;
	__u32 n, cap;
};

struct nm_svc_index {
	bool valid; /* filled, and agrees with the maps as of cfg.svc_gen */
	struct nm_config_val cfg; /* read under the lock at the last use */
	__u32 services_max, backends_max, tables;
	struct idbits svcs; /* svc ids 0..services_max; 0 is never free */
	struct idbits tabs; /* Maglev tables 0..tables - 1 in use */
	struct idbits bes; /* backend ids 0..backends_max; 0 is never free */
	struct ix_svc *svc; /* by svc id, 0..services_max */
};

int nm_svc_index_new(const struct nm_maps *maps, struct nm_svc_index **out)
{
	struct nm_svc_index *ix;
	int err;

	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	ix->services_max = maps->cfg.services_max;
	ix->backends_max = maps->cfg.backends_max;
	ix->tables = maps->cfg.maglev_tables;
	err = idbits_init(&ix->svcs, ix->services_max + 1);
	if (err)
		goto err_free;
	err = idbits_init(&ix->tabs, ix->tables);
	if (err)
		goto err_svcs;
	err = idbits_init(&ix->bes, ix->backends_max + 1);
	if (err)
		goto err_tabs;
	ix->svc = calloc((size_t)ix->services_max + 1, sizeof(*ix->svc));
	if (!ix->svc) {
		err = -ENOMEM;
		goto err_bes;
	}
	*out = ix;
	return 0;

err_bes:
	idbits_free(&ix->bes);
err_tabs:
	idbits_free(&ix->tabs);
err_svcs:
	idbits_free(&ix->svcs);
err_free:
	free(ix);
	return err;
}

void nm_svc_index_free(struct nm_svc_index *ix)
{
	__u32 i;

	if (!ix)
		return;
	for (i = 0; i <= ix->services_max; i++)
		free(ix->svc[i].be);
	free(ix->svc);
	idbits_free(&ix->bes);
	idbits_free(&ix->tabs);
	idbits_free(&ix->svcs);
	free(ix);
}

/* Room for @need backends of @s, so later updates cannot fail. */
static int ix_reserve(struct ix_svc *s, size_t need)
{
	struct nm_svc_backend *be;
	size_t cap;

	if (need <= s->cap)
		return 0;
	cap = s->cap ? s->cap : 4;
	while (cap < need)
		cap *= 2;
	be = realloc(s->be, cap * sizeof(*be));
	if (!be)
		return -ENOMEM;
	s->be = be;
	s->cap = (__u32)cap;
	return 0;
}

/* Refill @ix from one scan of the maps; the caller holds the lock. */
static int ix_fill(const struct nm_maps *maps, struct nm_svc_index *ix)
{
	struct svc_ent *svcs = NULL;
	struct be_ent *bes = NULL;
	size_t n_svcs, n_bes, i;
	int err;

	idbits_reset(&ix->svcs);
	idbits_reset(&ix->tabs);
	idbits_reset(&ix->bes);
	idbits_set(&ix->svcs, 0);
	idbits_set(&ix->bes, 0);
	for (i = 0; i <= ix->services_max; i++)
		ix->svc[i].n = 0;

	err = scan_services(maps, &svcs, &n_svcs);
	if (err)
		return err;
	err = scan_backends(maps, &bes, &n_bes);
	if (err)
		goto out;
	for (i = 0; i < n_svcs; i++) {
		__u32 id = svcs[i].val.svc_id;

		/* Only this file writes ids, all within the pinned size. */
		if (!id || id > ix->services_max) {
			pr_warn("failed to read map %s on %s: a service has id %u, outside 1..%u",
				NM_MAP_SERVICES, maps->pin_root, id,
				ix->services_max);
			err = -ERANGE;
			goto out;
		}
		idbits_set(&ix->svcs, id);
		idbits_set(&ix->tabs, svcs[i].val.table_id);
	}
	for (i = 0; i < n_bes; i++) {
		__u32 sid = bes[i].val.svc_id;
		struct ix_svc *s;

		idbits_set(&ix->bes, bes[i].key.backend_id);
		/* No service can have that id: nothing will match it. */
		if (!sid || sid > ix->services_max)
			continue;
		s = &ix->svc[sid];
		err = ix_reserve(s, (size_t)s->n + 1);
		if (err)
			goto out;
		s->be[s->n].id = bes[i].key.backend_id;
		s->be[s->n].val = bes[i].val;
		s->n++;
	}
out:
	free(bes);
	free(svcs);
	return err;
}

/*
 * Make @ix agree with the maps, under the lock: a scan on first use, or
 * when another writer bumped svc_gen since we last did.
 */
static int ix_sync(const struct nm_maps *maps, struct nm_svc_index *ix)
{
	struct nm_config_val cfg;
	__u32 key = 0;
	int err;

	if (bpf_map_lookup_elem(maps->config, &key, &cfg)) {
		err = -errno;
		pr_warn("failed to read map %s on %s: %s", NM_MAP_CONFIG,
			maps->pin_root, strerror(-err));
		return err;
	}
	if (ix->valid && cfg.svc_gen == ix->cfg.svc_gen)
		return 0;
	ix->valid = false;
	ix->cfg = cfg;
	err = ix_fill(maps, ix);
	if (err)
		return err;
	ix->valid = true;
	return 0;
}

/* Before the first write: other writers' indexes must refill. */
static int ix_bump(const struct nm_maps *maps, struct nm_svc_index *ix)
{
	struct nm_config_val cfg = ix->cfg;
	__u32 key = 0;
	int err;

	cfg.svc_gen++;
	if (bpf_map_update_elem(maps->config, &key, &cfg, BPF_EXIST)) {
		err = -errno;
		pr_warn("failed to write map %s on %s: %s", NM_MAP_CONFIG,
			maps->pin_root, strerror(-err));
		return err;
	}
	ix->cfg = cfg;
	return 0;
}

static int svc_backend_id_cmp(const void *pa, const void *pb)
{
	const struct nm_svc_backend *a = pa, *b = pb;

	return a->id < b->id ? -1 : a->id > b->id;
}

/* Same backends (any order)? Sorts both lists. */
static bool ix_svc_equal(struct ix_svc *a, struct ix_svc *b)
{
	if (a->n != b->n)
		return false;
	qsort(a->be, a->n, sizeof(*a->be), svc_backend_id_cmp);
	qsort(b->be, b->n, sizeof(*b->be), svc_backend_id_cmp);
	return !a->n || !memcmp(a->be, b->be, a->n * sizeof(*a->be));
}

int nm_svc_index_check(struct nm_maps *maps, struct nm_svc_index *ix)
{
	struct nm_svc_index *fresh = NULL;
	struct nm_config_val cfg;
	const char *what = NULL;
	__u32 key = 0, i, bad = 0;
	int err;

	err = nm_svc_index_new(maps, &fresh);
	if (err)
		return err;
	err = nm_maps_lock(maps);
	if (err)
		goto out_free;
	if (bpf_map_lookup_elem(maps->config, &key, &cfg)) {
		err = -errno;
		pr_warn("failed to read map %s on %s: %s", NM_MAP_CONFIG,
			maps->pin_root, strerror(-err));
		goto out_unlock;
	}
	if (!ix->valid || cfg.svc_gen != ix->cfg.svc_gen) {
		err = -ESTALE;
		goto out_unlock;
	}
	err = ix_fill(maps, fresh);
	if (err)
		goto out_unlock;
	if (!idbits_equal(&ix->svcs, &fresh->svcs))
		what = "service ids";
	else if (!idbits_equal(&ix->tabs, &fresh->tabs))
		what = "Maglev tables";
	else if (!idbits_equal(&ix->bes, &fresh->bes))
		what = "backend ids";
	for (i = 1; !what && i <= ix->services_max; i++) {
		if (!ix_svc_equal(&ix->svc[i], &fresh->svc[i])) {
			what = "backends of service id";
			bad = i;
		}
	}
	if (what) {
		pr_warn("service index on %s differs from the maps: %s %u",
			maps->pin_root, what, bad);
		err = -EUCLEAN;
	}
out_unlock:
	nm_maps_unlock(maps);
out_free:
	nm_svc_index_free(fresh);
	return err;
}

/* ---- writers ------------------------------------------------------------ */

/* Per requested backend: its id and whether it existed (with old value). */
struct be_plan {
	__u32 id; /* 0 until given one */
	bool existed;
	struct nm_backend_val old;
	struct nm_backend_val val;
};

int nm_svc_upsert_idx(struct nm_maps *maps, struct nm_svc_index *idx,
		      const struct nm_frontend *fe,
		      const struct nm_backend_spec *be, size_t n, __u8 algo)
{
	struct nm_revnat_key rkey = {};
	struct nm_revnat_val rval = {};
	struct nm_svc_key key;
	struct nm_svc_val val = {}, old_val = {};
	struct nm_maglev_backend *active = NULL;
	struct nm_svc_index *ix = idx, *tmp = NULL;
	struct be_plan *plan = NULL;
	struct ix_svc *s = NULL;
	unsigned char *kept = NULL;
	__u32 *table = NULL;
	__u32 m = maps->cfg.maglev_m;
	__u32 svc_id = 0, table_id;
	size_t n_active = 0, written = 0, i, j;
	bool svc_exists = false, revnat_new = false, locked = false;
	bool bumped = false;
	char fes[NM_FRONTEND_STRLEN], a[32], b[32];
	int err;

	nm_frontend_str(fe, fes, sizeof(fes));
	nm_svc_key_from_frontend(fe, &key);

#define REFUSE(fmt, ...)                                                      \
	do {                                                                  \
		pr_warn("failed to upsert service %s on %s: " fmt, fes,       \
			maps->pin_root, ##__VA_ARGS__);                       \
		err = -EINVAL;                                                \
		goto out;                                                     \
	} while (0)

	/* Validate the request before touching anything. */
	if (!fe->port || (fe->proto != IPPROTO_TCP && fe->proto != IPPROTO_UDP))
		REFUSE("bad frontend: port must be 1..65535, protocol tcp or udp");
	if (algo != NM_LB_MAGLEV && algo != NM_LB_RANDOM)
		REFUSE("bad algorithm %u", algo);
	if (n > NM_SVC_BACKENDS_MAX || n > m)
		REFUSE("too many backends (%zu): at most %u with Maglev table size %u",
		       n, m < NM_SVC_BACKENDS_MAX ? m : NM_SVC_BACKENDS_MAX, m);
	for (i = 0; i < n; i++) {
		addr_port_str(be[i].addr, be[i].port, a, sizeof(a));
		if (!be[i].port || !be[i].weight || be[i].state > NM_BE_STATE_MAX)
			REFUSE("bad backend %s: port 1..65535, weight 1..65535, known state",
			       a);
		for (j = 0; j < i; j++)
			if (be[j].addr == be[i].addr && be[j].port == be[i].port)
				REFUSE("duplicate backend %s", a);
	}

	plan = calloc(n ?: 1, sizeof(*plan));
	active = calloc(n ?: 1, sizeof(*active));
	table = calloc(m, sizeof(*table));
	if (!plan || !active || !table) {
		err = -ENOMEM;
		goto out;
	}
	if (!ix) {
		err = nm_svc_index_new(maps, &tmp);
		if (err)
			goto out;
		ix = tmp;
	}

	err = nm_maps_lock(maps);
	if (err)
		goto out;
	locked = true;
	err = ix_sync(maps, ix);
	if (err)
		goto out;

	/* Service id: keep ours, else the lowest free one. */
	if (!bpf_map_lookup_elem(maps->services, &key, &old_val)) {
		svc_exists = true;
		svc_id = old_val.svc_id;
	} else if (errno != ENOENT) {
		err = -errno;
		pr_warn("failed to read service %s on %s: %s", fes,
			maps->pin_root, strerror(-err));
		goto out;
	}
	if (svc_exists && (!svc_id || svc_id > ix->services_max))
		REFUSE("it has id %u, outside 1..%u", svc_id, ix->services_max);
	if (!svc_exists) {
		svc_id = idbits_first_free(&ix->svcs);
		if (svc_id > ix->services_max)
			REFUSE("no free service id (%u services)",
			       ix->services_max);
	}
	table_id = idbits_first_free(&ix->tabs);
	if (table_id >= ix->tables)
		REFUSE("no free Maglev table (all %u in use)", ix->tables);
	s = &ix->svc[svc_id];
	/* Room for the new list now: after the writes nothing may fail. */
	err = ix_reserve(s, svc_exists ? n : (size_t)s->n + n);
	if (err)
		goto out;
	kept = calloc(s->n ?: 1, 1);
	if (!kept) {
		err = -ENOMEM;
		goto out;
	}

	/* Backend ids: same (addr, port, proto) of this service keeps its id. */
	for (i = 0; svc_exists && i < s->n; i++) {
		const struct nm_svc_backend *o = &s->be[i];

		for (j = 0; j < n; j++) {
			if (o->val.addr == be[j].addr &&
			    o->val.port == be[j].port &&
			    o->val.proto == fe->proto && !plan[j].existed) {
				plan[j].id = o->id;
				plan[j].existed = true;
				plan[j].old = o->val;
				kept[i] = 1;
				break;
			}
		}
	}
	for (j = 0; j < n; j++) {
		__u32 id;

		if (plan[j].existed)
			continue;
		id = idbits_first_free(&ix->bes);
		if (id > ix->backends_max)
			REFUSE("no free backend id (%u backends)",
			       ix->backends_max);
		plan[j].id = id;
		idbits_set(&ix->bes, id);
	}
	for (j = 0; j < n; j++) {
		struct nm_backend_val *v = &plan[j].val;

		memset(v, 0, sizeof(*v));
		v->addr = be[j].addr;
		v->port = be[j].port;
		v->proto = fe->proto;
		v->state = be[j].state;
		v->svc_id = svc_id;
		v->cluster_id = be[j].cluster_id;
		v->weight = be[j].weight;
		if (be[j].state != NM_BE_ACTIVE)
			continue;
		active[n_active].id = plan[j].id;
		active[n_active].addr = be[j].addr;
		active[n_active].port = be[j].port;
		active[n_active].proto = fe->proto;
		active[n_active].weight = be[j].weight;
		n_active++;
	}
	err = nm_maglev_build(active, n_active, m, table);
	if (err)
		REFUSE("cannot build Maglev table: %s", strerror(-err));

	err = ix_bump(maps, ix);
	if (err)
		goto out;
	bumped = true;

	/* (1) Backends: not reachable from any table until (4). */
	for (written = 0; written < n; written++) {
		struct nm_backend_key bkey = { .backend_id = plan[written].id };

		err = bpf_map_update_elem(maps->backends, &bkey,
					  &plan[written].val, BPF_ANY);
		if (err) {
			err = -errno;
			addr_port_str(be[written].addr, be[written].port, b,
				      sizeof(b));
			pr_warn("failed to write backend %u (%s) of %s on %s: %s",
				plan[written].id, b, fes, maps->pin_root,
				strerror(-err));
			goto out_rollback;
		}
	}
	/* (2) The new table into a spare slot nobody reads. */
	err = write_table(maps, table_id, table);
	if (err)
		goto out_rollback;
	/* (3) rev-NAT before any flow can be DNATed with this id. */
	rkey.rev_nat_id = svc_id;
	rval.vip = fe->vip;
	rval.port = fe->port;
	revnat_new = !svc_exists;
	err = bpf_map_update_elem(maps->revnat, &rkey, &rval, BPF_ANY);
	if (err) {
		err = -errno;
		pr_warn("failed to write rev-NAT %u of %s on %s: %s", svc_id,
			fes, maps->pin_root, strerror(-err));
		goto out_rollback;
	}
	/* (4) The switch: one atomic value update. */
	val.svc_id = svc_id;
	val.table_id = table_id;
	val.backend_count = (__u16)n_active;
	val.algo = algo;
	val.flags = NM_SVC_F_NONE;
	err = bpf_map_update_elem(maps->services, &key, &val, BPF_ANY);
	if (err) {
		err = -errno;
		pr_warn("failed to write service %s on %s: %s", fes,
			maps->pin_root, strerror(-err));
		goto out_rollback;
	}
	/* (5) Backends that left: their flows reselect in the datapath. */
	for (i = 0; svc_exists && i < s->n; i++) {
		struct nm_backend_key bkey = { .backend_id = s->be[i].id };

		if (kept[i])
			continue;
		if (bpf_map_delete_elem(maps->backends, &bkey) && errno != ENOENT) {
			err = -errno;
			pr_warn("failed to delete backend %u of %s on %s: %s",
				bkey.backend_id, fes, maps->pin_root,
				strerror(-err));
			goto out;
		}
		idbits_clear(&ix->bes, bkey.backend_id);
	}
	/* The index follows: new ids are already taken in it. */
	idbits_set(&ix->svcs, svc_id);
	idbits_set(&ix->tabs, table_id);
	if (svc_exists)
		idbits_clear(&ix->tabs, old_val.table_id);
	/* A new service keeps backends an earlier owner of its id left. */
	if (svc_exists)
		s->n = 0;
	for (j = 0; j < n; j++) {
		s->be[s->n].id = plan[j].id;
		s->be[s->n].val = plan[j].val;
		s->n++;
	}
	pr_info("upserted service %s: id %u, table %u, %zu/%zu backends active",
		fes, svc_id, table_id, n_active, n);
	err = 0;
	goto out;

out_rollback:
	/* The service entry was not switched: undo what we wrote. */
	if (revnat_new && bpf_map_delete_elem(maps->revnat, &rkey) &&
	    errno != ENOENT)
		pr_warn("failed to roll back rev-NAT %u of %s on %s: %s", svc_id,
			fes, maps->pin_root, strerror(errno));
	while (written--) {
		struct nm_backend_key bkey = { .backend_id = plan[written].id };
		int rerr;

		if (plan[written].existed)
			rerr = bpf_map_update_elem(maps->backends, &bkey,
						   &plan[written].old, BPF_ANY);
		else
			rerr = bpf_map_delete_elem(maps->backends, &bkey);
		if (rerr)
			pr_warn("failed to roll back backend %u of %s on %s: %s",
				bkey.backend_id, fes, maps->pin_root,
				strerror(errno));
	}
out:
#undef REFUSE
	if (err && bumped) {
		/* A rollback may have failed too: rescan next time. */
		ix->valid = false;
	} else if (err && ix && plan) {
		/* Nothing written: give back the ids taken for this call. */
		for (j = 0; j < n; j++)
			if (!plan[j].existed && plan[j].id)
				idbits_clear(&ix->bes, plan[j].id);
	}
	if (locked)
		nm_maps_unlock(maps);
	nm_svc_index_free(tmp);
	free(kept);
	free(table);
	free(active);
	free(plan);
	return err;
}

int nm_svc_upsert(struct nm_maps *maps, const struct nm_frontend *fe,
		  const struct nm_backend_spec *be, size_t n, __u8 algo)
{
	return nm_svc_upsert_idx(maps, NULL, fe, be, n, algo);
}

int nm_svc_delete_idx(struct nm_maps *maps, struct nm_svc_index *idx,
		      const struct nm_frontend *fe)
{
	struct nm_revnat_key rkey = {};
	struct nm_svc_index *ix = idx, *tmp = NULL;
	struct nm_svc_key key;
	struct nm_svc_val val = {};
	struct ix_svc *s;
	char fes[NM_FRONTEND_STRLEN];
	__u32 i;
	int err;

	nm_frontend_str(fe, fes, sizeof(fes));
	nm_svc_key_from_frontend(fe, &key);

	if (!ix) {
		err = nm_svc_index_new(maps, &tmp);
		if (err)
			return err;
		ix = tmp;
	}
	err = nm_maps_lock(maps);
	if (err)
		goto out_free;
	err = ix_sync(maps, ix);
	if (err)
		goto out_unlock;
	if (bpf_map_lookup_elem(maps->services, &key, &val)) {
		err = -errno;
		pr_warn("failed to delete service %s on %s: %s", fes,
			maps->pin_root,
			err == -ENOENT ? "no such service" : strerror(-err));
		goto out_unlock;
	}
	if (!val.svc_id || val.svc_id > ix->services_max) {
		pr_warn("failed to delete service %s on %s: it has id %u, outside 1..%u",
			fes, maps->pin_root, val.svc_id, ix->services_max);
		err = -ERANGE;
		goto out_unlock;
	}
	s = &ix->svc[val.svc_id];
	err = ix_bump(maps, ix);
	if (err)
		goto out_unlock;
	/* Service entry first: no new flow can pick a backend after this. */
	if (bpf_map_delete_elem(maps->services, &key)) {
		err = -errno;
		pr_warn("failed to delete service %s on %s: %s", fes,
			maps->pin_root, strerror(-err));
		goto out_stale;
	}
	for (i = 0; i < s->n; i++) {
		struct nm_backend_key bkey = { .backend_id = s->be[i].id };

		if (bpf_map_delete_elem(maps->backends, &bkey) &&
		    errno != ENOENT) {
			err = -errno;
			pr_warn("failed to delete backend %u of %s on %s: %s",
				bkey.backend_id, fes, maps->pin_root,
				strerror(-err));
			goto out_stale;
		}
	}
	rkey.rev_nat_id = val.svc_id;
	if (bpf_map_delete_elem(maps->revnat, &rkey) && errno != ENOENT) {
		err = -errno;
		pr_warn("failed to delete rev-NAT %u of %s on %s: %s",
			val.svc_id, fes, maps->pin_root, strerror(-err));
		goto out_stale;
	}
	idbits_clear(&ix->svcs, val.svc_id);
	idbits_clear(&ix->tabs, val.table_id);
	for (i = 0; i < s->n; i++)
		idbits_clear(&ix->bes, s->be[i].id);
	s->n = 0;
	pr_info("deleted service %s (id %u)", fes, val.svc_id);
	goto out_unlock;

out_stale:
	/* Half deleted: rescan next time. */
	ix->valid = false;
out_unlock:
	nm_maps_unlock(maps);
out_free:
	nm_svc_index_free(tmp);
	return err;
}

int nm_svc_delete(struct nm_maps *maps, const struct nm_frontend *fe)
{
	return nm_svc_delete_idx(maps, NULL, fe);
}

static int svc_info_cmp(const void *pa, const void *pb)
{
	const struct nm_svc_info *a = pa, *b = pb;

	return a->val.svc_id < b->val.svc_id ? -1 : a->val.svc_id > b->val.svc_id;
}

static int svc_backend_cmp(const void *pa, const void *pb)
{
	const struct nm_svc_backend *a = pa, *b = pb;

	if (a->val.svc_id != b->val.svc_id)
		return a->val.svc_id < b->val.svc_id ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

int nm_svc_list(const struct nm_maps *maps, struct nm_svc_list *out)
{
	struct svc_ent *svcs = NULL;
	struct be_ent *bes = NULL;
	size_t n_svcs, n_bes, i, j;
	int err;

	memset(out, 0, sizeof(*out));
	err = scan_services(maps, &svcs, &n_svcs);
	if (err)
		return err;
	err = scan_backends(maps, &bes, &n_bes);
	if (err)
		goto out;
	out->svcs = calloc(n_svcs ?: 1, sizeof(*out->svcs));
	out->backends = calloc(n_bes ?: 1, sizeof(*out->backends));
	if (!out->svcs || !out->backends) {
		err = -ENOMEM;
		goto err_list;
	}
	for (i = 0; i < n_bes; i++) {
		out->backends[i].id = bes[i].key.backend_id;
		out->backends[i].val = bes[i].val;
	}
	out->n_backends = n_bes;
	qsort(out->backends, n_bes, sizeof(*out->backends), svc_backend_cmp);

	for (i = 0; i < n_svcs; i++) {
		struct nm_svc_info *s = &out->svcs[i];
		struct nm_revnat_key rkey = { .rev_nat_id = svcs[i].val.svc_id };

		s->fe.vip = svcs[i].key.vip;
		s->fe.port = svcs[i].key.dport;
		s->fe.proto = svcs[i].key.proto;
		s->val = svcs[i].val;
		if (!bpf_map_lookup_elem(maps->revnat, &rkey, &s->revnat)) {
			s->has_revnat = true;
		} else if (errno != ENOENT) {
			err = -errno;
			pr_warn("failed to read map %s on %s: %s", NM_MAP_REVNAT,
				maps->pin_root, strerror(-err));
			goto err_list;
		}
		for (j = 0; j < n_bes && out->backends[j].val.svc_id != s->val.svc_id;
		     j++)
			;
		s->backends = &out->backends[j];
		for (; j < n_bes && out->backends[j].val.svc_id == s->val.svc_id;
		     j++)
			s->n_backends++;
	}
	out->n = n_svcs;
	qsort(out->svcs, n_svcs, sizeof(*out->svcs), svc_info_cmp);
	err = 0;
	goto out;

err_list:
	nm_svc_list_free(out);
out:
	free(bes);
	free(svcs);
	return err;
}

void nm_svc_list_free(struct nm_svc_list *list)
{
	free(list->svcs);
	free(list->backends);
	memset(list, 0, sizeof(*list));
}
