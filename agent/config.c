// SPDX-License-Identifier: GPL-2.0
/*
 * Agent config and remote-cluster files: strict YAML (agent/ywalk.h), then
 * cross-file checks in the directory loader, and the diff the daemon uses
 * to connect and drain clusters on reload.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/kvstore.h"
#include "agent/log.h"
#include "agent/maglev.h"
#include "agent/state.h"
#include "agent/ywalk.h"
#include "maps/backend.h"
#include "maps/common.h"
#include "maps/identity.h"
#include "maps/service.h"
#include "maps/tunnel.h"

#define IFNAME_MAX 15 /* IFNAMSIZ - 1 */

/* The connection fields, in the agent's etcd: and flat in remote files. */
enum {
	E_ENDPOINTS,
	E_CA_FILE,
	E_CERT_FILE,
	E_KEY_FILE,
	E_USERNAME,
	E_PASSWORD_FILE,
	E_NUM,
};

static const char *const etcd_names[E_NUM] = {
	[E_ENDPOINTS] = "endpoints", [E_CA_FILE] = "ca_file",
	[E_CERT_FILE] = "cert_file", [E_KEY_FILE] = "key_file",
	[E_USERNAME] = "username",   [E_PASSWORD_FILE] = "password_file",
};

static int get_cluster_name(struct nm_yw *w, const yaml_node_t *n,
			    const char *path, char **out)
{
	const char *s;
	int ret;

	ret = nm_yw_str(w, n, path, &s);
	if (ret)
		return ret;
	if (!nm_dns_label_ok(s))
		return nm_yw_fail(
			w, n,
			"%s '%.64s' must be a DNS label (lowercase letters, digits and '-', at most 63)",
			path, s);
	*out = strdup(s);
	return *out ? 0 : nm_yw_oom(w, n);
}

static int get_path(struct nm_yw *w, const yaml_node_t *n, const char *path,
		    char **out)
{
	const char *s;
	int ret;

	ret = nm_yw_str(w, n, path, &s);
	if (ret)
		return ret;
	/* The daemon's cwd is nobody's business: no relative paths. */
	if (s[0] != '/')
		return nm_yw_fail(w, n, "%s '%.64s' must be an absolute path",
				  path, s);
	if (strlen(s) >= PATH_MAX)
		return nm_yw_fail(w, n, "%s is longer than %d bytes", path,
				  PATH_MAX - 1);
	*out = strdup(s);
	return *out ? 0 : nm_yw_oom(w, n);
}

static bool host_ok(const char *s, size_t len)
{
	size_t i;

	if (!len)
		return false;
	if (s[0] == '[') /* an IPv6 literal */
		return len > 2 && s[len - 1] == ']' &&
		       strspn(s + 1, "0123456789abcdefABCDEF:.") == len - 2;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	}
	return true;
}

/* scheme://host[:port][/], scheme http or https; *https says which. */
static int check_url(struct nm_yw *w, const yaml_node_t *n, const char *path,
		     const char *s, bool *https)
{
	const char *host, *end, *port = NULL;
	unsigned long p = 0;
	size_t hlen;

	if (strlen(s) > NM_CONFIG_URL_MAX)
		return nm_yw_fail(w, n, "%s is longer than %u bytes", path,
				  NM_CONFIG_URL_MAX);
	if (!strncmp(s, "https://", 8)) {
		*https = true;
		host = s + 8;
	} else if (!strncmp(s, "http://", 7)) {
		*https = false;
		host = s + 7;
	} else {
		return nm_yw_fail(
			w, n, "%s '%.64s' must start with http:// or https://",
			path, s);
	}
	end = host + strlen(host);
	if (end > host && end[-1] == '/')
		end--;
	/* The port follows the last ':' outside an IPv6 literal. */
	if (host[0] == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));

		if (rb && rb + 1 < end && rb[1] == ':')
			port = rb + 1;
	} else {
		port = memchr(host, ':', (size_t)(end - host));
	}
	hlen = port ? (size_t)(port - host) : (size_t)(end - host);
	if (!host_ok(host, hlen))
		goto bad;
	if (port) {
		const char *d;

		if (port + 1 == end || end - port > 6)
			goto bad;
		for (d = port + 1; d < end; d++) {
			if (*d < '0' || *d > '9')
				goto bad;
			p = p * 10 + (unsigned long)(*d - '0');
		}
		if (!p || p > 65535)
			return nm_yw_fail(w, n,
					  "%s '%.64s': port must be 1..65535",
					  path, s);
	}
	return 0;
bad:
	return nm_yw_fail(
		w, n,
		"%s '%.64s' must be scheme://host[:port] (no user, path or query)",
		path, s);
}

