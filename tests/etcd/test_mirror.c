// SPDX-License-Identifier: GPL-2.0
/*
 * The kvstore mirror (agent/mirror.c) against real etcd processes on
 * 127.0.0.1, through a fake in-memory sink that records every upsert and
 * remove by key. Tests sharing the main etcd use a prefix of their own;
 * those that kill, wipe or compact an etcd start their own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "agent/base64.h"
#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "agent/mirror.h"
#include "maps/identity.h"
#include "tests/lib/etcd_fx.h"
#include "tests/lib/etcd_srv.h"
#include "tests/lib/kv_fx.h"
#include "tests/lib/test.h"

/*
 * The fake sink: one entry per key ever seen, with what was last upserted
 * and how often each callback ran for it. Chained hash, behind a mutex
 * (the mirror calls from its thread, the test reads from its own).
 */
#define FS_BUCKETS 4096

struct fs_ent {
	struct fs_ent *next;
	char key[NM_KV_KEY_MAX + 1];
	char desc[128]; /* a short summary of the last value upserted */
	bool present;
	int upserts;
	int removes;
};

struct fake_sink {
	pthread_mutex_t lock;
	const char *prefix;
	struct fs_ent *b[FS_BUCKETS];
	int upserts, removes, present;
	int fail_upserts; /* make the next N upserts fail */
	char fail_key[NM_KV_KEY_MAX + 1]; /* ... or the next N of this key */
	int fail_key_left;
	int fail_key_tries; /* upserts of fail_key seen */
};

static unsigned int fs_hash(const char *s)
{
	unsigned int h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % FS_BUCKETS;
}

static struct fs_ent *fs_get(struct fake_sink *fs, const char *key, bool add)
{
	unsigned int h = fs_hash(key);
	struct fs_ent *e;

	for (e = fs->b[h]; e; e = e->next) {
		if (!strcmp(e->key, key))
			return e;
	}
	if (!add)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->next = fs->b[h];
	fs->b[h] = e;
	return e;
}

static void describe(const struct nm_kv_record *r, char *buf, size_t len)
{
	char a[INET_ADDRSTRLEN];

	switch (r->key.type) {
	case NM_KV_T_ENDPOINT:
		inet_ntop(AF_INET, &r->ep.ip, a, sizeof(a));
		snprintf(buf, len, "ep %s id %llu", a,
			 (unsigned long long)r->ep.identity);
		break;
	case NM_KV_T_NODE:
		inet_ntop(AF_INET, &r->node.node_ip, a, sizeof(a));
		snprintf(buf, len, "node %s", a);
		break;
	case NM_KV_T_SERVICE:
		inet_ntop(AF_INET, &r->svc.frontends[0].vip, a, sizeof(a));
		snprintf(buf, len, "svc %s backends %zu", a, r->svc.n_backends);
		break;
	case NM_KV_T_IDENTITY:
		snprintf(buf, len, "id %s",
			 nm_labels_get(&r->identity.labels, "app") ?: "?");
		break;
	case NM_KV_T_HEARTBEAT:
	case NM_KV_T_SYNCED:
		snprintf(buf, len, "ts %llu",
			 (unsigned long long)r->stamp.ts_ms);
		break;
	case NM_KV_T_CLUSTER:
		snprintf(buf, len, "cluster %u", r->cluster.id);
		break;
	}
}

static int fs_upsert(void *arg, const struct nm_kv_record *rec)
{
	struct fake_sink *fs = arg;
	char key[NM_KV_KEY_MAX + 1];
	struct fs_ent *e;
	int ret = 0;

	if (nm_kv_key_format(fs->prefix, &rec->key, key, sizeof(key)))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&fs->lock);
	if (fs->fail_upserts > 0) {
		fs->fail_upserts--;
		ret = -EIO;
		goto out;
	}
	if (fs->fail_key[0] && !strcmp(key, fs->fail_key)) {
		fs->fail_key_tries++;
		if (fs->fail_key_left > 0) {
			fs->fail_key_left--;
			ret = -EAGAIN; /* as a full map would */
			goto out;
		}
	}
	e = fs_get(fs, key, true);
	if (!e) {
		ret = -ENOMEM;
		goto out;
	}
	describe(rec, e->desc, sizeof(e->desc));
	if (!e->present)
		fs->present++;
	e->present = true;
	e->upserts++;
	fs->upserts++;
out:
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

static int fs_remove(void *arg, const struct nm_kv_key *k)
{
	struct fake_sink *fs = arg;
	char key[NM_KV_KEY_MAX + 1];
	struct fs_ent *e;

	if (nm_kv_key_format(fs->prefix, k, key, sizeof(key)))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&fs->lock);
	e = fs_get(fs, key, true);
	if (e) {
		if (e->present)
			fs->present--;
		e->present = false;
		e->removes++;
	}
	fs->removes++;
	pthread_mutex_unlock(&fs->lock);
	return e ? 0 : -ENOMEM;
}

static void fs_init(struct fake_sink *fs, const char *prefix,
		    struct nm_mirror_sink *sink)
{
	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->lock, NULL);
	fs->prefix = prefix;
	sink->upsert = fs_upsert;
	sink->remove = fs_remove;
	sink->arg = fs;
}

