/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_events_v1: ring buffer of policy verdicts and drops, written by the
 * datapath, read by 'nodemeshctl monitor'. A full ring loses events, never
 * packets; the loss is counted (NM_REASON_EVENT_LOST).
 */
#ifndef NM_MAPS_EVENTS_H
#define NM_MAPS_EVENTS_H

#include "common.h"

#define NM_EVENTS_RING_BYTES (256 * 1024)

enum nm_event_type {
	NM_EVENT_DROP = 1, /* a packet was dropped: reason says why */
	NM_EVENT_POLICY = 2, /* a new flow's policy verdict */
};

struct nm_event {
	__u64 ts_ns; /* bpf_ktime_get_ns() */
	__u64 src_identity;
	__u64 dst_identity;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u32 endpoint_id; /* the local endpoint the verdict is for; 0 = none */
	__u32 rule_id; /* policy rule that decided, 0 = default */
	__u16 reason; /* enum nm_reason */
	__u8 type; /* enum nm_event_type */
	__u8 dir; /* enum nm_metric_dir */
	__u8 proto;
	__u8 verdict; /* enum nm_policy_verdict, 0 when not a policy event */
	__u8 pad[6];
};
NM_ASSERT_SIZE(struct nm_event, 56);
NM_ASSERT_OFF(struct nm_event, saddr, 24);
NM_ASSERT_OFF(struct nm_event, endpoint_id, 36);
NM_ASSERT_OFF(struct nm_event, reason, 44);

#endif /* NM_MAPS_EVENTS_H */
