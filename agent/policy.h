// SPDX-License-Identifier: GPL-2.0
/*
 * MeshNetworkPolicy: the parsed manifest (policy.c, libyaml), selectors
 * (selector.c) and the compiler from policies and identities to
 * nm_policy_v1 entries (compile.c). All pure: no maps, no files but the
 * manifest being parsed.
 *
 * Scoping, as Cilium's namespaced policies: the endpointSelector selects
 * pods of the policy's namespace only; a peer selector (fromEndpoints /
 * toEndpoints) without a nodemesh.io/namespace requirement selects the
 * policy's namespace, and without a nodemesh.io/cluster requirement the
 * local cluster only. A rule item without peers (no *Endpoints, no *CIDR)
 * matches every peer; without toPorts every port and protocol.
 */
#ifndef NM_AGENT_POLICY_H
#define NM_AGENT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/labels.h"
#include "maps/policy.h"

#define NM_POLICY_API_VERSION "nodemesh.io/v1alpha1"
#define NM_POLICY_KIND "MeshNetworkPolicy"

/* Where and why a manifest was refused: "file:line: reason". */
struct nm_error {
	char file[256];
	unsigned int line; /* 1-based; 0 when not tied to a line */
	char reason[512];
};

/* "file:line: reason" ("file: reason" when line is 0) into @buf. */
const char *nm_error_str(const struct nm_error *err, char *buf, size_t len);

enum nm_sel_op {
	NM_SEL_IN = 0,
	NM_SEL_NOT_IN = 1,
	NM_SEL_EXISTS = 2,
	NM_SEL_DOES_NOT_EXIST = 3,
};

struct nm_sel_expr {
	char *key;
	enum nm_sel_op op;
	char **values; /* In/NotIn: >= 1 value; Exists/DoesNotExist: none */
	size_t n_values;
};

/* matchLabels k: v becomes the expression "k In (v)"; all must hold. */
struct nm_selector {
	struct nm_sel_expr *exprs;
	size_t n;
};

bool nm_selector_match(const struct nm_selector *s,
		       const struct nm_labels *labels);
/* Does the selector constrain @key at all (any expression on it)? */
bool nm_selector_has_key(const struct nm_selector *s, const char *key);
/* Free the expressions and values a selector owns; leaves it empty. */
void nm_selector_free(struct nm_selector *s);

struct nm_port_rule {
	__u16 port; /* 1..65535 */
	__u8 proto; /* IPPROTO_TCP, IPPROTO_UDP, or 0 = ANY */
	__u8 pad;
};

struct nm_cidr {
	__be32 addr; /* host bits zero */
	__u8 len; /* 0..32 */
};

enum nm_rule_kind {
	NM_RULE_INGRESS = 0,
	NM_RULE_EGRESS = 1,
	NM_RULE_INGRESS_DENY = 2,
	NM_RULE_EGRESS_DENY = 3,
	NM_RULE_KINDS = 4,
};

/* One item of ingress/egress/ingressDeny/egressDeny. */
struct nm_peer_rule {
	struct nm_selector *endpoints; /* from/toEndpoints, any one matches */
	size_t n_endpoints;
	struct nm_cidr *cidrs; /* from/toCIDR, any one matches */
	size_t n_cidrs;
	struct nm_port_rule *ports; /* toPorts; none = every port */
	size_t n_ports;
	unsigned int line;
};

struct nm_policy {
	char *name;
	char *namespace; /* "default" when metadata has none */
	char *file; /* for messages */
	unsigned int line; /* of the document */
	struct nm_selector endpoint_selector;
	struct nm_peer_rule *rules[NM_RULE_KINDS];
	size_t n_rules[NM_RULE_KINDS];
	/* Direction selected (its key present, even as []): default deny. */
	bool enforces[2]; /* [NM_POLICY_INGRESS], [NM_POLICY_EGRESS] */
};

struct nm_policy_set {
	struct nm_policy *v;
	size_t n;
};

/*
 * Parse every YAML document of @buf (@file names it in errors). Strict:
 * unknown fields, wrong types, bad selectors or labels, ports out of
 * range, bad CIDRs, wrong apiVersion/kind, duplicate namespace/name within
 * the input are refused. On error nothing is returned (out untouched) and
 * @err says where and why.
 */
int nm_policy_parse(const char *buf, size_t len, const char *file,
		    struct nm_policy_set *out, struct nm_error *err);
int nm_policy_parse_file(const char *path, struct nm_policy_set *out,
			 struct nm_error *err);
/* Move every policy of @src into @dst (replacing same namespace/name). */
int nm_policy_set_merge(struct nm_policy_set *dst, struct nm_policy_set *src);
/* Remove namespace/name; -ENOENT if absent. */
int nm_policy_set_remove(struct nm_policy_set *set, const char *ns,
			 const char *name);
void nm_policy_set_free(struct nm_policy_set *set);

/* An identity the node knows: labels, or a CIDR for CIDR identities. */
struct nm_identity_info {
	__u64 id; /* nm_identity_pack() */
	struct nm_labels labels; /* incl. namespace and cluster labels */
	bool is_cidr;
	struct nm_cidr cidr; /* when is_cidr */
};

/* A local endpoint: the policy map is keyed by its endpoint_id. */
struct nm_ep_info {
	__u32 endpoint_id;
	__u64 identity; /* must be one of the identities passed */
};

struct nm_policy_entry {
	struct nm_policy_key key;
	struct nm_policy_val val;
};

/* What a rule_id stands for, for events and 'policy get'. */
struct nm_rule_ref {
	__u32 rule_id; /* index + 1 into nm_compiled.rules */
	const char *ns; /* points into the policy set */
	const char *name;
	enum nm_rule_kind kind;
	size_t index; /* item within the kind */
};

struct nm_ep_enforce {
	__u32 endpoint_id;
	__u8 flags; /* NM_EP_F_INGRESS_POLICY | NM_EP_F_EGRESS_POLICY */
};

struct nm_compiled {
	struct nm_policy_entry *entries; /* sorted by key bytes, unique */
	size_t n;
	struct nm_ep_enforce *eps; /* one per endpoint passed, same order */
	size_t n_eps;
	struct nm_rule_ref *rules; /* rule_id - 1 indexes this */
	size_t n_rules;
};

/*
 * The CIDRs the set's rules mention, sorted (address, then length) and
 * unique: the caller gives each a CIDR identity and an ipcache entry
 * before compiling. 0.0.0.0/0 is left out: it compiles to NM_ID_WORLD,
 * the identity of an ipcache miss. *out is NULL when *n is 0.
 */
int nm_policy_cidrs(const struct nm_policy_set *set, struct nm_cidr **out,
		    size_t *n);

/*
 * Compile @set against the identities the node knows. A CIDR rule C
 * matches CIDR identities whose prefix lies inside C, and NM_ID_WORLD when
 * C is 0.0.0.0/0. Where allow and deny produce the same key, deny wins;
 * between equals the lowest rule_id wins, so output is deterministic.
 */
int nm_policy_compile(const struct nm_policy_set *set,
		      const struct nm_identity_info *ids, size_t n_ids,
		      const struct nm_ep_info *eps, size_t n_eps,
		      const char *local_cluster, struct nm_compiled *out);
void nm_compiled_free(struct nm_compiled *c);

#endif /* NM_AGENT_POLICY_H */
