// SPDX-License-Identifier: GPL-2.0
/*
 * Policy map writer: gathers what the node knows (identities.json, the
 * endpoints in nm_endpoints_v1, the manifests under policies/), compiles
 * it (nm_policy_compile) and brings nm_policy_v1, the endpoints'
 * enforcement flags and the CIDR entries of nm_ipcache_v1 to the result.
 *
 * Only what differs is written, in an order that never opens a window
 * where a flow allowed before and after is denied, or one denied before
 * and after is allowed:
 *   1. upsert policy entries that are new or whose value changed;
 *   2. add ipcache entries of CIDR identities (never over a pod's /32);
 *   3. write a pending (new) endpoint, with its final flags;
 *   4. set enforcement flags that turn on;
 *   5. clear enforcement flags that turn off;
 *   6. delete ipcache entries of CIDR identities no policy mentions;
 *   7. delete policy entries no longer produced.
 * Callers hold nm_maps_lock().
 */
#ifndef NM_AGENT_POLICY_APPLY_H
#define NM_AGENT_POLICY_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/identity.h"
#include "agent/loader.h"
#include "agent/policy.h"
#include "agent/state.h"
#include "maps/endpoint.h"

/* One row of nm_endpoints_v1. */
struct nm_ep_rec {
	__be32 addr;
	struct nm_endpoint_val val;
};

/* Every endpoint in the map, sorted by endpoint id. */
int nm_endpoints_read(const struct nm_maps *maps, struct nm_ep_rec **out,
		      size_t *n);

/* Every applied manifest under policies/ (none: empty set). */
int nm_policy_store_load(const struct nm_state *st, struct nm_policy_set *set,
			 struct nm_error *err);
/*
 * Store the manifests of @file (@buf, already parsed into @parsed) as
 * policies/<ns>/<name>.yaml, one document each.
 */
int nm_policy_store_write(const struct nm_state *st, const char *file,
			  const char *buf, size_t len,
			  const struct nm_policy_set *parsed);
int nm_policy_store_remove(const struct nm_state *st, const char *ns,
			   const char *name);

/* Does @p's endpointSelector select an endpoint with @labels? */
bool nm_policy_selects(const struct nm_policy *p,
		       const struct nm_labels *labels);

struct nm_sync_stats {
	size_t added; /* policy entries */
	size_t changed;
	size_t removed;
	size_t unchanged;
	size_t flags_on; /* endpoints whose flags gained a bit */
	size_t flags_off;
	size_t cidr_added; /* CIDR identities */
	size_t cidr_removed;
};

/*
 * Compile @set against @ids and the endpoints in the map (plus @pending,
 * not yet in the map, or NULL) and write the difference. CIDR identities
 * are brought to the set's CIDRs and @ids saved when they change. @out
 * (may be NULL) receives the compiled result for the caller's display.
 */
int nm_policy_sync(struct nm_maps *maps, const struct nm_state *st,
		   struct nm_idstore *ids, const struct nm_policy_set *set,
		   const struct nm_ep_rec *pending, struct nm_sync_stats *stats,
		   struct nm_compiled *out);

/* Compile only (no writes): for 'policy get' and 'policy list'. */
int nm_policy_compile_node(const struct nm_maps *maps,
			   const struct nm_state *st,
			   const struct nm_idstore *ids,
			   const struct nm_policy_set *set,
			   struct nm_compiled *out);

#endif /* NM_AGENT_POLICY_APPLY_H */
