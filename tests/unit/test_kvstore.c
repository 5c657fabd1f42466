// SPDX-License-Identifier: GPL-2.0
/*
 * kvstore records: every kind encodes and decodes back to itself; keys
 * parse and format; and hostile values are each rejected with a reason
 * naming the key, the cluster and what is wrong. JSON in the tables is
 * written with single quotes, turned into double quotes at run time.
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
#include "maps/backend.h"
#include "maps/identity.h"

#define K_CLUSTER "nodemesh/cluster/east"
#define K_HB "nodemesh/heartbeat/east"
#define K_NODE "nodemesh/state/nodes/v1/east/node-1"
#define K_EP "nodemesh/state/endpoints/v1/east/shop/web-1"
#define K_ID "nodemesh/state/identities/v1/east/16777472" /* (1, 256) */
#define K_SVC "nodemesh/state/services/v1/east/shop/payments"

static const struct nm_kv_ctx east = { .cluster = "east", .cluster_id = 1 };

/* 'json' -> "json", so the tables stay readable. */
static char *q(const char *s)
{
	char *d = strdup(s), *p;

	assert_non_null(d);
	for (p = d; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	return d;
}

static __be32 ip(const char *s)
{
	__be32 a;

	assert_int_equal(nm_parse_ipv4(s, &a), 0);
	return a;
}

static void set_labels(struct nm_labels *l, const char *s)
{
	char err[256];

	if (nm_labels_parse(s, l, err, sizeof(err)))
		fail_msg("labels '%s': %s", s, err);
}

/* Encode @rec, check key and value text, decode it back into @out. */
static void round_trip(const struct nm_kv_record *rec, const char *key,
		       const char *json, struct nm_kv_record *out)
{
	char err[NM_KV_ERR_LEN], *k = NULL, *v = NULL, *want = q(json);
	size_t len = 0;

	if (nm_kv_encode(&east, rec, &k, &v, &len, err, sizeof(err)))
		fail_msg("encode refused: %s", err);
	assert_string_equal(k, key);
	assert_string_equal(v, want);
	assert_int_equal(len, strlen(want));
	if (nm_kv_decode(&east, k, v, len, out, err, sizeof(err)))
		fail_msg("decode refused: %s", err);
	free(want);
	free(v);
	free(k);
}

static void test_roundtrip_cluster(void **state)
{
	char *caps[] = { "global-services", "affinity" };
	struct nm_kv_record rec = {
		.key = { .type = NM_KV_T_CLUSTER, .cluster = "east" },
		.cluster = { .name = "east", .id = 1, .capabilities = caps,
			     .n_capabilities = 2 },
	}, out;

	(void)state;
	round_trip(
		&rec, K_CLUSTER,
		"{'schema':1,'name':'east','id':1,'capabilities':['global-services','affinity']}",
		&out);
	assert_int_equal(out.key.type, NM_KV_T_CLUSTER);
	assert_string_equal(out.cluster.name, "east");
	assert_int_equal(out.cluster.id, 1);
	assert_int_equal(out.cluster.schema, NM_KV_SCHEMA);
	assert_int_equal(out.cluster.n_capabilities, 2);
	assert_string_equal(out.cluster.capabilities[1], "affinity");
	nm_kv_record_free(&out);
}

static void test_roundtrip_heartbeat_synced(void **state)
{
	struct nm_kv_record hb = {
		.key = { .type = NM_KV_T_HEARTBEAT, .cluster = "east" },
		.stamp = { .ts_ms = 1712345678901ULL },
	}, sy = {
		.key = { .type = NM_KV_T_SYNCED, .kind = NM_KV_ENDPOINTS,
			 .cluster = "east" },
		.stamp = { .ts_ms = 18446744073709551615ULL },
	}, out;

	(void)state;
	round_trip(&hb, K_HB, "{'schema':1,'ts':'1712345678901'}", &out);
	assert_int_equal(out.key.type, NM_KV_T_HEARTBEAT);
	assert_true(out.stamp.ts_ms == 1712345678901ULL);
	nm_kv_record_free(&out);
	/* The full u64 range survives: it never passes through a double. */
	round_trip(&sy, "nodemesh/synced/east/endpoints",
		   "{'schema':1,'ts':'18446744073709551615'}", &out);
	assert_int_equal(out.key.kind, NM_KV_ENDPOINTS);
	assert_true(out.stamp.ts_ms == 18446744073709551615ULL);
	nm_kv_record_free(&out);
}

static void test_roundtrip_node(void **state)
{
	struct nm_cidr cidrs[2] = { { ip("10.1.0.0"), 24 },
				    { ip("10.9.0.0"), 16 } };
	struct nm_kv_record rec = {
		.key = { .type = NM_KV_T_NODE, .cluster = "east",
			 .name = "node-1" },
		.node = { .name = "node-1", .cluster = "east", .cluster_id = 1,
			  .node_ip = ip("192.168.1.10"), .pod_cidrs = cidrs,
			  .n_pod_cidrs = 2,
			  .boot_id = "4f5e3c1a-77b2-4d1e-9a0b-0c1d2e3f4a5b" },
	}, out;

	(void)state;
	round_trip(
		&rec, K_NODE,
		"{'schema':1,'name':'node-1','cluster':'east','cluster_id':1,'node_ip':'192.168.1.10','pod_cidrs':['10.1.0.0/24','10.9.0.0/16'],'boot_id':'4f5e3c1a-77b2-4d1e-9a0b-0c1d2e3f4a5b'}",
		&out);
	assert_string_equal(out.node.name, "node-1");
	assert_string_equal(out.node.cluster, "east");
	assert_int_equal(out.node.cluster_id, 1);
	assert_int_equal(out.node.node_ip, ip("192.168.1.10"));
	assert_int_equal(out.node.n_pod_cidrs, 2);
	assert_int_equal(out.node.pod_cidrs[1].addr, ip("10.9.0.0"));
	assert_int_equal(out.node.pod_cidrs[1].len, 16);
	assert_string_equal(out.node.boot_id,
			    "4f5e3c1a-77b2-4d1e-9a0b-0c1d2e3f4a5b");
	nm_kv_record_free(&out);
}

static void test_roundtrip_endpoint(void **state)
{
	struct nm_kv_record rec = {
		.key = { .type = NM_KV_T_ENDPOINT, .cluster = "east",
			 .ns = "shop", .name = "web-1" },
		.ep = { .namespace = "shop", .name = "web-1",
			.ip = ip("10.1.0.5"), .node = "node-1",
			.identity = nm_identity_pack(1, 256) },
	}, out;

	(void)state;
	set_labels(
		&rec.ep.labels,
		"app=web,nodemesh.io/cluster=east,nodemesh.io/namespace=shop");
	round_trip(
		&rec, K_EP,
		"{'schema':1,'namespace':'shop','name':'web-1','ip':'10.1.0.5','node':'node-1','labels':{'app':'web','nodemesh.io/cluster':'east','nodemesh.io/namespace':'shop'},'identity':'16777472'}",
		&out);
	assert_string_equal(out.key.ns, "shop");
	assert_string_equal(out.ep.name, "web-1");
	assert_int_equal(out.ep.ip, ip("10.1.0.5"));
	assert_string_equal(out.ep.node, "node-1");
	assert_true(nm_labels_equal(&out.ep.labels, &rec.ep.labels));
	assert_true(out.ep.identity == nm_identity_pack(1, 256));
	nm_kv_record_free(&out);
	nm_labels_free(&rec.ep.labels);
}

static void test_roundtrip_identity(void **state)
{
	struct nm_kv_record rec = {
		.key = { .type = NM_KV_T_IDENTITY, .cluster = "east",
			 .id = nm_identity_pack(1, 256) },
	}, out;

	(void)state;
	set_labels(
		&rec.identity.labels,
		"app=web,nodemesh.io/cluster=east,nodemesh.io/namespace=shop");
	round_trip(
		&rec, K_ID,
		"{'schema':1,'labels':{'app':'web','nodemesh.io/cluster':'east','nodemesh.io/namespace':'shop'}}",
		&out);
	assert_true(out.identity.id == nm_identity_pack(1, 256));
	assert_true(
		nm_labels_equal(&out.identity.labels, &rec.identity.labels));
	nm_kv_record_free(&out);
	nm_labels_free(&rec.identity.labels);
}

static void test_roundtrip_service(void **state)
{
	struct nm_frontend fes[1] = { { .vip = ip("10.96.0.10"),
					.port = htons(443),
					.proto = IPPROTO_TCP } };
	struct nm_kv_backend bes[2] = {
		{ .ip = ip("10.1.0.5"),
		  .port = htons(8443),
		  .proto = IPPROTO_TCP,
		  .state = NM_BE_ACTIVE,
		  .weight = 3,
		  .node = "node-1" },
		{ .ip = ip("10.1.1.7"),
		  .port = htons(8443),
		  .proto = IPPROTO_TCP,
		  .state = NM_BE_TERMINATING,
		  .weight = 1 },
	};
	struct nm_kv_record rec = {
		.key = { .type = NM_KV_T_SERVICE, .cluster = "east",
			 .ns = "shop", .name = "payments" },
		.svc = { .namespace = "shop", .name = "payments",
			 .frontends = fes, .n_frontends = 1, .backends = bes,
			 .n_backends = 2, .global = true, .shared = true,
			 .affinity = NM_KV_AFF_LOCAL, .weight = 3,
			 .priority = 2 },
	}, out;

	(void)state;
	round_trip(
		&rec, K_SVC,
		"{'schema':1,'namespace':'shop','name':'payments','frontends':['10.96.0.10:443/tcp'],'backends':[{'ip':'10.1.0.5','port':8443,'proto':'tcp','weight':3,'state':'active','node':'node-1'},{'ip':'10.1.1.7','port':8443,'proto':'tcp','weight':1,'state':'terminating'}],'global':true,'shared':true,'affinity':'local','weight':3,'priority':2}",
		&out);
	assert_string_equal(out.svc.name, "payments");
	assert_int_equal(out.svc.n_frontends, 1);
	assert_memory_equal(&out.svc.frontends[0], &fes[0], sizeof(fes[0]));
	assert_int_equal(out.svc.n_backends, 2);
	assert_int_equal(out.svc.backends[0].weight, 3);
	assert_int_equal(out.svc.backends[0].port, htons(8443));
	assert_string_equal(out.svc.backends[0].node, "node-1");
	assert_null(out.svc.backends[1].node);
	assert_int_equal(out.svc.backends[1].state, NM_BE_TERMINATING);
	assert_true(out.svc.global);
	assert_true(out.svc.shared);
	assert_int_equal(out.svc.affinity, NM_KV_AFF_LOCAL);
	assert_int_equal(out.svc.weight, 3);
	assert_int_equal(out.svc.priority, 2);
	nm_kv_record_free(&out);
}

/* Record weight and priority: bounds accepted, unset weight encoded as 1. */
static void test_service_weight_priority(void **state)
{
	static const struct {
		const char *json;
		__u16 weight;
		__u8 priority;
	} ok[] = {
		{ "'weight':1,'priority':0}", 1, 0 },
		{ "'weight':65535,'priority':255}", 65535, 255 },
		{ "'priority':9}", 1, 9 },
		{ "'weight':4}", 4, 0 },
	};
	struct nm_kv_record rec = {
		.key = { .type = NM_KV_T_SERVICE, .cluster = "east",
			 .ns = "shop", .name = "payments" },
		.svc = { .namespace = "shop", .name = "payments" },
	}, out;
	char err[NM_KV_ERR_LEN], *v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char buf[256];

		snprintf(
			buf, sizeof(buf),
			"{'schema':1,'namespace':'shop','name':'payments','global':true,'shared':true,'frontends':[],'backends':[],%s",
			ok[i].json);
		v = q(buf);
		if (nm_kv_decode(&east, K_SVC, v, strlen(v), &out, err,
				 sizeof(err)))
			fail_msg("'%s' refused: %s", ok[i].json, err);
		assert_int_equal(out.svc.weight, ok[i].weight);
		assert_int_equal(out.svc.priority, ok[i].priority);
		nm_kv_record_free(&out);
		free(v);
	}
	/* A record built without a weight publishes the default. */
	round_trip(
		&rec, K_SVC,
		"{'schema':1,'namespace':'shop','name':'payments','frontends':[],'backends':[],'global':false,'shared':false,'affinity':'none','weight':1,'priority':0}",
		&out);
	assert_int_equal(out.svc.weight, 1);
	assert_int_equal(out.svc.priority, 0);
	nm_kv_record_free(&out);
}

