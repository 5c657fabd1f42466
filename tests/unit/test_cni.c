// SPDX-License-Identifier: GPL-2.0
/*
 * nodemesh-cni's parsing: the CNI environment and CNI_ARGS, network
 * configuration errors and their codes, prevResult as ptp and bridge
 * produce it, label merge order and the documents printed or sent.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent/cni.h"

/* A ptp result (1.0.0): the host veth first, then the pod's eth0. */
#define PTP_PREV                                                     \
	"{\"cniVersion\":\"1.0.0\",\"interfaces\":["                 \
	"{\"name\":\"veth81c7e821\",\"mac\":\"56:23:59:3f:99:ac\"}," \
	"{\"name\":\"eth0\",\"mac\":\"c6:91:2d:cb:89:64\","          \
	"\"sandbox\":\"/run/netns/pod1\"}],"                         \
	"\"ips\":[{\"interface\":1,\"address\":\"10.244.1.2/24\","   \
	"\"gateway\":\"10.244.1.1\"}],\"dns\":{}}"

#define CONF(version, extra)                                   \
	"{\"cniVersion\":\"" version "\",\"name\":\"nm-net\"," \
	"\"type\":\"nodemesh-cni\"" extra "}"

static const struct nm_cni_env good_env = {
	.command = "ADD",
	.container_id = "c0ffee",
	.netns = "/run/netns/pod1",
	.ifname = "eth0",
	.path = "/usr/lib/cni",
};

static void expect_err(int ret, const struct nm_cni_error *e, int code,
		       const char *frag, const char *what)
{
	if (!ret)
		fail_msg("%s: accepted", what);
	if (e->code != code)
		fail_msg("%s: code %d, expected %d (msg '%s')", what, e->code,
			 code, e->msg);
	if (!strstr(e->msg, frag) && !strstr(e->details, frag))
		fail_msg("%s: message '%s' / '%s' lacks '%s'", what, e->msg,
			 e->details, frag);
}

/* ---------------------------------------------------- environment */

static void test_cmd_parse(void **state)
{
	struct nm_cni_error e = {};
	enum nm_cni_cmd cmd;

	(void)state;
	assert_int_equal(nm_cni_cmd_parse("ADD", &cmd, &e), 0);
	assert_int_equal(cmd, NM_CNI_ADD);
	assert_int_equal(nm_cni_cmd_parse("DEL", &cmd, &e), 0);
	assert_int_equal(cmd, NM_CNI_DEL);
	assert_int_equal(nm_cni_cmd_parse("CHECK", &cmd, &e), 0);
	assert_int_equal(cmd, NM_CNI_CHECK);
	assert_int_equal(nm_cni_cmd_parse("VERSION", &cmd, &e), 0);
	assert_int_equal(cmd, NM_CNI_VERSION);
	expect_err(nm_cni_cmd_parse(NULL, &cmd, &e), &e, NM_CNI_E_ENV,
		   "missing environment variable CNI_COMMAND", "unset");
	expect_err(nm_cni_cmd_parse("", &cmd, &e), &e, NM_CNI_E_ENV,
		   "missing environment variable CNI_COMMAND", "empty");
	expect_err(nm_cni_cmd_parse("add", &cmd, &e), &e, NM_CNI_E_ENV,
		   "unknown CNI_COMMAND 'add'", "lower case");
}

static void test_env_required(void **state)
{
	struct nm_cni_error e = {};
	struct nm_cni_env env;

	(void)state;
	assert_int_equal(nm_cni_env_check(&good_env, NM_CNI_ADD, &e), 0);
	assert_int_equal(nm_cni_env_check(&good_env, NM_CNI_CHECK, &e), 0);

	env = good_env;
	env.container_id = NULL;
	expect_err(nm_cni_env_check(&env, NM_CNI_ADD, &e), &e, NM_CNI_E_ENV,
		   "missing environment variable CNI_CONTAINERID", "no id");
	env = good_env;
	env.ifname = "";
	expect_err(nm_cni_env_check(&env, NM_CNI_DEL, &e), &e, NM_CNI_E_ENV,
		   "missing environment variable CNI_IFNAME", "no ifname");
	env = good_env;
	env.path = NULL;
	expect_err(nm_cni_env_check(&env, NM_CNI_ADD, &e), &e, NM_CNI_E_ENV,
		   "missing environment variable CNI_PATH", "no path");
	env = good_env;
	env.netns = NULL;
	expect_err(nm_cni_env_check(&env, NM_CNI_ADD, &e), &e, NM_CNI_E_ENV,
		   "missing environment variable CNI_NETNS", "ADD no netns");
	expect_err(nm_cni_env_check(&env, NM_CNI_CHECK, &e), &e, NM_CNI_E_ENV,
		   "missing environment variable CNI_NETNS", "CHECK no netns");
}

