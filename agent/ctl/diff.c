// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl diff: the map state every cluster's etcd asks for, computed
 * afresh as the agent's map sink would write it (agent/desired.h), against
 * what the pinned maps hold. One line per difference; exit 0 when equal,
 * 1 when they differ, 2 when etcd or the maps cannot be read.
 *
 * Records are listed and validated the way the agent's mirror does it for
 * that connection (agent/mirror.c): rejected records are no desired state,
 * only counted. Which remote clusters are reachable comes from the running
 * agent (GET /v1/status); without an agent, or an agent that does not say,
 * every cluster is taken as reachable, and a note on stderr says so.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <bpf/bpf.h>
#include <json-c/json.h>

#include "agent/config.h"
#include "agent/ctl/ctl.h"
#include "agent/desired.h"
#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "agent/log.h"
#include "maps/ipcache.h"
#include "maps/maglev.h"
#include "maps/node.h"

/* Exit statuses: documented in the command's help. */
#define DIFF_EQUAL 0
#define DIFF_DIFFER 1
#define DIFF_FAILED 2

#define DIFF_PAGE 5000 /* the mirror's page size */

/* One cluster: where to list it, and what the list gave. */
struct dcluster {
	char *name;
	__u16 id;
	bool local;
	const struct nm_etcd_conf *etcd;
	bool reachable;
	bool reach_known; /* the agent said */
	bool agent_synced;
	struct nm_kv_record *recs;
	size_t n_recs, cap_recs;
	__u64 rejected;
	char last_reject[NM_KV_ERR_LEN];
	__s64 revision;
	const char *prefix;
};

struct diff_ctx {
	struct nm_agent_config cfg;
	bool cfg_loaded;
	struct nm_remote_set remotes;
	struct nm_refusals refused;
	struct dcluster *cl;
	size_t n_cl;
	char node[NM_KV_NAME_MAX + 1];
	bool agent_up;
	struct nm_maps maps;
	bool maps_open;
	struct nm_actual_node *nodes;
	size_t n_nodes, cap_nodes;
	struct nm_actual_ip *ips;
	size_t n_ips, cap_ips;
	struct nm_svc_list svcs;
	__u32 **tables;
};

/* ---- the agent's view: node name, reachability -------------------------- */

/* GET /v1/status on @sock: a 200 with a body, else a reason in @why. */
static int fetch_status(const char *sock, struct ctl_reply *r, char *why,
			size_t len)
{
	int err;

	err = ctl_api_request(sock, "GET", "/v1/status", 5000L, r, why, len);
	if (err)
		return err;
	if (r->code != 200 || !r->buf) {
		snprintf(why, len, "HTTP %ld", r->code);
		return -EIO;
	}
	return 0;
}

static struct dcluster *cluster_find(struct diff_ctx *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n_cl; i++)
		if (!strcmp(d->cl[i].name, name))
			return &d->cl[i];
	return NULL;
}

/*
 * Take node name and per-cluster reachability from the agent. Not being
 * able to is no error: the diff then assumes reachable (and says so).
 */
