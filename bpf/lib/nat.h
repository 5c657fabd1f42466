/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * DNAT / SNAT of an IPv4 address and L4 port, with incremental checksum
 * updates. The L4 checksum goes through bpf_l4_csum_replace() so that
 * CHECKSUM_PARTIAL packets (pseudo-header sum only, common on veth) and
 * CHECKSUM_COMPLETE skbs stay right; a UDP checksum of 0 ("none") stays 0.
 */
#ifndef NM_BPF_NAT_H
#define NM_BPF_NAT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/parse.h"

#define NM_IP_CSUM_OFF (ETH_HLEN + __builtin_offsetof(struct iphdr, check))

static __always_inline __u32 nm_l4_csum_off(const struct nm_pkt *p)
{
	if (p->proto == IPPROTO_TCP)
		return p->l4_off + __builtin_offsetof(struct tcphdr, check);
	return p->l4_off + __builtin_offsetof(struct udphdr, check);
}

/*
 * The new bytes are written through the parsed pointers first: the
 * checksum helpers invalidate packet pointers, and they only need the
 * old and new values, not the bytes in place.
 */
static __always_inline int nm_nat_csum(struct __sk_buff *skb,
				       const struct nm_pkt *p, __be32 old_addr,
				       __be32 new_addr, __be16 old_port,
				       __be16 new_port)
{
	__u64 l4_flags = 0;
	__u32 l4_csum;
	int ret;

	if (p->proto == IPPROTO_UDP)
		l4_flags = BPF_F_MARK_MANGLED_0;
	l4_csum = nm_l4_csum_off(p);

	ret = bpf_l4_csum_replace(skb, l4_csum, old_addr, new_addr,
				  l4_flags | BPF_F_PSEUDO_HDR |
					  sizeof(new_addr));
	if (ret)
		return ret;
	if (old_port != new_port) {
		ret = bpf_l4_csum_replace(skb, l4_csum, old_port, new_port,
					  l4_flags | sizeof(new_port));
		if (ret)
			return ret;
	}
	return bpf_l3_csum_replace(skb, NM_IP_CSUM_OFF, old_addr, new_addr,
				   sizeof(new_addr));
}

/* Rewrite the destination to @addr:@port (client -> VIP becomes -> backend). */
static __always_inline int nm_nat_dnat(struct __sk_buff *skb,
				       const struct nm_pkt *p, __be32 addr,
				       __be16 port)
{
	__be32 old_addr = p->ip->daddr;
	__be16 old_port = p->ports->dst;

	p->ip->daddr = addr;
	p->ports->dst = port;
	return nm_nat_csum(skb, p, old_addr, addr, old_port, port);
}

/* Rewrite the source to @addr:@port (backend -> client comes from the VIP). */
static __always_inline int nm_nat_snat(struct __sk_buff *skb,
				       const struct nm_pkt *p, __be32 addr,
				       __be16 port)
{
	__be32 old_addr = p->ip->saddr;
	__be16 old_port = p->ports->src;

	p->ip->saddr = addr;
	p->ports->src = port;
	return nm_nat_csum(skb, p, old_addr, addr, old_port, port);
}

#endif /* NM_BPF_NAT_H */
