// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl: load/attach the datapath, program services, inspect maps.
 * Thin front end over the agent library; output for people by default,
 * -o json for scripts. Exit status 0 on success, 1 on any error.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/identity.h"
#include "agent/labels.h"
#include "agent/loader.h"
#include "agent/log.h"
#include "agent/maglev.h"
#include "agent/parse.h"
#include "agent/policy.h"
#include "agent/policy_apply.h"
#include "agent/state.h"
#include "agent/svc.h"
#include "maps/backend.h"
#include "maps/config.h"
#include "maps/ct.h"
#include "maps/endpoint.h"
#include "maps/events.h"
#include "maps/identity.h"
#include "maps/ipcache.h"
#include "maps/maglev.h"
#include "maps/metrics.h"
#include "maps/policy.h"
#include "maps/revnat.h"
#include "maps/service.h"

static const char *opt_pin_root;
static const char *opt_state_dir;
static const char *opt_cluster;
static const char *opt_cluster_id;
static bool opt_json;

struct cmd {
	const char *group; /* "service", "map" or NULL for a top-level command */
	const char *name;
	int (*fn)(int argc, char **argv); /* argv: what follows the command */
	const char *args;
	const char *help;
};

static const struct cmd cmds[];
static const size_t n_cmds;

static void print_cmd_usage(FILE *f, const struct cmd *c)
{
	fprintf(f, "usage: nodemeshctl %s%s%s %s\n\n%s\n", c->group ?: "",
		c->group ? " " : "", c->name, c->args, c->help);
}

static void print_usage(FILE *f, const char *group)
{
	size_t i;

	fprintf(f, "usage: nodemeshctl [--pin-root DIR] [--state-dir DIR] [--cluster NAME --cluster-id N] [-o json] [-v] COMMAND ...\n\ncommands:\n");
	for (i = 0; i < n_cmds; i++) {
		if (group && (!cmds[i].group || strcmp(cmds[i].group, group)))
			continue;
		fprintf(f, "  %s%s%s %s\n", cmds[i].group ?: "",
			cmds[i].group ? " " : "", cmds[i].name, cmds[i].args);
	}
	fprintf(f, "\nglobal options:\n"
		   "  --pin-root DIR  bpffs directory of the pinned maps (env NODEMESH_PIN_ROOT, default %s)\n"
		   "  --state-dir DIR node state: node.json, identities.json, policies/ (env NODEMESH_STATE_DIR, default %s)\n"
		   "  --cluster NAME  this node's cluster, recorded on first use (env NODEMESH_CLUSTER);\n"
		   "                  before the command\n"
		   "  --cluster-id N  its id, 1..65535 (env NODEMESH_CLUSTER_ID); before the command\n"
		   "  -o json         machine-readable output\n"
		   "  -v              more log output (repeat for debug)\n"
		   "\n'nodemeshctl COMMAND --help' describes a command.\n",
		   NM_PIN_ROOT_DEFAULT, NM_STATE_DIR_DEFAULT);
}

static bool is_help(const char *s)
{
	return !strcmp(s, "--help") || !strcmp(s, "-h");
}

static int parse_u32(const char *s, const char *what, __u32 *out)
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

/*
 * Option "--name VALUE" or "--name=VALUE" at argv[*i]: returns 1 and sets
 * @val when it matches, 0 when it is another argument, -EINVAL when the
 * value is missing.
 */
static int match_opt(int argc, char **argv, int *i, const char *name,
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

/* JSON string with the few escapes our values can need. */
static void json_str(const char *s)
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

static const char *ip_str(__be32 addr, char *buf)
{
	if (!inet_ntop(AF_INET, &addr, buf, INET_ADDRSTRLEN))
		strcpy(buf, "?");
	return buf;
}

/* ---- attach / detach ---------------------------------------------------- */

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

static int cmd_attach(int argc, char **argv)
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
	if (opt_json)
		printf("{\"pin_root\":");
	if (opt_json) {
		json_str(dp->pin_root);
		printf(",\"maglev_m\":%u,\"maglev_tables\":%u,\"ct_max\":%u,\"attached\":[",
		       dp->cfg.maglev_m, dp->cfg.maglev_tables, dp->ct_max);
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

static int cmd_detach(int argc, char **argv)
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

/* ---- service ------------------------------------------------------------ */

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

static int cmd_service_upsert(int argc, char **argv)
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

static int cmd_service_delete(int argc, char **argv)
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

static int cmd_service_list(int argc, char **argv)
{
	struct nm_svc_list list;
	struct nm_maps maps;
	size_t i;
	int err;

	if (argc) {
		pr_warn("unexpected argument '%s' for service list", argv[0]);
		return -EINVAL;
	}
	err = nm_maps_open(opt_pin_root, &maps);
	if (err)
		return err;
	err = nm_svc_list(&maps, &list);
	if (err)
		goto out;
	if (opt_json)
		putchar('[');
	else if (!list.n)
		printf("no services\n");
	for (i = 0; i < list.n; i++)
		print_service(&list.svcs[i], i == 0);
	if (opt_json)
		printf("]\n");
	nm_svc_list_free(&list);
out:
	nm_maps_close(&maps);
	return err;
}

/* ---- map ---------------------------------------------------------------- */

static const struct {
	const char *alias;
	const char *name;
} map_names[] = {
	{ "services", NM_MAP_SERVICES }, { "backends", NM_MAP_BACKENDS },
	{ "maglev", NM_MAP_MAGLEV },	 { "revnat", NM_MAP_REVNAT },
	{ "ct", NM_MAP_CT },		 { "metrics", NM_MAP_METRICS },
	{ "config", NM_MAP_CONFIG },	 { "ipcache", NM_MAP_IPCACHE },
	{ "endpoints", NM_MAP_ENDPOINTS }, { "policy", NM_MAP_POLICY },
	{ "events", NM_MAP_EVENTS },
};

#define N_MAPS (sizeof(map_names) / sizeof(map_names[0]))

static const char *map_type_name(__u32 type)
{
	switch (type) {
	case BPF_MAP_TYPE_HASH:
		return "hash";
	case BPF_MAP_TYPE_ARRAY:
		return "array";
	case BPF_MAP_TYPE_LRU_HASH:
		return "lru_hash";
	case BPF_MAP_TYPE_PERCPU_ARRAY:
		return "percpu_array";
	case BPF_MAP_TYPE_LPM_TRIE:
		return "lpm_trie";
	case BPF_MAP_TYPE_RINGBUF:
		return "ringbuf";
	default:
		return "other";
	}
}

/* Entries present: walked for hashes, max_entries for arrays. */
static int count_entries(int fd, const struct bpf_map_info *info, __u32 *cnt)
{
	char key[64] = {}, next[64] = {};
	bool first = true;

	if (info->type == BPF_MAP_TYPE_ARRAY ||
	    info->type == BPF_MAP_TYPE_PERCPU_ARRAY) {
		*cnt = info->max_entries;
		return 0;
	}
	/* A ring buffer has no keys; its size is max_entries bytes. */
	if (info->type == BPF_MAP_TYPE_RINGBUF) {
		*cnt = 0;
		return 0;
	}
	if (info->key_size > sizeof(key))
		return -E2BIG;
	*cnt = 0;
	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		memcpy(key, next, info->key_size);
		first = false;
		(*cnt)++;
	}
	return errno == ENOENT ? 0 : -errno;
}

static int cmd_map_list(int argc, char **argv)
{
	const char *root = nm_pin_root(opt_pin_root);
	char path[PATH_MAX];
	size_t i;
	int err = 0;

	if (argc) {
		pr_warn("unexpected argument '%s' for map list", argv[0]);
		return -EINVAL;
	}
	if (opt_json)
		putchar('[');
	else
		printf("%-16s %-13s %5s %5s %10s %10s %6s\n", "NAME", "TYPE",
		       "KEY", "VALUE", "MAX", "ENTRIES", "ID");
	for (i = 0; i < N_MAPS; i++) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info), cnt = 0;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", root, map_names[i].name);
		fd = bpf_obj_get(path);
		if (fd < 0) {
			err = -errno;
			pr_warn("failed to open map %s on %s: %s%s", map_names[i].name,
				root, strerror(-err),
				err == -ENOENT ?
					" (is the datapath loaded? run 'nodemeshctl attach IFACE')" :
					"");
			break;
		}
		err = bpf_obj_get_info_by_fd(fd, &info, &len);
		if (err) {
			err = -errno;
			pr_warn("failed to query map %s on %s: %s",
				map_names[i].name, root, strerror(-err));
		} else {
			err = count_entries(fd, &info, &cnt);
			if (err)
				pr_warn("failed to iterate map %s on %s: %s",
					map_names[i].name, root, strerror(-err));
		}
		close(fd);
		if (err)
			break;
		if (opt_json)
			printf("%s{\"name\":\"%s\",\"path\":\"%s/%s\",\"type\":\"%s\",\"key_size\":%u,\"value_size\":%u,\"max_entries\":%u,\"entries\":%u,\"id\":%u}",
			       i ? "," : "", map_names[i].name, root,
			       map_names[i].name, map_type_name(info.type),
			       info.key_size, info.value_size, info.max_entries,
			       cnt, info.id);
		else
			printf("%-16s %-13s %5u %5u %10u %10u %6u\n",
			       map_names[i].name, map_type_name(info.type),
			       info.key_size, info.value_size, info.max_entries,
			       cnt, info.id);
	}
	if (opt_json)
		printf("]\n");
	return err;
}

typedef int (*dump_fn)(struct nm_maps *maps);

