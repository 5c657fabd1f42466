// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "lxc.skel.h"
#include "overlay.skel.h"

#include "agent/loader.h"
#include "agent/log.h"
#include "agent/maglev.h"
#include "maps/common.h"
#include "maps/backend.h"
#include "maps/ct.h"
#include "maps/maglev.h"
#include "maps/service.h"

const char *nm_pin_root(const char *arg)
{
	const char *env;

	if (arg && *arg)
		return arg;
	env = getenv("NODEMESH_PIN_ROOT");
	if (env && *env)
		return env;
	return NM_PIN_ROOT_DEFAULT;
}

static bool is_bpffs(const char *path)
{
	struct statfs st;

	if (statfs(path, &st))
		return false;
	return (unsigned long)st.f_type == (unsigned long)BPF_FS_MAGIC;
}

/* mkdir -p @root, but only inside a bpf filesystem. */
static int ensure_pin_root(const char *root)
{
	char path[PATH_MAX], anc[PATH_MAX];
	struct stat st;
	char *slash;
	size_t len;

	len = strlen(root);
	if (!len || len >= sizeof(path) || root[0] != '/') {
		pr_warn("failed to create pin root '%s': must be an absolute path",
			root);
		return -EINVAL;
	}
	memcpy(path, root, len + 1);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';

	/* Deepest existing ancestor decides which filesystem we land on. */
	memcpy(anc, path, len + 1);
	while (stat(anc, &st)) {
		if (errno != ENOENT) {
			pr_warn("failed to create pin root %s on %s: %s", path,
				anc, strerror(errno));
			return -errno;
		}
		slash = strrchr(anc, '/');
		if (slash == anc)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	if (!S_ISDIR(st.st_mode)) {
		pr_warn("failed to create pin root %s on %s: not a directory",
			path, anc);
		return -ENOTDIR;
	}
	if (!is_bpffs(anc)) {
		/* 'ip netns exec' remounts /sys, hiding the host's bpffs. */
		pr_warn("failed to create pin root %s on %s: not a bpf filesystem (mount -t bpf bpf /sys/fs/bpf; under 'ip netns exec', which remounts /sys, use 'nsenter --net=/run/netns/NAME' instead)",
			path, anc);
		return -EINVAL;
	}
	for (slash = path + strlen(anc) + 1; slash <= path + len; slash++) {
		if (*slash != '/' && *slash)
			continue;
		*slash = '\0';
		if (mkdir(path, 0700) && errno != EEXIST) {
			int err = -errno;

			pr_warn("failed to create pin root directory %s: %s",
				path, strerror(-err));
			return err;
		}
		if (slash != path + len)
			*slash = '/';
	}
	return 0;
}

/* Read the config of an earlier load; -ENOENT when there is none. */
static int read_pinned_config(const char *root, struct nm_config_val *cfg)
{
	char path[PATH_MAX];
	__u32 key = 0;
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", root, NM_MAP_CONFIG);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		err = -errno;
		if (err != -ENOENT)
			pr_warn("failed to open map %s on %s: %s",
				NM_MAP_CONFIG, root, strerror(-err));
		return err;
	}
	memset(cfg, 0, sizeof(*cfg));
	err = bpf_map_lookup_elem(fd, &key, cfg);
	if (err) {
		err = -errno;
		pr_warn("failed to read map %s on %s: %s", NM_MAP_CONFIG, root,
			strerror(-err));
		goto out;
	}
	/* An all-zero entry: a loader died before writing it. */
	if (!cfg->maglev_m)
		err = -ENOENT;
out:
	close(fd);
	return err;
}

/* max_entries of a pinned map; -ENOENT when not pinned. */
static int pinned_max_entries(const char *root, const char *name, __u32 *max)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err) {
		err = -errno;
		pr_warn("failed to query map %s on %s: %s", name, root,
			strerror(-err));
		goto out;
	}
	*max = info.max_entries;
out:
	close(fd);
	return err;
}

