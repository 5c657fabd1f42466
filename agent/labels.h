// SPDX-License-Identifier: GPL-2.0
/*
 * Label sets of pods and identities (pure, no I/O). A set is kept sorted
 * by key with unique keys, so its canonical string "k1=v1,k2=v2" is the
 * same on every node and can be hashed into an identity.
 */
#ifndef NM_AGENT_LABELS_H
#define NM_AGENT_LABELS_H

#include <stdbool.h>
#include <stddef.h>

/* Labels every identity carries, set by the agent, not by users. */
#define NM_LABEL_NAMESPACE "nodemesh.io/namespace"
#define NM_LABEL_CLUSTER "nodemesh.io/cluster"

/* Kubernetes limits: key prefix 253 + '/' + name 63; value 63. */
#define NM_LABEL_KEY_MAX 317
#define NM_LABEL_VALUE_MAX 63

/* RFC 1123 names: namespaces, pods, nodes, clusters. */
#define NM_DNS_LABEL_MAX 63
#define NM_DNS_SUBDOMAIN_MAX 253

struct nm_label {
	char *key;
	char *value; /* "" allowed */
};

struct nm_labels {
	struct nm_label *v; /* sorted by key, keys unique */
	size_t n;
};

/* Check a key or value against the Kubernetes label syntax. */
int nm_label_key_check(const char *key, char *err, size_t errlen);
int nm_label_value_check(const char *value, char *err, size_t errlen);

/* Insert or replace @key; copies both strings. */
int nm_labels_set(struct nm_labels *l, const char *key, const char *value);
const char *nm_labels_get(const struct nm_labels *l, const char *key);
/* Parse "k=v,k2=v2" (the CLI form); -EINVAL with a reason in @err. */
int nm_labels_parse(const char *s, struct nm_labels *out, char *err,
		    size_t errlen);
/* Canonical "k=v,k2=v2" (malloc'd); NULL on ENOMEM. */
char *nm_labels_str(const struct nm_labels *l);
bool nm_labels_equal(const struct nm_labels *a, const struct nm_labels *b);
int nm_labels_copy(struct nm_labels *dst, const struct nm_labels *src);
void nm_labels_free(struct nm_labels *l);

/* A DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters. */
bool nm_dns_label_ok(const char *s);
/* Dot-separated DNS labels, at most 253 characters. */
bool nm_dns_subdomain_ok(const char *s);

#endif /* NM_AGENT_LABELS_H */
