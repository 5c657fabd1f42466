// SPDX-License-Identifier: GPL-2.0
/*
 * nodemesh-agent: the per-node daemon. Publishes this node and its
 * endpoints into its cluster's etcd (agent/publish.h), mirrors its own and
 * every remote cluster into the pinned maps (agent/mirror.h through
 * agent/sink.h), follows the remote-cluster directory (inotify plus a
 * periodic rescan) and serves its status and the endpoint API the CNI
 * plugin uses on a unix socket (agent/api.h, agent/endpoint.h).
 *
 * The datapath: if the maps are not pinned under the pin root yet, the
 * agent loads the datapath itself (maps created and pinned, as
 * 'nodemeshctl attach' does, sized by the config's datapath:) and attaches
 * it to the config's interfaces; if they are, it uses them as they are,
 * but sizes the config gives are first checked against the pins by the
 * loader, and a mismatch stops the agent.
 *
 * SIGTERM/SIGINT: stop the mirrors (mirrored entries stay in the maps for
 * the next start to sweep), revoke the lease so this node's records vanish
 * from every peer at once, exit 0. Mirrors stop in two phases, every one
 * told first, then each joined, so hundreds stop in the time of one; the
 * same goes for the clusters a rescan drops at once.
 *
 * The sweep: the sink starts empty, so entries an earlier run wrote for
 * keys deleted while the agent was down (or for clusters dropped from the
 * config meanwhile) are held by nobody. Once every cluster's mirror has
 * completed its first list, nm_sink_sweep() removes them, once.
 *
 * Liveness: a remote cluster whose heartbeat is silent for longer than
 * the config's heartbeat_bound_ms is unreachable, and the sink takes its
 * backends out of selection (its ipcache entries stay, so established
 * flows keep working). Back, it is re-listed first and re-admitted once
 * that list completed. The main loop checks on every flush tick.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <bpf/bpf.h>
#include <json-c/json.h>

#include "agent/api.h"
#include "agent/config.h"
#include "agent/endpoint.h"
#include "agent/etcd.h"
#include "agent/identity.h"
#include "agent/identity_kv.h"
#include "agent/kvstore.h"
#include "agent/loader.h"
#include "agent/log.h"
#include "agent/mirror.h"
#include "agent/overlay.h"
#include "agent/parse.h"
#include "agent/publish.h"
#include "agent/sink.h"
#include "agent/state.h"
#include "agent/policy_apply.h"
#include "maps/tunnel.h"

#define FLUSH_MS 200
#define RESCAN_MS 5000
#define INOTIFY_SETTLE_MS 100 /* let a burst of file events settle */
#define SOCKET_NAME "agent.sock"
#define POD_CIDRS_MAX 16

/* One mirrored cluster: the local one or a remote-cluster file's. */
struct cluster {
	char *name;
	__u16 id;
	bool local;
	char *file; /* remote: where it came from */
	struct nm_mirror *m; /* NULL: start failed, retried on rescan */
	char start_err[NM_ETCD_ERR_MAX];
	/* the connection settings the mirror was started with */
	char *password;

	/*
	 * Liveness (remote clusters only: the local one's backends run on
	 * this cluster's nodes whatever its etcd does). Written by the main
	 * loop only; what the API reads, under the agent's lock.
	 */
	/* Mirror started (or tried to), or re-admitted: a heartbeat is due
	 * within the bound of it. */
	__u64 since_ns;
	bool reachable;
	bool readmitting; /* heartbeats back; waiting for the re-list asked */
	__u64 relist_want; /* the mirror's relist_asked to wait for */
	__u64 relist_ns; /* when it was asked */
	__u64 transitions;
	__u64 last_transition_ns; /* 0: none yet */
	__u64 unreachable_ns; /* when it last became unreachable */
	int sink_err; /* last nm_sink_set_reachable() error logged, 0: none */
};

struct agent {
	/* options */
	const char *config_path;
	const char *node;
	const char *sock_path;
	__be32 node_ip;
	struct nm_cidr pod_cidrs[POD_CIDRS_MAX];
	size_t n_pod_cidrs;
	__s64 lease_ttl;

	struct nm_agent_config cfg;
	struct nm_state st;
	struct nm_maps maps;
	struct nm_datapath *dp; /* loaded for the agent's lifetime: attaches pods */
	unsigned int pod_mtu; /* what pods must use: the overlay's room taken */
	int tunnel_ifindex; /* the VXLAN device; 0: overlay disabled */
	struct nm_etcd *etcd;
	char *etcd_password;
	struct nm_publisher *pub;
	struct nm_sink *sink;
	struct nm_api *api;

	pthread_mutex_t lock; /* the cluster list and refusals, for the API */
	pthread_mutex_t ep_lock; /* endpoint requests and cni.json */
	struct cluster **cl;
	size_t n_cl;
	struct nm_remote_set remotes; /* the last good load */
	struct nm_refusals refused;
	char dir_err[1024]; /* the remote dir itself unreadable */
	bool swept; /* nm_sink_sweep() done (read by the API: under @lock) */
};

static __u64 mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* nm_etcd_config pointing into @e; @password read by the caller. */
static void etcd_config(const struct nm_etcd_conf *e, const char *password,
			struct nm_etcd_config *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < e->n_endpoints && i < NM_ETCD_MAX_ENDPOINTS; i++)
		out->endpoints[i] = e->endpoints[i];
	out->n_endpoints = i;
	out->ca_file = e->ca_file;
	out->cert_file = e->cert_file;
	out->key_file = e->key_file;
	out->username = e->username;
	out->password = password;
}

/* ---- clusters --------------------------------------------------------------- */

static void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	free(c->password);
	free(c->file);
	free(c->name);
	free(c);
}

/* Start (or retry) the mirror of @c with @e's settings. */
static int cluster_start(struct agent *a, struct cluster *c,
			 const struct nm_etcd_conf *e)
{
	const struct nm_mirror_sink sink = { nm_sink_upsert, nm_sink_remove,
					     a->sink };
	struct nm_mirror_conf mc = {};
	struct nm_mirror *m = NULL;
	char err[NM_ETCD_ERR_MAX];
	int ret;

	free(c->password);
	c->password = NULL;
	if (e->password_file) {
		ret = nm_read_password_file(e->password_file, &c->password);
		if (ret) {
			snprintf(c->start_err, sizeof(c->start_err),
				 "failed to read password file %s: %s",
				 e->password_file, strerror(-ret));
			return ret;
		}
	}
	/* Service records carry no cluster id: the sink takes it from the
	 * connection, so their backends are tagged before the first list. */
	ret = nm_sink_set_cluster_id(a->sink, c->name, c->id);
	if (ret) {
		snprintf(c->start_err, sizeof(c->start_err),
			 "failed to register cluster %s (id %u) in the map sink: %s",
			 c->name, c->id, strerror(-ret));
		return ret;
	}
	etcd_config(e, c->password, &mc.etcd);
	mc.prefix = a->cfg.kv_prefix;
	mc.cluster = c->name;
	mc.cluster_id = c->id;
	ret = nm_mirror_start(&mc, &sink, &m, err, sizeof(err));
	pthread_mutex_lock(&a->lock);
	if (ret) {
		pr_warn("%s", err);
		snprintf(c->start_err, sizeof(c->start_err), "%s", err);
	} else {
		pr_info("mirroring cluster %s (id %u) from %s", c->name, c->id,
			mc.etcd.endpoints[0]);
		c->m = m;
		c->start_err[0] = '\0';
		c->since_ns = mono_ns();
	}
	pthread_mutex_unlock(&a->lock);
	return ret;
}

static struct cluster *cluster_new(const char *name, __u16 id, bool local,
				   const char *file)
{
	struct cluster *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->name = strdup(name);
	c->file = file ? strdup(file) : NULL;
	c->id = id;
	c->local = local;
	/* Reachable until the bound passes without a heartbeat. */
	c->reachable = true;
	c->since_ns = mono_ns();
	if (!c->name || (file && !c->file)) {
		cluster_free(c);
		return NULL;
	}
	return c;
}

static int cluster_add(struct agent *a, struct cluster *c)
{
	struct cluster **v;

	pthread_mutex_lock(&a->lock);
	v = realloc(a->cl, (a->n_cl + 1) * sizeof(*v));
	if (v) {
		a->cl = v;
		a->cl[a->n_cl++] = c;
	}
	pthread_mutex_unlock(&a->lock);
	return v ? 0 : -ENOMEM;
}

