/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_ct_v1: connection tracking, one global LRU hash, written by the
 * datapath. A flow a pod opens (from-pod) creates two entries: FORWARD,
 * keyed by the tuple the client sent (client -> VIP or client -> peer),
 * holding the chosen backend for a service; and REPLY, keyed by the tuple
 * the peer answers with (backend -> client), holding the rev-NAT id. A
 * flow delivered to a pod (to-pod) that ingress policy allowed creates an
 * INGRESS entry keyed by the tuple as delivered. Replies match REPLY (at
 * the client's to-pod) or the reverse of an INGRESS entry (at the
 * server's from-pod) and skip policy.
 */
#ifndef NM_MAPS_CT_H
#define NM_MAPS_CT_H

#include "common.h"

#define NM_CT_MAX_DEFAULT 262144

/* Lifetimes in seconds: established TCP, UDP, TCP after FIN/RST or before the handshake. */
#define NM_CT_LIFETIME_TCP 21600
#define NM_CT_LIFETIME_NONTCP 60
#define NM_CT_LIFETIME_SYN 60
#define NM_CT_LIFETIME_CLOSE 10

enum nm_ct_dir {
	NM_CT_FORWARD = 0, /* client -> VIP or peer, holds backend_id */
	NM_CT_REPLY = 1, /* backend -> client, holds rev_nat_id */
	NM_CT_INGRESS = 2, /* peer -> pod as delivered, passed ingress policy */
};

/* nm_ct_val.flags */
#define NM_CT_F_CLOSING 0x01 /* FIN or RST seen: short lifetime */

struct nm_ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* enum nm_ct_dir */
	__u16 pad;
};
NM_ASSERT_SIZE(struct nm_ct_key, 16);
NM_ASSERT_OFF(struct nm_ct_key, daddr, 4);
NM_ASSERT_OFF(struct nm_ct_key, sport, 8);
NM_ASSERT_OFF(struct nm_ct_key, proto, 12);
NM_ASSERT_OFF(struct nm_ct_key, dir, 13);

/*
 * No per-flow packet counters: bumping them would write the entry on
 * every packet; per-reason totals live in nm_metrics_v1.
 */
struct nm_ct_val {
	__u64 expires_ns; /* bpf_ktime_get_ns() deadline */
	__u32 backend_id; /* forward entries */
	__u32 rev_nat_id; /* both directions */
	__u64 created_ns; /* bpf_ktime_get_ns() at creation: the flow's age */
	__u8 flags; /* NM_CT_F_* */
	__u8 pad[7];
};
NM_ASSERT_SIZE(struct nm_ct_val, 32);
NM_ASSERT_OFF(struct nm_ct_val, backend_id, 8);
NM_ASSERT_OFF(struct nm_ct_val, created_ns, 16);
NM_ASSERT_OFF(struct nm_ct_val, flags, 24);

#endif /* NM_MAPS_CT_H */
