/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nodemeshctl internals: global options, argument parsing, output helpers
 * (text for people, -o json for scripts), pinned-map helpers and the node
 * context (maps, state dir, identities) the policy commands work on. One
 * file per command group under agent/ctl/; nodemeshctl.c holds the table.
 */
#ifndef NM_AGENT_CTL_H
#define NM_AGENT_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/identity.h"
#include "agent/policy_apply.h"
#include "agent/state.h"
#include "agent/svc.h"
#include "maps/endpoint.h"
#include "maps/policy.h"

/* Global options, set by main before the command runs. */
extern const char *opt_pin_root;
extern const char *opt_state_dir;
extern const char *opt_cluster;
extern const char *opt_cluster_id;
extern bool opt_json;

/* ---- arguments ---------------------------------------------------------- */

int parse_u32(const char *s, const char *what, __u32 *out);
/*
 * Option "--name VALUE" or "--name=VALUE" at argv[*i]: returns 1 and sets
 * @val when it matches, 0 when it is another argument, -EINVAL when the
 * value is missing.
 */
int match_opt(int argc, char **argv, int *i, const char *name,
	      const char **val);

struct ctl_opt {
	const char *name;
	const char **val;
};

/*
 * The options of @opts (terminated by a NULL name; @opts may be NULL) and
 * at most one positional argument, stored in *@pos (@pos NULL: none
 * allowed). Anything else is "unexpected argument 'X' for @cmd".
 */
int ctl_args(int argc, char **argv, const char *cmd,
	     const struct ctl_opt *opts, const char **pos);

/* ---- output ------------------------------------------------------------- */

/* JSON string with the few escapes our values can need. */
void json_str(const char *s);
const char *ip_str(__be32 addr, char *buf);
const char *mac_str(const __u8 *m, char *buf);

/* The separator before item @i of a JSON list. */
static inline const char *ctl_sep(size_t i)
{
	return i ? "," : "";
}

/* "[" in JSON; in text @none (if not NULL) when the list has no items. */
void ctl_list_begin(const char *none, size_t n);
/* "]\n" in JSON. */
void ctl_list_end(void);

const char *reason_name(__u32 r);
/* "from_pod", "to_pod", "from_overlay". */
const char *dir_name(__u32 dir);
const char *verdict_name(__u8 v);
const char *enforce_str(__u8 flags);
const char *port_str(const struct nm_policy_key *k, char *buf, size_t len);

/*
 * Ends the report of a command that recompiled policy: in JSON the sync
 * counts and the closing brace of the object the caller opened, in text
 * the line "@what: policy entries ...".
 */
void ctl_sync_report(const char *what, const struct nm_sync_stats *s);

/* ---- pinned maps -------------------------------------------------------- */

/* Open the pinned maps, run @fn on them, close them. */
int ctl_with_maps(int (*fn)(struct nm_maps *maps));

/* @i: how many entries @fn was given before this one. */
typedef int (*ctl_walk_fn)(const void *key, const void *val, size_t i,
			   void *ctx);

/*
 * Every entry of hash-like map @fd (@name under @root, for messages): keys and values
 * of up to 64 bytes; @val_size 0 walks keys only (@val NULL). An entry
 * deleted while we walk is skipped. Returns 0, a nonzero return of @fn, or
 * the iteration error, reported as "failed to iterate map".
 */
int ctl_map_walk(int fd, const char *name, const char *root, __u32 key_size,
		 __u32 val_size, ctl_walk_fn fn, void *ctx);
/* Like ctl_map_walk() between "[" and "]" of a JSON list. */
int ctl_map_dump(const struct nm_maps *maps, int fd, const char *name,
		 __u32 key_size, __u32 val_size, ctl_walk_fn fn, void *ctx);
int ctl_map_update(const struct nm_maps *maps, int fd, const char *name,
		   const void *key, const void *val);
/* Delete one entry; an entry already gone is fine. */
int ctl_map_delete(const struct nm_maps *maps, int fd, const char *name,
		   const void *key);

/* ---- node: maps, state dir and identities ------------------------------- */

