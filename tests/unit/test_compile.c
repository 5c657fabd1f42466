// SPDX-License-Identifier: GPL-2.0
/*
 * Policy compiler: exact output for a fixed identity set (two clusters,
 * two namespaces, CIDR identities, WORLD), deny precedence, scoping,
 * determinism, and a 1,000 identities x 100 rules run whose time is
 * printed, never asserted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "agent/labels.h"
#include "agent/policy.h"
#include "maps/endpoint.h"
#include "maps/identity.h"

#define MANIFEST "tests/unit/manifests/compile.yaml"

#define C_WEST 1
#define C_EAST 2
#define W_FE nm_identity_pack(C_WEST, 256)
#define W_PAY nm_identity_pack(C_WEST, 257)
#define W_DB nm_identity_pack(C_WEST, 258)
#define W_OTHER_FE nm_identity_pack(C_WEST, 259)
#define E_FE nm_identity_pack(C_EAST, 256)
#define E_PAY nm_identity_pack(C_EAST, 257)
#define CIDR_10 nm_identity_pack(0, NM_ID_CIDR_BASE)
#define CIDR_10_1 nm_identity_pack(0, NM_ID_CIDR_BASE + 1)
#define CIDR_192 nm_identity_pack(0, NM_ID_CIDR_BASE + 2)

#define IN NM_POLICY_INGRESS
#define EG NM_POLICY_EGRESS
#define A NM_POLICY_ALLOW
#define D NM_POLICY_DENY
#define TCP IPPROTO_TCP
#define UDP IPPROTO_UDP

struct fixture {
	struct nm_identity_info ids[16];
	size_t n_ids;
	struct nm_ep_info eps[4];
	size_t n_eps;
	struct nm_policy_set set;
};

static void add_id(struct fixture *f, __u64 id, const char *labels)
{
	struct nm_identity_info *info = &f->ids[f->n_ids++];
	char err[256];

	memset(info, 0, sizeof(*info));
	info->id = id;
	if (nm_labels_parse(labels, &info->labels, err, sizeof(err)))
		fail_msg("labels '%s': %s", labels, err);
}

static void add_cidr_id(struct fixture *f, __u64 id, const char *addr, __u8 len)
{
	struct nm_identity_info *info = &f->ids[f->n_ids++];

	memset(info, 0, sizeof(*info));
	info->id = id;
	info->is_cidr = true;
	assert_int_equal(inet_pton(AF_INET, addr, &info->cidr.addr), 1);
	info->cidr.len = len;
}

#define SHOP_W "nodemesh.io/namespace=shop,nodemesh.io/cluster=west"
#define SHOP_E "nodemesh.io/namespace=shop,nodemesh.io/cluster=east"

static void fixture_init(struct fixture *f)
{
	struct nm_error err;

	memset(f, 0, sizeof(*f));
	add_id(f, W_FE, SHOP_W ",app=frontend");
	add_id(f, W_PAY, SHOP_W ",app=payments");
	add_id(f, W_DB, SHOP_W ",app=db");
	add_id(f, W_OTHER_FE,
	       "nodemesh.io/namespace=other,nodemesh.io/cluster=west,app=frontend");
	add_id(f, E_FE, SHOP_E ",app=frontend");
	add_id(f, E_PAY, SHOP_E ",app=payments");
	add_cidr_id(f, CIDR_10, "10.0.0.0", 8);
	add_cidr_id(f, CIDR_10_1, "10.1.0.0", 16);
	add_cidr_id(f, CIDR_192, "192.168.0.0", 16);
	add_id(f, NM_ID_WORLD, "reserved=world");
	f->eps[0] = (struct nm_ep_info){ .endpoint_id = 11, .identity = W_PAY };
	f->eps[1] = (struct nm_ep_info){ .endpoint_id = 12, .identity = W_DB };
	f->eps[2] = (struct nm_ep_info){ .endpoint_id = 13,
					 .identity = W_OTHER_FE };
	f->n_eps = 3;
	if (nm_policy_parse_file(MANIFEST, &f->set, &err))
		fail_msg("%s:%u: %s", err.file, err.line, err.reason);
}

static void fixture_free(struct fixture *f)
{
	size_t i;

	for (i = 0; i < f->n_ids; i++)
		nm_labels_free(&f->ids[i].labels);
	nm_policy_set_free(&f->set);
}

static struct nm_policy_entry entry(__u32 ep, __u8 dir, __u64 peer, __u16 port,
				    __u8 proto, __u8 verdict, __u32 rule_id)
{
	struct nm_policy_entry e;

	memset(&e, 0, sizeof(e));
	e.key.identity = peer;
	e.key.endpoint_id = ep;
	e.key.dport = htons(port);
	e.key.proto = proto;
	e.key.dir = dir;
	e.val.verdict = verdict;
	e.val.rule_id = rule_id;
	return e;
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(&((const struct nm_policy_entry *)a)->key,
		      &((const struct nm_policy_entry *)b)->key,
		      sizeof(struct nm_policy_key));
}

static const struct nm_policy_entry *lookup(const struct nm_compiled *c,
					    struct nm_policy_entry want)
{
	return bsearch(&want, c->entries, c->n, sizeof(*c->entries), cmp_key);
}

static void print_entry(const char *what, const struct nm_policy_entry *e)
{
	print_message(
		"# %s: ep %u dir %u id 0x%llx port %u proto %u -> verdict %u rule %u\n",
		what, e->key.endpoint_id, e->key.dir,
		(unsigned long long)e->key.identity, ntohs(e->key.dport),
		e->key.proto, e->val.verdict, e->val.rule_id);
}

static void assert_sorted_unique(const struct nm_compiled *c)
{
	size_t i, j;

	for (i = 1; i < c->n; i++) {
		if (cmp_key(&c->entries[i - 1], &c->entries[i]) >= 0)
			fail_msg("entries %zu and %zu out of order", i - 1, i);
	}
	for (i = 0; i < c->n; i++) {
		for (j = 0; j < sizeof(c->entries[i].val.pad); j++)
			assert_int_equal(c->entries[i].val.pad[j], 0);
		assert_in_range(c->entries[i].val.rule_id, 1, c->n_rules);
	}
}

static void compile(struct fixture *f, const char *cluster,
		    struct nm_compiled *out)
{
	int ret = nm_policy_compile(&f->set, f->ids, f->n_ids, f->eps, f->n_eps,
				    cluster, out);

	if (ret)
		fail_msg("compile: %s", strerror(-ret));
	assert_sorted_unique(out);
}

static void test_exact_output(void **state)
{
	struct nm_policy_entry want[] = {
		/* ep 11 (shop payments), ingress: policy a-payments. */
		entry(11, IN, W_FE, 443, TCP, A, 3),
		entry(11, IN, W_FE, 8443, TCP, A, 3),
		entry(11, IN, W_FE, 8443, UDP, D, 6),
		entry(11, IN, E_FE, 443, TCP, A, 4),
		entry(11, IN, E_PAY, 443, TCP, A, 4),
		entry(11, IN, CIDR_10, 0, 0, A, 5),
		entry(11, IN, CIDR_10_1, 0, 0, A, 5),
		/* ep 12 (shop db), egress: policy b-db-egress. */
		entry(12, EG, CIDR_10, 53, TCP, A, 7),
		entry(12, EG, CIDR_10, 53, UDP, A, 7),
		entry(12, EG, CIDR_10_1, 53, TCP, A, 7),
		entry(12, EG, CIDR_10_1, 53, UDP, A, 7),
		entry(12, EG, CIDR_192, 53, TCP, A, 7),
		entry(12, EG, CIDR_192, 53, UDP, A, 7),
		entry(12, EG, NM_ID_WORLD, 53, TCP, A, 7),
		entry(12, EG, NM_ID_WORLD, 53, UDP, A, 7),
		entry(12, EG, W_FE, 0, 0, D, 9),
		entry(12, EG, W_PAY, 0, 0, D, 9),
		entry(12, EG, W_DB, 0, 0, D, 9),
		/* ep 13 (other frontend): policy c-any. */
		entry(13, IN, NM_ID_ANY, 0, 0, A, 1),
		entry(13, EG, W_PAY, 443, TCP, A, 2),
	};
	size_t n = sizeof(want) / sizeof(want[0]), i;
	struct nm_compiled c = { 0 };
	struct fixture f;

	(void)state;
	fixture_init(&f);
	compile(&f, "west", &c);
	qsort(want, n, sizeof(want[0]), cmp_key);
	for (i = 0; i < c.n && i < n; i++) {
		if (memcmp(&c.entries[i], &want[i], sizeof(want[i]))) {
			print_entry("got ", &c.entries[i]);
			print_entry("want", &want[i]);
			fail_msg("entry %zu differs", i);
		}
	}
	assert_int_equal(c.n, n);
	nm_compiled_free(&c);
	fixture_free(&f);
}