/* A size asked for (non-zero) must equal the pinned one. */
static int check_pinned(const char *root, const char *what, __u32 asked,
			__u32 pinned)
{
	if (!asked || asked == pinned)
		return 0;
	pr_warn("failed to load datapath on %s: %s %u asked, pinned maps have %u (remove the pins to change it)",
		root, what, asked, pinned);
	return -EINVAL;
}

/*
 * Settle the load-time sizes against what the pins were created with.
 * @pinned: an earlier load's config is there (and is kept as it is).
 */
static int resolve_config(const struct nm_load_opts *opts, const char *root,
			  struct nm_config_val *cfg, bool *pinned)
{
	struct nm_config_val old;
	__u32 old_ct;
	char err[128];
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	cfg->maglev_m = opts->maglev_m ?: NM_MAGLEV_M_DEFAULT;
	cfg->maglev_tables = opts->maglev_tables ?: NM_MAGLEV_TABLES_DEFAULT;
	cfg->abi_version = NM_ABI_VERSION;
	cfg->services_max = opts->services_max ?: NM_SERVICES_MAX_DEFAULT;
	cfg->backends_max = opts->backends_max ?: NM_BACKENDS_MAX_DEFAULT;
	cfg->ct_max = opts->ct_max ?: NM_CT_MAX_DEFAULT;
	*pinned = false;

	ret = read_pinned_config(root, &old);
	if (ret && ret != -ENOENT)
		return ret;
	if (!ret) {
		if (old.abi_version != NM_ABI_VERSION) {
			pr_warn("failed to load datapath on %s: pinned maps have ABI version %u, this build has %u (remove the pins to upgrade)",
				root, old.abi_version, NM_ABI_VERSION);
			return -EINVAL;
		}
		ret = check_pinned(root, "Maglev table size", opts->maglev_m,
				   old.maglev_m);
		if (!ret)
			ret = check_pinned(root, "Maglev table count",
					   opts->maglev_tables,
					   old.maglev_tables);
		if (!ret)
			ret = check_pinned(root, "services max",
					   opts->services_max,
					   old.services_max);
		if (!ret)
			ret = check_pinned(root, "backends max",
					   opts->backends_max,
					   old.backends_max);
		if (ret)
			return ret;
		/* Keeps svc_gen too: a reload changes no service. */
		*cfg = old;
		*pinned = true;
	}
	/* nm_ct_v1's own size rules: it may be pinned without a config. */
	ret = pinned_max_entries(root, NM_MAP_CT, &old_ct);
	if (ret && ret != -ENOENT)
		return ret;
	if (!ret) {
		ret = check_pinned(root, "conntrack size", opts->ct_max,
				   old_ct);
		if (ret)
			return ret;
		cfg->ct_max = old_ct;
	}

	ret = nm_maglev_check_m(cfg->maglev_m, err, sizeof(err));
	if (ret) {
		pr_warn("failed to load datapath on %s: %s", root, err);
		return ret;
	}
	if (cfg->maglev_tables < NM_MAGLEV_TABLES_MIN ||
	    (__u64)cfg->maglev_tables * cfg->maglev_m > NM_MAGLEV_ENTRIES_MAX) {
		pr_warn("failed to load datapath on %s: bad Maglev table count %u: must be >= %u and tables x M <= %u",
			root, cfg->maglev_tables, NM_MAGLEV_TABLES_MIN,
			NM_MAGLEV_ENTRIES_MAX);
		return -EINVAL;
	}
	if (!cfg->services_max || cfg->services_max > NM_SERVICES_MAX_LIMIT) {
		pr_warn("failed to load datapath on %s: bad services max %u: must be 1..%u",
			root, cfg->services_max, NM_SERVICES_MAX_LIMIT);
		return -EINVAL;
	}
	if (!cfg->backends_max || cfg->backends_max > NM_BACKENDS_MAX_LIMIT) {
		pr_warn("failed to load datapath on %s: bad backends max %u: must be 1..%u",
			root, cfg->backends_max, NM_BACKENDS_MAX_LIMIT);
		return -EINVAL;
	}
	if (!cfg->ct_max) {
		pr_warn("failed to load datapath on %s: conntrack size must be >= 1",
			root);
		return -EINVAL;
	}
	return 0;
}

