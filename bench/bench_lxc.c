// SPDX-License-Identifier: GPL-2.0
/*
 * Per-packet cost of the lxc programs (nm_from_pod, and nm_to_pod for
 * replies and policy), measured with bpf_prog_test_run_opts beside the
 * floor of an empty tc program.
 * Every packet is its own run (repeat = 1, the kernel's duration), since
 * test_run does not reset a rewritten buffer between repeats. Flows
 * rotate over NR_FLOWS tuples and conntrack holds PREFILL unrelated
 * entries, so caches do not flatter the figures. Prints figures only;
 * never judges them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maps/service.h"
#include "maps/backend.h"
#include "maps/maglev.h"
#include "maps/revnat.h"
#include "maps/ct.h"
#include "maps/identity.h"
#include "maps/ipcache.h"
#include "maps/endpoint.h"
#include "maps/policy.h"
#include "tests/lib/pkt.h"
#include "empty.skel.h"
#include "lxc.skel.h"

#define NR_FLOWS 4096
#define NR_PKTS 200000 /* per figure */
#define PREFILL 100000
#define IPCACHE_PREFILL 10000
#define EVENTS_BATCH 1024 /* drops between two reads of the event ring */
#define CT_MAX 262144
#define M NM_MAGLEV_M_DEFAULT
#define TABLES 4
#define NR_BE 3
#define SVC_ID 1
#define PAYLOAD 64

#define VIP nm_ip4(10, 96, 0, 10)
#define VPORT htons(80)
#define BE_PORT htons(8080)

/* A local pod selected for ingress: one identity denied, one allowed. */
#define SERVER nm_ip4(10, 0, 1, 20)
#define SERVER_PORT htons(443)
#define EP_SERVER 2
#define DENIED_NET 0x0a500000 /* 10.80/16 */
#define ALLOWED_NET 0x0a800000 /* 10.128/9 */
#define ID_DENIED nm_identity_pack(1, 300)
#define ID_ALLOWED nm_identity_pack(1, 301)

struct bench {
	struct empty *empty;
	struct lxc *lxc;
	int floor_prog;
	int lxc_prog;
	int to_pod_prog;
	int ct;
	int expect; /* tc verdict every packet must get */
	struct ring_buffer *events; /* drained so drops keep their events */
	size_t len; /* every packet has the same length */
	__u8 (*pkts)[NM_PKT_MAX];
};

static __be32 be_addr(__u32 id)
{
	return nm_ip4(10, 0, 2, 10 + id);
}

static int unpin_all(struct bpf_object *obj)
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

static int update(int fd, const void *key, const void *val, const char *what)
{
	int err = bpf_map_update_elem(fd, key, val, BPF_ANY);

	if (err)
		fprintf(stderr, "failed to update %s: %s\n", what,
			strerror(-err));
	return err;
}

/* One TCP service on VIP:80 with NR_BE backends in table 0. */
static int fill_service(struct bench *b)
{
	int be_fd = bpf_map__fd(b->lxc->maps.nm_backends_v1);
	int mag_fd = bpf_map__fd(b->lxc->maps.nm_maglev_v1);
	int svc_fd = bpf_map__fd(b->lxc->maps.nm_services_v1);
	int rev_fd = bpf_map__fd(b->lxc->maps.nm_revnat_v1);
	struct nm_backend_key bkey;
	struct nm_backend_val bval;
	struct nm_maglev_key mkey;
	struct nm_maglev_val mval;
	struct nm_svc_key skey;
	struct nm_svc_val sval;
	struct nm_revnat_key rkey;
	struct nm_revnat_val rval;
	__u32 id, s;
	int err;

	for (id = 1; id <= NR_BE; id++) {
		memset(&bkey, 0, sizeof(bkey));
		memset(&bval, 0, sizeof(bval));
		bkey.backend_id = id;
		bval.addr = be_addr(id);
		bval.port = BE_PORT;
		bval.proto = IPPROTO_TCP;
		bval.svc_id = SVC_ID;
		bval.weight = 1;
		err = update(be_fd, &bkey, &bval, "nm_backends_v1");
		if (err)
			return err;
	}
	for (s = 0; s < M; s++) {
		memset(&mkey, 0, sizeof(mkey));
		mkey.index = s;
		mval.backend_id = 1 + s % NR_BE;
		err = update(mag_fd, &mkey, &mval, "nm_maglev_v1");
		if (err)
			return err;
	}
	memset(&rkey, 0, sizeof(rkey));
	memset(&rval, 0, sizeof(rval));
	rkey.rev_nat_id = SVC_ID;
	rval.vip = VIP;
	rval.port = VPORT;
	err = update(rev_fd, &rkey, &rval, "nm_revnat_v1");
	if (err)
		return err;
	memset(&skey, 0, sizeof(skey));
	memset(&sval, 0, sizeof(sval));
	skey.vip = VIP;
	skey.dport = VPORT;
	skey.proto = IPPROTO_TCP;
	sval.svc_id = SVC_ID;
	sval.backend_count = NR_BE;
	sval.algo = NM_LB_MAGLEV;
	return update(svc_fd, &skey, &sval, "nm_services_v1");
}

