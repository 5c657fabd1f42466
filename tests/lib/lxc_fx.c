// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tests/lib/lxc_fx.h"
#include "tests/lib/test.h"
#include "lxc.skel.h"

__be32 be_addr(__u32 id)
{
	return nm_ip4(10, 0, 2, 10 + id);
}

__u32 be_id_of(__be32 addr)
{
	__u32 id;

	for (id = 1; id <= NR_BE; id++)
		if (be_addr(id) == addr)
			return id;
	return 0;
}

void fx_teardown(struct fx *f)
{
	lxc__destroy(f->skel);
	f->skel = NULL;
}

int fx_unpin(struct bpf_object *obj)
{
	struct bpf_map *map;
	int err;

	bpf_object__for_each_map(map, obj) {
		err = bpf_map__set_pin_path(map, NULL);
		if (err)
			return err;
	}
	return 0;
}

/* Open and load lxc with every map unpinned: tests never see bpffs. */
bool fx_setup_opts(struct fx *f, const struct fx_opts *o)
{
	__u32 tables = o->maglev_tables ?: TEST_TABLES;
	int err;

	memset(f, 0, sizeof(*f));
	f->m = o->maglev_m ?: TEST_M;
	f->skel = lxc__open();
	if (!ASSERT_TRUE(f->skel, "open lxc skeleton"))
		return false;
	err = fx_unpin(f->skel->obj);
	if (!ASSERT_OK(err, "unpin map"))
		goto fail;
	f->skel->rodata->nm_cfg_maglev_m = f->m;
	f->skel->rodata->nm_cfg_events_allow = o->events_allow;
	err = bpf_map__set_max_entries(f->skel->maps.nm_maglev_v1,
				       tables * f->m);
	if (!ASSERT_OK(err, "size nm_maglev_v1"))
		goto fail;
	err = bpf_map__set_max_entries(f->skel->maps.nm_ct_v1,
				       o->ct_max ?: TEST_CT_MAX);
	if (!ASSERT_OK(err, "size nm_ct_v1"))
		goto fail;
	if (o->events_bytes) {
		err = bpf_map__set_max_entries(f->skel->maps.nm_events_v1,
					       o->events_bytes);
		if (!ASSERT_OK(err, "size nm_events_v1"))
			goto fail;
	}
	err = lxc__load(f->skel);
	if (!ASSERT_OK(err, "load lxc"))
		goto fail;

	f->prog = bpf_program__fd(f->skel->progs.nm_from_pod);
	f->to_pod = bpf_program__fd(f->skel->progs.nm_to_pod);
	f->svc = bpf_map__fd(f->skel->maps.nm_services_v1);
	f->be = bpf_map__fd(f->skel->maps.nm_backends_v1);
	f->maglev = bpf_map__fd(f->skel->maps.nm_maglev_v1);
	f->revnat = bpf_map__fd(f->skel->maps.nm_revnat_v1);
	f->ct = bpf_map__fd(f->skel->maps.nm_ct_v1);
	f->metrics = bpf_map__fd(f->skel->maps.nm_metrics_v1);
	f->ipcache = bpf_map__fd(f->skel->maps.nm_ipcache_v1);
	f->endpoints = bpf_map__fd(f->skel->maps.nm_endpoints_v1);
	f->policy = bpf_map__fd(f->skel->maps.nm_policy_v1);
	f->events = bpf_map__fd(f->skel->maps.nm_events_v1);
	f->tunnel = bpf_map__fd(f->skel->maps.nm_tunnel_v1);
	f->nodes = bpf_map__fd(f->skel->maps.nm_nodes_v1);
	return true;
fail:
	fx_teardown(f);
	return false;
}

bool fx_setup(struct fx *f)
{
	struct fx_opts o = { 0 };

	return fx_setup_opts(f, &o);
}

bool set_service(struct fx *f, __u8 proto, __u32 table, __u16 count, __u8 algo)
{
	struct nm_svc_key key;
	struct nm_svc_val val;
	int err;

	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.vip = VIP;
	key.dport = VPORT;
	key.proto = proto;
	val.svc_id = SVC_ID;
	val.table_id = table;
	val.backend_count = count;
	val.algo = algo;
	err = bpf_map_update_elem(f->svc, &key, &val, BPF_ANY);
	return ASSERT_OK(err, "update nm_services_v1");
}