static void fs_free(struct fake_sink *fs)
{
	struct fs_ent *e, *n;
	size_t i;

	for (i = 0; i < FS_BUCKETS; i++) {
		for (e = fs->b[i]; e; e = n) {
			n = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&fs->lock);
}

/* A copy of one entry (zeroed if the key was never seen). */
static struct fs_ent fs_look(struct fake_sink *fs, const char *key)
{
	struct fs_ent out = { 0 }, *e;

	pthread_mutex_lock(&fs->lock);
	e = fs_get(fs, key, false);
	if (e)
		out = *e;
	pthread_mutex_unlock(&fs->lock);
	return out;
}

static bool fs_has(struct fake_sink *fs, const char *key, const char *desc)
{
	struct fs_ent e = fs_look(fs, key);

	return e.present && (!desc || !strcmp(e.desc, desc));
}

static int fs_present(struct fake_sink *fs)
{
	int n;

	pthread_mutex_lock(&fs->lock);
	n = fs->present;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

static struct nm_mirror_stats stats_of(struct nm_mirror *m)
{
	struct nm_mirror_stats st;

	nm_mirror_get_stats(m, &st);
	return st;
}

static struct nm_mirror *start_mirror(const struct nm_etcd_config *etcd,
				      const char *prefix, __u32 page_size,
				      const struct nm_mirror_sink *sink)
{
	struct nm_mirror_conf conf = { .prefix = prefix,
				       .cluster = "east",
				       .cluster_id = 1,
				       .page_size = page_size };
	struct nm_mirror *m = NULL;
	char err[NM_ETCD_ERR_MAX + 64];

	conf.etcd = *etcd;
	if (!ASSERT_OK(nm_mirror_start(&conf, sink, &m, err, sizeof(err)),
		       "start mirror"))
		printf("# %s\n", err);
	return m;
}

static struct nm_etcd_config plain(const char *url)
{
	struct nm_etcd_config cfg = { .n_endpoints = 1 };

	cfg.endpoints[0] = url;
	return cfg;
}

static bool wait_synced(struct nm_mirror *m, double secs)
{
	bool ok = NM_WAIT_FOR(stats_of(m).synced, secs);

	if (!ok)
		printf("# not synced; last error: %s\n",
		       stats_of(m).last_error);
	return ASSERT_TRUE(ok, "mirror synced");
}

/* Stop and report how long it took (must be well under a second). */
static void stop_timed(struct nm_mirror *m, const char *what)
{
	double t0 = nm_test_now_s(), dt;

	nm_mirror_stop(m);
	dt = nm_test_now_s() - t0;
	printf("# %s: stopped in %.0f ms\n", what, dt * 1e3);
	ASSERT_LT(dt * 1e3, 400, "stop is prompt");
}

static const char *ipstr(__be32 ip, char *buf)
{
	inet_ntop(AF_INET, &ip, buf, INET_ADDRSTRLEN);
	return buf;
}

static __be32 ip4(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

/* "ep A.B.C.D id N" as describe() prints an endpoint of cluster 1. */
static char *ep_desc(__be32 ip, __u32 local, char *buf, size_t len)
{
	char a[INET_ADDRSTRLEN];

	snprintf(buf, len, "ep %s id %llu", ipstr(ip, a),
		 (unsigned long long)nm_identity_pack(1, local));
	return buf;
}

static void test_list_then_watch_puts_deletes_txns(void)
{
	struct nm_kv_ctx ctx = { .prefix = "lw/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct fx_kv cl = { 0 }, hb = { 0 }, node = { 0 }, ep1 = { 0 },
		     ep2 = { 0 }, ep1b = { 0 }, id1 = { 0 }, svc = { 0 },
		     svc2 = { 0 }, ep3 = { 0 };
	struct nm_etcd_err err = { { 0 } };
	struct nm_mirror_stats st;
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct fx_txn txn = { 0 };
	struct fake_sink fs;
	__u64 hb0;
	char d[64];
	__s64 rev;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_need_main())
		goto out;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c)
		goto out;
	if (fx_cluster(&ctx, &cl) || fx_heartbeat(&ctx, 1000, &hb) ||
	    fx_node(&ctx, "node-1", ip4("192.168.1.10"), &node) ||
	    fx_endpoint(&ctx, "shop", "web-1", ip4("10.1.0.5"), 256, &ep1) ||
	    fx_endpoint(&ctx, "shop", "web-2", ip4("10.1.0.6"), 256, &ep2) ||
	    fx_endpoint(&ctx, "shop", "web-1", ip4("10.1.0.9"), 257, &ep1b) ||
	    fx_endpoint(&ctx, "shop", "web-3", ip4("10.1.0.7"), 256, &ep3) ||
	    fx_identity(&ctx, 256, "web", &id1) ||
	    fx_service(&ctx, "shop", "payments", ip4("10.96.0.10"),
		       ip4("10.1.0.5"), &svc) ||
	    fx_service(&ctx, "shop", "orders", ip4("10.96.0.11"),
		       ip4("10.1.0.6"), &svc2)) {
		nm_test_fail();
		goto out;
	}
	/* Before the mirror: the list must bring these. */
	if (fx_put(c, &cl, NULL) || fx_put(c, &hb, NULL) ||
	    fx_put(c, &node, NULL) || fx_put(c, &ep1, NULL) ||
	    fx_put(c, &id1, NULL) ||
	    /* a local policy manifest: not mirrored, not rejected */
	    fx_put_raw(c, "lw/policies/v1/shop/p", "kind: X", 7, NULL)) {
		nm_test_fail();
		goto out;
	}
	cfg = plain(etcd_fx_main.url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	st = stats_of(m);
	ASSERT_EQ(st.records, 5, "records after the list");
	ASSERT_EQ(st.rejected, 0, "nothing rejected");
	ASSERT_TRUE(st.connected, "connected");
	ASSERT_TRUE(st.last_heartbeat_mono_ns != 0, "heartbeat seen");
	ASSERT_TRUE(!strcmp(nm_mirror_cluster(m), "east"), "cluster name");
	hb0 = st.last_heartbeat_mono_ns;
	ASSERT_TRUE(fs_has(&fs, cl.key, "cluster 1"), "cluster listed");
	ASSERT_TRUE(fs_has(&fs, node.key, "node 192.168.1.10"), "node listed");
	ASSERT_TRUE(fs_has(&fs, ep1.key,
			   ep_desc(ip4("10.1.0.5"), 256, d, sizeof(d))),
		    "endpoint listed");
	ASSERT_TRUE(fs_has(&fs, id1.key, "id web"), "identity listed");
	ASSERT_EQ(fs_present(&fs), 5, "sink holds the list");

	/* Watch: a put, an overwrite, a delete, a txn of put+delete. */
	if (fx_put(c, &ep2, NULL) || fx_put(c, &ep1b, NULL) ||
	    fx_put(c, &svc, NULL)) {
		nm_test_fail();
		goto out;
	}
	if (!ASSERT_OK(nm_etcd_delete(c, node.key, false, NULL, NULL, &err),
		       err.msg))
		goto out;
	if (fx_txn_put(&txn, svc2.key, svc2.val, svc2.len) ||
	    fx_txn_put(&txn, ep3.key, ep3.val, ep3.len) ||
	    fx_txn_del(&txn, svc.key) || fx_txn_commit(c, &txn)) {
		nm_test_fail();
		goto out;
	}
	nm_test_sleep_ms(20);
	fx_kv_free(&hb);
	if (fx_heartbeat(&ctx, 2000, &hb) || fx_put(c, &hb, &rev)) {
		nm_test_fail();
		goto out;
	}
	if (!ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).revision >= rev, 5),
			 "watch caught up"))
		goto out;
	st = stats_of(m);
	ASSERT_TRUE(fs_has(&fs, ep2.key, NULL), "put arrives");
	ASSERT_TRUE(fs_has(&fs, ep1.key,
			   ep_desc(ip4("10.1.0.9"), 257, d, sizeof(d))),
		    "overwrite arrives");
	ASSERT_EQ(fs_look(&fs, ep1.key).upserts, 2, "one upsert per put");
	ASSERT_TRUE(!fs_has(&fs, node.key, NULL), "delete arrives");
	ASSERT_EQ(fs_look(&fs, node.key).removes, 1, "one remove");
	ASSERT_TRUE(fs_has(&fs, svc2.key, "svc 10.96.0.11 backends 1"),
		    "txn put arrives");
	ASSERT_TRUE(fs_has(&fs, ep3.key, NULL), "second txn put arrives");
	ASSERT_TRUE(!fs_has(&fs, svc.key, NULL) &&
			    fs_look(&fs, svc.key).upserts == 1,
		    "txn delete arrives");
	ASSERT_TRUE(fs_has(&fs, hb.key, "ts 2000"), "heartbeat updated");
	ASSERT_GT(st.last_heartbeat_mono_ns, hb0, "heartbeat time moves");
	ASSERT_EQ(st.records, 7, "records after the watch");
	ASSERT_EQ(fs_present(&fs), 7, "sink agrees");
	ASSERT_EQ(st.revision, rev, "revision tracked");
	ASSERT_EQ(st.relists, 0, "no re-list");
	ASSERT_EQ(st.rejected, 0, "nothing rejected");

	/* A prefix delete: every key of the kind goes. */
	if (!ASSERT_OK(nm_etcd_delete(c, "lw/state/endpoints/", true, NULL,
				      &rev, &err),
		       err.msg))
		goto out;
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).revision >= rev, 5), "caught up");
	ASSERT_TRUE(!fs_has(&fs, ep1.key, NULL) &&
			    !fs_has(&fs, ep2.key, NULL) &&
			    !fs_has(&fs, ep3.key, NULL),
		    "prefix delete arrives");
	ASSERT_EQ(stats_of(m).records, 4, "records left");

	/* Drain: every mirrored key leaves the sink. */
	ASSERT_OK(nm_mirror_drain(m), "drain");
	m = NULL;
	ASSERT_EQ(fs_present(&fs), 0, "drained");
	ASSERT_TRUE(fs_look(&fs, "lw/policies/v1/shop/p").upserts == 0,
		    "policies never mirrored");
out:
	nm_mirror_stop(m);
	fx_txn_free(&txn);
	fx_kv_free(&ep3);
	fx_kv_free(&svc2);
	fx_kv_free(&svc);
	fx_kv_free(&id1);
	fx_kv_free(&ep1b);
	fx_kv_free(&ep2);
	fx_kv_free(&ep1);
	fx_kv_free(&node);
	fx_kv_free(&hb);
	fx_kv_free(&cl);
	nm_etcd_close(c);
	fs_free(&fs);
}

