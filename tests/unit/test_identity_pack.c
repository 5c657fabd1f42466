// SPDX-License-Identifier: GPL-2.0
/* Identity packing shared by bpf/ and agent/: edges and round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maps/identity.h"

static void test_cluster0_local0(void **state)
{
	(void)state;
	assert_int_equal(nm_identity_pack(0, 0), 0);
	assert_int_equal(nm_identity_pack(0, 0), NM_ID_ANY);
	assert_int_equal(nm_identity_cluster(0), 0);
	assert_int_equal(nm_identity_local(0), 0);
}

static void test_cluster_max(void **state)
{
	__u64 id = nm_identity_pack(65535, 1);

	(void)state;
	assert_int_equal(id, (65535ULL << 24) | 1);
	assert_int_equal(nm_identity_cluster(id), 65535);
	assert_int_equal(nm_identity_local(id), 1);
	/* 16 + 24 bits: the whole identity fits in 40 bits. */
	assert_true(nm_identity_pack(65535, NM_ID_LOCAL_MAX) < (1ULL << 40));
}

static void test_local_max(void **state)
{
	__u64 id = nm_identity_pack(7, (1U << 24) - 1);

	(void)state;
	assert_int_equal(NM_ID_LOCAL_MAX, (1U << 24) - 1);
	assert_int_equal(nm_identity_cluster(id), 7);
	assert_int_equal(nm_identity_local(id), (1U << 24) - 1);
	assert_int_equal(nm_identity_pack(65535, NM_ID_LOCAL_MAX),
			 (1ULL << 40) - 1);
}

static void test_local_bits_masked(void **state)
{
	(void)state;
	/* Bits above 24 must not leak into the cluster field. */
	assert_int_equal(nm_identity_pack(3, 1U << 24), nm_identity_pack(3, 0));
	assert_int_equal(nm_identity_pack(3, 0xff000123U),
			 nm_identity_pack(3, 0x123));
	assert_int_equal(nm_identity_cluster(nm_identity_pack(3, 0xffffffffU)),
			 3);
	assert_int_equal(nm_identity_local(nm_identity_pack(3, 0xffffffffU)),
			 NM_ID_LOCAL_MASK);
}

static void test_round_trip(void **state)
{
	static const __u16 clusters[] = { 0,   1,   2,	   255,	  256,
					  511, 512, 32768, 65534, 65535 };
	static const __u32 locals[] = {
		0, 1, 255, 256, 0x7fffff, 0x800000, 0xfffffe, 0xffffff
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(clusters) / sizeof(clusters[0]); i++) {
		for (j = 0; j < sizeof(locals) / sizeof(locals[0]); j++) {
			__u64 id = nm_identity_pack(clusters[i], locals[j]);

			assert_int_equal(nm_identity_cluster(id), clusters[i]);
			assert_int_equal(nm_identity_local(id), locals[j]);
		}
	}
}

static void test_reserved_and_cidr(void **state)
{
	(void)state;
	assert_true(nm_identity_is_reserved(NM_ID_WORLD));
	assert_true(nm_identity_is_reserved(NM_ID_RESERVED_MAX));
	assert_false(nm_identity_is_reserved(nm_identity_pack(0, 256)));
	/* A cluster's low local ids are not the reserved ones. */
	assert_false(nm_identity_is_reserved(nm_identity_pack(1, 2)));
	assert_true(nm_identity_is_cidr(nm_identity_pack(0, NM_ID_CIDR_BASE)));
	assert_true(nm_identity_is_cidr(nm_identity_pack(0, NM_ID_LOCAL_MAX)));
	assert_false(
		nm_identity_is_cidr(nm_identity_pack(0, NM_ID_CIDR_BASE - 1)));
	assert_false(nm_identity_is_cidr(nm_identity_pack(1, NM_ID_CIDR_BASE)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cluster0_local0),
		cmocka_unit_test(test_cluster_max),
		cmocka_unit_test(test_local_max),
		cmocka_unit_test(test_local_bits_masked),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_reserved_and_cidr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
