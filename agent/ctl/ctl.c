// SPDX-License-Identifier: GPL-2.0
/*
 * What every nodemeshctl command group shares: option parsing, output
 * helpers, pinned-map helpers, the node context and the agent's API.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <curl/curl.h>

#include "agent/ctl/ctl.h"
#include "agent/labels.h"
#include "agent/log.h"
#include "maps/identity.h"
#include "maps/metrics.h"

const char *opt_pin_root;
const char *opt_state_dir;
const char *opt_cluster;
const char *opt_cluster_id;
bool opt_json;

/* ---- arguments ---------------------------------------------------------- */

int parse_u32(const char *s, const char *what, __u32 *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > 0xffffffffULL)
		goto bad;
	*out = (__u32)v;
	return 0;
bad:
	pr_warn("bad value '%s' for %s: must be a decimal number", s, what);
	return -EINVAL;
}

int match_opt(int argc, char **argv, int *i, const char *name,
	      const char **val)
{
	size_t len = strlen(name);

	if (strncmp(argv[*i], name, len))
		return 0;
	if (argv[*i][len] == '=') {
		*val = argv[*i] + len + 1;
		return 1;
	}
	if (argv[*i][len])
		return 0;
	if (*i + 1 >= argc) {
		pr_warn("option %s needs a value", name);
		return -EINVAL;
	}
	*val = argv[++*i];
	return 1;
}

int ctl_args(int argc, char **argv, const char *cmd,
	     const struct ctl_opt *opts, const char **pos)
{
	const struct ctl_opt *o;
	int a, ret;

	for (a = 0; a < argc; a++) {
		ret = 0;
		for (o = opts; o && o->name && !ret; o++)
			ret = match_opt(argc, argv, &a, o->name, o->val);
		if (ret < 0)
			return ret;
		if (ret)
			continue;
		if (!pos || argv[a][0] == '-' || *pos) {
			pr_warn("unexpected argument '%s' for %s", argv[a], cmd);
			return -EINVAL;
		}
		*pos = argv[a];
	}
	return 0;
}

/* ---- output ------------------------------------------------------------- */

void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

const char *ip_str(__be32 addr, char *buf)
{
	if (!inet_ntop(AF_INET, &addr, buf, INET_ADDRSTRLEN))
		strcpy(buf, "?");
	return buf;
}

const char *mac_str(const __u8 *m, char *buf)
{
	sprintf(buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
		m[4], m[5]);
	return buf;
}

void ctl_list_begin(const char *none, size_t n)
{
	if (opt_json)
		putchar('[');
	else if (none && !n)
		fputs(none, stdout);
}

void ctl_list_end(void)
{
	if (opt_json)
		printf("]\n");
}

const char *reason_name(__u32 r)
{
	static const char *const names[NM_REASON_MAX] = {
		[NM_REASON_PASS] = "pass",
		[NM_REASON_SVC_NEW] = "svc_new",
		[NM_REASON_SVC_ESTABLISHED] = "svc_established",
		[NM_REASON_REVNAT] = "revnat",
		[NM_REASON_NOT_IPV4] = "not_ipv4",
		[NM_REASON_NOT_L4] = "not_l4",
		[NM_REASON_FRAGMENT] = "fragment",
		[NM_REASON_SVC_RESELECT] = "svc_reselect",
		[NM_REASON_POLICY_ALLOW] = "policy_allow",
		[NM_REASON_CT_ESTABLISHED] = "ct_established",
		[NM_REASON_CT_REPLY] = "ct_reply",
		[NM_REASON_EVENT_LOST] = "event_lost",
		[NM_REASON_ENCAP] = "encap",
		[NM_DROP_TRUNC_ETH] = "drop_trunc_eth",
		[NM_DROP_TRUNC_IPV4] = "drop_trunc_ipv4",
		[NM_DROP_BAD_IPV4] = "drop_bad_ipv4",
		[NM_DROP_TRUNC_L4] = "drop_trunc_l4",
		[NM_DROP_NO_BACKEND] = "drop_no_backend",
		[NM_DROP_NAT_FAILED] = "drop_nat_failed",
		[NM_DROP_CT_FULL] = "drop_ct_full",
		[NM_DROP_POLICY_DENY] = "drop_policy_deny",
		[NM_DROP_POLICY_DEFAULT] = "drop_policy_default",
		[NM_DROP_ENCAP_FAILED] = "drop_encap_failed",
		[NM_DROP_UNKNOWN_NODE] = "drop_unknown_node",
		[NM_DROP_NO_TUNNEL_KEY] = "drop_no_tunnel_key",
		[NM_DROP_NO_ENDPOINT] = "drop_no_endpoint",
		[NM_DROP_DELIVERY] = "drop_delivery",
		[NM_DROP_SPOOFED] = "drop_spoofed",
	};

	return r < NM_REASON_MAX && names[r] ? names[r] : NULL;
}

