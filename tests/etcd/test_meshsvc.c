// SPDX-License-Identifier: GPL-2.0
/*
 * MeshService manifests and their exporter (agent/meshsvc_kv.c) against a
 * real etcd on 127.0.0.1: 'nodemeshctl service apply' stores a manifest
 * (and nothing when it is refused), an exporter round turns it into the
 * cluster's service record from the endpoint records, a drained endpoint
 * becomes a terminating backend, a deleted manifest takes its record with
 * it, and a round writes nothing when nothing changed; a backend whose
 * endpoint vanishes stays terminating for the grace period. Each test uses a
 * kvstore prefix of its own on the shared etcd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/wait.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "agent/meshsvc_kv.h"
#include "maps/backend.h"
#include "maps/identity.h"
#include "tests/lib/etcd_fx.h"
#include "tests/lib/test.h"

#define CLUSTER "east"
#define CLUSTER_ID 1

static char scratch[] = "/tmp/nm-test-meshsvc.XXXXXX";
static bool have_scratch;

/* A path in the scratch dir; the last four stay valid. */
static const char *tmp_path(const char *name)
{
	static char buf[4][PATH_MAX];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", scratch, name);
	return buf[i];
}

static bool need_scratch(void)
{
	if (!have_scratch && !ASSERT_TRUE(mkdtemp(scratch), "mkdtemp"))
		return false;
	have_scratch = true;
	return true;
}

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!ASSERT_TRUE(f, "open for writing"))
		return false;
	ok = fputs(text, f) >= 0;
	ok &= !fclose(f);
	return ASSERT_TRUE(ok, "write file");
}

/* A client and its own prefix "t-<name>/" on the shared etcd. */
struct fx {
	struct nm_etcd *c;
	char prefix[64];
	struct nm_kv_ctx ctx;
};

static bool fx_open(struct fx *f, const char *name)
{
	struct nm_etcd_err err = {};

	memset(f, 0, sizeof(*f));
	if (!etcd_fx_need_main())
		return false;
	f->c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!f->c)
		return false;
	snprintf(f->prefix, sizeof(f->prefix), "t-%s/", name);
	f->ctx = (struct nm_kv_ctx){ f->prefix, CLUSTER, CLUSTER_ID };
	/* A rerun starts clean. */
	return ASSERT_OK(nm_etcd_delete(f->c, f->prefix, true, NULL, NULL,
					&err),
			 "clear prefix");
}

static void fx_close(struct fx *f)
{
	nm_etcd_close(f->c);
}

static bool put_raw(struct fx *f, const char *key, const char *val)
{
	struct nm_etcd_err err = {};

	if (!ASSERT_OK(nm_etcd_put(f->c, key, val, strlen(val), 0, NULL, &err),
		       "put")) {
		printf("# %s\n", err.msg);
		return false;
	}
	return true;
}

static bool put_manifest(struct fx *f, const char *ns, const char *name,
			 const char *yaml)
{
	char key[NM_KV_KEY_MAX + 1];

	return ASSERT_OK(nm_meshsvc_key(f->prefix, ns, name, key, sizeof(key)),
			 "manifest key") &&
	       put_raw(f, key, yaml);
}

/* The endpoint record of pod @ns/@name at @ip with app=@app, encoded. */
static bool put_endpoint(struct fx *f, const char *ns, const char *name,
			 const char *ip, const char *app, __u8 state)
{
	struct nm_kv_record rec = { .key = { .type = NM_KV_T_ENDPOINT,
					     .kind = NM_KV_ENDPOINTS } };
	char err[NM_KV_ERR_LEN], *key = NULL, *val = NULL;
	size_t len;
	bool ok = false;

	snprintf(rec.key.cluster, sizeof(rec.key.cluster), "%s", CLUSTER);
	snprintf(rec.key.ns, sizeof(rec.key.ns), "%s", ns);
	snprintf(rec.key.name, sizeof(rec.key.name), "%s", name);
	rec.ep.namespace = (char *)ns;
	rec.ep.name = (char *)name;
	rec.ep.node = "node-1";
	rec.ep.identity = nm_identity_pack(CLUSTER_ID, 300);
	rec.ep.state = state;
	if (!ASSERT_EQ(inet_pton(AF_INET, ip, &rec.ep.ip), 1, "address"))
		return false;
	if (nm_labels_set(&rec.ep.labels, "app", app) ||
	    nm_labels_set(&rec.ep.labels, NM_LABEL_NAMESPACE, ns) ||
	    nm_labels_set(&rec.ep.labels, NM_LABEL_CLUSTER, CLUSTER))
		goto out;
	if (nm_kv_encode(&f->ctx, &rec, &key, &val, &len, err, sizeof(err))) {
		printf("# %s\n", err);
		goto out;
	}
	ok = put_raw(f, key, val);
out:
	nm_labels_free(&rec.ep.labels);
	free(key);
	free(val);
	return ASSERT_TRUE(ok, "put endpoint");
}

