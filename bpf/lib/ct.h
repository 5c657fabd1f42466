/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Conntrack on nm_ct_v1 (see maps/ct.h for the scopes of an entry:
 * FORWARD and REPLY for a flow a pod opens, INGRESS for one delivered
 * to a pod). An expired entry counts as a miss. A hit only writes the
 * entry when its deadline would move by more than NM_CT_REFRESH_NS or
 * its flags change, so established traffic does not dirty the entry per
 * packet.
 */
#ifndef NM_BPF_CT_H
#define NM_BPF_CT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"

#define NM_NSEC_PER_SEC 1000000000ULL
#define NM_CT_REFRESH_NS NM_NSEC_PER_SEC

/* Key of the packet's own tuple. */
static __always_inline void nm_ct_key_pkt(struct nm_ct_key *key,
					  const struct nm_pkt *p, __u8 dir)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->saddr = p->ip->saddr;
	key->daddr = p->ip->daddr;
	key->sport = p->ports->src;
	key->dport = p->ports->dst;
	key->proto = p->proto;
	key->dir = dir;
}

static __always_inline __u64 nm_ct_lifetime_ns(__u8 proto, __u8 tcp_flags,
					       __u8 ct_flags)
{
	__u64 secs = NM_CT_LIFETIME_TCP;

	if (proto != IPPROTO_TCP)
		secs = NM_CT_LIFETIME_NONTCP;
	else if (ct_flags & NM_CT_F_CLOSING)
		secs = NM_CT_LIFETIME_CLOSE;
	else if (tcp_flags & NM_TCP_SYN)
		secs = NM_CT_LIFETIME_SYN;
	return secs * NM_NSEC_PER_SEC;
}

/*
 * Live entry for @key, or NULL on a miss or an expired entry. The clock
 * is read only on a hit (into *@now): most misses need no time at all.
 */
static __always_inline struct nm_ct_val *
nm_ct_lookup(const struct nm_ct_key *key, __u64 *now)
{
	struct nm_ct_val *ct;

	ct = bpf_map_lookup_elem(&nm_ct_v1, key);
	if (!ct)
		return NULL;
	*now = bpf_ktime_get_ns();
	if (ct->expires_ns <= *now)
		return NULL;
	return ct;
}

/*
 * Account a packet on a hit entry. FIN/RST moves the entry to the short
 * closing lifetime; a bare SYN on a closing entry is a new connection
 * reusing the tuple. Returns 1 when the entry was written.
 */
static __always_inline int nm_ct_refresh(struct nm_ct_val *ct,
					 const struct nm_pkt *p, __u64 now)
{
	__u8 flags = ct->flags;
	__u64 expires;

	if (p->tcp_flags & (NM_TCP_FIN | NM_TCP_RST))
		flags |= NM_CT_F_CLOSING;
	else if ((p->tcp_flags & (NM_TCP_SYN | NM_TCP_ACK)) == NM_TCP_SYN)
		flags &= ~NM_CT_F_CLOSING;

	expires = now + nm_ct_lifetime_ns(p->proto, p->tcp_flags, flags);
	if (flags == ct->flags && expires < ct->expires_ns + NM_CT_REFRESH_NS)
		return 0;
	ct->flags = flags;
	ct->expires_ns = expires;
	return 1;
}

/* Key of the reply tuple: backend -> client. */
static __always_inline void nm_ct_key_reply(struct nm_ct_key *key,
					    const struct nm_pkt *p,
					    __be32 be_addr, __be16 be_port)
{
	__builtin_memset(key, 0, sizeof(key[0]));
	key->saddr = be_addr;
	key->daddr = p->ip->saddr;
	key->sport = be_port;
	key->dport = p->ports->src;
	key->proto = p->proto;
	key->dir = NM_CT_REPLY;
}

/* Key of the reverse of tuple @t (what its peer sends back), scope @dir. */
static __always_inline void
nm_ct_key_reverse(struct nm_ct_key *key, const struct nm_ct_key *t, __u8 dir)
{
	__builtin_memset(key, 0, sizeof(key[0]));
	key->saddr = t->daddr;
	key->daddr = t->saddr;
	key->sport = t->dport;
	key->dport = t->sport;
	key->proto = t->proto;
	key->dir = dir;
}

/* Insert one entry for @key, created by packet @p at @now. */
static __always_inline int nm_ct_insert(const struct nm_ct_key *key,
					const struct nm_pkt *p, __u32 be_id,
					__u32 rev_nat_id, __u64 now,
					__u64 map_flags)
{
	struct nm_ct_val val;

	__builtin_memset(&val, 0, sizeof(val));
	val.expires_ns = now + nm_ct_lifetime_ns(p->proto, p->tcp_flags, 0);
	val.backend_id = be_id;
	val.rev_nat_id = rev_nat_id;
	val.created_ns = now;
	return bpf_map_update_elem(&nm_ct_v1, key, &val, map_flags);
}

/*
 * Create the reply entry of a flow to @be_addr:@be_port (the backend, or
 * the peer itself when not a service). @map_flags is BPF_ANY on
 * creation, BPF_NOEXIST to only restore an evicted reply entry.
 */
static __always_inline int nm_ct_create_reply(const struct nm_pkt *p,
					      __be32 be_addr, __be16 be_port,
					      __u32 rev_nat_id, __u64 now,
					      __u64 map_flags)
{
	struct nm_ct_key key;

	nm_ct_key_reply(&key, p, be_addr, be_port);
	return nm_ct_insert(&key, p, 0, rev_nat_id, now, map_flags);
}

/*
 * Create (or overwrite) the forward entry @fwd and the reply entry of a
 * flow a pod opens toward backend @be_id at @be_addr:@be_port.
 */
static __always_inline int nm_ct_create(const struct nm_ct_key *fwd,
					const struct nm_pkt *p, __u32 be_id,
					__be32 be_addr, __be16 be_port,
					__u32 rev_nat_id, __u64 now)
{
	int ret;

	ret = nm_ct_insert(fwd, p, be_id, rev_nat_id, now, BPF_ANY);
	if (ret)
		return ret;
	return nm_ct_create_reply(p, be_addr, be_port, rev_nat_id, now,
				  BPF_ANY);
}

#endif /* NM_BPF_CT_H */
