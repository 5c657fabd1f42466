// SPDX-License-Identifier: GPL-2.0
/*
 * The endpoint API's pure parts: the POST /v1/endpoints request (every
 * field checked, defaults filled, the agent's labels refused), the
 * container-interface records in cni.json, the answer documents and the
 * error body.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "agent/api.h"
#include "agent/endpoint.h"
#include "agent/state.h"

#define REQ_HEAD "{\"container_id\":\"c0ffee\",\"ifname\":\"eth0\","
#define REQ_TAIL                                      \
	"\"namespace\":\"shop\",\"ip\":\"10.1.1.5\"," \
	"\"host_ifname\":\"veth1a2b\"}"

static char tmpl[] = "/tmp/nm-test-endpoint.XXXXXX";
static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = mkdtemp(tmpl);
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	return system(cmd) ? -1 : 0;
}

static int parse(const char *body, struct nm_endpoint_req *req, char *err,
		 size_t errlen)
{
	return nm_endpoint_req_parse(body, strlen(body), req, err, errlen);
}

static void ok(const char *body, struct nm_endpoint_req *req)
{
	char err[512] = "";

	if (parse(body, req, err, sizeof(err)))
		fail_msg("refused '%s': %s", body, err);
}

/* Refused with a reason holding @frag. */
static void bad(const char *body, const char *frag)
{
	struct nm_endpoint_req req;
	char err[512] = "";

	if (parse(body, &req, err, sizeof(err)) >= 0) {
		nm_endpoint_req_free(&req);
		fail_msg("accepted '%s'", body);
	}
	if (!strstr(err, frag))
		fail_msg("'%s': reason '%s' lacks '%s'", body, err, frag);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_full_request(void **state)
{
	struct nm_endpoint_req req;
	char ip[INET_ADDRSTRLEN];

	(void)state;
	ok("{\"container_id\":\"c0ffee\",\"ifname\":\"eth0\",\"netns\":\"/run/netns/x\","
	   "\"namespace\":\"default\",\"name\":\"pod1\",\"labels\":{\"app\":\"frontend\",\"tier\":\"web\"},"
	   "\"ip\":\"10.1.1.5\",\"mac\":\"AA:bb:cc:dd:ee:0f\",\"host_ifname\":\"veth1a2b3c\"}\n",
	   &req);
	assert_string_equal(req.container_id, "c0ffee");
	assert_string_equal(req.ifname, "eth0");
	assert_string_equal(req.ns, "default");
	assert_string_equal(req.name, "pod1");
	assert_string_equal(req.host_ifname, "veth1a2b3c");
	assert_string_equal(inet_ntop(AF_INET, &req.ip, ip, sizeof(ip)),
			    "10.1.1.5");
	assert_true(req.has_mac);
	assert_int_equal(req.mac[0], 0xaa);
	assert_int_equal(req.mac[5], 0x0f);
	assert_int_equal(req.labels.n, 2);
	assert_string_equal(nm_labels_get(&req.labels, "app"), "frontend");
	assert_string_equal(nm_labels_get(&req.labels, "tier"), "web");
	assert_null(nm_labels_get(&req.labels, "nodemesh.io/namespace"));
	nm_endpoint_req_free(&req);
}

static void test_defaults(void **state)
{
	struct nm_endpoint_req req;

	(void)state;
	ok(REQ_HEAD REQ_TAIL, &req);
	assert_string_equal(req.name, "c0ffee");
	assert_int_equal(req.labels.n, 0);
	assert_false(req.has_mac);
	nm_endpoint_req_free(&req);
	/* null is "not given" for the optional fields. */
	ok(REQ_HEAD
	   "\"name\":null,\"labels\":null,\"mac\":null,\"netns\":null,"
	   "\"namespace\":\"shop\",\"ip\":\"10.1.1.5\",\"host_ifname\":\"v\"}",
	   &req);
	assert_string_equal(req.name, "c0ffee");
	nm_endpoint_req_free(&req);
	/* What the CNI plugin sends without CNI_NETNS. */
	ok(REQ_HEAD "\"netns\":\"\"," REQ_TAIL, &req);
	nm_endpoint_req_free(&req);
}

/* The derived name is a DNS label however odd the container id. */
static void test_name_from_container_id(void **state)
{
	static const struct {
		const char *id, *name;
	} cases[] = {
		{ "ABC_def.123", "abc-def-123" },
		{ "--x--", "x" },
		{ "___", "container" },
		{ "._-", "container" },
	};
	struct nm_endpoint_req req;
	char body[1024], *id, *want;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(
			body, sizeof(body),
			"{\"container_id\":\"%s\",\"ifname\":\"eth0\"," REQ_TAIL,
			cases[i].id);
		ok(body, &req);
		assert_string_equal(req.name, cases[i].name);
		nm_endpoint_req_free(&req);
	}
	/* Truncated to 63, and no '-' left at the cut. */
	id = repeat('a', 100);
	id[63] = '_';
	id[62] = '.';
	snprintf(body, sizeof(body),
		 "{\"container_id\":\"%s\",\"ifname\":\"eth0\"," REQ_TAIL, id);
	ok(body, &req);
	want = repeat('a', 62);
	assert_string_equal(req.name, want);
	nm_endpoint_req_free(&req);
	free(want);
	free(id);
}

