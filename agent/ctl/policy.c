// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl policy: validate, apply and delete MeshNetworkPolicy
 * manifests, list them, and show the effective rules of an endpoint.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "agent/ctl/ctl.h"
#include "agent/labels.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "agent/policy.h"
#include "maps/identity.h"

/* -f FILE or one positional argument, for "policy @cmd". */
static int policy_args(int argc, char **argv, const char *cmd,
		       const char **file, const char **pos)
{
	const struct ctl_opt opts[] = { { "-f", file }, { "--file", file }, {} };
	char what[32];

	*file = NULL;
	*pos = NULL;
	snprintf(what, sizeof(what), "policy %s", cmd);
	return ctl_args(argc, argv, what, opts, pos);
}

/* -f FILE and nothing else. */
static int file_arg(int argc, char **argv, const char *cmd, const char **file)
{
	const char *pos;
	int err;

	err = policy_args(argc, argv, cmd, file, &pos);
	if (err)
		return err;
	if (!*file || pos) {
		pr_warn("policy %s takes -f FILE", cmd);
		return -EINVAL;
	}
	return 0;
}

/* Parse @file; on error print "FILE:LINE: reason" to stderr. */
static int parse_manifest(const char *file, struct nm_policy_set *set)
{
	struct nm_error perr;
	char msg[1024];
	int err;

	memset(&perr, 0, sizeof(perr));
	err = nm_policy_parse_file(file, set, &perr);
	if (err) {
		if (perr.reason[0])
			fprintf(stderr, "%s\n", nm_error_str(&perr, msg, sizeof(msg)));
		else
			fprintf(stderr, "%s: %s\n", file, strerror(-err));
	}
	return err;
}

int cmd_policy_validate(int argc, char **argv)
{
	struct nm_policy_set set;
	const char *file;
	int err;

	err = file_arg(argc, argv, "validate", &file);
	if (err)
		return err;
	err = parse_manifest(file, &set);
	if (err)
		return err;
	if (opt_json) {
		printf("{\"file\":");
		json_str(file);
		printf(",\"valid\":%zu}\n", set.n);
	} else {
		printf("%s: %zu %s valid\n", file, set.n,
		       set.n == 1 ? "policy" : "policies");
	}
	nm_policy_set_free(&set);
	return 0;
}

/* Read @file whole (for storing it as given). */
static int read_whole(const char *file, char **buf, size_t *len)
{
	FILE *f;
	long sz;
	int err = 0;

	f = fopen(file, "re");
	if (!f) {
		err = -errno;
		pr_warn("failed to open file %s: %s", file, strerror(-err));
		return err;
	}
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		err = -errno;
		pr_warn("failed to read file %s: %s", file, strerror(-err));
		goto out;
	}
	*buf = malloc((size_t)sz + 1);
	if (!*buf) {
		err = -ENOMEM;
		goto out;
	}
	*len = fread(*buf, 1, (size_t)sz, f);
	if (ferror(f)) {
		err = -EIO;
		pr_warn("failed to read file %s: I/O error", file);
		free(*buf);
		goto out;
	}
	(*buf)[*len] = '\0';
out:
	fclose(f);
	return err;
}

/*
 * What apply and delete did: the policies of @set, or the one name @one
 * when @set is NULL, then the sync counts.
 */
static void report(const char *verb, const struct nm_policy_set *set,
		   const char *one, const struct nm_sync_stats *stats)
{
	size_t i;

	printf(opt_json ? "{\"%s\":[" : "%s ", verb);
	for (i = 0; set && i < set->n; i++) {
		if (opt_json) {
			printf("%s\"%s/%s\"", i ? "," : "", set->v[i].namespace,
			       set->v[i].name);
		} else {
			printf("%s%s/%s", i ? ", " : "", set->v[i].namespace,
			       set->v[i].name);
		}
	}
	if (!set)
		printf(opt_json ? "\"%s\"" : "%s", one);
	printf(opt_json ? "]," : "\n");
	ctl_sync_report("compiled", stats);
}

