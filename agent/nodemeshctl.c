// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl: load/attach the datapath, program services, inspect maps.
 * Thin front end over the agent library; output for people by default,
 * -o json for scripts. Exit status 0 on success, 1 on any error ('diff':
 * 1 when the maps differ, 2 on errors). The commands live in agent/ctl/,
 * one file per group; this is their table.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/ctl/ctl.h"
#include "agent/log.h"

struct cmd {
	const char *group; /* "service", "map" or NULL for a top-level command */
	const char *name;
	int (*fn)(int argc, char **argv); /* argv: what follows the command */
	const char *args;
	const char *help;
};

static const struct cmd cmds[] = {
	{ NULL, "attach", cmd_attach,
	  "IFACE... [--maglev-m M] [--maglev-tables N] [--ct-max N] "
	  "[--services-max N] [--backends-max N]",
	  "Load the datapath (maps pinned under the pin root, created on first\n"
	  "load and reused after) and attach nm_from_pod at tc ingress of each\n"
	  "IFACE, atomically replacing an earlier nodemesh program there.\n"
	  "Sizes default to the pinned maps' sizes, or on a first load to\n"
	  "M 16381, 512 tables, 262144 conntrack entries, 16384 services and\n"
	  "262144 backends (each service also needs a Maglev table, and one\n"
	  "table is the spare); a size that differs from the pinned maps is\n"
	  "refused." },
	{ NULL, "detach", cmd_detach, "IFACE...",
	  "Remove the nodemesh filter from tc ingress of each IFACE. Maps stay\n"
	  "pinned, the clsact qdisc stays. Not attached is not an error." },
	{ "service", "upsert", cmd_service_upsert,
	  "VIP:PORT/PROTO [BACKEND...] [--algo maglev|random]",
	  "Create or update a service. BACKEND is ADDR:PORT[,weight=W][,state=S]\n"
	  "with W 1..65535 (default 1) and S active|terminating|quarantined|\n"
	  "standby (default active; only active backends take new flows). No\n"
	  "backend: the service drops new flows. Backends that stay keep their\n"
	  "id, so established flows keep their backend." },
	{ "service", "delete", cmd_service_delete_any,
	  "VIP:PORT/PROTO | (-f FILE | NAMESPACE/NAME) --config AGENT_CONFIG",
	  "Delete a service, its backends and its rev-NAT entry. With --config:\n"
	  "delete the MeshServices of FILE, or one by name, from the cluster's\n"
	  "etcd (its exporter then removes their service records); a name that\n"
	  "is not applied is an error and deletes nothing." },
	{ "service", "list", cmd_service_list, "",
	  "List services with their backends, grouped per cluster when they\n"
	  "carry a cluster id (--cluster-id marks the local one), and each\n"
	  "backend's state. Active backends are the preferred ones: in the\n"
	  "Maglev table, taking new flows." },
	{ "service", "validate", cmd_service_validate, "-f FILE",
	  "Parse the MeshService manifests of FILE (all its documents) without\n"
	  "storing them. Prints 'FILE: N MeshServices valid', or\n"
	  "'FILE:LINE: reason' and exits 1." },
	{ "service", "apply", cmd_service_apply, "-f FILE --config AGENT_CONFIG",
	  "Validate FILE and store each MeshService of it, as written, at\n"
	  "<prefix>services/v1/NS/NAME in the etcd of AGENT_CONFIG's cluster\n"
	  "(endpoints, TLS and credentials from that file). Any error in FILE,\n"
	  "or a frontend another MeshService claims, stores nothing. The\n"
	  "cluster's heartbeat writer exports it within a second as the service\n"
	  "record state/services/v1/CLUSTER/NS/NAME." },
	{ "service", "manifests", cmd_service_manifests,
	  "--config AGENT_CONFIG",
	  "List the cluster's MeshServices: frontends and target ports,\n"
	  "selector, global/shared/affinity/weight/priority, and the backends\n"
	  "of their exported record (active, terminating); a stored manifest\n"
	  "the exporter refuses is listed with FILE:LINE: reason." },
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
	{ "endpoint", "drain", cmd_endpoint_drain, "IP [--socket PATH]",
	  "Mark the pod at IP (added through the agent's API, i.e. the CNI\n"
	  "plugin) terminating, through the running agent on PATH (default\n"
	  "<state dir>/agent.sock): it is published with state terminating and\n"
	  "services stop sending it new connections; established ones go on.\n"
	  "One way: the pod drains until it is deleted." },
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
	{ NULL, "status", cmd_status, "[--socket PATH]",
	  "The running nodemesh-agent's view, from its API socket (default\n"
	  "<state dir>/agent.sock): node, cluster, lease, heartbeat writer, and\n"
	  "per cluster whether it is connected and synced, the last revision,\n"
	  "records mirrored and rejected, time since its last heartbeat and its\n"
	  "last error; then refused remote-cluster files. -o json prints the\n"
	  "agent's JSON document as it is." },
	{ NULL, "diff", cmd_diff,
	  "--config AGENT_CONFIG [--node NAME] [--socket PATH]",
	  "Compare the maps with the state every cluster's etcd asks for:\n"
	  "lists each cluster of AGENT_CONFIG (the local one and its remote-\n"
	  "cluster files), validates every record as the agent does, computes\n"
	  "what the agent would write to nm_nodes_v1, nm_ipcache_v1 and the\n"
	  "service maps (backend sets and Maglev tables), and prints one line\n"
	  "per difference: missing, stale or differs. Entries of others are\n"
	  "left out: this node's pods, policy CIDRs, services programmed with\n"
	  "'service upsert'. NAME (whose pods are skipped) and the reachability\n"
	  "of remote clusters come from the agent on PATH (default: the\n"
	  "config's api_socket, else <state dir>/agent.sock); without an agent\n"
	  "NAME defaults to the host name and every cluster is taken as\n"
	  "reachable. Exit 0 when equal (nothing printed), 1 when they differ,\n"
	  "2 when etcd or the maps cannot be read." },
	{ "map", "list", cmd_map_list, "",
	  "List the pinned maps with type, sizes and entry counts." },
	{ "map", "dump", cmd_map_dump, "NAME",
	  "Dump a map decoded. NAME: services, backends, maglev, revnat, ct,\n"
	  "metrics, config, ipcache, endpoints, policy, nodes, or the pin\n"
	  "name (nm_services_v1, ...). maglev is\n"
	  "summarised per table; metrics are summed over CPUs, nonzero only." },
};

