/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* nm_backends_v1: backend id -> address. Written by the agent. */
#ifndef NM_MAPS_BACKEND_H
#define NM_MAPS_BACKEND_H

#include "common.h"

/*
 * Size of nm_backends_v1 (backend ids 1..N) unless the loader is told
 * otherwise (--backends-max); the pinned size is in nm_config_v2.
 */
#define NM_BACKENDS_MAX_DEFAULT 262144
#define NM_BACKENDS_MAX_LIMIT (1U << 24) /* largest size accepted */

enum nm_backend_state {
	NM_BE_ACTIVE = 0, /* in the Maglev table, takes new flows */
	NM_BE_TERMINATING = 1, /* no new flows; established ones continue */
	NM_BE_QUARANTINED = 2, /* no new flows; established ones continue */
	/*
	 * Ready, not in the preferred tier (affinity/priority): no new flows;
	 * established ones continue.
	 */
	NM_BE_STANDBY = 3,
};
#define NM_BE_STATE_MAX NM_BE_STANDBY /* highest known state */

struct nm_backend_key {
	__u32 backend_id; /* never 0: 0 marks an empty Maglev slot */
};
NM_ASSERT_SIZE(struct nm_backend_key, 4);

struct nm_backend_val {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 state; /* enum nm_backend_state */
	__u32 svc_id; /* owning service: backends are per service */
	__u16 cluster_id; /* 0 = local cluster until the mesh fills it in */
	__u16 weight; /* Maglev weight, >= 1 */
};
NM_ASSERT_SIZE(struct nm_backend_val, 16);
NM_ASSERT_OFF(struct nm_backend_val, port, 4);
NM_ASSERT_OFF(struct nm_backend_val, svc_id, 8);
NM_ASSERT_OFF(struct nm_backend_val, cluster_id, 12);

#endif /* NM_MAPS_BACKEND_H */
