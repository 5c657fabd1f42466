// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc programs on the host side of each pod's veth.
 *
 * from-pod (tc ingress): sees both clients' requests and backends'
 * replies. Parse; a packet to a service frontend is load-balanced and
 * DNATed to a backend; a reply of a service flow is rewritten back to
 * the frontend; everything else passes untouched. Every verdict is
 * counted in nm_metrics_v1; drops only for malformed packets and
 * service flows that cannot be served. The stack routes the result.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/svc.h"
#include "bpf/lib/metrics.h"

/* Maglev table size M, set by the loader through the skeleton's rodata. */
const volatile __u32 nm_cfg_maglev_m = NM_MAGLEV_M_DEFAULT;

SEC("tc")
int nm_from_pod(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	struct nm_svc_val *svc;
	struct nm_pkt pkt;
	__u32 reason;

	reason = nm_parse(skb, &pkt);
	if (reason != NM_PARSE_L4)
		goto out;

	svc = nm_lb_lookup_svc(&pkt);
	if (svc)
		reason = nm_svc_forward(skb, &pkt, svc, nm_cfg_maglev_m);
	else
		reason = nm_svc_reply(skb, &pkt);
out:
	nm_metrics_inc(NM_DIR_FROM_POD, reason, len);
	return NM_REASON_IS_DROP(reason) ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