/* @n endpoints "<prefix>state/endpoints/v1/east/shop/ep-%05d" in txns. */
static int fill_endpoints(struct nm_etcd *c, const struct nm_kv_ctx *ctx, int n,
			  const char *fmt)
{
	struct fx_txn txn = { 0 };
	struct fx_kv kv;
	char name[64];
	int i, ret = 0;

	for (i = 0; i < n && !ret; i++) {
		snprintf(name, sizeof(name), fmt, i);
		ret = fx_endpoint(ctx, "shop", name, fx_ip(10, i + 1), 256,
				  &kv);
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

static void test_pagination_10k(void)
{
	struct nm_kv_ctx ctx = { .prefix = "pg/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct fake_sink fs;
	char key[128], d[64];
	double t0;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_need_main())
		goto out;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c)
		goto out;
	t0 = nm_test_now_s();
	if (!ASSERT_OK(fill_endpoints(c, &ctx, 10000, "ep-%05d"), "fill"))
		goto out;
	printf("# filled 10000 endpoint records in %.2f s\n", nm_test_now_s() - t0);
	cfg = plain(etcd_fx_main.url);
	t0 = nm_test_now_s();
	m = start_mirror(&cfg, ctx.prefix, 1000, &sink);
	if (!m || !wait_synced(m, 20))
		goto out;
	printf("# mirrored 10000 records in pages of 1000 in %.3f s\n",
	       nm_test_now_s() - t0);
	ASSERT_EQ(stats_of(m).records, 10000, "records");
	ASSERT_EQ(fs_present(&fs), 10000, "sink holds all");
	pthread_mutex_lock(&fs.lock);
	ASSERT_EQ(fs.upserts, 10000, "each exactly once");
	ASSERT_EQ(fs.removes, 0, "no removes");
	pthread_mutex_unlock(&fs.lock);
	snprintf(key, sizeof(key), "pg/state/endpoints/v1/east/shop/ep-%05d",
		 9999);
	ASSERT_TRUE(fs_has(&fs, key,
			   ep_desc(fx_ip(10, 10000), 256, d, sizeof(d))),
		    "last key");
	stop_timed(m, "10k mirror");
	m = NULL;
out:
	nm_mirror_stop(m);
	nm_etcd_close(c);
	fs_free(&fs);
}

/*
 * A TCP proxy in front of an etcd, so a test can cut the mirror off
 * (every connection closed, new ones accepted and closed at once) while
 * it changes etcd directly, then let it back.
 */
#define PX_PAIRS 32

struct proxy {
	int lfd;
	int port;
	int target;
	atomic_int cut;
	atomic_int quit;
	atomic_int open; /* live pairs */
	int fd[PX_PAIRS][2];
	pthread_t th;
};

static void px_close(struct proxy *p, int i)
{
	close(p->fd[i][0]);
	close(p->fd[i][1]);
	p->fd[i][0] = p->fd[i][1] = -1;
	atomic_fetch_sub(&p->open, 1);
}

static int px_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static void px_accept(struct proxy *p)
{
	int cfd, ufd, i;

	cfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	if (atomic_load(&p->cut)) {
		close(cfd);
		return;
	}
	for (i = 0; i < PX_PAIRS && p->fd[i][0] >= 0; i++)
		;
	ufd = i < PX_PAIRS ? px_connect(p->target) : -1;
	if (ufd < 0) {
		close(cfd);
		return;
	}
	p->fd[i][0] = cfd;
	p->fd[i][1] = ufd;
	atomic_fetch_add(&p->open, 1);
}

/* Copy what is readable on one side to the other; false at EOF/error. */
static bool px_pump(int from, int to)
{
	char buf[16384];
	ssize_t n, w, off = 0;

	n = read(from, buf, sizeof(buf));
	if (n <= 0)
		return false;
	while (off < n) {
		w = write(to, buf + off, n - off);
		if (w <= 0)
			return false;
		off += w;
	}
	return true;
}

static void *px_fn(void *arg)
{
	struct pollfd pfd[1 + 2 * PX_PAIRS];
	struct proxy *p = arg;
	int i, n, k;

	while (!atomic_load(&p->quit)) {
		if (atomic_load(&p->cut)) {
			for (i = 0; i < PX_PAIRS; i++) {
				if (p->fd[i][0] >= 0)
					px_close(p, i);
			}
		}
		pfd[0].fd = p->lfd;
		pfd[0].events = POLLIN;
		for (i = 0; i < PX_PAIRS; i++) {
			for (k = 0; k < 2; k++) {
				pfd[1 + 2 * i + k].fd = p->fd[i][k];
				pfd[1 + 2 * i + k].events = POLLIN;
				pfd[1 + 2 * i + k].revents = 0;
			}
		}
		n = poll(pfd, 1 + 2 * PX_PAIRS, 20);
		if (n <= 0)
			continue;
		if (pfd[0].revents & POLLIN)
			px_accept(p);
		for (i = 0; i < PX_PAIRS; i++) {
			if (p->fd[i][0] < 0)
				continue;
			for (k = 0; k < 2; k++) {
				if (!pfd[1 + 2 * i + k].revents)
					continue;
				if (!px_pump(p->fd[i][k], p->fd[i][!k])) {
					px_close(p, i);
					break;
				}
			}
		}
	}
	for (i = 0; i < PX_PAIRS; i++) {
		if (p->fd[i][0] >= 0)
			px_close(p, i);
	}
	return NULL;
}

static int px_start(struct proxy *p, int target)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int i, ret;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < PX_PAIRS; i++)
		p->fd[i][0] = p->fd[i][1] = -1;
	p->target = target;
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0)
		return -errno;
	if (bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(p->lfd, 64) ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &alen)) {
		ret = -errno;
		close(p->lfd);
		return ret;
	}
	p->port = ntohs(a.sin_port);
	ret = -pthread_create(&p->th, NULL, px_fn, p);
	if (ret)
		close(p->lfd);
	return ret;
}

static void px_stop(struct proxy *p)
{
	atomic_store(&p->quit, 1);
	pthread_join(p->th, NULL);
	close(p->lfd);
}

static void test_compaction_while_cut_relists_and_sweeps(void)
{
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_etcd_err err = { { 0 } };
	struct fx_kv cl = { 0 }, ep[6] = { { 0 } }, ep2b = { 0 };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct nm_mirror_stats st;
	struct fake_sink fs;
	struct etcd_srv s = { .slot = -1 };
	struct proxy px;
	bool px_up = false;
	char url[64], name[16], d[64];
	__s64 rev;
	double t0;
	int i;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd() || !ASSERT_OK(etcd_srv_start(&s, NULL), "start etcd"))
		goto out;
	if (!ASSERT_OK(px_start(&px, s.client_port), "start proxy"))
		goto out;
	px_up = true;
	c = etcd_fx_client(s.url, NULL, NULL);
	if (!c || fx_cluster(&ctx, &cl) || fx_put(c, &cl, NULL))
		goto fail;
	for (i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "ep-%d", i);
		if (fx_endpoint(&ctx, "shop", name, fx_ip(10, i + 1), 256,
				&ep[i]))
			goto fail;
	}
	if (fx_endpoint(&ctx, "shop", "ep-2", ip4("10.9.9.9"), 256, &ep2b))
		goto fail;
	for (i = 0; i < 5; i++) {
		if (fx_put(c, &ep[i], NULL))
			goto fail;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", px.port);
	cfg = plain(url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	ASSERT_EQ(stats_of(m).records, 6, "records listed");

	/* Cut: the mirror sees none of what follows as events. */
	atomic_store(&px.cut, 1);
	if (!ASSERT_TRUE(NM_WAIT_FOR(atomic_load(&px.open) == 0, 2),
			 "connections cut"))
		goto out;
	if (!ASSERT_OK(nm_etcd_delete(c, ep[0].key, false, NULL, NULL, &err),
		       err.msg) ||
	    !ASSERT_OK(nm_etcd_delete(c, ep[1].key, false, NULL, NULL, &err),
		       err.msg) ||
	    fx_put(c, &ep2b, NULL) || fx_put(c, &ep[5], &rev))
		goto fail;
	if (!ASSERT_OK(nm_etcd_compact(c, rev, &err), err.msg))
		goto out;
	t0 = nm_test_now_s();
	atomic_store(&px.cut, 0);

	/* Resuming below the compaction: -ERANGE, re-list, sweep. */
	if (!ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).relists >= 1 &&
					  !fs_has(&fs, ep[1].key, NULL),
				  10),
			 "re-listed"))
		goto out;
	printf("# re-listed and swept %.2f s after the cut ended\n",
	       nm_test_now_s() - t0);
	st = stats_of(m);
	ASSERT_TRUE(!fs_has(&fs, ep[0].key, NULL) &&
			    fs_look(&fs, ep[0].key).removes == 1,
		    "deleted key swept");
	ASSERT_TRUE(!fs_has(&fs, ep[1].key, NULL), "deleted key swept");
	ASSERT_TRUE(fs_has(&fs, ep[2].key,
			   ep_desc(ip4("10.9.9.9"), 256, d, sizeof(d))),
		    "changed key updated");
	ASSERT_TRUE(fs_has(&fs, ep[5].key, NULL), "new key listed");
	ASSERT_EQ(fs_look(&fs, ep[3].key).upserts, 1,
		  "unchanged key not re-applied");
	ASSERT_EQ(fs_look(&fs, ep[3].key).removes, 0, "nor removed");
	ASSERT_EQ(st.records, 5, "records");
	ASSERT_EQ(st.relists, 1, "one re-list");
	ASSERT_TRUE(st.revision >= rev, "revision past the compaction");
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).connected, 12), "connected again");
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	if (px_up)
		px_stop(&px);
	fx_kv_free(&ep2b);
	for (i = 0; i < 6; i++)
		fx_kv_free(&ep[i]);
	fx_kv_free(&cl);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

