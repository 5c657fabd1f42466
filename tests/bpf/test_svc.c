// SPDX-License-Identifier: GPL-2.0
/*
 * Service programming on real pinned maps: the loader pins under a
 * per-test root (/sys/fs/bpf/nm-test-<pid>, removed at exit, also on a
 * crash), nm_svc_* writes, the test reads the maps back. Needs root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
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
#include "agent/maglev.h"
#include "agent/parse.h"
#include "agent/svc.h"
#include "maps/ct.h"
#include "tests/lib/pins.h"
#include "tests/lib/test.h"

#define TEST_M 1021
#define TEST_TABLES 4

static struct nm_datapath *dp;
static struct nm_maps maps;
static bool maps_open;

static int load(__u32 m, __u32 tables, struct nm_datapath **out)
{
	struct nm_load_opts opts = {
		.pin_root = nm_test_pin_root,
		.maglev_m = m,
		.maglev_tables = tables,
		.ct_max = 4096,
	};

	return nm_datapath_load(&opts, out);
}

static struct nm_frontend fe(const char *s)
{
	struct nm_frontend f = {};
	char err[128];

	if (nm_parse_frontend(s, &f, err, sizeof(err)))
		printf("# bad frontend in test: %s\n", err);
	return f;
}

static struct nm_backend_spec be(const char *s)
{
	struct nm_backend_spec b = {};
	char err[128];

	if (nm_parse_backend(s, &b, err, sizeof(err)))
		printf("# bad backend in test: %s\n", err);
	return b;
}

static bool get_svc(const char *f, struct nm_svc_val *val)
{
	struct nm_frontend x = fe(f);
	struct nm_svc_key key;

	nm_svc_key_from_frontend(&x, &key);
	memset(val, 0, sizeof(*val));
	return !bpf_map_lookup_elem(maps.services, &key, val);
}

static bool get_backend(__u32 id, struct nm_backend_val *val)
{
	struct nm_backend_key key = { .backend_id = id };

	memset(val, 0, sizeof(*val));
	return !bpf_map_lookup_elem(maps.backends, &key, val);
}

/* Backend id of (addr, port) of @svc_id in nm_backends_v1, 0 if none. */
static __u32 find_backend(__u32 svc_id, const char *spec)
{
	struct nm_backend_key key = {}, next = {};
	struct nm_backend_spec b = be(spec);
	struct nm_backend_val v;
	bool first = true;

	while (!bpf_map_get_next_key(maps.backends, first ? NULL : &key, &next)) {
		key = next;
		first = false;
		if (bpf_map_lookup_elem(maps.backends, &key, &v))
			continue;
		if (v.svc_id == svc_id && v.addr == b.addr && v.port == b.port)
			return key.backend_id;
	}
	return 0;
}

static __u32 count_backends(__u32 svc_id)
{
	struct nm_backend_key key = {}, next = {};
	struct nm_backend_val v;
	bool first = true;
	__u32 n = 0;

	while (!bpf_map_get_next_key(maps.backends, first ? NULL : &key, &next)) {
		key = next;
		first = false;
		if (!bpf_map_lookup_elem(maps.backends, &key, &v) &&
		    v.svc_id == svc_id)
			n++;
	}
	return n;
}

/* The live table must equal what the builder makes of the active set. */
static bool table_matches(__u32 table_id, const __u32 *ids,
			  const char *const *specs, size_t n)
{
	struct nm_maglev_backend mb[8] = {};
	__u32 want[TEST_M], got[TEST_M], i;
	size_t j;

	for (j = 0; j < n; j++) {
		struct nm_backend_spec b = be(specs[j]);

		mb[j].id = ids[j];
		mb[j].addr = b.addr;
		mb[j].port = b.port;
		mb[j].proto = IPPROTO_TCP;
		mb[j].weight = b.weight;
	}
	if (!ASSERT_OK(nm_maglev_build(mb, n, TEST_M, want), "build table"))
		return false;
	for (i = 0; i < TEST_M; i++) {
		struct nm_maglev_key key = { .index = table_id * TEST_M + i };
		struct nm_maglev_val v;

		if (!ASSERT_OK(bpf_map_lookup_elem(maps.maglev, &key, &v),
			       "read slot"))
			return false;
		got[i] = v.backend_id;
	}
	return ASSERT_EQ(nm_maglev_diff(want, got, TEST_M), 0,
			 "slots differing from the builder");
}