static void agent_view(struct diff_ctx *d, const char *sock)
{
	json_object *root = NULL, *arr, *c, *v;
	struct ctl_reply b = {};
	char why[CTL_API_WHY_MAX];
	size_t i, n;

	if (fetch_status(sock, &b, why, sizeof(why))) {
		fprintf(stderr,
			"diff: no agent answers on %s (%s): taking every cluster as reachable\n",
			sock, why);
		goto out;
	}
	root = json_tokener_parse(b.buf);
	if (!root || !json_object_is_type(root, json_type_object)) {
		fprintf(stderr,
			"diff: the agent's status on %s is not a JSON object: taking every cluster as reachable\n",
			sock);
		goto out;
	}
	d->agent_up = true;
	if (!d->node[0] && json_object_object_get_ex(root, "node", &v) &&
	    json_object_is_type(v, json_type_string))
		snprintf(d->node, sizeof(d->node), "%s",
			 json_object_get_string(v));
	if (!json_object_object_get_ex(root, "clusters", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		goto out;
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		struct dcluster *dc;

		c = json_object_array_get_idx(arr, i);
		if (!json_object_object_get_ex(c, "name", &v) ||
		    !json_object_is_type(v, json_type_string))
			continue;
		dc = cluster_find(d, json_object_get_string(v));
		if (!dc)
			continue;
		if (json_object_object_get_ex(c, "synced", &v))
			dc->agent_synced = json_object_get_boolean(v);
		if (json_object_object_get_ex(c, "reachable", &v) &&
		    json_object_is_type(v, json_type_boolean)) {
			dc->reachable = json_object_get_boolean(v);
			dc->reach_known = true;
		}
	}
out:
	for (i = 0; i < d->n_cl; i++) {
		struct dcluster *dc = &d->cl[i];

		/* The local cluster is always reachable. */
		if (dc->local || !d->agent_up || dc->reach_known)
			continue;
		fprintf(stderr,
			"diff: the agent does not say whether cluster %s is reachable: taking it as reachable\n",
			dc->name);
	}
	json_object_put(root);
	free(b.buf);
}

/* ---- etcd: list and validate every cluster's records --------------------- */

/* As the mirror's apply_put(): skip, reject, or keep the record. */
static int list_cb(const struct nm_etcd_kv *kv, void *arg)
{
	struct dcluster *c = arg;
	struct nm_kv_ctx ctx = { .prefix = c->prefix,
				 .cluster = c->name,
				 .cluster_id = c->id };
	struct nm_kv_record *nv;
	char why[NM_KV_ERR_LEN];
	int ret;

	if (nm_desired_ignored(c->prefix, kv->key))
		return 0;
	if (c->n_recs == c->cap_recs) {
		size_t cap = c->cap_recs ? c->cap_recs * 2 : 256;

		nv = realloc(c->recs, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->recs = nv;
		c->cap_recs = cap;
	}
	if (strlen(kv->key) != kv->key_len) {
		/* A NUL inside would alias a shorter key. */
		snprintf(why, sizeof(why),
			 "rejected %.200s from cluster %s: NUL byte in the key",
			 kv->key, c->name);
		ret = -EINVAL;
	} else {
		ret = nm_kv_decode(&ctx, kv->key, kv->value, kv->value_len,
				   &c->recs[c->n_recs], why, sizeof(why));
	}
	if (ret == -EINVAL) {
		c->rejected++;
		snprintf(c->last_reject, sizeof(c->last_reject), "%s", why);
		pr_info("%s", why);
		return 0;
	}
	if (ret)
		return ret;
	c->n_recs++;
	return 0;
}

static int list_cluster(struct dcluster *c)
{
	struct nm_etcd_range_opts o = { .key = c->prefix,
					.prefix = true,
					.page_size = DIFF_PAGE };
	struct nm_etcd_config ec = {};
	struct nm_etcd_err eerr = { { 0 } };
	struct nm_etcd *etcd = NULL;
	char *password = NULL;
	size_t i;
	int err;

	if (c->etcd->password_file) {
		err = nm_read_password_file(c->etcd->password_file, &password);
		if (err)
			return err;
	}
	for (i = 0; i < c->etcd->n_endpoints && i < NM_ETCD_MAX_ENDPOINTS; i++)
		ec.endpoints[i] = c->etcd->endpoints[i];
	ec.n_endpoints = i;
	ec.ca_file = c->etcd->ca_file;
	ec.cert_file = c->etcd->cert_file;
	ec.key_file = c->etcd->key_file;
	ec.username = c->etcd->username;
	ec.password = password;
	err = nm_etcd_open(&ec, &etcd, &eerr);
	if (err) {
		pr_warn("failed to connect to the etcd of cluster %s: %s",
			c->name, eerr.msg);
		goto out;
	}
	err = nm_etcd_range_each(etcd, &o, list_cb, c, &c->revision, &eerr);
	if (err) {
		if (eerr.msg[0])
			pr_warn("failed to list cluster %s: %s", c->name,
				eerr.msg);
		else
			pr_warn("failed to list %s on cluster %s: %s",
				c->prefix, c->name, strerror(-err));
	}
	nm_etcd_close(etcd);
out:
	free(password);
	return err;
}

/* The local cluster and every good remote-cluster file. */
static int load_clusters(struct diff_ctx *d, const char *config)
{
	struct nm_error perr = {};
	char msg[1024];
	size_t i;
	int err;

	err = nm_config_load(config, &d->cfg, &perr);
	if (err) {
		pr_warn("failed to load agent config: %s",
			nm_error_str(&perr, msg, sizeof(msg)));
		return err;
	}
	d->cfg_loaded = true;
	if (d->cfg.remote_clusters_dir) {
		err = nm_remote_dir_load(d->cfg.remote_clusters_dir,
					 d->cfg.cluster, d->cfg.cluster_id,
					 NULL, &d->remotes, &d->refused, &perr);
		if (err) {
			pr_warn("failed to load remote clusters: %s",
				nm_error_str(&perr, msg, sizeof(msg)));
			return err;
		}
	}
	/* The agent refuses these too: they are not part of its mesh. */
	for (i = 0; i < d->refused.n; i++)
		fprintf(stderr,
			"diff: remote cluster file refused, left out: %s\n",
			nm_error_str(&d->refused.v[i], msg, sizeof(msg)));
	d->cl = calloc(d->remotes.n + 1, sizeof(*d->cl));
	if (!d->cl)
		return -ENOMEM;
	d->cl[0].name = d->cfg.cluster;
	d->cl[0].id = d->cfg.cluster_id;
	d->cl[0].local = true;
	d->cl[0].etcd = &d->cfg.etcd;
	for (i = 0; i < d->remotes.n; i++) {
		d->cl[i + 1].name = d->remotes.v[i].name;
		d->cl[i + 1].id = d->remotes.v[i].id;
		d->cl[i + 1].etcd = &d->remotes.v[i].etcd;
	}
	d->n_cl = d->remotes.n + 1;
	for (i = 0; i < d->n_cl; i++) {
		d->cl[i].reachable = true;
		d->cl[i].prefix = d->cfg.kv_prefix;
	}
	return 0;
}

/* ---- the maps ----------------------------------------------------------- */

static int walk_node(const void *key, const void *val, size_t i, void *arg)
{
	struct diff_ctx *d = arg;
	struct nm_actual_node *nv;

	(void)i;
	if (d->n_nodes == d->cap_nodes) {
		size_t cap = d->cap_nodes ? d->cap_nodes * 2 : 64;

		nv = realloc(d->nodes, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		d->nodes = nv;
		d->cap_nodes = cap;
	}
	d->nodes[d->n_nodes].ip = ((const struct nm_node_key *)key)->node_ip;
	memcpy(&d->nodes[d->n_nodes].val, val, sizeof(struct nm_node_val));
	d->n_nodes++;
	return 0;
}

static int walk_ip(const void *key, const void *val, size_t i, void *arg)
{
	const struct nm_ipcache_key *k = key;
	struct diff_ctx *d = arg;
	struct nm_actual_ip *nv;

	(void)i;
	/* The sink writes /32s only; shorter prefixes are policy CIDRs. */
	if (k->prefixlen != 32)
		return 0;
	if (d->n_ips == d->cap_ips) {
		size_t cap = d->cap_ips ? d->cap_ips * 2 : 256;

		nv = realloc(d->ips, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		d->ips = nv;
		d->cap_ips = cap;
	}
	d->ips[d->n_ips].ip = k->addr;
	memcpy(&d->ips[d->n_ips].val, val, sizeof(struct nm_ipcache_val));
	d->n_ips++;
	return 0;
}

static int read_maps(struct diff_ctx *d)
{
	const char *root = opt_pin_root ? opt_pin_root : d->cfg.pin_root;
	__u32 m, *keys = NULL;
	size_t i;
	int err;

	err = nm_maps_open(root, &d->maps);
	if (err)
		return err;
	d->maps_open = true;
	err = ctl_map_walk(d->maps.nodes, NM_MAP_NODES, d->maps.pin_root,
			   sizeof(struct nm_node_key),
			   sizeof(struct nm_node_val), walk_node, d);
	if (err)
		return err;
	err = ctl_map_walk(d->maps.ipcache, NM_MAP_IPCACHE, d->maps.pin_root,
			   sizeof(struct nm_ipcache_key),
			   sizeof(struct nm_ipcache_val), walk_ip, d);
	if (err)
		return err;
	err = nm_svc_list(&d->maps, &d->svcs);
	if (err) {
		pr_warn("failed to list services on %s: %s", d->maps.pin_root,
			strerror(-err));
		return err;
	}
	m = d->maps.cfg.maglev_m;
	d->tables = calloc(d->svcs.n ?: 1, sizeof(*d->tables));
	keys = calloc(m, sizeof(*keys));
	if (!d->tables || !keys) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < d->svcs.n; i++) {
		__u32 t = d->svcs.svcs[i].val.table_id;

		/* Out of range: its backends differ, or the loader broke. */
		if (t >= d->maps.cfg.maglev_tables)
			continue;
		d->tables[i] = calloc(m, sizeof(**d->tables));
		if (!d->tables[i]) {
			err = -ENOMEM;
			goto out;
		}
		err = nm_svc_maglev_read(&d->maps, t, keys, d->tables[i]);
		if (err) {
			pr_warn("failed to read table %u of map %s on %s: %s",
				t, NM_MAP_MAGLEV, d->maps.pin_root,
				strerror(-err));
			goto out;
		}
	}
out:
	free(keys);
	return err;
}

/* ---- output ------------------------------------------------------------- */

static json_object *jip(__be32 ip)
{
	char buf[INET_ADDRSTRLEN];

	return json_object_new_string(ip_str(ip, buf));
}

/* One side of @d as JSON; NULL (JSON null) for the side it has not. */
static json_object *side_json(const struct nm_diff *d,
			      const struct nm_diff_side *s)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	switch (d->map) {
	case NM_DIFF_NODES:
		json_object_object_add(o, "cluster_id",
				       json_object_new_int(s->cluster_id));
		return o;
	case NM_DIFF_IPCACHE:
		json_object_object_add(o, "identity",
				       json_object_new_uint64(s->identity));
		json_object_object_add(o, "tunnel_endpoint", jip(s->tunnel));
		json_object_object_add(o, "local",
				       json_object_new_boolean(s->flags &
							       NM_IPC_F_LOCAL));
		json_object_object_add(o, "cidr",
				       json_object_new_boolean(s->flags &
							       NM_IPC_F_CIDR));
		return o;
	default:
		break;
	}
	switch (d->what) {
	case NM_DIFF_W_ENTRY:
		json_object_object_add(o, "backends",
				       json_object_new_int64(s->n));
		json_object_object_add(o, "active",
				       json_object_new_int64(s->n2));
		break;
	case NM_DIFF_W_BACKEND:
		json_object_object_add(o, "cluster_id",
				       json_object_new_int(s->cluster_id));
		json_object_object_add(
			o, "proto",
			json_object_new_string(nm_proto_name(s->proto)));
		json_object_object_add(
			o, "state",
			json_object_new_string(
				nm_backend_state_name(s->state)));
		json_object_object_add(o, "weight",
				       json_object_new_int(s->weight));
		break;
	case NM_DIFF_W_ALGO:
		json_object_object_add(
			o, "algo",
			json_object_new_string(nm_lb_algo_name((__u8)s->n)));
		break;
	case NM_DIFF_W_ACTIVE:
		json_object_object_add(o, "active",
				       json_object_new_int64(s->n));
		break;
	case NM_DIFF_W_MAGLEV:
		json_object_object_add(o, "slots",
				       json_object_new_int64(s->n2));
		json_object_object_add(o, "slots_differing",
				       json_object_new_int64(s->n));
		break;
	}
	return o;
}

static int print_json(const struct diff_ctx *d, const struct nm_diffs *diffs)
{
	json_object *root, *arr, *cls, *o;
	char key[NM_DIFF_STRLEN];
	__u64 rejected = 0;
	const char *s;
	size_t i;
	int err = 0;

	root = json_object_new_object();
	arr = json_object_new_array();
	cls = json_object_new_array();
	if (!root || !arr || !cls) {
		json_object_put(root);
		json_object_put(arr);
		json_object_put(cls);
		return -ENOMEM;
	}
	for (i = 0; i < diffs->n; i++) {
		const struct nm_diff *x = &diffs->v[i];

		o = json_object_new_object();
		if (!o) {
			err = -ENOMEM;
			goto out;
		}
		json_object_object_add(
			o, "map",
			json_object_new_string(nm_diff_map_name(x->map)));
		json_object_object_add(
			o, "kind",
			json_object_new_string(nm_diff_kind_name(x->kind)));
		json_object_object_add(o, "key",
				       json_object_new_string(nm_diff_key(
					       x, key, sizeof(key))));
		json_object_object_add(o, "map_value",
				       x->kind == NM_DIFF_MISSING ?
					       NULL :
					       side_json(x, &x->have));
		json_object_object_add(o, "desired",
				       x->kind == NM_DIFF_STALE ?
					       NULL :
					       side_json(x, &x->want));
		json_object_array_add(arr, o);
	}
	for (i = 0; i < d->n_cl; i++) {
		const struct dcluster *c = &d->cl[i];

		rejected += c->rejected;
		o = json_object_new_object();
		if (!o) {
			err = -ENOMEM;
			goto out;
		}
		json_object_object_add(o, "name",
				       json_object_new_string(c->name));
		json_object_object_add(o, "id", json_object_new_int(c->id));
		json_object_object_add(o, "local",
				       json_object_new_boolean(c->local));
		json_object_object_add(o, "reachable",
				       json_object_new_boolean(c->local ||
							       c->reachable));
		json_object_object_add(
			o, "reachable_from",
			json_object_new_string(c->local	      ? "local" :
					       c->reach_known ? "agent" :
								"assumed"));
		/* Not synced yet: differences may only be the agent catching up. */
		json_object_object_add(
			o, "agent_synced",
			json_object_new_boolean(c->agent_synced));
		json_object_object_add(o, "revision",
				       json_object_new_int64(c->revision));
		json_object_object_add(
			o, "records",
			json_object_new_int64((int64_t)c->n_recs));
		json_object_object_add(
			o, "rejected",
			json_object_new_int64((int64_t)c->rejected));
		json_object_object_add(o, "last_rejected",
				       json_object_new_string(c->last_reject));
		json_object_array_add(cls, o);
	}
	json_object_object_add(root, "equal",
			       json_object_new_boolean(diffs->n == 0));
	json_object_object_add(root, "node", json_object_new_string(d->node));
	json_object_object_add(root, "differences", arr);
	arr = NULL;
	json_object_object_add(root, "rejected",
			       json_object_new_int64((int64_t)rejected));
	json_object_object_add(root, "clusters", cls);
	cls = NULL;
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	if (!s) {
		err = -ENOMEM;
		goto out;
	}
	puts(s);
out:
	json_object_put(arr);
	json_object_put(cls);
	json_object_put(root);
	return err;
}

static void print_text(const struct diff_ctx *d, const struct nm_diffs *diffs)
{
	char line[NM_DIFF_STRLEN * 2];
	size_t i;

	for (i = 0; i < diffs->n; i++)
		puts(nm_diff_str(&diffs->v[i], line, sizeof(line)));
	/* Not map state, but worth knowing: on stderr, stdout stays the diff. */
	for (i = 0; i < d->n_cl; i++)
		if (d->cl[i].rejected)
			fprintf(stderr,
				"diff: cluster %s: %llu record%s rejected (not desired state), last: %s\n",
				d->cl[i].name,
				(unsigned long long)d->cl[i].rejected,
				d->cl[i].rejected == 1 ? "" : "s",
				d->cl[i].last_reject);
}

/* ---- the command -------------------------------------------------------- */

static void ctx_free(struct diff_ctx *d)
{
	size_t i, j;

	for (i = 0; d->tables && i < d->svcs.n; i++)
		free(d->tables[i]);
	free(d->tables);
	nm_svc_list_free(&d->svcs);
	free(d->ips);
	free(d->nodes);
	if (d->maps_open)
		nm_maps_close(&d->maps);
	for (i = 0; i < d->n_cl; i++) {
		for (j = 0; j < d->cl[i].n_recs; j++)
			nm_kv_record_free(&d->cl[i].recs[j]);
		free(d->cl[i].recs);
	}
	free(d->cl);
	nm_refusals_free(&d->refused);
	nm_remote_set_free(&d->remotes);
	if (d->cfg_loaded)
		nm_config_free(&d->cfg);
}

int cmd_diff(int argc, char **argv)
{
	const char *config = NULL, *node = NULL, *sock_opt = NULL;
	const struct ctl_opt opts[] = { { "--config", &config },
					{ "--node", &node },
					{ "--socket", &sock_opt },
					{} };
	struct nm_desired_cluster *dc = NULL;
	struct nm_desired want = {};
	struct nm_diffs diffs = {};
	struct nm_actual have = {};
	struct diff_ctx d = {};
	char sock[PATH_MAX + 16];
	size_t i, n_diffs = 0;
	int err;

	err = ctl_args(argc, argv, "diff", opts, NULL);
	if (err)
		return DIFF_FAILED;
	if (!config) {
		pr_warn("diff needs --config AGENT_CONFIG (the agent's config: its clusters, etcd and maps)");
		return DIFF_FAILED;
	}
	if (node &&
	    (strlen(node) > NM_KV_NAME_MAX || !nm_dns_subdomain_ok(node))) {
		pr_warn("bad node name '%s': must be a DNS subdomain", node);
		return DIFF_FAILED;
	}
	if (node)
		snprintf(d.node, sizeof(d.node), "%s", node);
	err = load_clusters(&d, config);
	if (err)
		goto out;

	if (sock_opt)
		snprintf(sock, sizeof(sock), "%s", sock_opt);
	else if (d.cfg.api_socket)
		snprintf(sock, sizeof(sock), "%s", d.cfg.api_socket);
	else
		snprintf(sock, sizeof(sock), "%s/agent.sock",
			 opt_state_dir ? opt_state_dir : d.cfg.state_dir);
	agent_view(&d, sock);
	/* The agent's default: its host name. */
	if (!d.node[0] && gethostname(d.node, sizeof(d.node) - 1)) {
		err = -errno;
		pr_warn("failed to get host name: %s (use --node)",
			strerror(-err));
		goto out;
	}

	for (i = 0; i < d.n_cl; i++) {
		err = list_cluster(&d.cl[i]);
		if (err)
			goto out;
	}
	dc = calloc(d.n_cl, sizeof(*dc));
	if (!dc) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < d.n_cl; i++) {
		dc[i].name = d.cl[i].name;
		dc[i].id = d.cl[i].id;
		dc[i].local = d.cl[i].local;
		dc[i].reachable = d.cl[i].reachable;
		dc[i].recs = d.cl[i].recs;
		dc[i].n_recs = d.cl[i].n_recs;
	}
	err = nm_desired_build(dc, d.n_cl, d.node, &want);
	if (err) {
		pr_warn("failed to compute the desired state: %s",
			strerror(-err));
		goto out;
	}

	err = read_maps(&d);
	if (err)
		goto out;
	have.nodes = d.nodes;
	have.n_nodes = d.n_nodes;
	have.ips = d.ips;
	have.n_ips = d.n_ips;
	have.svcs = &d.svcs;
	have.tables = (const __u32 *const *)d.tables;
	have.maglev_m = d.maps.cfg.maglev_m;
	err = nm_desired_compare(&want, &have, &diffs);
	if (err) {
		pr_warn("failed to compare with the maps on %s: %s",
			d.maps.pin_root, strerror(-err));
		goto out;
	}
	n_diffs = diffs.n;
	if (opt_json)
		err = print_json(&d, &diffs);
	else
		print_text(&d, &diffs);
out:
	nm_diffs_free(&diffs);
	nm_desired_free(&want);
	free(dc);
	ctx_free(&d);
	if (err)
		return DIFF_FAILED;
	return n_diffs ? DIFF_DIFFER : DIFF_EQUAL;
}