static void test_env_del_without_netns(void **state)
{
	struct nm_cni_error e = {};
	struct nm_cni_env env = good_env;

	(void)state;
	env.netns = NULL;
	assert_int_equal(nm_cni_env_check(&env, NM_CNI_DEL, &e), 0);
	env.netns = "";
	assert_int_equal(nm_cni_env_check(&env, NM_CNI_DEL, &e), 0);
	/* VERSION needs nothing but CNI_COMMAND. */
	memset(&env, 0, sizeof(env));
	assert_int_equal(nm_cni_env_check(&env, NM_CNI_VERSION, &e), 0);
}

static void test_env_malformed(void **state)
{
	static const struct {
		const char *id, *netns, *ifname, *frag;
	} c[] = {
		{ "-abc", NULL, NULL, "bad CNI_CONTAINERID '-abc'" },
		{ "ab/c", NULL, NULL, "bad CNI_CONTAINERID" },
		{ "ab c", NULL, NULL, "bad CNI_CONTAINERID" },
		{ NULL, "run/netns/x", NULL, "not an absolute path" },
		{ NULL, NULL, "eth0123456789012", "longer than 15" },
		{ NULL, NULL, "..", "not interface names" },
		{ NULL, NULL, "e/0", "contains '/'" },
		{ NULL, NULL, "e:0", "contains '/', ':'" },
		{ NULL, NULL, "e 0", "whitespace" },
	};
	struct nm_cni_error e = {};
	struct nm_cni_env env;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		env = good_env;
		if (c[i].id)
			env.container_id = c[i].id;
		if (c[i].netns)
			env.netns = c[i].netns;
		if (c[i].ifname)
			env.ifname = c[i].ifname;
		expect_err(nm_cni_env_check(&env, NM_CNI_ADD, &e), &e,
			   NM_CNI_E_ENV, c[i].frag, c[i].frag);
	}
	/* The longest name Linux takes is fine. */
	env = good_env;
	env.ifname = "eth012345678901";
	assert_int_equal(nm_cni_env_check(&env, NM_CNI_ADD, &e), 0);
	env.container_id = "A1_b.c-d";
	assert_int_equal(nm_cni_env_check(&env, NM_CNI_ADD, &e), 0);
}

/* ------------------------------------------------------- CNI_ARGS */

static void test_args_kubernetes(void **state)
{
	struct nm_cni_error e = {};
	struct nm_cni_args a;

	(void)state;
	assert_int_equal(
		nm_cni_args_parse(
			"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;"
			"K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=u-1;"
			"NODEMESH_LABELS=app:web,tier:front",
			&a, &e),
		0);
	assert_string_equal(a.pod_namespace, "shop");
	assert_string_equal(a.pod_name, "web-1");
	assert_string_equal(a.labels, "app:web,tier:front");
	nm_cni_args_free(&a);
}

static void test_args_empty(void **state)
{
	struct nm_cni_error e = {};
	struct nm_cni_args a;

	(void)state;
	assert_int_equal(nm_cni_args_parse(NULL, &a, &e), 0);
	assert_null(a.pod_namespace);
	assert_int_equal(nm_cni_args_parse("", &a, &e), 0);
	assert_null(a.pod_name);
	/* Empty values are absent; empty pairs carry nothing. */
	assert_int_equal(nm_cni_args_parse("K8S_POD_NAME=;;FOO=1;", &a, &e), 0);
	assert_null(a.pod_name);
	assert_null(a.labels);
	nm_cni_args_free(&a);
}

static void test_args_malformed(void **state)
{
	struct nm_cni_error e = {};
	struct nm_cni_args a;

	(void)state;
	expect_err(nm_cni_args_parse("FOO", &a, &e), &e, NM_CNI_E_ENV,
		   "bad CNI_ARGS pair 'FOO': expected KEY=VALUE", "no =");
	expect_err(nm_cni_args_parse("A=1;=x", &a, &e), &e, NM_CNI_E_ENV,
		   "bad CNI_ARGS pair '=x'", "no key");
	expect_err(nm_cni_args_parse("K8S_POD_NAME=a;K8S_POD_NAME=b", &a, &e),
		   &e, NM_CNI_E_ENV, "CNI_ARGS gives K8S_POD_NAME twice",
		   "twice");
}

/* ------------------------------------------------ configuration */

static int conf(const char *s, enum nm_cni_cmd cmd, struct nm_cni_conf *c,
		struct nm_cni_error *e)
{
	return nm_cni_conf_parse(s, strlen(s), cmd, c, e);
}

