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

#include "tests/lib/lxc_fx.h"
#include "tests/lib/pkt.h"
#include "empty.skel.h"

#define NR_FLOWS 4096
#define NR_PKTS 200000 /* per figure */
#define PREFILL 100000
#define IPCACHE_PREFILL 10000
#define EVENTS_BATCH 1024 /* drops between two reads of the event ring */
#define CT_MAX 262144
#define M NM_MAGLEV_M_DEFAULT
#define TABLES 4
#define PAYLOAD 64

/* A local pod selected for ingress: one identity denied, one allowed. */
#define SERVER nm_ip4(10, 0, 1, 20)
#define SERVER_PORT htons(443)
#define EP_SERVER 2
#define DENIED_NET 0x0a500000 /* 10.80/16 */
#define ALLOWED_NET 0x0a800000 /* 10.128/9 */
#define ID_DENIED nm_identity_pack(1, 300)
#define ID_ALLOWED nm_identity_pack(1, 301)

/*
 * The lxc object comes from the test fixture (tests/lib/lxc_fx), loaded
 * at production sizes; VIP:80 with NR_BE backends is the fixture's
 * svc_basic() service.
 */
struct bench {
	struct empty *empty;
	struct fx fx;
	int floor_prog;
	int expect; /* tc verdict every packet must get */
	struct ring_buffer *events; /* drained so drops keep their events */
	size_t len; /* every packet has the same length */
	__u8 (*pkts)[NM_PKT_MAX];
};

/*
 * SERVER, selected for ingress: DENIED_NET has an identity with a deny
 * entry, ALLOWED_NET one with an allow entry, both on SERVER_PORT. The
 * ipcache also holds IPCACHE_PREFILL pod addresses no packet uses.
 */
