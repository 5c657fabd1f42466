// SPDX-License-Identifier: GPL-2.0
#define _GNU_SOURCE /* memmem, asprintf */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <json-c/json.h>

#include "agent/endpoint.h"
#include "agent/kvstore.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "maps/identity.h"
#include "maps/ipcache.h"

#define CNI_FILE "cni.json"
#define REQ_JSON_DEPTH 8
#define ECHO_MAX 64 /* of a refused value echoed in a message */

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Put the reason in @err and return @ret: every refusal goes through here. */
static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

/* ---- request checks (pure) ---------------------------------------------- */

int nm_endpoint_container_check(const char *id, char *err, size_t errlen)
{
	size_t len = strlen(id), i;

	if (!len)
		return fail(err, errlen, -EINVAL, "empty container id");
	if (len > NM_EP_CONTAINER_ID_MAX)
		return fail(err, errlen, -EINVAL,
			    "container id of %zu characters: at most %d", len,
			    NM_EP_CONTAINER_ID_MAX);
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("._-", id[i]))
			return fail(
				err, errlen, -EINVAL,
				"bad container id '%.*s': only letters, digits, '.', '_' and '-'",
				ECHO_MAX, id);
	return 0;
}

int nm_endpoint_ifname_check(const char *what, const char *name, char *err,
			     size_t errlen)
{
	size_t len = strlen(name), i;

	if (!len)
		return fail(err, errlen, -EINVAL, "empty %s", what);
	if (len >= IF_NAMESIZE)
		return fail(err, errlen, -EINVAL,
			    "bad %s '%.*s': at most %d characters", what,
			    ECHO_MAX, name, IF_NAMESIZE - 1);
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return fail(err, errlen, -EINVAL, "bad %s '%s'", what, name);
	for (i = 0; i < len; i++)
		if (name[i] == '/' || name[i] == ':' ||
		    isspace((unsigned char)name[i]) ||
		    !isprint((unsigned char)name[i]))
			return fail(
				err, errlen, -EINVAL,
				"bad %s '%s': no '/', ':', white space or control characters",
				what, name);
	return 0;
}

/* "aa:bb:cc:dd:ee:ff", exactly: two hex digits a byte. */
static int mac_parse(const char *s, __u8 *mac)
{
	int i, hi, lo;

	if (strlen(s) != 17)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		if (i < 5 && s[3 * i + 2] != ':')
			return -EINVAL;
		if (!isxdigit((unsigned char)s[3 * i]) ||
		    !isxdigit((unsigned char)s[3 * i + 1]))
			return -EINVAL;
		hi = isdigit((unsigned char)s[3 * i]) ?
			     s[3 * i] - '0' :
			     tolower((unsigned char)s[3 * i]) - 'a' + 10;
		lo = isdigit((unsigned char)s[3 * i + 1]) ?
			     s[3 * i + 1] - '0' :
			     tolower((unsigned char)s[3 * i + 1]) - 'a' + 10;
		mac[i] = (__u8)(hi << 4 | lo);
	}
	return 0;
}

/* A pod address: not 0.0.0.0/8, loopback, multicast or reserved. */
static bool ip_unicast(__be32 ip)
{
	__u32 h = ntohl(ip);

	return (h >> 24) != 0 && (h >> 24) != 127 && h < 0xe0000000U;
}

/*
 * A pod name from a container id: lower case, anything but letters and
 * digits turned into '-', at most NM_EP_NAME_DERIVED_MAX characters,
 * alphanumeric at both ends; a DNS label, so also a DNS subdomain.
 */
static void derive_name(const char *id, char *buf, size_t len)
{
	size_t n = 0, i;

	for (i = 0; id[i] && n < NM_EP_NAME_DERIVED_MAX && n + 1 < len; i++) {
		unsigned char c = (unsigned char)id[i];

		buf[n++] = isalnum(c) ? (char)tolower(c) : '-';
	}
	while (n && buf[n - 1] == '-')
		n--;
	buf[n] = '\0';
	for (i = 0; buf[i] == '-'; i++)
		;
	memmove(buf, buf + i, n - i + 1);
	if (!buf[0])
		snprintf(buf, len, "container");
}

