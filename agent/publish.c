// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "agent/endpoint.h"
#include "agent/identity.h"
#include "agent/identity_kv.h"
#include "agent/log.h"
#include "agent/meshsvc_kv.h"
#include "agent/policy_apply.h"
#include "agent/publish.h"
#include "maps/backend.h"
#include "maps/identity.h"

#define BOOT_ID_FILE "/proc/sys/kernel/random/boot_id"

/* One published key and the value we wrote there. */
struct pub_kv {
	char *key;
	char *val;
	size_t len;
};

struct pub_set {
	struct pub_kv *v;
	size_t n, cap;
};

/* kvstore identity of a canonical label string, once allocated. */
struct id_cache_ent {
	char *canon;
	__u64 id;
};

struct nm_publisher {
	/* copied configuration */
	struct nm_etcd *etcd;
	char *prefix, *cluster, *node, *boot_id;
	__u16 cluster_id;
	__be32 node_ip;
	struct nm_cidr *pod_cidrs;
	size_t n_pod_cidrs;
	const struct nm_maps *maps;
	const struct nm_state *state;
	__s64 ttl_s;
	long scan_ms;
	struct nm_kv_ctx ctx;

	pthread_t lease_thr, rec_thr;
	bool lease_started, rec_started;
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t wake; /* stop, new lease, lease suspect */
	bool stop;
	bool check_lease; /* a write said "lease not found": renew now */
	__u64 lease;
	__u64 lease_gen; /* bumped per granted lease */
	struct nm_publish_stats stats;

	/* record thread only */
	struct pub_set published;
	struct id_cache_ent *ids;
	size_t n_ids;
	/* cni.json's last read error, logged once */
	char pods_error[NM_ETCD_ERR_MAX];
	char export_refusal[NM_KV_ERR_LEN]; /* logged once */
	struct nm_meshsvc_grace grace; /* the exporter's, while we lead */
};

static __u64 mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
}

static __u64 wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
}

/* Sleep on p->wake until @deadline_ms (monotonic) or a wake-up; locked. */
static void wait_until(struct nm_publisher *p, __u64 deadline_ms)
{
	struct timespec ts = { (time_t)(deadline_ms / 1000),
			       (long)(deadline_ms % 1000) * 1000000L };

	if (!p->stop)
		pthread_cond_timedwait(&p->wake, &p->lock, &ts);
}

/* Copy @src into @dst, cut to fit. */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void note_error(struct nm_publisher *p, const char *msg)
{
	pthread_mutex_lock(&p->lock);
	p->stats.errors++;
	copy_str(p->stats.last_error, sizeof(p->stats.last_error), msg);
	pthread_mutex_unlock(&p->lock);
}

