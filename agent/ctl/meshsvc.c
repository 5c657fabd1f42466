// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl service validate|apply|manifests, and delete with --config:
 * MeshService manifests in the cluster's etcd (agent/meshsvc_kv.h), which
 * the cluster's heartbeat writer exports as service records. The etcd
 * endpoints and credentials come from the agent's config file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "agent/ctl/ctl.h"
#include "agent/etcd.h"
#include "agent/log.h"
#include "agent/meshsvc_kv.h"
#include "agent/ywalk.h"
#include "maps/backend.h"

/* The options every manifest command takes. */
struct svc_args {
	const char *file;
	const char *config;
	const char *pos;
};

static int svc_args(int argc, char **argv, const char *cmd, struct svc_args *a,
		    bool want_pos)
{
	const struct ctl_opt opts[] = { { "-f", &a->file },
					{ "--file", &a->file },
					{ "--config", &a->config },
					{} };
	char what[32];

	memset(a, 0, sizeof(*a));
	snprintf(what, sizeof(what), "service %s", cmd);
	return ctl_args(argc, argv, what, opts, want_pos ? &a->pos : NULL);
}

static void print_error(const struct nm_error *e)
{
	char msg[1024];

	fprintf(stderr, "%s\n", nm_error_str(e, msg, sizeof(msg)));
}

/* Read and parse @file; "FILE:LINE: reason" on stderr when it is refused. */
static int read_manifests(const char *file, char **buf,
			  struct nm_meshsvc_set *set)
{
	struct nm_error e;
	size_t len;
	int err;

	err = nm_read_file_as(file, "MeshService file", NM_MESHSVC_FILE_MAX,
			      buf, &len, &e);
	if (err) {
		print_error(&e);
		return err;
	}
	err = nm_meshsvc_parse(*buf, len, file, set, &e);
	if (!err && !set->n) {
		memset(&e, 0, sizeof(e));
		snprintf(e.file, sizeof(e.file), "%s", file);
		snprintf(e.reason, sizeof(e.reason),
			 "no MeshService in the file");
		err = -EINVAL;
	}
	if (err) {
		print_error(&e);
		free(*buf);
		*buf = NULL;
	}
	return err;
}