static void test_rule_ids(void **state)
{
	static const struct {
		const char *ns, *name;
		enum nm_rule_kind kind;
		size_t index;
	} want[] = {
		{ "other", "c-any", NM_RULE_INGRESS, 0 },
		{ "other", "c-any", NM_RULE_EGRESS, 0 },
		{ "shop", "a-payments", NM_RULE_INGRESS, 0 },
		{ "shop", "a-payments", NM_RULE_INGRESS, 1 },
		{ "shop", "a-payments", NM_RULE_INGRESS, 2 },
		{ "shop", "a-payments", NM_RULE_INGRESS_DENY, 0 },
		{ "shop", "b-db-egress", NM_RULE_EGRESS, 0 },
		{ "shop", "b-db-egress", NM_RULE_EGRESS, 1 },
		{ "shop", "b-db-egress", NM_RULE_EGRESS_DENY, 0 },
		{ "shop", "d-none", NM_RULE_INGRESS, 0 },
	};
	struct nm_compiled c = { 0 };
	struct fixture f;
	size_t i;

	(void)state;
	fixture_init(&f);
	compile(&f, "west", &c);
	assert_int_equal(c.n_rules, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < c.n_rules; i++) {
		assert_int_equal(c.rules[i].rule_id, i + 1);
		assert_string_equal(c.rules[i].ns, want[i].ns);
		assert_string_equal(c.rules[i].name, want[i].name);
		assert_int_equal(c.rules[i].kind, want[i].kind);
		assert_int_equal(c.rules[i].index, want[i].index);
	}
	nm_compiled_free(&c);
	fixture_free(&f);
}

