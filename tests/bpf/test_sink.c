// SPDX-License-Identifier: GPL-2.0
/*
 * The map sink (agent/sink.c) on real pinned maps: records built as C
 * structs (one decoded from JSON) go in through nm_sink_upsert/remove,
 * the test reads nm_nodes_v1, nm_ipcache_v1, nm_services_v1,
 * nm_backends_v1 and nm_policy_v1 back. Pins live under
 * /sys/fs/bpf/nm-sink-<pid> (removed at exit, also on a crash), the state
 * directory in a mkdtemp directory (removed at exit). Needs root.
 *
 * This node: cluster "east" (id 1), node "self". The remote cluster is
 * "west" (id 2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>

#include "agent/identity.h"
#include "agent/kvstore.h"
#include "agent/loader.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "agent/policy_apply.h"
#include "agent/sink.h"
#include "agent/state.h"
#include "agent/svc.h"
#include "agent/svcmerge.h"
#include "maps/identity.h"
#include "maps/ipcache.h"
#include "maps/maglev.h"
#include "maps/node.h"
#include "maps/policy.h"
#include "tests/lib/pins.h"
#include "tests/lib/test.h"

#define TEST_M 1021
#define TEST_TABLES 4 /* 4 services at most; an update needs one spare */

#define EAST_ID 1
#define WEST_ID 2

static char state_dir[64];
static struct nm_datapath *dp;
static struct nm_maps maps;
static struct nm_state st;
static bool maps_open, ready;

static int rm_one(const char *path, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) ? -1 : 0;
}

static void cleanup_all(void)
{
	nm_test_pins_cleanup();
	if (state_dir[0] && nftw(state_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) &&
	    errno != ENOENT)
		fprintf(stderr, "failed to remove state dir %s: %s\n",
			state_dir, strerror(errno));
	state_dir[0] = '\0';
}

static int setup_cleanup(void)
{
	nm_test_pins_setup("nm-sink", cleanup_all);
	strcpy(state_dir, "/tmp/nm-sink-XXXXXX");
	if (!mkdtemp(state_dir)) {
		state_dir[0] = '\0';
		return -errno;
	}
	return 0;
}

/* ---- records -------------------------------------------------------- */

static __be32 ip(const char *s)
{
	__be32 a = 0;

	if (nm_parse_ipv4(s, &a))
		printf("# bad address in test: %s\n", s);
	return a;
}

static struct nm_frontend fe(const char *s)
{
	struct nm_frontend f = {};
	char err[128];

	if (nm_parse_frontend(s, &f, err, sizeof(err)))
		printf("# bad frontend in test: %s\n", err);
	return f;
}

static void set_key(struct nm_kv_record *r, enum nm_kv_type type,
		    enum nm_kv_kind kind, const char *cluster, const char *ns,
		    const char *name)
{
	memset(r, 0, sizeof(*r));
	r->key.type = type;
	r->key.kind = kind;
	snprintf(r->key.cluster, sizeof(r->key.cluster), "%s", cluster);
	snprintf(r->key.ns, sizeof(r->key.ns), "%s", ns);
	snprintf(r->key.name, sizeof(r->key.name), "%s", name);
}

static int put_node(struct nm_sink *s, const char *cluster, __u16 cid,
		    const char *name, const char *addr)
{
	struct nm_kv_record r;

	set_key(&r, NM_KV_T_NODE, NM_KV_NODES, cluster, "", name);
	r.node.name = (char *)name;
	r.node.cluster = (char *)cluster;
	r.node.cluster_id = cid;
	r.node.node_ip = ip(addr);
	return nm_sink_upsert(s, &r);
}

static int del_key(struct nm_sink *s, enum nm_kv_type type,
		   enum nm_kv_kind kind, const char *cluster, const char *ns,
		   const char *name)
{
	struct nm_kv_record r;

	set_key(&r, type, kind, cluster, ns, name);
	return nm_sink_remove(s, &r.key);
}

static int put_ep(struct nm_sink *s, const char *cluster, const char *pod,
		  const char *addr, const char *node, __u64 identity)
{
	struct nm_kv_record r;

	set_key(&r, NM_KV_T_ENDPOINT, NM_KV_ENDPOINTS, cluster, "shop", pod);
	r.ep.namespace = "shop";
	r.ep.name = (char *)pod;
	r.ep.ip = ip(addr);
	r.ep.node = (char *)node;
	r.ep.identity = identity;
	return nm_sink_upsert(s, &r);
}

static int del_ep(struct nm_sink *s, const char *cluster, const char *pod)
{
	return del_key(s, NM_KV_T_ENDPOINT, NM_KV_ENDPOINTS, cluster, "shop",
		       pod);
}

/* Record-level fields of a service record; put_svc() uses the defaults. */
struct svc_opts {
	bool not_global, not_shared;
	enum nm_kv_affinity affinity;
	__u16 weight; /* 0: the default */
	__u8 priority;
};

/*
 * A service record: "ADDR:PORT[/udp][,w=W][,t]" backends (t: terminating),
 * global and shared unless @o says otherwise.
 */
static int put_svc_opts(struct nm_sink *s, const char *cluster,
			const char *name, const char *const *fes, size_t n_fe,
			const char *const *bes, size_t n_be,
			const struct svc_opts *o)
{
	struct nm_frontend f[4];
	struct nm_kv_backend b[8] = {};
	struct nm_kv_record r;
	char err[128];
	size_t i;

	set_key(&r, NM_KV_T_SERVICE, NM_KV_SERVICES, cluster, "shop", name);
	for (i = 0; i < n_fe; i++)
		f[i] = fe(fes[i]);
	for (i = 0; i < n_be; i++) {
		struct nm_backend_spec spec;
		char buf[64], *c;

		snprintf(buf, sizeof(buf), "%s", bes[i]);
		b[i].proto = IPPROTO_TCP;
		b[i].weight = 1;
		b[i].state = NM_BE_ACTIVE;
		if (strstr(buf, ",t")) {
			b[i].state = NM_BE_TERMINATING;
			*strstr(buf, ",t") = '\0';
		}
		if ((c = strstr(buf, ",w="))) {
			b[i].weight = (__u16)atoi(c + 3);
			*c = '\0';
		}
		if ((c = strstr(buf, "/udp"))) {
			b[i].proto = IPPROTO_UDP;
			*c = '\0';
		}
		if (nm_parse_backend(buf, &spec, err, sizeof(err)))
			printf("# bad backend in test: %s\n", err);
		b[i].ip = spec.addr;
		b[i].port = spec.port;
	}
	r.svc.namespace = "shop";
	r.svc.name = (char *)name;
	r.svc.frontends = f;
	r.svc.n_frontends = n_fe;
	r.svc.backends = b;
	r.svc.n_backends = n_be;
	r.svc.global = !o->not_global;
	r.svc.shared = !o->not_shared;
	r.svc.affinity = o->affinity;
	r.svc.weight = o->weight;
	r.svc.priority = o->priority;
	return nm_sink_upsert(s, &r);
}

static int put_svc(struct nm_sink *s, const char *cluster, const char *name,
		   const char *const *fes, size_t n_fe, const char *const *bes,
		   size_t n_be)
{
	static const struct svc_opts defaults;

	return put_svc_opts(s, cluster, name, fes, n_fe, bes, n_be, &defaults);
}

static int del_svc(struct nm_sink *s, const char *cluster, const char *name)
{
	return del_key(s, NM_KV_T_SERVICE, NM_KV_SERVICES, cluster, "shop",
		       name);
}