const char *dir_name(__u32 dir)
{
	static const char *const names[NM_DIR_MAX] = {
		[NM_DIR_FROM_POD] = "from_pod",
		[NM_DIR_TO_POD] = "to_pod",
		[NM_DIR_FROM_OVERLAY] = "from_overlay",
	};

	return dir < NM_DIR_MAX ? names[dir] : "unknown";
}

const char *verdict_name(__u8 v)
{
	return v == NM_POLICY_ALLOW ? "allow" : v == NM_POLICY_DENY ? "deny" : "-";
}

const char *enforce_str(__u8 flags)
{
	switch (flags & (NM_EP_F_INGRESS_POLICY | NM_EP_F_EGRESS_POLICY)) {
	case NM_EP_F_INGRESS_POLICY:
		return "ingress";
	case NM_EP_F_EGRESS_POLICY:
		return "egress";
	case NM_EP_F_INGRESS_POLICY | NM_EP_F_EGRESS_POLICY:
		return "ingress+egress";
	default:
		return "none";
	}
}

const char *port_str(const struct nm_policy_key *k, char *buf, size_t len)
{
	if (!k->proto && !k->dport)
		snprintf(buf, len, "any");
	else if (!k->dport)
		snprintf(buf, len, "%s/any", nm_proto_name(k->proto));
	else
		snprintf(buf, len, "%s/%u", nm_proto_name(k->proto),
			 ntohs(k->dport));
	return buf;
}

void ctl_sync_report(const char *what, const struct nm_sync_stats *s)
{
	if (opt_json) {
		printf("\"policy_entries\":{\"added\":%zu,\"changed\":%zu,\"removed\":%zu,\"unchanged\":%zu},\"enforcement\":{\"on\":%zu,\"off\":%zu},\"cidr_identities\":{\"added\":%zu,\"removed\":%zu}}\n",
		       s->added, s->changed, s->removed, s->unchanged,
		       s->flags_on, s->flags_off, s->cidr_added, s->cidr_removed);
		return;
	}
	printf("%s: policy entries %zu added, %zu changed, %zu removed (%zu unchanged); enforcement %zu on, %zu off; CIDR identities %zu added, %zu removed\n",
	       what, s->added, s->changed, s->removed, s->unchanged,
	       s->flags_on, s->flags_off, s->cidr_added, s->cidr_removed);
}

/* ---- pinned maps -------------------------------------------------------- */

int ctl_with_maps(int (*fn)(struct nm_maps *maps))
{
	struct nm_maps maps;
	int err;

	err = nm_maps_open(opt_pin_root, &maps);
	if (err)
		return err;
	err = fn(&maps);
	nm_maps_close(&maps);
	return err;
}

