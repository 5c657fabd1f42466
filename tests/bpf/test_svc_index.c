// SPDX-License-Identifier: GPL-2.0
/*
 * The service index (struct nm_svc_index) against the pinned maps: sizes
 * from the loader (--services-max, --backends-max), 2,000 random upserts
 * and deletes through one index that must stay equal to a fresh scan, the
 * same ids as the scanning path, and writes by another writer (no index)
 * noticed through svc_gen. Pins under /sys/fs/bpf/nm-test-idx-<pid>,
 * removed at exit, also on a crash. Needs root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>

#include "agent/loader.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "agent/svc.h"
#include "tests/lib/pins.h"
#include "tests/lib/test.h"

#define TEST_M 31
#define TEST_TABLES 66 /* never the limit: services run out first */
#define TEST_SERVICES 48
#define TEST_BACKENDS 192
#define N_FRONTENDS 64 /* more than TEST_SERVICES: some find no id */
#define N_ADDRS 16
#define N_OPS 2000

static struct nm_datapath *dp;
static struct nm_maps maps;
static bool maps_open;

static int load(__u32 services, __u32 backends, struct nm_datapath **out)
{
	struct nm_load_opts opts = {
		.pin_root = nm_test_pin_root,
		.maglev_m = TEST_M,
		.maglev_tables = TEST_TABLES,
		.ct_max = 1024,
		.services_max = services,
		.backends_max = backends,
	};

	return nm_datapath_load(&opts, out);
}

static __u32 max_entries(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.max_entries;
}

/* Frontend i: 10.96.0.(i/2 + 1):80, tcp for even i, udp for odd. */
static struct nm_frontend frontend(unsigned int i)
{
	struct nm_frontend f = {
		.vip = htonl(0x0a600000 | (i / 2 + 1)),
		.port = htons(80),
		.proto = i % 2 ? IPPROTO_UDP : IPPROTO_TCP,
	};

	return f;
}