static void test_enforcement_flags(void **state)
{
	struct nm_compiled c = { 0 };
	struct fixture f;

	(void)state;
	fixture_init(&f);
	compile(&f, "west", &c);
	assert_int_equal(c.n_eps, 3);
	/* Same order as the endpoints passed. */
	assert_int_equal(c.eps[0].endpoint_id, 11);
	assert_int_equal(c.eps[0].flags, NM_EP_F_INGRESS_POLICY);
	assert_int_equal(c.eps[1].endpoint_id, 12);
	assert_int_equal(c.eps[1].flags, NM_EP_F_EGRESS_POLICY);
	assert_int_equal(c.eps[2].endpoint_id, 13);
	assert_int_equal(c.eps[2].flags,
			 NM_EP_F_INGRESS_POLICY | NM_EP_F_EGRESS_POLICY);
	nm_compiled_free(&c);
	fixture_free(&f);
}

static void test_deny_wins(void **state)
{
	struct nm_compiled c = { 0 };
	const struct nm_policy_entry *e;
	struct fixture f;

	(void)state;
	fixture_init(&f);
	compile(&f, "west", &c);
	/* Allowed by rule 3, denied by rule 6: one key, deny. */
	e = lookup(&c, entry(11, IN, W_FE, 8443, UDP, 0, 0));
	assert_non_null(e);
	assert_int_equal(e->val.verdict, D);
	assert_int_equal(e->val.rule_id, 6);
	/* Deny wins although its rule id (9) is higher than the allow's (8). */
	e = lookup(&c, entry(12, EG, W_PAY, 0, 0, 0, 0));
	assert_non_null(e);
	assert_int_equal(e->val.verdict, D);
	assert_int_equal(e->val.rule_id, 9);
	/* The TCP twin of the denied UDP key stays allowed. */
	e = lookup(&c, entry(11, IN, W_FE, 8443, TCP, 0, 0));
	assert_non_null(e);
	assert_int_equal(e->val.verdict, A);
	nm_compiled_free(&c);
	fixture_free(&f);
}