static int dump_services(struct nm_maps *maps)
{
	struct nm_svc_list list;
	size_t i;
	int err;

	err = nm_svc_list(maps, &list);
	if (err)
		return err;
	if (opt_json)
		putchar('[');
	for (i = 0; i < list.n; i++) {
		const struct nm_svc_info *s = &list.svcs[i];
		char fes[NM_FRONTEND_STRLEN];

		nm_frontend_str(&s->fe, fes, sizeof(fes));
		if (opt_json)
			printf("%s{\"frontend\":\"%s\",\"svc_id\":%u,\"table_id\":%u,\"backend_count\":%u,\"algo\":\"%s\",\"flags\":%u}",
			       i ? "," : "", fes, s->val.svc_id, s->val.table_id,
			       s->val.backend_count, nm_lb_algo_name(s->val.algo),
			       s->val.flags);
		else
			printf("%-24s svc_id %u table_id %u backend_count %u algo %s flags 0x%x\n",
			       fes, s->val.svc_id, s->val.table_id,
			       s->val.backend_count, nm_lb_algo_name(s->val.algo),
			       s->val.flags);
	}
	if (opt_json)
		printf("]\n");
	nm_svc_list_free(&list);
	return 0;
}

static int dump_backends(struct nm_maps *maps)
{
	struct nm_svc_list list;
	char ip[INET_ADDRSTRLEN];
	size_t i;
	int err;

	err = nm_svc_list(maps, &list);
	if (err)
		return err;
	if (opt_json)
		putchar('[');
	for (i = 0; i < list.n_backends; i++) {
		const struct nm_svc_backend *b = &list.backends[i];

		if (opt_json)
			printf("%s{\"id\":%u,\"addr\":\"%s\",\"port\":%u,\"proto\":\"%s\",\"state\":\"%s\",\"svc_id\":%u,\"cluster_id\":%u,\"weight\":%u}",
			       i ? "," : "", b->id, ip_str(b->val.addr, ip),
			       ntohs(b->val.port), nm_proto_name(b->val.proto),
			       nm_backend_state_name(b->val.state),
			       b->val.svc_id, b->val.cluster_id, b->val.weight);
		else
			printf("backend %-5u %s:%u/%s state %s svc_id %u cluster_id %u weight %u\n",
			       b->id, ip_str(b->val.addr, ip), ntohs(b->val.port),
			       nm_proto_name(b->val.proto),
			       nm_backend_state_name(b->val.state),
			       b->val.svc_id, b->val.cluster_id, b->val.weight);
	}
	if (opt_json)
		printf("]\n");
	nm_svc_list_free(&list);
	return 0;
}

static int dump_revnat(struct nm_maps *maps)
{
	struct nm_revnat_key key = {}, next = {};
	struct nm_revnat_val val;
	char ip[INET_ADDRSTRLEN];
	bool first = true;
	int err;

	if (opt_json)
		putchar('[');
	while (!(err = bpf_map_get_next_key(maps->revnat, first ? NULL : &key,
					     &next))) {
		key = next;
		if (bpf_map_lookup_elem(maps->revnat, &key, &val))
			continue; /* deleted while we walked */
		if (opt_json)
			printf("%s{\"rev_nat_id\":%u,\"vip\":\"%s\",\"port\":%u}",
			       first ? "" : ",", key.rev_nat_id,
			       ip_str(val.vip, ip), ntohs(val.port));
		else
			printf("rev_nat_id %-5u -> %s:%u\n", key.rev_nat_id,
			       ip_str(val.vip, ip), ntohs(val.port));
		first = false;
	}
	if (opt_json)
		printf("]\n");
	if (errno != ENOENT) {
		pr_warn("failed to iterate map %s on %s: %s", NM_MAP_REVNAT,
			maps->pin_root, strerror(errno));
		return -errno;
	}
	return 0;
}

static int dump_ct(struct nm_maps *maps)
{
	struct nm_ct_key key = {}, next = {};
	struct nm_ct_val val;
	char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
	struct timespec ts;
	bool first = true;
	__u64 now;
	int err;

	/* bpf_ktime_get_ns() is CLOCK_MONOTONIC. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		return -errno;
	now = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
	if (opt_json)
		putchar('[');
	while (!(err = bpf_map_get_next_key(maps->ct, first ? NULL : &key,
					     &next))) {
		long long left, age;

		key = next;
		if (bpf_map_lookup_elem(maps->ct, &key, &val))
			continue;
		left = ((long long)val.expires_ns - (long long)now) / 1000000000LL;
		age = ((long long)now - (long long)val.created_ns) / 1000000000LL;
		if (opt_json)
			printf("%s{\"proto\":\"%s\",\"saddr\":\"%s\",\"sport\":%u,\"daddr\":\"%s\",\"dport\":%u,\"dir\":\"%s\",\"backend_id\":%u,\"rev_nat_id\":%u,\"expires_in_s\":%lld,\"age_s\":%lld,\"closing\":%s}",
			       first ? "" : ",", nm_proto_name(key.proto),
			       ip_str(key.saddr, s), ntohs(key.sport),
			       ip_str(key.daddr, d), ntohs(key.dport),
			       key.dir == NM_CT_REPLY ? "reply" : "forward",
			       val.backend_id, val.rev_nat_id, left, age,
			       val.flags & NM_CT_F_CLOSING ? "true" : "false");
		else
			printf("%s %s:%u -> %s:%u %s backend %u rev_nat %u expires %llds age %llds%s\n",
			       nm_proto_name(key.proto), ip_str(key.saddr, s),
			       ntohs(key.sport), ip_str(key.daddr, d),
			       ntohs(key.dport),
			       key.dir == NM_CT_REPLY ? "reply" : "forward",
			       val.backend_id, val.rev_nat_id, left, age,
			       val.flags & NM_CT_F_CLOSING ? " closing" : "");
		first = false;
	}
	if (opt_json)
		printf("]\n");
	if (errno != ENOENT) {
		pr_warn("failed to iterate map %s on %s: %s", NM_MAP_CT,
			maps->pin_root, strerror(errno));
		return -errno;
	}
	return 0;
}

static const char *reason_name(__u32 r)
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
		[NM_DROP_TRUNC_ETH] = "drop_trunc_eth",
		[NM_DROP_TRUNC_IPV4] = "drop_trunc_ipv4",
		[NM_DROP_BAD_IPV4] = "drop_bad_ipv4",
		[NM_DROP_TRUNC_L4] = "drop_trunc_l4",
		[NM_DROP_NO_BACKEND] = "drop_no_backend",
		[NM_DROP_NAT_FAILED] = "drop_nat_failed",
		[NM_DROP_CT_FULL] = "drop_ct_full",
		[NM_DROP_POLICY_DENY] = "drop_policy_deny",
		[NM_DROP_POLICY_DEFAULT] = "drop_policy_default",
	};

	return r < NM_REASON_MAX && names[r] ? names[r] : NULL;
}

static int dump_metrics(struct nm_maps *maps)
{
	struct nm_metrics_val *v;
	int ncpu = libbpf_num_possible_cpus();
	bool first = true;
	__u32 i;
	int c, err = 0;

	if (ncpu <= 0) {
		pr_warn("failed to count possible CPUs: %s", strerror(-ncpu));
		return ncpu ?: -EINVAL;
	}
	/* Per-CPU values come back one per possible CPU, 8-byte aligned. */
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (opt_json)
		putchar('[');
	for (i = 0; i < NM_METRICS_MAX; i++) {
		struct nm_metrics_key key = { .index = i };
		__u32 dir = i / NM_REASON_MAX, r = i % NM_REASON_MAX;
		unsigned long long pk = 0, by = 0;
		const char *rn = reason_name(r);
		char unknown[16];

		if (bpf_map_lookup_elem(maps->metrics, &key, v)) {
			err = -errno;
			pr_warn("failed to read map %s on %s: %s", NM_MAP_METRICS,
				maps->pin_root, strerror(-err));
			break;
		}
		for (c = 0; c < ncpu; c++) {
			pk += v[c].packets;
			by += v[c].bytes;
		}
		if (!pk && !by)
			continue;
		if (!rn) {
			snprintf(unknown, sizeof(unknown), "reason_%u", r);
			rn = unknown;
		}
		if (opt_json)
			printf("%s{\"dir\":\"%s\",\"reason\":\"%s\",\"drop\":%s,\"packets\":%llu,\"bytes\":%llu}",
			       first ? "" : ",",
			       dir == NM_DIR_FROM_POD ? "from_pod" : "to_pod",
			       rn, NM_REASON_IS_DROP(r) ? "true" : "false", pk, by);
		else
			printf("%-8s %-18s %s packets %llu bytes %llu\n",
			       dir == NM_DIR_FROM_POD ? "from_pod" : "to_pod", rn,
			       NM_REASON_IS_DROP(r) ? "DROP" : "    ", pk, by);
		first = false;
	}
	if (opt_json)
		printf("]\n");
	else if (first && !err)
		printf("no nonzero counters\n");
	free(v);
	return err;
}

static int dump_config(struct nm_maps *maps)
{
	if (opt_json)
		printf("{\"maglev_m\":%u,\"maglev_tables\":%u,\"abi_version\":%u}\n",
		       maps->cfg.maglev_m, maps->cfg.maglev_tables,
		       maps->cfg.abi_version);
	else
		printf("maglev_m %u\nmaglev_tables %u\nabi_version %u\n",
		       maps->cfg.maglev_m, maps->cfg.maglev_tables,
		       maps->cfg.abi_version);
	return 0;
}

/* Read table @t (M slots) into @out: one batch, or slot by slot. */
static int read_table(struct nm_maps *maps, __u32 t, __u32 *keys, __u32 *out)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	__u32 m = maps->cfg.maglev_m, count = m, prev = t * m - 1, next, i;
	int err;

	err = bpf_map_lookup_batch(maps->maglev, t ? &prev : NULL, &next, keys,
				   out, &count, &bopts);
	/* ENOENT just means the batch reached the end of the array. */
	if ((!err || errno == ENOENT) && count == m && keys[0] == t * m)
		return 0;
	for (i = 0; i < m; i++) {
		struct nm_maglev_key key = { .index = t * m + i };

		if (bpf_map_lookup_elem(maps->maglev, &key, &out[i])) {
			err = -errno;
			pr_warn("failed to read map %s on %s: %s", NM_MAP_MAGLEV,
				maps->pin_root, strerror(-err));
			return err;
		}
	}
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