/* xorshift32: the same sequence on every run. */
static __u32 rnd(__u32 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* 0..8 distinct backends out of N_ADDRS, random weights and states. */
static size_t random_backends(__u32 *seed, struct nm_backend_spec *be)
{
	size_t n = rnd(seed) % 9, i, j;

	for (i = 0; i < n; i++) {
		do {
			be[i].addr = htonl(0x0a000100 |
					   (rnd(seed) % N_ADDRS + 1));
			be[i].port = htons(8080);
			for (j = 0; j < i && be[j].addr != be[i].addr; j++)
				;
		} while (j < i);
		be[i].weight = (__u16)(rnd(seed) % 3 + 1);
		be[i].state = rnd(seed) % 5 ? NM_BE_ACTIVE : NM_BE_TERMINATING;
		be[i].cluster_id = (__u16)(rnd(seed) % 3);
	}
	return n;
}

static bool get_svc(const struct nm_frontend *f, struct nm_svc_val *val)
{
	struct nm_svc_key key;

	nm_svc_key_from_frontend(f, &key);
	memset(val, 0, sizeof(*val));
	return !bpf_map_lookup_elem(maps.services, &key, val);
}

/* Sum and count of the backend ids of @svc_id: equal sets, equal sums. */
static __u64 backend_ids(__u32 svc_id)
{
	struct nm_backend_key key = {}, next = {};
	struct nm_backend_val v;
	bool first = true;
	__u64 sum = 0, n = 0;

	while (!bpf_map_get_next_key(maps.backends, first ? NULL : &key,
				     &next)) {
		key = next;
		first = false;
		if (!bpf_map_lookup_elem(maps.backends, &key, &v) &&
		    v.svc_id == svc_id) {
			sum += key.backend_id;
			n++;
		}
	}
	return sum | n << 40;
}

static void test_load_sizes(void)
{
	struct nm_datapath *dp2 = NULL;

	if (!ASSERT_OK(load(TEST_SERVICES, TEST_BACKENDS, &dp), "first load"))
		return;
	if (!ASSERT_OK(nm_maps_open(nm_test_pin_root, &maps),
		       "open pinned maps"))
		return;
	maps_open = true;
	ASSERT_EQ(maps.cfg.services_max, TEST_SERVICES, "config services");
	ASSERT_EQ(maps.cfg.backends_max, TEST_BACKENDS, "config backends");
	ASSERT_EQ(maps.cfg.ct_max, 1024, "config conntrack");
	ASSERT_EQ(max_entries(maps.services), TEST_SERVICES, "services size");
	ASSERT_EQ(max_entries(maps.revnat), TEST_SERVICES, "rev-NAT size");
	ASSERT_EQ(max_entries(maps.backends), TEST_BACKENDS, "backends size");

	ASSERT_EQ(load(TEST_SERVICES + 1, TEST_BACKENDS, &dp2), -EINVAL,
		  "other services max refused");
	ASSERT_EQ(load(TEST_SERVICES, TEST_BACKENDS * 2, &dp2), -EINVAL,
		  "other backends max refused");
	if (ASSERT_OK(load(0, 0, &dp2), "sizes from the pins")) {
		ASSERT_EQ(dp2->cfg.services_max, TEST_SERVICES,
			  "services max inherited");
		ASSERT_EQ(dp2->cfg.backends_max, TEST_BACKENDS,
			  "backends max inherited");
	}
	nm_datapath_close(dp2);
}

/*
 * Upsert @f through @ix, note its ids, delete it, then the same through
 * the scanning path: both must pick the same svc id, table and backends.
 */
static bool same_ids_as_scan(struct nm_svc_index *ix,
			     const struct nm_frontend *f,
			     const struct nm_backend_spec *be, size_t n)
{
	struct nm_svc_val a, b;
	__u64 ids_a, ids_b;
	int err;

	err = nm_svc_upsert_idx(&maps, ix, f, be, n, NM_LB_MAGLEV);
	if (err == -EINVAL)
		return true; /* out of ids: nothing to compare */
	if (!ASSERT_OK(err, "upsert through the index") ||
	    !ASSERT_TRUE(get_svc(f, &a), "service there"))
		return false;
	ids_a = backend_ids(a.svc_id);
	if (!ASSERT_OK(nm_svc_delete_idx(&maps, ix, f),
		       "delete through the index") ||
	    !ASSERT_OK(nm_svc_upsert(&maps, f, be, n, NM_LB_MAGLEV),
		       "upsert scanning") ||
	    !ASSERT_TRUE(get_svc(f, &b), "service there again"))
		return false;
	ids_b = backend_ids(b.svc_id);
	return ASSERT_EQ(a.svc_id, b.svc_id, "same svc id") &&
	       ASSERT_EQ(a.table_id, b.table_id, "same table") &&
	       ASSERT_EQ(ids_a, ids_b, "same backend ids") &&
	       ASSERT_OK(nm_svc_delete(&maps, f), "delete scanning");
}

static void test_random_ops_match_scan(void)
{
	struct nm_backend_spec be[8];
	struct nm_svc_index *ix = NULL;
	unsigned int ok_up = 0, ok_del = 0, refused = 0, absent = 0, op;
	__u32 seed = 0x6e6d6978;
	int err;

	if (!maps_open) {
		nm_test_skip("maps not open");
		return;
	}
	if (!ASSERT_OK(nm_svc_index_new(&maps, &ix), "new index"))
		return;
	for (op = 0; op < N_OPS; op++) {
		unsigned int fi = rnd(&seed) % N_FRONTENDS;
		struct nm_frontend f = frontend(fi);
		size_t n = random_backends(&seed, be);

		if (op % 50 == 49) {
			struct nm_svc_val v;

			/* A frontend not programmed now, if this one is. */
			if (get_svc(&f, &v))
				continue;
			if (!same_ids_as_scan(ix, &f, be, n))
				break;
			continue;
		}
		if (rnd(&seed) % 10 < 7) {
			err = nm_svc_upsert_idx(&maps, ix, &f, be, n,
						NM_LB_MAGLEV);
			if (err == -EINVAL)
				refused++; /* out of svc or backend ids */
			else if (!ASSERT_OK(err, "upsert"))
				break;
			else
				ok_up++;
		} else {
			err = nm_svc_delete_idx(&maps, ix, &f);
			if (err == -ENOENT)
				absent++;
			else if (!ASSERT_OK(err, "delete"))
				break;
			else
				ok_del++;
		}
		/* After scanning writes too: the index refills first. */
		err = nm_svc_index_check(&maps, ix);
		if (!ASSERT_OK(err, "index == scan")) {
			printf("# after op %u\n", op);
			break;
		}
	}
	printf("# %u upserts, %u deletes, %u refused for ids, %u deletes of nothing\n",
	       ok_up, ok_del, refused, absent);
	ASSERT_GT(ok_up, 1000, "upserts done");
	ASSERT_GT(ok_del, 200, "deletes done");
	ASSERT_GT(refused, 0, "capacity reached");
	nm_svc_index_free(ix);
}

static void test_other_writer_noticed(void)
{
	struct nm_frontend f1 = frontend(N_FRONTENDS + 2);
	struct nm_frontend f2 = frontend(N_FRONTENDS + 4);
	struct nm_backend_spec be = { .addr = htonl(0x0a000201),
				      .port = htons(80),
				      .weight = 1 };
	struct nm_svc_index *ix = NULL;
	struct nm_svc_val v1, v2;
	unsigned int i;

	if (!maps_open) {
		nm_test_skip("maps not open");
		return;
	}
	/* Room for two more services. */
	for (i = 0; i < N_FRONTENDS; i++) {
		struct nm_frontend f = frontend(i);
		int err = nm_svc_delete(&maps, &f);

		if (err != -ENOENT && !ASSERT_OK(err, "clear"))
			return;
	}
	if (!ASSERT_OK(nm_svc_index_new(&maps, &ix), "new index"))
		return;
	ASSERT_EQ(nm_svc_index_check(&maps, ix), -ESTALE, "empty until used");
	if (!ASSERT_OK(nm_svc_upsert_idx(&maps, ix, &f1, &be, 1, NM_LB_MAGLEV),
		       "upsert through the index"))
		goto out;
	ASSERT_OK(nm_svc_index_check(&maps, ix), "index == scan");
	/* nodemeshctl, say: takes the lowest free ids behind our back. */
	if (!ASSERT_OK(nm_svc_upsert(&maps, &f2, &be, 1, NM_LB_MAGLEV),
		       "upsert elsewhere"))
		goto out;
	ASSERT_EQ(nm_svc_index_check(&maps, ix), -ESTALE,
		  "index knows it is behind");
	/* The next write refills first, so it cannot reuse f2's ids. */
	if (!ASSERT_OK(nm_svc_upsert_idx(&maps, ix, &f1, &be, 1, NM_LB_MAGLEV),
		       "update through the index"))
		goto out;
	ASSERT_OK(nm_svc_index_check(&maps, ix), "index == scan again");
	if (ASSERT_TRUE(get_svc(&f1, &v1), "f1") &&
	    ASSERT_TRUE(get_svc(&f2, &v2), "f2")) {
		ASSERT_NEQ(v1.svc_id, v2.svc_id, "distinct svc ids");
		ASSERT_NEQ(v1.table_id, v2.table_id, "distinct tables");
		ASSERT_NEQ(backend_ids(v1.svc_id), backend_ids(v2.svc_id),
			   "distinct backend ids");
	}
	ASSERT_OK(nm_svc_delete_idx(&maps, ix, &f2), "delete f2");
	ASSERT_OK(nm_svc_delete_idx(&maps, ix, &f1), "delete f1");
	ASSERT_OK(nm_svc_index_check(&maps, ix), "index == scan at the end");
out:
	nm_svc_index_free(ix);
}

int main(void)
{
	static const struct nm_test tests[] = {
		NM_TEST(test_load_sizes),
		NM_TEST(test_random_ops_match_scan),
		NM_TEST(test_other_writer_noticed),
	};
	int failed;

	nm_log_set_ident("test_svc_index");
	nm_log_init_libbpf();
	nm_test_pins_setup("nm-test-idx", NULL);
	failed = NM_TEST_RUN(tests);
	if (maps_open)
		nm_maps_close(&maps);
	nm_datapath_close(dp);
	nm_test_pins_cleanup();
	return failed ? 1 : 0;
}
