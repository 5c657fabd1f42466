// SPDX-License-Identifier: GPL-2.0
/* nodemeshctl service: program and list services. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "agent/ctl/ctl.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "maps/backend.h"

/*
 * The local cluster's id from --cluster-id (or NODEMESH_CLUSTER_ID): 0
 * when not given, as the maps alone do not tell. -EINVAL when malformed.
 */
static int local_cluster_id(__u32 *id)
{
	const char *s = opt_cluster_id ?: getenv("NODEMESH_CLUSTER_ID");
	int err;

	*id = 0;
	if (!s || !*s)
		return 0;
	err = parse_u32(s, "--cluster-id", id);
	if (err)
		return err;
	if (!*id || *id > 65535) {
		pr_warn("bad value '%s' for --cluster-id: must be 1..65535", s);
		return -EINVAL;
	}
	return 0;
}

/* Active backends are in the Maglev table: the ones new flows go to. */
static bool be_preferred(const struct nm_svc_backend *b)
{
	return b->val.state == NM_BE_ACTIVE;
}

/* JSON: whether @b is in the local cluster; null when that is not known. */
static const char *be_local(const struct nm_svc_backend *b, __u32 local_id)
{
	if (!local_id || !b->val.cluster_id)
		return "null";
	return b->val.cluster_id == local_id ? "true" : "false";
}

static void print_backend_json(const struct nm_svc_backend *b, size_t j,
			       __u32 local_id)
{
	char ip[INET_ADDRSTRLEN];

	printf("%s{\"id\":%u,\"addr\":\"%s\",\"port\":%u,\"weight\":%u,\"state\":\"%s\",\"cluster_id\":%u,\"preferred\":%s,\"local\":%s}",
	       ctl_sep(j), b->id, ip_str(b->val.addr, ip), ntohs(b->val.port),
	       b->val.weight, nm_backend_state_name(b->val.state),
	       b->val.cluster_id, be_preferred(b) ? "true" : "false",
	       be_local(b, local_id));
}

static void print_backend(const struct nm_svc_backend *b, const char *indent)
{
	char ip[INET_ADDRSTRLEN];

	printf("%sbackend %-5u %s:%u weight %u %s%s\n", indent, b->id,
	       ip_str(b->val.addr, ip), ntohs(b->val.port), b->val.weight,
	       nm_backend_state_name(b->val.state),
	       be_preferred(b) ? " (preferred)" : "");
}

/*
 * Text: backends grouped per cluster (by cluster id; "local" when
 * --cluster-id names it), ungrouped when none carries a cluster id (a
 * service 'service upsert' programmed).
 */
static void print_service(const struct nm_svc_info *s, bool first,
			  __u32 local_id)
{
	char fes[NM_FRONTEND_STRLEN], ip[INET_ADDRSTRLEN];
	bool grouped = false;
	__u32 cid, next;
	size_t j, n, pref;

	nm_frontend_str(&s->fe, fes, sizeof(fes));
	if (opt_json) {
		printf("%s{\"frontend\":\"%s\",\"vip\":\"%s\",\"port\":%u,\"proto\":\"%s\",\"svc_id\":%u,\"table_id\":%u,\"algo\":\"%s\",\"backend_count\":%u,\"backends\":[",
		       first ? "" : ",", fes, ip_str(s->fe.vip, ip),
		       ntohs(s->fe.port), nm_proto_name(s->fe.proto),
		       s->val.svc_id, s->val.table_id,
		       nm_lb_algo_name(s->val.algo), s->val.backend_count);
		for (j = 0; j < s->n_backends; j++)
			print_backend_json(&s->backends[j], j, local_id);
		printf("]}");
		return;
	}
	printf("%-24s id %-4u algo %-6s table %-4u backends %u active / %zu\n",
	       fes, s->val.svc_id, nm_lb_algo_name(s->val.algo),
	       s->val.table_id, s->val.backend_count, s->n_backends);
	for (j = 0; j < s->n_backends; j++)
		grouped = grouped || s->backends[j].val.cluster_id;
	if (!grouped) {
		for (j = 0; j < s->n_backends; j++)
			print_backend(&s->backends[j], "    ");
		return;
	}
	/* Cluster ids ascending; backends are few, so rescan per cluster. */
	for (cid = 0; cid <= 65535; cid = next) {
		next = 65536;
		n = 0;
		pref = 0;
		for (j = 0; j < s->n_backends; j++) {
			const struct nm_svc_backend *b = &s->backends[j];

			if (b->val.cluster_id > cid && b->val.cluster_id < next)
				next = b->val.cluster_id;
			if (b->val.cluster_id != cid)
				continue;
			n++;
			pref += be_preferred(b);
		}
		if (!n)
			continue;
		if (!cid)
			printf("    no cluster id: %zu preferred of %zu\n",
			       pref, n);
		else
			printf("    cluster %u%s: %zu preferred of %zu\n", cid,
			       cid == local_id ? " (local)" : "", pref, n);
		for (j = 0; j < s->n_backends; j++)
			if (s->backends[j].val.cluster_id == cid)
				print_backend(&s->backends[j], "      ");
	}
}

