// SPDX-License-Identifier: GPL-2.0
/*
 * MeshNetworkPolicy parsing: valid manifests give the expected structures;
 * every malformed one is refused with its line and reason, and nothing is
 * returned. Fixtures live in tests/unit/manifests (run from the repo root).
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

#include "agent/labels.h"
#include "agent/policy.h"

#define MANIFESTS "tests/unit/manifests/"

static struct nm_policy_set parse_ok(const char *yaml)
{
	struct nm_policy_set set = { 0 };
	struct nm_error err;

	if (nm_policy_parse(yaml, strlen(yaml), "ok.yaml", &set, &err))
		fail_msg("refused: %s:%u: %s\n--- input:\n%s", err.file,
			 err.line, err.reason, yaml);
	return set;
}

static const struct nm_policy *find(const struct nm_policy_set *set,
				    const char *ns, const char *name)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		if (!strcmp(set->v[i].namespace, ns) &&
		    !strcmp(set->v[i].name, name))
			return &set->v[i];
	}
	fail_msg("policy %s/%s not found", ns, name);
	return NULL;
}

static void assert_expr(const struct nm_sel_expr *e, const char *key,
			enum nm_sel_op op, size_t n_values, const char *v0,
			const char *v1)
{
	assert_string_equal(e->key, key);
	assert_int_equal(e->op, op);
	assert_int_equal(e->n_values, n_values);
	if (n_values > 0)
		assert_string_equal(e->values[0], v0);
	if (n_values > 1)
		assert_string_equal(e->values[1], v1);
}

static void assert_cidr(const struct nm_cidr *c, const char *addr, __u8 len)
{
	char buf[INET_ADDRSTRLEN];
	struct in_addr a = { .s_addr = c->addr };

	assert_non_null(inet_ntop(AF_INET, &a, buf, sizeof(buf)));
	assert_string_equal(buf, addr);
	assert_int_equal(c->len, len);
}

static void test_full_manifest(void **state)
{
	struct nm_policy_set set = { 0 };
	const struct nm_peer_rule *r;
	const struct nm_policy *p;
	struct nm_error err;

	(void)state;
	if (nm_policy_parse_file(MANIFESTS "full.yaml", &set, &err))
		fail_msg("%s:%u: %s", err.file, err.line, err.reason);
	assert_int_equal(set.n, 1);
	p = &set.v[0];
	assert_string_equal(p->name, "payments.ingress");
	assert_string_equal(p->namespace, "shop");
	assert_string_equal(p->file, MANIFESTS "full.yaml");
	assert_int_equal(p->line, 2);
	assert_true(p->enforces[NM_POLICY_INGRESS]);
	assert_true(p->enforces[NM_POLICY_EGRESS]);

	/* matchLabels first, then matchExpressions. */
	assert_int_equal(p->endpoint_selector.n, 2);
	assert_expr(&p->endpoint_selector.exprs[0], "app", NM_SEL_IN, 1,
		    "payments", NULL);
	assert_expr(&p->endpoint_selector.exprs[1], "tier", NM_SEL_NOT_IN, 2,
		    "debug", "test");

	assert_int_equal(p->n_rules[NM_RULE_INGRESS], 2);
	r = &p->rules[NM_RULE_INGRESS][0];
	assert_int_equal(r->line, 20);
	assert_int_equal(r->n_endpoints, 2);
	assert_int_equal(r->endpoints[0].n, 2);
	assert_expr(&r->endpoints[0].exprs[0], "app", NM_SEL_IN, 1, "frontend",
		    NULL);
	assert_expr(&r->endpoints[0].exprs[1], NM_LABEL_CLUSTER, NM_SEL_IN, 1,
		    "east", NULL);
	assert_int_equal(r->endpoints[1].n, 1);
	assert_expr(&r->endpoints[1].exprs[0], "role", NM_SEL_EXISTS, 0, NULL,
		    NULL);
	assert_int_equal(r->n_cidrs, 0);
	/* Both toPorts items flattened, in order. */
	assert_int_equal(r->n_ports, 3);
	assert_int_equal(r->ports[0].port, 443);
	assert_int_equal(r->ports[0].proto, IPPROTO_TCP);
	assert_int_equal(r->ports[1].port, 8443);
	assert_int_equal(r->ports[1].proto, 0);
	assert_int_equal(r->ports[2].port, 53);
	assert_int_equal(r->ports[2].proto, IPPROTO_UDP);
	r = &p->rules[NM_RULE_INGRESS][1];
	assert_int_equal(r->line, 35);
	assert_int_equal(r->n_endpoints, 0);
	assert_int_equal(r->n_ports, 0);
	assert_int_equal(r->n_cidrs, 2);
	assert_cidr(&r->cidrs[0], "192.168.0.0", 16);
	assert_cidr(&r->cidrs[1], "0.0.0.0", 0);

	assert_int_equal(p->n_rules[NM_RULE_EGRESS], 2);
	r = &p->rules[NM_RULE_EGRESS][0];
	assert_int_equal(r->n_endpoints, 1);
	assert_int_equal(r->endpoints[0].n, 2);
	assert_expr(&r->endpoints[0].exprs[0], "app", NM_SEL_IN, 1, "db", NULL);
	assert_expr(&r->endpoints[0].exprs[1], "canary", NM_SEL_DOES_NOT_EXIST,
		    0, NULL, NULL);
	r = &p->rules[NM_RULE_EGRESS][1];
	assert_int_equal(r->n_cidrs, 1);
	assert_cidr(&r->cidrs[0], "10.0.0.0", 8);
	assert_int_equal(r->n_ports, 1);
	assert_int_equal(r->ports[0].port, 5432);
	assert_int_equal(r->ports[0].proto, 0);

	assert_int_equal(p->n_rules[NM_RULE_INGRESS_DENY], 1);
	r = &p->rules[NM_RULE_INGRESS_DENY][0];
	assert_int_equal(r->n_endpoints, 1);
	assert_expr(&r->endpoints[0].exprs[0], "app", NM_SEL_IN, 1, "scanner",
		    NULL);
	assert_int_equal(p->n_rules[NM_RULE_EGRESS_DENY], 1);
	r = &p->rules[NM_RULE_EGRESS_DENY][0];
	assert_int_equal(r->n_cidrs, 1);
	assert_cidr(&r->cidrs[0], "169.254.169.254", 32);
	nm_policy_set_free(&set);
}