static int open_sink(struct nm_sink **s)
{
	struct nm_sink_conf conf = {
		.maps = &maps,
		.state = &st,
		.local_cluster = "east",
		.local_cluster_id = EAST_ID,
		.local_node = "self",
	};
	int err;

	err = nm_sink_open(&conf, s);
	if (!err)
		err = nm_sink_set_cluster_id(*s, "west", WEST_ID);
	return err;
}

/* ---- map readers --------------------------------------------------------- */

static bool get_node(const char *addr, struct nm_node_val *v)
{
	struct nm_node_key k = { .node_ip = ip(addr) };

	memset(v, 0, sizeof(*v));
	return !bpf_map_lookup_elem(maps.nodes, &k, v);
}

/* The exact /32 entry of @addr (LPM lookups fall back to wider ones). */
static bool get_ipc(const char *addr, struct nm_ipcache_val *v)
{
	struct nm_ipcache_key k = { .prefixlen = 32, .addr = ip(addr) };

	memset(v, 0, sizeof(*v));
	return !bpf_map_lookup_elem(maps.ipcache, &k, v);
}

static bool get_svc(const char *f, struct nm_svc_val *val)
{
	struct nm_frontend x = fe(f);
	struct nm_svc_key key;

	nm_svc_key_from_frontend(&x, &key);
	memset(val, 0, sizeof(*val));
	return !bpf_map_lookup_elem(maps.services, &key, val);
}

/* Backends of @svc_id: count, and the cluster id of @addr:@port (or -1). */
static int backends_of(__u32 svc_id, const char *addr, int port, int *cluster)
{
	struct nm_backend_key key = {}, next = {};
	struct nm_backend_val v;
	bool first = true;
	int n = 0;

	*cluster = -1;
	while (!bpf_map_get_next_key(maps.backends, first ? NULL : &key,
				     &next)) {
		key = next;
		first = false;
		if (bpf_map_lookup_elem(maps.backends, &key, &v) ||
		    v.svc_id != svc_id)
			continue;
		n++;
		if (addr && v.addr == ip(addr) && ntohs(v.port) == port)
			*cluster = v.cluster_id;
	}
	return n;
}

/* The backend @addr:@port of @svc_id into @v; false when there is none. */
static bool get_be(__u32 svc_id, const char *addr, int port,
		   struct nm_backend_val *v)
{
	struct nm_backend_key key = {}, next = {};
	bool first = true;

	while (!bpf_map_get_next_key(maps.backends, first ? NULL : &key,
				     &next)) {
		key = next;
		first = false;
		if (!bpf_map_lookup_elem(maps.backends, &key, v) &&
		    v->svc_id == svc_id && v->addr == ip(addr) &&
		    ntohs(v->port) == port)
			return true;
	}
	memset(v, 0, sizeof(*v));
	return false;
}

/* The state of backend @addr:@port of @svc_id, or -1 when it is not there. */
static int be_state(__u32 svc_id, const char *addr, int port)
{
	struct nm_backend_val v;

	return get_be(svc_id, addr, port, &v) ? v.state : -1;
}

/*
 * Slots of @sv's live Maglev table that point at a backend of cluster
 * @cluster (-1: empty slots).
 */
static int table_slots(const struct nm_svc_val *sv, int cluster)
{
	struct nm_backend_key bk = {};
	struct nm_backend_val bv;
	int n = 0;
	__u32 i;

	for (i = 0; i < TEST_M; i++) {
		struct nm_maglev_key k = { .index = sv->table_id * TEST_M + i };
		struct nm_maglev_val v;

		if (bpf_map_lookup_elem(maps.maglev, &k, &v))
			return -1000; /* unreadable: no count can match */
		if (!v.backend_id) {
			n += cluster == -1;
			continue;
		}
		bk.backend_id = v.backend_id;
		if (!bpf_map_lookup_elem(maps.backends, &bk, &bv) &&
		    bv.cluster_id == cluster)
			n++;
	}
	return n;
}

static __u32 count_entries(int fd, size_t ksz)
{
	unsigned char key[64] = {}, next[64] = {};
	bool first = true;
	__u32 n = 0;

	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		memcpy(key, next, ksz);
		first = false;
		n++;
	}
	return n;
}

#define NEED_READY()                                         \
	do {                                                 \
		if (!ready) {                                \
			nm_test_skip("datapath not loaded"); \
			return;                              \
		}                                            \
	} while (0)

/* ---- tests ------------------------------------------------------------- */

static void test_load(void)
{
	struct nm_load_opts opts = {
		.pin_root = nm_test_pin_root,
		.maglev_m = TEST_M,
		.maglev_tables = TEST_TABLES,
		.ct_max = 4096,
	};

	if (!ASSERT_OK(nm_datapath_load(&opts, &dp), "load datapath"))
		return;
	if (!ASSERT_OK(nm_maps_open(nm_test_pin_root, &maps),
		       "open pinned maps"))
		return;
	maps_open = true;
	if (!ASSERT_TRUE(maps.nodes >= 0, "nodes map open"))
		return;
	if (!ASSERT_OK(nm_state_open(state_dir, "east", EAST_ID, &st),
		       "open state dir"))
		return;
	ready = true;
}

static void test_node_into_nodes_map(void)
{
	struct nm_node_val v, v2;
	struct nm_sink *s = NULL;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	if (!ASSERT_OK(put_node(s, "west", WEST_ID, "n1", "192.168.2.1"),
		       "upsert node"))
		goto out;
	if (!ASSERT_TRUE(get_node("192.168.2.1", &v), "node entry"))
		goto out;
	ASSERT_EQ(v.cluster_id, WEST_ID, "cluster id");
	ASSERT_GE(v.node_id, 1, "node id assigned");
	ASSERT_OK(put_node(s, "west", WEST_ID, "n2", "192.168.2.2"),
		  "second node");
	ASSERT_TRUE(get_node("192.168.2.2", &v2), "second entry");
	ASSERT_NEQ(v2.node_id, v.node_id, "distinct node ids");
	/* Same record again: same id, nothing else changes. */
	ASSERT_OK(put_node(s, "west", WEST_ID, "n1", "192.168.2.1"),
		  "re-upsert");
	ASSERT_TRUE(get_node("192.168.2.1", &v2), "entry kept");
	ASSERT_EQ(v2.node_id, v.node_id, "node id stable");
	/* New IP: the entry moves, the id stays. */
	ASSERT_OK(put_node(s, "west", WEST_ID, "n1", "192.168.2.11"),
		  "node changes IP");
	ASSERT_TRUE(!get_node("192.168.2.1", &v2), "old IP gone");
	ASSERT_TRUE(get_node("192.168.2.11", &v2), "new IP there");
	ASSERT_EQ(v2.node_id, v.node_id, "node id kept across IP change");
	ASSERT_OK(del_key(s, NM_KV_T_NODE, NM_KV_NODES, "west", "", "n1"),
		  "remove n1");
	ASSERT_OK(del_key(s, NM_KV_T_NODE, NM_KV_NODES, "west", "", "n2"),
		  "remove n2");
	ASSERT_TRUE(!get_node("192.168.2.11", &v2), "n1 gone");
	ASSERT_TRUE(!get_node("192.168.2.2", &v2), "n2 gone");
	ASSERT_OK(del_key(s, NM_KV_T_NODE, NM_KV_NODES, "west", "", "n1"),
		  "removing an unknown key is fine");
	ASSERT_EQ(count_entries(maps.nodes, sizeof(struct nm_node_key)), 0,
		  "nodes map empty");
out:
	nm_sink_close(s);
}

