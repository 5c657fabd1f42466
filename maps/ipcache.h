/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_ipcache_v1: LPM trie, IPv4 prefix -> security identity of the
 * addresses in it, and the node they live on. Pod IPs (/32, any cluster)
 * and the CIDRs of policy rules. No match means NM_ID_WORLD. Written by
 * the agent.
 */
#ifndef NM_MAPS_IPCACHE_H
#define NM_MAPS_IPCACHE_H

#include "common.h"

#define NM_IPCACHE_MAX 512000

/* nm_ipcache_val.flags */
#define NM_IPC_F_LOCAL 0x01 /* a pod on this node */
#define NM_IPC_F_CIDR 0x02 /* a CIDR of a policy rule, not an endpoint */

struct nm_ipcache_key {
	__u32 prefixlen; /* LPM: 0..32 */
	__be32 addr;
};
NM_ASSERT_SIZE(struct nm_ipcache_key, 8);
NM_ASSERT_OFF(struct nm_ipcache_key, addr, 4);

struct nm_ipcache_val {
	__u64 identity; /* nm_identity_pack() */
	__be32 tunnel_endpoint; /* node IP; 0 = this node or not tunnelled */
	__u8 flags; /* NM_IPC_F_* */
	__u8 pad[3];
};
NM_ASSERT_SIZE(struct nm_ipcache_val, 16);
NM_ASSERT_OFF(struct nm_ipcache_val, tunnel_endpoint, 8);
NM_ASSERT_OFF(struct nm_ipcache_val, flags, 12);

#endif /* NM_MAPS_IPCACHE_H */
