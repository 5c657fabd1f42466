// SPDX-License-Identifier: GPL-2.0
/* Selector matching: every operator, absent keys, the empty selector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent/labels.h"
#include "agent/policy.h"

/* Expressions built on the stack: the selector code never frees them. */
#define EXPR(k, o, ...)                                                     \
	((struct nm_sel_expr){                                              \
		.key = (char *)(k),                                         \
		.op = (o),                                                  \
		.values = (char *[]){ __VA_ARGS__ },                        \
		.n_values =                                                 \
			sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *), \
	})
#define EXPR0(k, o) ((struct nm_sel_expr){ .key = (char *)(k), .op = (o) })

static struct nm_labels labels(const char *s)
{
	struct nm_labels l = { 0 };
	char err[256];

	if (nm_labels_parse(s, &l, err, sizeof(err)))
		fail_msg("labels '%s': %s", s, err);
	return l;
}

static bool match1(struct nm_sel_expr e, const char *lbl)
{
	struct nm_selector s = { .exprs = &e, .n = 1 };
	struct nm_labels l = labels(lbl);
	bool m = nm_selector_match(&s, &l);

	nm_labels_free(&l);
	return m;
}

static void test_empty_selector_matches_all(void **state)
{
	struct nm_selector s = { 0 };
	struct nm_labels none = { 0 }, some = labels("app=web,tier=db");

	(void)state;
	assert_true(nm_selector_match(&s, &none));
	assert_true(nm_selector_match(&s, &some));
	assert_false(nm_selector_has_key(&s, "app"));
	nm_labels_free(&some);
}

static void test_in(void **state)
{
	(void)state;
	assert_true(match1(EXPR("app", NM_SEL_IN, "web"), "app=web"));
	assert_true(match1(EXPR("app", NM_SEL_IN, "api", "web"), "app=web"));
	assert_false(match1(EXPR("app", NM_SEL_IN, "api", "db"), "app=web"));
	/* Absent key: In never matches. */
	assert_false(match1(EXPR("app", NM_SEL_IN, "web"), "tier=web"));
	assert_false(match1(EXPR("app", NM_SEL_IN, "web"), ""));
	/* Values compare exactly: case and empty value. */
	assert_false(match1(EXPR("app", NM_SEL_IN, "Web"), "app=web"));
	assert_true(match1(EXPR("app", NM_SEL_IN, ""), "app="));
	assert_false(match1(EXPR("app", NM_SEL_IN, ""), "x=1"));
}

static void test_not_in(void **state)
{
	(void)state;
	assert_false(match1(EXPR("app", NM_SEL_NOT_IN, "web"), "app=web"));
	assert_false(
		match1(EXPR("app", NM_SEL_NOT_IN, "db", "web"), "app=web"));
	assert_true(match1(EXPR("app", NM_SEL_NOT_IN, "db"), "app=web"));
	/* Kubernetes: an absent key is not in any set. */
	assert_true(match1(EXPR("app", NM_SEL_NOT_IN, "web"), "tier=web"));
	assert_true(match1(EXPR("app", NM_SEL_NOT_IN, "web"), ""));
}

static void test_exists(void **state)
{
	(void)state;
	assert_true(match1(EXPR0("app", NM_SEL_EXISTS), "app=web"));
	assert_true(match1(EXPR0("app", NM_SEL_EXISTS), "app="));
	assert_false(match1(EXPR0("app", NM_SEL_EXISTS), "apps=web"));
	assert_false(match1(EXPR0("app", NM_SEL_EXISTS), ""));
}

static void test_does_not_exist(void **state)
{
	(void)state;
	assert_false(match1(EXPR0("app", NM_SEL_DOES_NOT_EXIST), "app=web"));
	assert_false(match1(EXPR0("app", NM_SEL_DOES_NOT_EXIST), "app="));
	assert_true(match1(EXPR0("app", NM_SEL_DOES_NOT_EXIST), "tier=db"));
	assert_true(match1(EXPR0("app", NM_SEL_DOES_NOT_EXIST), ""));
}

static void test_all_expressions_must_hold(void **state)
{
	struct nm_sel_expr e[] = {
		EXPR("app", NM_SEL_IN, "web"),
		EXPR("nodemesh.io/cluster", NM_SEL_IN, "east", "west"),
		EXPR0("canary", NM_SEL_DOES_NOT_EXIST),
		EXPR("tier", NM_SEL_NOT_IN, "db"),
	};
	struct nm_selector s = { .exprs = e, .n = 4 };
	static const struct {
		const char *labels;
		bool match;
	} cases[] = {
		{ "app=web,nodemesh.io/cluster=east", true },
		{ "app=web,nodemesh.io/cluster=west,tier=fe", true },
		{ "app=web,nodemesh.io/cluster=north", false },
		{ "app=web", false },
		{ "app=web,nodemesh.io/cluster=east,canary=", false },
		{ "app=web,nodemesh.io/cluster=east,tier=db", false },
		{ "app=api,nodemesh.io/cluster=east", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nm_labels l = labels(cases[i].labels);

		if (nm_selector_match(&s, &l) != cases[i].match)
			fail_msg("labels '%s': want match=%d", cases[i].labels,
				 cases[i].match);
		nm_labels_free(&l);
	}
}

static void test_has_key(void **state)
{
	struct nm_sel_expr e[] = {
		EXPR("app", NM_SEL_IN, "web"),
		EXPR0(NM_LABEL_CLUSTER, NM_SEL_EXISTS),
	};
	struct nm_selector s = { .exprs = e, .n = 2 };

	(void)state;
	assert_true(nm_selector_has_key(&s, "app"));
	assert_true(nm_selector_has_key(&s, NM_LABEL_CLUSTER));
	assert_false(nm_selector_has_key(&s, NM_LABEL_NAMESPACE));
	assert_false(nm_selector_has_key(&s, "ap"));
}

static void test_selector_free(void **state)
{
	struct nm_selector s = { 0 };

	(void)state;
	s.exprs = calloc(1, sizeof(*s.exprs));
	assert_non_null(s.exprs);
	s.n = 1;
	s.exprs[0].key = strdup("app");
	s.exprs[0].values = calloc(1, sizeof(char *));
	assert_non_null(s.exprs[0].values);
	s.exprs[0].values[0] = strdup("web");
	s.exprs[0].n_values = 1;
	nm_selector_free(&s);
	assert_int_equal(s.n, 0);
	assert_null(s.exprs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_selector_matches_all),
		cmocka_unit_test(test_in),
		cmocka_unit_test(test_not_in),
		cmocka_unit_test(test_exists),
		cmocka_unit_test(test_does_not_exist),
		cmocka_unit_test(test_all_expressions_must_hold),
		cmocka_unit_test(test_has_key),
		cmocka_unit_test(test_selector_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
