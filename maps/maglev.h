/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_maglev_v1: one flat array of Maglev tables (Katran's layout).
 * Slot s of table t lives at index t * M + s and holds a backend id.
 * Each service owns one live table; an update writes a spare table and
 * then switches nm_svc_val.table_id, so the datapath never sees a
 * half-written table. Written by the agent.
 */
#ifndef NM_MAPS_MAGLEV_H
#define NM_MAPS_MAGLEV_H

#include "common.h"

#define NM_MAGLEV_M_DEFAULT 16381
#define NM_MAGLEV_M_MAX 131071 /* largest table size accepted */

/* Two tables per service: the live one and the one being written. */
#define NM_MAGLEV_TABLES_DEFAULT 512

struct nm_maglev_key {
	__u32 index; /* table_id * M + slot */
};
NM_ASSERT_SIZE(struct nm_maglev_key, 4);

struct nm_maglev_val {
	__u32 backend_id;
};
NM_ASSERT_SIZE(struct nm_maglev_val, 4);

#endif /* NM_MAPS_MAGLEV_H */
