// SPDX-License-Identifier: GPL-2.0
/*
 * One cluster's kvstore mirrored through a sink (see agent/mirror.h).
 *
 * The thread lists the whole prefix, sweeps what the list did not show,
 * then watches from the list's revision + 1 until compaction (-ERANGE), a
 * different etcd (-ESTALE) or nm_mirror_relist() asks for a re-list
 * (the request ends the watch like a stop does, through @wake and the
 * waker, and is cleared as the list starts). The etcd layer resumes a
 * cut watch by itself; its on_stream callback says when the stream is up
 * (etcd's "created" message) and when it is lost, which is what the
 * connected flag shows.
 *
 * Mirrored keys live in an open-addressing hash table (linear probing,
 * backward-shift deletion, no tombstones) holding each key's last applied
 * mod_revision, so a re-list skips records it already has and the sweep
 * is one pass over the table.
 *
 * Keys whose sink upsert failed (a full map, -EAGAIN) wait in a small
 * pending set with their latest value: retried after 1 s, doubling to
 * 30 s, until they apply. A newer value of the key replaces the pending
 * one, a delete or a rejected value drops it, and a re-list drops those it
 * no longer shows. The retries run on the mirror thread: while a retry is
 * pending the watch ends at its due time and resumes after it (exactly
 * where it stopped), so the sink is still called from one thread only.
 * Failures are rare, so the set is a plain array; past MIRROR_PENDING_MAX
 * keys the rest wait for the next re-list.
 *
 * Stopping must not wait for a unary etcd call stuck on a hung server, so
 * every sink call and table change happens under @apply after checking
 * @stop: once nm_mirror_stop() has set @stop under that lock, the thread
 * never touches the sink again. If the thread does not end in time it is
 * detached and frees the mirror itself (reference count).
 *
 * Stopping has two phases so that many mirrors stop in the time of one:
 * nm_mirror_request_stop() sets @stop and wakes the thread wherever it
 * waits (the watch through its etcd waker, a backoff through @cond)
 * without waiting for anything; nm_mirror_stop() or nm_mirror_drain()
 * then takes @apply and joins, by MIRROR_STOP_WAIT_MS after the request,
 * not after the join began. The watch needs no polling for @stop: it
 * sleeps until woken (or 5 s, a safety net).
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/mirror.h"

#define MIRROR_PAGE_DEFAULT 5000
#define MIRROR_BACKOFF_MIN_MS 100
/*
 * Cap of the retry backoff, of lists and of the watch's reconnects alike:
 * once a dead etcd is back, the mirror finds it within this (jittered to
 * [cap/2, cap]), well inside the default 3 s heartbeat bound, so a
 * cluster is re-admitted seconds after it returns. A refused connect a
 * second per dead cluster costs nothing worth saving.
 */
#define MIRROR_BACKOFF_MAX_MS 1000
#define MIRROR_STOP_WAIT_MS 250
#define MIRROR_STACK_SIZE (1U << 20)
#define MIRROR_TAB_MIN 64
/* Rejections logged per window; the rest are only counted. */
#define MIRROR_LOG_BURST 10
#define MIRROR_LOG_WINDOW_NS (10ULL * 1000000000ULL)
#define MIRROR_RETRY_MIN_MS 1000
#define MIRROR_RETRY_MAX_MS 30000
#define MIRROR_PENDING_MAX 4096

struct mkey {
	char *key; /* NULL: free slot */
	__u64 hash;
	__s64 mod_rev; /* 0: apply again on the next list */
	__u32 gen; /* the list that last saw it */
};

struct ktab {
	struct mkey *v;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

/* A key whose last upsert failed, with the value to retry. */
struct pend {
	char *key;
	char *val;
	size_t len;
	__s64 mod_rev;
	__u32 gen; /* the list generation that last saw it */
	long backoff_ms;
	__u64 due_ns; /* CLOCK_MONOTONIC of the next try */
};

/* Where a put comes from. */
enum put_src { PUT_LIST, PUT_WATCH, PUT_RETRY };

struct nm_mirror {
	char *prefix;
	char *cluster;
	__u32 page_size;
	struct nm_kv_ctx ctx;
	struct nm_mirror_sink sink;
	struct nm_etcd *etcd;

	pthread_t thread;
	atomic_int refs;
	atomic_int stop;
	/* CLOCK_MONOTONIC by which a stop waits for the thread; 0: no request. */
	_Atomic __u64 stop_by_ns;
	/* Ends the watch in progress: stopping, a re-list asked, or a retry
	 * due before its end. */
	atomic_int wake;
	/* nm_mirror_relist() asked; cleared as a list starts. */
	atomic_int relist;
	struct nm_etcd_waker *waker; /* wakes the watch from another thread */
	bool watching; /* the thread is in nm_etcd_watch() */
	__u64 watch_end_ns; /* when that watch ends by itself; 0: never */
	bool halted;

