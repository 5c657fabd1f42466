// SPDX-License-Identifier: GPL-2.0
/* Global services merge: who contributes, tiers, states, weights, order. */
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

#include "agent/svcmerge.h"
#include "maps/backend.h"

#define LOCAL 1
#define A 2
#define B 3

static const struct nm_frontend fe = { .vip = 0x0a60000a /* any */,
				       .port = 0x5000,
				       .proto = IPPROTO_TCP };

/* Backend 10.<c>.0.<h>:8080/tcp with state @st and weight @w. */
static struct nm_merge_src be(__u8 c, __u8 h, __u8 st, __u16 w)
{
	struct nm_merge_src b = {
		.addr = htonl(0x0a000000 | (__u32)c << 16 | h),
		.port = htons(8080),
		.proto = IPPROTO_TCP,
		.state = st,
		.weight = w,
	};

	return b;
}

#define ACT(c, h) be(c, h, NM_BE_ACTIVE, 1)
#define TERM(c, h) be(c, h, NM_BE_TERMINATING, 1)

static struct nm_merge_in rec(__u16 cid, const struct nm_merge_src *b, size_t n)
{
	struct nm_merge_in r = {
		.cluster_id = cid,
		.reachable = true,
		.global = true,
		.shared = true,
		.weight = 1,
		.backends = b,
		.n_backends = n,
	};

	return r;
}

#define REC(cid, arr) rec(cid, arr, sizeof(arr) / sizeof(arr[0]))

static size_t merge(const struct nm_merge_in *in, size_t n,
		    struct nm_merge_be **out)
{
	size_t n_out = 99;

	assert_int_equal(nm_svc_merge(in, n, LOCAL, &fe, out, &n_out), 0);
	return n_out;
}

/* The entry for backend 10.<c>.0.<h>, which must be there. */
static const struct nm_merge_be *find(const struct nm_merge_be *m, size_t n,
				      __u8 c, __u8 h)
{
	__be32 a = htonl(0x0a000000 | (__u32)c << 16 | h);
	size_t i;

	for (i = 0; i < n; i++)
		if (m[i].spec.addr == a)
			return &m[i];
	fail_msg("backend 10.%u.0.%u missing from the merge", c, h);
	return NULL;
}

static void expect(const struct nm_merge_be *m, size_t n, __u8 c, __u8 h,
		   __u16 cid, __u8 state, bool preferred)
{
	const struct nm_merge_be *x = find(m, n, c, h);

	if (x->spec.cluster_id != cid || x->spec.state != state ||
	    x->preferred != preferred)
		fail_msg(
			"backend 10.%u.0.%u: cluster %u state %u preferred %d, want cluster %u state %u preferred %d",
			c, h, x->spec.cluster_id, x->spec.state, x->preferred,
			cid, state, preferred);
}

static void test_local_only(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 2), ACT(1, 1) };
	struct nm_merge_in in[] = { REC(LOCAL, l) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[0].global = false;
	in[0].shared = false;
	n = merge(in, 1, &m);
	assert_int_equal(n, 2);
	/* Sorted by (cluster, addr, port). */
	assert_int_equal(m[0].spec.addr, l[1].addr);
	assert_int_equal(m[1].spec.addr, l[0].addr);
	assert_int_equal(m[0].spec.port, htons(8080));
	assert_int_equal(m[0].spec.weight, 1);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	expect(m, n, 1, 2, LOCAL, NM_BE_ACTIVE, true);
	assert_true(nm_svc_merge_contributes(in, 1, LOCAL));
	free(m);
}

static void test_remote_global_shared_merged(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1) }, a[] = { ACT(2, 1), ACT(2, 2) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	n = merge(in, 2, &m);
	assert_int_equal(n, 3);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	expect(m, n, 2, 1, A, NM_BE_ACTIVE, true);
	expect(m, n, 2, 2, A, NM_BE_ACTIVE, true);
	assert_int_equal(m[0].spec.cluster_id, LOCAL);
	free(m);
}