static void test_conf_decode_errors(void **state)
{
	static const struct {
		const char *in, *frag;
	} c[] = {
		{ "", "empty input" },
		{ "   ", "truncated JSON" },
		{ "not json", "malformed JSON at byte" },
		{ "{\"cniVersion\":\"1.0.0\"", "truncated JSON" },
		{ "{\"cniVersion\":\"1.0.0\",}", "malformed JSON" },
		{ "{} {}", "malformed JSON at byte 3" },
		{ "[1,2]", "expected a JSON object, got an array" },
		{ "\"x\"", "expected a JSON object, got a string" },
		{ "{\"name\":\"a\\u0000b\"}", "NUL" },
	};
	struct nm_cni_error e = {};
	struct nm_cni_conf cf;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		expect_err(conf(c[i].in, NM_CNI_ADD, &cf, &e), &e,
			   NM_CNI_E_DECODE, c[i].frag, c[i].in);
		assert_null(cf.root);
		assert_string_equal(cf.cni_version, "");
	}
	/* A NUL byte in the stream itself. */
	expect_err(nm_cni_conf_parse("{}\0{}", 5, NM_CNI_DEL, &cf, &e), &e,
		   NM_CNI_E_DECODE, "NUL", "raw NUL");
}

static void test_conf_invalid(void **state)
{
	static const struct {
		const char *in, *frag;
	} c[] = {
		{ "{\"name\":\"n\",\"type\":\"t\"}",
		  "missing field cniVersion" },
		{ "{\"cniVersion\":1,\"name\":\"n\",\"type\":\"t\"}",
		  "field cniVersion must be a string, not a number" },
		{ "{\"cniVersion\":\"1.0.0\",\"type\":\"t\"}",
		  "missing field name" },
		{ "{\"cniVersion\":\"1.0.0\",\"name\":[],\"type\":\"t\"}",
		  "field name must be a string, not an array" },
		{ "{\"cniVersion\":\"1.0.0\",\"name\":\"-n\",\"type\":\"t\"}",
		  "bad network name '-n'" },
		{ "{\"cniVersion\":\"1.0.0\",\"name\":\"n\"}",
		  "missing field type" },
		{ "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"\"}",
		  "empty type" },
		{ "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":null}",
		  "field type must be a string, not null" },
		{ CONF("1.0.0", ",\"agentSocket\":\"agent.sock\""),
		  "bad agentSocket 'agent.sock'" },
		{ CONF("1.0.0",
		       ",\"agentSocket\":\"/"
		       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		       "aaaaaaa\""),
		  "at most 107 bytes" },
		{ CONF("1.0.0", ",\"agentSocket\":7"),
		  "field agentSocket must be a string" },
		{ CONF("1.0.0", ",\"labels\":[]"),
		  "field labels must be an object, not an array" },
		{ CONF("1.0.0", ",\"labels\":{\"app\":1}"),
		  "label 'app' in labels must be a string, not a number" },
		{ CONF("1.0.0", ",\"labels\":{\"-app\":\"x\"}"),
		  "bad label '-app=x' in labels" },
		{ CONF("1.0.0", ",\"labels\":{\"app\":\"a b\"}"),
		  "bad label 'app=a b' in labels" },
		{ CONF("1.0.0",
		       ",\"labels\":{\"nodemesh.io/namespace\":\"kube-system\"}"),
		  "are set by nodemesh" },
		{ CONF("1.0.0", ",\"runtimeConfig\":\"x\""),
		  "field runtimeConfig must be an object" },
		{ CONF("1.0.0", ",\"runtimeConfig\":{\"labels\":[\"a\"]}"),
		  "field runtimeConfig.labels must be an object" },
		{ CONF("1.0.0",
		       ",\"runtimeConfig\":{\"labels\":{\"nodemesh.io/cluster\":\"x\"}}"),
		  "in runtimeConfig.labels" },
		{ CONF("1.0.0", ",\"prevResult\":\"x\""),
		  "field prevResult must be an object, not a string" },
	};
	struct nm_cni_error e = {};
	struct nm_cni_conf cf;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		expect_err(conf(c[i].in, NM_CNI_ADD, &cf, &e), &e,
			   NM_CNI_E_CONFIG, c[i].frag, c[i].in);
		assert_null(cf.root);
	}
}

