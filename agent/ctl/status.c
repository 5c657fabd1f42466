// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl status: the running agent's view, from GET /v1/status on its
 * unix socket (default <state dir>/agent.sock). -o json passes the
 * agent's document through unchanged.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent/ctl/ctl.h"
#include "agent/log.h"
#include "agent/state.h"

/* GET @path on the unix socket @sock into @r: a 200 with a body. */
static int fetch(const char *sock, const char *path, struct ctl_reply *r)
{
	char why[CTL_API_WHY_MAX];
	int err;

	err = ctl_api_request(sock, "GET", path, 10000L, r, why, sizeof(why));
	if (err) {
		pr_warn("failed to query agent on %s: %s%s", sock, why,
			r->unreachable ? CTL_API_HINT : "");
		return err;
	}
	if (r->code != 200) {
		pr_warn("failed to query agent on %s: HTTP %ld: %s", sock,
			r->code, r->buf ? r->buf : "");
		return -EIO;
	}
	if (!r->buf) {
		pr_warn("failed to query agent on %s: empty reply", sock);
		return -EIO;
	}
	return 0;
}

static const char *jget_str(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !v)
		return "";
	return json_object_get_string(v);
}

static long long jget_int(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !v)
		return 0;
	return (long long)json_object_get_int64(v);
}

static bool jget_bool(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && v &&
	       json_object_get_boolean(v);
}

/* Seconds-ago field @k as "12.3s" (@suffix appended), or @none when null. */
static const char *ago(json_object *o, const char *k, const char *suffix,
		       const char *none, char *buf, size_t len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !v)
		return none;
	snprintf(buf, len, "%.1fs%s", json_object_get_double(v), suffix);
	return buf;
}

static void print_table(json_object *root)
{
	json_object *lease = NULL, *pub = NULL, *arr = NULL, *ref = NULL;
	size_t i, n;

	json_object_object_get_ex(root, "lease", &lease);
	json_object_object_get_ex(root, "publisher", &pub);
	printf("node %s (%s), cluster %s (id %lld)\n", jget_str(root, "node"),
	       jget_str(root, "node_ip"), jget_str(root, "cluster"),
	       jget_int(root, "cluster_id"));
	printf("lease %s%s, TTL %lld s, heartbeat %s, bound %.1f s\n",
	       *jget_str(lease, "id") ? jget_str(lease, "id") : "none",
	       jget_bool(lease, "ok") ? "" : " (not renewed)",
	       jget_int(lease, "ttl_s"),
	       jget_bool(root, "heartbeat_leader") ? "writer (leader)" :
						     "follower",
	       jget_int(root, "heartbeat_bound_ms") / 1e3);
	printf("published %lld endpoints, %s, %lld write errors%s%s\n\n",
	       jget_int(pub, "endpoints"),
	       jget_bool(pub, "synced") ? "synced" : "not synced yet",
	       jget_int(pub, "errors"),
	       *jget_str(pub, "last_error") ? ": " : "",
	       jget_str(pub, "last_error"));

	printf("%-16s %-5s %-9s %-6s %-9s %-8s %-8s %-14s %-11s %-17s %s\n",
	       "CLUSTER", "ID", "CONNECTED", "SYNCED", "REVISION", "RECORDS",
	       "REJECTED", "LAST-HEARTBEAT", "REACHABLE", "TRANSITIONS",
	       "LAST-ERROR");
	json_object_object_get_ex(root, "clusters", &arr);
	n = arr ? json_object_array_length(arr) : 0;
	for (i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(arr, i), *hb = NULL;
		char name[80], hbs[32], buf[32], reach[40], trans[64];

		snprintf(name, sizeof(name), "%s%s", jget_str(c, "name"),
			 jget_bool(c, "local") ? " (local)" : "");
		if (json_object_object_get_ex(c, "last_heartbeat_s", &hb) && hb)
			snprintf(hbs, sizeof(hbs), "%.1fs ago",
				 json_object_get_double(hb));
		else
			snprintf(hbs, sizeof(hbs), "never");
		/* "no 12.3s": unreachable for that long. */
		if (jget_bool(c, "reachable"))
			snprintf(reach, sizeof(reach), "yes");
		else
			snprintf(reach, sizeof(reach), "no %s",
				 ago(c, "unreachable_since_s", "", "?", buf,
				     sizeof(buf)));
		/* "2, 5.1s ago": how many, and the last one. */
		snprintf(trans, sizeof(trans), "%lld%s%s",
			 jget_int(c, "transitions"),
			 jget_int(c, "transitions") ? ", " : "",
			 jget_int(c, "transitions") ?
				 ago(c, "last_transition_s", " ago", "?", buf,
				     sizeof(buf)) :
				 "");
		printf("%-16s %-5lld %-9s %-6s %-9lld %-8lld %-8lld %-14s %-11s %-17s %s\n",
		       name, jget_int(c, "id"),
		       jget_bool(c, "connected") ? "yes" : "no",
		       jget_bool(c, "synced") ? "yes" : "no",
		       jget_int(c, "revision"), jget_int(c, "records"),
		       jget_int(c, "rejected"), hbs, reach, trans,
		       *jget_str(c, "last_error") ? jget_str(c, "last_error") :
						    "-");
	}
	json_object_object_get_ex(root, "refused_files", &ref);
	n = ref ? json_object_array_length(ref) : 0;
	if (n)
		printf("\nrefused remote cluster files:\n");
	for (i = 0; i < n; i++)
		printf("  %s\n",
		       jget_str(json_object_array_get_idx(ref, i), "error"));
	if (*jget_str(root, "remote_clusters_dir_error"))
		printf("\nremote clusters dir: %s\n",
		       jget_str(root, "remote_clusters_dir_error"));
}

int cmd_status(int argc, char **argv)
{
	const char *sock_opt = NULL;
	const struct ctl_opt opts[] = { { "--socket", &sock_opt }, {} };
	struct ctl_reply b = {};
	char sock[PATH_MAX + 16];
	json_object *root;
	int err;

	err = ctl_args(argc, argv, "status", opts, NULL);
	if (err)
		return err;
	if (sock_opt)
		snprintf(sock, sizeof(sock), "%s", sock_opt);
	else
		snprintf(sock, sizeof(sock), "%s/agent.sock",
			 nm_state_dir(opt_state_dir));
	err = fetch(sock, "/v1/status", &b);
	if (err)
		goto out;
	if (opt_json) {
		fputs(b.buf, stdout);
		goto out;
	}
	root = json_tokener_parse(b.buf);
	if (!root || !json_object_is_type(root, json_type_object)) {
		pr_warn("failed to parse status from %s: not a JSON object",
			sock);
		json_object_put(root);
		err = -EBADMSG;
		goto out;
	}
	print_table(root);
	json_object_put(root);
out:
	free(b.buf);
	return err;
}
