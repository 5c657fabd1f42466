// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
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

#define EP_PREFIX "/v1/endpoints"

struct nm_api {
	struct MHD_Daemon *mhd;
	int fd;
	struct nm_api_ops ops;
	void *arg;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One request, kept by MHD between calls of the handler. */
struct request {
	char *body; /* NUL-terminated */
	size_t len;
	bool too_big; /* the rest of the body is read and dropped */
	bool answered; /* refused before its body came */
};

char *nm_api_error_json(const char *reason)
{
	size_t len = 16, i;
	const char *s;
	char *out, *p;

	/* \u00XX is the longest escape: six bytes for one. */
	for (s = reason; *s; s++)
		len += 6;
	out = malloc(len);
	if (!out)
		return NULL;
	p = out + sprintf(out, "{\"error\":\"");
	for (i = 0; reason[i]; i++) {
		unsigned char c = (unsigned char)reason[i];

		if (c == '"' || c == '\\')
			p += sprintf(p, "\\%c", c);
		else if (c < 0x20)
			p += sprintf(p, "\\u%04x", c);
		else
			*p++ = (char)c;
	}
	strcpy(p, "\"}\n");
	return out;
}

#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Queue @body of @type (malloc'd, taken over; NULL: a generic 500). */
static enum MHD_Result reply_as(struct MHD_Connection *conn, unsigned int code,
				char *body, const char *allow, const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body) {
		code = MHD_HTTP_INTERNAL_SERVER_ERROR;
		type = "application/json";
		body = nm_api_error_json(
			"failed to build the answer: out of memory");
		if (!body)
			return MHD_NO;
	}
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) ==
		    MHD_NO ||
	    (allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
					      allow) == MHD_NO)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code,
			     char *body, const char *allow)
{
	return reply_as(conn, code, body, allow, "application/json");
}

static enum MHD_Result error_reply(struct MHD_Connection *conn,
				   unsigned int code, const char *why)
{
	return reply(conn, code, nm_api_error_json(why), NULL);
}

static enum MHD_Result not_allowed(struct MHD_Connection *conn,
				   const char *method, const char *url,
				   const char *allow)
{
	char why[256];

	snprintf(why, sizeof(why), "method %.16s not allowed on %.64s: use %s",
		 method, url, allow);
	return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, nm_api_error_json(why),
		     allow);
}

/*
 * /v1/endpoints/<container>/<ifname>[/drain]: both parts non-empty, no
 * more '/'.
 */
static enum MHD_Result endpoint_route(struct nm_api *api,
				      struct MHD_Connection *conn,
				      const char *url, const char *method)
{
	const char *rest = url + strlen(EP_PREFIX "/");
	const char *slash = strchr(rest, '/'), *action;
	char cid[512], ifname[512];
	char *body = NULL;
	unsigned int code;
	size_t n;

	action = slash ? strchr(slash + 1, '/') : NULL;
	if (!slash || slash == rest || !slash[1] || action == slash + 1 ||
	    (action && strcmp(action, "/drain")) ||
	    (size_t)(slash - rest) >= sizeof(cid) ||
	    (action ? (size_t)(action - slash - 1) : strlen(slash + 1)) >=
		    sizeof(ifname))
		return error_reply(
			conn, MHD_HTTP_NOT_FOUND,
			"no such resource: expected /v1/endpoints/CONTAINER_ID/IFNAME[/drain]");
	n = (size_t)(slash - rest);
	memcpy(cid, rest, n);
	cid[n] = '\0';
	n = action ? (size_t)(action - slash - 1) : strlen(slash + 1);
	memcpy(ifname, slash + 1, n);
	ifname[n] = '\0';
	if (action) {
		if (!api->ops.ep_drain)
			return error_reply(conn, MHD_HTTP_NOT_FOUND,
					   "no such resource");
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			return not_allowed(conn, method, url, "POST");
		code = api->ops.ep_drain(api->arg, cid, ifname, &body);
		return reply(conn, code, body, NULL);
	}
	if (!strcmp(method, MHD_HTTP_METHOD_GET))
		code = api->ops.ep_get(api->arg, cid, ifname, &body);
	else if (!strcmp(method, MHD_HTTP_METHOD_DELETE))
		code = api->ops.ep_del(api->arg, cid, ifname, &body);
	else
		return not_allowed(conn, method, url, "GET, DELETE");
	return reply(conn, code, body, NULL);
}