static void test_remote_not_shared_excluded(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1) }, a[] = { ACT(2, 1) },
			    b[] = { ACT(3, 1) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a), REC(B, b) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[1].shared = false;
	in[2].global = false; /* not global: not offered either */
	n = merge(in, 3, &m);
	assert_int_equal(n, 1);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	free(m);
	/* Only such records: not this node's frontend at all. */
	assert_false(nm_svc_merge_contributes(&in[1], 2, LOCAL));
	n = merge(&in[1], 2, &m);
	assert_int_equal(n, 0);
	assert_null(m);
}

static void test_local_not_shared_still_uses_remotes(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1) }, a[] = { ACT(2, 1) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[0].shared = false; /* others do not get ours; we still get theirs */
	n = merge(in, 2, &m);
	assert_int_equal(n, 2);
	expect(m, n, 2, 1, A, NM_BE_ACTIVE, true);
	free(m);
}

static void test_local_not_global_excludes_remotes(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1) }, a[] = { ACT(2, 1) };
	struct nm_merge_in in[] = { REC(A, a), REC(LOCAL, l) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[1].global = false;
	n = merge(in, 2, &m);
	assert_int_equal(n, 1);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	free(m);
}

static void test_no_local_record_uses_remotes(void **state)
{
	struct nm_merge_src a[] = { ACT(2, 1) }, b[] = { ACT(3, 1) };
	struct nm_merge_in in[] = { REC(B, b), REC(A, a) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	/* A remote's affinity is its own business: no local record, none. */
	in[0].affinity = NM_KV_AFF_LOCAL;
	n = merge(in, 2, &m);
	assert_int_equal(n, 2);
	expect(m, n, 2, 1, A, NM_BE_ACTIVE, true);
	expect(m, n, 3, 1, B, NM_BE_ACTIVE, true);
	assert_int_equal(m[0].spec.cluster_id, A);
	free(m);
}

static void test_unreachable_remote_quarantined(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1) },
			    a[] = { ACT(2, 1), TERM(2, 2) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[0].reachable = false; /* the local cluster is always reachable */
	in[1].reachable = false;
	n = merge(in, 2, &m);
	assert_int_equal(n, 3);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	expect(m, n, 2, 1, A, NM_BE_QUARANTINED, false);
	expect(m, n, 2, 2, A, NM_BE_QUARANTINED, false);
	assert_int_equal(find(m, n, 2, 1)->own_state, NM_BE_ACTIVE);
	assert_int_equal(find(m, n, 2, 2)->own_state, NM_BE_TERMINATING);
	free(m);

	/* Remote only and unreachable: kept, nothing selected. */
	n = merge(&in[1], 1, &m);
	assert_int_equal(n, 2);
	expect(m, n, 2, 1, A, NM_BE_QUARANTINED, false);
	free(m);
}

static void test_cluster_weights_multiply(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1) },
			    a[] = { ACT(2, 1), be(2, 2, NM_BE_ACTIVE, 2),
				    be(2, 3, NM_BE_ACTIVE, 30000) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[1].weight = 3; /* 1:3 between the clusters */
	n = merge(in, 2, &m);
	assert_int_equal(n, 4);
	assert_int_equal(find(m, n, 1, 1)->spec.weight, 1);
	assert_int_equal(find(m, n, 2, 1)->spec.weight, 3);
	assert_int_equal(find(m, n, 2, 2)->spec.weight, 6);
	assert_int_equal(find(m, n, 2, 3)->spec.weight, 65535); /* capped */
	free(m);

	/* An unset record weight counts as 1. */
	in[1].weight = 0;
	n = merge(in, 2, &m);
	assert_int_equal(find(m, n, 2, 2)->spec.weight, 2);
	free(m);
}

