// SPDX-License-Identifier: GPL-2.0
/*
 * The etcd client against real etcd processes on 127.0.0.1 (started,
 * killed and removed by tests/lib/etcd_srv.c on every way out).
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "agent/base64.h"
#include "agent/etcd.h"
#include "tests/lib/etcd_fx.h"
#include "tests/lib/etcd_srv.h"
#include "tests/lib/test.h"

static __s64 put_s(struct nm_etcd *c, const char *key, const char *val)
{
	struct nm_etcd_err err = {};
	__s64 rev = 0;

	if (nm_etcd_put(c, key, val, strlen(val), 0, &rev, &err)) {
		printf("# %s\n", err.msg);
		nm_test_fail();
		return -1;
	}
	return rev;
}

static void test_put_get_delete(void)
{
	struct nm_etcd_err err = {};
	struct nm_etcd_kv kv = {};
	struct nm_etcd *c;
	__s64 rev, rev2, n;
	int ret;

	if (!etcd_fx_need_main())
		return;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c)
		return;
	rev = put_s(c, "t/basic/k", "v1");
	rev2 = put_s(c, "t/basic/k", "v2");
	if (!ASSERT_GT(rev2, rev, "revision grows"))
		goto out;
	ret = nm_etcd_get(c, "t/basic/k", &kv, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	ASSERT_TRUE(!strcmp(kv.value, "v2"), "value");
	ASSERT_EQ(kv.mod_revision, rev2, "mod_revision");
	ASSERT_EQ(kv.create_revision, rev, "create_revision");
	ASSERT_EQ(kv.version, 2, "version");
	ASSERT_TRUE(nm_etcd_cluster_id(c) != 0, "cluster_id remembered");
	nm_etcd_kv_free(&kv);

	/* Binary values survive (NUL and 0xff inside). */
	ret = nm_etcd_put(c, "t/basic/bin", "a\0b\xff", 4, 0, NULL, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	ret = nm_etcd_get(c, "t/basic/bin", &kv, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	ASSERT_EQ(kv.value_len, 4, "binary length");
	ASSERT_MEMEQ(kv.value, "a\0b\xff", 4, "binary value");
	nm_etcd_kv_free(&kv);

	ret = nm_etcd_delete(c, "t/basic/k", false, &n, NULL, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_EQ(n, 1, "deleted");
	ret = nm_etcd_get(c, "t/basic/k", &kv, &err);
	ASSERT_EQ(ret, -ENOENT, "get after delete");
	ASSERT_TRUE(strstr(err.msg,
			   "failed to get t/basic/k on http://127.0.0.1:") &&
			    strstr(err.msg, "key not found"),
		    err.msg);
out:
	nm_etcd_kv_free(&kv);
	nm_etcd_close(c);
}

static void test_prefix_range_and_delete(void)
{
	static const char *const in[] = { "t/pfx/a", "t/pfx/b", "t/pfx/c/d",
					  "t/pfx/e", "t/pfx/\xff" };
	struct nm_etcd_range_opts o = { .key = "t/pfx/", .prefix = true };
	struct nm_etcd_err err = {};
	struct nm_etcd_kvs kvs = {};
	struct nm_etcd *c;
	__s64 n;
	size_t i;
	int ret;

	if (!etcd_fx_need_main())
		return;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c)
		return;
	for (i = 0; i < 5; i++)
		put_s(c, in[i], "x");
	put_s(c, "t/pfx", "outside");
	put_s(c, "t/pfx0", "outside");
	put_s(c, "t/pfw/z", "outside");
	ret = nm_etcd_range(c, &o, &kvs, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	if (!ASSERT_EQ(kvs.n, 5, "keys under the prefix"))
		goto out;
	for (i = 0; i < 5; i++)
		ASSERT_TRUE(!strcmp(kvs.kv[i].key, in[i]), in[i]);
	nm_etcd_kvs_free(&kvs);

	ret = nm_etcd_delete(c, "t/pfx/", true, &n, NULL, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_EQ(n, 5, "deleted under the prefix");
	ret = nm_etcd_range(c, &o, &kvs, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_EQ(kvs.n, 0, "nothing left");
	nm_etcd_kvs_free(&kvs);
	o.key = "t/pfx";
	o.prefix = false;
	ret = nm_etcd_range(c, &o, &kvs, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_EQ(kvs.n, 1, "the key beside the prefix survives");
out:
	nm_etcd_kvs_free(&kvs);
	nm_etcd_close(c);
}

struct racer {
	struct nm_etcd *c;
	pthread_barrier_t *go;
	char key[64];
	char val[32];
	bool done;
	struct nm_etcd_kv cur;
	int ret;
	struct nm_etcd_err err;
};

static void *race_fn(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	r->ret = nm_etcd_create(r->c, r->key, r->val, strlen(r->val), 0,
				&r->done, &r->cur, &r->err);
	return NULL;
}

static void test_create_if_absent_race(void)
{
	struct racer r[2] = {};
	pthread_barrier_t go;
	pthread_t th[2];
	int round, i, wins[2] = {};

	if (!etcd_fx_need_main())
		return;
	for (i = 0; i < 2; i++) {
		r[i].c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
		if (!r[i].c)
			goto out;
		r[i].go = &go;
		snprintf(r[i].val, sizeof(r[i].val), "agent-%d", i);
	}
	for (round = 0; round < 20; round++) {
		if (pthread_barrier_init(&go, NULL, 2))
			goto out;
		for (i = 0; i < 2; i++) {
			snprintf(r[i].key, sizeof(r[i].key), "t/ids/%d", round);
			memset(&r[i].cur, 0, sizeof(r[i].cur));
			if (pthread_create(&th[i], NULL, race_fn, &r[i]))
				nm_test_fail();
		}
		for (i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		for (i = 0; i < 2; i++)
			if (!ASSERT_OK(r[i].ret, r[i].err.msg))
				goto out;
		if (!ASSERT_TRUE(r[0].done != r[1].done, "exactly one wins"))
			goto out;
		i = r[0].done ? 0 : 1;
		wins[i]++;
		/* The loser sees the winner's value, not its own. */
		ASSERT_TRUE(!strcmp(r[!i].cur.value, r[i].val),
			    "loser sees winner");
		ASSERT_GT(r[!i].cur.create_revision, 0,
			  "loser sees create_revision");
		for (i = 0; i < 2; i++)
			nm_etcd_kv_free(&r[i].cur);
	}
	printf("# wins: agent-0 %d, agent-1 %d\n", wins[0], wins[1]);
out:
	for (i = 0; i < 2; i++) {
		nm_etcd_kv_free(&r[i].cur);
		nm_etcd_close(r[i].c);
	}
}

static void test_compare_and_swap(void)
{
	struct nm_etcd_err err = {};
	struct nm_etcd_kv cur = {};
	struct nm_etcd *c;
	bool done;
	__s64 rev;
	int ret;

	if (!etcd_fx_need_main())
		return;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c)
		return;
	rev = put_s(c, "t/cas", "one");
	put_s(c, "t/cas", "two");
	ret = nm_etcd_cas(c, "t/cas", rev, "three", 5, 0, &done, &cur, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_TRUE(!done, "stale mod_revision loses");
	ASSERT_TRUE(cur.value && !strcmp(cur.value, "two"), "current value");
	rev = cur.mod_revision;
	nm_etcd_kv_free(&cur);
	ret = nm_etcd_cas(c, "t/cas", rev, "three", 5, 0, &done, &cur, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_TRUE(done, "current mod_revision wins");
	ret = nm_etcd_get(c, "t/cas", &cur, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_TRUE(cur.value && !strcmp(cur.value, "three"), "swapped");
	nm_etcd_kv_free(&cur);
	/* create-if-absent on an absent key creates it. */
	ret = nm_etcd_create(c, "t/cas-new", "n", 1, 0, &done, &cur, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_TRUE(done, "absent key created");
	nm_etcd_kv_free(&cur);
	nm_etcd_close(c);
}

/* 10k keys in txns of 100 puts (etcd's --max-txn-ops is 128). */
static int fill_keys(struct nm_etcd *c, const char *fmt, int n,
		     struct nm_etcd_err *err)
{
	char key[64], kb[128], vb[128], *body;
	size_t cap = 100 * 300, len;
	int i, j, ret = 0;

	body = malloc(cap);
	if (!body)
		return -ENOMEM;
	for (i = 0; i < n && !ret; i += 100) {
		len = snprintf(body, cap, "{\"success\":[");
		for (j = i; j < i + 100 && j < n; j++) {
			snprintf(key, sizeof(key), fmt, j);
			nm_b64_encode(key, strlen(key), kb);
			nm_b64_encode("initial", 7, vb);
			len += snprintf(
				body + len, cap - len,
				"%s{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}",
				j > i ? "," : "", kb, vb);
		}
		snprintf(body + len, cap - len, "]}");
		ret = nm_etcd_request(c, "fill keys", "/v3/kv/txn", body, NULL,
				      err);
	}
	free(body);
	return ret;
}

struct pager {
	struct nm_etcd *writer;
	int seen;
	int leaked;
	int bad_order;
	__s64 max_mod;
	char last[64];
	int write_err;
};

static int page_cb(const struct nm_etcd_kv *kv, void *arg)
{
	struct pager *p = arg;
	struct nm_etcd_err err = {};

	if (p->last[0] && strcmp(kv->key, p->last) <= 0)
		p->bad_order++;
	snprintf(p->last, sizeof(p->last), "%s", kv->key);
	if (kv->mod_revision > p->max_mod)
		p->max_mod = kv->mod_revision;
	if (strcmp(kv->value, "initial"))
		p->leaked++;
	if (strstr(kv->key, "/new"))
		p->leaked++;
	/* Mid-listing, change keys ahead of the cursor and add new ones. */
	if (++p->seen == 2500) {
		if (nm_etcd_put(p->writer, "t/page/09999", "changed", 7, 0,
				NULL, &err) ||
		    nm_etcd_put(p->writer, "t/page/05000", "changed", 7, 0,
				NULL, &err) ||
		    nm_etcd_put(p->writer, "t/page/08000/new", "new", 3, 0,
				NULL, &err)) {
			printf("# %s\n", err.msg);
			p->write_err++;
		}
	}
	return 0;
}

static void test_pagination_10k_pinned(void)
{
	struct nm_etcd_range_opts o = { .key = "t/page/",
					.prefix = true,
					.page_size = 1000 };
	struct nm_etcd_err err = {};
	struct pager p = {};
	struct nm_etcd *c;
	__s64 rev = 0;
	double t0;
	int ret;

	if (!etcd_fx_need_main())
		return;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	p.writer = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c || !p.writer)
		goto out;
	t0 = nm_test_now_s();
	ret = fill_keys(c, "t/page/%05d", 10000, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	printf("# filled 10000 keys in %.2f s\n", nm_test_now_s() - t0);
	t0 = nm_test_now_s();
	ret = nm_etcd_range_each(c, &o, page_cb, &p, &rev, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	printf("# listed in pages of 1000 in %.3f s at revision %lld\n",
	       nm_test_now_s() - t0, (long long)rev);
	ASSERT_EQ(p.write_err, 0, "writes during paging");
	ASSERT_EQ(p.seen, 10000, "keys listed");
	ASSERT_EQ(p.bad_order, 0, "keys strictly increasing");
	ASSERT_EQ(p.leaked, 0, "writes made while paging leaked in");
	ASSERT_LE(p.max_mod, rev, "every key at or before the pinned revision");
out:
	nm_etcd_close(p.writer);
	nm_etcd_close(c);
}

static void test_lease_grant_keepalive_revoke_expire(void)
{
	struct nm_etcd_err err = {};
	struct nm_etcd_kv kv = {};
	struct nm_etcd *c;
	__s64 ttl = 0, left = 0;
	__u64 id = 0, id2 = 0;
	double t0;
	int ret;

	if (!etcd_fx_need_main())
		return;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c)
		return;
	ret = nm_etcd_lease_grant(c, 30, &id, &ttl, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	ASSERT_EQ(ttl, 30, "granted ttl");
	printf("# lease id %llu (%s 2^53)\n", (unsigned long long)id,
	       id > (1ull << 53) ? "above" : "below");
	ret = nm_etcd_put(c, "t/lease/a", "x", 1, id, NULL, &err);
	ASSERT_OK(ret, err.msg);
	ret = nm_etcd_get(c, "t/lease/a", &kv, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_TRUE(kv.lease == id, "key carries the lease id exactly");
	nm_etcd_kv_free(&kv);
	ret = nm_etcd_lease_keepalive(c, id, &left, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_EQ(left, 30, "ttl after keepalive");
	ret = nm_etcd_lease_revoke(c, id, &err);
	ASSERT_OK(ret, err.msg);
	ret = nm_etcd_get(c, "t/lease/a", &kv, &err);
	ASSERT_EQ(ret, -ENOENT, "key under a revoked lease is gone");
	ret = nm_etcd_lease_keepalive(c, id, &left, &err);
	ASSERT_EQ(ret, -ENOENT, "keepalive of a revoked lease");
	ASSERT_TRUE(strstr(err.msg, "expired") != NULL, err.msg);
	ret = nm_etcd_lease_revoke(c, id, &err);
	ASSERT_EQ(ret, -ENOENT, "revoke of a revoked lease");

	/* Expiry: etcd rounds small TTLs up to its minimum (2 s here). */
	ret = nm_etcd_lease_grant(c, 1, &id2, &ttl, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	ret = nm_etcd_put(c, "t/lease/b", "x", 1, id2, NULL, &err);
	ASSERT_OK(ret, err.msg);
	t0 = nm_test_now_s();
	do {
		nm_test_sleep_ms(200);
		ret = nm_etcd_get(c, "t/lease/b", &kv, &err);
		nm_etcd_kv_free(&kv);
	} while (ret == 0 && nm_test_now_s() - t0 < 10);
	ASSERT_EQ(ret, -ENOENT, "key under an expired lease is gone");
	printf("# ttl %lld s lease expired after %.1f s\n", (long long)ttl,
	       nm_test_now_s() - t0);
	ret = nm_etcd_lease_keepalive(c, id2, &left, &err);
	ASSERT_EQ(ret, -ENOENT, "keepalive of an expired lease");
out:
	nm_etcd_close(c);
}

/* A watch in a thread, recording what it gets. */
#define MAX_EV 256
struct rec_ev {
	enum nm_etcd_event_type type;
	char key[64];
	char value[32];
	__s64 rev;
};

struct watcher {
	struct nm_etcd *c;
	struct nm_etcd_watch_opts o;
	struct nm_etcd_watch_state st;
	struct nm_etcd_err err;
	atomic_int stop;
	atomic_int n;
	struct rec_ev ev[MAX_EV];
	int ret;
	pthread_t th;
	bool running;
};

static int rec_cb(const struct nm_etcd_event *ev, void *arg)
{
	struct watcher *w = arg;
	int n = atomic_load(&w->n);
	struct rec_ev *r;

	if (n >= MAX_EV)
		return -ENOSPC;
	r = &w->ev[n];
	r->type = ev->type;
	r->rev = ev->kv.mod_revision;
	snprintf(r->key, sizeof(r->key), "%s", ev->kv.key);
	snprintf(r->value, sizeof(r->value), "%s", ev->kv.value);
	atomic_store(&w->n, n + 1);
	return 0;
}

static void *watch_fn(void *arg)
{
	struct watcher *w = arg;

	w->ret = nm_etcd_watch(w->c, &w->o, &w->st, &w->err);
	return NULL;
}

static bool watch_start(struct watcher *w, struct nm_etcd *c, const char *key,
			__s64 from)
{
	memset(w, 0, sizeof(*w));
	w->c = c;
	w->o.key = key;
	w->o.prefix = true;
	w->o.start_revision = from;
	w->o.cb = rec_cb;
	w->o.arg = w;
	w->o.stop = &w->stop;
	w->o.timeout_ms = 30000; /* a stuck test still ends */
	if (!ASSERT_OK(pthread_create(&w->th, NULL, watch_fn, w), "thread"))
		return false;
	w->running = true;
	return true;
}

static bool watch_wait(struct watcher *w, int n, double secs)
{
	double t0 = nm_test_now_s();

	while (atomic_load(&w->n) < n && nm_test_now_s() - t0 < secs)
		nm_test_sleep_ms(10);
	return ASSERT_GE(atomic_load(&w->n), n, "events arrived");
}

static void watch_end(struct watcher *w)
{
	if (!w->running)
		return;
	atomic_store(&w->stop, 1);
	pthread_join(w->th, NULL);
	w->running = false;
}

static void test_watch_puts_deletes_txns_in_order(void)
{
	const char *txn_fmt =
		"{\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}},"
		"{\"request_delete_range\":{\"key\":\"%s\"}}]}";
	struct nm_etcd_err err = {};
	struct nm_etcd_kvs kvs = {};
	struct nm_etcd_range_opts o = { .key = "t/w/" };
	char body[512], kc[16], vc[16], ka[16];
	__s64 r0, r1, r2, r3, r4;
	struct watcher w;
	struct nm_etcd *c, *wc;
	int ret;

	if (!etcd_fx_need_main())
		return;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	wc = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c || !wc)
		goto out_close;
	ret = nm_etcd_range(c, &o, &kvs, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out_close;
	r0 = kvs.revision;
	nm_etcd_kvs_free(&kvs);
	if (!watch_start(&w, wc, "t/w/", r0 + 1))
		goto out_close;
	r1 = put_s(c, "t/w/a", "1");
	r2 = put_s(c, "t/w/b", "2");
	/* One txn, two events at one revision: put c, delete a. */
	nm_b64_encode("t/w/c", 5, kc);
	nm_b64_encode("3", 1, vc);
	nm_b64_encode("t/w/a", 5, ka);
	snprintf(body, sizeof(body), txn_fmt, kc, vc, ka);
	ret = nm_etcd_request(c, "txn", "/v3/kv/txn", body, NULL, &err);
	ASSERT_OK(ret, err.msg);
	r3 = r2 + 1;
	ret = nm_etcd_delete(c, "t/w/", true, NULL, &r4, &err);
	ASSERT_OK(ret, err.msg);
	put_s(c, "t/other", "not watched");
	if (!watch_wait(&w, 6, 5))
		goto out_watch;
	nm_test_sleep_ms(100); /* nothing more may come */
	watch_end(&w);
	ASSERT_EQ(w.ret, 0, "watch ended by the stop flag");
	if (!ASSERT_EQ(atomic_load(&w.n), 6, "events"))
		goto out_watch;
	ASSERT_TRUE(w.ev[0].type == NM_ETCD_PUT &&
			    !strcmp(w.ev[0].key, "t/w/a") &&
			    !strcmp(w.ev[0].value, "1") && w.ev[0].rev == r1,
		    "put a");
	ASSERT_TRUE(w.ev[1].type == NM_ETCD_PUT &&
			    !strcmp(w.ev[1].key, "t/w/b") && w.ev[1].rev == r2,
		    "put b");
	ASSERT_TRUE(w.ev[2].type == NM_ETCD_PUT &&
			    !strcmp(w.ev[2].key, "t/w/c") && w.ev[2].rev == r3,
		    "txn put c");
	ASSERT_TRUE(w.ev[3].type == NM_ETCD_DELETE &&
			    !strcmp(w.ev[3].key, "t/w/a") && w.ev[3].rev == r3,
		    "txn delete a, same revision");
	ASSERT_TRUE(w.ev[4].type == NM_ETCD_DELETE &&
			    !strcmp(w.ev[4].key, "t/w/b") && w.ev[4].rev == r4,
		    "delete b");
	ASSERT_TRUE(w.ev[5].type == NM_ETCD_DELETE &&
			    !strcmp(w.ev[5].key, "t/w/c") && w.ev[5].rev == r4,
		    "delete c, same revision");
	ASSERT_EQ(w.st.last_revision, r4, "last revision tracked");
out_watch:
	watch_end(&w);
out_close:
	nm_etcd_close(wc);
	nm_etcd_close(c);
}

static void test_watch_from_compacted_revision(void)
{
	struct nm_etcd_watch_opts o = { .key = "t/cmp/",
					.prefix = true,
					.cb = rec_cb,
					.timeout_ms = 5000 };
	struct nm_etcd_range_opts ro = { .key = "t/cmp/", .prefix = true };
	struct nm_etcd_watch_state st;
	struct nm_etcd_err err = {};
	struct nm_etcd_kvs kvs = {};
	struct watcher w = {};
	struct nm_etcd *c;
	__s64 r1, r2;
	int ret;

	if (!etcd_fx_need_main())
		return;
	c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!c)
		return;
	o.arg = &w;
	r1 = put_s(c, "t/cmp/a", "1");
	put_s(c, "t/cmp/a", "2");
	r2 = put_s(c, "t/cmp/b", "3");
	ret = nm_etcd_compact(c, r2, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	o.start_revision = r1;
	ret = nm_etcd_watch(c, &o, &st, &err);
	ASSERT_EQ(ret, -ERANGE, "watch from a compacted revision");
	ASSERT_EQ(st.compact_revision, r2, "compact_revision reported");
	ASSERT_TRUE(strstr(err.msg, "compacted") != NULL, err.msg);
	ASSERT_EQ(atomic_load(&w.n), 0, "no events delivered");
	/* A pinned range at that revision is refused the same way. */
	ro.revision = r1;
	ret = nm_etcd_range(c, &ro, &kvs, &err);
	ASSERT_EQ(ret, -ERANGE, "range at a compacted revision");
	ASSERT_TRUE(strstr(err.msg, "compacted") != NULL, err.msg);
out:
	nm_etcd_kvs_free(&kvs);
	nm_etcd_close(c);
}

static void test_watch_resumes_after_sigkill_restart(void)
{
	struct etcd_srv s;
	struct watcher w = {};
	struct nm_etcd *c = NULL, *wc = NULL;
	__s64 r0, revs[40];
	char key[32], val[16];
	double t0;
	int i, ret;

	if (!etcd_fx_need_main())
		return;
	ret = etcd_srv_start(&s, NULL);
	if (!ASSERT_OK(ret, "start etcd"))
		return;
	c = etcd_fx_client(s.url, NULL, NULL);
	wc = etcd_fx_client(s.url, NULL, NULL);
	if (!c || !wc)
		goto out;
	r0 = put_s(c, "t/r/start", "x");
	if (!watch_start(&w, wc, "t/r/", r0 + 1))
		goto out;
	w.o.backoff_max_ms = 400;
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "t/r/%02d", i);
		snprintf(val, sizeof(val), "v%d", i);
		revs[i] = put_s(c, key, val);
	}
	/* Killed while the watcher may still be behind. */
	t0 = nm_test_now_s();
	etcd_srv_stop(&s, true);
	nm_test_sleep_ms(300); /* the watcher meets refused connections */
	ret = etcd_srv_restart(&s);
	if (!ASSERT_OK(ret, "restart etcd"))
		goto out;
	printf("# etcd down and back in %.2f s\n", nm_test_now_s() - t0);
	for (i = 20; i < 40; i++) {
		snprintf(key, sizeof(key), "t/r/%02d", i);
		snprintf(val, sizeof(val), "v%d", i);
		revs[i] = put_s(c, key, val);
	}
	if (!watch_wait(&w, 40, 10))
		goto out;
	nm_test_sleep_ms(200);
	watch_end(&w);
	ASSERT_EQ(w.ret, 0, "watch ended by the stop flag");
	if (!ASSERT_EQ(atomic_load(&w.n), 40, "every event exactly once"))
		goto out;
	for (i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "t/r/%02d", i);
		if (!ASSERT_TRUE(!strcmp(w.ev[i].key, key), "in order") ||
		    !ASSERT_EQ(w.ev[i].rev, revs[i], "mod_revision"))
			break;
	}
	ASSERT_GE(w.st.reconnects, 1, "reconnected");
	printf("# %u reconnects\n", w.st.reconnects);
out:
	watch_end(&w);
	nm_etcd_close(wc);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
}

static void test_cluster_id_change_detected(void)
{
	struct nm_etcd_watch_opts o = {
		.key = "t/", .prefix = true, .cb = rec_cb, .timeout_ms = 3000
	};
	struct nm_etcd_watch_state st;
	struct nm_etcd_err err = {};
	struct watcher w = {};
	struct etcd_srv s;
	struct nm_etcd *c = NULL;
	__u64 id1;
	int ret;

	if (!etcd_fx_need_main())
		return;
	ret = etcd_srv_start(&s, NULL);
	if (!ASSERT_OK(ret, "start etcd"))
		return;
	c = etcd_fx_client(s.url, NULL, NULL);
	if (!c)
		goto out;
	o.arg = &w;
	put_s(c, "t/a", "1");
	id1 = nm_etcd_cluster_id(c);
	/* Same address, new data dir and token: another cluster. */
	ret = etcd_srv_wipe(&s);
	if (!ASSERT_OK(ret, "wipe etcd"))
		goto out;
	ret = nm_etcd_put(c, "t/a", "2", 1, 0, NULL, &err);
	ASSERT_EQ(ret, -ESTALE, "put to another cluster");
	ASSERT_TRUE(strstr(err.msg, "cluster_id changed") != NULL, err.msg);
	ret = nm_etcd_watch(c, &o, &st, &err);
	ASSERT_EQ(ret, -ESTALE, "watch on another cluster");
	nm_etcd_forget_cluster_id(c);
	ret = nm_etcd_put(c, "t/a", "2", 1, 0, NULL, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_TRUE(nm_etcd_cluster_id(c) != id1, "new cluster_id adopted");
out:
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
}

static void test_failover_between_endpoints(void)
{
	struct nm_etcd_config cfg = { .n_endpoints = 2 };
	struct nm_etcd_err err = {};
	struct nm_etcd *c;
	char dead[64];
	int ret;

	if (!etcd_fx_need_main())
		return;
	/* The peer port of the main etcd speaks no client API: use a
	 * port nobody listens on instead (ours, just released). */
	snprintf(dead, sizeof(dead), "http://127.0.0.1:1");
	cfg.endpoints[0] = dead;
	cfg.endpoints[1] = etcd_fx_main.url;
	ret = nm_etcd_open(&cfg, &c, &err);
	if (!ASSERT_OK(ret, err.msg))
		return;
	ret = nm_etcd_put(c, "t/fo", "x", 1, 0, NULL, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_TRUE(!strcmp(nm_etcd_endpoint(c), etcd_fx_main.url),
		    "sticks to the member that answered");
	nm_etcd_close(c);

	cfg.n_endpoints = 1;
	ret = nm_etcd_open(&cfg, &c, &err);
	if (!ASSERT_OK(ret, err.msg))
		return;
	ret = nm_etcd_put(c, "t/fo", "x", 1, 0, NULL, &err);
	ASSERT_EQ(ret, -ECONNREFUSED, "every member down");
	ASSERT_TRUE(strstr(err.msg,
			   "failed to put t/fo on http://127.0.0.1:1:") != NULL,
		    err.msg);
	printf("# %s\n", err.msg);
	nm_etcd_close(c);

	cfg.endpoints[0] = "ftp://127.0.0.1:1";
	ret = nm_etcd_open(&cfg, &c, &err);
	ASSERT_EQ(ret, -EINVAL, "non-http endpoint refused");
}

static void test_mtls_right_wrong_none(void)
{
	struct etcd_srv_opts so = { .tls = true, .client_cert_auth = true };
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	char ca[PATH_MAX + 16], wca[PATH_MAX + 16], crt[PATH_MAX + 16],
		key[PATH_MAX + 16];
	struct nm_etcd_err err = {};
	struct nm_etcd_kv kv = {};
	struct nm_etcd *c = NULL;
	struct etcd_srv s;
	int ret;

	if (!etcd_fx_need_main())
		return;
	so.certs_dir = etcd_fx_certs();
	if (!so.certs_dir)
		return;
	ret = etcd_srv_start(&s, &so);
	if (!ASSERT_OK(ret, "start etcd with mTLS"))
		return;
	cfg.endpoints[0] = s.url;
	cfg.ca_file = etcd_srv_cert(&s, "ca.pem", ca, sizeof(ca));
	cfg.cert_file = etcd_srv_cert(&s, "client.pem", crt, sizeof(crt));
	cfg.key_file = etcd_srv_cert(&s, "client-key.pem", key, sizeof(key));
	ret = nm_etcd_open(&cfg, &c, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	ret = nm_etcd_put(c, "t/tls", "secure", 6, 0, NULL, &err);
	ASSERT_OK(ret, err.msg);
	ret = nm_etcd_get(c, "t/tls", &kv, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_TRUE(kv.value && !strcmp(kv.value, "secure"), "value over mTLS");
	nm_etcd_kv_free(&kv);
	nm_etcd_close(c);
	c = NULL;

	/* A CA that did not sign the server's certificate. */
	cfg.ca_file = etcd_srv_cert(&s, "wrong-ca.pem", wca, sizeof(wca));
	ret = nm_etcd_open(&cfg, &c, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	ret = nm_etcd_get(c, "t/tls", &kv, &err);
	ASSERT_EQ(ret, -EPROTO, "wrong CA");
	ASSERT_TRUE(strstr(err.msg, "certificate") != NULL, err.msg);
	printf("# wrong CA: %s\n", err.msg);
	nm_etcd_close(c);
	c = NULL;

	/* No client certificate: etcd refuses the handshake. */
	cfg.ca_file = ca;
	cfg.cert_file = NULL;
	cfg.key_file = NULL;
	ret = nm_etcd_open(&cfg, &c, &err);
	if (!ASSERT_OK(ret, err.msg))
		goto out;
	ret = nm_etcd_get(c, "t/tls", &kv, &err);
	ASSERT_TRUE(ret < 0, "no client certificate refused");
	ASSERT_TRUE(strstr(err.msg, "certificate") != NULL, err.msg);
	printf("# no client cert: %s\n", err.msg);
out:
	nm_etcd_kv_free(&kv);
	nm_etcd_close(c);
	etcd_srv_destroy(&s);
}

static int admin(struct nm_etcd *c, const char *what, const char *path,
		 const char *body)
{
	struct nm_etcd_err err = {};
	int ret;

	ret = nm_etcd_request(c, what, path, body, NULL, &err);
	if (ret)
		printf("# %s\n", err.msg);
	return ret;
}

static void test_auth_read_only_user(void)
{
	struct nm_etcd_range_opts o = { .key = "nodemesh/", .prefix = true };
	struct nm_etcd_watch_opts wo = { .key = "other/",
					 .prefix = true,
					 .cb = rec_cb,
					 .timeout_ms = 3000 };
	struct nm_etcd *adm = NULL, *root = NULL, *rd = NULL, *bad = NULL;
	struct etcd_srv_opts so = {};
	struct nm_etcd_watch_state st;
	struct nm_etcd_err err = {};
	struct nm_etcd_kvs kvs = {};
	struct nm_etcd_kv kv = {};
	struct watcher w = {}, w2 = {};
	char perm[256], k[32], e[32];
	struct etcd_srv s;
	__s64 rev;
	int ret;

	if (!etcd_fx_need_main())
		return;
	ret = etcd_srv_start(&s, &so);
	if (!ASSERT_OK(ret, "start etcd"))
		return;
	adm = etcd_fx_client(s.url, NULL, NULL);
	if (!adm)
		goto out;
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
	root = etcd_fx_client(s.url, "root", "rootpw");
	rd = etcd_fx_client(s.url, "rd", "rdpw");
	bad = etcd_fx_client(s.url, "rd", "nope");
	if (!root || !rd || !bad)
		goto out;
	put_s(root, "nodemesh/cluster/east", "{}");
	rev = put_s(root, "other/secret", "s");

	ret = nm_etcd_range(rd, &o, &kvs, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_EQ(kvs.n, 1, "read-only user lists its prefix");
	nm_etcd_kvs_free(&kvs);
	ret = nm_etcd_get(rd, "other/secret", &kv, &err);
	ASSERT_EQ(ret, -EACCES, "read outside the prefix");
	ASSERT_TRUE(strstr(err.msg, "permission denied") != NULL, err.msg);
	ret = nm_etcd_put(rd, "nodemesh/cluster/east", "x", 1, 0, NULL, &err);
	ASSERT_EQ(ret, -EACCES, "put by the read-only user");
	ASSERT_TRUE(strstr(err.msg, "permission denied") != NULL, err.msg);
	printf("# %s\n", err.msg);

	/* Watch: allowed on the prefix, refused elsewhere. */
	if (watch_start(&w, rd, "nodemesh/", rev + 1)) {
		put_s(root, "nodemesh/cluster/west", "{}");
		watch_wait(&w, 1, 5);
		watch_end(&w);
		ASSERT_TRUE(atomic_load(&w.n) == 1 &&
				    !strcmp(w.ev[0].key,
					    "nodemesh/cluster/west"),
			    "read-only user watches its prefix");
	}
	wo.arg = &w2;
	ret = nm_etcd_watch(rd, &wo, &st, &err);
	ASSERT_EQ(ret, -EACCES, "watch outside the prefix");
	ASSERT_TRUE(strstr(err.msg, "permission denied") != NULL, err.msg);

	ret = nm_etcd_range(bad, &o, &kvs, &err);
	ASSERT_EQ(ret, -EPERM, "wrong password");
	ASSERT_TRUE(strstr(err.msg, "authentication failed") != NULL, err.msg);
	printf("# %s\n", err.msg);
	ret = nm_etcd_range(adm, &o, &kvs, &err);
	ASSERT_EQ(ret, -EPERM, "no credentials");

	/* Simple tokens die with the process: the client logs in again. */
	ret = etcd_srv_restart(&s);
	if (!ASSERT_OK(ret, "restart etcd"))
		goto out;
	ret = nm_etcd_range(rd, &o, &kvs, &err);
	ASSERT_OK(ret, err.msg);
	ASSERT_EQ(kvs.n, 2, "listed again after a re-login");
out:
	nm_etcd_kvs_free(&kvs);
	nm_etcd_kv_free(&kv);
	nm_etcd_close(bad);
	nm_etcd_close(rd);
	nm_etcd_close(root);
	nm_etcd_close(adm);
	etcd_srv_destroy(&s);
}

/* A fake gateway answering every connection with one canned reply. */
struct fake {
	int fd;
	int port;
	const char *reply;
	size_t piece; /* 0: all at once; else send in pieces this big */
	pthread_t th;
	atomic_int stop;
};

static void *fake_fn(void *arg)
{
	struct fake *f = arg;
	char buf[8192], hdr[256];
	ssize_t n;
	int cfd;

	while (!atomic_load(&f->stop)) {
		cfd = accept(f->fd, NULL, NULL);
		if (cfd < 0)
			break;
		/* Small requests arrive whole; read what is there. */
		n = recv(cfd, buf, sizeof(buf), 0);
		(void)n;
		snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 strlen(f->reply));
		if (send(cfd, hdr, strlen(hdr), MSG_NOSIGNAL) < 0)
			printf("# fake server: send failed\n");
		for (size_t off = 0, len = strlen(f->reply), k; off < len;
		     off += k) {
			k = f->piece && f->piece < len - off ? f->piece :
							       len - off;
			if (send(cfd, f->reply + off, k, MSG_NOSIGNAL) < 0)
				break;
			if (f->piece)
				nm_test_sleep_ms(2); /* separate reads for curl */
		}
		close(cfd);
	}
	return NULL;
}

static bool fake_start(struct fake *f, const char *reply, size_t piece)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);

	memset(f, 0, sizeof(*f));
	f->reply = reply;
	f->piece = piece;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_GE(f->fd, 0, "socket") ||
	    !ASSERT_OK(bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)),
		       "bind") ||
	    !ASSERT_OK(getsockname(f->fd, (struct sockaddr *)&sa, &len),
		       "name") ||
	    !ASSERT_OK(listen(f->fd, 8), "listen") ||
	    !ASSERT_OK(pthread_create(&f->th, NULL, fake_fn, f), "thread")) {
		if (f->fd >= 0)
			close(f->fd);
		return false;
	}
	f->port = ntohs(sa.sin_port);
	return true;
}

static void fake_stop(struct fake *f)
{
	atomic_store(&f->stop, 1);
	shutdown(f->fd, SHUT_RDWR);
	pthread_join(f->th, NULL);
	close(f->fd);
}

static void check_fake(const char *reply, bool watch, const char *why)
{
	struct nm_etcd_watch_opts o = { .key = "k",
					.cb = rec_cb,
					.timeout_ms = 2000 };
	struct nm_etcd_watch_state st;
	struct nm_etcd_err err = {};
	struct nm_etcd_kvs kvs = {};
	struct nm_etcd_range_opts ro = { .key = "k" };
	struct watcher w = {};
	struct nm_etcd *c;
	struct fake f;
	char url[64];
	int ret;

	if (!fake_start(&f, reply, 0))
		return;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", f.port);
	c = etcd_fx_client(url, NULL, NULL);
	if (c) {
		o.arg = &w;
		if (watch)
			ret = nm_etcd_watch(c, &o, &st, &err);
		else
			ret = nm_etcd_range(c, &ro, &kvs, &err);
		ASSERT_EQ(ret, -EBADMSG, reply);
		ASSERT_TRUE(strstr(err.msg, why) != NULL, err.msg);
		nm_etcd_kvs_free(&kvs);
		nm_etcd_close(c);
	}
	fake_stop(&f);
}

static int stop_at_3(const struct nm_etcd_event *ev, void *arg)
{
	struct watcher *w = arg;

	rec_cb(ev, arg);
	return atomic_load(&w->n) == 3 ? 99 : 0;
}

static void test_watch_messages_split_across_chunks(void)
{
	static const char stream[] =
		"{\"result\":{\"header\":{\"revision\":\"4\"},\"created\":true}}\n"
		"{\"result\":{\"header\":{\"revision\":\"5\"},\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"5\",\"value\":\"MQ==\"}}]}}\n"
		"{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":[{\"kv\":{\"key\":\"Yg==\",\"mod_revision\":\"6\"}},"
		"{\"type\":\"DELETE\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"6\"}}]}}\n";
	struct nm_etcd_watch_opts o = {
		.key = "", .prefix = true, .cb = stop_at_3, .timeout_ms = 5000
	};
	struct nm_etcd_watch_state st;
	struct nm_etcd_err err = {};
	struct watcher w = {};
	struct nm_etcd *c;
	struct fake f;
	char url[64];
	int ret;

	if (!fake_start(&f, stream, 7))
		return;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", f.port);
	c = etcd_fx_client(url, NULL, NULL);
	if (c) {
		o.arg = &w;
		ret = nm_etcd_watch(c, &o, &st, &err);
		ASSERT_EQ(ret, 99, "callback result returned");
		ASSERT_EQ(atomic_load(&w.n), 3, "events");
		ASSERT_TRUE(!strcmp(w.ev[0].key, "a") && w.ev[0].rev == 5 &&
				    !strcmp(w.ev[0].value, "1"),
			    "first");
		ASSERT_TRUE(!strcmp(w.ev[1].key, "b") && w.ev[1].rev == 6,
			    "second");
		ASSERT_TRUE(w.ev[2].type == NM_ETCD_DELETE && w.ev[2].rev == 6,
			    "third, same revision");
		nm_etcd_close(c);
	}
	fake_stop(&f);
}

static void test_malformed_replies(void)
{
	check_fake("{\"header\":{\"revision\":\"1\"},\"kvs\":[", false,
		   "malformed JSON");
	check_fake("<html>502 Bad Gateway</html>", false, "malformed JSON");
	check_fake("{\"header\":{},\"kvs\":[{\"key\":\"a*==\"}]}", false,
		   "field key: bad base64: character '*'");
	check_fake("{\"header\":{\"revision\":1e9},\"kvs\":[]}", false,
		   "field revision");
	check_fake("{\"header\":{\"cluster_id\":\"9007199254740993x\"}}", false,
		   "bad uint64");
	check_fake(
		"{\"result\":{\"created\":true}}\n{\"result\":{\"events\":[{\"kv\":{\"key\":\"@@@@\"}}]}}\n",
		true, "malformed watch message: field key: bad base64");
	check_fake("{\"result\":{\"created\":true}}\nnot json\n", true,
		   "malformed watch message");
}

int main(void)
{
	static const struct nm_test tests[] = {
		NM_TEST(test_put_get_delete),
		NM_TEST(test_prefix_range_and_delete),
		NM_TEST(test_create_if_absent_race),
		NM_TEST(test_compare_and_swap),
		NM_TEST(test_pagination_10k_pinned),
		NM_TEST(test_lease_grant_keepalive_revoke_expire),
		NM_TEST(test_watch_puts_deletes_txns_in_order),
		NM_TEST(test_watch_from_compacted_revision),
		NM_TEST(test_watch_resumes_after_sigkill_restart),
		NM_TEST(test_cluster_id_change_detected),
		NM_TEST(test_failover_between_endpoints),
		NM_TEST(test_mtls_right_wrong_none),
		NM_TEST(test_auth_read_only_user),
		NM_TEST(test_watch_messages_split_across_chunks),
		NM_TEST(test_malformed_replies),
	};
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	failed = NM_TEST_RUN(tests);
	etcd_fx_destroy();
	return failed ? 1 : 0;
}