/* A write under the lease failed because the lease is gone. */
static void lease_suspect(struct nm_publisher *p)
{
	pthread_mutex_lock(&p->lock);
	p->check_lease = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

int nm_boot_id(char *buf, size_t len)
{
	ssize_t n;
	int fd, err = 0;

	fd = open(BOOT_ID_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		pr_warn("failed to open %s: %s", BOOT_ID_FILE, strerror(-err));
		return err;
	}
	n = read(fd, buf, len - 1);
	if (n <= 0) {
		err = n < 0 ? -errno : -ENODATA;
		pr_warn("failed to read %s: %s", BOOT_ID_FILE, strerror(-err));
		goto out;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
out:
	close(fd);
	return err;
}

/* ---- records ------------------------------------------------------------- */

/* Encode @rec; on failure log and count it. */
static int encode(struct nm_publisher *p, const struct nm_kv_record *rec,
		  char **key, char **val, size_t *len)
{
	char why[NM_KV_ERR_LEN];
	int ret;

	ret = nm_kv_encode(&p->ctx, rec, key, val, len, why, sizeof(why));
	if (ret) {
		pr_warn("failed to encode record on cluster %s: %s", p->cluster,
			why);
		note_error(p, why);
	}
	return ret;
}

/* Put @key under @lease (0: none), logging and counting a failure. */
static int put(struct nm_publisher *p, const char *key, const char *val,
	       size_t len, __u64 lease)
{
	struct nm_etcd_err err = {};
	int ret;

	ret = nm_etcd_put(p->etcd, key, val, len, lease, NULL, &err);
	if (ret) {
		pr_warn("%s", err.msg);
		note_error(p, err.msg);
		if (lease && ret == -ENOENT)
			lease_suspect(p);
	}
	return ret;
}

static int put_record(struct nm_publisher *p, const struct nm_kv_record *rec,
		      __u64 lease)
{
	char *key = NULL, *val = NULL;
	size_t len;
	int ret;

	ret = encode(p, rec, &key, &val, &len);
	if (ret)
		return ret;
	ret = put(p, key, val, len, lease);
	free(val);
	free(key);
	return ret;
}

static void key_init(struct nm_kv_key *k, const struct nm_publisher *p,
		     enum nm_kv_type type, enum nm_kv_kind kind)
{
	memset(k, 0, sizeof(*k));
	k->type = type;
	k->kind = kind;
	snprintf(k->cluster, sizeof(k->cluster), "%s", p->cluster);
}

static int put_cluster(struct nm_publisher *p)
{
	struct nm_kv_record rec;

	memset(&rec, 0, sizeof(rec));
	key_init(&rec.key, p, NM_KV_T_CLUSTER, NM_KV_NODES);
	rec.cluster.name = p->cluster;
	rec.cluster.id = p->cluster_id;
	rec.cluster.schema = NM_KV_SCHEMA;
	return put_record(p, &rec, 0);
}

static int put_node(struct nm_publisher *p, __u64 lease)
{
	struct nm_kv_record rec;

	memset(&rec, 0, sizeof(rec));
	key_init(&rec.key, p, NM_KV_T_NODE, NM_KV_NODES);
	snprintf(rec.key.name, sizeof(rec.key.name), "%s", p->node);
	rec.node.name = p->node;
	rec.node.cluster = p->cluster;
	rec.node.cluster_id = p->cluster_id;
	rec.node.node_ip = p->node_ip;
	rec.node.pod_cidrs = p->pod_cidrs;
	rec.node.n_pod_cidrs = p->n_pod_cidrs;
	rec.node.boot_id = p->boot_id;
	return put_record(p, &rec, lease);
}

static int put_synced(struct nm_publisher *p)
{
	static const enum nm_kv_kind kinds[] = { NM_KV_NODES, NM_KV_ENDPOINTS,
						 NM_KV_IDENTITIES };
	struct nm_kv_record rec;
	size_t i;
	int ret;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		memset(&rec, 0, sizeof(rec));
		key_init(&rec.key, p, NM_KV_T_SYNCED, kinds[i]);
		rec.stamp.ts_ms = wall_ms();
		ret = put_record(p, &rec, 0);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- endpoints ------------------------------------------------------------ */

static void pub_kv_free(struct pub_kv *kv)
{
	free(kv->key);
	free(kv->val);
}

static void pub_set_free(struct pub_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		pub_kv_free(&s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Append, taking ownership of @key and @val (freed on failure). */
static int pub_set_add(struct pub_set *s, char *key, char *val, size_t len)
{
	struct pub_kv *v;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;

		v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			free(key);
			free(val);
			return -ENOMEM;
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct pub_kv){ key, val, len };
	return 0;
}

static int pub_kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pub_kv *)a)->key,
		      ((const struct pub_kv *)b)->key);
}

/*
 * The kvstore identity of @labels: cached, else allocated by transaction.
 * Identity keys are never deleted, so a cached answer stays true.
 */
static int kv_identity(struct nm_publisher *p, const struct nm_labels *labels,
		       __u64 *id)
{
	struct nm_etcd_err err = {};
	struct id_cache_ent *v;
	char *canon;
	size_t i;
	int ret;

	canon = nm_labels_str(labels);
	if (!canon)
		return -ENOMEM;
	for (i = 0; i < p->n_ids; i++) {
		if (!strcmp(p->ids[i].canon, canon)) {
			*id = p->ids[i].id;
			free(canon);
			return 0;
		}
	}
	ret = nm_identity_alloc_kv(p->etcd, p->prefix, p->cluster,
				   p->cluster_id, labels, id, &err);
	if (ret) {
		pr_warn("%s", err.msg);
		note_error(p, err.msg);
		goto err_free;
	}
	v = realloc(p->ids, (p->n_ids + 1) * sizeof(*v));
	if (!v) {
		ret = -ENOMEM;
		goto err_free;
	}
	p->ids = v;
	p->ids[p->n_ids++] = (struct id_cache_ent){ canon, *id };
	return 0;

err_free:
	free(canon);
	return ret;
}

