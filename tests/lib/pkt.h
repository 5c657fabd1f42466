/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small packet builder for the BPF tests and benchmarks: Ethernet +
 * IPv4 + TCP/UDP/ICMP with correct checksums, and checkers that verify
 * a (rewritten) frame by recomputing its checksums from scratch.
 */
#ifndef NM_TESTS_PKT_H
#define NM_TESTS_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* Largest frame the builder makes. */
#define NM_PKT_MAX 1514

struct nm_pkt_spec {
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* TCP/UDP only */
	__be16 dport;
	__u8 proto; /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_ICMP */
	__u8 tcp_flags; /* TH_* style bits of TCP byte 13 */
	__u16 payload_len;
	bool udp_no_csum; /* send UDP with checksum 0 ("none") */
};

struct nm_pkt_tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
};

#define NM_PKT_TCP_FIN 0x01
#define NM_PKT_TCP_SYN 0x02
#define NM_PKT_TCP_RST 0x04
#define NM_PKT_TCP_ACK 0x10

/* a.b.c.d in network byte order. */
__be32 nm_ip4(__u8 a, __u8 b, __u8 c, __u8 d);

/* Build a frame into @buf; returns its length, or 0 if @size is short. */
size_t nm_pkt_build(void *buf, size_t size, const struct nm_pkt_spec *s);

/* Recompute the IPv4 and L4 checksums of a frame built by nm_pkt_build. */
void nm_pkt_fix_csums(void *frame, size_t len);

/* True when the IPv4 header checksum of @frame is valid. */
bool nm_pkt_ip_csum_ok(const void *frame, size_t len);

/*
 * True when the TCP/UDP checksum (pseudo-header included) of @frame is
 * valid; a UDP checksum of 0 counts as valid ("none").
 */
bool nm_pkt_l4_csum_ok(const void *frame, size_t len);

/* Read back the IPv4 5-tuple; false if the frame is not IPv4 TCP/UDP. */
bool nm_pkt_tuple(const void *frame, size_t len, struct nm_pkt_tuple *t);

#endif /* NM_TESTS_PKT_H */
