// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <arpa/inet.h>

#include <json-c/json.h>

#include "agent/identity.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "maps/identity.h"

#define IDS_FILE "identities.json"
#define CIDR_LABEL_PREFIX "cidr:"

static const struct {
	__u64 id;
	const char *name;
} reserved[] = {
	{ NM_ID_HOST, "reserved:host" },
	{ NM_ID_WORLD, "reserved:world" },
	{ NM_ID_UNMANAGED, "reserved:unmanaged" },
	{ NM_ID_HEALTH, "reserved:health" },
	{ NM_ID_INIT, "reserved:init" },
	{ NM_ID_REMOTE_NODE, "reserved:remote-node" },
};

#define N_RESERVED (sizeof(reserved) / sizeof(reserved[0]))

const char *nm_identity_reserved_name(__u64 id)
{
	size_t i;

	for (i = 0; i < N_RESERVED; i++)
		if (reserved[i].id == id)
			return reserved[i].name;
	return NULL;
}

/*
 * FNV-1a 64 with a murmur3 finaliser, fixed seed: the same labels hash
 * the same on every node and every build.
 */
__u32 nm_identity_hash(const char *canon)
{
	__u64 h = 0xcbf29ce484222325ULL;
	const unsigned char *p;

	for (p = (const unsigned char *)canon; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return NM_ID_LOCAL_MIN +
	       (__u32)(h % (NM_ID_LOCAL_MAX - NM_ID_LOCAL_MIN + 1));
}

char *nm_cidr_str(const struct nm_cidr *c, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &c->addr, ip, sizeof(ip)))
		strcpy(ip, "?");
	snprintf(buf, len, "%s/%u", ip, c->len);
	return buf;
}