static void test_multi_document(void **state)
{
	struct nm_policy_set set = { 0 };
	const struct nm_policy *p;
	struct nm_error err;

	(void)state;
	if (nm_policy_parse_file(MANIFESTS "multi.yaml", &set, &err))
		fail_msg("%s:%u: %s", err.file, err.line, err.reason);
	/* Same name in two namespaces is no duplicate; the empty doc is skipped. */
	assert_int_equal(set.n, 2);
	p = find(&set, "default", "allow-frontend");
	assert_int_equal(p->line, 3);
	assert_int_equal(p->endpoint_selector.n, 0);
	/* "ingress: []": selected, default deny, no exception. */
	assert_true(p->enforces[NM_POLICY_INGRESS]);
	assert_false(p->enforces[NM_POLICY_EGRESS]);
	assert_int_equal(p->n_rules[NM_RULE_INGRESS], 0);
	p = find(&set, "other", "allow-frontend");
	assert_int_equal(p->line, 12);
	assert_false(p->enforces[NM_POLICY_INGRESS]);
	assert_true(p->enforces[NM_POLICY_EGRESS]);
	assert_int_equal(p->n_rules[NM_RULE_EGRESS_DENY], 1);
	assert_int_equal(p->rules[NM_RULE_EGRESS_DENY][0].n_endpoints, 0);
	assert_int_equal(p->rules[NM_RULE_EGRESS_DENY][0].n_cidrs, 0);
	assert_int_equal(p->rules[NM_RULE_EGRESS_DENY][0].n_ports, 0);
	nm_policy_set_free(&set);
}

