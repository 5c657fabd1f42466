/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_metrics_v1: per-CPU packet and byte counters, indexed by
 * dir * NM_REASON_MAX + reason. Written by the datapath, summed by
 * nodemeshctl. Reasons are ABI: append, never renumber.
 */
#ifndef NM_MAPS_METRICS_H
#define NM_MAPS_METRICS_H

#include "common.h"

enum nm_reason {
	/* forwarded */
	NM_REASON_PASS = 0, /* not a service, not a reply: untouched */
	NM_REASON_SVC_NEW = 1, /* new service flow, backend selected, DNAT */
	NM_REASON_SVC_ESTABLISHED = 2, /* CT hit, DNAT to the same backend */
	NM_REASON_REVNAT = 3, /* reply rewritten back to the VIP */
	NM_REASON_NOT_IPV4 = 4, /* other ethertype: untouched */
	NM_REASON_NOT_L4 = 5, /* ICMP and other protocols: untouched */
	NM_REASON_FRAGMENT = 6, /* non-first IPv4 fragment: untouched */
	NM_REASON_SVC_RESELECT = 7, /* CT hit but its backend was removed */
	NM_REASON_POLICY_ALLOW = 8, /* new flow allowed by policy */
	NM_REASON_CT_ESTABLISHED = 9, /* tracked non-service flow */
	NM_REASON_CT_REPLY = 10, /* reply of a tracked flow */
	NM_REASON_EVENT_LOST = 11, /* event ring full: event lost, not the packet */
	/*
	 * Sent into the overlay toward another node. Counted in addition to
	 * the packet's verdict, so from_pod sums count these packets twice.
	 */
	NM_REASON_ENCAP = 12,
	/* dropped */
	NM_DROP_TRUNC_ETH = 16, /* shorter than an Ethernet header */
	NM_DROP_TRUNC_IPV4 = 17, /* IPv4 header truncated */
	NM_DROP_BAD_IPV4 = 18, /* version != 4, ihl < 5, or total length short */
	NM_DROP_TRUNC_L4 = 19, /* TCP/UDP header truncated */
	NM_DROP_NO_BACKEND = 20, /* service has no active backend */
	NM_DROP_NAT_FAILED = 21, /* packet rewrite failed */
	NM_DROP_CT_FULL = 22, /* conntrack insert failed */
	NM_DROP_POLICY_DENY = 23, /* a deny rule matched */
	NM_DROP_POLICY_DEFAULT = 24, /* selected endpoint, no rule allows */
	NM_DROP_ENCAP_FAILED = 25, /* setting the tunnel key failed */
	NM_DROP_UNKNOWN_NODE = 26, /* overlay: outer source is no known node */
	NM_DROP_NO_TUNNEL_KEY = 27, /* overlay: no tunnel metadata on the packet */
	NM_DROP_NO_ENDPOINT = 28, /* overlay: destination is no pod here */
	NM_DROP_DELIVERY = 29, /* overlay: MAC rewrite or redirect failed */
	NM_DROP_SPOOFED = 30, /* from-pod: source is another pod's address */
	NM_REASON_MAX = 32,
};

#define NM_REASON_IS_DROP(r) ((r) >= 16)

enum nm_metric_dir {
	NM_DIR_FROM_POD = 0, /* tc ingress of the host-side veth */
	NM_DIR_TO_POD = 1, /* tc egress of the host-side veth */
	NM_DIR_FROM_OVERLAY = 2, /* tc ingress of the VXLAN device */
	NM_DIR_MAX = 3,
};

#define NM_METRICS_MAX (NM_DIR_MAX * NM_REASON_MAX)

struct nm_metrics_key {
	__u32 index; /* dir * NM_REASON_MAX + reason */
};
NM_ASSERT_SIZE(struct nm_metrics_key, 4);

struct nm_metrics_val {
	__u64 packets;
	__u64 bytes;
};
NM_ASSERT_SIZE(struct nm_metrics_val, 16);

#endif /* NM_MAPS_METRICS_H */
