// SPDX-License-Identifier: GPL-2.0
/*
 * MeshService manifests: libyaml's document API walked strictly with
 * agent/ywalk.h, as policies are; and the record a cluster exports for one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <yaml.h>

#include "agent/meshsvc.h"
#include "agent/ywalk.h"
#include "maps/backend.h"

#define PATH_LEN NM_YW_PATH_LEN

struct mctx {
	struct nm_yw yw;
};

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static yaml_node_t *node(struct mctx *c, int id)
{
	return yaml_document_get_node(c->yw.doc, id);
}

/* YAML 1.2 booleans only: yes/no/on/off are strings, refused as such. */
static int get_bool(struct mctx *c, const yaml_node_t *n, const char *path,
		    bool *out)
{
	static const char *const t[] = { "true", "True", "TRUE" };
	static const char *const f[] = { "false", "False", "FALSE" };
	size_t i;
	int ret;

	ret = nm_yw_expect(&c->yw, n, NM_Y_BOOL, path);
	if (ret)
		return ret;
	for (i = 0; i < 3; i++) {
		if (!strcmp(scalar(n), t[i]) || !strcmp(scalar(n), f[i])) {
			*out = !strcmp(scalar(n), t[i]);
			return 0;
		}
	}
	/* "!!bool yes": tagged, but no YAML 1.2 boolean. */
	return nm_yw_fail(&c->yw, n, "%s must be true or false, got '%.32s'",
			  path, scalar(n));
}

/* A mapping of string to string whose content we do not use. */
static int check_string_map(struct mctx *c, const yaml_node_t *n,
			    const char *path)
{
	yaml_node_pair_t *p;
	const char *s;
	int ret;

	ret = nm_yw_expect(&c->yw, n, NM_Y_MAP, path);
	if (ret)
		return ret;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		ret = nm_yw_str(&c->yw, node(c, p->key), path, &s);
		if (!ret)
			ret = nm_yw_str(&c->yw, node(c, p->value), path, &s);
		if (ret)
			return ret;
	}
	return 0;
}

/* A DNS label copied into @out (at least NM_KV_NS_MAX + 1 bytes). */
static int get_label_name(struct mctx *c, const yaml_node_t *n,
			  const char *path, char *out)
{
	const char *s;
	int ret;

	ret = nm_yw_str(&c->yw, n, path, &s);
	if (ret)
		return ret;
	if (!nm_dns_label_ok(s))
		return nm_yw_fail(
			&c->yw, n,
			"invalid %s '%.64s': must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
			path, s);
	snprintf(out, NM_KV_NS_MAX + 1, "%s", s);
	return 0;
}

static int parse_metadata(struct mctx *c, const yaml_node_t *n,
			  struct nm_meshsvc *svc)
{
	enum { F_NAME, F_NS, F_LABELS, F_ANNOT, F_N };
	static const char *const fields[F_N] = {
		[F_NAME] = "name",
		[F_NS] = "namespace",
		[F_LABELS] = "labels",
		[F_ANNOT] = "annotations",
	};
	yaml_node_t *vals[F_N];
	int ret;

	ret = nm_yw_fields(&c->yw, n, "metadata", fields, F_N, vals);
	if (ret)
		return ret;
	ret = nm_yw_need(&c->yw, n, vals[F_NAME], "name", "metadata");
	if (ret)
		return ret;
	/* Service names in kvstore keys are labels, not subdomains. */
	ret = get_label_name(c, vals[F_NAME], "metadata.name", svc->name);
	if (ret)
		return ret;
	if (vals[F_NS])
		ret = get_label_name(c, vals[F_NS], "metadata.namespace",
				     svc->ns);
	else
		snprintf(svc->ns, sizeof(svc->ns), "default");
	if (ret)
		return ret;
	/* Kubernetes bookkeeping: checked for shape, otherwise ignored. */
	if (vals[F_LABELS]) {
		ret = check_string_map(c, vals[F_LABELS], "metadata.labels");
		if (ret)
			return ret;
	}
	if (vals[F_ANNOT])
		return check_string_map(c, vals[F_ANNOT],
					"metadata.annotations");
	return 0;
}