static void test_lowest_rule_id_between_equals(void **state)
{
	static const char *const yaml =
		"apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n"
		"metadata: {name: z, namespace: shop}\n"
		"spec:\n  endpointSelector: {}\n  ingress:\n"
		"    - fromEndpoints: [{matchLabels: {app: frontend}}]\n"
		"---\n"
		"apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n"
		"metadata: {name: y, namespace: shop}\n"
		"spec:\n  endpointSelector: {}\n  ingress:\n"
		"    - fromEndpoints: [{}]\n"
		"    - fromEndpoints: [{matchLabels: {app: frontend}}]\n";
	struct nm_compiled c = { 0 };
	const struct nm_policy_entry *e;
	struct nm_error err;
	struct fixture f;

	(void)state;
	fixture_init(&f);
	nm_policy_set_free(&f.set);
	assert_int_equal(nm_policy_parse(yaml, strlen(yaml), "t", &f.set, &err),
			 0);
	compile(&f, "west", &c);
	/* y sorts first: rules 1, 2 are y's, rule 3 is z's. */
	e = lookup(&c, entry(11, IN, W_FE, 0, 0, 0, 0));
	assert_non_null(e);
	assert_int_equal(e->val.verdict, A);
	assert_int_equal(e->val.rule_id, 1);
	e = lookup(&c, entry(12, IN, W_DB, 0, 0, 0, 0));
	assert_non_null(e);
	assert_int_equal(e->val.rule_id, 1);
	/* 2 shop endpoints x 3 local shop identities. */
	assert_int_equal(c.n, 6);
	nm_compiled_free(&c);
	fixture_free(&f);
}

static void test_cluster_and_namespace_scope(void **state)
{
	struct nm_compiled c = { 0 };
	struct fixture f;

	(void)state;
	fixture_init(&f);
	compile(&f, "west", &c);
	/* Rule 3 has no cluster key: west's frontend only, not east's. */
	assert_non_null(lookup(&c, entry(11, IN, W_FE, 443, TCP, 0, 0)));
	assert_null(lookup(&c, entry(11, IN, E_FE, 8443, TCP, 0, 0)));
	/* ... and no namespace key: not other's frontend. */
	assert_null(lookup(&c, entry(11, IN, W_OTHER_FE, 443, TCP, 0, 0)));
	/* Rule 4 names cluster east: east identities only. */
	assert_non_null(lookup(&c, entry(11, IN, E_PAY, 443, TCP, 0, 0)));
	assert_null(lookup(&c, entry(11, IN, W_PAY, 443, TCP, 0, 0)));
	/* Rule 2 (namespace other) names namespace shop explicitly. */
	assert_non_null(lookup(&c, entry(13, EG, W_PAY, 443, TCP, 0, 0)));
	assert_null(lookup(&c, entry(13, EG, E_PAY, 443, TCP, 0, 0)));
	nm_compiled_free(&c);

	/* Compiled as cluster east, the west endpoints are not selected. */
	compile(&f, "east", &c);
	assert_int_equal(c.n, 0);
	assert_int_equal(c.eps[0].flags, 0);
	assert_int_equal(c.eps[1].flags, 0);
	assert_int_equal(c.eps[2].flags, 0);
	nm_compiled_free(&c);
	fixture_free(&f);
}