int ctl_map_walk(int fd, const char *name, const char *root, __u32 key_size,
		 __u32 val_size, ctl_walk_fn fn, void *ctx)
{
	__u64 key[8], next[8], val[8]; /* 64 bytes each, 8-byte aligned */
	bool first = true;
	size_t i = 0;
	int err;

	if (key_size > sizeof(key) || val_size > sizeof(val)) {
		err = -E2BIG;
		goto fail;
	}
	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		memcpy(key, next, key_size);
		first = false;
		if (val_size && bpf_map_lookup_elem(fd, key, val))
			continue; /* deleted while we walked */
		err = fn(key, val_size ? val : NULL, i++, ctx);
		if (err)
			return err;
	}
	if (errno == ENOENT)
		return 0;
	err = -errno;
fail:
	pr_warn("failed to iterate map %s on %s: %s", name, root,
		strerror(-err));
	return err;
}

int ctl_map_dump(const struct nm_maps *maps, int fd, const char *name,
		 __u32 key_size, __u32 val_size, ctl_walk_fn fn, void *ctx)
{
	int err;

	ctl_list_begin(NULL, 0);
	err = ctl_map_walk(fd, name, maps->pin_root, key_size, val_size, fn,
			   ctx);
	ctl_list_end();
	return err;
}

int ctl_map_update(const struct nm_maps *maps, int fd, const char *name,
		   const void *key, const void *val)
{
	int err;

	if (!bpf_map_update_elem(fd, key, val, BPF_ANY))
		return 0;
	err = -errno;
	pr_warn("failed to write map %s on %s: %s", name, maps->pin_root,
		strerror(-err));
	return err;
}

int ctl_map_delete(const struct nm_maps *maps, int fd, const char *name,
		   const void *key)
{
	int err;

	if (!bpf_map_delete_elem(fd, key) || errno == ENOENT)
		return 0;
	err = -errno;
	pr_warn("failed to delete from map %s on %s: %s", name,
		maps->pin_root, strerror(-err));
	return err;
}

/* ---- node: maps, state dir and identities ------------------------------- */

static int cluster_opts(const char **name, __u32 *id)
{
	const char *env_id;

	*name = opt_cluster ?: getenv("NODEMESH_CLUSTER");
	if (*name && !**name)
		*name = NULL;
	env_id = opt_cluster_id ?: getenv("NODEMESH_CLUSTER_ID");
	*id = 0;
	if (env_id && *env_id)
		return parse_u32(env_id, "--cluster-id", id);
	return 0;
}

int node_open(struct node_ctx *n, bool lock)
{
	const char *cluster;
	__u32 cluster_id;
	int err;

	memset(n, 0, sizeof(*n));
	err = cluster_opts(&cluster, &cluster_id);
	if (err)
		return err;
	err = nm_maps_open(opt_pin_root, &n->maps);
	if (err)
		return err;
	n->maps_open = true;
	if (lock) {
		err = nm_maps_lock(&n->maps);
		if (err)
			return err;
		n->locked = true;
	}
	err = nm_state_open(nm_state_dir(opt_state_dir), cluster, cluster_id,
			    &n->st);
	if (err)
		return err;
	err = nm_idstore_load(&n->st, &n->ids);
	if (err)
		return err;
	n->ids_loaded = true;
	return 0;
}

void node_close(struct node_ctx *n)
{
	if (n->ids_loaded)
		nm_idstore_free(&n->ids);
	if (n->locked)
		nm_maps_unlock(&n->maps);
	if (n->maps_open)
		nm_maps_close(&n->maps);
}

int node_endpoint(const struct node_ctx *n, const char *ip_s,
		  const struct nm_endpoint_key *k, struct nm_endpoint_val *v)
{
	int err;

	if (!bpf_map_lookup_elem(n->maps.endpoints, k, v))
		return 0;
	err = -errno;
	pr_warn("failed to find endpoint %s on %s: %s", ip_s, n->maps.pin_root,
		err == -ENOENT ? "no such endpoint" : strerror(-err));
	return err;
}