static void test_affinity_local_prefers_local(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1), TERM(1, 2) },
			    a[] = { ACT(2, 1) }, b[] = { ACT(3, 1) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a), REC(B, b) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[0].affinity = NM_KV_AFF_LOCAL;
	n = merge(in, 3, &m);
	assert_int_equal(n, 4);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	expect(m, n, 1, 2, LOCAL, NM_BE_TERMINATING, false);
	expect(m, n, 2, 1, A, NM_BE_STANDBY, false);
	expect(m, n, 3, 1, B, NM_BE_STANDBY, false);
	assert_int_equal(find(m, n, 1, 1)->tier_rank, 0);
	assert_int_equal(find(m, n, 2, 1)->tier_rank, 1);
	free(m);
}

static void test_affinity_local_falls_back(void **state)
{
	struct nm_merge_src l[] = { TERM(1, 1), TERM(1, 2) },
			    a[] = { ACT(2, 1), TERM(2, 2) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	/* Every local backend terminating: they do not count as ready. */
	in[0].affinity = NM_KV_AFF_LOCAL;
	n = merge(in, 2, &m);
	assert_int_equal(n, 4);
	expect(m, n, 1, 1, LOCAL, NM_BE_TERMINATING, false);
	expect(m, n, 1, 2, LOCAL, NM_BE_TERMINATING, false);
	expect(m, n, 2, 1, A, NM_BE_ACTIVE, true);
	expect(m, n, 2, 2, A, NM_BE_TERMINATING, false);
	free(m);

	/* No local backend at all. */
	in[0].n_backends = 0;
	n = merge(in, 2, &m);
	assert_int_equal(n, 2);
	expect(m, n, 2, 1, A, NM_BE_ACTIVE, true);
	free(m);
}

static void test_affinity_remote(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1) }, a[] = { ACT(2, 1) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[0].affinity = NM_KV_AFF_REMOTE;
	n = merge(in, 2, &m);
	expect(m, n, 1, 1, LOCAL, NM_BE_STANDBY, false);
	expect(m, n, 2, 1, A, NM_BE_ACTIVE, true);
	free(m);

	/* The remote side gone: local takes over. */
	in[1].reachable = false;
	n = merge(in, 2, &m);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	expect(m, n, 2, 1, A, NM_BE_QUARANTINED, false);
	free(m);
}

static void test_priority_tiers(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1) }, a[] = { ACT(2, 1) },
			    b[] = { ACT(3, 1), ACT(3, 2) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a), REC(B, b) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[0].priority = 2;
	in[1].priority = 1;
	in[2].priority = 0;
	n = merge(in, 3, &m);
	expect(m, n, 1, 1, LOCAL, NM_BE_STANDBY, false);
	expect(m, n, 2, 1, A, NM_BE_STANDBY, false);
	expect(m, n, 3, 1, B, NM_BE_ACTIVE, true);
	expect(m, n, 3, 2, B, NM_BE_ACTIVE, true);
	assert_int_equal(find(m, n, 2, 1)->priority, 1);
	free(m);

	/* The best tier draining: the next one is selected. */
	b[0].state = NM_BE_TERMINATING;
	b[1].state = NM_BE_QUARANTINED;
	n = merge(in, 3, &m);
	expect(m, n, 1, 1, LOCAL, NM_BE_STANDBY, false);
	expect(m, n, 2, 1, A, NM_BE_ACTIVE, true);
	expect(m, n, 3, 1, B, NM_BE_TERMINATING, false);
	expect(m, n, 3, 2, B, NM_BE_QUARANTINED, false);
	free(m);

	/* Affinity ranks before priority. */
	in[0].affinity = NM_KV_AFF_LOCAL;
	n = merge(in, 3, &m);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	expect(m, n, 2, 1, A, NM_BE_STANDBY, false);
	free(m);
}