/*
 * Every object defines every map, and libbpf reuses a pin only when the
 * sizes agree: give each object the sizes the pins were made with.
 */
static int size_maps(struct bpf_object *obj, const struct nm_config_val *cfg)
{
	const struct {
		const char *name;
		__u32 max;
	} sizes[] = {
		{ NM_MAP_MAGLEV, cfg->maglev_tables * cfg->maglev_m },
		{ NM_MAP_CT, cfg->ct_max },
		{ NM_MAP_SERVICES, cfg->services_max },
		{ NM_MAP_REVNAT, cfg->services_max },
		{ NM_MAP_BACKENDS, cfg->backends_max },
	};
	struct bpf_map *map;
	size_t i;
	int err;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		map = bpf_object__find_map_by_name(obj, sizes[i].name);
		if (!map) {
			pr_warn("failed to size map %s of %s: not in the object",
				sizes[i].name, bpf_object__name(obj));
			return -ENOENT;
		}
		err = bpf_map__set_max_entries(map, sizes[i].max);
		if (err) {
			pr_warn("failed to size map %s of %s: %s",
				sizes[i].name, bpf_object__name(obj),
				strerror(-err));
			return err;
		}
	}
	return 0;
}

/* The overlay program, on the maps the lxc object just pinned or reused. */
static int load_overlay(struct nm_datapath *dp)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts,
		    .pin_root_path = dp->pin_root);
	int err;

	dp->oskel = overlay__open_opts(&oopts);
	if (!dp->oskel) {
		err = -errno;
		pr_warn("failed to open overlay datapath on %s: %s",
			dp->pin_root, strerror(-err));
		return err;
	}
	err = size_maps(dp->oskel->obj, &dp->cfg);
	if (err)
		return err;
	err = overlay__load(dp->oskel);
	if (err)
		pr_warn("failed to load overlay datapath on %s: %s",
			dp->pin_root, strerror(-err));
	return err;
}

int nm_datapath_load(const struct nm_load_opts *opts, struct nm_datapath **out)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts);
	const char *root = nm_pin_root(opts->pin_root);
	struct nm_datapath *dp;
	bool pinned;
	__u32 key = 0;
	int err;

	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return -ENOMEM;
	if (strlen(root) >= sizeof(dp->pin_root)) {
		pr_warn("failed to load datapath on %s: path too long", root);
		err = -ENAMETOOLONG;
		goto err_free;
	}
	strcpy(dp->pin_root, root);

	err = ensure_pin_root(dp->pin_root);
	if (err)
		goto err_free;
	err = resolve_config(opts, dp->pin_root, &dp->cfg, &pinned);
	if (err)
		goto err_free;
	dp->ct_max = dp->cfg.ct_max;

	oopts.pin_root_path = dp->pin_root;
	dp->skel = lxc__open_opts(&oopts);
	if (!dp->skel) {
		err = -errno;
		pr_warn("failed to open lxc datapath on %s: %s", dp->pin_root,
			strerror(-err));
		goto err_free;
	}
	dp->skel->rodata->nm_cfg_maglev_m = dp->cfg.maglev_m;
	err = size_maps(dp->skel->obj, &dp->cfg);
	if (err)
		goto err_destroy;
	err = lxc__load(dp->skel);
	if (err) {
		pr_warn("failed to load lxc datapath on %s: %s", dp->pin_root,
			strerror(-err));
		goto err_destroy;
	}
	/*
	 * A reused config is left alone: it already says the same, and
	 * rewriting it would race service writers bumping svc_gen.
	 */
	if (!pinned &&
	    bpf_map_update_elem(bpf_map__fd(dp->skel->maps.nm_config_v2), &key,
				&dp->cfg, BPF_ANY)) {
		err = -errno;
		pr_warn("failed to write map %s on %s: %s", NM_MAP_CONFIG,
			dp->pin_root, strerror(-err));
		goto err_destroy;
	}
	err = load_overlay(dp);
	if (err)
		goto err_destroy;
	pr_info("loaded lxc datapath on %s (Maglev M %u, %u tables, %u services, %u backends, conntrack %u)",
		dp->pin_root, dp->cfg.maglev_m, dp->cfg.maglev_tables,
		dp->cfg.services_max, dp->cfg.backends_max, dp->cfg.ct_max);
	*out = dp;
	return 0;