static void test_sigkill_restart_mid_watch(void)
{
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct etcd_srv s = { .slot = -1 };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct nm_mirror_stats st;
	struct fake_sink fs;
	struct fx_kv kv = { 0 };
	char key[128], name[16], d[64];
	__s64 rev = 0;
	double t0;
	int i;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd() || !ASSERT_OK(etcd_srv_start(&s, NULL), "start etcd"))
		goto out;
	c = etcd_fx_client(s.url, NULL, NULL);
	if (!c || fx_cluster(&ctx, &kv) || fx_put(c, &kv, NULL))
		goto fail;
	fx_kv_free(&kv);
	cfg = plain(s.url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "ep-%02d", i);
		if (fx_endpoint(&ctx, "shop", name, fx_ip(10, i + 1), 256,
				&kv) ||
		    fx_put(c, &kv, NULL))
			goto fail;
		fx_kv_free(&kv);
	}
	/* Killed while the mirror may still be behind. */
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).connected, 2), "connected before");
	t0 = nm_test_now_s();
	etcd_srv_stop(&s, true);
	/* The lost stream is reported at once, with no watch slicing. */
	ASSERT_TRUE(NM_WAIT_FOR(!stats_of(m).connected, 1),
		    "disconnected within 1 s of the kill");
	printf("# connected went false %.0f ms after the kill\n",
	       (nm_test_now_s() - t0) * 1e3);
	nm_test_sleep_ms(300);
	ASSERT_TRUE(!stats_of(m).connected, "still disconnected while down");
	if (!ASSERT_OK(etcd_srv_restart(&s), "restart etcd"))
		goto out;
	printf("# etcd down and back in %.2f s\n", nm_test_now_s() - t0);
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).connected, 8),
		    "connected again after the restart");
	printf("# connected again %.2f s after the kill\n", nm_test_now_s() - t0);
	for (i = 20; i < 40; i++) {
		snprintf(name, sizeof(name), "ep-%02d", i);
		if (fx_endpoint(&ctx, "shop", name, fx_ip(10, i + 1), 256,
				&kv) ||
		    fx_put(c, &kv, NULL))
			goto fail;
		fx_kv_free(&kv);
	}
	/* Overwrites of keys from before the kill. */
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "ep-%02d", i);
		if (fx_endpoint(&ctx, "shop", name, fx_ip(11, i + 1), 256,
				&kv) ||
		    fx_put(c, &kv, &rev))
			goto fail;
		fx_kv_free(&kv);
	}
	if (!ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).revision >= rev, 15),
			 "caught up after the restart"))
		goto out;
	st = stats_of(m);
	printf("# caught up %.2f s after the kill, %llu reconnects\n",
	       nm_test_now_s() - t0, (unsigned long long)st.reconnects);
	ASSERT_EQ(st.records, 41, "records");
	ASSERT_EQ(fs_present(&fs), 41, "sink holds each key");
	pthread_mutex_lock(&fs.lock);
	ASSERT_EQ(fs.removes, 0, "no spurious removes");
	ASSERT_EQ(fs.upserts, 1 + 40 + 5, "no duplicate");
	pthread_mutex_unlock(&fs.lock);
	for (i = 0; i < 40; i++) {
		snprintf(key, sizeof(key),
			 "nodemesh/state/endpoints/v1/east/shop/ep-%02d", i);
		if (!ASSERT_TRUE(fs_has(&fs, key,
					ep_desc(fx_ip(i < 5 ? 11 : 10, i + 1),
						256, d, sizeof(d))),
				 key))
			break;
	}
	ASSERT_EQ(st.relists, 0, "resumed, not re-listed");
	ASSERT_GE(st.reconnects, 1, "reconnected");
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	fx_kv_free(&kv);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

/* Same address, new data: another cluster_id. The mirror starts over. */
static void test_new_etcd_behind_the_address_relists(void)
{
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct fx_kv cl = { 0 }, a = { 0 }, b = { 0 }, n = { 0 };
	struct etcd_srv s = { .slot = -1 };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct fake_sink fs;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd() || !ASSERT_OK(etcd_srv_start(&s, NULL), "start etcd"))
		goto out;
	c = etcd_fx_client(s.url, NULL, NULL);
	if (!c || fx_cluster(&ctx, &cl) ||
	    fx_endpoint(&ctx, "shop", "a", ip4("10.1.0.1"), 256, &a) ||
	    fx_endpoint(&ctx, "shop", "b", ip4("10.1.0.2"), 256, &b) ||
	    fx_endpoint(&ctx, "shop", "n", ip4("10.1.0.3"), 256, &n) ||
	    fx_put(c, &cl, NULL) || fx_put(c, &a, NULL) || fx_put(c, &b, NULL))
		goto fail;
	cfg = plain(s.url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	if (!ASSERT_OK(etcd_srv_wipe(&s), "wipe etcd"))
		goto out;
	nm_etcd_forget_cluster_id(c);
	if (fx_put(c, &cl, NULL) || fx_put(c, &n, NULL))
		goto fail;
	if (!ASSERT_TRUE(NM_WAIT_FOR(fs_has(&fs, n.key, NULL) &&
					  !fs_has(&fs, a.key, NULL),
				  15),
			 "re-listed the new etcd"))
		goto out;
	ASSERT_TRUE(!fs_has(&fs, b.key, NULL), "old keys swept");
	/* The mirror may list the new etcd before the test refills it. */
	ASSERT_TRUE(fs_has(&fs, cl.key, NULL), "cluster record present");
	ASSERT_EQ(stats_of(m).records, 2, "records");
	ASSERT_GE(stats_of(m).relists, 1, "re-listed");
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	fx_kv_free(&n);
	fx_kv_free(&b);
	fx_kv_free(&a);
	fx_kv_free(&cl);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

/* Every key under @prefix in etcd is in the sink, and nothing else is. */
struct same_arg {
	struct fake_sink *fs;
	int n, missing;
};

static int same_cb(const struct nm_etcd_kv *kv, void *arg)
{
	struct same_arg *a = arg;

	a->n++;
	if (!fs_has(a->fs, kv->key, NULL)) {
		printf("# %s is in etcd, not in the sink\n", kv->key);
		a->missing++;
	}
	return 0;
}

static bool sink_equals_etcd(struct fake_sink *fs, struct nm_etcd *c,
			     const char *prefix)
{
	struct nm_etcd_range_opts o = { .key = prefix, .prefix = true };
	struct same_arg a = { .fs = fs };
	struct nm_etcd_err err = { { 0 } };

	if (!ASSERT_OK(nm_etcd_range_each(c, &o, same_cb, &a, NULL, &err),
		       err.msg))
		return false;
	return ASSERT_EQ(a.missing, 0, "every etcd key in the sink") &&
	       ASSERT_EQ(fs_present(fs), a.n, "nothing else in the sink");
}

/*
 * nm_mirror_relist(): a list even when nothing changed (and then nothing
 * is re-applied), and one asked while cut off completes once the etcd
 * answers again, sweeping what was deleted meanwhile.
 */
static void test_relist_lists_again_and_sweeps(void)
{
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_etcd_err err = { { 0 } };
	struct fx_kv cl = { 0 }, hb = { 0 }, ep[5] = { { 0 } }, ep1b = { 0 };
	struct etcd_srv s = { .slot = -1 };
	struct nm_mirror_sink sink;
	struct nm_mirror_stats st;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct fake_sink fs;
	struct proxy px;
	bool px_up = false;
	char url[64], name[16], d[64];
	__u64 hb0, asked;
	double t0;
	int i;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd() ||
	    !ASSERT_OK(etcd_srv_start(&s, NULL), "start etcd"))
		goto out;
	if (!ASSERT_OK(px_start(&px, s.client_port), "start proxy"))
		goto out;
	px_up = true;
	c = etcd_fx_client(s.url, NULL, NULL);
	if (!c || fx_cluster(&ctx, &cl) || fx_heartbeat(&ctx, 1000, &hb) ||
	    fx_put(c, &cl, NULL) || fx_put(c, &hb, NULL))
		goto fail;
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "ep-%d", i);
		if (fx_endpoint(&ctx, "shop", name, fx_ip(10, i + 1), 256,
				&ep[i]))
			goto fail;
	}
	if (fx_endpoint(&ctx, "shop", "ep-1", ip4("10.9.9.9"), 256, &ep1b))
		goto fail;
	for (i = 0; i < 4; i++) {
		if (fx_put(c, &ep[i], NULL))
			goto fail;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", px.port);
	cfg = plain(url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	st = stats_of(m);
	ASSERT_EQ(st.records, 6, "records listed");
	ASSERT_EQ(st.relist_asked, 0, "no re-list asked yet");
	hb0 = st.last_heartbeat_mono_ns;

	/* Same data: listed again, nothing re-applied, no heartbeat seen. */
	if (!ASSERT_OK(nm_mirror_relist(m), "relist"))
		goto out;
	asked = stats_of(m).relist_asked;
	ASSERT_EQ(asked, 1, "relist_asked counts the request");
	if (!ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).relist_done >= asked, 5),
			 "re-list done"))
		goto out;
	st = stats_of(m);
	ASSERT_EQ(st.relists, 1, "one re-list");
	ASSERT_EQ(st.records, 6, "records");
	for (i = 0; i < 4; i++)
		ASSERT_TRUE(fs_look(&fs, ep[i].key).upserts == 1 &&
				    fs_look(&fs, ep[i].key).removes == 0,
			    "unchanged key not re-applied");
	ASSERT_EQ(st.last_heartbeat_mono_ns, hb0,
		  "an unchanged heartbeat re-listed is no heartbeat");
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).connected, 5), "watching again");

	/* Cut off: a delete, an overwrite and a new key the watch misses. */
	atomic_store(&px.cut, 1);
	if (!ASSERT_TRUE(NM_WAIT_FOR(atomic_load(&px.open) == 0, 2),
			 "connections cut"))
		goto out;
	if (!ASSERT_OK(nm_etcd_delete(c, ep[0].key, false, NULL, NULL, &err),
		       err.msg) ||
	    fx_put(c, &ep1b, NULL) || fx_put(c, &ep[4], NULL))
		goto fail;
	if (!ASSERT_OK(nm_mirror_relist(m), "relist while cut off"))
		goto out;
	asked = stats_of(m).relist_asked;
	ASSERT_EQ(asked, 2, "second request counted");
	nm_test_sleep_ms(700);
	st = stats_of(m);
	ASSERT_LT(st.relist_done, asked, "no re-list completes while cut off");
	ASSERT_TRUE(fs_has(&fs, ep[0].key, NULL), "nothing swept blindly");
	t0 = nm_test_now_s();
	atomic_store(&px.cut, 0);
	if (!ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).relist_done >= asked, 5),
			 "re-list done once the etcd answers"))
		goto out;
	printf("# re-listed %.2f s after the cut ended\n",
	       nm_test_now_s() - t0);
	st = stats_of(m);
	ASSERT_GE(st.relists, 2, "re-listed again");
	ASSERT_TRUE(!fs_has(&fs, ep[0].key, NULL) &&
			    fs_look(&fs, ep[0].key).removes == 1,
		    "key deleted while cut off swept");
	ASSERT_TRUE(fs_has(&fs, ep[1].key,
			   ep_desc(ip4("10.9.9.9"), 256, d, sizeof(d))),
		    "key changed while cut off updated");
	ASSERT_TRUE(fs_has(&fs, ep[4].key, NULL), "key added while cut off");
	ASSERT_EQ(st.records, 6, "records");
	sink_equals_etcd(&fs, c, ctx.prefix);
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).connected, 5), "watching again");
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	if (px_up)
		px_stop(&px);
	fx_kv_free(&ep1b);
	for (i = 0; i < 5; i++)
		fx_kv_free(&ep[i]);
	fx_kv_free(&hb);
	fx_kv_free(&cl);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

