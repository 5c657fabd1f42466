// SPDX-License-Identifier: GPL-2.0
/*
 * Agent config and remote-cluster files: the fixtures in
 * tests/unit/configs parse to what they say, every bad file is refused
 * with its line and reason, a directory with bad files still yields the
 * good ones, and the diff names what to connect, drain and reconnect.
 * Run from the repository root.
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

#include "agent/config.h"
#include "agent/ywalk.h"

#define CONFIGS "tests/unit/configs/"
#define CLUSTERS CONFIGS "clusters.d"

static void test_full_config(void **state)
{
	struct nm_agent_config c;
	struct nm_error err;

	(void)state;
	if (nm_config_load(CONFIGS "agent.yaml", &c, &err))
		fail_msg("refused: %s:%u: %s", err.file, err.line, err.reason);
	assert_string_equal(c.cluster, "east");
	assert_int_equal(c.cluster_id, 1);
	assert_int_equal(c.etcd.n_endpoints, 4);
	assert_string_equal(c.etcd.endpoints[0], "https://10.0.0.1:2379");
	assert_string_equal(c.etcd.endpoints[3], "https://[fd00::3]:2379");
	assert_string_equal(c.etcd.ca_file, "/etc/nodemesh/etcd/ca.pem");
	assert_string_equal(c.etcd.cert_file, "/etc/nodemesh/etcd/client.pem");
	assert_string_equal(c.etcd.key_file,
			    "/etc/nodemesh/etcd/client-key.pem");
	assert_string_equal(c.etcd.username, "nodemesh-east");
	assert_string_equal(c.etcd.password_file,
			    "/etc/nodemesh/etcd/password");
	assert_string_equal(c.pin_root, "/sys/fs/bpf/nodemesh-east");
	assert_string_equal(c.state_dir, "/var/lib/nodemesh-east");
	assert_int_equal(c.n_interfaces, 2);
	assert_string_equal(c.interfaces[1], "ens5");
	assert_string_equal(c.kv_prefix, "mesh/prod/");
	assert_int_equal(c.heartbeat_bound_ms, 5000);
	assert_string_equal(c.remote_clusters_dir, "/etc/nodemesh/clusters.d");
	assert_string_equal(c.api_socket, "/run/nodemesh/east.sock");
	assert_int_equal(c.datapath.maglev_m, 65537);
	assert_int_equal(c.datapath.maglev_tables, 1024);
	assert_int_equal(c.datapath.services_max, 1000);
	assert_int_equal(c.datapath.backends_max, 50000);
	assert_int_equal(c.datapath.ct_max, 524288);
	nm_config_free(&c);
}

static void test_minimal_config_defaults(void **state)
{
	struct nm_agent_config c;
	struct nm_error err;

	(void)state;
	if (nm_config_load(CONFIGS "agent-min.yaml", &c, &err))
		fail_msg("refused: %s:%u: %s", err.file, err.line, err.reason);
	assert_int_equal(c.etcd.n_endpoints, 1);
	assert_null(c.etcd.ca_file);
	assert_null(c.etcd.username);
	assert_string_equal(c.pin_root, "/sys/fs/bpf/nodemesh");
	assert_string_equal(c.state_dir, "/var/lib/nodemesh");
	assert_string_equal(c.kv_prefix, "nodemesh/");
	assert_int_equal(c.heartbeat_bound_ms, 3000);
	assert_int_equal(c.n_interfaces, 0);
	assert_null(c.remote_clusters_dir);
	/* No socket: <state_dir>/agent.sock; no sizes: the pins' or defaults. */
	assert_null(c.api_socket);
	assert_int_equal(c.datapath.maglev_m, 0);
	assert_int_equal(c.datapath.maglev_tables, 0);
	assert_int_equal(c.datapath.services_max, 0);
	assert_int_equal(c.datapath.backends_max, 0);
	assert_int_equal(c.datapath.ct_max, 0);
	/* The overlay is on unless disabled; MTU from the node interface. */
	assert_true(c.tunnel);
	assert_string_equal(c.tunnel_device, "nm_vxlan");
	assert_int_equal(c.tunnel_port, 4789);
	assert_int_equal(c.pod_mtu, 0);
	nm_config_free(&c);
}

