// SPDX-License-Identifier: GPL-2.0
/*
 * The agent's local API: HTTP/1.1 on a unix socket (libmicrohttpd, one
 * internal thread), read-only today:
 *
 *   GET /v1/status    application/json, built by the daemon's callback
 *
 * The socket is created mode 0600 (root only): it shows the node's view of
 * every cluster. A stale socket left by a dead agent is replaced; any other
 * file at the path is refused.
 */
#ifndef NM_AGENT_API_H
#define NM_AGENT_API_H

/* The JSON document of GET /v1/status, malloc'd; NULL on failure. */
typedef char *(*nm_api_status_fn)(void *arg);

struct nm_api;

int nm_api_start(const char *path, nm_api_status_fn status, void *arg,
		 struct nm_api **out);
/* Stop serving, close and unlink the socket. */
void nm_api_stop(struct nm_api *api);

#endif /* NM_AGENT_API_H */
