/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_config_v1: one entry holding the load-time settings the datapath was
 * built with, so nodemeshctl (which keeps no state) programs the maps with
 * the same table size. Written once by the loader.
 */
#ifndef NM_MAPS_CONFIG_H
#define NM_MAPS_CONFIG_H

#include "common.h"

struct nm_config_val {
	__u32 maglev_m; /* Maglev table size, prime */
	__u32 maglev_tables; /* tables in nm_maglev_v1 */
	__u32 abi_version; /* NM_ABI_VERSION of the loaded objects */
	__u32 pad;
};
NM_ASSERT_SIZE(struct nm_config_val, 16);
NM_ASSERT_OFF(struct nm_config_val, maglev_tables, 4);

#define NM_ABI_VERSION 1

#endif /* NM_MAPS_CONFIG_H */