/* Where remote cluster @name is in the list, -1: absent. With @lock held. */
static long cluster_find_locked(struct agent *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->n_cl; i++)
		if (!a->cl[i]->local && !strcmp(a->cl[i]->name, name))
			return (long)i;
	return -1;
}

/* Take @name's entry out of the list (the API no longer sees it). */
static struct cluster *cluster_take(struct agent *a, const char *name)
{
	struct cluster *c = NULL;
	long i;

	pthread_mutex_lock(&a->lock);
	i = cluster_find_locked(a, name);
	if (i >= 0) {
		c = a->cl[i];
		memmove(&a->cl[i], &a->cl[i + 1],
			(a->n_cl - (size_t)i - 1) * sizeof(*a->cl));
		a->n_cl--;
	}
	pthread_mutex_unlock(&a->lock);
	return c;
}

/*
 * Tell @name's mirror to stop without waiting for it, so that draining it
 * later is quick: several drained in a row wind down together.
 */
static void cluster_request_stop(struct agent *a, const char *name)
{
	long i;

	pthread_mutex_lock(&a->lock);
	i = cluster_find_locked(a, name);
	if (i >= 0)
		nm_mirror_request_stop(a->cl[i]->m);
	pthread_mutex_unlock(&a->lock);
}

static void cluster_drain(struct cluster *c)
{
	int ret;

	if (c->m) {
		ret = nm_mirror_drain(c->m);
		if (ret)
			pr_warn("failed to drain cluster %s: %s", c->name,
				strerror(-ret));
		else
			pr_info("drained cluster %s", c->name);
	}
	cluster_free(c);
}

static int remote_connect(struct agent *a, const struct nm_remote_cluster *r)
{
	struct cluster *c = cluster_new(r->name, r->id, false, r->file);
	int ret;

	if (!c)
		return -ENOMEM;
	ret = cluster_add(a, c);
	if (ret) {
		cluster_free(c);
		return ret;
	}
	/*
	 * A new connection starts reachable; the sink remembers the state
	 * per name, and a drained predecessor (file changed, or removed and
	 * added back) may have left it unreachable.
	 */
	ret = nm_sink_set_reachable(a->sink, c->name, true);
	if (ret) {
		/* Unreachable then: re-admission retries the call. */
		pr_warn("failed to mark cluster %s reachable in the map sink: %s",
			c->name, strerror(-ret));
		pthread_mutex_lock(&a->lock);
		c->reachable = false;
		c->unreachable_ns = mono_ns();
		pthread_mutex_unlock(&a->lock);
	}
	/* A failed start is listed with its error and retried on rescan. */
	cluster_start(a, c, &r->etcd);
	return 0;
}

static bool refusals_same(const struct nm_refusals *x,
			  const struct nm_refusals *y)
{
	size_t i;

	if (x->n != y->n)
		return false;
	for (i = 0; i < x->n; i++)
		if (strcmp(x->v[i].file, y->v[i].file) ||
		    x->v[i].line != y->v[i].line ||
		    strcmp(x->v[i].reason, y->v[i].reason))
			return false;
	return true;
}

/* Reload the remote-cluster directory and apply what changed. */
static void rescan(struct agent *a)
{
	struct nm_remote_set ok = {};
	struct nm_refusals bad = {};
	struct nm_remote_diff d = {};
	struct nm_error err = {};
	char msg[1024];
	size_t i;
	int ret;

	if (!a->cfg.remote_clusters_dir)
		return;
	ret = nm_remote_dir_load(a->cfg.remote_clusters_dir, a->cfg.cluster,
				 a->cfg.cluster_id, &a->remotes, &ok, &bad,
				 &err);
	if (ret) {
		nm_error_str(&err, msg, sizeof(msg));
		pthread_mutex_lock(&a->lock);
		/* Keep the connected clusters: a missing dir is no request. */
		if (strcmp(a->dir_err, msg))
			pr_warn("failed to read remote clusters dir %s: %s",
				a->cfg.remote_clusters_dir, msg);
		snprintf(a->dir_err, sizeof(a->dir_err), "%s", msg);
		pthread_mutex_unlock(&a->lock);
		return;
	}
	if (!refusals_same(&bad, &a->refused))
		for (i = 0; i < bad.n; i++)
			pr_warn("refused remote cluster file %s",
				nm_error_str(&bad.v[i], msg, sizeof(msg)));
	ret = nm_remote_diff(&a->remotes, &ok, &d);
	if (ret) {
		pr_warn("failed to diff remote clusters of %s: %s",
			a->cfg.remote_clusters_dir, strerror(-ret));
		nm_remote_set_free(&ok);
		nm_refusals_free(&bad);
		return;
	}
	/* Every mirror to drain told first, then each drained. */
	for (i = 0; i < d.n_removed; i++)
		cluster_request_stop(a, d.removed[i]->name);
	for (i = 0; i < d.n_changed; i++)
		cluster_request_stop(a, d.changed[i]->name);
	for (i = 0; i < d.n_removed; i++) {
		struct cluster *c = cluster_take(a, d.removed[i]->name);

		pr_info("remote cluster %s removed (%s): draining",
			d.removed[i]->name, d.removed[i]->file);
		if (c)
			cluster_drain(c);
	}
	for (i = 0; i < d.n_changed; i++) {
		struct cluster *c = cluster_take(a, d.changed[i]->name);

		pr_info("remote cluster %s changed (%s): reconnecting",
			d.changed[i]->name, d.changed[i]->file);
		if (c)
			cluster_drain(c);
		if (remote_connect(a, d.changed[i]))
			pr_warn("failed to connect cluster %s: out of memory",
				d.changed[i]->name);
	}
	for (i = 0; i < d.n_added; i++) {
		pr_info("remote cluster %s added (%s): connecting",
			d.added[i]->name, d.added[i]->file);
		if (remote_connect(a, d.added[i]))
			pr_warn("failed to connect cluster %s: out of memory",
				d.added[i]->name);
	}
	nm_remote_diff_free(&d);

	/* Retry the mirrors whose start failed (e.g. a password file). */
	for (i = 0; i < a->n_cl; i++) {
		struct cluster *c = a->cl[i];
		const struct nm_remote_cluster *r;

		if (c->m || c->local)
			continue;
		r = nm_remote_find(&ok, c->name);
		if (r)
			cluster_start(a, c, &r->etcd);
	}

	pthread_mutex_lock(&a->lock);
	nm_remote_set_free(&a->remotes);
	nm_refusals_free(&a->refused);
	a->remotes = ok;
	a->refused = bad;
	a->dir_err[0] = '\0';
	pthread_mutex_unlock(&a->lock);
}

/* ---- status ----------------------------------------------------------------- */

static int jadd(json_object *o, const char *k, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, k, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s ? s : "");
}

/* 64-bit counters as JSON integers (json-c writes int64 exactly). */
static json_object *ju64(__u64 v)
{
	return json_object_new_int64((__s64)v);
}

/* "@k": seconds from @then to @now, or null when @then is 0. */
static int jadd_ago(json_object *o, const char *k, __u64 then, __u64 now)
{
	if (then && now >= then)
		return jadd(o, k, json_object_new_double((now - then) / 1e9));
	return json_object_object_add(o, k, NULL) ? -ENOMEM : 0;
}

static int cluster_json(const struct cluster *c, __u64 now_ns, json_object *arr)
{
	struct nm_mirror_stats s = {};
	json_object *o = json_object_new_object();
	int ret = 0;

	if (!o || json_object_array_add(arr, o)) {
		json_object_put(o);
		return -ENOMEM;
	}
	if (c->m)
		nm_mirror_get_stats(c->m, &s);
	ret |= jadd(o, "name", jstr(c->name));
	ret |= jadd(o, "id", json_object_new_int(c->id));
	ret |= jadd(o, "local", json_object_new_boolean(c->local));
	if (c->file)
		ret |= jadd(o, "file", jstr(c->file));
	ret |= jadd(o, "connected", json_object_new_boolean(s.connected));
	ret |= jadd(o, "synced", json_object_new_boolean(s.synced));
	ret |= jadd(o, "revision", json_object_new_int64(s.revision));
	ret |= jadd(o, "records", ju64(s.records));
	ret |= jadd(o, "rejected", ju64(s.rejected));
	ret |= jadd(o, "apply_errors", ju64(s.apply_errors));
	ret |= jadd(o, "pending", ju64(s.pending));
	ret |= jadd(o, "relists", ju64(s.relists));
	ret |= jadd(o, "reconnects", ju64(s.reconnects));
	ret |= jadd(o, "last_error", jstr(c->m ? s.last_error : c->start_err));
	ret |= jadd_ago(o, "last_heartbeat_s", s.last_heartbeat_mono_ns,
			now_ns);
	ret |= jadd(o, "reachable", json_object_new_boolean(c->reachable));
	ret |= jadd(o, "transitions", ju64(c->transitions));
	ret |= jadd_ago(o, "last_transition_s", c->last_transition_ns, now_ns);
	ret |= jadd_ago(o, "unreachable_since_s",
			c->reachable ? 0 : c->unreachable_ns, now_ns);
	return ret ? -ENOMEM : 0;
}