static int dump_maglev(struct nm_maps *maps)
{
	__u32 m = maps->cfg.maglev_m, t, i;
	struct nm_svc_list list;
	__u32 *keys = NULL, *tab = NULL, *sorted = NULL;
	bool first = true;
	int err;

	err = nm_svc_list(maps, &list);
	if (err)
		return err;
	keys = calloc(m, sizeof(*keys));
	tab = calloc(m, sizeof(*tab));
	sorted = calloc(m, sizeof(*sorted));
	if (!keys || !tab || !sorted) {
		err = -ENOMEM;
		goto out;
	}
	if (opt_json)
		printf("{\"maglev_m\":%u,\"maglev_tables\":%u,\"tables\":[", m,
		       maps->cfg.maglev_tables);
	else
		printf("Maglev M %u, %u tables (tables with no owner and no entry omitted)\n",
		       m, maps->cfg.maglev_tables);
	for (t = 0; t < maps->cfg.maglev_tables; t++) {
		const struct nm_svc_info *owner = NULL;
		char fes[NM_FRONTEND_STRLEN] = "";
		size_t s, nonzero = 0;
		bool firstb = true;

		for (s = 0; s < list.n; s++)
			if (list.svcs[s].val.table_id == t)
				owner = &list.svcs[s];
		err = read_table(maps, t, keys, tab);
		if (err)
			goto out;
		for (i = 0; i < m; i++)
			nonzero += tab[i] != 0;
		if (!owner && !nonzero)
			continue;
		if (owner)
			nm_frontend_str(&owner->fe, fes, sizeof(fes));
		/* Slot count per backend id: sort a copy, count runs. */
		memcpy(sorted, tab, m * sizeof(*tab));
		qsort(sorted, m, sizeof(*sorted), id_cmp);
		if (opt_json) {
			printf("%s{\"table_id\":%u,\"owner\":", first ? "" : ",", t);
			if (owner)
				printf("{\"svc_id\":%u,\"frontend\":\"%s\"}",
				       owner->val.svc_id, fes);
			else
				printf("null");
			printf(",\"slots\":{");
		} else if (owner) {
			printf("table %-4u service %s (id %u):", t, fes,
			       owner->val.svc_id);
		} else {
			printf("table %-4u no owner (stale spare):", t);
		}
		for (i = 0; i < m;) {
			__u32 j = i;

			while (j < m && sorted[j] == sorted[i])
				j++;
			if (opt_json)
				printf("%s\"%u\":%u", firstb ? "" : ",", sorted[i],
				       j - i);
			else if (sorted[i])
				printf(" backend %u: %u", sorted[i], j - i);
			else
				printf(" empty: %u", j - i);
			firstb = false;
			i = j;
		}
		if (opt_json)
			printf("}}");
		else
			putchar('\n');
		first = false;
	}
	if (opt_json)
		printf("]}\n");
out:
	free(sorted);
	free(tab);
	free(keys);
	nm_svc_list_free(&list);
	return err;
}

/* ---- node state, identities, endpoints ---------------------------------- */

/* What the policy commands work on: maps, state dir and identities. */
struct node_ctx {
	struct nm_maps maps;
	struct nm_state st;
	struct nm_idstore ids;
	bool maps_open, locked, ids_loaded;
};

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

/* Open maps, take the writers' lock if @lock, open state and identities. */
static int node_open(struct node_ctx *n, bool lock)
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

static void node_close(struct node_ctx *n)
{
	if (n->ids_loaded)
		nm_idstore_free(&n->ids);
	if (n->locked)
		nm_maps_unlock(&n->maps);
	if (n->maps_open)
		nm_maps_close(&n->maps);
}

/* "1/4242" for label identities, the name for reserved ones. */
static const char *id_str(__u64 id, char *buf, size_t len)
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

/* Canonical labels of @id, "?" when unknown; caller frees. */
static char *id_labels(const struct nm_idstore *ids, __u64 id)
{
	const struct nm_identity_info *info = nm_idstore_find(ids, id);

	return info ? nm_labels_str(&info->labels) : strdup("?");
}

static void json_labels(const struct nm_idstore *ids, __u64 id)
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

static const char *enforce_str(__u8 flags)
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

static const char *mac_str(const __u8 *m, char *buf)
{
	sprintf(buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
		m[4], m[5]);
	return buf;
}

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

static void print_sync(const char *what, const struct nm_sync_stats *s)
{
	if (opt_json) {
		printf("\"policy_entries\":{\"added\":%zu,\"changed\":%zu,\"removed\":%zu,\"unchanged\":%zu},\"enforcement\":{\"on\":%zu,\"off\":%zu},\"cidr_identities\":{\"added\":%zu,\"removed\":%zu}",
		       s->added, s->changed, s->removed, s->unchanged,
		       s->flags_on, s->flags_off, s->cidr_added, s->cidr_removed);
		return;
	}
	printf("%s: policy entries %zu added, %zu changed, %zu removed (%zu unchanged); enforcement %zu on, %zu off; CIDR identities %zu added, %zu removed\n",
	       what, s->added, s->changed, s->removed, s->unchanged,
	       s->flags_on, s->flags_off, s->cidr_added, s->cidr_removed);
}

/* Load the applied manifests, reporting a broken store by file and line. */
static int load_store(const struct nm_state *st, struct nm_policy_set *set)
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

