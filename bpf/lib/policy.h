/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy verdict of a new flow (see maps/policy.h): four lookups from the
 * most specific key to the widest; a DENY ends the search at once (deny
 * wins), an ALLOW only after the remaining keys found no DENY. Only new
 * flows get here: established ones are let through by conntrack, so a
 * removed allow stops new connections and leaves open ones alone.
 */
#ifndef NM_BPF_POLICY_H
#define NM_BPF_POLICY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/ipcache.h"

/* A new flow's policy decision, as events report it. */
struct nm_policy_res {
	__u64 src_id;
	__u64 dst_id;
	__u32 endpoint_id; /* 0: no local endpoint, no policy checked */
	__u32 rule_id; /* 0: no rule decided (default verdict) */
	__u8 verdict; /* enum nm_policy_verdict, 0 when not checked */
};

/*
 * Verdict of endpoint @ep in @dir for a flow with @peer on @proto/@dport.
 * Returns the nm_reason: NM_DROP_POLICY_DENY (a deny matched),
 * NM_REASON_POLICY_ALLOW (an allow matched), NM_DROP_POLICY_DEFAULT (no
 * match, endpoint selected in @dir) or NM_REASON_PASS (no match, not
 * selected). An entry with an unknown verdict counts as no entry.
 */
static __always_inline __u32 nm_policy_verdict(const struct nm_endpoint_val *ep,
					       __u8 dir, __u64 peer, __u8 proto,
					       __be16 dport, __u32 *rule_id)
{
	__u8 flag = dir == NM_POLICY_INGRESS ? NM_EP_F_INGRESS_POLICY :
					       NM_EP_F_EGRESS_POLICY;
	struct nm_policy_key key;
	struct nm_policy_val *val;
	__u32 allow_rule = 0;
	int allowed = 0, i;

	__builtin_memset(&key, 0, sizeof(key));
	key.endpoint_id = ep->endpoint_id;
	key.dir = dir;
	/* (peer, proto, port), (peer, any), (any, proto, port), (any, any) */
#pragma unroll
	for (i = 0; i < 4; i++) {
		key.identity = i < 2 ? peer : NM_ID_ANY;
		key.proto = i & 1 ? 0 : proto;
		key.dport = i & 1 ? 0 : dport;
		val = bpf_map_lookup_elem(&nm_policy_v1, &key);
		if (!val)
			continue;
		if (val->verdict == NM_POLICY_DENY) {
			*rule_id = val->rule_id;
			return NM_DROP_POLICY_DENY;
		}
		/* The most specific allow names the rule. */
		if (val->verdict == NM_POLICY_ALLOW && !allowed) {
			allowed = 1;
			allow_rule = val->rule_id;
		}
	}
	*rule_id = allow_rule;
	if (allowed)
		return NM_REASON_POLICY_ALLOW;
	return ep->flags & flag ? NM_DROP_POLICY_DEFAULT : NM_REASON_PASS;
}

/* Record the verdict @reason in @res. */
static __always_inline __u32 nm_policy_record(struct nm_policy_res *res,
					      __u32 reason)
{
	res->verdict = NM_REASON_IS_DROP(reason) ? NM_POLICY_DENY :
						   NM_POLICY_ALLOW;
	return reason;
}

/*
 * Egress policy of the pod at @saddr (if it is a local endpoint) toward
 * @daddr:@dport, i.e. after service translation. Not a local endpoint
 * (the host, an unregistered address): no egress policy, NM_REASON_PASS.
 */
static __always_inline __u32 nm_policy_egress(__be32 saddr, __be32 daddr,
					      __u8 proto, __be16 dport,
					      struct nm_policy_res *res)
{
	struct nm_endpoint_val *ep = nm_endpoint_lookup(saddr);

	if (!ep)
		return NM_REASON_PASS;
	res->endpoint_id = ep->endpoint_id;
	res->src_id = ep->identity;
	res->dst_id = nm_identity_of(daddr);
	return nm_policy_record(res, nm_policy_verdict(ep, NM_POLICY_EGRESS,
						       res->dst_id, proto,
						       dport, &res->rule_id));
}

/*
 * Ingress policy of local endpoint @ep for a flow from @saddr to @dport;
 * @src_id is the source's identity when the overlay carried it, else 0.
 */
static __always_inline __u32 nm_policy_ingress(const struct nm_endpoint_val *ep,
					       __be32 saddr, __u64 src_id,
					       __u8 proto,
					       __be16 dport,
					       struct nm_policy_res *res)
{
	res->endpoint_id = ep->endpoint_id;
	res->src_id = src_id ?: nm_identity_of(saddr);
	res->dst_id = ep->identity;
	return nm_policy_record(res, nm_policy_verdict(ep, NM_POLICY_INGRESS,
						       res->src_id, proto,
						       dport, &res->rule_id));
}

#endif /* NM_BPF_POLICY_H */