/* Namespace and pod name of the endpoint at @ip (dotted quad). */
static void ep_name(struct nm_publisher *p, const char *ip,
		    const struct nm_labels *labels, char *ns, size_t ns_len,
		    char *name, size_t name_len)
{
	const char *lns = nm_labels_get(labels, NM_LABEL_NAMESPACE);
	char full[NM_KV_NS_MAX + NM_KV_NAME_MAX + 2];
	char *slash;
	size_t i;

	snprintf(ns, ns_len, "%s", lns ? lns : "");
	if (!nm_state_get_ep_name(p->state, ip, full, sizeof(full)) &&
	    (slash = strchr(full, '/')) && slash[1]) {
		*slash = '\0';
		copy_str(ns, ns_len, full);
		copy_str(name, name_len, slash + 1);
		return;
	}
	/* No name registered: one derived from the address. */
	snprintf(name, name_len, "ip-%s", ip);
	for (i = 0; name[i]; i++)
		if (name[i] == '.')
			name[i] = '-';
}

/* The record of one endpoint into @want; a skipped endpoint is logged. */
static int want_endpoint(struct nm_publisher *p, const struct nm_idstore *ids,
			 const struct nm_pods *pods, const struct nm_ep_rec *ep,
			 struct pub_set *want)
{
	const struct nm_pod *pod = nm_pods_find_ip(pods, ep->addr);
	const struct nm_identity_info *info;
	char ip[INET_ADDRSTRLEN], ns[NM_KV_NS_MAX + 1];
	struct nm_kv_record rec;
	char *key = NULL, *val = NULL;
	const char *lc;
	size_t len;
	__u64 kvid;
	int ret;

	if (!inet_ntop(AF_INET, &ep->addr, ip, sizeof(ip)))
		return -errno;
	info = nm_idstore_find(ids, ep->val.identity);
	lc = info ? nm_labels_get(&info->labels, NM_LABEL_CLUSTER) : NULL;
	if (!lc || strcmp(lc, p->cluster)) {
		pr_debug(
			"not publishing endpoint %s: identity %llu is no label identity of cluster %s",
			ip, (unsigned long long)ep->val.identity, p->cluster);
		return 0;
	}
	memset(&rec, 0, sizeof(rec));
	key_init(&rec.key, p, NM_KV_T_ENDPOINT, NM_KV_ENDPOINTS);
	ep_name(p, ip, &info->labels, ns, sizeof(ns), rec.key.name,
		sizeof(rec.key.name));
	snprintf(rec.key.ns, sizeof(rec.key.ns), "%s", ns);
	ret = kv_identity(p, &info->labels, &kvid);
	if (ret)
		return ret;
	if (kvid != ep->val.identity) {
		/* Peers must see the cluster-wide id; see publish.h. */
		pr_warn("endpoint %s (%s/%s): kvstore identity %llu differs from local identity %llu; publishing %llu",
			ip, rec.key.ns, rec.key.name, (unsigned long long)kvid,
			(unsigned long long)ep->val.identity,
			(unsigned long long)kvid);
		pthread_mutex_lock(&p->lock);
		p->stats.identity_mismatches++;
		pthread_mutex_unlock(&p->lock);
	}
	rec.ep.namespace = rec.key.ns;
	rec.ep.name = rec.key.name;
	rec.ep.ip = ep->addr;
	rec.ep.node = p->node;
	rec.ep.labels = info->labels; /* borrowed */
	rec.ep.identity = kvid;
	/* Drained through the API: services offer it to old flows only. */
	rec.ep.state = pod && pod->terminating ? NM_BE_TERMINATING :
						 NM_BE_ACTIVE;
	ret = encode(p, &rec, &key, &val, &len);
	if (ret)
		return 0; /* logged; the others still go out */
	return pub_set_add(want, key, val, len);
}