static void test_conf_version(void **state)
{
	static const char *const good[] = { "0.3.0", "0.3.1", "0.4.0",
					    "1.0.0" };
	struct nm_cni_error e = {};
	struct nm_cni_conf cf;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		char buf[128];

		snprintf(
			buf, sizeof(buf),
			"{\"cniVersion\":\"%s\",\"name\":\"n\",\"type\":\"t\"}",
			good[i]);
		assert_int_equal(conf(buf, NM_CNI_DEL, &cf, &e), 0);
		assert_string_equal(cf.cni_version, good[i]);
		nm_cni_conf_free(&cf);
	}
	expect_err(conf(CONF("0.2.0", ""), NM_CNI_DEL, &cf, &e), &e,
		   NM_CNI_E_VERSION, "incompatible CNI version '0.2.0'",
		   "0.2.0");
	expect_err(conf(CONF("1.1.0", ""), NM_CNI_DEL, &cf, &e), &e,
		   NM_CNI_E_VERSION, "supports 0.3.0, 0.3.1, 0.4.0 and 1.0.0",
		   "1.1.0");
	/* An unsupported version is not echoed back. */
	assert_string_equal(cf.cni_version, "");
	/* CHECK came with 0.4.0. */
	expect_err(conf(CONF("0.3.1", ",\"prevResult\":" PTP_PREV),
			NM_CNI_CHECK, &cf, &e),
		   &e, NM_CNI_E_VERSION, "does not have CHECK", "0.3.1 CHECK");
	/* A later error keeps the version for the error object. */
	expect_err(
		conf("{\"cniVersion\":\"0.4.0\",\"name\":\"-\",\"type\":\"t\"}",
		     NM_CNI_ADD, &cf, &e),
		&e, NM_CNI_E_CONFIG, "bad network name", "bad name");
	assert_string_equal(cf.cni_version, "0.4.0");
}

static void test_conf_prev_required(void **state)
{
	struct nm_cni_error e = {};
	struct nm_cni_conf cf;

	(void)state;
	expect_err(conf(CONF("1.0.0", ""), NM_CNI_ADD, &cf, &e), &e,
		   NM_CNI_E_CONFIG, "missing field prevResult", "ADD");
	assert_non_null(strstr(e.details, "chained plugin"));
	expect_err(conf(CONF("1.0.0", ""), NM_CNI_CHECK, &cf, &e), &e,
		   NM_CNI_E_CONFIG, "missing field prevResult", "CHECK");
	/* DEL cleans up with no prevResult, or a broken one. */
	assert_int_equal(conf(CONF("1.0.0", ""), NM_CNI_DEL, &cf, &e), 0);
	assert_null(cf.prev);
	nm_cni_conf_free(&cf);
	assert_int_equal(conf(CONF("1.0.0", ",\"prevResult\":7"), NM_CNI_DEL,
			      &cf, &e),
			 0);
	nm_cni_conf_free(&cf);
}

static void test_conf_defaults(void **state)
{
	struct nm_cni_error e = {};
	struct nm_cni_conf cf;

	(void)state;
	assert_int_equal(conf(CONF("1.0.0", ",\"prevResult\":" PTP_PREV
					    ",\"ipam\":{},\"unknown\":[1]"),
			      NM_CNI_ADD, &cf, &e),
			 0);
	assert_string_equal(cf.name, "nm-net");
	assert_string_equal(cf.agent_socket, NM_CNI_DEFAULT_SOCKET);
	assert_int_equal(cf.labels.n, 0);
	assert_non_null(cf.prev);
	nm_cni_conf_free(&cf);

	assert_int_equal(conf(CONF("1.0.0", ",\"agentSocket\":\"/tmp/a.sock\""),
			      NM_CNI_DEL, &cf, &e),
			 0);
	assert_string_equal(cf.agent_socket, "/tmp/a.sock");
	nm_cni_conf_free(&cf);

	/* Optional fields that are null are absent; required ones are not. */
	assert_int_equal(conf(CONF("1.0.0",
				   ",\"labels\":null,\"agentSocket\":null,"
				   "\"runtimeConfig\":{\"labels\":null}"),
			      NM_CNI_DEL, &cf, &e),
			 0);
	assert_string_equal(cf.agent_socket, NM_CNI_DEFAULT_SOCKET);
	assert_int_equal(cf.labels.n, 0);
	nm_cni_conf_free(&cf);
	expect_err(conf(CONF("1.0.0", ",\"prevResult\":null"), NM_CNI_ADD, &cf,
			&e),
		   &e, NM_CNI_E_CONFIG,
		   "field prevResult must be an object, not null",
		   "null prevResult");
}

/* --------------------------------------------------------- labels */

