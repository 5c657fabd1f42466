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

/*
 * Our tc filters: nm_from_pod on the clsact ingress hook of a pod's
 * host-side veth (what the pod sends), nm_to_pod on its egress hook (what
 * is delivered to the pod). Handle and priority are fixed so a restart
 * replaces them.
 */
#define NM_TC_HANDLE 0x4e4d /* "NM" */
#define NM_TC_PRIO 1

enum nm_tc_hook {
	NM_TC_FROM_POD = 0, /* tc ingress */
	NM_TC_TO_POD = 1, /* tc egress */
	NM_TC_HOOKS = 2,
};

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
	__u32 services_max; /* nm_services_v1 and nm_revnat_v1 */
	__u32 backends_max; /* nm_backends_v1 */
};

struct lxc;
struct overlay;

struct nm_datapath {
	struct lxc *skel;
	struct overlay *oskel; /* nm_from_overlay, same pinned maps */
	struct nm_config_val cfg; /* what was loaded */
	__u32 ct_max; /* == cfg.ct_max */
	char pin_root[PATH_MAX];
};

/* Open, size and load the datapath; maps pinned or reused under the root. */
int nm_datapath_load(const struct nm_load_opts *opts, struct nm_datapath **out);
void nm_datapath_close(struct nm_datapath *dp);
/* The program for @hook, for nm_tc_attach(); -ENOENT if the object lacks it. */
int nm_datapath_prog_fd(const struct nm_datapath *dp, enum nm_tc_hook hook);
/* Name of the program on @hook ("nm_from_pod", "nm_to_pod"). */
const char *nm_tc_prog_name(enum nm_tc_hook hook);
/* "ingress" or "egress". */
const char *nm_tc_hook_name(enum nm_tc_hook hook);

/*
 * Attach both programs of @dp on @ifname (nm_to_pod at egress first, then
 * nm_from_pod at ingress), atomically replacing ours.
 */
int nm_tc_attach(const struct nm_datapath *dp, const char *ifname);
/*
 * Remove our filters from both hooks of @ifname. The clsact qdisc is left
 * in place: other programs may sit on it and it goes with the device.
 * Returns -ENOENT when nothing of ours is attached on either hook.
 */
int nm_tc_detach(const char *ifname);
/*
 * Attach nm_from_overlay on the tc ingress hook of the overlay device
 * @ifindex (@ifname for messages), replacing ours.
 */
int nm_overlay_attach(const struct nm_datapath *dp, int ifindex,
		      const char *ifname);
/* Program id of our filter on @hook of @ifname, or -ENOENT. */
int nm_tc_query(const char *ifname, enum nm_tc_hook hook, __u32 *prog_id);

/* File descriptors of the pinned maps, for nodemeshctl and the agent. */
struct nm_maps {
	int services;
	int backends;
	int maglev;
	int revnat;
	int ct;
	int metrics;
	int config;
	int ipcache;
	int endpoints;
	int policy;
	int events;
	int nodes;
	int tunnel;
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