/* What the endpoints map says should be published, sorted by key. */
static int scan_endpoints(struct nm_publisher *p, struct pub_set *want)
{
	struct nm_ep_rec *eps = NULL;
	struct nm_idstore ids;
	struct nm_pods pods;
	char why[sizeof(p->pods_error)];
	size_t n = 0, i;
	int ret, err = 0;

	/*
	 * Which pods drain. Unreadable, it publishes nothing this round:
	 * guessing "active" would undo a drain.
	 */
	ret = nm_pods_load(p->state, &pods, why, sizeof(why));
	if (ret) {
		if (strcmp(why, p->pods_error)) {
			pr_warn("not publishing endpoints: %s", why);
			note_error(p, why);
		}
		copy_str(p->pods_error, sizeof(p->pods_error), why);
		return ret;
	}
	p->pods_error[0] = '\0';
	ret = nm_endpoints_read(p->maps, &eps, &n);
	if (ret)
		goto out_pods;
	ret = nm_idstore_load(p->state, &ids);
	if (ret)
		goto out_eps;
	for (i = 0; i < n; i++) {
		ret = want_endpoint(p, &ids, &pods, &eps[i], want);
		/* One endpoint's identity failing must not unpublish it. */
		if (ret == -ENOMEM)
			goto out_ids;
		if (ret && !err)
			err = ret;
	}
	qsort(want->v, want->n, sizeof(*want->v), pub_kv_cmp);
	ret = err;
out_ids:
	nm_idstore_free(&ids);
out_eps:
	free(eps);
out_pods:
	nm_pods_free(&pods);
	return ret;
}

/*
 * Bring etcd from p->published to @want: put what is new or changed,
 * delete what is gone. p->published ends as what was written, so a
 * failed write is retried on the next scan. With @partial (the scan
 * missed some endpoints) nothing is deleted.
 */
static int publish_diff(struct nm_publisher *p, struct pub_set *want,
			bool partial, __u64 lease)
{
	struct pub_set *old = &p->published, next = {};
	struct nm_etcd_err err = {};
	size_t i = 0, j = 0;
	int ret = 0, r;

	while (i < old->n || j < want->n) {
		int c = i == old->n  ? 1 :
			j == want->n ? -1 :
				       strcmp(old->v[i].key, want->v[j].key);

		if (c < 0) {
			/* Gone from the map. */
			if (partial) {
				r = pub_set_add(&next, old->v[i].key,
						old->v[i].val, old->v[i].len);
			} else {
				r = nm_etcd_delete(p->etcd, old->v[i].key,
						   false, NULL, NULL, &err);
				if (r) {
					pr_warn("%s", err.msg);
					note_error(p, err.msg);
					ret = r;
					r = pub_set_add(&next, old->v[i].key,
							old->v[i].val,
							old->v[i].len);
				} else {
					pr_info("unpublished %s",
						old->v[i].key);
					pub_kv_free(&old->v[i]);
				}
			}
			i++;
		} else if (c > 0 || old->v[i].len != want->v[j].len ||
			   memcmp(old->v[i].val, want->v[j].val,
				  want->v[j].len)) {
			r = put(p, want->v[j].key, want->v[j].val,
				want->v[j].len, lease);
			if (r) {
				ret = r;
				/* Keep what etcd holds: retried next scan. */
				if (c == 0) {
					r = pub_set_add(&next, old->v[i].key,
							old->v[i].val,
							old->v[i].len);
					old->v[i].key = old->v[i].val = NULL;
				}
				pub_kv_free(&want->v[j]);
			} else {
				pr_info("published %s", want->v[j].key);
				r = pub_set_add(&next, want->v[j].key,
						want->v[j].val, want->v[j].len);
			}
			if (c == 0)
				pub_kv_free(&old->v[i++]);
			j++;
		} else {
			/* Unchanged. */
			r = pub_set_add(&next, want->v[j].key, want->v[j].val,
					want->v[j].len);
			pub_kv_free(&old->v[i++]);
			j++;
		}
		if (r == -ENOMEM)
			ret = r;
	}
	free(old->v);
	free(want->v);
	memset(want, 0, sizeof(*want));
	*old = next;
	return ret;
}

/* ---- MeshService exports ---------------------------------------------------- */

