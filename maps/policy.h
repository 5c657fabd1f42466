/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_policy_v1: compiled policy, one global hash keyed by endpoint,
 * direction, peer identity, protocol and port. Written by the policy
 * compiler only.
 *
 * Wildcards: identity NM_ID_ANY matches every peer; proto 0 with dport 0
 * matches every protocol and port. A new flow looks up four keys, most
 * specific first: (peer, proto, port), (peer, any), (any, proto, port),
 * (any, any). Any DENY among the hits wins; else any ALLOW allows; else
 * the endpoint is default-deny in that direction if its NM_EP_F_*_POLICY
 * flag is set, and allows otherwise. A rule with a port and protocol
 * ANY compiles to one TCP and one UDP key; a rule without ports to
 * (proto 0, port 0), which also covers ICMP.
 */
#ifndef NM_MAPS_POLICY_H
#define NM_MAPS_POLICY_H

#include "common.h"

#define NM_POLICY_MAX 1048576

enum nm_policy_dir {
	NM_POLICY_INGRESS = 0,
	NM_POLICY_EGRESS = 1,
};

enum nm_policy_verdict {
	NM_POLICY_ALLOW = 1,
	NM_POLICY_DENY = 2,
};

struct nm_policy_key {
	__u64 identity; /* peer, or NM_ID_ANY */
	__u32 endpoint_id; /* nm_endpoint_val.endpoint_id */
	__be16 dport; /* 0 = any port */
	__u8 proto; /* IPPROTO_TCP/UDP, 0 = any */
	__u8 dir; /* enum nm_policy_dir */
};
NM_ASSERT_SIZE(struct nm_policy_key, 16);
NM_ASSERT_OFF(struct nm_policy_key, endpoint_id, 8);
NM_ASSERT_OFF(struct nm_policy_key, dport, 12);
NM_ASSERT_OFF(struct nm_policy_key, proto, 14);
NM_ASSERT_OFF(struct nm_policy_key, dir, 15);

struct nm_policy_val {
	__u32 rule_id; /* which compiled rule: for events and 'policy get' */
	__u8 verdict; /* enum nm_policy_verdict */
	__u8 pad[3];
};
NM_ASSERT_SIZE(struct nm_policy_val, 8);
NM_ASSERT_OFF(struct nm_policy_val, verdict, 4);

#endif /* NM_MAPS_POLICY_H */