int nm_cidr_parse(const char *s, struct nm_cidr *c)
{
	char ip[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	unsigned long len;
	char *end;
	__u32 mask;

	if (!slash || (size_t)(slash - s) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, (size_t)(slash - s));
	ip[slash - s] = '\0';
	if (slash[1] < '0' || slash[1] > '9')
		return -EINVAL;
	len = strtoul(slash + 1, &end, 10);
	if (*end || len > 32 || nm_parse_ipv4(ip, &c->addr))
		return -EINVAL;
	mask = len ? ~0U << (32 - len) : 0;
	if (ntohl(c->addr) & ~mask)
		return -EINVAL;
	c->len = (__u8)len;
	return 0;
}

static int info_cmp(const void *a, const void *b)
{
	const struct nm_identity_info *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int grow(struct nm_idstore *s)
{
	struct nm_identity_info *v;

	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	memset(&s->v[s->n], 0, sizeof(s->v[s->n]));
	return 0;
}

/* Append an identity; @labels copied. */
static int add_info(struct nm_idstore *s, __u64 id,
		    const struct nm_labels *labels, const struct nm_cidr *cidr)
{
	struct nm_identity_info *info;
	int err;

	err = grow(s);
	if (err)
		return err;
	info = &s->v[s->n];
	info->id = id;
	err = nm_labels_copy(&info->labels, labels);
	if (err)
		return err;
	if (cidr) {
		info->is_cidr = true;
		info->cidr = *cidr;
	}
	s->n++;
	return 0;
}

static int add_reserved(struct nm_idstore *s)
{
	struct nm_labels l = {};
	size_t i;
	int err = 0;

	for (i = 0; i < N_RESERVED && !err; i++) {
		err = nm_labels_set(&l, reserved[i].name, "");
		if (!err)
			err = add_info(s, reserved[i].id, &l, NULL);
		nm_labels_free(&l);
	}
	return err;
}

static int cidr_labels(const struct nm_cidr *c, struct nm_labels *l)
{
	char key[32], cs[24];

	snprintf(key, sizeof(key), CIDR_LABEL_PREFIX "%s",
		 nm_cidr_str(c, cs, sizeof(cs)));
	return nm_labels_set(l, key, "");
}

/* One element of identities.json into @s. */
static int load_one(struct nm_idstore *s, struct json_object *o,
		    const char *where)
{
	struct json_object *jid, *jlabels, *jcidr;
	struct nm_labels l = {};
	struct nm_cidr cidr;
	bool is_cidr = false;
	__s64 id;
	int err = -EINVAL;

	if (!json_object_object_get_ex(o, "id", &jid) ||
	    !json_object_is_type(jid, json_type_int) ||
	    !json_object_object_get_ex(o, "labels", &jlabels) ||
	    !json_object_is_type(jlabels, json_type_object)) {
		pr_warn("failed to parse %s: identity without id or labels",
			where);
		return -EINVAL;
	}
	id = json_object_get_int64(jid);
	if (id <= NM_ID_RESERVED_MAX ||
	    id > (__s64)nm_identity_pack(0xffff, NM_ID_LOCAL_MAX)) {
		pr_warn("failed to parse %s: identity %lld out of range", where,
			(long long)id);
		return -EINVAL;
	}
	if (json_object_object_get_ex(o, "cidr", &jcidr)) {
		if (!json_object_is_type(jcidr, json_type_string) ||
		    nm_cidr_parse(json_object_get_string(jcidr), &cidr) ||
		    !nm_identity_is_cidr((__u64)id)) {
			pr_warn("failed to parse %s: bad CIDR identity %lld",
				where, (long long)id);
			return -EINVAL;
		}
		is_cidr = true;
	}
	json_object_object_foreach(jlabels, k, v)
	{
		if (!json_object_is_type(v, json_type_string)) {
			pr_warn("failed to parse %s: label %s of identity %lld is not a string",
				where, k, (long long)id);
			goto out;
		}
		err = nm_labels_set(&l, k, json_object_get_string(v));
		if (err)
			goto out;
		err = -EINVAL;
	}
	err = add_info(s, (__u64)id, &l, is_cidr ? &cidr : NULL);
out:
	nm_labels_free(&l);
	return err;
}

int nm_idstore_load(const struct nm_state *st, struct nm_idstore *s)
{
	struct json_object *root = NULL, *arr;
	char where[PATH_MAX + 32];
	char *buf = NULL;
	size_t len, i, n;
	int err;

	memset(s, 0, sizeof(*s));
	err = add_reserved(s);
	if (err)
		goto err_free;
	err = nm_state_read(st, IDS_FILE, &buf, &len);
	if (err == -ENOENT)
		return 0;
	if (err)
		goto err_free;
	snprintf(where, sizeof(where), "%s/%s", st->dir, IDS_FILE);
	root = json_tokener_parse(buf);
	if (!root || !json_object_object_get_ex(root, "identities", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		pr_warn("failed to parse %s: expected {\"identities\": [...]}",
			where);
		err = -EINVAL;
		goto err_free;
	}
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		err = load_one(s, json_object_array_get_idx(arr, i), where);
		if (err)
			goto err_free;
	}
	qsort(s->v + N_RESERVED, s->n - N_RESERVED, sizeof(*s->v), info_cmp);
	json_object_put(root);
	free(buf);
	return 0;

err_free:
	json_object_put(root);
	free(buf);
	nm_idstore_free(s);
	return err;
}

int nm_idstore_save(const struct nm_state *st, const struct nm_idstore *s)
{
	struct json_object *root, *arr;
	const char *text;
	char cs[24];
	size_t i, j;
	int err = -ENOMEM;

	root = json_object_new_object();
	arr = json_object_new_array();
	if (!root || !arr) {
		json_object_put(arr);
		goto out;
	}
	if (json_object_object_add(root, "identities", arr)) {
		json_object_put(arr);
		goto out;
	}
	for (i = 0; i < s->n; i++) {
		const struct nm_identity_info *info = &s->v[i];
		struct json_object *o, *labels;

		if (nm_identity_is_reserved(info->id))
			continue;
		o = json_object_new_object();
		if (!o || json_object_array_add(arr, o)) {
			json_object_put(o);
			goto out;
		}
		labels = json_object_new_object();
		if (!labels)
			goto out;
		if (json_object_object_add(
			    o, "id", json_object_new_int64((__s64)info->id)) ||
		    json_object_object_add(
			    o, "cluster_id",
			    json_object_new_int(
				    nm_identity_cluster(info->id))) ||
		    json_object_object_add(
			    o, "local_id",
			    json_object_new_int64(
				    nm_identity_local(info->id))) ||
		    json_object_object_add(o, "labels", labels)) {
			json_object_put(labels);
			goto out;
		}
		if (info->is_cidr &&
		    json_object_object_add(
			    o, "cidr",
			    json_object_new_string(
				    nm_cidr_str(&info->cidr, cs, sizeof(cs)))))
			goto out;
		for (j = 0; j < info->labels.n; j++)
			if (json_object_object_add(
				    labels, info->labels.v[j].key,
				    json_object_new_string(
					    info->labels.v[j].value)))
				goto out;
	}
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	if (!text)
		goto out;
	err = nm_state_write(st, IDS_FILE, text, strlen(text));
out:
	if (err == -ENOMEM)
		pr_warn("failed to encode %s on %s: out of memory", IDS_FILE,
			st->dir);
	json_object_put(root);
	return err;
}

void nm_idstore_free(struct nm_idstore *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		nm_labels_free(&s->v[i].labels);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

const struct nm_identity_info *nm_idstore_find(const struct nm_idstore *s,
					       __u64 id)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].id == id)
			return &s->v[i];
	return NULL;
}

