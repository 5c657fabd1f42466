// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <microhttpd.h>

#include "agent/api.h"
#include "agent/log.h"

struct nm_api {
	struct MHD_Daemon *mhd;
	int fd;
	nm_api_status_fn status;
	void *arg;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code,
			     char *body, const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) ==
	    MHD_NO) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result error_reply(struct MHD_Connection *conn,
				   unsigned int code, const char *why)
{
	size_t len = strlen(why) + 16;
	char *body = malloc(len);

	if (!body)
		return MHD_NO;
	snprintf(body, len, "{\"error\":\"%s\"}\n", why);
	return reply(conn, code, body, "application/json");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *data_size, void **state)
{
	static int first_call;
	struct nm_api *api = cls;
	char *body;

	(void)version;
	(void)data;
	/* The first call sees only the headers: answer on the second. */
	if (*state != &first_call) {
		*state = &first_call;
		return MHD_YES;
	}
	if (*data_size)
		return error_reply(conn, MHD_HTTP_BAD_REQUEST,
				   "no request body expected");
	if (strcmp(url, "/v1/status"))
		return error_reply(conn, MHD_HTTP_NOT_FOUND,
				   "no such resource");
	if (strcmp(method, "GET"))
		return error_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				   "only GET");
	body = api->status(api->arg);
	if (!body)
		return error_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				   "failed to build status");
	return reply(conn, MHD_HTTP_OK, body, "application/json");
}

/* Remove a socket a dead agent left at @path; refuse anything else. */
static int clear_stale(const char *path)
{
	struct stat st;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if (unlink(path))
		return -errno;
	return 0;
}

int nm_api_start(const char *path, nm_api_status_fn status, void *arg,
		 struct nm_api **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct nm_api *api;
	mode_t old;
	int err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		pr_warn("failed to listen on %s: path too long for a unix socket",
			path);
		return -ENAMETOOLONG;
	}
	api = calloc(1, sizeof(*api));
	if (!api)
		return -ENOMEM;
	strcpy(api->path, path);
	strcpy(sa.sun_path, path);
	api->status = status;
	api->arg = arg;
	api->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (api->fd < 0) {
		err = -errno;
		pr_warn("failed to create socket for %s: %s", path,
			strerror(-err));
		goto err_free;
	}
	err = clear_stale(path);
	if (err) {
		pr_warn("failed to listen on %s: %s", path,
			err == -EEXIST ?
				"a file that is not a socket is there" :
				strerror(-err));
		goto err_close;
	}
	/* Created 0600 from the start: no window where others may connect. */
	old = umask(0177);
	err = bind(api->fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (!err && listen(api->fd, 16))
		err = -errno;
	if (err) {
		pr_warn("failed to listen on %s: %s", path, strerror(-err));
		goto err_unlink;
	}
	/* poll(), not select(): with hundreds of clusters the agent's
	 * descriptors pass FD_SETSIZE and select() refuses every client. */
	api->mhd = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			MHD_USE_ERROR_LOG,
		0, NULL,
		NULL, handle, api, MHD_OPTION_LISTEN_SOCKET, api->fd,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
		MHD_OPTION_END);
	if (!api->mhd) {
		err = -EIO;
		pr_warn("failed to start HTTP server on %s", path);
		goto err_unlink;
	}
	*out = api;
	return 0;

err_unlink:
	unlink(path);
err_close:
	close(api->fd);
err_free:
	free(api);
	return err;
}

void nm_api_stop(struct nm_api *api)
{
	if (!api)
		return;
	/* MHD closes the listening socket it was given. */
	MHD_stop_daemon(api->mhd);
	unlink(api->path);
	free(api);
}