/* A password file's first line, malloc'd. */
static int read_password(const char *path, char **out)
{
	struct nm_error e;
	char *buf;
	size_t len;
	int err;

	err = nm_read_file_as(path, "password file", 4096, &buf, &len, &e);
	if (err) {
		print_error(&e);
		return err;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = buf;
	return 0;
}

int ctl_etcd_open(const char *config, struct nm_agent_config *cfg,
		  struct nm_etcd **out)
{
	struct nm_etcd_config ec = {};
	struct nm_etcd_err eerr = {};
	struct nm_error e;
	char *password = NULL;
	size_t i;
	int err;

	err = nm_config_load(config, cfg, &e);
	if (err) {
		print_error(&e);
		return err;
	}
	if (cfg->etcd.password_file) {
		err = read_password(cfg->etcd.password_file, &password);
		if (err)
			goto err_cfg;
	}
	for (i = 0; i < cfg->etcd.n_endpoints && i < NM_ETCD_MAX_ENDPOINTS; i++)
		ec.endpoints[i] = cfg->etcd.endpoints[i];
	ec.n_endpoints = i;
	ec.ca_file = cfg->etcd.ca_file;
	ec.cert_file = cfg->etcd.cert_file;
	ec.key_file = cfg->etcd.key_file;
	ec.username = cfg->etcd.username;
	ec.password = password;
	err = nm_etcd_open(&ec, out, &eerr);
	free(password);
	if (err) {
		pr_warn("%s", eerr.msg);
		goto err_cfg;
	}
	return 0;
err_cfg:
	nm_config_free(cfg);
	return err;
}

static int need_config(const struct svc_args *a, const char *cmd)
{
	if (a->config)
		return 0;
	pr_warn("service %s needs --config AGENT_CONFIG (the cluster's etcd)",
		cmd);
	return -EINVAL;
}

int cmd_service_validate(int argc, char **argv)
{
	struct nm_meshsvc_set set = {};
	struct svc_args a;
	char *buf = NULL;
	int err;

	err = svc_args(argc, argv, "validate", &a, false);
	if (err)
		return err;
	if (!a.file || a.config) {
		pr_warn("service validate takes -f FILE");
		return -EINVAL;
	}
	err = read_manifests(a.file, &buf, &set);
	if (err)
		return err;
	if (opt_json) {
		printf("{\"file\":");
		json_str(a.file);
		printf(",\"valid\":%zu}\n", set.n);
	} else {
		printf("%s: %zu MeshService%s valid\n", a.file, set.n,
		       set.n == 1 ? "" : "s");
	}
	nm_meshsvc_set_free(&set);
	free(buf);
	return 0;
}

/*
 * Refuse a manifest of @set claiming a frontend that another stored
 * MeshService (one @set does not replace) claims, as FILE:LINE: reason.
 */
static int check_clashes(const char *file, const struct nm_meshsvc_set *set,
			 const struct nm_meshsvc_stored_set *stored)
{
	char fes[NM_FRONTEND_STRLEN];
	struct nm_frontend fe;
	struct nm_error e;
	size_t i, j, k;

	for (i = 0; i < set->n; i++) {
		const struct nm_meshsvc *s = &set->v[i];

		/* Within the file too: two names, one frontend. */
		for (k = 0; k < i; k++) {
			if (!nm_meshsvc_clash(&set->v[k], s, &fe))
				continue;
			memset(&e, 0, sizeof(e));
			snprintf(e.file, sizeof(e.file), "%s", file);
			e.line = s->line;
			snprintf(
				e.reason, sizeof(e.reason),
				"frontend %s is claimed by MeshService %s/%s (line %u) too",
				nm_frontend_str(&fe, fes, sizeof(fes)),
				set->v[k].ns, set->v[k].name, set->v[k].line);
			print_error(&e);
			return -EEXIST;
		}
		for (j = 0; j < stored->n; j++) {
			const struct nm_meshsvc_stored *o = &stored->v[j];

			if (!o->ok || (!strcmp(o->svc.ns, s->ns) &&
				       !strcmp(o->svc.name, s->name)))
				continue;
			for (k = 0; k < set->n; k++) {
				if (!strcmp(o->svc.ns, set->v[k].ns) &&
				    !strcmp(o->svc.name, set->v[k].name))
					break;
			}
			if (k < set->n || !nm_meshsvc_clash(&o->svc, s, &fe))
				continue;
			memset(&e, 0, sizeof(e));
			snprintf(e.file, sizeof(e.file), "%s", file);
			e.line = s->line;
			snprintf(
				e.reason, sizeof(e.reason),
				"frontend %s is claimed by MeshService %s/%s already (%s)",
				nm_frontend_str(&fe, fes, sizeof(fes)),
				o->svc.ns, o->svc.name, o->key);
			print_error(&e);
			return -EEXIST;
		}
	}
	return 0;
}

static void print_names(const char *verb, const struct nm_meshsvc_set *set,
			size_t n)
{
	size_t i;

	if (opt_json) {
		printf("{\"%s\":[", verb);
		for (i = 0; i < n; i++) {
			printf("%s{\"namespace\":", ctl_sep(i));
			json_str(set->v[i].ns);
			printf(",\"name\":");
			json_str(set->v[i].name);
			putchar('}');
		}
		printf("]}\n");
		return;
	}
	for (i = 0; i < n; i++)
		printf("%s MeshService %s/%s\n", verb, set->v[i].ns,
		       set->v[i].name);
}

int cmd_service_apply(int argc, char **argv)
{
	struct nm_meshsvc_stored_set stored = {};
	struct nm_meshsvc_set set = {};
	struct nm_agent_config cfg;
	struct nm_etcd_err eerr = {};
	struct nm_etcd *etcd;
	struct nm_meshsvc check;
	struct nm_error e;
	struct svc_args a;
	char key[NM_KV_KEY_MAX + 1], *buf = NULL;
	size_t i, done = 0;
	int err;

	err = svc_args(argc, argv, "apply", &a, false);
	if (err)
		return err;
	if (!a.file) {
		pr_warn("service apply takes -f FILE --config AGENT_CONFIG");
		return -EINVAL;
	}
	err = need_config(&a, "apply");
	if (err)
		return err;
	/* Everything is checked before anything is written. */
	err = read_manifests(a.file, &buf, &set);
	if (err)
		return err;
	err = ctl_etcd_open(a.config, &cfg, &etcd);
	if (err)
		goto out_set;
	for (i = 0; i < set.n; i++) {
		err = nm_meshsvc_key(cfg.kv_prefix, set.v[i].ns, set.v[i].name,
				     key, sizeof(key));
		if (err) {
			pr_warn("failed to name MeshService %s/%s: key too long",
				set.v[i].ns, set.v[i].name);
			goto out_etcd;
		}
		/* What is stored is one document: it must stand alone. */
		err = nm_meshsvc_parse_stored(cfg.kv_prefix, key,
					      buf + set.v[i].doc_off,
					      set.v[i].doc_len, &check, &e);
		if (err) {
			print_error(&e);
			goto out_etcd;
		}
		nm_meshsvc_free(&check);
		if (set.v[i].doc_len > NM_MESHSVC_DOC_MAX) {
			pr_warn("failed to apply MeshService %s/%s: its manifest is %zu bytes, at most %u",
				set.v[i].ns, set.v[i].name, set.v[i].doc_len,
				NM_MESHSVC_DOC_MAX);
			err = -EFBIG;
			goto out_etcd;
		}
	}
	err = nm_meshsvc_load(etcd, cfg.kv_prefix, 0, &stored, NULL, &eerr);
	if (err) {
		pr_warn("%s", eerr.msg);
		goto out_etcd;
	}
	err = check_clashes(a.file, &set, &stored);
	if (err)
		goto out_stored;
	for (i = 0; i < set.n; i++, done++) {
		err = nm_meshsvc_key(cfg.kv_prefix, set.v[i].ns, set.v[i].name,
				     key, sizeof(key));
		if (!err)
			err = nm_etcd_put(etcd, key, buf + set.v[i].doc_off,
					  set.v[i].doc_len, 0, NULL, &eerr);
		if (err) {
			pr_warn("failed to apply MeshService %s/%s: %s",
				set.v[i].ns, set.v[i].name, eerr.msg);
			break;
		}
	}
	print_names("applied", &set, done);
out_stored:
	nm_meshsvc_stored_free(&stored);
out_etcd:
	nm_etcd_close(etcd);
	nm_config_free(&cfg);
out_set:
	nm_meshsvc_set_free(&set);
	free(buf);
	return err;
}

/* "NS/NAME" into one entry of @set (only ns and name are set). */
static int name_arg(const char *pos, struct nm_meshsvc_set *set)
{
	const char *slash = strchr(pos, '/');

	if (!slash || (size_t)(slash - pos) > NM_KV_NS_MAX ||
	    strlen(slash + 1) > NM_KV_NS_MAX)
		goto bad;
	set->v = calloc(1, sizeof(*set->v));
	if (!set->v)
		return -ENOMEM;
	set->n = 1;
	snprintf(set->v[0].ns, sizeof(set->v[0].ns), "%.*s", (int)(slash - pos),
		 pos);
	snprintf(set->v[0].name, sizeof(set->v[0].name), "%s", slash + 1);
	if (nm_dns_label_ok(set->v[0].ns) && nm_dns_label_ok(set->v[0].name))
		return 0;
bad:
	pr_warn("bad MeshService name '%s': expected NAMESPACE/NAME (DNS labels)",
		pos);
	return -EINVAL;
}

static int meshsvc_delete(int argc, char **argv)
{
	struct nm_meshsvc_set set = {};
	struct nm_agent_config cfg;
	struct nm_etcd_err eerr = {};
	struct nm_etcd_kv kv;
	struct nm_etcd *etcd;
	struct svc_args a;
	char key[NM_KV_KEY_MAX + 1], *buf = NULL;
	size_t i, done = 0;
	int err;

	err = svc_args(argc, argv, "delete", &a, true);
	if (err)
		return err;
	if (!a.file == !a.pos) {
		pr_warn("service delete takes -f FILE or NAMESPACE/NAME with --config AGENT_CONFIG");
		return -EINVAL;
	}
	err = a.file ? read_manifests(a.file, &buf, &set) :
		       name_arg(a.pos, &set);
	if (err)
		goto out_set;
	err = ctl_etcd_open(a.config, &cfg, &etcd);
	if (err)
		goto out_set;
	/* Every one named must be stored, or nothing is deleted. */
	for (i = 0; i < set.n; i++) {
		err = nm_meshsvc_key(cfg.kv_prefix, set.v[i].ns, set.v[i].name,
				     key, sizeof(key));
		if (!err)
			err = nm_etcd_get(etcd, key, &kv, &eerr);
		if (err == -ENOENT)
			pr_warn("failed to delete MeshService %s/%s: not applied (no %s)",
				set.v[i].ns, set.v[i].name, key);
		else if (err)
			pr_warn("failed to delete MeshService %s/%s: %s",
				set.v[i].ns, set.v[i].name, eerr.msg);
		if (err)
			goto out_etcd;
		nm_etcd_kv_free(&kv);
	}
	for (i = 0; i < set.n; i++, done++) {
		err = nm_meshsvc_key(cfg.kv_prefix, set.v[i].ns, set.v[i].name,
				     key, sizeof(key));
		if (!err)
			err = nm_etcd_delete(etcd, key, false, NULL, NULL,
					     &eerr);
		if (err) {
			pr_warn("failed to delete MeshService %s/%s: %s",
				set.v[i].ns, set.v[i].name, eerr.msg);
			break;
		}
	}
	print_names("deleted", &set, done);
out_etcd:
	nm_etcd_close(etcd);
	nm_config_free(&cfg);
out_set:
	nm_meshsvc_set_free(&set);
	free(buf);
	return err;
}

/* With --config a MeshService, without it a programmed frontend. */
int cmd_service_delete_any(int argc, char **argv)
{
	bool manifest = false;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--config") ||
		    !strncmp(argv[i], "--config=", 9))
			return meshsvc_delete(argc, argv);
		/* -f FILE or NS/NAME: a MeshService, whatever else is there. */
		manifest |= !strcmp(argv[i], "-f") ||
			    !strncmp(argv[i], "--file", 6) ||
			    (strchr(argv[i], '/') && !strchr(argv[i], ':'));
	}
	if (manifest) {
		pr_warn("service delete of a MeshService (-f FILE or NAMESPACE/NAME) needs --config AGENT_CONFIG; without it, it takes a frontend VIP:PORT/PROTO");
		return -EINVAL;
	}
	return cmd_service_delete(argc, argv);
}

