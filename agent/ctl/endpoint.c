// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl endpoint and identity: register pods on this node, list
 * them, drain one through the agent, and the identities this node knows.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <json-c/json.h>

#include "agent/ctl/ctl.h"
#include "agent/endpoint.h"
#include "agent/labels.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "maps/identity.h"

static int parse_mac(const char *s, __u8 *mac)
{
	unsigned int v[6];
	char end;
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4],
		   &v[5], &end) != 6)
		goto bad;
	for (i = 0; i < 6; i++) {
		if (v[i] > 0xff)
			goto bad;
		mac[i] = (__u8)v[i];
	}
	return 0;
bad:
	pr_warn("bad MAC address '%s': expected xx:xx:xx:xx:xx:xx", s);
	return -EINVAL;
}

static void print_endpoint(const struct node_ctx *n, const struct nm_ep_rec *r,
			   bool first)
{
	char ip[INET_ADDRSTRLEN], ids[48], mac[18], ifname[IF_NAMESIZE];
	char *labels = id_labels(&n->ids, r->val.identity);
	char namebuf[512];
	const char *name = NULL;

	/* Names are for display only: without one the line just omits it. */
	if (!nm_state_get_ep_name(&n->st, ip_str(r->addr, ip), namebuf,
				  sizeof(namebuf)))
		name = namebuf;

	if (!if_indextoname(r->val.ifindex, ifname))
		snprintf(ifname, sizeof(ifname), "#%u", r->val.ifindex);
	if (opt_json) {
		printf("%s{\"ip\":\"%s\",\"endpoint_id\":%u,\"identity\":%llu,\"cluster_id\":%u,\"local_id\":%u,\"ifindex\":%u,\"iface\":",
		       first ? "" : ",", ip_str(r->addr, ip), r->val.endpoint_id,
		       (unsigned long long)r->val.identity,
		       nm_identity_cluster(r->val.identity),
		       nm_identity_local(r->val.identity), r->val.ifindex);
		json_str(ifname);
		printf(",\"mac\":\"%s\",\"enforcement\":\"%s\",", mac_str(r->val.mac, mac),
		       enforce_str(r->val.flags));
		if (name) {
			printf("\"name\":");
			json_str(name);
			putchar(',');
		}
		printf("\"labels\":");
		json_labels(&n->ids, r->val.identity);
		putchar('}');
	} else {
		printf("%-15s id %-5u identity %-12s policy %-14s iface %s%s%s  %s\n",
		       ip_str(r->addr, ip), r->val.endpoint_id,
		       id_str(r->val.identity, ids, sizeof(ids)),
		       enforce_str(r->val.flags), ifname, name ? " name " : "",
		       name ?: "", labels ?: "?");
	}
	free(labels);
}