static int parse_vip(struct mctx *c, const yaml_node_t *n, __be32 *vip)
{
	const char *s;
	__u32 h;
	int ret;

	ret = nm_yw_str(&c->yw, n, "spec.vip", &s);
	if (ret)
		return ret;
	if (nm_parse_ipv4(s, vip))
		return nm_yw_fail(
			&c->yw, n,
			"spec.vip '%.64s' is not an IPv4 address (a.b.c.d)", s);
	h = ntohl(*vip);
	/* 0/8 is "this network", 127/8 loopback, 224/3 multicast and up. */
	if ((h >> 24) == 0 || (h >> 24) == 127 || (h >> 24) >= 224)
		return nm_yw_fail(
			&c->yw, n,
			"spec.vip %.64s is not a unicast address a pod can send to",
			s);
	return 0;
}

static int parse_proto(struct mctx *c, const yaml_node_t *n, const char *path,
		       __u8 *proto)
{
	const char *s;
	int ret;

	ret = nm_yw_str(&c->yw, n, path, &s);
	if (ret)
		return ret;
	if (!strcmp(s, "TCP"))
		*proto = IPPROTO_TCP;
	else if (!strcmp(s, "UDP"))
		*proto = IPPROTO_UDP;
	else
		return nm_yw_fail(
			&c->yw, n,
			"unknown protocol '%.64s' in %s (expected TCP or UDP)",
			s, path);
	return 0;
}

static int parse_port(struct mctx *c, const yaml_node_t *n, const char *path,
		      struct nm_meshsvc_port *p)
{
	enum { F_PORT, F_TARGET, F_PROTO, F_N };
	static const char *const fields[F_N] = {
		[F_PORT] = "port",
		[F_TARGET] = "targetPort",
		[F_PROTO] = "protocol",
	};
	yaml_node_t *vals[F_N];
	char sub[PATH_LEN];
	__u64 v;
	int ret;

	p->line = nm_yw_line(n);
	ret = nm_yw_fields(&c->yw, n, path, fields, F_N, vals);
	if (ret)
		return ret;
	ret = nm_yw_need(&c->yw, n, vals[F_PORT], "port", path);
	if (ret)
		return ret;
	nm_yw_pathf(sub, "%s.port", path);
	ret = nm_yw_uint(&c->yw, vals[F_PORT], sub, 1, 65535, &v);
	if (ret)
		return ret;
	p->port = (__u16)v;
	p->target_port = p->port;
	if (vals[F_TARGET]) {
		nm_yw_pathf(sub, "%s.targetPort", path);
		/* Named target ports need the pod spec, which we do not see. */
		if (nm_yw_type(vals[F_TARGET]) == NM_Y_STR)
			return nm_yw_fail(
				&c->yw, vals[F_TARGET],
				"%s must be a port number 1..65535, got '%.64s' (named ports are not supported)",
				sub, scalar(vals[F_TARGET]));
		ret = nm_yw_uint(&c->yw, vals[F_TARGET], sub, 1, 65535, &v);
		if (ret)
			return ret;
		p->target_port = (__u16)v;
	}
	p->proto = IPPROTO_TCP;
	if (vals[F_PROTO]) {
		nm_yw_pathf(sub, "%s.protocol", path);
		ret = parse_proto(c, vals[F_PROTO], sub, &p->proto);
	}
	return ret;
}

static int parse_ports(struct mctx *c, const yaml_node_t *n,
		       struct nm_meshsvc *svc)
{
	char sub[PATH_LEN];
	size_t i, j, len;
	int ret;

	ret = nm_yw_expect(&c->yw, n, NM_Y_SEQ, "spec.ports");
	if (ret)
		return ret;
	len = nm_yw_seq_len(n);
	if (!len)
		return nm_yw_fail(&c->yw, n,
				  "spec.ports must list at least one port");
	for (i = 0; i < len; i++) {
		struct nm_meshsvc_port p;

		nm_yw_pathf(sub, "spec.ports[%zu]", i);
		ret = parse_port(c, nm_yw_seq_item(&c->yw, n, i), sub, &p);
		if (ret)
			return ret;
		for (j = 0; j < svc->n_ports; j++) {
			if (svc->ports[j].proto != p.proto)
				continue;
			return nm_yw_fail(
				&c->yw, nm_yw_seq_item(&c->yw, n, i),
				"%s: a second %s port (port %u at line %u): one port per protocol, since the mesh merges services per frontend and protocol",
				sub, p.proto == IPPROTO_TCP ? "TCP" : "UDP",
				svc->ports[j].port, svc->ports[j].line);
		}
		/* Two protocols, so a third port always repeats one. */
		svc->ports[svc->n_ports++] = p;
	}
	return 0;
}

static int parse_selector(struct mctx *c, const yaml_node_t *n,
			  struct nm_meshsvc *svc)
{
	char why[NM_YW_PATH_LEN + 400];
	yaml_node_pair_t *p;
	const char *k, *v;
	size_t len;
	int ret;