/* Order-independent digest of a whole map: count and sum of entry hashes. */
static __u64 map_digest(int fd, size_t ksz, size_t vsz)
{
	unsigned char key[64] = {}, next[64] = {}, kv[128];
	bool first = true;
	__u64 d = 0, n = 0;

	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		memcpy(key, next, ksz);
		first = false;
		memcpy(kv, key, ksz);
		if (bpf_map_lookup_elem(fd, key, kv + ksz))
			continue;
		d += nm_hash64(kv, ksz + vsz, 1);
		n++;
	}
	return d ^ (n << 48);
}

static __u64 all_digest(void)
{
	return map_digest(maps.services, sizeof(struct nm_svc_key),
			  sizeof(struct nm_svc_val)) ^
	       map_digest(maps.backends, sizeof(struct nm_backend_key),
			  sizeof(struct nm_backend_val)) * 3 ^
	       map_digest(maps.revnat, sizeof(struct nm_revnat_key),
			  sizeof(struct nm_revnat_val)) * 5 ^
	       map_digest(maps.maglev, sizeof(struct nm_maglev_key),
			  sizeof(struct nm_maglev_val)) * 7;
}

static const char *const three[] = { "10.0.1.1:8080", "10.0.1.2:8080",
				     "10.0.1.3:8080,weight=3" };
static __u32 three_ids[3];

static void test_load_creates_pins(void)
{
	if (!ASSERT_OK(load(TEST_M, TEST_TABLES, &dp), "first load"))
		return;
	if (!ASSERT_OK(nm_maps_open(nm_test_pin_root, &maps),
		       "open pinned maps"))
		return;
	maps_open = true;
	ASSERT_EQ(maps.cfg.maglev_m, TEST_M, "config M");
	ASSERT_EQ(maps.cfg.maglev_tables, TEST_TABLES, "config tables");
	ASSERT_EQ(maps.cfg.abi_version, NM_ABI_VERSION, "config ABI");
}

static void test_upsert_three_backends(void)
{
	struct nm_backend_spec b[3] = { be(three[0]), be(three[1]), be(three[2]) };
	struct nm_frontend f = fe("10.96.0.10:80/tcp");
	struct nm_revnat_key rkey = { .rev_nat_id = 1 };
	struct nm_revnat_val rval;
	struct nm_backend_val bv;
	struct nm_svc_val sv;
	size_t i;

	if (!maps_open) {
		nm_test_skip("maps not open");
		return;
	}
	if (!ASSERT_OK(nm_svc_upsert(&maps, &f, b, 3, NM_LB_MAGLEV), "upsert"))
		return;
	if (!ASSERT_TRUE(get_svc("10.96.0.10:80/tcp", &sv), "service entry"))
		return;
	ASSERT_EQ(sv.svc_id, 1, "svc_id");
	ASSERT_EQ(sv.table_id, 0, "table_id");
	ASSERT_EQ(sv.backend_count, 3, "backend_count");
	ASSERT_EQ(sv.algo, NM_LB_MAGLEV, "algo");
	for (i = 0; i < 3; i++) {
		three_ids[i] = find_backend(1, three[i]);
		ASSERT_EQ(three_ids[i], i + 1, "backend id (lowest free)");
		if (!ASSERT_TRUE(get_backend(three_ids[i], &bv), "backend entry"))
			return;
		ASSERT_EQ(bv.proto, IPPROTO_TCP, "backend proto");
		ASSERT_EQ(bv.state, NM_BE_ACTIVE, "backend state");
		ASSERT_EQ(bv.weight, b[i].weight, "backend weight");
		ASSERT_EQ(bv.cluster_id, 0, "backend cluster");
	}
	if (ASSERT_OK(bpf_map_lookup_elem(maps.revnat, &rkey, &rval), "revnat")) {
		ASSERT_EQ(rval.vip, f.vip, "revnat vip");
		ASSERT_EQ(rval.port, f.port, "revnat port");
	}
	table_matches(sv.table_id, three_ids, three, 3);
}

