/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Who an address is: a pod on this node (nm_endpoints_v1, exact match),
 * else the longest ipcache prefix holding it (nm_ipcache_v1: pods of any
 * cluster, CIDRs of policy rules), else the world.
 */
#ifndef NM_BPF_IPCACHE_H
#define NM_BPF_IPCACHE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"

static __always_inline struct nm_endpoint_val *nm_endpoint_lookup(__be32 addr)
{
	struct nm_endpoint_key key;

	__builtin_memset(&key, 0, sizeof(key));
	key.addr = addr;
	return bpf_map_lookup_elem(&nm_endpoints_v1, &key);
}

static __always_inline __u64 nm_ipcache_identity(__be32 addr)
{
	struct nm_ipcache_key key;
	struct nm_ipcache_val *val;

	__builtin_memset(&key, 0, sizeof(key));
	key.prefixlen = 32;
	key.addr = addr;
	val = bpf_map_lookup_elem(&nm_ipcache_v1, &key);
	return val ? val->identity : NM_ID_WORLD;
}

/* Local endpoints first: they are the common peer and an exact match. */
static __always_inline __u64 nm_identity_of(__be32 addr)
{
	struct nm_endpoint_val *ep = nm_endpoint_lookup(addr);

	return ep ? ep->identity : nm_ipcache_identity(addr);
}

#endif /* NM_BPF_IPCACHE_H */
