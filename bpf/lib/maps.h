/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map definitions of the datapath. Types come from maps/; sizes that are
 * load-time settings are overridden by the loader before load.
 */
#ifndef NM_BPF_MAPS_H
#define NM_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps/service.h"
#include "maps/backend.h"
#include "maps/maglev.h"
#include "maps/revnat.h"
#include "maps/ct.h"
#include "maps/metrics.h"
#include "maps/config.h"
#include "maps/identity.h"
#include "maps/ipcache.h"
#include "maps/endpoint.h"
#include "maps/policy.h"
#include "maps/events.h"
#include "maps/node.h"
#include "maps/tunnel.h"

/* Frontends, written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_SERVICES_MAX_DEFAULT);
	__type(key, struct nm_svc_key);
	__type(value, struct nm_svc_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_services_v1 SEC(".maps");

/* Backends by id, written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_BACKENDS_MAX_DEFAULT);
	__type(key, struct nm_backend_key);
	__type(value, struct nm_backend_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_backends_v1 SEC(".maps");

/*
 * Maglev tables (flat, table_id * M + slot), written by the agent.
 * Array maps only accept a 4-byte integer as BTF key type, so the key is
 * declared __u32: same layout as struct nm_maglev_key (asserted below).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NM_MAGLEV_TABLES_DEFAULT * NM_MAGLEV_M_DEFAULT);
	__type(key, __u32);
	__type(value, struct nm_maglev_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_maglev_v1 SEC(".maps");

/* rev-NAT id -> frontend, written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_SERVICES_MAX_DEFAULT);
	__type(key, struct nm_revnat_key);
	__type(value, struct nm_revnat_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_revnat_v1 SEC(".maps");

/* Conntrack, written by the datapath. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_CT_MAX_DEFAULT);
	__type(key, struct nm_ct_key);
	__type(value, struct nm_ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_ct_v1 SEC(".maps");

/*
 * Per-CPU counters by direction and reason, written by the datapath.
 * __u32 key for the same reason as nm_maglev_v1 (struct nm_metrics_key).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NM_METRICS_MAX);
	__type(key, __u32);
	__type(value, struct nm_metrics_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_metrics_v1 SEC(".maps");

/* Load-time settings for userspace readers, written by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nm_config_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_config_v2 SEC(".maps");

NM_ASSERT_SIZE(struct nm_maglev_key, sizeof(__u32));
NM_ASSERT_SIZE(struct nm_metrics_key, sizeof(__u32));

/* Prefix -> identity and node, written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NM_IPCACHE_MAX);
	__type(key, struct nm_ipcache_key);
	__type(value, struct nm_ipcache_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_ipcache_v1 SEC(".maps");

/* Pods on this node, written by the agent (flags by the policy compiler). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_ENDPOINTS_MAX);
	__type(key, struct nm_endpoint_key);
	__type(value, struct nm_endpoint_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_endpoints_v1 SEC(".maps");

/* Compiled policy, written by the policy compiler. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_POLICY_MAX);
	__type(key, struct nm_policy_key);
	__type(value, struct nm_policy_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_policy_v1 SEC(".maps");

/* Policy verdict and drop events, read by 'nodemeshctl monitor'. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NM_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_events_v1 SEC(".maps");

/* Nodes of every cluster, written by the agent from the kvstore. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_NODES_MAX);
	__type(key, struct nm_node_key);
	__type(value, struct nm_node_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_nodes_v1 SEC(".maps");

/* This node's overlay device and address, written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32); /* arrays take integer keys only */
	__type(value, struct nm_tunnel_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_tunnel_v1 SEC(".maps");

#endif /* NM_BPF_MAPS_H */