/* Forward compatibility: new fields anywhere, optional fields defaulted. */
static void test_unknown_fields_and_defaults(void **state)
{
	char *v = q(
		"{'schema':1,'namespace':'shop','name':'payments','frontends':[],'backends':[{'ip':'10.1.0.5','port':80,'proto':'udp','zone':'a','extra':{'deep':[1,2]}}],'global':false,'shared':false,'selector':{'app':'x'},'zone':7}");
	struct nm_kv_record out;
	char err[NM_KV_ERR_LEN];

	(void)state;
	if (nm_kv_decode(&east, K_SVC, v, strlen(v), &out, err, sizeof(err)))
		fail_msg("refused: %s", err);
	assert_int_equal(out.svc.n_frontends, 0);
	assert_int_equal(out.svc.backends[0].weight, 1);
	assert_int_equal(out.svc.backends[0].state, NM_BE_ACTIVE);
	assert_int_equal(out.svc.backends[0].proto, IPPROTO_UDP);
	assert_int_equal(out.svc.affinity, NM_KV_AFF_NONE);
	assert_int_equal(out.svc.weight, 1);
	assert_int_equal(out.svc.priority, 0);
	nm_kv_record_free(&out);
	free(v);
}

/* An encoder must not publish what peers would reject. */
static void test_encode_refuses_invalid(void **state)
{
	struct nm_kv_record rec = {
		.key = { .type = NM_KV_T_ENDPOINT,
			 .cluster = "east",
			 .ns = "shop",
			 .name = "web-1" },
		.ep = { .namespace = "shop",
			.name = "web-1",
			.ip = ip("10.1.0.5"),
			.node = "node-1",
			.identity = nm_identity_pack(2, 256) },
	};
	char err[NM_KV_ERR_LEN], *k = NULL, *v = NULL;
	size_t len;

	(void)state;
	set_labels(&rec.ep.labels,
		   "nodemesh.io/cluster=east,nodemesh.io/namespace=shop");
	assert_int_equal(nm_kv_encode(&east, &rec, &k, &v, &len, err,
				      sizeof(err)),
			 -EINVAL);
	assert_null(k);
	assert_null(v);
	assert_string_equal(
		err,
		"refusing to publish " K_EP
		" in cluster east: identity 0x2000100 belongs to cluster 2, not 1");
	nm_labels_free(&rec.ep.labels);
}