/*
 * After a long cut the watch's backoff is at its cap: the etcd back, the
 * mirror must find it within about a second (the daemon re-admits a
 * cluster only then), not after the etcd layer's default 5 s.
 */
static void test_reconnect_after_long_cut_is_prompt(void)
{
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct fx_kv cl = { 0 }, ep = { 0 };
	struct etcd_srv s = { .slot = -1 };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct fake_sink fs;
	struct proxy px;
	bool px_up = false;
	char url[64];
	double t0, dt;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd() ||
	    !ASSERT_OK(etcd_srv_start(&s, NULL), "start etcd"))
		goto out;
	if (!ASSERT_OK(px_start(&px, s.client_port), "start proxy"))
		goto out;
	px_up = true;
	c = etcd_fx_client(s.url, NULL, NULL);
	if (!c || fx_cluster(&ctx, &cl) || fx_put(c, &cl, NULL) ||
	    fx_endpoint(&ctx, "shop", "late", ip4("10.1.0.1"), 256, &ep))
		goto fail;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", px.port);
	cfg = plain(url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5) ||
	    !ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).connected, 5), "connected"))
		goto out;
	atomic_store(&px.cut, 1);
	if (!ASSERT_TRUE(NM_WAIT_FOR(!stats_of(m).connected, 2),
			 "disconnected"))
		goto out;
	/* Long enough for a 5 s cap to be reached: 0.1 + 0.2 + ... + 3.2 s. */
	nm_test_sleep_ms(5000);
	if (fx_put(c, &ep, NULL))
		goto fail;
	t0 = nm_test_now_s();
	atomic_store(&px.cut, 0);
	if (!ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).connected &&
					  fs_has(&fs, ep.key, NULL),
				  6),
			 "reconnected and caught up"))
		goto out;
	dt = nm_test_now_s() - t0;
	printf("# reconnected %.0f ms after the cut ended (%llu reconnects)\n",
	       dt * 1e3, (unsigned long long)stats_of(m).reconnects);
	ASSERT_LT(dt * 1e3, 1500, "within the 1 s backoff cap");
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	if (px_up)
		px_stop(&px);
	fx_kv_free(&ep);
	fx_kv_free(&cl);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

