// SPDX-License-Identifier: GPL-2.0
/*
 * MeshNetworkPolicy manifests: libyaml's document API, then a strict walk
 * of the schema. Every refusal names the line and the field; nothing is
 * returned unless every document of the input is good.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <yaml.h>

#include "agent/labels.h"
#include "agent/parse.h"
#include "agent/policy.h"
#include "agent/ywalk.h"

/* A policy file is a handful of documents; refuse anything absurd. */
#define NM_POLICY_FILE_MAX (16U << 20)
#define NM_PATH_LEN NM_YW_PATH_LEN

struct pctx {
	struct nm_yw yw;
	const char *file;
};

static const char *const spec_kinds[NM_RULE_KINDS] = {
	[NM_RULE_INGRESS] = "ingress",
	[NM_RULE_EGRESS] = "egress",
	[NM_RULE_INGRESS_DENY] = "ingressDeny",
	[NM_RULE_EGRESS_DENY] = "egressDeny",
};

const char *nm_error_str(const struct nm_error *err, char *buf, size_t len)
{
	if (err->line)
		snprintf(buf, len, "%s:%u: %s", err->file, err->line,
			 err->reason);
	else
		snprintf(buf, len, "%s: %s", err->file, err->reason);
	return buf;
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool all_digits(const char *s, const char *set)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!strchr(set, *s))
			return false;
	}
	return true;
}

static size_t map_len(const yaml_node_t *n)
{
	return (size_t)(n->data.mapping.pairs.top -
			n->data.mapping.pairs.start);
}

/* A sequence with at least one item; an empty one is a likely mistake. */
static int expect_list(struct pctx *c, const yaml_node_t *n, const char *path)
{
	int ret = nm_yw_expect(&c->yw, n, NM_Y_SEQ, path);

	if (ret)
		return ret;
	if (!nm_yw_seq_len(n))
		return nm_yw_fail(&c->yw, n,
			    "%s must not be empty (omit the field instead)",
			    path);
	return 0;
}

/* calloc that allows n == 0 (NULL, no error). */
static int alloc_array(struct pctx *c, const yaml_node_t *n, void **p,
		       size_t count, size_t size)
{
	*p = NULL;
	if (!count)
		return 0;
	*p = calloc(count, size);
	return *p ? 0 : nm_yw_oom(&c->yw, n);
}

static void join_idx(char *buf, const char *path, const char *field, size_t i)
{
	nm_yw_pathf(buf, "%s.%s[%zu]", path, field, i);
}

/* A mapping of string to string whose content we do not use. */
static int check_string_map(struct pctx *c, const yaml_node_t *n,
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
		ret = nm_yw_str(&c->yw, yaml_document_get_node(c->yw.doc, p->key), path,
			      &s);
		if (ret)
			return ret;
		ret = nm_yw_str(&c->yw, yaml_document_get_node(c->yw.doc, p->value), path,
			      &s);
		if (ret)
			return ret;
	}
	return 0;
}

static int label_key(struct pctx *c, const yaml_node_t *n, const char *path,
		     char **out)
{
	char why[NM_PATH_LEN + 400];
	const char *s;
	int ret;

	ret = nm_yw_str(&c->yw, n, path, &s);
	if (ret)
		return ret;
	if (nm_label_key_check(s, why, sizeof(why)))
		return nm_yw_fail(&c->yw, n, "%s in %s", why, path);
	*out = strdup(s);
	return *out ? 0 : nm_yw_oom(&c->yw, n);
}

static int label_value(struct pctx *c, const yaml_node_t *n, const char *path,
		       char **out)
{
	char why[NM_PATH_LEN + 200];
	const char *s;
	int ret;

	ret = nm_yw_str(&c->yw, n, path, &s);
	if (ret)
		return ret;
	if (nm_label_value_check(s, why, sizeof(why)))
		return nm_yw_fail(&c->yw, n, "%s in %s", why, path);
	*out = strdup(s);
	return *out ? 0 : nm_yw_oom(&c->yw, n);
}