/* ---- keys ---- */

static void expect_key(const char *prefix, const char *key,
		       enum nm_kv_type type, enum nm_kv_kind kind,
		       const char *cluster, const char *ns, const char *name)
{
	char err[NM_KV_ERR_LEN], back[NM_KV_KEY_MAX + 1];
	struct nm_kv_key k;

	if (nm_kv_key_parse(prefix, key, &k, err, sizeof(err)))
		fail_msg("'%s' refused: %s", key, err);
	assert_int_equal(k.type, type);
	assert_int_equal(k.kind, kind);
	assert_string_equal(k.cluster, cluster);
	assert_string_equal(k.ns, ns);
	assert_string_equal(k.name, name);
	/* Formatting gives the same key back. */
	assert_int_equal(nm_kv_key_format(prefix, &k, back, sizeof(back)), 0);
	assert_string_equal(back, key);
}

static void test_key_parse(void **state)
{
	struct nm_kv_key k;
	char err[NM_KV_ERR_LEN];

	(void)state;
	expect_key(NULL, K_CLUSTER, NM_KV_T_CLUSTER, NM_KV_NODES, "east", "",
		   "");
	expect_key(NULL, K_HB, NM_KV_T_HEARTBEAT, NM_KV_NODES, "east", "", "");
	expect_key(NULL, "nodemesh/synced/east/services", NM_KV_T_SYNCED,
		   NM_KV_SERVICES, "east", "", "");
	expect_key(NULL, K_NODE, NM_KV_T_NODE, NM_KV_NODES, "east", "",
		   "node-1");
	expect_key(NULL, "nodemesh/state/nodes/v1/east/n1.rack-2.example",
		   NM_KV_T_NODE, NM_KV_NODES, "east", "", "n1.rack-2.example");
	expect_key(NULL, K_EP, NM_KV_T_ENDPOINT, NM_KV_ENDPOINTS, "east",
		   "shop", "web-1");
	expect_key(NULL, K_ID, NM_KV_T_IDENTITY, NM_KV_IDENTITIES, "east", "",
		   "16777472");
	expect_key(NULL, K_SVC, NM_KV_T_SERVICE, NM_KV_SERVICES, "east", "shop",
		   "payments");
	/* A configured prefix, several levels deep. */
	expect_key("mesh/prod/", "mesh/prod/state/services/v1/c-9/default/api",
		   NM_KV_T_SERVICE, NM_KV_SERVICES, "c-9", "default", "api");
	assert_int_equal(nm_kv_key_parse(NULL, K_ID, &k, err, sizeof(err)), 0);
	assert_true(k.id == 16777472ULL);
}