err_destroy:
	overlay__destroy(dp->oskel);
	lxc__destroy(dp->skel);
err_free:
	free(dp);
	return err;
}

void nm_datapath_close(struct nm_datapath *dp)
{
	if (!dp)
		return;
	overlay__destroy(dp->oskel);
	lxc__destroy(dp->skel);
	free(dp);
}

const char *nm_tc_prog_name(enum nm_tc_hook hook)
{
	return hook == NM_TC_TO_POD ? "nm_to_pod" : "nm_from_pod";
}

const char *nm_tc_hook_name(enum nm_tc_hook hook)
{
	return hook == NM_TC_TO_POD ? "egress" : "ingress";
}

int nm_datapath_prog_fd(const struct nm_datapath *dp, enum nm_tc_hook hook)
{
	struct bpf_program *prog;

	/* By name: an object without nm_to_pod is reported, not a crash. */
	prog = bpf_object__find_program_by_name(dp->skel->obj,
						nm_tc_prog_name(hook));
	if (!prog) {
		pr_warn("failed to find program %s in lxc datapath on %s: not in the object",
			nm_tc_prog_name(hook), dp->pin_root);
		return -ENOENT;
	}
	return bpf_program__fd(prog);
}

static int iface_index(const char *ifname, const char *verb,
		       enum nm_tc_hook hook)
{
	unsigned int ifindex = if_nametoindex(ifname);

	if (!ifindex) {
		int err = -errno;

		pr_warn("failed to %s %s on %s: %s", verb,
			nm_tc_prog_name(hook), ifname, strerror(-err));
		return err;
	}
	return (int)ifindex;
}

static enum bpf_tc_attach_point tc_point(enum nm_tc_hook hook)
{
	return hook == NM_TC_TO_POD ? BPF_TC_EGRESS : BPF_TC_INGRESS;
}

/* Our filter @prog_fd on @point of @ifindex, replacing ours if there. */
static int tc_attach_fd(int prog_fd, int ifindex, const char *ifname,
			enum bpf_tc_attach_point point, const char *prog)
{
	LIBBPF_OPTS(bpf_tc_hook, tch, .ifindex = ifindex,
		    .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = NM_TC_HANDLE,
		    .priority = NM_TC_PRIO, .prog_fd = prog_fd,
		    .flags = BPF_TC_F_REPLACE);
	const char *hook = point == BPF_TC_EGRESS ? "egress" : "ingress";
	int err;

	/* The clsact qdisc may already be there: ours from a previous run or another's. */
	nm_log_mute_libbpf(true);
	err = bpf_tc_hook_create(&tch);
	nm_log_mute_libbpf(false);
	if (err && err != -EEXIST) {
		pr_warn("failed to create clsact hook on %s: %s", ifname,
			strerror(-err));
		return err;
	}
	/* REPLACE on a fixed handle/prio swaps the program with no gap. */
	err = bpf_tc_attach(&tch, &opts);
	if (err) {
		pr_warn("failed to attach %s on %s tc %s: %s", prog, ifname,
			hook, strerror(-err));
		return err;
	}
	pr_info("attached %s (prog id %u) on %s tc %s", prog, opts.prog_id,
		ifname, hook);
	return 0;
}

static int tc_attach_one(int prog_fd, const char *ifname, enum nm_tc_hook hook)
{
	int ifindex;

	ifindex = iface_index(ifname, "attach", hook);
	if (ifindex < 0)
		return ifindex;
	return tc_attach_fd(prog_fd, ifindex, ifname, tc_point(hook),
			    nm_tc_prog_name(hook));
}

int nm_overlay_attach(const struct nm_datapath *dp, int ifindex,
		      const char *ifname)
{
	return tc_attach_fd(bpf_program__fd(dp->oskel->progs.nm_from_overlay),
			    ifindex, ifname, BPF_TC_INGRESS, "nm_from_overlay");
}