static const char *svc_key(struct fx *f, const char *ns, const char *name)
{
	static char key[NM_KV_KEY_MAX + 1];
	struct nm_kv_key k = { .type = NM_KV_T_SERVICE,
			       .kind = NM_KV_SERVICES };

	snprintf(k.cluster, sizeof(k.cluster), "%s", CLUSTER);
	snprintf(k.ns, sizeof(k.ns), "%s", ns);
	snprintf(k.name, sizeof(k.name), "%s", name);
	if (nm_kv_key_format(f->prefix, &k, key, sizeof(key)))
		return "?";
	return key;
}

/*
 * The exported record of @ns/@name, decoded as a peer's mirror would;
 * -ENOENT when there is none. @mod_rev (may be NULL) gets its revision.
 */
static int get_export(struct fx *f, const char *ns, const char *name,
		      struct nm_kv_record *rec, __s64 *mod_rev)
{
	struct nm_etcd_err err = {};
	char why[NM_KV_ERR_LEN];
	struct nm_etcd_kv kv;
	int ret;

	ret = nm_etcd_get(f->c, svc_key(f, ns, name), &kv, &err);
	if (ret)
		return ret;
	ret = nm_kv_decode(&f->ctx, kv.key, kv.value, kv.value_len, rec, why,
			   sizeof(why));
	if (ret)
		printf("# %s\n", why);
	if (mod_rev)
		*mod_rev = kv.mod_revision;
	nm_etcd_kv_free(&kv);
	return ret;
}

static bool sync_grace(struct fx *f, struct nm_meshsvc_grace *g,
		       struct nm_meshsvc_sync_stats *st)
{
	struct nm_etcd_err err = {};

	if (!ASSERT_OK(nm_meshsvc_sync(f->c, &f->ctx, g, st, &err), "sync")) {
		printf("# %s\n", err.msg);
		return false;
	}
	return true;
}

static bool sync_ok(struct fx *f, struct nm_meshsvc_sync_stats *st)
{
	return sync_grace(f, NULL, st);
}

#define WEB                                                           \
	"apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"       \
	"metadata: {name: web, namespace: shop}\n"                    \
	"spec:\n  vip: 10.96.0.10\n"                                  \
	"  ports: [{port: 80, targetPort: 8080}]\n"                   \
	"  selector: {app: web}\n  global: true\n  affinity: local\n" \
	"  weight: 3\n  priority: 1\n"

static size_t count_keys(struct fx *f, const char *dir);

