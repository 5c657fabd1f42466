/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service flows: the forward path at from-pod (client -> VIP: conntrack,
 * backend selection, egress policy, DNAT) and the rev-NAT of replies at
 * the client's to-pod. Both return the nm_reason to account.
 */
#ifndef NM_BPF_SVC_H
#define NM_BPF_SVC_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/ct.h"
#include "bpf/lib/lb.h"
#include "bpf/lib/nat.h"
#include "bpf/lib/policy.h"

/*
 * Client -> VIP, @key the packet's tuple in the FORWARD scope. A flow
 * with a live backend keeps it without a policy lookup; a new flow (or
 * one whose backend was removed) selects a backend, and egress policy
 * of the client is checked against that backend, not the VIP.
 */
static __always_inline __u32 nm_svc_forward(struct __sk_buff *skb,
					    const struct nm_pkt *p,
					    const struct nm_svc_val *svc,
					    __u32 maglev_m,
					    const struct nm_ct_key *key,
					    struct nm_policy_res *res)
{
	struct nm_backend_val *be;
	__u64 now = 0;
	struct nm_ct_val *ct;
	__u32 reason, verdict, be_id;

	ct = nm_ct_lookup(key, &now);
	reason = NM_REASON_SVC_NEW;
	if (ct) {
		/* Established flows stay on their backend while it exists,
		 * whatever its state; a deleted one means reselect. */
		be = nm_lb_backend(ct->backend_id);
		if (be && be->svc_id == svc->svc_id) {
			/* Writes are rare: use them to restore a reply
			 * entry the LRU may have evicted. -EEXIST is the
			 * usual answer; a failure is retried next refresh. */
			if (nm_ct_refresh(ct, p, now))
				(void)nm_ct_create_reply(p, be->addr, be->port,
							 ct->rev_nat_id, now,
							 BPF_NOEXIST);
			reason = NM_REASON_SVC_ESTABLISHED;
			goto nat;
		}
		reason = NM_REASON_SVC_RESELECT;
	}

	be_id = nm_lb_select(svc, p, maglev_m, &be);
	if (!be_id)
		return NM_DROP_NO_BACKEND;
	verdict = nm_policy_egress(p->ip->saddr, be->addr, p->proto, be->port,
				   res);
	if (NM_REASON_IS_DROP(verdict))
		return verdict;
	if (!now)
		now = bpf_ktime_get_ns();
	if (nm_ct_create(key, p, be_id, be->addr, be->port, svc->svc_id, now))
		return NM_DROP_CT_FULL;
nat:
	if (nm_nat_dnat(skb, p, be->addr, be->port))
		return NM_DROP_NAT_FAILED;
	return reason;
}

/*
 * Reply of a service flow on delivery to its client: rewrite the source
 * back to the frontend of @rev_nat_id. A service deleted since leaves
 * nothing to rewrite to: the reply passes as it is.
 */
static __always_inline __u32 nm_svc_revnat(struct __sk_buff *skb,
					   const struct nm_pkt *p,
					   __u32 rev_nat_id)
{
	struct nm_revnat_key rkey;
	struct nm_revnat_val *rev;

	__builtin_memset(&rkey, 0, sizeof(rkey));
	rkey.rev_nat_id = rev_nat_id;
	rev = bpf_map_lookup_elem(&nm_revnat_v1, &rkey);
	if (!rev)
		return NM_REASON_CT_REPLY;
	if (nm_nat_snat(skb, p, rev->vip, rev->port))
		return NM_DROP_NAT_FAILED;
	return NM_REASON_REVNAT;
}

#endif /* NM_BPF_SVC_H */