static char *status_json(void *arg)
{
	struct agent *a = arg;
	struct nm_publish_stats ps = {};
	json_object *root, *lease, *pub, *arr, *ref;
	char ip[INET_ADDRSTRLEN], id[24], msg[1024];
	__u64 now = mono_ns();
	char *text = NULL;
	size_t i;
	int ret = 0;

	root = json_object_new_object();
	if (!root)
		return NULL;
	nm_publish_get_stats(a->pub, &ps);
	inet_ntop(AF_INET, &a->node_ip, ip, sizeof(ip));
	snprintf(id, sizeof(id), "%llx", (unsigned long long)ps.lease);
	ret |= jadd(root, "node", jstr(a->node));
	ret |= jadd(root, "node_ip", jstr(ip));
	ret |= jadd(root, "cluster", jstr(a->cfg.cluster));
	ret |= jadd(root, "cluster_id", json_object_new_int(a->cfg.cluster_id));

	lease = json_object_new_object();
	ret |= jadd(root, "lease", lease);
	if (lease) {
		ret |= jadd(lease, "id", jstr(ps.lease ? id : ""));
		ret |= jadd(lease, "ok", json_object_new_boolean(ps.lease_ok));
		ret |= jadd(lease, "ttl_s", json_object_new_int64(ps.ttl_s));
		ret |= jadd(lease, "grants", ju64(ps.grants));
	}
	ret |= jadd(root, "heartbeat_leader",
		    json_object_new_boolean(ps.leader));
	ret |= jadd(root, "heartbeat_bound_ms",
		    json_object_new_int64(a->cfg.heartbeat_bound_ms));
	pthread_mutex_lock(&a->lock);
	ret |= jadd(root, "swept", json_object_new_boolean(a->swept));
	pthread_mutex_unlock(&a->lock);
	pub = json_object_new_object();
	ret |= jadd(root, "publisher", pub);
	if (pub) {
		ret |= jadd(pub, "synced", json_object_new_boolean(ps.synced));
		ret |= jadd(pub, "endpoints", ju64(ps.endpoints));
		ret |= jadd(pub, "identity_mismatches",
			    ju64(ps.identity_mismatches));
		/* MeshService exports: the heartbeat writer's; 0 elsewhere. */
		ret |= jadd(pub, "services_exported", ju64(ps.services));
		ret |= jadd(pub, "services_refused",
			    ju64(ps.services_refused));
		ret |= jadd(pub, "errors", ju64(ps.errors));
		ret |= jadd(pub, "last_error", jstr(ps.last_error));
	}

	arr = json_object_new_array();
	ref = json_object_new_array();
	ret |= jadd(root, "clusters", arr);
	ret |= jadd(root, "refused_files", ref);
	pthread_mutex_lock(&a->lock);
	for (i = 0; arr && i < a->n_cl; i++)
		ret |= cluster_json(a->cl[i], now, arr);
	for (i = 0; ref && i < a->refused.n; i++) {
		json_object *o = json_object_new_object();

		if (!o || json_object_array_add(ref, o)) {
			json_object_put(o);
			ret = -ENOMEM;
			break;
		}
		ret |= jadd(o, "file", jstr(a->refused.v[i].file));
		ret |= jadd(o, "line",
			    json_object_new_int((int)a->refused.v[i].line));
		ret |= jadd(o, "reason", jstr(a->refused.v[i].reason));
		ret |= jadd(
			o, "error",
			jstr(nm_error_str(&a->refused.v[i], msg, sizeof(msg))));
	}
	if (a->cfg.remote_clusters_dir)
		ret |= jadd(root, "remote_clusters_dir",
			    jstr(a->cfg.remote_clusters_dir));
	ret |= jadd(root, "remote_clusters_dir_error", jstr(a->dir_err));
	pthread_mutex_unlock(&a->lock);

	if (!ret) {
		const char *s = json_object_to_json_string_ext(
			root, JSON_C_TO_STRING_PLAIN |
				      JSON_C_TO_STRING_NOSLASHESCAPE);

		if (s && asprintf(&text, "%s\n", s) < 0)
			text = NULL;
	}
	json_object_put(root);
	return text;
}

/* ---- metrics ---------------------------------------------------------------- */

/* What one cluster's samples are read from, taken under the agent's lock. */
struct cl_snap {
	const struct cluster *c;
	struct nm_mirror_stats st;
	__u64 now_ns;
};

/*
 * One metric family of GET /v1/metrics, a sample per cluster. @val gives
 * the value; a negative one is written +Inf (a heartbeat never seen is
 * infinitely old, so "age > bound" alerts hold for it too). Counts and
 * flags are written as integers, seconds with milliseconds.
 */
struct cl_metric {
	const char *name;
	const char *type;
	const char *help;
	double (*val)(const struct cl_snap *s);
	bool seconds;
};

static double m_reachable(const struct cl_snap *s)
{
	return s->c->reachable;
}

static double m_transitions(const struct cl_snap *s)
{
	return s->c->transitions;
}

static double m_hb_age(const struct cl_snap *s)
{
	__u64 hb = s->st.last_heartbeat_mono_ns;

	if (!hb)
		return -1;
	return s->now_ns > hb ? (s->now_ns - hb) / 1e9 : 0;
}

/* A sample that is one of the mirror's counters or flags as it stands. */
#define MIRROR_STAT(field)                               \
	static double m_##field(const struct cl_snap *s) \
	{                                                \
		return s->st.field;                      \
	}

MIRROR_STAT(connected)
MIRROR_STAT(synced)
MIRROR_STAT(records)
MIRROR_STAT(rejected)
MIRROR_STAT(apply_errors)
MIRROR_STAT(pending)
MIRROR_STAT(relists)
MIRROR_STAT(reconnects)

static const struct cl_metric cl_metrics[] = {
	{ "nodemesh_cluster_reachable", "gauge",
	  "1 while the cluster's backends may be selected: its heartbeat is within the bound (the local cluster always).",
	  m_reachable, false },
	{ "nodemesh_cluster_transitions_total", "counter",
	  "Changes between reachable and unreachable.", m_transitions, false },
	{ "nodemesh_cluster_heartbeat_age_seconds", "gauge",
	  "Time since the cluster's heartbeat last changed, on this node's clock; +Inf before the first.",
	  m_hb_age, true },
	{ "nodemesh_mirror_connected", "gauge",
	  "1 while the watch stream on the cluster's etcd is up.", m_connected,
	  false },
	{ "nodemesh_mirror_synced", "gauge",
	  "1 once the first list of the cluster completed.", m_synced, false },
	{ "nodemesh_mirror_records", "gauge",
	  "Keys of the cluster currently mirrored.", m_records, false },
	{ "nodemesh_mirror_rejected_total", "counter",
	  "Records of the cluster refused by validation.", m_rejected, false },
	{ "nodemesh_mirror_apply_errors_total", "counter",
	  "Failed applies of the cluster's records to the maps.",
	  m_apply_errors, false },
	{ "nodemesh_mirror_pending", "gauge",
	  "Keys of the cluster waiting for a retried apply.", m_pending,
	  false },
	{ "nodemesh_mirror_relists_total", "counter",
	  "Lists of the cluster after the first (compaction, new etcd, re-admission).",
	  m_relists, false },
	{ "nodemesh_mirror_reconnects_total", "counter",
	  "Reconnects of the watch on the cluster's etcd.", m_reconnects,
	  false },
};

/*
 * GET /v1/metrics: Prometheus text exposition (version 0.0.4), each family
 * with its HELP and TYPE and then its samples, as the format wants them
 * grouped. Cluster names are DNS labels: no label escaping needed.
 */
