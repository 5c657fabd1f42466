// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc ingress of the node's VXLAN device (external mode): what other nodes
 * send to this node's pods.
 *
 * nm_from_overlay: only a node in nm_nodes_v1 may send (its outer source
 * address gives the cluster; anything else is dropped, counted and
 * reported). The VNI carries the source's cluster-local identity, so the
 * full identity is rebuilt here and ingress policy is decided against it,
 * not against an address. Then the to-pod path: replies of service flows
 * this node's pods opened are reverse-NATed, new flows go through the
 * pod's ingress policy, and the packet is redirected straight into the
 * pod (bpf_redirect_peer: the host veth's tc egress is not run again).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/ct.h"
#include "bpf/lib/flow.h"
#include "bpf/lib/events.h"
#include "bpf/lib/encap.h"

/* Also report new flows that policy allowed (drops are always reported). */
const volatile __u8 nm_cfg_events_allow = 0;

SEC("tc")
int nm_from_overlay(struct __sk_buff *skb)
{
	struct nm_policy_res res = {};
	struct nm_ct_key key = {};
	__u32 len = skb->len, ifindex = 0;
	__u32 reason, src_drop;
	struct nm_pkt pkt;
	__u64 src_id = 0;
	int ret;

	reason = nm_parse(skb, &pkt);
	if (reason == NM_PARSE_L4)
		nm_ct_key_pkt(&key, &pkt, NM_CT_REPLY);
	/* Before anything else: who sent it. */
	src_drop = nm_overlay_source(skb, &src_id);
	if (src_drop) {
		reason = src_drop;
		goto out;
	}
	res.src_id = src_id;
	if (reason == NM_PARSE_L4)
		reason = nm_flow_to_pod(skb, &pkt, &key, &res, src_id);
	if (nm_reason_routable(reason))
		reason = nm_overlay_deliver(skb, reason, &ifindex);
out:
	ret = nm_account(NM_DIR_FROM_OVERLAY, reason, len, &key, &res,
			 nm_cfg_events_allow);
	if (ret != TC_ACT_OK || !ifindex)
		return ret;
	return bpf_redirect_peer(ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
