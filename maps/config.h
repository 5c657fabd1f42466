/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nm_config_v2: one entry holding the load-time settings the datapath was
 * built with, so nodemeshctl (which keeps no state) programs the maps with
 * the same table size and id ranges. Written once by the loader when it
 * creates the maps; only svc_gen changes after that.
 */
#ifndef NM_MAPS_CONFIG_H
#define NM_MAPS_CONFIG_H

#include "common.h"

struct nm_config_val {
	__u32 maglev_m; /* Maglev table size, prime */
	__u32 maglev_tables; /* tables in nm_maglev_v1 */
	__u32 abi_version; /* NM_ABI_VERSION of the loaded objects */
	__u32 services_max; /* nm_services/revnat_v1 size; svc ids 1..max */
	__u32 backends_max; /* nm_backends_v1 size; backend ids 1..max */
	__u32 ct_max; /* nm_ct_v1 size */
	/*
	 * Bumped under the pin-root lock before every service write, so a
	 * writer caching the service maps (struct nm_svc_index) sees that
	 * another one wrote in between and rereads them.
	 */
	__u64 svc_gen;
};
NM_ASSERT_SIZE(struct nm_config_val, 32);
NM_ASSERT_OFF(struct nm_config_val, maglev_tables, 4);
NM_ASSERT_OFF(struct nm_config_val, abi_version, 8);
NM_ASSERT_OFF(struct nm_config_val, services_max, 12);
NM_ASSERT_OFF(struct nm_config_val, backends_max, 16);
NM_ASSERT_OFF(struct nm_config_val, ct_max, 20);
NM_ASSERT_OFF(struct nm_config_val, svc_gen, 24);

#define NM_ABI_VERSION 1

#endif /* NM_MAPS_CONFIG_H */