static char *metrics_text(void *arg)
{
	struct agent *a = arg;
	struct cl_snap *snap = NULL;
	const struct cl_metric *m;
	char *text = NULL;
	size_t len = 0, n, i, k;
	__u64 now = mono_ns();
	bool ok;
	double v;
	FILE *f;

	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	fprintf(f,
		"# HELP nodemesh_heartbeat_bound_seconds Silence after which a remote cluster is unreachable.\n"
		"# TYPE nodemesh_heartbeat_bound_seconds gauge\n"
		"nodemesh_heartbeat_bound_seconds %g\n",
		a->cfg.heartbeat_bound_ms / 1e3);
	pthread_mutex_lock(&a->lock);
	n = a->n_cl;
	snap = calloc(n ? n : 1, sizeof(*snap));
	for (i = 0; snap && i < n; i++) {
		snap[i].c = a->cl[i];
		snap[i].now_ns = now;
		if (a->cl[i]->m)
			nm_mirror_get_stats(a->cl[i]->m, &snap[i].st);
	}
	for (k = 0; snap && k < sizeof(cl_metrics) / sizeof(*m); k++) {
		m = &cl_metrics[k];
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help,
			m->name, m->type);
		for (i = 0; i < n; i++) {
			v = m->val(&snap[i]);
			fprintf(f, "%s{cluster=\"%s\"} ", m->name,
				snap[i].c->name);
			if (v < 0)
				fprintf(f, "+Inf\n");
			else
				fprintf(f, m->seconds ? "%.3f\n" : "%.0f\n", v);
		}
	}
	pthread_mutex_unlock(&a->lock);
	ok = snap != NULL;
	free(snap);
	/* The stream buffers: a failed write shows in ferror() or fclose(). */
	ok = ok && !ferror(f);
	if (fclose(f) || !ok) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- endpoints: the CNI plugin's API ---------------------------------------- */

/*
 * The API thread is the only caller, but ep_lock still orders endpoint
 * requests, since cni.json is read, changed and written whole. Against the
 * other map writers (the sink, nodemeshctl) each write takes the pin
 * root's flock on maps opened for it: a flock belongs to the open file, so
 * taken on the sink's descriptor it would not exclude the sink.
 */

static const char *ep_ip(__be32 ip, char *buf)
{
	if (!inet_ntop(AF_INET, &ip, buf, INET_ADDRSTRLEN))
		strcpy(buf, "?");
	return buf;
}