static void test_upsert_removal_keeps_ids(void)
{
	const char *const two[] = { three[0], three[2] };
	struct nm_backend_spec b[2] = { be(two[0]), be(two[1]) };
	struct nm_frontend f = fe("10.96.0.10:80/tcp");
	struct nm_backend_val bv;
	struct nm_svc_val sv;
	__u32 ids[2];

	if (!three_ids[0]) {
		nm_test_skip("needs the 3-backend service");
		return;
	}
	if (!ASSERT_OK(nm_svc_upsert(&maps, &f, b, 2, NM_LB_MAGLEV), "upsert"))
		return;
	if (!ASSERT_TRUE(get_svc("10.96.0.10:80/tcp", &sv), "service entry"))
		return;
	ASSERT_EQ(sv.svc_id, 1, "svc_id kept");
	ASSERT_EQ(sv.table_id, 1, "switched to the spare table");
	ASSERT_EQ(sv.backend_count, 2, "backend_count");
	ids[0] = find_backend(1, two[0]);
	ids[1] = find_backend(1, two[1]);
	ASSERT_EQ(ids[0], three_ids[0], "first backend keeps its id");
	ASSERT_EQ(ids[1], three_ids[2], "third backend keeps its id");
	ASSERT_TRUE(!get_backend(three_ids[1], &bv), "removed backend deleted");
	ASSERT_EQ(count_backends(1), 2, "backends of the service");
	table_matches(sv.table_id, ids, two, 2);

	/* A third update flips back to table 0 (free again). */
	if (ASSERT_OK(nm_svc_upsert(&maps, &f, b, 2, NM_LB_RANDOM), "upsert") &&
	    ASSERT_TRUE(get_svc("10.96.0.10:80/tcp", &sv), "service entry")) {
		ASSERT_EQ(sv.table_id, 0, "back to table 0");
		ASSERT_EQ(sv.algo, NM_LB_RANDOM, "algo random");
	}
}

static void test_states_leave_the_table(void)
{
	const char *const specs[] = { "10.0.2.1:53", "10.0.2.2:53,state=terminating",
				      "10.0.2.3:53,state=quarantined",
				      "10.0.2.4:53,state=standby" };
	struct nm_backend_spec b[4] = { be(specs[0]), be(specs[1]), be(specs[2]),
					be(specs[3]) };
	struct nm_frontend f = fe("10.96.0.53:53/tcp");
	struct nm_backend_val bv;
	struct nm_svc_val sv;
	__u32 id;

	if (!maps_open) {
		nm_test_skip("maps not open");
		return;
	}
	if (!ASSERT_OK(nm_svc_upsert(&maps, &f, b, 4, NM_LB_MAGLEV), "upsert") ||
	    !ASSERT_TRUE(get_svc("10.96.0.53:53/tcp", &sv), "service entry"))
		return;
	ASSERT_EQ(sv.backend_count, 1, "only active backends counted");
	id = find_backend(sv.svc_id, specs[1]);
	if (ASSERT_TRUE(get_backend(id, &bv), "terminating backend kept"))
		ASSERT_EQ(bv.state, NM_BE_TERMINATING, "state");
	id = find_backend(sv.svc_id, specs[3]);
	if (ASSERT_TRUE(get_backend(id, &bv), "standby backend kept"))
		ASSERT_EQ(bv.state, NM_BE_STANDBY, "state");
	id = find_backend(sv.svc_id, specs[0]);
	table_matches(sv.table_id, &id, specs, 1);
	ASSERT_OK(nm_svc_delete(&maps, &f), "delete");
}