int nm_tc_attach(const struct nm_datapath *dp, const char *ifname)
{
	/*
	 * to-pod first: it rev-NATs replies of service flows, so it must be
	 * in place before from-pod starts DNATing new ones.
	 */
	static const enum nm_tc_hook order[] = { NM_TC_TO_POD, NM_TC_FROM_POD };
	size_t i;
	int fd, err;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		fd = nm_datapath_prog_fd(dp, order[i]);
		if (fd < 0)
			return fd;
		err = tc_attach_one(fd, ifname, order[i]);
		if (err)
			return err;
	}
	return 0;
}

int nm_tc_query(const char *ifname, enum nm_tc_hook hook, __u32 *prog_id)
{
	LIBBPF_OPTS(bpf_tc_hook, tch, .attach_point = tc_point(hook));
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = NM_TC_HANDLE,
		    .priority = NM_TC_PRIO);
	int ifindex, err;

	ifindex = iface_index(ifname, "query", hook);
	if (ifindex < 0)
		return ifindex;
	tch.ifindex = ifindex;
	/* "Not there" is an answer here, not a warning worth libbpf's log. */
	nm_log_mute_libbpf(true);
	err = bpf_tc_query(&tch, &opts);
	nm_log_mute_libbpf(false);
	/* No clsact qdisc at all comes back as EINVAL: nothing of ours either. */
	if (err == -EINVAL || err == -ENOENT)
		return -ENOENT;
	if (err) {
		pr_warn("failed to query %s on %s tc %s: %s",
			nm_tc_prog_name(hook), ifname, nm_tc_hook_name(hook),
			strerror(-err));
		return err;
	}
	*prog_id = opts.prog_id;
	return 0;
}

static int tc_detach_one(const char *ifname, enum nm_tc_hook hook)
{
	LIBBPF_OPTS(bpf_tc_hook, tch, .attach_point = tc_point(hook));
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = NM_TC_HANDLE,
		    .priority = NM_TC_PRIO);
	__u32 prog_id;
	int ifindex, err;

	err = nm_tc_query(ifname, hook, &prog_id);
	if (err)
		return err;
	ifindex = iface_index(ifname, "detach", hook);
	if (ifindex < 0)
		return ifindex;
	tch.ifindex = ifindex;
	err = bpf_tc_detach(&tch, &opts);
	if (err == -ENOENT || err == -EINVAL)
		return -ENOENT;
	if (err) {
		pr_warn("failed to detach %s on %s tc %s: %s",
			nm_tc_prog_name(hook), ifname, nm_tc_hook_name(hook),
			strerror(-err));
		return err;
	}
	pr_info("detached %s (prog id %u) from %s tc %s",
		nm_tc_prog_name(hook), prog_id, ifname, nm_tc_hook_name(hook));
	return 0;
}

int nm_tc_detach(const char *ifname)
{
	bool found = false;
	int hook, err;

	/* from-pod first: no new service flow is DNATed once to-pod is gone. */
	for (hook = NM_TC_FROM_POD; hook < NM_TC_HOOKS; hook++) {
		err = tc_detach_one(ifname, hook);
		if (err == -ENOENT)
			continue;
		if (err)
			return err;
		found = true;
	}
	return found ? 0 : -ENOENT;
}

static const struct {
	const char *name;
	size_t off;
} map_fds[] = {
	{ NM_MAP_SERVICES, offsetof(struct nm_maps, services) },
	{ NM_MAP_BACKENDS, offsetof(struct nm_maps, backends) },
	{ NM_MAP_MAGLEV, offsetof(struct nm_maps, maglev) },
	{ NM_MAP_REVNAT, offsetof(struct nm_maps, revnat) },
	{ NM_MAP_CT, offsetof(struct nm_maps, ct) },
	{ NM_MAP_METRICS, offsetof(struct nm_maps, metrics) },
	{ NM_MAP_CONFIG, offsetof(struct nm_maps, config) },
	{ NM_MAP_IPCACHE, offsetof(struct nm_maps, ipcache) },
	{ NM_MAP_ENDPOINTS, offsetof(struct nm_maps, endpoints) },
	{ NM_MAP_POLICY, offsetof(struct nm_maps, policy) },
	{ NM_MAP_EVENTS, offsetof(struct nm_maps, events) },
	{ NM_MAP_NODES, offsetof(struct nm_maps, nodes) },
	{ NM_MAP_TUNNEL, offsetof(struct nm_maps, tunnel) },
};