static unsigned int ep_fail(char **out, unsigned int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Answer {"error": why} with @code; the agent's own failures are logged. */
static unsigned int ep_fail(char **out, unsigned int code, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (code >= 500)
		pr_warn("%s", why);
	else
		pr_info("refused endpoint request: %s", why);
	*out = nm_api_error_json(why);
	return code;
}

/*
 * The kvstore's identity of @labels, so the maps carry from the start the
 * id every node agrees on. When etcd does not answer: 0, and the endpoint
 * gets the local hashed identity; the publisher reconciles later.
 */
static __u64 ep_kv_identity(struct agent *a, const struct nm_labels *labels)
{
	struct nm_etcd_err eerr = {};
	__u64 id;
	int ret;

	ret = nm_identity_alloc_kv(a->etcd, a->cfg.kv_prefix, a->cfg.cluster,
				   a->cfg.cluster_id, labels, &id, &eerr);
	if (ret) {
		pr_warn("%s; the endpoint gets the local identity until the publisher reconciles",
			eerr.msg[0] ? eerr.msg : strerror(-ret));
		return 0;
	}
	return id;
}

/*
 * Attach, write the endpoint and record it in @pods and cni.json, all
 * under the flock. @own: the container interface's record from an
 * earlier request (a retry), else NULL. Whatever this call created is
 * undone when a later step fails; the record @rec is what was written.
 */
static unsigned int ep_apply(struct agent *a, const struct nm_endpoint_req *req,
			     struct nm_pods *pods, const struct nm_pod *own,
			     __u64 kvid, struct nm_pod *rec, char **out)
{
	const struct nm_endpoint_spec spec = {
		.addr = req->ip,
		.host_ifname = req->host_ifname,
		.mac = req->has_mac ? req->mac : NULL,
		.ns = req->ns,
		.name = req->name,
		.labels = &req->labels,
	};
	struct nm_endpoint_key k = { .addr = req->ip };
	struct nm_endpoint_val v;
	struct nm_endpoint_res res;
	struct nm_idstore ids;
	struct nm_maps maps;
	char why[1024], ip[INET_ADDRSTRLEN], cur[IF_NAMESIZE];
	unsigned int code, ifindex;
	bool existed;
	int ret;

	ep_ip(req->ip, ip);
	if (nm_maps_open(a->cfg.pin_root, &maps))
		return ep_fail(
			out, 503,
			"failed to add endpoint %s: maps under %s not open", ip,
			a->cfg.pin_root);
	ret = nm_maps_lock(&maps);
	if (ret) {
		code = ep_fail(out, 500,
			       "failed to add endpoint %s: lock on %s: %s", ip,
			       a->cfg.pin_root, strerror(-ret));
		goto out_close;
	}
	existed = !bpf_map_lookup_elem(maps.endpoints, &k, &v);
	ifindex = if_nametoindex(req->host_ifname);
	/* Same veth: a retry whose record was lost, not another pod. */
	if (existed && !own && v.ifindex != ifindex) {
		if (!if_indextoname(v.ifindex, cur))
			snprintf(cur, sizeof(cur), "#%u", v.ifindex);
		code = ep_fail(
			out, 409,
			"failed to add endpoint %s for container %s: the address is held by endpoint %u on %s",
			ip, req->container_id, v.endpoint_id, cur);
		goto out_unlock;
	}
	ret = nm_tc_attach(a->dp, req->host_ifname);
	if (ret) {
		code = ep_fail(
			out, 500,
			"failed to attach datapath on %s for endpoint %s: %s",
			req->host_ifname, ip, strerror(-ret));
		goto out_unlock;
	}
	ret = nm_idstore_load(&a->st, &ids);
	if (ret) {
		code = ep_fail(out, 500, "failed to load identities on %s: %s",
			       a->st.dir, strerror(-ret));
		goto out_detach;
	}
	ret = nm_endpoint_add(&maps, &a->st, &ids, &spec, kvid, &res, why,
			      sizeof(why));
	if (ret) {
		code = ep_fail(out, ret == -ENODEV ? 400 : 500, "%s", why);
		goto out_ids;
	}
	memset(rec, 0, sizeof(*rec));
	strcpy(rec->container_id, req->container_id);
	strcpy(rec->ifname, req->ifname);
	strcpy(rec->host_ifname, req->host_ifname);
	strcpy(rec->ns, req->ns);
	strcpy(rec->name, req->name);
	rec->ip = req->ip;
	memcpy(rec->mac, req->mac, sizeof(rec->mac));
	rec->has_mac = req->has_mac;
	rec->endpoint_id = res.endpoint_id;
	rec->identity = res.identity;
	/* A drain is one way: an ADD retried while the pod drains keeps it. */
	rec->terminating = own && own->terminating;
	ret = nm_pods_put(pods, rec);
	if (!ret)
		ret = nm_pods_save(&a->st, pods, why, sizeof(why));
	else
		snprintf(why, sizeof(why),
			 "failed to record endpoint %s: out of memory", ip);
	if (ret) {
		code = ep_fail(out, 500, "%s", why);
		/* Unknown to cni.json, a new endpoint could never be deleted. */
		if (!existed && nm_endpoint_delete(&maps, &a->st, &ids, req->ip,
						   &res, why, sizeof(why)))
			pr_warn("%s", why);
		goto out_ids;
	}
	pr_info("added endpoint %s (id %u, identity %llu) for container %s interface %s on %s",
		ip, rec->endpoint_id, (unsigned long long)rec->identity,
		rec->container_id, rec->ifname, rec->host_ifname);
	code = 200;
out_ids:
	nm_idstore_free(&ids);
out_detach:
	if (code != 200 && !own && !existed) {
		ret = nm_tc_detach(req->host_ifname);
		if (ret && ret != -ENOENT && ret != -ENODEV)
			pr_warn("failed to detach datapath from %s after a failed add: %s",
				req->host_ifname, strerror(-ret));
	}
out_unlock:
	nm_maps_unlock(&maps);
out_close:
	nm_maps_close(&maps);
	return code;
}

/* POST /v1/endpoints */
static unsigned int api_ep_add(void *arg, const char *body, size_t len,
			       char **out)
{
	struct agent *a = arg;
	struct nm_endpoint_req req;
	struct nm_labels labels = {};
	struct nm_pods pods = {};
	struct nm_pod *own, *holder, rec;
	char why[1024], ip[INET_ADDRSTRLEN], held[INET_ADDRSTRLEN];
	unsigned int code;
	__u64 kvid;

	if (nm_endpoint_req_parse(body, len, &req, why, sizeof(why)))
		return ep_fail(out, 400, "bad endpoint request: %s", why);
	ep_ip(req.ip, ip);
	if (!if_nametoindex(req.host_ifname)) {
		code = ep_fail(
			out, 400,
			"failed to find host interface %s of container %s: %s",
			req.host_ifname, req.container_id, strerror(errno));
		goto out_req;
	}
	if (!a->dp) {
		code = ep_fail(out, 503,
			       "failed to add endpoint %s: datapath not loaded",
			       ip);
		goto out_req;
	}
	pthread_mutex_lock(&a->ep_lock);
	if (nm_pods_load(&a->st, &pods, why, sizeof(why))) {
		code = ep_fail(out, 500, "%s", why);
		goto out_unlock;
	}
	own = nm_pods_find(&pods, req.container_id, req.ifname);
	holder = nm_pods_find_ip(&pods, req.ip);
	if (own && own->ip != req.ip) {
		ep_ip(own->ip, held);
		code = ep_fail(
			out, 409,
			"failed to add endpoint %s: container %s interface %s has endpoint %s (delete it first)",
			ip, req.container_id, req.ifname, held);
		goto out_pods;
	}
	if (holder && holder != own) {
		code = ep_fail(
			out, 409,
			"failed to add endpoint %s for container %s: the address is held by container %s interface %s",
			ip, req.container_id, holder->container_id,
			holder->ifname);
		goto out_pods;
	}
	if (nm_endpoint_labels(&req.labels, req.ns, a->cfg.cluster, &labels)) {
		code = ep_fail(out, 500,
			       "failed to label endpoint %s: out of memory",
			       ip);
		goto out_pods;
	}
	/* Before the flock: etcd may take seconds, the sink must not wait. */
	kvid = ep_kv_identity(a, &labels);
	code = ep_apply(a, &req, &pods, own, kvid, &rec, out);
	if (code == 200)
		*out = nm_pod_doc(&rec, a->pod_mtu);
	nm_labels_free(&labels);
out_pods:
	nm_pods_free(&pods);
out_unlock:
	pthread_mutex_unlock(&a->ep_lock);
out_req:
	nm_endpoint_req_free(&req);
	return code;
}

/* Container id and interface name of a URL, checked. */
static unsigned int ep_url_check(const char *cid, const char *ifname,
				 char **out)
{
	char why[512];

	if (nm_endpoint_container_check(cid, why, sizeof(why)) ||
	    nm_endpoint_ifname_check("ifname", ifname, why, sizeof(why)))
		return ep_fail(out, 400, "%s", why);
	return 200;
}

/* GET /v1/endpoints */
static unsigned int api_ep_list(void *arg, char **out)
{
	struct agent *a = arg;
	struct nm_pods pods;
	char why[1024];
	unsigned int code = 200;

	pthread_mutex_lock(&a->ep_lock);
	if (nm_pods_load(&a->st, &pods, why, sizeof(why))) {
		code = ep_fail(out, 500, "%s", why);
		goto out;
	}
	*out = nm_pods_doc(&pods, a->pod_mtu);
	nm_pods_free(&pods);
out:
	pthread_mutex_unlock(&a->ep_lock);
	return code;
}

/* GET /v1/endpoints/<container>/<ifname> */
static unsigned int api_ep_get(void *arg, const char *cid, const char *ifname,
			       char **out)
{
	struct agent *a = arg;
	struct nm_pods pods;
	const struct nm_pod *p;
	char why[1024];
	unsigned int code;

	code = ep_url_check(cid, ifname, out);
	if (code != 200)
		return code;
	pthread_mutex_lock(&a->ep_lock);
	if (nm_pods_load(&a->st, &pods, why, sizeof(why))) {
		code = ep_fail(out, 500, "%s", why);
		goto out;
	}
	p = nm_pods_find(&pods, cid, ifname);
	if (p)
		*out = nm_pod_doc(p, a->pod_mtu);
	else
		code = ep_fail(out, 404,
			       "no endpoint for container %s interface %s", cid,
			       ifname);
	nm_pods_free(&pods);
out:
	pthread_mutex_unlock(&a->ep_lock);
	return code;
}

/*
 * Detach from the pod's veth if it is still there and still the
 * endpoint's, remove the endpoint (ipcache entry, endpoint, policy), all
 * under the flock. An endpoint already gone is fine.
 */
static int ep_remove(struct agent *a, const struct nm_pod *p, char *why,
		     size_t len)
{
	struct nm_endpoint_key k = { .addr = p->ip };
	struct nm_endpoint_val v;
	struct nm_endpoint_res res;
	struct nm_idstore ids;
	struct nm_maps maps;
	unsigned int ifindex;
	bool found;
	int ret;

	ret = nm_maps_open(a->cfg.pin_root, &maps);
	if (ret) {
		snprintf(why, len, "failed to open maps on %s: %s",
			 a->cfg.pin_root, strerror(-ret));
		return ret;
	}
	ret = nm_maps_lock(&maps);
	if (ret) {
		snprintf(why, len, "failed to lock %s: %s", a->cfg.pin_root,
			 strerror(-ret));
		goto out_close;
	}
	found = !bpf_map_lookup_elem(maps.endpoints, &k, &v);
	ifindex = if_nametoindex(p->host_ifname);
	/* A name reused by another pod's veth is not ours to touch. */
	if (ifindex && (!found || v.ifindex == ifindex)) {
		ret = nm_tc_detach(p->host_ifname);
		if (ret && ret != -ENOENT && ret != -ENODEV) {
			snprintf(why, len,
				 "failed to detach datapath from %s: %s",
				 p->host_ifname, strerror(-ret));
			goto out_unlock;
		}
	}
	ret = 0;
	if (!found)
		goto out_unlock;
	ret = nm_idstore_load(&a->st, &ids);
	if (ret) {
		snprintf(why, len, "failed to load identities on %s: %s",
			 a->st.dir, strerror(-ret));
		goto out_unlock;
	}
	ret = nm_endpoint_delete(&maps, &a->st, &ids, p->ip, &res, why, len);
	if (ret == -ENOENT)
		ret = 0;
	nm_idstore_free(&ids);
out_unlock:
	nm_maps_unlock(&maps);
out_close:
	nm_maps_close(&maps);
	return ret;
}

/* DELETE /v1/endpoints/<container>/<ifname> */
static unsigned int api_ep_del(void *arg, const char *cid, const char *ifname,
			       char **out)
{
	struct agent *a = arg;
	struct nm_pods pods;
	struct nm_pod *p;
	char why[1024], ip[INET_ADDRSTRLEN];
	unsigned int code;

	code = ep_url_check(cid, ifname, out);
	if (code != 200)
		return code;
	pthread_mutex_lock(&a->ep_lock);
	if (nm_pods_load(&a->st, &pods, why, sizeof(why))) {
		code = ep_fail(out, 500, "%s", why);
		goto out;
	}
	p = nm_pods_find(&pods, cid, ifname);
	if (!p) {
		*out = strdup("{\"deleted\":false}\n");
		goto out_pods;
	}
	ep_ip(p->ip, ip);
	if (ep_remove(a, p, why, sizeof(why))) {
		code = ep_fail(
			out, 500,
			"failed to delete endpoint %s of container %s: %s", ip,
			cid, why);
		goto out_pods;
	}
	nm_pods_del(&pods, p);
	if (nm_pods_save(&a->st, &pods, why, sizeof(why))) {
		code = ep_fail(out, 500, "%s", why);
		goto out_pods;
	}
	pr_info("deleted endpoint %s of container %s interface %s", ip, cid,
		ifname);
	*out = strdup("{\"deleted\":true}\n");
out_pods:
	nm_pods_free(&pods);
out:
	pthread_mutex_unlock(&a->ep_lock);
	return code;
}

/*
 * POST /v1/endpoints/<container>/<ifname>/drain: the publisher then
 * publishes the pod as terminating, and services stop giving it new flows.
 */
static unsigned int api_ep_drain(void *arg, const char *cid,
				 const char *ifname, char **out)
{
	struct agent *a = arg;
	struct nm_pod pod;
	char why[1024];
	unsigned int code;
	int ret;

	code = ep_url_check(cid, ifname, out);
	if (code != 200)
		return code;
	pthread_mutex_lock(&a->ep_lock);
	ret = nm_pods_drain(&a->st, cid, ifname, &pod, why, sizeof(why));
	pthread_mutex_unlock(&a->ep_lock);
	if (ret)
		return ep_fail(out, ret == -ENOENT ? 404 : 500, "%s", why);
	pr_info("draining endpoint of container %s interface %s", cid, ifname);
	*out = nm_pod_doc(&pod, a->pod_mtu);
	return 200;
}

/* ---- start-up --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nodemesh-agent --config FILE [--node NAME] [--node-ip IP]\n"
		"                      [--pod-cidr CIDR]... [--socket PATH]\n"
		"                      [--lease-ttl SECONDS] [-v]...\n"
		"\n"
		"  --config FILE      agent config (YAML; see agent/config.h)\n"
		"  --node NAME        this node's name (default: the host name)\n"
		"  --node-ip IP       this node's address, the tunnel endpoint of its\n"
		"                     pods (default: the first non-loopback IPv4 address)\n"
		"  --pod-cidr CIDR    a pod CIDR of this node, published in its node\n"
		"                     record (repeatable, up to %d)\n"
		"  --socket PATH      status API socket (default: the config's\n"
		"                     api_socket, else <state_dir>/%s)\n"
		"  --lease-ttl S      lease TTL in seconds, 3..3600 (default %d)\n"
		"  -v                 more log output (repeat for debug)\n",
		POD_CIDRS_MAX, SOCKET_NAME, NM_PUBLISH_TTL_DEFAULT);
}

/* The first UP, non-loopback IPv4 address of this host. */
static int guess_node_ip(__be32 *out)
{
	struct ifaddrs *ifa, *i;
	int ret = -ENOENT;

	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		*out = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
		ret = 0;
		break;
	}
	freeifaddrs(ifa);
	return ret;
}