static const size_t n_cmds = sizeof(cmds) / sizeof(cmds[0]);

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

static const struct {
	const char *name;
	const char **val; /* NULL: the output format */
	bool before_cmd; /* 'identity add --cluster-id N' names another cluster */
} globals[] = {
	{ "--pin-root", &opt_pin_root, false },
	{ "--state-dir", &opt_state_dir, false },
	{ "--cluster-id", &opt_cluster_id, true },
	{ "--cluster", &opt_cluster, true },
	{ "--output", NULL, false },
	{ "-o", NULL, false },
};

/* Take global options out of argv wherever they are; returns new argc. */
static int parse_global(int argc, char **argv, int *verbose)
{
	int i, n = 1, ret;
	size_t g;

	for (i = 1; i < argc; i++) {
		const char *v;

		if (!strcmp(argv[i], "--")) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		for (g = 0, ret = 0; g < sizeof(globals) / sizeof(globals[0]); g++) {
			if (globals[g].before_cmd && n != 1)
				continue;
			ret = match_opt(argc, argv, &i, globals[g].name, &v);
			if (ret)
				break;
		}
		if (ret < 0)
			return ret;
		if (ret > 0 && globals[g].val) {
			*globals[g].val = v;
			continue;
		}
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
	/* A negative errno is exit 1; diff returns its own exit status. */
	return err < 0 ? 1 : err;
}