static void test_endpoint_tunnel_follows_node(void)
{
	__u64 id = nm_identity_pack(WEST_ID, 300);
	struct nm_ipcache_val v;
	struct nm_sink *s = NULL;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	/* Endpoint before its node: no tunnel yet. */
	if (!ASSERT_OK(put_ep(s, "west", "web-1", "10.2.0.5", "n3", id),
		       "upsert endpoint"))
		goto out;
	if (!ASSERT_TRUE(get_ipc("10.2.0.5", &v), "ipcache entry"))
		goto out;
	ASSERT_EQ(v.identity, id, "identity");
	ASSERT_EQ(v.tunnel_endpoint, 0, "tunnel unknown yet");
	ASSERT_EQ(v.flags, 0, "remote entry flags");

	ASSERT_OK(put_node(s, "west", WEST_ID, "n3", "192.168.2.3"),
		  "node arrives");
	ASSERT_TRUE(get_ipc("10.2.0.5", &v), "ipcache entry");
	ASSERT_EQ(v.tunnel_endpoint, ip("192.168.2.3"), "tunnel fixed up");

	/* A node of the same name in another cluster is another node. */
	ASSERT_OK(put_node(s, "east", EAST_ID, "n3", "192.168.1.3"), "east n3");
	ASSERT_TRUE(get_ipc("10.2.0.5", &v), "ipcache entry");
	ASSERT_EQ(v.tunnel_endpoint, ip("192.168.2.3"), "west's n3 still");

	ASSERT_OK(put_node(s, "west", WEST_ID, "n3", "192.168.2.33"),
		  "node changes IP");
	ASSERT_TRUE(get_ipc("10.2.0.5", &v), "ipcache entry");
	ASSERT_EQ(v.tunnel_endpoint, ip("192.168.2.33"), "tunnel follows");

	ASSERT_OK(del_key(s, NM_KV_T_NODE, NM_KV_NODES, "west", "", "n3"),
		  "node removed");
	ASSERT_TRUE(get_ipc("10.2.0.5", &v), "entry stays");
	ASSERT_EQ(v.identity, id, "identity kept");
	ASSERT_EQ(v.tunnel_endpoint, 0, "tunnel cleared");

	/* An endpoint that moves to another IP leaves the old one. */
	ASSERT_OK(put_ep(s, "west", "web-1", "10.2.0.6", "n3", id),
		  "endpoint changes IP");
	ASSERT_TRUE(!get_ipc("10.2.0.5", &v), "old IP gone");
	ASSERT_TRUE(get_ipc("10.2.0.6", &v), "new IP there");

	ASSERT_OK(del_ep(s, "west", "web-1"), "endpoint removed");
	ASSERT_TRUE(!get_ipc("10.2.0.6", &v), "ipcache entry gone");
	ASSERT_OK(del_key(s, NM_KV_T_NODE, NM_KV_NODES, "east", "", "n3"),
		  "east n3 removed");
out:
	nm_sink_close(s);
}

static void test_ip_reuse_newest_claim_wins(void)
{
	__u64 a = nm_identity_pack(WEST_ID, 301),
	      b = nm_identity_pack(WEST_ID, 302);
	struct nm_ipcache_val v;
	struct nm_sink *s = NULL;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	ASSERT_OK(put_ep(s, "west", "old-pod", "10.2.0.9", "n4", a), "old pod");
	/* The address is reused before the old pod's delete arrives. */
	ASSERT_OK(put_ep(s, "west", "new-pod", "10.2.0.9", "n4", b), "new pod");
	ASSERT_TRUE(get_ipc("10.2.0.9", &v), "entry");
	ASSERT_EQ(v.identity, b, "newest claim");
	ASSERT_OK(del_ep(s, "west", "old-pod"), "old pod's delete");
	ASSERT_TRUE(get_ipc("10.2.0.9", &v), "entry stays");
	ASSERT_EQ(v.identity, b, "still the new pod");
	ASSERT_OK(del_ep(s, "west", "new-pod"), "new pod's delete");
	ASSERT_TRUE(!get_ipc("10.2.0.9", &v), "entry gone");
	nm_sink_close(s);
}

static void test_local_endpoints_left_alone(void)
{
	struct nm_ipcache_key k = { .prefixlen = 32, .addr = ip("10.1.0.30") };
	struct nm_ipcache_val local = { .identity =
						nm_identity_pack(EAST_ID, 400),
					.flags = NM_IPC_F_LOCAL };
	struct nm_ipcache_val v;
	struct nm_sink_stats stats;
	struct nm_sink *s = NULL;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	/* Our own node's pod: nodemeshctl/CNI own it. */
	ASSERT_OK(put_ep(s, "east", "mine", "10.1.0.20", "self",
			 nm_identity_pack(EAST_ID, 401)),
		  "local node's endpoint");
	ASSERT_TRUE(!get_ipc("10.1.0.20", &v), "not written");
	/* Same cluster, other node: mirrored. */
	ASSERT_OK(put_ep(s, "east", "theirs", "10.1.0.21", "other",
			 nm_identity_pack(EAST_ID, 402)),
		  "other node's endpoint");
	ASSERT_TRUE(get_ipc("10.1.0.21", &v), "written");

	/* A LOCAL entry is never overwritten, nor removed. */
	if (!ASSERT_OK(bpf_map_update_elem(maps.ipcache, &k, &local, BPF_ANY),
		       "write local entry"))
		goto out;
	ASSERT_OK(put_ep(s, "west", "stale", "10.1.0.30", "n5",
			 nm_identity_pack(WEST_ID, 303)),
		  "record claiming a local pod's address");
	ASSERT_TRUE(get_ipc("10.1.0.30", &v), "entry");
	ASSERT_MEMEQ(&v, &local, sizeof(v), "local entry untouched");
	ASSERT_OK(del_ep(s, "west", "stale"), "its delete");
	ASSERT_TRUE(get_ipc("10.1.0.30", &v), "entry still there");
	ASSERT_MEMEQ(&v, &local, sizeof(v), "local entry untouched");

	nm_sink_get_stats(s, "east", &stats);
	ASSERT_EQ(stats.endpoints, 2, "east endpoints held");
	ASSERT_OK(del_ep(s, "east", "mine"), "local delete");
	ASSERT_OK(del_ep(s, "east", "theirs"), "remote delete");
	ASSERT_TRUE(!get_ipc("10.1.0.21", &v), "gone");
	nm_sink_get_stats(s, "east", &stats);
	ASSERT_EQ(stats.endpoints, 0, "east endpoints held");
out:
	bpf_map_delete_elem(maps.ipcache, &k);
	nm_sink_close(s);
}

static const char policy_yaml[] =
	"apiVersion: nodemesh.io/v1alpha1\n"
	"kind: MeshNetworkPolicy\n"
	"metadata: {name: from-west, namespace: shop}\n"
	"spec:\n"
	"  endpointSelector: {matchLabels: {app: db}}\n"
	"  ingress:\n"
	"    - fromEndpoints: [{matchLabels: {nodemesh.io/cluster: west}}]\n";

static bool policy_has(__u64 peer, __u32 ep_id)
{
	struct nm_policy_key k = { .identity = peer,
				   .endpoint_id = ep_id,
				   .dir = NM_POLICY_INGRESS };
	struct nm_policy_val v;

	return !bpf_map_lookup_elem(maps.policy, &k, &v) &&
	       v.verdict == NM_POLICY_ALLOW;
}