static int parse_args(int argc, char **argv, struct agent *a)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "node-ip", required_argument, NULL, 'i' },
		{ "pod-cidr", required_argument, NULL, 'p' },
		{ "socket", required_argument, NULL, 's' },
		{ "lease-ttl", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static char host[HOST_NAME_MAX + 1];
	int verbose = 0, o;
	char *end;
	long v;

	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			a->config_path = optarg;
			break;
		case 'n':
			a->node = optarg;
			break;
		case 'i':
			if (nm_parse_ipv4(optarg, &a->node_ip) || !a->node_ip) {
				pr_warn("bad --node-ip '%s': expected an IPv4 address",
					optarg);
				return -EINVAL;
			}
			break;
		case 'p':
			if (a->n_pod_cidrs == POD_CIDRS_MAX ||
			    nm_cidr_parse(optarg,
					  &a->pod_cidrs[a->n_pod_cidrs])) {
				pr_warn("bad --pod-cidr '%s': expected A.B.C.D/LEN without host bits, at most %d",
					optarg, POD_CIDRS_MAX);
				return -EINVAL;
			}
			a->n_pod_cidrs++;
			break;
		case 's':
			a->sock_path = optarg;
			break;
		case 't':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 3 || v > 3600) {
				pr_warn("bad --lease-ttl '%s': expected 3..3600 seconds",
					optarg);
				return -EINVAL;
			}
			a->lease_ttl = v;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc || !a->config_path) {
		if (optind != argc)
			pr_warn("unexpected argument '%s'", argv[optind]);
		else
			pr_warn("--config FILE is required");
		usage(stderr);
		return -EINVAL;
	}
	nm_log_set_level(verbose >= 2 ? NM_LOG_DEBUG :
			 verbose      ? NM_LOG_INFO :
					NM_LOG_WARN);
	if (!a->node) {
		if (gethostname(host, sizeof(host) - 1)) {
			pr_warn("failed to get host name: %s", strerror(errno));
			return -errno;
		}
		a->node = host;
	}
	if (strlen(a->node) > NM_KV_NAME_MAX || !nm_dns_subdomain_ok(a->node)) {
		pr_warn("bad node name '%s': must be a DNS subdomain (use --node)",
			a->node);
		return -EINVAL;
	}
	if (!a->node_ip && guess_node_ip(&a->node_ip)) {
		pr_warn("failed to find this node's address: no IPv4 address on an UP interface (use --node-ip)");
		return -EINVAL;
	}
	return 0;
}

/*
 * Load the datapath (reusing whatever is pinned, so this is also right
 * after a restart) and open its maps. The loader refuses sizes other than
 * the pins' (it says which), so the agent never runs with maps of other
 * sizes than its config asks for. The programs stay loaded: pods added
 * through the API are attached with them.
 */
static int open_maps(struct agent *a)
{
	const struct nm_datapath_conf *d = &a->cfg.datapath;
	struct nm_load_opts lo = {
		.pin_root = a->cfg.pin_root,
		.maglev_m = d->maglev_m,
		.maglev_tables = d->maglev_tables,
		.ct_max = d->ct_max,
		.services_max = d->services_max,
		.backends_max = d->backends_max,
	};
	size_t i;
	int ret;

	ret = nm_datapath_load(&lo, &a->dp);
	if (ret)
		return ret;
	for (i = 0; i < a->cfg.n_interfaces; i++) {
		ret = nm_tc_attach(a->dp, a->cfg.interfaces[i]);
		if (ret) {
			pr_warn("failed to attach datapath on %s: %s",
				a->cfg.interfaces[i], strerror(-ret));
			goto err;
		}
	}
	pr_info("loaded the datapath; maps pinned under %s", a->cfg.pin_root);
	ret = nm_maps_open(a->cfg.pin_root, &a->maps);
	if (ret)
		goto err;
	return 0;
err:
	nm_datapath_close(a->dp);
	a->dp = NULL;
	return ret;
}

/* The pod MTU: configured, else the node interface's less the overlay's. */
static void pick_pod_mtu(struct agent *a)
{
	unsigned int overhead = a->cfg.tunnel ? NM_VXLAN_OVERHEAD : 0, mtu;
	char err[256];

	if (a->cfg.pod_mtu) {
		a->pod_mtu = a->cfg.pod_mtu;
		return;
	}
	a->pod_mtu = 1500 - overhead;
	if (nm_addr_mtu(a->node_ip, &mtu, err, sizeof(err))) {
		pr_info("%s: pods get MTU %u", err, a->pod_mtu);
		return;
	}
	if (mtu < 576 + overhead) {
		pr_warn("node interface MTU %u leaves no room for the overlay: pods get MTU %u",
			mtu, a->pod_mtu);
		return;
	}
	a->pod_mtu = mtu - overhead;
}

/*
 * The overlay: the VXLAN device, its program, the nm_tunnel_v1 entry,
 * then up, so nothing tunnelled reaches the stack unchecked. With
 * "tunnel: disabled" the entry says so (ifindex 0) and from-pod hands
 * everything to the stack.
 */
static int setup_overlay(struct agent *a)
{
	__u32 k = 0;
	struct nm_tunnel_val v = { .node_ip = a->node_ip };
	const char *dev = a->cfg.tunnel_device;
	char err[512];
	bool created = false;
	int ifindex = 0, ret;

	pick_pod_mtu(a);
	if (a->cfg.tunnel) {
		ret = nm_overlay_ensure(dev, a->cfg.tunnel_port, &ifindex,
					&created, err, sizeof(err));
		if (ret) {
			pr_warn("%s", err);
			return ret;
		}
		ret = nm_overlay_attach(a->dp, ifindex, dev);
		if (ret)
			return ret;
		v.ifindex = (__u32)ifindex;
	}
	if (bpf_map_update_elem(a->maps.tunnel, &k, &v, BPF_ANY)) {
		ret = -errno;
		pr_warn("failed to write map %s on %s: %s", NM_MAP_TUNNEL,
			a->cfg.pin_root, strerror(-ret));
		return ret;
	}
	a->tunnel_ifindex = ifindex;
	if (!a->cfg.tunnel) {
		pr_info("overlay disabled; pod MTU %u", a->pod_mtu);
		return 0;
	}
	ret = nm_link_set_up(ifindex, err, sizeof(err));
	if (ret) {
		pr_warn("%s (overlay device %s)", err, dev);
		return ret;
	}
	pr_info("overlay on %s (ifindex %d, %s, UDP %u); pod MTU %u", dev,
		ifindex, created ? "created" : "reused", a->cfg.tunnel_port,
		a->pod_mtu);
	return 0;
}

