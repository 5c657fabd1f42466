// SPDX-License-Identifier: GPL-2.0
/*
 * Loader/attacher for the lxc datapath and opener of its pinned maps.
 *
 * Maps are pinned by name under a pin root (default NM_PIN_ROOT_DEFAULT):
 * the first load creates them, every later load reuses them, so a restart
 * keeps conntrack and services.
 */
#ifndef NM_AGENT_LOADER_H
#define NM_AGENT_LOADER_H

#include <stdbool.h>
#include <limits.h>
#include <linux/types.h>

#include "maps/config.h"

/* Our tc filter on the clsact ingress hook: fixed so a restart replaces it. */
#define NM_TC_HANDLE 0x4e4d /* "NM" */
#define NM_TC_PRIO 1

struct nm_load_opts {
	const char *pin_root; /* NULL: NM_PIN_ROOT_DEFAULT */
	/*
	 * 0 means: what the pinned maps were created with, or the default
	 * on a first load. A non-zero value that differs from the pins is
	 * refused (changing it needs the pins removed, losing conntrack).
	 */
	__u32 maglev_m;
	__u32 maglev_tables;
	__u32 ct_max;
};

struct lxc;

struct nm_datapath {
	struct lxc *skel;
	struct nm_config_val cfg; /* what was loaded */
	__u32 ct_max;
	char pin_root[PATH_MAX];
};

/* Open, size and load the datapath; maps pinned or reused under the root. */
int nm_datapath_load(const struct nm_load_opts *opts, struct nm_datapath **out);
void nm_datapath_close(struct nm_datapath *dp);
/* The from-pod program, for nm_tc_attach(). */
int nm_datapath_prog_fd(const struct nm_datapath *dp);

/* Attach @prog_fd at tc ingress of @ifname, atomically replacing ours. */
int nm_tc_attach(int prog_fd, const char *ifname);
/*
 * Remove our filter from tc ingress of @ifname. The clsact qdisc is left
 * in place: other programs may sit on it and it goes with the device.
 * Returns -ENOENT when nothing of ours is attached.
 */
int nm_tc_detach(const char *ifname);
/* Program id of our filter on @ifname, or -ENOENT. */
int nm_tc_query(const char *ifname, __u32 *prog_id);

/* File descriptors of the pinned maps, for nodemeshctl and the agent. */
struct nm_maps {
	int services;
	int backends;
	int maglev;
	int revnat;
	int ct;
	int metrics;
	int config;
	int root_fd; /* the pin root directory, for nm_maps_lock() */
	struct nm_config_val cfg;
	char pin_root[PATH_MAX];
};

/* Open every pinned map under @pin_root (NULL: default) and read config. */
int nm_maps_open(const char *pin_root, struct nm_maps *maps);
void nm_maps_close(struct nm_maps *maps);
/* Serialise writers (nodemeshctl, agent) on the pin root. */
int nm_maps_lock(struct nm_maps *maps);
void nm_maps_unlock(struct nm_maps *maps);

/* Pin root from --pin-root, else $NODEMESH_PIN_ROOT, else the default. */
const char *nm_pin_root(const char *arg);

#endif /* NM_AGENT_LOADER_H */
