/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow hash for backend selection: Bob Jenkins' lookup3 final mix over
 * the three 32-bit words of a 5-tuple. Only the datapath computes it, so
 * it needs to be fast and well spread, not compatible with anything.
 */
#ifndef NM_BPF_HASH_H
#define NM_BPF_HASH_H

#include <linux/types.h>

#define NM_HASH_INIT 0xdeadbeef

static __always_inline __u32 nm_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

static __always_inline __u32 nm_hash_3words(__u32 a, __u32 b, __u32 c,
					    __u32 seed)
{
	a += NM_HASH_INIT + (3 << 2) + seed;
	b += NM_HASH_INIT + (3 << 2) + seed;
	c += NM_HASH_INIT + (3 << 2) + seed;

	c ^= b;
	c -= nm_rol32(b, 14);
	a ^= c;
	a -= nm_rol32(c, 11);
	b ^= a;
	b -= nm_rol32(a, 25);
	c ^= b;
	c -= nm_rol32(b, 16);
	a ^= c;
	a -= nm_rol32(c, 4);
	b ^= a;
	b -= nm_rol32(a, 14);
	c ^= b;
	c -= nm_rol32(b, 24);
	return c;
}

/* Hash of (saddr, daddr, sport, dport, proto). */
static __always_inline __u32 nm_hash_5tuple(__be32 saddr, __be32 daddr,
					    __be16 sport, __be16 dport,
					    __u8 proto)
{
	return nm_hash_3words(saddr, daddr, ((__u32)sport << 16) | (__u32)dport,
			      proto);
}

#endif /* NM_BPF_HASH_H */