/*
 * SERVER, selected for ingress: DENIED_NET has an identity with a deny
 * entry, ALLOWED_NET one with an allow entry, both on SERVER_PORT. The
 * ipcache also holds IPCACHE_PREFILL pod addresses no packet uses.
 */
static int fill_policy(struct bench *b)
{
	int ep_fd = bpf_map__fd(b->lxc->maps.nm_endpoints_v1);
	int ipc_fd = bpf_map__fd(b->lxc->maps.nm_ipcache_v1);
	int pol_fd = bpf_map__fd(b->lxc->maps.nm_policy_v1);
	struct nm_endpoint_key ekey;
	struct nm_endpoint_val eval;
	struct nm_ipcache_key ikey;
	struct nm_ipcache_val ival;
	struct nm_policy_key pkey;
	struct nm_policy_val pval;
	__u32 i;
	int err;

	memset(&ekey, 0, sizeof(ekey));
	memset(&eval, 0, sizeof(eval));
	ekey.addr = SERVER;
	eval.identity = nm_identity_pack(1, 400);
	eval.endpoint_id = EP_SERVER;
	eval.flags = NM_EP_F_INGRESS_POLICY;
	err = update(ep_fd, &ekey, &eval, "nm_endpoints_v1");
	if (err)
		return err;

	memset(&ival, 0, sizeof(ival));
	for (i = 0; i < IPCACHE_PREFILL; i++) {
		memset(&ikey, 0, sizeof(ikey));
		ikey.prefixlen = 32;
		ikey.addr = htonl(0x0a140000 + i); /* 10.20/16 */
		ival.identity = nm_identity_pack(2, 256 + i % 1000);
		err = update(ipc_fd, &ikey, &ival, "nm_ipcache_v1");
		if (err)
			return err;
	}
	memset(&ikey, 0, sizeof(ikey));
	ikey.prefixlen = 16;
	ikey.addr = htonl(DENIED_NET);
	ival.identity = ID_DENIED;
	err = update(ipc_fd, &ikey, &ival, "nm_ipcache_v1");
	if (err)
		return err;
	ikey.prefixlen = 9;
	ikey.addr = htonl(ALLOWED_NET);
	ival.identity = ID_ALLOWED;
	err = update(ipc_fd, &ikey, &ival, "nm_ipcache_v1");
	if (err)
		return err;

	memset(&pkey, 0, sizeof(pkey));
	memset(&pval, 0, sizeof(pval));
	pkey.identity = ID_DENIED;
	pkey.endpoint_id = EP_SERVER;
	pkey.dport = SERVER_PORT;
	pkey.proto = IPPROTO_TCP;
	pkey.dir = NM_POLICY_INGRESS;
	pval.rule_id = 1;
	pval.verdict = NM_POLICY_DENY;
	err = update(pol_fd, &pkey, &pval, "nm_policy_v1");
	if (err)
		return err;
	pkey.identity = ID_ALLOWED;
	pval.rule_id = 2;
	pval.verdict = NM_POLICY_ALLOW;
	return update(pol_fd, &pkey, &pval, "nm_policy_v1");
}