struct node_ctx {
	struct nm_maps maps;
	struct nm_state st;
	struct nm_idstore ids;
	bool maps_open, locked, ids_loaded;
};

/* Open maps, take the writers' lock if @lock, open state and identities. */
int node_open(struct node_ctx *n, bool lock);
void node_close(struct node_ctx *n);

/* The endpoint entry of @k, reported by @ip_s when there is none. */
int node_endpoint(const struct node_ctx *n, const char *ip_s,
		  const struct nm_endpoint_key *k, struct nm_endpoint_val *v);

/* "1/4242" for label identities, the name for reserved ones. */
const char *id_str(__u64 id, char *buf, size_t len);
/* Canonical labels of @id, "?" when unknown; caller frees. */
char *id_labels(const struct nm_idstore *ids, __u64 id);
void json_labels(const struct nm_idstore *ids, __u64 id);

/* Load the applied manifests, reporting a broken store by file and line. */
int load_store(const struct nm_state *st, struct nm_policy_set *set);
/* Recompile everything after an identity or endpoint change. */
int resync(struct node_ctx *n, const struct nm_ep_rec *pending,
	   struct nm_sync_stats *stats);

/*
 * The cluster's etcd as agent config @config names it (endpoints, TLS,
 * credentials): @cfg is loaded, *@out opened. Errors are printed
 * ("FILE:LINE: reason" for the config). Free with nm_etcd_close() and
 * nm_config_free().
 */
struct nm_agent_config;
struct nm_etcd;
int ctl_etcd_open(const char *config, struct nm_agent_config *cfg,
		  struct nm_etcd **out);

/* ---- the agent's API (its unix socket) ---------------------------------- */

/* A reply of the agent's API. */
struct ctl_reply {
	char *buf; /* the body, NUL-terminated, NULL when empty; caller frees */
	size_t len;
	long code; /* HTTP status, 0 when none was read */
	bool unreachable; /* nothing answered on the socket */
};

/* Room for the reason ctl_api_request() gives. */
#define CTL_API_WHY_MAX 288
/* What to add to the reason when the reply is unreachable. */
#define CTL_API_HINT " (is nodemesh-agent running? --socket PATH)"

/*
 * @method @path on the agent's API at @sock into @r (zeroed by the caller).
 * Returns 0 once a reply came back, whatever its status (in r->code);
 * else -errno with the reason in @why.
 */
int ctl_api_request(const char *sock, const char *method, const char *path,
		    long timeout_ms, struct ctl_reply *r, char *why,
		    size_t why_len);

/* ---- commands: argv is what follows the command words ------------------- */

int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_service_upsert(int argc, char **argv);
int cmd_service_delete(int argc, char **argv);
int cmd_service_list(int argc, char **argv);
/* MeshService manifests in the cluster's etcd (agent/ctl/meshsvc.c). */
int cmd_service_validate(int argc, char **argv);
int cmd_service_apply(int argc, char **argv);
int cmd_service_manifests(int argc, char **argv);
/* 'service delete': with --config a MeshService, else a frontend. */
int cmd_service_delete_any(int argc, char **argv);
int cmd_endpoint_drain(int argc, char **argv);
int cmd_endpoint_add(int argc, char **argv);
int cmd_endpoint_delete(int argc, char **argv);
int cmd_endpoint_list(int argc, char **argv);
int cmd_identity_list(int argc, char **argv);
int cmd_identity_add(int argc, char **argv);
int cmd_ipcache_upsert(int argc, char **argv);
int cmd_ipcache_list(int argc, char **argv);
int cmd_policy_validate(int argc, char **argv);
int cmd_policy_apply(int argc, char **argv);
int cmd_policy_delete(int argc, char **argv);
int cmd_policy_list(int argc, char **argv);
int cmd_policy_get(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_map_list(int argc, char **argv);
int cmd_map_dump(int argc, char **argv);
int cmd_status(int argc, char **argv);
/* Returns its exit status itself: 0 equal, 1 differences, 2 failure. */
int cmd_diff(int argc, char **argv);

#endif /* NM_AGENT_CTL_H */
