// SPDX-License-Identifier: GPL-2.0
/*
 * Mirroring one cluster's kvstore: list the cluster's prefix, then watch
 * it from the listed revision + 1, decode and validate every record
 * against the connection (agent/kvstore.h) and hand valid ones to a sink.
 * One thread per cluster (see docs/ARCHITECTURE.md, etcd transport).
 *
 * Mark-and-sweep: every (re-)list marks what it saw; keys mirrored before
 * but absent from the new list are removed through the sink, so nothing
 * stale survives a compaction, an etcd restart with a new cluster_id, a
 * reconnect, or a cluster cut off for a while (the daemon asks for a
 * re-list when its heartbeats resume). A rejected record never reaches
 * the sink; it is counted and its reason kept as the cluster's last
 * error. A rejected PUT of a key mirrored before removes the old value
 * (the cluster no longer stands behind it).
 */
#ifndef NM_AGENT_MIRROR_H
#define NM_AGENT_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"

/*
 * Where valid records go. Called from the mirror's thread; several
 * mirrors share one sink, so the sink serialises itself. A non-zero
 * upsert is logged and counted (apply_errors, every try) and the key is
 * kept pending with its latest value: retried after 1 s, doubling up to
 * 30 s, until it applies; a newer value replaces the pending one, a
 * delete (or a rejected value) drops it, a re-list retries it at once.
 * A failed remove is retried on the next re-list.
 */
struct nm_mirror_sink {
	int (*upsert)(void *arg, const struct nm_kv_record *rec);
	int (*remove)(void *arg, const struct nm_kv_key *key);
	void *arg;
};

struct nm_mirror_conf {
	struct nm_etcd_config etcd; /* endpoints, TLS, credentials */
	const char *prefix; /* kvstore prefix, NULL: NM_KV_PREFIX_DEFAULT */
	const char *cluster; /* expected cluster name */
	__u16 cluster_id; /* expected cluster id */
	__u32 page_size; /* range page size, 0: 5000 */
};

struct nm_mirror_stats {
	bool connected; /* the watch stream is up */
	bool synced; /* the first list completed */
	__s64 revision; /* last revision applied */
	__u64 records; /* keys currently mirrored */
	__u64 rejected; /* records refused by validation, ever */
	__u64 apply_errors; /* sink failures, ever */
	__u64 pending; /* keys waiting for a retry of a failed upsert */
	__u64 relists; /* lists after the first (compaction, restart, asked) */
	__u64 relist_asked; /* nm_mirror_relist() calls */
	/* relist_asked as of the start of the last completed list: a re-list
	 * asked when relist_asked was N has completed once this is >= N */
	__u64 relist_done;
	__u64 reconnects; /* watch reconnects */
	__u64 last_heartbeat_mono_ns; /* CLOCK_MONOTONIC of the last heartbeat change; 0 never */
	__u64 last_error_mono_ns;
	char last_error[NM_KV_ERR_LEN]; /* "" when none */
};

struct nm_mirror;

/* Start mirroring in a new thread. The strings in @conf are copied. */
int nm_mirror_start(const struct nm_mirror_conf *conf,
		    const struct nm_mirror_sink *sink, struct nm_mirror **out,
		    char *err, size_t errlen);
/*
 * Tell the thread to stop and wake it wherever it waits; returns at once.
 * The mirror stays the caller's: finish with nm_mirror_stop() or
 * nm_mirror_drain(), which are then quick (the thread has usually ended
 * by the time they join it). Stopping many mirrors: request every stop
 * first, then stop or drain each, so they wind down in parallel. A sink
 * call may still run until the stop or drain returns. NULL is a no-op.
 */
void nm_mirror_request_stop(struct nm_mirror *m);
/*
 * Stop the thread and free; mirrored keys stay. After it returns the
 * thread makes no sink call. Waits for the thread up to 250 ms after the
 * stop was requested (here or by nm_mirror_request_stop()), then leaves a
 * thread stuck in a unary etcd call to end on its own.
 */
void nm_mirror_stop(struct nm_mirror *m);
/* Stop, then remove every mirrored key through the sink, then free. */
int nm_mirror_drain(struct nm_mirror *m);
/*
 * List the cluster again (mark-and-sweep, as after a compaction), even
 * if its etcd answers with the same revision: the daemon asks after a
 * cluster was cut off, so that keys deleted meanwhile surely go. Bumps
 * relist_asked, wakes the thread wherever it waits (watch, backoff) and
 * returns at once; the re-list has completed when relist_done reaches
 * the relist_asked read after this call. A list already running does
 * not count: another one follows it. 0, or -ECANCELED once a stop was
 * requested.
 */
int nm_mirror_relist(struct nm_mirror *m);
/* A consistent copy of the counters. */
void nm_mirror_get_stats(struct nm_mirror *m, struct nm_mirror_stats *out);
const char *nm_mirror_cluster(const struct nm_mirror *m);

#endif /* NM_AGENT_MIRROR_H */
