/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared ABI between bpf/ and agent/: only types, constants and pin names.
 * Every struct here is fixed-width with explicit padding; layouts are
 * pinned down with static asserts so both compilers agree byte for byte.
 */
#ifndef NM_MAPS_COMMON_H
#define NM_MAPS_COMMON_H

#include <linux/types.h>

#ifndef __cplusplus
#define NM_ASSERT(cond, msg) _Static_assert(cond, msg)
#else
#define NM_ASSERT(cond, msg) static_assert(cond, msg)
#endif

#define NM_OFFSETOF(type, member) __builtin_offsetof(type, member)

#define NM_ASSERT_SIZE(type, size) \
	NM_ASSERT(sizeof(type) == (size), "size of " #type " changed")
#define NM_ASSERT_OFF(type, member, off)                  \
	NM_ASSERT(NM_OFFSETOF(type, member) == (off), \
		  "offset of " #type "." #member " changed")

/* Default bpffs directory maps are pinned under (one per node). */
#define NM_PIN_ROOT_DEFAULT "/sys/fs/bpf/nodemesh"

/* Pin names: prefix nm_, suffix _v<layout version>. */
#define NM_MAP_SERVICES "nm_services_v1"
#define NM_MAP_BACKENDS "nm_backends_v1"
#define NM_MAP_MAGLEV "nm_maglev_v1"
#define NM_MAP_REVNAT "nm_revnat_v1"
#define NM_MAP_CT "nm_ct_v1"
#define NM_MAP_METRICS "nm_metrics_v1"
#define NM_MAP_CONFIG "nm_config_v2"
#define NM_MAP_IPCACHE "nm_ipcache_v1"
#define NM_MAP_ENDPOINTS "nm_endpoints_v1"
#define NM_MAP_POLICY "nm_policy_v1"
#define NM_MAP_EVENTS "nm_events_v1"
#define NM_MAP_NODES "nm_nodes_v1"
#define NM_MAP_TUNNEL "nm_tunnel_v1"

#endif /* NM_MAPS_COMMON_H */
