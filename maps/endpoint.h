/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_endpoints_v1: pods on this node, pod IP -> where and who it is.
 * Written by the agent when a pod is added; the enforcement flags by the
 * policy compiler.
 */
#ifndef NM_MAPS_ENDPOINT_H
#define NM_MAPS_ENDPOINT_H

#include "common.h"

#define NM_ENDPOINTS_MAX 65536

/* nm_endpoint_val.flags: a policy selects this endpoint in a direction,
 * which makes that direction default-deny. */
#define NM_EP_F_INGRESS_POLICY 0x01
#define NM_EP_F_EGRESS_POLICY 0x02

struct nm_endpoint_key {
	__be32 addr;
};
NM_ASSERT_SIZE(struct nm_endpoint_key, 4);

struct nm_endpoint_val {
	__u64 identity; /* nm_identity_pack() */
	__u32 ifindex; /* host-side veth */
	__u32 endpoint_id; /* policy map key; never 0 */
	__u8 mac[6]; /* the pod's eth0 */
	__u8 flags; /* NM_EP_F_* */
	__u8 pad;
	__u32 pad2[2]; /* explicit tail: identity makes the struct 8-aligned */
};
NM_ASSERT_SIZE(struct nm_endpoint_val, 32);
NM_ASSERT_OFF(struct nm_endpoint_val, ifindex, 8);
NM_ASSERT_OFF(struct nm_endpoint_val, endpoint_id, 12);
NM_ASSERT_OFF(struct nm_endpoint_val, mac, 16);
NM_ASSERT_OFF(struct nm_endpoint_val, flags, 22);

#endif /* NM_MAPS_ENDPOINT_H */
