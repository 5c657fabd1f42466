// SPDX-License-Identifier: GPL-2.0
/*
 * One cluster's kvstore mirrored through a sink (see agent/mirror.h).
 *
 * The thread lists the whole prefix, sweeps what the list did not show,
 * then watches from the list's revision + 1 until compaction (-ERANGE) or
 * a different etcd (-ESTALE) asks for a re-list. The etcd layer resumes a
 * cut watch by itself and hides the cut; to tell whether the stream is up,
 * the watch runs in slices of MIRROR_SLICE_MS (each resumes exactly where
 * the last one ended) and a slice that needed a reconnect after its last
 * event marks the mirror disconnected until a clean slice or a new event.
 *
 * Mirrored keys live in an open-addressing hash table (linear probing,
 * backward-shift deletion, no tombstones) holding each key's last applied
 * mod_revision, so a re-list skips records it already has and the sweep
 * is one pass over the table.
 *
 * Stopping must not wait for a unary etcd call stuck on a hung server, so
 * every sink call and table change happens under @apply after checking
 * @stop: once nm_mirror_stop() has set @stop under that lock, the thread
 * never touches the sink again. If the thread does not end in time it is
 * detached and frees the mirror itself (reference count).
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
#define MIRROR_BACKOFF_MAX_MS 5000
#define MIRROR_SLICE_MS 5000
#define MIRROR_STOP_WAIT_MS 250
#define MIRROR_STACK_SIZE (1U << 20)
#define MIRROR_TAB_MIN 64
/* Rejections logged per window; the rest are only counted. */
#define MIRROR_LOG_BURST 10
#define MIRROR_LOG_WINDOW_NS (10ULL * 1000000000ULL)

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
	bool halted;

	pthread_mutex_t lock; /* stats, cond */
	pthread_cond_t cond; /* wakes backoff sleeps on stop */
	struct nm_mirror_stats st;

	pthread_mutex_t apply; /* the table and every sink call */
	struct ktab keys;
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
 * A PUT seen by a list (@listing) or the watch: decode against the
 * connection, hand a valid record to the sink, reject the rest. Returns
 * 0, -ECANCELED when stopping, or -ENOMEM.
 */
static int apply_put(struct nm_mirror *m, const struct nm_etcd_kv *kv,
		     bool listing)
{
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
		if (fresh) {
			/* Nothing of it reached the sink: retried on re-list. */
			ktab_delete_at(&m->keys, i);
			goto out_rec;
		}
		m->keys.v[i].mod_rev = 0;
	} else {
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
	sync_records(m, listing ? 0 : kv->mod_revision);
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
	/* Only mirrored keys matter; they were validated on the way in. */
	i = ktab_find(&m->keys, kv->key, key_hash(kv->key));
	if (i >= 0 && strlen(kv->key) == kv->key_len)
		unmirror_at(m, i);
	sync_records(m, kv->mod_revision);
out:
	pthread_mutex_unlock(&m->apply);
	return ret;
}

/* Keys under <prefix>policies/ are the local cluster's manifests. */
static bool ignored(const struct nm_mirror *m, const char *key)
{
	size_t plen = strlen(m->prefix);

	return !strncmp(key, m->prefix, plen) &&
	       !strncmp(key + plen, "policies/", 9);
}

static int list_cb(const struct nm_etcd_kv *kv, void *arg)
{
	struct nm_mirror *m = arg;

	if (ignored(m, kv->key))
		return 0;
	return apply_put(m, kv, true);
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

/* List the prefix at one revision, mark what it shows, sweep the rest. */
static int mirror_list(struct nm_mirror *m, __s64 *revision)
{
	struct nm_etcd_range_opts o = { .key = m->prefix,
					.prefix = true,
					.page_size = m->page_size };
	struct nm_etcd_err err = { { 0 } };
	__s64 rev = 0;
	int ret;

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
	sync_records(m, rev);
	pthread_mutex_unlock(&m->apply);
	*revision = rev;
	return 0;
}

struct watch_arg {
	struct nm_mirror *m;
	const struct nm_etcd_watch_state *st;
	bool seen; /* an event arrived in this slice */
	unsigned int reconnects_seen; /* st->reconnects at the last event */
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

static int watch_cb(const struct nm_etcd_event *ev, void *arg)
{
	struct watch_arg *w = arg;
	struct nm_mirror *m = w->m;

	/* An event arrived: the stream is up right now. */
	if (!w->seen || w->reconnects_seen != w->st->reconnects) {
		count_reconnects(w);
		set_connected(m, true);
	}
	w->seen = true;
	w->reconnects_seen = w->st->reconnects;
	if (ignored(m, ev->kv.key))
		return 0;
	if (ev->type == NM_ETCD_DELETE)
		return apply_delete(m, &ev->kv);
	return apply_put(m, &ev->kv, false);
}

/* One watch slice from *@revision + 1; advances *@revision. */
static int mirror_watch(struct nm_mirror *m, __s64 *revision)
{
	struct nm_etcd_watch_state st = { 0 };
	struct watch_arg w = { .m = m, .st = &st };
	struct nm_etcd_watch_opts o = { .key = m->prefix,
					.prefix = true,
					.start_revision = *revision + 1,
					.cb = watch_cb,
					.arg = &w,
					.stop = &m->stop,
					.timeout_ms = MIRROR_SLICE_MS };
	struct nm_etcd_err err = { { 0 } };
	int ret;

	ret = nm_etcd_watch(m->etcd, &o, &st, &err);
	if (st.last_revision > *revision)
		*revision = st.last_revision;
	count_reconnects(&w);
	pthread_mutex_lock(&m->lock);
	if (*revision > m->st.revision)
		m->st.revision = *revision;
	/* A reconnect after the last event: up again is not known yet. */
	if (!ret && !atomic_load(&m->stop))
		m->st.connected = st.reconnects == w.reconnects_seen;
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

/* Sleep with jitter in [b/2, b], woken early by nm_mirror_stop(). */
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
	while (!atomic_load(&m->stop) &&
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
	__s64 rev = 0;
	int ret;

	while (!atomic_load(&m->stop)) {
		if (need_list) {
			ret = mirror_list(m, &rev);
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
			m->st.synced = true;
			m->st.connected = true;
			pthread_mutex_unlock(&m->lock);
			backoff = MIRROR_BACKOFF_MIN_MS;
			need_list = false;
		}
		ret = mirror_watch(m, &rev);
		if (!ret || ret == -ECANCELED)
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

	ret = nm_etcd_open(&conf->etcd, &m->etcd, &eerr);
	if (ret) {
		snprintf(err, errlen,
			 "failed to start mirror of cluster %s: %s", name,
			 eerr.msg);
		said = true;
		goto out_free;
	}
	ret = -pthread_mutex_init(&m->lock, NULL);
	if (ret)
		goto out_etcd;
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

/*
 * End the thread's work: after this returns no sink call is made by it.
 * It is joined when it ends in time, else detached to finish on its own.
 */
static void mirror_halt(struct nm_mirror *m)
{
	struct timespec ts;
	int ret;

	if (m->halted)
		return;
	m->halted = true;
	/* Under @apply: waits out a sink call in flight. */
	pthread_mutex_lock(&m->apply);
	atomic_store(&m->stop, 1);
	pthread_mutex_unlock(&m->apply);
	pthread_mutex_lock(&m->lock);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += MIRROR_STOP_WAIT_MS * 1000000L;
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
