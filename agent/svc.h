// SPDX-License-Identifier: GPL-2.0
/*
 * Service programming on the pinned maps: the one writer used by
 * nodemeshctl now and by the agent (fed from etcd) later.
 *
 * An upsert is ordered so the datapath never sees a half-written service:
 * backends first, then the Maglev table into a spare table, then rev-NAT,
 * then the service entry switches to the new table, then backends that
 * left are deleted. Everything is validated before the first write.
 */
#ifndef NM_AGENT_SVC_H
#define NM_AGENT_SVC_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/loader.h"
#include "agent/parse.h"
#include "maps/backend.h"
#include "maps/revnat.h"
#include "maps/service.h"

/* Backends of one service, bounded by the u16 backend_count. */
#define NM_SVC_BACKENDS_MAX 65535

/*
 * What an upsert or delete needs to know of the service maps beyond the
 * one service entry: the lowest free svc id, Maglev table and backend
 * ids, and the backends each service owns. Filled by one scan of
 * nm_services_v1 and nm_backends_v1 under the pin-root lock at first
 * use, then kept up to date by the writes made through it. It is filled
 * again when nm_config_v2's svc_gen shows that another writer
 * (nodemeshctl, another process) wrote since, or when a failed write
 * left the maps in doubt. Not thread-safe: its user serialises calls.
 */
struct nm_svc_index;

/* Sized from @maps->cfg; empty until its first use. */
int nm_svc_index_new(const struct nm_maps *maps, struct nm_svc_index **out);
void nm_svc_index_free(struct nm_svc_index *idx);
/*
 * Compare @idx with a fresh scan of the maps (under the lock): 0 when
 * they agree, -EUCLEAN (the first difference logged) when not, -ESTALE
 * when @idx is not filled or another writer wrote since its last use.
 */
int nm_svc_index_check(struct nm_maps *maps, struct nm_svc_index *idx);

/* @idx NULL: a scan of the maps for this call only (one-shot tools). */
int nm_svc_upsert_idx(struct nm_maps *maps, struct nm_svc_index *idx,
		      const struct nm_frontend *fe,
		      const struct nm_backend_spec *be, size_t n, __u8 algo);
/* -ENOENT when the service does not exist. */
int nm_svc_delete_idx(struct nm_maps *maps, struct nm_svc_index *idx,
		      const struct nm_frontend *fe);

/* The same with a scan per call. */
int nm_svc_upsert(struct nm_maps *maps, const struct nm_frontend *fe,
		  const struct nm_backend_spec *be, size_t n, __u8 algo);
int nm_svc_delete(struct nm_maps *maps, const struct nm_frontend *fe);

struct nm_svc_backend {
	__u32 id;
	struct nm_backend_val val;
};

struct nm_svc_info {
	struct nm_frontend fe;
	struct nm_svc_val val;
	struct nm_revnat_val revnat;
	bool has_revnat;
	struct nm_svc_backend *backends; /* points into nm_svc_list.backends */
	size_t n_backends;
};

struct nm_svc_list {
	struct nm_svc_info *svcs; /* sorted by svc_id */
	size_t n;
	struct nm_svc_backend *backends; /* grouped by service, sorted by id */
	size_t n_backends;
};

int nm_svc_list(const struct nm_maps *maps, struct nm_svc_list *out);
void nm_svc_list_free(struct nm_svc_list *list);

/*
 * A service the map sink programmed: it has backends, each tagged with a
 * cluster (what the sink sweeps and what diff compares).
 */
bool nm_svc_from_kvstore(const struct nm_svc_info *svc);
/*
 * Maglev table @t (maps->cfg.maglev_m slots) into @out, with @keys as
 * scratch of as many slots: one batch, or slot by slot. Returns -errno of
 * a slot that cannot be read, not logged: the caller says what it read for.
 */
int nm_svc_maglev_read(const struct nm_maps *maps, __u32 t, __u32 *keys,
		       __u32 *out);

/* Convert between the map key and the parsed frontend. */
void nm_svc_key_from_frontend(const struct nm_frontend *fe,
			      struct nm_svc_key *key);

#endif /* NM_AGENT_SVC_H */
