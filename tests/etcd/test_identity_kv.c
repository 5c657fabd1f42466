// SPDX-License-Identifier: GPL-2.0
/*
 * Cluster-wide identity allocation (agent/identity_kv.c) against a real
 * etcd on 127.0.0.1: two agents (two clients, two threads) racing for the
 * same label set always end with the same id and one key.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/etcd.h"
#include "agent/identity.h"
#include "agent/identity_kv.h"
#include "agent/kvstore.h"
#include "agent/labels.h"
#include "maps/identity.h"
#include "tests/lib/etcd_srv.h"
#include "tests/lib/test.h"

#define CLUSTER "east"
#define CLUSTER_ID 1
#define ROUNDS 50

static struct etcd_srv srv;
static bool srv_up;

static bool need_srv(void)
{
	int ret;

	if (srv_up)
		return true;
	if (access(getenv("ETCD_BIN") ? getenv("ETCD_BIN") : "/usr/bin/etcd",
		   X_OK)) {
		nm_test_skip("etcd not installed (scripts/deps.sh)");
		return false;
	}
	ret = etcd_srv_start(&srv, NULL);
	if (!ASSERT_OK(ret, "start etcd"))
		return false;
	srv_up = true;
	return true;
}

static struct nm_etcd *client(void)
{
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct nm_etcd_err err = {};
	struct nm_etcd *c;

	cfg.endpoints[0] = srv.url;
	if (!ASSERT_OK(nm_etcd_open(&cfg, &c, &err), "open client")) {
		printf("# %s\n", err.msg);
		return NULL;
	}
	return c;
}

/* app=@app in namespace shop of CLUSTER, as an endpoint's identity has. */
static int make_labels(const char *app, struct nm_labels *l)
{
	int ret;

	memset(l, 0, sizeof(*l));
	ret = nm_labels_set(l, "app", app);
	if (!ret)
		ret = nm_labels_set(l, NM_LABEL_NAMESPACE, "shop");
	if (!ret)
		ret = nm_labels_set(l, NM_LABEL_CLUSTER, CLUSTER);
	return ret;
}

static __u64 hashed_id(const struct nm_labels *l)
{
	char *canon = nm_labels_str(l);
	__u32 local = canon ? nm_identity_hash(canon) : 0;

	free(canon);
	return nm_identity_pack(CLUSTER_ID, local);
}

struct racer {
	struct nm_etcd *c;
	pthread_barrier_t *go;
	const struct nm_labels *labels;
	__u64 id;
	int ret;
	struct nm_etcd_err err;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	r->ret = nm_identity_alloc_kv(r->c, NULL, CLUSTER, CLUSTER_ID,
				      r->labels, &r->id, &r->err);
	return NULL;
}

/* Run two racers for @labels; both results in @ids. */
static bool run_race(struct nm_etcd *a, struct nm_etcd *b,
		     const struct nm_labels *labels, __u64 ids[2])
{
	struct racer r[2] = { { .c = a }, { .c = b } };
	pthread_barrier_t go;
	pthread_t t[2];
	int i, n = 0;
	bool ok = true;

	if (!ASSERT_OK(pthread_barrier_init(&go, NULL, 2), "barrier"))
		return false;
	for (i = 0; i < 2; i++) {
		r[i].go = &go;
		r[i].labels = labels;
		if (!ASSERT_OK(pthread_create(&t[i], NULL, race, &r[i]),
			       "start racer"))
			break;
		n++;
	}
	if (n < 2) {
		/* The lone racer waits at the barrier for a partner: be it. */
		if (n == 1)
			pthread_barrier_wait(&go);
		ok = false;
	}
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < n; i++) {
		if (!ASSERT_OK(r[i].ret, r[i].err.msg))
			ok = false;
		ids[i] = r[i].id;
	}
	return ok;
}