/* Forward entries of tuples no benchmark packet uses. */
static int prefill_ct(struct bench *b)
{
	struct nm_ct_key key;
	struct nm_ct_val val;
	__u32 i;
	int err;

	memset(&val, 0, sizeof(val));
	val.expires_ns = ~0ULL;
	val.backend_id = 1;
	val.rev_nat_id = SVC_ID;
	for (i = 0; i < PREFILL; i++) {
		memset(&key, 0, sizeof(key));
		key.saddr = htonl(0xac100000 + i); /* 172.16/12 */
		key.daddr = nm_ip4(192, 168, 0, 1);
		key.sport = htons(1024 + i % 50000);
		key.dport = htons(443);
		key.proto = IPPROTO_TCP;
		key.dir = NM_CT_FORWARD;
		err = update(b->ct, &key, &val, "nm_ct_v1");
		if (err)
			return err;
	}
	return 0;
}

/* Flow i of a set: client @base + i / 256 ... with a distinct port. */
static int build_flows(struct bench *b, __u32 base, __be32 daddr, __be16 dport,
		       __u8 flags)
{
	struct nm_pkt_spec s = {
		.daddr = daddr,
		.dport = dport,
		.proto = IPPROTO_TCP,
		.tcp_flags = flags,
		.payload_len = PAYLOAD,
	};
	__u32 i;

	for (i = 0; i < NR_FLOWS; i++) {
		s.saddr = htonl(base + i / 256);
		s.sport = htons(10000 + i % 256);
		b->len = nm_pkt_build(b->pkts[i], NM_PKT_MAX, &s);
		if (!b->len)
			return -EINVAL;
	}
	return 0;
}

/*
 * The replies of the flows in b->pkts, from the backend CT chose, as
 * delivered to the client (nm_to_pod).
 */
static int build_replies(struct bench *b)
{
	int be_fd = bpf_map__fd(b->lxc->maps.nm_backends_v1);
	struct nm_backend_key bkey;
	struct nm_backend_val bval;
	struct nm_pkt_tuple t;
	struct nm_ct_key key;
	struct nm_ct_val val;
	struct nm_pkt_spec s = {
		.proto = IPPROTO_TCP,
		.tcp_flags = NM_PKT_TCP_ACK,
		.payload_len = PAYLOAD,
	};
	__u32 i;
	int err;

	for (i = 0; i < NR_FLOWS; i++) {
		if (!nm_pkt_tuple(b->pkts[i], b->len, &t))
			return -EINVAL;
		memset(&key, 0, sizeof(key));
		key.saddr = t.saddr;
		key.daddr = t.daddr;
		key.sport = t.sport;
		key.dport = t.dport;
		key.proto = t.proto;
		key.dir = NM_CT_FORWARD;
		err = bpf_map_lookup_elem(b->ct, &key, &val);
		if (err)
			return err;
		memset(&bkey, 0, sizeof(bkey));
		bkey.backend_id = val.backend_id;
		err = bpf_map_lookup_elem(be_fd, &bkey, &bval);
		if (err)
			return err;
		s.saddr = bval.addr;
		s.sport = bval.port;
		s.daddr = t.saddr;
		s.dport = t.sport;
		b->len = nm_pkt_build(b->pkts[i], NM_PKT_MAX, &s);
		if (!b->len)
			return -EINVAL;
	}
	return 0;
}

/* Both CT entries of every flow in b->pkts, so the next round is new. */
static int delete_flows(struct bench *b)
{
	struct nm_pkt_tuple t;
	struct nm_ct_key key;
	struct nm_ct_val val;
	__u32 i;
	int err;

	for (i = 0; i < NR_FLOWS; i++) {
		if (!nm_pkt_tuple(b->pkts[i], b->len, &t))
			return -EINVAL;
		memset(&key, 0, sizeof(key));
		key.saddr = t.saddr;
		key.daddr = t.daddr;
		key.sport = t.sport;
		key.dport = t.dport;
		key.proto = t.proto;
		key.dir = NM_CT_FORWARD;
		err = bpf_map_lookup_elem(b->ct, &key, &val);
		if (err)
			return err;
		err = bpf_map_delete_elem(b->ct, &key);
		if (err)
			return err;
		key.saddr = be_addr(val.backend_id);
		key.daddr = t.saddr;
		key.sport = BE_PORT;
		key.dport = t.sport;
		key.dir = NM_CT_REPLY;
		err = bpf_map_delete_elem(b->ct, &key);
		if (err)
			return err;
	}
	return 0;
}