static void test_key_parse_rejects(void **state)
{
	static const struct {
		const char *key, *why;
	} bad[] = {
		{ "other/state/nodes/v1/east/n1",
		  "not under the prefix 'nodemesh/'" },
		{ "nodemesh/", "nothing after the prefix" },
		{ "nodemesh/state/nodes/v1/east/", "empty path component" },
		{ "nodemesh/state/nodes/v1//n1", "empty path component" },
		{ "nodemesh/state/nodes/v1/east/n1/extra",
		  "expected state/nodes/v1/<cluster>/<node>" },
		{ "nodemesh/state/endpoints/v1/east/web-1",
		  "expected state/endpoints/v1/<cluster>/<namespace>/<pod>" },
		{ "nodemesh/state/pods/v1/east/n1",
		  "unknown state kind 'pods'" },
		{ "nodemesh/state/nodes/v2/east/n1",
		  "unsupported key version 'v2'" },
		{ "nodemesh/policies/v1/shop/p",
		  "unknown key type 'policies'" },
		{ "nodemesh/cluster/East", "invalid cluster name 'East'" },
		{ "nodemesh/cluster/east/x", "expected cluster/<cluster>" },
		{ "nodemesh/synced/east/pods",
		  "unknown kind 'pods' in synced key" },
		{ "nodemesh/state/nodes/v1/east/Node_1",
		  "invalid name 'Node_1'" },
		{ "nodemesh/state/endpoints/v1/east/Shop/web-1",
		  "invalid namespace 'Shop'" },
		{ "nodemesh/state/services/v1/east/shop/a.b",
		  "must be a DNS label" },
		{ "nodemesh/state/identities/v1/east/0x100",
		  "invalid identity '0x100'" },
		{ "nodemesh/state/identities/v1/east/0256",
		  "invalid identity '0256'" },
		{ "nodemesh/state/identities/v1/east/18446744073709551616",
		  "invalid identity" },
		{ "nodemesh/state/nodes/v1/a-cluster-name-that-is-much-longer-than-sixty-three-characters-x/n1",
		  "invalid cluster name" },
		{ "nodemesh/state/nodes/v1/east/n\x01", "invalid name 'n?'" },
	};
	char err[NM_KV_ERR_LEN], *longkey;
	struct nm_kv_key k;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (nm_kv_key_parse(NULL, bad[i].key, &k, err, sizeof(err)) !=
		    -EINVAL)
			fail_msg("'%s' accepted", bad[i].key);
		if (!strstr(err, bad[i].why))
			fail_msg("'%s': got '%s', want '%s'", bad[i].key, err,
				 bad[i].why);
	}
	longkey = malloc(NM_KV_KEY_MAX + 32);
	assert_non_null(longkey);
	memset(longkey, 'a', NM_KV_KEY_MAX + 31);
	memcpy(longkey, "nodemesh/cluster/", 17);
	longkey[NM_KV_KEY_MAX + 31] = '\0';
	assert_int_equal(nm_kv_key_parse(NULL, longkey, &k, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "key longer than 512 bytes"));
	free(longkey);
}

static void test_key_format_and_prefix(void **state)
{
	struct nm_kv_key k = { .type = NM_KV_T_NODE,
			       .cluster = "east",
			       .name = "node-1" };
	char buf[64];

	(void)state;
	assert_int_equal(nm_kv_key_format(NULL, &k, buf, 20), -ENAMETOOLONG);
	assert_int_equal(nm_kv_state_prefix(NULL, NM_KV_ENDPOINTS, "west", buf,
					    sizeof(buf)),
			 0);
	assert_string_equal(buf, "nodemesh/state/endpoints/v1/west/");
	assert_int_equal(nm_kv_state_prefix("x/", NM_KV_KINDS, "west", buf,
					    sizeof(buf)),
			 -EINVAL);
	assert_string_equal(nm_kv_kind_name(NM_KV_IDENTITIES), "identities");
	assert_null(nm_kv_kind_name(NM_KV_KINDS));
}

/* A delete event carries only a key: still, it must be our cluster's. */
static void test_key_check_other_cluster(void **state)
{
	char err[NM_KV_ERR_LEN];
	struct nm_kv_key k;

	(void)state;
	assert_int_equal(nm_kv_key_check(&east, K_EP, &k, err, sizeof(err)), 0);
	assert_int_equal(
		nm_kv_key_check(&east,
				"nodemesh/state/endpoints/v1/west/shop/web-1",
				&k, err, sizeof(err)),
		-EINVAL);
	assert_string_equal(
		err,
		"rejected nodemesh/state/endpoints/v1/west/shop/web-1 from cluster east: the key names cluster 'west'");
}