static void etcd_conf_free(struct nm_etcd_conf *e)
{
	size_t i;

	for (i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	free(e->endpoints);
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	free(e->username);
	free(e->password_file);
	memset(e, 0, sizeof(*e));
}

static int parse_endpoints(struct nm_yw *w, const yaml_node_t *seq,
			   const char *path, struct nm_etcd_conf *e,
			   bool *any_https)
{
	char item[NM_YW_PATH_LEN];
	bool https = false, first_https = false;
	size_t i, j, n;
	int ret;

	ret = nm_yw_expect(w, seq, NM_Y_SEQ, path);
	if (ret)
		return ret;
	n = nm_yw_seq_len(seq);
	if (!n)
		return nm_yw_fail(w, seq, "%s must list at least one endpoint",
				  path);
	if (n > NM_CONFIG_ENDPOINTS_MAX)
		return nm_yw_fail(w, seq,
				  "%s has %zu endpoints, at most %u allowed",
				  path, n, NM_CONFIG_ENDPOINTS_MAX);
	e->endpoints = calloc(n, sizeof(*e->endpoints));
	if (!e->endpoints)
		return nm_yw_oom(w, seq);
	for (i = 0; i < n; i++) {
		yaml_node_t *it = nm_yw_seq_item(w, seq, i);

		nm_yw_pathf(item, "%s[%zu]", path, i);
		ret = nm_yw_dup_str(w, it, item, &e->endpoints[i]);
		if (ret)
			return ret;
		e->n_endpoints = i + 1;
		ret = check_url(w, it, item, e->endpoints[i], &https);
		if (ret)
			return ret;
		if (!i)
			first_https = https;
		else if (https != first_https)
			return nm_yw_fail(w, it,
					  "%s mixes http and https endpoints",
					  path);
		for (j = 0; j < i; j++) {
			if (!strcmp(e->endpoints[j], e->endpoints[i]))
				return nm_yw_fail(w, it, "%s repeats %s[%zu]",
						  item, path, j);
		}
	}
	*any_https = first_https;
	return 0;
}

/* The connection fields @v (E_NUM nodes, NULL when absent) of @map. */
static int parse_etcd(struct nm_yw *w, const yaml_node_t *map, const char *path,
		      yaml_node_t *const *v, struct nm_etcd_conf *e)
{
	char sub[NM_YW_PATH_LEN];
	char **files[E_NUM] = {
		[E_CA_FILE] = &e->ca_file,
		[E_CERT_FILE] = &e->cert_file,
		[E_KEY_FILE] = &e->key_file,
		[E_PASSWORD_FILE] = &e->password_file,
	};
	bool https = false;
	int i, ret;

	ret = nm_yw_need(w, map, v[E_ENDPOINTS], "endpoints", path);
	if (ret)
		return ret;
	nm_yw_join(sub, path, "endpoints");
	ret = parse_endpoints(w, v[E_ENDPOINTS], sub, e, &https);
	if (ret)
		return ret;
	for (i = 0; i < E_NUM; i++) {
		if (!files[i] || !v[i])
			continue;
		nm_yw_join(sub, path, etcd_names[i]);
		ret = get_path(w, v[i], sub, files[i]);
		if (ret)
			return ret;
	}
	if (v[E_USERNAME]) {
		nm_yw_join(sub, path, "username");
		ret = nm_yw_dup_str(w, v[E_USERNAME], sub, &e->username);
		if (ret)
			return ret;
		if (!*e->username)
			return nm_yw_fail(w, v[E_USERNAME],
					  "%s must not be empty", sub);
	}
	if (!!e->cert_file != !!e->key_file)
		return nm_yw_fail(
			w, v[e->cert_file ? E_CERT_FILE : E_KEY_FILE],
			"cert_file and key_file go together: %s has only %s",
			*path ? path : "the file",
			e->cert_file ? "cert_file" : "key_file");
	if (!!e->username != !!e->password_file)
		return nm_yw_fail(
			w, v[e->username ? E_USERNAME : E_PASSWORD_FILE],
			"username and password_file go together: %s has only %s",
			*path ? path : "the file",
			e->username ? "username" : "password_file");
	if (!https && (e->ca_file || e->cert_file))
		return nm_yw_fail(
			w, v[e->ca_file ? E_CA_FILE : E_CERT_FILE],
			"TLS files are given but every endpoint is http://");
	return 0;
}

static int parse_interfaces(struct nm_yw *w, const yaml_node_t *seq,
			    struct nm_agent_config *c)
{
	char item[NM_YW_PATH_LEN];
	size_t i, j, n;
	int ret;

	ret = nm_yw_expect(w, seq, NM_Y_SEQ, "interfaces");
	if (ret)
		return ret;
	n = nm_yw_seq_len(seq);
	if (n > NM_CONFIG_INTERFACES_MAX)
		return nm_yw_fail(
			w, seq, "interfaces has %zu items, at most %u allowed",
			n, NM_CONFIG_INTERFACES_MAX);
	if (!n)
		return 0;
	c->interfaces = calloc(n, sizeof(*c->interfaces));
	if (!c->interfaces)
		return nm_yw_oom(w, seq);
	for (i = 0; i < n; i++) {
		yaml_node_t *it = nm_yw_seq_item(w, seq, i);
		const char *s;

		nm_yw_pathf(item, "interfaces[%zu]", i);
		ret = nm_yw_dup_str(w, it, item, &c->interfaces[i]);
		if (ret)
			return ret;
		c->n_interfaces = i + 1;
		s = c->interfaces[i];
		/* What the kernel's dev_valid_name() accepts. */
		if (!*s || strlen(s) > IFNAME_MAX || !strcmp(s, ".") ||
		    !strcmp(s, "..") || strpbrk(s, "/: \t\n"))
			return nm_yw_fail(
				w, it,
				"%s '%.64s' is not an interface name (1..15 characters, no '/', ':' or space)",
				item, s);
		for (j = 0; j < i; j++) {
			if (!strcmp(c->interfaces[j], s))
				return nm_yw_fail(w, it,
						  "%s repeats interfaces[%zu]",
						  item, j);
		}
	}
	return 0;
}

static int parse_prefix(struct nm_yw *w, const yaml_node_t *n, char **out)
{
	const char *s;
	size_t len;
	int ret;

	ret = nm_yw_str(w, n, "kvstore_prefix", &s);
	if (ret)
		return ret;
	len = strlen(s);
	if (!len || len > NM_KV_PREFIX_MAX || s[len - 1] != '/' ||
	    strspn(s,
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") !=
		    len)
		return nm_yw_fail(
			w, n,
			"kvstore_prefix '%.64s' must be at most %u characters of letters, digits, '.', '_', '-' and '/', ending in '/'",
			s, NM_KV_PREFIX_MAX);
	*out = strdup(s);
	return *out ? 0 : nm_yw_oom(w, n);
}

/* The datapath's load-time sizes, each optional. */
enum {
	D_MAGLEV_M,
	D_MAGLEV_TABLES,
	D_SERVICES_MAX,
	D_BACKENDS_MAX,
	D_CT_MAX,
	D_NUM,
};

static const char *const datapath_names[D_NUM] = {
	[D_MAGLEV_M] = "maglev_m",
	[D_MAGLEV_TABLES] = "maglev_tables",
	[D_SERVICES_MAX] = "services_max",
	[D_BACKENDS_MAX] = "backends_max",
	[D_CT_MAX] = "ct_max",
};

/* The loader's own bounds (agent/loader.c), refused here with a line. */
static const __u64 datapath_min[D_NUM] = {
	[D_MAGLEV_M] = NM_MAGLEV_M_MIN,
	[D_MAGLEV_TABLES] = NM_MAGLEV_TABLES_MIN,
	[D_SERVICES_MAX] = 1,
	[D_BACKENDS_MAX] = 1,
	[D_CT_MAX] = 1,
};

static const __u64 datapath_max[D_NUM] = {
	[D_MAGLEV_M] = NM_MAGLEV_M_MAX,
	[D_MAGLEV_TABLES] = NM_MAGLEV_ENTRIES_MAX / NM_MAGLEV_M_MIN,
	[D_SERVICES_MAX] = NM_SERVICES_MAX_LIMIT,
	[D_BACKENDS_MAX] = NM_BACKENDS_MAX_LIMIT,
	[D_CT_MAX] = UINT32_MAX, /* the loader has no tighter bound */
};

static int parse_datapath(struct nm_yw *w, const yaml_node_t *map,
			  struct nm_datapath_conf *d)
{
	__u32 *const dst[D_NUM] = {
		[D_MAGLEV_M] = &d->maglev_m,
		[D_MAGLEV_TABLES] = &d->maglev_tables,
		[D_SERVICES_MAX] = &d->services_max,
		[D_BACKENDS_MAX] = &d->backends_max,
		[D_CT_MAX] = &d->ct_max,
	};
	char path[NM_YW_PATH_LEN], why[128];
	yaml_node_t *v[D_NUM];
	__u64 n;
	int i, ret;

	ret = nm_yw_fields(w, map, "datapath", datapath_names, D_NUM, v);
	if (ret)
		return ret;
	for (i = 0; i < D_NUM; i++) {
		if (!v[i])
			continue;
		nm_yw_join(path, "datapath", datapath_names[i]);
		ret = nm_yw_uint(w, v[i], path, datapath_min[i],
				 datapath_max[i], &n);
		if (ret)
			return ret;
		*dst[i] = (__u32)n;
	}
	if (d->maglev_m && nm_maglev_check_m(d->maglev_m, why, sizeof(why)))
		return nm_yw_fail(w, v[D_MAGLEV_M], "datapath.maglev_m: %s",
				  why);
	/* With M left out, the loader checks against the pinned M. */
	if (d->maglev_m && d->maglev_tables &&
	    (__u64)d->maglev_tables * d->maglev_m > NM_MAGLEV_ENTRIES_MAX)
		return nm_yw_fail(
			w, v[D_MAGLEV_TABLES],
			"datapath.maglev_tables %u x maglev_m %u is more than %u Maglev slots",
			d->maglev_tables, d->maglev_m, NM_MAGLEV_ENTRIES_MAX);
	return 0;
}

static int get_socket(struct nm_yw *w, const yaml_node_t *n, char **out)
{
	int ret;

	ret = get_path(w, n, "api_socket", out);
	if (ret)
		return ret;
	if (strlen(*out) > NM_CONFIG_SOCKET_PATH_MAX)
		return nm_yw_fail(
			w, n,
			"api_socket is longer than %u bytes (a unix socket path)",
			NM_CONFIG_SOCKET_PATH_MAX);
	return 0;
}

static int strdup_default(char **out, const char *def)
{
	if (*out)
		return 0;
	*out = strdup(def);
	return *out ? 0 : -ENOMEM;
}

enum {
	C_CLUSTER,
	C_CLUSTER_ID,
	C_ETCD,
	C_PIN_ROOT,
	C_STATE_DIR,
	C_INTERFACES,
	C_KV_PREFIX,
	C_HEARTBEAT,
	C_REMOTE_DIR,
	C_API_SOCKET,
	C_DATAPATH,
	C_TUNNEL,
	C_TUNNEL_DEVICE,
	C_TUNNEL_PORT,
	C_POD_MTU,
	C_NUM,
};

static const char *const config_names[C_NUM] = {
	[C_CLUSTER] = "cluster",
	[C_CLUSTER_ID] = "cluster_id",
	[C_ETCD] = "etcd",
	[C_PIN_ROOT] = "pin_root",
	[C_STATE_DIR] = "state_dir",
	[C_INTERFACES] = "interfaces",
	[C_KV_PREFIX] = "kvstore_prefix",
	[C_HEARTBEAT] = "heartbeat_bound_ms",
	[C_REMOTE_DIR] = "remote_clusters_dir",
	[C_API_SOCKET] = "api_socket",
	[C_DATAPATH] = "datapath",
	[C_TUNNEL] = "tunnel",
	[C_TUNNEL_DEVICE] = "tunnel_device",
	[C_TUNNEL_PORT] = "tunnel_port",
	[C_POD_MTU] = "pod_mtu",
};

/* tunnel: vxlan | disabled; the device name must be a valid ifname. */
static int parse_tunnel(struct nm_yw *w, const yaml_node_t *root,
			yaml_node_t *const *v, struct nm_agent_config *c)
{
	const char *s;
	__u64 n;
	int ret;

	c->tunnel = true;
	if (v[C_TUNNEL]) {
		ret = nm_yw_str(w, v[C_TUNNEL], "tunnel", &s);
		if (ret)
			return ret;
		if (strcmp(s, "vxlan") && strcmp(s, "disabled"))
			return nm_yw_fail(w, v[C_TUNNEL],
					  "tunnel must be vxlan or disabled, got '%s'",
					  s);
		c->tunnel = !strcmp(s, "vxlan");
	}
	if (v[C_TUNNEL_DEVICE]) {
		ret = nm_yw_str(w, v[C_TUNNEL_DEVICE], "tunnel_device", &s);
		if (ret)
			return ret;
		if (!*s || strlen(s) >= IF_NAMESIZE || strchr(s, '/') ||
		    strpbrk(s, " \t\n:"))
			return nm_yw_fail(w, v[C_TUNNEL_DEVICE],
					  "tunnel_device '%s' is not an interface name (1..%d characters, no '/', ':' or spaces)",
					  s, IF_NAMESIZE - 1);
		c->tunnel_device = strdup(s);
		if (!c->tunnel_device)
			return nm_yw_oom(w, v[C_TUNNEL_DEVICE]);
	}
	c->tunnel_port = NM_VXLAN_PORT_DEFAULT;
	if (v[C_TUNNEL_PORT]) {
		ret = nm_yw_uint(w, v[C_TUNNEL_PORT], "tunnel_port", 1, 65535,
				 &n);
		if (ret)
			return ret;
		c->tunnel_port = (__u16)n;
	}
	if (v[C_POD_MTU]) {
		/* 576: the IPv4 minimum every host must accept. */
		ret = nm_yw_uint(w, v[C_POD_MTU], "pod_mtu", 576, 65535 - 50,
				 &n);
		if (ret)
			return ret;
		c->pod_mtu = (__u32)n;
	}
	if (!c->tunnel_device) {
		c->tunnel_device = strdup(NM_TUNNEL_DEVICE_DEFAULT);
		if (!c->tunnel_device)
			return nm_yw_oom(w, root);
	}
	return 0;
}

static int config_walk(struct nm_yw *w, const yaml_node_t *root,
		       struct nm_agent_config *c)
{
	yaml_node_t *v[C_NUM], *e[E_NUM];
	__u64 n;
	int ret;

	ret = nm_yw_fields(w, root, "", config_names, C_NUM, v);
	if (ret)
		return ret;
	ret = nm_yw_need(w, root, v[C_CLUSTER], "cluster", "");
	if (ret)
		return ret;
	ret = get_cluster_name(w, v[C_CLUSTER], "cluster", &c->cluster);
	if (ret)
		return ret;
	ret = nm_yw_need(w, root, v[C_CLUSTER_ID], "cluster_id", "");
	if (ret)
		return ret;
	ret = nm_yw_uint(w, v[C_CLUSTER_ID], "cluster_id", 1, NM_ID_CLUSTER_MAX,
			 &n);
	if (ret)
		return ret;
	c->cluster_id = (__u16)n;
	ret = nm_yw_need(w, root, v[C_ETCD], "etcd", "");
	if (ret)
		return ret;
	ret = nm_yw_fields(w, v[C_ETCD], "etcd", etcd_names, E_NUM, e);
	if (ret)
		return ret;
	ret = parse_etcd(w, v[C_ETCD], "etcd", e, &c->etcd);
	if (ret)
		return ret;
	if (v[C_PIN_ROOT]) {
		ret = get_path(w, v[C_PIN_ROOT], "pin_root", &c->pin_root);
		if (ret)
			return ret;
	}
	if (v[C_STATE_DIR]) {
		ret = get_path(w, v[C_STATE_DIR], "state_dir", &c->state_dir);
		if (ret)
			return ret;
	}
	if (v[C_REMOTE_DIR]) {
		ret = get_path(w, v[C_REMOTE_DIR], "remote_clusters_dir",
			       &c->remote_clusters_dir);
		if (ret)
			return ret;
	}
	if (v[C_INTERFACES]) {
		ret = parse_interfaces(w, v[C_INTERFACES], c);
		if (ret)
			return ret;
	}
	if (v[C_KV_PREFIX]) {
		ret = parse_prefix(w, v[C_KV_PREFIX], &c->kv_prefix);
		if (ret)
			return ret;
	}
	c->heartbeat_bound_ms = NM_HEARTBEAT_BOUND_DEFAULT_MS;
	if (v[C_HEARTBEAT]) {
		ret = nm_yw_uint(w, v[C_HEARTBEAT], "heartbeat_bound_ms",
				 NM_HEARTBEAT_BOUND_MIN_MS,
				 NM_HEARTBEAT_BOUND_MAX_MS, &n);
		if (ret)
			return ret;
		c->heartbeat_bound_ms = (__u32)n;
	}
	if (v[C_API_SOCKET]) {
		ret = get_socket(w, v[C_API_SOCKET], &c->api_socket);
		if (ret)
			return ret;
	}
	if (v[C_DATAPATH]) {
		ret = parse_datapath(w, v[C_DATAPATH], &c->datapath);
		if (ret)
			return ret;
	}
	ret = parse_tunnel(w, root, v, c);
	if (ret)
		return ret;
	if (strdup_default(&c->pin_root, NM_PIN_ROOT_DEFAULT) ||
	    strdup_default(&c->state_dir, NM_STATE_DIR_DEFAULT) ||
	    strdup_default(&c->kv_prefix, NM_KV_PREFIX_DEFAULT))
		return nm_yw_oom(w, root);
	return 0;
}

int nm_config_parse(const char *buf, size_t len, const char *file,
		    struct nm_agent_config *out, struct nm_error *err)
{
	struct nm_agent_config c = { 0 };
	yaml_document_t doc;
	struct nm_yw w = { 0 };
	int ret;

	ret = nm_yw_load(buf, len, file, &doc, err);
	if (ret)
		return ret;
	w.doc = &doc;
	w.err = err;
	ret = config_walk(&w, yaml_document_get_root_node(&doc), &c);
	if (ret)
		goto out;
	*out = c;
	memset(&c, 0, sizeof(c));
out:
	nm_config_free(&c);
	yaml_document_delete(&doc);
	return ret;
}

int nm_config_load(const char *path, struct nm_agent_config *out,
		   struct nm_error *err)
{
	char *buf;
	size_t len;
	int ret;

	ret = nm_read_file(path, NM_CONFIG_FILE_MAX, &buf, &len, err);
	if (ret)
		return ret;
	ret = nm_config_parse(buf, len, path, out, err);
	free(buf);
	return ret;
}

void nm_config_free(struct nm_agent_config *c)
{
	size_t i;

	free(c->cluster);
	etcd_conf_free(&c->etcd);
	free(c->pin_root);
	free(c->state_dir);
	for (i = 0; i < c->n_interfaces; i++)
		free(c->interfaces[i]);
	free(c->interfaces);
	free(c->kv_prefix);
	free(c->remote_clusters_dir);
	free(c->api_socket);
	free(c->tunnel_device);
	memset(c, 0, sizeof(*c));
}

/* ---- remote clusters ---- */

enum { R_NAME, R_ID, R_ETCD, R_NUM = R_ETCD + E_NUM };

static const char *const remote_names[R_NUM] = {
	"name",	     "id",	 "endpoints", "ca_file",
	"cert_file", "key_file", "username",  "password_file",
};

/* @file's base name is <name>.yaml or <name>.yml. */
static bool file_matches(const char *file, const char *name)
{
	const char *base = strrchr(file, '/');
	size_t len = strlen(name);

	base = base ? base + 1 : file;
	return !strncmp(base, name, len) &&
	       (!strcmp(base + len, ".yaml") || !strcmp(base + len, ".yml"));
}

static int remote_walk(struct nm_yw *w, const yaml_node_t *root,
		       const char *local_name, __u16 local_id,
		       struct nm_remote_cluster *r)
{
	yaml_node_t *v[R_NUM];
	__u64 id;
	int ret;

	ret = nm_yw_fields(w, root, "", remote_names, R_NUM, v);
	if (ret)
		return ret;
	ret = nm_yw_need(w, root, v[R_NAME], "name", "");
	if (ret)
		return ret;
	ret = get_cluster_name(w, v[R_NAME], "name", &r->name);
	if (ret)
		return ret;
	r->name_line = nm_yw_line(v[R_NAME]);
	if (!file_matches(w->err->file, r->name))
		return nm_yw_fail(
			w, v[R_NAME],
			"cluster name '%s' does not match the file name (expected %s.yaml)",
			r->name, r->name);
	if (local_name && !strcmp(r->name, local_name))
		return nm_yw_fail(
			w, v[R_NAME],
			"cluster '%s' is the local cluster, not a remote one",
			r->name);
	ret = nm_yw_need(w, root, v[R_ID], "id", "");
	if (ret)
		return ret;
	ret = nm_yw_uint(w, v[R_ID], "id", 1, NM_ID_CLUSTER_MAX, &id);
	if (ret)
		return ret;
	r->id = (__u16)id;
	r->id_line = nm_yw_line(v[R_ID]);
	if (local_name && r->id == local_id)
		return nm_yw_fail(w, v[R_ID],
				  "cluster id %u is the local cluster's (%s)",
				  r->id, local_name);
	return parse_etcd(w, root, "", v + R_ETCD, &r->etcd);
}

int nm_remote_parse(const char *buf, size_t len, const char *file,
		    const char *local_name, __u16 local_id,
		    struct nm_remote_cluster *out, struct nm_error *err)
{
	struct nm_remote_cluster r = { 0 };
	yaml_document_t doc;
	struct nm_yw w = { 0 };
	int ret;

	ret = nm_yw_load(buf, len, file, &doc, err);
	if (ret)
		return ret;
	w.doc = &doc;
	w.err = err;
	ret = remote_walk(&w, yaml_document_get_root_node(&doc), local_name,
			  local_id, &r);
	if (ret)
		goto out;
	r.file = strdup(err->file);
	if (!r.file) {
		ret = nm_yw_oom(&w, NULL);
		goto out;
	}
	*out = r;
	memset(&r, 0, sizeof(r));
out:
	nm_remote_free(&r);
	yaml_document_delete(&doc);
	return ret;
}

void nm_remote_free(struct nm_remote_cluster *r)
{
	free(r->name);
	free(r->file);
	etcd_conf_free(&r->etcd);
	memset(r, 0, sizeof(*r));
}

static int yaml_name(const struct dirent *d)
{
	const char *dot = strrchr(d->d_name, '.');

	/* Hidden names: editor droppings, ConfigMap's ..data links. */
	if (d->d_name[0] == '.' || !dot)
		return 0;
	return !strcmp(dot, ".yaml") || !strcmp(dot, ".yml");
}

static int add_refusal(struct nm_refusals *bad, const struct nm_error *e)
{
	struct nm_error *v = realloc(bad->v, (bad->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	bad->v = v;
	bad->v[bad->n++] = *e;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct nm_remote_cluster *)a)->name,
		      ((const struct nm_remote_cluster *)b)->name);
}

static int by_file(const void *a, const void *b)
{
	return strcmp(((const struct nm_error *)a)->file,
		      ((const struct nm_error *)b)->file);
}

/* The cluster of @prev that @r continues: same name, id and file. */
static bool continues(const struct nm_remote_set *prev,
		      const struct nm_remote_cluster *r)
{
	const struct nm_remote_cluster *p =
		prev ? nm_remote_find(prev, r->name) : NULL;

	return p && p->id == r->id && !strcmp(p->file, r->file);
}

/* Why @r may not be loaded next to the other candidates; 0 if it may. */
static unsigned int conflict(const struct nm_remote_set *cand,
			     const struct nm_remote_set *prev,
			     const struct nm_remote_cluster *r,
			     struct nm_error *e)
{
	const struct nm_remote_cluster *o;
	size_t j;

	/* The connected claimant keeps its place; the others lose. */
	if (continues(prev, r))
		return 0;
	snprintf(e->file, sizeof(e->file), "%s", r->file);
	for (j = 0; j < cand->n; j++) {
		o = &cand->v[j];
		if (o == r)
			continue;
		if (!strcmp(o->name, r->name)) {
			snprintf(e->reason, sizeof(e->reason),
				 "cluster name '%s' is also claimed by %s",
				 r->name, o->file);
			return e->line = r->name_line;
		}
		if (o->id == r->id) {
			snprintf(e->reason, sizeof(e->reason),
				 "cluster id %u is also claimed by %s (%s)",
				 r->id, o->name, o->file);
			return e->line = r->id_line;
		}
	}
	return 0;
}

/*
 * Move the candidates without conflicts (or that keep their place in
 * @prev) to @ok, refuse the others. @cand is emptied either way.
 */
static int resolve(struct nm_remote_set *cand, const struct nm_remote_set *prev,
		   struct nm_remote_set *ok, struct nm_refusals *bad)
{
	struct nm_error *why;
	size_t i;
	int ret = 0;

	/* Judge every candidate before any is freed. */
	why = calloc(cand->n + 1, sizeof(*why));
	if (!why)
		return -ENOMEM;
	ok->v = calloc(cand->n + 1, sizeof(*ok->v));
	if (!ok->v) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < cand->n; i++)
		conflict(cand, prev, &cand->v[i], &why[i]);
	for (i = 0; i < cand->n; i++) {
		if (why[i].line) {
			if (!ret)
				ret = add_refusal(bad, &why[i]);
			nm_remote_free(&cand->v[i]);
			continue;
		}
		ok->v[ok->n++] = cand->v[i];
		memset(&cand->v[i], 0, sizeof(cand->v[i]));
	}
	free(cand->v);
	cand->v = NULL;
	cand->n = 0;
	qsort(ok->v, ok->n, sizeof(*ok->v), by_name);
out:
	free(why);
	return ret;
}