int nm_identity_alloc(struct nm_idstore *s, __u16 cluster_id,
		      const struct nm_labels *labels, __u64 *id, bool *created)
{
	const __u32 range = NM_ID_LOCAL_MAX - NM_ID_LOCAL_MIN + 1;
	const struct nm_identity_info *hit;
	__u32 start, i;
	char *canon;
	int err;

	if (!cluster_id)
		return -EINVAL;
	canon = nm_labels_str(labels);
	if (!canon)
		return -ENOMEM;
	start = nm_identity_hash(canon) - NM_ID_LOCAL_MIN;
	free(canon);
	for (i = 0; i < range; i++) {
		__u64 cand = nm_identity_pack(
			cluster_id, NM_ID_LOCAL_MIN + (start + i) % range);

		hit = nm_idstore_find(s, cand);
		if (hit && nm_labels_equal(&hit->labels, labels)) {
			*id = cand;
			*created = false;
			return 0;
		}
		if (hit)
			continue; /* collision: probe the next id */
		err = add_info(s, cand, labels, NULL);
		if (err)
			return err;
		qsort(s->v + N_RESERVED, s->n - N_RESERVED, sizeof(*s->v),
		      info_cmp);
		*id = cand;
		*created = true;
		return 0;
	}
	pr_warn("failed to allocate identity in cluster %u: all %u ids taken",
		cluster_id, range);
	return -ENOSPC;
}

static bool cidr_eq(const struct nm_cidr *a, const struct nm_cidr *b)
{
	return a->addr == b->addr && a->len == b->len;
}

static int push_change(struct nm_cidr_change **v, size_t *n, __u64 id,
		       const struct nm_cidr *c)
{
	struct nm_cidr_change *nv;

	if (!v)
		return 0;
	nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n].id = id;
	nv[*n].cidr = *c;
	(*n)++;
	return 0;
}