int cmd_policy_apply(int argc, char **argv)
{
	struct nm_policy_set in = {}, again = {}, set = {};
	struct nm_compiled dry = {};
	struct nm_sync_stats stats;
	struct node_ctx n;
	const char *file;
	char *buf = NULL;
	size_t len = 0;
	int err;

	memset(&n, 0, sizeof(n));
	err = file_arg(argc, argv, "apply", &file);
	if (err)
		return err;
	/* Everything is checked before anything is written. */
	err = parse_manifest(file, &in);
	if (err)
		return err;
	err = read_whole(file, &buf, &len);
	if (err)
		goto out;
	err = node_open(&n, true);
	if (err)
		goto out;
	err = load_store(&n.st, &set);
	if (err)
		goto out;
	err = parse_manifest(file, &again);
	if (!err)
		err = nm_policy_set_merge(&set, &again);
	if (!err)
		err = nm_policy_compile_node(&n.maps, &n.st, &n.ids, &set, &dry);
	if (err)
		goto out;
	err = nm_policy_store_write(&n.st, file, buf, len, &in);
	if (err)
		goto out;
	err = nm_policy_sync(&n.maps, &n.st, &n.ids, &set, NULL, &stats, NULL);
	if (err)
		goto out;
	report("applied", &in, NULL, &stats);
out:
	nm_compiled_free(&dry);
	nm_policy_set_free(&again);
	nm_policy_set_free(&set);
	nm_policy_set_free(&in);
	free(buf);
	node_close(&n);
	return err;
}

int cmd_policy_delete(int argc, char **argv)
{
	struct nm_policy_set in = {}, set = {};
	struct nm_sync_stats stats;
	struct node_ctx n;
	const char *file, *pos;
	char ns[NM_LABEL_VALUE_MAX + 2], *slash = NULL;
	size_t i;
	int err;

	memset(&n, 0, sizeof(n));
	err = policy_args(argc, argv, "delete", &file, &pos);
	if (err)
		return err;
	if (!file == !pos) {
		pr_warn("policy delete takes -f FILE or NAMESPACE/NAME");
		return -EINVAL;
	}
	if (file) {
		err = parse_manifest(file, &in);
		if (err)
			return err;
	} else {
		slash = strchr(pos, '/');
		if (!slash || slash == pos || !slash[1] ||
		    (size_t)(slash - pos) >= sizeof(ns)) {
			pr_warn("bad policy name '%s': expected NAMESPACE/NAME", pos);
			return -EINVAL;
		}
		memcpy(ns, pos, (size_t)(slash - pos));
		ns[slash - pos] = '\0';
	}
	err = node_open(&n, true);
	if (!err)
		err = load_store(&n.st, &set);
	if (err)
		goto out;
	/* All named policies must be applied, or nothing is deleted. */
	for (i = 0; i < (file ? in.n : 1); i++) {
		const char *dns = file ? in.v[i].namespace : ns;
		const char *dname = file ? in.v[i].name : slash + 1;

		err = nm_policy_set_remove(&set, dns, dname);
		if (err == -ENOENT)
			pr_warn("failed to delete policy %s/%s on %s: not applied",
				dns, dname, n.st.dir);
		if (err)
			goto out;
	}
	for (i = 0; i < (file ? in.n : 1); i++) {
		err = nm_policy_store_remove(&n.st, file ? in.v[i].namespace : ns,
					     file ? in.v[i].name : slash + 1);
		if (err && err != -ENOENT)
			goto out;
	}
	err = nm_policy_sync(&n.maps, &n.st, &n.ids, &set, NULL, &stats, NULL);
	if (err)
		goto out;
	report("deleted", file ? &in : NULL, pos, &stats);
out:
	nm_policy_set_free(&set);
	nm_policy_set_free(&in);
	node_close(&n);
	return err;
}

static const char *rule_kind_name(enum nm_rule_kind k)
{
	static const char *const names[NM_RULE_KINDS] = {
		"ingress", "egress", "ingressDeny", "egressDeny"
	};

	return k < NM_RULE_KINDS ? names[k] : "?";
}