int cmd_endpoint_add(int argc, char **argv)
{
	const char *iface = NULL, *ns = NULL, *labels_s = NULL, *name = NULL,
		   *mac_s = NULL, *ip_s = NULL;
	struct nm_labels labels = {};
	struct nm_endpoint_spec spec = {};
	struct nm_endpoint_res res;
	struct nm_ep_rec *eps = NULL;
	const struct ctl_opt opts[] = {
		{ "--iface", &iface },	   { "--namespace", &ns },
		{ "--labels", &labels_s }, { "--name", &name },
		{ "--mac", &mac_s },	   {}
	};
	struct node_ctx n;
	char msg[1024];
	__u8 mac[6] = {};
	size_t n_eps = 0, i;
	int err;

	memset(&n, 0, sizeof(n));
	err = ctl_args(argc, argv, "endpoint add", opts, &ip_s);
	if (err)
		return err;
	if (!ip_s || !iface || !ns) {
		pr_warn("endpoint add needs IP, --iface IFACE and --namespace NS");
		return -EINVAL;
	}
	if (nm_parse_ipv4(ip_s, &spec.addr)) {
		pr_warn("bad endpoint address '%s': expected an IPv4 address", ip_s);
		return -EINVAL;
	}
	if (!if_nametoindex(iface)) {
		pr_warn("failed to find interface %s for endpoint %s: %s", iface,
			ip_s, strerror(errno));
		return -ENODEV;
	}
	if (mac_s && parse_mac(mac_s, mac))
		return -EINVAL;
	if (nm_label_value_check(ns, msg, sizeof(msg)) || !*ns) {
		pr_warn("bad namespace '%s': %s", ns, *ns ? msg : "empty");
		return -EINVAL;
	}
	if (labels_s && *labels_s &&
	    nm_labels_parse(labels_s, &labels, msg, sizeof(msg))) {
		pr_warn("bad labels '%s': %s", labels_s, msg);
		return -EINVAL;
	}
	/* The agent owns these two: a pod cannot claim another namespace or cluster. */
	if (nm_labels_get(&labels, NM_LABEL_NAMESPACE) ||
	    nm_labels_get(&labels, NM_LABEL_CLUSTER)) {
		pr_warn("bad labels '%s': %s and %s are set by nodemesh", labels_s,
			NM_LABEL_NAMESPACE, NM_LABEL_CLUSTER);
		err = -EINVAL;
		goto out;
	}
	err = node_open(&n, true);
	if (err)
		goto out;
	spec.host_ifname = iface;
	spec.mac = mac_s ? mac : NULL;
	spec.ns = ns;
	spec.name = name; /* without --name a re-add keeps the name it had */
	spec.labels = &labels;
	err = nm_endpoint_add(&n.maps, &n.st, &n.ids, &spec, 0, &res, msg,
			      sizeof(msg));
	if (err) {
		pr_warn("%s", msg);
		goto out;
	}
	err = nm_endpoints_read(&n.maps, &eps, &n_eps);
	if (err)
		goto out;
	for (i = 0; i < n_eps; i++) {
		if (eps[i].addr != spec.addr)
			continue;
		printf(opt_json ? "{\"endpoint\":" : "added endpoint ");
		print_endpoint(&n, &eps[i], true);
		if (opt_json)
			printf(",\"identity_created\":%s,",
			       res.identity_created ? "true" : "false");
		ctl_sync_report("recompiled", &res.stats);
	}
out:
	free(eps);
	nm_labels_free(&labels);
	node_close(&n);
	return err;
}

int cmd_endpoint_delete(int argc, char **argv)
{
	struct nm_endpoint_res res;
	struct node_ctx n;
	char msg[1024];
	__be32 addr;
	int err;

	if (argc != 1 || argv[0][0] == '-') {
		pr_warn("endpoint delete takes exactly one IP");
		return -EINVAL;
	}
	if (nm_parse_ipv4(argv[0], &addr)) {
		pr_warn("bad endpoint address '%s': expected an IPv4 address",
			argv[0]);
		return -EINVAL;
	}
	err = node_open(&n, true);
	if (err)
		goto out;
	err = nm_endpoint_delete(&n.maps, &n.st, &n.ids, addr, &res, msg,
				 sizeof(msg));
	if (err) {
		pr_warn("%s", msg);
		goto out;
	}
	if (opt_json)
		printf("{\"deleted\":\"%s\",\"endpoint_id\":%u,", argv[0],
		       res.endpoint_id);
	else
		printf("deleted endpoint %s (id %u)\n", argv[0], res.endpoint_id);
	ctl_sync_report("recompiled", &res.stats);
out:
	node_close(&n);
	return err;
}

int cmd_endpoint_list(int argc, char **argv)
{
	struct nm_ep_rec *eps = NULL;
	struct node_ctx n;
	size_t n_eps = 0, i;
	int err;

	err = ctl_args(argc, argv, "endpoint list", NULL, NULL);
	if (err)
		return err;
	err = node_open(&n, false);
	if (!err)
		err = nm_endpoints_read(&n.maps, &eps, &n_eps);
	if (err)
		goto out;
	ctl_list_begin("no endpoints\n", n_eps);
	for (i = 0; i < n_eps; i++)
		print_endpoint(&n, &eps[i], i == 0);
	ctl_list_end();
out:
	free(eps);
	node_close(&n);
	return err;
}

