// SPDX-License-Identifier: GPL-2.0
/*
 * kvstore sync figures: a real etcd on 127.0.0.1 (tests/lib/etcd_srv,
 * killed and removed on every way out) holding 100k endpoint and 10k
 * service records of cluster "east", mirrored by agent/mirror.c:
 *
 *   sync_initial_100k_s   mirror start until the first list is applied
 *   sync_records_per_s    records / that time
 *   propagation_p50_ms    1,000 sequential endpoint puts, each from just
 *   propagation_p99_ms    before the put call until the sink's upsert of
 *                         that key (CLOCK_MONOTONIC, one process)
 *
 * The sink is a counting one: no maps. It wraps an optional inner sink so
 * the map sink (agent/sink.h) can be measured the same way once it exists.
 * Prints figures only; never judges them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "agent/log.h"
#include "agent/mirror.h"
#include "tests/lib/etcd_srv.h"
#include "tests/lib/kv_fx.h"

#define NR_ENDPOINTS 100000
#define NR_SERVICES 10000
#define NR_PROP 1000
#define PROP_NAME "prop-"
#define SYNC_TIMEOUT_S 60
#define PROP_TIMEOUT_S 5

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* Counts, timestamps the propagation keys, then forwards (if @inner). */
struct bench_sink {
	const struct nm_mirror_sink *inner;
	atomic_ulong upserts;
	atomic_ulong removes;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	__u64 seen_ns[NR_PROP];
};

static int bs_upsert(void *arg, const struct nm_kv_record *rec)
{
	struct bench_sink *b = arg;
	int ret = 0;
	long idx;

	if (b->inner)
		ret = b->inner->upsert(b->inner->arg, rec);
	atomic_fetch_add(&b->upserts, 1);
	if (rec->key.type == NM_KV_T_ENDPOINT &&
	    !strncmp(rec->key.name, PROP_NAME, strlen(PROP_NAME))) {
		idx = strtol(rec->key.name + strlen(PROP_NAME), NULL, 10);
		if (idx >= 0 && idx < NR_PROP) {
			pthread_mutex_lock(&b->lock);
			b->seen_ns[idx] = mono_ns();
			pthread_cond_broadcast(&b->cond);
			pthread_mutex_unlock(&b->lock);
		}
	}
	return ret;
}

static int bs_remove(void *arg, const struct nm_kv_key *key)
{
	struct bench_sink *b = arg;

	atomic_fetch_add(&b->removes, 1);
	return b->inner ? b->inner->remove(b->inner->arg, key) : 0;
}

/* 100k endpoints and 10k services in txns of FX_TXN_OPS puts. */
static int fill(struct nm_etcd *c, const struct nm_kv_ctx *ctx)
{
	struct fx_txn txn = { 0 };
	struct fx_kv kv;
	char name[32];
	int i, ret = 0;

	for (i = 0; i < NR_ENDPOINTS + NR_SERVICES && !ret; i++) {
		if (i < NR_ENDPOINTS) {
			snprintf(name, sizeof(name), "ep-%06d", i);
			ret = fx_endpoint(ctx, "shop", name, fx_ip(10, i + 1),
					  256 + i % 1000, &kv);
		} else {
			snprintf(name, sizeof(name), "svc-%05d",
				 i - NR_ENDPOINTS);
			ret = fx_service(ctx, "shop", name,
					 fx_ip(172, i - NR_ENDPOINTS + 1),
					 fx_ip(10, i - NR_ENDPOINTS + 1), &kv);
		}
		if (ret)
			break;
		ret = fx_txn_put(&txn, kv.key, kv.val, kv.len);
		fx_kv_free(&kv);
		if (!ret && txn.n == FX_TXN_OPS)
			ret = fx_txn_commit(c, &txn);
	}
	if (!ret)
		ret = fx_txn_commit(c, &txn);
	fx_txn_free(&txn);
	return ret;
}

static int count_cb(const struct nm_etcd_kv *kv, void *arg)
{
	(void)kv;
	++*(long *)arg;
	return 0;
}