static void test_cidr_and_world(void **state)
{
	struct nm_compiled c = { 0 };
	struct nm_cidr *cidrs = NULL;
	size_t n = 0;
	struct fixture f;

	(void)state;
	fixture_init(&f);
	compile(&f, "west", &c);
	/* 10/8 holds 10/8 and 10.1/16 but not 192.168/16 or WORLD. */
	assert_non_null(lookup(&c, entry(11, IN, CIDR_10, 0, 0, 0, 0)));
	assert_non_null(lookup(&c, entry(11, IN, CIDR_10_1, 0, 0, 0, 0)));
	assert_null(lookup(&c, entry(11, IN, CIDR_192, 0, 0, 0, 0)));
	assert_null(lookup(&c, entry(11, IN, NM_ID_WORLD, 0, 0, 0, 0)));
	/* 0/0 is WORLD plus every CIDR identity. */
	assert_non_null(lookup(&c, entry(12, EG, NM_ID_WORLD, 53, UDP, 0, 0)));
	assert_non_null(lookup(&c, entry(12, EG, CIDR_192, 53, TCP, 0, 0)));
	nm_compiled_free(&c);

	/* The CIDRs to give identities: sorted, unique, without /0. */
	assert_int_equal(nm_policy_cidrs(&f.set, &cidrs, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cidrs[0].addr, htonl(0x0a000000));
	assert_int_equal(cidrs[0].len, 8);
	free(cidrs);
	fixture_free(&f);
}

static void test_policy_cidrs_sorted_unique(void **state)
{
	static const char *const yaml =
		"apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n"
		"metadata: {name: c}\n"
		"spec:\n  endpointSelector: {}\n"
		"  ingress:\n    - fromCIDR: [192.168.0.0/16, 10.1.0.0/16, 10.0.0.0/8]\n"
		"  egressDeny:\n    - toCIDR: [10.0.0.0/16, 0.0.0.0/0, 10.0.0.0/8, 1.2.3.4/32]\n";
	static const struct {
		__u32 addr;
		__u8 len;
	} want[] = {
		{ 0x01020304, 32 }, { 0x0a000000, 8 },	{ 0x0a000000, 16 },
		{ 0x0a010000, 16 }, { 0xc0a80000, 16 },
	};
	struct nm_policy_set set = { 0 }, empty = { 0 };
	struct nm_cidr *cidrs = NULL;
	struct nm_error err;
	size_t n = 0, i;

	(void)state;
	assert_int_equal(nm_policy_parse(yaml, strlen(yaml), "t", &set, &err),
			 0);
	assert_int_equal(nm_policy_cidrs(&set, &cidrs, &n), 0);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < n; i++) {
		assert_int_equal(ntohl(cidrs[i].addr), want[i].addr);
		assert_int_equal(cidrs[i].len, want[i].len);
	}
	free(cidrs);
	assert_int_equal(nm_policy_cidrs(&empty, &cidrs, &n), 0);
	assert_int_equal(n, 0);
	assert_null(cidrs);
	nm_policy_set_free(&set);
}