/* ---- hostile records ---- */

struct bad_case {
	const char *name;
	const char *key;
	const char *json; /* single quotes; NULL: use gen */
	char *(*gen)(size_t *len);
	const char *why; /* fragment of the reason */
};

#define EP_LABELS \
	"'labels':{'app':'web','nodemesh.io/cluster':'east','nodemesh.io/namespace':'shop'}"
#define EP_HEAD \
	"{'schema':1,'namespace':'shop','name':'web-1','ip':'10.1.0.5','node':'node-1',"
#define NODE_HEAD \
	"{'schema':1,'name':'node-1','cluster':'east','cluster_id':1,'boot_id':'b-1',"
#define SVC_HEAD \
	"{'schema':1,'namespace':'shop','name':'payments','global':true,'shared':false,"
#define BE_OK "{'ip':'10.1.0.5','port':80,'proto':'tcp'}"

static char *gen_oversized(size_t *len)
{
	size_t n = NM_KV_VALUE_MAX + 1;
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, ' ', n);
	memcpy(s, "{\"schema\":1}", 12);
	s[n] = '\0';
	*len = n;
	return s;
}

static char *gen_many_labels(size_t *len)
{
	char *s = malloc(8192), *p;
	int i;

	assert_non_null(s);
	p = s +
	    sprintf(s,
		    "{\"schema\":1,\"labels\":{\"nodemesh.io/cluster\":\"east\",\"nodemesh.io/namespace\":\"shop\"");
	for (i = 0; i < NM_KV_LABELS_MAX - 1; i++)
		p += sprintf(p, ",\"k%d\":\"v\"", i);
	strcpy(p, "}}");
	*len = strlen(s);
	return s;
}

static char *gen_many_backends(size_t *len)
{
	char *s = malloc(64 * 1024), *p;
	int i;

	assert_non_null(s);
	p = s +
	    sprintf(s,
		    "{\"schema\":1,\"namespace\":\"shop\",\"name\":\"payments\",\"global\":true,\"shared\":true,\"frontends\":[],\"backends\":[");
	for (i = 0; i <= NM_KV_BACKENDS_MAX; i++)
		p += sprintf(
			p,
			"%s{\"ip\":\"10.1.%d.%d\",\"port\":80,\"proto\":\"tcp\"}",
			i ? "," : "", i / 250, i % 250 + 1);
	strcpy(p, "]}");
	*len = strlen(s);
	return s;
}

static char *gen_deep(size_t *len)
{
	char *s = malloc(256);
	int i;

	assert_non_null(s);
	strcpy(s, "{\"schema\":1,\"ts\":\"1\",\"x\":");
	for (i = 0; i < 40; i++)
		strcat(s, "[");
	for (i = 0; i < 40; i++)
		strcat(s, "]");
	strcat(s, "}");
	*len = strlen(s);
	return s;
}

static char *gen_nul(size_t *len)
{
	static const char v[] = "{\"schema\":1,\"ts\":\"1\0\"}";
	char *s = malloc(sizeof(v));

	assert_non_null(s);
	memcpy(s, v, sizeof(v));
	*len = sizeof(v) - 1;
	return s;
}

