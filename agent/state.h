// SPDX-License-Identifier: GPL-2.0
/*
 * The node's state directory (default /var/lib/nodemesh):
 *
 *   node.json                  {"cluster": NAME, "cluster_id": N}
 *   identities.json            label and CIDR identities this node knows
 *   endpoints.json             pod names of endpoints, for display
 *   policies/<ns>/<name>.yaml  applied manifests, as given
 *
 * Every write goes to a temporary file that is renamed over the old one,
 * so a reader sees the old or the new file, never half of one. Writers
 * serialise on nm_maps_lock() (the pin root's flock).
 */
#ifndef NM_AGENT_STATE_H
#define NM_AGENT_STATE_H

#include <limits.h>
#include <stddef.h>
#include <linux/types.h>

#define NM_STATE_DIR_DEFAULT "/var/lib/nodemesh"
#define NM_CLUSTER_NAME_MAX 63 /* a label value */

struct nm_node {
	char cluster[NM_CLUSTER_NAME_MAX + 1];
	__u16 cluster_id; /* 1..65535 */
};

struct nm_state {
	char dir[PATH_MAX];
	struct nm_node node;
};

/* State dir from --state-dir, else $NODEMESH_STATE_DIR, else the default. */
const char *nm_state_dir(const char *arg);

/*
 * Open (creating it if needed) the state directory @dir. @cluster and
 * @cluster_id (NULL/0: not given) are written to node.json on first use
 * and must match it afterwards. Without node.json and without both, the
 * node is not initialised: -ENOENT with a message saying what to pass.
 */
int nm_state_open(const char *dir, const char *cluster, __u32 cluster_id,
		  struct nm_state *st);

/* Atomically replace @rel (relative to the state dir), creating parents. */
int nm_state_write(const struct nm_state *st, const char *rel, const char *buf,
		   size_t len);
/* Whole file, NUL-terminated, malloc'd; -ENOENT (quietly) if absent. */
int nm_state_read(const struct nm_state *st, const char *rel, char **buf,
		  size_t *len);
/* Remove @rel; -ENOENT (quietly) if absent. */
int nm_state_remove(const struct nm_state *st, const char *rel);

/*
 * The "namespace/pod" name of the endpoint at @ip (dotted quad): set
 * (@name NULL: forget it) and get (-ENOENT, quietly, when none).
 */
int nm_state_set_ep_name(const struct nm_state *st, const char *ip,
			 const char *ns, const char *name);
int nm_state_get_ep_name(const struct nm_state *st, const char *ip, char *buf,
			 size_t len);

#endif /* NM_AGENT_STATE_H */