/* The INGRESS entries of the flows in b->pkts, so the next round is new. */
static int delete_ingress(struct bench *b)
{
	struct nm_pkt_tuple t;
	struct nm_ct_key key;
	__u32 i;
	int err;

	for (i = 0; i < NR_FLOWS; i++) {
		if (!nm_pkt_tuple(b->pkts[i], b->len, &t))
			return -EINVAL;
		memset(&key, 0, sizeof(key));
		key.saddr = t.saddr;
		key.daddr = t.daddr;
		key.sport = t.sport;
		key.dport = t.dport;
		key.proto = t.proto;
		key.dir = NM_CT_INGRESS;
		err = bpf_map_delete_elem(b->ct, &key);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Run @count packets of b->pkts (rotating) through @prog, one run each;
 * adds the kernel-measured durations to *@sum_ns.
 */
static int run_pkts(struct bench *b, int prog, __u32 count, __u64 *sum_ns)
{
	__u8 out[NM_PKT_MAX];
	__u32 i;
	int err;

	for (i = 0; i < count; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts,
			    .data_in = b->pkts[i % NR_FLOWS],
			    .data_size_in = b->len, .data_out = out,
			    .data_size_out = sizeof(out), .repeat = 1);

		err = bpf_prog_test_run_opts(prog, &opts);
		if (err)
			return err;
		if ((int)opts.retval != b->expect)
			return -EPROTO;
		*sum_ns += opts.duration;
		if (i % EVENTS_BATCH == EVENTS_BATCH - 1) {
			err = ring_buffer__consume(b->events);
			if (err < 0)
				return err;
		}
	}
	return 0;
}

static void print_figure(const char *name, __u64 sum_ns, __u32 count)
{
	printf("bench: %s %.1f ns\n", name, (double)sum_ns / count);
	fflush(stdout);
}

/* Rotating figure over the packets in b->pkts, after one warm-up pass. */
static int figure(struct bench *b, int prog, const char *name)
{
	__u64 sum = 0;
	int err;

	err = run_pkts(b, prog, NR_FLOWS, &sum);
	if (err)
		return err;
	sum = 0;
	err = run_pkts(b, prog, NR_PKTS, &sum);
	if (err)
		return err;
	print_figure(name, sum, NR_PKTS);
	return 0;
}

/* New flows only: fresh tuples every round, CT entries removed after. */
static int figure_syn(struct bench *b)
{
	__u32 round, rounds = (NR_PKTS + NR_FLOWS - 1) / NR_FLOWS;
	__u64 sum = 0;
	int err;

	for (round = 0; round < rounds; round++) {
		err = build_flows(b, 0x0a800000 + round * 256, VIP, VPORT,
				  NM_PKT_TCP_SYN);
		if (err)
			return err;
		err = run_pkts(b, b->lxc_prog, NR_FLOWS, &sum);
		if (err)
			return err;
		err = delete_flows(b);
		if (err)
			return err;
	}
	print_figure("syn_vip_ns", sum, rounds * NR_FLOWS);
	return 0;
}

/*
 * New flows to SERVER denied by an explicit deny entry, through nm_to_pod
 * (event included). A denied flow leaves no CT entry, so rotating the
 * same tuples keeps every packet a new flow.
 */
static int figure_policy_deny(struct bench *b)
{
	int err;

	err = build_flows(b, DENIED_NET, SERVER, SERVER_PORT, NM_PKT_TCP_SYN);
	if (err)
		return err;
	b->expect = TC_ACT_SHOT;
	err = figure(b, b->to_pod_prog, "policy_deny_ns");
	b->expect = TC_ACT_OK;
	return err;
}

/*
 * New flows to SERVER allowed by an identity + port entry, through
 * nm_to_pod, INGRESS entry created: fresh tuples every round, entries
 * removed after it (not measured).
 */
static int figure_policy_allow(struct bench *b)
{
	__u32 round, rounds = (NR_PKTS + NR_FLOWS - 1) / NR_FLOWS;
	__u64 sum = 0;
	int err;

	for (round = 0; round < rounds; round++) {
		err = build_flows(b, ALLOWED_NET + round * 256, SERVER,
				  SERVER_PORT, NM_PKT_TCP_SYN);
		if (err)
			return err;
		err = run_pkts(b, b->to_pod_prog, NR_FLOWS, &sum);
		if (err)
			return err;
		err = delete_ingress(b);
		if (err)
			return err;
	}
	print_figure("policy_allow_new_flow_ns", sum, rounds * NR_FLOWS);
	return 0;
}

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	(void)data;
	(void)size;
	return 0;
}

