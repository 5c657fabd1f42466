// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl map and ipcache: list the pinned maps, dump one decoded,
 * write ipcache entries.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/ctl/ctl.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "maps/config.h"
#include "maps/ct.h"
#include "maps/events.h"
#include "maps/identity.h"
#include "maps/ipcache.h"
#include "maps/maglev.h"
#include "maps/metrics.h"
#include "maps/node.h"

static const struct {
	const char *alias;
	const char *name;
} map_names[] = {
	{ "services", NM_MAP_SERVICES }, { "backends", NM_MAP_BACKENDS },
	{ "maglev", NM_MAP_MAGLEV },	 { "revnat", NM_MAP_REVNAT },
	{ "ct", NM_MAP_CT },		 { "metrics", NM_MAP_METRICS },
	{ "config", NM_MAP_CONFIG },	 { "ipcache", NM_MAP_IPCACHE },
	{ "endpoints", NM_MAP_ENDPOINTS }, { "policy", NM_MAP_POLICY },
	{ "events", NM_MAP_EVENTS },	 { "nodes", NM_MAP_NODES },
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

static int count_one(const void *key, const void *val, size_t i, void *ctx)
{
	(void)key;
	(void)val;
	(void)i;
	++*(__u32 *)ctx;
	return 0;
}

/* Entries present: walked for hashes, max_entries for arrays. */
static int count_entries(int fd, const char *name, const char *root,
			 const struct bpf_map_info *info, __u32 *cnt)
{
	if (info->type == BPF_MAP_TYPE_ARRAY ||
	    info->type == BPF_MAP_TYPE_PERCPU_ARRAY) {
		*cnt = info->max_entries;
		return 0;
	}
	*cnt = 0;
	/* A ring buffer has no keys; its size is max_entries bytes. */
	if (info->type == BPF_MAP_TYPE_RINGBUF)
		return 0;
	return ctl_map_walk(fd, name, root, info->key_size, 0, count_one, cnt);
}

int cmd_map_list(int argc, char **argv)
{
	const char *root = nm_pin_root(opt_pin_root);
	char path[PATH_MAX];
	size_t i;
	int err = 0;

	err = ctl_args(argc, argv, "map list", NULL, NULL);
	if (err)
		return err;
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
			err = count_entries(fd, map_names[i].name, root, &info,
					    &cnt);
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

static void print_svc_rec(const struct nm_svc_info *s, size_t i)
{
	char fes[NM_FRONTEND_STRLEN];

	nm_frontend_str(&s->fe, fes, sizeof(fes));
	if (opt_json)
		printf("%s{\"frontend\":\"%s\",\"svc_id\":%u,\"table_id\":%u,\"backend_count\":%u,\"algo\":\"%s\",\"flags\":%u}",
		       ctl_sep(i), fes, s->val.svc_id, s->val.table_id,
		       s->val.backend_count, nm_lb_algo_name(s->val.algo),
		       s->val.flags);
	else
		printf("%-24s svc_id %u table_id %u backend_count %u algo %s flags 0x%x\n",
		       fes, s->val.svc_id, s->val.table_id,
		       s->val.backend_count, nm_lb_algo_name(s->val.algo),
		       s->val.flags);
}

static void print_backend_rec(const struct nm_svc_backend *b, size_t i)
{
	char ip[INET_ADDRSTRLEN];

	if (opt_json)
		printf("%s{\"id\":%u,\"addr\":\"%s\",\"port\":%u,\"proto\":\"%s\",\"state\":\"%s\",\"svc_id\":%u,\"cluster_id\":%u,\"weight\":%u}",
		       ctl_sep(i), b->id, ip_str(b->val.addr, ip),
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

/* The service entries (@backends false) or the backend entries. */
static int dump_svc_list(struct nm_maps *maps, bool backends)
{
	struct nm_svc_list list;
	size_t i;
	int err;

	err = nm_svc_list(maps, &list);
	if (err)
		return err;
	ctl_list_begin(NULL, 0);
	for (i = 0; i < (backends ? list.n_backends : list.n); i++) {
		if (backends)
			print_backend_rec(&list.backends[i], i);
		else
			print_svc_rec(&list.svcs[i], i);
	}
	ctl_list_end();
	nm_svc_list_free(&list);
	return 0;
}

static int dump_services(struct nm_maps *maps)
{
	return dump_svc_list(maps, false);
}

static int dump_backends(struct nm_maps *maps)
{
	return dump_svc_list(maps, true);
}

static int print_revnat(const void *k, const void *v, size_t i, void *ctx)
{
	const struct nm_revnat_key *key = k;
	const struct nm_revnat_val *val = v;
	char ip[INET_ADDRSTRLEN];

	(void)ctx;
	if (opt_json)
		printf("%s{\"rev_nat_id\":%u,\"vip\":\"%s\",\"port\":%u}",
		       ctl_sep(i), key->rev_nat_id, ip_str(val->vip, ip),
		       ntohs(val->port));
	else
		printf("rev_nat_id %-5u -> %s:%u\n", key->rev_nat_id,
		       ip_str(val->vip, ip), ntohs(val->port));
	return 0;
}

static int dump_revnat(struct nm_maps *maps)
{
	return ctl_map_dump(maps, maps->revnat, NM_MAP_REVNAT,
			    sizeof(struct nm_revnat_key),
			    sizeof(struct nm_revnat_val), print_revnat, NULL);
}

/* @ctx: now, CLOCK_MONOTONIC ns (bpf_ktime_get_ns()'s clock). */
static int print_ct(const void *k, const void *v, size_t i, void *ctx)
{
	const struct nm_ct_key *key = k;
	const struct nm_ct_val *val = v;
	__u64 now = *(const __u64 *)ctx;
	char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
	long long left, age;

	left = ((long long)val->expires_ns - (long long)now) / 1000000000LL;
	age = ((long long)now - (long long)val->created_ns) / 1000000000LL;
	if (opt_json)
		printf("%s{\"proto\":\"%s\",\"saddr\":\"%s\",\"sport\":%u,\"daddr\":\"%s\",\"dport\":%u,\"dir\":\"%s\",\"backend_id\":%u,\"rev_nat_id\":%u,\"expires_in_s\":%lld,\"age_s\":%lld,\"closing\":%s}",
		       ctl_sep(i), nm_proto_name(key->proto),
		       ip_str(key->saddr, s), ntohs(key->sport),
		       ip_str(key->daddr, d), ntohs(key->dport),
		       key->dir == NM_CT_REPLY ? "reply" : "forward",
		       val->backend_id, val->rev_nat_id, left, age,
		       val->flags & NM_CT_F_CLOSING ? "true" : "false");
	else
		printf("%s %s:%u -> %s:%u %s backend %u rev_nat %u expires %llds age %llds%s\n",
		       nm_proto_name(key->proto), ip_str(key->saddr, s),
		       ntohs(key->sport), ip_str(key->daddr, d),
		       ntohs(key->dport),
		       key->dir == NM_CT_REPLY ? "reply" : "forward",
		       val->backend_id, val->rev_nat_id, left, age,
		       val->flags & NM_CT_F_CLOSING ? " closing" : "");
	return 0;
}

static int dump_ct(struct nm_maps *maps)
{
	struct timespec ts;
	__u64 now;

	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		return -errno;
	now = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
	return ctl_map_dump(maps, maps->ct, NM_MAP_CT, sizeof(struct nm_ct_key),
			    sizeof(struct nm_ct_val), print_ct, &now);
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
	ctl_list_begin(NULL, 0);
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
			       dir_name(dir), rn, NM_REASON_IS_DROP(r) ? "true" : "false", pk, by);
		else
			printf("%-12s %-18s %s packets %llu bytes %llu\n",
			       dir_name(dir), rn,
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
		printf("{\"maglev_m\":%u,\"maglev_tables\":%u,\"abi_version\":%u,\"services_max\":%u,\"backends_max\":%u,\"ct_max\":%u}\n",
		       maps->cfg.maglev_m, maps->cfg.maglev_tables,
		       maps->cfg.abi_version, maps->cfg.services_max,
		       maps->cfg.backends_max, maps->cfg.ct_max);
	else
		printf("maglev_m %u\nmaglev_tables %u\nabi_version %u\nservices_max %u\nbackends_max %u\nct_max %u\n",
		       maps->cfg.maglev_m, maps->cfg.maglev_tables,
		       maps->cfg.abi_version, maps->cfg.services_max,
		       maps->cfg.backends_max, maps->cfg.ct_max);
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
		err = nm_svc_maglev_read(maps, t, keys, tab);
		if (err) {
			pr_warn("failed to read map %s on %s: %s",
				NM_MAP_MAGLEV, maps->pin_root, strerror(-err));
			goto out;
		}
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


static int print_ipcache(const void *k, const void *v, size_t i, void *ctx)
{
	const struct nm_ipcache_key *key = k;
	const struct nm_ipcache_val *val = v;
	char ip[INET_ADDRSTRLEN], tun[INET_ADDRSTRLEN];

	(void)ctx;
	if (opt_json)
		printf("%s{\"prefix\":\"%s/%u\",\"identity\":%llu,\"cluster_id\":%u,\"local_id\":%u,\"tunnel_endpoint\":\"%s\",\"local\":%s,\"cidr\":%s}",
		       ctl_sep(i), ip_str(key->addr, ip), key->prefixlen,
		       (unsigned long long)val->identity,
		       nm_identity_cluster(val->identity),
		       nm_identity_local(val->identity),
		       ip_str(val->tunnel_endpoint, tun),
		       val->flags & NM_IPC_F_LOCAL ? "true" : "false",
		       val->flags & NM_IPC_F_CIDR ? "true" : "false");
	else
		printf("%s/%-3u identity %llu (cluster %u local %u) tunnel %s%s%s\n",
		       ip_str(key->addr, ip), key->prefixlen,
		       (unsigned long long)val->identity,
		       nm_identity_cluster(val->identity),
		       nm_identity_local(val->identity),
		       ip_str(val->tunnel_endpoint, tun),
		       val->flags & NM_IPC_F_LOCAL ? " local" : "",
		       val->flags & NM_IPC_F_CIDR ? " cidr" : "");
	return 0;
}

static int dump_ipcache(struct nm_maps *maps)
{
	return ctl_map_dump(maps, maps->ipcache, NM_MAP_IPCACHE,
			    sizeof(struct nm_ipcache_key),
			    sizeof(struct nm_ipcache_val), print_ipcache, NULL);
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
	ctl_list_begin(NULL, 0);
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
	ctl_list_end();
	free(eps);
	return 0;
}

static int print_policy(const void *k, const void *v, size_t i, void *ctx)
{
	const struct nm_policy_key *key = k;
	const struct nm_policy_val *val = v;
	char ps[24];

	(void)ctx;
	if (opt_json)
		printf("%s{\"endpoint_id\":%u,\"dir\":\"%s\",\"identity\":%llu,\"proto\":%u,\"dport\":%u,\"verdict\":\"%s\",\"rule_id\":%u}",
		       ctl_sep(i), key->endpoint_id,
		       key->dir == NM_POLICY_INGRESS ? "ingress" : "egress",
		       (unsigned long long)key->identity, key->proto,
		       ntohs(key->dport), verdict_name(val->verdict),
		       val->rule_id);
	else
		printf("endpoint %-5u %-7s identity %-12llu %-10s %-5s rule %u\n",
		       key->endpoint_id,
		       key->dir == NM_POLICY_INGRESS ? "ingress" : "egress",
		       (unsigned long long)key->identity,
		       port_str(key, ps, sizeof(ps)),
		       verdict_name(val->verdict), val->rule_id);
	return 0;
}

static int dump_policy(struct nm_maps *maps)
{
	return ctl_map_dump(maps, maps->policy, NM_MAP_POLICY,
			    sizeof(struct nm_policy_key),
			    sizeof(struct nm_policy_val), print_policy, NULL);
}

static int print_node(const void *k, const void *v, size_t i, void *ctx)
{
	const struct nm_node_key *key = k;
	const struct nm_node_val *val = v;
	char ip[INET_ADDRSTRLEN];

	(void)ctx;
	if (opt_json)
		printf("%s{\"node_ip\":\"%s\",\"cluster_id\":%u,\"node_id\":%u,\"flags\":%u}",
		       ctl_sep(i), ip_str(key->node_ip, ip), val->cluster_id,
		       val->node_id, val->flags);
	else
		printf("node %-15s cluster_id %-5u node_id %-5u flags 0x%x\n",
		       ip_str(key->node_ip, ip), val->cluster_id, val->node_id,
		       val->flags);
	return 0;
}

static int dump_nodes(struct nm_maps *maps)
{
	return ctl_map_dump(maps, maps->nodes, NM_MAP_NODES,
			    sizeof(struct nm_node_key),
			    sizeof(struct nm_node_val), print_node, NULL);
}

static int dump_events(struct nm_maps *maps)
{
	(void)maps;
	pr_warn("failed to dump map %s: a ring buffer is read as it fills; use 'nodemeshctl monitor'",
		NM_MAP_EVENTS);
	return -EINVAL;
}

int cmd_ipcache_list(int argc, char **argv)
{
	int err;

	err = ctl_args(argc, argv, "ipcache list", NULL, NULL);
	if (err)
		return err;
	return ctl_with_maps(dump_ipcache);
}

int cmd_map_dump(int argc, char **argv)
{
	static const dump_fn fns[N_MAPS] = {
		dump_services, dump_backends, dump_maglev, dump_revnat,
		dump_ct,       dump_metrics,  dump_config, dump_ipcache,
		dump_endpoints, dump_policy,  dump_events, dump_nodes,
	};
	size_t i;

	if (argc != 1 || argv[0][0] == '-') {
		pr_warn("map dump takes exactly one map name");
		return -EINVAL;
	}
	for (i = 0; i < N_MAPS; i++)
		if (!strcmp(argv[0], map_names[i].alias) ||
		    !strcmp(argv[0], map_names[i].name))
			break;
	if (i == N_MAPS) {
		pr_warn("unknown map '%s': expected services, backends, maglev, revnat, ct, metrics, config, ipcache, endpoints, policy, nodes or an nm_*_v1 name",
			argv[0]);
		return -EINVAL;
	}
	return ctl_with_maps(fns[i]);
}

int cmd_ipcache_upsert(int argc, char **argv)
{
	struct nm_ipcache_key k = {};
	struct nm_ipcache_val v = {};
	const char *id_s = NULL, *pfx = NULL, *tun = NULL;
	const struct ctl_opt opts[] = {
		{ "--identity", &id_s }, { "--tunnel", &tun }, {}
	};
	struct nm_cidr c;
	struct nm_maps maps;
	unsigned long long id;
	char *end, buf[24];
	int err;

	err = ctl_args(argc, argv, "ipcache upsert", opts, &pfx);
	if (err)
		return err;
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
	err = ctl_map_update(&maps, maps.ipcache, NM_MAP_IPCACHE, &k, &v);
	if (!err && opt_json)
		printf("{\"prefix\":\"%s\",\"identity\":%llu}\n", pfx, id);
	else if (!err)
		printf("ipcache %s -> identity %llu\n", pfx, id);
	nm_maps_close(&maps);
	return err;
}
