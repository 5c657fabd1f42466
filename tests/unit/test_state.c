// SPDX-License-Identifier: GPL-2.0
/*
 * Node state directory, identity allocation and the manifest store:
 * node.json set once and refused on mismatch, identities stable and
 * probed past collisions, CIDR identities stable across syncs, a
 * multi-document manifest stored one file per policy and read back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "agent/identity.h"
#include "agent/policy_apply.h"
#include "agent/state.h"
#include "maps/identity.h"

static char tmpl[] = "/tmp/nm-test-state.XXXXXX";
static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = mkdtemp(tmpl);
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	return system(cmd) ? -1 : 0;
}

static void sub(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static void test_node_json_once(void **state)
{
	struct nm_state st;
	char d[256];

	(void)state;
	sub(d, sizeof(d), "node");
	assert_int_equal(nm_state_open(d, NULL, 0, &st), -ENOENT);
	assert_int_equal(nm_state_open(d, "east", 0, &st), -EINVAL);
	assert_int_equal(nm_state_open(d, "east", 70000, &st), -EINVAL);
	assert_int_equal(nm_state_open(d, "Bad Name", 3, &st), -EINVAL);
	assert_int_equal(nm_state_open(d, "east", 3, &st), 0);
	assert_string_equal(st.node.cluster, "east");
	assert_int_equal(st.node.cluster_id, 3);
	/* Later opens read it, and refuse another cluster. */
	assert_int_equal(nm_state_open(d, NULL, 0, &st), 0);
	assert_int_equal(st.node.cluster_id, 3);
	assert_int_equal(nm_state_open(d, "east", 3, &st), 0);
	assert_int_equal(nm_state_open(d, "west", 3, &st), -EINVAL);
	assert_int_equal(nm_state_open(d, "east", 4, &st), -EINVAL);
}

static void labels_of(struct nm_labels *l, const char *app)
{
	assert_int_equal(nm_labels_set(l, "app", app), 0);
	assert_int_equal(nm_labels_set(l, NM_LABEL_NAMESPACE, "ns"), 0);
	assert_int_equal(nm_labels_set(l, NM_LABEL_CLUSTER, "east"), 0);
}

static void test_hash_range_and_stability(void **state)
{
	__u32 a = nm_identity_hash("app=a,nodemesh.io/cluster=east");
	int i;

	(void)state;
	assert_int_equal(a, nm_identity_hash("app=a,nodemesh.io/cluster=east"));
	assert_int_not_equal(
		a, nm_identity_hash("app=b,nodemesh.io/cluster=east"));
	for (i = 0; i < 1000; i++) {
		char s[32];
		__u32 h;

		snprintf(s, sizeof(s), "app=%d", i);
		h = nm_identity_hash(s);
		assert_true(h >= NM_ID_LOCAL_MIN && h <= NM_ID_LOCAL_MAX);
	}
}

static void test_alloc_roundtrip_and_probe(void **state)
{
	struct nm_labels a = {}, b = {};
	struct nm_idstore s, s2;
	struct nm_state st;
	__u64 ida, ida2, idb;
	bool created;
	char d[256], *canon;
	size_t i;

	(void)state;
	sub(d, sizeof(d), "ids");
	assert_int_equal(nm_state_open(d, "east", 3, &st), 0);
	assert_int_equal(nm_idstore_load(&st, &s), 0);
	/* Reserved identities are always there. */
	assert_non_null(nm_idstore_find(&s, NM_ID_WORLD));
	assert_string_equal(nm_identity_reserved_name(NM_ID_HOST),
			    "reserved:host");
	labels_of(&a, "a");
	labels_of(&b, "b");
	assert_int_equal(nm_identity_alloc(&s, 3, &a, &ida, &created), 0);
	assert_true(created);
	assert_int_equal(nm_identity_cluster(ida), 3);
	canon = nm_labels_str(&a);
	assert_int_equal(nm_identity_local(ida), nm_identity_hash(canon));
	free(canon);
	assert_int_equal(nm_identity_alloc(&s, 3, &a, &ida2, &created), 0);
	assert_false(created);
	assert_int_equal(ida, ida2);

	/* b's hashed slot taken by a different set: the next id is used. */
	canon = nm_labels_str(&b);
	for (i = 0; i < s.n; i++)
		if (s.v[i].id == ida)
			s.v[i].id =
				nm_identity_pack(3, nm_identity_hash(canon));
	assert_int_equal(nm_identity_alloc(&s, 3, &b, &idb, &created), 0);
	assert_true(created);
	assert_int_equal(nm_identity_local(idb),
			 nm_identity_hash(canon) == NM_ID_LOCAL_MAX ?
				 NM_ID_LOCAL_MIN :
				 nm_identity_hash(canon) + 1);
	free(canon);

	/* Saved and loaded back the same. */
	assert_int_equal(nm_idstore_save(&st, &s), 0);
	assert_int_equal(nm_idstore_load(&st, &s2), 0);
	assert_int_equal(s2.n, s.n);
	assert_non_null(nm_idstore_find(&s2, idb));
	assert_true(nm_labels_equal(&nm_idstore_find(&s2, idb)->labels, &b));
	nm_idstore_free(&s2);
	nm_idstore_free(&s);
	nm_labels_free(&a);
	nm_labels_free(&b);
}