static int setup(struct bench *b)
{
	int err;

	b->empty = empty__open();
	b->lxc = lxc__open();
	if (!b->empty || !b->lxc)
		return -errno;
	err = unpin_all(b->empty->obj);
	if (err)
		return err;
	err = unpin_all(b->lxc->obj);
	if (err)
		return err;
	b->lxc->rodata->nm_cfg_maglev_m = M;
	err = bpf_map__set_max_entries(b->lxc->maps.nm_maglev_v1, TABLES * M);
	if (err)
		return err;
	err = bpf_map__set_max_entries(b->lxc->maps.nm_ct_v1, CT_MAX);
	if (err)
		return err;
	err = empty__load(b->empty);
	if (err)
		return err;
	err = lxc__load(b->lxc);
	if (err)
		return err;
	b->floor_prog = bpf_program__fd(b->empty->progs.nm_empty);
	b->lxc_prog = bpf_program__fd(b->lxc->progs.nm_from_pod);
	b->to_pod_prog = bpf_program__fd(b->lxc->progs.nm_to_pod);
	b->ct = bpf_map__fd(b->lxc->maps.nm_ct_v1);
	b->expect = TC_ACT_OK;
	b->events = ring_buffer__new(bpf_map__fd(b->lxc->maps.nm_events_v1),
				     on_event, NULL, NULL);
	if (!b->events)
		return -errno;
	err = fill_service(b);
	if (err)
		return err;
	err = fill_policy(b);
	if (err)
		return err;
	return prefill_ct(b);
}

/* One CPU for the whole run: per-CPU state and caches stay put. */
static void pin_cpu(void)
{
	cpu_set_t set;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "bench: failed to pin to CPU %d: %s\n", cpu,
			strerror(errno));
}

int main(void)
{
	struct bench b;
	int err;

	memset(&b, 0, sizeof(b));
	pin_cpu();
	b.pkts = calloc(NR_FLOWS, sizeof(*b.pkts));
	if (!b.pkts) {
		err = -ENOMEM;
		goto out;
	}
	err = setup(&b);
	if (err) {
		fprintf(stderr, "bench: failed to set up lxc: %s\n",
			strerror(-err));
		goto out;
	}

	/*
	 * Not a service (and the floor): the warm-up pass opens the flows,
	 * the measured packets are tracked ones (one FORWARD hit).
	 */
	err = build_flows(&b, 0x0a400000, nm_ip4(10, 200, 0, 1), VPORT,
			  NM_PKT_TCP_ACK);
	if (!err)
		err = figure(&b, b.floor_prog, "floor_ns");
	if (!err)
		err = figure(&b, b.lxc_prog, "pass_ns");
	if (!err)
		err = figure_syn(&b);

	/* Open NR_FLOWS flows (not measured), then run their ACKs. */
	if (!err)
		err = build_flows(&b, 0x0a400000, VIP, VPORT, NM_PKT_TCP_SYN);
	if (!err) {
		__u64 unused = 0;

		err = run_pkts(&b, b.lxc_prog, NR_FLOWS, &unused);
	}
	if (!err)
		err = build_flows(&b, 0x0a400000, VIP, VPORT, NM_PKT_TCP_ACK);
	if (!err)
		err = figure(&b, b.lxc_prog, "established_ns");
	if (!err)
		err = build_replies(&b);
	if (!err)
		err = figure(&b, b.to_pod_prog, "reply_revnat_ns");
	if (!err)
		err = figure_policy_deny(&b);
	if (!err)
		err = figure_policy_allow(&b);
	if (err)
		fprintf(stderr, "bench: failed to run lxc figures: %s\n",
			strerror(err < 0 ? -err : err));
out:
	ring_buffer__free(b.events);
	lxc__destroy(b.lxc);
	empty__destroy(b.empty);
	free(b.pkts);
	return err ? 1 : 0;
}