/* Recompile everything after an identity or endpoint change. */
static int resync(struct node_ctx *n, const struct nm_ep_rec *pending,
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

/* Lowest free endpoint id, or the id @addr already has. */
static __u32 pick_endpoint_id(const struct nm_ep_rec *eps, size_t n,
			      __be32 addr)
{
	__u32 eid = 1;
	size_t i;

	for (i = 0; i < n; i++)
		if (eps[i].addr == addr)
			return eps[i].val.endpoint_id;
	/* Sorted by id: walk up past every id in use from 1. */
	for (i = 0; i < n; i++)
		if (eps[i].val.endpoint_id == eid)
			eid++;
	return eid;
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

static int cmd_endpoint_add(int argc, char **argv)
{
	const char *iface = NULL, *ns = NULL, *labels_s = NULL, *name = NULL,
		   *mac_s = NULL, *ip_s = NULL;
	struct nm_labels labels = {};
	struct nm_ep_rec rec = {}, *eps = NULL;
	struct nm_ipcache_key ik = { .prefixlen = 32 };
	struct nm_ipcache_val iv = { .flags = NM_IPC_F_LOCAL };
	struct nm_sync_stats stats;
	struct node_ctx n;
	char msg[256], ipbuf[INET_ADDRSTRLEN];
	bool created;
	size_t n_eps = 0;
	int a, err, ret;

	memset(&n, 0, sizeof(n));
	for (a = 0; a < argc; a++) {
		if ((ret = match_opt(argc, argv, &a, "--iface", &iface)) ||
		    (ret = match_opt(argc, argv, &a, "--namespace", &ns)) ||
		    (ret = match_opt(argc, argv, &a, "--labels", &labels_s)) ||
		    (ret = match_opt(argc, argv, &a, "--name", &name)) ||
		    (ret = match_opt(argc, argv, &a, "--mac", &mac_s))) {
			if (ret < 0)
				return ret;
			continue;
		}
		if (argv[a][0] == '-' || ip_s) {
			pr_warn("unexpected argument '%s' for endpoint add", argv[a]);
			return -EINVAL;
		}
		ip_s = argv[a];
	}
	if (!ip_s || !iface || !ns) {
		pr_warn("endpoint add needs IP, --iface IFACE and --namespace NS");
		return -EINVAL;
	}
	if (nm_parse_ipv4(ip_s, &rec.addr)) {
		pr_warn("bad endpoint address '%s': expected an IPv4 address", ip_s);
		return -EINVAL;
	}
	rec.val.ifindex = if_nametoindex(iface);
	if (!rec.val.ifindex) {
		pr_warn("failed to find interface %s for endpoint %s: %s", iface,
			ip_s, strerror(errno));
		return -ENODEV;
	}
	if (mac_s && parse_mac(mac_s, rec.val.mac))
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
	err = nm_labels_set(&labels, NM_LABEL_NAMESPACE, ns);
	if (!err)
		err = nm_labels_set(&labels, NM_LABEL_CLUSTER, n.st.node.cluster);
	if (err)
		goto out;
	err = nm_identity_alloc(&n.ids, n.st.node.cluster_id, &labels,
				&rec.val.identity, &created);
	if (!err && created)
		err = nm_idstore_save(&n.st, &n.ids);
	if (err)
		goto out;
	err = nm_endpoints_read(&n.maps, &eps, &n_eps);
	if (err)
		goto out;
	rec.val.endpoint_id = pick_endpoint_id(eps, n_eps, rec.addr);
	/* Without --name a re-add keeps the name it had. */
	if (name) {
		err = nm_state_set_ep_name(&n.st, ip_str(rec.addr, ipbuf), ns,
					   name);
		if (err)
			goto out;
	}
	/* The new endpoint's policy entries and flags land before it does. */
	err = resync(&n, &rec, &stats);
	if (err)
		goto out;
	ik.addr = rec.addr;
	iv.identity = rec.val.identity;
	err = bpf_map_update_elem(n.maps.ipcache, &ik, &iv, BPF_ANY);
	if (err) {
		err = -errno;
		pr_warn("failed to write map %s on %s: %s", NM_MAP_IPCACHE,
			n.maps.pin_root, strerror(-err));
		goto out;
	}
	free(eps);
	eps = NULL;
	err = nm_endpoints_read(&n.maps, &eps, &n_eps);
	if (err)
		goto out;
	for (a = 0; a < (int)n_eps; a++) {
		if (eps[a].addr != rec.addr)
			continue;
		if (opt_json) {
			printf("{\"endpoint\":");
			print_endpoint(&n, &eps[a], true);
			printf(",\"identity_created\":%s,", created ? "true" : "false");
			print_sync("", &stats);
			printf("}\n");
		} else {
			printf("added endpoint ");
			print_endpoint(&n, &eps[a], true);
			print_sync("recompiled", &stats);
		}
	}
out:
	free(eps);
	nm_labels_free(&labels);
	node_close(&n);
	return err;
}

static int cmd_endpoint_delete(int argc, char **argv)
{
	struct nm_endpoint_key k = {};
	struct nm_endpoint_val v;
	struct nm_ipcache_key ik = { .prefixlen = 32 };
	struct nm_ipcache_val iv;
	struct nm_sync_stats stats;
	struct node_ctx n;
	char ipbuf[INET_ADDRSTRLEN];
	int err;

	if (argc != 1 || argv[0][0] == '-') {
		pr_warn("endpoint delete takes exactly one IP");
		return -EINVAL;
	}
	if (nm_parse_ipv4(argv[0], &k.addr)) {
		pr_warn("bad endpoint address '%s': expected an IPv4 address",
			argv[0]);
		return -EINVAL;
	}
	err = node_open(&n, true);
	if (err)
		goto out;
	if (bpf_map_lookup_elem(n.maps.endpoints, &k, &v)) {
		err = -errno;
		pr_warn("failed to find endpoint %s on %s: %s", argv[0],
			n.maps.pin_root, err == -ENOENT ? "no such endpoint" :
							  strerror(-err));
		goto out;
	}
	/* Its ipcache entry first, then the endpoint, then its policy entries. */
	ik.addr = k.addr;
	if (!bpf_map_lookup_elem(n.maps.ipcache, &ik, &iv) &&
	    (iv.flags & NM_IPC_F_LOCAL) &&
	    bpf_map_delete_elem(n.maps.ipcache, &ik) && errno != ENOENT) {
		err = -errno;
		pr_warn("failed to delete from map %s on %s: %s", NM_MAP_IPCACHE,
			n.maps.pin_root, strerror(-err));
		goto out;
	}
	if (bpf_map_delete_elem(n.maps.endpoints, &k) && errno != ENOENT) {
		err = -errno;
		pr_warn("failed to delete from map %s on %s: %s",
			NM_MAP_ENDPOINTS, n.maps.pin_root, strerror(-err));
		goto out;
	}
	err = resync(&n, NULL, &stats);
	if (!err)
		err = nm_state_set_ep_name(&n.st, ip_str(k.addr, ipbuf), NULL,
					   NULL);
	if (err)
		goto out;
	if (opt_json) {
		printf("{\"deleted\":\"%s\",\"endpoint_id\":%u,", argv[0],
		       v.endpoint_id);
		print_sync("", &stats);
		printf("}\n");
	} else {
		printf("deleted endpoint %s (id %u)\n", argv[0], v.endpoint_id);
		print_sync("recompiled", &stats);
	}
out:
	node_close(&n);
	return err;
}

static int cmd_endpoint_list(int argc, char **argv)
{
	struct nm_ep_rec *eps = NULL;
	struct node_ctx n;
	size_t n_eps = 0, i;
	int err;

	if (argc) {
		pr_warn("unexpected argument '%s' for endpoint list", argv[0]);
		return -EINVAL;
	}
	err = node_open(&n, false);
	if (!err)
		err = nm_endpoints_read(&n.maps, &eps, &n_eps);
	if (err)
		goto out;
	if (opt_json)
		putchar('[');
	else if (!n_eps)
		printf("no endpoints\n");
	for (i = 0; i < n_eps; i++)
		print_endpoint(&n, &eps[i], i == 0);
	if (opt_json)
		printf("]\n");
out:
	free(eps);
	node_close(&n);
	return err;
}

static int cmd_identity_list(int argc, char **argv)
{
	struct node_ctx n;
	char ids[48], cs[24];
	size_t i;
	int err;

	if (argc) {
		pr_warn("unexpected argument '%s' for identity list", argv[0]);
		return -EINVAL;
	}
	err = node_open(&n, false);
	if (err)
		goto out;
	if (opt_json)
		putchar('[');
	for (i = 0; i < n.ids.n; i++) {
		const struct nm_identity_info *info = &n.ids.v[i];
		char *labels = nm_labels_str(&info->labels);

		if (opt_json) {
			printf("%s{\"id\":%llu,\"cluster_id\":%u,\"local_id\":%u,\"reserved\":%s,",
			       i ? "," : "", (unsigned long long)info->id,
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
	if (opt_json)
		printf("]\n");
out:
	node_close(&n);
	return err;
}

/* identity add: a remote cluster's identity, until the kvstore brings them. */
static int cmd_identity_add(int argc, char **argv)
{
	const char *cid_s = NULL, *labels_s = NULL;
	struct nm_labels labels = {};
	struct nm_sync_stats stats;
	struct node_ctx n;
	char msg[256], ids[48];
	bool created;
	__u32 cid = 0;
	__u64 id;
	int a, err, ret;

	memset(&n, 0, sizeof(n));
	for (a = 0; a < argc; a++) {
		if ((ret = match_opt(argc, argv, &a, "--cluster-id", &cid_s)) ||
		    (ret = match_opt(argc, argv, &a, "--labels", &labels_s))) {
			if (ret < 0)
				return ret;
			continue;
		}
		pr_warn("unexpected argument '%s' for identity add", argv[a]);
		return -EINVAL;
	}
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
	if (opt_json) {
		printf("{\"id\":%llu,\"cluster_id\":%u,\"local_id\":%u,\"created\":%s,",
		       (unsigned long long)id, cid, nm_identity_local(id),
		       created ? "true" : "false");
		print_sync("", &stats);
		printf("}\n");
	} else {
		printf("%s identity %llu (%s)\n", created ? "added" : "existing",
		       (unsigned long long)id, id_str(id, ids, sizeof(ids)));
		print_sync("recompiled", &stats);
	}
out:
	nm_labels_free(&labels);
	node_close(&n);
	return err;
}

/* ---- ipcache ------------------------------------------------------------ */

static int cmd_ipcache_upsert(int argc, char **argv)
{
	struct nm_ipcache_key k = {};
	struct nm_ipcache_val v = {};
	const char *id_s = NULL, *pfx = NULL, *tun = NULL;
	struct nm_cidr c;
	struct nm_maps maps;
	unsigned long long id;
	char *end, buf[24];
	int a, err, ret;

	for (a = 0; a < argc; a++) {
		if ((ret = match_opt(argc, argv, &a, "--identity", &id_s)) ||
		    (ret = match_opt(argc, argv, &a, "--tunnel", &tun))) {
			if (ret < 0)
				return ret;
			continue;
		}
		if (argv[a][0] == '-' || pfx) {
			pr_warn("unexpected argument '%s' for ipcache upsert", argv[a]);
			return -EINVAL;
		}
		pfx = argv[a];
	}
	if (!pfx || !id_s) {
		pr_warn("ipcache upsert needs PREFIX and --identity ID");
		return -EINVAL;
	}
	if (!strchr(pfx, '/')) {
		snprintf(buf, sizeof(buf), "%s/32", pfx);
		pfx = buf;
	}
	if (nm_cidr_parse(pfx, &c)) {
		pr_warn("bad prefix '%s': expected A.B.C.D/LEN with host bits zero",
			pfx);
		return -EINVAL;
	}
	errno = 0;
	id = strtoull(id_s, &end, 0);
	if (errno || *end || !*id_s || !id ||
	    id > nm_identity_pack(NM_ID_CLUSTER_MAX, NM_ID_LOCAL_MAX)) {
		pr_warn("bad value '%s' for --identity: a packed identity (cluster << 24 | local), not 0",
			id_s);
		return -EINVAL;
	}
	if (tun && nm_parse_ipv4(tun, &v.tunnel_endpoint)) {
		pr_warn("bad value '%s' for --tunnel: expected an IPv4 address", tun);
		return -EINVAL;
	}
	k.prefixlen = c.len;
	k.addr = c.addr;
	v.identity = id;
	err = nm_maps_open(opt_pin_root, &maps);
	if (err)
		return err;
	if (bpf_map_update_elem(maps.ipcache, &k, &v, BPF_ANY)) {
		err = -errno;
		pr_warn("failed to write map %s on %s: %s", NM_MAP_IPCACHE,
			maps.pin_root, strerror(-err));
	} else if (opt_json) {
		printf("{\"prefix\":\"%s\",\"identity\":%llu}\n", pfx, id);
	} else {
		printf("ipcache %s -> identity %llu\n", pfx, id);
	}
	nm_maps_close(&maps);
	return err;
}

/* ---- policy ------------------------------------------------------------- */

/* -f FILE or one positional argument. */
static int policy_args(int argc, char **argv, const char *cmd,
		       const char **file, const char **pos)
{
	int a, ret;

	*file = NULL;
	*pos = NULL;
	for (a = 0; a < argc; a++) {
		if ((ret = match_opt(argc, argv, &a, "-f", file)) ||
		    (ret = match_opt(argc, argv, &a, "--file", file))) {
			if (ret < 0)
				return ret;
			continue;
		}
		if (argv[a][0] == '-' || *pos) {
			pr_warn("unexpected argument '%s' for policy %s", argv[a],
				cmd);
			return -EINVAL;
		}
		*pos = argv[a];
	}
	return 0;
}

/* Parse @file; on error print "FILE:LINE: reason" to stderr. */
static int parse_manifest(const char *file, struct nm_policy_set *set)
{
	struct nm_error perr;
	char msg[1024];
	int err;

	memset(&perr, 0, sizeof(perr));
	err = nm_policy_parse_file(file, set, &perr);
	if (err) {
		if (perr.reason[0])
			fprintf(stderr, "%s\n", nm_error_str(&perr, msg, sizeof(msg)));
		else
			fprintf(stderr, "%s: %s\n", file, strerror(-err));
	}
	return err;
}

static int cmd_policy_validate(int argc, char **argv)
{
	struct nm_policy_set set;
	const char *file, *pos;
	int err;

	err = policy_args(argc, argv, "validate", &file, &pos);
	if (err)
		return err;
	if (!file || pos) {
		pr_warn("policy validate takes -f FILE");
		return -EINVAL;
	}
	err = parse_manifest(file, &set);
	if (err)
		return err;
	if (opt_json) {
		printf("{\"file\":");
		json_str(file);
		printf(",\"valid\":%zu}\n", set.n);
	} else {
		printf("%s: %zu %s valid\n", file, set.n,
		       set.n == 1 ? "policy" : "policies");
	}
	nm_policy_set_free(&set);
	return 0;
}

/* Read @file whole (for storing it as given). */
static int read_whole(const char *file, char **buf, size_t *len)
{
	FILE *f;
	long sz;
	int err = 0;

	f = fopen(file, "re");
	if (!f) {
		err = -errno;
		pr_warn("failed to open file %s: %s", file, strerror(-err));
		return err;
	}
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		err = -errno;
		pr_warn("failed to read file %s: %s", file, strerror(-err));
		goto out;
	}
	*buf = malloc((size_t)sz + 1);
	if (!*buf) {
		err = -ENOMEM;
		goto out;
	}
	*len = fread(*buf, 1, (size_t)sz, f);
	if (ferror(f)) {
		err = -EIO;
		pr_warn("failed to read file %s: I/O error", file);
		free(*buf);
		goto out;
	}
	(*buf)[*len] = '\0';
out:
	fclose(f);
	return err;
}

static void print_names(const struct nm_policy_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		if (opt_json) {
			printf("%s\"%s/%s\"", i ? "," : "", set->v[i].namespace,
			       set->v[i].name);
		} else {
			printf("%s%s/%s", i ? ", " : "", set->v[i].namespace,
			       set->v[i].name);
		}
	}
}

static int cmd_policy_apply(int argc, char **argv)
{
	struct nm_policy_set in = {}, again = {}, set = {};
	struct nm_compiled dry = {};
	struct nm_sync_stats stats;
	struct node_ctx n;
	const char *file, *pos;
	char *buf = NULL;
	size_t len = 0;
	int err;

	memset(&n, 0, sizeof(n));
	err = policy_args(argc, argv, "apply", &file, &pos);
	if (err)
		return err;
	if (!file || pos) {
		pr_warn("policy apply takes -f FILE");
		return -EINVAL;
	}
	/* Everything is checked before anything is written. */
	err = parse_manifest(file, &in);
	if (err)
		return err;
	err = read_whole(file, &buf, &len);
	if (err)
		goto out;
	err = node_open(&n, true);
	if (err)
		goto out;
	err = load_store(&n.st, &set);
	if (err)
		goto out;
	err = parse_manifest(file, &again);
	if (!err)
		err = nm_policy_set_merge(&set, &again);
	if (!err)
		err = nm_policy_compile_node(&n.maps, &n.st, &n.ids, &set, &dry);
	if (err)
		goto out;
	err = nm_policy_store_write(&n.st, file, buf, len, &in);
	if (err)
		goto out;
	err = nm_policy_sync(&n.maps, &n.st, &n.ids, &set, NULL, &stats, NULL);
	if (err)
		goto out;
	if (opt_json) {
		printf("{\"applied\":[");
		print_names(&in);
		printf("],");
		print_sync("", &stats);
		printf("}\n");
	} else {
		printf("applied ");
		print_names(&in);
		putchar('\n');
		print_sync("compiled", &stats);
	}
out:
	nm_compiled_free(&dry);
	nm_policy_set_free(&again);
	nm_policy_set_free(&set);
	nm_policy_set_free(&in);
	free(buf);
	node_close(&n);
	return err;
}

static int cmd_policy_delete(int argc, char **argv)
{
	struct nm_policy_set in = {}, set = {};
	struct nm_sync_stats stats;
	struct node_ctx n;
	const char *file, *pos;
	char ns[NM_LABEL_VALUE_MAX + 2], *slash = NULL;
	size_t i;
	int err;

	memset(&n, 0, sizeof(n));
	err = policy_args(argc, argv, "delete", &file, &pos);
	if (err)
		return err;
	if (!file == !pos) {
		pr_warn("policy delete takes -f FILE or NAMESPACE/NAME");
		return -EINVAL;
	}
	if (file) {
		err = parse_manifest(file, &in);
		if (err)
			return err;
	} else {
		slash = strchr(pos, '/');
		if (!slash || slash == pos || !slash[1] ||
		    (size_t)(slash - pos) >= sizeof(ns)) {
			pr_warn("bad policy name '%s': expected NAMESPACE/NAME", pos);
			return -EINVAL;
		}
		memcpy(ns, pos, (size_t)(slash - pos));
		ns[slash - pos] = '\0';
	}
	err = node_open(&n, true);
	if (!err)
		err = load_store(&n.st, &set);
	if (err)
		goto out;
	/* All named policies must be applied, or nothing is deleted. */
	for (i = 0; i < (file ? in.n : 1); i++) {
		const char *dns = file ? in.v[i].namespace : ns;
		const char *dname = file ? in.v[i].name : slash + 1;

		err = nm_policy_set_remove(&set, dns, dname);
		if (err == -ENOENT)
			pr_warn("failed to delete policy %s/%s on %s: not applied",
				dns, dname, n.st.dir);
		if (err)
			goto out;
	}
	for (i = 0; i < (file ? in.n : 1); i++) {
		err = nm_policy_store_remove(&n.st, file ? in.v[i].namespace : ns,
					     file ? in.v[i].name : slash + 1);
		if (err && err != -ENOENT)
			goto out;
	}
	err = nm_policy_sync(&n.maps, &n.st, &n.ids, &set, NULL, &stats, NULL);
	if (err)
		goto out;
	if (opt_json) {
		printf("{\"deleted\":[");
		if (file)
			print_names(&in);
		else
			printf("\"%s\"", pos);
		printf("],");
		print_sync("", &stats);
		printf("}\n");
	} else {
		printf("deleted ");
		if (file)
			print_names(&in);
		else
			printf("%s", pos);
		putchar('\n');
		print_sync("compiled", &stats);
	}
out:
	nm_policy_set_free(&set);
	nm_policy_set_free(&in);
	node_close(&n);
	return err;
}

static int cmd_policy_list(int argc, char **argv)
{
	static const char *const kinds[NM_RULE_KINDS] = {
		"ingress", "egress", "ingressDeny", "egressDeny"
	};
	struct nm_policy_set set = {};
	struct nm_ep_rec *eps = NULL;
	struct node_ctx n;
	size_t n_eps = 0, i, j, sel;
	int err, k;

	if (argc) {
		pr_warn("unexpected argument '%s' for policy list", argv[0]);
		return -EINVAL;
	}
	err = node_open(&n, false);
	if (!err)
		err = load_store(&n.st, &set);
	if (!err)
		err = nm_endpoints_read(&n.maps, &eps, &n_eps);
	if (err)
		goto out;
	if (opt_json)
		putchar('[');
	else if (!set.n)
		printf("no policies\n");
	else
		printf("%-40s %9s %7s %6s %11s %10s\n", "NAMESPACE/NAME",
		       "ENDPOINTS", "INGRESS", "EGRESS", "INGRESSDENY",
		       "EGRESSDENY");
	for (i = 0; i < set.n; i++) {
		const struct nm_policy *p = &set.v[i];
		char nn[256];

		for (j = 0, sel = 0; j < n_eps; j++) {
			const struct nm_identity_info *info =
				nm_idstore_find(&n.ids, eps[j].val.identity);

			sel += info && nm_policy_selects(p, &info->labels);
		}
		snprintf(nn, sizeof(nn), "%s/%s", p->namespace, p->name);
		if (opt_json) {
			printf("%s{\"namespace\":", i ? "," : "");
			json_str(p->namespace);
			printf(",\"name\":");
			json_str(p->name);
			printf(",\"endpoints\":%zu,\"enforces_ingress\":%s,\"enforces_egress\":%s",
			       sel, p->enforces[NM_POLICY_INGRESS] ? "true" : "false",
			       p->enforces[NM_POLICY_EGRESS] ? "true" : "false");
			for (k = 0; k < NM_RULE_KINDS; k++)
				printf(",\"%s\":%zu", kinds[k], p->n_rules[k]);
			putchar('}');
		} else {
			printf("%-40s %9zu %7zu %6zu %11zu %10zu\n", nn, sel,
			       p->n_rules[NM_RULE_INGRESS],
			       p->n_rules[NM_RULE_EGRESS],
			       p->n_rules[NM_RULE_INGRESS_DENY],
			       p->n_rules[NM_RULE_EGRESS_DENY]);
		}
	}
	if (opt_json)
		printf("]\n");
out:
	free(eps);
	nm_policy_set_free(&set);
	node_close(&n);
	return err;
}

static const char *rule_kind_name(enum nm_rule_kind k)
{
	static const char *const names[NM_RULE_KINDS] = {
		"ingress", "egress", "ingressDeny", "egressDeny"
	};

	return k < NM_RULE_KINDS ? names[k] : "?";
}

static const char *port_str(const struct nm_policy_key *k, char *buf, size_t len)
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

static int pkey_cmp(const void *a, const void *b)
{
	const struct nm_policy_entry *x = a, *y = b;

	if (x->key.dir != y->key.dir)
		return x->key.dir < y->key.dir ? -1 : 1;
	return memcmp(&x->key, &y->key, sizeof(x->key));
}

static int cmd_policy_get(int argc, char **argv)
{
	struct nm_policy_key key = {}, next = {};
	struct nm_policy_entry *ents = NULL, *ne;
	struct nm_policy_set set = {};
	struct nm_compiled c = {};
	struct nm_endpoint_key ek = {};
	struct nm_endpoint_val ev;
	struct node_ctx n;
	char ids[48], ps[24], ip[INET_ADDRSTRLEN];
	size_t cnt = 0, i;
	bool first = true;
	int err, d;

	memset(&n, 0, sizeof(n));
	if (argc != 1 || argv[0][0] == '-' || nm_parse_ipv4(argv[0], &ek.addr)) {
		pr_warn("policy get takes exactly one endpoint IP");
		return -EINVAL;
	}
	err = node_open(&n, false);
	if (err)
		goto out;
	if (bpf_map_lookup_elem(n.maps.endpoints, &ek, &ev)) {
		err = -errno;
		pr_warn("failed to find endpoint %s on %s: %s", argv[0],
			n.maps.pin_root,
			err == -ENOENT ? "no such endpoint" : strerror(-err));
		goto out;
	}
	/* The rule table of the same inputs gives the same rule ids. */
	err = load_store(&n.st, &set);
	if (!err)
		err = nm_policy_compile_node(&n.maps, &n.st, &n.ids, &set, &c);
	if (err)
		goto out;
	while (!bpf_map_get_next_key(n.maps.policy, first ? NULL : &key, &next)) {
		key = next;
		first = false;
		if (key.endpoint_id != ev.endpoint_id)
			continue;
		ne = realloc(ents, (cnt + 1) * sizeof(*ents));
		if (!ne) {
			err = -ENOMEM;
			goto out;
		}
		ents = ne;
		ents[cnt].key = key;
		if (bpf_map_lookup_elem(n.maps.policy, &key, &ents[cnt].val))
			continue;
		cnt++;
	}
	if (errno != ENOENT) {
		err = -errno;
		pr_warn("failed to iterate map %s on %s: %s", NM_MAP_POLICY,
			n.maps.pin_root, strerror(-err));
		goto out;
	}
	if (cnt)
		qsort(ents, cnt, sizeof(*ents), pkey_cmp);
	if (opt_json) {
		printf("{\"endpoint\":\"%s\",\"endpoint_id\":%u,\"identity\":%llu,\"labels\":",
		       ip_str(ek.addr, ip), ev.endpoint_id,
		       (unsigned long long)ev.identity);
		json_labels(&n.ids, ev.identity);
		printf(",\"ingress_enforced\":%s,\"egress_enforced\":%s,\"rules\":[",
		       ev.flags & NM_EP_F_INGRESS_POLICY ? "true" : "false",
		       ev.flags & NM_EP_F_EGRESS_POLICY ? "true" : "false");
	} else {
		char *l = id_labels(&n.ids, ev.identity);

		printf("endpoint %s id %u identity %s %s\n", ip_str(ek.addr, ip),
		       ev.endpoint_id, id_str(ev.identity, ids, sizeof(ids)),
		       l ?: "?");
		free(l);
	}
	for (i = 0; i < cnt; i++) {
		const struct nm_policy_entry *e = &ents[i];
		const struct nm_rule_ref *r = NULL;
		bool in = e->key.dir == NM_POLICY_INGRESS;
		char *l = NULL;

		if (e->val.rule_id && e->val.rule_id <= c.n_rules)
			r = &c.rules[e->val.rule_id - 1];
		if (e->key.identity != NM_ID_ANY)
			l = id_labels(&n.ids, e->key.identity);
		if (opt_json) {
			printf("%s{\"direction\":\"%s\",\"peer\":", i ? "," : "",
			       in ? "ingress" : "egress");
			if (e->key.identity == NM_ID_ANY) {
				printf("\"any\"");
			} else {
				printf("{\"identity\":%llu,\"labels\":",
				       (unsigned long long)e->key.identity);
				json_labels(&n.ids, e->key.identity);
				putchar('}');
			}
			printf(",\"port\":\"%s\",\"verdict\":\"%s\",\"rule_id\":%u",
			       port_str(&e->key, ps, sizeof(ps)),
			       e->val.verdict == NM_POLICY_DENY ? "deny" : "allow",
			       e->val.rule_id);
			if (r)
				printf(",\"policy\":\"%s/%s\",\"rule\":\"%s[%zu]\"",
				       r->ns, r->name, rule_kind_name(r->kind),
				       r->index);
			putchar('}');
		} else {
			printf("  %-7s %-5s %s %-20s %-12s %s",
			       in ? "ingress" : "egress",
			       e->val.verdict == NM_POLICY_DENY ? "deny" : "allow",
			       in ? "from" : "to  ",
			       e->key.identity == NM_ID_ANY ?
				       "any" :
				       id_str(e->key.identity, ids, sizeof(ids)),
			       port_str(&e->key, ps, sizeof(ps)), l ? l : "");
			if (r)
				printf("  (%s/%s %s[%zu])", r->ns, r->name,
				       rule_kind_name(r->kind), r->index);
			else
				printf("  (rule %u, not in the applied policies)",
				       e->val.rule_id);
			putchar('\n');
		}
		free(l);
	}
	if (opt_json) {
		printf("]}\n");
		goto out;
	}
	for (d = NM_POLICY_INGRESS; d <= NM_POLICY_EGRESS; d++) {
		__u8 f = d == NM_POLICY_INGRESS ? NM_EP_F_INGRESS_POLICY :
						  NM_EP_F_EGRESS_POLICY;

		printf("  %-7s %s\n", d == NM_POLICY_INGRESS ? "ingress" : "egress",
		       ev.flags & f ? "default deny (selected by a policy)" :
				      "default allow (no policy selects it)");
	}
out:
	free(ents);
	nm_compiled_free(&c);
	nm_policy_set_free(&set);
	node_close(&n);
	return err;
}

/* ---- monitor ------------------------------------------------------------ */

struct monitor_ctx {
	struct node_ctx *n;
	struct nm_ep_rec *eps;
	size_t n_eps;
	long long mono_to_real_ns; /* realtime - monotonic, at start */
	unsigned long count, max;
	bool draining; /* skipping what was queued before we started */
};

static const char *verdict_name(__u8 v)
{
	return v == NM_POLICY_ALLOW ? "allow" : v == NM_POLICY_DENY ? "deny" : "-";
}

static const struct nm_ep_rec *ep_by_id(const struct monitor_ctx *m, __u32 id)
{
	size_t i;

	for (i = 0; id && i < m->n_eps; i++)
		if (m->eps[i].val.endpoint_id == id)
			return &m->eps[i];
	return NULL;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct monitor_ctx *m = ctx;
	const struct nm_event *e = data;
	const struct nm_ep_rec *ep;
	char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN], ts[64], epip[INET_ADDRSTRLEN];
	char sid[48], did[48], rbuf[16];
	char *sl, *dl;
	const char *rn, *dir;
	long long real;
	time_t sec;
	struct tm tm;

	if (size < sizeof(*e) || m->draining)
		return 0;
	real = (long long)e->ts_ns + m->mono_to_real_ns;
	sec = (time_t)(real / 1000000000LL);
	if (!localtime_r(&sec, &tm) || !strftime(ts, sizeof(ts), "%H:%M:%S", &tm))
		strcpy(ts, "?");
	rn = reason_name(e->reason);
	if (!rn) {
		snprintf(rbuf, sizeof(rbuf), "reason_%u", e->reason);
		rn = rbuf;
	}
	dir = e->dir == NM_DIR_TO_POD ? "to-pod" : "from-pod";
	ep = ep_by_id(m, e->endpoint_id);
	sl = id_labels(&m->n->ids, e->src_identity);
	dl = id_labels(&m->n->ids, e->dst_identity);
	if (opt_json) {
		printf("{\"time\":\"%s.%03lld\",\"ts_ns\":%llu,\"type\":\"%s\",\"direction\":\"%s\",\"proto\":\"%s\",\"saddr\":\"%s\",\"sport\":%u,\"daddr\":\"%s\",\"dport\":%u,\"endpoint_id\":%u,",
		       ts, (real / 1000000LL) % 1000,
		       (unsigned long long)e->ts_ns,
		       e->type == NM_EVENT_DROP ? "drop" : "policy", dir,
		       nm_proto_name(e->proto), ip_str(e->saddr, s),
		       ntohs(e->sport), ip_str(e->daddr, d), ntohs(e->dport),
		       e->endpoint_id);
		if (ep)
			printf("\"endpoint\":\"%s\",", ip_str(ep->addr, epip));
		printf("\"src_identity\":%llu,\"src_labels\":",
		       (unsigned long long)e->src_identity);
		json_labels(&m->n->ids, e->src_identity);
		printf(",\"dst_identity\":%llu,\"dst_labels\":",
		       (unsigned long long)e->dst_identity);
		json_labels(&m->n->ids, e->dst_identity);
		printf(",\"verdict\":\"%s\",\"reason\":\"%s\",\"rule_id\":%u}\n",
		       verdict_name(e->verdict), rn, e->rule_id);
	} else {
		printf("%s.%03lld %-8s %s %s:%u -> %s:%u endpoint %u%s%s src %s [%s] dst %s [%s] %s%s %s",
		       ts, (real / 1000000LL) % 1000, dir,
		       nm_proto_name(e->proto), ip_str(e->saddr, s),
		       ntohs(e->sport), ip_str(e->daddr, d), ntohs(e->dport),
		       e->endpoint_id, ep ? " " : "",
		       ep ? ip_str(ep->addr, epip) : "",
		       id_str(e->src_identity, sid, sizeof(sid)), sl ?: "?",
		       id_str(e->dst_identity, did, sizeof(did)), dl ?: "?",
		       e->type == NM_EVENT_DROP ? "DROP " : "",
		       verdict_name(e->verdict), rn);
		if (e->rule_id)
			printf(" rule %u", e->rule_id);
		putchar('\n');
	}
	fflush(stdout);
	free(sl);
	free(dl);
	m->count++;
	/* A negative return stops ring_buffer__poll: we have what was asked. */
	return m->max && m->count >= m->max ? -ECANCELED : 0;
}

static long long clock_ns(clockid_t id)
{
	struct timespec t;

	if (clock_gettime(id, &t))
		return 0;
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static volatile sig_atomic_t monitor_stop;

static void on_signal(int sig)
{
	(void)sig;
	monitor_stop = 1;
}

static int cmd_monitor(int argc, char **argv)
{
	struct monitor_ctx m = {};
	struct ring_buffer *rb = NULL;
	struct node_ctx n;
	const char *count_s = NULL, *timeout_s = NULL;
	__u32 count = 0, timeout = 0;
	long long deadline = 0, left;
	int a, err, ret;

	memset(&n, 0, sizeof(n));
	for (a = 0; a < argc; a++) {
		if ((ret = match_opt(argc, argv, &a, "--count", &count_s)) ||
		    (ret = match_opt(argc, argv, &a, "--timeout", &timeout_s))) {
			if (ret < 0)
				return ret;
			continue;
		}
		pr_warn("unexpected argument '%s' for monitor", argv[a]);
		return -EINVAL;
	}
	if ((count_s && parse_u32(count_s, "--count", &count)) ||
	    (timeout_s && parse_u32(timeout_s, "--timeout", &timeout)))
		return -EINVAL;
	err = node_open(&n, false);
	if (err)
		goto out;
	err = nm_endpoints_read(&n.maps, &m.eps, &m.n_eps);
	if (err)
		goto out;
	m.n = &n;
	m.max = count;
	m.mono_to_real_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
	rb = ring_buffer__new(n.maps.events, on_event, &m, NULL);
	if (!rb) {
		err = -errno;
		pr_warn("failed to open ring buffer %s on %s: %s", NM_MAP_EVENTS,
			n.maps.pin_root, strerror(-err));
		goto out;
	}
	/*
	 * The ring keeps what no reader consumed, from before we started:
	 * skip it, only what happens from now on is printed.
	 */
	m.draining = true;
	ret = ring_buffer__consume(rb);
	m.draining = false;
	if (ret < 0) {
		err = ret;
		pr_warn("failed to read ring buffer %s on %s: %s", NM_MAP_EVENTS,
			n.maps.pin_root, strerror(-err));
		goto out;
	}
	if (signal(SIGINT, on_signal) == SIG_ERR ||
	    signal(SIGTERM, on_signal) == SIG_ERR) {
		err = -errno;
		pr_warn("failed to install signal handlers: %s", strerror(-err));
		goto out;
	}
	if (timeout)
		deadline = clock_ns(CLOCK_MONOTONIC) + (long long)timeout * 1000000000LL;
	/* On stderr in both formats: scripts wait for it before traffic. */
	fprintf(stderr, "monitoring %s/%s%s\n", n.maps.pin_root, NM_MAP_EVENTS,
		count || timeout ? "" : " (Ctrl-C to stop)");
	while (!monitor_stop) {
		int ms = 200;

		if (deadline) {
			left = (deadline - clock_ns(CLOCK_MONOTONIC)) / 1000000LL;
			if (left <= 0)
				break;
			if (left < ms)
				ms = (int)left;
		}
		ret = ring_buffer__poll(rb, ms);
		if (ret == -ECANCELED || (m.max && m.count >= m.max))
			break;
		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			err = ret;
			pr_warn("failed to read ring buffer %s on %s: %s",
				NM_MAP_EVENTS, n.maps.pin_root, strerror(-err));
			break;
		}
		/* Endpoints come and go while we watch: refresh now and then. */
		if (!ret) {
			free(m.eps);
			m.eps = NULL;
			m.n_eps = 0;
			err = nm_endpoints_read(&n.maps, &m.eps, &m.n_eps);
			if (err)
				break;
			nm_idstore_free(&n.ids);
			n.ids_loaded = false;
			err = nm_idstore_load(&n.st, &n.ids);
			if (err)
				break;
			n.ids_loaded = true;
		}
	}
out:
	ring_buffer__free(rb);
	free(m.eps);
	node_close(&n);
	return err;
}

static int dump_ipcache(struct nm_maps *maps)
{
	struct nm_ipcache_key key = {}, next = {};
	struct nm_ipcache_val val;
	char ip[INET_ADDRSTRLEN], tun[INET_ADDRSTRLEN];
	bool first = true;

	if (opt_json)
		putchar('[');
	while (!bpf_map_get_next_key(maps->ipcache, first ? NULL : &key, &next)) {
		key = next;
		first = false;
		if (bpf_map_lookup_elem(maps->ipcache, &key, &val))
			continue;
		if (opt_json)
			printf("%s{\"prefix\":\"%s/%u\",\"identity\":%llu,\"cluster_id\":%u,\"local_id\":%u,\"tunnel_endpoint\":\"%s\",\"local\":%s,\"cidr\":%s}",
			       first ? "" : ",", ip_str(key.addr, ip), key.prefixlen,
			       (unsigned long long)val.identity,
			       nm_identity_cluster(val.identity),
			       nm_identity_local(val.identity),
			       ip_str(val.tunnel_endpoint, tun),
			       val.flags & NM_IPC_F_LOCAL ? "true" : "false",
			       val.flags & NM_IPC_F_CIDR ? "true" : "false");
		else
			printf("%s/%-3u identity %llu (cluster %u local %u) tunnel %s%s%s\n",
			       ip_str(key.addr, ip), key.prefixlen,
			       (unsigned long long)val.identity,
			       nm_identity_cluster(val.identity),
			       nm_identity_local(val.identity),
			       ip_str(val.tunnel_endpoint, tun),
			       val.flags & NM_IPC_F_LOCAL ? " local" : "",
			       val.flags & NM_IPC_F_CIDR ? " cidr" : "");
	}
	if (opt_json)
		printf("]\n");
	if (errno != ENOENT) {
		pr_warn("failed to iterate map %s on %s: %s", NM_MAP_IPCACHE,
			maps->pin_root, strerror(errno));
		return -errno;
	}
	return 0;
}

static int dump_endpoints(struct nm_maps *maps)
{
	struct nm_ep_rec *eps = NULL;
	char ip[INET_ADDRSTRLEN], mac[18];
	size_t n = 0, i;
	int err;

	err = nm_endpoints_read(maps, &eps, &n);
	if (err)
		return err;
	if (opt_json)
		putchar('[');
	for (i = 0; i < n; i++) {
		const struct nm_endpoint_val *v = &eps[i].val;

		if (opt_json)
			printf("%s{\"addr\":\"%s\",\"identity\":%llu,\"ifindex\":%u,\"endpoint_id\":%u,\"mac\":\"%s\",\"flags\":%u}",
			       i ? "," : "", ip_str(eps[i].addr, ip),
			       (unsigned long long)v->identity, v->ifindex,
			       v->endpoint_id, mac_str(v->mac, mac), v->flags);
		else
			printf("%-15s endpoint_id %-5u identity %llu (cluster %u local %u) ifindex %u mac %s policy %s\n",
			       ip_str(eps[i].addr, ip), v->endpoint_id,
			       (unsigned long long)v->identity,
			       nm_identity_cluster(v->identity),
			       nm_identity_local(v->identity), v->ifindex,
			       mac_str(v->mac, mac), enforce_str(v->flags));
	}
	if (opt_json)
		printf("]\n");
	free(eps);
	return 0;
}

static int dump_policy(struct nm_maps *maps)
{
	struct nm_policy_key key = {}, next = {};
	struct nm_policy_val val;
	char ps[24];
	bool first = true;

	if (opt_json)
		putchar('[');
	while (!bpf_map_get_next_key(maps->policy, first ? NULL : &key, &next)) {
		key = next;
		first = false;
		if (bpf_map_lookup_elem(maps->policy, &key, &val))
			continue;
		if (opt_json)
			printf("%s{\"endpoint_id\":%u,\"dir\":\"%s\",\"identity\":%llu,\"proto\":%u,\"dport\":%u,\"verdict\":\"%s\",\"rule_id\":%u}",
			       first ? "" : ",", key.endpoint_id,
			       key.dir == NM_POLICY_INGRESS ? "ingress" : "egress",
			       (unsigned long long)key.identity, key.proto,
			       ntohs(key.dport), verdict_name(val.verdict),
			       val.rule_id);
		else
			printf("endpoint %-5u %-7s identity %-12llu %-10s %-5s rule %u\n",
			       key.endpoint_id,
			       key.dir == NM_POLICY_INGRESS ? "ingress" : "egress",
			       (unsigned long long)key.identity,
			       port_str(&key, ps, sizeof(ps)),
			       verdict_name(val.verdict), val.rule_id);
	}
	if (opt_json)
		printf("]\n");
	if (errno != ENOENT) {
		pr_warn("failed to iterate map %s on %s: %s", NM_MAP_POLICY,
			maps->pin_root, strerror(errno));
		return -errno;
	}
	return 0;
}

static int dump_events(struct nm_maps *maps)
{
	(void)maps;
	pr_warn("failed to dump map %s: a ring buffer is read as it fills; use 'nodemeshctl monitor'",
		NM_MAP_EVENTS);
	return -EINVAL;
}

static int cmd_ipcache_list(int argc, char **argv)
{
	struct nm_maps maps;
	int err;

	if (argc) {
		pr_warn("unexpected argument '%s' for ipcache list", argv[0]);
		return -EINVAL;
	}
	err = nm_maps_open(opt_pin_root, &maps);
	if (err)
		return err;
	err = dump_ipcache(&maps);
	nm_maps_close(&maps);
	return err;
}

static int cmd_map_dump(int argc, char **argv)
{
	static const dump_fn fns[N_MAPS] = {
		dump_services, dump_backends, dump_maglev, dump_revnat,
		dump_ct,       dump_metrics,  dump_config, dump_ipcache,
		dump_endpoints, dump_policy,  dump_events,
	};
	struct nm_maps maps;
	size_t i;
	int err;

	if (argc != 1 || argv[0][0] == '-') {
		pr_warn("map dump takes exactly one map name");
		return -EINVAL;
	}
	for (i = 0; i < N_MAPS; i++)
		if (!strcmp(argv[0], map_names[i].alias) ||
		    !strcmp(argv[0], map_names[i].name))
			break;
	if (i == N_MAPS) {
		pr_warn("unknown map '%s': expected services, backends, maglev, revnat, ct, metrics, config, ipcache, endpoints, policy or an nm_*_v1 name",
			argv[0]);
		return -EINVAL;
	}
	err = nm_maps_open(opt_pin_root, &maps);
	if (err)
		return err;
	err = fns[i](&maps);
	nm_maps_close(&maps);
	return err;
}

static const struct cmd cmds[] = {
	{ NULL, "attach", cmd_attach,
	  "IFACE... [--maglev-m M] [--maglev-tables N] [--ct-max N]",
	  "Load the datapath (maps pinned under the pin root, created on first\n"
	  "load and reused after) and attach nm_from_pod at tc ingress of each\n"
	  "IFACE, atomically replacing an earlier nodemesh program there.\n"
	  "Sizes default to the pinned maps' sizes, or on a first load to\n"
	  "M 16381, 512 tables and 262144 conntrack entries; a size that\n"
	  "differs from the pinned maps is refused." },
	{ NULL, "detach", cmd_detach, "IFACE...",
	  "Remove the nodemesh filter from tc ingress of each IFACE. Maps stay\n"
	  "pinned, the clsact qdisc stays. Not attached is not an error." },
	{ "service", "upsert", cmd_service_upsert,
	  "VIP:PORT/PROTO [BACKEND...] [--algo maglev|random]",
	  "Create or update a service. BACKEND is ADDR:PORT[,weight=W][,state=S]\n"
	  "with W 1..65535 (default 1) and S active|terminating|quarantined\n"
	  "(default active). No backend: the service drops new flows. Backends\n"
	  "that stay keep their id, so established flows keep their backend." },
	{ "service", "delete", cmd_service_delete, "VIP:PORT/PROTO",
	  "Delete a service, its backends and its rev-NAT entry." },
	{ "service", "list", cmd_service_list, "",
	  "List services with their backends." },
	{ "endpoint", "add", cmd_endpoint_add,
	  "IP --iface IFACE --namespace NS [--labels k=v,k2=v2] [--name POD] [--mac MAC]",
	  "Register a pod on this node: its identity comes from its labels plus\n"
	  "nodemesh.io/namespace=NS and nodemesh.io/cluster=<this cluster>\n"
	  "(same labels, same identity on every node of the cluster). Writes\n"
	  "nm_endpoints_v1[IP] (identity, ifindex of IFACE, lowest free endpoint\n"
	  "id, MAC, enforcement flags) and an ipcache /32 entry, and recompiles\n"
	  "policy. Re-adding an IP updates it and keeps its endpoint id." },
	{ "endpoint", "delete", cmd_endpoint_delete, "IP",
	  "Remove a pod: its ipcache entry, its endpoint entry and its policy\n"
	  "entries. Its identity stays known (other pods may carry it)." },
	{ "endpoint", "list", cmd_endpoint_list, "",
	  "List endpoints: IP, endpoint id, identity (cluster/local), policy\n"
	  "enforcement (ingress/egress/none) and labels." },
	{ "identity", "list", cmd_identity_list, "",
	  "List the identities this node knows: reserved, label and CIDR\n"
	  "identities with cluster, local id and labels." },
	{ "identity", "add", cmd_identity_add, "--cluster-id N --labels k=v,...",
	  "Add the identity of a label set in cluster N (a remote pod's, until\n"
	  "the kvstore brings them). The labels must include\n"
	  "nodemesh.io/namespace and nodemesh.io/cluster. Recompiles policy." },
	{ "ipcache", "upsert", cmd_ipcache_upsert,
	  "PREFIX --identity ID [--tunnel NODE_IP]",
	  "Map an address or prefix (A.B.C.D[/LEN]) to a packed identity\n"
	  "(cluster << 24 | local), e.g. a remote pod's." },
	{ "ipcache", "list", cmd_ipcache_list, "", "Same as 'map dump ipcache'." },
	{ "policy", "validate", cmd_policy_validate, "-f FILE",
	  "Parse the MeshNetworkPolicy manifests of FILE (all its documents)\n"
	  "without applying them. Prints 'FILE: N policies valid', or\n"
	  "'FILE:LINE: reason' and exits 1." },
	{ "policy", "apply", cmd_policy_apply, "-f FILE",
	  "Validate FILE, store its manifests (state dir policies/NS/NAME.yaml),\n"
	  "replacing policies of the same namespace/name, and recompile. Any\n"
	  "error in FILE applies nothing. Only policy entries that differ are\n"
	  "written, ordered so no flow allowed before and after is denied in\n"
	  "between (and the reverse)." },
	{ "policy", "delete", cmd_policy_delete, "-f FILE | NAMESPACE/NAME",
	  "Delete the policies named in FILE, or one by name, and recompile.\n"
	  "A name that is not applied is an error and deletes nothing." },
	{ "policy", "list", cmd_policy_list, "",
	  "List applied policies: endpoints they select here and rule counts." },
	{ "policy", "get", cmd_policy_get, "ENDPOINT_IP",
	  "The effective rules of an endpoint: every nm_policy_v1 entry of it\n"
	  "decoded (direction, peer identity and labels or any, protocol/port\n"
	  "or any, allow/deny, and the policy rule it came from), and whether\n"
	  "each direction is default deny." },
	{ NULL, "monitor", cmd_monitor, "[--count N] [--timeout S]",
	  "Print policy verdict and drop events from nm_events_v1 as they\n"
	  "happen: time, direction, 5-tuple, endpoint, source and destination\n"
	  "identities with labels, verdict, reason. Stops after N events or S\n"
	  "seconds when given; -o json prints one object per line." },
	{ "map", "list", cmd_map_list, "",
	  "List the pinned maps with type, sizes and entry counts." },
	{ "map", "dump", cmd_map_dump, "NAME",
	  "Dump a map decoded. NAME: services, backends, maglev, revnat, ct,\n"
	  "metrics, config, ipcache, endpoints, policy, or the pin name\n"
	  "(nm_services_v1, ...). maglev is\n"
	  "summarised per table; metrics are summed over CPUs, nonzero only." },
};

static const size_t n_cmds = sizeof(cmds) / sizeof(cmds[0]);

/* Take global options out of argv wherever they are; returns new argc. */
static int parse_global(int argc, char **argv, int *verbose)
{
	int i, n = 1, ret;

	for (i = 1; i < argc; i++) {
		const char *v;

		if (!strcmp(argv[i], "--")) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		ret = match_opt(argc, argv, &i, "--pin-root", &v);
		if (ret > 0) {
			opt_pin_root = v;
			continue;
		}
		if (!ret)
			ret = match_opt(argc, argv, &i, "--state-dir", &v);
		if (ret > 0) {
			opt_state_dir = v;
			continue;
		}
		/*
		 * Before the command only: 'identity add --cluster-id N' names
		 * another cluster.
		 */
		if (!ret && n == 1)
			ret = match_opt(argc, argv, &i, "--cluster-id", &v);
		if (ret > 0) {
			opt_cluster_id = v;
			continue;
		}
		if (!ret && n == 1)
			ret = match_opt(argc, argv, &i, "--cluster", &v);
		if (ret > 0) {
			opt_cluster = v;
			continue;
		}
		if (!ret)
			ret = match_opt(argc, argv, &i, "--output", &v);
		if (!ret)
			ret = match_opt(argc, argv, &i, "-o", &v);
		if (ret < 0)
			return ret;
		if (ret > 0) {
			if (!strcmp(v, "json")) {
				opt_json = true;
			} else if (!strcmp(v, "text")) {
				opt_json = false;
			} else {
				pr_warn("bad output format '%s': must be json or text", v);
				return -EINVAL;
			}
			continue;
		}
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			(*verbose)++;
			continue;
		}
		argv[n++] = argv[i];
	}
	argv[n] = NULL;
	return n;
}

int main(int argc, char **argv)
{
	const struct cmd *c = NULL;
	int verbose = 0, words, err;
	size_t i;

	nm_log_set_ident("nodemeshctl");
	nm_log_init_libbpf();
	argc = parse_global(argc, argv, &verbose);
	if (argc < 0)
		return 1;
	nm_log_set_level(verbose >= 2 ? NM_LOG_DEBUG :
			 verbose	? NM_LOG_INFO :
					  NM_LOG_WARN);
	if (argc < 2) {
		print_usage(stderr, NULL);
		return 1;
	}
	if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
		print_usage(stdout, NULL);
		return 0;
	}
	for (i = 0; i < n_cmds; i++) {
		if (cmds[i].group) {
			if (strcmp(cmds[i].group, argv[1]))
				continue;
			if (argc < 3 || is_help(argv[2])) {
				print_usage(argc < 3 ? stderr : stdout, argv[1]);
				return argc < 3;
			}
			if (strcmp(cmds[i].name, argv[2]))
				continue;
			words = 3;
		} else {
			if (strcmp(cmds[i].name, argv[1]))
				continue;
			words = 2;
		}
		c = &cmds[i];
		break;
	}
	if (!c) {
		bool group = false;

		for (i = 0; i < n_cmds; i++)
			group |= cmds[i].group && !strcmp(cmds[i].group, argv[1]);
		if (group)
			pr_warn("unknown command '%s %s'", argv[1], argv[2]);
		else
			pr_warn("unknown command '%s'", argv[1]);
		print_usage(stderr, group ? argv[1] : NULL);
		return 1;
	}
	for (i = (size_t)words; i < (size_t)argc; i++) {
		if (is_help(argv[i])) {
			print_cmd_usage(stdout, c);
			return 0;
		}
	}
	err = c->fn(argc - words, argv + words);
	fflush(stdout);
	return err ? 1 : 0;
}