bool set_backend(struct fx *f, __u32 id, __u8 proto)
{
	struct nm_backend_key key;
	struct nm_backend_val val;
	int err;

	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.backend_id = id;
	val.addr = be_addr(id);
	val.port = BE_PORT;
	val.proto = proto;
	val.state = NM_BE_ACTIVE;
	val.svc_id = SVC_ID;
	val.weight = 1;
	err = bpf_map_update_elem(f->be, &key, &val, BPF_ANY);
	return ASSERT_OK(err, "update nm_backends_v1");
}

bool fill_table(struct fx *f, __u32 table, const __u32 *ids, size_t n)
{
	struct nm_maglev_key key;
	struct nm_maglev_val val;
	__u32 s;
	int err;

	for (s = 0; s < f->m; s++) {
		memset(&key, 0, sizeof(key));
		key.index = table * f->m + s;
		val.backend_id = n ? ids[s % n] : 0;
		err = bpf_map_update_elem(f->maglev, &key, &val, BPF_ANY);
		if (!ASSERT_OK(err, "update nm_maglev_v1"))
			return false;
	}
	return true;
}

bool set_revnat(struct fx *f)
{
	struct nm_revnat_key key;
	struct nm_revnat_val val;
	int err;

	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.rev_nat_id = SVC_ID;
	val.vip = VIP;
	val.port = VPORT;
	err = bpf_map_update_elem(f->revnat, &key, &val, BPF_ANY);
	return ASSERT_OK(err, "update nm_revnat_v1");
}

bool svc_basic(struct fx *f, __u8 proto, __u8 algo)
{
	static const __u32 ids[NR_BE] = { 1, 2, 3 };
	__u32 id;

	for (id = 1; id <= NR_BE; id++)
		if (!set_backend(f, id, proto))
			return false;
	return fill_table(f, 0, ids, NR_BE) &&
	       set_service(f, proto, 0, NR_BE, algo) && set_revnat(f);
}

bool set_endpoint(struct fx *f, __be32 addr, __u32 ep_id, __u64 identity,
		  __u8 flags)
{
	struct nm_endpoint_key key;
	struct nm_endpoint_val val;
	int err;

	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.addr = addr;
	val.identity = identity;
	/* BPF_PROG_TEST_RUN runs packets as if from lo: the pod's veth. */
	val.ifindex = 1;
	val.endpoint_id = ep_id;
	val.flags = flags;
	err = bpf_map_update_elem(f->endpoints, &key, &val, BPF_ANY);
	return ASSERT_OK(err, "update nm_endpoints_v1");
}

bool set_ipcache(struct fx *f, __be32 addr, __u32 plen, __u64 identity,
		 __u8 flags)
{
	struct nm_ipcache_key key;
	struct nm_ipcache_val val;
	int err;

	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.prefixlen = plen;
	key.addr = addr;
	val.identity = identity;
	val.flags = flags;
	err = bpf_map_update_elem(f->ipcache, &key, &val, BPF_ANY);
	return ASSERT_OK(err, "update nm_ipcache_v1");
}

bool set_remote_pod(struct fx *f, __be32 addr, __u64 identity, __be32 node)
{
	struct nm_ipcache_key key;
	struct nm_ipcache_val val;
	int err;

	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.prefixlen = 32;
	key.addr = addr;
	val.identity = identity;
	val.tunnel_endpoint = node;
	err = bpf_map_update_elem(f->ipcache, &key, &val, BPF_ANY);
	return ASSERT_OK(err, "update nm_ipcache_v1");
}

bool set_tunnel(struct fx *f, __u32 ifindex, __be32 node_ip)
{
	__u32 key = 0;
	struct nm_tunnel_val val = { .ifindex = ifindex, .node_ip = node_ip };

	return ASSERT_OK(bpf_map_update_elem(f->tunnel, &key, &val, BPF_ANY),
			 "update nm_tunnel_v1");
}

bool set_node(struct fx *f, __be32 node_ip, __u16 cluster_id)
{
	struct nm_node_key key = { .node_ip = node_ip };
	struct nm_node_val val = { .cluster_id = cluster_id, .node_id = 1 };

	return ASSERT_OK(bpf_map_update_elem(f->nodes, &key, &val, BPF_ANY),
			 "update nm_nodes_v1");
}