#define MAP_FD(maps, i) ((int *)((char *)(maps) + map_fds[i].off))

int nm_maps_open(const char *pin_root, struct nm_maps *maps)
{
	const char *root = nm_pin_root(pin_root);
	char path[PATH_MAX];
	__u32 key = 0;
	size_t i;
	int err;

	memset(maps, 0, sizeof(*maps));
	for (i = 0; i < sizeof(map_fds) / sizeof(map_fds[0]); i++)
		*MAP_FD(maps, i) = -1;
	maps->root_fd = -1;
	if (strlen(root) >= sizeof(maps->pin_root)) {
		pr_warn("failed to open maps on %s: path too long", root);
		return -ENAMETOOLONG;
	}
	strcpy(maps->pin_root, root);

	for (i = 0; i < sizeof(map_fds) / sizeof(map_fds[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", root, map_fds[i].name);
		*MAP_FD(maps, i) = bpf_obj_get(path);
		if (*MAP_FD(maps, i) < 0) {
			err = -errno;
			pr_warn("failed to open map %s on %s: %s%s", map_fds[i].name,
				root, strerror(-err),
				err == -ENOENT ?
					" (is the datapath loaded? run 'nodemeshctl attach IFACE')" :
					"");
			goto err_close;
		}
	}
	err = bpf_map_lookup_elem(maps->config, &key, &maps->cfg);
	if (err) {
		err = -errno;
		pr_warn("failed to read map %s on %s: %s", NM_MAP_CONFIG, root,
			strerror(-err));
		goto err_close;
	}
	if (maps->cfg.abi_version != NM_ABI_VERSION || !maps->cfg.maglev_m ||
	    !maps->cfg.maglev_tables || !maps->cfg.services_max ||
	    !maps->cfg.backends_max) {
		pr_warn("failed to read map %s on %s: ABI version %u, M %u, %u tables, %u services, %u backends; expected ABI %u written by the loader (run 'nodemeshctl attach IFACE')",
			NM_MAP_CONFIG, root, maps->cfg.abi_version,
			maps->cfg.maglev_m, maps->cfg.maglev_tables,
			maps->cfg.services_max, maps->cfg.backends_max,
			NM_ABI_VERSION);
		err = -EINVAL;
		goto err_close;
	}
	maps->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (maps->root_fd < 0) {
		err = -errno;
		pr_warn("failed to open pin root %s: %s", root, strerror(-err));
		goto err_close;
	}
	return 0;

err_close:
	nm_maps_close(maps);
	return err;
}

void nm_maps_close(struct nm_maps *maps)
{
	size_t i;

	for (i = 0; i < sizeof(map_fds) / sizeof(map_fds[0]); i++) {
		if (*MAP_FD(maps, i) >= 0)
			close(*MAP_FD(maps, i));
		*MAP_FD(maps, i) = -1;
	}
	if (maps->root_fd >= 0)
		close(maps->root_fd);
	maps->root_fd = -1;
}

int nm_maps_lock(struct nm_maps *maps)
{
	if (flock(maps->root_fd, LOCK_EX)) {
		int err = -errno;

		pr_warn("failed to lock pin root %s: %s", maps->pin_root,
			strerror(-err));
		return err;
	}
	return 0;
}

void nm_maps_unlock(struct nm_maps *maps)
{
	/* Closing the fd would drop it too; unlock failures are harmless. */
	if (flock(maps->root_fd, LOCK_UN))
		pr_debug("failed to unlock pin root %s: %s", maps->pin_root,
			 strerror(errno));
}
