// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "agent/base64.h"
#include "maps/identity.h"
#include "tests/lib/kv_fx.h"

void fx_kv_free(struct fx_kv *kv)
{
	free(kv->key);
	free(kv->val);
	memset(kv, 0, sizeof(*kv));
}

static int encode(const struct nm_kv_ctx *ctx, struct nm_kv_record *rec,
		  struct fx_kv *out)
{
	char err[NM_KV_ERR_LEN];
	int ret;

	memset(out, 0, sizeof(*out));
	snprintf(rec->key.cluster, sizeof(rec->key.cluster), "%s",
		 ctx->cluster);
	ret = nm_kv_encode(ctx, rec, &out->key, &out->val, &out->len, err,
			   sizeof(err));
	if (ret)
		printf("# fixture refused: %s\n", err);
	return ret;
}

int fx_cluster(const struct nm_kv_ctx *ctx, struct fx_kv *out)
{
	struct nm_kv_record rec = { .key = { .type = NM_KV_T_CLUSTER } };

	rec.cluster.name = (char *)ctx->cluster;
	rec.cluster.id = ctx->cluster_id;
	return encode(ctx, &rec, out);
}

int fx_heartbeat(const struct nm_kv_ctx *ctx, __u64 ts_ms, struct fx_kv *out)
{
	struct nm_kv_record rec = { .key = { .type = NM_KV_T_HEARTBEAT } };

	rec.stamp.ts_ms = ts_ms;
	return encode(ctx, &rec, out);
}

int fx_node(const struct nm_kv_ctx *ctx, const char *name, __be32 ip,
	    struct fx_kv *out)
{
	struct nm_kv_record rec = { .key = { .type = NM_KV_T_NODE } };

	snprintf(rec.key.name, sizeof(rec.key.name), "%s", name);
	rec.node.name = (char *)name;
	rec.node.cluster = (char *)ctx->cluster;
	rec.node.cluster_id = ctx->cluster_id;
	rec.node.node_ip = ip;
	rec.node.boot_id = "fixture";
	return encode(ctx, &rec, out);
}

static int std_labels(const struct nm_kv_ctx *ctx, const char *ns,
		      const char *app, struct nm_labels *l)
{
	memset(l, 0, sizeof(*l));
	if (nm_labels_set(l, "app", app) ||
	    nm_labels_set(l, "nodemesh.io/cluster", ctx->cluster) ||
	    nm_labels_set(l, "nodemesh.io/namespace", ns)) {
		nm_labels_free(l);
		return -ENOMEM;
	}
	return 0;
}

int fx_endpoint(const struct nm_kv_ctx *ctx, const char *ns, const char *name,
		__be32 ip, __u32 local_id, struct fx_kv *out)
{
	struct nm_kv_record rec = { .key = { .type = NM_KV_T_ENDPOINT } };
	int ret;

	snprintf(rec.key.ns, sizeof(rec.key.ns), "%s", ns);
	snprintf(rec.key.name, sizeof(rec.key.name), "%s", name);
	rec.ep.namespace = (char *)ns;
	rec.ep.name = (char *)name;
	rec.ep.ip = ip;
	rec.ep.node = "node-1";
	rec.ep.identity = nm_identity_pack(ctx->cluster_id, local_id);
	ret = std_labels(ctx, ns, "web", &rec.ep.labels);
	if (ret)
		return ret;
	ret = encode(ctx, &rec, out);
	nm_labels_free(&rec.ep.labels);
	return ret;
}

int fx_identity(const struct nm_kv_ctx *ctx, __u32 local_id, const char *app,
		struct fx_kv *out)
{
	struct nm_kv_record rec = { .key = { .type = NM_KV_T_IDENTITY } };
	int ret;

	rec.key.id = nm_identity_pack(ctx->cluster_id, local_id);
	snprintf(rec.key.name, sizeof(rec.key.name), "%llu",
		 (unsigned long long)rec.key.id);
	rec.identity.id = rec.key.id;
	ret = std_labels(ctx, "shop", app, &rec.identity.labels);
	if (ret)
		return ret;
	ret = encode(ctx, &rec, out);
	nm_labels_free(&rec.identity.labels);
	return ret;
}