static void test_bad_records_rejected_and_counted(void)
{
	struct nm_kv_ctx ctx = { .prefix = "rj/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_kv_ctx west = { .prefix = "rj/",
				  .cluster = "west",
				  .cluster_id = 2 };
	struct fx_kv good = { 0 }, victim = { 0 }, after = { 0 }, wep = { 0 },
		     wnode = { 0 };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct nm_mirror_stats st;
	struct fake_sink fs;
	char *big = NULL, val[512], key[128];
	static const char raw[] = "\xff\xfe\x01not json\x00at all";
	const char *bad_keys[] = {
		"rj/state/endpoints/v1/east/shop/bad-json",
		"rj/state/endpoints/v1/east/shop/bad-bytes",
		"rj/state/endpoints/v1/east/shop/big",
		NULL, /* west's endpoint, under west */
		"rj/state/nodes/v1/east/n1",
		"rj/state/endpoints/v1/east/shop/foreign-id",
		NULL, /* identity of cluster 2 */
		"rj/state/identities/v1/east/16777221", /* local id 5 */
		"rj/state/endpoints/v1/east/shop/at-list",
		"rj/unknown/east",
	};
	__u64 rej0;
	size_t i;
	__s64 rev;
	int sent = 0;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_need_main())
		goto out;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c ||
	    fx_endpoint(&ctx, "shop", "good", ip4("10.1.0.1"), 256, &good) ||
	    fx_endpoint(&ctx, "shop", "victim", ip4("10.1.0.2"), 256,
			&victim) ||
	    fx_endpoint(&ctx, "shop", "after", ip4("10.1.0.3"), 256, &after) ||
	    fx_endpoint(&west, "shop", "w1", ip4("10.2.0.1"), 256, &wep) ||
	    fx_node(&west, "n1", ip4("192.168.2.1"), &wnode))
		goto fail;
	/* Bad before the start: rejected by the list. */
	if (fx_put_raw(c, bad_keys[8], "{\"schema\":1", 11, NULL) ||
	    fx_put_raw(c, bad_keys[9], "{\"schema\":1}", 12, NULL) ||
	    fx_put(c, &good, NULL) || fx_put(c, &victim, NULL))
		goto fail;
	cfg = plain(etcd_fx_main.url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	st = stats_of(m);
	ASSERT_EQ(st.rejected, 2, "rejected by the list");
	ASSERT_EQ(st.records, 2, "good ones mirrored");
	rej0 = st.rejected;

	/* Malformed JSON, bytes that are no JSON, an oversized value. */
	sent += !fx_put_raw(c, bad_keys[0], "{\"schema\":1,\"ip\":", 17, NULL);
	sent += !fx_put_raw(c, bad_keys[1], raw, sizeof(raw) - 1, NULL);
	big = malloc(NM_KV_VALUE_MAX + 64);
	if (!big)
		goto fail;
	memset(big, 'a', NM_KV_VALUE_MAX + 64);
	memcpy(big, "{\"schema\":1,\"pad\":\"", 19);
	memcpy(big + NM_KV_VALUE_MAX + 62, "\"}", 2);
	sent += !fx_put_raw(c, bad_keys[2], big, NM_KV_VALUE_MAX + 64, NULL);
	/* Another cluster's record in east's etcd: by key, then by body. */
	bad_keys[3] = wep.key;
	sent += !fx_put(c, &wep, NULL);
	sent += !fx_put_raw(c, bad_keys[4], wnode.val, wnode.len, NULL);
	/* Identities outside east's space: in an endpoint, as a key, and
	 * below the first local id. */
	snprintf(
		val, sizeof(val),
		"{\"schema\":1,\"namespace\":\"shop\",\"name\":\"foreign-id\",\"ip\":\"10.1.0.9\",\"node\":\"node-1\",\"labels\":{\"nodemesh.io/cluster\":\"east\",\"nodemesh.io/namespace\":\"shop\"},\"identity\":\"%llu\"}",
		(unsigned long long)nm_identity_pack(2, 256));
	sent += !fx_put_raw(c, bad_keys[5], val, strlen(val), NULL);
	snprintf(key, sizeof(key), "rj/state/identities/v1/east/%llu",
		 (unsigned long long)nm_identity_pack(2, 300));
	bad_keys[6] = key;
	snprintf(
		val, sizeof(val),
		"{\"schema\":1,\"labels\":{\"nodemesh.io/cluster\":\"east\",\"nodemesh.io/namespace\":\"shop\"}}");
	sent += !fx_put_raw(c, key, val, strlen(val), NULL);
	sent += !fx_put_raw(c, bad_keys[7], val, strlen(val), NULL);
	/* A bad overwrite of a mirrored key takes the old value away. */
	sent += !fx_put_raw(c, victim.key, "{\"schema\":2}", 12, NULL);
	if (!ASSERT_EQ(sent, 9, "bad records written"))
		goto out;
	/* Still serving: a valid put after them arrives. */
	if (fx_put(c, &after, &rev))
		goto fail;
	if (!ASSERT_TRUE(NM_WAIT_FOR(fs_has(&fs, after.key, NULL), 5),
			 "valid put after the bad ones arrives"))
		goto out;
	st = stats_of(m);
	ASSERT_EQ(st.rejected - rej0, sent, "each bad record counted once");
	ASSERT_TRUE(strstr(st.last_error, "rejected") &&
			    strstr(st.last_error, victim.key),
		    st.last_error);
	printf("# last error: %s\n", st.last_error);
	for (i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		ASSERT_EQ(fs_look(&fs, bad_keys[i]).upserts, 0, bad_keys[i]);
	ASSERT_TRUE(!fs_has(&fs, victim.key, NULL) &&
			    fs_look(&fs, victim.key).removes == 1,
		    "rejected overwrite removed the old value");
	ASSERT_TRUE(fs_has(&fs, good.key, NULL), "good record untouched");
	ASSERT_EQ(st.records, 2, "records: good and after");
	ASSERT_TRUE(st.connected, "still connected");
	stop_timed(m, "watching mirror");
	m = NULL;
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	free(big);
	fx_kv_free(&wnode);
	fx_kv_free(&wep);
	fx_kv_free(&after);
	fx_kv_free(&victim);
	fx_kv_free(&good);
	nm_etcd_close(c);
	fs_free(&fs);
}

/* A failing sink: counted, and the record retried on the next re-list. */
/* Make upserts of @key fail (-EAGAIN) @n more times. */
static void fs_fail_key(struct fake_sink *fs, const char *key, int n)
{
	pthread_mutex_lock(&fs->lock);
	snprintf(fs->fail_key, sizeof(fs->fail_key), "%s", key);
	fs->fail_key_left = n;
	fs->fail_key_tries = 0;
	pthread_mutex_unlock(&fs->lock);
}

static int fs_key_tries(struct fake_sink *fs)
{
	int n;

	pthread_mutex_lock(&fs->lock);
	n = fs->fail_key_tries;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

static void test_sink_failure_counted(void)
{
	struct nm_kv_ctx ctx = { .prefix = "sf/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct fx_kv a = { 0 }, a2 = { 0 }, b = { 0 };
	struct fake_sink fs;
	char d[64];
	__s64 rev;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_need_main())
		goto out;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c || fx_endpoint(&ctx, "shop", "a", ip4("10.1.0.1"), 256, &a) ||
	    fx_endpoint(&ctx, "shop", "b", ip4("10.1.0.2"), 256, &b) ||
	    fx_put(c, &a, NULL))
		goto fail;
	cfg = plain(etcd_fx_main.url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	/* Failing for as long as the test says: no race with the retry. */
	fs_fail_key(&fs, b.key, 1000);
	if (fx_put(c, &b, &rev))
		goto fail;
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).revision >= rev, 5), "caught up");
	ASSERT_GE(stats_of(m).apply_errors, 1, "sink failure counted");
	ASSERT_EQ(stats_of(m).records, 1, "failed record not mirrored");
	ASSERT_EQ(stats_of(m).pending, 1, "but pending");
	ASSERT_TRUE(strstr(stats_of(m).last_error, "failed to upsert") != NULL,
		    stats_of(m).last_error);
	ASSERT_TRUE(!fs_has(&fs, b.key, NULL), "not in the sink");
	fs_fail_key(&fs, b.key, 0);
	ASSERT_TRUE(NM_WAIT_FOR(fs_has(&fs, b.key, NULL), 5),
		    "applied by a retry once the sink takes it");
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).records == 2, 1), "now mirrored");
	ASSERT_EQ(stats_of(m).pending, 0, "nothing pending");

	/* A failed overwrite keeps the key tracked: the sink holds the old. */
	fs_fail_key(&fs, a.key, 1000);
	if (fx_endpoint(&ctx, "shop", "a", ip4("10.1.0.7"), 256, &a2) ||
	    fx_put(c, &a2, &rev))
		goto fail;
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).revision >= rev, 5), "caught up");
	ASSERT_EQ(stats_of(m).records, 2, "overwritten key still tracked");
	ASSERT_EQ(stats_of(m).pending, 1, "new value pending");
	ASSERT_TRUE(fs_has(&fs, a.key,
			   ep_desc(ip4("10.1.0.1"), 256, d, sizeof(d))),
		    "old value kept");
	fs_fail_key(&fs, a.key, 0);
	ASSERT_TRUE(
		NM_WAIT_FOR(fs_has(&fs, a.key,
				ep_desc(ip4("10.1.0.7"), 256, d, sizeof(d))),
			 5),
		"new value applied by a retry");
	ASSERT_OK(nm_mirror_drain(m), "drain");
	m = NULL;
	ASSERT_TRUE(!fs_has(&fs, a.key, NULL), "drain removes it");
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	fx_kv_free(&b);
	fx_kv_free(&a2);
	fx_kv_free(&a);
	nm_etcd_close(c);
	fs_free(&fs);
}

/*
 * The sink refuses one key's first two upserts: the mirror retries it
 * after 1 s, then 2 s, and it lands with no new write to etcd. A newer
 * value replaces a pending one; a delete drops it.
 */
static void test_failed_upsert_retried(void)
{
	struct nm_kv_ctx ctx = { .prefix = "rt/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_etcd_err err = { { 0 } };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct fx_kv x = { 0 }, y1 = { 0 }, y2 = { 0 }, z = { 0 };
	struct nm_mirror_stats st;
	struct fake_sink fs;
	double t0, dt;
	char d[64];
	__s64 rev;
	int tries;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_need_main())
		goto out;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c || fx_endpoint(&ctx, "shop", "x", ip4("10.1.1.1"), 256, &x) ||
	    fx_endpoint(&ctx, "shop", "y", ip4("10.1.1.2"), 256, &y1) ||
	    fx_endpoint(&ctx, "shop", "y", ip4("10.1.1.3"), 256, &y2) ||
	    fx_endpoint(&ctx, "shop", "z", ip4("10.1.1.4"), 256, &z))
		goto fail;
	cfg = plain(etcd_fx_main.url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;

	fs_fail_key(&fs, x.key, 2);
	t0 = nm_test_now_s();
	if (fx_put(c, &x, &rev))
		goto fail;
	if (!ASSERT_TRUE(NM_WAIT_FOR(fs_has(&fs, x.key, NULL), 8),
			 "applied in the end"))
		goto out;
	dt = nm_test_now_s() - t0;
	st = stats_of(m);
	printf("# applied %.2f s after the put, on try %d\n", dt,
	       fs_key_tries(&fs));
	ASSERT_EQ(fs_key_tries(&fs), 3, "two failures, then the retry");
	ASSERT_GE(dt, 2.4, "after 1 s + 2 s of backoff (with slack)");
	ASSERT_LT(dt, 6, "not much later");
	ASSERT_EQ(st.apply_errors, 2, "both failures counted");
	ASSERT_EQ(st.pending, 0, "nothing pending");
	ASSERT_EQ(st.records, 1, "mirrored");
	ASSERT_EQ(st.revision, rev, "no new etcd write was needed");

	/* A newer value replaces the pending one. */
	fs_fail_key(&fs, y1.key, 1000);
	if (fx_put(c, &y1, NULL) || fx_put(c, &y2, &rev))
		goto fail;
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).revision >= rev, 5), "caught up");
	ASSERT_EQ(stats_of(m).pending, 1, "one pending entry for y");
	fs_fail_key(&fs, y1.key, 0);
	ASSERT_TRUE(NM_WAIT_FOR(fs_has(&fs, y1.key, NULL), 5), "y applied");
	ASSERT_TRUE(fs_has(&fs, y1.key,
			   ep_desc(ip4("10.1.1.3"), 256, d, sizeof(d))),
		    "with the newer value");
	ASSERT_EQ(fs_key_tries(&fs), 1, "by one retry");

	/* A delete drops it: no retry after that. */
	fs_fail_key(&fs, z.key, 1000);
	if (fx_put(c, &z, &rev))
		goto fail;
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).pending == 1, 5), "z pending");
	if (!ASSERT_OK(nm_etcd_delete(c, z.key, false, NULL, &rev, &err),
		       "delete z"))
		goto out;
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(m).pending == 0, 5), "dropped");
	tries = fs_key_tries(&fs);
	nm_test_sleep_ms(1500);
	ASSERT_EQ(fs_key_tries(&fs), tries, "no retry after the delete");
	ASSERT_TRUE(!fs_has(&fs, z.key, NULL), "never in the sink");
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	fx_kv_free(&z);
	fx_kv_free(&y2);
	fx_kv_free(&y1);
	fx_kv_free(&x);
	nm_etcd_close(c);
	fs_free(&fs);
}

