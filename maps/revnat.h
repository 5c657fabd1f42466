/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* nm_revnat_v1: rev-NAT id -> frontend a reply is rewritten to. Written by the agent. */
#ifndef NM_MAPS_REVNAT_H
#define NM_MAPS_REVNAT_H

#include "common.h"

struct nm_revnat_key {
	__u32 rev_nat_id; /* == nm_svc_val.svc_id */
};
NM_ASSERT_SIZE(struct nm_revnat_key, 4);

struct nm_revnat_val {
	__be32 vip;
	__be16 port;
	__u16 pad;
};
NM_ASSERT_SIZE(struct nm_revnat_val, 8);
NM_ASSERT_OFF(struct nm_revnat_val, port, 4);

#endif /* NM_MAPS_REVNAT_H */
