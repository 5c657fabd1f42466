// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl: load/attach the datapath, program services, inspect maps.
 * Thin front end over the agent library; output for people by default,
 * -o json for scripts. Exit status 0 on success, 1 on any error.
 */
#include <errno.h>
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

#include "agent/loader.h"
#include "agent/log.h"
#include "agent/maglev.h"
#include "agent/parse.h"
#include "agent/svc.h"
#include "maps/backend.h"
#include "maps/config.h"
#include "maps/ct.h"
#include "maps/maglev.h"
#include "maps/metrics.h"
#include "maps/revnat.h"
#include "maps/service.h"

static const char *opt_pin_root;
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

	fprintf(f, "usage: nodemeshctl [--pin-root DIR] [-o json] [-v] COMMAND ...\n\ncommands:\n");
	for (i = 0; i < n_cmds; i++) {
		if (group && (!cmds[i].group || strcmp(cmds[i].group, group)))
			continue;
		fprintf(f, "  %s%s%s %s\n", cmds[i].group ?: "",
			cmds[i].group ? " " : "", cmds[i].name, cmds[i].args);
	}
	fprintf(f, "\nglobal options:\n"
		   "  --pin-root DIR  bpffs directory of the pinned maps (env NODEMESH_PIN_ROOT, default %s)\n"
		   "  -o json         machine-readable output\n"
		   "  -v              more log output (repeat for debug)\n"
		   "\n'nodemeshctl COMMAND --help' describes a command.\n",
		   NM_PIN_ROOT_DEFAULT);
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
		__u32 prog_id = 0;

		err = nm_tc_attach(nm_datapath_prog_fd(dp), ifaces[i]);
		if (!err)
			err = nm_tc_query(ifaces[i], &prog_id);
		if (err)
			break;
		if (opt_json) {
			printf("%s{\"ifname\":", i ? "," : "");
			json_str(ifaces[i]);
			printf(",\"ifindex\":%u,\"prog_id\":%u}",
			       if_nametoindex(ifaces[i]), prog_id);
		} else {
			printf("attached nm_from_pod (prog id %u) to %s tc ingress, maps in %s\n",
			       prog_id, ifaces[i], dp->pin_root);
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
			printf(was ? "detached nm_from_pod from %s tc ingress\n" :
				     "nothing attached on %s tc ingress\n",
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
	{ "config", NM_MAP_CONFIG },
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
		[NM_DROP_TRUNC_ETH] = "drop_trunc_eth",
		[NM_DROP_TRUNC_IPV4] = "drop_trunc_ipv4",
		[NM_DROP_BAD_IPV4] = "drop_bad_ipv4",
		[NM_DROP_TRUNC_L4] = "drop_trunc_l4",
		[NM_DROP_NO_BACKEND] = "drop_no_backend",
		[NM_DROP_NAT_FAILED] = "drop_nat_failed",
		[NM_DROP_CT_FULL] = "drop_ct_full",
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

static int cmd_map_dump(int argc, char **argv)
{
	static const dump_fn fns[N_MAPS] = {
		dump_services, dump_backends, dump_maglev, dump_revnat,
		dump_ct,       dump_metrics,  dump_config,
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
		pr_warn("unknown map '%s': expected services, backends, maglev, revnat, ct, metrics, config or an nm_*_v1 name",
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
	{ "map", "list", cmd_map_list, "",
	  "List the pinned maps with type, sizes and entry counts." },
	{ "map", "dump", cmd_map_dump, "NAME",
	  "Dump a map decoded. NAME: services, backends, maglev, revnat, ct,\n"
	  "metrics, config, or the pin name (nm_services_v1, ...). maglev is\n"
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