static void test_tunnel_settings(void **state)
{
	static const char yaml[] =
		"cluster: east\ncluster_id: 1\n"
		"etcd:\n  endpoints: [http://127.0.0.1:2379]\n"
		"tunnel: disabled\ntunnel_device: mesh0\ntunnel_port: 8472\n"
		"pod_mtu: 8950\n";
	struct nm_agent_config c;
	struct nm_error err;

	(void)state;
	if (nm_config_parse(yaml, strlen(yaml), "a.yaml", &c, &err))
		fail_msg("refused: %s:%u: %s", err.file, err.line, err.reason);
	assert_false(c.tunnel);
	assert_string_equal(c.tunnel_device, "mesh0");
	assert_int_equal(c.tunnel_port, 8472);
	assert_int_equal(c.pod_mtu, 8950);
	nm_config_free(&c);
}

/* 107 bytes: the longest unix socket path. */
#define SOCK_107         \
	"/run/nodemesh/" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* Each size stands alone, at its bounds; the others stay unset. */
static void test_datapath_bounds(void **state)
{
	static const char yaml[] =
		"cluster: east\ncluster_id: 1\n"
		"etcd:\n  endpoints: [http://127.0.0.1:2379]\n"
		"api_socket: " SOCK_107 "\n"
		"datapath:\n"
		"  maglev_m: 131071\n"
		"  maglev_tables: 2048\n"
		"  ct_max: 4294967295\n";
	struct nm_agent_config c;
	struct nm_error err;

	(void)state;
	assert_int_equal(strlen(SOCK_107), 107);
	if (nm_config_parse(yaml, strlen(yaml), "a.yaml", &c, &err))
		fail_msg("refused: %s:%u: %s", err.file, err.line, err.reason);
	assert_string_equal(c.api_socket, SOCK_107);
	assert_int_equal(c.datapath.maglev_m, 131071);
	assert_int_equal(c.datapath.maglev_tables, 2048);
	assert_int_equal(c.datapath.services_max, 0);
	assert_int_equal(c.datapath.backends_max, 0);
	assert_int_equal(c.datapath.ct_max, 4294967295U);
	nm_config_free(&c);
}

static void test_missing_file(void **state)
{
	struct nm_agent_config c;
	struct nm_error err;

	(void)state;
	assert_int_equal(nm_config_load(CONFIGS "nope.yaml", &c, &err),
			 -ENOENT);
	assert_string_equal(err.file, CONFIGS "nope.yaml");
	assert_non_null(strstr(err.reason, "failed to open file"));
}

static void test_remote_file(void **state)
{
	struct nm_remote_cluster r;
	struct nm_error err;
	char *buf;
	size_t len;

	(void)state;
	assert_int_equal(nm_read_file(CLUSTERS "/west.yaml", 1 << 20, &buf,
				      &len, &err),
			 0);
	if (nm_remote_parse(buf, len, CLUSTERS "/west.yaml", "east", 1, &r,
			    &err))
		fail_msg("refused: %s:%u: %s", err.file, err.line, err.reason);
	assert_string_equal(r.name, "west");
	assert_int_equal(r.id, 2);
	assert_int_equal(r.etcd.n_endpoints, 2);
	assert_string_equal(r.etcd.key_file,
			    "/etc/nodemesh/clusters/west/client-key.pem");
	assert_string_equal(r.etcd.username, "reader-east");
	assert_string_equal(r.file, CLUSTERS "/west.yaml");
	assert_int_equal(r.name_line, 2);
	assert_int_equal(r.id_line, 3);
	nm_remote_free(&r);
	free(buf);
}

/* ---- refusals: one per case, each with its line and reason ---- */

struct bad_file {
	const char *name;
	bool remote; /* a remote-cluster file, else the agent config */
	const char *file;
	const char *yaml;
	unsigned int line;
	const char *why;
};

#define HEAD "cluster: east\ncluster_id: 1\n"
#define ETCD "etcd:\n  endpoints: [http://127.0.0.1:2379]\n"
/* datapath: is on line 5, its first field on line 6. */
#define DP HEAD ETCD "datapath:\n"