static void test_required_fields(void **state)
{
	(void)state;
	bad("{\"ifname\":\"eth0\"," REQ_TAIL, "missing field 'container_id'");
	bad("{\"container_id\":\"c\"," REQ_TAIL, "missing field 'ifname'");
	bad(REQ_HEAD "\"ip\":\"10.1.1.5\",\"host_ifname\":\"v\"}",
	    "missing field 'namespace'");
	bad(REQ_HEAD "\"namespace\":\"shop\",\"host_ifname\":\"v\"}",
	    "missing field 'ip'");
	bad(REQ_HEAD "\"namespace\":\"shop\",\"ip\":\"10.1.1.5\"}",
	    "missing field 'host_ifname'");
	bad(REQ_HEAD
	    "\"namespace\":null,\"ip\":\"10.1.1.5\",\"host_ifname\":\"v\"}",
	    "missing field 'namespace'");
}

static void test_types_and_unknown_fields(void **state)
{
	(void)state;
	bad(REQ_HEAD
	    "\"namespace\":\"shop\",\"ip\":167837957,\"host_ifname\":\"v\"}",
	    "field 'ip' must be a string, got int");
	bad(REQ_HEAD "\"labels\":[\"app\"]," REQ_TAIL,
	    "field 'labels' must be an object, got array");
	bad(REQ_HEAD "\"labels\":{\"app\":1}," REQ_TAIL,
	    "label 'app' must be a string, got int");
	/* A misspelt optional field would drop the labels silently. */
	bad(REQ_HEAD "\"lables\":{\"app\":\"x\"}," REQ_TAIL,
	    "unknown field 'lables'");
}

static void test_malformed_json(void **state)
{
	char big[NM_EP_REQ_MAX + 2];
	struct nm_endpoint_req req;
	char err[512];

	(void)state;
	bad("", "empty body");
	bad("{\"container_id\":", "truncated body");
	bad("[1,2]", "must be a JSON object, got array");
	bad(REQ_HEAD REQ_TAIL "x", "malformed JSON");
	bad(REQ_HEAD REQ_TAIL "{}", "malformed JSON");
	bad("{'container_id':'c'}", "malformed JSON at byte");
	bad(REQ_HEAD "\"name\":\"a\\u0000b\"," REQ_TAIL, "NUL");
	memset(big, ' ', sizeof(big));
	assert_int_equal(nm_endpoint_req_parse(big, sizeof(big), &req, err,
					       sizeof(err)),
			 -E2BIG);
	assert_non_null(strstr(err, "at most 65536"));
}

static void test_ip(void **state)
{
	static const char *const refused[] = {
		"10.1.1",    "10.1.1.256",	"10.1.1.5/32", " 10.1.1.5",
		"0.0.0.0",   "0.1.2.3",		"127.0.0.1",   "224.0.0.1",
		"240.0.0.1", "255.255.255.255", "::1",
	};
	char body[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(
			body, sizeof(body),
			REQ_HEAD
			"\"namespace\":\"shop\",\"ip\":\"%s\",\"host_ifname\":\"v\"}",
			refused[i]);
		bad(body, "bad ip");
	}
}

static void test_mac(void **state)
{
	static const char *const refused[] = {
		"aa:bb:cc:dd:ee",	"aa-bb-cc-dd-ee-ff",
		"aa:bb:cc:dd:ee:fg",	"a:bb:cc:dd:ee:fff",
		"aa:bb:cc:dd:ee:ff:00", "",
	};
	char body[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(body, sizeof(body),
			 REQ_HEAD "\"mac\":\"%s\"," REQ_TAIL, refused[i]);
		bad(body, "bad mac");
	}
}