int cmd_policy_list(int argc, char **argv)
{
	struct nm_policy_set set = {};
	struct nm_ep_rec *eps = NULL;
	struct node_ctx n;
	size_t n_eps = 0, i, j, sel;
	int err, k;

	err = ctl_args(argc, argv, "policy list", NULL, NULL);
	if (err)
		return err;
	err = node_open(&n, false);
	if (!err)
		err = load_store(&n.st, &set);
	if (!err)
		err = nm_endpoints_read(&n.maps, &eps, &n_eps);
	if (err)
		goto out;
	ctl_list_begin("no policies\n", set.n);
	if (!opt_json && set.n)
		printf("%-40s %9s %7s %6s %11s %10s\n", "NAMESPACE/NAME",
		       "ENDPOINTS", "INGRESS", "EGRESS", "INGRESSDENY",
		       "EGRESSDENY");
	for (i = 0; i < set.n; i++) {
		const struct nm_policy *p = &set.v[i];
		char nn[256];

		for (j = 0, sel = 0; j < n_eps; j++) {
			const struct nm_identity_info *info =
				nm_idstore_find(&n.ids, eps[j].val.identity);

			sel += info && nm_policy_selects(p, &info->labels);
		}
		snprintf(nn, sizeof(nn), "%s/%s", p->namespace, p->name);
		if (opt_json) {
			printf("%s{\"namespace\":", ctl_sep(i));
			json_str(p->namespace);
			printf(",\"name\":");
			json_str(p->name);
			printf(",\"endpoints\":%zu,\"enforces_ingress\":%s,\"enforces_egress\":%s",
			       sel, p->enforces[NM_POLICY_INGRESS] ? "true" : "false",
			       p->enforces[NM_POLICY_EGRESS] ? "true" : "false");
			for (k = 0; k < NM_RULE_KINDS; k++)
				printf(",\"%s\":%zu", rule_kind_name(k),
				       p->n_rules[k]);
			putchar('}');
		} else {
			printf("%-40s %9zu %7zu %6zu %11zu %10zu\n", nn, sel,
			       p->n_rules[NM_RULE_INGRESS],
			       p->n_rules[NM_RULE_EGRESS],
			       p->n_rules[NM_RULE_INGRESS_DENY],
			       p->n_rules[NM_RULE_EGRESS_DENY]);
		}
	}
	ctl_list_end();
out:
	free(eps);
	nm_policy_set_free(&set);
	node_close(&n);
	return err;
}

static int pkey_cmp(const void *a, const void *b)
{
	const struct nm_policy_entry *x = a, *y = b;

	if (x->key.dir != y->key.dir)
		return x->key.dir < y->key.dir ? -1 : 1;
	return memcmp(&x->key, &y->key, sizeof(x->key));
}

/* The nm_policy_v1 entries of one endpoint, collected by ctl_map_walk(). */
struct ep_entries {
	__u32 endpoint_id;
	struct nm_policy_entry *v;
	size_t n;
};

