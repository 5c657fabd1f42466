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

static void print_service(const struct nm_svc_info *s, bool first)
{
	char fes[NM_FRONTEND_STRLEN], ip[INET_ADDRSTRLEN];
	size_t j;

	nm_frontend_str(&s->fe, fes, sizeof(fes));
	if (opt_json) {
		printf("%s{\"frontend\":\"%s\",\"vip\":\"%s\",\"port\":%u,\"proto\":\"%s\",\"svc_id\":%u,\"table_id\":%u,\"algo\":\"%s\",\"backend_count\":%u,\"backends\":[",
		       first ? "" : ",", fes, ip_str(s->fe.vip, ip),
		       ntohs(s->fe.port), nm_proto_name(s->fe.proto),
		       s->val.svc_id, s->val.table_id,
		       nm_lb_algo_name(s->val.algo), s->val.backend_count);
		for (j = 0; j < s->n_backends; j++) {
			const struct nm_svc_backend *b = &s->backends[j];

			printf("%s{\"id\":%u,\"addr\":\"%s\",\"port\":%u,\"weight\":%u,\"state\":\"%s\",\"cluster_id\":%u}",
			       j ? "," : "", b->id, ip_str(b->val.addr, ip),
			       ntohs(b->val.port), b->val.weight,
			       nm_backend_state_name(b->val.state),
			       b->val.cluster_id);
		}
		printf("]}");
		return;
	}
	printf("%-24s id %-4u algo %-6s table %-4u backends %u active / %zu\n",
	       fes, s->val.svc_id, nm_lb_algo_name(s->val.algo),
	       s->val.table_id, s->val.backend_count, s->n_backends);
	for (j = 0; j < s->n_backends; j++) {
		const struct nm_svc_backend *b = &s->backends[j];

		printf("    backend %-5u %s:%u weight %u %s%s\n", b->id,
		       ip_str(b->val.addr, ip), ntohs(b->val.port),
		       b->val.weight, nm_backend_state_name(b->val.state),
		       b->val.cluster_id ? " (remote cluster)" : "");
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
			print_service(&list.svcs[i], true);
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
	size_t i;
	int err;

	err = nm_svc_list(maps, &list);
	if (err)
		return err;
	ctl_list_begin("no services\n", list.n);
	for (i = 0; i < list.n; i++)
		print_service(&list.svcs[i], i == 0);
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
