/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* nm_services_v1: frontend (VIP, port, proto) -> service. Written by the agent. */
#ifndef NM_MAPS_SERVICE_H
#define NM_MAPS_SERVICE_H

#include "common.h"

/*
 * Size of nm_services_v1 and nm_revnat_v1 (svc ids 1..N) unless the loader
 * is told otherwise (--services-max); the pinned size is in nm_config_v2.
 */
#define NM_SERVICES_MAX_DEFAULT 16384
#define NM_SERVICES_MAX_LIMIT (1U << 20) /* largest size accepted */

/* Load-balancing algorithm of a service. */
enum nm_lb_algo {
	NM_LB_MAGLEV = 0,
	NM_LB_RANDOM = 1,
};

/* nm_svc_val.flags */
#define NM_SVC_F_NONE 0x00

struct nm_svc_key {
	__be32 vip;
	__be16 dport; /* 0 is never a valid frontend port */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};
NM_ASSERT_SIZE(struct nm_svc_key, 8);
NM_ASSERT_OFF(struct nm_svc_key, vip, 0);
NM_ASSERT_OFF(struct nm_svc_key, dport, 4);
NM_ASSERT_OFF(struct nm_svc_key, proto, 6);

struct nm_svc_val {
	__u32 svc_id; /* also the rev-NAT id of the frontend; never 0 */
	__u32 table_id; /* which Maglev table in nm_maglev_v1 is live */
	__u16 backend_count; /* active backends in the live table; 0 = no backend */
	__u8 algo; /* enum nm_lb_algo */
	__u8 flags; /* NM_SVC_F_* */
	__u32 pad;
};
NM_ASSERT_SIZE(struct nm_svc_val, 16);
NM_ASSERT_OFF(struct nm_svc_val, table_id, 4);
NM_ASSERT_OFF(struct nm_svc_val, backend_count, 8);

#endif /* NM_MAPS_SERVICE_H */