static void test_identity_reaches_policy(void)
{
	struct nm_endpoint_key ek = { .addr = ip("10.1.0.40") };
	struct nm_endpoint_val ev = { .endpoint_id = 7 };
	struct nm_labels db = {}, web = {};
	struct nm_policy_set set = {};
	struct nm_idstore ids = {};
	struct nm_sync_stats stats;
	struct nm_kv_record r;
	struct nm_error perr;
	struct nm_sink *s = NULL;
	__u64 db_id = 0, web_id = nm_identity_pack(WEST_ID, 5000);
	bool created;

	NEED_READY();
	/* A local db pod with its identity, and the policy, as the CLI does. */
	if (!ASSERT_OK(nm_labels_set(&db, "app", "db")			      ?:
			       nm_labels_set(&db, NM_LABEL_NAMESPACE, "shop") ?:
			       nm_labels_set(&db, NM_LABEL_CLUSTER, "east"),
		       "db labels"))
		goto out;
	if (!ASSERT_OK(nm_idstore_load(&st, &ids), "load identities") ||
	    !ASSERT_OK(nm_identity_alloc(&ids, EAST_ID, &db, &db_id, &created),
		       "allocate db identity") ||
	    !ASSERT_OK(nm_idstore_save(&st, &ids), "save identities"))
		goto out;
	ev.identity = db_id;
	if (!ASSERT_OK(bpf_map_update_elem(maps.endpoints, &ek, &ev, BPF_ANY),
		       "write endpoint"))
		goto out;
	if (!ASSERT_OK(nm_policy_parse(policy_yaml, strlen(policy_yaml),
				       "from-west.yaml", &set, &perr),
		       "parse policy") ||
	    !ASSERT_OK(nm_policy_store_write(&st, "from-west.yaml", policy_yaml,
					     strlen(policy_yaml), &set),
		       "store policy") ||
	    !ASSERT_OK(nm_policy_sync(&maps, &st, &ids, &set, NULL, &stats,
				      NULL),
		       "initial policy sync"))
		goto out;
	ASSERT_TRUE(!policy_has(web_id, 7), "no entry before the identity");

	if (!ASSERT_OK(open_sink(&s), "open sink"))
		goto out;
	if (!ASSERT_OK(nm_labels_set(&web, "app", "web") ?:
			       nm_labels_set(&web, NM_LABEL_NAMESPACE, "shop") ?:
			       nm_labels_set(&web, NM_LABEL_CLUSTER, "west"),
		       "web labels"))
		goto out;
	set_key(&r, NM_KV_T_IDENTITY, NM_KV_IDENTITIES, "west", "", "");
	snprintf(r.key.name, sizeof(r.key.name), "%llu",
		 (unsigned long long)web_id);
	r.key.id = web_id;
	r.identity.id = web_id;
	r.identity.labels = web;
	if (!ASSERT_OK(nm_sink_upsert(s, &r), "upsert identity"))
		goto out;
	ASSERT_TRUE(!policy_has(web_id, 7), "coalesced until flush");
	if (!ASSERT_OK(nm_sink_flush(s), "flush"))
		goto out;
	ASSERT_TRUE(policy_has(web_id, 7), "policy entry for remote identity");
	nm_idstore_free(&ids);
	if (ASSERT_OK(nm_idstore_load(&st, &ids), "reload identities")) {
		const struct nm_identity_info *info =
			nm_idstore_find(&ids, web_id);

		if (ASSERT_TRUE(info, "identities.json has it"))
			ASSERT_TRUE(nm_labels_equal(&info->labels, &web),
				    "with its labels");
		ASSERT_TRUE(nm_idstore_find(&ids, db_id), "local one kept");
	}
	ASSERT_OK(nm_sink_flush(s), "flush with nothing to do");

	if (!ASSERT_OK(nm_sink_remove(s, &r.key), "remove identity") ||
	    !ASSERT_OK(nm_sink_flush(s), "flush"))
		goto out;
	ASSERT_TRUE(!policy_has(web_id, 7), "entry gone with the identity");
	nm_idstore_free(&ids);
	if (ASSERT_OK(nm_idstore_load(&st, &ids), "reload identities")) {
		ASSERT_TRUE(!nm_idstore_find(&ids, web_id), "dropped");
		ASSERT_TRUE(nm_idstore_find(&ids, db_id), "local one kept");
	}
out:
	nm_sink_close(s);
	nm_policy_store_remove(&st, "shop", "from-west");
	bpf_map_delete_elem(maps.endpoints, &ek);
	nm_policy_set_free(&set);
	nm_idstore_free(&ids);
	nm_labels_free(&web);
	nm_labels_free(&db);
}