static void test_nothing_active(void **state)
{
	struct nm_merge_src l[] = { TERM(1, 1) }, a[] = { ACT(2, 1) };
	struct nm_merge_in in[] = { REC(LOCAL, l), REC(A, a) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	in[1].reachable = false;
	n = merge(in, 2, &m);
	assert_int_equal(n, 2);
	expect(m, n, 1, 1, LOCAL, NM_BE_TERMINATING, false);
	expect(m, n, 2, 1, A, NM_BE_QUARANTINED, false);
	free(m);
}

static void test_duplicates(void **state)
{
	/* 10.2.0.1 is offered by the local cluster and by A. */
	struct nm_merge_src l[] = { ACT(2, 1) },
			    a[] = { be(2, 1, NM_BE_ACTIVE, 7), ACT(2, 2) },
			    a2[] = { TERM(2, 2), be(2, 3, NM_BE_ACTIVE, 4) },
			    a3[] = { be(2, 3, NM_BE_ACTIVE, 9) };
	struct nm_merge_in in[] = { REC(A, a), REC(LOCAL, l), REC(A, a2),
				    REC(A, a3) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	n = merge(in, 4, &m);
	assert_int_equal(n, 3);
	/* The lower cluster id wins. */
	expect(m, n, 2, 1, LOCAL, NM_BE_ACTIVE, true);
	assert_int_equal(find(m, n, 2, 1)->spec.weight, 1);
	/* Within one cluster: the better state, then the higher weight. */
	expect(m, n, 2, 2, A, NM_BE_ACTIVE, true);
	assert_int_equal(find(m, n, 2, 3)->spec.weight, 9);
	free(m);
}

static void test_protocol_filter(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1), ACT(1, 2) };
	struct nm_merge_in in[] = { REC(LOCAL, l) };
	struct nm_merge_be *m;
	size_t n;

	(void)state;
	l[1].proto = IPPROTO_UDP;
	n = merge(in, 1, &m);
	assert_int_equal(n, 1);
	expect(m, n, 1, 1, LOCAL, NM_BE_ACTIVE, true);
	free(m);
	/* Contributes, with no backend of this protocol: programmed empty. */
	l[0].proto = IPPROTO_UDP;
	assert_true(nm_svc_merge_contributes(in, 1, LOCAL));
	n = merge(in, 1, &m);
	assert_int_equal(n, 0);
	assert_null(m);
}

/* Every permutation of the records gives the same bytes. */
static void test_determinism(void **state)
{
	struct nm_merge_src l[] = { ACT(1, 1), TERM(1, 2) },
			    a[] = { ACT(2, 1), ACT(1, 2), ACT(2, 3) },
			    b[] = { ACT(3, 1), ACT(2, 3), TERM(3, 2) },
			    b2[] = { ACT(3, 2), be(3, 9, NM_BE_ACTIVE, 5) };
	struct nm_merge_in base[] = { REC(LOCAL, l), REC(A, a), REC(B, b),
				      REC(B, b2) };
	static const int perms[][4] = {
		{ 0, 1, 2, 3 }, { 3, 2, 1, 0 }, { 1, 3, 0, 2 },
		{ 2, 0, 3, 1 }, { 3, 0, 2, 1 }, { 1, 2, 3, 0 },
	};
	struct nm_merge_be *ref = NULL, *m;
	size_t n_ref = 0, n, p, i;

	(void)state;
	base[0].affinity = NM_KV_AFF_REMOTE;
	base[1].priority = 3;
	base[2].weight = 2;
	base[3].priority = 1;
	for (p = 0; p < sizeof(perms) / sizeof(perms[0]); p++) {
		struct nm_merge_in in[4];

		for (i = 0; i < 4; i++)
			in[i] = base[perms[p][i]];
		n = merge(in, 4, &m);
		if (!ref) {
			ref = m;
			n_ref = n;
			continue;
		}
		assert_int_equal(n, n_ref);
		assert_memory_equal(m, ref, n * sizeof(*m));
		free(m);
	}
	/*
	 * Affinity remote ranks the local cluster 1; B's first record
	 * (priority 0) is the best tier. 10.1.0.2 stays the local one's,
	 * 10.2.0.3 A's; B offers 10.3.0.2 twice and the lower tier's
	 * (terminating) copy is kept.
	 */
	assert_int_equal(n_ref, 7);
	expect(ref, n_ref, 1, 1, LOCAL, NM_BE_STANDBY, false);
	expect(ref, n_ref, 1, 2, LOCAL, NM_BE_TERMINATING, false);
	expect(ref, n_ref, 2, 1, A, NM_BE_STANDBY, false);
	expect(ref, n_ref, 2, 3, A, NM_BE_STANDBY, false);
	expect(ref, n_ref, 3, 1, B, NM_BE_ACTIVE, true);
	expect(ref, n_ref, 3, 2, B, NM_BE_TERMINATING, false);
	expect(ref, n_ref, 3, 9, B, NM_BE_STANDBY, false);
	assert_int_equal(find(ref, n_ref, 3, 1)->spec.weight, 2);
	free(ref);
}

