// SPDX-License-Identifier: GPL-2.0
/*
 * Identities this node knows, kept in the state directory's
 * identities.json: label identities (local pods, and remote ones added
 * by hand until the kvstore feeds them) and CIDR identities of policy
 * rules. The reserved identities (host, world, ...) are always known and
 * never stored.
 *
 * A label identity's local id is a fixed-seed 64-bit hash of the
 * canonical label string, mapped into NM_ID_LOCAL_MIN..NM_ID_LOCAL_MAX,
 * so the same labels give the same identity on every node of a cluster.
 * On a collision with a different label set the next free id is taken
 * (linear probing); two nodes that see colliding sets in a different
 * order then disagree. With 2^24 ids that is rare but possible; the
 * kvstore makes allocation a cluster-wide transaction later.
 *
 * CIDR identities live in cluster 0 from NM_ID_CIDR_BASE up, one per CIDR
 * that an applied policy mentions; a CIDR keeps its id while any policy
 * mentions it, so recompiles do not renumber them.
 */
#ifndef NM_AGENT_IDENTITY_H
#define NM_AGENT_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/labels.h"
#include "agent/policy.h"
#include "agent/state.h"

#define NM_CIDR_IDS_MAX 65536 /* CIDR identities per node */

struct nm_idstore {
	struct nm_identity_info *v; /* reserved first, then sorted by id */
	size_t n;
};

/* Hash of a canonical label string into the label id range (pure). */
__u32 nm_identity_hash(const char *canon);
/* "reserved:host" etc. for reserved ids, NULL otherwise. */
const char *nm_identity_reserved_name(__u64 id);

/* Load identities.json (absent: none) plus the reserved identities. */
int nm_idstore_load(const struct nm_state *st, struct nm_idstore *s);
/* Write identities.json (reserved identities are not stored). */
int nm_idstore_save(const struct nm_state *st, const struct nm_idstore *s);
void nm_idstore_free(struct nm_idstore *s);
const struct nm_identity_info *nm_idstore_find(const struct nm_idstore *s,
					       __u64 id);

/*
 * Merge a mirror's view into @s in one pass: each @put identity (label
 * range of a cluster; others are ignored) is added, or its labels
 * replaced; each id in @del is dropped unless it is a CIDR identity.
 * @changed says whether @s differs afterwards. The store stays sorted
 * and whole on error (then possibly merged in part).
 */
int nm_idstore_merge(struct nm_idstore *s, const struct nm_identity_info *put,
		     size_t n_put, const __u64 *del, size_t n_del,
		     bool *changed);

/*
 * Identity of @labels in cluster @cluster_id (the caller has added the
 * namespace and cluster labels): the existing one, or a new one added to
 * @s (@created says which).
 */
int nm_identity_alloc(struct nm_idstore *s, __u16 cluster_id,
		      const struct nm_labels *labels, __u64 *id, bool *created);

/*
 * Make the CIDR identities exactly @cidrs: keep those still listed, add
 * the new ones (lowest free id), drop the rest. @added/@removed (may be
 * NULL) receive the CIDR identities added and dropped, for the ipcache.
 */
struct nm_cidr_change {
	__u64 id;
	struct nm_cidr cidr;
};
int nm_identity_sync_cidrs(struct nm_idstore *s, const struct nm_cidr *cidrs,
			   size_t n, struct nm_cidr_change **added,
			   size_t *n_added, struct nm_cidr_change **removed,
			   size_t *n_removed);

/* "10.0.0.0/8" into @buf (>= 20 bytes). */
char *nm_cidr_str(const struct nm_cidr *c, char *buf, size_t len);
/* Parse "A.B.C.D/L" (host bits must be zero). */
int nm_cidr_parse(const char *s, struct nm_cidr *c);

#endif /* NM_AGENT_IDENTITY_H */