static void policy_key(struct nm_policy_key *key, __u32 ep_id, __u8 dir,
		       __u64 peer, __u8 proto, __be16 dport)
{
	memset(key, 0, sizeof(*key));
	key->identity = peer;
	key->endpoint_id = ep_id;
	key->dport = dport;
	key->proto = proto;
	key->dir = dir;
}

bool set_policy(struct fx *f, __u32 ep_id, __u8 dir, __u64 peer, __u8 proto,
		__be16 dport, __u8 verdict, __u32 rule_id)
{
	struct nm_policy_key key;
	struct nm_policy_val val;
	int err;

	policy_key(&key, ep_id, dir, peer, proto, dport);
	memset(&val, 0, sizeof(val));
	val.rule_id = rule_id;
	val.verdict = verdict;
	err = bpf_map_update_elem(f->policy, &key, &val, BPF_ANY);
	return ASSERT_OK(err, "update nm_policy_v1");
}

bool del_policy(struct fx *f, __u32 ep_id, __u8 dir, __u64 peer, __u8 proto,
		__be16 dport)
{
	struct nm_policy_key key;
	int err;

	policy_key(&key, ep_id, dir, peer, proto, dport);
	err = bpf_map_delete_elem(f->policy, &key);
	return ASSERT_OK(err, "delete nm_policy_v1");
}

size_t build(void *buf, __be32 saddr, __be16 sport, __be32 daddr, __be16 dport,
	     __u8 proto, __u8 tcp_flags)
{
	struct nm_pkt_spec s = {
		.saddr = saddr,
		.daddr = daddr,
		.sport = sport,
		.dport = dport,
		.proto = proto,
		.tcp_flags = tcp_flags,
		.payload_len = 32,
	};

	return nm_pkt_build(buf, NM_PKT_MAX, &s);
}

bool run_prog(struct fx *f, int prog, const void *in, size_t len, struct run *r)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = len,
		    .data_out = r->out, .data_size_out = sizeof(r->out),
		    .repeat = 1);
	int err;

	(void)f;
	err = bpf_prog_test_run_opts(prog, &opts);
	if (!ASSERT_OK(err, "bpf_prog_test_run_opts"))
		return false;
	r->len = opts.data_size_out;
	r->verdict = opts.retval;
	r->duration = opts.duration;
	return true;
}

bool run_pkt(struct fx *f, const void *in, size_t len, struct run *r)
{
	return run_prog(f, f->prog, in, len, r);
}

__u64 metric_dir(struct fx *f, __u32 dir, __u32 reason)
{
	int ncpu = libbpf_num_possible_cpus();
	struct nm_metrics_val *vals = NULL;
	struct nm_metrics_key key;
	__u64 sum = 0;
	int i, err;

	if (!ASSERT_GT(ncpu, 0, "libbpf_num_possible_cpus"))
		goto out;
	vals = calloc(ncpu, sizeof(*vals));
	if (!ASSERT_TRUE(vals, "calloc metrics"))
		goto out;
	memset(&key, 0, sizeof(key));
	key.index = dir * NM_REASON_MAX + reason;
	err = bpf_map_lookup_elem(f->metrics, &key, vals);
	if (!ASSERT_OK(err, "lookup nm_metrics_v1"))
		goto out;
	for (i = 0; i < ncpu; i++)
		sum += vals[i].packets;
out:
	free(vals);
	return sum;
}

__u64 metric(struct fx *f, __u32 reason)
{
	return metric_dir(f, NM_DIR_FROM_POD, reason);
}

void ct_key(struct nm_ct_key *key, __be32 saddr, __be32 daddr, __be16 sport,
	    __be16 dport, __u8 proto, __u8 dir)
{
	memset(key, 0, sizeof(*key));
	key->saddr = saddr;
	key->daddr = daddr;
	key->sport = sport;
	key->dport = dport;
	key->proto = proto;
	key->dir = dir;
}

bool ct_get(struct fx *f, __be32 saddr, __be32 daddr, __be16 sport,
	    __be16 dport, __u8 proto, __u8 dir, struct nm_ct_val *val)
{
	struct nm_ct_key key;

	ct_key(&key, saddr, daddr, sport, dport, proto, dir);
	return bpf_map_lookup_elem(f->ct, &key, val) == 0;
}

__u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
