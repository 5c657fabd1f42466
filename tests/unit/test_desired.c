// SPDX-License-Identifier: GPL-2.0
/*
 * Desired map state from records, and its comparison with map contents:
 * what counts, what is left to others, and how each difference reads.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "agent/desired.h"
#include "agent/maglev.h"
#include "maps/backend.h"
#include "maps/identity.h"
#include "maps/service.h"

#define EAST 0 /* the local cluster, id 1 */
#define WEST 1 /* a remote one, id 2 */
#define RECS_MAX 32
#define M 251 /* a small prime Maglev size keeps the tests quick */

/* Two clusters' decoded records, and what the maps hold. */
struct fx {
	struct nm_kv_record recs[2][RECS_MAX];
	size_t n[2];
	struct nm_desired_cluster c[2];
	struct nm_desired want;
	struct nm_actual_node nodes[16];
	struct nm_actual_ip ips[16];
	struct nm_svc_info svcs[8];
	struct nm_svc_backend bes[32];
	struct nm_svc_list list;
	const __u32 *tables[8];
	struct nm_actual have;
	struct nm_diffs diffs;
};

static const char *const names[2] = { "east", "west" };

static __be32 ip(const char *s)
{
	__be32 a;

	assert_int_equal(nm_parse_ipv4(s, &a), 0);
	return a;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->c[EAST].name = "east";
	f->c[EAST].id = 1;
	f->c[EAST].local = true;
	f->c[EAST].reachable = true;
	f->c[WEST].name = "west";
	f->c[WEST].id = 2;
	f->c[WEST].reachable = true;
	f->list.svcs = f->svcs;
	f->list.backends = f->bes;
	f->have.svcs = &f->list;
	f->have.nodes = f->nodes;
	f->have.ips = f->ips;
	f->have.maglev_m = M;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	size_t i, j;

	for (i = 0; i < 2; i++)
		for (j = 0; j < f->n[i]; j++)
			nm_kv_record_free(&f->recs[i][j]);
	nm_desired_free(&f->want);
	nm_diffs_free(&f->diffs);
	free(f);
	return 0;
}

/* Decode @json ('' quotes allowed) at @key as cluster @ci's etcd sends it. */
static void add(struct fx *f, int ci, const char *key, const char *json)
{
	struct nm_kv_ctx ctx = { .cluster = names[ci],
				 .cluster_id = f->c[ci].id };
	char err[NM_KV_ERR_LEN], *v = strdup(json), *p;

	assert_non_null(v);
	assert_true(f->n[ci] < RECS_MAX);
	for (p = v; *p; p++)
		if (*p == '\'')
			*p = '"';
	if (nm_kv_decode(&ctx, key, v, strlen(v), &f->recs[ci][f->n[ci]], err,
			 sizeof(err)))
		fail_msg("record refused: %s", err);
	f->n[ci]++;
	f->c[ci].recs = f->recs[ci];
	f->c[ci].n_recs = f->n[ci];
	free(v);
}

static void node(struct fx *f, int ci, const char *name, const char *addr)
{
	char key[256], json[512];

	snprintf(key, sizeof(key), "nodemesh/state/nodes/v1/%s/%s", names[ci],
		 name);
	snprintf(
		json, sizeof(json),
		"{'schema':1,'name':'%s','cluster':'%s','cluster_id':%u,'node_ip':'%s','pod_cidrs':[],'boot_id':'b'}",
		name, names[ci], f->c[ci].id, addr);
	add(f, ci, key, json);
}

/* Pod @pod at @addr on node @on, identity (cluster, 256 + @n). */
static void ep(struct fx *f, int ci, const char *pod, const char *addr,
	       const char *on, unsigned int n)
{
	char key[256], json[768];

	snprintf(key, sizeof(key), "nodemesh/state/endpoints/v1/%s/shop/%s",
		 names[ci], pod);
	snprintf(
		json, sizeof(json),
		"{'schema':1,'namespace':'shop','name':'%s','ip':'%s','node':'%s','labels':{'app':'web','nodemesh.io/cluster':'%s','nodemesh.io/namespace':'shop'},'identity':'%llu'}",
		pod, addr, on, names[ci],
		(unsigned long long)nm_identity_pack(f->c[ci].id, 256 + n));
	add(f, ci, key, json);
}