static void test_labels_merge_order(void **state)
{
	struct nm_cni_args a = { .labels = "tier:edge,team:payments" };
	struct nm_cni_error e = {};
	struct nm_labels l;
	struct nm_cni_conf cf;

	(void)state;
	/* Top-level labels, then runtimeConfig.labels, then CNI_ARGS. */
	assert_int_equal(
		conf(CONF("1.0.0",
			  ",\"labels\":{\"app\":\"static\",\"tier\":\"t0\",\"env\":\"prod\"}"
			  ",\"runtimeConfig\":{\"labels\":{\"app\":\"web\",\"tier\":\"t1\"}}"),
		     NM_CNI_DEL, &cf, &e),
		0);
	assert_int_equal(cf.labels.n, 3);
	assert_string_equal(nm_labels_get(&cf.labels, "app"), "web");
	assert_string_equal(nm_labels_get(&cf.labels, "tier"), "t1");
	assert_string_equal(nm_labels_get(&cf.labels, "env"), "prod");

	assert_int_equal(nm_cni_labels_merge(&cf.labels, &a, &l, &e), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(nm_labels_get(&l, "app"), "web");
	assert_string_equal(nm_labels_get(&l, "tier"), "edge");
	assert_string_equal(nm_labels_get(&l, "env"), "prod");
	assert_string_equal(nm_labels_get(&l, "team"), "payments");
	/* The configuration's own set is left alone. */
	assert_string_equal(nm_labels_get(&cf.labels, "tier"), "t1");
	nm_labels_free(&l);

	a.labels = NULL;
	assert_int_equal(nm_cni_labels_merge(&cf.labels, &a, &l, &e), 0);
	assert_true(nm_labels_equal(&l, &cf.labels));
	nm_labels_free(&l);
	nm_cni_conf_free(&cf);
}

static void test_labels_args_bad(void **state)
{
	struct nm_cni_args a = { .labels = "app" };
	struct nm_labels empty = {}, l;
	struct nm_cni_error e = {};

	(void)state;
	expect_err(nm_cni_labels_merge(&empty, &a, &l, &e), &e, NM_CNI_E_ENV,
		   "bad NODEMESH_LABELS 'app' in CNI_ARGS: missing '='",
		   "no :");
	a.labels = "app=web";
	expect_err(nm_cni_labels_merge(&empty, &a, &l, &e), &e, NM_CNI_E_ENV,
		   "write k1:v1,k2:v2", "= refused");
	a.labels = "app:a,app:b";
	expect_err(nm_cni_labels_merge(&empty, &a, &l, &e), &e, NM_CNI_E_ENV,
		   "duplicate label key", "twice");
	a.labels = "nodemesh.io/namespace:other";
	expect_err(nm_cni_labels_merge(&empty, &a, &l, &e), &e, NM_CNI_E_ENV,
		   "are set by nodemesh", "reserved");
}

/* ----------------------------------------------------- prevResult */

static json_object *prev_of(const char *s)
{
	json_object *o = json_tokener_parse(s);

	assert_non_null(o);
	return o;
}

static void test_prev_ptp(void **state)
{
	json_object *o = prev_of(PTP_PREV);
	struct nm_cni_error e = {};
	struct nm_cni_prev p;

	(void)state;
	assert_int_equal(nm_cni_prev_parse(o, "eth0", &p, &e), 0);
	assert_string_equal(p.ifname, "eth0");
	assert_string_equal(p.mac, "c6:91:2d:cb:89:64");
	assert_string_equal(p.host_ifname, "veth81c7e821");
	assert_string_equal(p.ip, "10.244.1.2");
	json_object_put(o);
}

static void test_prev_ptp_031(void **state)
{
	/* 0.3.x: "version" in ips; no mac given; container listed first. */
	json_object *o =
		prev_of("{\"cniVersion\":\"0.3.1\",\"interfaces\":["
			"{\"name\":\"net1\",\"sandbox\":\"/proc/42/ns/net\"},"
			"{\"name\":\"vethab\"}],"
			"\"ips\":[{\"version\":\"4\",\"interface\":0,"
			"\"address\":\"10.9.0.7/32\"}]}");
	struct nm_cni_error e = {};
	struct nm_cni_prev p;

	(void)state;
	assert_int_equal(nm_cni_prev_parse(o, "net1", &p, &e), 0);
	assert_string_equal(p.mac, "");
	assert_string_equal(p.host_ifname, "vethab");
	assert_string_equal(p.ip, "10.9.0.7");
	json_object_put(o);
}

static void test_prev_bridge_dual_stack(void **state)
{
	/* bridge: cni0, the host veth, eth0; IPv6 listed before IPv4; a
	 * second pod interface (net1) with its own addresses. */
	json_object *o = prev_of(
		"{\"cniVersion\":\"1.0.0\",\"interfaces\":["
		"{\"name\":\"cni0\",\"mac\":\"aa:aa:aa:aa:aa:aa\"},"
		"{\"name\":\"veth1234\",\"mac\":\"bb:bb:bb:bb:bb:bb\"},"
		"{\"name\":\"eth0\",\"mac\":\"cc:cc:cc:cc:cc:cc\",\"sandbox\":\"/run/netns/p\"},"
		"{\"name\":\"net1\",\"sandbox\":\"/run/netns/p\"}],"
		"\"ips\":[{\"interface\":3,\"address\":\"10.7.0.9/24\"},"
		"{\"interface\":2,\"address\":\"fd00::5/64\"},"
		"{\"address\":\"10.8.0.1/24\"},"
		"{\"interface\":2,\"address\":\"10.244.3.5/24\",\"gateway\":\"10.244.3.1\"}]}");
	struct nm_cni_error e = {};
	struct nm_cni_prev p;

	(void)state;
	assert_int_equal(nm_cni_prev_parse(o, "eth0", &p, &e), 0);
	assert_string_equal(p.host_ifname, "veth1234");
	assert_string_equal(p.mac, "cc:cc:cc:cc:cc:cc");
	assert_string_equal(p.ip, "10.244.3.5");
	json_object_put(o);
}

static void test_prev_errors(void **state)
{
	static const struct {
		const char *in, *frag;
	} c[] = {
		{ "{}", "missing field prevResult.interfaces" },
		{ "{\"interfaces\":{}}",
		  "field prevResult.interfaces must be an array, not an object" },
		{ "{\"interfaces\":[7],\"ips\":[]}",
		  "interfaces[0] must be an object, not a number" },
		{ "{\"interfaces\":[{\"mac\":\"x\"}],\"ips\":[]}",
		  "missing field prevResult.interfaces[0].name" },
		{ "{\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":1}],\"ips\":[]}",
		  "prevResult.interfaces[0].sandbox must be a string" },
		/* eth0 without a sandbox is a host interface, not the pod's. */
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\"}],\"ips\":[]}",
		  "no interface eth0 with a sandbox" },
		{ "{\"interfaces\":[{\"name\":\"eth1\",\"sandbox\":\"/n\"},"
		  "{\"name\":\"v\"}],\"ips\":[]}",
		  "no interface eth0 with a sandbox" },
		{ "{\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"/n\"}],"
		  "\"ips\":[]}",
		  "no host-side interface" },
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\",\"mac\":\"zz:bb:cc:dd:ee:ff\"}],\"ips\":[]}",
		  "bad mac 'zz:bb:cc:dd:ee:ff'" },
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\"}]}",
		  "missing field prevResult.ips" },
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\"}],\"ips\":[]}",
		  "no IPv4 address in ips for eth0 (interfaces[1])" },
		/* The address belongs to the host veth, not to eth0. */
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\"}],\"ips\":[{\"interface\":0,"
		  "\"address\":\"10.0.0.1/24\"}]}",
		  "no IPv4 address in ips" },
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\"}],\"ips\":[{\"interface\":\"1\","
		  "\"address\":\"10.0.0.1/24\"}]}",
		  "prevResult.ips[0].interface must be an integer" },
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\"}],\"ips\":[{\"interface\":1,"
		  "\"address\":\"10.0.0.1\"}]}",
		  "bad address '10.0.0.1' in ips[0]" },
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\"}],\"ips\":[{\"interface\":1,"
		  "\"address\":\"10.0.0.256/24\"}]}",
		  "bad address '10.0.0.256/24'" },
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\"}],\"ips\":[{\"interface\":1,"
		  "\"address\":\"10.0.0.1/33\"}]}",
		  "bad address '10.0.0.1/33'" },
		{ "{\"interfaces\":[{\"name\":\"v\"},{\"name\":\"eth0\","
		  "\"sandbox\":\"/n\"}],\"ips\":[{\"interface\":1}]}",
		  "missing field prevResult.ips[0].address" },
	};
	struct nm_cni_error e = {};
	struct nm_cni_prev p;
	json_object *o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		o = prev_of(c[i].in);
		expect_err(nm_cni_prev_parse(o, "eth0", &p, &e), &e,
			   NM_CNI_E_CONFIG, c[i].frag, c[i].in);
		json_object_put(o);
	}
}