static const struct bad_case bad_cases[] = {
	/* JSON itself */
	{ "truncated_json", K_HB, "{'schema':1,", NULL,
	  "malformed JSON: truncated value" },
	{ "empty_value", K_HB, "", NULL, "malformed JSON: empty value" },
	{ "trailing_garbage", K_HB, "{'schema':1,'ts':'1'} {}", NULL,
	  "malformed JSON" },
	{ "not_an_object", K_HB, "[1,2]", NULL,
	  "value must be a JSON object, got an array" },
	{ "invalid_utf8", K_HB, "{'schema':1,'ts':'1','x':'\xff'}", NULL,
	  "invalid utf-8" },
	{ "nul_escape", K_HB, "{'schema':1,'ts':'1\\u0000'}", NULL,
	  "NUL character" },
	{ "nul_byte", K_HB, NULL, gen_nul, "NUL character" },
	{ "too_deep", K_HB, NULL, gen_deep, "nesting too deep" },
	{ "oversized_value", K_HB, NULL, gen_oversized,
	  "value of 65537 bytes exceeds the limit of 65536 bytes" },
	/* schema */
	{ "schema_missing", K_HB, "{'ts':'1'}", NULL,
	  "missing required field 'schema'" },
	{ "schema_string", K_HB, "{'schema':'1','ts':'1'}", NULL,
	  "field 'schema' must be an integer, got a string" },
	{ "schema_future", K_HB, "{'schema':2,'ts':'1'}", NULL,
	  "unsupported schema 2 (this agent reads 1)" },
	/* numbers */
	{ "ts_as_big_number", K_HB, "{'schema':1,'ts':9007199254740993}", NULL,
	  "field 'ts' must be a decimal string, got an integer" },
	{ "ts_as_double", K_HB, "{'schema':1,'ts':1e300}", NULL,
	  "field 'ts' must be a decimal string, got a number with a fraction or exponent" },
	{ "ts_overflow", K_HB, "{'schema':1,'ts':'18446744073709551616'}", NULL,
	  "larger than 2^64 - 1" },
	{ "ts_negative", K_HB, "{'schema':1,'ts':'-5'}", NULL,
	  "must be a decimal number without sign" },
	{ "ts_leading_zero", K_HB, "{'schema':1,'ts':'007'}", NULL,
	  "must be a decimal number without sign" },
	{ "port_negative", K_SVC,
	  SVC_HEAD
	  "'frontends':[],'backends':[{'ip':'10.1.0.5','port':-1,'proto':'tcp'}]}",
	  NULL, "field 'backends[0].port' is -1, must be 1..65535" },
	{ "port_overflow", K_SVC,
	  SVC_HEAD
	  "'frontends':[],'backends':[{'ip':'10.1.0.5','port':99999999999999999999999,'proto':'tcp'}]}",
	  NULL, "field 'backends[0].port' is out of range, must be 1..65535" },
	{ "port_double", K_SVC,
	  SVC_HEAD
	  "'frontends':[],'backends':[{'ip':'10.1.0.5','port':80.0,'proto':'tcp'}]}",
	  NULL,
	  "field 'backends[0].port' must be an integer, got a number with a fraction" },
	{ "weight_zero", K_SVC,
	  SVC_HEAD
	  "'frontends':[],'backends':[{'ip':'10.1.0.5','port':80,'proto':'tcp','weight':0}]}",
	  NULL, "field 'backends[0].weight' is 0, must be 1..65535" },
	{ "cluster_id_string", K_NODE,
	  "{'schema':1,'name':'node-1','cluster':'east','cluster_id':'1','node_ip':'192.168.1.10','pod_cidrs':[],'boot_id':'b'}",
	  NULL, "field 'cluster_id' must be an integer, got a string" },
	/* identities */
	{ "identity_other_cluster", K_EP,
	  EP_HEAD EP_LABELS ",'identity':'33554723'}", NULL,
	  "identity 0x2000123 belongs to cluster 2, not 1" },
	{ "identity_reserved_range", K_EP,
	  EP_HEAD EP_LABELS ",'identity':'16777221'}", NULL,
	  "identity 0x1000005 has local id 5 outside the label range 256..16777215" },
	{ "identity_wider_than_40_bits", K_EP,
	  EP_HEAD EP_LABELS ",'identity':'1099528405248'}", NULL,
	  "is wider than 40 bits" },
	{ "identity_number", K_EP, EP_HEAD EP_LABELS ",'identity':16777472}",
	  NULL, "field 'identity' must be a decimal string, got an integer" },
	{ "identity_key_other_cluster",
	  "nodemesh/state/identities/v1/east/33554723",
	  "{'schema':1," EP_LABELS "}", NULL,
	  "identity 0x2000123 belongs to cluster 2, not 1" },
	/* other clusters */
	{ "key_names_other_cluster", "nodemesh/state/nodes/v1/west/node-1",
	  NODE_HEAD "'node_ip':'192.168.1.10','pod_cidrs':[]}", NULL,
	  "the key names cluster 'west'" },
	{ "body_names_other_cluster", K_NODE,
	  "{'schema':1,'name':'node-1','cluster':'west','cluster_id':1,'node_ip':'192.168.1.10','pod_cidrs':[],'boot_id':'b'}",
	  NULL, "field 'cluster' is 'west' but the key says 'east'" },
	{ "body_other_cluster_id", K_NODE,
	  "{'schema':1,'name':'node-1','cluster':'east','cluster_id':2,'node_ip':'192.168.1.10','pod_cidrs':[],'boot_id':'b'}",
	  NULL, "field 'cluster_id' is 2, not 1" },
	{ "cluster_record_other_id", K_CLUSTER,
	  "{'schema':1,'name':'east','id':7}", NULL, "cluster id is 7, not 1" },
	{ "cluster_record_other_name", K_CLUSTER,
	  "{'schema':1,'name':'west','id':1}", NULL,
	  "field 'name' is 'west' but the key says 'east'" },
	{ "label_other_cluster", K_EP,
	  EP_HEAD
	  "'labels':{'nodemesh.io/cluster':'west','nodemesh.io/namespace':'shop'},'identity':'16777472'}",
	  NULL, "label nodemesh.io/cluster is 'west', not 'east'" },
	{ "label_cluster_missing", K_EP,
	  EP_HEAD
	  "'labels':{'nodemesh.io/namespace':'shop'},'identity':'16777472'}",
	  NULL, "missing label nodemesh.io/cluster" },
	{ "label_namespace_mismatch", K_EP,
	  EP_HEAD
	  "'labels':{'nodemesh.io/cluster':'east','nodemesh.io/namespace':'bank'},'identity':'16777472'}",
	  NULL,
	  "label nodemesh.io/namespace is 'bank', not the namespace 'shop'" },
	{ "body_name_mismatch", K_EP,
	  "{'schema':1,'namespace':'shop','name':'web-2','ip':'10.1.0.5','node':'node-1'," EP_LABELS
	  ",'identity':'16777472'}",
	  NULL, "field 'name' is 'web-2' but the key says 'web-1'" },
	/* labels */
	{ "too_many_labels", K_ID, NULL, gen_many_labels,
	  "field 'labels' has 65 labels, at most 64 allowed" },
	{ "bad_label_key", K_EP,
	  EP_HEAD
	  "'labels':{'-app':'x','nodemesh.io/cluster':'east','nodemesh.io/namespace':'shop'},'identity':'16777472'}",
	  NULL, "invalid label key '-app'" },
	{ "bad_label_value", K_EP,
	  EP_HEAD
	  "'labels':{'app':'a b','nodemesh.io/cluster':'east','nodemesh.io/namespace':'shop'},'identity':'16777472'}",
	  NULL, "label 'app': invalid label value 'a b'" },
	{ "label_value_number", K_EP,
	  EP_HEAD
	  "'labels':{'app':5,'nodemesh.io/cluster':'east','nodemesh.io/namespace':'shop'},'identity':'16777472'}",
	  NULL, "label 'app' must be a string, got an integer" },
	{ "labels_array", K_ID, "{'schema':1,'labels':['a']}", NULL,
	  "field 'labels' must be an object, got an array" },
	/* addresses */
	{ "bad_ip", K_EP,
	  "{'schema':1,'namespace':'shop','name':'web-1','ip':'10.1.0.256','node':'node-1'," EP_LABELS
	  ",'identity':'16777472'}",
	  NULL, "field 'ip' is '10.1.0.256', not an IPv4 address" },
	{ "loopback_ip", K_EP,
	  "{'schema':1,'namespace':'shop','name':'web-1','ip':'127.0.0.1','node':'node-1'," EP_LABELS
	  ",'identity':'16777472'}",
	  NULL, "field 'ip' is 127.0.0.1, not a unicast address" },
	{ "multicast_node_ip", K_NODE,
	  NODE_HEAD "'node_ip':'239.1.1.1','pod_cidrs':[]}", NULL,
	  "field 'node_ip' is 239.1.1.1, not a unicast address" },
	{ "cidr_host_bits", K_NODE,
	  NODE_HEAD "'node_ip':'192.168.1.10','pod_cidrs':['10.1.0.1/16']}",
	  NULL,
	  "field 'pod_cidrs[0]' is '10.1.0.1/16': host bits set after /16" },
	{ "cidr_no_len", K_NODE,
	  NODE_HEAD "'node_ip':'192.168.1.10','pod_cidrs':['10.1.0.0']}", NULL,
	  "not a CIDR (ADDR/LEN)" },
	{ "cidr_len_33", K_NODE,
	  NODE_HEAD "'node_ip':'192.168.1.10','pod_cidrs':['10.1.0.0/33']}",
	  NULL, "LEN 0..32" },
	{ "cidr_default_route", K_NODE,
	  NODE_HEAD "'node_ip':'192.168.1.10','pod_cidrs':['0.0.0.0/0']}", NULL,
	  "not a pod network" },
	{ "cidr_duplicate", K_NODE,
	  NODE_HEAD
	  "'node_ip':'192.168.1.10','pod_cidrs':['10.1.0.0/24','10.1.0.0/24']}",
	  NULL, "repeats pod_cidrs[0]" },
	{ "too_many_pod_cidrs", K_NODE,
	  NODE_HEAD
	  "'node_ip':'192.168.1.10','pod_cidrs':['10.1.0.0/24','10.1.1.0/24','10.1.2.0/24','10.1.3.0/24','10.1.4.0/24','10.1.5.0/24','10.1.6.0/24','10.1.7.0/24','10.1.8.0/24','10.1.9.0/24','10.1.10.0/24','10.1.11.0/24','10.1.12.0/24','10.1.13.0/24','10.1.14.0/24','10.1.15.0/24','10.1.16.0/24']}",
	  NULL, "field 'pod_cidrs' has 17 items, at most 16 allowed" },
	/* services */
	{ "frontend_bad_proto", K_SVC,
	  SVC_HEAD "'frontends':['10.96.0.10:80/sctp'],'backends':[]}", NULL,
	  "field 'frontends[0]': bad protocol 'sctp'" },
	{ "frontend_number", K_SVC, SVC_HEAD "'frontends':[80],'backends':[]}",
	  NULL, "field 'frontends[0]' must be a string, got an integer" },
	{ "frontend_duplicate", K_SVC,
	  SVC_HEAD
	  "'frontends':['10.96.0.10:80/tcp','10.96.0.10:80/tcp'],'backends':[]}",
	  NULL, "repeats frontends[0]" },
	{ "backend_duplicate", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':[" BE_OK "," BE_OK "]}", NULL,
	  "field 'backends[1]' repeats backends[0]" },
	{ "backend_not_object", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':['10.1.0.5:80']}", NULL,
	  "field 'backends[0]' must be an object, got a string" },
	{ "backend_bad_state", K_SVC,
	  SVC_HEAD
	  "'frontends':[],'backends':[{'ip':'10.1.0.5','port':80,'proto':'tcp','state':'zombie'}]}",
	  NULL, "must be active, terminating or quarantined" },
	/* standby is the merge's verdict, not a record's */
	{ "backend_state_standby", K_SVC,
	  SVC_HEAD
	  "'frontends':[],'backends':[{'ip':'10.1.0.5','port':80,'proto':'tcp','state':'standby'}]}",
	  NULL,
	  "field 'backends[0].state' must be active, terminating or quarantined" },
	{ "backend_bad_proto", K_SVC,
	  SVC_HEAD
	  "'frontends':[],'backends':[{'ip':'10.1.0.5','port':80,'proto':'icmp'}]}",
	  NULL, "field 'backends[0].proto' must be tcp or udp" },
	{ "backend_node_null", K_SVC,
	  SVC_HEAD
	  "'frontends':[],'backends':[{'ip':'10.1.0.5','port':80,'proto':'tcp','node':null}]}",
	  NULL, "field 'backends[0].node' must be a string, got null" },
	{ "too_many_backends", K_SVC, NULL, gen_many_backends,
	  "field 'backends' has 513 items, at most 512 allowed" },
	{ "bad_affinity", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':[],'affinity':'sideways'}", NULL,
	  "field 'affinity' must be local, remote or none" },
	{ "svc_weight_zero", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':[],'weight':0}", NULL,
	  "field 'weight' is 0, must be 1..65535" },
	{ "svc_weight_too_big", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':[],'weight':65536}", NULL,
	  "field 'weight' is 65536, must be 1..65535" },
	{ "svc_weight_string", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':[],'weight':'3'}", NULL,
	  "field 'weight' must be an integer, got a string" },
	{ "svc_priority_too_big", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':[],'priority':256}", NULL,
	  "field 'priority' is 256, must be 0..255" },
	{ "svc_priority_negative", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':[],'priority':-1}", NULL,
	  "field 'priority' is -1, must be 0..255" },
	{ "svc_priority_fraction", K_SVC,
	  SVC_HEAD "'frontends':[],'backends':[],'priority':1.5}", NULL,
	  "field 'priority' must be an integer, got a number with a fraction or exponent" },
	{ "global_as_string", K_SVC,
	  "{'schema':1,'namespace':'shop','name':'payments','global':'yes','shared':false,'frontends':[],'backends':[]}",
	  NULL, "field 'global' must be a boolean, got a string" },
	/* missing and empty fields */
	{ "missing_ip", K_EP,
	  "{'schema':1,'namespace':'shop','name':'web-1','node':'node-1'," EP_LABELS
	  ",'identity':'16777472'}",
	  NULL, "missing required field 'ip'" },
	{ "missing_backends", K_SVC, SVC_HEAD "'frontends':[]}", NULL,
	  "missing required field 'backends'" },
	{ "missing_labels", K_ID, "{'schema':1}", NULL,
	  "missing required field 'labels'" },
	{ "empty_node_name", K_EP,
	  "{'schema':1,'namespace':'shop','name':'web-1','ip':'10.1.0.5','node':''," EP_LABELS
	  ",'identity':'16777472'}",
	  NULL, "field 'node' must not be empty" },
	{ "bad_boot_id", K_NODE,
	  "{'schema':1,'name':'node-1','cluster':'east','cluster_id':1,'boot_id':'a;rm','node_ip':'192.168.1.10','pod_cidrs':[]}",
	  NULL, "field 'boot_id' may hold only letters, digits and '-'" },
	{ "capability_bad", K_CLUSTER,
	  "{'schema':1,'name':'east','id':1,'capabilities':['Global Services']}",
	  NULL, "field 'capabilities[0]' must be a lowercase name" },
};

