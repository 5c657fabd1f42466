// SPDX-License-Identifier: GPL-2.0
/*
 * Maglev lookup table builder (pure: no I/O). The table is a function of
 * the backend set only, never of the input order, so every node and every
 * restart computes the same table for the same backends.
 */
#ifndef NM_AGENT_MAGLEV_H
#define NM_AGENT_MAGLEV_H

#include <stddef.h>
#include <linux/types.h>

#include "maps/maglev.h"

#define NM_MAGLEV_M_MIN 7
#define NM_MAGLEV_TABLES_MIN 2 /* live + spare for one service */
#define NM_MAGLEV_ENTRIES_MAX (1U << 28) /* 1 GiB of array, a sanity bound */

struct nm_maglev_backend {
	__u32 id; /* backend id written to the slots, never 0 */
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
	__u32 weight; /* >= 1 */
};

/*
 * Check a table size: prime and NM_MAGLEV_M_MIN <= m <= NM_MAGLEV_M_MAX.
 * Returns 0 or -EINVAL with the reason in @err.
 */
int nm_maglev_check_m(__u32 m, char *err, size_t errlen);

/*
 * Fill @table (m slots) from @n backends. Every slot gets a backend id
 * when n >= 1; with n == 0 every slot is 0 (no backend).
 * Returns 0, -EINVAL (bad m, id 0, weight 0, duplicate backend, n > m)
 * or -ENOMEM.
 */
int nm_maglev_build(const struct nm_maglev_backend *be, size_t n, __u32 m,
		    __u32 *table);

/* Number of slots where @a and @b differ. */
size_t nm_maglev_diff(const __u32 *a, const __u32 *b, __u32 m);

/* Number of slots of @table holding @id. */
size_t nm_maglev_count(const __u32 *table, __u32 m, __u32 id);

/* Stable 64-bit hash of @len bytes under @seed (FNV-1a, murmur3 finaliser). */
__u64 nm_hash64(const void *data, size_t len, __u64 seed);

#endif /* NM_AGENT_MAGLEV_H */