int cmd_service_upsert(int argc, char **argv)
{
	struct nm_backend_spec *be = NULL;
	struct nm_svc_list list = {};
	struct nm_frontend fe = {};
	struct nm_maps maps;
	bool have_fe = false, opened = false;
	char msg[256];
	__u8 algo = NM_LB_MAGLEV;
	__u32 local_id;
	size_t n = 0, i;
	int a, err, ret;

	be = calloc((size_t)argc + 1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	for (a = 0; a < argc; a++) {
		const char *v;

		ret = match_opt(argc, argv, &a, "--algo", &v);
		if (ret < 0) {
			err = ret;
			goto out;
		}
		if (ret) {
			ret = nm_parse_lb_algo(v);
			if (ret < 0) {
				pr_warn("bad algorithm '%s': must be maglev or random", v);
				err = -EINVAL;
				goto out;
			}
			algo = (__u8)ret;
			continue;
		}
		if (argv[a][0] == '-') {
			pr_warn("unknown option '%s' for service upsert", argv[a]);
			err = -EINVAL;
			goto out;
		}
		err = have_fe ? nm_parse_backend(argv[a], &be[n++], msg, sizeof(msg)) :
				nm_parse_frontend(argv[a], &fe, msg, sizeof(msg));
		if (err) {
			pr_warn("%s", msg);
			goto out;
		}
		have_fe = true;
	}
	if (!have_fe) {
		pr_warn("service upsert needs a frontend VIP:PORT/PROTO");
		err = -EINVAL;
		goto out;
	}
	err = local_cluster_id(&local_id);
	if (err)
		goto out;
	err = nm_maps_open(opt_pin_root, &maps);
	if (err)
		goto out;
	opened = true;
	err = nm_svc_upsert(&maps, &fe, be, n, algo);
	if (err)
		goto out;
	err = nm_svc_list(&maps, &list);
	if (err)
		goto out;
	for (i = 0; i < list.n; i++) {
		if (list.svcs[i].fe.vip == fe.vip &&
		    list.svcs[i].fe.port == fe.port &&
		    list.svcs[i].fe.proto == fe.proto) {
			print_service(&list.svcs[i], true, local_id);
			if (opt_json)
				putchar('\n');
		}
	}
out:
	nm_svc_list_free(&list);
	if (opened)
		nm_maps_close(&maps);
	free(be);
	return err;
}

int cmd_service_delete(int argc, char **argv)
{
	struct nm_frontend fe;
	struct nm_maps maps;
	char msg[256], fes[NM_FRONTEND_STRLEN];
	int err;

	if (argc != 1 || argv[0][0] == '-') {
		pr_warn("service delete takes exactly one VIP:PORT/PROTO");
		return -EINVAL;
	}
	err = nm_parse_frontend(argv[0], &fe, msg, sizeof(msg));
	if (err) {
		pr_warn("%s", msg);
		return err;
	}
	err = nm_maps_open(opt_pin_root, &maps);
	if (err)
		return err;
	err = nm_svc_delete(&maps, &fe);
	if (!err) {
		nm_frontend_str(&fe, fes, sizeof(fes));
		if (opt_json)
			printf("{\"deleted\":\"%s\"}\n", fes);
		else
			printf("deleted service %s\n", fes);
	}
	nm_maps_close(&maps);
	return err;
}

static int list_services(struct nm_maps *maps)
{
	struct nm_svc_list list;
	__u32 local_id;
	size_t i;
	int err;

	err = local_cluster_id(&local_id);
	if (err)
		return err;
	err = nm_svc_list(maps, &list);
	if (err)
		return err;
	ctl_list_begin("no services\n", list.n);
	for (i = 0; i < list.n; i++)
		print_service(&list.svcs[i], i == 0, local_id);
	ctl_list_end();
	nm_svc_list_free(&list);
	return 0;
}

int cmd_service_list(int argc, char **argv)
{
	int err;

	err = ctl_args(argc, argv, "service list", NULL, NULL);
	if (err)
		return err;
	return ctl_with_maps(list_services);
}