static const char *jtype(json_object *o)
{
	return o ? json_type_to_name(json_object_get_type(o)) : "null";
}

/*
 * The string field @key of @root into *@out (borrowed). Absent or null:
 * *@out NULL, an error when @required.
 */
static int field_str(json_object *root, const char *key, bool required,
		     const char **out, char *err, size_t errlen)
{
	json_object *v = NULL;

	*out = NULL;
	if (!json_object_object_get_ex(root, key, &v) || !v) {
		if (required)
			return fail(err, errlen, -EINVAL, "missing field '%s'",
				    key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(err, errlen, -EINVAL,
			    "field '%s' must be a string, got %s", key,
			    jtype(v));
	*out = json_object_get_string(v);
	return 0;
}

/* The whole body as one JSON object; trailing white space is fine. */
static int parse_object(const char *body, size_t len, json_object **out,
			char *err, size_t errlen)
{
	enum json_tokener_error jerr;
	json_tokener *tok;
	json_object *root;
	size_t end, i;
	int ret = 0;

	*out = NULL;
	if (len > NM_EP_REQ_MAX)
		return fail(err, errlen, -E2BIG,
			    "body of %zu bytes: at most %u", len,
			    NM_EP_REQ_MAX);
	/* json-c keeps C strings: a NUL would cut a value short. */
	if (memchr(body, '\0', len) || memmem(body, len, "\\u0000", 6))
		return fail(err, errlen, -EINVAL, "body holds a NUL character");
	tok = json_tokener_new_ex(REQ_JSON_DEPTH);
	if (!tok)
		return fail(err, errlen, -ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					    JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		ret = fail(err, errlen, -EINVAL, "malformed JSON: %s",
			   len ? "truncated body" : "empty body");
		goto out;
	}
	if (jerr != json_tokener_success) {
		ret = fail(err, errlen, -EINVAL,
			   "malformed JSON at byte %zu: %s", end,
			   json_tokener_error_desc(jerr));
		goto out;
	}
	for (i = end; i < len; i++) {
		if (!isspace((unsigned char)body[i])) {
			ret = fail(err, errlen, -EINVAL,
				   "malformed JSON: trailing data at byte %zu",
				   i);
			goto out;
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		ret = fail(err, errlen, -EINVAL,
			   "body must be a JSON object, got %s", jtype(root));
		goto out;
	}
	*out = root;
	root = NULL;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return ret;
}

static int parse_ns(const char *ns, char *out, size_t len, char *err,
		    size_t errlen)
{
	char why[256];

	if (!*ns)
		return fail(err, errlen, -EINVAL, "empty namespace");
	if (nm_label_value_check(ns, why, sizeof(why)))
		return fail(err, errlen, -EINVAL, "bad namespace '%.*s': %s",
			    ECHO_MAX, ns, why);
	/* Endpoint keys carry it: what the kvstore refuses, refuse here. */
	if (!nm_dns_label_ok(ns))
		return fail(
			err, errlen, -EINVAL,
			"bad namespace '%s': must be a DNS label (lower-case letters, digits and '-')",
			ns);
	snprintf(out, len, "%s", ns);
	return 0;
}

static int parse_labels(json_object *root, struct nm_labels *out, char *err,
			size_t errlen)
{
	json_object *jl = NULL;
	char why[512];
	int ret;

	if (!json_object_object_get_ex(root, "labels", &jl) || !jl)
		return 0;
	if (!json_object_is_type(jl, json_type_object))
		return fail(err, errlen, -EINVAL,
			    "field 'labels' must be an object, got %s",
			    jtype(jl));
	if (json_object_object_length(jl) > NM_EP_LABELS_MAX)
		return fail(err, errlen, -EINVAL, "%d labels: at most %d",
			    json_object_object_length(jl), NM_EP_LABELS_MAX);
	json_object_object_foreach(jl, k, v)
	{
		if (!json_object_is_type(v, json_type_string))
			return fail(err, errlen, -EINVAL,
				    "label '%.*s' must be a string, got %s",
				    ECHO_MAX, k, jtype(v));
		if (nm_label_key_check(k, why, sizeof(why)))
			return fail(err, errlen, -EINVAL,
				    "bad label key '%.*s': %s", ECHO_MAX, k,
				    why);
		if (!strcmp(k, NM_LABEL_NAMESPACE) ||
		    !strcmp(k, NM_LABEL_CLUSTER))
			return fail(
				err, errlen, -EINVAL,
				"label %s is set by nodemesh, not by the caller",
				k);
		if (nm_label_value_check(json_object_get_string(v), why,
					 sizeof(why)))
			return fail(err, errlen, -EINVAL,
				    "bad value of label %s: %s", k, why);
		ret = nm_labels_set(out, k, json_object_get_string(v));
		if (ret)
			return fail(err, errlen, ret, "out of memory");
	}
	return 0;
}

int nm_endpoint_req_parse(const char *body, size_t len,
			  struct nm_endpoint_req *req, char *err, size_t errlen)
{
	static const char *const known[] = {
		"container_id", "ifname", "netns", "namespace",	  "name",
		"labels",	"ip",	  "mac",   "host_ifname",
	};
	const char *cid, *ifname, *netns, *ns, *name, *ip, *mac, *host;
	json_object *root = NULL;
	size_t i;
	int ret;

	memset(req, 0, sizeof(*req));
	ret = parse_object(body, len, &root, err, errlen);
	if (ret)
		return ret;
	json_object_object_foreach(root, key, val)
	{
		(void)val;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (!strcmp(key, known[i]))
				break;
		/* A misspelt optional field would be lost silently. */
		if (i == sizeof(known) / sizeof(known[0])) {
			ret = fail(err, errlen, -EINVAL, "unknown field '%.*s'",
				   ECHO_MAX, key);
			goto err;
		}
	}
	ret = field_str(root, "container_id", true, &cid, err, errlen);
	if (!ret)
		ret = field_str(root, "ifname", true, &ifname, err, errlen);
	if (!ret)
		ret = field_str(root, "netns", false, &netns, err, errlen);
	if (!ret)
		ret = field_str(root, "namespace", true, &ns, err, errlen);
	if (!ret)
		ret = field_str(root, "name", false, &name, err, errlen);
	if (!ret)
		ret = field_str(root, "ip", true, &ip, err, errlen);
	if (!ret)
		ret = field_str(root, "mac", false, &mac, err, errlen);
	if (!ret)
		ret = field_str(root, "host_ifname", true, &host, err, errlen);
	if (ret)
		goto err;

	ret = nm_endpoint_container_check(cid, err, errlen);
	if (!ret)
		ret = nm_endpoint_ifname_check("ifname", ifname, err, errlen);
	if (!ret)
		ret = nm_endpoint_ifname_check("host_ifname", host, err,
					       errlen);
	if (ret)
		goto err;
	strcpy(req->container_id, cid);
	strcpy(req->ifname, ifname);
	strcpy(req->host_ifname, host);
	/* Not used by the agent, but a wrong one says the caller is confused. */
	if (netns && *netns && netns[0] != '/') {
		ret = fail(err, errlen, -EINVAL,
			   "bad netns '%.*s': must be an absolute path",
			   ECHO_MAX, netns);
		goto err;
	}
	ret = parse_ns(ns, req->ns, sizeof(req->ns), err, errlen);
	if (ret)
		goto err;
	if (name) {
		if (strlen(name) > NM_EP_NAME_MAX ||
		    !nm_dns_subdomain_ok(name)) {
			ret = fail(
				err, errlen, -EINVAL,
				"bad name '%.*s': must be a DNS subdomain (lower-case letters, digits, '-' and '.', at most %d)",
				ECHO_MAX, name, NM_EP_NAME_MAX);
			goto err;
		}
		strcpy(req->name, name);
	} else {
		derive_name(cid, req->name, sizeof(req->name));
	}
	if (nm_parse_ipv4(ip, &req->ip)) {
		ret = fail(err, errlen, -EINVAL,
			   "bad ip '%.*s': expected an IPv4 address", ECHO_MAX,
			   ip);
		goto err;
	}
	if (!ip_unicast(req->ip)) {
		ret = fail(err, errlen, -EINVAL,
			   "bad ip '%s': not a unicast address for a pod", ip);
		goto err;
	}
	if (mac) {
		if (mac_parse(mac, req->mac)) {
			ret = fail(err, errlen, -EINVAL,
				   "bad mac '%.*s': expected xx:xx:xx:xx:xx:xx",
				   ECHO_MAX, mac);
			goto err;
		}
		req->has_mac = true;
	}
	ret = parse_labels(root, &req->labels, err, errlen);
	if (ret)
		goto err;
	json_object_put(root);
	return 0;

err:
	nm_labels_free(&req->labels);
	json_object_put(root);
	return ret;
}

void nm_endpoint_req_free(struct nm_endpoint_req *req)
{
	nm_labels_free(&req->labels);
}

/* ---- writing an endpoint ------------------------------------------------ */

int nm_endpoint_labels(const struct nm_labels *pod, const char *ns,
		       const char *cluster, struct nm_labels *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	ret = nm_labels_copy(out, pod);
	if (!ret)
		ret = nm_labels_set(out, NM_LABEL_NAMESPACE, ns);
	if (!ret)
		ret = nm_labels_set(out, NM_LABEL_CLUSTER, cluster);
	if (ret)
		nm_labels_free(out);
	return ret;
}

/* Lowest free endpoint id, or the id @addr already has. */
static __u32 pick_endpoint_id(const struct nm_ep_rec *eps, size_t n,
			      __be32 addr)
{
	__u32 eid = 1;
	size_t i;

	for (i = 0; i < n; i++)
		if (eps[i].addr == addr)
			return eps[i].val.endpoint_id;
	/* Sorted by id: walk up past every id in use from 1. */
	for (i = 0; i < n; i++)
		if (eps[i].val.endpoint_id == eid)
			eid++;
	return eid;
}

/*
 * Record the kvstore's @id for @labels in @ids. A different set this node
 * had at that id (a collision met in another order) gives way: the
 * kvstore is what every node agrees on.
 */
static int record_identity(const struct nm_state *st, struct nm_idstore *ids,
			   __u64 id, const struct nm_labels *labels,
			   bool *created, char *err, size_t errlen)
{
	const struct nm_identity_info *old = nm_idstore_find(ids, id);
	struct nm_identity_info info = { .id = id, .labels = *labels };
	char *was;
	int ret;

	if (old && !nm_labels_equal(&old->labels, labels)) {
		was = nm_labels_str(&old->labels);
		pr_warn("identity %llu held labels %s on %s; the kvstore gives it to another set",
			(unsigned long long)id, was ?: "?", st->dir);
		free(was);
	}
	ret = nm_idstore_merge(ids, &info, 1, NULL, 0, created);
	if (ret)
		return fail(err, errlen, ret,
			    "failed to record identity %llu on %s: %s",
			    (unsigned long long)id, st->dir, strerror(-ret));
	if (!*created)
		return 0;
	ret = nm_idstore_save(st, ids);
	if (ret)
		return fail(err, errlen, ret,
			    "failed to save identity %llu on %s: %s",
			    (unsigned long long)id, st->dir, strerror(-ret));
	return 0;
}

/* Load the applied manifests and bring the maps to them. */
static int recompile(struct nm_maps *maps, const struct nm_state *st,
		     struct nm_idstore *ids, const struct nm_ep_rec *pending,
		     struct nm_sync_stats *stats, const char *ip, char *err,
		     size_t errlen)
{
	struct nm_policy_set set;
	struct nm_error perr = {};
	char msg[1024];
	int ret;

	ret = nm_policy_store_load(st, &set, &perr);
	if (ret)
		return fail(err, errlen, ret,
			    "failed to load applied policies on %s: %s",
			    st->dir,
			    perr.reason[0] ?
				    nm_error_str(&perr, msg, sizeof(msg)) :
				    strerror(-ret));
	ret = nm_policy_sync(maps, st, ids, &set, pending, stats, NULL);
	if (ret)
		fail(err, errlen, ret,
		     "failed to recompile policy for endpoint %s on %s: %s", ip,
		     maps->pin_root, strerror(-ret));
	nm_policy_set_free(&set);
	return ret;
}

int nm_endpoint_add(struct nm_maps *maps, const struct nm_state *st,
		    struct nm_idstore *ids, const struct nm_endpoint_spec *spec,
		    __u64 identity, struct nm_endpoint_res *res, char *err,
		    size_t errlen)
{
	struct nm_ipcache_key ik = { .prefixlen = 32, .addr = spec->addr };
	struct nm_ipcache_val iv = { .flags = NM_IPC_F_LOCAL };
	struct nm_ep_rec rec = { .addr = spec->addr }, *eps = NULL;
	struct nm_labels labels = {};
	char ip[INET_ADDRSTRLEN];
	size_t n_eps = 0;
	int ret;

	memset(res, 0, sizeof(*res));
	if (!inet_ntop(AF_INET, &spec->addr, ip, sizeof(ip)))
		return fail(err, errlen, -errno, "failed to format address");
	rec.val.ifindex = if_nametoindex(spec->host_ifname);
	if (!rec.val.ifindex)
		return fail(err, errlen, -ENODEV,
			    "failed to find interface %s for endpoint %s: %s",
			    spec->host_ifname, ip, strerror(errno));
	if (spec->mac)
		memcpy(rec.val.mac, spec->mac, sizeof(rec.val.mac));
	ret = nm_endpoint_labels(spec->labels, spec->ns, st->node.cluster,
				 &labels);
	if (ret)
		return fail(err, errlen, ret,
			    "failed to label endpoint %s: out of memory", ip);

	if (identity) {
		if (nm_identity_cluster(identity) != st->node.cluster_id ||
		    nm_identity_local(identity) < NM_ID_LOCAL_MIN) {
			ret = fail(
				err, errlen, -EINVAL,
				"failed to add endpoint %s: identity %llu is no label identity of cluster %u",
				ip, (unsigned long long)identity,
				st->node.cluster_id);
			goto out;
		}
		ret = record_identity(st, ids, identity, &labels,
				      &res->identity_created, err, errlen);
		if (ret)
			goto out;
		rec.val.identity = identity;
	} else {
		ret = nm_identity_alloc(ids, st->node.cluster_id, &labels,
					&rec.val.identity,
					&res->identity_created);
		if (ret) {
			fail(err, errlen, ret,
			     "failed to allocate identity for endpoint %s on %s: %s",
			     ip, st->dir, strerror(-ret));
			goto out;
		}
		if (res->identity_created) {
			ret = nm_idstore_save(st, ids);
			if (ret) {
				fail(err, errlen, ret,
				     "failed to save identities on %s: %s",
				     st->dir, strerror(-ret));
				goto out;
			}
		}
	}
	ret = nm_endpoints_read(maps, &eps, &n_eps);
	if (ret) {
		fail(err, errlen, ret, "failed to read endpoints on %s: %s",
		     maps->pin_root, strerror(-ret));
		goto out;
	}
	rec.val.endpoint_id = pick_endpoint_id(eps, n_eps, rec.addr);
	/* Without a name a re-add keeps the name it had. */
	if (spec->name) {
		ret = nm_state_set_ep_name(st, ip, spec->ns, spec->name);
		if (ret) {
			fail(err, errlen, ret,
			     "failed to record the name of endpoint %s on %s: %s",
			     ip, st->dir, strerror(-ret));
			goto out;
		}
	}
	/* The new endpoint's policy entries and flags land before it does. */
	ret = recompile(maps, st, ids, &rec, &res->stats, ip, err, errlen);
	if (ret)
		goto out;
	iv.identity = rec.val.identity;
	if (bpf_map_update_elem(maps->ipcache, &ik, &iv, BPF_ANY)) {
		ret = -errno;
		fail(err, errlen, ret, "failed to write map %s on %s: %s",
		     NM_MAP_IPCACHE, maps->pin_root, strerror(-ret));
		goto out;
	}
	res->endpoint_id = rec.val.endpoint_id;
	res->identity = rec.val.identity;
out:
	free(eps);
	nm_labels_free(&labels);
	return ret;
}

int nm_endpoint_delete(struct nm_maps *maps, const struct nm_state *st,
		       struct nm_idstore *ids, __be32 addr,
		       struct nm_endpoint_res *res, char *err, size_t errlen)
{
	struct nm_endpoint_key k = { .addr = addr };
	struct nm_ipcache_key ik = { .prefixlen = 32, .addr = addr };
	struct nm_endpoint_val v;
	struct nm_ipcache_val iv;
	char ip[INET_ADDRSTRLEN];
	int ret;

	memset(res, 0, sizeof(*res));
	if (!inet_ntop(AF_INET, &addr, ip, sizeof(ip)))
		return fail(err, errlen, -errno, "failed to format address");
	if (bpf_map_lookup_elem(maps->endpoints, &k, &v)) {
		ret = -errno;
		return fail(err, errlen, ret,
			    "failed to find endpoint %s on %s: %s", ip,
			    maps->pin_root,
			    ret == -ENOENT ? "no such endpoint" :
					     strerror(-ret));
	}
	res->endpoint_id = v.endpoint_id;
	res->identity = v.identity;
	/* Its ipcache entry first, then the endpoint, then its policy entries. */
	if (!bpf_map_lookup_elem(maps->ipcache, &ik, &iv) &&
	    (iv.flags & NM_IPC_F_LOCAL) &&
	    bpf_map_delete_elem(maps->ipcache, &ik) && errno != ENOENT) {
		ret = -errno;
		return fail(err, errlen, ret,
			    "failed to delete from map %s on %s: %s",
			    NM_MAP_IPCACHE, maps->pin_root, strerror(-ret));
	}
	if (bpf_map_delete_elem(maps->endpoints, &k) && errno != ENOENT) {
		ret = -errno;
		return fail(err, errlen, ret,
			    "failed to delete from map %s on %s: %s",
			    NM_MAP_ENDPOINTS, maps->pin_root, strerror(-ret));
	}
	ret = recompile(maps, st, ids, NULL, &res->stats, ip, err, errlen);
	if (ret)
		return ret;
	ret = nm_state_set_ep_name(st, ip, NULL, NULL);
	if (ret)
		return fail(
			err, errlen, ret,
			"failed to forget the name of endpoint %s on %s: %s",
			ip, st->dir, strerror(-ret));
	return 0;
}

/* ---- cni.json ------------------------------------------------------------ */

struct nm_pod *nm_pods_find(const struct nm_pods *set, const char *container_id,
			    const char *ifname)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (!strcmp(set->v[i].container_id, container_id) &&
		    !strcmp(set->v[i].ifname, ifname))
			return &set->v[i];
	return NULL;
}

struct nm_pod *nm_pods_find_ip(const struct nm_pods *set, __be32 ip)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (set->v[i].ip == ip)
			return &set->v[i];
	return NULL;
}

int nm_pods_put(struct nm_pods *set, const struct nm_pod *e)
{
	struct nm_pod *old = nm_pods_find(set, e->container_id, e->ifname);
	struct nm_pod *v;

	if (old) {
		*old = *e;
		return 0;
	}
	v = realloc(set->v, (set->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	set->v = v;
	set->v[set->n++] = *e;
	return 0;
}

void nm_pods_del(struct nm_pods *set, struct nm_pod *e)
{
	size_t i = (size_t)(e - set->v);

	memmove(&set->v[i], &set->v[i + 1], (set->n - i - 1) * sizeof(*set->v));
	set->n--;
}

void nm_pods_free(struct nm_pods *set)
{
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

static const char *mac_fmt(const __u8 *m, char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
		 m[3], m[4], m[5]);
	return buf;
}

static int jadd(json_object *o, const char *key, json_object *v)
{
	if (!v || json_object_object_add(o, key, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/*
 * One entry as JSON: the API's answer (@mtu given; the contract's fields
 * only) or the stored record (@mtu 0; everything to answer and delete).
 */
static json_object *ep_json(const struct nm_pod *e, unsigned int mtu)
{
	char ip[INET_ADDRSTRLEN], id[24], mac[18];
	json_object *o = json_object_new_object();
	int ret = 0;

	if (!o)
		return NULL;
	if (!inet_ntop(AF_INET, &e->ip, ip, sizeof(ip)))
		strcpy(ip, "0.0.0.0");
	snprintf(id, sizeof(id), "%llu", (unsigned long long)e->identity);
	ret |= jadd(o, "container_id", json_object_new_string(e->container_id));
	ret |= jadd(o, "ifname", json_object_new_string(e->ifname));
	ret |= jadd(o, "ip", json_object_new_string(ip));
	ret |= jadd(o, "endpoint_id", json_object_new_int64(e->endpoint_id));
	/* 64-bit numbers as decimal strings: doubles would round them. */
	ret |= jadd(o, "identity", json_object_new_string(id));
	ret |= jadd(o, "host_ifname", json_object_new_string(e->host_ifname));
	if (mtu) {
		ret |= jadd(o, "mtu", json_object_new_int64(mtu));
		ret |= jadd(o, "state",
			    json_object_new_string(
				    e->terminating ? "terminating" : "active"));
	} else {
		/* Absent when active: files written before drains read alike. */
		if (e->terminating)
			ret |= jadd(o, "state",
				    json_object_new_string("terminating"));
		ret |= jadd(o, "namespace", json_object_new_string(e->ns));
		ret |= jadd(o, "name", json_object_new_string(e->name));
		if (e->has_mac)
			ret |= jadd(o, "mac",
				    json_object_new_string(
					    mac_fmt(e->mac, mac, sizeof(mac))));
	}
	if (ret) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* @o as text with a newline, malloc'd; @o is released. */
static char *doc_text(json_object *o)
{
	const char *s;
	char *text = NULL;

	if (!o)
		return NULL;
	s = json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s && asprintf(&text, "%s\n", s) < 0)
		text = NULL;
	json_object_put(o);
	return text;
}

/* {"endpoints":[...]} of @set, answers (@mtu) or records (0). */
static json_object *set_json(const struct nm_pods *set, unsigned int mtu)
{
	json_object *root = json_object_new_object(), *arr, *o;
	size_t i;

	arr = json_object_new_array();
	if (!root || jadd(root, "endpoints", arr))
		goto err;
	for (i = 0; i < set->n; i++) {
		o = ep_json(&set->v[i], mtu);
		if (!o || json_object_array_add(arr, o)) {
			json_object_put(o);
			goto err;
		}
	}
	return root;

err:
	json_object_put(root);
	return NULL;
}

char *nm_pod_doc(const struct nm_pod *e, unsigned int mtu)
{
	return doc_text(ep_json(e, mtu ?: NM_EP_MTU_DEFAULT));
}

char *nm_pods_doc(const struct nm_pods *set, unsigned int mtu)
{
	return doc_text(set_json(set, mtu ?: NM_EP_MTU_DEFAULT));
}

int nm_pods_save(const struct nm_state *st, const struct nm_pods *set,
		 char *err, size_t errlen)
{
	json_object *root = set_json(set, 0);
	const char *text;
	int ret;

	if (!root)
		return fail(err, errlen, -ENOMEM,
			    "failed to write %s/%s: out of memory", st->dir,
			    CNI_FILE);
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	ret = text ? nm_state_write(st, CNI_FILE, text, strlen(text)) : -ENOMEM;
	if (ret)
		fail(err, errlen, ret, "failed to write %s/%s: %s", st->dir,
		     CNI_FILE, strerror(-ret));
	json_object_put(root);
	return ret;
}

/* One stored record; the same checks as a request. */
static int load_ep(json_object *o, struct nm_pod *e, char *err, size_t errlen)
{
	const char *cid, *ifname, *host, *ns, *name, *ip, *id, *mac, *state;
	json_object *jeid;
	unsigned long long v;
	char *end;
	int ret;

	memset(e, 0, sizeof(*e));
	if (!json_object_is_type(o, json_type_object))
		return fail(err, errlen, -EINVAL, "entry is no object");
	ret = field_str(o, "container_id", true, &cid, err, errlen);
	if (!ret)
		ret = field_str(o, "ifname", true, &ifname, err, errlen);
	if (!ret)
		ret = field_str(o, "host_ifname", true, &host, err, errlen);
	if (!ret)
		ret = field_str(o, "namespace", true, &ns, err, errlen);
	if (!ret)
		ret = field_str(o, "name", true, &name, err, errlen);
	if (!ret)
		ret = field_str(o, "ip", true, &ip, err, errlen);
	if (!ret)
		ret = field_str(o, "identity", true, &id, err, errlen);
	if (!ret)
		ret = field_str(o, "mac", false, &mac, err, errlen);
	if (!ret)
		ret = field_str(o, "state", false, &state, err, errlen);
	if (!ret && state && strcmp(state, "terminating"))
		ret = fail(err, errlen, -EINVAL,
			   "field 'state' must be terminating when present");
	if (!ret)
		ret = nm_endpoint_container_check(cid, err, errlen);
	if (!ret)
		ret = nm_endpoint_ifname_check("ifname", ifname, err, errlen);
	if (!ret)
		ret = nm_endpoint_ifname_check("host_ifname", host, err,
					       errlen);
	if (!ret)
		ret = parse_ns(ns, e->ns, sizeof(e->ns), err, errlen);
	if (ret)
		return ret;
	if (strlen(name) > NM_EP_NAME_MAX || nm_parse_ipv4(ip, &e->ip) ||
	    (mac && mac_parse(mac, e->mac)))
		return fail(err, errlen, -EINVAL, "bad name, ip or mac");
	errno = 0;
	v = strtoull(id, &end, 10);
	if (errno || *end || !*id ||
	    !json_object_object_get_ex(o, "endpoint_id", &jeid) ||
	    !json_object_is_type(jeid, json_type_int) ||
	    json_object_get_int64(jeid) < 1 ||
	    json_object_get_int64(jeid) > 0xffffffffLL)
		return fail(err, errlen, -EINVAL,
			    "bad identity or endpoint_id");
	strcpy(e->container_id, cid);
	strcpy(e->ifname, ifname);
	strcpy(e->host_ifname, host);
	strcpy(e->name, name);
	e->has_mac = mac != NULL;
	e->terminating = state != NULL;
	e->identity = v;
	e->endpoint_id = (__u32)json_object_get_int64(jeid);
	return 0;
}

int nm_pods_load(const struct nm_state *st, struct nm_pods *set, char *err,
		 size_t errlen)
{
	json_object *root = NULL, *arr;
	struct nm_pod e;
	char why[512];
	char *buf = NULL;
	size_t len, i, n;
	int ret;

	memset(set, 0, sizeof(*set));
	ret = nm_state_read(st, CNI_FILE, &buf, &len);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return fail(err, errlen, ret, "failed to read %s/%s: %s",
			    st->dir, CNI_FILE, strerror(-ret));
	root = json_tokener_parse(buf);
	if (!root || !json_object_object_get_ex(root, "endpoints", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		ret = fail(
			err, errlen, -EINVAL,
			"failed to parse %s/%s: expected {\"endpoints\": [...]}",
			st->dir, CNI_FILE);
		goto err;
	}
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		ret = load_ep(json_object_array_get_idx(arr, i), &e, why,
			      sizeof(why));
		if (!ret)
			ret = nm_pods_put(set, &e);
		if (ret) {
			fail(err, errlen, ret,
			     "failed to parse %s/%s: entry %zu: %s", st->dir,
			     CNI_FILE, i,
			     ret == -ENOMEM ? "out of memory" : why);
			goto err;
		}
	}
	json_object_put(root);
	free(buf);
	return 0;

err:
	nm_pods_free(set);
	json_object_put(root);
	free(buf);
	return ret;
}

int nm_pods_drain(const struct nm_state *st, const char *container_id,
		  const char *ifname, struct nm_pod *out, char *err,
		  size_t errlen)
{
	struct nm_pods set;
	struct nm_pod *e;
	int ret;

	ret = nm_pods_load(st, &set, err, errlen);
	if (ret)
		return ret;
	e = nm_pods_find(&set, container_id, ifname);
	if (!e) {
		ret = fail(err, errlen, -ENOENT,
			   "no endpoint for container %s interface %s",
			   container_id, ifname);
		goto out;
	}
	if (!e->terminating) {
		e->terminating = true;
		ret = nm_pods_save(st, &set, err, errlen);
		if (ret)
			goto out;
	}
	*out = *e;
out:
	nm_pods_free(&set);
	return ret;
}
