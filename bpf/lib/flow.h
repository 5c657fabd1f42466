/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Conntrack scopes and policy of every tracked flow that is not a
 * service frontend hit: the from-pod side (egress policy, FORWARD and
 * REPLY entries) and the to-pod side (replies, ingress policy, INGRESS
 * entries). See maps/ct.h. A packet matching an entry skips policy; only
 * the first packet of a flow pays for the lookups. Each function returns
 * the nm_reason to account.
 */
#ifndef NM_BPF_FLOW_H
#define NM_BPF_FLOW_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/ct.h"
#include "bpf/lib/ipcache.h"
#include "bpf/lib/policy.h"
#include "bpf/lib/svc.h"

/*
 * From-pod, not a service: @key is the packet's tuple in the FORWARD
 * scope. A flow the pod opened, or its answer to a flow delivered to it
 * (the reverse of an INGRESS entry, or the REPLY entry of the opener when
 * the server is not a local endpoint), passes; a new one goes through the
 * pod's egress policy and, allowed, gets FORWARD and REPLY entries (no
 * rev-NAT) so its replies pass the pod's ingress policy at to-pod.
 */
static __always_inline __u32 nm_flow_from_pod(const struct nm_pkt *p,
					      const struct nm_ct_key *key,
					      struct nm_policy_res *res)
{
	struct nm_ct_key rkey;
	struct nm_ct_val *ct;
	__u64 now = 0;
	__u32 reason;

	ct = nm_ct_lookup(key, &now);
	if (ct) {
		/* As for services: a rare write restores an evicted reply. */
		if (nm_ct_refresh(ct, p, now))
			(void)nm_ct_create_reply(p, key->daddr, key->dport, 0,
						 now, BPF_NOEXIST);
		return NM_REASON_CT_ESTABLISHED;
	}
	nm_ct_key_reverse(&rkey, key, NM_CT_INGRESS);
	ct = nm_ct_lookup(&rkey, &now);
	if (ct) {
		nm_ct_refresh(ct, p, now);
		return NM_REASON_CT_REPLY;
	}
	/* A server that is no endpoint here (so its to-pod made no INGRESS
	 * entry) answering a flow a local pod opened: the opener's REPLY
	 * entry names this very tuple. Not a new flow of the server's. */
	rkey = *key;
	rkey.dir = NM_CT_REPLY;
	ct = nm_ct_lookup(&rkey, &now);
	if (ct)
		return NM_REASON_CT_REPLY;

	reason = nm_policy_egress(key->saddr, key->daddr, key->proto,
				  key->dport, res);
	if (NM_REASON_IS_DROP(reason))
		return reason;
	if (nm_ct_create(key, p, 0, key->daddr, key->dport, 0,
			 bpf_ktime_get_ns()))
		return NM_DROP_CT_FULL;
	return reason;
}

/*
 * To-pod: @key is the packet's tuple as delivered, @src_id the source's
 * identity when the overlay told it (0: look the address up). A reply of a flow the
 * pod opened (REPLY) is reverse-NATed if it belongs to a service; a
 * packet of a flow already let in (INGRESS) passes. Otherwise it is a
 * new inbound flow: the destination must be a local endpoint (else the
 * packet is none of ours and passes untouched), its ingress policy
 * decides against the source identity, and an allowed flow gets its
 * INGRESS entry. The endpoint is looked up only here, so replies and
 * established packets pay for conntrack alone.
 */
static __always_inline __u32 nm_flow_to_pod(struct __sk_buff *skb,
					    const struct nm_pkt *p,
					    struct nm_ct_key *key,
					    struct nm_policy_res *res,
					    __u64 src_id)
{
	struct nm_endpoint_val *ep;
	struct nm_ct_val *ct;
	__u64 now = 0;
	__u32 reason;

	key->dir = NM_CT_REPLY;
	ct = nm_ct_lookup(key, &now);
	if (ct) {
		nm_ct_refresh(ct, p, now);
		if (ct->rev_nat_id)
			return nm_svc_revnat(skb, p, ct->rev_nat_id);
		return NM_REASON_CT_REPLY;
	}
	key->dir = NM_CT_INGRESS;
	ct = nm_ct_lookup(key, &now);
	if (ct) {
		nm_ct_refresh(ct, p, now);
		return NM_REASON_CT_ESTABLISHED;
	}

	ep = nm_endpoint_lookup(key->daddr);
	if (!ep)
		return NM_REASON_PASS;
	reason = nm_policy_ingress(ep, key->saddr, src_id, key->proto,
				   key->dport, res);
	if (NM_REASON_IS_DROP(reason))
		return reason;
	if (nm_ct_insert(key, p, 0, 0, bpf_ktime_get_ns(), BPF_ANY))
		return NM_DROP_CT_FULL;
	return reason;
}

#endif /* NM_BPF_FLOW_H */