/* Service shop/@name on @fe with backends @be (a JSON list) and @extra fields. */
static void svc(struct fx *f, int ci, const char *name, const char *fe,
		const char *be, const char *extra)
{
	char key[256], json[2048];

	snprintf(key, sizeof(key), "nodemesh/state/services/v1/%s/shop/%s",
		 names[ci], name);
	snprintf(
		json, sizeof(json),
		"{'schema':1,'namespace':'shop','name':'%s','frontends':['%s'],'backends':%s,%s}",
		name, fe, be, extra);
	add(f, ci, key, json);
}

#define GLOBAL "'global':true,'shared':true"

static void build(struct fx *f, const char *local_node)
{
	nm_desired_free(&f->want);
	assert_int_equal(nm_desired_build(f->c, 2, local_node, &f->want), 0);
}

static void map_node(struct fx *f, const char *addr, __u16 cid, __u32 node_id)
{
	struct nm_actual_node *n = &f->nodes[f->have.n_nodes++];

	n->ip = ip(addr);
	n->val.cluster_id = cid;
	n->val.node_id = node_id;
}

static void map_ip(struct fx *f, const char *addr, __u64 id, const char *tun,
		   __u8 flags)
{
	struct nm_actual_ip *e = &f->ips[f->have.n_ips++];

	e->ip = ip(addr);
	e->val.identity = id;
	e->val.tunnel_endpoint = tun ? ip(tun) : 0;
	e->val.flags = flags;
}

/* Program want's service @i into the fake maps as nm_svc_upsert() would. */
static void map_svc(struct fx *f, size_t i, __u32 *table)
{
	const struct nm_want_svc *w = &f->want.svcs[i];
	struct nm_maglev_backend mb[32];
	struct nm_svc_info *s = &f->svcs[f->list.n];
	size_t j, n_active = 0;

	memset(s, 0, sizeof(*s));
	s->fe = w->fe;
	s->val.svc_id = (__u32)f->list.n + 1;
	s->val.table_id = (__u32)f->list.n;
	s->val.algo = NM_LB_MAGLEV;
	s->backends = &f->bes[f->list.n_backends];
	for (j = 0; j < w->n_be; j++) {
		struct nm_svc_backend *b = &f->bes[f->list.n_backends++];

		b->id = (__u32)f->list.n_backends + 100;
		b->val.addr = w->be[j].spec.addr;
		b->val.port = w->be[j].spec.port;
		b->val.proto = w->fe.proto;
		b->val.state = w->be[j].spec.state;
		b->val.svc_id = s->val.svc_id;
		b->val.cluster_id = w->be[j].spec.cluster_id;
		b->val.weight = w->be[j].spec.weight;
		s->n_backends++;
		if (b->val.state != NM_BE_ACTIVE)
			continue;
		mb[n_active].id = b->id;
		mb[n_active].addr = b->val.addr;
		mb[n_active].port = b->val.port;
		mb[n_active].proto = b->val.proto;
		mb[n_active].pad = 0;
		mb[n_active].weight = b->val.weight;
		n_active++;
	}
	s->val.backend_count = (__u16)n_active;
	if (table) {
		assert_int_equal(nm_maglev_build(mb, n_active, M, table), 0);
		f->tables[f->list.n] = table;
		f->have.tables = f->tables;
	}
	f->list.n++;
}

static size_t compare(struct fx *f)
{
	nm_diffs_free(&f->diffs);
	assert_int_equal(nm_desired_compare(&f->want, &f->have, &f->diffs), 0);
	return f->diffs.n;
}

