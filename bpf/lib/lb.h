/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service lookup and backend selection. Maglev: the flow hash picks a
 * slot of the service's live table (nm_maglev_v1[table_id * M + slot]);
 * NM_LB_RANDOM picks a random slot of the same table, so weights and
 * states apply alike. Only active backends are in tables (the agent's job).
 */
#ifndef NM_BPF_LB_H
#define NM_BPF_LB_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/hash.h"

static __always_inline struct nm_svc_val *
nm_lb_lookup_svc(const struct nm_pkt *p)
{
	struct nm_svc_key key;

	__builtin_memset(&key, 0, sizeof(key));
	key.vip = p->ip->daddr;
	key.dport = p->ports->dst;
	key.proto = p->proto;
	return bpf_map_lookup_elem(&nm_services_v1, &key);
}

static __always_inline struct nm_backend_val *nm_lb_backend(__u32 id)
{
	struct nm_backend_key key;

	__builtin_memset(&key, 0, sizeof(key));
	key.backend_id = id;
	return bpf_map_lookup_elem(&nm_backends_v1, &key);
}

/*
 * Pick a backend for a new flow of @svc in a table of @m slots. Returns
 * its id and sets *@be, or 0 when the service has no usable backend
 * (no backend, empty slot, or a slot naming a deleted backend).
 */
static __always_inline __u32 nm_lb_select(const struct nm_svc_val *svc,
					  const struct nm_pkt *p, __u32 m,
					  struct nm_backend_val **be)
{
	struct nm_maglev_key key;
	struct nm_maglev_val *slot;
	__u32 h;

	if (!svc->backend_count || !m)
		return 0;
	if (svc->algo == NM_LB_RANDOM)
		h = bpf_get_prandom_u32();
	else
		h = nm_hash_5tuple(p->ip->saddr, p->ip->daddr, p->ports->src,
				   p->ports->dst, p->proto);

	__builtin_memset(&key, 0, sizeof(key));
	key.index = svc->table_id * m + h % m;
	slot = bpf_map_lookup_elem(&nm_maglev_v1, &key);
	if (!slot || !slot->backend_id)
		return 0;
	*be = nm_lb_backend(slot->backend_id);
	if (!*be)
		return 0;
	return slot->backend_id;
}

#endif /* NM_BPF_LB_H */
