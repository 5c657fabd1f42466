// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc programs on the host side of each pod's veth.
 *
 * nm_from_pod (tc ingress): what a pod sends. A packet to a service
 * frontend is load-balanced and DNATed to a backend; egress policy of
 * the pod decides new flows (after translation, against the backend);
 * everything is tracked in conntrack.
 *
 * nm_to_pod (tc egress): what is delivered to a pod. Replies of flows
 * the pod opened pass (service replies rewritten back to the frontend);
 * new inbound flows go through the pod's ingress policy.
 *
 * Every verdict is counted in nm_metrics_v1; every drop is reported in
 * nm_events_v1. From-pod sends what is bound for a pod on another node
 * into the overlay (bpf/lib/encap.h); the stack routes the rest.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/ct.h"
#include "bpf/lib/svc.h"
#include "bpf/lib/flow.h"
#include "bpf/lib/events.h"
#include "bpf/lib/encap.h"

/* Maglev table size M, set by the loader through the skeleton's rodata. */
const volatile __u32 nm_cfg_maglev_m = NM_MAGLEV_M_DEFAULT;
/* Also report new flows that policy allowed (drops are always reported). */
const volatile __u8 nm_cfg_events_allow = 0;

SEC("tc")
int nm_from_pod(struct __sk_buff *skb)
{
	struct nm_policy_res res = {};
	struct nm_ct_key key = {};
	__u32 len = skb->len, ifindex = 0;
	struct nm_svc_val *svc;
	struct nm_pkt pkt;
	__u32 reason;
	int ret;

	reason = nm_parse(skb, &pkt);
	if (reason == NM_PARSE_L4)
		nm_ct_key_pkt(&key, &pkt, NM_CT_FORWARD);
	reason = nm_source_check(skb, reason);
	if (reason != NM_PARSE_L4)
		goto route;

	svc = nm_lb_lookup_svc(&pkt);
	if (svc)
		reason = nm_svc_forward(skb, &pkt, svc, nm_cfg_maglev_m, &key,
					&res);
	else
		reason = nm_flow_from_pod(&pkt, &key, &res);
route:
	if (nm_reason_routable(reason))
		reason = nm_encap_prepare(skb, reason, &ifindex);
	ret = nm_account(NM_DIR_FROM_POD, reason, len, &key, &res,
			 nm_cfg_events_allow);
	if (ret != TC_ACT_OK || !ifindex)
		return ret;
	nm_metrics_inc(NM_DIR_FROM_POD, NM_REASON_ENCAP, len);
	return bpf_redirect(ifindex, 0);
}

SEC("tc")
int nm_to_pod(struct __sk_buff *skb)
{
	struct nm_policy_res res = {};
	struct nm_ct_key key = {};
	__u32 len = skb->len;
	struct nm_pkt pkt;
	__u32 reason;

	reason = nm_parse(skb, &pkt);
	if (reason != NM_PARSE_L4)
		goto out;

	nm_ct_key_pkt(&key, &pkt, NM_CT_REPLY);
	reason = nm_flow_to_pod(skb, &pkt, &key, &res, 0);
out:
	return nm_account(NM_DIR_TO_POD, reason, len, &key, &res,
			  nm_cfg_events_allow);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
