/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The overlay: from-pod sends a packet whose destination lives on another
 * node (ipcache tunnel endpoint) into the node's VXLAN device in external
 * mode, with the tunnel key naming the remote node and, as VNI, the
 * source's 24-bit cluster-local identity. The receiving node takes the
 * cluster from the authenticated outer source (nm_nodes_v1) and rebuilds
 * the full identity. See maps/tunnel.h.
 */
#ifndef NM_BPF_ENCAP_H
#define NM_BPF_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/ipcache.h"
#include "bpf/lib/parse.h"

#define NM_TUNNEL_TTL 64

/* An IPv4 packet with a verdict that lets it on: one to route. */
static __always_inline int nm_reason_routable(__u32 reason)
{
	return !NM_REASON_IS_DROP(reason) && reason != NM_REASON_NOT_IPV4;
}

/*
 * The addresses as they are now: after DNAT or rev-NAT the parsed
 * pointers are stale, the bytes in the packet are not.
 */
static __always_inline int nm_load_addrs(struct __sk_buff *skb, __be32 *saddr,
					 __be32 *daddr)
{
	__be32 a[2];

	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, saddr),
			       a, sizeof(a)))
		return -1;
	*saddr = a[0];
	*daddr = a[1];
	return 0;
}

/*
 * From-pod: a pod speaks with its own address only. One that belongs to
 * another pod's veth would borrow that pod's identity: its egress policy
 * here, its VNI on the wire. Returns @reason, or NM_DROP_SPOOFED.
 * Addresses of no endpoint stay as they are (unmanaged).
 */
static __always_inline __u32 nm_source_check(struct __sk_buff *skb,
					     __u32 reason)
{
	struct nm_endpoint_val *ep;
	__be32 saddr, daddr;

	if (reason != NM_PARSE_L4 && !nm_reason_routable(reason))
		return reason;
	if (nm_load_addrs(skb, &saddr, &daddr))
		return reason;
	ep = nm_endpoint_lookup(saddr);
	if (ep && ep->ifindex != skb->ifindex)
		return NM_DROP_SPOOFED;
	return reason;
}

static __always_inline struct nm_tunnel_val *nm_tunnel(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&nm_tunnel_v1, &key);
}

/*
 * From-pod, after the verdict: set the tunnel key when the destination
 * is a pod on another node and return the VXLAN device in @ifindex (0:
 * hand the packet to the stack: local pods, the host, the world, or no
 * overlay configured). Returns @reason, or NM_DROP_ENCAP_FAILED.
 */
static __always_inline __u32 nm_encap_prepare(struct __sk_buff *skb,
					      __u32 reason, __u32 *ifindex)
{
	struct nm_ipcache_key ikey;
	struct nm_ipcache_val *dst;
	struct nm_endpoint_val *src;
	struct nm_tunnel_val *tun;
	struct bpf_tunnel_key key;
	__be32 saddr, daddr;

	tun = nm_tunnel();
	if (!tun || !tun->ifindex)
		return reason;
	if (nm_load_addrs(skb, &saddr, &daddr))
		return reason;
	/* A pod of this node: the stack delivers it through its veth. */
	if (nm_endpoint_lookup(daddr))
		return reason;
	__builtin_memset(&ikey, 0, sizeof(ikey));
	ikey.prefixlen = 32;
	ikey.addr = daddr;
	dst = bpf_map_lookup_elem(&nm_ipcache_v1, &ikey);
	if (!dst || !dst->tunnel_endpoint || dst->tunnel_endpoint == tun->node_ip)
		return reason;

	__builtin_memset(&key, 0, sizeof(key));
	key.remote_ipv4 = bpf_ntohl(dst->tunnel_endpoint);
	key.tunnel_ttl = NM_TUNNEL_TTL;
	/* Not an endpoint (the pod is not registered yet): unmanaged. */
	src = nm_endpoint_lookup(saddr);
	key.tunnel_id = src ? nm_identity_local(src->identity) :
			      (__u32)NM_ID_UNMANAGED;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX))
		return NM_DROP_ENCAP_FAILED;
	*ifindex = tun->ifindex;
	return reason;
}

/*
 * Overlay ingress: the source identity of a tunnelled packet, or the
 * drop reason. Only a node we know may send: its entry gives the cluster
 * the VNI's local id belongs to. Reserved ids stay cluster-independent;
 * another node's host traffic is remote-node.
 */
static __always_inline __u32 nm_overlay_source(struct __sk_buff *skb,
					       __u64 *src_id)
{
	struct bpf_tunnel_key key;
	struct nm_node_key nkey;
	struct nm_node_val *node;
	__u32 local;

	__builtin_memset(&key, 0, sizeof(key));
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0))
		return NM_DROP_NO_TUNNEL_KEY;
	__builtin_memset(&nkey, 0, sizeof(nkey));
	nkey.node_ip = bpf_htonl(key.remote_ipv4);
	node = bpf_map_lookup_elem(&nm_nodes_v1, &nkey);
	if (!node)
		return NM_DROP_UNKNOWN_NODE;
	local = key.tunnel_id & NM_ID_LOCAL_MASK;
	if (local == NM_ID_HOST)
		*src_id = NM_ID_REMOTE_NODE;
	else if (local <= NM_ID_RESERVED_MAX)
		*src_id = local;
	else
		*src_id = nm_identity_pack(node->cluster_id, local);
	return 0;
}

/*
 * Overlay ingress, after the verdict: the destination must be a pod of
 * this node. Address the frame to it (the inner MACs are the sender's)
 * and return its host veth in @ifindex for bpf_redirect_peer().
 */
static __always_inline __u32 nm_overlay_deliver(struct __sk_buff *skb,
						__u32 reason, __u32 *ifindex)
{
	struct nm_endpoint_val *ep;
	__be32 saddr, daddr;

	if (nm_load_addrs(skb, &saddr, &daddr))
		return NM_DROP_DELIVERY;
	ep = nm_endpoint_lookup(daddr);
	if (!ep)
		return NM_DROP_NO_ENDPOINT;
	/* No MAC known (added without one): the stack's verdict stands. */
	if ((ep->mac[0] | ep->mac[1] | ep->mac[2] | ep->mac[3] | ep->mac[4] |
	     ep->mac[5]) &&
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), ep->mac,
				ETH_ALEN, 0))
		return NM_DROP_DELIVERY;
	/* The VXLAN device judged the inner MAC against its own. */
	if (bpf_skb_change_type(skb, PACKET_HOST))
		return NM_DROP_DELIVERY;
	*ifindex = ep->ifindex;
	return reason;
}

#endif /* NM_BPF_ENCAP_H */