static void test_service_union_of_clusters(void)
{
	static const char *const fa[] = { "10.96.0.10:443/tcp" };
	static const char *const west_be[] = { "10.2.0.5:8443",
					       "10.2.0.6:8443,w=3" };
	static const char *const east_be[] = { "10.1.0.5:8443",
					       "10.1.0.6:53/udp" };
	static const char *const east_be2[] = { "10.1.0.7:8443,t",
						"10.1.0.8:8443" };
	struct nm_sink_stats stats;
	struct nm_svc_val sv;
	struct nm_sink *s = NULL;
	int cl;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	if (!ASSERT_OK(put_svc(s, "west", "pay", fa, 1, west_be, 2), "west") ||
	    !ASSERT_OK(put_svc(s, "east", "pay", fa, 1, east_be, 2), "east"))
		goto out;
	if (!ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(sv.backend_count, 3, "union, udp backend left out");
	ASSERT_EQ(backends_of(sv.svc_id, "10.2.0.5", 8443, &cl), 3, "backends");
	ASSERT_EQ(cl, WEST_ID, "west backend's cluster");
	backends_of(sv.svc_id, "10.2.0.6", 8443, &cl);
	ASSERT_EQ(cl, WEST_ID, "west backend's cluster");
	backends_of(sv.svc_id, "10.1.0.5", 8443, &cl);
	ASSERT_EQ(cl, EAST_ID, "east backend's cluster");
	nm_sink_get_stats(s, "west", &stats);
	ASSERT_EQ(stats.services, 1, "west services held");

	ASSERT_OK(del_svc(s, "west", "pay"), "remove west");
	if (!ASSERT_TRUE(get_svc(fa[0], &sv), "service stays"))
		goto out;
	ASSERT_EQ(backends_of(sv.svc_id, "10.1.0.5", 8443, &cl), 1,
		  "only east's");
	ASSERT_EQ(cl, EAST_ID, "east backend");

	ASSERT_OK(put_svc(s, "east", "pay", fa, 1, east_be2, 2),
		  "east changes backends");
	ASSERT_TRUE(get_svc(fa[0], &sv), "service");
	ASSERT_EQ(sv.backend_count, 1, "terminating one not in the table");
	ASSERT_EQ(backends_of(sv.svc_id, "10.1.0.5", 8443, &cl), 2,
		  "replaced, not added");
	ASSERT_EQ(cl, -1, "old backend gone");
	backends_of(sv.svc_id, "10.1.0.8", 8443, &cl);
	ASSERT_EQ(cl, EAST_ID, "new backend");

	ASSERT_OK(del_svc(s, "east", "pay"), "remove east");
	ASSERT_TRUE(!get_svc(fa[0], &sv), "service gone");
	ASSERT_EQ(count_entries(maps.backends, sizeof(struct nm_backend_key)),
		  0, "no backends left");
out:
	del_svc(s, "west", "pay");
	del_svc(s, "east", "pay");
	nm_sink_close(s);
}

static void test_service_from_json(void)
{
	static const char key[] = "nodemesh/state/services/v1/west/shop/cart";
	static const char val[] =
		"{\"schema\":1,\"namespace\":\"shop\",\"name\":\"cart\","
		"\"frontends\":[\"10.96.0.20:80/tcp\"],"
		"\"backends\":[{\"ip\":\"10.2.1.5\",\"port\":8080,\"proto\":\"tcp\","
		"\"weight\":2,\"state\":\"active\",\"node\":\"n1\"}],"
		"\"global\":true,\"shared\":true}";
	struct nm_kv_ctx ctx = { .cluster = "west", .cluster_id = WEST_ID };
	struct nm_kv_record r;
	struct nm_backend_key bk;
	struct nm_backend_val bv;
	struct nm_svc_val sv;
	struct nm_sink *s = NULL;
	char err[NM_KV_ERR_LEN];
	int cl;

	NEED_READY();
	if (!ASSERT_OK(nm_kv_decode(&ctx, key, val, strlen(val), &r, err,
				    sizeof(err)),
		       "decode"))
		return;
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		goto out;
	if (!ASSERT_OK(nm_sink_upsert(s, &r), "upsert") ||
	    !ASSERT_TRUE(get_svc("10.96.0.20:80/tcp", &sv), "service"))
		goto out;
	ASSERT_EQ(backends_of(sv.svc_id, "10.2.1.5", 8080, &cl), 1, "backend");
	ASSERT_EQ(cl, WEST_ID, "cluster id");
	if (ASSERT_OK(bpf_map_get_next_key(maps.backends, NULL, &bk),
		      "first backend") &&
	    ASSERT_OK(bpf_map_lookup_elem(maps.backends, &bk, &bv),
		      "read backend"))
		ASSERT_EQ(bv.weight, 2, "weight");
	ASSERT_OK(nm_sink_remove(s, &r.key), "remove");
	ASSERT_TRUE(!get_svc("10.96.0.20:80/tcp", &sv), "gone");
out:
	nm_sink_close(s);
	nm_kv_record_free(&r);
}

static void test_service_failure_keeps_union(void)
{
	static const char *const fa[] = { "10.96.1.1:80/tcp" };
	static const char *const fb[] = { "10.96.1.2:80/tcp" };
	static const char *const fc[] = { "10.96.1.3:80/tcp" };
	static const char *const fd[] = { "10.96.1.4:80/tcp" };
	static const char *const fde[] = { "10.96.1.4:80/tcp",
					   "10.96.1.5:80/tcp" };
	static const char *const wb[] = { "10.2.2.1:80", "10.2.2.2:80" };
	static const char *const eb[] = { "10.1.2.1:80" };
	static const char *const more[] = { "10.2.2.3:80" };
	struct nm_kv_backend *kb = NULL;
	struct nm_frontend f = fe(fa[0]);
	struct nm_svc_val sv, sv2;
	struct nm_kv_record r;
	struct nm_sink *s = NULL;
	size_t i;
	int cl;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	if (!ASSERT_OK(put_svc(s, "west", "a", fa, 1, wb, 2), "west a") ||
	    !ASSERT_OK(put_svc(s, "east", "a", fa, 1, eb, 1), "east a") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service a"))
		goto out;

	/* More backends than the Maglev table has slots: refused. */
	kb = calloc(TEST_M + 1, sizeof(*kb));
	if (!ASSERT_TRUE(kb, "alloc"))
		goto out;
	for (i = 0; i < TEST_M + 1; i++) {
		kb[i].ip = htonl(0x0a030000 + (__u32)i + 1);
		kb[i].port = htons(80);
		kb[i].proto = IPPROTO_TCP;
		kb[i].weight = 1;
	}
	set_key(&r, NM_KV_T_SERVICE, NM_KV_SERVICES, "west", "shop", "huge");
	r.svc.namespace = "shop";
	r.svc.name = "huge";
	r.svc.frontends = &f;
	r.svc.n_frontends = 1;
	r.svc.backends = kb;
	r.svc.n_backends = TEST_M + 1;
	r.svc.global = true;
	r.svc.shared = true;
	ASSERT_EQ(nm_sink_upsert(s, &r), -EINVAL, "too many backends refused");
	ASSERT_TRUE(get_svc(fa[0], &sv2), "service a");
	ASSERT_MEMEQ(&sv2, &sv, sizeof(sv), "service entry unchanged");
	ASSERT_EQ(backends_of(sv.svc_id, "10.1.2.1", 80, &cl), 3,
		  "previous union intact");
	ASSERT_EQ(cl, EAST_ID, "east backend");

	/* b, c: two more services; one spare table is left. */
	if (!ASSERT_OK(put_svc(s, "west", "b", fb, 1, wb, 1), "b") ||
	    !ASSERT_OK(put_svc(s, "west", "c", fc, 1, wb, 1), "c"))
		goto out;
	/* d and e in one record: d takes the spare, e finds none. */
	ASSERT_NEQ(put_svc(s, "west", "de", fde, 2, wb, 1), 0,
		   "second frontend fails");
	ASSERT_TRUE(!get_svc(fde[0], &sv2), "first frontend rolled back");
	ASSERT_TRUE(!get_svc(fde[1], &sv2), "second frontend not there");
	/* d alone fits, and then no table is spare for an update. */
	if (!ASSERT_OK(put_svc(s, "west", "d", fd, 1, wb, 1), "d"))
		goto out;
	ASSERT_NEQ(put_svc(s, "west", "a", fa, 1, more, 1), 0,
		   "update without a spare table fails");
	ASSERT_TRUE(get_svc(fa[0], &sv2), "service a");
	ASSERT_MEMEQ(&sv2, &sv, sizeof(sv), "service entry unchanged");
	ASSERT_EQ(backends_of(sv.svc_id, "10.2.2.1", 80, &cl), 3,
		  "previous union intact");
	ASSERT_EQ(cl, WEST_ID, "west backend kept");
	backends_of(sv.svc_id, "10.2.2.3", 80, &cl);
	ASSERT_EQ(cl, -1, "new backend not there");
	/* Freeing d makes room: the same update now works. */
	ASSERT_OK(del_svc(s, "west", "d"), "remove d");
	ASSERT_OK(put_svc(s, "west", "a", fa, 1, more, 1), "update now fits");
	ASSERT_TRUE(get_svc(fa[0], &sv2), "service a");
	ASSERT_EQ(backends_of(sv2.svc_id, "10.2.2.3", 80, &cl), 2,
		  "west's new one + east's");
out:
	del_svc(s, "west", "a");
	del_svc(s, "east", "a");
	del_svc(s, "west", "b");
	del_svc(s, "west", "c");
	del_svc(s, "west", "d");
	ASSERT_EQ(count_entries(maps.services, sizeof(struct nm_svc_key)), 0,
		  "no services left");
	nm_sink_close(s);
	free(kb);
}

/*
 * Affinity local: the local cluster's backends take new flows while one of
 * them is active; the remote ones wait as standby, out of the table.
 */
static void test_service_affinity_local(void)
{
	static const char *const fa[] = { "10.96.7.1:80/tcp" };
	static const char *const east_be[] = { "10.1.7.1:80" };
	static const char *const east_term[] = { "10.1.7.1:80,t" };
	static const char *const west_be[] = { "10.2.7.1:80", "10.2.7.2:80" };
	const struct svc_opts local = { .affinity = NM_KV_AFF_LOCAL };
	struct nm_frontend f = fe(fa[0]);
	struct nm_merge_be *m = NULL;
	struct nm_svc_val sv;
	struct nm_sink *s = NULL;
	size_t n = 0;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	if (!ASSERT_OK(put_svc(s, "west", "web", fa, 1, west_be, 2), "west") ||
	    !ASSERT_OK(put_svc_opts(s, "east", "web", fa, 1, east_be, 1,
				    &local),
		       "east, affinity local") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(sv.backend_count, 1, "only the local backend selected");
	ASSERT_EQ(be_state(sv.svc_id, "10.1.7.1", 80), NM_BE_ACTIVE,
		  "local active");
	ASSERT_EQ(be_state(sv.svc_id, "10.2.7.1", 80), NM_BE_STANDBY,
		  "remote standby");
	ASSERT_EQ(be_state(sv.svc_id, "10.2.7.2", 80), NM_BE_STANDBY,
		  "remote standby");
	ASSERT_EQ(table_slots(&sv, EAST_ID), TEST_M,
		  "every slot holds the local backend");
	if (ASSERT_OK(nm_sink_get_service(s, &f, &m, &n), "programmed set") &&
	    ASSERT_EQ(n, 3, "three backends")) {
		ASSERT_TRUE(m[0].spec.cluster_id == EAST_ID && m[0].preferred,
			    "local one first, preferred");
		ASSERT_TRUE(m[1].spec.state == NM_BE_STANDBY &&
				    !m[1].preferred &&
				    m[1].own_state == NM_BE_ACTIVE &&
				    m[1].tier_rank == 1,
			    "remote one standby, ready");
	}

	/* The local backend drains: the remote ones take new flows. */
	if (!ASSERT_OK(put_svc_opts(s, "east", "web", fa, 1, east_term, 1,
				    &local),
		       "east terminating") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(sv.backend_count, 2, "remote backends selected");
	ASSERT_EQ(be_state(sv.svc_id, "10.1.7.1", 80), NM_BE_TERMINATING,
		  "local terminating");
	ASSERT_EQ(be_state(sv.svc_id, "10.2.7.1", 80), NM_BE_ACTIVE,
		  "remote active");
	ASSERT_EQ(table_slots(&sv, WEST_ID), TEST_M, "only remote slots");

	/* Back: local again. */
	if (!ASSERT_OK(put_svc_opts(s, "east", "web", fa, 1, east_be, 1,
				    &local),
		       "east active again") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(be_state(sv.svc_id, "10.2.7.2", 80), NM_BE_STANDBY,
		  "remote standby again");
	ASSERT_EQ(table_slots(&sv, EAST_ID), TEST_M, "only local slots");
out:
	free(m);
	del_svc(s, "west", "web");
	del_svc(s, "east", "web");
	nm_sink_close(s);
}

/*
 * An unreachable cluster's backends are quarantined at the next flush and
 * leave the table; they come back when it is reachable again.
 */
static void test_service_unreachable_cluster(void)
{
	static const char *const fa[] = { "10.96.8.1:80/tcp" };
	static const char *const fb[] = { "10.96.8.2:80/tcp" };
	static const char *const west_be[] = { "10.2.8.1:80", "10.2.8.2:80" };
	static const char *const south_be[] = { "10.5.8.1:80" };
	struct nm_sink_stats stats;
	struct nm_backend_val bv;
	struct nm_svc_val sv, before;
	struct nm_sink *s = NULL;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	if (!ASSERT_OK(put_svc(s, "west", "web", fa, 1, west_be, 2), "west") ||
	    !ASSERT_TRUE(get_svc(fa[0], &before), "service"))
		goto out;
	ASSERT_EQ(table_slots(&before, WEST_ID), TEST_M, "remote slots");

	ASSERT_OK(nm_sink_set_reachable(s, "west", false), "west unreachable");
	nm_sink_get_stats(s, "west", &stats);
	ASSERT_TRUE(!stats.reachable, "stats say unreachable");
	ASSERT_TRUE(get_svc(fa[0], &sv) && sv.table_id == before.table_id,
		    "nothing written before the flush");
	if (!ASSERT_OK(nm_sink_flush(s), "flush") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service stays"))
		goto out;
	ASSERT_EQ(sv.backend_count, 0, "nothing selected");
	ASSERT_EQ(table_slots(&sv, -1), TEST_M, "table empty");
	ASSERT_EQ(be_state(sv.svc_id, "10.2.8.1", 80), NM_BE_QUARANTINED,
		  "quarantined");
	ASSERT_TRUE(get_be(sv.svc_id, "10.2.8.2", 80, &bv) &&
			    bv.state == NM_BE_QUARANTINED &&
			    bv.cluster_id == WEST_ID,
		    "kept for established flows, quarantined");
	/* A record arriving meanwhile merges as unreachable at once. */
	if (!ASSERT_OK(put_svc(s, "west", "api", fb, 1, west_be, 1),
		       "west api") ||
	    !ASSERT_TRUE(get_svc(fb[0], &sv), "service api"))
		goto out;
	ASSERT_EQ(be_state(sv.svc_id, "10.2.8.1", 80), NM_BE_QUARANTINED,
		  "new service quarantined too");
	ASSERT_OK(nm_sink_flush(s), "a second flush writes nothing new");

	ASSERT_OK(nm_sink_set_reachable(s, "west", true), "west back");
	if (!ASSERT_OK(nm_sink_flush(s), "flush") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(sv.backend_count, 2, "both selected again");
	ASSERT_EQ(be_state(sv.svc_id, "10.2.8.2", 80), NM_BE_ACTIVE, "active");
	ASSERT_EQ(table_slots(&sv, WEST_ID), TEST_M, "remote slots again");
	ASSERT_TRUE(get_svc(fb[0], &sv) &&
			    be_state(sv.svc_id, "10.2.8.1", 80) == NM_BE_ACTIVE,
		    "api active again");

	/* Remembered before any record, the local cluster never cut off. */
	ASSERT_OK(nm_sink_set_reachable(s, "south", false), "south first");
	ASSERT_OK(nm_sink_set_reachable(s, "east", false), "local: no-op");
	nm_sink_get_stats(s, "east", &stats);
	ASSERT_TRUE(stats.reachable, "local stays reachable");
	if (!ASSERT_OK(nm_sink_set_cluster_id(s, "south", 4), "south's id") ||
	    !ASSERT_OK(put_svc(s, "south", "web", fa, 1, south_be, 1),
		       "south") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(be_state(sv.svc_id, "10.5.8.1", 80), NM_BE_QUARANTINED,
		  "south quarantined from the start");
	ASSERT_EQ(sv.backend_count, 2, "west's selected");
out:
	del_svc(s, "west", "web");
	del_svc(s, "west", "api");
	del_svc(s, "south", "web");
	ASSERT_EQ(count_entries(maps.services, sizeof(struct nm_svc_key)), 0,
		  "no services left");
	nm_sink_close(s);
}

/* global/shared decide who contributes; cluster weights multiply. */
static void test_service_shared_global_weight(void)
{
	static const char *const fa[] = { "10.96.9.1:80/tcp" };
	static const char *const west_be[] = { "10.2.9.1:80,w=2" };
	static const char *const east_be[] = { "10.1.9.1:80" };
	const struct svc_opts not_shared = { .not_shared = true },
			      not_global = { .not_global = true },
			      heavy = { .weight = 3 };
	struct nm_svc_val sv;
	struct nm_sink *s = NULL;
	int cl;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	/* Only a remote record its cluster does not share: not ours. */
	if (!ASSERT_OK(put_svc_opts(s, "west", "db", fa, 1, west_be, 1,
				    &not_shared),
		       "west, not shared"))
		goto out;
	ASSERT_TRUE(!get_svc(fa[0], &sv), "not programmed");
	/* Our record brings the frontend, with our backends only. */
	if (!ASSERT_OK(put_svc(s, "east", "db", fa, 1, east_be, 1), "east") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(backends_of(sv.svc_id, "10.1.9.1", 80, &cl), 1,
		  "east's only");
	/* West shares, weight 3: its backend of weight 2 weighs 6. */
	if (!ASSERT_OK(put_svc_opts(s, "west", "db", fa, 1, west_be, 1, &heavy),
		       "west shares") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(backends_of(sv.svc_id, "10.2.9.1", 80, &cl), 2, "merged");
	{
		struct nm_backend_val bv;

		ASSERT_TRUE(get_be(sv.svc_id, "10.2.9.1", 80, &bv) &&
				    bv.weight == 6,
			    "weight 2 x cluster weight 3");
	}
	/* Our record not global: remote backends are not taken. */
	if (!ASSERT_OK(put_svc_opts(s, "east", "db", fa, 1, east_be, 1,
				    &not_global),
		       "east, not global") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "service"))
		goto out;
	ASSERT_EQ(backends_of(sv.svc_id, "10.1.9.1", 80, &cl), 1,
		  "east's only again");
	/* Ours gone: west's shared record alone. */
	ASSERT_OK(del_svc(s, "east", "db"), "remove east");
	ASSERT_TRUE(get_svc(fa[0], &sv) &&
			    backends_of(sv.svc_id, "10.2.9.1", 80, &cl) == 1 &&
			    cl == WEST_ID,
		    "west's only");
	/* West stops sharing: the frontend goes. */
	ASSERT_OK(put_svc_opts(s, "west", "db", fa, 1, west_be, 1, &not_shared),
		  "west stops sharing");
	ASSERT_TRUE(!get_svc(fa[0], &sv), "deleted");
out:
	del_svc(s, "west", "db");
	del_svc(s, "east", "db");
	nm_sink_close(s);
}

static void test_unknown_cluster_id_refused(void)
{
	static const char *const fa[] = { "10.96.2.1:80/tcp" };
	static const char *const b[] = { "10.4.0.1:80" };
	struct nm_svc_val sv;
	struct nm_sink *s = NULL;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open sink"))
		return;
	ASSERT_EQ(put_svc(s, "north", "x", fa, 1, b, 1), -EAGAIN,
		  "no id for north yet");
	ASSERT_TRUE(!get_svc(fa[0], &sv), "nothing written");
	/* A node record tells the id. */
	ASSERT_OK(put_node(s, "north", 3, "m1", "192.168.3.1"), "north node");
	ASSERT_OK(put_svc(s, "north", "x", fa, 1, b, 1), "now accepted");
	ASSERT_TRUE(get_svc(fa[0], &sv), "service");
	ASSERT_OK(del_svc(s, "north", "x"), "remove");
	ASSERT_OK(del_key(s, NM_KV_T_NODE, NM_KV_NODES, "north", "", "m1"),
		  "remove node");
	nm_sink_close(s);
}

/* An identity record of @cluster with app=@app. */
static int put_id(struct nm_sink *s, const char *cluster, __u64 id,
		  const char *app)
{
	struct nm_labels l = {};
	struct nm_kv_record r;
	int err;

	err = nm_labels_set(&l, "app", app)			    ?:
		      nm_labels_set(&l, NM_LABEL_NAMESPACE, "shop") ?:
		      nm_labels_set(&l, NM_LABEL_CLUSTER, cluster);
	if (err)
		goto out;
	set_key(&r, NM_KV_T_IDENTITY, NM_KV_IDENTITIES, cluster, "", "");
	snprintf(r.key.name, sizeof(r.key.name), "%llu",
		 (unsigned long long)id);
	r.key.id = id;
	r.identity.id = id;
	r.identity.labels = l;
	err = nm_sink_upsert(s, &r);
out:
	nm_labels_free(&l);
	return err;
}

static bool has_id(__u64 id)
{
	struct nm_idstore ids = {};
	bool found;

	if (nm_idstore_load(&st, &ids))
		return false;
	found = nm_idstore_find(&ids, id) != NULL;
	nm_idstore_free(&ids);
	return found;
}

/*
 * A restart: one sink writes what a previous run would have (west, and
 * north which is dropped from the config while the agent is down), next to
 * nodemeshctl's LOCAL and CIDR ipcache entries, a CLI service and a hand-
 * added identity. A new sink re-upserts a subset and sweeps: only the
 * subset and the CLI's state remain.
 */
static void test_sweep_after_restart(void)
{
	static const char *const f1[] = { "10.96.5.1:80/tcp" };
	static const char *const f2[] = { "10.96.5.2:80/tcp" };
	static const char *const wb[] = { "10.2.5.1:80" };
	static const char *const nb[] = { "10.3.5.1:80" };
	struct nm_ipcache_key lk = { .prefixlen = 32, .addr = ip("10.1.5.9") },
			      ck = { .prefixlen = 32,
				     .addr = ip("10.200.0.1") };
	struct nm_ipcache_val lv = { .identity = nm_identity_pack(EAST_ID, 600),
				     .flags = NM_IPC_F_LOCAL },
			      cv = { .identity = NM_ID_CIDR_BASE + 7,
				     .flags = NM_IPC_F_CIDR },
			      v;
	struct nm_backend_spec cli_be = { .addr = ip("10.1.5.20"),
					  .port = htons(80),
					  .weight = 1 };
	struct nm_frontend cli_fe = fe("10.96.5.3:80/tcp");
	__u64 id1 = nm_identity_pack(WEST_ID, 6001),
	      id2 = nm_identity_pack(WEST_ID, 6002),
	      id3 = nm_identity_pack(3, 6003),
	      hand = nm_identity_pack(WEST_ID, 6009);
	struct nm_identity_info hand_info = { .id = hand };
	struct nm_idstore ids = {};
	struct nm_node_val nv;
	struct nm_svc_val sv;
	struct nm_sink *s = NULL;
	bool changed;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open the earlier run's sink") ||
	    !ASSERT_OK(nm_sink_set_cluster_id(s, "north", 3), "north's id"))
		goto out;
	if (!ASSERT_OK(
		    put_node(s, "west", WEST_ID, "w1", "192.168.2.51") ?:
			    put_node(s, "west", WEST_ID, "w2", "192.168.2.52") ?:
			    put_node(s, "north", 3, "m1", "192.168.3.51"),
		    "nodes") ||
	    !ASSERT_OK(put_ep(s, "west", "a", "10.2.5.1", "w1", id1)	     ?:
			       put_ep(s, "west", "b", "10.2.5.2", "w2", id2) ?:
			       put_ep(s, "north", "c", "10.3.5.1", "m1", id3),
		       "endpoints") ||
	    !ASSERT_OK(put_svc(s, "west", "s1", f1, 1, wb, 1) ?:
			       put_svc(s, "north", "s2", f2, 1, nb, 1),
		       "services") ||
	    !ASSERT_OK(put_id(s, "west", id1, "a")	   ?:
			       put_id(s, "west", id2, "b") ?:
			       put_id(s, "north", id3, "c"),
		       "identities") ||
	    !ASSERT_OK(nm_sink_flush(s), "flush"))
		goto out;
	nm_sink_close(s);
	s = NULL;

	/* nodemeshctl's state, which no sweep may touch. */
	if (!ASSERT_OK(bpf_map_update_elem(maps.ipcache, &lk, &lv, BPF_ANY),
		       "local pod entry") ||
	    !ASSERT_OK(bpf_map_update_elem(maps.ipcache, &ck, &cv, BPF_ANY),
		       "policy CIDR entry") ||
	    !ASSERT_OK(nm_svc_upsert(&maps, &cli_fe, &cli_be, 1, NM_LB_MAGLEV),
		       "CLI service"))
		goto out;
	if (!ASSERT_OK(nm_labels_set(&hand_info.labels, "app", "hand"),
		       "labels") ||
	    !ASSERT_OK(nm_idstore_load(&st, &ids), "load identities") ||
	    !ASSERT_OK(nm_idstore_merge(&ids, &hand_info, 1, NULL, 0, &changed),
		       "hand-added identity") ||
	    !ASSERT_OK(nm_idstore_save(&st, &ids), "save identities"))
		goto out;

	/* The restart: west still has w1, a, s1 and id1; north is gone. */
	if (!ASSERT_OK(open_sink(&s), "open the new sink"))
		goto out;
	if (!ASSERT_OK(put_node(s, "west", WEST_ID, "w1", "192.168.2.51")    ?:
			       put_ep(s, "west", "a", "10.2.5.1", "w1", id1) ?:
			       put_svc(s, "west", "s1", f1, 1, wb, 1)	     ?:
			       put_id(s, "west", id1, "a"),
		       "re-listed subset") ||
	    !ASSERT_OK(nm_sink_flush(s), "flush before the sweep"))
		goto out;
	ASSERT_TRUE(get_ipc("10.2.5.2", &v) && has_id(id2),
		    "before the sweep the stale entries are there");
	if (!ASSERT_OK(nm_sink_sweep(s), "sweep"))
		goto out;

	ASSERT_TRUE(get_node("192.168.2.51", &nv), "held node kept");
	ASSERT_TRUE(!get_node("192.168.2.52", &nv), "deleted node swept");
	ASSERT_TRUE(!get_node("192.168.3.51", &nv),
		    "dropped cluster's node swept");
	ASSERT_TRUE(get_ipc("10.2.5.1", &v) && v.identity == id1 &&
			    v.tunnel_endpoint == ip("192.168.2.51"),
		    "held endpoint kept");
	ASSERT_TRUE(!get_ipc("10.2.5.2", &v), "deleted endpoint swept");
	ASSERT_TRUE(!get_ipc("10.3.5.1", &v),
		    "dropped cluster's endpoint swept");
	ASSERT_TRUE(get_ipc("10.1.5.9", &v) && !memcmp(&v, &lv, sizeof(v)),
		    "LOCAL entry untouched");
	ASSERT_TRUE(get_ipc("10.200.0.1", &v) && !memcmp(&v, &cv, sizeof(v)),
		    "CIDR entry untouched");
	ASSERT_TRUE(get_svc(f1[0], &sv), "held service kept");
	ASSERT_TRUE(!get_svc(f2[0], &sv), "dropped cluster's service swept");
	ASSERT_TRUE(get_svc("10.96.5.3:80/tcp", &sv), "CLI service untouched");
	ASSERT_TRUE(has_id(id1), "held identity kept");
	ASSERT_TRUE(!has_id(id2), "deleted identity swept");
	ASSERT_TRUE(!has_id(id3), "dropped cluster's identity swept");
	ASSERT_TRUE(has_id(hand), "hand-added identity untouched");
	ASSERT_OK(nm_sink_sweep(s), "a second sweep");
	ASSERT_TRUE(get_ipc("10.2.5.1", &v) && get_svc(f1[0], &sv) &&
			    has_id(id1),
		    "changes nothing");
out:
	if (s) {
		del_ep(s, "west", "a");
		del_svc(s, "west", "s1");
		del_key(s, NM_KV_T_NODE, NM_KV_NODES, "west", "", "w1");
	}
	nm_sink_close(s);
	nm_svc_delete(&maps, &cli_fe);
	bpf_map_delete_elem(maps.ipcache, &lk);
	bpf_map_delete_elem(maps.ipcache, &ck);
	nm_idstore_free(&ids);
	nm_labels_free(&hand_info.labels);
}

/*
 * A frontend an earlier run programmed whose only record is now one that
 * its cluster does not share: the record holds nothing, the sweep removes
 * the service.
 */
static void test_sweep_unshared_service(void)
{
	static const char *const fa[] = { "10.96.6.1:80/tcp" };
	static const char *const wb[] = { "10.2.6.1:80" };
	const struct svc_opts not_shared = { .not_shared = true };
	struct nm_frontend f = fe(fa[0]);
	struct nm_svc_val sv;
	struct nm_sink *s = NULL;

	NEED_READY();
	if (!ASSERT_OK(open_sink(&s), "open the earlier run's sink") ||
	    !ASSERT_OK(put_svc(s, "west", "old", fa, 1, wb, 1), "shared") ||
	    !ASSERT_TRUE(get_svc(fa[0], &sv), "programmed"))
		goto out;
	nm_sink_close(s);
	s = NULL;
	if (!ASSERT_OK(open_sink(&s), "open the new sink") ||
	    !ASSERT_OK(put_svc_opts(s, "west", "old", fa, 1, wb, 1,
				    &not_shared),
		       "no longer shared"))
		goto out;
	ASSERT_TRUE(get_svc(fa[0], &sv), "left over until the sweep");
	ASSERT_OK(nm_sink_sweep(s), "sweep");
	ASSERT_TRUE(!get_svc(fa[0], &sv), "swept");
out:
	if (s)
		del_svc(s, "west", "old");
	nm_sink_close(s);
	/* Only if a failed step left it. */
	if (get_svc(fa[0], &sv))
		nm_svc_delete(&maps, &f);
}

int main(void)
{
	static const struct nm_test tests[] = {
		NM_TEST(test_load),
		NM_TEST(test_node_into_nodes_map),
		NM_TEST(test_endpoint_tunnel_follows_node),
		NM_TEST(test_ip_reuse_newest_claim_wins),
		NM_TEST(test_local_endpoints_left_alone),
		NM_TEST(test_identity_reaches_policy),
		NM_TEST(test_service_union_of_clusters),
		NM_TEST(test_service_from_json),
		NM_TEST(test_service_failure_keeps_union),
		NM_TEST(test_service_affinity_local),
		NM_TEST(test_service_unreachable_cluster),
		NM_TEST(test_service_shared_global_weight),
		NM_TEST(test_unknown_cluster_id_refused),
		NM_TEST(test_sweep_after_restart),
		NM_TEST(test_sweep_unshared_service),
	};
	int failed, err;

	nm_log_set_ident("test_sink");
	nm_log_init_libbpf();
	err = setup_cleanup();
	if (err) {
		fprintf(stderr, "failed to create state dir: %s\n",
			strerror(-err));
		return 1;
	}
	failed = NM_TEST_RUN(tests);
	if (maps_open)
		nm_maps_close(&maps);
	nm_datapath_close(dp);
	cleanup_all();
	return failed ? 1 : 0;
}