static void test_reject(void **state)
{
	const struct bad_case *c = *state;
	char err[NM_KV_ERR_LEN], prefix[NM_KV_ERR_LEN], *v;
	struct nm_kv_record out;
	size_t len;

	if (c->gen) {
		v = c->gen(&len);
	} else {
		v = q(c->json);
		len = strlen(v);
	}
	memset(&out, 0xa5, sizeof(out));
	err[0] = '\0';
	if (nm_kv_decode(&east, c->key, v, len, &out, err, sizeof(err)) !=
	    -EINVAL)
		fail_msg("%s: accepted", c->name);
	/* Every reason names the key and the connection. */
	snprintf(prefix, sizeof(prefix),
		 "rejected %s from cluster east: ", c->key);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, c->why))
		fail_msg("%s: got '%s', want '%s...%s'", c->name, err, prefix,
			 c->why);
	/* A refused record owns nothing and is safe to free. */
	assert_null(out.ep.namespace);
	nm_kv_record_free(&out);
	free(v);
}

/* The message the brief asks for, word for word. */
static void test_reject_message_exact(void **state)
{
	char *v = q(EP_HEAD EP_LABELS ",'identity':'33554723'}");
	char err[NM_KV_ERR_LEN];
	struct nm_kv_record out;

	(void)state;
	assert_int_equal(nm_kv_decode(&east, K_EP, v, strlen(v), &out, err,
				      sizeof(err)),
			 -EINVAL);
	assert_string_equal(
		err,
		"rejected nodemesh/state/endpoints/v1/east/shop/web-1 from cluster east: identity 0x2000123 belongs to cluster 2, not 1");
	free(v);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_roundtrip_cluster),
		cmocka_unit_test(test_roundtrip_heartbeat_synced),
		cmocka_unit_test(test_roundtrip_node),
		cmocka_unit_test(test_roundtrip_endpoint),
		cmocka_unit_test(test_roundtrip_identity),
		cmocka_unit_test(test_roundtrip_service),
		cmocka_unit_test(test_service_weight_priority),
		cmocka_unit_test(test_unknown_fields_and_defaults),
		cmocka_unit_test(test_encode_refuses_invalid),
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test(test_key_parse_rejects),
		cmocka_unit_test(test_key_format_and_prefix),
		cmocka_unit_test(test_key_check_other_cluster),
		cmocka_unit_test(test_reject_message_exact),
	};
	const size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
	const size_t n_bad = sizeof(bad_cases) / sizeof(bad_cases[0]);
	struct CMUnitTest *tests;
	char *names;
	size_t i;
	int ret;

	/* One TAP line per hostile record, named after it. */
	tests = calloc(n_fixed + n_bad, sizeof(*tests));
	names = calloc(n_bad, 64);
	if (!tests || !names)
		return 1;
	memcpy(tests, fixed, sizeof(fixed));
	for (i = 0; i < n_bad; i++) {
		snprintf(names + i * 64, 64, "test_reject_%s",
			 bad_cases[i].name);
		tests[n_fixed + i] = (struct CMUnitTest){
			.name = names + i * 64,
			.test_func = test_reject,
			.initial_state = (void *)&bad_cases[i],
		};
	}
	ret = _cmocka_run_group_tests("kvstore", tests, n_fixed + n_bad, NULL,
				      NULL);
	free(names);
	free(tests);
	return ret;
}
