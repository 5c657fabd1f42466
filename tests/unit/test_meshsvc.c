// SPDX-License-Identifier: GPL-2.0
/*
 * MeshService manifests and exports (agent/meshsvc.c): good manifests give
 * the expected structures and defaults; every malformed one is refused
 * with its line and reason and nothing returned; a stored manifest must
 * sit under its own key; the exported record follows the selector, the
 * ports and the pods' states, and passes the kvstore's own validation.
 * The endpoint record's optional "state" is checked here too.
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

#include "agent/kvstore.h"
#include "agent/meshsvc.h"
#include "maps/backend.h"
#include "maps/identity.h"

static struct nm_meshsvc_set parse_ok(const char *yaml)
{
	struct nm_meshsvc_set set = { 0 };
	struct nm_error err;

	if (nm_meshsvc_parse(yaml, strlen(yaml), "ok.yaml", &set, &err))
		fail_msg("refused: %s:%u: %s\n--- input:\n%s", err.file,
			 err.line, err.reason, yaml);
	return set;
}

static __be32 ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void test_full_manifest(void **state)
{
	static const char yaml[] =
		"# a comment before the document\n"
		"apiVersion: nodemesh.io/v1alpha1\n"
		"kind: MeshService\n"
		"metadata:\n"
		"  name: web\n"
		"  namespace: shop\n"
		"  labels: {team: a}\n"
		"  annotations: {note: \"x\"}\n"
		"spec:\n"
		"  vip: 10.96.0.10\n"
		"  ports:\n"
		"    - {port: 80, targetPort: 8080, protocol: TCP}\n"
		"    - port: 53\n"
		"      protocol: UDP\n"
		"  selector: {app: web, tier: \"1\"}\n"
		"  global: true\n"
		"  shared: false\n"
		"  affinity: local\n"
		"  weight: 3\n"
		"  priority: 7\n";
	struct nm_meshsvc_set set = parse_ok(yaml);
	const struct nm_meshsvc *s;

	(void)state;
	assert_int_equal(set.n, 1);
	s = &set.v[0];
	assert_string_equal(s->ns, "shop");
	assert_string_equal(s->name, "web");
	assert_int_equal(s->line, 2);
	assert_int_equal(s->vip, ip4("10.96.0.10"));
	assert_int_equal(s->n_ports, 2);
	assert_int_equal(s->ports[0].port, 80);
	assert_int_equal(s->ports[0].target_port, 8080);
	assert_int_equal(s->ports[0].proto, IPPROTO_TCP);
	assert_int_equal(s->ports[0].line, 12);
	assert_int_equal(s->ports[1].port, 53);
	assert_int_equal(s->ports[1].target_port, 53);
	assert_int_equal(s->ports[1].proto, IPPROTO_UDP);
	assert_int_equal(s->selector.n, 2);
	assert_string_equal(nm_labels_get(&s->selector, "app"), "web");
	assert_string_equal(nm_labels_get(&s->selector, "tier"), "1");
	assert_true(s->global);
	assert_false(s->shared);
	assert_int_equal(s->affinity, NM_KV_AFF_LOCAL);
	assert_int_equal(s->weight, 3);
	assert_int_equal(s->priority, 7);
	/* The comment is no part of the document. */
	assert_int_equal(s->doc_off,
			 strlen("# a comment before the document\n"));
	assert_int_equal(s->doc_off + s->doc_len, strlen(yaml));
	nm_meshsvc_set_free(&set);
}

static void test_defaults(void **state)
{
	struct nm_meshsvc_set set = parse_ok(
		"apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		"metadata: {name: api}\n"
		"spec: {vip: 10.96.1.1, ports: [{port: 443}], selector: {app: api}}\n");
	const struct nm_meshsvc *s = &set.v[0];

	(void)state;
	assert_string_equal(s->ns, "default");
	assert_int_equal(s->ports[0].target_port, 443);
	assert_int_equal(s->ports[0].proto, IPPROTO_TCP);
	assert_false(s->global);
	assert_true(s->shared);
	assert_int_equal(s->affinity, NM_KV_AFF_NONE);
	assert_int_equal(s->weight, 1);
	assert_int_equal(s->priority, 0);
	nm_meshsvc_set_free(&set);
}

