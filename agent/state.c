// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "agent/labels.h"
#include "agent/log.h"
#include "agent/state.h"

#define NODE_FILE "node.json"
#define EPS_FILE "endpoints.json"

const char *nm_state_dir(const char *arg)
{
	const char *env;

	if (arg && *arg)
		return arg;
	env = getenv("NODEMESH_STATE_DIR");
	if (env && *env)
		return env;
	return NM_STATE_DIR_DEFAULT;
}

/* mkdir -p of the directory part of @path (@path itself excluded). */
static int mkdir_parents(char *path)
{
	char *slash;

	for (slash = strchr(path + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(path, 0700) && errno != EEXIST) {
			int err = -errno;

			pr_warn("failed to create directory %s: %s", path,
				strerror(-err));
			*slash = '/';
			return err;
		}
		*slash = '/';
	}
	return 0;
}

static int state_path(const struct nm_state *st, const char *rel, char *buf,
		      size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/%s", st->dir, rel) >= len) {
		pr_warn("failed to name file %s on %s: path too long", rel,
			st->dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

int nm_state_write(const struct nm_state *st, const char *rel, const char *buf,
		   size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	size_t off = 0;
	int fd, err;

	err = state_path(st, rel, path, sizeof(path));
	if (err)
		return err;
	err = mkdir_parents(path);
	if (err)
		return err;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		pr_warn("failed to create file %s: %s", tmp, strerror(-err));
		return err;
	}
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			pr_warn("failed to write file %s: %s", tmp,
				strerror(-err));
			goto err_unlink;
		}
		off += (size_t)n;
	}
	/* Data on disk before the rename makes it visible. */
	if (fsync(fd)) {
		err = -errno;
		pr_warn("failed to sync file %s: %s", tmp, strerror(-err));
		goto err_unlink;
	}
	if (close(fd)) {
		fd = -1;
		err = -errno;
		pr_warn("failed to close file %s: %s", tmp, strerror(-err));
		goto err_unlink;
	}
	fd = -1;
	if (rename(tmp, path)) {
		err = -errno;
		pr_warn("failed to rename %s to %s: %s", tmp, path,
			strerror(-err));
		goto err_unlink;
	}
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err;
}

int nm_state_read(const struct nm_state *st, const char *rel, char **buf,
		  size_t *len)
{
	char path[PATH_MAX];
	struct stat sb;
	char *data = NULL;
	size_t off = 0;
	int fd, err;

	err = state_path(st, rel, path, sizeof(path));
	if (err)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err != -ENOENT)
			pr_warn("failed to open file %s: %s", path,
				strerror(-err));
		return err;
	}
	if (fstat(fd, &sb)) {
		err = -errno;
		pr_warn("failed to stat file %s: %s", path, strerror(-err));
		goto out;
	}
	data = malloc((size_t)sb.st_size + 1);
	if (!data) {
		err = -ENOMEM;
		goto out;
	}
	while (off < (size_t)sb.st_size) {
		ssize_t n = read(fd, data + off, (size_t)sb.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			pr_warn("failed to read file %s: %s", path,
				strerror(-err));
			goto out;
		}
		if (!n)
			break;
		off += (size_t)n;
	}
	data[off] = '\0';
	*buf = data;
	*len = off;
	data = NULL;
out:
	free(data);
	close(fd);
	return err;
}

int nm_state_remove(const struct nm_state *st, const char *rel)
{
	char path[PATH_MAX];
	int err;

	err = state_path(st, rel, path, sizeof(path));
	if (err)
		return err;
	if (unlink(path)) {
		err = -errno;
		if (err != -ENOENT)
			pr_warn("failed to remove file %s: %s", path,
				strerror(-err));
		return err;
	}
	return 0;
}

static int check_cluster(const char *name, __u32 id, const char *where)
{
	char msg[256];

	if (!*name || strlen(name) > NM_CLUSTER_NAME_MAX ||
	    nm_label_value_check(name, msg, sizeof(msg))) {
		pr_warn("bad cluster name '%s' on %s: must be 1..%d characters of a label value",
			name, where, NM_CLUSTER_NAME_MAX);
		return -EINVAL;
	}
	if (id < 1 || id > 65535) {
		pr_warn("bad cluster id %u on %s: must be 1..65535", id, where);
		return -EINVAL;
	}
	return 0;
}

static int read_node(struct nm_state *st, const char *buf)
{
	struct json_object *root, *name, *id;
	char where[PATH_MAX + 16];
	int err = -EINVAL;
	__s64 v;

	snprintf(where, sizeof(where), "%s/%s", st->dir, NODE_FILE);
	root = json_tokener_parse(buf);
	if (!root || !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "cluster", &name) ||
	    !json_object_is_type(name, json_type_string) ||
	    !json_object_object_get_ex(root, "cluster_id", &id) ||
	    !json_object_is_type(id, json_type_int)) {
		pr_warn("failed to parse %s: expected {\"cluster\": NAME, \"cluster_id\": N}",
			where);
		goto out;
	}
	v = json_object_get_int64(id);
	if (v < 0 || v > 65535 ||
	    check_cluster(json_object_get_string(name), (__u32)v, where))
		goto out;
	snprintf(st->node.cluster, sizeof(st->node.cluster), "%s",
		 json_object_get_string(name));
	st->node.cluster_id = (__u16)v;
	err = 0;