static const struct bad_file bad_files[] = {
	/* agent config */
	{ "tunnel_unknown", false, "a.yaml", HEAD ETCD "tunnel: geneve\n", 5,
	  "tunnel must be vxlan or disabled, got 'geneve'" },
	{ "tunnel_device_too_long", false, "a.yaml",
	  HEAD ETCD "tunnel_device: abcdefghijklmnop\n", 5,
	  "tunnel_device 'abcdefghijklmnop' is not an interface name" },
	{ "tunnel_device_slash", false, "a.yaml",
	  HEAD ETCD "tunnel_device: a/b\n", 5,
	  "tunnel_device 'a/b' is not an interface name" },
	{ "tunnel_port_zero", false, "a.yaml", HEAD ETCD "tunnel_port: 0\n", 5,
	  "tunnel_port must be 1..65535, got 0" },
	{ "pod_mtu_small", false, "a.yaml", HEAD ETCD "pod_mtu: 500\n", 5,
	  "pod_mtu must be 576..65485, got 500" },
	{ "unknown_field", false, "a.yaml", HEAD ETCD "clusterid: 2\n", 5,
	  "unknown field 'clusterid' in the document" },
	{ "unknown_etcd_field", false, "a.yaml",
	  HEAD "etcd:\n  endpoint: [http://h:1]\n", 4,
	  "unknown field 'endpoint' in etcd" },
	{ "duplicate_field", false, "a.yaml", HEAD "cluster: west\n" ETCD, 3,
	  "duplicate field 'cluster'" },
	{ "missing_cluster", false, "a.yaml", "cluster_id: 1\n" ETCD, 1,
	  "missing required field 'cluster' in the document" },
	{ "missing_cluster_id", false, "a.yaml", "cluster: east\n" ETCD, 1,
	  "missing required field 'cluster_id'" },
	{ "missing_etcd", false, "a.yaml", HEAD, 1,
	  "missing required field 'etcd'" },
	{ "missing_endpoints", false, "a.yaml",
	  HEAD "etcd:\n  ca_file: /ca.pem\n", 4,
	  "missing required field 'endpoints' in etcd" },
	{ "cluster_id_zero", false, "a.yaml",
	  "cluster: east\ncluster_id: 0\n" ETCD, 2,
	  "cluster_id must be 1..65535, got 0" },
	{ "cluster_id_too_big", false, "a.yaml",
	  "cluster: east\ncluster_id: 65536\n" ETCD, 2,
	  "cluster_id must be 1..65535, got 65536" },
	{ "cluster_id_huge", false, "a.yaml",
	  "cluster: east\ncluster_id: 99999999999999999999999\n" ETCD, 2,
	  "cluster_id must be 1..65535" },
	{ "cluster_id_negative", false, "a.yaml",
	  "cluster: east\ncluster_id: -1\n" ETCD, 2,
	  "cluster_id must be a decimal number 1..65535, got '-1'" },
	{ "cluster_id_hex", false, "a.yaml",
	  "cluster: east\ncluster_id: 0x10\n" ETCD, 2,
	  "must be a decimal number" },
	{ "cluster_id_quoted", false, "a.yaml",
	  "cluster: east\ncluster_id: \"1\"\n" ETCD, 2,
	  "cluster_id must be an integer, got a string" },
	{ "cluster_name_upper", false, "a.yaml",
	  "cluster: East\ncluster_id: 1\n" ETCD, 1,
	  "cluster 'East' must be a DNS label" },
	{ "cluster_name_number", false, "a.yaml",
	  "cluster: 12\ncluster_id: 1\n" ETCD, 1,
	  "cluster must be a string, got an integer (quote it)" },
	{ "endpoint_ftp", false, "a.yaml",
	  HEAD "etcd:\n  endpoints:\n    - http://h:1\n    - ftp://h:2379\n", 6,
	  "etcd.endpoints[1] 'ftp://h:2379' must start with http:// or https://" },
	{ "endpoints_empty", false, "a.yaml", HEAD "etcd:\n  endpoints: []\n",
	  4, "etcd.endpoints must list at least one endpoint" },
	{ "endpoints_not_list", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: http://h:1\n", 4,
	  "etcd.endpoints must be a sequence, got a string" },
	{ "endpoint_with_path", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [http://h:2379/v3]\n", 4,
	  "must be scheme://host[:port] (no user, path or query)" },
	{ "endpoint_with_user", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [http://u@h:2379]\n", 4,
	  "(no user, path or query)" },
	{ "endpoint_port_zero", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [http://h:0]\n", 4,
	  "port must be 1..65535" },
	{ "endpoint_port_big", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [http://h:70000]\n", 4,
	  "port must be 1..65535" },
	{ "endpoints_mixed", false, "a.yaml",
	  HEAD "etcd:\n  endpoints:\n    - https://h:1\n    - http://h:2\n", 6,
	  "etcd.endpoints mixes http and https endpoints" },
	{ "endpoint_repeated", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [http://h:1, http://h:1]\n", 4,
	  "etcd.endpoints[1] repeats etcd.endpoints[0]" },
	{ "cert_without_key", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [https://h:1]\n  cert_file: /c.pem\n", 5,
	  "cert_file and key_file go together: etcd has only cert_file" },
	{ "user_without_password", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [https://h:1]\n  username: u\n", 5,
	  "username and password_file go together" },
	{ "relative_ca", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [https://h:1]\n  ca_file: ca.pem\n", 5,
	  "etcd.ca_file 'ca.pem' must be an absolute path" },
	{ "tls_over_http", false, "a.yaml",
	  HEAD "etcd:\n  endpoints: [http://h:1]\n  ca_file: /ca.pem\n", 5,
	  "TLS files are given but every endpoint is http://" },
	{ "heartbeat_too_small", false, "a.yaml",
	  HEAD ETCD "heartbeat_bound_ms: 500\n", 5,
	  "heartbeat_bound_ms must be 1000..600000, got 500" },
	{ "heartbeat_float", false, "a.yaml",
	  HEAD ETCD "heartbeat_bound_ms: 3.5\n", 5,
	  "heartbeat_bound_ms must be an integer, got a float" },
	{ "interface_too_long", false, "a.yaml",
	  HEAD ETCD "interfaces: [averyveryverylongname]\n", 5,
	  "interfaces[0] 'averyveryverylongname' is not an interface name" },
	{ "interface_repeated", false, "a.yaml",
	  HEAD ETCD "interfaces: [eth0, eth0]\n", 5,
	  "interfaces[1] repeats interfaces[0]" },
	{ "prefix_no_slash", false, "a.yaml",
	  HEAD ETCD "kvstore_prefix: nodemesh\n", 5,
	  "kvstore_prefix 'nodemesh' must be at most 128 characters" },
	{ "pin_root_relative", false, "a.yaml",
	  HEAD ETCD "pin_root: bpf/nodemesh\n", 5,
	  "pin_root 'bpf/nodemesh' must be an absolute path" },
	{ "yaml_syntax", false, "a.yaml", HEAD "etcd: [\n", 4,
	  "YAML syntax error" },
	{ "two_documents", false, "a.yaml", HEAD ETCD "---\ncluster: west\n", 6,
	  "a second YAML document: one document per file" },
	{ "root_is_list", false, "a.yaml", "- cluster: east\n", 1,
	  "the document must be a mapping, got a sequence" },
	{ "empty_file", false, "a.yaml", "", 0, "empty file" },
	{ "datapath_not_mapping", false, "a.yaml",
	  HEAD ETCD "datapath: 16381\n", 5,
	  "datapath must be a mapping, got an integer" },
	{ "datapath_unknown_field", false, "a.yaml",
	  DP "  maglev_m: 16381\n  conntrack_max: 1000\n", 7,
	  "unknown field 'conntrack_max' in datapath" },
	{ "datapath_duplicate_field", false, "a.yaml",
	  DP "  ct_max: 1000\n  ct_max: 2000\n", 7,
	  "duplicate field 'ct_max' in datapath" },
	{ "maglev_m_not_prime", false, "a.yaml", DP "  maglev_m: 16383\n", 6,
	  "datapath.maglev_m: bad Maglev table size 16383: must be prime (3 x 5461)" },
	{ "maglev_m_zero", false, "a.yaml", DP "  maglev_m: 0\n", 6,
	  "datapath.maglev_m must be 7..131071, got 0" },
	{ "maglev_m_too_big", false, "a.yaml", DP "  maglev_m: 131101\n", 6,
	  "datapath.maglev_m must be 7..131071, got 131101" },
	{ "maglev_m_quoted", false, "a.yaml", DP "  maglev_m: \"16381\"\n", 6,
	  "datapath.maglev_m must be an integer, got a string" },
	{ "maglev_tables_one", false, "a.yaml", DP "  maglev_tables: 1\n", 6,
	  "datapath.maglev_tables must be 2..38347922, got 1" },
	{ "maglev_tables_negative", false, "a.yaml",
	  DP "  maglev_tables: -512\n", 6,
	  "datapath.maglev_tables must be a decimal number 2..38347922, got '-512'" },
	{ "maglev_tables_times_m", false, "a.yaml",
	  DP "  maglev_m: 131071\n  maglev_tables: 4096\n", 7,
	  "datapath.maglev_tables 4096 x maglev_m 131071 is more than 268435456 Maglev slots" },
	{ "services_max_zero", false, "a.yaml", DP "  services_max: 0\n", 6,
	  "datapath.services_max must be 1..1048576, got 0" },
	{ "services_max_too_big", false, "a.yaml",
	  DP "  services_max: 1048577\n", 6,
	  "datapath.services_max must be 1..1048576, got 1048577" },
	{ "backends_max_negative", false, "a.yaml", DP "  backends_max: -1\n",
	  6,
	  "datapath.backends_max must be a decimal number 1..16777216, got '-1'" },
	{ "backends_max_too_big", false, "a.yaml",
	  DP "  backends_max: 16777217\n", 6,
	  "datapath.backends_max must be 1..16777216, got 16777217" },
	{ "backends_max_float", false, "a.yaml", DP "  backends_max: 1e6\n", 6,
	  "datapath.backends_max must be an integer, got a float" },
	{ "ct_max_zero", false, "a.yaml", DP "  ct_max: 0\n", 6,
	  "datapath.ct_max must be 1..4294967295, got 0" },
	{ "ct_max_negative", false, "a.yaml", DP "  ct_max: -262144\n", 6,
	  "datapath.ct_max must be a decimal number 1..4294967295, got '-262144'" },
	{ "ct_max_too_big", false, "a.yaml", DP "  ct_max: 4294967296\n", 6,
	  "datapath.ct_max must be 1..4294967295, got 4294967296" },
	{ "api_socket_relative", false, "a.yaml",
	  HEAD ETCD "api_socket: run/agent.sock\n", 5,
	  "api_socket 'run/agent.sock' must be an absolute path" },
	{ "api_socket_too_long", false, "a.yaml",
	  HEAD ETCD "api_socket: " SOCK_107 "a\n", 5,
	  "api_socket is longer than 107 bytes (a unix socket path)" },
	{ "api_socket_not_string", false, "a.yaml",
	  HEAD ETCD "api_socket: 42\n", 5,
	  "api_socket must be a string, got an integer" },
	/* remote cluster files */
	{ "remote_name_mismatch", true, "d/west.yaml",
	  "name: north\nid: 2\nendpoints: [http://h:1]\n", 1,
	  "cluster name 'north' does not match the file name (expected north.yaml)" },
	{ "remote_is_local_name", true, "d/east.yaml",
	  "name: east\nid: 2\nendpoints: [http://h:1]\n", 1,
	  "cluster 'east' is the local cluster, not a remote one" },
	{ "remote_is_local_id", true, "d/west.yaml",
	  "name: west\nid: 1\nendpoints: [http://h:1]\n", 2,
	  "cluster id 1 is the local cluster's (east)" },
	{ "remote_id_zero", true, "d/west.yaml",
	  "name: west\nid: 0\nendpoints: [http://h:1]\n", 2,
	  "id must be 1..65535, got 0" },
	{ "remote_missing_id", true, "d/west.yaml",
	  "name: west\nendpoints: [http://h:1]\n", 1,
	  "missing required field 'id' in the document" },
	{ "remote_missing_endpoints", true, "d/west.yaml",
	  "name: west\nid: 2\n", 1, "missing required field 'endpoints'" },
	{ "remote_endpoints_empty", true, "d/west.yaml",
	  "name: west\nid: 2\nendpoints: []\n", 3,
	  "endpoints must list at least one endpoint" },
	{ "remote_unknown_field", true, "d/west.yaml",
	  "name: west\nid: 2\nendpoints: [http://h:1]\ntoken: x\n", 4,
	  "unknown field 'token'" },
	{ "remote_bad_scheme", true, "d/west.yaml",
	  "name: west\nid: 2\nendpoints: [etcd://h:1]\n", 3,
	  "endpoints[0] 'etcd://h:1' must start with http:// or https://" },
	{ "remote_key_without_cert", true, "d/west.yaml",
	  "name: west\nid: 2\nendpoints: [https://h:1]\nkey_file: /k.pem\n", 4,
	  "cert_file and key_file go together: the file has only key_file" },
};

static void test_refuse(void **state)
{
	const struct bad_file *c = *state;
	struct nm_agent_config conf;
	struct nm_remote_cluster r;
	struct nm_error err;
	char msg[1024];
	int ret;

	if (c->remote)
		ret = nm_remote_parse(c->yaml, strlen(c->yaml), c->file, "east",
				      1, &r, &err);
	else
		ret = nm_config_parse(c->yaml, strlen(c->yaml), c->file, &conf,
				      &err);
	if (ret != -EINVAL)
		fail_msg("%s: returned %d, want -EINVAL", c->name, ret);
	nm_error_str(&err, msg, sizeof(msg));
	if (strcmp(err.file, c->file) || err.line != c->line ||
	    !strstr(err.reason, c->why))
		fail_msg("%s: got '%s', want '%s:%u: ...%s'", c->name, msg,
			 c->file, c->line, c->why);
}

/* ---- directory loads and diffs ---- */

static void assert_refusal(const struct nm_error *e, const char *file,
			   unsigned int line, const char *why)
{
	if (strcmp(e->file, file) || e->line != line || !strstr(e->reason, why))
		fail_msg("got '%s:%u: %s', want '%s:%u: ...%s'", e->file,
			 e->line, e->reason, file, line, why);
}

static void test_dir_load_bad_among_good(void **state)
{
	struct nm_remote_set ok;
	struct nm_refusals bad;
	struct nm_error err;

	(void)state;
	if (nm_remote_dir_load(CLUSTERS, "east", 1, NULL, &ok, &bad, &err))
		fail_msg("refused: %s: %s", err.file, err.reason);
	/* The good ones, sorted by name; .hidden.yaml and README.md skipped. */
	assert_int_equal(ok.n, 2);
	assert_string_equal(ok.v[0].name, "north");
	assert_int_equal(ok.v[0].id, 3);
	assert_string_equal(ok.v[1].name, "west");
	assert_int_equal(ok.v[1].id, 2);
	assert_ptr_equal(nm_remote_find(&ok, "west"), &ok.v[1]);
	assert_null(nm_remote_find(&ok, "south"));
	/* The bad ones, in file name order, each with line and reason. */
	assert_int_equal(bad.n, 5);
	assert_refusal(&bad.v[0], CLUSTERS "/dup-a.yaml", 2,
		       "cluster id 7 is also claimed by dup-b (" CLUSTERS
		       "/dup-b.yaml)");
	assert_refusal(&bad.v[1], CLUSTERS "/dup-b.yaml", 2,
		       "cluster id 7 is also claimed by dup-a");
	assert_refusal(&bad.v[2], CLUSTERS "/east.yaml", 1,
		       "cluster 'east' is the local cluster");
	assert_refusal(&bad.v[3], CLUSTERS "/renamed.yaml", 2,
		       "cluster name 'other' does not match the file name");
	assert_refusal(
		&bad.v[4], CLUSTERS "/south.yaml", 4,
		"endpoints[0] 'ftp://10.4.0.1:2379' must start with http:// or https://");
	nm_remote_set_free(&ok);
	nm_refusals_free(&bad);
}

/* A new file claiming a connected cluster's id must not drain it. */
static void test_dir_load_conflict_keeps_connected(void **state)
{
	struct nm_remote_set prev = { 0 }, ok;
	struct nm_refusals bad;
	struct nm_error err;
	char *buf;
	size_t len;

	(void)state;
	assert_int_equal(nm_read_file(CLUSTERS "/dup-a.yaml", 1 << 20, &buf,
				      &len, &err),
			 0);
	prev.v = calloc(1, sizeof(*prev.v));
	assert_non_null(prev.v);
	assert_int_equal(nm_remote_parse(buf, len, CLUSTERS "/dup-a.yaml",
					 "east", 1, &prev.v[0], &err),
			 0);
	prev.n = 1;
	free(buf);

	assert_int_equal(nm_remote_dir_load(CLUSTERS, "east", 1, &prev, &ok,
					    &bad, &err),
			 0);
	assert_int_equal(ok.n, 3);
	assert_string_equal(ok.v[0].name, "dup-a");
	assert_string_equal(ok.v[1].name, "north");
	assert_string_equal(ok.v[2].name, "west");
	assert_int_equal(bad.n, 4);
	assert_refusal(&bad.v[0], CLUSTERS "/dup-b.yaml", 2,
		       "cluster id 7 is also claimed by dup-a");
	nm_remote_set_free(&ok);
	nm_refusals_free(&bad);
	nm_remote_set_free(&prev);
}

static void test_dir_load_missing_dir(void **state)
{
	struct nm_remote_set ok;
	struct nm_refusals bad;
	struct nm_error err;

	(void)state;
	assert_int_equal(nm_remote_dir_load(CONFIGS "nope.d", "east", 1, NULL,
					    &ok, &bad, &err),
			 -ENOENT);
	assert_string_equal(err.file, CONFIGS "nope.d");
	assert_non_null(strstr(err.reason,
			       "failed to read the remote cluster directory"));
}

/* A set from "name:id:endpoint" triples, given sorted by name. */
static void make_set(struct nm_remote_set *s, const char *const *spec, size_t n)
{
	char yaml[256], file[64], name[32], ep[64];
	struct nm_error err;
	unsigned int id;
	size_t i;

	s->v = calloc(n + 1, sizeof(*s->v));
	s->n = 0;
	assert_non_null(s->v);
	for (i = 0; i < n; i++) {
		assert_int_equal(
			sscanf(spec[i], "%31[^:]:%u:%63s", name, &id, ep), 3);
		snprintf(file, sizeof(file), "d/%s.yaml", name);
		snprintf(yaml, sizeof(yaml),
			 "name: %s\nid: %u\nendpoints: [%s]\n", name, id, ep);
		if (nm_remote_parse(yaml, strlen(yaml), file, "east", 1,
				    &s->v[s->n], &err))
			fail_msg("%s:%u: %s", err.file, err.line, err.reason);
		s->n++;
	}
}

static void test_diff(void **state)
{
	static const char *const old_spec[] = {
		"alpha:2:http://a:1",
		"beta:3:http://b:1",
		"delta:5:http://d:1",
		"gamma:4:http://g:1",
	};
	static const char *const new_spec[] = {
		"alpha:2:http://a:1", /* same */
		"beta:3:http://b:2", /* endpoint moved */
		"delta:9:http://d:1", /* id changed */
		"omega:6:http://o:1", /* new */
	};
	struct nm_remote_set old, new;
	struct nm_remote_diff d;

	(void)state;
	make_set(&old, old_spec, 4);
	make_set(&new, new_spec, 4);
	assert_int_equal(nm_remote_diff(&old, &new, &d), 0);
	assert_int_equal(d.n_added, 1);
	assert_string_equal(d.added[0]->name, "omega");
	assert_int_equal(d.n_removed, 1);
	assert_string_equal(d.removed[0]->name, "gamma");
	assert_ptr_equal(d.removed[0], nm_remote_find(&old, "gamma"));
	assert_int_equal(d.n_changed, 2);
	assert_string_equal(d.changed[0]->name, "beta");
	assert_string_equal(d.changed[1]->name, "delta");
	assert_int_equal(d.changed[1]->id, 9);
	nm_remote_diff_free(&d);

	/* Nothing changed: an empty diff. */
	assert_int_equal(nm_remote_diff(&new, &new, &d), 0);
	assert_int_equal(d.n_added + d.n_removed + d.n_changed, 0);
	nm_remote_diff_free(&d);
	nm_remote_set_free(&old);
	nm_remote_set_free(&new);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_minimal_config_defaults),
		cmocka_unit_test(test_datapath_bounds),
		cmocka_unit_test(test_tunnel_settings),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_remote_file),
		cmocka_unit_test(test_dir_load_bad_among_good),
		cmocka_unit_test(test_dir_load_conflict_keeps_connected),
		cmocka_unit_test(test_dir_load_missing_dir),
		cmocka_unit_test(test_diff),
	};
	const size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
	const size_t n_bad = sizeof(bad_files) / sizeof(bad_files[0]);
	struct CMUnitTest *tests;
	char *names;
	size_t i;
	int ret;

	/* One TAP line per refused file, named after it. */
	tests = calloc(n_fixed + n_bad, sizeof(*tests));
	names = calloc(n_bad, 64);
	if (!tests || !names)
		return 1;
	memcpy(tests, fixed, sizeof(fixed));
	for (i = 0; i < n_bad; i++) {
		snprintf(names + i * 64, 64, "test_refuse_%s",
			 bad_files[i].name);
		tests[n_fixed + i] = (struct CMUnitTest){
			.name = names + i * 64,
			.test_func = test_refuse,
			.initial_state = (void *)&bad_files[i],
		};
	}
	ret = _cmocka_run_group_tests("config", tests, n_fixed + n_bad, NULL,
				      NULL);
	free(names);
	free(tests);
	return ret;
}