	pthread_mutex_t lock; /* stats, cond */
	pthread_cond_t cond; /* wakes backoff sleeps on stop */
	struct nm_mirror_stats st;

	pthread_mutex_t apply; /* the table, pending set and every sink call */
	struct ktab keys;
	struct pend *pend;
	size_t n_pend, cap_pend;
	bool pend_full_logged;
	__u32 gen;
	unsigned int seed;
	__u64 log_window_ns;
	unsigned int log_n;
	unsigned long log_dropped;
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* FNV-1a: short keys, no adversary beyond a cluster we already trust to
 * bound its key count. */
static __u64 key_hash(const char *s)
{
	__u64 h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Key table. */

static long ktab_find(const struct ktab *t, const char *key, __u64 h)
{
	size_t mask = t->cap - 1, i;

	if (!t->cap)
		return -1;
	for (i = h & mask; t->v[i].key; i = (i + 1) & mask) {
		if (t->v[i].hash == h && !strcmp(t->v[i].key, key))
			return (long)i;
	}
	return -1;
}

static void ktab_place(struct mkey *v, size_t cap, const struct mkey *e)
{
	size_t mask = cap - 1, i;

	for (i = e->hash & mask; v[i].key; i = (i + 1) & mask)
		;
	v[i] = *e;
}

static int ktab_resize(struct ktab *t, size_t cap)
{
	struct mkey *v;
	size_t i;

	v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < t->cap; i++) {
		if (t->v[i].key)
			ktab_place(v, cap, &t->v[i]);
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	return 0;
}

/* Insert @key (absent); returns the slot index or -ENOMEM. */
static long ktab_insert(struct ktab *t, const char *key, __u64 h)
{
	struct mkey e = { .hash = h };
	size_t mask, i;
	int ret;

	/* Load factor at most 1/2 keeps probes short. */
	if ((t->n + 1) * 2 > t->cap) {
		ret = ktab_resize(t, t->cap ? t->cap * 2 : MIRROR_TAB_MIN);
		if (ret)
			return ret;
	}
	e.key = strdup(key);
	if (!e.key)
		return -ENOMEM;
	mask = t->cap - 1;
	for (i = h & mask; t->v[i].key; i = (i + 1) & mask)
		;
	t->v[i] = e;
	t->n++;
	return (long)i;
}

/*
 * Delete slot @i, shifting later members of its probe run back so no
 * tombstone is needed. Slot @i may then hold another key.
 */
static void ktab_delete_at(struct ktab *t, size_t i)
{
	size_t mask = t->cap - 1, j = i, home;

	free(t->v[i].key);
	t->v[i].key = NULL;
	t->n--;
	for (;;) {
		j = (j + 1) & mask;
		if (!t->v[j].key)
			break;
		home = t->v[j].hash & mask;
		/* Leave it if its home lies cyclically in (i, j]. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		t->v[i] = t->v[j];
		t->v[j].key = NULL;
		i = j;
	}
}

/* Give memory back after a large cluster shrank (best effort). */
static void ktab_maybe_shrink(struct ktab *t)
{
	size_t cap = t->cap;

	while (cap > MIRROR_TAB_MIN && t->n * 8 < cap)
		cap /= 2;
	if (cap != t->cap && ktab_resize(t, cap))
		pr_debug("could not shrink the mirror key table; keeping it");
}

static void ktab_free(struct ktab *t)
{
	size_t i;

	for (i = 0; i < t->cap; i++)
		free(t->v[i].key);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* Pending set; all called with @apply held. */

static long pend_find(const struct nm_mirror *m, const char *key)
{
	size_t i;

	for (i = 0; i < m->n_pend; i++)
		if (!strcmp(m->pend[i].key, key))
			return (long)i;
	return -1;
}

/* Order does not matter: the last entry fills the hole. */
static void pend_drop_at(struct nm_mirror *m, size_t i)
{
	free(m->pend[i].key);
	free(m->pend[i].val);
	m->pend[i] = m->pend[--m->n_pend];
}

static void pend_clear(struct nm_mirror *m, const char *key)
{
	long i;

	if (!m->n_pend)
		return;
	i = pend_find(m, key);
	if (i >= 0)
		pend_drop_at(m, (size_t)i);
}

/*
 * The upsert of @kv failed: keep it for a retry. A new value starts the
 * backoff over; a retry of the same one doubles it.
 */
static void pend_note(struct nm_mirror *m, const struct nm_etcd_kv *kv,
		      enum put_src src)
{
	struct pend *p, *nv;
	char *val;
	long i;

	i = pend_find(m, kv->key);
	if (i >= 0 && src == PUT_RETRY) {
		p = &m->pend[i];
		p->backoff_ms = p->backoff_ms * 2 > MIRROR_RETRY_MAX_MS ?
					MIRROR_RETRY_MAX_MS :
					p->backoff_ms * 2;
		goto out;
	}
	val = malloc(kv->value_len + 1);
	if (!val)
		goto err_mem;
	memcpy(val, kv->value, kv->value_len);
	val[kv->value_len] = '\0';
	if (i >= 0) {
		p = &m->pend[i];
		free(p->val);
	} else {
		if (m->n_pend == MIRROR_PENDING_MAX) {
			if (!m->pend_full_logged)
				pr_warn("mirror %s: %d keys wait for a retry; more failures wait for the next re-list",
					m->cluster, MIRROR_PENDING_MAX);
			m->pend_full_logged = true;
			free(val);
			return;
		}
		if (m->n_pend == m->cap_pend) {
			size_t cap = m->cap_pend ? m->cap_pend * 2 : 8;

			nv = realloc(m->pend, cap * sizeof(*nv));
			if (!nv)
				goto err_val;
			m->pend = nv;
			m->cap_pend = cap;
		}
		p = &m->pend[m->n_pend];
		memset(p, 0, sizeof(*p));
		p->key = strdup(kv->key);
		if (!p->key)
			goto err_val;
		m->n_pend++;
	}
	p->val = val;
	p->len = kv->value_len;
	p->mod_rev = kv->mod_revision;
	p->backoff_ms = MIRROR_RETRY_MIN_MS;
out:
	p->gen = m->gen;
	p->due_ns = mono_ns() + (__u64)p->backoff_ms * 1000000ULL;
	/* In a watch that would outlive the retry: end it, re-watch shorter. */
	if (m->watching && (!m->watch_end_ns || p->due_ns < m->watch_end_ns))
		atomic_store(&m->wake, 1);
	return;

err_val:
	free(val);
err_mem:
	pr_warn("mirror %s: out of memory; %.200s waits for the next re-list",
		m->cluster, kv->key);
}

/* After a list: what it did not show is gone (or never came back). */
static void pend_sweep(struct nm_mirror *m)
{
	size_t i = 0;

	while (i < m->n_pend) {
		if (m->pend[i].gen != m->gen) {
			pend_drop_at(m, i);
			continue;
		}
		i++;
	}
	if (!m->n_pend)
		m->pend_full_logged = false;
}

static void pend_free(struct nm_mirror *m)
{
	while (m->n_pend)
		pend_drop_at(m, m->n_pend - 1);
	free(m->pend);
	m->pend = NULL;
	m->cap_pend = 0;
}

/* Stats and errors. */

static void set_error(struct nm_mirror *m, const char *msg)
{
	pthread_mutex_lock(&m->lock);
	snprintf(m->st.last_error, sizeof(m->st.last_error), "%s", msg);
	m->st.last_error_mono_ns = mono_ns();
	pthread_mutex_unlock(&m->lock);
}

static void set_connected(struct nm_mirror *m, bool up)
{
	pthread_mutex_lock(&m->lock);
	m->st.connected = up;
	pthread_mutex_unlock(&m->lock);
}

/* Called with @apply held. */
static void sync_records(struct nm_mirror *m, __s64 revision)
{
	pthread_mutex_lock(&m->lock);
	m->st.records = m->keys.n;
	m->st.pending = m->n_pend;
	if (revision > m->st.revision)
		m->st.revision = revision;
	pthread_mutex_unlock(&m->lock);
}

/* A remote cluster could flood the log with bad records: a burst per window. */
static bool reject_log_ok(struct nm_mirror *m)
{
	__u64 now = mono_ns();

	if (now - m->log_window_ns > MIRROR_LOG_WINDOW_NS) {
		if (m->log_dropped)
			pr_warn("mirror %s: %lu more rejected records not logged",
				m->cluster, m->log_dropped);
		m->log_window_ns = now;
		m->log_n = 0;
		m->log_dropped = 0;
	}
	if (m->log_n < MIRROR_LOG_BURST) {
		m->log_n++;
		return true;
	}
	m->log_dropped++;
	return false;
}

static void reject(struct nm_mirror *m, const char *why)
{
	if (reject_log_ok(m))
		pr_warn("mirror %s: %s", m->cluster, why);
	pthread_mutex_lock(&m->lock);
	m->st.rejected++;
	snprintf(m->st.last_error, sizeof(m->st.last_error), "%s", why);
	m->st.last_error_mono_ns = mono_ns();
	pthread_mutex_unlock(&m->lock);
}

static void apply_error(struct nm_mirror *m, const char *verb, const char *key,
			int ret)
{
	char msg[NM_KV_ERR_LEN];

	snprintf(msg, sizeof(msg), "failed to %s %.500s on cluster %s: %s",
		 verb, key, m->cluster, strerror(-ret));
	pr_warn("%s", msg);
	pthread_mutex_lock(&m->lock);
	m->st.apply_errors++;
	snprintf(m->st.last_error, sizeof(m->st.last_error), "%s", msg);
	m->st.last_error_mono_ns = mono_ns();
	pthread_mutex_unlock(&m->lock);
}

/*
 * Remove the mirrored key in slot @i through the sink and forget it.
 * On a sink failure the slot stays, marked so the next list retries.
 * Called with @apply held. Returns true if slot @i was freed.
 */
static bool unmirror_at(struct nm_mirror *m, size_t i)
{
	struct mkey *e = &m->keys.v[i];
	char why[NM_KV_ERR_LEN];
	struct nm_kv_key k;
	int ret;

	ret = nm_kv_key_check(&m->ctx, e->key, &k, why, sizeof(why));
	if (!ret)
		ret = m->sink.remove(m->sink.arg, &k);
	if (ret) {
		apply_error(m, "remove", e->key, ret);
		e->mod_rev = 0;
		e->gen = 0;
		return false;
	}
	ktab_delete_at(&m->keys, i);
	return true;
}

/* Called with @apply held: has nm_mirror_stop() begun? */
static bool stopping(struct nm_mirror *m)
{
	return atomic_load(&m->stop) != 0;
}

/*
 * A PUT seen by a list, the watch, or retried from the pending set:
 * decode against the connection, hand a valid record to the sink, reject
 * the rest. Returns 0, -ECANCELED when stopping, or -ENOMEM.
 */
static int apply_put(struct nm_mirror *m, const struct nm_etcd_kv *kv,
		     enum put_src src)
{
	bool listing = src == PUT_LIST;
	char why[NM_KV_ERR_LEN];
	struct nm_kv_record rec;
	bool heartbeat = false, fresh;
	long i;
	__u64 h;
	int ret;

	pthread_mutex_lock(&m->apply);
	if (stopping(m)) {
		ret = -ECANCELED;
		goto out;
	}
	h = key_hash(kv->key);
	i = ktab_find(&m->keys, kv->key, h);
	/* A re-list only needs what changed since we applied it. */
	if (listing && i >= 0 && m->keys.v[i].mod_rev == kv->mod_revision &&
	    kv->mod_revision) {
		m->keys.v[i].gen = m->gen;
		ret = 0;
		goto out;
	}
	if (strlen(kv->key) != kv->key_len) {
		/* A NUL inside would alias a shorter key. */
		snprintf(why, sizeof(why),
			 "rejected %.200s from cluster %s: NUL byte in the key",
			 kv->key, m->cluster);
		ret = -EINVAL;
	} else {
		ret = nm_kv_decode(&m->ctx, kv->key, kv->value, kv->value_len,
				   &rec, why, sizeof(why));
	}
	if (ret == -ENOMEM)
		goto out;
	if (ret) {
		reject(m, why);
		pend_clear(m, kv->key);
		/* The cluster no longer stands behind the old value. */
		if (i >= 0)
			unmirror_at(m, i);
		ret = 0;
		goto out_sync;
	}
	if (rec.key.type == NM_KV_T_HEARTBEAT)
		heartbeat = i < 0 || m->keys.v[i].mod_rev != kv->mod_revision;
	fresh = i < 0;
	if (fresh) {
		/* Track first, so a sink success is never left untracked. */
		i = ktab_insert(&m->keys, kv->key, h);
		if (i < 0) {
			ret = (int)i;
			goto out_rec;
		}
		m->keys.v[i].mod_rev = 0;
	}
	ret = m->sink.upsert(m->sink.arg, &rec);
	if (ret) {
		apply_error(m, "upsert", kv->key, ret);
		ret = 0;
		pend_note(m, kv, src);
		if (fresh) {
			/* Nothing of it reached the sink: not mirrored yet. */
			ktab_delete_at(&m->keys, i);
			goto out_rec;
		}
		/* The sink holds the old value; a re-list re-applies too. */
		m->keys.v[i].mod_rev = 0;
	} else {
		pend_clear(m, kv->key);
		m->keys.v[i].mod_rev = kv->mod_revision;
	}
	m->keys.v[i].gen = m->gen;
	if (heartbeat) {
		pthread_mutex_lock(&m->lock);
		m->st.last_heartbeat_mono_ns = mono_ns();
		pthread_mutex_unlock(&m->lock);
	}
out_rec:
	nm_kv_record_free(&rec);
out_sync:
	sync_records(m, src == PUT_WATCH ? kv->mod_revision : 0);
out:
	pthread_mutex_unlock(&m->apply);
	return ret;
}

static int apply_delete(struct nm_mirror *m, const struct nm_etcd_kv *kv)
{
	int ret = 0;
	long i;

	pthread_mutex_lock(&m->apply);
	if (stopping(m)) {
		ret = -ECANCELED;
		goto out;
	}
	pend_clear(m, kv->key);
	/* Only mirrored keys matter; they were validated on the way in. */
	i = ktab_find(&m->keys, kv->key, key_hash(kv->key));
	if (i >= 0 && strlen(kv->key) == kv->key_len)
		unmirror_at(m, i);
	sync_records(m, kv->mod_revision);
out:
	pthread_mutex_unlock(&m->apply);
	return ret;
}

/*
 * Keys under <prefix>policies/ and <prefix>services/ are the cluster's
 * manifests (MeshServices reach peers as state/services/ records).
 */
static bool ignored(const struct nm_mirror *m, const char *key)
{
	size_t plen = strlen(m->prefix);

	return !strncmp(key, m->prefix, plen) &&
	       (!strncmp(key + plen, "policies/", 9) ||
		!strncmp(key + plen, "services/", 9));
}

static int list_cb(const struct nm_etcd_kv *kv, void *arg)
{
	struct nm_mirror *m = arg;

	if (ignored(m, kv->key))
		return 0;
	return apply_put(m, kv, PUT_LIST);
}

/* Remove every key the last list did not show. Called with @apply held. */
static void sweep(struct nm_mirror *m)
{
	size_t i = 0;

	while (i < m->keys.cap) {
		struct mkey *e = &m->keys.v[i];

		/* A freed slot may refill by the shift: look at it again. */
		if (e->key && e->gen != m->gen && unmirror_at(m, i))
			continue;
		i++;
	}
	ktab_maybe_shrink(&m->keys);
}

/*
 * List the prefix at one revision, mark what it shows, sweep the rest.
 * *@asked: the relist_asked this list answers (read as it starts, so a
 * request during the list gets a list of its own).
 */
static int mirror_list(struct nm_mirror *m, __s64 *revision, __u64 *asked)
{
	struct nm_etcd_range_opts o = { .key = m->prefix,
					.prefix = true,
					.page_size = m->page_size };
	struct nm_etcd_err err = { { 0 } };
	__s64 rev = 0;
	int ret;

	pthread_mutex_lock(&m->lock);
	atomic_store(&m->relist, 0);
	*asked = m->st.relist_asked;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_lock(&m->apply);
	if (++m->gen == 0)
		m->gen = 1;
	pthread_mutex_unlock(&m->apply);
	ret = nm_etcd_range_each(m->etcd, &o, list_cb, m, &rev, &err);
	if (ret == -ECANCELED)
		return ret;
	if (ret) {
		/* A failure of our own callback leaves @err empty. */
		if (!err.msg[0])
			snprintf(err.msg, sizeof(err.msg),
				 "failed to apply %s on cluster %s: %s",
				 m->prefix, m->cluster, strerror(-ret));
		pr_warn("mirror %s: %s", m->cluster, err.msg);
		set_error(m, err.msg);
		return ret;
	}
	pthread_mutex_lock(&m->apply);
	if (stopping(m)) {
		pthread_mutex_unlock(&m->apply);
		return -ECANCELED;
	}
	sweep(m);
	pend_sweep(m);
	sync_records(m, rev);
	pthread_mutex_unlock(&m->apply);
	*revision = rev;
	return 0;
}

/* Milliseconds until the next pending retry is due (>= 1), 0: none. */
static long next_retry_ms(struct nm_mirror *m)
{
	__u64 now = mono_ns(), due = UINT64_MAX;
	size_t i;

	pthread_mutex_lock(&m->apply);
	for (i = 0; i < m->n_pend; i++)
		if (m->pend[i].due_ns < due)
			due = m->pend[i].due_ns;
	pthread_mutex_unlock(&m->apply);
	if (due == UINT64_MAX)
		return 0;
	return due <= now ? 1 : (long)((due - now + 999999) / 1000000);
}

/*
 * Retry every pending key that is due. Each try either applies the key
 * (dropped from the set), drops it as rejected, or moves its due time
 * past now, so the loop ends; the bound is a safety net.
 */
static int retry_due(struct nm_mirror *m)
{
	struct nm_etcd_kv kv = {};
	size_t tries, i;
	__u64 now;
	int ret = 0;

	pthread_mutex_lock(&m->apply);
	tries = m->n_pend;
	pthread_mutex_unlock(&m->apply);
	for (; tries && !ret; tries--) {
		now = mono_ns();
		pthread_mutex_lock(&m->apply);
		for (i = 0; i < m->n_pend && m->pend[i].due_ns > now; i++)
			;
		if (i == m->n_pend) {
			pthread_mutex_unlock(&m->apply);
			break;
		}
		/* Copies: a success frees the entry while the kv is in use. */
		kv.key = strdup(m->pend[i].key);
		kv.key_len = kv.key ? strlen(kv.key) : 0;
		kv.value = malloc(m->pend[i].len + 1);
		kv.value_len = m->pend[i].len;
		kv.mod_revision = m->pend[i].mod_rev;
		if (kv.value)
			memcpy(kv.value, m->pend[i].val, m->pend[i].len + 1);
		pthread_mutex_unlock(&m->apply);
		ret = kv.key && kv.value ? apply_put(m, &kv, PUT_RETRY) :
					   -ENOMEM;
		free(kv.value);
		free(kv.key);
	}
	if (ret == -ENOMEM)
		pr_warn("mirror %s: out of memory retrying pending keys",
			m->cluster);
	return ret;
}

struct watch_arg {
	struct nm_mirror *m;
	const struct nm_etcd_watch_state *st;
	unsigned int reconnects_counted; /* already added to the stats */
};

/* Add the watch's reconnects since the last call to the stats. */
static void count_reconnects(struct watch_arg *w)
{
	unsigned int n = w->st->reconnects - w->reconnects_counted;

	if (!n)
		return;
	pthread_mutex_lock(&w->m->lock);
	w->m->st.reconnects += n;
	pthread_mutex_unlock(&w->m->lock);
	w->reconnects_counted = w->st->reconnects;
}

/* The etcd layer tells when the stream comes up and when it is lost. */
static void watch_stream(void *arg, bool up)
{
	struct watch_arg *w = arg;

	count_reconnects(w);
	set_connected(w->m, up);
}

static int watch_cb(const struct nm_etcd_event *ev, void *arg)
{
	struct watch_arg *w = arg;
	struct nm_mirror *m = w->m;

	if (ignored(m, ev->kv.key))
		return 0;
	if (ev->type == NM_ETCD_DELETE)
		return apply_delete(m, &ev->kv);
	return apply_put(m, &ev->kv, PUT_WATCH);
}

/*
 * Watch from *@revision + 1 until stopped, an error, or the next pending
 * retry is due; advances *@revision.
 */
static int mirror_watch(struct nm_mirror *m, __s64 *revision)
{
	struct nm_etcd_watch_state st = { 0 };
	struct watch_arg w = { .m = m, .st = &st };
	struct nm_etcd_watch_opts o = { .key = m->prefix,
					.prefix = true,
					.start_revision = *revision + 1,
					.cb = watch_cb,
					.on_stream = watch_stream,
					.arg = &w,
					.stop = &m->wake,
					.waker = m->waker,
					.backoff_max_ms = MIRROR_BACKOFF_MAX_MS };
	struct nm_etcd_err err = { { 0 } };
	int ret;

	/* Cleared before stop is looked at: a stop after this still ends it. */
	atomic_store(&m->wake, 0);
	if (atomic_load(&m->stop))
		return -ECANCELED;
	if (atomic_load(&m->relist))
		return 0;
	o.timeout_ms = next_retry_ms(m);
	m->watch_end_ns =
		o.timeout_ms ? mono_ns() + (__u64)o.timeout_ms * 1000000ULL : 0;
	m->watching = true;
	ret = nm_etcd_watch(m->etcd, &o, &st, &err);
	m->watching = false;
	if (st.last_revision > *revision)
		*revision = st.last_revision;
	count_reconnects(&w);
	pthread_mutex_lock(&m->lock);
	if (*revision > m->st.revision)
		m->st.revision = *revision;
	pthread_mutex_unlock(&m->lock);
	if (ret == -ERANGE) {
		/* Routine after a long cut: not an error to show. */
		pr_info("mirror %s: %s", m->cluster, err.msg);
	} else if (ret && ret != -ECANCELED) {
		if (!err.msg[0])
			snprintf(err.msg, sizeof(err.msg),
				 "failed to apply %s on cluster %s: %s",
				 m->prefix, m->cluster, strerror(-ret));
		pr_warn("mirror %s: %s", m->cluster, err.msg);
		set_error(m, err.msg);
	}
	return ret;
}

/* Another etcd answers: its revisions mean nothing next to ours. */
static void forget_revisions(struct nm_mirror *m)
{
	size_t i;

	nm_etcd_forget_cluster_id(m->etcd);
	pthread_mutex_lock(&m->apply);
	for (i = 0; i < m->keys.cap; i++)
		m->keys.v[i].mod_rev = 0;
	pthread_mutex_unlock(&m->apply);
	pthread_mutex_lock(&m->lock);
	m->st.revision = 0;
	pthread_mutex_unlock(&m->lock);
}

/* Sleep with jitter in [b/2, b], woken early by a stop or re-list request. */
static void backoff_sleep(struct nm_mirror *m, long *backoff)
{
	long ms = *backoff / 2 + rand_r(&m->seed) % (*backoff / 2 + 1);
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&m->lock);
	while (!atomic_load(&m->stop) && !atomic_load(&m->relist) &&
	       pthread_cond_timedwait(&m->cond, &m->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&m->lock);
	*backoff = *backoff * 2 > MIRROR_BACKOFF_MAX_MS ?
			   MIRROR_BACKOFF_MAX_MS :
			   *backoff * 2;
}

static void mirror_put(struct nm_mirror *m)
{
	if (atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	ktab_free(&m->keys);
	pend_free(m);
	nm_etcd_waker_free(m->waker);
	nm_etcd_close(m->etcd);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->apply);
	pthread_mutex_destroy(&m->lock);
	free(m->cluster);
	free(m->prefix);
	free(m);
}

static void *mirror_thread(void *arg)
{
	long backoff = MIRROR_BACKOFF_MIN_MS;
	struct nm_mirror *m = arg;
	bool need_list = true;
	__u64 asked = 0;
	__s64 rev = 0;
	int ret;

	while (!atomic_load(&m->stop)) {
		if (atomic_load(&m->relist))
			need_list = true;
		if (need_list) {
			ret = mirror_list(m, &rev, &asked);
			if (ret == -ECANCELED)
				break;
			if (ret == -ESTALE) {
				pr_info("mirror %s: a different etcd answers on %s; re-listing",
					m->cluster, nm_etcd_endpoint(m->etcd));
				forget_revisions(m);
				continue;
			}
			if (ret) {
				set_connected(m, false);
				backoff_sleep(m, &backoff);
				continue;
			}
			pthread_mutex_lock(&m->lock);
			if (m->st.synced)
				m->st.relists++;
			m->st.relist_done = asked;
			m->st.synced = true;
			m->st.connected = true;
			pthread_mutex_unlock(&m->lock);
			backoff = MIRROR_BACKOFF_MIN_MS;
			need_list = false;
		}
		ret = mirror_watch(m, &rev);
		if (!ret) {
			retry_due(m);
			continue;
		}
		if (ret == -ECANCELED)
			continue;
		need_list = true;
		if (ret == -ERANGE)
			continue;
		if (ret == -ESTALE) {
			forget_revisions(m);
			continue;
		}
		/* Refused or garbled: wait, then start over from a list. */
		set_connected(m, false);
		backoff_sleep(m, &backoff);
	}
	set_connected(m, false);
	mirror_put(m);
	return NULL;
}

static int dup_str(const char *s, char **out)
{
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

int nm_mirror_start(const struct nm_mirror_conf *conf,
		    const struct nm_mirror_sink *sink, struct nm_mirror **out,
		    char *err, size_t errlen)
{
	const char *prefix = conf->prefix ? conf->prefix : NM_KV_PREFIX_DEFAULT;
	const char *name = conf->cluster ? conf->cluster : "(none)";
	struct nm_etcd_err eerr = { { 0 } };
	bool said = false;
	pthread_condattr_t ca;
	pthread_attr_t attr;
	struct nm_mirror *m;
	int ret;

	*out = NULL;
	if (!conf->cluster || !nm_dns_label_ok(conf->cluster) ||
	    !conf->cluster_id || !sink || !sink->upsert || !sink->remove ||
	    !prefix[0] || strlen(prefix) > NM_KV_PREFIX_MAX) {
		snprintf(
			err, errlen,
			"failed to start mirror of cluster %s: need a cluster name (DNS label), an id 1..65535, a prefix and both sink callbacks",
			name);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		ret = -ENOMEM;
		goto out_msg;
	}
	ret = dup_str(prefix, &m->prefix);
	if (ret)
		goto out_free;
	ret = dup_str(conf->cluster, &m->cluster);
	if (ret)
		goto out_free;
	m->page_size = conf->page_size ? conf->page_size : MIRROR_PAGE_DEFAULT;
	m->ctx.prefix = m->prefix;
	m->ctx.cluster = m->cluster;
	m->ctx.cluster_id = conf->cluster_id;
	m->sink = *sink;
	m->seed = (unsigned int)mono_ns() ^ (unsigned int)(uintptr_t)m;
	atomic_init(&m->refs, 2); /* the caller's and the thread's */
	atomic_init(&m->stop, 0);
	atomic_init(&m->stop_by_ns, 0);
	atomic_init(&m->wake, 0);
	atomic_init(&m->relist, 0);

	ret = nm_etcd_open(&conf->etcd, &m->etcd, &eerr);
	if (ret) {
		snprintf(err, errlen,
			 "failed to start mirror of cluster %s: %s", name,
			 eerr.msg);
		said = true;
		goto out_free;
	}
	ret = nm_etcd_waker_new(&m->waker);
	if (ret)
		goto out_etcd;
	ret = -pthread_mutex_init(&m->lock, NULL);
	if (ret)
		goto out_waker;
	ret = -pthread_mutex_init(&m->apply, NULL);
	if (ret)
		goto out_lock;
	ret = -pthread_condattr_init(&ca);
	if (ret)
		goto out_apply;
	ret = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!ret)
		ret = -pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (ret)
		goto out_apply;
	ret = -pthread_attr_init(&attr);
	if (ret)
		goto out_cond;
	/* Hundreds of mirrors: no need for 8 MiB of stack each. */
	ret = -pthread_attr_setstacksize(&attr, MIRROR_STACK_SIZE);
	if (!ret)
		ret = -pthread_create(&m->thread, &attr, mirror_thread, m);
	pthread_attr_destroy(&attr);
	if (ret)
		goto out_cond;
	*out = m;
	return 0;

out_cond:
	pthread_cond_destroy(&m->cond);
out_apply:
	pthread_mutex_destroy(&m->apply);
out_lock:
	pthread_mutex_destroy(&m->lock);
out_waker:
	nm_etcd_waker_free(m->waker);
out_etcd:
	nm_etcd_close(m->etcd);
out_free:
	free(m->cluster);
	free(m->prefix);
	free(m);
out_msg:
	if (!said)
		snprintf(err, errlen,
			 "failed to start mirror of cluster %s: %s", name,
			 strerror(-ret));
	return ret;
}

void nm_mirror_request_stop(struct nm_mirror *m)
{
	__u64 none = 0, by;

	if (!m)
		return;
	/* The first request starts the clock of the join. */
	by = mono_ns() + MIRROR_STOP_WAIT_MS * 1000000ULL;
	atomic_compare_exchange_strong(&m->stop_by_ns, &none, by);
	/* Stop first, then wake: whatever wakes sees it. */
	atomic_store(&m->stop, 1);
	atomic_store(&m->wake, 1);
	pthread_mutex_lock(&m->lock);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	nm_etcd_waker_wake(m->waker);
}

/*
 * End the thread's work: after this returns no sink call is made by it.
 * It is joined when it ends by MIRROR_STOP_WAIT_MS after the stop was
 * requested, else detached to finish on its own.
 */
static void mirror_halt(struct nm_mirror *m)
{
	__u64 now, left;
	struct timespec ts;
	int ret;

	if (m->halted)
		return;
	m->halted = true;
	nm_mirror_request_stop(m);
	/* Under @apply: waits out a sink call in flight. */
	pthread_mutex_lock(&m->apply);
	atomic_store(&m->stop, 1);
	pthread_mutex_unlock(&m->apply);

	/* pthread_timedjoin_np() wants CLOCK_REALTIME. */
	now = mono_ns();
	left = atomic_load(&m->stop_by_ns);
	left = left > now ? left - now : 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(left / 1000000000ULL);
	ts.tv_nsec += (long)(left % 1000000000ULL);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	ret = pthread_timedjoin_np(m->thread, NULL, &ts);
	if (ret) {
		/* Stuck in a unary etcd call; it frees the mirror when done. */
		pr_info("mirror %s: thread still in an etcd call; detaching it",
			m->cluster);
		pthread_detach(m->thread);
	}
}

void nm_mirror_stop(struct nm_mirror *m)
{
	if (!m)
		return;
	mirror_halt(m);
	mirror_put(m);
}

int nm_mirror_drain(struct nm_mirror *m)
{
	size_t i = 0;
	int ret = 0;

	if (!m)
		return 0;
	mirror_halt(m);
	pthread_mutex_lock(&m->apply);
	while (i < m->keys.cap) {
		if (m->keys.v[i].key) {
			if (unmirror_at(m, i))
				continue;
			ret = -EIO;
		}
		i++;
	}
	sync_records(m, 0);
	pthread_mutex_unlock(&m->apply);
	mirror_put(m);
	return ret;
}

int nm_mirror_relist(struct nm_mirror *m)
{
	if (atomic_load(&m->stop))
		return -ECANCELED;
	pthread_mutex_lock(&m->lock);
	m->st.relist_asked++;
	/* Flag first, then wake: whatever wakes sees it (as with stop). */
	atomic_store(&m->relist, 1);
	atomic_store(&m->wake, 1);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	nm_etcd_waker_wake(m->waker);
	return 0;
}

void nm_mirror_get_stats(struct nm_mirror *m, struct nm_mirror_stats *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->st;
	pthread_mutex_unlock(&m->lock);
}

const char *nm_mirror_cluster(const struct nm_mirror *m)
{
	return m->cluster;
}