/* The text line of difference @i. */
static void expect_line(struct fx *f, size_t i, const char *line)
{
	char buf[NM_DIFF_STRLEN * 2];

	assert_true(i < f->diffs.n);
	assert_string_equal(nm_diff_str(&f->diffs.v[i], buf, sizeof(buf)),
			    line);
}

/* ---- nodes -------------------------------------------------------------- */

static void test_nodes_equal_ignores_node_id(void **state)
{
	struct fx *f = *state;

	node(f, EAST, "e1", "172.30.1.1");
	node(f, WEST, "w1", "172.30.2.1");
	build(f, "e1");
	assert_int_equal(f->want.n_nodes, 2);
	/* The agent's own node is in nm_nodes_v1 too. */
	map_node(f, "172.30.2.1", 2, 7);
	map_node(f, "172.30.1.1", 1, 3);
	assert_int_equal(compare(f), 0);
}

static void test_nodes_missing_stale_differs(void **state)
{
	struct fx *f = *state;

	node(f, EAST, "e1", "172.30.1.1");
	node(f, WEST, "w1", "172.30.2.1");
	node(f, WEST, "w2", "172.30.2.2");
	build(f, "e1");
	map_node(f, "172.30.1.1", 1, 1);
	map_node(f, "172.30.2.2", 3, 2);
	map_node(f, "172.30.9.9", 3, 3);
	assert_int_equal(compare(f), 3);
	expect_line(f, 0, "nodes: missing 172.30.2.1 (cluster 2)");
	expect_line(f, 1,
		    "nodes: differs 172.30.2.2: map cluster 3, etcd cluster 2");
	expect_line(f, 2, "nodes: stale 172.30.9.9 (cluster 3)");
}

static void test_nodes_two_claims_either_holds(void **state)
{
	struct fx *f = *state;

	/* A node IP reused across clusters: the sink keeps the newest. */
	node(f, EAST, "e1", "172.30.5.5");
	node(f, WEST, "w1", "172.30.5.5");
	build(f, NULL);
	map_node(f, "172.30.5.5", 2, 1);
	assert_int_equal(compare(f), 0);
	f->nodes[0].val.cluster_id = 1;
	assert_int_equal(compare(f), 0);
	f->nodes[0].val.cluster_id = 9;
	assert_int_equal(compare(f), 1);
}

/* ---- ipcache ------------------------------------------------------------ */

static void test_ipcache_tunnel_from_node_record(void **state)
{
	struct fx *f = *state;

	node(f, WEST, "w1", "172.30.2.1");
	ep(f, WEST, "web-1", "10.2.1.10", "w1", 0);
	ep(f, WEST, "web-2", "10.2.2.10", "w2", 1); /* w2 has no record */
	build(f, "e1");
	assert_int_equal(f->want.n_ips, 2);
	assert_int_equal(f->want.ips[0].tunnel, ip("172.30.2.1"));
	assert_int_equal(f->want.ips[1].tunnel, 0);
	map_node(f, "172.30.2.1", 2, 1);
	map_ip(f, "10.2.1.10", nm_identity_pack(2, 256), "172.30.2.1", 0);
	map_ip(f, "10.2.2.10", nm_identity_pack(2, 257), NULL, 0);
	assert_int_equal(compare(f), 0);
}

static void test_ipcache_own_pods_and_cidrs_are_not_ours(void **state)
{
	struct fx *f = *state;

	node(f, EAST, "e1", "172.30.1.1");
	node(f, WEST, "e1", "172.30.2.1"); /* same name, other cluster */
	ep(f, EAST, "mine", "10.1.1.10", "e1", 0);
	ep(f, WEST, "theirs", "10.2.1.10", "e1", 0);
	build(f, "e1");
	/* This node's pod is the CNI's: not desired of the sink. */
	assert_int_equal(f->want.n_ips, 1);
	assert_int_equal(f->want.ips[0].ip, ip("10.2.1.10"));
	map_node(f, "172.30.1.1", 1, 1);
	map_node(f, "172.30.2.1", 2, 2);
	map_ip(f, "10.1.1.10", nm_identity_pack(1, 256), NULL, NM_IPC_F_LOCAL);
	map_ip(f, "10.2.1.10", nm_identity_pack(2, 256), "172.30.2.1", 0);
	map_ip(f, "10.9.9.9", nm_identity_pack(0, NM_ID_CIDR_BASE), NULL,
	       NM_IPC_F_CIDR);
	assert_int_equal(compare(f), 0);
}