static int parse_op(struct pctx *c, const yaml_node_t *n, const char *path,
		    enum nm_sel_op *op)
{
	static const char *const ops[] = {
		[NM_SEL_IN] = "In",
		[NM_SEL_NOT_IN] = "NotIn",
		[NM_SEL_EXISTS] = "Exists",
		[NM_SEL_DOES_NOT_EXIST] = "DoesNotExist",
	};
	const char *s;
	size_t i;
	int ret;

	ret = nm_yw_str(&c->yw, n, path, &s);
	if (ret)
		return ret;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!strcmp(s, ops[i])) {
			*op = (enum nm_sel_op)i;
			return 0;
		}
	}
	return nm_yw_fail(
		&c->yw, n,
		"unknown operator '%.64s' in %s (expected In, NotIn, Exists or DoesNotExist)",
		s, path);
}

static int parse_expr(struct pctx *c, const yaml_node_t *n, const char *path,
		      struct nm_sel_expr *e)
{
	static const char *const fields[] = { "key", "operator", "values" };
	yaml_node_t *keys[3], *vals[3];
	char sub[NM_PATH_LEN];
	bool want_values;
	size_t i, nv = 0;
	int ret;

	ret = nm_yw_fields_keys(&c->yw, n, path, fields, 3, keys, vals);
	if (ret)
		return ret;
	for (i = 0; i < 2; i++) {
		ret = nm_yw_need(&c->yw, n, vals[i], fields[i], path);
		if (ret)
			return ret;
	}
	nm_yw_join(sub, path, "key");
	ret = label_key(c, vals[0], sub, &e->key);
	if (ret)
		return ret;
	nm_yw_join(sub, path, "operator");
	ret = parse_op(c, vals[1], sub, &e->op);
	if (ret)
		return ret;
	nm_yw_join(sub, path, "values");
	if (vals[2]) {
		ret = nm_yw_expect(&c->yw, vals[2], NM_Y_SEQ, sub);
		if (ret)
			return ret;
		nv = nm_yw_seq_len(vals[2]);
	}
	want_values = e->op == NM_SEL_IN || e->op == NM_SEL_NOT_IN;
	if (want_values && !nv)
		return nm_yw_fail(&c->yw, vals[2] ? vals[2] : n,
			    "operator %s needs at least one value in %s",
			    scalar(vals[1]), path);
	if (!want_values && nv)
		return nm_yw_fail(&c->yw, vals[2], "operator %s takes no values in %s",
			    scalar(vals[1]), path);
	ret = alloc_array(c, n, (void **)&e->values, nv, sizeof(*e->values));
	if (ret)
		return ret;
	e->n_values = nv;
	for (i = 0; i < nv; i++) {
		char item[NM_PATH_LEN];

		nm_yw_pathf(item, "%s[%zu]", sub, i);
		ret = label_value(c, nm_yw_seq_item(&c->yw, vals[2], i), item,
				  &e->values[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* matchLabels k: v becomes "k In (v)", before the matchExpressions. */
static int parse_selector(struct pctx *c, const yaml_node_t *n,
			  const char *path, struct nm_selector *sel)
{
	static const char *const fields[] = { "matchLabels",
					      "matchExpressions" };
	yaml_node_t *keys[2], *vals[2];
	size_t n_ml = 0, n_me = 0, i, j;
	char sub[NM_PATH_LEN];
	int ret;

	ret = nm_yw_fields_keys(&c->yw, n, path, fields, 2, keys, vals);
	if (ret)
		return ret;
	if (vals[0]) {
		nm_yw_join(sub, path, "matchLabels");
		ret = nm_yw_expect(&c->yw, vals[0], NM_Y_MAP, sub);
		if (ret)
			return ret;
		n_ml = map_len(vals[0]);
	}
	if (vals[1]) {
		nm_yw_join(sub, path, "matchExpressions");
		ret = nm_yw_expect(&c->yw, vals[1], NM_Y_SEQ, sub);
		if (ret)
			return ret;
		n_me = nm_yw_seq_len(vals[1]);
	}
	ret = alloc_array(c, n, (void **)&sel->exprs, n_ml + n_me,
			  sizeof(*sel->exprs));
	if (ret)
		return ret;
	sel->n = n_ml + n_me;

	nm_yw_join(sub, path, "matchLabels");
	for (i = 0; i < n_ml; i++) {
		yaml_node_pair_t *p = &vals[0]->data.mapping.pairs.start[i];
		yaml_node_t *k = yaml_document_get_node(c->yw.doc, p->key);
		struct nm_sel_expr *e = &sel->exprs[i];

		ret = label_key(c, k, sub, &e->key);
		if (ret)
			return ret;
		for (j = 0; j < i; j++) {
			if (!strcmp(sel->exprs[j].key, e->key))
				return nm_yw_fail(&c->yw, k, "duplicate field '%s' in %s",
					    e->key, sub);
		}
		e->op = NM_SEL_IN;
		e->values = calloc(1, sizeof(*e->values));
		if (!e->values)
			return nm_yw_oom(&c->yw, k);
		e->n_values = 1;
		ret = label_value(c, yaml_document_get_node(c->yw.doc, p->value),
				  sub, &e->values[0]);
		if (ret)
			return ret;
	}
	for (i = 0; i < n_me; i++) {
		join_idx(sub, path, "matchExpressions", i);
		ret = parse_expr(c, nm_yw_seq_item(&c->yw, vals[1], i), sub,
				 &sel->exprs[n_ml + i]);
		if (ret)
			return ret;
	}
	return 0;
}

static int parse_cidr(struct pctx *c, const yaml_node_t *n, const char *path,
		      struct nm_cidr *out)
{
	char addr_s[16];
	const char *s, *slash;
	unsigned long len;
	__u32 host, mask;
	__be32 addr;
	char *end;
	int ret;

	ret = nm_yw_str(&c->yw, n, path, &s);
	if (ret)
		return ret;
	slash = strchr(s, '/');
	if (!slash)
		return nm_yw_fail(
			&c->yw, n,
			"invalid CIDR '%.64s' in %s: missing prefix length (write %.18s/32 for one address)",
			s, path, s);
	if ((size_t)(slash - s) >= sizeof(addr_s))
		goto bad_addr;
	memcpy(addr_s, s, (size_t)(slash - s));
	addr_s[slash - s] = '\0';
	if (nm_parse_ipv4(addr_s, &addr))
		goto bad_addr;
	if (!all_digits(slash + 1, "0123456789") || strlen(slash + 1) > 2)
		return nm_yw_fail(
			&c->yw, n,
			"invalid CIDR '%.64s' in %s: prefix length must be a number 0..32",
			s, path);
	len = strtoul(slash + 1, &end, 10);
	if (len > 32)
		return nm_yw_fail(
			&c->yw, n,
			"invalid CIDR '%.64s' in %s: prefix length %lu is longer than 32",
			s, path, len);
	host = ntohl(addr);
	mask = len ? ~0U << (32 - len) : 0;
	if (host & ~mask) {
		struct in_addr net = { .s_addr = htonl(host & mask) };
		char net_s[INET_ADDRSTRLEN];

		if (!inet_ntop(AF_INET, &net, net_s, sizeof(net_s)))
			return nm_yw_fail(&c->yw, n, "invalid CIDR '%.64s' in %s", s,
				    path);
		return nm_yw_fail(
			&c->yw, n,
			"invalid CIDR '%.64s' in %s: host bits set, did you mean %s/%lu?",
			s, path, net_s, len);
	}
	out->addr = addr;
	out->len = (__u8)len;
	return 0;
bad_addr:
	return nm_yw_fail(
		&c->yw, n,
		"invalid CIDR '%.64s' in %s: address must be an IPv4 dotted quad",
		s, path);
}

/* N or "N", 1..65535; named ports are not supported. */
static int parse_port(struct pctx *c, const yaml_node_t *n, const char *path,
		      __u16 *port)
{
	enum nm_ytype t = nm_yw_type(n);
	const char *s, *digits;
	unsigned long v;

	if (t != NM_Y_INT && t != NM_Y_STR)
		return nm_yw_fail(&c->yw, n, "%s must be a port number, got %s", path,
			    nm_yw_type_name(&c->yw, t));
	s = scalar(n);
	digits = *s == '-' || *s == '+' ? s + 1 : s;
	if (!all_digits(digits, "0123456789"))
		return nm_yw_fail(
			&c->yw, n,
			"port '%.64s' in %s is not a number 1..65535 (named ports are not supported)",
			s, path);
	v = strlen(digits) > 5 ? 65536 : strtoul(digits, NULL, 10);
	if (*s == '-' || v < 1 || v > 65535)
		return nm_yw_fail(&c->yw, n, "port %.64s out of range 1..65535 in %s", s,
			    path);
	*port = (__u16)v;
	return 0;
}

static int parse_proto(struct pctx *c, const yaml_node_t *n, const char *path,
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
	else if (!strcmp(s, "ANY"))
		*proto = 0;
	else
		return nm_yw_fail(
			&c->yw, n,
			"unknown protocol '%.64s' in %s (expected TCP, UDP or ANY)",
			s, path);
	return 0;
}

/* toPorts: [{ports: [{port, protocol}]}], flattened into rule->ports. */
static int parse_to_ports(struct pctx *c, const yaml_node_t *n,
			  const char *path, struct nm_peer_rule *rule)
{
	static const char *const tp_fields[] = { "ports" };
	static const char *const p_fields[] = { "port", "protocol" };
	yaml_node_t *keys[2], *vals[2];
	char sub[NM_PATH_LEN], pp[NM_PATH_LEN], leaf[NM_PATH_LEN];
	size_t i, j, total = 0;
	int ret;

	ret = expect_list(c, n, path);
	if (ret)
		return ret;
	/* Validate the shape and count first so one allocation suffices. */
	for (i = 0; i < nm_yw_seq_len(n); i++) {
		yaml_node_t *tp = nm_yw_seq_item(&c->yw, n, i);

		nm_yw_pathf(sub, "%s[%zu]", path, i);
		ret = nm_yw_fields_keys(&c->yw, tp, sub, tp_fields, 1, keys, vals);
		if (ret)
			return ret;
		ret = nm_yw_need(&c->yw, tp, vals[0], "ports", sub);
		if (ret)
			return ret;
		nm_yw_join(pp, sub, "ports");
		ret = expect_list(c, vals[0], pp);
		if (ret)
			return ret;
		total += nm_yw_seq_len(vals[0]);
	}
	ret = alloc_array(c, n, (void **)&rule->ports, total,
			  sizeof(*rule->ports));
	if (ret)
		return ret;
	for (i = 0; i < nm_yw_seq_len(n); i++) {
		yaml_node_t *tp = nm_yw_seq_item(&c->yw, n, i), *list;

		nm_yw_pathf(sub, "%s[%zu]", path, i);
		ret = nm_yw_fields_keys(&c->yw, tp, sub, tp_fields, 1, keys, vals);
		if (ret)
			return ret;
		list = vals[0];
		for (j = 0; j < nm_yw_seq_len(list); j++) {
			yaml_node_t *p = nm_yw_seq_item(&c->yw, list, j);
			struct nm_port_rule *pr = &rule->ports[rule->n_ports];

			join_idx(pp, sub, "ports", j);
			ret = nm_yw_fields_keys(&c->yw, p, pp, p_fields, 2, keys, vals);
			if (ret)
				return ret;
			ret = nm_yw_need(&c->yw, p, vals[0], "port", pp);
			if (ret)
				return ret;
			nm_yw_join(leaf, pp, "port");
			ret = parse_port(c, vals[0], leaf, &pr->port);
			if (ret)
				return ret;
			pr->proto = 0;
			if (vals[1]) {
				nm_yw_join(leaf, pp, "protocol");
				ret = parse_proto(c, vals[1], leaf, &pr->proto);
				if (ret)
					return ret;
			}
			rule->n_ports++;
		}
	}
	return 0;
}

static bool kind_is_ingress(enum nm_rule_kind kind)
{
	return kind == NM_RULE_INGRESS || kind == NM_RULE_INGRESS_DENY;
}

static int parse_rule(struct pctx *c, const yaml_node_t *n, const char *path,
		      enum nm_rule_kind kind, struct nm_peer_rule *rule)
{
	enum { F_FROM_EP, F_FROM_CIDR, F_TO_EP, F_TO_CIDR, F_TO_PORTS, F_N };
	static const char *const fields[F_N] = {
		[F_FROM_EP] = "fromEndpoints", [F_FROM_CIDR] = "fromCIDR",
		[F_TO_EP] = "toEndpoints",     [F_TO_CIDR] = "toCIDR",
		[F_TO_PORTS] = "toPorts",
	};
	bool ingress = kind_is_ingress(kind);
	yaml_node_t *keys[F_N], *vals[F_N], *ep, *cidr;
	int wrong_ep = ingress ? F_TO_EP : F_FROM_EP;
	int wrong_cidr = ingress ? F_TO_CIDR : F_FROM_CIDR;
	char sub[NM_PATH_LEN];
	size_t i;
	int ret;

	ret = nm_yw_expect(&c->yw, n, NM_Y_MAP, path);
	if (ret)
		return ret;
	rule->line = nm_yw_line(n);
	ret = nm_yw_fields_keys(&c->yw, n, path, fields, F_N, keys, vals);
	if (ret)
		return ret;
	/* from* selects sources, to* destinations: keep them apart. */
	if (keys[wrong_ep])
		return nm_yw_fail(&c->yw, keys[wrong_ep],
			    "field '%s' is not allowed in %s rules (use %s)",
			    fields[wrong_ep], spec_kinds[kind],
			    fields[ingress ? F_FROM_EP : F_TO_EP]);
	if (keys[wrong_cidr])
		return nm_yw_fail(&c->yw, keys[wrong_cidr],
			    "field '%s' is not allowed in %s rules (use %s)",
			    fields[wrong_cidr], spec_kinds[kind],
			    fields[ingress ? F_FROM_CIDR : F_TO_CIDR]);
	ep = vals[ingress ? F_FROM_EP : F_TO_EP];
	cidr = vals[ingress ? F_FROM_CIDR : F_TO_CIDR];
	if (ep) {
		nm_yw_join(sub, path, fields[ingress ? F_FROM_EP : F_TO_EP]);
		ret = expect_list(c, ep, sub);
		if (ret)
			return ret;
		ret = alloc_array(c, ep, (void **)&rule->endpoints, nm_yw_seq_len(ep),
				  sizeof(*rule->endpoints));
		if (ret)
			return ret;
		rule->n_endpoints = nm_yw_seq_len(ep);
		for (i = 0; i < nm_yw_seq_len(ep); i++) {
			join_idx(sub, path,
				 fields[ingress ? F_FROM_EP : F_TO_EP], i);
			ret = parse_selector(c, nm_yw_seq_item(&c->yw, ep, i), sub,
					     &rule->endpoints[i]);
			if (ret)
				return ret;
		}
	}
	if (cidr) {
		nm_yw_join(sub, path,
			   fields[ingress ? F_FROM_CIDR : F_TO_CIDR]);
		ret = expect_list(c, cidr, sub);
		if (ret)
			return ret;
		ret = alloc_array(c, cidr, (void **)&rule->cidrs, nm_yw_seq_len(cidr),
				  sizeof(*rule->cidrs));
		if (ret)
			return ret;
		rule->n_cidrs = nm_yw_seq_len(cidr);
		for (i = 0; i < nm_yw_seq_len(cidr); i++) {
			join_idx(sub, path,
				 fields[ingress ? F_FROM_CIDR : F_TO_CIDR], i);
			ret = parse_cidr(c, nm_yw_seq_item(&c->yw, cidr, i), sub,
					 &rule->cidrs[i]);
			if (ret)
				return ret;
		}
	}
	if (vals[F_TO_PORTS]) {
		nm_yw_join(sub, path, "toPorts");
		ret = parse_to_ports(c, vals[F_TO_PORTS], sub, rule);
		if (ret)
			return ret;
	}
	return 0;
}

static int parse_metadata(struct pctx *c, const yaml_node_t *n,
			  struct nm_policy *pol)
{
	enum { F_NAME, F_NS, F_LABELS, F_ANNOT, F_N };
	static const char *const fields[F_N] = {
		[F_NAME] = "name",
		[F_NS] = "namespace",
		[F_LABELS] = "labels",
		[F_ANNOT] = "annotations",
	};
	yaml_node_t *keys[F_N], *vals[F_N];
	int ret;

	ret = nm_yw_fields_keys(&c->yw, n, "metadata", fields, F_N, keys, vals);
	if (ret)
		return ret;
	ret = nm_yw_need(&c->yw, n, vals[F_NAME], "name", "metadata");
	if (ret)
		return ret;
	ret = nm_yw_dup_str(&c->yw, vals[F_NAME], "metadata.name", &pol->name);
	if (ret)
		return ret;
	if (!nm_dns_subdomain_ok(pol->name))
		return nm_yw_fail(
			&c->yw, vals[F_NAME],
			"invalid metadata.name '%.64s': must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)",
			pol->name);
	if (vals[F_NS]) {
		ret = nm_yw_dup_str(&c->yw, vals[F_NS], "metadata.namespace",
			      &pol->namespace);
		if (ret)
			return ret;
		if (!nm_dns_label_ok(pol->namespace))
			return nm_yw_fail(
				&c->yw, vals[F_NS],
				"invalid metadata.namespace '%.64s': must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
				pol->namespace);
	} else {
		pol->namespace = strdup("default");
		if (!pol->namespace)
			return nm_yw_oom(&c->yw, n);
	}
	/* Kubernetes bookkeeping: checked for shape, otherwise ignored. */
	if (vals[F_LABELS]) {
		ret = check_string_map(c, vals[F_LABELS], "metadata.labels");
		if (ret)
			return ret;
	}
	if (vals[F_ANNOT]) {
		ret = check_string_map(c, vals[F_ANNOT],
				       "metadata.annotations");
		if (ret)
			return ret;
	}
	return 0;
}

static int parse_spec(struct pctx *c, const yaml_node_t *n,
		      struct nm_policy *pol)
{
	/* fields[1 + kind] is the key of enum nm_rule_kind kind. */
	static const char *const fields[1 + NM_RULE_KINDS] = {
		"endpointSelector", "ingress",	  "egress",
		"ingressDeny",	    "egressDeny",
	};
	yaml_node_t *keys[1 + NM_RULE_KINDS], *vals[1 + NM_RULE_KINDS];
	char sub[NM_PATH_LEN];
	size_t i;
	int ret, k;

	ret = nm_yw_fields_keys(&c->yw, n, "spec", fields, 1 + NM_RULE_KINDS, keys, vals);
	if (ret)
		return ret;
	ret = nm_yw_need(&c->yw, n, vals[0], "endpointSelector", "spec");
	if (ret)
		return ret;
	ret = parse_selector(c, vals[0], "spec.endpointSelector",
			     &pol->endpoint_selector);
	if (ret)
		return ret;
	for (k = 0; k < NM_RULE_KINDS; k++) {
		yaml_node_t *list = vals[1 + k];

		if (!list)
			continue;
		nm_yw_join(sub, "spec", fields[1 + k]);
		/* [] is meaningful: default deny with no exception. */
		ret = nm_yw_expect(&c->yw, list, NM_Y_SEQ, sub);
		if (ret)
			return ret;
		ret = alloc_array(c, list, (void **)&pol->rules[k],
				  nm_yw_seq_len(list), sizeof(*pol->rules[k]));
		if (ret)
			return ret;
		pol->n_rules[k] = nm_yw_seq_len(list);
		for (i = 0; i < nm_yw_seq_len(list); i++) {
			nm_yw_pathf(sub, "spec.%s[%zu]", fields[1 + k], i);
			ret = parse_rule(c, nm_yw_seq_item(&c->yw, list, i), sub,
					 (enum nm_rule_kind)k,
					 &pol->rules[k][i]);
			if (ret)
				return ret;
		}
	}
	pol->enforces[NM_POLICY_INGRESS] = keys[1 + NM_RULE_INGRESS] ||
					   keys[1 + NM_RULE_INGRESS_DENY];
	pol->enforces[NM_POLICY_EGRESS] = keys[1 + NM_RULE_EGRESS] ||
					  keys[1 + NM_RULE_EGRESS_DENY];
	return 0;
}

static int parse_policy(struct pctx *c, const yaml_node_t *root,
			struct nm_policy *pol)
{
	enum { F_API, F_KIND, F_META, F_SPEC, F_N };
	static const char *const fields[F_N] = {
		[F_API] = "apiVersion",
		[F_KIND] = "kind",
		[F_META] = "metadata",
		[F_SPEC] = "spec",
	};
	yaml_node_t *keys[F_N], *vals[F_N];
	const char *s;
	int ret, i;

	pol->line = nm_yw_line(root);
	pol->file = strdup(c->file);
	if (!pol->file)
		return nm_yw_oom(&c->yw, root);
	ret = nm_yw_fields_keys(&c->yw, root, "", fields, F_N, keys, vals);
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
	if (strcmp(s, NM_POLICY_API_VERSION))
		return nm_yw_fail(&c->yw, vals[F_API],
			    "unsupported apiVersion '%.64s' (expected %s)", s,
			    NM_POLICY_API_VERSION);
	ret = nm_yw_str(&c->yw, vals[F_KIND], "kind", &s);
	if (ret)
		return ret;
	if (strcmp(s, NM_POLICY_KIND))
		return nm_yw_fail(&c->yw, vals[F_KIND],
			    "unsupported kind '%.64s' (expected %s)", s,
			    NM_POLICY_KIND);
	ret = parse_metadata(c, vals[F_META], pol);
	if (ret)
		return ret;
	return parse_spec(c, vals[F_SPEC], pol);
}

static void rule_free(struct nm_peer_rule *r)
{
	size_t i;

	for (i = 0; i < r->n_endpoints; i++)
		nm_selector_free(&r->endpoints[i]);
	free(r->endpoints);
	free(r->cidrs);
	free(r->ports);
}

static void policy_free(struct nm_policy *p)
{
	size_t i;
	int k;

	free(p->name);
	free(p->namespace);
	free(p->file);
	nm_selector_free(&p->endpoint_selector);
	for (k = 0; k < NM_RULE_KINDS; k++) {
		for (i = 0; i < p->n_rules[k]; i++)
			rule_free(&p->rules[k][i]);
		free(p->rules[k]);
	}
	memset(p, 0, sizeof(*p));
}

static struct nm_policy *set_find(const struct nm_policy_set *set,
				  const char *ns, const char *name)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		if (!strcmp(set->v[i].namespace, ns) &&
		    !strcmp(set->v[i].name, name))
			return &set->v[i];
	}
	return NULL;
}

static int load_document(struct nm_yw *w, const yaml_node_t *root, void *arg)
{
	struct pctx *c = (struct pctx *)((char *)w - offsetof(struct pctx, yw));
	struct nm_policy_set *set = arg;
	struct nm_policy pol = { 0 }, *v, *first;
	int ret;

	if (root->type != YAML_MAPPING_NODE)
		return nm_yw_fail(
			&c->yw, root,
			"document must be a mapping (a MeshNetworkPolicy), got %s",
			nm_yw_type_name(&c->yw, nm_yw_type(root)));
	ret = parse_policy(c, root, &pol);
	if (ret)
		goto err;
	first = set_find(set, pol.namespace, pol.name);
	if (first) {
		ret = nm_yw_fail(&c->yw, root,
			   "duplicate policy %s/%s (first defined at line %u)",
			   pol.namespace, pol.name, first->line);
		goto err;
	}
	v = realloc(set->v, (set->n + 1) * sizeof(*v));
	if (!v) {
		ret = nm_yw_oom(&c->yw, root);
		goto err;
	}
	set->v = v;
	set->v[set->n++] = pol;
	return 0;
err:
	policy_free(&pol);
	return ret;
}

int nm_policy_parse(const char *buf, size_t len, const char *file,
		    struct nm_policy_set *out, struct nm_error *err)
{
	struct nm_policy_set set = { 0 };
	struct nm_error scratch;
	struct pctx c = { 0 };
	int ret;

	if (!err)
		err = &scratch;
	memset(err, 0, sizeof(*err));
	if (!file)
		file = "<input>";
	snprintf(err->file, sizeof(err->file), "%s", file);
	c.file = file;
	c.yw.err = err;
	c.yw.what = "the policy";
	c.yw.bare_types = true;
	c.yw.syntax_context = true;
	ret = nm_yw_load_each(&c.yw, buf, len, load_document, &set);
	if (ret)
		goto out;
	*out = set;
	set.v = NULL;
	set.n = 0;
out:
	nm_policy_set_free(&set);
	return ret;
}

int nm_policy_parse_file(const char *path, struct nm_policy_set *out,
			 struct nm_error *err)
{
	struct nm_error scratch;
	char *buf;
	size_t len;
	int ret;

	if (!err)
		err = &scratch;
	ret = nm_read_file_as(path, "policy file", NM_POLICY_FILE_MAX, &buf,
			      &len, err);
	if (ret)
		return ret;
	ret = nm_policy_parse(buf, len, path, out, err);
	free(buf);
	return ret;
}

int nm_policy_set_merge(struct nm_policy_set *dst, struct nm_policy_set *src)
{
	struct nm_policy *v, *same;
	size_t i;

	if (!src->n)
		return 0;
	/* Grow first so the move below cannot fail half-way. */
	v = realloc(dst->v, (dst->n + src->n) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	dst->v = v;
	for (i = 0; i < src->n; i++) {
		same = set_find(dst, src->v[i].namespace, src->v[i].name);
		if (same) {
			policy_free(same);
			*same = src->v[i];
		} else {
			dst->v[dst->n++] = src->v[i];
		}
	}
	free(src->v);
	src->v = NULL;
	src->n = 0;
	return 0;
}

int nm_policy_set_remove(struct nm_policy_set *set, const char *ns,
			 const char *name)
{
	struct nm_policy *p = set_find(set, ns, name);
	size_t i;

	if (!p)
		return -ENOENT;
	i = (size_t)(p - set->v);
	policy_free(p);
	memmove(&set->v[i], &set->v[i + 1], (set->n - i - 1) * sizeof(*p));
	set->n--;
	return 0;
}

void nm_policy_set_free(struct nm_policy_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		policy_free(&set->v[i]);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}