static void test_cidr_ids_stable(void **state)
{
	struct nm_cidr c[3];
	struct nm_cidr_change *add = NULL, *del = NULL;
	size_t na, nd;
	struct nm_idstore s;
	struct nm_state st;
	char d[256], buf[24];
	const __u64 base = nm_identity_pack(0, NM_ID_CIDR_BASE);

	(void)state;
	assert_int_equal(nm_cidr_parse("10.0.0.0/8", &c[0]), 0);
	assert_int_equal(nm_cidr_parse("192.168.1.0/24", &c[1]), 0);
	assert_int_equal(nm_cidr_parse("172.16.0.0/12", &c[2]), 0);
	assert_int_equal(nm_cidr_parse("10.0.0.1/8", &c[2]), -EINVAL);
	assert_int_equal(nm_cidr_parse("10.0.0.0/33", &c[2]), -EINVAL);
	assert_int_equal(nm_cidr_parse("172.16.0.0/12", &c[2]), 0);
	assert_string_equal(nm_cidr_str(&c[1], buf, sizeof(buf)),
			    "192.168.1.0/24");

	sub(d, sizeof(d), "cidr");
	assert_int_equal(nm_state_open(d, "east", 3, &st), 0);
	assert_int_equal(nm_idstore_load(&st, &s), 0);
	assert_int_equal(nm_identity_sync_cidrs(&s, c, 2, &add, &na, &del, &nd),
			 0);
	assert_int_equal(na, 2);
	assert_int_equal(nd, 0);
	assert_int_equal(add[0].id, base);
	assert_int_equal(add[1].id, base + 1);
	free(add);
	free(del);
	/* Drop 10/8: 192.168.1/24 keeps base + 1; 172.16/12 takes the freed base. */
	assert_int_equal(
		nm_identity_sync_cidrs(&s, &c[1], 2, &add, &na, &del, &nd), 0);
	assert_int_equal(nd, 1);
	assert_int_equal(del[0].id, base);
	assert_int_equal(na, 1);
	assert_int_equal(add[0].id, base);
	assert_true(nm_idstore_find(&s, base + 1)->is_cidr);
	assert_int_equal(nm_idstore_find(&s, base + 1)->cidr.addr, c[1].addr);
	assert_true(nm_identity_is_cidr(base + 1));
	free(add);
	free(del);
	nm_idstore_free(&s);
}

static const char multi[] =
	"# two policies in one file\n"
	"apiVersion: nodemesh.io/v1alpha1\n"
	"kind: MeshNetworkPolicy\n"
	"metadata: {name: one, namespace: shop}\n"
	"spec:\n"
	"  endpointSelector: {matchLabels: {app: a}}\n"
	"  ingress: []\n"
	"---\n"
	"apiVersion: nodemesh.io/v1alpha1\n"
	"kind: MeshNetworkPolicy\n"
	"metadata:\n"
	"  name: two\n"
	"spec:\n"
	"  endpointSelector: {}\n"
	"  egress:\n"
	"    - toPorts: [{ports: [{port: 53, protocol: UDP}]}]\n";

static void test_store_splits_documents(void **state)
{
	struct nm_policy_set in, back;
	struct nm_error err;
	struct nm_state st;
	char d[256], path[512];
	size_t i;

	(void)state;
	sub(d, sizeof(d), "store");
	assert_int_equal(nm_state_open(d, "east", 3, &st), 0);
	assert_int_equal(nm_policy_store_load(&st, &back, &err), 0);
	assert_int_equal(back.n, 0);
	assert_int_equal(nm_policy_parse(multi, strlen(multi), "multi.yaml",
					 &in, &err),
			 0);
	assert_int_equal(in.n, 2);
	assert_int_equal(nm_policy_store_write(&st, "multi.yaml", multi,
					       strlen(multi), &in),
			 0);
	snprintf(path, sizeof(path), "%s/policies/shop/one.yaml", d);
	assert_int_equal(access(path, R_OK), 0);
	snprintf(path, sizeof(path), "%s/policies/default/two.yaml", d);
	assert_int_equal(access(path, R_OK), 0);
	assert_int_equal(nm_policy_store_load(&st, &back, &err), 0);
	assert_int_equal(back.n, 2);
	for (i = 0; i < back.n; i++) {
		if (!strcmp(back.v[i].name, "two")) {
			assert_string_equal(back.v[i].namespace, "default");
			assert_int_equal(back.v[i].n_rules[NM_RULE_EGRESS], 1);
		}
	}
	nm_policy_set_free(&back);
	assert_int_equal(nm_policy_store_remove(&st, "shop", "one"), 0);
	assert_int_equal(nm_policy_store_remove(&st, "shop", "one"), -ENOENT);
	assert_int_equal(nm_policy_store_load(&st, &back, &err), 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.v[0].name, "two");
	nm_policy_set_free(&back);
	nm_policy_set_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_json_once),
		cmocka_unit_test(test_hash_range_and_stability),
		cmocka_unit_test(test_alloc_roundtrip_and_probe),
		cmocka_unit_test(test_cidr_ids_stable),
		cmocka_unit_test(test_store_splits_documents),
	};

	/* The refusals print their warnings on stderr, outside the TAP stream. */
	return cmocka_run_group_tests(tests, setup, teardown);
}
