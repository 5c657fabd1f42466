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
			sizeof(struct nm_svc_val), NM_SERVICES_MAX,
			(void **)out, n, NM_MAP_SERVICES, maps->pin_root);
}

static int scan_backends(const struct nm_maps *maps, struct be_ent **out,
			 size_t *n)
{
	return scan_map(maps->backends, sizeof(struct nm_backend_key),
			sizeof(struct nm_backend_val), NM_BACKENDS_MAX,
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

/* Per requested backend: its id and whether it existed (with old value). */
struct be_plan {
	__u32 id;
	bool existed;
	struct nm_backend_val old;
	struct nm_backend_val val;
};

#define BITMAP_BITS (NM_BACKENDS_MAX + 2)
#define BIT_SET(b, i) ((b)[(i) / 8] |= (unsigned char)(1U << ((i) % 8)))
#define BIT_TEST(b, i) ((b)[(i) / 8] & (1U << ((i) % 8)))

int nm_svc_upsert(struct nm_maps *maps, const struct nm_frontend *fe,
		  const struct nm_backend_spec *be, size_t n, __u8 algo)
{
	struct nm_revnat_key rkey = {};
	struct nm_revnat_val rval = {};
	struct nm_svc_key key;
	struct nm_svc_val val = {};
	struct nm_maglev_backend *active = NULL;
	struct svc_ent *svcs = NULL;
	struct be_ent *bes = NULL;
	struct be_plan *plan = NULL;
	unsigned char *used_be = NULL, *used_tab = NULL;
	__u32 *table = NULL;
	__u32 m = maps->cfg.maglev_m, tables = maps->cfg.maglev_tables;
	__u32 svc_id = 0, table_id, next_id = 1;
	size_t n_svcs, n_bes, n_active = 0, written = 0, i, j;
	bool svc_exists = false, revnat_new = false, locked = false;
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
		if (!be[i].port || !be[i].weight || be[i].state > NM_BE_QUARANTINED)
			REFUSE("bad backend %s: port 1..65535, weight 1..65535, known state",
			       a);
		for (j = 0; j < i; j++)
			if (be[j].addr == be[i].addr && be[j].port == be[i].port)
				REFUSE("duplicate backend %s", a);
	}

	plan = calloc(n ?: 1, sizeof(*plan));
	active = calloc(n ?: 1, sizeof(*active));
	table = calloc(m, sizeof(*table));
	used_be = calloc(BITMAP_BITS / 8 + 1, 1);
	used_tab = calloc(tables / 8 + 1, 1);
	if (!plan || !active || !table || !used_be || !used_tab) {
		err = -ENOMEM;
		goto out;
	}

	err = nm_maps_lock(maps);
	if (err)
		goto out;
	locked = true;

	/* Service id: keep ours, else the lowest free one. Note live tables. */
	err = scan_services(maps, &svcs, &n_svcs);
	if (err)
		goto out;
	for (i = 0; i < n_svcs; i++) {
		if (!memcmp(&svcs[i].key, &key, sizeof(key))) {
			svc_exists = true;
			svc_id = svcs[i].val.svc_id;
		}
		if (svcs[i].val.table_id < tables)
			BIT_SET(used_tab, svcs[i].val.table_id);
	}
	for (__u32 id = 1; !svc_id && id <= NM_SERVICES_MAX; id++) {
		for (i = 0; i < n_svcs && svcs[i].val.svc_id != id; i++)
			;
		if (i == n_svcs)
			svc_id = id;
	}
	if (!svc_id)
		REFUSE("no free service id (%u services)", NM_SERVICES_MAX);
	for (table_id = 0; table_id < tables && BIT_TEST(used_tab, table_id);
	     table_id++)
		;
	if (table_id == tables)
		REFUSE("no free Maglev table (all %u in use)", tables);

	/* Backend ids: same (addr, port, proto) of this service keeps its id. */
	err = scan_backends(maps, &bes, &n_bes);
	if (err)
		goto out;
	for (i = 0; i < n_bes; i++) {
		if (bes[i].key.backend_id < BITMAP_BITS)
			BIT_SET(used_be, bes[i].key.backend_id);
		if (bes[i].val.svc_id != svc_id || !svc_exists)
			continue;
		for (j = 0; j < n; j++) {
			if (bes[i].val.addr == be[j].addr &&
			    bes[i].val.port == be[j].port &&
			    bes[i].val.proto == fe->proto && !plan[j].existed) {
				plan[j].id = bes[i].key.backend_id;
				plan[j].existed = true;
				plan[j].old = bes[i].val;
				break;
			}
		}
	}
	for (j = 0; j < n; j++) {
		if (plan[j].existed)
			continue;
		while (next_id < BITMAP_BITS && BIT_TEST(used_be, next_id))
			next_id++;
		if (next_id > NM_BACKENDS_MAX)
			REFUSE("no free backend id (%u backends)", NM_BACKENDS_MAX);
		plan[j].id = next_id;
		BIT_SET(used_be, next_id);
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
	for (i = 0; i < n_bes; i++) {
		struct nm_backend_key bkey = { .backend_id = bes[i].key.backend_id };

		if (!svc_exists || bes[i].val.svc_id != svc_id)
			continue;
		for (j = 0; j < n && plan[j].id != bkey.backend_id; j++)
			;
		if (j < n)
			continue;
		if (bpf_map_delete_elem(maps->backends, &bkey) && errno != ENOENT) {
			err = -errno;
			pr_warn("failed to delete backend %u of %s on %s: %s",
				bkey.backend_id, fes, maps->pin_root,
				strerror(-err));
			goto out;
		}
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
	if (locked)
		nm_maps_unlock(maps);
	free(bes);
	free(svcs);
	free(used_tab);
	free(used_be);
	free(table);
	free(active);
	free(plan);
	return err;
}

int nm_svc_delete(struct nm_maps *maps, const struct nm_frontend *fe)
{
	struct nm_revnat_key rkey = {};
	struct nm_svc_key key;
	struct nm_svc_val val = {};
	struct be_ent *bes = NULL;
	char fes[NM_FRONTEND_STRLEN];
	size_t n_bes, i;
	int err;

	nm_frontend_str(fe, fes, sizeof(fes));
	nm_svc_key_from_frontend(fe, &key);

	err = nm_maps_lock(maps);
	if (err)
		return err;
	if (bpf_map_lookup_elem(maps->services, &key, &val)) {
		err = -errno;
		pr_warn("failed to delete service %s on %s: %s", fes,
			maps->pin_root,
			err == -ENOENT ? "no such service" : strerror(-err));
		goto out_unlock;
	}
	/* Service entry first: no new flow can pick a backend after this. */
	if (bpf_map_delete_elem(maps->services, &key)) {
		err = -errno;
		pr_warn("failed to delete service %s on %s: %s", fes,
			maps->pin_root, strerror(-err));
		goto out_unlock;
	}
	err = scan_backends(maps, &bes, &n_bes);
	if (err)
		goto out_unlock;
	for (i = 0; i < n_bes; i++) {
		if (bes[i].val.svc_id != val.svc_id)
			continue;
		if (bpf_map_delete_elem(maps->backends, &bes[i].key) &&
		    errno != ENOENT) {
			err = -errno;
			pr_warn("failed to delete backend %u of %s on %s: %s",
				bes[i].key.backend_id, fes, maps->pin_root,
				strerror(-err));
			goto out_free;
		}
	}
	rkey.rev_nat_id = val.svc_id;
	if (bpf_map_delete_elem(maps->revnat, &rkey) && errno != ENOENT) {
		err = -errno;
		pr_warn("failed to delete rev-NAT %u of %s on %s: %s",
			val.svc_id, fes, maps->pin_root, strerror(-err));
		goto out_free;
	}
	pr_info("deleted service %s (id %u)", fes, val.svc_id);
out_free:
	free(bes);
out_unlock:
	nm_maps_unlock(maps);
	return err;
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