#define DOC(ns, name, vip)                                      \
	"apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n" \
	"metadata: {name: " name ", namespace: " ns "}\n"       \
	"spec:\n  vip: " vip                                    \
	"\n  ports: [{port: 80}]\n  selector: {app: " name "}\n"

/* Each document stands alone: the slice parses under its own key. */
static void test_multi_document_slices(void **state)
{
	static const char yaml[] = DOC(
		"a", "web",
		"10.96.0.1") "---\n"
			     "---\n" DOC("b", "web",
					 "10.96.0.2") "...\n"
						      "---\n" DOC("a", "db",
								  "10.96.0.3");
	struct nm_meshsvc_set set = parse_ok(yaml);
	char key[NM_KV_KEY_MAX + 1];
	struct nm_meshsvc one;
	struct nm_error err;
	size_t i;

	(void)state;
	/* Same name in two namespaces is no duplicate; "---" alone is skipped. */
	assert_int_equal(set.n, 3);
	assert_int_equal(set.v[1].line, 10);
	for (i = 0; i < set.n; i++) {
		assert_int_equal(nm_meshsvc_key(NULL, set.v[i].ns,
						set.v[i].name, key,
						sizeof(key)),
				 0);
		if (nm_meshsvc_parse_stored(NULL, key, yaml + set.v[i].doc_off,
					    set.v[i].doc_len, &one, &err))
			fail_msg("slice %zu: %s:%u: %s\n<<%.*s>>", i, err.file,
				 err.line, err.reason, (int)set.v[i].doc_len,
				 yaml + set.v[i].doc_off);
		assert_string_equal(one.ns, set.v[i].ns);
		assert_string_equal(one.name, set.v[i].name);
		assert_int_equal(one.vip, set.v[i].vip);
		nm_meshsvc_free(&one);
	}
	nm_meshsvc_set_free(&set);
}

static void test_empty_input(void **state)
{
	struct nm_meshsvc_set set = { 0 };
	struct nm_error err;

	(void)state;
	assert_int_equal(nm_meshsvc_parse("", 0, "e.yaml", &set, &err), 0);
	assert_int_equal(set.n, 0);
	assert_int_equal(
		nm_meshsvc_parse("---\n# only\n", 11, "e.yaml", &set, &err), 0);
	assert_int_equal(set.n, 0);
}

/* Lines 1-4; spec fields from line 5. */
#define HEAD                                                    \
	"apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n" \
	"metadata: {name: web, namespace: default}\nspec:\n"
#define VIP "  vip: 10.96.0.10\n"
#define PORTS "  ports:\n    - {port: 80, targetPort: 8080}\n"
#define SEL "  selector: {app: web}\n"
/* vip line 5, ports 6-7, selector 8; the next line is 9. */
#define GOOD HEAD VIP PORTS SEL