static enum MHD_Result route(struct nm_api *api, struct MHD_Connection *conn,
			     const char *url, const char *method,
			     const struct request *req)
{
	bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
	char *body = NULL;
	unsigned int code;

	if (req->len && !post)
		return error_reply(conn, MHD_HTTP_BAD_REQUEST,
				   "no request body expected");
	if (!strcmp(url, "/v1/status") && api->ops.status) {
		if (strcmp(method, MHD_HTTP_METHOD_GET))
			return not_allowed(conn, method, url, "GET");
		body = api->ops.status(api->arg);
		if (!body)
			return error_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "failed to build status");
		return reply(conn, MHD_HTTP_OK, body, NULL);
	}
	if (!strcmp(url, "/v1/metrics") && api->ops.metrics) {
		if (strcmp(method, MHD_HTTP_METHOD_GET))
			return not_allowed(conn, method, url, "GET");
		body = api->ops.metrics(api->arg);
		if (!body)
			return error_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "failed to build metrics");
		return reply_as(conn, MHD_HTTP_OK, body, NULL, METRICS_TYPE);
	}
	if (!strcmp(url, EP_PREFIX) && api->ops.ep_add && api->ops.ep_list) {
		if (post)
			code = api->ops.ep_add(api->arg, req->body ?: "",
					       req->len, &body);
		else if (!strcmp(method, MHD_HTTP_METHOD_GET))
			code = api->ops.ep_list(api->arg, &body);
		else
			return not_allowed(conn, method, url, "GET, POST");
		return reply(conn, code, body, NULL);
	}
	if (!strncmp(url, EP_PREFIX "/", strlen(EP_PREFIX "/")) &&
	    api->ops.ep_get && api->ops.ep_del) {
		/* A drain is a POST without a body; only it is a POST here. */
		if (req->len)
			return error_reply(conn, MHD_HTTP_BAD_REQUEST,
					   "no request body expected");
		return endpoint_route(api, conn, url, method);
	}
	return error_reply(conn, MHD_HTTP_NOT_FOUND, "no such resource");
}

/* Keep up to NM_API_BODY_MAX bytes of the body; past that, drop it all. */
static int take_body(struct request *req, const char *data, size_t size)
{
	char *b;

	if (req->too_big)
		return 0;
	if (size > NM_API_BODY_MAX - req->len) {
		req->too_big = true;
		free(req->body);
		req->body = NULL;
		req->len = 0;
		return 0;
	}
	b = realloc(req->body, req->len + size + 1);
	if (!b)
		return -ENOMEM;
	memcpy(b + req->len, data, size);
	req->len += size;
	b[req->len] = '\0';
	req->body = b;
	return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *data_size, void **state)
{
	struct nm_api *api = cls;
	struct request *req = *state;
	const char *clen;
	char why[128];

	(void)version;
	/* The first call sees only the headers. */
	if (!req) {
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		*state = req;
		/* A body announced too big is refused before it is sent. */
		clen = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (clen && strtoull(clen, NULL, 10) > NM_API_BODY_MAX) {
			req->answered = true;
			snprintf(why, sizeof(why),
				 "request body of %.20s bytes: at most %u",
				 clen, NM_API_BODY_MAX);
			return error_reply(conn, MHD_HTTP_CONTENT_TOO_LARGE,
					   why);
		}
		return MHD_YES;
	}
	/* Upload data comes in pieces, each call consuming what it got. */
	if (*data_size) {
		if (!req->answered && take_body(req, data, *data_size))
			return MHD_NO;
		*data_size = 0;
		return MHD_YES;
	}
	if (req->answered)
		return MHD_YES;
	if (req->too_big) {
		snprintf(why, sizeof(why), "request body over %u bytes",
			 NM_API_BODY_MAX);
		return error_reply(conn, MHD_HTTP_CONTENT_TOO_LARGE, why);
	}
	return route(api, conn, url, method, req);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **state,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *req = *state;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!req)
		return;
	free(req->body);
	free(req);
	*state = NULL;
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

int nm_api_start(const char *path, const struct nm_api_ops *ops, void *arg,
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
	api->ops = *ops;
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
	api->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
					    MHD_USE_POLL | MHD_USE_ERROR_LOG,
				    0, NULL, NULL, handle, api,
				    MHD_OPTION_LISTEN_SOCKET, api->fd,
				    MHD_OPTION_CONNECTION_TIMEOUT,
				    (unsigned int)10,
				    MHD_OPTION_NOTIFY_COMPLETED, request_done,
				    NULL, MHD_OPTION_END);
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