static void test_ipcache_missing_stale_differs(void **state)
{
	struct fx *f = *state;
	char line[NM_DIFF_STRLEN];

	node(f, WEST, "w1", "172.30.2.1");
	ep(f, WEST, "a", "10.2.1.10", "w1", 0);
	ep(f, WEST, "b", "10.2.1.11", "w1", 1);
	ep(f, WEST, "c", "10.2.1.12", "w1", 2);
	build(f, "e1");
	map_node(f, "172.30.2.1", 2, 1);
	map_ip(f, "10.2.1.11", nm_identity_pack(2, 999), "172.30.2.1", 0);
	/* A CIDR /32 where a pod is: the sink's write is not there. */
	map_ip(f, "10.2.1.12", nm_identity_pack(2, 258), "172.30.2.1",
	       NM_IPC_F_CIDR);
	/* A bogus /32 written by hand. */
	map_ip(f, "10.2.9.9", 123, "172.30.2.9", 0);
	assert_int_equal(compare(f), 4);
	expect_line(
		f, 0,
		"ipcache: missing 10.2.1.10/32 (identity 33554688 tunnel 172.30.2.1)");
	expect_line(
		f, 1,
		"ipcache: differs 10.2.1.11/32: map identity 33555431 tunnel 172.30.2.1, etcd identity 33554689 tunnel 172.30.2.1");
	expect_line(
		f, 2,
		"ipcache: differs 10.2.1.12/32: map identity 33554690 tunnel 172.30.2.1 cidr, etcd identity 33554690 tunnel 172.30.2.1");
	expect_line(
		f, 3,
		"ipcache: stale 10.2.9.9/32 (identity 123 tunnel 172.30.2.9)");
	assert_string_equal(nm_diff_key(&f->diffs.v[3], line, sizeof(line)),
			    "10.2.9.9/32");
}

static void test_ipcache_local_entry_wins_over_a_claim(void **state)
{
	struct fx *f = *state;

	/* A remote record claims an address a pod of this node holds. */
	ep(f, WEST, "old", "10.1.1.10", "w1", 0);
	build(f, "e1");
	map_ip(f, "10.1.1.10", nm_identity_pack(1, 256), NULL, NM_IPC_F_LOCAL);
	assert_int_equal(compare(f), 0);
}

/* ---- services ----------------------------------------------------------- */

#define FE "10.96.0.10:80/tcp"
#define BE_E "[{'ip':'10.1.1.10','port':8080,'proto':'tcp'}]"
#define BE_W \
	"[{'ip':'10.2.1.10','port':8080,'proto':'tcp'},{'ip':'10.2.1.11','port':8080,'proto':'tcp','state':'terminating'}]"

static void test_services_equal_with_table(void **state)
{
	struct fx *f = *state;
	__u32 table[M];

	svc(f, EAST, "web", FE, BE_E, GLOBAL);
	svc(f, WEST, "web", FE, BE_W, GLOBAL);
	build(f, "e1");
	assert_int_equal(f->want.n_svcs, 1);
	assert_int_equal(f->want.svcs[0].n_be, 3);
	map_svc(f, 0, table);
	assert_int_equal(compare(f), 0);
}