/* ------------------------------------------------------ pod ident */

static void test_pod_ident(void **state)
{
	struct nm_cni_args a = {};
	struct nm_cni_error e = {};
	char ns[64], name[256];

	(void)state;
	assert_int_equal(nm_cni_pod_ident(&a, "ABC_def.1", ns, sizeof(ns), name,
					  sizeof(name), &e),
			 0);
	assert_string_equal(ns, "default");
	assert_string_equal(name, "abc-def-1");
	/* A 64-character id fits a DNS label once cut to 63. */
	assert_int_equal(
		nm_cni_pod_ident(
			&a,
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ns, sizeof(ns), name, sizeof(name), &e),
		0);
	assert_int_equal(strlen(name), 63);

	a.pod_namespace = "shop";
	a.pod_name = "web-1.canary";
	assert_int_equal(nm_cni_pod_ident(&a, "c0ffee", ns, sizeof(ns), name,
					  sizeof(name), &e),
			 0);
	assert_string_equal(ns, "shop");
	assert_string_equal(name, "web-1.canary");

	a.pod_namespace = "Shop";
	expect_err(nm_cni_pod_ident(&a, "c", ns, sizeof(ns), name, sizeof(name),
				    &e),
		   &e, NM_CNI_E_ENV, "bad K8S_POD_NAMESPACE 'Shop'", "upper");
	a.pod_namespace = NULL;
	a.pod_name = "web..1";
	expect_err(nm_cni_pod_ident(&a, "c", ns, sizeof(ns), name, sizeof(name),
				    &e),
		   &e, NM_CNI_E_ENV, "bad K8S_POD_NAME 'web..1'", "dots");
	a.pod_name = "web_1";
	expect_err(nm_cni_pod_ident(&a, "c", ns, sizeof(ns), name, sizeof(name),
				    &e),
		   &e, NM_CNI_E_ENV, "not a DNS subdomain", "underscore");
}