int cmd_identity_list(int argc, char **argv)
{
	struct node_ctx n;
	char ids[48], cs[24];
	size_t i;
	int err;

	err = ctl_args(argc, argv, "identity list", NULL, NULL);
	if (err)
		return err;
	err = node_open(&n, false);
	if (err)
		goto out;
	ctl_list_begin(NULL, 0);
	for (i = 0; i < n.ids.n; i++) {
		const struct nm_identity_info *info = &n.ids.v[i];
		char *labels = nm_labels_str(&info->labels);

		if (opt_json) {
			printf("%s{\"id\":%llu,\"cluster_id\":%u,\"local_id\":%u,\"reserved\":%s,",
			       ctl_sep(i), (unsigned long long)info->id,
			       nm_identity_cluster(info->id),
			       nm_identity_local(info->id),
			       nm_identity_is_reserved(info->id) ? "true" : "false");
			if (info->is_cidr)
				printf("\"cidr\":\"%s\",",
				       nm_cidr_str(&info->cidr, cs, sizeof(cs)));
			printf("\"labels\":");
			json_labels(&n.ids, info->id);
			putchar('}');
		} else {
			printf("%-12llu %-20s cluster %-5u local %-8u %s\n",
			       (unsigned long long)info->id,
			       id_str(info->id, ids, sizeof(ids)),
			       nm_identity_cluster(info->id),
			       nm_identity_local(info->id), labels ?: "?");
		}
		free(labels);
	}
	ctl_list_end();
out:
	node_close(&n);
	return err;
}

/* identity add: a remote cluster's identity, until the kvstore brings them. */
int cmd_identity_add(int argc, char **argv)
{
	const char *cid_s = NULL, *labels_s = NULL;
	struct nm_labels labels = {};
	struct nm_sync_stats stats;
	struct node_ctx n;
	char msg[256], ids[48];
	bool created;
	const struct ctl_opt opts[] = {
		{ "--cluster-id", &cid_s }, { "--labels", &labels_s }, {}
	};
	__u32 cid = 0;
	__u64 id;
	int err;

	memset(&n, 0, sizeof(n));
	err = ctl_args(argc, argv, "identity add", opts, NULL);
	if (err)
		return err;
	if (!cid_s || !labels_s) {
		pr_warn("identity add needs --cluster-id N and --labels");
		return -EINVAL;
	}
	if (parse_u32(cid_s, "--cluster-id", &cid))
		return -EINVAL;
	if (cid < 1 || cid > NM_ID_CLUSTER_MAX) {
		pr_warn("bad value '%s' for --cluster-id: must be 1..65535", cid_s);
		return -EINVAL;
	}
	if (nm_labels_parse(labels_s, &labels, msg, sizeof(msg))) {
		pr_warn("bad labels '%s': %s", labels_s, msg);
		return -EINVAL;
	}
	if (!nm_labels_get(&labels, NM_LABEL_NAMESPACE) ||
	    !nm_labels_get(&labels, NM_LABEL_CLUSTER)) {
		pr_warn("bad labels '%s': an identity needs %s and %s", labels_s,
			NM_LABEL_NAMESPACE, NM_LABEL_CLUSTER);
		err = -EINVAL;
		goto out;
	}
	err = node_open(&n, true);
	if (!err)
		err = nm_identity_alloc(&n.ids, (__u16)cid, &labels, &id, &created);
	if (!err && created)
		err = nm_idstore_save(&n.st, &n.ids);
	/* A new identity may be the peer of a rule. */
	if (!err)
		err = resync(&n, NULL, &stats);
	if (err)
		goto out;
	if (opt_json)
		printf("{\"id\":%llu,\"cluster_id\":%u,\"local_id\":%u,\"created\":%s,",
		       (unsigned long long)id, cid, nm_identity_local(id),
		       created ? "true" : "false");
	else
		printf("%s identity %llu (%s)\n", created ? "added" : "existing",
		       (unsigned long long)id, id_str(id, ids, sizeof(ids)));
	ctl_sync_report("recompiled", &stats);
out:
	nm_labels_free(&labels);
	node_close(&n);
	return err;
}