static void test_good_then_bad_yields_nothing(void **state)
{
	struct nm_policy *sentinel = (struct nm_policy *)&sentinel;
	struct nm_policy_set set = { .v = sentinel, .n = 42 };
	struct nm_error err;

	(void)state;
	assert_int_equal(nm_policy_parse_file(MANIFESTS "bad-second.yaml", &set,
					      &err),
			 -EINVAL);
	assert_ptr_equal(set.v, sentinel);
	assert_int_equal(set.n, 42);
	assert_string_equal(err.file, MANIFESTS "bad-second.yaml");
	assert_int_equal(err.line, 18);
	assert_non_null(strstr(err.reason, "port 65536 out of range"));
}

static void test_empty_inputs(void **state)
{
	static const char *const inputs[] = {
		"", "\n", "# just a comment\n", "---\n", "---\n...\n---\n~\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct nm_policy_set set = parse_ok(inputs[i]);

		assert_int_equal(set.n, 0);
		nm_policy_set_free(&set);
	}
}

static void test_scalar_forms(void **state)
{
	struct nm_policy_set set = parse_ok(
		"apiVersion: \"nodemesh.io/v1alpha1\"\n"
		"kind: 'MeshNetworkPolicy'\n"
		"metadata: {name: \"123\", namespace: \"007\"}\n"
		"spec:\n"
		"  endpointSelector: {matchLabels: {version: \"2\", on: yes, n: \"1\"}}\n"
		"  egress:\n"
		"    - toPorts: [{ports: [{port: \"65535\"}, {port: 1, protocol: UDP}]}]\n");
	const struct nm_policy *p = &set.v[0];

	(void)state;
	assert_int_equal(set.n, 1);
	assert_string_equal(p->name, "123");
	assert_string_equal(p->namespace, "007");
	assert_int_equal(p->endpoint_selector.n, 3);
	assert_expr(&p->endpoint_selector.exprs[0], "version", NM_SEL_IN, 1,
		    "2", NULL);
	/* YAML 1.2: yes, on and n are plain strings. */
	assert_expr(&p->endpoint_selector.exprs[1], "on", NM_SEL_IN, 1, "yes",
		    NULL);
	assert_expr(&p->endpoint_selector.exprs[2], "n", NM_SEL_IN, 1, "1",
		    NULL);
	assert_int_equal(p->rules[NM_RULE_EGRESS][0].ports[0].port, 65535);
	assert_int_equal(p->rules[NM_RULE_EGRESS][0].ports[1].port, 1);
	assert_int_equal(p->rules[NM_RULE_EGRESS][0].ports[1].proto,
			 IPPROTO_UDP);
	nm_policy_set_free(&set);
}

static void test_open_error(void **state)
{
	struct nm_policy_set set = { 0 };
	struct nm_error err;
	char buf[1024];

	(void)state;
	assert_int_equal(nm_policy_parse_file(MANIFESTS "does-not-exist.yaml",
					      &set, &err),
			 -ENOENT);
	assert_int_equal(err.line, 0);
	assert_non_null(strstr(err.reason, "failed to open policy file"));
	assert_string_equal(
		nm_error_str(&err, buf, sizeof(buf)), MANIFESTS
		"does-not-exist.yaml: failed to open policy file: No such file or directory");
	err.line = 7;
	snprintf(err.reason, sizeof(err.reason), "bad");
	assert_string_equal(nm_error_str(&err, buf, sizeof(buf)),
			    MANIFESTS "does-not-exist.yaml:7: bad");
}

static const char *const doc_a =
	"apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n"
	"metadata: {name: a}\nspec: {endpointSelector: {}, ingress: []}\n";
static const char *const doc_b =
	"apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n"
	"metadata: {name: b}\nspec: {endpointSelector: {}, egress: []}\n";
static const char *const doc_a2 =
	"apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n"
	"metadata: {name: a}\nspec: {endpointSelector: {}, egress: [{}]}\n";