/* Keys under the identity prefix of CLUSTER, and how many hold @labels. */
static int count_keys(struct nm_etcd *c, const struct nm_labels *labels,
		      size_t *total, size_t *holding)
{
	const struct nm_kv_ctx ctx = { NULL, CLUSTER, CLUSTER_ID };
	struct nm_etcd_range_opts o = { .prefix = true };
	struct nm_etcd_err err = {};
	struct nm_etcd_kvs kvs = {};
	char pfx[NM_KV_KEY_MAX], why[NM_KV_ERR_LEN];
	size_t i;
	int ret;

	ret = nm_kv_state_prefix(NULL, NM_KV_IDENTITIES, CLUSTER, pfx,
				 sizeof(pfx));
	if (ret)
		return ret;
	o.key = pfx;
	ret = nm_etcd_range(c, &o, &kvs, &err);
	if (ret) {
		printf("# %s\n", err.msg);
		return ret;
	}
	*total = kvs.n;
	*holding = 0;
	for (i = 0; i < kvs.n; i++) {
		struct nm_kv_record rec;

		if (nm_kv_decode(&ctx, kvs.kv[i].key, kvs.kv[i].value,
				 kvs.kv[i].value_len, &rec, why, sizeof(why)))
			continue;
		if (nm_labels_equal(&rec.identity.labels, labels))
			(*holding)++;
		nm_kv_record_free(&rec);
	}
	nm_etcd_kvs_free(&kvs);
	return 0;
}

static void wipe(struct nm_etcd *c)
{
	struct nm_etcd_err err = {};

	if (nm_etcd_delete(c, "nodemesh/", true, NULL, NULL, &err))
		printf("# %s\n", err.msg);
}

static void test_race_same_labels_same_id(void)
{
	struct nm_etcd *a = NULL, *b = NULL;
	struct nm_labels l = {};
	size_t total, holding;
	char app[32];
	__u64 ids[2];
	int round;

	if (!need_srv())
		return;
	a = client();
	b = client();
	if (!a || !b)
		goto out;
	wipe(a);
	for (round = 0; round < ROUNDS; round++) {
		snprintf(app, sizeof(app), "race-%d", round);
		if (!ASSERT_OK(make_labels(app, &l), "labels"))
			goto out;
		if (!run_race(a, b, &l, ids))
			goto out;
		if (!ASSERT_EQ(ids[0], ids[1], app))
			goto out;
		if (!ASSERT_EQ(nm_identity_cluster(ids[0]), CLUSTER_ID,
			       "identity in the cluster's space"))
			goto out;
		if (!ASSERT_OK(count_keys(a, &l, &total, &holding), "count"))
			goto out;
		/* Exactly one key per label set allocated so far. */
		if (!ASSERT_EQ(holding, 1, "keys holding the labels") ||
		    !ASSERT_EQ(total, (size_t)round + 1, "identity keys"))
			goto out;
		nm_labels_free(&l);
	}
out:
	nm_labels_free(&l);
	nm_etcd_close(b);
	nm_etcd_close(a);
}

/* An identity key written by someone else (a peer agent), valid. */
static int put_identity(struct nm_etcd *c, __u64 id, const struct nm_labels *l)
{
	const struct nm_kv_ctx ctx = { NULL, CLUSTER, CLUSTER_ID };
	struct nm_kv_record rec = {};
	struct nm_etcd_err err = {};
	char why[NM_KV_ERR_LEN], *key = NULL, *val = NULL;
	size_t len;
	int ret;

	rec.key.type = NM_KV_T_IDENTITY;
	rec.key.kind = NM_KV_IDENTITIES;
	strcpy(rec.key.cluster, CLUSTER);
	rec.key.id = id;
	rec.identity.id = id;
	rec.identity.labels = *l;
	ret = nm_kv_encode(&ctx, &rec, &key, &val, &len, why, sizeof(why));
	if (ret) {
		printf("# %s\n", why);
		return ret;
	}
	ret = nm_etcd_put(c, key, val, len, 0, NULL, &err);
	if (ret)
		printf("# %s\n", err.msg);
	free(key);
	free(val);
	return ret;
}

/* The next id of the probe sequence after @id. */
static __u64 next_id(__u64 id)
{
	__u32 local = nm_identity_local(id);

	local = local == NM_ID_LOCAL_MAX ? NM_ID_LOCAL_MIN : local + 1;
	return nm_identity_pack(CLUSTER_ID, local);
}