/* ------------------------------------------------------ documents */

static json_object *parse_doc(const char *s)
{
	json_object *o;

	assert_non_null(s);
	o = json_tokener_parse(s);
	assert_non_null(o);
	return o;
}

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static void test_error_json(void **state)
{
	struct nm_cni_error e = {};
	json_object *o, *v;
	char *s;

	(void)state;
	nm_cni_err(&e, NM_CNI_E_TRY_AGAIN, "agent \"down\" on %s", "/x.sock");
	nm_cni_err_details(&e, "connect: %s", "refused");
	s = nm_cni_error_json("0.4.0", &e);
	o = parse_doc(s);
	assert_string_equal(str_of(o, "cniVersion"), "0.4.0");
	assert_true(json_object_object_get_ex(o, "code", &v));
	assert_true(json_object_is_type(v, json_type_int));
	assert_int_equal(json_object_get_int(v), 11);
	assert_string_equal(str_of(o, "msg"), "agent \"down\" on /x.sock");
	assert_string_equal(str_of(o, "details"), "connect: refused");
	json_object_put(o);
	free(s);

	/* No details: the optional field is left out. */
	nm_cni_err(&e, NM_CNI_E_ENV, "missing environment variable CNI_PATH");
	s = nm_cni_error_json(NM_CNI_SPEC_VERSION, &e);
	assert_string_equal(
		s,
		"{\"cniVersion\":\"1.0.0\",\"code\":4,\"msg\":\"missing environment variable CNI_PATH\"}");
	free(s);
}

static void test_version_json(void **state)
{
	char *s = nm_cni_version_json();

	(void)state;
	assert_string_equal(
		s,
		"{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\"]}");
	free(s);
}

static void test_result_is_prev_result(void **state)
{
	struct nm_cni_error e = {};
	json_object *got, *want;
	struct nm_cni_conf cf;
	char *s;

	(void)state;
	/* prevResult is passed on unchanged but for cniVersion. */
	assert_int_equal(conf(CONF("0.4.0", ",\"prevResult\":" PTP_PREV),
			      NM_CNI_ADD, &cf, &e),
			 0);
	s = nm_cni_result_json(&cf);
	got = parse_doc(s);
	want = parse_doc(PTP_PREV);
	assert_string_equal(str_of(got, "cniVersion"), "0.4.0");
	json_object_object_add(want, "cniVersion",
			       json_object_new_string("0.4.0"));
	assert_true(json_object_equal(got, want));
	json_object_put(want);
	json_object_put(got);
	free(s);
	nm_cni_conf_free(&cf);
}

static void test_ep_request_json(void **state)
{
	struct nm_cni_prev p = {
		.ifname = "eth0",
		.mac = "c6:91:2d:cb:89:64",
		.host_ifname = "veth81c7e821",
		.ip = "10.244.1.2",
	};
	struct nm_labels l = {};
	struct nm_cni_ep_req r = {
		.container_id = "c0ffee",
		.ifname = "eth0",
		.netns = "/run/netns/pod1",
		.pod_namespace = "shop",
		.pod_name = "web-1",
		.labels = &l,
		.prev = &p,
	};
	json_object *o, *v;
	char *s;

	(void)state;
	assert_int_equal(nm_labels_set(&l, "app", "web"), 0);
	s = nm_cni_ep_request_json(&r);
	o = parse_doc(s);
	assert_string_equal(str_of(o, "container_id"), "c0ffee");
	assert_string_equal(str_of(o, "ifname"), "eth0");
	assert_string_equal(str_of(o, "netns"), "/run/netns/pod1");
	assert_string_equal(str_of(o, "namespace"), "shop");
	assert_string_equal(str_of(o, "name"), "web-1");
	assert_string_equal(str_of(o, "ip"), "10.244.1.2");
	assert_string_equal(str_of(o, "mac"), "c6:91:2d:cb:89:64");
	assert_string_equal(str_of(o, "host_ifname"), "veth81c7e821");
	assert_true(json_object_object_get_ex(o, "labels", &v));
	assert_string_equal(str_of(v, "app"), "web");
	assert_int_equal(json_object_object_length(v), 1);
	json_object_put(o);
	free(s);

	/* No mac in prevResult: none sent. */
	p.mac[0] = '\0';
	s = nm_cni_ep_request_json(&r);
	o = parse_doc(s);
	assert_false(json_object_object_get_ex(o, "mac", NULL));
	json_object_put(o);
	free(s);
	nm_labels_free(&l);
}

