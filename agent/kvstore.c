// SPDX-License-Identifier: GPL-2.0
/*
 * kvstore records: key parsing, JSON encode, and a strict decode that
 * treats every remote value as hostile. Every rejection names the key,
 * the cluster it came from and the reason, so one log line explains it.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <json-c/json.h>

#include "agent/kvstore.h"
#include "maps/backend.h"
#include "maps/identity.h"

/* Our documents are at most 3 levels deep; leave room for new fields. */
#define NM_KV_JSON_DEPTH 16
/* How much of a (possibly hostile) key a message shows. */
#define NM_KV_KEY_SHOWN 200
#define NM_KV_WHY_LEN 384
#define NM_KV_PATH_LEN 64
#define NM_U64_DIGITS 20

static const char *const kind_names[NM_KV_KINDS] = {
	[NM_KV_NODES] = "nodes",
	[NM_KV_ENDPOINTS] = "endpoints",
	[NM_KV_IDENTITIES] = "identities",
	[NM_KV_SERVICES] = "services",
};

static const char *const affinity_names[] = {
	[NM_KV_AFF_NONE] = "none",
	[NM_KV_AFF_LOCAL] = "local",
	[NM_KV_AFF_REMOTE] = "remote",
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

const char *nm_kv_kind_name(enum nm_kv_kind kind)
{
	return (unsigned int)kind < NM_KV_KINDS ? kind_names[kind] : NULL;
}

const char *nm_kv_affinity_name(enum nm_kv_affinity aff)
{
	return (unsigned int)aff < ARRAY_LEN(affinity_names) ?
		       affinity_names[aff] :
		       NULL;
}

/* Strict decimal u64: digits only, no sign, no leading zero. */
static int parse_u64(const char *s, __u64 *out)
{
	size_t len = strlen(s), i;
	__u64 v = 0;

	if (!len || len > NM_U64_DIGITS || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		__u64 d = (__u64)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (~0ULL - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* A key (or any remote string) made safe to print in one log line. */
static void show(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 4 < len; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
}

/* ---- keys ---- */

static int key_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int key_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int kind_parse(const char *s, enum nm_kv_kind *kind)
{
	unsigned int i;

	for (i = 0; i < NM_KV_KINDS; i++) {
		if (!strcmp(s, kind_names[i])) {
			*kind = (enum nm_kv_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* The key layout after the prefix, for messages. */
static const char *const state_layout[NM_KV_KINDS] = {
	[NM_KV_NODES] = "state/nodes/v1/<cluster>/<node>",
	[NM_KV_ENDPOINTS] = "state/endpoints/v1/<cluster>/<namespace>/<pod>",
	[NM_KV_IDENTITIES] = "state/identities/v1/<cluster>/<id>",
	[NM_KV_SERVICES] = "state/services/v1/<cluster>/<namespace>/<name>",
};

static int state_key(char **part, size_t n, struct nm_kv_key *k, char *err,
		     size_t errlen)
{
	static const size_t want[NM_KV_KINDS] = { 5, 6, 5, 6 };
	static const enum nm_kv_type types[NM_KV_KINDS] = { NM_KV_T_NODE,
							    NM_KV_T_ENDPOINT,
							    NM_KV_T_IDENTITY,
							    NM_KV_T_SERVICE };
	char shown[NM_KV_KEY_SHOWN];
	const char *name;

	if (n < 2 || kind_parse(part[1], &k->kind)) {
		show(n < 2 ? "" : part[1], shown, sizeof(shown));
		return key_fail(
			err, errlen,
			"unknown state kind '%s' (expected nodes, endpoints, identities or services)",
			shown);
	}
	if (n < 3 || strcmp(part[2], "v1")) {
		show(n < 3 ? "" : part[2], shown, sizeof(shown));
		return key_fail(err, errlen,
				"unsupported key version '%s' (expected v1)",
				shown);
	}
	if (n != want[k->kind])
		return key_fail(err, errlen, "malformed key: expected %s",
				state_layout[k->kind]);
	k->type = types[k->kind];
	snprintf(k->cluster, sizeof(k->cluster), "%s", part[3]);
	name = part[n - 1];
	switch (k->kind) {
	case NM_KV_NODES:
		if (!nm_dns_subdomain_ok(name))
			goto bad_name;
		break;
	case NM_KV_ENDPOINTS:
	case NM_KV_SERVICES:
		if (!nm_dns_label_ok(part[4])) {
			show(part[4], shown, sizeof(shown));
			return key_fail(
				err, errlen,
				"invalid namespace '%s' in key: must be a DNS label",
				shown);
		}
		snprintf(k->ns, sizeof(k->ns), "%s", part[4]);
		/* Pod names are subdomains, service names labels. */
		if (k->kind == NM_KV_ENDPOINTS ? !nm_dns_subdomain_ok(name) :
						 !nm_dns_label_ok(name))
			goto bad_name;
		break;
	case NM_KV_IDENTITIES:
		if (parse_u64(name, &k->id)) {
			show(name, shown, sizeof(shown));
			return key_fail(
				err, errlen,
				"invalid identity '%s' in key: must be a decimal number",
				shown);
		}
		break;
	default:
		break;
	}
	snprintf(k->name, sizeof(k->name), "%s", name);
	return 0;
bad_name:
	show(name, shown, sizeof(shown));
	return key_fail(err, errlen,
			"invalid name '%s' in key: must be a DNS %s", shown,
			k->kind == NM_KV_SERVICES ? "label" : "subdomain");
}

int nm_kv_key_parse(const char *prefix, const char *key, struct nm_kv_key *out,
		    char *err, size_t errlen)
{
	char buf[NM_KV_KEY_MAX + 1], shown[NM_KV_KEY_SHOWN];
	struct nm_kv_key k = { 0 };
	char *part[8], *p, *slash;
	const char *cluster;
	size_t n = 0, plen;
	int ret;

	if (!prefix)
		prefix = NM_KV_PREFIX_DEFAULT;
	plen = strlen(prefix);
	if (strlen(key) > NM_KV_KEY_MAX)
		return key_fail(err, errlen, "key longer than %u bytes",
				NM_KV_KEY_MAX);
	if (strncmp(key, prefix, plen))
		return key_fail(err, errlen, "key is not under the prefix '%s'",
				prefix);
	if (!key[plen])
		return key_fail(err, errlen,
				"malformed key: nothing after the prefix");
	snprintf(buf, sizeof(buf), "%s", key + plen);
	for (p = buf; p; p = slash ? slash + 1 : NULL) {
		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		if (!*p)
			return key_fail(err, errlen,
					"malformed key: empty path component");
		if (n == ARRAY_LEN(part))
			return key_fail(err, errlen,
					"malformed key: too many components");
		part[n++] = p;
	}

	if (!strcmp(part[0], "cluster") || !strcmp(part[0], "heartbeat")) {
		if (n != 2)
			return key_fail(err, errlen,
					"malformed key: expected %s/<cluster>",
					part[0]);
		k.type = part[0][0] == 'c' ? NM_KV_T_CLUSTER :
					     NM_KV_T_HEARTBEAT;
		snprintf(k.cluster, sizeof(k.cluster), "%s", part[1]);
	} else if (!strcmp(part[0], "synced")) {
		if (n != 3)
			return key_fail(
				err, errlen,
				"malformed key: expected synced/<cluster>/<kind>");
		if (kind_parse(part[2], &k.kind)) {
			show(part[2], shown, sizeof(shown));
			return key_fail(
				err, errlen,
				"unknown kind '%s' in synced key (expected nodes, endpoints, identities or services)",
				shown);
		}
		k.type = NM_KV_T_SYNCED;
		snprintf(k.cluster, sizeof(k.cluster), "%s", part[1]);
	} else if (!strcmp(part[0], "state")) {
		ret = state_key(part, n, &k, err, errlen);
		if (ret)
			return ret;
	} else {
		show(part[0], shown, sizeof(shown));
		return key_fail(
			err, errlen,
			"unknown key type '%s' (expected cluster, heartbeat, synced or state)",
			shown);
	}
	/* k.cluster may have been cut: check the component itself. */
	cluster = part[k.type >= NM_KV_T_NODE ? 3 : 1];
	if (!nm_dns_label_ok(cluster)) {
		show(cluster, shown, sizeof(shown));
		return key_fail(
			err, errlen,
			"invalid cluster name '%s' in key: must be a DNS label",
			shown);
	}
	*out = k;
	return 0;
}

int nm_kv_key_format(const char *prefix, const struct nm_kv_key *k, char *buf,
		     size_t len)
{
	const char *kind = nm_kv_kind_name(k->kind);
	int n;

	if (!prefix)
		prefix = NM_KV_PREFIX_DEFAULT;
	switch (k->type) {
	case NM_KV_T_CLUSTER:
		n = snprintf(buf, len, "%scluster/%s", prefix, k->cluster);
		break;
	case NM_KV_T_HEARTBEAT:
		n = snprintf(buf, len, "%sheartbeat/%s", prefix, k->cluster);
		break;
	case NM_KV_T_SYNCED:
		if (!kind)
			return -EINVAL;
		n = snprintf(buf, len, "%ssynced/%s/%s", prefix, k->cluster,
			     kind);
		break;
	case NM_KV_T_NODE:
		n = snprintf(buf, len, "%sstate/nodes/v1/%s/%s", prefix,
			     k->cluster, k->name);
		break;
	case NM_KV_T_ENDPOINT:
	case NM_KV_T_SERVICE:
		n = snprintf(buf, len, "%sstate/%s/v1/%s/%s/%s", prefix,
			     k->type == NM_KV_T_ENDPOINT ? "endpoints" :
							   "services",
			     k->cluster, k->ns, k->name);
		break;
	case NM_KV_T_IDENTITY:
		n = snprintf(buf, len, "%sstate/identities/v1/%s/%llu", prefix,
			     k->cluster, (unsigned long long)k->id);
		break;
	default:
		return -EINVAL;
	}
	if (n < 0)
		return -EINVAL;
	return (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int nm_kv_state_prefix(const char *prefix, enum nm_kv_kind kind,
		       const char *cluster, char *buf, size_t len)
{
	const char *name = nm_kv_kind_name(kind);
	int n;

	if (!name)
		return -EINVAL;
	n = snprintf(buf, len, "%sstate/%s/v1/%s/",
		     prefix ? prefix : NM_KV_PREFIX_DEFAULT, name, cluster);
	if (n < 0)
		return -EINVAL;
	return (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* ---- decoding ---- */

struct dctx {
	const struct nm_kv_ctx *ctx;
	const char *key;
	const char *verb; /* "rejected %s from" or "refusing to publish" */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int rej(struct dctx *d,
						     const char *fmt, ...)
{
	char why[NM_KV_WHY_LEN], shown[NM_KV_KEY_SHOWN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	show(d->key, shown, sizeof(shown));
	snprintf(d->err, d->errlen, "%s %s %s cluster %s: %s", d->verb, shown,
		 strcmp(d->verb, "rejected") ? "in" : "from", d->ctx->cluster,
		 why);
	return -EINVAL;
}

static int nomem(struct dctx *d)
{
	rej(d, "failed to allocate memory: %s", strerror(ENOMEM));
	return -ENOMEM;
}

static const char *jtype_desc(json_type t)
{
	switch (t) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number with a fraction or exponent";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "?";
}

/*
 * The member @name of @obj, of type @type; *out is NULL when it is absent
 * and optional. @path prefixes the name in messages ("backends[2].").
 */
static int member(struct dctx *d, json_object *obj, const char *path,
		  const char *name, json_type type, bool required,
		  json_object **out)
{
	json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(obj, name, &v)) {
		if (required)
			return rej(d, "missing required field '%s%s'", path,
				   name);
		return 0;
	}
	if (!json_object_is_type(v, type))
		return rej(d, "field '%s%s' must be %s, got %s", path, name,
			   jtype_desc(type),
			   jtype_desc(json_object_get_type(v)));
	*out = v;
	return 0;
}

/* A string of 1..@max bytes; *out NULL when absent and optional. */
static int get_str(struct dctx *d, json_object *obj, const char *path,
		   const char *name, size_t max, bool required,
		   const char **out)
{
	json_object *v;
	size_t len;
	int ret;

	*out = NULL;
	ret = member(d, obj, path, name, json_type_string, required, &v);
	if (ret || !v)
		return ret;
	len = (size_t)json_object_get_string_len(v);
	if (!len)
		return rej(d, "field '%s%s' must not be empty", path, name);
	if (len > max)
		return rej(
			d,
			"field '%s%s' is %zu bytes long, at most %zu allowed",
			path, name, len, max);
	*out = json_object_get_string(v);
	return 0;
}

static int dup_str(struct dctx *d, const char *s, char **out)
{
	*out = strdup(s);
	return *out ? 0 : nomem(d);
}

/* A JSON integer in min..max; @def when absent and optional. */
static int get_uint(struct dctx *d, json_object *obj, const char *path,
		    const char *name, __u64 min, __u64 max, bool required,
		    __u64 def, __u64 *out)
{
	json_object *v;
	int64_t n;
	int ret;

	ret = member(d, obj, path, name, json_type_int, required, &v);
	if (ret)
		return ret;
	if (!v) {
		*out = def;
		return 0;
	}
	/* json-c clamps out-of-range integers; clamped ones fail here too. */
	n = json_object_get_int64(v);
	if (n < 0 || (__u64)n < min || (__u64)n > max)
		return rej(d, "field '%s%s' is %.32s, must be %llu..%llu", path,
			   name,
			   n == INT64_MIN || n == INT64_MAX ?
				   "out of range" :
				   json_object_to_json_string(v),
			   (unsigned long long)min, (unsigned long long)max);
	*out = (__u64)n;
	return 0;
}

static int get_bool(struct dctx *d, json_object *obj, const char *path,
		    const char *name, bool *out)
{
	json_object *v;
	int ret;

	ret = member(d, obj, path, name, json_type_boolean, true, &v);
	if (ret)
		return ret;
	*out = json_object_get_boolean(v);
	return 0;
}

/* A 64-bit value as a decimal string. */
static int get_u64_str(struct dctx *d, json_object *obj, const char *path,
		       const char *name, __u64 *out)
{
	char shown[32];
	json_object *v;
	const char *s;
	int ret;

	/* Say why: a JSON number past 2^53 is silently rounded by many. */
	if (json_object_object_get_ex(obj, name, &v) &&
	    (json_object_is_type(v, json_type_int) ||
	     json_object_is_type(v, json_type_double)))
		return rej(
			d,
			"field '%s%s' must be a decimal string, got %s (64-bit values are strings)",
			path, name, jtype_desc(json_object_get_type(v)));
	ret = get_str(d, obj, path, name, 32, true, &s);
	if (ret)
		return ret;
	ret = parse_u64(s, out);
	if (ret) {
		show(s, shown, sizeof(shown));
		return rej(
			d, "field '%s%s' is '%s', %s", path, name, shown,
			ret == -ERANGE ?
				"larger than 2^64 - 1" :
				"must be a decimal number without sign or leading zero");
	}
	return 0;
}

/* Addresses a cluster may claim for nodes, pods and backends. */
static bool unicast(__be32 addr)
{
	__u32 a = ntohl(addr);

	/* 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 + bcast */
	return (a >> 24) != 0 && (a >> 24) != 127 && (a >> 28) < 0xe;
}

static int get_ipv4(struct dctx *d, json_object *obj, const char *path,
		    const char *name, __be32 *out)
{
	char shown[32];
	const char *s;
	int ret;

	ret = get_str(d, obj, path, name, 15, true, &s);
	if (ret)
		return ret;
	show(s, shown, sizeof(shown));
	if (nm_parse_ipv4(s, out))
		return rej(d, "field '%s%s' is '%s', not an IPv4 address", path,
			   name, shown);
	if (!unicast(*out))
		return rej(d, "field '%s%s' is %s, not a unicast address", path,
			   name, shown);
	return 0;
}

static int parse_cidr(struct dctx *d, const char *path, const char *s,
		      struct nm_cidr *out)
{
	char addr[16], shown[40];
	const char *slash = strchr(s, '/');
	__u64 len;
	__u32 mask;

	show(s, shown, sizeof(shown));
	if (!slash || (size_t)(slash - s) >= sizeof(addr))
		return rej(d, "%s is '%s', not a CIDR (ADDR/LEN)", path, shown);
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	if (nm_parse_ipv4(addr, &out->addr) || parse_u64(slash + 1, &len) ||
	    len > 32)
		return rej(d, "%s is '%s', not a CIDR (ADDR/LEN, LEN 0..32)",
			   path, shown);
	out->len = (__u8)len;
	mask = len ? ~0U << (32 - len) : 0;
	if (ntohl(out->addr) & ~mask)
		return rej(d, "%s is '%s': host bits set after /%llu", path,
			   shown, (unsigned long long)len);
	if (len < NM_KV_POD_CIDR_MIN_LEN || !unicast(out->addr))
		return rej(
			d,
			"%s is '%s': not a pod network (at most /%u wide, unicast)",
			path, shown, NM_KV_POD_CIDR_MIN_LEN);
	return 0;
}

/* An array of at most @max items; *n its length. */
static int get_array(struct dctx *d, json_object *obj, const char *name,
		     size_t max, bool required, json_object **out, size_t *n)
{
	int ret;

	*n = 0;
	ret = member(d, obj, "", name, json_type_array, required, out);
	if (ret || !*out)
		return ret;
	*n = json_object_array_length(*out);
	if (*n > max)
		return rej(d, "field '%s' has %zu items, at most %zu allowed",
			   name, *n, max);
	return 0;
}

static int get_labels(struct dctx *d, json_object *obj, struct nm_labels *out)
{
	char why[NM_KV_WHY_LEN];
	json_object *v;
	size_t n;
	int ret;

	ret = member(d, obj, "", "labels", json_type_object, true, &v);
	if (ret)
		return ret;
	n = (size_t)json_object_object_length(v);
	if (n > NM_KV_LABELS_MAX)
		return rej(d,
			   "field 'labels' has %zu labels, at most %u allowed",
			   n, NM_KV_LABELS_MAX);
	json_object_object_foreach(v, key, val)
	{
		if (nm_label_key_check(key, why, sizeof(why)))
			return rej(d, "field 'labels': %s", why);
		if (!json_object_is_type(val, json_type_string))
			return rej(d, "label '%s' must be a string, got %s",
				   key, jtype_desc(json_object_get_type(val)));
		if (nm_label_value_check(json_object_get_string(val), why,
					 sizeof(why)))
			return rej(d, "label '%s': %s", key, why);
		if (nm_labels_set(out, key, json_object_get_string(val)))
			return nomem(d);
	}
	return 0;
}

/* The agent-set labels every identity and endpoint of a cluster carries. */
static int check_labels(struct dctx *d, const struct nm_labels *l,
			const char *ns)
{
	const char *c = nm_labels_get(l, NM_LABEL_CLUSTER);
	const char *n = nm_labels_get(l, NM_LABEL_NAMESPACE);

	if (!c)
		return rej(d, "missing label %s", NM_LABEL_CLUSTER);
	if (strcmp(c, d->ctx->cluster))
		return rej(d, "label %s is '%s', not '%s'", NM_LABEL_CLUSTER, c,
			   d->ctx->cluster);
	if (!n)
		return rej(d, "missing label %s", NM_LABEL_NAMESPACE);
	if (ns && strcmp(n, ns))
		return rej(d, "label %s is '%s', not the namespace '%s'",
			   NM_LABEL_NAMESPACE, n, ns);
	if (!ns && !nm_dns_label_ok(n))
		return rej(d, "label %s is '%s', not a DNS label",
			   NM_LABEL_NAMESPACE, n);
	return 0;
}

static int check_identity(struct dctx *d, __u64 id)
{
	__u32 local = nm_identity_local(id);

	if (id >> (NM_ID_LOCAL_BITS + 16))
		return rej(d, "identity 0x%llx is wider than 40 bits",
			   (unsigned long long)id);
	if (nm_identity_cluster(id) != d->ctx->cluster_id)
		return rej(d, "identity 0x%llx belongs to cluster %u, not %u",
			   (unsigned long long)id, nm_identity_cluster(id),
			   d->ctx->cluster_id);
	if (local < NM_ID_LOCAL_MIN || local > NM_ID_LOCAL_MAX)
		return rej(
			d,
			"identity 0x%llx has local id %u outside the label range %u..%u",
			(unsigned long long)id, local, NM_ID_LOCAL_MIN,
			NM_ID_LOCAL_MAX);
	return 0;
}

/* A body field that repeats a part of the key must agree with it. */
static int same(struct dctx *d, const char *field, const char *body,
		const char *key)
{
	if (strcmp(body, key))
		return rej(d, "field '%s' is '%s' but the key says '%s'", field,
			   body, key);
	return 0;
}

/* The required top-level string @field, which must agree with @key. */
static int get_same(struct dctx *d, json_object *root, const char *field,
		    size_t max, const char *key, const char **out)
{
	int ret;

	ret = get_str(d, root, "", field, max, true, out);
	if (ret)
		return ret;
	return same(d, field, *out, key);
}

static int dec_cluster(struct dctx *d, json_object *root,
		       struct nm_kv_record *rec)
{
	struct nm_kv_cluster *c = &rec->cluster;
	char path[NM_KV_PATH_LEN];
	json_object *caps;
	const char *name;
	__u64 id;
	size_t i, n;
	int ret;

	ret = get_same(d, root, "name", NM_KV_CLUSTER_MAX, rec->key.cluster,
		       &name);
	if (ret)
		return ret;
	ret = get_uint(d, root, "", "id", 1, NM_ID_CLUSTER_MAX, true, 0, &id);
	if (ret)
		return ret;
	if (id != d->ctx->cluster_id)
		return rej(d, "cluster id is %llu, not %u",
			   (unsigned long long)id, d->ctx->cluster_id);
	c->id = (__u16)id;
	c->schema = NM_KV_SCHEMA;
	ret = dup_str(d, name, &c->name);
	if (ret)
		return ret;
	ret = get_array(d, root, "capabilities", NM_KV_CAPS_MAX, false, &caps,
			&n);
	if (ret || !n)
		return ret;
	c->capabilities = calloc(n, sizeof(*c->capabilities));
	if (!c->capabilities)
		return nomem(d);
	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(caps, i);
		const char *s;

		snprintf(path, sizeof(path), "capabilities[%zu]", i);
		if (!json_object_is_type(v, json_type_string))
			return rej(d, "field '%s' must be a string, got %s",
				   path, jtype_desc(json_object_get_type(v)));
		s = json_object_get_string(v);
		if (strlen(s) > NM_KV_CAP_MAX || !nm_dns_subdomain_ok(s))
			return rej(
				d,
				"field '%s' must be a lowercase name of at most %u characters",
				path, NM_KV_CAP_MAX);
		ret = dup_str(d, s, &c->capabilities[i]);
		c->n_capabilities = i + 1;
		if (ret)
			return ret;
	}
	return 0;
}

static int dec_stamp(struct dctx *d, json_object *root,
		     struct nm_kv_record *rec)
{
	return get_u64_str(d, root, "", "ts", &rec->stamp.ts_ms);
}

static bool boot_id_ok(const char *s)
{
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	}
	return true;
}

static int dec_node(struct dctx *d, json_object *root, struct nm_kv_record *rec)
{
	struct nm_kv_node *node = &rec->node;
	char path[NM_KV_PATH_LEN];
	const char *name, *cluster, *boot;
	json_object *cidrs;
	size_t i, j, n;
	__u64 id;
	int ret;

	ret = get_same(d, root, "name", NM_KV_NAME_MAX, rec->key.name, &name);
	if (ret)
		return ret;
	ret = get_same(d, root, "cluster", NM_KV_CLUSTER_MAX, rec->key.cluster,
		       &cluster);
	if (ret)
		return ret;
	ret = get_uint(d, root, "", "cluster_id", 1, NM_ID_CLUSTER_MAX, true, 0,
		       &id);
	if (ret)
		return ret;
	if (id != d->ctx->cluster_id)
		return rej(d, "field 'cluster_id' is %llu, not %u",
			   (unsigned long long)id, d->ctx->cluster_id);
	node->cluster_id = (__u16)id;
	ret = get_ipv4(d, root, "", "node_ip", &node->node_ip);
	if (ret)
		return ret;
	ret = get_str(d, root, "", "boot_id", NM_KV_BOOT_ID_MAX, true, &boot);
	if (ret)
		return ret;
	if (!boot_id_ok(boot))
		return rej(
			d,
			"field 'boot_id' may hold only letters, digits and '-'");
	ret = get_array(d, root, "pod_cidrs", NM_KV_POD_CIDRS_MAX, true, &cidrs,
			&n);
	if (ret)
		return ret;
	if (n) {
		node->pod_cidrs = calloc(n, sizeof(*node->pod_cidrs));
		if (!node->pod_cidrs)
			return nomem(d);
	}
	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(cidrs, i);

		snprintf(path, sizeof(path), "field 'pod_cidrs[%zu]'", i);
		if (!json_object_is_type(v, json_type_string))
			return rej(d, "%s must be a string, got %s", path,
				   jtype_desc(json_object_get_type(v)));
		ret = parse_cidr(d, path, json_object_get_string(v),
				 &node->pod_cidrs[i]);
		if (ret)
			return ret;
		for (j = 0; j < i; j++) {
			if (node->pod_cidrs[j].addr ==
				    node->pod_cidrs[i].addr &&
			    node->pod_cidrs[j].len == node->pod_cidrs[i].len)
				return rej(d, "%s repeats pod_cidrs[%zu]", path,
					   j);
		}
		node->n_pod_cidrs = i + 1;
	}
	ret = dup_str(d, name, &node->name);
	if (ret)
		return ret;
	ret = dup_str(d, cluster, &node->cluster);
	if (ret)
		return ret;
	return dup_str(d, boot, &node->boot_id);
}

static int dec_endpoint(struct dctx *d, json_object *root,
			struct nm_kv_record *rec)
{
	struct nm_kv_endpoint *ep = &rec->ep;
	const char *ns, *name, *node, *state;
	int ret;

	ret = get_same(d, root, "namespace", NM_KV_NS_MAX, rec->key.ns, &ns);
	if (ret)
		return ret;
	ret = get_same(d, root, "name", NM_KV_NAME_MAX, rec->key.name, &name);
	if (ret)
		return ret;
	ret = get_ipv4(d, root, "", "ip", &ep->ip);
	if (ret)
		return ret;
	ret = get_str(d, root, "", "node", NM_KV_NAME_MAX, true, &node);
	if (ret)
		return ret;
	if (!nm_dns_subdomain_ok(node))
		return rej(d, "field 'node' must be a DNS subdomain");
	ret = get_labels(d, root, &ep->labels);
	if (ret)
		return ret;
	ret = check_labels(d, &ep->labels, ns);
	if (ret)
		return ret;
	ret = get_u64_str(d, root, "", "identity", &ep->identity);
	if (ret)
		return ret;
	ret = check_identity(d, ep->identity);
	if (ret)
		return ret;
	ret = get_str(d, root, "", "state", 16, false, &state);
	if (ret)
		return ret;
	/* A pod is active or draining; quarantine is the readers' verdict. */
	ep->state = NM_BE_ACTIVE;
	if (state && !strcmp(state, nm_backend_state_name(NM_BE_TERMINATING)))
		ep->state = NM_BE_TERMINATING;
	else if (state && strcmp(state, nm_backend_state_name(NM_BE_ACTIVE)))
		return rej(d, "field 'state' must be active or terminating");
	ret = dup_str(d, ns, &ep->namespace);
	if (ret)
		return ret;
	ret = dup_str(d, name, &ep->name);
	if (ret)
		return ret;
	return dup_str(d, node, &ep->node);
}

static int dec_identity(struct dctx *d, json_object *root,
			struct nm_kv_record *rec)
{
	int ret;

	rec->identity.id = rec->key.id;
	ret = check_identity(d, rec->key.id);
	if (ret)
		return ret;
	ret = get_labels(d, root, &rec->identity.labels);
	if (ret)
		return ret;
	return check_labels(d, &rec->identity.labels, NULL);
}

static int dec_backend(struct dctx *d, json_object *v, size_t i,
		       struct nm_kv_backend *be)
{
	char path[NM_KV_PATH_LEN];
	const char *s;
	__u64 n;
	int ret;

	snprintf(path, sizeof(path), "backends[%zu].", i);
	if (!json_object_is_type(v, json_type_object))
		return rej(d, "field 'backends[%zu]' must be an object, got %s",
			   i, jtype_desc(json_object_get_type(v)));
	ret = get_ipv4(d, v, path, "ip", &be->ip);
	if (ret)
		return ret;
	ret = get_uint(d, v, path, "port", 1, 65535, true, 0, &n);
	if (ret)
		return ret;
	be->port = htons((__u16)n);
	ret = get_str(d, v, path, "proto", 8, true, &s);
	if (ret)
		return ret;
	if (!strcmp(s, nm_proto_name(IPPROTO_TCP)))
		be->proto = IPPROTO_TCP;
	else if (!strcmp(s, nm_proto_name(IPPROTO_UDP)))
		be->proto = IPPROTO_UDP;
	else
		return rej(d, "field '%sproto' must be tcp or udp", path);
	ret = get_uint(d, v, path, "weight", 1, 65535, false, 1, &n);
	if (ret)
		return ret;
	be->weight = (__u16)n;
	ret = get_str(d, v, path, "state", 16, false, &s);
	if (ret)
		return ret;
	be->state = NM_BE_ACTIVE;
	if (s) {
		for (n = NM_BE_ACTIVE; n <= NM_BE_QUARANTINED; n++) {
			if (!strcmp(s, nm_backend_state_name((__u8)n)))
				break;
		}
		if (n > NM_BE_QUARANTINED)
			return rej(
				d,
				"field '%sstate' must be active, terminating or quarantined",
				path);
		be->state = (__u8)n;
	}
	ret = get_str(d, v, path, "node", NM_KV_NAME_MAX, false, &s);
	if (ret || !s)
		return ret;
	if (!nm_dns_subdomain_ok(s))
		return rej(d, "field '%snode' must be a DNS subdomain", path);
	return dup_str(d, s, &be->node);
}

static int dec_service(struct dctx *d, json_object *root,
		       struct nm_kv_record *rec)
{
	struct nm_kv_service *svc = &rec->svc;
	char why[NM_KV_WHY_LEN];
	json_object *fes, *bes;
	const char *ns, *name, *aff;
	size_t i, j, n;
	__u64 num;
	int ret;

	ret = get_same(d, root, "namespace", NM_KV_NS_MAX, rec->key.ns, &ns);
	if (ret)
		return ret;
	ret = get_same(d, root, "name", NM_KV_NS_MAX, rec->key.name, &name);
	if (ret)
		return ret;
	ret = get_bool(d, root, "", "global", &svc->global);
	if (ret)
		return ret;
	ret = get_bool(d, root, "", "shared", &svc->shared);
	if (ret)
		return ret;
	ret = get_str(d, root, "", "affinity", 16, false, &aff);
	if (ret)
		return ret;
	svc->affinity = NM_KV_AFF_NONE;
	if (aff) {
		for (i = 0; i < ARRAY_LEN(affinity_names); i++) {
			if (!strcmp(aff, affinity_names[i]))
				break;
		}
		if (i == ARRAY_LEN(affinity_names))
			return rej(
				d,
				"field 'affinity' must be local, remote or none");
		svc->affinity = (enum nm_kv_affinity)i;
	}
	ret = get_uint(d, root, "", "weight", 1, 65535, false, 1, &num);
	if (ret)
		return ret;
	svc->weight = (__u16)num;
	ret = get_uint(d, root, "", "priority", 0, 255, false, 0, &num);
	if (ret)
		return ret;
	svc->priority = (__u8)num;

	ret = get_array(d, root, "frontends", NM_KV_FRONTENDS_MAX, true, &fes,
			&n);
	if (ret)
		return ret;
	if (n) {
		svc->frontends = calloc(n, sizeof(*svc->frontends));
		if (!svc->frontends)
			return nomem(d);
	}
	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(fes, i);
		struct nm_frontend *fe = &svc->frontends[i];

		if (!json_object_is_type(v, json_type_string))
			return rej(
				d,
				"field 'frontends[%zu]' must be a string, got %s",
				i, jtype_desc(json_object_get_type(v)));
		if (json_object_get_string_len(v) >= NM_FRONTEND_STRLEN)
			return rej(
				d,
				"field 'frontends[%zu]' is too long for VIP:PORT/PROTO",
				i);
		if (nm_parse_frontend(json_object_get_string(v), fe, why,
				      sizeof(why)))
			return rej(d, "field 'frontends[%zu]': %s", i, why);
		for (j = 0; j < i; j++) {
			if (!memcmp(&svc->frontends[j], fe, sizeof(*fe)))
				return rej(
					d,
					"field 'frontends[%zu]' repeats frontends[%zu]",
					i, j);
		}
		svc->n_frontends = i + 1;
	}

	ret = get_array(d, root, "backends", NM_KV_BACKENDS_MAX, true, &bes,
			&n);
	if (ret)
		return ret;
	if (n) {
		svc->backends = calloc(n, sizeof(*svc->backends));
		if (!svc->backends)
			return nomem(d);
	}
	for (i = 0; i < n; i++) {
		struct nm_kv_backend *be = &svc->backends[i];

		/* Count first: a half-decoded backend may own its node. */
		svc->n_backends = i + 1;
		ret = dec_backend(d, json_object_array_get_idx(bes, i), i, be);
		if (ret)
			return ret;
		/* Backends are few (bounded); quadratic is fine. */
		for (j = 0; j < i; j++) {
			if (svc->backends[j].ip == be->ip &&
			    svc->backends[j].port == be->port &&
			    svc->backends[j].proto == be->proto)
				return rej(
					d,
					"field 'backends[%zu]' repeats backends[%zu] (same ip, port, proto)",
					i, j);
		}
	}
	ret = dup_str(d, ns, &svc->namespace);
	if (ret)
		return ret;
	return dup_str(d, name, &svc->name);
}

/* Parse the whole value as one JSON object; anything else is refused. */
static int parse_json(struct dctx *d, const char *val, size_t len,
		      json_object **out)
{
	enum json_tokener_error jerr;
	struct json_tokener *tok;
	json_object *root;
	size_t end;
	int ret = 0;

	*out = NULL;
	if (len > NM_KV_VALUE_MAX)
		return rej(d,
			   "value of %zu bytes exceeds the limit of %u bytes",
			   len, NM_KV_VALUE_MAX);
	/* json-c keeps strings as C strings: a NUL would cut them short. */
	if (memchr(val, '\0', len) || memmem(val, len, "\\u0000", 6))
		return rej(d, "value contains a NUL character");
	tok = json_tokener_new_ex(NM_KV_JSON_DEPTH);
	if (!tok)
		return nomem(d);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					    JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, val, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		ret = rej(d, "malformed JSON: %s",
			  len ? "truncated value" : "empty value");
		goto out;
	}
	if (jerr != json_tokener_success) {
		ret = rej(d, "malformed JSON at byte %zu: %s", end,
			  json_tokener_error_desc(jerr));
		goto out;
	}
	if (end != len) {
		ret = rej(d, "malformed JSON: trailing data at byte %zu", end);
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		ret = rej(d, "value must be a JSON object, got %s",
			  jtype_desc(json_object_get_type(root)));
		goto out;
	}
	*out = root;
	root = NULL;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return ret;
}

static int check_key(struct dctx *d, struct nm_kv_key *k)
{
	char why[NM_KV_WHY_LEN];

	if (nm_kv_key_parse(d->ctx->prefix, d->key, k, why, sizeof(why)))
		return rej(d, "%s", why);
	if (strcmp(k->cluster, d->ctx->cluster))
		return rej(d, "the key names cluster '%s'", k->cluster);
	return 0;
}

int nm_kv_key_check(const struct nm_kv_ctx *ctx, const char *key,
		    struct nm_kv_key *out, char *err, size_t errlen)
{
	struct dctx d = { ctx, key, "rejected", err, errlen };

	return check_key(&d, out);
}

typedef int (*dec_fn)(struct dctx *d, json_object *root,
		      struct nm_kv_record *rec);

static const dec_fn decoders[] = {
	[NM_KV_T_CLUSTER] = dec_cluster,   [NM_KV_T_HEARTBEAT] = dec_stamp,
	[NM_KV_T_SYNCED] = dec_stamp,	   [NM_KV_T_NODE] = dec_node,
	[NM_KV_T_ENDPOINT] = dec_endpoint, [NM_KV_T_IDENTITY] = dec_identity,
	[NM_KV_T_SERVICE] = dec_service,
};

static int decode(struct dctx *d, const void *val, size_t len,
		  struct nm_kv_record *out)
{
	struct nm_kv_record rec = { 0 };
	json_object *root = NULL;
	__u64 schema;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = check_key(d, &rec.key);
	if (ret)
		return ret;
	ret = parse_json(d, val, len, &root);
	if (ret)
		return ret;
	ret = get_uint(d, root, "", "schema", 0, ~0ULL, true, 0, &schema);
	if (ret)
		goto out;
	if (schema != NM_KV_SCHEMA) {
		ret = rej(d, "unsupported schema %llu (this agent reads %u)",
			  (unsigned long long)schema, NM_KV_SCHEMA);
		goto out;
	}
	ret = decoders[rec.key.type](d, root, &rec);
	if (ret)
		goto out;
	*out = rec;
	memset(&rec, 0, sizeof(rec));
out:
	nm_kv_record_free(&rec);
	json_object_put(root);
	return ret;
}

int nm_kv_decode(const struct nm_kv_ctx *ctx, const char *key, const void *val,
		 size_t len, struct nm_kv_record *out, char *err, size_t errlen)
{
	struct dctx d = { ctx, key, "rejected", err, errlen };

	return decode(&d, val, len, out);
}

void nm_kv_record_free(struct nm_kv_record *rec)
{
	size_t i;

	switch (rec->key.type) {
	case NM_KV_T_CLUSTER:
		free(rec->cluster.name);
		for (i = 0; i < rec->cluster.n_capabilities; i++)
			free(rec->cluster.capabilities[i]);
		free(rec->cluster.capabilities);
		break;
	case NM_KV_T_NODE:
		free(rec->node.name);
		free(rec->node.cluster);
		free(rec->node.pod_cidrs);
		free(rec->node.boot_id);
		break;
	case NM_KV_T_ENDPOINT:
		free(rec->ep.namespace);
		free(rec->ep.name);
		free(rec->ep.node);
		nm_labels_free(&rec->ep.labels);
		break;
	case NM_KV_T_IDENTITY:
		nm_labels_free(&rec->identity.labels);
		break;
	case NM_KV_T_SERVICE:
		free(rec->svc.namespace);
		free(rec->svc.name);
		free(rec->svc.frontends);
		for (i = 0; i < rec->svc.n_backends; i++)
			free(rec->svc.backends[i].node);
		free(rec->svc.backends);
		break;
	default:
		break;
	}
	memset(rec, 0, sizeof(*rec));
}

/* ---- encoding ---- */

/* Add @v (a fresh object, NULL on ENOMEM) to @obj; consumes @v. */
static int put(json_object *obj, const char *name, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(obj, name, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int push(json_object *arr, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_array_add(arr, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int put_str(json_object *obj, const char *name, const char *s)
{
	return put(obj, name, json_object_new_string(s ? s : ""));
}

static int put_u64_str(json_object *obj, const char *name, __u64 v)
{
	char buf[NM_U64_DIGITS + 1];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return put_str(obj, name, buf);
}

static int put_ipv4(json_object *obj, const char *name, __be32 addr)
{
	char buf[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &addr, buf, sizeof(buf)))
		return -EINVAL;
	return put_str(obj, name, buf);
}

static int put_labels(json_object *obj, const struct nm_labels *l)
{
	json_object *m = json_object_new_object();
	size_t i;
	int ret;

	if (!m)
		return -ENOMEM;
	for (i = 0; i < l->n; i++) {
		ret = put_str(m, l->v[i].key, l->v[i].value);
		if (ret)
			goto err;
	}
	return put(obj, "labels", m);
err:
	json_object_put(m);
	return ret;
}

/* Fill an array: @fill adds item @i to @arr. */
static int put_array(json_object *obj, const char *name, size_t n,
		     int (*fill)(json_object *arr, const void *ctx, size_t i),
		     const void *ctx)
{
	json_object *arr = json_object_new_array();
	size_t i;
	int ret;

	if (!arr)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ret = fill(arr, ctx, i);
		if (ret)
			goto err;
	}
	return put(obj, name, arr);
err:
	json_object_put(arr);
	return ret;
}

static int fill_cap(json_object *arr, const void *ctx, size_t i)
{
	const struct nm_kv_cluster *c = ctx;

	return push(arr, json_object_new_string(c->capabilities[i]));
}

static int fill_cidr(json_object *arr, const void *ctx, size_t i)
{
	const struct nm_kv_node *n = ctx;
	char a[INET_ADDRSTRLEN], buf[INET_ADDRSTRLEN + 4];

	if (!inet_ntop(AF_INET, &n->pod_cidrs[i].addr, a, sizeof(a)))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s/%u", a, n->pod_cidrs[i].len);
	return push(arr, json_object_new_string(buf));
}

static int fill_frontend(json_object *arr, const void *ctx, size_t i)
{
	const struct nm_kv_service *s = ctx;
	char buf[NM_FRONTEND_STRLEN];

	return push(arr, json_object_new_string(nm_frontend_str(
				 &s->frontends[i], buf, sizeof(buf))));
}

static int fill_backend(json_object *arr, const void *ctx, size_t i)
{
	const struct nm_kv_backend *be =
		&((const struct nm_kv_service *)ctx)->backends[i];
	json_object *o = json_object_new_object();
	int ret;

	if (!o)
		return -ENOMEM;
	ret = put_ipv4(o, "ip", be->ip);
	if (!ret)
		ret = put(o, "port", json_object_new_int(ntohs(be->port)));
	if (!ret)
		ret = put_str(o, "proto", nm_proto_name(be->proto));
	if (!ret)
		ret = put(o, "weight", json_object_new_int(be->weight));
	if (!ret)
		ret = put_str(o, "state", nm_backend_state_name(be->state));
	if (!ret && be->node)
		ret = put_str(o, "node", be->node);
	if (ret) {
		json_object_put(o);
		return ret;
	}
	return push(arr, o);
}

static int enc_body(const struct nm_kv_record *rec, json_object *o)
{
	int ret = put(o, "schema", json_object_new_int(NM_KV_SCHEMA));

	if (ret)
		return ret;
	switch (rec->key.type) {
	case NM_KV_T_CLUSTER:
		ret = put_str(o, "name", rec->cluster.name);
		if (!ret)
			ret = put(o, "id",
				  json_object_new_int(rec->cluster.id));
		if (!ret)
			ret = put_array(o, "capabilities",
					rec->cluster.n_capabilities, fill_cap,
					&rec->cluster);
		return ret;
	case NM_KV_T_HEARTBEAT:
	case NM_KV_T_SYNCED:
		return put_u64_str(o, "ts", rec->stamp.ts_ms);
	case NM_KV_T_NODE:
		ret = put_str(o, "name", rec->node.name);
		if (!ret)
			ret = put_str(o, "cluster", rec->node.cluster);
		if (!ret)
			ret = put(o, "cluster_id",
				  json_object_new_int(rec->node.cluster_id));
		if (!ret)
			ret = put_ipv4(o, "node_ip", rec->node.node_ip);
		if (!ret)
			ret = put_array(o, "pod_cidrs", rec->node.n_pod_cidrs,
					fill_cidr, &rec->node);
		if (!ret)
			ret = put_str(o, "boot_id", rec->node.boot_id);
		return ret;
	case NM_KV_T_ENDPOINT:
		ret = put_str(o, "namespace", rec->ep.namespace);
		if (!ret)
			ret = put_str(o, "name", rec->ep.name);
		if (!ret)
			ret = put_ipv4(o, "ip", rec->ep.ip);
		if (!ret)
			ret = put_str(o, "node", rec->ep.node);
		if (!ret)
			ret = put_labels(o, &rec->ep.labels);
		if (!ret)
			ret = put_u64_str(o, "identity", rec->ep.identity);
		/* Absent when active: active pods' records stay as they were. */
		if (!ret && rec->ep.state != NM_BE_ACTIVE &&
		    rec->ep.state != NM_BE_TERMINATING)
			ret = -EINVAL;
		if (!ret && rec->ep.state == NM_BE_TERMINATING)
			ret = put_str(o, "state",
				      nm_backend_state_name(rec->ep.state));
		return ret;
	case NM_KV_T_IDENTITY:
		return put_labels(o, &rec->identity.labels);
	case NM_KV_T_SERVICE:
		ret = put_str(o, "namespace", rec->svc.namespace);
		if (!ret)
			ret = put_str(o, "name", rec->svc.name);
		if (!ret)
			ret = put_array(o, "frontends", rec->svc.n_frontends,
					fill_frontend, &rec->svc);
		if (!ret)
			ret = put_array(o, "backends", rec->svc.n_backends,
					fill_backend, &rec->svc);
		if (!ret)
			ret = put(o, "global",
				  json_object_new_boolean(rec->svc.global));
		if (!ret)
			ret = put(o, "shared",
				  json_object_new_boolean(rec->svc.shared));
		if (!ret && !nm_kv_affinity_name(rec->svc.affinity))
			ret = -EINVAL;
		if (!ret)
			ret = put_str(o, "affinity",
				      nm_kv_affinity_name(rec->svc.affinity));
		/* 0: a caller that left the weight unset means the default. */
		if (!ret)
			ret = put(o, "weight",
				  json_object_new_int(rec->svc.weight ?: 1));
		if (!ret)
			ret = put(o, "priority",
				  json_object_new_int(rec->svc.priority));
		return ret;
	}
	return -EINVAL;
}

int nm_kv_encode(const struct nm_kv_ctx *ctx, const struct nm_kv_record *rec,
		 char **key_out, char **val_out, size_t *val_len, char *err,
		 size_t errlen)
{
	struct dctx d = { ctx, "?", "refusing to publish", err, errlen };
	char key[NM_KV_KEY_MAX + 1];
	struct nm_kv_record check;
	char *k = NULL, *v = NULL;
	const char *text;
	json_object *o;
	int ret;

	ret = nm_kv_key_format(ctx->prefix, &rec->key, key, sizeof(key));
	if (ret)
		return rej(&d, "failed to format the key: %s", strerror(-ret));
	d.key = key;
	o = json_object_new_object();
	if (!o)
		return nomem(&d);
	ret = enc_body(rec, o);
	if (ret == -ENOMEM) {
		nomem(&d);
		goto out_obj;
	}
	if (ret) {
		rej(&d, "record has an unencodable field");
		goto out_obj;
	}
	text = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text) {
		ret = nomem(&d);
		goto out_obj;
	}
	/* Never publish what a peer (or we) would reject. */
	ret = decode(&d, text, strlen(text), &check);
	if (ret)
		goto out_obj;
	nm_kv_record_free(&check);
	k = strdup(key);
	v = strdup(text);
	if (!k || !v) {
		ret = nomem(&d);
		goto out_str;
	}
	*key_out = k;
	*val_out = v;
	*val_len = strlen(v);
	json_object_put(o);
	return 0;
out_str:
	free(v);
	free(k);
out_obj:
	json_object_put(o);
	return ret;
}