/* ---- service manifests ---------------------------------------------------- */

/* The cluster's exported records, decoded, by namespace/name. */
struct exports {
	struct nm_kv_record *v;
	size_t n;
};

static void exports_free(struct exports *x)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		nm_kv_record_free(&x->v[i]);
	free(x->v);
}

static int load_exports(struct nm_etcd *etcd, const struct nm_kv_ctx *ctx,
			struct exports *x)
{
	struct nm_etcd_range_opts o = { .prefix = true };
	char dir[NM_KV_KEY_MAX + 1], why[NM_KV_ERR_LEN];
	struct nm_etcd_err eerr = {};
	struct nm_etcd_kvs kvs = {};
	size_t i;
	int err;

	memset(x, 0, sizeof(*x));
	err = nm_kv_state_prefix(ctx->prefix, NM_KV_SERVICES, ctx->cluster, dir,
				 sizeof(dir));
	if (err) {
		pr_warn("failed to list services of cluster %s: prefix too long",
			ctx->cluster);
		return err;
	}
	o.key = dir;
	err = nm_etcd_range(etcd, &o, &kvs, &eerr);
	if (err) {
		pr_warn("%s", eerr.msg);
		return err;
	}
	x->v = calloc(kvs.n + 1, sizeof(*x->v));
	if (!x->v) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < kvs.n; i++) {
		err = nm_kv_decode(ctx, kvs.kv[i].key, kvs.kv[i].value,
				   kvs.kv[i].value_len, &x->v[x->n], why,
				   sizeof(why));
		if (err == -ENOMEM)
			goto out;
		/* Shown as not exported; the mirrors say why. */
		if (err) {
			pr_info("%s", why);
			continue;
		}
		x->n++;
	}
	err = 0;
