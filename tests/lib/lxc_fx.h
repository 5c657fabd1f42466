/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fixture of the lxc program tests: the real object loaded with every
 * map unpinned, helpers that fill services, endpoints, ipcache and
 * policy, run a packet through nm_from_pod or nm_to_pod and read back
 * conntrack and metrics.
 */
#ifndef NM_TESTS_LXC_FX_H
#define NM_TESTS_LXC_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "maps/service.h"
#include "maps/backend.h"
#include "maps/maglev.h"
#include "maps/revnat.h"
#include "maps/ct.h"
#include "maps/metrics.h"
#include "maps/identity.h"
#include "maps/ipcache.h"
#include "maps/endpoint.h"
#include "maps/policy.h"
#include "maps/events.h"
#include "maps/node.h"
#include "maps/tunnel.h"
#include "tests/lib/pkt.h"

/* Small tables keep each test's load and fill cheap. */
#define TEST_M 1021
#define TEST_TABLES 4
#define TEST_CT_MAX 4096

#define SVC_ID 7
#define VIP nm_ip4(10, 96, 0, 10)
#define VPORT htons(80)
#define CLIENT nm_ip4(10, 0, 1, 5)
#define CPORT htons(40000)
#define BE_PORT htons(8080)
#define NR_BE 3

struct lxc;
struct bpf_object;

struct fx {
	struct lxc *skel;
	__u32 m; /* Maglev slots per table */
	int prog; /* nm_from_pod */
	int to_pod; /* nm_to_pod */
	int svc;
	int be;
	int maglev;
	int revnat;
	int ct;
	int metrics;
	int ipcache;
	int endpoints;
	int policy;
	int events;
	int tunnel;
	int nodes;
};

/* Load-time settings a test may change; zero means the default. */
struct fx_opts {
	__u32 events_bytes; /* size of nm_events_v1 */
	bool events_allow; /* nm_cfg_events_allow */
	__u32 maglev_m; /* default TEST_M */
	__u32 maglev_tables; /* default TEST_TABLES */
	__u32 ct_max; /* default TEST_CT_MAX */
};

struct run {
	__u8 out[NM_PKT_MAX];
	__u32 len;
	__u32 verdict;
	__u32 duration; /* ns, as the kernel measured the run */
};

/* Clear the pin path of every map of @obj: it never touches bpffs. */
int fx_unpin(struct bpf_object *obj);
bool fx_setup(struct fx *f);
bool fx_setup_opts(struct fx *f, const struct fx_opts *o);
void fx_teardown(struct fx *f);

/* Backend @id (1..NR_BE) lives at 10.0.2.(10 + id):BE_PORT. */
__be32 be_addr(__u32 id);
/* Backend id of an address made by be_addr(), 0 if it is none of them. */
__u32 be_id_of(__be32 addr);

bool set_service(struct fx *f, __u8 proto, __u32 table, __u16 count, __u8 algo);
bool set_backend(struct fx *f, __u32 id, __u8 proto);
/* Slot s of @table (f->m slots) gets ids[s % n]. */
bool fill_table(struct fx *f, __u32 table, const __u32 *ids, size_t n);
bool set_revnat(struct fx *f);
/* VIP:80/@proto with backends 1..3 in table 0, and its rev-NAT entry. */
bool svc_basic(struct fx *f, __u8 proto, __u8 algo);

/* Local pod @addr: endpoint @ep_id with @identity and NM_EP_F_* @flags. */
bool set_endpoint(struct fx *f, __be32 addr, __u32 ep_id, __u64 identity,
		  __u8 flags);
/* ipcache @addr/@plen -> @identity. */
bool set_ipcache(struct fx *f, __be32 addr, __u32 plen, __u64 identity,
		 __u8 flags);
/* ipcache @addr/32 -> @identity on node @node (tunnel endpoint). */
bool set_remote_pod(struct fx *f, __be32 addr, __u64 identity, __be32 node);
/* The overlay: VXLAN device @ifindex (0: off), this node @node_ip. */
bool set_tunnel(struct fx *f, __u32 ifindex, __be32 node_ip);
bool set_node(struct fx *f, __be32 node_ip, __u16 cluster_id);
bool set_policy(struct fx *f, __u32 ep_id, __u8 dir, __u64 peer, __u8 proto,
		__be16 dport, __u8 verdict, __u32 rule_id);
bool del_policy(struct fx *f, __u32 ep_id, __u8 dir, __u64 peer, __u8 proto,
		__be16 dport);

size_t build(void *buf, __be32 saddr, __be16 sport, __be32 daddr, __be16 dport,
	     __u8 proto, __u8 tcp_flags);
/* One run of @prog over @in; false (and a failed test) on a test_run error. */
bool run_prog(struct fx *f, int prog, const void *in, size_t len,
	      struct run *r);
/* run_prog() through nm_from_pod. */
bool run_pkt(struct fx *f, const void *in, size_t len, struct run *r);

/* Packets counted for @reason in @dir, all CPUs. */
__u64 metric_dir(struct fx *f, __u32 dir, __u32 reason);
/* Packets counted for @reason in the from-pod direction. */
__u64 metric(struct fx *f, __u32 reason);

void ct_key(struct nm_ct_key *key, __be32 saddr, __be32 daddr, __be16 sport,
	    __be16 dport, __u8 proto, __u8 dir);
bool ct_get(struct fx *f, __be32 saddr, __be32 daddr, __be16 sport,
	    __be16 dport, __u8 proto, __u8 dir, struct nm_ct_val *val);

/* CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns(). */
__u64 now_ns(void);

#endif /* NM_TESTS_LXC_FX_H */