static const struct bad_case {
	const char *yaml;
	unsigned int line;
	const char *reason;
} bad_cases[] = {
	/* YAML itself and the document. */
	{ HEAD VIP "  ports: [{port: 80}\n", 7, "YAML syntax error" },
	{ "- a\n- b\n", 1,
	  "document must be a mapping (a MeshService), got sequence" },
	{ GOOD "status: {}\n", 9, "unknown field 'status' in the document" },
	{ GOOD "kind: MeshService\n", 9,
	  "duplicate field 'kind' in the document" },
	{ "apiVersion: v1\nkind: MeshService\nmetadata: {name: web}\nspec: {}\n",
	  1, "unsupported apiVersion 'v1' (expected nodemesh.io/v1alpha1)" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec: {}\n",
	  2, "unsupported kind 'Service' (expected MeshService)" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\nmetadata: {name: web}\n",
	  1, "missing required field 'spec' in the document" },
	/* metadata. */
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\nmetadata: {namespace: a}\nspec: {}\n",
	  3, "missing required field 'name' in metadata" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\nmetadata: {name: Web_1}\nspec: {}\n",
	  3, "invalid metadata.name 'Web_1': must be a DNS-1123 label" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\nmetadata: {name: web.v1}\nspec: {}\n",
	  3, "invalid metadata.name 'web.v1'" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\nmetadata: {name: web, namespace: -x}\nspec: {}\n",
	  3, "invalid metadata.namespace '-x'" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\nmetadata: {name: web, uid: x}\nspec: {}\n",
	  3, "unknown field 'uid' in metadata" },
	{ "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\nmetadata: {name: web, labels: {a: 1}}\nspec: {}\n",
	  3, "metadata.labels must be a string, got integer" },
	/* spec. */
	{ GOOD "  type: ClusterIP\n", 9, "unknown field 'type' in spec" },
	{ HEAD PORTS SEL, 5, "missing required field 'vip' in spec" },
	{ HEAD VIP SEL, 5, "missing required field 'ports' in spec" },
	{ HEAD VIP PORTS, 5, "missing required field 'selector' in spec" },
	{ HEAD VIP VIP PORTS SEL, 6, "duplicate field 'vip' in spec" },
	/* The VIP. */
	{ HEAD "  vip: 10.96.0.256\n" PORTS SEL, 5,
	  "spec.vip '10.96.0.256' is not an IPv4 address" },
	{ HEAD "  vip: fd00::10\n" PORTS SEL, 5,
	  "spec.vip 'fd00::10' is not an IPv4 address" },
	{ HEAD "  vip: 224.0.0.1\n" PORTS SEL, 5,
	  "spec.vip 224.0.0.1 is not a unicast address" },
	{ HEAD "  vip: 127.0.0.1\n" PORTS SEL, 5, "is not a unicast address" },
	{ HEAD "  vip: 0.0.0.0\n" PORTS SEL, 5, "is not a unicast address" },
	{ HEAD "  vip: 10.96\n" PORTS SEL, 5,
	  "spec.vip must be a string, got float (quote it)" },
	/* Ports. */
	{ HEAD VIP "  ports: []\n" SEL, 6,
	  "spec.ports must list at least one port" },
	{ HEAD VIP "  ports: {port: 80}\n" SEL, 6,
	  "spec.ports must be a sequence, got mapping" },
	{ HEAD VIP "  ports:\n    - {port: 0}\n" SEL, 7,
	  "spec.ports[0].port must be 1..65535, got 0" },
	{ HEAD VIP "  ports:\n    - {port: 65536}\n" SEL, 7,
	  "spec.ports[0].port must be 1..65535, got 65536" },
	{ HEAD VIP "  ports:\n    - {port: -1}\n" SEL, 7,
	  "spec.ports[0].port must be a decimal number 1..65535, got '-1'" },
	{ HEAD VIP "  ports:\n    - {port: \"80\"}\n" SEL, 7,
	  "spec.ports[0].port must be a integer, got string" },
	{ HEAD VIP "  ports:\n    - {targetPort: 80}\n" SEL, 7,
	  "missing required field 'port' in spec.ports[0]" },
	{ HEAD VIP "  ports:\n    - {port: 80, targetPort: 70000}\n" SEL, 7,
	  "spec.ports[0].targetPort must be 1..65535, got 70000" },
	{ HEAD VIP "  ports:\n    - {port: 80, targetPort: http}\n" SEL, 7,
	  "named ports are not supported" },
	{ HEAD VIP "  ports:\n    - {port: 80, protocol: SCTP}\n" SEL, 7,
	  "unknown protocol 'SCTP' in spec.ports[0].protocol (expected TCP or UDP)" },
	{ HEAD VIP "  ports:\n    - {port: 80, protocol: tcp}\n" SEL, 7,
	  "unknown protocol 'tcp'" },
	{ HEAD VIP "  ports:\n    - {port: 80, nodePort: 30080}\n" SEL, 7,
	  "unknown field 'nodePort' in spec.ports[0]" },
	{ HEAD VIP "  ports:\n    - {port: 80}\n    - {port: 443}\n" SEL, 8,
	  "spec.ports[1]: a second TCP port (port 80 at line 7): one port per protocol" },
	{ HEAD VIP
	  "  ports:\n    - {port: 53, protocol: UDP}\n    - {port: 80}\n"
	  "    - {port: 5353, protocol: UDP}\n" SEL,
	  9, "spec.ports[2]: a second UDP port (port 53 at line 7)" },
	{ HEAD VIP "  ports:\n    - {port: 80}\n    - {port: 80}\n" SEL, 8,
	  "a second TCP port" },
	/* The selector. */
	{ HEAD VIP PORTS "  selector: {}\n", 8,
	  "spec.selector must have at least one label" },
	{ HEAD VIP PORTS "  selector: app=web\n", 8,
	  "spec.selector must be a mapping, got string" },
	{ HEAD VIP PORTS "  selector: {version: 2}\n", 8,
	  "spec.selector must be a string, got integer (quote it)" },
	{ HEAD VIP PORTS "  selector: {\"bad key\": web}\n", 8,
	  "in spec.selector" },
	{ HEAD VIP PORTS "  selector: {app: \"a b\"}\n", 8,
	  "in spec.selector" },
	{ HEAD VIP PORTS
	  "  selector:\n    app: web\n    nodemesh.io/cluster: a\n",
	  10,
	  "label 'nodemesh.io/cluster' in spec.selector is set by the agent" },
	{ HEAD VIP PORTS "  selector: {nodemesh.io/namespace: x}\n", 8,
	  "label 'nodemesh.io/namespace' in spec.selector is set by the agent" },
	{ HEAD VIP PORTS "  selector:\n    app: web\n    app: db\n", 10,
	  "duplicate field 'app' in spec.selector" },
	/* global, shared, affinity, weight, priority. */
	{ GOOD "  global: yes\n", 9,
	  "spec.global must be a boolean, got string" },
	{ GOOD "  shared: 1\n", 9,
	  "spec.shared must be a boolean, got integer" },
	{ GOOD "  shared: !!bool on\n", 9,
	  "spec.shared must be true or false, got 'on'" },
	{ GOOD "  affinity: nearest\n", 9,
	  "unknown spec.affinity 'nearest' (expected local, remote or none)" },
	{ GOOD "  affinity: true\n", 9,
	  "spec.affinity must be a string, got boolean" },
	{ GOOD "  weight: 0\n", 9, "spec.weight must be 1..65535, got 0" },
	{ GOOD "  weight: 65536\n", 9,
	  "spec.weight must be 1..65535, got 65536" },
	{ GOOD "  weight: 1.5\n", 9,
	  "spec.weight must be a integer, got float" },
	{ GOOD "  priority: 256\n", 9,
	  "spec.priority must be 0..255, got 256" },
	{ GOOD "  priority: -1\n", 9,
	  "spec.priority must be a decimal number 0..255, got '-1'" },
	/* Several documents: lines count from the file's start. */
	{ GOOD "---\n" GOOD, 10,
	  "duplicate MeshService default/web (first defined at line 1)" },
	{ GOOD "---\n" HEAD VIP "  ports: [{port: 99999}]\n" SEL, 15,
	  "spec.ports[0].port must be 1..65535, got 99999" },
};