static void test_deterministic(void **state)
{
	struct nm_compiled a = { 0 }, b = { 0 };
	struct nm_identity_info tmp_id;
	struct nm_ep_info tmp_ep;
	struct nm_policy tmp_p;
	struct fixture f;
	size_t i, j;

	(void)state;
	fixture_init(&f);
	compile(&f, "west", &a);
	/* Reverse identities, endpoints and policies. */
	for (i = 0, j = f.n_ids - 1; i < j; i++, j--) {
		tmp_id = f.ids[i];
		f.ids[i] = f.ids[j];
		f.ids[j] = tmp_id;
	}
	for (i = 0, j = f.n_eps - 1; i < j; i++, j--) {
		tmp_ep = f.eps[i];
		f.eps[i] = f.eps[j];
		f.eps[j] = tmp_ep;
	}
	for (i = 0, j = f.set.n - 1; i < j; i++, j--) {
		tmp_p = f.set.v[i];
		f.set.v[i] = f.set.v[j];
		f.set.v[j] = tmp_p;
	}
	compile(&f, "west", &b);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.entries, b.entries, a.n * sizeof(*a.entries));
	assert_int_equal(a.n_rules, b.n_rules);
	for (i = 0; i < a.n_rules; i++) {
		assert_string_equal(a.rules[i].ns, b.rules[i].ns);
		assert_string_equal(a.rules[i].name, b.rules[i].name);
		assert_int_equal(a.rules[i].kind, b.rules[i].kind);
		assert_int_equal(a.rules[i].index, b.rules[i].index);
	}
	/* Endpoint flags follow their endpoint into the new order. */
	for (i = 0; i < a.n_eps; i++) {
		assert_int_equal(a.eps[i].endpoint_id,
				 b.eps[a.n_eps - 1 - i].endpoint_id);
		assert_int_equal(a.eps[i].flags, b.eps[a.n_eps - 1 - i].flags);
	}
	nm_compiled_free(&a);
	nm_compiled_free(&b);
	fixture_free(&f);
}