/*
 * Run by the heartbeat writer only: one exporter per cluster, and when the
 * writer dies another node takes the heartbeat, and so the exports, within
 * the lease TTL. A round keeps no state but the grace table
 * (agent/meshsvc_kv.h): the new writer reconciles whatever the old one
 * left, starting with an empty table.
 */
static void export_services(struct nm_publisher *p)
{
	struct nm_meshsvc_sync_stats st;
	struct nm_etcd_err err = {};
	int ret;

	ret = nm_meshsvc_sync(p->etcd, &p->ctx, &p->grace, &st, &err);
	if (ret) {
		pr_warn("%s", err.msg);
		note_error(p, err.msg);
	}
	/* A manifest that stays refused is logged once, not every second. */
	if (strcmp(st.refusal, p->export_refusal) && st.refusal[0])
		pr_warn("MeshService not exported: %s", st.refusal);
	copy_str(p->export_refusal, sizeof(p->export_refusal), st.refusal);
	pthread_mutex_lock(&p->lock);
	p->stats.services = st.exported;
	p->stats.services_refused = st.refused;
	pthread_mutex_unlock(&p->lock);
}

static void *record_thread(void *arg)
{
	struct nm_publisher *p = arg;
	bool cluster_done = false, node_done = false, synced = false, leader;
	__u64 seen_gen = 0, lease, gen;
	int ret;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct pub_set want = {};
		bool partial;

		lease = p->lease;
		gen = p->lease_gen;
		if (!lease) {
			wait_until(p, mono_ms() + (__u64)p->scan_ms);
			continue;
		}
		pthread_mutex_unlock(&p->lock);

		if (gen != seen_gen) {
			/* A new lease: everything under the old one is gone. */
			pub_set_free(&p->published);
			node_done = false;
			seen_gen = gen;
		}
		if (!cluster_done)
			cluster_done = !put_cluster(p);
		if (!node_done)
			node_done = !put_node(p, lease);
		ret = scan_endpoints(p, &want);
		if (ret == -ENOMEM) {
			pub_set_free(&want);
			note_error(p, "out of memory scanning endpoints");
		} else {
			partial = ret != 0;
			ret = publish_diff(p, &want, partial, lease) || partial;
		}
		if (!ret && cluster_done && node_done && !synced) {
			synced = !put_synced(p);
			if (synced)
				pr_info("published the initial set of node %s in cluster %s",
					p->node, p->cluster);
		}
		pthread_mutex_lock(&p->lock);
		leader = p->stats.leader;
		if (!leader)
			p->stats.services = p->stats.services_refused = 0;
		pthread_mutex_unlock(&p->lock);
		/* Stale first-missing times must not cut a later grace short. */
		if (!leader)
			nm_meshsvc_grace_reset(&p->grace);
		if (leader)
			export_services(p);

		pthread_mutex_lock(&p->lock);
		p->stats.endpoints = p->published.n;
		p->stats.synced = synced;
		if (p->lease_gen == gen)
			wait_until(p, mono_ms() + (__u64)p->scan_ms);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- lease and heartbeat -------------------------------------------------- */

/* One heartbeat round: write it if we lead, else try to take it. */
static void heartbeat(struct nm_publisher *p, __u64 lease, bool *leader)
{
	struct nm_etcd_kv cur = {};
	struct nm_etcd_err err = {};
	struct nm_kv_record rec;
	char *key = NULL, *val = NULL;
	size_t len;
	bool done;
	int ret;

	memset(&rec, 0, sizeof(rec));
	key_init(&rec.key, p, NM_KV_T_HEARTBEAT, NM_KV_NODES);
	rec.stamp.ts_ms = wall_ms();
	if (encode(p, &rec, &key, &val, &len))
		return;
	if (*leader) {
		/*
		 * A plain put is safe: our key lives exactly as long as our
		 * lease, and a put under an expired lease fails.
		 */
		ret = put(p, key, val, len, lease);
		if (ret) {
			pr_warn("lost the heartbeat of cluster %s: %s",
				p->cluster, strerror(-ret));
			*leader = false;
		}
		goto out;
	}
	ret = nm_etcd_create(p->etcd, key, val, len, lease, &done, &cur, &err);
	if (ret) {
		pr_warn("%s", err.msg);
		note_error(p, err.msg);
		if (ret == -ENOENT)
			lease_suspect(p);
		goto out;
	}
	/* A create that timed out but landed shows up as our lease's key. */
	if (done || (cur.key && cur.lease == lease)) {
		pr_info("node %s now writes the heartbeat of cluster %s",
			p->node, p->cluster);
		*leader = true;
	}
	nm_etcd_kv_free(&cur);
out:
	free(val);
	free(key);
}

static void *lease_thread(void *arg)
{
	struct nm_publisher *p = arg;
	const __u64 renew_ms = (__u64)p->ttl_s * 1000 / 3;
	__u64 lease = 0, next_renew = 0, next_beat = 0, now;
	struct nm_etcd_err err = {};
	bool leader = false;
	__s64 ttl;
	int ret;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		bool check = p->check_lease;

		p->check_lease = false;
		pthread_mutex_unlock(&p->lock);
		now = mono_ms();

		if (!lease) {
			ret = nm_etcd_lease_grant(p->etcd, p->ttl_s, &lease,
						  &ttl, &err);
			pthread_mutex_lock(&p->lock);
			if (ret) {
				pr_warn("%s", err.msg);
				p->stats.errors++;
				copy_str(p->stats.last_error,
					 sizeof(p->stats.last_error), err.msg);
				lease = 0;
				wait_until(p, now + 1000);
				continue;
			}
			pr_info("granted lease %llx (TTL %lld s) to node %s on cluster %s",
				(unsigned long long)lease, (long long)ttl,
				p->node, p->cluster);
			p->lease = lease;
			p->lease_gen++;
			p->stats.lease = lease;
			p->stats.ttl_s = ttl;
			p->stats.lease_ok = true;
			p->stats.grants++;
			p->stats.leader = leader = false;
			pthread_cond_broadcast(&p->wake);
			pthread_mutex_unlock(&p->lock);
			next_renew = now + renew_ms;
		} else if (check || now >= next_renew) {
			ret = nm_etcd_lease_keepalive(p->etcd, lease, &ttl,
						      &err);
			if (ret == -ENOENT) {
				/* Our records are gone: new lease, publish all. */
				pr_warn("lease %llx of node %s expired; granting a new one and publishing again",
					(unsigned long long)lease, p->node);
				note_error(p, err.msg);
				pthread_mutex_lock(&p->lock);
				p->lease = lease = 0;
				p->stats.lease = 0;
				p->stats.lease_ok = false;
				p->stats.leader = leader = false;
				continue;
			}
			if (ret) {
				/* etcd unreachable: the lease may still live. */
				pr_warn("%s", err.msg);
				note_error(p, err.msg);
				next_renew = now + 1000;
			} else {
				next_renew = now + renew_ms;
			}
			pthread_mutex_lock(&p->lock);
			p->stats.lease_ok = !ret;
			pthread_mutex_unlock(&p->lock);
		}
		if (lease && now >= next_beat) {
			heartbeat(p, lease, &leader);
			next_beat = now + (__u64)p->scan_ms;
		}

		pthread_mutex_lock(&p->lock);
		p->stats.leader = leader;
		if (!p->check_lease)
			wait_until(p, next_beat < next_renew ? next_beat :
							       next_renew);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- life cycle ------------------------------------------------------------ */

static void publisher_free(struct nm_publisher *p)
{
	size_t i;

	pub_set_free(&p->published);
	nm_meshsvc_grace_reset(&p->grace);
	for (i = 0; i < p->n_ids; i++)
		free(p->ids[i].canon);
	free(p->ids);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p->pod_cidrs);
	free(p->boot_id);
	free(p->node);
	free(p->cluster);
	free(p->prefix);
	free(p);
}

static void publisher_join(struct nm_publisher *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	if (p->rec_started)
		pthread_join(p->rec_thr, NULL);
	if (p->lease_started)
		pthread_join(p->lease_thr, NULL);
}

int nm_publish_start(const struct nm_publish_conf *conf,
		     struct nm_publisher **out, char *err, size_t errlen)
{
	char boot[NM_KV_BOOT_ID_MAX + 2];
	pthread_condattr_t ca;
	struct nm_publisher *p;
	int ret;

	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen,
			 "failed to start publisher: out of memory");
		return -ENOMEM;
	}
	if (conf->boot_id) {
		snprintf(boot, sizeof(boot), "%s", conf->boot_id);
	} else {
		ret = nm_boot_id(boot, sizeof(boot));
		if (ret) {
			snprintf(err, errlen, "failed to read %s: %s",
				 BOOT_ID_FILE, strerror(-ret));
			free(p);
			return ret;
		}
	}
	p->prefix = strdup(conf->prefix ? conf->prefix : NM_KV_PREFIX_DEFAULT);
	p->cluster = strdup(conf->cluster);
	p->node = strdup(conf->node);
	p->boot_id = strdup(boot);
	if (conf->n_pod_cidrs) {
		p->pod_cidrs = calloc(conf->n_pod_cidrs, sizeof(*p->pod_cidrs));
		if (p->pod_cidrs)
			memcpy(p->pod_cidrs, conf->pod_cidrs,
			       conf->n_pod_cidrs * sizeof(*p->pod_cidrs));
	}
	pthread_mutex_init(&p->lock, NULL);
	/* Deadlines are monotonic: wall clock jumps must not stall renewal. */
	ret = pthread_condattr_init(&ca);
	if (!ret) {
		ret = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if (!ret)
			ret = pthread_cond_init(&p->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (ret) {
		pthread_cond_init(&p->wake, NULL);
		snprintf(err, errlen, "failed to start publisher: %s",
			 strerror(ret));
		ret = -ret;
		goto err_free;
	}
	if (!p->prefix || !p->cluster || !p->node || !p->boot_id ||
	    (conf->n_pod_cidrs && !p->pod_cidrs)) {
		snprintf(err, errlen,
			 "failed to start publisher: out of memory");
		ret = -ENOMEM;
		goto err_free;
	}
	p->etcd = conf->etcd;
	p->n_pod_cidrs = conf->n_pod_cidrs;
	p->cluster_id = conf->cluster_id;
	p->node_ip = conf->node_ip;
	p->maps = conf->maps;
	p->state = conf->state;
	p->ttl_s = conf->ttl_s ? conf->ttl_s : NM_PUBLISH_TTL_DEFAULT;
	p->scan_ms = conf->scan_ms ? conf->scan_ms : 1000;
	p->ctx = (struct nm_kv_ctx){ p->prefix, p->cluster, p->cluster_id };
	if (p->ttl_s < 3) {
		snprintf(
			err, errlen,
			"failed to start publisher: lease TTL %lld s is below 3 s",
			(long long)p->ttl_s);
		ret = -EINVAL;
		goto err_free;
	}
	/* A dead node's endpoints go with its lease: one TTL is consistent. */
	p->grace.period_ns = (__u64)p->ttl_s * 1000000000ULL;

	ret = pthread_create(&p->lease_thr, NULL, lease_thread, p);
	if (ret) {
		snprintf(err, errlen, "failed to start lease thread: %s",
			 strerror(ret));
		ret = -ret;
		goto err_free;
	}
	p->lease_started = true;
	ret = pthread_create(&p->rec_thr, NULL, record_thread, p);
	if (ret) {
		snprintf(err, errlen, "failed to start record thread: %s",
			 strerror(ret));
		ret = -ret;
		goto err_join;
	}
	p->rec_started = true;
	*out = p;
	return 0;

err_join:
	publisher_join(p);
err_free:
	publisher_free(p);
	return ret;
}

void nm_publish_stop(struct nm_publisher *p, bool revoke)
{
	struct nm_etcd_err err = {};
	__u64 lease;

	if (!p)
		return;
	publisher_join(p);
	lease = p->lease;
	if (revoke && lease) {
		if (nm_etcd_lease_revoke(p->etcd, lease, &err))
			pr_warn("%s", err.msg);
		else
			pr_info("revoked lease %llx of node %s",
				(unsigned long long)lease, p->node);
	}
	publisher_free(p);
}

void nm_publish_get_stats(struct nm_publisher *p, struct nm_publish_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->stats;
	pthread_mutex_unlock(&p->lock);
}