static void test_labels(void **state)
{
	struct nm_endpoint_req req;
	char *body, *p;
	size_t i;

	(void)state;
	bad(REQ_HEAD
	    "\"labels\":{\"nodemesh.io/namespace\":\"other\"}," REQ_TAIL,
	    "label nodemesh.io/namespace is set by nodemesh");
	bad(REQ_HEAD "\"labels\":{\"nodemesh.io/cluster\":\"west\"}," REQ_TAIL,
	    "label nodemesh.io/cluster is set by nodemesh");
	bad(REQ_HEAD "\"labels\":{\"-app\":\"x\"}," REQ_TAIL,
	    "bad label key '-app'");
	bad(REQ_HEAD "\"labels\":{\"app\":\"a b\"}," REQ_TAIL,
	    "bad value of label app");
	bad(REQ_HEAD "\"labels\":{\"\":\"x\"}," REQ_TAIL, "bad label key ''");

	/* 62 labels fit beside the agent's two; 63 do not. */
	body = malloc(8192);
	assert_non_null(body);
	for (i = 62; i <= 63; i++) {
		size_t j;

		p = body + sprintf(body, REQ_HEAD "\"labels\":{");
		for (j = 0; j < i; j++)
			p += sprintf(p, "%s\"k%zu\":\"v\"", j ? "," : "", j);
		sprintf(p, "}," REQ_TAIL);
		if (i == 62) {
			ok(body, &req);
			assert_int_equal(req.labels.n, 62);
			nm_endpoint_req_free(&req);
		} else {
			bad(body, "63 labels: at most 62");
		}
	}
	free(body);
}

static void test_namespace_and_name(void **state)
{
	struct nm_endpoint_req req;
	char body[1024], *long_ns;

	(void)state;
	bad(REQ_HEAD
	    "\"namespace\":\"\",\"ip\":\"10.1.1.5\",\"host_ifname\":\"v\"}",
	    "empty namespace");
	/* A label value, but no DNS label: the kvstore would refuse it. */
	bad(REQ_HEAD
	    "\"namespace\":\"Shop_1\",\"ip\":\"10.1.1.5\",\"host_ifname\":\"v\"}",
	    "must be a DNS label");
	bad(REQ_HEAD
	    "\"namespace\":\"a b\",\"ip\":\"10.1.1.5\",\"host_ifname\":\"v\"}",
	    "bad namespace 'a b'");
	long_ns = repeat('n', 64);
	snprintf(
		body, sizeof(body),
		REQ_HEAD
		"\"namespace\":\"%s\",\"ip\":\"10.1.1.5\",\"host_ifname\":\"v\"}",
		long_ns);
	bad(body, "bad namespace");
	free(long_ns);

	bad(REQ_HEAD "\"name\":\"Pod_1\"," REQ_TAIL, "bad name 'Pod_1'");
	bad(REQ_HEAD "\"name\":\"\"," REQ_TAIL, "bad name");
	ok(REQ_HEAD "\"name\":\"web-1.canary\"," REQ_TAIL, &req);
	assert_string_equal(req.name, "web-1.canary");
	nm_endpoint_req_free(&req);
}

static void test_ids_and_interfaces(void **state)
{
	char body[1024], *long_id;
	char err[256];

	(void)state;
	bad("{\"container_id\":\"abc/def\",\"ifname\":\"eth0\"," REQ_TAIL,
	    "bad container id 'abc/def'");
	bad("{\"container_id\":\"\",\"ifname\":\"eth0\"," REQ_TAIL,
	    "empty container id");
	long_id = repeat('c', 256);
	snprintf(body, sizeof(body),
		 "{\"container_id\":\"%s\",\"ifname\":\"eth0\"," REQ_TAIL,
		 long_id);
	bad(body, "container id of 256 characters: at most 255");
	long_id[255] = '\0';
	assert_int_equal(nm_endpoint_container_check(long_id, err, sizeof(err)),
			 0);
	free(long_id);

	bad("{\"container_id\":\"c\",\"ifname\":\"eth0123456789abc\"," REQ_TAIL,
	    "bad ifname 'eth0123456789abc': at most 15 characters");
	bad("{\"container_id\":\"c\",\"ifname\":\"eth/0\"," REQ_TAIL,
	    "bad ifname 'eth/0'");
	bad("{\"container_id\":\"c\",\"ifname\":\"..\"," REQ_TAIL,
	    "bad ifname '..'");
	bad(REQ_HEAD
	    "\"namespace\":\"shop\",\"ip\":\"10.1.1.5\",\"host_ifname\":\"veth 1\"}",
	    "bad host_ifname 'veth 1'");
	bad(REQ_HEAD "\"netns\":\"run/netns/x\"," REQ_TAIL,
	    "bad netns 'run/netns/x': must be an absolute path");
	assert_int_equal(nm_endpoint_ifname_check("ifname", "eth0:1", err,
						  sizeof(err)),
			 -EINVAL);
	assert_int_equal(nm_endpoint_ifname_check("ifname", "veth0123456789a",
						  err, sizeof(err)),
			 0);
}