static void test_bad_input(void **state)
{
	struct nm_compiled c = { 0 };
	struct fixture f;

	(void)state;
	fixture_init(&f);
	/* An endpoint whose identity is unknown. */
	f.eps[0].identity = nm_identity_pack(C_WEST, 4242);
	assert_int_equal(nm_policy_compile(&f.set, f.ids, f.n_ids, f.eps,
					   f.n_eps, "west", &c),
			 -EINVAL);
	assert_null(c.entries);
	f.eps[0].identity = W_PAY;
	/* The same identity twice. */
	f.ids[1].id = W_FE;
	assert_int_equal(nm_policy_compile(&f.set, f.ids, f.n_ids, f.eps,
					   f.n_eps, "west", &c),
			 -EINVAL);
	f.ids[1].id = W_PAY;
	assert_int_equal(nm_policy_compile(&f.set, f.ids, f.n_ids, f.eps,
					   f.n_eps, NULL, &c),
			 -EINVAL);
	/* Nothing known, nothing to do. */
	assert_int_equal(
		nm_policy_compile(&f.set, NULL, 0, NULL, 0, "west", &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(c.n_eps, 0);
	assert_int_equal(c.n_rules, 10);
	nm_compiled_free(&c);
	fixture_free(&f);
}

/*
 * 1,000 identities (500 west, 500 east, namespace shop, app = i % 20,
 * tier = i % 10), 200 local endpoints (identities 0..199) and 100
 * policies of one rule each: policy k selects app k % 20 and admits tier
 * k % 10 from the local cluster and from east, on 80/ANY and 443/TCP.
 * Policies k % 10 == 9 deny instead. Five policies share each (app, tier),
 * so most keys come out five times before de-duplication.
 */
#define BIG_IDS 1000
#define BIG_EPS 200
#define BIG_RULES 100

static void test_scale_1000_ids_100_rules(void **state)
{
	struct nm_identity_info *ids = calloc(BIG_IDS, sizeof(*ids));
	struct nm_ep_info *eps = calloc(BIG_EPS, sizeof(*eps));
	size_t cap = 1 << 20, len = 0, i;
	char *yaml = malloc(cap), lbl[256];
	struct nm_policy_set set = { 0 };
	struct nm_compiled c = { 0 };
	const struct nm_policy_entry *e;
	struct timespec t0, t1;
	struct nm_error err;
	double ms;
	int k;

	(void)state;
	assert_non_null(ids);
	assert_non_null(eps);
	assert_non_null(yaml);
	for (i = 0; i < BIG_IDS; i++) {
		snprintf(
			lbl, sizeof(lbl),
			"nodemesh.io/namespace=shop,nodemesh.io/cluster=%s,app=app%zu,tier=t%zu",
			i < 500 ? "west" : "east", i % 20, i % 10);
		ids[i].id = nm_identity_pack(i < 500 ? C_WEST : C_EAST,
					     256 + (__u32)i);
		assert_int_equal(nm_labels_parse(lbl, &ids[i].labels, lbl,
						 sizeof(lbl)),
				 0);
	}
	for (i = 0; i < BIG_EPS; i++) {
		eps[i].endpoint_id = 1000 + (__u32)i;
		eps[i].identity = ids[i].id;
	}
	for (k = 0; k < BIG_RULES; k++) {
		len += (size_t)snprintf(
			yaml + len, cap - len,
			"---\napiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n"
			"metadata: {name: p%03d, namespace: shop}\n"
			"spec:\n  endpointSelector: {matchLabels: {app: app%d}}\n"
			"  %s:\n    - fromEndpoints:\n"
			"        - matchLabels: {tier: t%d}\n"
			"        - matchExpressions:\n"
			"            - {key: nodemesh.io/cluster, operator: In, values: [east]}\n"
			"            - {key: tier, operator: In, values: [t%d]}\n"
			"      toPorts: [{ports: [{port: 80}, {port: 443, protocol: TCP}]}]\n",
			k, k % 20, k % 10 == 9 ? "ingressDeny" : "ingress",
			k % 10, k % 10);
		assert_true(len < cap);
	}
	if (nm_policy_parse(yaml, len, "scale.yaml", &set, &err))
		fail_msg("%s:%u: %s", err.file, err.line, err.reason);
	assert_int_equal(set.n, BIG_RULES);

	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	assert_int_equal(nm_policy_compile(&set, ids, BIG_IDS, eps, BIG_EPS,
					   "west", &c),
			 0);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	print_message(
		"# compile: %d identities x %d rules, %d endpoints -> %zu entries in %.1f ms\n",
		BIG_IDS, BIG_RULES, BIG_EPS, c.n, ms);

	assert_sorted_unique(&c);
	assert_int_equal(c.n_rules, BIG_RULES);
	/* Each endpoint: 100 peers of its tier (50 per cluster) x 3 keys. */
	assert_int_equal(c.n, (size_t)BIG_EPS * 100 * 3);
	for (i = 0; i < BIG_EPS; i++)
		assert_int_equal(c.eps[i].flags, NM_EP_F_INGRESS_POLICY);
	/* Endpoint of identity 0 (app0): policy p000 = rule 1 wins. */
	e = lookup(&c, entry(1000, IN, ids[510].id, 443, TCP, 0, 0));
	assert_non_null(e);
	assert_int_equal(e->val.verdict, A);
	assert_int_equal(e->val.rule_id, 1);
	assert_null(lookup(&c, entry(1000, IN, ids[511].id, 443, TCP, 0, 0)));
	/* Identity 9 (app9): denied by p009 = rule 10, UDP half of ANY. */
	e = lookup(&c, entry(1009, IN, ids[19].id, 80, UDP, 0, 0));
	assert_non_null(e);
	assert_int_equal(e->val.verdict, D);
	assert_int_equal(e->val.rule_id, 10);
	/* Identity 25 (app5, tier 5): peer 995 is east, tier 5. */
	e = lookup(&c, entry(1025, IN, ids[995].id, 80, TCP, 0, 0));
	assert_non_null(e);
	assert_int_equal(e->val.rule_id, 6);

	nm_compiled_free(&c);
	nm_policy_set_free(&set);
	for (i = 0; i < BIG_IDS; i++)
		nm_labels_free(&ids[i].labels);
	free(yaml);
	free(eps);
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_output),
		cmocka_unit_test(test_rule_ids),
		cmocka_unit_test(test_enforcement_flags),
		cmocka_unit_test(test_deny_wins),
		cmocka_unit_test(test_lowest_rule_id_between_equals),
		cmocka_unit_test(test_cluster_and_namespace_scope),
		cmocka_unit_test(test_cidr_and_world),
		cmocka_unit_test(test_policy_cidrs_sorted_unique),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_scale_1000_ids_100_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