/* apply -> record; unchanged -> no write; drain -> terminating; delete. */
static void test_export_follows_manifest_and_pods(void)
{
	struct nm_meshsvc_sync_stats st;
	struct nm_kv_record rec;
	__s64 rev0, rev1;
	struct fx f;
	size_t i;

	if (!fx_open(&f, "export"))
		return;
	if (!put_endpoint(&f, "shop", "web-1", "10.1.0.5", "web",
			  NM_BE_ACTIVE) ||
	    !put_endpoint(&f, "shop", "web-2", "10.1.0.6", "web",
			  NM_BE_ACTIVE) ||
	    !put_endpoint(&f, "shop", "db-1", "10.1.0.7", "db", NM_BE_ACTIVE) ||
	    !put_endpoint(&f, "other", "web-1", "10.1.0.8", "web",
			  NM_BE_ACTIVE))
		goto out;
	/* Nothing to export yet. */
	if (!sync_ok(&f, &st) || !ASSERT_EQ(st.manifests, 0, "manifests") ||
	    !ASSERT_EQ(st.exported, 0, "exported"))
		goto out;

	if (!put_manifest(&f, "shop", "web", WEB) || !sync_ok(&f, &st))
		goto out;
	ASSERT_EQ(st.manifests, 1, "manifests");
	ASSERT_EQ(st.written, 1, "written");
	ASSERT_EQ(st.exported, 1, "exported");
	if (!ASSERT_OK(get_export(&f, "shop", "web", &rec, &rev0), "export"))
		goto out;
	ASSERT_EQ(rec.svc.n_frontends, 1, "frontends");
	ASSERT_EQ(rec.svc.n_backends, 2, "backends: web-1 and web-2 of shop");
	ASSERT_TRUE(rec.svc.global, "global");
	ASSERT_TRUE(rec.svc.shared, "shared by default");
	ASSERT_EQ(rec.svc.affinity, NM_KV_AFF_LOCAL, "affinity");
	ASSERT_EQ(rec.svc.weight, 3, "weight");
	ASSERT_EQ(rec.svc.priority, 1, "priority");
	for (i = 0; i < rec.svc.n_backends; i++) {
		ASSERT_EQ(ntohs(rec.svc.backends[i].port), 8080, "target port");
		ASSERT_EQ(rec.svc.backends[i].state, NM_BE_ACTIVE, "state");
	}
	nm_kv_record_free(&rec);

	/* A round with nothing new writes nothing. */
	if (!sync_ok(&f, &st))
		goto out;
	ASSERT_EQ(st.written, 0, "written when unchanged");
	ASSERT_EQ(st.deleted, 0, "deleted when unchanged");
	if (!ASSERT_OK(get_export(&f, "shop", "web", &rec, &rev1), "export"))
		goto out;
	ASSERT_EQ(rev1, rev0, "record untouched");
	nm_kv_record_free(&rec);

	/* The pod drains: its backend turns terminating, the other stays. */
	if (!put_endpoint(&f, "shop", "web-2", "10.1.0.6", "web",
			  NM_BE_TERMINATING) ||
	    !sync_ok(&f, &st))
		goto out;
	ASSERT_EQ(st.written, 1, "written after the drain");
	if (!ASSERT_OK(get_export(&f, "shop", "web", &rec, NULL), "export"))
		goto out;
	if (ASSERT_EQ(rec.svc.n_backends, 2, "backends after the drain")) {
		ASSERT_EQ(rec.svc.backends[0].state, NM_BE_ACTIVE,
			  "10.1.0.5 active");
		ASSERT_EQ(rec.svc.backends[1].state, NM_BE_TERMINATING,
			  "10.1.0.6 terminating");
	}
	nm_kv_record_free(&rec);

	/* A new pod joins. */
	if (!put_endpoint(&f, "shop", "web-3", "10.1.0.9", "web",
			  NM_BE_ACTIVE) ||
	    !sync_ok(&f, &st))
		goto out;
	if (!ASSERT_OK(get_export(&f, "shop", "web", &rec, NULL), "export"))
		goto out;
	ASSERT_EQ(rec.svc.n_backends, 3, "backends after a pod joined");
	nm_kv_record_free(&rec);

	/* The manifest goes: so does its record. */
	if (!ASSERT_OK(nm_etcd_delete(f.c, "t-export/services/v1/shop/web",
				      false, NULL, NULL, NULL),
		       "delete manifest") ||
	    !sync_ok(&f, &st))
		goto out;
	ASSERT_EQ(st.deleted, 1, "deleted");
	ASSERT_EQ(st.exported, 0, "exported");
	ASSERT_EQ(get_export(&f, "shop", "web", &rec, NULL), -ENOENT,
		  "record gone");
	ASSERT_EQ(count_keys(&f, "t-export/services/exported/"), 0,
		  "and its mark");
out:
	fx_close(&f);
}

