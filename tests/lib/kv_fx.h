/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvstore fixtures for the etcd tests and benchmarks: valid records built
 * with nm_kv_encode() (so they pass the same validation a mirror applies)
 * and batched etcd transactions to load many of them quickly.
 */
#ifndef NM_TESTS_KV_FX_H
#define NM_TESTS_KV_FX_H

#include <stddef.h>
#include <linux/types.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"

/* etcd's default --max-txn-ops is 128. */
#define FX_TXN_OPS 100

struct fx_kv {
	char *key;
	char *val;
	size_t len;
};

void fx_kv_free(struct fx_kv *kv);

/* Records of @ctx's cluster; -EINVAL with the reason printed as "# ...". */
int fx_cluster(const struct nm_kv_ctx *ctx, struct fx_kv *out);
int fx_heartbeat(const struct nm_kv_ctx *ctx, __u64 ts_ms, struct fx_kv *out);
int fx_node(const struct nm_kv_ctx *ctx, const char *name, __be32 ip,
	    struct fx_kv *out);
int fx_endpoint(const struct nm_kv_ctx *ctx, const char *ns, const char *name,
		__be32 ip, __u32 local_id, struct fx_kv *out);
int fx_identity(const struct nm_kv_ctx *ctx, __u32 local_id, const char *app,
		struct fx_kv *out);
int fx_service(const struct nm_kv_ctx *ctx, const char *ns, const char *name,
	       __be32 vip, __be32 backend, struct fx_kv *out);

/* Put one record (or raw bytes); errors printed as "# ...". */
int fx_put(struct nm_etcd *c, const struct fx_kv *kv, __s64 *rev);
int fx_put_raw(struct nm_etcd *c, const char *key, const void *val, size_t len,
	       __s64 *rev);

/* A transaction of up to FX_TXN_OPS puts and deletes. */
struct fx_txn {
	char *body;
	size_t len, cap;
	int n;
};

int fx_txn_put(struct fx_txn *t, const char *key, const void *val, size_t len);
int fx_txn_del(struct fx_txn *t, const char *key);
/* Send what is queued (nothing: no-op) and empty the batch. */
int fx_txn_commit(struct nm_etcd *c, struct fx_txn *t);
void fx_txn_free(struct fx_txn *t);

/* 10.x.y.z from an index, for many distinct addresses. */
__be32 fx_ip(__u8 a, __u32 idx);

#endif /* NM_TESTS_KV_FX_H */
