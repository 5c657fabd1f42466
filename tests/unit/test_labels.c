// SPDX-License-Identifier: GPL-2.0
/* Label syntax (Kubernetes rules) and the canonical sorted label set. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent/labels.h"

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void key_ok(const char *k)
{
	char err[512] = "";

	if (nm_label_key_check(k, err, sizeof(err)))
		fail_msg("key '%s' refused: %s", k, err);
}

static void key_bad(const char *k, const char *frag)
{
	char err[512] = "";

	if (nm_label_key_check(k, err, sizeof(err)) != -EINVAL)
		fail_msg("key '%s' accepted", k);
	if (!strstr(err, frag))
		fail_msg("key '%s': reason '%s' lacks '%s'", k, err, frag);
}

static void test_key_valid(void **state)
{
	(void)state;
	key_ok("app");
	key_ok("a");
	key_ok("A");
	key_ok("9");
	key_ok("app.kubernetes.io/name");
	key_ok("nodemesh.io/cluster");
	key_ok("my-Key_1.x");
	key_ok("example.com/Tier");
	key_ok("a-b.c-d/x");
}

static void test_key_invalid(void **state)
{
	(void)state;
	key_bad("", "empty key");
	key_bad("-app", "begin and end");
	key_bad("app-", "begin and end");
	key_bad("_app", "begin and end");
	key_bad("a b", "only letters");
	key_bad("a=b", "only letters");
	key_bad("/app", "empty prefix");
	key_bad("example.com/", "empty name");
	key_bad("Example.com/app", "DNS subdomain");
	key_bad("exa_mple.com/app", "DNS subdomain");
	key_bad("example..com/app", "empty DNS label");
	key_bad("-example.com/app", "begin and end");
	key_bad("a/b/c", "only letters");
}

static void test_key_lengths(void **state)
{
	char *name63 = repeat('n', 63), *name64 = repeat('n', 64);
	char *pre253 = repeat('p', 253), *buf;

	(void)state;
	key_ok(name63);
	key_bad(name64, "longer than 63");
	/* A 253-character prefix must still be DNS labels of <= 63. */
	buf = malloc(400);
	assert_non_null(buf);
	snprintf(buf, 400, "%.63s.%.63s.%.63s.%.61s/%s", pre253, pre253, pre253,
		 pre253, name63);
	assert_int_equal(strlen(buf), 253 + 1 + 63);
	key_ok(buf);
	snprintf(buf, 400, "%.64s/x", pre253);
	key_bad(buf, "longer than 63");
	snprintf(buf, 400, "%.63s.%.63s.%.63s.%.62s/x", pre253, pre253, pre253,
		 pre253);
	key_bad(buf, "prefix longer than 253");
	free(buf);
	free(pre253);
	free(name64);
	free(name63);
}