/* A decoded record gives the same input as its fields one by one. */
static void test_from_kv(void **state)
{
	struct nm_kv_backend kb[] = {
		{ .ip = htonl(0x0a020001),
		  .port = htons(8080),
		  .proto = IPPROTO_TCP,
		  .state = NM_BE_ACTIVE,
		  .weight = 2,
		  .node = "node-1" },
		{ .ip = htonl(0x0a020002),
		  .port = htons(8080),
		  .proto = IPPROTO_TCP,
		  .state = NM_BE_TERMINATING,
		  .weight = 1 },
	};
	struct nm_kv_service svc = { .backends = kb,
				     .n_backends = 2,
				     .global = true,
				     .shared = false,
				     .affinity = NM_KV_AFF_REMOTE,
				     .weight = 3,
				     .priority = 4 };
	struct nm_merge_src *src = NULL;
	struct nm_merge_in in;

	(void)state;
	assert_int_equal(nm_merge_in_from_kv(&in, &svc, A, false, &src), 0);
	assert_int_equal(in.cluster_id, A);
	assert_false(in.reachable);
	assert_true(in.global);
	assert_false(in.shared);
	assert_int_equal(in.affinity, NM_KV_AFF_REMOTE);
	assert_int_equal(in.weight, 3);
	assert_int_equal(in.priority, 4);
	assert_int_equal(in.n_backends, 2);
	assert_ptr_equal(in.backends, src);
	assert_int_equal(src[0].addr, kb[0].ip);
	assert_int_equal(src[0].port, kb[0].port);
	assert_int_equal(src[0].proto, IPPROTO_TCP);
	assert_int_equal(src[0].weight, 2);
	assert_int_equal(src[1].state, NM_BE_TERMINATING);
	free(src);

	svc.n_backends = 0;
	assert_int_equal(nm_merge_in_from_kv(&in, &svc, A, true, &src), 0);
	assert_null(src);
	assert_int_equal(in.n_backends, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_only),
		cmocka_unit_test(test_remote_global_shared_merged),
		cmocka_unit_test(test_remote_not_shared_excluded),
		cmocka_unit_test(test_local_not_shared_still_uses_remotes),
		cmocka_unit_test(test_local_not_global_excludes_remotes),
		cmocka_unit_test(test_no_local_record_uses_remotes),
		cmocka_unit_test(test_unreachable_remote_quarantined),
		cmocka_unit_test(test_cluster_weights_multiply),
		cmocka_unit_test(test_affinity_local_prefers_local),
		cmocka_unit_test(test_affinity_local_falls_back),
		cmocka_unit_test(test_affinity_remote),
		cmocka_unit_test(test_priority_tiers),
		cmocka_unit_test(test_nothing_active),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_protocol_filter),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_from_kv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