static int fill_policy(struct bench *b)
{
	struct fx *f = &b->fx;
	__u32 i;

	if (!set_endpoint(f, SERVER, EP_SERVER, nm_identity_pack(1, 400),
			  NM_EP_F_INGRESS_POLICY))
		return -EIO;
	for (i = 0; i < IPCACHE_PREFILL; i++)
		if (!set_ipcache(f, htonl(0x0a140000 + i) /* 10.20/16 */, 32,
				 nm_identity_pack(2, 256 + i % 1000), 0))
			return -EIO;
	if (!set_ipcache(f, htonl(DENIED_NET), 16, ID_DENIED, 0) ||
	    !set_ipcache(f, htonl(ALLOWED_NET), 9, ID_ALLOWED, 0) ||
	    !set_policy(f, EP_SERVER, NM_POLICY_INGRESS, ID_DENIED, IPPROTO_TCP,
			SERVER_PORT, NM_POLICY_DENY, 1) ||
	    !set_policy(f, EP_SERVER, NM_POLICY_INGRESS, ID_ALLOWED,
			IPPROTO_TCP, SERVER_PORT, NM_POLICY_ALLOW, 2))
		return -EIO;
	return 0;
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
		ct_key(&key, htonl(0xac100000 + i) /* 172.16/12 */,
		       nm_ip4(192, 168, 0, 1), htons(1024 + i % 50000),
		       htons(443), IPPROTO_TCP, NM_CT_FORWARD);
		err = bpf_map_update_elem(b->fx.ct, &key, &val, BPF_ANY);
		if (err) {
			fprintf(stderr, "failed to update nm_ct_v1: %s\n",
				strerror(-err));
			return err;
		}
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

/* The @dir CT key of the tuple of packet @i of b->pkts. */
static int flow_key(struct bench *b, __u32 i, __u8 dir, struct nm_pkt_tuple *t,
		    struct nm_ct_key *key)
{
	if (!nm_pkt_tuple(b->pkts[i], b->len, t))
		return -EINVAL;
	ct_key(key, t->saddr, t->daddr, t->sport, t->dport, t->proto, dir);
	return 0;
}

/*
 * The replies of the flows in b->pkts, from the backend CT chose, as
 * delivered to the client (nm_to_pod).
 */
static int build_replies(struct bench *b)
{
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
		err = flow_key(b, i, NM_CT_FORWARD, &t, &key);
		if (err)
			return err;
		err = bpf_map_lookup_elem(b->fx.ct, &key, &val);
		if (err)
			return err;
		memset(&bkey, 0, sizeof(bkey));
		bkey.backend_id = val.backend_id;
		err = bpf_map_lookup_elem(b->fx.be, &bkey, &bval);
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
		err = flow_key(b, i, NM_CT_FORWARD, &t, &key);
		if (err)
			return err;
		err = bpf_map_lookup_elem(b->fx.ct, &key, &val);
		if (err)
			return err;
		err = bpf_map_delete_elem(b->fx.ct, &key);
		if (err)
			return err;
		key.saddr = be_addr(val.backend_id);
		key.daddr = t.saddr;
		key.sport = BE_PORT;
		key.dport = t.sport;
		key.dir = NM_CT_REPLY;
		err = bpf_map_delete_elem(b->fx.ct, &key);
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
		err = flow_key(b, i, NM_CT_INGRESS, &t, &key);
		if (err)
			return err;
		err = bpf_map_delete_elem(b->fx.ct, &key);
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
	struct run r;
	__u32 i;
	int err;

	for (i = 0; i < count; i++) {
		if (!run_prog(&b->fx, prog, b->pkts[i % NR_FLOWS], b->len, &r))
			return -EIO;
		if ((int)r.verdict != b->expect)
			return -EPROTO;
		*sum_ns += r.duration;
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

/*
 * New flows only: fresh SYN tuples from @base every round, through @prog,
 * the CT entries they made removed by @cleanup after it (not measured).
 */
static int figure_new_flows(struct bench *b, __u32 base, __be32 daddr,
			    __be16 dport, int prog,
			    int (*cleanup)(struct bench *b), const char *name)
{
	__u32 round, rounds = (NR_PKTS + NR_FLOWS - 1) / NR_FLOWS;
	__u64 sum = 0;
	int err;

	for (round = 0; round < rounds; round++) {
		err = build_flows(b, base + round * 256, daddr, dport,
				  NM_PKT_TCP_SYN);
		if (err)
			return err;
		err = run_pkts(b, prog, NR_FLOWS, &sum);
		if (err)
			return err;
		err = cleanup(b);
		if (err)
			return err;
	}
	print_figure(name, sum, rounds * NR_FLOWS);
	return 0;
}

/* New flows to the VIP: DNAT, FORWARD + REPLY entries made. */
static int figure_syn(struct bench *b)
{
	return figure_new_flows(b, 0x0a800000, VIP, VPORT, b->fx.prog,
				delete_flows, "syn_vip_ns");
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
	err = figure(b, b->fx.to_pod, "policy_deny_ns");
	b->expect = TC_ACT_OK;
	return err;
}

/*
 * New flows to SERVER allowed by an identity + port entry, through
 * nm_to_pod, INGRESS entry created.
 */
static int figure_policy_allow(struct bench *b)
{
	return figure_new_flows(b, ALLOWED_NET, SERVER, SERVER_PORT,
				b->fx.to_pod, delete_ingress,
				"policy_allow_new_flow_ns");
}

/*
 * Tracked flows to a pod on another node: a FORWARD hit, then the
 * overlay lookups and the tunnel key, redirected to the VXLAN device.
 * The overlay is switched off again so later figures do not pay for it.
 */
static int figure_encap(struct bench *b)
{
	__be32 node_self = nm_ip4(172, 30, 1, 1);
	__be32 pod = nm_ip4(10, 201, 0, 1);
	int err;

	if (!set_tunnel(&b->fx, 4242, node_self) ||
	    !set_remote_pod(&b->fx, pod, nm_identity_pack(2, 400),
			    nm_ip4(172, 30, 2, 1)))
		return -EIO;
	err = build_flows(b, 0x0a400000, pod, VPORT, NM_PKT_TCP_ACK);
	if (err)
		return err;
	b->expect = TC_ACT_REDIRECT;
	err = figure(b, b->fx.prog, "encap_established_ns");
	b->expect = TC_ACT_OK;
	if (!set_tunnel(&b->fx, 0, node_self) && !err)
		err = -EIO;
	return err;
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
	struct fx_opts o = {
		.maglev_m = M,
		.maglev_tables = TABLES,
		.ct_max = CT_MAX,
	};
	int err;

	b->empty = empty__open();
	if (!b->empty)
		return -errno;
	err = fx_unpin(b->empty->obj);
	if (err)
		return err;
	err = empty__load(b->empty);
	if (err)
		return err;
	if (!fx_setup_opts(&b->fx, &o))
		return -EIO;
	b->floor_prog = bpf_program__fd(b->empty->progs.nm_empty);
	b->expect = TC_ACT_OK;
	b->events = ring_buffer__new(b->fx.events, on_event, NULL, NULL);
	if (!b->events)
		return -errno;
	if (!svc_basic(&b->fx, IPPROTO_TCP, NM_LB_MAGLEV))
		return -EIO;
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
		err = figure(&b, b.fx.prog, "pass_ns");
	if (!err)
		err = figure_encap(&b);
	if (!err)
		err = figure_syn(&b);

	/* Open NR_FLOWS flows (not measured), then run their ACKs. */
	if (!err)
		err = build_flows(&b, 0x0a400000, VIP, VPORT, NM_PKT_TCP_SYN);
	if (!err) {
		__u64 unused = 0;

		err = run_pkts(&b, b.fx.prog, NR_FLOWS, &unused);
	}
	if (!err)
		err = build_flows(&b, 0x0a400000, VIP, VPORT, NM_PKT_TCP_ACK);
	if (!err)
		err = figure(&b, b.fx.prog, "established_ns");
	if (!err)
		err = build_replies(&b);
	if (!err)
		err = figure(&b, b.fx.to_pod, "reply_revnat_ns");
	if (!err)
		err = figure_policy_deny(&b);
	if (!err)
		err = figure_policy_allow(&b);
	if (err)
		fprintf(stderr, "bench: failed to run lxc figures: %s\n",
			strerror(err < 0 ? -err : err));
out:
	ring_buffer__free(b.events);
	fx_teardown(&b.fx);
	empty__destroy(b.empty);
	free(b.pkts);
	return err ? 1 : 0;
}
