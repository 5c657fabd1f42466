// SPDX-License-Identifier: GPL-2.0
/* Maglev table builder: shares, disruption, determinism, validation. */
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

#include "agent/maglev.h"

#define M NM_MAGLEV_M_DEFAULT

/* Backend i: 10.<i/256>.<i%256>.1:8080/tcp, id i + 1. */
static void make_backends(struct nm_maglev_backend *be, size_t n,
			  const __u32 *weights)
{
	size_t i;

	memset(be, 0, n * sizeof(*be));
	for (i = 0; i < n; i++) {
		be[i].id = (__u32)i + 1;
		be[i].addr = htonl(0x0a000001 | ((__u32)i << 8));
		be[i].port = htons(8080);
		be[i].proto = IPPROTO_TCP;
		be[i].weight = weights ? weights[i] : 1;
	}
}

static __u32 *build(const struct nm_maglev_backend *be, size_t n, __u32 m)
{
	__u32 *t = calloc(m, sizeof(*t));

	assert_non_null(t);
	assert_int_equal(nm_maglev_build(be, n, m, t), 0);
	return t;
}

/* Every slot filled, and each share within 1% of the table of its weight share. */
static void check_shares(size_t n, const __u32 *weights)
{
	struct nm_maglev_backend *be = calloc(n, sizeof(*be));
	__u64 wsum = 0;
	size_t i, total = 0;
	__u32 *t;

	assert_non_null(be);
	make_backends(be, n, weights);
	for (i = 0; i < n; i++)
		wsum += be[i].weight;
	t = build(be, n, M);
	assert_int_equal(nm_maglev_count(t, M, 0), 0);
	for (i = 0; i < n; i++) {
		double share = (double)nm_maglev_count(t, M, be[i].id) / M;
		double want = (double)be[i].weight / (double)wsum;

		total += nm_maglev_count(t, M, be[i].id);
		if (share - want > 0.01 || want - share > 0.01)
			fail_msg("backend %zu of %zu: share %.4f, want %.4f +- 0.01",
				 i, n, share, want);
	}
	assert_int_equal(total, M);
	free(t);
	free(be);
}

static void test_share_equal_3(void **state)
{
	(void)state;
	check_shares(3, NULL);
}

static void test_share_equal_7(void **state)
{
	(void)state;
	check_shares(7, NULL);
}

static void test_share_equal_100(void **state)
{
	(void)state;
	check_shares(100, NULL);
}

static void test_share_weighted_1234(void **state)
{
	static const __u32 w[] = { 1, 2, 3, 4 };

	(void)state;
	check_shares(4, w);
}

static void test_share_weighted_mixed(void **state)
{
	static const __u32 w[] = { 10, 1, 5, 100, 1, 50, 7 };

	(void)state;
	check_shares(7, w);
}

/* Removing one of n backends remaps at most 1/n + 1% of the slots. */
static void check_removal(size_t n)
{
	struct nm_maglev_backend *be = calloc(n, sizeof(*be));
	size_t victim, worst = 0;
	__u32 *full, *less;

	assert_non_null(be);
	make_backends(be, n, NULL);
	full = build(be, n, M);
	/* Try every position so no lucky choice hides a bad case. */
	for (victim = 0; victim < n; victim++) {
		struct nm_maglev_backend *rest = calloc(n, sizeof(*rest));
		size_t i, k = 0, d;

		assert_non_null(rest);
		for (i = 0; i < n; i++)
			if (i != victim)
				rest[k++] = be[i];
		less = build(rest, n - 1, M);
		d = nm_maglev_diff(full, less, M);
		if (d > worst)
			worst = d;
		free(less);
		free(rest);
	}
	if ((double)worst / M > 1.0 / (double)n + 0.01)
		fail_msg("n=%zu: removing one backend remapped %zu of %u slots (%.4f > %.4f)",
			 n, worst, M, (double)worst / M, 1.0 / (double)n + 0.01);
	free(full);
	free(be);
}

static void test_removal_3(void **state)
{
	(void)state;
	check_removal(3);
}

static void test_removal_10(void **state)
{
	(void)state;
	check_removal(10);
}