static void test_bad_upsert_changes_nothing(void)
{
	struct nm_backend_spec dup[2] = { be("10.0.1.1:8080"),
					  be("10.0.1.1:8080,weight=2") };
	struct nm_backend_spec one[1] = { be("10.0.9.1:80") };
	struct nm_frontend f = fe("10.96.0.10:80/tcp");
	struct nm_frontend g = fe("10.96.0.99:80/tcp");
	char name[32];
	__u64 before;
	int i, ok = 0;

	if (!maps_open) {
		nm_test_skip("maps not open");
		return;
	}
	before = all_digest();
	ASSERT_EQ(nm_svc_upsert(&maps, &f, dup, 2, NM_LB_MAGLEV), -EINVAL,
		  "duplicate backend refused");
	ASSERT_EQ(nm_svc_upsert(&maps, &g, dup, 2, NM_LB_MAGLEV), -EINVAL,
		  "duplicate backend on a new service refused");
	ASSERT_EQ(all_digest(), before, "maps unchanged");

	/* Fill every table, then one service too many is refused whole. */
	for (i = 0; i < TEST_TABLES; i++) {
		snprintf(name, sizeof(name), "10.96.1.%d:80/tcp", i + 1);
		g = fe(name);
		if (nm_svc_upsert(&maps, &g, one, 1, NM_LB_MAGLEV))
			break;
		ok++;
	}
	ASSERT_EQ(ok, TEST_TABLES - 1, "services until tables ran out");
	before = all_digest();
	ASSERT_EQ(nm_svc_upsert(&maps, &f, one, 1, NM_LB_MAGLEV), -EINVAL,
		  "update with no spare table refused");
	ASSERT_EQ(all_digest(), before, "maps unchanged");
	for (i = 0; i < ok; i++) {
		snprintf(name, sizeof(name), "10.96.1.%d:80/tcp", i + 1);
		g = fe(name);
		ASSERT_OK(nm_svc_delete(&maps, &g), "delete filler");
	}
}

static void test_delete_removes_everything(void)
{
	struct nm_frontend f = fe("10.96.0.10:80/tcp");
	struct nm_revnat_key rkey = { .rev_nat_id = 1 };
	struct nm_revnat_val rval;
	struct nm_svc_val sv;

	if (!maps_open) {
		nm_test_skip("maps not open");
		return;
	}
	if (!ASSERT_OK(nm_svc_delete(&maps, &f), "delete"))
		return;
	ASSERT_TRUE(!get_svc("10.96.0.10:80/tcp", &sv), "service gone");
	ASSERT_EQ(count_backends(1), 0, "backends gone");
	ASSERT_TRUE(bpf_map_lookup_elem(maps.revnat, &rkey, &rval) && errno == ENOENT,
		    "revnat gone");
	ASSERT_EQ(nm_svc_delete(&maps, &f), -ENOENT, "second delete");
	ASSERT_EQ(map_digest(maps.services, 8, 16), 0, "no service left");
}

static void test_reload_reuses_pins(void)
{
	struct nm_ct_key key = { .saddr = htonl(0x0a000001), .daddr = htonl(0x0a60000a),
				 .sport = htons(40000), .dport = htons(80),
				 .proto = IPPROTO_TCP, .dir = NM_CT_FORWARD };
	struct nm_ct_val val = { .backend_id = 7, .rev_nat_id = 1 }, got;
	struct nm_datapath *dp2 = NULL;
	struct nm_maps maps2;

	if (!maps_open) {
		nm_test_skip("maps not open");
		return;
	}
	if (!ASSERT_OK(bpf_map_update_elem(maps.ct, &key, &val, BPF_ANY),
		       "write conntrack"))
		return;
	/* The loader restarts: the old instance goes, a new one loads. */
	nm_datapath_close(dp);
	dp = NULL;
	if (!ASSERT_OK(load(0, 0, &dp2), "second load, sizes from the pins"))
		return;
	dp = dp2;
	ASSERT_EQ(dp->cfg.maglev_m, TEST_M, "M inherited");
	ASSERT_EQ(dp->cfg.maglev_tables, TEST_TABLES, "tables inherited");
	if (!ASSERT_OK(nm_maps_open(nm_test_pin_root, &maps2),
		       "open pins again"))
		return;
	memset(&got, 0, sizeof(got));
	if (ASSERT_OK(bpf_map_lookup_elem(maps2.ct, &key, &got),
		      "conntrack entry survived"))
		ASSERT_EQ(got.backend_id, 7, "conntrack backend");
	nm_maps_close(&maps2);
}

