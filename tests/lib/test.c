// SPDX-License-Identifier: GPL-2.0
#include <time.h>

#include "tests/lib/test.h"

static bool cur_failed;
static const char *cur_skip;

void nm_test_fail(void)
{
	cur_failed = true;
}

void nm_test_skip(const char *reason)
{
	cur_skip = reason;
}

int nm_test_run(const struct nm_test *tests, size_t n)
{
	int failed = 0;
	size_t i;

	printf("1..%zu\n", n);
	fflush(stdout);
	for (i = 0; i < n; i++) {
		cur_failed = false;
		cur_skip = NULL;
		tests[i].fn();
		if (cur_failed) {
			failed++;
			printf("not ok %zu - %s\n", i + 1, tests[i].name);
		} else if (cur_skip) {
			printf("ok %zu - %s # SKIP %s\n", i + 1, tests[i].name,
			       cur_skip);
		} else {
			printf("ok %zu - %s\n", i + 1, tests[i].name);
		}
		fflush(stdout);
	}
	return failed;
}

double nm_test_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void nm_test_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}