static bool del_endpoint(struct fx *f, const char *ns, const char *name)
{
	char key[NM_KV_KEY_MAX + 1];
	int n;

	n = snprintf(key, sizeof(key), "%sstate/endpoints/v1/%s/%s/%s",
		     f->prefix, CLUSTER, ns, name);
	if (!ASSERT_TRUE(n > 0 && (size_t)n < sizeof(key), "endpoint key"))
		return false;
	return ASSERT_OK(nm_etcd_delete(f->c, key, false, NULL, NULL, NULL),
			 "delete endpoint");
}

/* The state of @ip's backend in @ns/@name's record; -1 when absent. */
static int be_state(struct fx *f, const char *ns, const char *name,
		    const char *ip)
{
	struct nm_kv_record rec;
	__be32 a;
	int state = -1;
	size_t i;

	if (!ASSERT_EQ(inet_pton(AF_INET, ip, &a), 1, "address") ||
	    !ASSERT_OK(get_export(f, ns, name, &rec, NULL), "export"))
		return -2;
	for (i = 0; i < rec.svc.n_backends; i++) {
		if (rec.svc.backends[i].ip == a)
			state = rec.svc.backends[i].state;
	}
	nm_kv_record_free(&rec);
	return state;
}

/*
 * An endpoint record that vanishes (its agent restarting, lease revoked)
 * leaves its backend terminating for the grace period, then it goes; one
 * that comes back within it is active again and its grace entry cleared.
 */
static void test_grace_for_vanished_endpoints(void)
{
	struct nm_meshsvc_grace g = { .period_ns = 1000000000ULL };
	struct nm_meshsvc_sync_stats st;
	struct nm_kv_record rec;
	__s64 rev0, rev1;
	struct fx f;

	if (!fx_open(&f, "grace"))
		return;
	if (!put_endpoint(&f, "shop", "web-1", "10.1.0.5", "web",
			  NM_BE_ACTIVE) ||
	    !put_endpoint(&f, "shop", "web-2", "10.1.0.6", "web",
			  NM_BE_ACTIVE) ||
	    !put_manifest(&f, "shop", "web", WEB) || !sync_grace(&f, &g, &st))
		goto out;
	ASSERT_EQ(be_state(&f, "shop", "web", "10.1.0.6"), NM_BE_ACTIVE,
		  "10.1.0.6 exported active");

	/* web-2's agent restarts: its endpoint record is gone for a while. */
	if (!del_endpoint(&f, "shop", "web-2") || !sync_grace(&f, &g, &st))
		goto out;
	ASSERT_EQ(st.written, 1, "written: the backend turned terminating");
	ASSERT_EQ(st.graced, 1, "graced");
	ASSERT_EQ(g.n, 1, "one grace entry");
	if (!ASSERT_OK(get_export(&f, "shop", "web", &rec, &rev0), "export"))
		goto out;
	if (ASSERT_EQ(rec.svc.n_backends, 2, "both backends still there")) {
		ASSERT_EQ(rec.svc.backends[0].state, NM_BE_ACTIVE,
			  "10.1.0.5 active");
		ASSERT_EQ(ntohl(rec.svc.backends[1].ip), 0x0a010006,
			  "sorted: 10.1.0.6 second");
		ASSERT_EQ(rec.svc.backends[1].state, NM_BE_TERMINATING,
			  "10.1.0.6 terminating");
		ASSERT_EQ(ntohs(rec.svc.backends[1].port), 8080, "its port");
	}
	nm_kv_record_free(&rec);
	/* Within the grace nothing changes, nothing is written. */
	if (!sync_grace(&f, &g, &st) ||
	    !ASSERT_OK(get_export(&f, "shop", "web", &rec, &rev1), "export"))
		goto out;
	nm_kv_record_free(&rec);
	ASSERT_EQ(st.written, 0, "written within the grace");
	ASSERT_EQ(rev1, rev0, "record untouched within the grace");

	/* It comes back: active again, the entry cleared. */
	if (!put_endpoint(&f, "shop", "web-2", "10.1.0.6", "web",
			  NM_BE_ACTIVE) ||
	    !sync_grace(&f, &g, &st))
		goto out;
	ASSERT_EQ(st.graced, 0, "nothing graced");
	ASSERT_EQ(g.n, 0, "grace entry cleared");
	ASSERT_EQ(be_state(&f, "shop", "web", "10.1.0.6"), NM_BE_ACTIVE,
		  "10.1.0.6 active again");

	/* Gone for good: terminating, then removed once the grace ran out. */
	if (!del_endpoint(&f, "shop", "web-2") || !sync_grace(&f, &g, &st))
		goto out;
	ASSERT_EQ(be_state(&f, "shop", "web", "10.1.0.6"), NM_BE_TERMINATING,
		  "10.1.0.6 terminating again");
	usleep(1100 * 1000);
	if (!sync_grace(&f, &g, &st))
		goto out;
	ASSERT_EQ(st.written, 1, "written: the grace ran out");
	ASSERT_EQ(st.graced, 0, "nothing graced after the grace");
	ASSERT_EQ(be_state(&f, "shop", "web", "10.1.0.6"), -1, "10.1.0.6 gone");
	ASSERT_EQ(be_state(&f, "shop", "web", "10.1.0.5"), NM_BE_ACTIVE,
		  "10.1.0.5 stays");
	if (!sync_grace(&f, &g, &st))
		goto out;
	ASSERT_EQ(st.written, 0, "and stays gone");
	ASSERT_EQ(g.n, 0, "its entry dropped");

	/* A drained pod keeps its endpoint: no grace entry for it. */
	if (!put_endpoint(&f, "shop", "web-1", "10.1.0.5", "web",
			  NM_BE_TERMINATING) ||
	    !sync_grace(&f, &g, &st))
		goto out;
	ASSERT_EQ(g.n, 0, "no entry for a drained pod");
	ASSERT_EQ(st.graced, 0, "a drained pod is not graced");

	/* The manifest goes: its record at once, its entries with it. */
	if (!del_endpoint(&f, "shop", "web-1") || !sync_grace(&f, &g, &st) ||
	    !ASSERT_EQ(g.n, 1, "web-1 graced"))
		goto out;
	if (!ASSERT_OK(nm_etcd_delete(f.c, "t-grace/services/v1/shop/web",
				      false, NULL, NULL, NULL),
		       "delete manifest") ||
	    !sync_grace(&f, &g, &st))
		goto out;
	ASSERT_EQ(st.deleted, 1, "record deleted");
	ASSERT_EQ(g.n, 0, "entries dropped with the manifest");
out:
	nm_meshsvc_grace_reset(&g);
	fx_close(&f);
}

