// SPDX-License-Identifier: GPL-2.0
/* nodemeshctl attach / detach: load the datapath, tc attach and detach. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>

#include "agent/ctl/ctl.h"
#include "agent/loader.h"
#include "agent/log.h"
#include "agent/maglev.h"

static int check_ifaces(int n, char **ifaces, const char *verb)
{
	int i;

	if (!n) {
		pr_warn("failed to %s: no interface given", verb);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (!if_nametoindex(ifaces[i])) {
			pr_warn("failed to %s nm_from_pod on %s: %s", verb,
				ifaces[i], strerror(errno));
			return -ENODEV;
		}
	}
	return 0;
}

int cmd_attach(int argc, char **argv)
{
	struct nm_load_opts opts = { .pin_root = opt_pin_root };
	struct nm_datapath *dp = NULL;
	char **ifaces;
	int i, n = 0, err, ret;

	ifaces = calloc((size_t)argc + 1, sizeof(*ifaces));
	if (!ifaces)
		return -ENOMEM;
	for (i = 0; i < argc; i++) {
		const char *v;
		__u32 *dst = NULL;
		const char *what = NULL;

		if ((ret = match_opt(argc, argv, &i, "--maglev-m", &v))) {
			dst = &opts.maglev_m;
			what = "--maglev-m";
		} else if ((ret = match_opt(argc, argv, &i, "--maglev-tables",
					    &v))) {
			dst = &opts.maglev_tables;
			what = "--maglev-tables";
		} else if ((ret = match_opt(argc, argv, &i, "--ct-max", &v))) {
			dst = &opts.ct_max;
			what = "--ct-max";
		} else if ((ret = match_opt(argc, argv, &i, "--services-max",
					    &v))) {
			dst = &opts.services_max;
			what = "--services-max";
		} else if ((ret = match_opt(argc, argv, &i, "--backends-max",
					    &v))) {
			dst = &opts.backends_max;
			what = "--backends-max";
		}
		if (ret < 0) {
			err = ret;
			goto out;
		}
		if (dst) {
			err = parse_u32(v, what, dst);
			if (err)
				goto out;
			if (!*dst) {
				pr_warn("bad value '%s' for %s: must be > 0", v, what);
				err = -EINVAL;
				goto out;
			}
			continue;
		}
		if (argv[i][0] == '-') {
			pr_warn("unknown option '%s' for attach", argv[i]);
			err = -EINVAL;
			goto out;
		}
		ifaces[n++] = argv[i];
	}
	err = check_ifaces(n, ifaces, "attach");
	if (err)
		goto out;
	if (opts.maglev_m) {
		char msg[128];

		err = nm_maglev_check_m(opts.maglev_m, msg, sizeof(msg));
		if (err) {
			pr_warn("bad value for --maglev-m: %s", msg);
			goto out;
		}
	}
	err = nm_datapath_load(&opts, &dp);
	if (err)
		goto out;
	if (opt_json) {
		printf("{\"pin_root\":");
		json_str(dp->pin_root);
		printf(",\"maglev_m\":%u,\"maglev_tables\":%u,\"ct_max\":%u,\"services_max\":%u,\"backends_max\":%u,\"attached\":[",
		       dp->cfg.maglev_m, dp->cfg.maglev_tables, dp->ct_max,
		       dp->cfg.services_max, dp->cfg.backends_max);
	}
	for (i = 0; i < n; i++) {
		__u32 from_id = 0, to_id = 0;

		err = nm_tc_attach(dp, ifaces[i]);
		if (!err)
			err = nm_tc_query(ifaces[i], NM_TC_FROM_POD, &from_id);
		if (!err)
			err = nm_tc_query(ifaces[i], NM_TC_TO_POD, &to_id);
		if (err)
			break;
		if (opt_json) {
			printf("%s{\"ifname\":", i ? "," : "");
			json_str(ifaces[i]);
			printf(",\"ifindex\":%u,\"prog_id\":%u,\"to_pod_prog_id\":%u}",
			       if_nametoindex(ifaces[i]), from_id, to_id);
		} else {
			printf("attached nm_from_pod (prog id %u) to %s tc ingress and nm_to_pod (prog id %u) to tc egress, maps in %s\n",
			       from_id, ifaces[i], to_id, dp->pin_root);
		}
	}
	if (opt_json)
		printf("]}\n");
out:
	nm_datapath_close(dp);
	free(ifaces);
	return err;
}

int cmd_detach(int argc, char **argv)
{
	int i, err;

	for (i = 0; i < argc; i++) {
		if (argv[i][0] == '-') {
			pr_warn("unknown option '%s' for detach", argv[i]);
			return -EINVAL;
		}
	}
	err = check_ifaces(argc, argv, "detach");
	if (err)
		return err;
	if (opt_json)
		printf("{\"detached\":[");
	for (i = 0; i < argc; i++) {
		bool was = true;

		err = nm_tc_detach(argv[i]);
		if (err == -ENOENT) {
			was = false;
			err = 0;
		}
		if (err)
			break;
		if (opt_json) {
			printf("%s{\"ifname\":", i ? "," : "");
			json_str(argv[i]);
			printf(",\"was_attached\":%s}", was ? "true" : "false");
		} else {
			printf(was ? "detached nm_from_pod and nm_to_pod from %s tc ingress/egress\n" :
				     "nothing attached on %s tc ingress/egress\n",
			       argv[i]);
		}
	}
	if (opt_json)
		printf("]}\n");
	return err;
}