static void test_malformed(void **state)
{
	struct nm_meshsvc *sentinel = (struct nm_meshsvc *)&sentinel;
	size_t i, n = sizeof(bad_cases) / sizeof(bad_cases[0]);

	(void)state;
	for (i = 0; i < n; i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct nm_meshsvc_set set = { .v = sentinel, .n = 7 };
		struct nm_error err;
		int ret;

		memset(&err, 0xa5, sizeof(err));
		ret = nm_meshsvc_parse(bc->yaml, strlen(bc->yaml), "bad.yaml",
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
	printf("# %zu malformed MeshServices refused with line and reason\n",
	       n);
}

static void test_stored(void **state)
{
	static const char one[] = DOC("shop", "web", "10.96.0.1");
	static const char two[] = DOC("shop", "web", "10.96.0.1") "---\n" DOC(
		"shop", "db", "10.96.0.2");
	struct nm_meshsvc svc;
	struct nm_error err;
	char buf[sizeof(one)];

	(void)state;
	assert_int_equal(nm_meshsvc_parse_stored("p/", "p/services/v1/shop/web",
						 one, strlen(one), &svc, &err),
			 0);
	assert_string_equal(svc.name, "web");
	nm_meshsvc_free(&svc);
	/* Under another name's key. */
	assert_int_equal(
		nm_meshsvc_parse_stored(NULL, "nodemesh/services/v1/shop/api",
					one, strlen(one), &svc, &err),
		-EINVAL);
	assert_string_equal(err.file, "nodemesh/services/v1/shop/api");
	assert_int_equal(err.line, 1);
	assert_non_null(strstr(
		err.reason,
		"MeshService shop/web stored under the key of shop/api"));
	assert_int_equal(
		nm_meshsvc_parse_stored(NULL, "nodemesh/services/v1/shop/web",
					two, strlen(two), &svc, &err),
		-EINVAL);
	assert_non_null(strstr(err.reason, "holds 2 MeshServices"));
	assert_int_equal(
		nm_meshsvc_parse_stored(NULL, "nodemesh/services/v1/shop/web",
					"", 0, &svc, &err),
		-EINVAL);
	assert_non_null(strstr(err.reason, "holds 0 MeshServices"));
	memcpy(buf, one, sizeof(one));
	buf[10] = '\0';
	assert_int_equal(
		nm_meshsvc_parse_stored(NULL, "nodemesh/services/v1/shop/web",
					buf, strlen(one), &svc, &err),
		-EINVAL);
	assert_non_null(strstr(err.reason, "NUL byte"));
	/* Keys that name no manifest. */
	assert_int_equal(nm_meshsvc_parse_stored(NULL,
						 "nodemesh/services/v1/shop",
						 one, strlen(one), &svc, &err),
			 -EINVAL);
	assert_non_null(strstr(err.reason, "not a manifest key"));
	assert_int_equal(nm_meshsvc_parse_stored(NULL,
						 "nodemesh/services/v1/a/b/c",
						 one, strlen(one), &svc, &err),
			 -EINVAL);
}

static void test_keys_and_clash(void **state)
{
	char key[NM_KV_KEY_MAX + 1], ns[64], name[64], fes[NM_FRONTEND_STRLEN];
	struct nm_meshsvc_set a = parse_ok(
		DOC("x", "a", "10.96.0.1") "---\n" DOC("x", "b", "10.96.0.2"));
	struct nm_meshsvc_set c = parse_ok(
		"apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		"metadata: {name: c}\nspec: {vip: 10.96.0.1, selector: {a: b},\n"
		"  ports: [{port: 53, protocol: UDP}, {port: 80}]}\n");
	struct nm_frontend fe;

	(void)state;
	assert_int_equal(nm_meshsvc_dir("pfx/", key, sizeof(key)), 0);
	assert_string_equal(key, "pfx/services/v1/");
	assert_int_equal(nm_meshsvc_key(NULL, "shop", "web", key, sizeof(key)),
			 0);
	assert_string_equal(key, "nodemesh/services/v1/shop/web");
	assert_int_equal(nm_meshsvc_key(NULL, "shop", "web", key, 10),
			 -ENAMETOOLONG);
	assert_int_equal(
		nm_meshsvc_key_parse(NULL, "nodemesh/services/v1/shop/web", ns,
				     sizeof(ns), name, sizeof(name)),
		0);
	assert_string_equal(ns, "shop");
	assert_string_equal(name, "web");
	assert_int_equal(
		nm_meshsvc_key_parse(NULL, "nodemesh/services/v1/Shop/web", ns,
				     sizeof(ns), name, sizeof(name)),
		-EINVAL);
	assert_int_equal(
		nm_meshsvc_key_parse("other/", "nodemesh/services/v1/shop/web",
				     ns, sizeof(ns), name, sizeof(name)),
		-EINVAL);

	/* Same VIP, other port: no clash; same VIP:PORT/PROTO: clash. */
	assert_false(nm_meshsvc_clash(&a.v[0], &a.v[1], &fe));
	assert_true(nm_meshsvc_clash(&a.v[0], &c.v[0], &fe));
	assert_string_equal(nm_frontend_str(&fe, fes, sizeof(fes)),
			    "10.96.0.1:80/tcp");
	nm_meshsvc_set_free(&a);
	nm_meshsvc_set_free(&c);
}

/* ---- export -------------------------------------------------------------- */

#define CLUSTER "east"
#define CLUSTER_ID 1

static void ep_make(struct nm_kv_endpoint *ep, const char *ns, const char *name,
		    const char *ip, const char *app, __u8 state)
{
	memset(ep, 0, sizeof(*ep));
	ep->namespace = strdup(ns);
	ep->name = strdup(name);
	ep->node = strdup("node-1");
	ep->ip = ip4(ip);
	ep->state = state;
	ep->identity = nm_identity_pack(CLUSTER_ID, 256);
	assert_int_equal(nm_labels_set(&ep->labels, "app", app), 0);
	assert_int_equal(nm_labels_set(&ep->labels, "tier", "1"), 0);
	assert_int_equal(nm_labels_set(&ep->labels, NM_LABEL_NAMESPACE, ns), 0);
	assert_int_equal(nm_labels_set(&ep->labels, NM_LABEL_CLUSTER, CLUSTER),
			 0);
}

static void eps_free(struct nm_kv_endpoint *eps, size_t n)
{
	struct nm_kv_record rec;
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&rec, 0, sizeof(rec));
		rec.key.type = NM_KV_T_ENDPOINT;
		rec.ep = eps[i];
		nm_kv_record_free(&rec);
	}
}

/* Encode (which validates) and decode again, as a peer would. */
static void roundtrip(const struct nm_kv_record *rec, struct nm_kv_record *back)
{
	const struct nm_kv_ctx ctx = { NULL, CLUSTER, CLUSTER_ID };
	char err[NM_KV_ERR_LEN], *key, *val;
	size_t len;

	if (nm_kv_encode(&ctx, rec, &key, &val, &len, err, sizeof(err)))
		fail_msg("encode: %s", err);
	if (nm_kv_decode(&ctx, key, val, len, back, err, sizeof(err)))
		fail_msg("decode: %s", err);
	free(key);
	free(val);
}

static void test_export(void **state)
{
	struct nm_meshsvc_set set = parse_ok(
		"apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		"metadata: {name: web, namespace: shop}\n"
		"spec:\n  vip: 10.96.0.10\n"
		"  ports: [{port: 80, targetPort: 8080}, {port: 53, targetPort: 5353, protocol: UDP}]\n"
		"  selector: {app: web}\n  global: true\n  shared: false\n"
		"  affinity: remote\n  weight: 3\n  priority: 2\n");
	struct nm_kv_endpoint eps[6];
	struct nm_kv_record rec, back;
	const struct nm_kv_service *s;
	char fes[NM_FRONTEND_STRLEN];
	size_t dropped;

	(void)state;
	ep_make(&eps[0], "shop", "web-2", "10.1.0.9", "web", NM_BE_ACTIVE);
	ep_make(&eps[1], "shop", "web-1", "10.1.0.5", "web", NM_BE_TERMINATING);
	ep_make(&eps[2], "shop", "db-1", "10.1.0.6", "db", NM_BE_ACTIVE);
	/* Same labels, other namespace: not selected. */
	ep_make(&eps[3], "other", "web-1", "10.1.0.7", "web", NM_BE_ACTIVE);
	/* An address reused before the old pod's record went: once. */
	ep_make(&eps[4], "shop", "web-old", "10.1.0.9", "web",
		NM_BE_TERMINATING);
	ep_make(&eps[5], "shop", "web-3", "10.1.0.10", "web", NM_BE_ACTIVE);

	assert_int_equal(nm_meshsvc_export(&set.v[0], CLUSTER, eps, 6, &rec,
					   &dropped),
			 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(rec.key.type, NM_KV_T_SERVICE);
	assert_string_equal(rec.key.cluster, CLUSTER);
	assert_string_equal(rec.key.ns, "shop");
	assert_string_equal(rec.key.name, "web");
	roundtrip(&rec, &back);
	nm_kv_record_free(&rec);
	s = &back.svc;
	assert_true(s->global);
	assert_false(s->shared);
	assert_int_equal(s->affinity, NM_KV_AFF_REMOTE);
	assert_int_equal(s->weight, 3);
	assert_int_equal(s->priority, 2);
	assert_int_equal(s->n_frontends, 2);
	assert_string_equal(nm_frontend_str(&s->frontends[0], fes, sizeof(fes)),
			    "10.96.0.10:80/tcp");
	assert_string_equal(nm_frontend_str(&s->frontends[1], fes, sizeof(fes)),
			    "10.96.0.10:53/udp");
	/* 3 pods x 2 ports, sorted by address (numerically), port, proto. */
	assert_int_equal(s->n_backends, 6);
	assert_int_equal(s->backends[0].ip, ip4("10.1.0.5"));
	assert_int_equal(ntohs(s->backends[0].port), 5353);
	assert_int_equal(s->backends[0].proto, IPPROTO_UDP);
	assert_int_equal(s->backends[0].state, NM_BE_TERMINATING);
	assert_int_equal(ntohs(s->backends[1].port), 8080);
	assert_int_equal(s->backends[1].proto, IPPROTO_TCP);
	assert_int_equal(s->backends[1].state, NM_BE_TERMINATING);
	assert_int_equal(s->backends[1].weight, 1);
	assert_string_equal(s->backends[1].node, "node-1");
	assert_int_equal(s->backends[2].ip, ip4("10.1.0.9"));
	/* The active claim of 10.1.0.9 wins over the stale one. */
	assert_int_equal(s->backends[2].state, NM_BE_ACTIVE);
	assert_int_equal(s->backends[3].state, NM_BE_ACTIVE);
	assert_int_equal(s->backends[4].ip, ip4("10.1.0.10"));
	nm_kv_record_free(&back);

	/* No pod selected: frontends and no backends, still a record. */
	assert_int_equal(nm_meshsvc_export(&set.v[0], CLUSTER, eps + 2, 2, &rec,
					   &dropped),
			 0);
	roundtrip(&rec, &back);
	assert_int_equal(back.svc.n_backends, 0);
	assert_int_equal(back.svc.n_frontends, 2);
	nm_kv_record_free(&rec);
	nm_kv_record_free(&back);
	eps_free(eps, 6);
	nm_meshsvc_set_free(&set);
}

static void test_export_bounded(void **state)
{
	struct nm_meshsvc_set set = parse_ok(DOC("shop", "web", "10.96.0.1"));
	size_t n = NM_KV_BACKENDS_MAX + 20, i, dropped;
	struct nm_kv_endpoint *eps = calloc(n, sizeof(*eps));
	struct nm_kv_record rec, back;
	char ip[INET_ADDRSTRLEN], name[32];

	(void)state;
	assert_non_null(eps);
	for (i = 0; i < n; i++) {
		snprintf(ip, sizeof(ip), "10.2.%zu.%zu", i / 200, i % 200 + 1);
		snprintf(name, sizeof(name), "web-%zu", i);
		ep_make(&eps[i], "shop", name, ip, "web", NM_BE_ACTIVE);
	}
	assert_int_equal(nm_meshsvc_export(&set.v[0], CLUSTER, eps, n, &rec,
					   &dropped),
			 0);
	assert_int_equal(dropped, 20);
	assert_int_equal(rec.svc.n_backends, NM_KV_BACKENDS_MAX);
	/* The lowest addresses stay: the same set on every round. */
	assert_int_equal(rec.svc.backends[0].ip, ip4("10.2.0.1"));
	roundtrip(&rec, &back);
	nm_kv_record_free(&rec);
	nm_kv_record_free(&back);
	eps_free(eps, n);
	free(eps);
	nm_meshsvc_set_free(&set);
}

/* ---- the endpoint record's state ----------------------------------------- */

/* @s with its first @from replaced by @to, malloc'd. */
static char *swap(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	char *out;

	assert_non_null(at);
	out = malloc(strlen(s) - strlen(from) + strlen(to) + 1);
	assert_non_null(out);
	sprintf(out, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
	return out;
}

static void test_endpoint_state(void **state)
{
	const struct nm_kv_ctx ctx = { NULL, CLUSTER, CLUSTER_ID };
	static const char key[] = "nodemesh/state/endpoints/v1/east/shop/web-1";
	char err[NM_KV_ERR_LEN], *k, *v, *bad;
	struct nm_kv_record rec, back;
	size_t len;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	rec.key.type = NM_KV_T_ENDPOINT;
	rec.key.kind = NM_KV_ENDPOINTS;
	strcpy(rec.key.cluster, CLUSTER);
	strcpy(rec.key.ns, "shop");
	strcpy(rec.key.name, "web-1");
	ep_make(&rec.ep, "shop", "web-1", "10.1.0.5", "web", NM_BE_ACTIVE);

	/* Active: no "state" at all, the record as before. */
	assert_int_equal(
		nm_kv_encode(&ctx, &rec, &k, &v, &len, err, sizeof(err)), 0);
	assert_null(strstr(v, "state"));
	free(k);
	free(v);
	rec.ep.state = NM_BE_TERMINATING;
	assert_int_equal(
		nm_kv_encode(&ctx, &rec, &k, &v, &len, err, sizeof(err)), 0);
	assert_non_null(strstr(v, "\"state\":\"terminating\""));
	assert_int_equal(nm_kv_decode(&ctx, k, v, len, &back, err, sizeof(err)),
			 0);
	assert_int_equal(back.ep.state, NM_BE_TERMINATING);
	nm_kv_record_free(&back);

	/* "active" spelled out reads as active; anything else is refused. */
	bad = swap(v, "\"terminating\"", "\"active\"");
	assert_int_equal(nm_kv_decode(&ctx, k, bad, strlen(bad), &back, err,
				      sizeof(err)),
			 0);
	assert_int_equal(back.ep.state, NM_BE_ACTIVE);
	nm_kv_record_free(&back);
	free(bad);
	bad = swap(v, "\"terminating\"", "\"quarantined\"");
	assert_int_equal(nm_kv_decode(&ctx, key, bad, strlen(bad), &back, err,
				      sizeof(err)),
			 -EINVAL);
	assert_non_null(
		strstr(err, "field 'state' must be active or terminating"));
	free(bad);
	free(k);
	free(v);

	/* The encoder refuses a state a pod cannot have. */
	rec.ep.state = NM_BE_QUARANTINED;
	assert_int_equal(nm_kv_encode(&ctx, &rec, &k, &v, &len, err,
				      sizeof(err)),
			 -EINVAL);
	rec.ep.state = NM_BE_ACTIVE;
	nm_kv_record_free(&rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_manifest),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_multi_document_slices),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_stored),
		cmocka_unit_test(test_keys_and_clash),
		cmocka_unit_test(test_export),
		cmocka_unit_test(test_export_bounded),
		cmocka_unit_test(test_endpoint_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