const char *id_str(__u64 id, char *buf, size_t len)
{
	const char *r = nm_identity_reserved_name(id);

	if (r)
		snprintf(buf, len, "%s", r);
	else if (nm_identity_is_cidr(id))
		snprintf(buf, len, "cidr/%u", nm_identity_local(id));
	else
		snprintf(buf, len, "%u/%u", nm_identity_cluster(id),
			 nm_identity_local(id));
	return buf;
}

char *id_labels(const struct nm_idstore *ids, __u64 id)
{
	const struct nm_identity_info *info = nm_idstore_find(ids, id);

	return info ? nm_labels_str(&info->labels) : strdup("?");
}

void json_labels(const struct nm_idstore *ids, __u64 id)
{
	const struct nm_identity_info *info = nm_idstore_find(ids, id);
	size_t i;

	putchar('{');
	for (i = 0; info && i < info->labels.n; i++) {
		if (i)
			putchar(',');
		json_str(info->labels.v[i].key);
		putchar(':');
		json_str(info->labels.v[i].value);
	}
	putchar('}');
}

int load_store(const struct nm_state *st, struct nm_policy_set *set)
{
	struct nm_error perr;
	char msg[1024];
	int err;

	err = nm_policy_store_load(st, set, &perr);
	if (err && perr.reason[0])
		pr_warn("failed to load applied policies on %s: %s", st->dir,
			nm_error_str(&perr, msg, sizeof(msg)));
	return err;
}

int resync(struct node_ctx *n, const struct nm_ep_rec *pending,
	   struct nm_sync_stats *stats)
{
	struct nm_policy_set set;
	int err;

	err = load_store(&n->st, &set);
	if (err)
		return err;
	err = nm_policy_sync(&n->maps, &n->st, &n->ids, &set, pending, stats,
			     NULL);
	nm_policy_set_free(&set);
	return err;
}

/* ---- the agent's API ---------------------------------------------------- */

#define CTL_API_REPLY_MAX (4U << 20)

_Static_assert(CTL_API_WHY_MAX >= CURL_ERROR_SIZE, "why holds curl's error");

static size_t api_collect(char *p, size_t sz, size_t nm, void *arg)
{
	struct ctl_reply *r = arg;
	size_t n = sz * nm;
	char *v;

	if (r->len + n > CTL_API_REPLY_MAX)
		return 0;
	v = realloc(r->buf, r->len + n + 1);
	if (!v)
		return 0;
	memcpy(v + r->len, p, n);
	r->len += n;
	v[r->len] = '\0';
	r->buf = v;
	return n;
}

int ctl_api_request(const char *sock, const char *method, const char *path,
		    long timeout_ms, struct ctl_reply *r, char *why,
		    size_t why_len)
{
	char url[512], cerr[CURL_ERROR_SIZE] = "";
	CURLcode rc;
	CURL *h;
	int err = 0;

	r->code = 0;
	r->unreachable = false;
	if (snprintf(url, sizeof(url), "http://localhost%s", path) >=
	    (int)sizeof(url)) {
		snprintf(why, why_len, "path too long");
		return -ENAMETOOLONG;
	}
	h = curl_easy_init();
	if (!h) {
		snprintf(why, why_len, "curl init failed");
		return -ENOMEM;
	}
	if (curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock) ||
	    curl_easy_setopt(h, CURLOPT_URL, url) ||
	    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, api_collect) ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, r) ||
	    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr) ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
	    /* A POST without a body still says so: Content-Length: 0. */
	    (!strcmp(method, "POST") &&
	     curl_easy_setopt(h, CURLOPT_POSTFIELDS, ""))) {
		snprintf(why, why_len, "curl setup failed");
		err = -EINVAL;
		goto out;
	}
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		snprintf(why, why_len, "%s",
			 cerr[0] ? cerr : curl_easy_strerror(rc));
		r->unreachable = rc == CURLE_COULDNT_CONNECT;
		err = -ECONNREFUSED;
		goto out;
	}
	/* No status to read is judged like any status but 200. */
	if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code))
		r->code = 0;
out:
	curl_easy_cleanup(h);
	return err;
}