static void test_removal_50(void **state)
{
	(void)state;
	check_removal(50);
}

static void test_deterministic_order(void **state)
{
	struct nm_maglev_backend be[20], rev[20];
	__u32 *a, *b, *c;
	size_t i;

	(void)state;
	make_backends(be, 20, NULL);
	for (i = 0; i < 20; i++)
		rev[i] = be[(i * 7) % 20]; /* 7 is coprime to 20: a shuffle */
	a = build(be, 20, M);
	b = build(rev, 20, M);
	c = build(be, 20, M);
	assert_int_equal(nm_maglev_diff(a, b, M), 0);
	assert_int_equal(nm_maglev_diff(a, c, M), 0);
	free(c);
	free(b);
	free(a);
}

/* Pin the hash: a change here reshuffles every table in a running mesh. */
static void test_hash_stable(void **state)
{
	(void)state;
	assert_int_equal(nm_hash64("", 0, 0), nm_hash64("", 0, 0));
	assert_int_not_equal(nm_hash64("a", 1, 0), nm_hash64("a", 1, 1));
	assert_int_not_equal(nm_hash64("a", 1, 0), nm_hash64("b", 1, 0));
}

static void test_m_validation(void **state)
{
	static const __u32 bad[] = { 0, 1, 2, 5, 6, 9, 16383, 16384,
				     NM_MAGLEV_M_MAX + 1, 262147, 0xffffffffu };
	static const __u32 good[] = { 7, 11, 251, 16381, 65521, NM_MAGLEV_M_MAX };
	struct nm_maglev_backend be[1];
	char err[128];
	__u32 t[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(nm_maglev_check_m(bad[i], err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "bad Maglev table size"));
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(nm_maglev_check_m(good[i], err, sizeof(err)), 0);
	assert_non_null(strstr((nm_maglev_check_m(9, err, sizeof(err)), err),
			       "prime"));
	make_backends(be, 1, NULL);
	assert_int_equal(nm_maglev_build(be, 1, 9, t), -EINVAL);
	assert_int_equal(nm_maglev_build(be, 1, 5, t), -EINVAL);
}

static void test_bad_backends(void **state)
{
	struct nm_maglev_backend be[2];
	__u32 t[7];

	(void)state;
	make_backends(be, 2, NULL);
	be[1].weight = 0;
	assert_int_equal(nm_maglev_build(be, 2, 7, t), -EINVAL);
	make_backends(be, 2, NULL);
	be[1].id = 0;
	assert_int_equal(nm_maglev_build(be, 2, 7, t), -EINVAL);
	make_backends(be, 2, NULL);
	be[1].addr = be[0].addr; /* same (addr, port, proto): duplicate */
	assert_int_equal(nm_maglev_build(be, 2, 7, t), -EINVAL);
}

static void test_no_backends(void **state)
{
	__u32 t[7];
	size_t i;

	(void)state;
	memset(t, 0xff, sizeof(t));
	assert_int_equal(nm_maglev_build(NULL, 0, 7, t), 0);
	for (i = 0; i < 7; i++)
		assert_int_equal(t[i], 0);
}

static void test_one_backend_fills(void **state)
{
	struct nm_maglev_backend be[1];
	__u32 *t;

	(void)state;
	make_backends(be, 1, NULL);
	t = build(be, 1, M);
	assert_int_equal(nm_maglev_count(t, M, be[0].id), M);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_share_equal_3),
		cmocka_unit_test(test_share_equal_7),
		cmocka_unit_test(test_share_equal_100),
		cmocka_unit_test(test_share_weighted_1234),
		cmocka_unit_test(test_share_weighted_mixed),
		cmocka_unit_test(test_removal_3),
		cmocka_unit_test(test_removal_10),
		cmocka_unit_test(test_removal_50),
		cmocka_unit_test(test_deterministic_order),
		cmocka_unit_test(test_hash_stable),
		cmocka_unit_test(test_m_validation),
		cmocka_unit_test(test_bad_backends),
		cmocka_unit_test(test_no_backends),
		cmocka_unit_test(test_one_backend_fills),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