/*
 * The exporter removes only what it exported (marked): a record written by
 * hand stays until a manifest of its name takes it over. A manifest that
 * does not parse keeps its record (what cannot be read is not "gone"); of
 * two manifests claiming one frontend the first in key order wins.
 */
static void test_refusals_and_ownership(void)
{
	static const char stray[] =
		"{\"schema\":1,\"namespace\":\"shop\",\"name\":\"stray\","
		"\"frontends\":[\"10.96.9.9:80/tcp\"],\"backends\":[],"
		"\"global\":true,\"shared\":true}";
	struct nm_meshsvc_sync_stats st;
	struct nm_kv_record rec;
	__s64 rev0, rev1;
	struct fx f;

	if (!fx_open(&f, "own"))
		return;
	if (!put_endpoint(&f, "shop", "web-1", "10.1.0.5", "web",
			  NM_BE_ACTIVE) ||
	    !put_raw(&f, svc_key(&f, "shop", "stray"), stray) ||
	    !put_manifest(&f, "shop", "web", WEB) || !sync_ok(&f, &st))
		goto out;
	ASSERT_EQ(st.deleted, 0, "a hand-written record is not ours");
	ASSERT_EQ(st.exported, 1, "exported: web only");
	if (!ASSERT_OK(get_export(&f, "shop", "stray", &rec, NULL),
		       "stray stays"))
		goto out;
	nm_kv_record_free(&rec);
	if (!ASSERT_OK(get_export(&f, "shop", "web", &rec, &rev0), "export"))
		goto out;
	nm_kv_record_free(&rec);

	/* Broken by hand: refused with key and line, the record stays. */
	if (!put_manifest(
		    &f, "shop", "web",
		    "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		    "metadata: {name: web, namespace: shop}\n"
		    "spec: {vip: 10.96.0.10, ports: [{port: 0}], selector: {app: web}}\n") ||
	    !sync_ok(&f, &st))
		goto out;
	ASSERT_EQ(st.refused, 1, "refused");
	ASSERT_EQ(st.deleted, 0, "nothing deleted");
	ASSERT_EQ(st.exported, 1, "the old record is still held");
	printf("# refusal: %s\n", st.refusal);
	ASSERT_TRUE(strstr(st.refusal, "t-own/services/v1/shop/web:4: ") &&
			    strstr(st.refusal, "port must be 1..65535"),
		    "refusal names key, line and reason");
	if (!ASSERT_OK(get_export(&f, "shop", "web", &rec, &rev1), "export"))
		goto out;
	ASSERT_EQ(rev1, rev0, "record kept as it was");
	nm_kv_record_free(&rec);

	/* Under another name's key. */
	if (!put_manifest(&f, "shop", "api", WEB) || !sync_ok(&f, &st))
		goto out;
	ASSERT_TRUE(strstr(st.refusal, "stored under the key of shop/api"),
		    "misplaced manifest refused");

	/* Two names, one frontend: "api" sorts first and wins. */
	if (!put_manifest(
		    &f, "shop", "api",
		    "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		    "metadata: {name: api, namespace: shop}\n"
		    "spec: {vip: 10.96.0.10, ports: [{port: 80}], selector: {app: web}}\n") ||
	    !put_manifest(&f, "shop", "web", WEB) || !sync_ok(&f, &st))
		goto out;
	ASSERT_EQ(st.refused, 1, "one of the two refused");
	ASSERT_TRUE(
		strstr(st.refusal,
		       "frontend 10.96.0.10:80/tcp is claimed by MeshService shop/api already"),
		"clash named");
	ASSERT_OK(get_export(&f, "shop", "api", &rec, NULL), "api exported");
	nm_kv_record_free(&rec);

	/* A manifest named like the stray record takes it over ... */
	if (!put_manifest(
		    &f, "shop", "stray",
		    "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		    "metadata: {name: stray, namespace: shop}\n"
		    "spec: {vip: 10.96.9.9, ports: [{port: 80}], selector: {app: web}}\n") ||
	    !sync_ok(&f, &st))
		goto out;
	if (!ASSERT_OK(get_export(&f, "shop", "stray", &rec, NULL), "stray"))
		goto out;
	ASSERT_EQ(rec.svc.n_backends, 1, "stray exported from the manifest");
	nm_kv_record_free(&rec);
	/* ... and so a later round, on another client, removes it. */
	if (!ASSERT_OK(nm_etcd_delete(f.c, "t-own/services/v1/shop/stray",
				      false, NULL, NULL, NULL),
		       "delete manifest"))
		goto out;
	nm_etcd_close(f.c);
	f.c = etcd_fx_client(etcd_fx_main.url, NULL, NULL);
	if (!f.c || !sync_ok(&f, &st))
		goto out;
	ASSERT_EQ(st.deleted, 1, "the taken-over record is removed");
	ASSERT_EQ(get_export(&f, "shop", "stray", &rec, NULL), -ENOENT,
		  "stray gone");
	ASSERT_EQ(count_keys(&f, "t-own/services/exported/"), 2,
		  "marks: api and web");
out:
	fx_close(&f);
}

