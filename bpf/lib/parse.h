/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ethernet / IPv4 / TCP / UDP parsing for tc programs. The result keeps
 * packet pointers: only helpers that change packet data invalidate them,
 * map lookups do not, so they stay valid until the NAT step.
 */
#ifndef NM_BPF_PARSE_H
#define NM_BPF_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps/metrics.h"

/* Parse result meaning "IPv4 TCP/UDP with full headers: carry on". */
#define NM_PARSE_L4 NM_REASON_MAX

#define NM_IP_MF 0x2000
#define NM_IP_OFFSET 0x1fff

/* TCP flag bits of byte 13 of the TCP header. */
#define NM_TCP_FIN 0x01
#define NM_TCP_SYN 0x02
#define NM_TCP_RST 0x04
#define NM_TCP_ACK 0x10

/* Longest header chain we read: Ethernet, IPv4 with options, TCP. */
#define NM_PARSE_MAX_HDRS (ETH_HLEN + 60 + sizeof(struct tcphdr))

/* Source and destination port sit first in both TCP and UDP headers. */
struct nm_ports {
	__be16 src;
	__be16 dst;
};

struct nm_pkt {
	struct iphdr *ip;
	struct nm_ports *ports;
	__u32 l4_off; /* from the start of the frame */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 tcp_flags; /* 0 for UDP */
};

/*
 * Headers normally sit in the linear area already; if the frame is longer
 * than its linear part, pull in what we may read. A failed pull leaves the
 * frame as it was and the bounds checks below classify it.
 */
static __always_inline void nm_parse_pull(struct __sk_buff *skb)
{
	__u32 linear = skb->data_end - skb->data;
	__u32 want = skb->len;

	if (linear >= NM_PARSE_MAX_HDRS || linear >= want)
		return;
	if (want > NM_PARSE_MAX_HDRS)
		want = NM_PARSE_MAX_HDRS;
	bpf_skb_pull_data(skb, want);
}

/*
 * Returns NM_PARSE_L4 and fills @p for an unfragmented (or first
 * fragment) IPv4 TCP/UDP packet, otherwise the nm_reason to account.
 */
static __always_inline __u32 nm_parse(struct __sk_buff *skb, struct nm_pkt *p)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 ihl_len, l4_len;

	nm_parse_pull(skb);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;

	eth = data;
	if ((void *)(eth + 1) > data_end)
		return NM_DROP_TRUNC_ETH;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return NM_REASON_NOT_IPV4;

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return NM_DROP_TRUNC_IPV4;
	if (ip->version != 4 || ip->ihl < 5)
		return NM_DROP_BAD_IPV4;
	ihl_len = ip->ihl * 4;
	if ((void *)ip + ihl_len > data_end)
		return NM_DROP_TRUNC_IPV4;
	if (bpf_ntohs(ip->tot_len) < ihl_len)
		return NM_DROP_BAD_IPV4;
	if (ip->frag_off & bpf_htons(NM_IP_OFFSET))
		return NM_REASON_FRAGMENT;

	if (ip->protocol == IPPROTO_TCP)
		l4_len = sizeof(struct tcphdr);
	else if (ip->protocol == IPPROTO_UDP)
		l4_len = sizeof(struct udphdr);
	else
		return NM_REASON_NOT_L4;

	/* Both the frame and the IPv4 total length must hold the header. */
	if ((void *)ip + ihl_len + l4_len > data_end ||
	    bpf_ntohs(ip->tot_len) < ihl_len + l4_len)
		return NM_DROP_TRUNC_L4;

	p->ip = ip;
	p->ports = (void *)ip + ihl_len;
	p->l4_off = ETH_HLEN + ihl_len;
	p->proto = ip->protocol;
	p->tcp_flags = 0;
	if (p->proto == IPPROTO_TCP)
		p->tcp_flags = ((__u8 *)p->ports)[13];
	return NM_PARSE_L4;
}

#endif /* NM_BPF_PARSE_H */
