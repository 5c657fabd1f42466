// SPDX-License-Identifier: GPL-2.0
/*
 * The agent's local API: HTTP/1.1 on a unix socket (libmicrohttpd, one
 * internal thread, so one request at a time):
 *
 *   GET    /v1/status                        the node's status
 *   GET    /v1/metrics                       the same counters for Prometheus
 *   POST   /v1/endpoints                     add a pod's endpoint (CNI ADD)
 *   GET    /v1/endpoints                     every endpoint added here
 *   GET    /v1/endpoints/<container>/<if>    one of them
 *   DELETE /v1/endpoints/<container>/<if>    remove it (CNI DEL)
 *   POST   /v1/endpoints/<container>/<if>/drain  mark it terminating: no
 *                                            new service flows (no body)
 *
 * This layer only routes: it reads the request body (at most
 * NM_API_BODY_MAX bytes, else 413), finds the route and hands over to the
 * daemon's callbacks, which parse, decide and answer with an HTTP status
 * and a JSON document (metrics: the Prometheus text format). Errors are
 * {"error":"<reason>"}.
 *
 * The socket is created mode 0600 (root only): it changes the node's
 * datapath and shows its view of every cluster. A stale socket left by a
 * dead agent is replaced; any other file at the path is refused.
 */
#ifndef NM_AGENT_API_H
#define NM_AGENT_API_H

#include <stddef.h>

#define NM_API_BODY_MAX (64U << 10)

/*
 * The daemon's side. Each callback returns the HTTP status and sets *@out
 * to a malloc'd JSON document (NULL: 500 with a generic reason). Routes
 * whose callbacks are NULL answer 404.
 */
struct nm_api_ops {
	/* GET /v1/status: the document, malloc'd; NULL on failure. */
	char *(*status)(void *arg);
	/* GET /v1/metrics: Prometheus text (0.0.4), malloc'd; NULL on failure. */
	char *(*metrics)(void *arg);
	unsigned int (*ep_add)(void *arg, const char *body, size_t len,
			       char **out);
	unsigned int (*ep_list)(void *arg, char **out);
	unsigned int (*ep_get)(void *arg, const char *container_id,
			       const char *ifname, char **out);
	unsigned int (*ep_del)(void *arg, const char *container_id,
			       const char *ifname, char **out);
	unsigned int (*ep_drain)(void *arg, const char *container_id,
				 const char *ifname, char **out);
};

struct nm_api;

/* Serve @ops (copied) on @path; @arg is passed to every callback. */
int nm_api_start(const char *path, const struct nm_api_ops *ops, void *arg,
		 struct nm_api **out);
/* Stop serving, close and unlink the socket. */
void nm_api_stop(struct nm_api *api);

/* {"error":"@reason"} with a newline, escaped, malloc'd; NULL on ENOMEM. */
char *nm_api_error_json(const char *reason);

#endif /* NM_AGENT_API_H */