/* ---- nodemeshctl service apply|manifests|delete --config ------------------ */

static char ctl[PATH_MAX];

static bool need_ctl(void)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (ctl[0])
		return true;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (!ASSERT_GT(n, 0, "readlink /proc/self/exe"))
		return false;
	exe[n] = '\0';
	/* BUILD/tests/etcd/test_meshsvc -> BUILD/nodemeshctl */
	snprintf(ctl, sizeof(ctl), "%s/nodemeshctl",
		 dirname(dirname(dirname(exe))));
	if (access(ctl, X_OK)) {
		nm_test_skip("nodemeshctl not built next to the tests");
		ctl[0] = '\0';
		return false;
	}
	return true;
}

/* Run nodemeshctl ARGS (shell-quoted), output into @out; its exit status. */
static int run_ctl(const char *args, const char *out)
{
	char cmd[PATH_MAX * 6];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' %s >'%s' 2>&1", ctl, args, out);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool file_has(const char *path, const char *s)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (!strstr(buf, s))
		printf("# %s: no '%s' in:\n# %s\n", path, s, buf);
	return strstr(buf, s) != NULL;
}

static size_t count_keys(struct fx *f, const char *dir)
{
	struct nm_etcd_range_opts o = { .key = dir, .prefix = true };
	struct nm_etcd_kvs kvs = {};
	size_t n;

	if (nm_etcd_range(f->c, &o, &kvs, NULL))
		return (size_t)-1;
	n = kvs.n;
	nm_etcd_kvs_free(&kvs);
	return n;
}