out:
	if (err) {
		pr_warn("failed to list services of cluster %s: out of memory",
			ctx->cluster);
		exports_free(x);
		memset(x, 0, sizeof(*x));
	}
	nm_etcd_kvs_free(&kvs);
	return err;
}

static const struct nm_kv_service *find_export(const struct exports *x,
					       const struct nm_meshsvc *s)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		if (!strcmp(x->v[i].svc.namespace, s->ns) &&
		    !strcmp(x->v[i].svc.name, s->name))
			return &x->v[i].svc;
	}
	return NULL;
}

static size_t count_state(const struct nm_kv_service *r, __u8 state)
{
	size_t i, n = 0;

	for (i = 0; i < r->n_backends; i++)
		n += r->backends[i].state == state;
	return n;
}

static void print_manifest_json(const struct nm_meshsvc_stored *m,
				const struct nm_kv_service *r, size_t i)
{
	char fes[NM_FRONTEND_STRLEN], msg[1024];
	const struct nm_meshsvc *s = &m->svc;
	struct nm_frontend fe;
	size_t j;

	printf("%s{\"key\":", ctl_sep(i));
	json_str(m->key);
	if (!m->ok) {
		printf(",\"ok\":false,\"error\":");
		json_str(nm_error_str(&m->err, msg, sizeof(msg)));
		putchar('}');
		return;
	}
	printf(",\"ok\":true,\"namespace\":");
	json_str(s->ns);
	printf(",\"name\":");
	json_str(s->name);
	printf(",\"frontends\":[");
	for (j = 0; j < s->n_ports; j++) {
		nm_meshsvc_frontend(s, j, &fe);
		printf("%s{\"frontend\":\"%s\",\"target_port\":%u}", ctl_sep(j),
		       nm_frontend_str(&fe, fes, sizeof(fes)),
		       s->ports[j].target_port);
	}
	printf("],\"selector\":{");
	for (j = 0; j < s->selector.n; j++) {
		printf("%s", ctl_sep(j));
		json_str(s->selector.v[j].key);
		putchar(':');
		json_str(s->selector.v[j].value);
	}
	printf("},\"global\":%s,\"shared\":%s,\"affinity\":\"%s\",\"weight\":%u,\"priority\":%u,\"exported\":",
	       s->global ? "true" : "false", s->shared ? "true" : "false",
	       nm_kv_affinity_name(s->affinity), s->weight, s->priority);
	if (r)
		printf("{\"backends\":%zu,\"active\":%zu,\"terminating\":%zu}}",
		       r->n_backends, count_state(r, NM_BE_ACTIVE),
		       count_state(r, NM_BE_TERMINATING));
	else
		printf("null}");
}

