// SPDX-License-Identifier: GPL-2.0
/*
 * Policy compile time: 1,000 identities x 100 rules through
 * nm_policy_compile (pure, no maps). 100 of the identities are local
 * endpoints; 10 policies each select 10 of them (tier=tN) with 10 ingress
 * rules each (group=gR on TCP 8000+R), and every rule's selector matches
 * 100 identities. Prints the best of a few runs and the entry count;
 * never judges them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/labels.h"
#include "agent/policy.h"
#include "maps/identity.h"

#define NR_IDS 1000
#define NR_EPS 100
#define NR_POLICIES 10
#define RULES_PER_POLICY 10
#define RUNS 5
#define CLUSTER "bench"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The manifests, as a user would write them. */
static char *manifests(size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap);
	int p, r;

	if (!buf)
		return NULL;
	for (p = 0; p < NR_POLICIES; p++) {
		n += (size_t)snprintf(
			buf + n, cap - n,
			"---\napiVersion: nodemesh.io/v1alpha1\nkind: MeshNetworkPolicy\n"
			"metadata: {name: p%d, namespace: bench}\nspec:\n"
			"  endpointSelector: {matchLabels: {tier: t%d}}\n  ingress:\n",
			p, p);
		for (r = 0; r < RULES_PER_POLICY; r++)
			n += (size_t)snprintf(
				buf + n, cap - n,
				"    - fromEndpoints: [{matchLabels: {group: g%d}}]\n"
				"      toPorts: [{ports: [{port: %d, protocol: TCP}]}]\n",
				r, 8000 + r);
		if (n >= cap - 1024) {
			free(buf);
			return NULL;
		}
	}
	*len = n;
	return buf;
}

static int make_ids(struct nm_identity_info *ids, struct nm_ep_info *eps)
{
	char v[32];
	int i, err = 0;

	for (i = 0; i < NR_IDS && !err; i++) {
		ids[i].id = nm_identity_pack(1, NM_ID_LOCAL_MIN + (__u32)i);
		snprintf(v, sizeof(v), "app-%d", i);
		err = nm_labels_set(&ids[i].labels, "app", v);
		snprintf(v, sizeof(v), "t%d", i % NR_POLICIES);
		err = err ?: nm_labels_set(&ids[i].labels, "tier", v);
		snprintf(v, sizeof(v), "g%d",
			 (i / NR_POLICIES) % RULES_PER_POLICY);
		err = err ?: nm_labels_set(&ids[i].labels, "group", v);
		err = err   ?:
			      nm_labels_set(&ids[i].labels, NM_LABEL_NAMESPACE,
					    "bench");
		err = err   ?:
			      nm_labels_set(&ids[i].labels, NM_LABEL_CLUSTER,
					    CLUSTER);
		if (i < NR_EPS) {
			eps[i].endpoint_id = (__u32)i + 1;
			eps[i].identity = ids[i].id;
		}
	}
	return err;
}

int main(void)
{
	static struct nm_identity_info ids[NR_IDS];
	static struct nm_ep_info eps[NR_EPS];
	struct nm_policy_set set = {};
	struct nm_compiled c = {};
	struct nm_error perr;
	double best = 0, t;
	size_t len, entries = 0;
	char *buf;
	int i, err;

	buf = manifests(&len);
	if (!buf) {
		fprintf(stderr,
			"bench: failed to build manifests: out of memory\n");
		return 1;
	}
	err = nm_policy_parse(buf, len, "bench", &set, &perr);
	if (err) {
		fprintf(stderr,
			"bench: failed to parse manifests on %s:%u: %s\n",
			perr.file, perr.line, perr.reason);
		goto out;
	}
	err = make_ids(ids, eps);
	if (err) {
		fprintf(stderr, "bench: failed to build identities: %s\n",
			strerror(-err));
		goto out;
	}
	for (i = 0; i < RUNS; i++) {
		t = now_ms();
		err = nm_policy_compile(&set, ids, NR_IDS, eps, NR_EPS, CLUSTER,
					&c);
		t = now_ms() - t;
		if (err) {
			fprintf(stderr, "bench: failed to compile policy: %s\n",
				strerror(-err));
			goto out;
		}
		if (!i || t < best)
			best = t;
		entries = c.n;
		nm_compiled_free(&c);
	}
	printf("bench: policy_compile_1000x100_ms %.2f ms\n", best);
	printf("bench: policy_entries_1000x100 %zu entries\n", entries);
out:
	for (i = 0; i < NR_IDS; i++)
		nm_labels_free(&ids[i].labels);
	nm_policy_set_free(&set);
	free(buf);
	return err ? 1 : 0;
}