int fx_service(const struct nm_kv_ctx *ctx, const char *ns, const char *name,
	       __be32 vip, __be32 backend, struct fx_kv *out)
{
	struct nm_kv_record rec = { .key = { .type = NM_KV_T_SERVICE } };
	struct nm_frontend fe = { .vip = vip,
				  .port = htons(443),
				  .proto = IPPROTO_TCP };
	struct nm_kv_backend be = { .ip = backend,
				    .port = htons(8443),
				    .proto = IPPROTO_TCP,
				    .weight = 1 };

	snprintf(rec.key.ns, sizeof(rec.key.ns), "%s", ns);
	snprintf(rec.key.name, sizeof(rec.key.name), "%s", name);
	rec.svc.namespace = (char *)ns;
	rec.svc.name = (char *)name;
	rec.svc.frontends = &fe;
	rec.svc.n_frontends = 1;
	rec.svc.backends = &be;
	rec.svc.n_backends = 1;
	rec.svc.global = true;
	rec.svc.shared = true;
	return encode(ctx, &rec, out);
}

int fx_put_raw(struct nm_etcd *c, const char *key, const void *val, size_t len,
	       __s64 *rev)
{
	struct nm_etcd_err err = { { 0 } };
	int ret;

	ret = nm_etcd_put(c, key, val, len, 0, rev, &err);
	if (ret)
		printf("# %s\n", err.msg);
	return ret;
}

int fx_put(struct nm_etcd *c, const struct fx_kv *kv, __s64 *rev)
{
	return fx_put_raw(c, kv->key, kv->val, kv->len, rev);
}

static int txn_add(struct fx_txn *t, const char *fmt, const char *key,
		   const void *val, size_t len)
{
	size_t kl = strlen(key), need;
	char *kb, *vb, *p;
	int ret = -ENOMEM;

	need = nm_b64_encoded_len(kl) + nm_b64_encoded_len(len) + 96;
	if (t->len + need + 8 > t->cap) {
		size_t cap = (t->cap + need + 8) * 2;

		p = realloc(t->body, cap);
		if (!p)
			return -ENOMEM;
		t->body = p;
		t->cap = cap;
	}
	kb = malloc(nm_b64_encoded_len(kl) + 1);
	vb = malloc(nm_b64_encoded_len(len) + 1);
	if (!kb || !vb)
		goto out;
	nm_b64_encode(key, kl, kb);
	nm_b64_encode(val, len, vb);
	if (!t->n)
		t->len = snprintf(t->body, t->cap, "{\"success\":[");
	t->len += snprintf(t->body + t->len, t->cap - t->len, "%s",
			   t->n ? "," : "");
	t->len += snprintf(t->body + t->len, t->cap - t->len, fmt, kb, vb);
	t->n++;
	ret = 0;
out:
	free(vb);
	free(kb);
	return ret;
}

int fx_txn_put(struct fx_txn *t, const char *key, const void *val, size_t len)
{
	return txn_add(t, "{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}",
		       key, val, len);
}

int fx_txn_del(struct fx_txn *t, const char *key)
{
	/* The value slot is unused: an empty string encodes to "". */
	return txn_add(t, "{\"request_delete_range\":{\"key\":\"%s\"%.0s}}",
		       key, "", 0);
}

int fx_txn_commit(struct nm_etcd *c, struct fx_txn *t)
{
	struct nm_etcd_err err = { { 0 } };
	int ret;

	if (!t->n)
		return 0;
	t->len += snprintf(t->body + t->len, t->cap - t->len, "]}");
	ret = nm_etcd_request(c, "txn", "/v3/kv/txn", t->body, NULL, &err);
	if (ret)
		printf("# %s\n", err.msg);
	t->n = 0;
	t->len = 0;
	return ret;
}

void fx_txn_free(struct fx_txn *t)
{
	free(t->body);
	memset(t, 0, sizeof(*t));
}

__be32 fx_ip(__u8 a, __u32 idx)
{
	return htonl((__u32)a << 24 | (idx & 0xffffff));
}
