/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Security identities: (cluster_id: 16 bits, local_id: 24 bits), packed
 * into one 64-bit value as cluster_id << 24 | local_id. The one packing
 * function below is used by bpf/ and agent/ alike.
 *
 * Cluster 0 is not a cluster: it holds the cluster-independent reserved
 * identities (local_id < 256, Cilium's numbers) and this node's CIDR
 * identities (local_id >= NM_ID_CIDR_BASE), which never leave the node.
 * Real clusters are 1..65535; their label identities use local ids
 * NM_ID_LOCAL_MIN..NM_ID_LOCAL_MAX.
 */
#ifndef NM_MAPS_IDENTITY_H
#define NM_MAPS_IDENTITY_H

#include "common.h"

#define NM_ID_LOCAL_BITS 24
#define NM_ID_LOCAL_MASK ((1U << NM_ID_LOCAL_BITS) - 1)
#define NM_ID_CLUSTER_MAX 65535

/* Reserved identities (cluster 0). 0 is never an identity: it is "any". */
#define NM_ID_ANY 0ULL
#define NM_ID_HOST 1ULL
#define NM_ID_WORLD 2ULL
#define NM_ID_UNMANAGED 3ULL
#define NM_ID_HEALTH 4ULL
#define NM_ID_INIT 5ULL
#define NM_ID_REMOTE_NODE 6ULL
#define NM_ID_RESERVED_MAX 255U

/* Label identities of a cluster. */
#define NM_ID_LOCAL_MIN 256U
#define NM_ID_LOCAL_MAX NM_ID_LOCAL_MASK

/* Node-local CIDR identities (cluster 0). */
#define NM_ID_CIDR_BASE 0x800000U

static inline __u64 nm_identity_pack(__u16 cluster_id, __u32 local_id)
{
	return ((__u64)cluster_id << NM_ID_LOCAL_BITS) |
	       (local_id & NM_ID_LOCAL_MASK);
}

static inline __u16 nm_identity_cluster(__u64 id)
{
	return (__u16)(id >> NM_ID_LOCAL_BITS);
}

static inline __u32 nm_identity_local(__u64 id)
{
	return (__u32)(id & NM_ID_LOCAL_MASK);
}

static inline int nm_identity_is_reserved(__u64 id)
{
	return id <= NM_ID_RESERVED_MAX;
}

static inline int nm_identity_is_cidr(__u64 id)
{
	return nm_identity_cluster(id) == 0 &&
	       nm_identity_local(id) >= NM_ID_CIDR_BASE;
}

#endif /* NM_MAPS_IDENTITY_H */