/* The transport's share: the same paged list with nothing done per key. */
static void bare_list(struct nm_etcd *c)
{
	struct nm_etcd_range_opts o = { .key = NM_KV_PREFIX_DEFAULT,
					.prefix = true,
					.page_size = 5000 };
	struct nm_etcd_err err = { { 0 } };
	__u64 t0 = mono_ns();
	__s64 rev;
	long n = 0;

	if (nm_etcd_range_each(c, &o, count_cb, &n, &rev, &err)) {
		fprintf(stderr, "bench: %s\n", err.msg);
		return;
	}
	printf("# bare paged list of the same %ld keys (no decode, no sink): %.3f s\n",
	       n, (mono_ns() - t0) / 1e9);
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

/* Put endpoint PROP_NAME<i> and wait for the sink to see it. */
static int propagate(struct nm_etcd *c, const struct nm_kv_ctx *ctx,
		     struct bench_sink *b, __u64 *lat)
{
	struct timespec dl;
	struct fx_kv kv;
	char name[32];
	int i, ret = 0;
	__u64 t0;

	for (i = 0; i < NR_PROP && !ret; i++) {
		snprintf(name, sizeof(name), PROP_NAME "%04d", i);
		ret = fx_endpoint(ctx, "prop", name, fx_ip(12, i + 1), 256,
				  &kv);
		if (ret)
			break;
		t0 = mono_ns();
		ret = fx_put(c, &kv, NULL);
		fx_kv_free(&kv);
		if (ret)
			break;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += PROP_TIMEOUT_S;
		pthread_mutex_lock(&b->lock);
		while (!b->seen_ns[i] && !ret)
			ret = -pthread_cond_timedwait(&b->cond, &b->lock, &dl);
		if (b->seen_ns[i])
			ret = 0;
		lat[i] = b->seen_ns[i] - t0;
		pthread_mutex_unlock(&b->lock);
		if (ret)
			fprintf(stderr,
				"bench: put %d never reached the sink\n", i);
	}
	return ret;
}

int main(void)
{
	struct nm_kv_ctx ctx = { .prefix = NULL,
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_mirror_conf conf = { .cluster = "east", .cluster_id = 1 };
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct nm_etcd_err err = { { 0 } };
	struct nm_mirror_sink sink = { bs_upsert, bs_remove, NULL };
	struct nm_mirror *m = NULL;
	struct nm_mirror_stats st;
	struct nm_etcd *c = NULL;
	struct bench_sink *b;
	struct etcd_srv srv;
	char errbuf[NM_ETCD_ERR_MAX + 64];
	__u64 t0, sync_ns, *lat = NULL;
	double secs;
	int ret = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	b = calloc(1, sizeof(*b));
	lat = calloc(NR_PROP, sizeof(*lat));
	if (!b || !lat) {
		fprintf(stderr, "bench: failed to allocate the sink: %s\n",
			strerror(ENOMEM));
		goto out_free;
	}
	if (pthread_mutex_init(&b->lock, NULL) ||
	    pthread_cond_init(&b->cond, NULL)) {
		fprintf(stderr, "bench: failed to init the sink lock\n");
		goto out_free;
	}
	sink.arg = b;
	if (access(getenv("ETCD_BIN") ?: "/usr/bin/etcd", X_OK)) {
		printf("# sync bench skipped: etcd not installed (scripts/deps.sh)\n");
		ret = 0;
		goto out_free;
	}
	ret = etcd_srv_start(&srv, NULL);
	if (ret) {
		fprintf(stderr,
			"bench: failed to start etcd on 127.0.0.1: %s\n",
			strerror(-ret));
		ret = 1;
		goto out_free;
	}
	ret = 1;
	cfg.endpoints[0] = srv.url;
	if (nm_etcd_open(&cfg, &c, &err)) {
		fprintf(stderr, "bench: %s\n", err.msg);
		goto out_srv;
	}
	t0 = mono_ns();
	if (fill(c, &ctx)) {
		fprintf(stderr, "bench: failed to fill etcd on %s\n", srv.url);
		goto out_client;
	}
	printf("# sink: counting only, no BPF maps (the map sink is measured separately)\n");
	printf("# filled %d endpoint and %d service records in %.2f s (txns of %d)\n",
	       NR_ENDPOINTS, NR_SERVICES, (mono_ns() - t0) / 1e9, FX_TXN_OPS);

	conf.etcd = cfg;
	t0 = mono_ns();
	if (nm_mirror_start(&conf, &sink, &m, errbuf, sizeof(errbuf))) {
		fprintf(stderr, "bench: %s\n", errbuf);
		goto out_client;
	}
	for (;;) {
		nm_mirror_get_stats(m, &st);
		if (st.synced ||
		    mono_ns() - t0 > SYNC_TIMEOUT_S * 1000000000ULL)
			break;
		usleep(1000);
	}
	sync_ns = mono_ns() - t0;
	if (!st.synced) {
		fprintf(stderr, "bench: mirror not synced after %d s: %s\n",
			SYNC_TIMEOUT_S, st.last_error);
		goto out_mirror;
	}
	secs = sync_ns / 1e9;
	printf("# %llu records mirrored, %lu upserts, %llu rejected, page size 5000\n",
	       (unsigned long long)st.records, atomic_load(&b->upserts),
	       (unsigned long long)st.rejected);
	printf("bench: sync_initial_100k_s %.3f s\n", secs);
	printf("bench: sync_records_per_s %.0f records/s\n",
	       (NR_ENDPOINTS + NR_SERVICES) / secs);

	bare_list(c);
	if (propagate(c, &ctx, b, lat))
		goto out_mirror;
	qsort(lat, NR_PROP, sizeof(*lat), cmp_u64);
	printf("# %d sequential puts, from before the put call to the sink upsert\n",
	       NR_PROP);
	printf("bench: propagation_p50_ms %.3f ms\n", lat[NR_PROP / 2] / 1e6);
	printf("bench: propagation_p99_ms %.3f ms\n",
	       lat[NR_PROP * 99 / 100] / 1e6);
	ret = 0;
out_mirror:
	nm_mirror_stop(m);
out_client:
	nm_etcd_close(c);
out_srv:
	etcd_srv_destroy(&srv);
out_free:
	if (b) {
		pthread_cond_destroy(&b->cond);
		pthread_mutex_destroy(&b->lock);
	}
	free(lat);
	free(b);
	return ret;
}
