// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "tests/lib/pkt.h"

#define ICMP_HLEN 8

static const __u8 pkt_dst_mac[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x02 };
static const __u8 pkt_src_mac[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x01 };

__be32 nm_ip4(__u8 a, __u8 b, __u8 c, __u8 d)
{
	return htonl((__u32)a << 24 | (__u32)b << 16 | (__u32)c << 8 | d);
}

/* One's complement sum of @len bytes, words taken in network order. */
static __u32 csum_add(__u32 sum, const void *data, size_t len)
{
	const __u8 *p = data;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (__u32)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (__u32)p[len - 1] << 8;
	return sum;
}

static __u16 csum_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Sum of the IPv4 pseudo-header for an L4 segment of @l4_len bytes. */
static __u32 csum_pseudo(const struct iphdr *ip, size_t l4_len)
{
	__u32 sum = 0;

	sum = csum_add(sum, &ip->saddr, 4);
	sum = csum_add(sum, &ip->daddr, 4);
	sum += ip->protocol;
	sum += (__u32)l4_len;
	return sum;
}

static size_t l4_hlen(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return sizeof(struct tcphdr);
	case IPPROTO_UDP:
		return sizeof(struct udphdr);
	default:
		return ICMP_HLEN;
	}
}

size_t nm_pkt_build(void *buf, size_t size, const struct nm_pkt_spec *s)
{
	size_t len = ETH_HLEN + sizeof(struct iphdr) + l4_hlen(s->proto) +
		     s->payload_len;
	struct ethhdr *eth = buf;
	struct iphdr *ip;
	__u8 *l4, *payload;
	size_t i;

	if (len > size || len > NM_PKT_MAX)
		return 0;
	memset(buf, 0, len);

	memcpy(eth->h_dest, pkt_dst_mac, ETH_ALEN);
	memcpy(eth->h_source, pkt_src_mac, ETH_ALEN);
	eth->h_proto = htons(ETH_P_IP);

	ip = (struct iphdr *)(eth + 1);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(len - ETH_HLEN);
	ip->id = htons(1);
	ip->frag_off = htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = s->proto;
	ip->saddr = s->saddr;
	ip->daddr = s->daddr;

	l4 = (__u8 *)(ip + 1);
	if (s->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = (struct tcphdr *)l4;

		tcp->source = s->sport;
		tcp->dest = s->dport;
		tcp->seq = htonl(1000);
		tcp->doff = sizeof(*tcp) / 4;
		l4[13] = s->tcp_flags;
		tcp->window = htons(65535);
	} else if (s->proto == IPPROTO_UDP) {
		struct udphdr *udp = (struct udphdr *)l4;

		udp->source = s->sport;
		udp->dest = s->dport;
		udp->len = htons(sizeof(*udp) + s->payload_len);
	} else {
		l4[0] = 8; /* echo request */
	}

	payload = l4 + l4_hlen(s->proto);
	for (i = 0; i < s->payload_len; i++)
		payload[i] = (__u8)i;

	nm_pkt_fix_csums(buf, len);
	/* A zero UDP checksum means "none": keep it for the caller who asks. */
	if (s->proto == IPPROTO_UDP && s->udp_no_csum)
		((struct udphdr *)l4)->check = 0;
	return len;
}

static __u8 *pkt_l4(const void *frame, size_t len, size_t *l4_len)
{
	const struct iphdr *ip = (const void *)((const __u8 *)frame + ETH_HLEN);
	size_t ihl, tot;

	if (len < ETH_HLEN + sizeof(*ip))
		return NULL;
	ihl = ip->ihl * 4;
	tot = ntohs(ip->tot_len);
	if (ihl < sizeof(*ip) || tot < ihl || ETH_HLEN + tot > len)
		return NULL;
	*l4_len = tot - ihl;
	return (__u8 *)ip + ihl;
}

void nm_pkt_fix_csums(void *frame, size_t len)
{
	struct iphdr *ip = (void *)((__u8 *)frame + ETH_HLEN);
	size_t l4_len;
	__u8 *l4;

	l4 = pkt_l4(frame, len, &l4_len);
	if (!l4)
		return;
	ip->check = 0;
	ip->check = htons(csum_fold(csum_add(0, ip, ip->ihl * 4)));

	if (ip->protocol == IPPROTO_TCP && l4_len >= sizeof(struct tcphdr)) {
		struct tcphdr *tcp = (struct tcphdr *)l4;

		tcp->check = 0;
		tcp->check = htons(csum_fold(
			csum_add(csum_pseudo(ip, l4_len), l4, l4_len)));
	} else if (ip->protocol == IPPROTO_UDP &&
		   l4_len >= sizeof(struct udphdr)) {
		struct udphdr *udp = (struct udphdr *)l4;
		__u16 sum;

		udp->check = 0;
		sum = csum_fold(csum_add(csum_pseudo(ip, l4_len), l4, l4_len));
		udp->check = htons(sum ? sum : 0xffff);
	} else if (ip->protocol == IPPROTO_ICMP && l4_len >= ICMP_HLEN) {
		__u16 sum;

		l4[2] = 0;
		l4[3] = 0;
		sum = csum_fold(csum_add(0, l4, l4_len));
		l4[2] = sum >> 8;
		l4[3] = sum & 0xff;
	}
}

bool nm_pkt_ip_csum_ok(const void *frame, size_t len)
{
	const struct iphdr *ip = (const void *)((const __u8 *)frame + ETH_HLEN);

	if (len < ETH_HLEN + sizeof(*ip) || len < ETH_HLEN + ip->ihl * 4u)
		return false;
	return csum_fold(csum_add(0, ip, ip->ihl * 4)) == 0;
}

bool nm_pkt_l4_csum_ok(const void *frame, size_t len)
{
	const struct iphdr *ip = (const void *)((const __u8 *)frame + ETH_HLEN);
	size_t l4_len;
	__u8 *l4;

	l4 = pkt_l4(frame, len, &l4_len);
	if (!l4)
		return false;
	if (ip->protocol == IPPROTO_UDP) {
		if (l4_len < sizeof(struct udphdr))
			return false;
		if (!((struct udphdr *)l4)->check)
			return true;
	} else if (ip->protocol != IPPROTO_TCP ||
		   l4_len < sizeof(struct tcphdr)) {
		return false;
	}
	return csum_fold(csum_add(csum_pseudo(ip, l4_len), l4, l4_len)) == 0;
}

bool nm_pkt_tuple(const void *frame, size_t len, struct nm_pkt_tuple *t)
{
	const struct iphdr *ip = (const void *)((const __u8 *)frame + ETH_HLEN);
	const __be16 *ports;
	size_t l4_len;

	ports = (const __be16 *)pkt_l4(frame, len, &l4_len);
	if (!ports || l4_len < 4 ||
	    (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP))
		return false;
	t->saddr = ip->saddr;
	t->daddr = ip->daddr;
	t->sport = ports[0];
	t->dport = ports[1];
	t->proto = ip->protocol;
	return true;
}