static void test_merge_and_remove(void **state)
{
	struct nm_policy_set dst = parse_ok(doc_a), src = parse_ok(doc_b);
	struct nm_policy_set again = parse_ok(doc_a2);

	(void)state;
	assert_int_equal(nm_policy_set_merge(&dst, &src), 0);
	assert_int_equal(dst.n, 2);
	assert_int_equal(src.n, 0);
	assert_null(src.v);
	/* Same namespace/name replaces. */
	assert_int_equal(nm_policy_set_merge(&dst, &again), 0);
	assert_int_equal(dst.n, 2);
	assert_true(find(&dst, "default", "a")->enforces[NM_POLICY_EGRESS]);
	assert_false(find(&dst, "default", "a")->enforces[NM_POLICY_INGRESS]);
	assert_int_equal(nm_policy_set_remove(&dst, "default", "zzz"), -ENOENT);
	assert_int_equal(nm_policy_set_remove(&dst, "other", "a"), -ENOENT);
	assert_int_equal(nm_policy_set_remove(&dst, "default", "a"), 0);
	assert_int_equal(dst.n, 1);
	assert_string_equal(dst.v[0].name, "b");
	assert_int_equal(nm_policy_set_merge(&dst, &src), 0);
	assert_int_equal(dst.n, 1);
	nm_policy_set_free(&dst);
	nm_policy_set_free(&src);
	nm_policy_set_free(&again);
}

/* Lines 1-4. */
#define HEAD                                                          \
	"apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n" \
	"metadata:\n  name: p\n"
/* Lines 5-6. */
#define SPEC HEAD "spec:\n  endpointSelector: {}\n"
/* Line 7 "ingress:", the rule starts on line 8. */
#define ING SPEC "  ingress:\n    - "
#define EGR SPEC "  egress:\n    - "
/* A fromEndpoints selector whose expression starts on line 10. */
#define EXPR \
	ING "fromEndpoints:\n        - matchExpressions:\n            - key: app\n"