int nm_remote_dir_load(const char *dir, const char *local_name, __u16 local_id,
		       const struct nm_remote_set *prev,
		       struct nm_remote_set *ok, struct nm_refusals *bad,
		       struct nm_error *err)
{
	struct nm_remote_set cand = { 0 }, good = { 0 };
	struct nm_refusals refused = { 0 };
	struct dirent **names = NULL;
	char path[PATH_MAX];
	int i, n, ret = 0;

	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", dir);
	n = scandir(dir, &names, yaml_name, alphasort);
	if (n < 0) {
		ret = -errno;
		snprintf(err->reason, sizeof(err->reason),
			 "failed to read the remote cluster directory: %s",
			 strerror(-ret));
		return ret;
	}
	cand.v = calloc(n ? (size_t)n : 1, sizeof(*cand.v));
	if (!cand.v) {
		ret = -ENOMEM;
		goto out_names;
	}
	for (i = 0; i < n; i++) {
		struct nm_error e;
		char *buf;
		size_t len;

		if (snprintf(path, sizeof(path), "%s/%s", dir,
			     names[i]->d_name) >= (int)sizeof(path)) {
			memset(&e, 0, sizeof(e));
			snprintf(e.file, sizeof(e.file), "%s",
				 names[i]->d_name);
			snprintf(e.reason, sizeof(e.reason), "path too long");
			ret = add_refusal(&refused, &e);
			if (ret)
				goto out_cand;
			continue;
		}
		ret = nm_read_file(path, NM_CONFIG_FILE_MAX, &buf, &len, &e);
		if (!ret) {
			ret = nm_remote_parse(buf, len, path, local_name,
					      local_id, &cand.v[cand.n], &e);
			free(buf);
		}
		if (ret == -ENOMEM)
			goto out_cand;
		if (ret) {
			ret = add_refusal(&refused, &e);
			if (ret)
				goto out_cand;
			continue;
		}
		cand.n++;
	}
	ret = resolve(&cand, prev, &good, &refused);
	if (ret)
		goto out_cand;
	qsort(refused.v, refused.n, sizeof(*refused.v), by_file);
	*ok = good;
	*bad = refused;
	memset(&good, 0, sizeof(good));
	memset(&refused, 0, sizeof(refused));
out_cand:
	nm_remote_set_free(&good);
	nm_refusals_free(&refused);
	nm_remote_set_free(&cand);
	if (ret)
		snprintf(err->reason, sizeof(err->reason),
			 "failed to load the remote cluster directory: %s",
			 strerror(-ret));
out_names:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

const struct nm_remote_cluster *nm_remote_find(const struct nm_remote_set *s,
					       const char *name)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid].name, name);

		if (!c)
			return &s->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void nm_remote_set_free(struct nm_remote_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		nm_remote_free(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

void nm_refusals_free(struct nm_refusals *r)
{
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

bool nm_remote_equal(const struct nm_remote_cluster *a,
		     const struct nm_remote_cluster *b)
{
	size_t i;

	if (!str_eq(a->name, b->name) || a->id != b->id ||
	    a->etcd.n_endpoints != b->etcd.n_endpoints)
		return false;
	for (i = 0; i < a->etcd.n_endpoints; i++) {
		if (strcmp(a->etcd.endpoints[i], b->etcd.endpoints[i]))
			return false;
	}
	return str_eq(a->etcd.ca_file, b->etcd.ca_file) &&
	       str_eq(a->etcd.cert_file, b->etcd.cert_file) &&
	       str_eq(a->etcd.key_file, b->etcd.key_file) &&
	       str_eq(a->etcd.username, b->etcd.username) &&
	       str_eq(a->etcd.password_file, b->etcd.password_file);
}

int nm_remote_diff(const struct nm_remote_set *old,
		   const struct nm_remote_set *new, struct nm_remote_diff *out)
{
	struct nm_remote_diff d = { 0 };
	size_t i = 0, j = 0;

	/* calloc(0) may return NULL: size for at least one. */
	d.added = calloc(new->n + 1, sizeof(*d.added));
	d.removed = calloc(old->n + 1, sizeof(*d.removed));
	d.changed = calloc(new->n + 1, sizeof(*d.changed));
	if (!d.added || !d.removed || !d.changed) {
		nm_remote_diff_free(&d);
		return -ENOMEM;
	}
	/* Both sets are sorted by name: one merge pass. */
	while (i < old->n || j < new->n) {
		int c = i == old->n ? 1 :
			j == new->n ? -1 :
				      strcmp(old->v[i].name, new->v[j].name);

		if (c < 0) {
			d.removed[d.n_removed++] = &old->v[i++];
		} else if (c > 0) {
			d.added[d.n_added++] = &new->v[j++];
		} else {
			if (!nm_remote_equal(&old->v[i], &new->v[j]))
				d.changed[d.n_changed++] = &new->v[j];
			i++;
			j++;
		}
	}
	*out = d;
	return 0;
}

void nm_remote_diff_free(struct nm_remote_diff *d)
{
	free(d->added);
	free(d->removed);
	free(d->changed);
	memset(d, 0, sizeof(*d));
}

int nm_read_password_file(const char *path, char **out)
{
	char buf[1024];
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		pr_warn("failed to open password file %s: %s", path,
			strerror(-err));
		return err;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		err = -errno;
		pr_warn("failed to read password file %s: %s", path,
			strerror(-err));
		goto out;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = strdup(buf);
	if (!*out)
		err = -ENOMEM;
out:
	close(fd);
	return err;
}
