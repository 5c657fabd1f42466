/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_nodes_v1: every node of every connected cluster, node IP -> which
 * cluster it belongs to. Authenticates overlay traffic (the outer source
 * of a tunnelled packet gives the source cluster). Written by the agent
 * from the kvstore.
 */
#ifndef NM_MAPS_NODE_H
#define NM_MAPS_NODE_H

#include "common.h"

#define NM_NODES_MAX 65536

struct nm_node_key {
	__be32 node_ip;
};
NM_ASSERT_SIZE(struct nm_node_key, 4);

struct nm_node_val {
	__u16 cluster_id;
	__u16 flags; /* none yet */
	__u32 node_id; /* agent-assigned, stable while the node is known */
};
NM_ASSERT_SIZE(struct nm_node_val, 8);
NM_ASSERT_OFF(struct nm_node_val, node_id, 4);

#endif /* NM_MAPS_NODE_H */