static const struct bad_case {
	const char *yaml;
	unsigned int line;
	const char *reason;
} bad_cases[] = {
	/* YAML itself. */
	{ "a: b: c\n", 1, "YAML syntax error: mapping values are not allowed" },
	{ SPEC "  ingress: [\n", 8, "YAML syntax error" },
	{ SPEC "---\nkey: \"unterminated\n", 9, "YAML syntax error" },
	{ "- a\n- b\n", 1,
	  "document must be a mapping (a MeshNetworkPolicy), got sequence" },
	{ "just a string\n", 1,
	  "document must be a mapping (a MeshNetworkPolicy), got string" },
	/* Top level. */
	{ SPEC "status: {}\n", 7, "unknown field 'status' in the document" },
	{ "apiVersion: v1\nkind: MeshNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n",
	  1, "unsupported apiVersion 'v1' (expected nodemesh.io/v1alpha1)" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n",
	  2, "unsupported kind 'NetworkPolicy'" },
	{ "kind: MeshNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n",
	  1, "missing required field 'apiVersion' in the document" },
	{ HEAD, 1, "missing required field 'spec' in the document" },
	{ "apiVersion: 1\nkind: MeshNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n",
	  1, "apiVersion must be a string, got integer" },
	{ SPEC "kind: MeshNetworkPolicy\n", 7,
	  "duplicate field 'kind' in the document" },
	/* metadata. */
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\nmetadata: {namespace: x}\nspec: {endpointSelector: {}}\n",
	  3, "missing required field 'name' in metadata" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\nmetadata:\n  name: Bad_Name\nspec: {endpointSelector: {}}\n",
	  4, "invalid metadata.name 'Bad_Name': must be a DNS-1123 subdomain" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\nmetadata:\n  name: 123\nspec: {endpointSelector: {}}\n",
	  4, "metadata.name must be a string, got integer (quote it)" },
	{ HEAD "  namespace: prod.eu\nspec: {endpointSelector: {}}\n", 5,
	  "invalid metadata.namespace 'prod.eu': must be a DNS-1123 label" },
	{ HEAD "  uid: abc\nspec: {endpointSelector: {}}\n", 5,
	  "unknown field 'uid' in metadata" },
	{ HEAD "  labels: {a: 1}\nspec: {endpointSelector: {}}\n", 5,
	  "metadata.labels must be a string, got integer" },
	{ HEAD "  annotations: [x]\nspec: {endpointSelector: {}}\n", 5,
	  "metadata.annotations must be a mapping, got sequence" },
	/* spec. */
	{ HEAD "spec:\n  ingress: []\n", 6,
	  "missing required field 'endpointSelector' in spec" },
	{ HEAD "spec:\n  endpointSelector:\n  ingress: []\n", 6,
	  "spec.endpointSelector must be a mapping, got null" },
	{ SPEC "  ingres: []\n", 7, "unknown field 'ingres' in spec" },
	{ SPEC "  ingress: {}\n", 7,
	  "spec.ingress must be a sequence, got mapping" },
	{ SPEC "  egressDeny:\n  ingress: []\n", 7,
	  "spec.egressDeny must be a sequence, got null" },
	{ SPEC "  ingress: []\n  ingress: []\n", 8,
	  "duplicate field 'ingress' in spec" },
	{ SPEC "  ingress:\n    - 42\n", 8,
	  "spec.ingress[0] must be a mapping, got integer" },
	{ HEAD "spec:\n  endpointSelector: {matchLabel: {app: x}}\n", 6,
	  "unknown field 'matchLabel' in spec.endpointSelector" },
	/* Rules: direction of peers. */
	{ ING "toEndpoints: [{}]\n", 8,
	  "field 'toEndpoints' is not allowed in ingress rules (use fromEndpoints)" },
	{ EGR "fromCIDR: [10.0.0.0/8]\n", 8,
	  "field 'fromCIDR' is not allowed in egress rules (use toCIDR)" },
	{ SPEC "  egressDeny:\n    - fromEndpoints: [{}]\n", 8,
	  "field 'fromEndpoints' is not allowed in egressDeny rules (use toEndpoints)" },
	{ SPEC "  ingressDeny:\n    - toCIDR: [10.0.0.0/8]\n", 8,
	  "field 'toCIDR' is not allowed in ingressDeny rules" },
	{ ING "fromEndpoints: [{}]\n      rules: {}\n", 9,
	  "unknown field 'rules' in spec.ingress[0]" },
	{ ING "fromEndpoints: []\n", 8,
	  "spec.ingress[0].fromEndpoints must not be empty" },
	{ ING "fromEndpoints: {app: x}\n", 8,
	  "spec.ingress[0].fromEndpoints must be a sequence, got mapping" },
	/* Selectors. */
	{ EXPR "              operator: Equals\n              values: [x]\n",
	  11,
	  "unknown operator 'Equals' in spec.ingress[0].fromEndpoints[0].matchExpressions[0].operator" },
	{ EXPR "              operator: In\n", 10,
	  "operator In needs at least one value in spec.ingress[0].fromEndpoints[0].matchExpressions[0]" },
	{ EXPR "              operator: NotIn\n              values: []\n", 12,
	  "operator NotIn needs at least one value" },
	{ EXPR "              operator: Exists\n              values: [x]\n",
	  12, "operator Exists takes no values" },
	{ EXPR
	  "              operator: DoesNotExist\n              values: [x, y]\n",
	  12, "operator DoesNotExist takes no values" },
	{ EXPR "              values: [x]\n", 10,
	  "missing required field 'operator'" },
	{ EXPR "              operator: In\n              values: [ok, -bad]\n",
	  12, "invalid label value '-bad'" },
	{ ING "fromEndpoints: [{matchLabels: {\"bad key\": x}}]\n", 8,
	  "invalid label key 'bad key'" },
	{ ING "fromEndpoints: [{matchLabels: {Example.com/app: x}}]\n", 8,
	  "prefix must be a DNS subdomain" },
	{ ING "fromEndpoints: [{matchLabels: {app: -web}}]\n", 8,
	  "invalid label value '-web'" },
	{ ING "fromEndpoints: [{matchLabels: {version: 2}}]\n", 8,
	  "must be a string, got integer (quote it)" },
	{ ING "fromEndpoints: [{matchLabels: {enabled: true}}]\n", 8,
	  "must be a string, got boolean" },
	{ ING "fromEndpoints: [{matchLabels: {app: x, app: y}}]\n", 8,
	  "duplicate field 'app'" },
	/* Ports. */
	{ ING "toPorts: [{ports: [{port: 0}]}]\n", 8,
	  "port 0 out of range 1..65535" },
	{ ING "toPorts: [{ports: [{port: 65536}]}]\n", 8,
	  "port 65536 out of range" },
	{ ING "toPorts: [{ports: [{port: -1}]}]\n", 8, "port -1 out of range" },
	{ ING "toPorts: [{ports: [{port: http}]}]\n", 8,
	  "port 'http' in spec.ingress[0].toPorts[0].ports[0].port is not a number 1..65535" },
	{ ING "toPorts: [{ports: [{port: 80.5}]}]\n", 8,
	  "must be a port number, got float" },
	{ ING "toPorts: [{ports: [{protocol: TCP}]}]\n", 8,
	  "missing required field 'port'" },
	{ ING "toPorts: [{ports: [{port: 80, protocol: tcp}]}]\n", 8,
	  "unknown protocol 'tcp' in spec.ingress[0].toPorts[0].ports[0].protocol (expected TCP, UDP or ANY)" },
	{ ING "toPorts: [{ports: [{port: 80, proto: TCP}]}]\n", 8,
	  "unknown field 'proto'" },
	{ ING "toPorts: [{}]\n", 8,
	  "missing required field 'ports' in spec.ingress[0].toPorts[0]" },
	{ ING "toPorts:\n        - ports: []\n", 9,
	  "spec.ingress[0].toPorts[0].ports must not be empty" },
	/* CIDRs. */
	{ ING "fromCIDR: [10.0.0.1/8]\n", 8,
	  "host bits set, did you mean 10.0.0.0/8?" },
	{ EGR "toCIDR:\n        - 192.168.1.0/16\n", 9,
	  "did you mean 192.168.0.0/16?" },
	{ EGR "toCIDR: [10.0.0.0/33]\n", 8,
	  "prefix length 33 is longer than 32" },
	{ EGR "toCIDR: [10.0.0/8]\n", 8,
	  "address must be an IPv4 dotted quad" },
	{ EGR "toCIDR: [10.0.0.256/32]\n", 8,
	  "address must be an IPv4 dotted quad" },
	{ EGR "toCIDR: [10.0.0.1]\n", 8, "missing prefix length" },
	{ EGR "toCIDR: [10.0.0.0/x]\n", 8, "prefix length must be a number" },
	{ EGR "toCIDR: [fd00::/8]\n", 8, "invalid CIDR 'fd00::/8'" },
	/* Across documents. */
	{ SPEC "---\n" SPEC, 8,
	  "duplicate policy default/p (first defined at line 1)" },
};