static void test_unreachable_etcd_backs_off_and_stops_fast(void)
{
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg = plain("http://127.0.0.1:1");
	struct nm_mirror_stats st;
	struct nm_mirror *m;
	struct fake_sink fs;

	fs_init(&fs, "nodemesh/", &sink);
	m = start_mirror(&cfg, NULL, 0, &sink);
	if (!m)
		goto out;
	nm_test_sleep_ms(700);
	st = stats_of(m);
	ASSERT_TRUE(!st.synced && !st.connected, "not synced, not connected");
	ASSERT_TRUE(strstr(st.last_error,
			   "failed to range nodemesh/ on http://127.0.0.1:1") !=
			    NULL,
		    st.last_error);
	printf("# %s\n", st.last_error);
	stop_timed(m, "mirror in backoff");
out:
	fs_free(&fs);
}

/*
 * A list stuck on a frozen etcd: stop still returns promptly (the thread
 * is left to finish on its own) and the sink hears nothing afterwards.
 */
/*
 * kill(SIGSTOP) returns before every thread of the target has stopped; a
 * thread still running could answer one more request. Wait until all
 * tasks of @pid show state T.
 */
static bool wait_stopped(pid_t pid)
{
	char path[320], buf[512];
	int tries, running;

	for (tries = 0; tries < 200; tries++) {
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
		d = opendir(path);
		if (!d)
			return false;
		running = 0;
		while ((de = readdir(d))) {
			char *st;
			ssize_t n;
			int fd;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%s/stat",
				 (int)pid, de->d_name);
			fd = open(path, O_RDONLY);
			if (fd < 0)
				continue; /* the task just exited */
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (n <= 0)
				continue;
			buf[n] = '\0';
			/* "pid (comm) S ...": comm may hold spaces, so
			 * the state follows the last ')'. */
			st = strrchr(buf, ')');
			if (!st || st[1] != ' ' || st[2] != 'T')
				running++;
		}
		closedir(d);
		if (!running)
			return true;
		nm_test_sleep_ms(10);
	}
	return false;
}

static void test_stop_while_list_hangs(void)
{
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct etcd_srv s = { .slot = -1 };
	struct nm_mirror_sink sink;
	struct nm_etcd_config cfg;
	struct nm_mirror *m = NULL;
	struct nm_etcd *c = NULL;
	struct fx_kv cl = { 0 };
	struct fake_sink fs;
	bool frozen = false;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd() || !ASSERT_OK(etcd_srv_start(&s, NULL), "start etcd"))
		goto out;
	c = etcd_fx_client(s.url, NULL, NULL);
	if (!c || fx_cluster(&ctx, &cl) || fx_put(c, &cl, NULL))
		goto fail;
	if (!ASSERT_OK(kill(s.pid, SIGSTOP), "freeze etcd"))
		goto out;
	frozen = true;
	if (!ASSERT_TRUE(wait_stopped(s.pid), "every etcd thread stopped"))
		goto out;
	cfg = plain(s.url);
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m)
		goto out;
	nm_test_sleep_ms(300); /* the list is in flight, waiting on etcd */
	ASSERT_TRUE(!stats_of(m).synced, "not synced while etcd is frozen");
	stop_timed(m, "mirror stuck in a list");
	m = NULL;
	kill(s.pid, SIGCONT);
	frozen = false;
	nm_test_sleep_ms(500); /* the left thread ends its list and frees itself */
	pthread_mutex_lock(&fs.lock);
	ASSERT_EQ(fs.upserts + fs.removes, 0, "no sink call after stop");
	pthread_mutex_unlock(&fs.lock);
	goto out;
fail:
	nm_test_fail();
out:
	if (frozen)
		kill(s.pid, SIGCONT);
	nm_mirror_stop(m);
	fx_kv_free(&cl);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

#define RS_MIRRORS 8
#define RS_STOP_MS 50 /* stop after a request: the thread has ended */

/* Stop @m after a stop request; how long the stop took, in ms. */
static double stop_requested(struct nm_mirror *m, const char *what)
{
	double t0 = nm_test_now_s(), dt;

	nm_mirror_stop(m);
	dt = (nm_test_now_s() - t0) * 1e3;
	printf("# %s: stopped %.1f ms after the request returned\n", what, dt);
	ASSERT_LT(dt, RS_STOP_MS, "stop after request_stop is quick");
	return dt;
}

/*
 * Two-phase stop: nm_mirror_request_stop() returns at once and wakes the
 * thread wherever it waits (an idle watch stream, the watch's reconnect
 * backoff, the list backoff), so the nm_mirror_stop() that follows finds
 * it ended and returns in well under RS_STOP_MS; RS_MIRRORS mirrors
 * requested together stop in about the time of one.
 */
static void test_request_stop_then_stop_is_quick(void)
{
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_mirror *m[RS_MIRRORS] = { NULL }, *one = NULL;
	struct nm_etcd_config cfg, dead = plain("http://127.0.0.1:1");
	struct etcd_srv s = { .slot = -1 };
	struct nm_mirror_sink sink;
	struct nm_etcd *c = NULL;
	struct fx_kv cl = { 0 };
	struct fake_sink fs;
	double t0, dt, worst = 0;
	int i;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd() || !ASSERT_OK(etcd_srv_start(&s, NULL), "start etcd"))
		goto out;
	c = etcd_fx_client(s.url, NULL, NULL);
	if (!c || fx_cluster(&ctx, &cl) || fx_put(c, &cl, NULL))
		goto fail;
	cfg = plain(s.url);
	for (i = 0; i < RS_MIRRORS; i++) {
		m[i] = start_mirror(&cfg, ctx.prefix, 0, &sink);
		if (!m[i] || !wait_synced(m[i], 5))
			goto out;
	}
	for (i = 0; i < RS_MIRRORS; i++)
		if (!ASSERT_TRUE(NM_WAIT_FOR(stats_of(m[i]).connected, 2),
				 "watch stream up"))
			goto out;
	nm_test_sleep_ms(300); /* every watch idle in its poll */

	/* Idle watches: tell all, then stop each. */
	t0 = nm_test_now_s();
	for (i = 0; i < RS_MIRRORS; i++)
		nm_mirror_request_stop(m[i]);
	dt = (nm_test_now_s() - t0) * 1e3;
	printf("# %d stop requests returned in %.2f ms\n", RS_MIRRORS, dt);
	ASSERT_LT(dt, RS_STOP_MS, "request_stop returns at once");
	t0 = nm_test_now_s();
	for (i = 0; i < RS_MIRRORS; i++) {
		dt = stop_requested(m[i], "idle watch");
		worst = dt > worst ? dt : worst;
		m[i] = NULL;
	}
	dt = (nm_test_now_s() - t0) * 1e3;
	printf("# %d idle mirrors stopped in %.1f ms (slowest %.1f ms)\n",
	       RS_MIRRORS, dt, worst);
	ASSERT_LT(dt, RS_STOP_MS, "every stop after the requests");

	/* A watch waiting to reconnect to a dead etcd. */
	one = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!one || !wait_synced(one, 5) ||
	    !ASSERT_TRUE(NM_WAIT_FOR(stats_of(one).connected, 2), "connected"))
		goto out;
	etcd_srv_stop(&s, true);
	ASSERT_TRUE(NM_WAIT_FOR(!stats_of(one).connected, 2), "disconnected");
	nm_test_sleep_ms(300); /* in the watch's reconnect backoff */
	nm_mirror_request_stop(one);
	stop_requested(one, "watch in its reconnect backoff");
	one = NULL;

	/* The list's backoff on an unreachable etcd. */
	one = start_mirror(&dead, ctx.prefix, 0, &sink);
	if (!one)
		goto out;
	nm_test_sleep_ms(300);
	nm_mirror_request_stop(one);
	stop_requested(one, "list in its backoff");
	one = NULL;
	goto out;
