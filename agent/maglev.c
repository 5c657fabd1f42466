// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/maglev.h"

/* Fixed seeds: changing one reshuffles every table in the mesh. */
#define NM_MAGLEV_SEED_OFFSET 0x6e6f64656d657368ULL /* "nodemesh" */
#define NM_MAGLEV_SEED_SKIP 0x6d61676c65763031ULL /* "maglev01" */

__u64 nm_hash64(const void *data, size_t len, __u64 seed)
{
	const unsigned char *p = data;
	__u64 h = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis */
	size_t i;

	for (i = 0; i < 8; i++) {
		h ^= (seed >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	/* FNV's low bits are weak; the murmur3 finaliser spreads them. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

int nm_maglev_check_m(__u32 m, char *err, size_t errlen)
{
	__u32 d;

	if (m < NM_MAGLEV_M_MIN || m > NM_MAGLEV_M_MAX) {
		snprintf(err, errlen, "bad Maglev table size %u: must be %u..%u",
			 m, NM_MAGLEV_M_MIN, NM_MAGLEV_M_MAX);
		return -EINVAL;
	}
	for (d = 2; d * d <= m; d++) {
		if (m % d == 0) {
			snprintf(err, errlen,
				 "bad Maglev table size %u: must be prime (%u x %u)",
				 m, d, m / d);
			return -EINVAL;
		}
	}
	return 0;
}

static int be_cmp(const void *pa, const void *pb)
{
	const struct nm_maglev_backend *a = pa, *b = pb;
	__u32 aa = __builtin_bswap32(a->addr), ba = __builtin_bswap32(b->addr);
	__u16 ap = __builtin_bswap16(a->port), bp = __builtin_bswap16(b->port);

	if (aa != ba)
		return aa < ba ? -1 : 1;
	if (ap != bp)
		return ap < bp ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return 0;
}

struct perm {
	__u64 offset;
	__u64 skip;
	__u64 next; /* how far along its permutation this backend is */
	__u64 credit;
	__u32 taken;
	__u32 quota;
};

int nm_maglev_build(const struct nm_maglev_backend *be, size_t n, __u32 m,
		    __u32 *table)
{
	struct nm_maglev_backend *sorted = NULL;
	struct perm *perm = NULL;
	char err[128];
	__u32 filled = 0, w_max = 0;
	__u64 w_sum = 0;
	size_t i;
	int ret;

	ret = nm_maglev_check_m(m, err, sizeof(err));
	if (ret)
		return ret;
	memset(table, 0, (size_t)m * sizeof(*table));
	if (!n)
		return 0;
	if (n > m)
		return -EINVAL;

	sorted = calloc(n, sizeof(*sorted));
	perm = calloc(n, sizeof(*perm));
	if (!sorted || !perm) {
		ret = -ENOMEM;
		goto out;
	}
	/* Sort so the table depends on the set, not the input order. */
	memcpy(sorted, be, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), be_cmp);

	for (i = 0; i < n; i++) {
		/* Stable byte encoding: addr, port (network order), proto. */
		unsigned char key[7];

		if (!sorted[i].id || !sorted[i].weight ||
		    (i && !be_cmp(&sorted[i - 1], &sorted[i]))) {
			ret = -EINVAL;
			goto out;
		}
		memcpy(key, &sorted[i].addr, 4);
		memcpy(key + 4, &sorted[i].port, 2);
		key[6] = sorted[i].proto;
		perm[i].offset = nm_hash64(key, sizeof(key),
					   NM_MAGLEV_SEED_OFFSET) % m;
		perm[i].skip = nm_hash64(key, sizeof(key),
					 NM_MAGLEV_SEED_SKIP) % (m - 1) + 1;
	}

	/*
	 * Weighted population, in rounds: each backend earns its weight in
	 * credit and, per w_max of credit, looks at its next preferred slot
	 * and takes it if free. Walking preferences in step (rather than
	 * each backend hunting for a free slot on its turn) keeps a slot
	 * with its most-preferring backend, so a removal moves little
	 * beyond the removed backend's own slots. A quota of
	 * ceil(M * w / sum w) per backend bounds every share; the sum of
	 * quotas is >= M and a backend short of its quota always has a free
	 * slot ahead in its walk, so the loop ends.
	 */
	for (i = 0; i < n; i++)
		w_sum += sorted[i].weight;
	for (i = 0; i < n; i++)
		perm[i].quota = (__u32)(((__u64)m * sorted[i].weight + w_sum - 1) /
					w_sum);
	while (filled < m) {
		/* Pace by the heaviest backend still short of its quota. */
		for (i = 0, w_max = 0; i < n; i++)
			if (perm[i].taken < perm[i].quota &&
			    sorted[i].weight > w_max)
				w_max = sorted[i].weight;
		for (i = 0; i < n && filled < m; i++) {
			struct perm *p = &perm[i];

			p->credit += sorted[i].weight;
			while (p->credit >= w_max && filled < m) {
				__u64 slot;

				p->credit -= w_max;
				if (p->taken >= p->quota || p->next >= m)
					break;
				slot = (p->offset + p->next * p->skip) % m;
				p->next++;
				if (table[slot])
					continue;
				table[slot] = sorted[i].id;
				p->taken++;
				filled++;
			}
		}
	}
	ret = 0;
out:
	free(perm);
	free(sorted);
	return ret;
}

size_t nm_maglev_diff(const __u32 *a, const __u32 *b, __u32 m)
{
	size_t d = 0;
	__u32 i;

	for (i = 0; i < m; i++)
		d += a[i] != b[i];
	return d;
}

size_t nm_maglev_count(const __u32 *table, __u32 m, __u32 id)
{
	size_t c = 0;
	__u32 i;

	for (i = 0; i < m; i++)
		c += table[i] == id;
	return c;
}