static void test_malformed(void **state)
{
	struct nm_policy *sentinel = (struct nm_policy *)&sentinel;
	size_t i, n = sizeof(bad_cases) / sizeof(bad_cases[0]);

	(void)state;
	/* The issue asks for at least 20, the brief for 25. */
	assert_true(n >= 25);
	for (i = 0; i < n; i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct nm_policy_set set = { .v = sentinel, .n = 7 };
		struct nm_error err;
		int ret;

		memset(&err, 0xa5, sizeof(err));
		ret = nm_policy_parse(bc->yaml, strlen(bc->yaml), "bad.yaml",
				      &set, &err);
		if (ret != -EINVAL)
			fail_msg("case %zu (want '%s'): returned %d", i,
				 bc->reason, ret);
		if (set.v != sentinel || set.n != 7)
			fail_msg("case %zu: output touched on error", i);
		if (strcmp(err.file, "bad.yaml"))
			fail_msg("case %zu: file '%s'", i, err.file);
		if (err.line != bc->line || !strstr(err.reason, bc->reason))
			fail_msg("case %zu: got %u: %s\n  want %u: ...%s...", i,
				 err.line, err.reason, bc->line, bc->reason);
	}
	printf("# %zu malformed manifests refused with line and reason\n", n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_manifest),
		cmocka_unit_test(test_multi_document),
		cmocka_unit_test(test_good_then_bad_yields_nothing),
		cmocka_unit_test(test_empty_inputs),
		cmocka_unit_test(test_scalar_forms),
		cmocka_unit_test(test_open_error),
		cmocka_unit_test(test_merge_and_remove),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
