// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/identity.h"
#include "agent/identity_kv.h"
#include "agent/kvstore.h"
#include "agent/log.h"
#include "maps/identity.h"

/*
 * How far a label set may be pushed from its hashed id. The same bound for
 * every agent keeps the walk deterministic; 4096 taken ids in a row in a
 * 2^24 space means the space is full for practical purposes.
 */
#define IDKV_PROBES_MAX 4096
/* The key vanished between the failed create and our look at it. */
#define IDKV_RETRIES 3

static void set_err(struct nm_etcd_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_err(struct nm_etcd_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* Does @cur (the value at an identity key) hold @labels? */
static bool holds(const struct nm_kv_ctx *ctx, const struct nm_etcd_kv *cur,
		  const struct nm_labels *labels)
{
	char why[NM_KV_ERR_LEN];
	struct nm_kv_record rec;
	bool same;

	if (nm_kv_decode(ctx, cur->key, cur->value, cur->value_len, &rec, why,
			 sizeof(why))) {
		/* Garbage holds the id as surely as another set does. */
		pr_warn("identity key holds an invalid record, probing past it: %s",
			why);
		return false;
	}
	same = rec.key.type == NM_KV_T_IDENTITY &&
	       nm_labels_equal(&rec.identity.labels, labels);
	nm_kv_record_free(&rec);
	return same;
}

int nm_identity_alloc_kv(struct nm_etcd *etcd, const char *prefix,
			 const char *cluster, __u16 cluster_id,
			 const struct nm_labels *labels, __u64 *id,
			 struct nm_etcd_err *err)
{
	const __u32 range = NM_ID_LOCAL_MAX - NM_ID_LOCAL_MIN + 1;
	const struct nm_kv_ctx ctx = { prefix, cluster, cluster_id };
	char why[NM_KV_ERR_LEN];
	struct nm_kv_record rec;
	unsigned int retries = 0;
	__u32 start, i;
	char *canon;
	int ret;

	if (!cluster_id || strlen(cluster) > NM_KV_CLUSTER_MAX) {
		set_err(err,
			"failed to allocate identity in cluster %s: bad cluster",
			cluster);
		return -EINVAL;
	}
	canon = nm_labels_str(labels);
	if (!canon) {
		set_err(err,
			"failed to allocate identity in cluster %s: out of memory",
			cluster);
		return -ENOMEM;
	}
	start = nm_identity_hash(canon) - NM_ID_LOCAL_MIN;

	memset(&rec, 0, sizeof(rec));
	rec.key.type = NM_KV_T_IDENTITY;
	rec.key.kind = NM_KV_IDENTITIES;
	strcpy(rec.key.cluster, cluster);
	/* Borrowed: nm_kv_encode only reads the labels. */
	rec.identity.labels = *labels;

	for (i = 0; i < IDKV_PROBES_MAX && i < range; i++) {
		__u64 cand = nm_identity_pack(
			cluster_id, NM_ID_LOCAL_MIN + (start + i) % range);
		struct nm_etcd_kv cur = {};
		char *key = NULL, *val = NULL;
		size_t len;
		bool done, ours;

		rec.key.id = cand;
		rec.identity.id = cand;
		snprintf(rec.key.name, sizeof(rec.key.name), "%llu",
			 (unsigned long long)cand);
		ret = nm_kv_encode(&ctx, &rec, &key, &val, &len, why,
				   sizeof(why));
		if (ret) {
			set_err(err, "failed to encode identity of %s: %s",
				canon, why);
			goto out;
		}
		ret = nm_etcd_create(etcd, key, val, len, 0, &done, &cur, err);
		free(val);
		free(key);
		if (ret)
			goto out;
		if (done) {
			pr_info("allocated identity %llu for %s in cluster %s",
				(unsigned long long)cand, canon, cluster);
			*id = cand;
			goto out;
		}
		if (!cur.key) {
			/* Deleted since: try this id again. */
			if (++retries > IDKV_RETRIES) {
				set_err(err,
					"failed to allocate identity of %s in cluster %s: key %llu keeps vanishing",
					canon, cluster,
					(unsigned long long)cand);
				ret = -EAGAIN;
				goto out;
			}
			i--;
			continue;
		}
		ours = holds(&ctx, &cur, labels);
		nm_etcd_kv_free(&cur);
		if (ours) {
			*id = cand;
			goto out;
		}
		pr_debug(
			"identity %llu in cluster %s is taken, probing the next for %s",
			(unsigned long long)cand, cluster, canon);
	}
	set_err(err,
		"failed to allocate identity of %s in cluster %s: %u ids from %u on are taken",
		canon, cluster, i, NM_ID_LOCAL_MIN + start);
	ret = -ENOSPC;
out:
	free(canon);
	return ret;
}