int nm_identity_sync_cidrs(struct nm_idstore *s, const struct nm_cidr *cidrs,
			   size_t n, struct nm_cidr_change **added,
			   size_t *n_added, struct nm_cidr_change **removed,
			   size_t *n_removed)
{
	struct nm_labels l = {};
	size_t i, j, out;
	__u32 next = 0;
	int err = 0;

	if (added) {
		*added = NULL;
		*n_added = 0;
	}
	if (removed) {
		*removed = NULL;
		*n_removed = 0;
	}
	/* Drop CIDR identities no policy mentions any more. */
	for (i = 0, out = 0; i < s->n; i++) {
		bool keep = true;

		if (s->v[i].is_cidr) {
			keep = false;
			for (j = 0; j < n && !keep; j++)
				keep = cidr_eq(&s->v[i].cidr, &cidrs[j]);
		}
		if (!keep) {
			err = push_change(removed, n_removed, s->v[i].id,
					  &s->v[i].cidr);
			if (err) {
				/* Keep the store whole: close the gap left so far. */
				memmove(&s->v[out], &s->v[i],
					(s->n - i) * sizeof(*s->v));
				s->n = out + (s->n - i);
				return err;
			}
			nm_labels_free(&s->v[i].labels);
			continue;
		}
		s->v[out++] = s->v[i];
	}
	s->n = out;
	/* Add the new ones at the lowest free ids, so ids stay small and stable. */
	for (j = 0; j < n; j++) {
		bool have = false;

		for (i = 0; i < s->n && !have; i++)
			have = s->v[i].is_cidr &&
			       cidr_eq(&s->v[i].cidr, &cidrs[j]);
		if (have)
			continue;
		while (next < NM_CIDR_IDS_MAX &&
		       nm_idstore_find(
			       s, nm_identity_pack(0, NM_ID_CIDR_BASE + next)))
			next++;
		if (next >= NM_CIDR_IDS_MAX) {
			pr_warn("failed to allocate CIDR identity: all %u taken",
				NM_CIDR_IDS_MAX);
			return -ENOSPC;
		}
		err = cidr_labels(&cidrs[j], &l);
		if (!err)
			err = add_info(
				s, nm_identity_pack(0, NM_ID_CIDR_BASE + next),
				&l, &cidrs[j]);
		nm_labels_free(&l);
		if (!err)
			err = push_change(
				added, n_added,
				nm_identity_pack(0, NM_ID_CIDR_BASE + next),
				&cidrs[j]);
		if (err)
			return err;
	}
	qsort(s->v + N_RESERVED, s->n - N_RESERVED, sizeof(*s->v), info_cmp);
	return 0;
}

/* Index of @id among the sorted label and CIDR identities, or -1. */
static ssize_t find_sorted(const struct nm_idstore *s, size_t n, __u64 id)
{
	size_t lo = N_RESERVED, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].id == id)
			return (ssize_t)mid;
		if (s->v[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int nm_idstore_merge(struct nm_idstore *s, const struct nm_identity_info *put,
		     size_t n_put, const __u64 *del, size_t n_del,
		     bool *changed)
{
	struct nm_identity_info *v;
	struct nm_labels l;
	size_t i, out, n_sorted;
	ssize_t idx;
	int err = 0;

	*changed = false;
	/* Drops first: 0 (never a stored id) marks a hole, then compact. */
	for (i = 0; i < n_del; i++) {
		idx = find_sorted(s, s->n, del[i]);
		if (idx < 0 || s->v[idx].is_cidr)
			continue;
		nm_labels_free(&s->v[idx].labels);
		s->v[idx].id = 0;
		*changed = true;
	}
	for (i = N_RESERVED, out = N_RESERVED; i < s->n; i++)
		if (s->v[i].id)
			s->v[out++] = s->v[i];
	s->n = out;

	/* Room for every put up front: one realloc, not one per identity. */
	v = realloc(s->v, (s->n + n_put + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	n_sorted = s->n;
	for (i = 0; i < n_put; i++) {
		if (nm_identity_is_reserved(put[i].id) ||
		    nm_identity_is_cidr(put[i].id))
			continue;
		idx = find_sorted(s, n_sorted, put[i].id);
		if (idx >= 0 &&
		    nm_labels_equal(&s->v[idx].labels, &put[i].labels))
			continue;
		memset(&l, 0, sizeof(l));
		err = nm_labels_copy(&l, &put[i].labels);
		if (err) {
			nm_labels_free(&l);
			break;
		}
		if (idx >= 0) {
			nm_labels_free(&s->v[idx].labels);
			s->v[idx].labels = l;
		} else {
			memset(&s->v[s->n], 0, sizeof(s->v[s->n]));
			s->v[s->n].id = put[i].id;
			s->v[s->n].labels = l;
			s->n++;
		}
		*changed = true;
	}
	/* Sorted again even after an error: the store stays whole. */
	if (s->n > n_sorted)
		qsort(s->v + N_RESERVED, s->n - N_RESERVED, sizeof(*s->v),
		      info_cmp);
	return err;
}