/* ---- endpoint drain: through the agent's API ------------------------------ */

/* @method @path on the agent at @sock; 200 expected, else the reason. */
static int agent_call(const char *sock, const char *method, const char *path,
		      struct ctl_reply *r)
{
	char why[CTL_API_WHY_MAX];
	int err;

	err = ctl_api_request(sock, method, path, 10000L, r, why, sizeof(why));
	if (err) {
		pr_warn("failed to call agent on %s: %s%s", sock, why,
			r->unreachable ? CTL_API_HINT : "");
		return err;
	}
	if (r->code != 200) {
		pr_warn("failed to %s %s on agent %s: HTTP %ld: %s", method,
			path, sock, r->code, r->buf ? r->buf : "");
		return r->code == 404 ? -ENOENT : -EIO;
	}
	return 0;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Container id and interface of the endpoint at @ip, from GET /v1/endpoints. */
static int find_pod(const char *sock, const char *ip, char *cid, size_t cid_len,
		    char *ifname, size_t if_len)
{
	json_object *root, *arr = NULL, *e;
	struct ctl_reply r = {};
	const char *c, *i, *a;
	size_t k, n;
	int err;

	err = agent_call(sock, "GET", "/v1/endpoints", &r);
	if (err)
		goto out;
	err = -EBADMSG;
	root = r.buf ? json_tokener_parse(r.buf) : NULL;
	if (!root || !json_object_object_get_ex(root, "endpoints", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		pr_warn("failed to list endpoints on agent %s: not an endpoint list",
			sock);
		goto out_root;
	}
	n = json_object_array_length(arr);
	for (k = 0; k < n; k++) {
		e = json_object_array_get_idx(arr, k);
		a = jstr(e, "ip");
		c = jstr(e, "container_id");
		i = jstr(e, "ifname");
		if (!a || !c || !i || strcmp(a, ip))
			continue;
		snprintf(cid, cid_len, "%s", c);
		snprintf(ifname, if_len, "%s", i);
		err = 0;
		goto out_root;
	}
	pr_warn("failed to drain %s: the agent on %s has no endpoint with that address (only pods added through its API drain)",
		ip, sock);
	err = -ENOENT;
out_root:
	json_object_put(root);
out:
	free(r.buf);
	return err;
}

int cmd_endpoint_drain(int argc, char **argv)
{
	const char *sock_opt = NULL, *ip = NULL;
	const struct ctl_opt opts[] = { { "--socket", &sock_opt }, {} };
	char sock[PATH_MAX + 16], cid[NM_EP_CONTAINER_ID_MAX + 1];
	char ifname[IF_NAMESIZE + 1], path[NM_EP_CONTAINER_ID_MAX + 64];
	struct ctl_reply r = {};
	__be32 addr;
	int err;

	err = ctl_args(argc, argv, "endpoint drain", opts, &ip);
	if (err)
		return err;
	if (!ip || nm_parse_ipv4(ip, &addr)) {
		pr_warn("endpoint drain takes the pod's IPv4 address");
		return -EINVAL;
	}
	if (sock_opt)
		snprintf(sock, sizeof(sock), "%s", sock_opt);
	else
		snprintf(sock, sizeof(sock), "%s/agent.sock",
			 nm_state_dir(opt_state_dir));
	err = find_pod(sock, ip, cid, sizeof(cid), ifname, sizeof(ifname));
	if (err)
		return err;
	snprintf(path, sizeof(path), "/v1/endpoints/%s/%s/drain", cid, ifname);
	err = agent_call(sock, "POST", path, &r);
	if (!err) {
		if (opt_json)
			fputs(r.buf ? r.buf : "{}\n", stdout);
		else
			printf("endpoint %s (container %s interface %s) is terminating\n",
			       ip, cid, ifname);
	}
	free(r.buf);
	return err;
}