static void print_manifest_text(const struct nm_meshsvc_stored *m,
				const struct nm_kv_service *r)
{
	char fes[NM_FRONTEND_STRLEN], msg[1024], *sel;
	const struct nm_meshsvc *s = &m->svc;
	struct nm_frontend fe;
	size_t j;

	if (!m->ok) {
		printf("%s\n    refused: %s\n", m->key,
		       nm_error_str(&m->err, msg, sizeof(msg)));
		return;
	}
	printf("%s/%s", s->ns, s->name);
	for (j = 0; j < s->n_ports; j++) {
		nm_meshsvc_frontend(s, j, &fe);
		printf(" %s->%u", nm_frontend_str(&fe, fes, sizeof(fes)),
		       s->ports[j].target_port);
	}
	sel = nm_labels_str(&s->selector);
	printf("\n    selector %s, %s, %s, affinity %s, weight %u, priority %u\n",
	       sel ?: "?", s->global ? "global" : "not global",
	       s->shared ? "shared" : "not shared",
	       nm_kv_affinity_name(s->affinity), s->weight, s->priority);
	free(sel);
	if (r)
		printf("    exported: %zu backends (%zu active, %zu terminating)\n",
		       r->n_backends, count_state(r, NM_BE_ACTIVE),
		       count_state(r, NM_BE_TERMINATING));
	else
		printf("    not exported yet\n");
}

int cmd_service_manifests(int argc, char **argv)
{
	struct nm_meshsvc_stored_set set = {};
	struct nm_agent_config cfg;
	struct nm_etcd_err eerr = {};
	struct exports x = {};
	struct nm_etcd *etcd;
	struct nm_kv_ctx ctx;
	struct svc_args a;
	size_t i;
	int err;

	err = svc_args(argc, argv, "manifests", &a, false);
	if (err)
		return err;
	if (a.file) {
		pr_warn("service manifests takes --config AGENT_CONFIG only");
		return -EINVAL;
	}
	err = need_config(&a, "manifests");
	if (err)
		return err;
	err = ctl_etcd_open(a.config, &cfg, &etcd);
	if (err)
		return err;
	ctx = (struct nm_kv_ctx){ cfg.kv_prefix, cfg.cluster, cfg.cluster_id };
	err = nm_meshsvc_load(etcd, cfg.kv_prefix, 0, &set, NULL, &eerr);
	if (err) {
		pr_warn("%s", eerr.msg);
		goto out_etcd;
	}
	err = load_exports(etcd, &ctx, &x);
	if (err)
		goto out_set;
	ctl_list_begin("no MeshServices\n", set.n);
	for (i = 0; i < set.n; i++) {
		const struct nm_kv_service *r =
			set.v[i].ok ? find_export(&x, &set.v[i].svc) : NULL;

		if (opt_json)
			print_manifest_json(&set.v[i], r, i);
		else
			print_manifest_text(&set.v[i], r);
	}
	ctl_list_end();
	exports_free(&x);
out_set:
	nm_meshsvc_stored_free(&set);
out_etcd:
	nm_etcd_close(etcd);
	nm_config_free(&cfg);
	return err;
}