/*
 * Pods attached by an earlier run keep that run's programs: swap in this
 * run's (atomically) wherever ours are attached, so an upgrade reaches
 * every pod. A veth gone since is skipped: its endpoint goes with the CNI
 * DEL; an interface with none of ours is left alone.
 */
static void reattach_endpoints(struct agent *a)
{
	struct nm_ep_rec *eps = NULL;
	char ifname[IF_NAMESIZE];
	size_t n = 0, i;
	__u32 prog_id;
	int ret;

	ret = nm_endpoints_read(&a->maps, &eps, &n);
	if (ret) {
		pr_warn("failed to read endpoints on %s to reattach: %s",
			a->cfg.pin_root, strerror(-ret));
		return;
	}
	for (i = 0; i < n; i++) {
		if (!if_indextoname(eps[i].val.ifindex, ifname))
			continue;
		/* Replace ours only: an endpoint written by 'nodemeshctl
		 * endpoint add' on an interface nobody attached stays so. */
		if (nm_tc_query(ifname, NM_TC_FROM_POD, &prog_id) &&
		    nm_tc_query(ifname, NM_TC_TO_POD, &prog_id))
			continue;
		ret = nm_tc_attach(a->dp, ifname);
		if (ret)
			pr_warn("failed to reattach datapath on %s: %s", ifname,
				strerror(-ret));
	}
	free(eps);
}

static int start_local(struct agent *a)
{
	struct nm_etcd_config ec;
	struct nm_etcd_err eerr = {};
	struct nm_publish_conf pc = {};
	struct cluster *c;
	char err[NM_ETCD_ERR_MAX];
	int ret;

	if (a->cfg.etcd.password_file) {
		ret = nm_read_password_file(a->cfg.etcd.password_file,
					    &a->etcd_password);
		if (ret)
			return ret;
	}
	etcd_config(&a->cfg.etcd, a->etcd_password, &ec);
	ret = nm_etcd_open(&ec, &a->etcd, &eerr);
	if (ret) {
		pr_warn("%s", eerr.msg);
		return ret;
	}
	pc.etcd = a->etcd;
	pc.prefix = a->cfg.kv_prefix;
	pc.cluster = a->cfg.cluster;
	pc.cluster_id = a->cfg.cluster_id;
	pc.node = a->node;
	pc.node_ip = a->node_ip;
	pc.pod_cidrs = a->pod_cidrs;
	pc.n_pod_cidrs = a->n_pod_cidrs;
	pc.maps = &a->maps;
	pc.state = &a->st;
	pc.ttl_s = a->lease_ttl;
	ret = nm_publish_start(&pc, &a->pub, err, sizeof(err));
	if (ret) {
		pr_warn("%s", err);
		return ret;
	}
	c = cluster_new(a->cfg.cluster, a->cfg.cluster_id, true, NULL);
	if (!c)
		return -ENOMEM;
	ret = cluster_add(a, c);
	if (ret) {
		cluster_free(c);
		return ret;
	}
	/* Our own etcd unreachable now is no reason to stop: listed, retried. */
	cluster_start(a, c, &a->cfg.etcd);
	return 0;
}

/* inotify on the remote dir; -1 (and periodic rescans only) if absent. */
static int watch_dir(const struct agent *a)
{
	int fd;

	if (!a->cfg.remote_clusters_dir)
		return -1;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		pr_warn("failed to watch %s: %s", a->cfg.remote_clusters_dir,
			strerror(errno));
		return -1;
	}
	/* ConfigMap mounts swap a symlink: moves and attribute changes too. */
	if (inotify_add_watch(fd, a->cfg.remote_clusters_dir,
			      IN_CREATE | IN_DELETE | IN_MOVED_FROM |
				      IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB |
				      IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
		pr_warn("failed to watch %s: %s (rescanning every %d s only)",
			a->cfg.remote_clusters_dir, strerror(errno),
			RESCAN_MS / 1000);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Every cluster listed once? A mirror that could not start or an
 * unreadable remote dir holds the sweep back: that cluster's entries
 * would look stale when they are merely not re-read yet.
 */
static bool all_synced(struct agent *a)
{
	struct nm_mirror_stats st;
	bool ok;
	size_t i;

	pthread_mutex_lock(&a->lock);
	ok = a->n_cl > 0 && !a->dir_err[0];
	for (i = 0; ok && i < a->n_cl; i++) {
		ok = a->cl[i]->m != NULL;
		if (!ok)
			break;
		nm_mirror_get_stats(a->cl[i]->m, &st);
		ok = st.synced;
	}
	pthread_mutex_unlock(&a->lock);
	return ok;
}

/* Sweep once all clusters are synced; a failed sweep is retried. */
static void maybe_sweep(struct agent *a, __u64 now, __u64 *next_sweep)
{
	int ret;

	if (a->swept || now < *next_sweep || !all_synced(a))
		return;
	ret = nm_sink_sweep(a->sink);
	if (ret) {
		pr_warn("failed to sweep stale entries on %s: %s (retrying in %d s)",
			a->cfg.pin_root, strerror(-ret), RESCAN_MS / 1000);
		*next_sweep = now + RESCAN_MS;
		return;
	}
	pthread_mutex_lock(&a->lock);
	a->swept = true;
	pthread_mutex_unlock(&a->lock);
}

/* ---- liveness --------------------------------------------------------------- */

/*
 * Tell the sink, then record the transition. A sink failure leaves the
 * state as it was, so the next tick tries again (logged once per error).
 */
static int cluster_mark(struct agent *a, struct cluster *c, bool reachable,
			__u64 now)
{
	int ret;

	ret = nm_sink_set_reachable(a->sink, c->name, reachable);
	if (ret) {
		if (ret != c->sink_err)
			pr_warn("failed to mark cluster %s %s in the map sink: %s (retrying)",
				c->name,
				reachable ? "reachable" : "unreachable",
				strerror(-ret));
		c->sink_err = ret;
		return ret;
	}
	c->sink_err = 0;
	c->readmitting = false;
	/* The list delayed the watch: the next heartbeat is due from now. */
	if (reachable)
		c->since_ns = now;
	pthread_mutex_lock(&a->lock);
	c->reachable = reachable;
	c->transitions++;
	c->last_transition_ns = now;
	if (!reachable)
		c->unreachable_ns = now;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

/*
 * One remote cluster, on the main loop's tick. Silent for longer than the
 * bound since its last heartbeat, or since its mirror started (or failed
 * to) when none was seen: unreachable. Unreachable and its heartbeat fresh
 * again: ask its mirror for a re-list and re-admit the cluster only once
 * that list completed, so no backend deleted while it was cut off is
 * selected again. Asked even when the etcd comes back with the same data:
 * a resumed watch shows every change only if the etcd kept its history,
 * and one restored from a snapshot can answer with the same cluster id
 * and an older revision.
 *
 * A list of a big cluster can outlast the bound, and the watch, which
 * brings the heartbeats, only resumes after it: so the re-list is waited
 * for however silent the cluster looks meanwhile, a heartbeat the list
 * itself saw counts, and the bound starts again at the re-admission.
 */
static void cluster_liveness(struct agent *a, struct cluster *c, __u64 now)
{
	__u64 bound = (__u64)a->cfg.heartbeat_bound_ms * 1000000ULL;
	__u64 hb, age, last, silent;
	struct nm_mirror_stats st = {};
	int ret;

	if (c->m)
		nm_mirror_get_stats(c->m, &st);
	/* Stamped after @now was read, it may be a little ahead of it. */
	hb = st.last_heartbeat_mono_ns;
	age = now > hb ? now - hb : 0;
	last = hb > c->since_ns ? hb : c->since_ns;
	silent = now > last ? now - last : 0;
	if (c->reachable) {
		if (silent <= bound || cluster_mark(a, c, false, now))
			return;
		if (!c->m)
			pr_warn("cluster %s unreachable: no heartbeat in %.1f s, its mirror could not start (bound %.1f s): %s",
				c->name, silent / 1e9, bound / 1e9,
				c->start_err);
		else if (!hb)
			pr_warn("cluster %s unreachable: no heartbeat in the %.1f s since its mirror started (bound %.1f s)",
				c->name, silent / 1e9, bound / 1e9);
		else
			pr_warn("cluster %s unreachable: no heartbeat for %.1f s (bound %.1f s); its backends leave selection",
				c->name, age / 1e9, bound / 1e9);
		return;
	}
	if (!c->readmitting) {
		if (!hb || age > bound)
			return;
		ret = nm_mirror_relist(c->m);
		if (ret) {
			pr_warn("failed to re-list cluster %s: %s", c->name,
				strerror(-ret));
			return;
		}
		nm_mirror_get_stats(c->m, &st);
		c->relist_want = st.relist_asked;
		c->relist_ns = now;
		c->readmitting = true;
		pr_info("cluster %s: heartbeats resumed after %.1f s unreachable; re-listing it",
			c->name, (now - c->unreachable_ns) / 1e9);
		return;
	}
	if (st.relist_done < c->relist_want)
		return;
	/* Silent since the request: gone again, wait for the next heartbeat. */
	if (age > bound && hb < c->relist_ns) {
		c->readmitting = false;
		return;
	}
	if (cluster_mark(a, c, true, now))
		return;
	pr_warn("cluster %s reachable again after %.1f s: heartbeats resumed, re-listed (%llu records); its backends are selected again",
		c->name, (now - c->unreachable_ns) / 1e9,
		(unsigned long long)st.records);
}

/*
 * Only the main loop changes the cluster list and these fields, so it
 * reads them without the lock; the sink is called outside it, so a slow
 * sink never holds up the API.
 */
static void check_liveness(struct agent *a)
{
	__u64 now = mono_ns();
	size_t i;

	for (i = 0; i < a->n_cl; i++)
		if (!a->cl[i]->local)
			cluster_liveness(a, a->cl[i], now);
}

/* Until SIGTERM/SIGINT: flush the sink, follow the remote dir, sweep once. */
static int main_loop(struct agent *a, int sfd)
{
	__u64 next_flush = 0, next_rescan = 0, next_sweep = 0, now;
	struct pollfd pfd[2];
	char buf[4096];
	int ifd, ret, n;

	ifd = watch_dir(a);
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = ifd, .events = POLLIN };
	for (;;) {
		now = mono_ms();
		if (now >= next_rescan) {
			rescan(a);
			/* A dir removed loses its watch; re-watch it when back. */
			if (ifd >= 0 && a->dir_err[0]) {
				close(ifd);
				ifd = pfd[1].fd = -1;
			}
			if (ifd < 0 && a->cfg.remote_clusters_dir &&
			    !a->dir_err[0]) {
				ifd = watch_dir(a);
				pfd[1].fd = ifd;
			}
			next_rescan = mono_ms() + RESCAN_MS;
		}
		if (now >= next_flush) {
			/* First: a transition's re-merge goes out in this flush. */
			check_liveness(a);
			ret = nm_sink_flush(a->sink);
			if (ret)
				pr_warn("failed to flush map sink on %s: %s",
					a->cfg.pin_root, strerror(-ret));
			next_flush = now + FLUSH_MS;
			maybe_sweep(a, now, &next_sweep);
		}
		n = poll(pfd, 2, FLUSH_MS);
		if (n < 0 && errno != EINTR) {
			ret = -errno;
			pr_warn("failed to poll: %s", strerror(-ret));
			goto out;
		}
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				pr_info("caught signal %u: stopping",
					si.ssi_signo);
			ret = 0;
			goto out;
		}
		if (n > 0 && ifd >= 0 && (pfd[1].revents & POLLIN)) {
			while (read(ifd, buf, sizeof(buf)) > 0)
				;
			next_rescan = mono_ms() + INOTIFY_SETTLE_MS;
		}
		if (n > 0 && ifd >= 0 &&
		    (pfd[1].revents & (POLLERR | POLLHUP))) {
			close(ifd);
			ifd = pfd[1].fd = -1;
		}
	}
out:
	if (ifd >= 0)
		close(ifd);
	return ret;
}

static void stop_all(struct agent *a)
{
	size_t i;

	nm_api_stop(a->api);
	a->api = NULL;
	/*
	 * Mirrors first: nothing writes the maps while we go. Every one is
	 * told, then each joined: they wind down together, not in turn.
	 */
	for (i = 0; i < a->n_cl; i++)
		nm_mirror_request_stop(a->cl[i]->m);
	for (i = 0; i < a->n_cl; i++) {
		if (a->cl[i]->m)
			nm_mirror_stop(a->cl[i]->m);
		cluster_free(a->cl[i]);
	}
	free(a->cl);
	a->cl = NULL;
	a->n_cl = 0;
	nm_publish_stop(a->pub, true);
	a->pub = NULL;
	if (a->sink) {
		if (nm_sink_flush(a->sink))
			pr_warn("failed to flush map sink on %s",
				a->cfg.pin_root);
		nm_sink_close(a->sink);
		a->sink = NULL;
	}
	nm_etcd_close(a->etcd);
	a->etcd = NULL;
}

/*
 * Each cluster costs about six descriptors (two connections, curl's
 * socket pairs); the usual soft limit of 1024 runs out near 165 clusters
 * and shows up as misleading connect errors. Take the hard limit.
 */
static void raise_nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		pr_warn("failed to read the open-file limit: %s",
			strerror(errno));
		return;
	}
	if (rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		pr_warn("failed to raise the open-file limit to %llu: %s",
			(unsigned long long)rl.rlim_max, strerror(errno));
}