static void test_value_syntax(void **state)
{
	char err[256];
	char *v63 = repeat('v', 63), *v64 = repeat('v', 64);

	(void)state;
	assert_int_equal(nm_label_value_check("", err, sizeof(err)), 0);
	assert_int_equal(nm_label_value_check("frontend", err, sizeof(err)), 0);
	assert_int_equal(nm_label_value_check("v1.2-beta_3", err, sizeof(err)),
			 0);
	assert_int_equal(nm_label_value_check("X", err, sizeof(err)), 0);
	assert_int_equal(nm_label_value_check(v63, err, sizeof(err)), 0);
	assert_int_equal(nm_label_value_check(v64, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than 63"));
	assert_int_equal(nm_label_value_check("-x", err, sizeof(err)), -EINVAL);
	assert_int_equal(nm_label_value_check("x.", err, sizeof(err)), -EINVAL);
	assert_int_equal(nm_label_value_check("a/b", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(nm_label_value_check("a b", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "invalid label value 'a b'"));
	free(v64);
	free(v63);
}

static void test_set_sorted_canonical(void **state)
{
	struct nm_labels l = { 0 };
	char *s;

	(void)state;
	assert_int_equal(nm_labels_set(&l, "zeta", "1"), 0);
	assert_int_equal(nm_labels_set(&l, "app", "web"), 0);
	assert_int_equal(nm_labels_set(&l, "nodemesh.io/namespace", "prod"), 0);
	assert_int_equal(nm_labels_set(&l, "Tier", ""), 0);
	assert_int_equal(l.n, 4);
	s = nm_labels_str(&l);
	assert_non_null(s);
	/* Byte order: uppercase before lowercase. */
	assert_string_equal(s,
			    "Tier=,app=web,nodemesh.io/namespace=prod,zeta=1");
	free(s);
	/* Replace keeps one key. */
	assert_int_equal(nm_labels_set(&l, "app", "api"), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(nm_labels_get(&l, "app"), "api");
	assert_string_equal(nm_labels_get(&l, "Tier"), "");
	assert_null(nm_labels_get(&l, "tier"));
	assert_null(nm_labels_get(&l, "missing"));
	nm_labels_free(&l);
	assert_int_equal(l.n, 0);
	assert_null(l.v);
}

static void test_empty_set(void **state)
{
	struct nm_labels l = { 0 }, m = { 0 };
	char err[128], *s;

	(void)state;
	s = nm_labels_str(&l);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	assert_null(nm_labels_get(&l, "x"));
	assert_int_equal(nm_labels_parse("", &m, err, sizeof(err)), 0);
	assert_int_equal(m.n, 0);
	assert_true(nm_labels_equal(&l, &m));
}

static void test_parse_order_independent(void **state)
{
	struct nm_labels a = { 0 }, b = { 0 }, c = { 0 };
	char err[256], *sa, *sb;

	(void)state;
	assert_int_equal(nm_labels_parse("b=2,a=1,c=", &a, err, sizeof(err)),
			 0);
	assert_int_equal(nm_labels_parse("c=,a=1,b=2", &b, err, sizeof(err)),
			 0);
	assert_true(nm_labels_equal(&a, &b));
	sa = nm_labels_str(&a);
	sb = nm_labels_str(&b);
	assert_non_null(sa);
	assert_non_null(sb);
	assert_string_equal(sa, "a=1,b=2,c=");
	assert_string_equal(sa, sb);
	/* The canonical string parses back to the same set. */
	assert_int_equal(nm_labels_parse(sa, &c, err, sizeof(err)), 0);
	assert_true(nm_labels_equal(&a, &c));
	assert_int_equal(nm_labels_set(&c, "a", "9"), 0);
	assert_false(nm_labels_equal(&a, &c));
	free(sa);
	free(sb);
	nm_labels_free(&a);
	nm_labels_free(&b);
	nm_labels_free(&c);
}

static void parse_bad(const char *s, const char *frag)
{
	struct nm_labels l = { 0 };
	char err[256] = "";

	if (nm_labels_parse(s, &l, err, sizeof(err)) != -EINVAL)
		fail_msg("'%s' accepted", s);
	if (!strstr(err, frag))
		fail_msg("'%s': reason '%s' lacks '%s'", s, err, frag);
	/* Untouched on error. */
	assert_int_equal(l.n, 0);
	assert_null(l.v);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	parse_bad("app", "missing '='");
	parse_bad("a=1,,b=2", "empty label");
	parse_bad("a=1,", "empty label");
	parse_bad(",a=1", "empty label");
	parse_bad("a=1,a=2", "duplicate label key 'a'");
	parse_bad("=x", "empty key");
	parse_bad("a b=1", "invalid label key");
	parse_bad("a=-1", "invalid label value");
}

static void test_copy_equal(void **state)
{
	struct nm_labels a = { 0 }, b = { 0 };
	char err[128];

	(void)state;
	assert_int_equal(nm_labels_parse("x=1,y=2", &a, err, sizeof(err)), 0);
	assert_int_equal(nm_labels_copy(&b, &a), 0);
	assert_true(nm_labels_equal(&a, &b));
	/* Deep copy: changing one leaves the other. */
	assert_int_equal(nm_labels_set(&b, "x", "3"), 0);
	assert_string_equal(nm_labels_get(&a, "x"), "1");
	assert_false(nm_labels_equal(&a, &b));
	nm_labels_free(&a);
	nm_labels_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_valid),
		cmocka_unit_test(test_key_invalid),
		cmocka_unit_test(test_key_lengths),
		cmocka_unit_test(test_value_syntax),
		cmocka_unit_test(test_set_sorted_canonical),
		cmocka_unit_test(test_empty_set),
		cmocka_unit_test(test_parse_order_independent),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_copy_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