static void test_services_backend_missing_stale_differs(void **state)
{
	struct fx *f = *state;

	svc(f, EAST, "web", FE, BE_E, GLOBAL);
	svc(f, WEST, "web", FE, BE_W, GLOBAL);
	build(f, "e1");
	map_svc(f, 0, NULL);
	/* 10.2.1.10 gone, 10.2.1.11 active instead of terminating, one extra. */
	f->bes[1] = f->bes[2];
	f->bes[1].val.state = NM_BE_ACTIVE;
	f->bes[2].id = 999;
	f->bes[2].val.addr = ip("10.2.9.9");
	f->bes[2].val.state = NM_BE_ACTIVE;
	assert_int_equal(compare(f), 3);
	expect_line(
		f, 0,
		"services: 10.96.0.10:80/tcp: missing backend 10.2.1.10:8080 (cluster 2, active)");
	expect_line(
		f, 1,
		"services: 10.96.0.10:80/tcp: differs backend 10.2.1.11:8080: map (cluster 2, active), etcd (cluster 2, terminating)");
	expect_line(
		f, 2,
		"services: 10.96.0.10:80/tcp: stale backend 10.2.9.9:8080 (cluster 2, active)");
}

static void test_services_count_and_table(void **state)
{
	struct fx *f = *state;
	char key[NM_DIFF_STRLEN];
	__u32 table[M];
	size_t i, moved = 0;

	svc(f, EAST, "web", FE, BE_E, GLOBAL);
	svc(f, WEST, "web", FE, BE_W, GLOBAL);
	build(f, "e1");
	map_svc(f, 0, table);
	f->svcs[0].val.backend_count = 1;
	/* Point every slot of the first backend at the second. */
	for (i = 0; i < M; i++) {
		if (table[i] == f->bes[0].id) {
			table[i] = f->bes[1].id;
			moved++;
		}
	}
	assert_true(moved > 0);
	assert_int_equal(compare(f), 2);
	expect_line(
		f, 0,
		"services: 10.96.0.10:80/tcp: differs active backends: map 1, etcd 2");
	assert_int_equal(f->diffs.v[1].what, NM_DIFF_W_MAGLEV);
	assert_int_equal(f->diffs.v[1].have.n, moved);
	assert_string_equal(nm_diff_key(&f->diffs.v[1], key, sizeof(key)),
			    "10.96.0.10:80/tcp maglev");
}

static void test_services_missing_and_stale_entries(void **state)
{
	struct fx *f = *state;
	struct nm_svc_info *s;
	char why[256];

	svc(f, EAST, "web", FE, BE_E, GLOBAL);
	svc(f, EAST, "db", "10.96.0.11:5432/tcp", BE_E, GLOBAL);
	build(f, "e1");
	assert_int_equal(f->want.n_svcs, 2);
	map_svc(f, 1, NULL); /* only db */
	/* A service the kvstore programmed, no record names any more. */
	s = &f->svcs[f->list.n++];
	memset(s, 0, sizeof(*s));
	assert_int_equal(nm_parse_frontend("10.96.0.99:80/tcp", &s->fe, why,
					   sizeof(why)),
			 0);
	s->val.algo = NM_LB_MAGLEV;
	s->val.backend_count = 1;
	s->backends = &f->bes[f->list.n_backends];
	s->n_backends = 1;
	f->bes[f->list.n_backends].id = 77;
	f->bes[f->list.n_backends].val.addr = ip("10.2.1.10");
	f->bes[f->list.n_backends].val.port = htons(8080);
	f->bes[f->list.n_backends].val.proto = IPPROTO_TCP;
	f->bes[f->list.n_backends].val.cluster_id = 2;
	f->bes[f->list.n_backends].val.weight = 1;
	f->list.n_backends++;
	assert_int_equal(compare(f), 2);
	expect_line(
		f, 0,
		"services: missing 10.96.0.10:80/tcp (1 backend, 1 active)");
	expect_line(f, 1,
		    "services: stale 10.96.0.99:80/tcp (1 backend, 1 active)");
}