static const struct nm_api_ops api_ops = {
	.status = status_json,
	.metrics = metrics_text,
	.ep_add = api_ep_add,
	.ep_list = api_ep_list,
	.ep_get = api_ep_get,
	.ep_del = api_ep_del,
	.ep_drain = api_ep_drain,
};

int main(int argc, char **argv)
{
	struct agent a = { .lease_ttl = NM_PUBLISH_TTL_DEFAULT };
	struct nm_sink_conf sc = {};
	struct nm_error cerr = {};
	char msg[1024], sock[PATH_MAX + 16];
	sigset_t mask;
	int sfd = -1, ret;

	nm_log_set_ident("nodemesh-agent");
	nm_log_init_libbpf();
	raise_nofile_limit();
	pthread_mutex_init(&a.lock, NULL);
	pthread_mutex_init(&a.ep_lock, NULL);
	if (parse_args(argc, argv, &a))
		return 1;
	if (nm_config_load(a.config_path, &a.cfg, &cerr)) {
		pr_warn("failed to load config %s",
			nm_error_str(&cerr, msg, sizeof(msg)));
		return 1;
	}
	/* Block before any thread starts, so only the signalfd sees them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
		pr_warn("failed to set up signal handling: %s",
			strerror(errno));
		ret = -errno;
		goto out_cfg;
	}
	/* A broken connection must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);

	ret = nm_state_open(a.cfg.state_dir, a.cfg.cluster, a.cfg.cluster_id,
			    &a.st);
	if (ret)
		goto out_sig;
	ret = open_maps(&a);
	if (ret)
		goto out_sig;
	ret = setup_overlay(&a);
	if (ret)
		goto out_maps;
	reattach_endpoints(&a);
	sc.maps = &a.maps;
	sc.state = &a.st;
	sc.local_cluster = a.cfg.cluster;
	sc.local_cluster_id = a.cfg.cluster_id;
	sc.local_node = a.node;
	ret = nm_sink_open(&sc, &a.sink);
	if (ret)
		goto out_maps;
	ret = start_local(&a);
	if (ret)
		goto out_stop;
	if (!a.sock_path && a.cfg.api_socket) {
		a.sock_path = a.cfg.api_socket;
	} else if (!a.sock_path) {
		snprintf(sock, sizeof(sock), "%s/%s", a.st.dir, SOCKET_NAME);
		a.sock_path = sock;
	}
	ret = nm_api_start(a.sock_path, &api_ops, &a, &a.api);
	if (ret)
		goto out_stop;
	pr_info("node %s (%s) of cluster %s (id %u) running; status on %s",
		a.node, inet_ntop(AF_INET, &a.node_ip, msg, sizeof(msg)),
		a.cfg.cluster, a.cfg.cluster_id, a.sock_path);

	ret = main_loop(&a, sfd);
out_stop:
	stop_all(&a);
out_maps:
	nm_maps_close(&a.maps);
	nm_datapath_close(a.dp);
out_sig:
	if (sfd >= 0)
		close(sfd);
out_cfg:
	nm_remote_set_free(&a.remotes);
	nm_refusals_free(&a.refused);
	free(a.etcd_password);
	nm_config_free(&a.cfg);
	pthread_mutex_destroy(&a.ep_lock);
	pthread_mutex_destroy(&a.lock);
	return ret ? 1 : 0;
}