static void test_collision_probes_next_id_for_both(void)
{
	struct nm_labels want = {}, other = {};
	struct nm_etcd *a = NULL, *b = NULL;
	size_t total, holding;
	__u64 ids[2], h;
	int round;

	if (!need_srv())
		return;
	a = client();
	b = client();
	if (!a || !b)
		goto out;
	wipe(a);
	if (!ASSERT_OK(make_labels("payments", &want), "labels") ||
	    !ASSERT_OK(make_labels("squatter", &other), "labels"))
		goto out;
	h = hashed_id(&want);
	/* A different set already holds the hashed id. */
	if (!ASSERT_OK(put_identity(a, h, &other), "put squatter"))
		goto out;
	if (!run_race(a, b, &want, ids))
		goto out;
	ASSERT_EQ(ids[0], next_id(h), "racer 1 probes to the next id");
	ASSERT_EQ(ids[1], next_id(h), "racer 2 probes to the next id");
	/* Later askers, in any order, land on the same id. */
	for (round = 0; round < 5; round++) {
		if (!run_race(a, b, &want, ids))
			goto out;
		if (!ASSERT_EQ(ids[0], next_id(h), "again, racer 1") ||
		    !ASSERT_EQ(ids[1], next_id(h), "again, racer 2"))
			goto out;
	}
	if (!ASSERT_OK(count_keys(a, &want, &total, &holding), "count"))
		goto out;
	ASSERT_EQ(holding, 1, "one key holds the labels");
	ASSERT_EQ(total, 2, "the squatter and ours");
out:
	nm_labels_free(&other);
	nm_labels_free(&want);
	nm_etcd_close(b);
	nm_etcd_close(a);
}

static void test_garbage_at_hashed_id_is_probed_past(void)
{
	struct nm_etcd *a = NULL, *b = NULL;
	struct nm_etcd_err err = {};
	struct nm_labels want = {};
	char key[NM_KV_KEY_MAX];
	__u64 ids[2], h;

	if (!need_srv())
		return;
	a = client();
	b = client();
	if (!a || !b)
		goto out;
	wipe(a);
	if (!ASSERT_OK(make_labels("garbage-victim", &want), "labels"))
		goto out;
	h = hashed_id(&want);
	snprintf(key, sizeof(key), "nodemesh/state/identities/v1/%s/%llu",
		 CLUSTER, (unsigned long long)h);
	if (!ASSERT_OK(nm_etcd_put(a, key, "{not json", 9, 0, NULL, &err),
		       err.msg))
		goto out;
	if (!run_race(a, b, &want, ids))
		goto out;
	ASSERT_EQ(ids[0], next_id(h), "racer 1 skips the garbage");
	ASSERT_EQ(ids[1], next_id(h), "racer 2 skips the garbage");
out:
	nm_labels_free(&want);
	nm_etcd_close(b);
	nm_etcd_close(a);
}

static void test_refuses_labels_of_another_cluster(void)
{
	struct nm_etcd_err err = {};
	struct nm_labels l = {};
	struct nm_etcd *a;
	__u64 id = 0;
	int ret;

	if (!need_srv())
		return;
	a = client();
	if (!a)
		return;
	if (ASSERT_OK(make_labels("x", &l), "labels") &&
	    ASSERT_OK(nm_labels_set(&l, NM_LABEL_CLUSTER, "west"), "labels")) {
		ret = nm_identity_alloc_kv(a, NULL, CLUSTER, CLUSTER_ID, &l,
					   &id, &err);
		ASSERT_EQ(ret, -EINVAL, "refused");
		ASSERT_TRUE(strstr(err.msg, "nodemesh.io/cluster"), err.msg);
	}
	nm_labels_free(&l);
	nm_etcd_close(a);
}

int main(void)
{
	static const struct nm_test tests[] = {
		NM_TEST(test_race_same_labels_same_id),
		NM_TEST(test_collision_probes_next_id_for_both),
		NM_TEST(test_garbage_at_hashed_id_is_probed_past),
		NM_TEST(test_refuses_labels_of_another_cluster),
	};
	int failed;

	failed = NM_TEST_RUN(tests);
	etcd_srv_destroy(&srv);
	return failed ? 1 : 0;
}