static struct nm_pod pod(const char *cid, const char *ifname, const char *ip,
			 __u32 eid)
{
	struct nm_pod p = { .endpoint_id = eid, .identity = 16777472ULL };

	snprintf(p.container_id, sizeof(p.container_id), "%s", cid);
	snprintf(p.ifname, sizeof(p.ifname), "%s", ifname);
	snprintf(p.host_ifname, sizeof(p.host_ifname), "veth-%s", cid);
	snprintf(p.ns, sizeof(p.ns), "shop");
	snprintf(p.name, sizeof(p.name), "web-%u", eid);
	assert_int_equal(inet_pton(AF_INET, ip, &p.ip), 1);
	return p;
}

static void test_pods_roundtrip(void **state)
{
	struct nm_pods set = {}, back;
	struct nm_pod a = pod("aaa", "eth0", "10.1.1.5", 1),
		      b = pod("bbb", "eth0", "10.1.1.6", 2), *p;
	struct nm_state st;
	char d[256], err[512];
	__be32 ip;

	(void)state;
	snprintf(d, sizeof(d), "%s/pods", dir);
	assert_int_equal(nm_state_open(d, "east", 1, &st), 0);
	/* No file yet: an empty set. */
	assert_int_equal(nm_pods_load(&st, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 0);

	a.has_mac = true;
	memcpy(a.mac, "\xaa\xbb\xcc\x00\x01\x02", 6);
	assert_int_equal(nm_pods_put(&set, &a), 0);
	assert_int_equal(nm_pods_put(&set, &b), 0);
	/* Same container interface: replaced, not added. */
	b.endpoint_id = 7;
	assert_int_equal(nm_pods_put(&set, &b), 0);
	assert_int_equal(set.n, 2);
	assert_int_equal(nm_pods_save(&st, &set, err, sizeof(err)), 0);
	nm_pods_free(&set);

	assert_int_equal(nm_pods_load(&st, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	p = nm_pods_find(&back, "aaa", "eth0");
	assert_non_null(p);
	assert_string_equal(p->host_ifname, "veth-aaa");
	assert_string_equal(p->ns, "shop");
	assert_string_equal(p->name, "web-1");
	assert_int_equal(p->ip, a.ip);
	assert_int_equal(p->endpoint_id, 1);
	assert_int_equal(p->identity, 16777472ULL);
	assert_true(p->has_mac);
	assert_memory_equal(p->mac, a.mac, 6);
	assert_null(nm_pods_find(&back, "aaa", "eth1"));
	assert_int_equal(inet_pton(AF_INET, "10.1.1.6", &ip), 1);
	p = nm_pods_find_ip(&back, ip);
	assert_non_null(p);
	assert_string_equal(p->container_id, "bbb");
	assert_int_equal(p->endpoint_id, 7);
	assert_false(p->has_mac);
	nm_pods_del(&back, nm_pods_find(&back, "aaa", "eth0"));
	assert_int_equal(back.n, 1);
	assert_string_equal(back.v[0].container_id, "bbb");
	nm_pods_free(&back);
}

static void test_pods_file_refused(void **state)
{
	struct nm_pods set;
	struct nm_state st;
	char d[256], err[512];
	static const char *const broken[] = {
		"not json",
		"{\"endpoints\":{}}",
		"{\"endpoints\":[{\"container_id\":\"a/b\",\"ifname\":\"eth0\"}]}",
		"{\"endpoints\":[{\"container_id\":\"a\",\"ifname\":\"eth0\",\"host_ifname\":\"v\","
		"\"namespace\":\"shop\",\"name\":\"a\",\"ip\":\"10.1.1.5\",\"identity\":\"x\",\"endpoint_id\":1}]}",
	};
	size_t i;

	(void)state;
	snprintf(d, sizeof(d), "%s/broken", dir);
	assert_int_equal(nm_state_open(d, "east", 1, &st), 0);
	for (i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		assert_int_equal(nm_state_write(&st, "cni.json", broken[i],
						strlen(broken[i])),
				 0);
		err[0] = '\0';
		assert_int_equal(nm_pods_load(&st, &set, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "cni.json"));
	}
}

static void test_pods_drain(void **state)
{
	struct nm_pod a = pod("aaa", "eth0", "10.1.1.5", 1),
		      b = pod("bbb", "eth0", "10.1.1.6", 2), got;
	struct nm_pods set = {}, back;
	struct nm_state st;
	char d[256], err[512], *doc, *text;
	size_t len;

	(void)state;
	snprintf(d, sizeof(d), "%s/drain", dir);
	assert_int_equal(nm_state_open(d, "east", 1, &st), 0);
	assert_int_equal(nm_pods_put(&set, &a), 0);
	assert_int_equal(nm_pods_put(&set, &b), 0);
	assert_int_equal(nm_pods_save(&st, &set, err, sizeof(err)), 0);
	nm_pods_free(&set);
	/* Active pods' records carry no state: files read as before. */
	assert_int_equal(nm_state_read(&st, "cni.json", &text, &len), 0);
	assert_null(strstr(text, "state"));
	free(text);

	assert_int_equal(nm_pods_drain(&st, "zzz", "eth0", &got, err,
				       sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "no endpoint for container zzz"));
	assert_int_equal(nm_pods_drain(&st, "bbb", "eth0", &got, err,
				       sizeof(err)),
			 0);
	assert_true(got.terminating);
	assert_string_equal(got.container_id, "bbb");
	/* Again: no change, no error. */
	assert_int_equal(nm_pods_drain(&st, "bbb", "eth0", &got, err,
				       sizeof(err)),
			 0);
	assert_int_equal(nm_pods_load(&st, &back, err, sizeof(err)), 0);
	assert_false(nm_pods_find(&back, "aaa", "eth0")->terminating);
	assert_true(nm_pods_find(&back, "bbb", "eth0")->terminating);
	doc = nm_pod_doc(nm_pods_find(&back, "bbb", "eth0"), 0);
	assert_non_null(strstr(doc, "\"state\":\"terminating\"}"));
	free(doc);
	nm_pods_free(&back);

	/* A stored state other than terminating is refused. */
	text = "{\"endpoints\":[{\"container_id\":\"a\",\"ifname\":\"eth0\","
	       "\"host_ifname\":\"v\",\"namespace\":\"shop\",\"name\":\"a\","
	       "\"ip\":\"10.1.1.5\",\"identity\":\"1\",\"endpoint_id\":1,"
	       "\"state\":\"draining\"}]}";
	assert_int_equal(nm_state_write(&st, "cni.json", text, strlen(text)),
			 0);
	assert_int_equal(nm_pods_load(&st, &back, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "field 'state' must be terminating"));
}

static void test_documents(void **state)
{
	struct nm_pod a = pod("aaa", "eth0", "10.1.1.5", 3);
	struct nm_pods set = { &a, 1 };
	char *doc;

	(void)state;
	doc = nm_pod_doc(&a, 0);
	assert_non_null(doc);
	/* 64-bit identities as strings; the default MTU without one. */
	assert_string_equal(
		doc,
		"{\"container_id\":\"aaa\",\"ifname\":\"eth0\",\"ip\":\"10.1.1.5\","
		"\"endpoint_id\":3,\"identity\":\"16777472\",\"host_ifname\":\"veth-aaa\","
		"\"mtu\":1450,\"state\":\"active\"}\n");
	free(doc);
	doc = nm_pods_doc(&set, 1400);
	assert_non_null(doc);
	assert_non_null(
		strstr(doc, "{\"endpoints\":[{\"container_id\":\"aaa\""));
	assert_non_null(strstr(doc, "\"mtu\":1400,\"state\":\"active\"}]}\n"));
	free(doc);
	set.n = 0;
	doc = nm_pods_doc(&set, 1400);
	assert_string_equal(doc, "{\"endpoints\":[]}\n");
	free(doc);
}

static void test_error_body_escaped(void **state)
{
	char *s;

	(void)state;
	s = nm_api_error_json("bad name 'a\"b\\c'\n");
	assert_non_null(s);
	assert_string_equal(s,
			    "{\"error\":\"bad name 'a\\\"b\\\\c'\\u000a\"}\n");
	free(s);
	s = nm_api_error_json("");
	assert_string_equal(s, "{\"error\":\"\"}\n");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_request),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_name_from_container_id),
		cmocka_unit_test(test_required_fields),
		cmocka_unit_test(test_types_and_unknown_fields),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_ip),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_namespace_and_name),
		cmocka_unit_test(test_ids_and_interfaces),
		cmocka_unit_test(test_pods_roundtrip),
		cmocka_unit_test(test_pods_file_refused),
		cmocka_unit_test(test_pods_drain),
		cmocka_unit_test(test_documents),
		cmocka_unit_test(test_error_body_escaped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