	ret = nm_yw_expect(&c->yw, n, NM_Y_MAP, "spec.selector");
	if (ret)
		return ret;
	len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	/* Selecting every pod of the namespace is a likely mistake. */
	if (!len)
		return nm_yw_fail(&c->yw, n,
				  "spec.selector must have at least one label");
	if (len > NM_MESHSVC_SELECTOR_MAX)
		return nm_yw_fail(&c->yw, n,
				  "spec.selector has %zu labels, at most %u",
				  len, NM_MESHSVC_SELECTOR_MAX);
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = node(c, p->key), *vn = node(c, p->value);

		ret = nm_yw_str(&c->yw, kn, "spec.selector", &k);
		if (ret)
			return ret;
		if (nm_label_key_check(k, why, sizeof(why)))
			return nm_yw_fail(&c->yw, kn, "%s in spec.selector",
					  why);
		if (!strcmp(k, NM_LABEL_NAMESPACE) ||
		    !strcmp(k, NM_LABEL_CLUSTER))
			return nm_yw_fail(
				&c->yw, kn,
				"label '%s' in spec.selector is set by the agent: a MeshService selects pods of its own namespace in its own cluster",
				k);
		if (nm_labels_get(&svc->selector, k))
			return nm_yw_fail(
				&c->yw, kn,
				"duplicate field '%s' in spec.selector", k);
		ret = nm_yw_str(&c->yw, vn, "spec.selector", &v);
		if (ret)
			return ret;
		if (nm_label_value_check(v, why, sizeof(why)))
			return nm_yw_fail(&c->yw, vn, "%s in spec.selector",
					  why);
		if (nm_labels_set(&svc->selector, k, v))
			return nm_yw_oom(&c->yw, vn);
	}
	return 0;
}

static int parse_affinity(struct mctx *c, const yaml_node_t *n,
			  enum nm_kv_affinity *out)
{
	static const enum nm_kv_affinity all[] = { NM_KV_AFF_NONE,
						   NM_KV_AFF_LOCAL,
						   NM_KV_AFF_REMOTE };
	const char *s;
	size_t i;
	int ret;

	ret = nm_yw_str(&c->yw, n, "spec.affinity", &s);
	if (ret)
		return ret;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(s, nm_kv_affinity_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return nm_yw_fail(
		&c->yw, n,
		"unknown spec.affinity '%.64s' (expected local, remote or none)",
		s);
}

static int parse_spec(struct mctx *c, const yaml_node_t *n,
		      struct nm_meshsvc *svc)
{
	enum {
		F_VIP,
		F_PORTS,
		F_SEL,
		F_GLOBAL,
		F_SHARED,
		F_AFF,
		F_WEIGHT,
		F_PRIO,
		F_N
	};
	static const char *const fields[F_N] = {
		[F_VIP] = "vip",       [F_PORTS] = "ports",
		[F_SEL] = "selector",  [F_GLOBAL] = "global",
		[F_SHARED] = "shared", [F_AFF] = "affinity",
		[F_WEIGHT] = "weight", [F_PRIO] = "priority",
	};
	yaml_node_t *vals[F_N];
	__u64 v;
	int ret;

	ret = nm_yw_fields(&c->yw, n, "spec", fields, F_N, vals);
	if (ret)
		return ret;
	ret = nm_yw_need(&c->yw, n, vals[F_VIP], "vip", "spec");
	if (!ret)
		ret = nm_yw_need(&c->yw, n, vals[F_PORTS], "ports", "spec");
	if (!ret)
		ret = nm_yw_need(&c->yw, n, vals[F_SEL], "selector", "spec");
	if (!ret)
		ret = parse_vip(c, vals[F_VIP], &svc->vip);
	if (!ret)
		ret = parse_ports(c, vals[F_PORTS], svc);
	if (!ret)
		ret = parse_selector(c, vals[F_SEL], svc);
	if (ret)
		return ret;
	svc->global = false;
	svc->shared = true;
	svc->affinity = NM_KV_AFF_NONE;
	svc->weight = 1;
	svc->priority = 0;
	if (vals[F_GLOBAL])
		ret = get_bool(c, vals[F_GLOBAL], "spec.global", &svc->global);
	if (!ret && vals[F_SHARED])
		ret = get_bool(c, vals[F_SHARED], "spec.shared", &svc->shared);
	if (!ret && vals[F_AFF])
		ret = parse_affinity(c, vals[F_AFF], &svc->affinity);
	if (ret)
		return ret;
	if (vals[F_WEIGHT]) {
		ret = nm_yw_uint(&c->yw, vals[F_WEIGHT], "spec.weight", 1,
				 65535, &v);
		if (ret)
			return ret;
		svc->weight = (__u16)v;
	}
	if (vals[F_PRIO]) {
		ret = nm_yw_uint(&c->yw, vals[F_PRIO], "spec.priority", 0, 255,
				 &v);
		if (ret)
			return ret;
		svc->priority = (__u8)v;
	}
	return 0;
}

static int parse_doc(struct mctx *c, const yaml_node_t *root,
		     struct nm_meshsvc *svc)
{
	enum { F_API, F_KIND, F_META, F_SPEC, F_N };
	static const char *const fields[F_N] = {
		[F_API] = "apiVersion",
		[F_KIND] = "kind",
		[F_META] = "metadata",
		[F_SPEC] = "spec",
	};
	yaml_node_t *vals[F_N];
	const char *s;
	int ret, i;

