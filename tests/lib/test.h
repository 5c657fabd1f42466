/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Minimal TAP test harness for the tests that need root and real BPF
 * (tests/bpf, bench helpers). Assertions print the expression, the actual
 * and the expected value and return a bool so a test can stop cleanly:
 *
 *	if (!ASSERT_EQ(ret, TC_ACT_OK, "verdict"))
 *		goto out;
 */
#ifndef NM_TESTS_TEST_H
#define NM_TESTS_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct nm_test {
	const char *name;
	void (*fn)(void);
};

#define NM_TEST(fn) { #fn, fn }

/* Mark the running test failed (assertions call this). */
void nm_test_fail(void);
/* Mark the running test skipped, with the reason printed in the TAP line. */
void nm_test_skip(const char *reason);
/* CLOCK_MONOTONIC in seconds, and a plain sleep, for timing and polling. */
double nm_test_now_s(void);
void nm_test_sleep_ms(long ms);

/* Poll @cond every 10 ms for up to @secs; true once it holds. */
#define NM_WAIT_FOR(cond, secs)                                       \
	({                                                            \
		double ___t0 = nm_test_now_s();                       \
		bool ___ok;                                           \
		while (!(___ok = (cond)) &&                           \
		       nm_test_now_s() - ___t0 < (secs))              \
			nm_test_sleep_ms(10);                         \
		___ok;                                                \
	})

/* Run every test, print TAP on stdout; returns the number that failed. */
int nm_test_run(const struct nm_test *tests, size_t n);

#define NM_TEST_RUN(tests) nm_test_run(tests, sizeof(tests) / sizeof((tests)[0]))

#define ASSERT_TRUE(cond, what)                                                \
	({                                                                     \
		bool ___ok = !!(cond);                                         \
		if (!___ok) {                                                  \
			printf("# %s:%d: %s: expected true: %s\n", __FILE__,   \
			       __LINE__, (what), #cond);                       \
			nm_test_fail();                                        \
		}                                                              \
		___ok;                                                         \
	})

#define ASSERT_CMP(a, op, b, what)                                             \
	({                                                                     \
		long long ___a = (long long)(a), ___b = (long long)(b);        \
		bool ___ok = ___a op ___b;                                     \
		if (!___ok) {                                                  \
			printf("# %s:%d: %s: %s %s %s: actual %lld (0x%llx), " \
			       "expected %s %lld (0x%llx)\n",                  \
			       __FILE__, __LINE__, (what), #a, #op, #b, ___a,  \
			       (unsigned long long)___a, #op, ___b,            \
			       (unsigned long long)___b);                      \
			nm_test_fail();                                        \
		}                                                              \
		___ok;                                                         \
	})

#define ASSERT_EQ(a, b, what) ASSERT_CMP(a, ==, b, what)
#define ASSERT_NEQ(a, b, what) ASSERT_CMP(a, !=, b, what)
#define ASSERT_LT(a, b, what) ASSERT_CMP(a, <, b, what)
#define ASSERT_LE(a, b, what) ASSERT_CMP(a, <=, b, what)
#define ASSERT_GT(a, b, what) ASSERT_CMP(a, >, b, what)
#define ASSERT_GE(a, b, what) ASSERT_CMP(a, >=, b, what)
#define ASSERT_OK(err, what) ASSERT_CMP(err, ==, 0, what)

#define ASSERT_MEMEQ(a, b, len, what)                                           \
	({                                                                     \
		bool ___ok = memcmp((a), (b), (len)) == 0;                     \
		if (!___ok) {                                                  \
			printf("# %s:%d: %s: %s and %s differ over %zu bytes\n", \
			       __FILE__, __LINE__, (what), #a, #b,             \
			       (size_t)(len));                                 \
			nm_test_fail();                                        \
		}                                                              \
		___ok;                                                         \
	})

#endif /* NM_TESTS_TEST_H */