static int ep_parse(const char *s, struct nm_cni_ep *ep, char *why,
		    size_t why_len)
{
	return nm_cni_ep_parse(s, strlen(s), ep, why, why_len);
}

static void test_ep_parse(void **state)
{
	const char *ok = "{\"container_id\":\"c0ffee\",\"ifname\":\"eth0\","
			 "\"ip\":\"10.244.1.2\",\"endpoint_id\":3,"
			 "\"identity\":\"16777472\",\"host_ifname\":\"veth1\","
			 "\"mtu\":1450}\n";
	struct nm_cni_ep ep;
	char why[256];

	(void)state;
	assert_int_equal(ep_parse(ok, &ep, why, sizeof(why)), 0);
	assert_string_equal(ep.ip, "10.244.1.2");
	assert_int_equal(ep.mtu, 1450);
	assert_int_equal(
		ep_parse("{\"ip\":\"10.0.0.1\"}", &ep, why, sizeof(why)), 0);
	assert_int_equal(ep.mtu, 0);
	assert_int_equal(ep_parse("{\"ip\":\"10.0.0.1\",\"mtu\":40}", &ep, why,
				  sizeof(why)),
			 -EBADMSG);
	assert_non_null(strstr(why, "68..65535"));
	assert_int_equal(ep_parse("{\"ip\":\"10.0.0.1\",\"mtu\":\"1450\"}", &ep,
				  why, sizeof(why)),
			 -EBADMSG);
	assert_int_equal(ep_parse("{\"ip\":\"fd00::1\"}", &ep, why,
				  sizeof(why)),
			 -EBADMSG);
	assert_non_null(strstr(why, "'ip'"));
	assert_int_equal(ep_parse("<html>", &ep, why, sizeof(why)), -EBADMSG);
}

static void test_agent_reason(void **state)
{
	const char *b =
		"{\"error\":\"ip 10.244.1.2 is held by container abc\"}";
	char buf[128];

	(void)state;
	nm_cni_agent_reason(b, strlen(b), buf, sizeof(buf));
	assert_string_equal(buf, "ip 10.244.1.2 is held by container abc");
	nm_cni_agent_reason("Bad Gateway\r\n", strlen("Bad Gateway\r\n"), buf,
			    sizeof(buf));
	assert_string_equal(buf, "Bad Gateway");
	nm_cni_agent_reason("{\"error\":5}", strlen("{\"error\":5}"), buf,
			    sizeof(buf));
	assert_string_equal(buf, "{\"error\":5}");
	nm_cni_agent_reason("", 0, buf, sizeof(buf));
	assert_string_equal(buf, "no reason given");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_parse),
		cmocka_unit_test(test_env_required),
		cmocka_unit_test(test_env_del_without_netns),
		cmocka_unit_test(test_env_malformed),
		cmocka_unit_test(test_args_kubernetes),
		cmocka_unit_test(test_args_empty),
		cmocka_unit_test(test_args_malformed),
		cmocka_unit_test(test_conf_decode_errors),
		cmocka_unit_test(test_conf_invalid),
		cmocka_unit_test(test_conf_version),
		cmocka_unit_test(test_conf_prev_required),
		cmocka_unit_test(test_conf_defaults),
		cmocka_unit_test(test_labels_merge_order),
		cmocka_unit_test(test_labels_args_bad),
		cmocka_unit_test(test_prev_ptp),
		cmocka_unit_test(test_prev_ptp_031),
		cmocka_unit_test(test_prev_bridge_dual_stack),
		cmocka_unit_test(test_prev_errors),
		cmocka_unit_test(test_pod_ident),
		cmocka_unit_test(test_error_json),
		cmocka_unit_test(test_version_json),
		cmocka_unit_test(test_result_is_prev_result),
		cmocka_unit_test(test_ep_request_json),
		cmocka_unit_test(test_ep_parse),
		cmocka_unit_test(test_agent_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