	svc->line = nm_yw_line(root);
	if (root->type != YAML_MAPPING_NODE)
		return nm_yw_fail(
			&c->yw, root,
			"document must be a mapping (a MeshService), got %s",
			nm_yw_type_name(&c->yw, nm_yw_type(root)));
	ret = nm_yw_fields(&c->yw, root, "", fields, F_N, vals);
	if (ret)
		return ret;
	for (i = 0; i < F_N; i++) {
		ret = nm_yw_need(&c->yw, root, vals[i], fields[i], "");
		if (ret)
			return ret;
	}
	ret = nm_yw_str(&c->yw, vals[F_API], "apiVersion", &s);
	if (ret)
		return ret;
	if (strcmp(s, NM_MESHSVC_API_VERSION))
		return nm_yw_fail(
			&c->yw, vals[F_API],
			"unsupported apiVersion '%.64s' (expected %s)", s,
			NM_MESHSVC_API_VERSION);
	ret = nm_yw_str(&c->yw, vals[F_KIND], "kind", &s);
	if (ret)
		return ret;
	if (strcmp(s, NM_MESHSVC_KIND))
		return nm_yw_fail(&c->yw, vals[F_KIND],
				  "unsupported kind '%.64s' (expected %s)", s,
				  NM_MESHSVC_KIND);
	ret = parse_metadata(c, vals[F_META], svc);
	if (ret)
		return ret;
	return parse_spec(c, vals[F_SPEC], svc);
}

void nm_meshsvc_free(struct nm_meshsvc *svc)
{
	nm_labels_free(&svc->selector);
}

void nm_meshsvc_set_free(struct nm_meshsvc_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		nm_meshsvc_free(&set->v[i]);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

static int add_doc(struct nm_yw *w, const yaml_node_t *root, void *arg)
{
	struct mctx *c = (struct mctx *)((char *)w - offsetof(struct mctx, yw));
	const yaml_document_t *doc = w->doc;
	struct nm_meshsvc_set *set = arg;
	struct nm_meshsvc svc, *v;
	size_t i;
	int ret;

	memset(&svc, 0, sizeof(svc));
	ret = parse_doc(c, root, &svc);
	if (ret)
		goto err;
	for (i = 0; i < set->n; i++) {
		if (strcmp(set->v[i].ns, svc.ns) ||
		    strcmp(set->v[i].name, svc.name))
			continue;
		ret = nm_yw_fail(
			&c->yw, root,
			"duplicate MeshService %s/%s (first defined at line %u)",
			svc.ns, svc.name, set->v[i].line);
		goto err;
	}
	svc.doc_off = doc->start_mark.index;
	svc.doc_len = doc->end_mark.index - doc->start_mark.index;
	v = realloc(set->v, (set->n + 1) * sizeof(*v));
	if (!v) {
		ret = nm_yw_oom(&c->yw, root);
		goto err;
	}
	set->v = v;
	set->v[set->n++] = svc;
	return 0;
err:
	nm_meshsvc_free(&svc);
	return ret;
}

int nm_meshsvc_parse(const char *buf, size_t len, const char *file,
		     struct nm_meshsvc_set *out, struct nm_error *err)
{
	struct nm_meshsvc_set set = { 0 };
	struct nm_error scratch;
	struct mctx c = { 0 };
	int ret;

	if (!err)
		err = &scratch;
	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", file ? file : "<input>");
	c.yw.err = err;
	c.yw.what = "the MeshService";
	c.yw.bare_types = true;
	c.yw.syntax_context = true;
	ret = nm_yw_load_each(&c.yw, buf, len, add_doc, &set);
	if (ret)
		goto out;
	*out = set;
	memset(&set, 0, sizeof(set));
out:
	nm_meshsvc_set_free(&set);
	return ret;
}

int nm_meshsvc_parse_stored(const char *prefix, const char *key,
			    const char *val, size_t len, struct nm_meshsvc *out,
			    struct nm_error *err)
{
	char ns[NM_KV_NS_MAX + 1], name[NM_KV_NS_MAX + 1];
	struct nm_meshsvc_set set;
	struct nm_error scratch;
	int ret;

	if (!err)
		err = &scratch;
	if (nm_meshsvc_key_parse(prefix, key, ns, sizeof(ns), name,
				 sizeof(name))) {
		memset(err, 0, sizeof(*err));
		snprintf(err->file, sizeof(err->file), "%s", key);
		snprintf(err->reason, sizeof(err->reason),
			 "not a manifest key: expected %s<namespace>/<name>",
			 NM_MESHSVC_KEY_DIR);
		return -EINVAL;
	}
	if (memchr(val, '\0', len)) {
		memset(err, 0, sizeof(*err));
		snprintf(err->file, sizeof(err->file), "%s", key);
		snprintf(err->reason, sizeof(err->reason),
			 "the value holds a NUL byte: not a YAML manifest");
		return -EINVAL;
	}
	ret = nm_meshsvc_parse(val, len, key, &set, err);
	if (ret)
		return ret;
	ret = -EINVAL;
	if (set.n != 1) {
		snprintf(err->reason, sizeof(err->reason),
			 "holds %zu MeshServices: expected exactly one", set.n);
		goto out;
	}
	if (strcmp(set.v[0].ns, ns) || strcmp(set.v[0].name, name)) {
		err->line = set.v[0].line;
		snprintf(err->reason, sizeof(err->reason),
			 "MeshService %s/%s stored under the key of %s/%s",
			 set.v[0].ns, set.v[0].name, ns, name);
		goto out;
	}
	*out = set.v[0];
	set.n = 0; /* moved */
	ret = 0;
out:
	nm_meshsvc_set_free(&set);
	return ret;
}

void nm_meshsvc_frontend(const struct nm_meshsvc *svc, size_t i,
			 struct nm_frontend *fe)
{
	memset(fe, 0, sizeof(*fe));
	fe->vip = svc->vip;
	fe->port = htons(svc->ports[i].port);
	fe->proto = svc->ports[i].proto;
}

bool nm_meshsvc_clash(const struct nm_meshsvc *a, const struct nm_meshsvc *b,
		      struct nm_frontend *fe)
{
	size_t i, j;

	if (a->vip != b->vip)
		return false;
	for (i = 0; i < a->n_ports; i++) {
		for (j = 0; j < b->n_ports; j++) {
			if (a->ports[i].port == b->ports[j].port &&
			    a->ports[i].proto == b->ports[j].proto) {
				nm_meshsvc_frontend(a, i, fe);
				return true;
			}
		}
	}
	return false;
}

int nm_meshsvc_dir(const char *prefix, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", prefix ?: NM_KV_PREFIX_DEFAULT,
			 NM_MESHSVC_KEY_DIR);

	return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int nm_meshsvc_key(const char *prefix, const char *ns, const char *name,
		   char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s%s/%s", prefix ?: NM_KV_PREFIX_DEFAULT,
			 NM_MESHSVC_KEY_DIR, ns, name);

	return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int nm_meshsvc_key_parse(const char *prefix, const char *key, char *ns,
			 size_t ns_len, char *name, size_t name_len)
{
	char dir[NM_KV_PREFIX_MAX + sizeof(NM_MESHSVC_KEY_DIR)];
	const char *rest, *slash;

	if (nm_meshsvc_dir(prefix, dir, sizeof(dir)) ||
	    strncmp(key, dir, strlen(dir)))
		return -EINVAL;
	rest = key + strlen(dir);
	slash = strchr(rest, '/');
	if (!slash || strchr(slash + 1, '/') ||
	    (size_t)(slash - rest) >= ns_len || strlen(slash + 1) >= name_len)
		return -EINVAL;
	snprintf(ns, ns_len, "%.*s", (int)(slash - rest), rest);
	snprintf(name, name_len, "%s", slash + 1);
	return nm_dns_label_ok(ns) && nm_dns_label_ok(name) ? 0 : -EINVAL;
}

/* ---- export ------------------------------------------------------------- */

static bool selects(const struct nm_meshsvc *svc,
		    const struct nm_kv_endpoint *ep)
{
	const char *v;
	size_t i;

	if (strcmp(ep->namespace, svc->ns))
		return false;
	for (i = 0; i < svc->selector.n; i++) {
		v = nm_labels_get(&ep->labels, svc->selector.v[i].key);
		if (!v || strcmp(v, svc->selector.v[i].value))
			return false;
	}
	return true;
}

/* (address, port, protocol), then active first, then node: total order. */
int nm_meshsvc_backend_cmp(const void *pa, const void *pb)
{
	const struct nm_kv_backend *a = pa, *b = pb;
	__u32 x = ntohl(a->ip), y = ntohl(b->ip);

	if (x != y)
		return x < y ? -1 : 1;
	if (a->port != b->port)
		return ntohs(a->port) < ntohs(b->port) ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	if (a->state != b->state)
		return a->state < b->state ? -1 : 1;
	/* A decoded record may carry no node. */
	return strcmp(a->node ?: "", b->node ?: "");
}

static bool be_same(const struct nm_kv_backend *a,
		    const struct nm_kv_backend *b)
{
	return a->ip == b->ip && a->port == b->port && a->proto == b->proto;
}

int nm_meshsvc_export(const struct nm_meshsvc *svc, const char *cluster,
		      const struct nm_kv_endpoint *eps, size_t n_eps,
		      struct nm_kv_record *out, size_t *dropped)
{
	struct nm_kv_service *s = &out->svc;
	struct nm_kv_backend *be;
	size_t i, j, n = 0, kept;

	memset(out, 0, sizeof(*out));
	*dropped = 0;
	out->key.type = NM_KV_T_SERVICE;
	out->key.kind = NM_KV_SERVICES;
	snprintf(out->key.cluster, sizeof(out->key.cluster), "%s", cluster);
	snprintf(out->key.ns, sizeof(out->key.ns), "%s", svc->ns);
	snprintf(out->key.name, sizeof(out->key.name), "%s", svc->name);
	s->global = svc->global;
	s->shared = svc->shared;
	s->affinity = svc->affinity;
	s->weight = svc->weight;
	s->priority = svc->priority;
	s->namespace = strdup(svc->ns);
	s->name = strdup(svc->name);
	s->frontends = calloc(svc->n_ports, sizeof(*s->frontends));
	if (!s->namespace || !s->name || !s->frontends)
		goto err;
	for (i = 0; i < svc->n_ports; i++)
		nm_meshsvc_frontend(svc, i, &s->frontends[i]);
	s->n_frontends = svc->n_ports;

	for (i = 0; i < n_eps; i++)
		n += selects(svc, &eps[i]) ? svc->n_ports : 0;
	if (!n)
		return 0;
	s->backends = calloc(n, sizeof(*s->backends));
	if (!s->backends)
		goto err;
	for (i = 0; i < n_eps; i++) {
		if (!selects(svc, &eps[i]))
			continue;
		for (j = 0; j < svc->n_ports; j++) {
			be = &s->backends[s->n_backends];
			be->node = strdup(eps[i].node);
			if (!be->node)
				goto err;
			s->n_backends++;
			be->ip = eps[i].ip;
			be->port = htons(svc->ports[j].target_port);
			be->proto = svc->ports[j].proto;
			be->state = eps[i].state == NM_BE_TERMINATING ?
					    NM_BE_TERMINATING :
					    NM_BE_ACTIVE;
			be->weight = 1;
		}
	}
	qsort(s->backends, s->n_backends, sizeof(*s->backends),
	      nm_meshsvc_backend_cmp);
	/* Two records for one address (a reused IP): keep the first. */
	for (i = 0, kept = 0; i < s->n_backends; i++) {
		if (kept && be_same(&s->backends[kept - 1], &s->backends[i])) {
			free(s->backends[i].node);
			continue;
		}
		s->backends[kept++] = s->backends[i];
	}
	for (i = NM_KV_BACKENDS_MAX; i < kept; i++)
		free(s->backends[i].node);
	if (kept > NM_KV_BACKENDS_MAX) {
		*dropped = kept - NM_KV_BACKENDS_MAX;
		kept = NM_KV_BACKENDS_MAX;
	}
	s->n_backends = kept;
	return 0;
err:
	nm_kv_record_free(out);
	memset(out, 0, sizeof(*out));
	return -ENOMEM;
}