static void test_mismatched_size_refused(void)
{
	struct nm_datapath *dp2 = NULL;
	struct nm_config_val cfg;
	__u32 key = 0;

	if (!maps_open) {
		nm_test_skip("maps not open");
		return;
	}
	ASSERT_EQ(load(TEST_M == 1021 ? 1031 : 1021, TEST_TABLES, &dp2), -EINVAL,
		  "other M refused");
	ASSERT_EQ(load(TEST_M, TEST_TABLES + 2, &dp2), -EINVAL,
		  "other table count refused");
	ASSERT_EQ(load(TEST_M, TEST_TABLES, &dp2) == 0, true, "same sizes accepted");
	nm_datapath_close(dp2);
	if (ASSERT_OK(bpf_map_lookup_elem(maps.config, &key, &cfg), "config"))
		ASSERT_EQ(cfg.maglev_m, TEST_M, "config untouched");
}

static void test_tc_attach_replace_detach(void)
{
	__u32 id1 = 0, id2 = 0, eg1 = 0, eg2 = 0;
	struct nm_datapath *dp2 = NULL;

	if (!dp) {
		nm_test_skip("datapath not loaded");
		return;
	}
	/* A private netns: its lo is ours to attach to, gone with the test. */
	if (unshare(CLONE_NEWNET)) {
		nm_test_skip("cannot create a network namespace");
		return;
	}
	ASSERT_EQ(nm_tc_detach("lo"), -ENOENT, "nothing to detach yet");
	if (!ASSERT_OK(nm_tc_attach(dp, "lo"), "attach") ||
	    !ASSERT_OK(nm_tc_query("lo", NM_TC_FROM_POD, &id1), "query ingress") ||
	    !ASSERT_OK(nm_tc_query("lo", NM_TC_TO_POD, &eg1), "query egress"))
		return;
	ASSERT_NEQ(id1, eg1, "two programs");
	if (!ASSERT_OK(load(0, 0, &dp2), "load a second instance"))
		return;
	if (ASSERT_OK(nm_tc_attach(dp2, "lo"), "re-attach") &&
	    ASSERT_OK(nm_tc_query("lo", NM_TC_FROM_POD, &id2), "query ingress") &&
	    ASSERT_OK(nm_tc_query("lo", NM_TC_TO_POD, &eg2), "query egress")) {
		ASSERT_NEQ(id1, id2, "ingress program replaced");
		ASSERT_NEQ(eg1, eg2, "egress program replaced");
	}
	ASSERT_OK(nm_tc_detach("lo"), "detach");
	ASSERT_EQ(nm_tc_query("lo", NM_TC_FROM_POD, &id2), -ENOENT,
		  "ingress detached");
	ASSERT_EQ(nm_tc_query("lo", NM_TC_TO_POD, &eg2), -ENOENT,
		  "egress detached");
	ASSERT_EQ(nm_tc_detach("lo"), -ENOENT, "nothing left to detach");
	ASSERT_EQ(nm_tc_attach(dp2, "nm-no-such0"), -ENODEV,
		  "missing interface");
	nm_datapath_close(dp2);
}

int main(void)
{
	static const struct nm_test tests[] = {
		NM_TEST(test_load_creates_pins),
		NM_TEST(test_upsert_three_backends),
		NM_TEST(test_upsert_removal_keeps_ids),
		NM_TEST(test_states_leave_the_table),
		NM_TEST(test_bad_upsert_changes_nothing),
		NM_TEST(test_delete_removes_everything),
		NM_TEST(test_reload_reuses_pins),
		NM_TEST(test_mismatched_size_refused),
		NM_TEST(test_tc_attach_replace_detach),
	};
	int failed;

	nm_log_set_ident("test_svc");
	nm_log_init_libbpf();
	nm_test_pins_setup("nm-test", NULL);
	failed = NM_TEST_RUN(tests);
	if (maps_open)
		nm_maps_close(&maps);
	nm_datapath_close(dp);
	nm_test_pins_cleanup();
	return failed ? 1 : 0;
}