static int collect_entry(const void *key, const void *val, size_t i, void *ctx)
{
	const struct nm_policy_key *k = key;
	struct ep_entries *e = ctx;
	struct nm_policy_entry *ne;

	(void)i;
	if (k->endpoint_id != e->endpoint_id)
		return 0;
	ne = realloc(e->v, (e->n + 1) * sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	e->v = ne;
	e->v[e->n].key = *k;
	memcpy(&e->v[e->n].val, val, sizeof(e->v[e->n].val));
	e->n++;
	return 0;
}

int cmd_policy_get(int argc, char **argv)
{
	struct ep_entries pe = {};
	struct nm_policy_entry *ents = NULL;
	struct nm_policy_set set = {};
	struct nm_compiled c = {};
	struct nm_endpoint_key ek = {};
	struct nm_endpoint_val ev;
	struct node_ctx n;
	char ids[48], ps[24], ip[INET_ADDRSTRLEN];
	size_t cnt = 0, i;
	int err, d;

	memset(&n, 0, sizeof(n));
	if (argc != 1 || argv[0][0] == '-' || nm_parse_ipv4(argv[0], &ek.addr)) {
		pr_warn("policy get takes exactly one endpoint IP");
		return -EINVAL;
	}
	err = node_open(&n, false);
	if (err)
		goto out;
	err = node_endpoint(&n, argv[0], &ek, &ev);
	if (err)
		goto out;
	/* The rule table of the same inputs gives the same rule ids. */
	err = load_store(&n.st, &set);
	if (!err)
		err = nm_policy_compile_node(&n.maps, &n.st, &n.ids, &set, &c);
	if (err)
		goto out;
	pe.endpoint_id = ev.endpoint_id;
	err = ctl_map_walk(n.maps.policy, NM_MAP_POLICY, n.maps.pin_root,
			   sizeof(struct nm_policy_key),
			   sizeof(struct nm_policy_val), collect_entry, &pe);
	ents = pe.v;
	cnt = pe.n;
	if (err)
		goto out;
	if (cnt)
		qsort(ents, cnt, sizeof(*ents), pkey_cmp);
	if (opt_json) {
		printf("{\"endpoint\":\"%s\",\"endpoint_id\":%u,\"identity\":%llu,\"labels\":",
		       ip_str(ek.addr, ip), ev.endpoint_id,
		       (unsigned long long)ev.identity);
		json_labels(&n.ids, ev.identity);
		printf(",\"ingress_enforced\":%s,\"egress_enforced\":%s,\"rules\":[",
		       ev.flags & NM_EP_F_INGRESS_POLICY ? "true" : "false",
		       ev.flags & NM_EP_F_EGRESS_POLICY ? "true" : "false");
	} else {
		char *l = id_labels(&n.ids, ev.identity);

		printf("endpoint %s id %u identity %s %s\n", ip_str(ek.addr, ip),
		       ev.endpoint_id, id_str(ev.identity, ids, sizeof(ids)),
		       l ?: "?");
		free(l);
	}
	for (i = 0; i < cnt; i++) {
		const struct nm_policy_entry *e = &ents[i];
		const struct nm_rule_ref *r = NULL;
		bool in = e->key.dir == NM_POLICY_INGRESS;
		char *l = NULL;

		if (e->val.rule_id && e->val.rule_id <= c.n_rules)
			r = &c.rules[e->val.rule_id - 1];
		if (e->key.identity != NM_ID_ANY)
			l = id_labels(&n.ids, e->key.identity);
		if (opt_json) {
			printf("%s{\"direction\":\"%s\",\"peer\":", i ? "," : "",
			       in ? "ingress" : "egress");
			if (e->key.identity == NM_ID_ANY) {
				printf("\"any\"");
			} else {
				printf("{\"identity\":%llu,\"labels\":",
				       (unsigned long long)e->key.identity);
				json_labels(&n.ids, e->key.identity);
				putchar('}');
			}
			printf(",\"port\":\"%s\",\"verdict\":\"%s\",\"rule_id\":%u",
			       port_str(&e->key, ps, sizeof(ps)),
			       e->val.verdict == NM_POLICY_DENY ? "deny" : "allow",
			       e->val.rule_id);
			if (r)
				printf(",\"policy\":\"%s/%s\",\"rule\":\"%s[%zu]\"",
				       r->ns, r->name, rule_kind_name(r->kind),
				       r->index);
			putchar('}');
		} else {
			printf("  %-7s %-5s %s %-20s %-12s %s",
			       in ? "ingress" : "egress",
			       e->val.verdict == NM_POLICY_DENY ? "deny" : "allow",
			       in ? "from" : "to  ",
			       e->key.identity == NM_ID_ANY ?
				       "any" :
				       id_str(e->key.identity, ids, sizeof(ids)),
			       port_str(&e->key, ps, sizeof(ps)), l ? l : "");
			if (r)
				printf("  (%s/%s %s[%zu])", r->ns, r->name,
				       rule_kind_name(r->kind), r->index);
			else
				printf("  (rule %u, not in the applied policies)",
				       e->val.rule_id);
			putchar('\n');
		}
		free(l);
	}
	if (opt_json) {
		printf("]}\n");
		goto out;
	}
	for (d = NM_POLICY_INGRESS; d <= NM_POLICY_EGRESS; d++) {
		__u8 f = d == NM_POLICY_INGRESS ? NM_EP_F_INGRESS_POLICY :
						  NM_EP_F_EGRESS_POLICY;

		printf("  %-7s %s\n", d == NM_POLICY_INGRESS ? "ingress" : "egress",
		       ev.flags & f ? "default deny (selected by a policy)" :
				      "default allow (no policy selects it)");
	}
out:
	free(ents);
	nm_compiled_free(&c);
	nm_policy_set_free(&set);
	node_close(&n);
	return err;
}
