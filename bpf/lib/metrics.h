/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU packet and byte counters by direction and reason. */
#ifndef NM_BPF_METRICS_H
#define NM_BPF_METRICS_H

#include "bpf/lib/maps.h"

static __always_inline void nm_metrics_inc(__u32 dir, __u32 reason, __u32 bytes)
{
	struct nm_metrics_key key;
	struct nm_metrics_val *val;

	__builtin_memset(&key, 0, sizeof(key));
	key.index = dir * NM_REASON_MAX + reason;
	val = bpf_map_lookup_elem(&nm_metrics_v1, &key);
	if (!val)
		return;
	/* Per-CPU slot: no other writer, plain increments are enough. */
	val->packets++;
	val->bytes += bytes;
}

#endif /* NM_BPF_METRICS_H */