fail:
	nm_test_fail();
out:
	for (i = 0; i < RS_MIRRORS; i++)
		nm_mirror_stop(m[i]);
	nm_mirror_stop(one);
	fx_kv_free(&cl);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

static void test_mtls(void)
{
	struct etcd_srv_opts so = { .tls = true, .client_cert_auth = true };
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	char ca[PATH_MAX + 16], wca[PATH_MAX + 16], crt[PATH_MAX + 16],
		key[PATH_MAX + 16];
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct nm_mirror *m = NULL, *bad = NULL;
	struct etcd_srv s = { .slot = -1 };
	struct fx_kv cl = { 0 }, ep = { 0 };
	struct nm_mirror_sink sink;
	struct nm_etcd_err err = { { 0 } };
	struct nm_mirror_stats st;
	struct nm_etcd *c = NULL;
	struct fake_sink fs;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd())
		goto out;
	so.certs_dir = etcd_fx_certs();
	if (!so.certs_dir)
		goto out;
	if (!ASSERT_OK(etcd_srv_start(&s, &so), "start etcd with mTLS"))
		goto out;
	cfg.endpoints[0] = s.url;
	cfg.ca_file = etcd_srv_cert(&s, "ca.pem", ca, sizeof(ca));
	cfg.cert_file = etcd_srv_cert(&s, "client.pem", crt, sizeof(crt));
	cfg.key_file = etcd_srv_cert(&s, "client-key.pem", key, sizeof(key));
	if (!ASSERT_OK(nm_etcd_open(&cfg, &c, &err), err.msg))
		goto out;
	if (fx_cluster(&ctx, &cl) ||
	    fx_endpoint(&ctx, "shop", "web-1", ip4("10.1.0.5"), 256, &ep) ||
	    fx_put(c, &cl, NULL))
		goto fail;
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	if (fx_put(c, &ep, NULL))
		goto fail;
	ASSERT_TRUE(NM_WAIT_FOR(fs_has(&fs, ep.key, NULL), 5), "watch over mTLS");
	ASSERT_TRUE(fs_has(&fs, cl.key, NULL), "list over mTLS");

	/* A CA that did not sign the server: refused, with the reason. */
	cfg.ca_file = etcd_srv_cert(&s, "wrong-ca.pem", wca, sizeof(wca));
	bad = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!bad)
		goto out;
	ASSERT_TRUE(NM_WAIT_FOR(stats_of(bad).last_error[0], 5), "error noted");
	st = stats_of(bad);
	ASSERT_TRUE(!st.synced && !st.connected, "wrong CA: not synced");
	ASSERT_TRUE(strstr(st.last_error, "certificate") != NULL,
		    st.last_error);
	printf("# wrong CA: %s\n", st.last_error);
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(bad);
	nm_mirror_stop(m);
	fx_kv_free(&ep);
	fx_kv_free(&cl);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

static int admin(struct nm_etcd *c, const char *what, const char *path,
		 const char *body)
{
	struct nm_etcd_err err = { { 0 } };
	int ret;

	ret = nm_etcd_request(c, what, path, body, NULL, &err);
	if (ret)
		printf("# %s\n", err.msg);
	return ret;
}

static void test_read_only_user_can_mirror(void)
{
	struct nm_kv_ctx ctx = { .prefix = "nodemesh/",
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct etcd_srv s = { .slot = -1 };
	struct nm_etcd *adm = NULL, *root = NULL;
	struct fx_kv cl = { 0 }, ep = { 0 };
	struct nm_etcd_err err = { { 0 } };
	struct nm_mirror_sink sink;
	struct nm_mirror *m = NULL;
	struct fake_sink fs;
	char perm[256], k[32], e[32];
	int ret;

	fs_init(&fs, ctx.prefix, &sink);
	if (!etcd_fx_have_etcd() || !ASSERT_OK(etcd_srv_start(&s, NULL), "start etcd"))
		goto out;
	adm = etcd_fx_client(s.url, NULL, NULL);
	if (!adm)
		goto out;
	/* Role "ro": read on [nodemesh/, nodemesh0), nothing else. */
	nm_b64_encode("nodemesh/", 9, k);
	nm_b64_encode("nodemesh0", 9, e);
	snprintf(
		perm, sizeof(perm),
		"{\"name\":\"ro\",\"perm\":{\"permType\":\"READ\",\"key\":\"%s\",\"range_end\":\"%s\"}}",
		k, e);
	ret = admin(adm, "add user root", "/v3/auth/user/add",
		    "{\"name\":\"root\",\"password\":\"rootpw\"}") ||
	      admin(adm, "grant root", "/v3/auth/user/grant",
		    "{\"user\":\"root\",\"role\":\"root\"}") ||
	      admin(adm, "add role ro", "/v3/auth/role/add",
		    "{\"name\":\"ro\"}") ||
	      admin(adm, "grant ro", "/v3/auth/role/grant", perm) ||
	      admin(adm, "add user rd", "/v3/auth/user/add",
		    "{\"name\":\"rd\",\"password\":\"rdpw\"}") ||
	      admin(adm, "grant rd", "/v3/auth/user/grant",
		    "{\"user\":\"rd\",\"role\":\"ro\"}") ||
	      admin(adm, "enable auth", "/v3/auth/enable", "{}");
	if (!ASSERT_OK(ret, "set up users and roles"))
		goto out;
	cfg.endpoints[0] = s.url;
	cfg.username = "root";
	cfg.password = "rootpw";
	if (!ASSERT_OK(nm_etcd_open(&cfg, &root, &err), err.msg))
		goto out;
	if (fx_cluster(&ctx, &cl) ||
	    fx_endpoint(&ctx, "shop", "web-1", ip4("10.1.0.5"), 256, &ep) ||
	    fx_put(root, &cl, NULL))
		goto fail;
	cfg.username = "rd";
	cfg.password = "rdpw";
	m = start_mirror(&cfg, ctx.prefix, 0, &sink);
	if (!m || !wait_synced(m, 5))
		goto out;
	ASSERT_TRUE(fs_has(&fs, cl.key, NULL), "listed as the read-only user");
	if (fx_put(root, &ep, NULL))
		goto fail;
	ASSERT_TRUE(NM_WAIT_FOR(fs_has(&fs, ep.key, NULL), 5),
		    "watched as the read-only user");
	ASSERT_EQ(stats_of(m).rejected, 0, "nothing rejected");
	goto out;
fail:
	nm_test_fail();
out:
	nm_mirror_stop(m);
	fx_kv_free(&ep);
	fx_kv_free(&cl);
	nm_etcd_close(root);
	nm_etcd_close(adm);
	etcd_srv_destroy(&s);
	fs_free(&fs);
}

int main(void)
{
	static const struct nm_test tests[] = {
		NM_TEST(test_list_then_watch_puts_deletes_txns),
		NM_TEST(test_pagination_10k),
		NM_TEST(test_compaction_while_cut_relists_and_sweeps),
		NM_TEST(test_sigkill_restart_mid_watch),
		NM_TEST(test_new_etcd_behind_the_address_relists),
		NM_TEST(test_relist_lists_again_and_sweeps),
		NM_TEST(test_reconnect_after_long_cut_is_prompt),
		NM_TEST(test_bad_records_rejected_and_counted),
		NM_TEST(test_sink_failure_counted),
		NM_TEST(test_failed_upsert_retried),
		NM_TEST(test_unreachable_etcd_backs_off_and_stops_fast),
		NM_TEST(test_stop_while_list_hangs),
		NM_TEST(test_request_stop_then_stop_is_quick),
		NM_TEST(test_mtls),
		NM_TEST(test_read_only_user_can_mirror),
	};
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	failed = NM_TEST_RUN(tests);
	etcd_fx_destroy();
	return failed ? 1 : 0;
}