static void test_ctl_apply_delete(void)
{
	char cfg[PATH_MAX + 256], args[PATH_MAX * 3], out[PATH_MAX];
	struct nm_etcd_err err = {};
	struct nm_etcd_kv kv;
	struct fx f;

	if (!need_ctl() || !need_scratch() || !fx_open(&f, "ctl"))
		return;
	snprintf(out, sizeof(out), "%s", tmp_path("ctl.out"));
	snprintf(cfg, sizeof(cfg),
		 "cluster: east\ncluster_id: 1\netcd:\n  endpoints: [%s]\n"
		 "kvstore_prefix: t-ctl/\n",
		 etcd_fx_main.url);
	if (!write_file(tmp_path("agent.yaml"), cfg) ||
	    !write_file(
		    tmp_path("two.yaml"),
		    "# web and dns\n" WEB "---\n"
		    "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		    "metadata: {name: dns, namespace: shop}\n"
		    "spec: {vip: 10.96.0.53, ports: [{port: 53, protocol: UDP}], selector: {app: dns}}\n") ||
	    !write_file(
		    tmp_path("bad.yaml"), WEB
		    "---\n"
		    "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		    "metadata: {name: db, namespace: shop}\n"
		    "spec: {vip: 10.96.0.54, ports: [{port: 5432}], selector: {app: db}, affinity: near}\n") ||
	    !write_file(
		    tmp_path("clash.yaml"),
		    "apiVersion: nodemesh.io/v1alpha1\nkind: MeshService\n"
		    "metadata: {name: web2, namespace: shop}\n"
		    "spec: {vip: 10.96.0.10, ports: [{port: 80}], selector: {app: web}}\n"))
		goto out;

	/* A bad second document: nothing at all is stored. */
	snprintf(args, sizeof(args), "service apply -f '%s' --config '%s'",
		 tmp_path("bad.yaml"), tmp_path("agent.yaml"));
	ASSERT_EQ(run_ctl(args, out), 1, "apply of a bad file fails");
	ASSERT_TRUE(file_has(out, "bad.yaml:16: unknown spec.affinity 'near'"),
		    "FILE:LINE: reason");
	ASSERT_EQ(count_keys(&f, "t-ctl/"), 0, "nothing written");

	snprintf(args, sizeof(args), "service apply -f '%s' --config '%s'",
		 tmp_path("two.yaml"), tmp_path("agent.yaml"));
	ASSERT_EQ(run_ctl(args, out), 0, "apply");
	ASSERT_TRUE(file_has(out, "applied MeshService shop/dns"), "output");
	if (!ASSERT_OK(nm_etcd_get(f.c, "t-ctl/services/v1/shop/web", &kv,
				   &err),
		       "stored"))
		goto out;
	/* Each document stored as written, alone. */
	ASSERT_TRUE(kv.value_len == strlen(WEB) &&
			    !memcmp(kv.value, WEB, kv.value_len),
		    "the document as written");
	nm_etcd_kv_free(&kv);
	ASSERT_EQ(count_keys(&f, "t-ctl/services/v1/"), 2, "two manifests");

	/* Another name for a frontend already claimed. */
	snprintf(args, sizeof(args), "service apply -f '%s' --config '%s'",
		 tmp_path("clash.yaml"), tmp_path("agent.yaml"));
	ASSERT_EQ(run_ctl(args, out), 1, "clashing apply fails");
	ASSERT_TRUE(
		file_has(
			out,
			"clash.yaml:1: frontend 10.96.0.10:80/tcp is claimed by MeshService shop/web already"),
		"clash reported");
	ASSERT_EQ(count_keys(&f, "t-ctl/services/v1/"), 2, "still two");

	/* manifests lists both; exported once a round ran. */
	if (!put_endpoint(&f, "shop", "web-1", "10.1.0.5", "web",
			  NM_BE_TERMINATING))
		goto out;
	{
		struct fx g = f;
		struct nm_meshsvc_sync_stats st;

		if (!sync_ok(&g, &st))
			goto out;
	}
	snprintf(args, sizeof(args), "-o json service manifests --config '%s'",
		 tmp_path("agent.yaml"));
	ASSERT_EQ(run_ctl(args, out), 0, "manifests");
	ASSERT_TRUE(
		file_has(
			out,
			"\"name\":\"web\",\"frontends\":[{\"frontend\":\"10.96.0.10:80/tcp\",\"target_port\":8080}]"),
		"web listed");
	ASSERT_TRUE(
		file_has(
			out,
			"\"exported\":{\"backends\":1,\"active\":0,\"terminating\":1}"),
		"export summarised");

	/* delete: an unknown name deletes nothing; then by name and file. */
	snprintf(args, sizeof(args), "service delete shop/nope --config '%s'",
		 tmp_path("agent.yaml"));
	ASSERT_EQ(run_ctl(args, out), 1, "delete of an unknown name fails");
	ASSERT_TRUE(file_has(out, "not applied"), "why");
	snprintf(args, sizeof(args), "service delete shop/dns --config '%s'",
		 tmp_path("agent.yaml"));
	ASSERT_EQ(run_ctl(args, out), 0, "delete by name");
	ASSERT_EQ(count_keys(&f, "t-ctl/services/v1/"), 1, "one left");
	snprintf(args, sizeof(args), "service delete --config '%s' -f '%s'",
		 tmp_path("agent.yaml"), tmp_path("clash.yaml"));
	ASSERT_EQ(run_ctl(args, out), 1, "delete of a file not applied fails");
	snprintf(args, sizeof(args), "service delete -f '%s' --config '%s'",
		 tmp_path("two.yaml"), tmp_path("agent.yaml"));
	ASSERT_EQ(run_ctl(args, out), 1,
		  "delete of a file partly applied fails");
	ASSERT_EQ(count_keys(&f, "t-ctl/services/v1/"), 1,
		  "and deletes nothing");
	if (!write_file(tmp_path("web.yaml"), WEB))
		goto out;
	snprintf(args, sizeof(args), "service delete -f '%s' --config '%s'",
		 tmp_path("web.yaml"), tmp_path("agent.yaml"));
	ASSERT_EQ(run_ctl(args, out), 0, "delete by file");
	ASSERT_EQ(count_keys(&f, "t-ctl/services/v1/"), 0, "none left");
	/* Without --config, delete is the frontend command. */
	ASSERT_EQ(run_ctl("service delete shop/web", out), 1,
		  "no --config: a frontend is expected");
	ASSERT_TRUE(file_has(out, "VIP:PORT/PROTO"), "frontend syntax named");
out:
	fx_close(&f);
}

static void cleanup(void)
{
	char cmd[PATH_MAX + 32];

	etcd_fx_destroy();
	if (have_scratch) {
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", scratch);
		if (system(cmd))
			fprintf(stderr, "failed to remove %s\n", scratch);
	}
}

int main(void)
{
	static const struct nm_test tests[] = {
		NM_TEST(test_export_follows_manifest_and_pods),
		NM_TEST(test_grace_for_vanished_endpoints),
		NM_TEST(test_refusals_and_ownership),
		NM_TEST(test_ctl_apply_delete),
	};
	int failed;

	failed = NM_TEST_RUN(tests);
	cleanup();
	return failed ? 1 : 0;
}
