/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_tunnel_v1: an array of one entry (key __u32 0), the node's overlay: the ifindex of the VXLAN
 * device (external/collect_md) the agent created, and this node's own
 * underlay address. ifindex 0 means no overlay: from-pod hands every
 * packet to the stack. Written by the agent at start, after the overlay
 * program is attached and before the device is up.
 */
#ifndef NM_MAPS_TUNNEL_H
#define NM_MAPS_TUNNEL_H

#include "common.h"

/* Outer IPv4 + UDP + VXLAN + inner Ethernet: what a pod's MTU gives up. */
#define NM_VXLAN_OVERHEAD 50
#define NM_VXLAN_PORT_DEFAULT 4789

struct nm_tunnel_val {
	__u32 ifindex; /* the VXLAN device; 0: overlay off */
	__be32 node_ip; /* this node: never a tunnel destination */
	__u32 flags; /* none yet */
	__u32 pad;
};
NM_ASSERT_SIZE(struct nm_tunnel_val, 16);
NM_ASSERT_OFF(struct nm_tunnel_val, node_ip, 4);
NM_ASSERT_OFF(struct nm_tunnel_val, flags, 8);

#endif /* NM_MAPS_TUNNEL_H */