out:
	json_object_put(root);
	return err;
}

static int write_node(struct nm_state *st, const char *cluster, __u32 id)
{
	struct json_object *root;
	const char *text;
	int err = -ENOMEM;

	root = json_object_new_object();
	if (!root ||
	    json_object_object_add(root, "cluster",
				   json_object_new_string(cluster)) ||
	    json_object_object_add(root, "cluster_id",
				   json_object_new_int((int)id)))
		goto out;
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	if (!text)
		goto out;
	err = nm_state_write(st, NODE_FILE, text, strlen(text));
	if (err)
		goto out;
	snprintf(st->node.cluster, sizeof(st->node.cluster), "%s", cluster);
	st->node.cluster_id = (__u16)id;
out:
	json_object_put(root);
	return err;
}

int nm_state_open(const char *dir, const char *cluster, __u32 cluster_id,
		  struct nm_state *st)
{
	size_t len = strlen(dir);
	char *buf = NULL;
	int err;

	memset(st, 0, sizeof(*st));
	if (!len || dir[0] != '/' || len + 64 >= sizeof(st->dir)) {
		pr_warn("failed to open state directory '%s': must be an absolute path",
			dir);
		return -EINVAL;
	}
	memcpy(st->dir, dir, len + 1);
	while (len > 1 && st->dir[len - 1] == '/')
		st->dir[--len] = '\0';
	if ((cluster || cluster_id) && (!cluster || !cluster_id)) {
		pr_warn("failed to open state directory %s: --cluster and --cluster-id go together",
			st->dir);
		return -EINVAL;
	}
	if (cluster) {
		err = check_cluster(cluster, cluster_id, "the command line");
		if (err)
			return err;
	}

	err = nm_state_read(st, NODE_FILE, &buf, &len);
	if (err == -ENOENT) {
		if (!cluster) {
			pr_warn("failed to open state directory %s: node not initialised (pass --cluster NAME --cluster-id N, or set NODEMESH_CLUSTER and NODEMESH_CLUSTER_ID)",
				st->dir);
			return -ENOENT;
		}
		/* Create the directory itself: nm_state_write makes parents only. */
		if (mkdir(st->dir, 0700) && errno != EEXIST) {
			err = -errno;
			pr_warn("failed to create state directory %s: %s",
				st->dir, strerror(-err));
			return err;
		}
		return write_node(st, cluster, cluster_id);
	}
	if (err)
		return err;
	err = read_node(st, buf);
	free(buf);
	if (err)
		return err;
	if (cluster && (strcmp(cluster, st->node.cluster) ||
			cluster_id != st->node.cluster_id)) {
		pr_warn("failed to open state directory %s: node belongs to cluster '%s' (id %u), not '%s' (id %u); a node cannot change cluster",
			st->dir, st->node.cluster, st->node.cluster_id, cluster,
			cluster_id);
		return -EINVAL;
	}
	return 0;
}

/* endpoints.json as a JSON object (empty when absent). */
static int read_eps(const struct nm_state *st, struct json_object **out)
{
	struct json_object *root;
	char *buf = NULL;
	size_t len;
	int err;

	err = nm_state_read(st, EPS_FILE, &buf, &len);
	if (err == -ENOENT) {
		*out = json_object_new_object();
		return *out ? 0 : -ENOMEM;
	}
	if (err)
		return err;
	root = json_tokener_parse(buf);
	free(buf);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		pr_warn("failed to parse %s/%s: expected a JSON object",
			st->dir, EPS_FILE);
		return -EINVAL;
	}
	*out = root;
	return 0;
}

int nm_state_set_ep_name(const struct nm_state *st, const char *ip,
			 const char *ns, const char *name)
{
	struct json_object *root;
	const char *text;
	char full[NM_CLUSTER_NAME_MAX * 2 + 512];
	int err;

	err = read_eps(st, &root);
	if (err)
		return err;
	if (name) {
		snprintf(full, sizeof(full), "%s/%s", ns, name);
		if (json_object_object_add(root, ip,
					   json_object_new_string(full))) {
			err = -ENOMEM;
			goto out;
		}
	} else {
		json_object_object_del(root, ip);
	}
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	err = text ? nm_state_write(st, EPS_FILE, text, strlen(text)) : -ENOMEM;
out:
	json_object_put(root);
	return err;
}

int nm_state_get_ep_name(const struct nm_state *st, const char *ip, char *buf,
			 size_t len)
{
	struct json_object *root, *v;
	int err;

	err = read_eps(st, &root);
	if (err)
		return err;
	if (!json_object_object_get_ex(root, ip, &v) ||
	    !json_object_is_type(v, json_type_string))
		err = -ENOENT;
	else
		snprintf(buf, len, "%s", json_object_get_string(v));
	json_object_put(root);
	return err;
}