static void test_services_by_hand_are_not_ours(void **state)
{
	struct fx *f = *state;
	struct nm_svc_info *s;
	char why[256];

	build(f, "e1");
	/* 'nodemeshctl service upsert': cluster id 0. */
	s = &f->svcs[f->list.n++];
	memset(s, 0, sizeof(*s));
	assert_int_equal(nm_parse_frontend("10.96.0.50:80/tcp", &s->fe, why,
					   sizeof(why)),
			 0);
	s->backends = &f->bes[0];
	s->n_backends = 1;
	f->bes[0].val.addr = ip("10.1.1.50");
	f->bes[0].val.cluster_id = 0;
	f->list.n_backends = 1;
	/* And one without backends: cannot be told apart, left alone. */
	s = &f->svcs[f->list.n++];
	memset(s, 0, sizeof(*s));
	assert_int_equal(nm_parse_frontend("10.96.0.51:80/tcp", &s->fe, why,
					   sizeof(why)),
			 0);
	assert_int_equal(compare(f), 0);
}

static void test_services_follow_merge_rules(void **state)
{
	struct fx *f = *state;
	const struct nm_want_svc *w;
	size_t i;

	/* Not shared: west's record contributes nothing, not even a frontend. */
	svc(f, WEST, "priv", "10.96.0.20:80/tcp", BE_W,
	    "'global':true,'shared':false");
	svc(f, EAST, "web", FE, BE_E, GLOBAL);
	svc(f, WEST, "web", FE, BE_W, GLOBAL);
	f->c[WEST].reachable = false;
	build(f, "e1");
	assert_int_equal(f->want.n_svcs, 1);
	w = &f->want.svcs[0];
	assert_int_equal(w->n_be, 3);
	/* An unreachable cluster's backends stay, quarantined. */
	for (i = 0; i < w->n_be; i++) {
		if (w->be[i].spec.cluster_id == 2)
			assert_int_equal(w->be[i].spec.state,
					 NM_BE_QUARANTINED);
		else
			assert_int_equal(w->be[i].spec.state, NM_BE_ACTIVE);
	}
	/* The local cluster is reachable whatever the caller says. */
	f->c[WEST].reachable = true;
	f->c[EAST].reachable = false;
	build(f, "e1");
	assert_int_equal(f->want.svcs[0].be[0].spec.state, NM_BE_ACTIVE);
}

static void test_services_other_algo(void **state)
{
	struct fx *f = *state;

	svc(f, EAST, "web", FE, BE_E, GLOBAL);
	build(f, "e1");
	map_svc(f, 0, NULL);
	f->svcs[0].val.algo = NM_LB_RANDOM;
	assert_int_equal(compare(f), 1);
	expect_line(
		f, 0,
		"services: 10.96.0.10:80/tcp: differs algo: map random, etcd maglev");
}

/* ---- keys the mirror skips ---------------------------------------------- */

static void test_ignored_keys(void **state)
{
	(void)state;
	assert_true(nm_desired_ignored(NULL, "nodemesh/policies/shop/p1"));
	assert_true(nm_desired_ignored(NULL, "nodemesh/services/v1/shop/web"));
	assert_true(nm_desired_ignored("x/", "x/policies/a"));
	assert_false(nm_desired_ignored(
		NULL, "nodemesh/state/services/v1/east/shop/web"));
	assert_false(nm_desired_ignored("x/", "nodemesh/policies/a"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_nodes_equal_ignores_node_id),
		T(test_nodes_missing_stale_differs),
		T(test_nodes_two_claims_either_holds),
		T(test_ipcache_tunnel_from_node_record),
		T(test_ipcache_own_pods_and_cidrs_are_not_ours),
		T(test_ipcache_missing_stale_differs),
		T(test_ipcache_local_entry_wins_over_a_claim),
		T(test_services_equal_with_table),
		T(test_services_backend_missing_stale_differs),
		T(test_services_count_and_table),
		T(test_services_missing_and_stale_entries),
		T(test_services_by_hand_are_not_ours),
		T(test_services_follow_merge_rules),
		T(test_services_other_algo),
		T(test_ignored_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
