// SPDX-License-Identifier: GPL-2.0
/*
 * The agent's configuration (YAML): its own config file, and a directory
 * of remote-cluster files, one per cluster, that the daemon reloads and
 * diffs to connect and drain clusters without a restart. Strict like the
 * policy parser: every refusal is "FILE:LINE: reason".
 *
 * Agent config (snake_case keys):
 *
 *   cluster: east                  # required, DNS label
 *   cluster_id: 1                  # required, 1..65535
 *   etcd:                          # required
 *     endpoints: [https://10.0.0.1:2379]   # required, http/https only
 *     ca_file: /etc/nodemesh/ca.pem        # optional, absolute paths
 *     cert_file: ...                       # with key_file, or neither
 *     key_file: ...
 *     username: nodemesh                   # with password_file
 *     password_file: ...
 *   pin_root: /sys/fs/bpf/nodemesh          # default
 *   state_dir: /var/lib/nodemesh            # default
 *   interfaces: [eth0]                      # default none
 *   kvstore_prefix: nodemesh/               # default
 *   heartbeat_bound_ms: 3000                # default, 1000..600000
 *   remote_clusters_dir: /etc/nodemesh/clusters.d   # default none
 *   api_socket: /run/nodemesh/agent.sock    # default <state_dir>/agent.sock
 *   datapath:                               # optional, every field too
 *     maglev_m: 16381                       # prime, 7..131071
 *     maglev_tables: 512                    # >= 2, tables x M <= 2^28
 *     services_max: 16384                   # 1..2^20
 *     backends_max: 262144                  # 1..2^24
 *     ct_max: 262144                        # >= 1
 *
 * A datapath size left out is what the pinned maps were created with, or
 * the loader's default on a first load; one given must equal the pins.
 *
 * Remote cluster file <dir>/<name>.yaml (or .yml): name, id, endpoints,
 * ca_file, cert_file, key_file, username, password_file, flat, with the
 * same rules as etcd: above.
 */
#ifndef NM_AGENT_CONFIG_H
#define NM_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/policy.h" /* struct nm_error */

#define NM_CONFIG_FILE_MAX (1U << 20)
#define NM_CONFIG_ENDPOINTS_MAX 16
#define NM_CONFIG_INTERFACES_MAX 64
#define NM_CONFIG_URL_MAX 256
#define NM_HEARTBEAT_BOUND_DEFAULT_MS 3000
#define NM_TUNNEL_DEVICE_DEFAULT "nm_vxlan"
#define NM_HEARTBEAT_BOUND_MIN_MS 1000 /* heartbeats come every second */
#define NM_HEARTBEAT_BOUND_MAX_MS 600000

/* unix(7): sun_path holds 107 bytes and the NUL. */
#define NM_CONFIG_SOCKET_PATH_MAX 107

/* Load-time sizes of the datapath (struct nm_load_opts); 0: not given. */
struct nm_datapath_conf {
	__u32 maglev_m;
	__u32 maglev_tables;
	__u32 services_max;
	__u32 backends_max;
	__u32 ct_max;
};

/* How to reach one cluster's etcd. Absent optional strings are NULL. */
struct nm_etcd_conf {
	char **endpoints; /* "https://host:port", >= 1 */
	size_t n_endpoints;
	char *ca_file;
	char *cert_file; /* set together with key_file */
	char *key_file;
	char *username; /* set together with password_file */
	char *password_file;
};

struct nm_agent_config {
	char *cluster;
	__u16 cluster_id;
	struct nm_etcd_conf etcd;
	char *pin_root;
	char *state_dir;
	char **interfaces;
	size_t n_interfaces;
	char *kv_prefix;
	__u32 heartbeat_bound_ms;
	char *remote_clusters_dir; /* NULL: no remote clusters */
	char *api_socket; /* NULL: <state_dir>/agent.sock */
	struct nm_datapath_conf datapath;
	/* the overlay (tunnel: vxlan | disabled) */
	bool tunnel;
	char *tunnel_device; /* default NM_TUNNEL_DEVICE_DEFAULT */
	__u16 tunnel_port; /* UDP, default NM_VXLAN_PORT_DEFAULT */
	__u32 pod_mtu; /* 0: the node interface's MTU - NM_VXLAN_OVERHEAD */
};

struct nm_remote_cluster {
	char *name;
	__u16 id;
	struct nm_etcd_conf etcd;
	char *file; /* where it came from, for messages */
	unsigned int name_line, id_line;
};

/* Sorted by name; names and ids unique. */
struct nm_remote_set {
	struct nm_remote_cluster *v;
	size_t n;
};

/* Files the directory loader refused, in file name order. */
struct nm_refusals {
	struct nm_error *v;
	size_t n;
};

/* Pointers into the two sets diffed; valid while they are. */
struct nm_remote_diff {
	const struct nm_remote_cluster **added; /* into new */
	size_t n_added;
	const struct nm_remote_cluster **removed; /* into old */
	size_t n_removed;
	const struct nm_remote_cluster **changed; /* into new */
	size_t n_changed;
};

/* Parse an agent config; on error @out is untouched, @err says why. */
int nm_config_parse(const char *buf, size_t len, const char *file,
		    struct nm_agent_config *out, struct nm_error *err);
int nm_config_load(const char *path, struct nm_agent_config *out,
		   struct nm_error *err);
void nm_config_free(struct nm_agent_config *c);

/*
 * Parse one remote-cluster file; @file's base name must be <name>.yaml or
 * <name>.yml. With @local_name set, a remote with the local cluster's name
 * or id (@local_id) is refused.
 */
int nm_remote_parse(const char *buf, size_t len, const char *file,
		    const char *local_name, __u16 local_id,
		    struct nm_remote_cluster *out, struct nm_error *err);
void nm_remote_free(struct nm_remote_cluster *r);

/*
 * Load every *.yaml / *.yml in @dir (hidden names skipped, symlinks
 * followed, so a Kubernetes ConfigMap mount works). Good files land in
 * @ok, refused ones in @bad; a bad file never hides a good one. Clusters
 * claiming a name or id another file claims too are all refused, except
 * one equal in name and id to a cluster of @prev (the last good load,
 * or NULL), which keeps it, so a new conflicting file cannot drain a
 * connected cluster. Returns an error only when @dir itself cannot be
 * read (@err says why; @ok and @bad then empty).
 */
int nm_remote_dir_load(const char *dir, const char *local_name, __u16 local_id,
		       const struct nm_remote_set *prev,
		       struct nm_remote_set *ok, struct nm_refusals *bad,
		       struct nm_error *err);
const struct nm_remote_cluster *nm_remote_find(const struct nm_remote_set *s,
					       const char *name);
void nm_remote_set_free(struct nm_remote_set *s);
void nm_refusals_free(struct nm_refusals *r);

/* Same name, id and connection settings (order of endpoints matters). */
bool nm_remote_equal(const struct nm_remote_cluster *a,
		     const struct nm_remote_cluster *b);
/*
 * What to connect (added), drain (removed) and reconnect (changed) when
 * moving from @old to @new; each list sorted by name. File contents
 * (certificates, passwords) are not compared: only paths.
 */
int nm_remote_diff(const struct nm_remote_set *old,
		   const struct nm_remote_set *new, struct nm_remote_diff *out);
void nm_remote_diff_free(struct nm_remote_diff *d);

/*
 * The first line of password file @path (the first KiB read), malloc'd in
 * *@out; failures are logged.
 */
int nm_read_password_file(const char *path, char **out);

#endif /* NM_AGENT_CONFIG_H */
