// SPDX-License-Identifier: GPL-2.0
/*
 * nodemesh-cni: a CNI 1.0.0 chained plugin. Listed after a plugin that
 * creates the pod's veth (ptp), it registers the pod with the node's
 * agent over the agent's unix socket (POST, GET and DELETE on
 * /v1/endpoints), lowers the pod's MTU to the one the agent answers, and
 * hands prevResult on as its result. Results and error objects go to
 * stdout as the spec says, logs to stderr. Parsing lives in agent/cni.c.
 *
 * The process is single-threaded, so setns() moves all of it into the
 * pod's namespace and back. NODEMESH_CNI_DEBUG=1 in the environment adds
 * debug lines to stderr.
 */
#define _GNU_SOURCE /* setns, asprintf */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <curl/curl.h>

#include "agent/cni.h"
#include "agent/log.h"
#include "agent/parse.h"

/* The agent answers at once or is stuck: do not hold the runtime longer. */
#define NM_AGENT_TIMEOUT_S 30L
#define NM_REPLY_MAX (1024 * 1024)

struct reply {
	char *buf; /* NUL-terminated, NULL when empty */
	size_t len;
	long status;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = size * n;
	char *b;

	/* Returning less than @len makes curl fail with CURLE_WRITE_ERROR. */
	if (len > NM_REPLY_MAX - r->len)
		return 0;
	b = realloc(r->buf, r->len + len + 1);
	if (!b)
		return 0;
	memcpy(b + r->len, p, len);
	r->len += len;
	b[r->len] = '\0';
	r->buf = b;
	return len;
}

#define SETOPT(h, opt, val)                                     \
	do {                                                    \
		CURLcode ___rc = curl_easy_setopt(h, opt, val); \
		if (___rc != CURLE_OK && setopt_rc == CURLE_OK) \
			setopt_rc = ___rc;                      \
	} while (0)

/*
 * @method @path on the agent at @sock with an optional JSON @body; the
 * answer (any status) in @r. An agent that is not there, or not
 * answering, is "try again later"; other transport failures are I/O
 * failures.
 */
static int agent_call(const char *sock, const char *method, const char *path,
		      const char *body, struct reply *r, struct nm_cni_error *e)
{
	char errbuf[CURL_ERROR_SIZE] = "", *url = NULL;
	struct curl_slist *hdrs = NULL, *h;
	CURLcode setopt_rc = CURLE_OK, rc;
	long os_errno = 0;
	CURL *c;
	int ret = 0;

	memset(r, 0, sizeof(*r));
	c = curl_easy_init();
	if (!c)
		return nm_cni_err(
			e, NM_CNI_E_IO,
			"failed to create an HTTP client for the agent on %s",
			sock);
	/* The host part is ignored on a unix socket; HTTP/1.1 wants one. */
	if (asprintf(&url, "http://localhost%s", path) < 0) {
		url = NULL;
		goto err_nomem;
	}
	h = curl_slist_append(NULL, "Content-Type: application/json");
	if (!h)
		goto err_nomem;
	hdrs = h;
	/* No "Expect: 100-continue" round trip before the body. */
	h = curl_slist_append(hdrs, "Expect:");
	if (!h)
		goto err_nomem;
	hdrs = h;
	SETOPT(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	SETOPT(c, CURLOPT_URL, url);
	SETOPT(c, CURLOPT_PROTOCOLS_STR, "http");
	SETOPT(c, CURLOPT_CUSTOMREQUEST, method);
	SETOPT(c, CURLOPT_HTTPHEADER, hdrs);
	SETOPT(c, CURLOPT_NOSIGNAL, 1L);
	SETOPT(c, CURLOPT_TIMEOUT, NM_AGENT_TIMEOUT_S);
	SETOPT(c, CURLOPT_ERRORBUFFER, errbuf);
	SETOPT(c, CURLOPT_WRITEFUNCTION, on_data);
	SETOPT(c, CURLOPT_WRITEDATA, r);
	if (body) {
		SETOPT(c, CURLOPT_POSTFIELDS, body);
		SETOPT(c, CURLOPT_POSTFIELDSIZE_LARGE,
		       (curl_off_t)strlen(body));
	}
	if (setopt_rc != CURLE_OK) {
		ret = nm_cni_err(
			e, NM_CNI_E_IO,
			"failed to set up the request to the agent on %s: %s",
			sock, curl_easy_strerror(setopt_rc));
		goto out;
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT) {
		if (curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno) !=
		    CURLE_OK)
			os_errno = 0;
		nm_cni_err(
			e, NM_CNI_E_TRY_AGAIN,
			"nodemesh agent not reachable on %s, try again later",
			sock);
		nm_cni_err_details(
			e, "failed to %s %s on %s: %s", method, path, sock,
			rc == CURLE_COULDNT_CONNECT && os_errno ?
				strerror((int)os_errno) :
				(errbuf[0] ? errbuf : curl_easy_strerror(rc)));
		ret = -EAGAIN;
		goto out;
	}
	if (rc != CURLE_OK) {
		ret = nm_cni_err(e, NM_CNI_E_IO,
				 "failed to %s %s on the agent on %s: %s",
				 method, path, sock,
				 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	rc = curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (rc != CURLE_OK)
		ret = nm_cni_err(
			e, NM_CNI_E_IO,
			"failed to read the agent's answer to %s %s: %s",
			method, path, curl_easy_strerror(rc));
	goto out;
err_nomem:
	ret = nm_cni_err(
		e, NM_CNI_E_IO,
		"failed to build the request to the agent: out of memory");
out:
	if (ret) {
		free(r->buf);
		memset(r, 0, sizeof(*r));
	}
	curl_slist_free_all(hdrs);
	free(url);
	curl_easy_cleanup(c);
	return ret;
}

/* An answer other than 200: the agent's reason in the CNI error. */
static int agent_refused(const char *what, const char *method, const char *path,
			 const char *sock, const struct reply *r,
			 struct nm_cni_error *e)
{
	char why[512];

	nm_cni_agent_reason(r->buf ? r->buf : "", r->len, why, sizeof(why));
	/* 503: the agent is up but its maps or etcd are not ready yet. */
	nm_cni_err(e, r->status == 503 ? NM_CNI_E_TRY_AGAIN : NM_CNI_E_AGENT,
		   "failed to %s on the nodemesh agent: %s", what, why);
	nm_cni_err_details(e, "%s %s on %s: HTTP %ld: %s", method, path, sock,
			   r->status, why);
	return -EPROTO;
}

/* "/v1/endpoints/<id>/<ifname>", both escaped; NULL when out of memory. */
static char *endpoint_path(const char *container_id, const char *ifname)
{
	char *id = NULL, *ifn = NULL, *path = NULL;
	CURL *c;

	c = curl_easy_init();
	if (!c)
		return NULL;
	id = curl_easy_escape(c, container_id, 0);
	ifn = curl_easy_escape(c, ifname, 0);
	if (id && ifn && asprintf(&path, "/v1/endpoints/%s/%s", id, ifn) < 0)
		path = NULL;
	curl_free(ifn);
	curl_free(id);
	curl_easy_cleanup(c);
	return path;
}

/* Lower @ifname's MTU (in this namespace) to @mtu; never raise it. */
static int lower_mtu(const char *ifname, unsigned int mtu, const char *where,
		     struct nm_cni_error *e)
{
	struct ifreq ifr = {};
	int fd, ret = 0;

	/* The socket's namespace is the one its ioctls act on. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nm_cni_err(
			e, NM_CNI_E_MTU,
			"failed to set the MTU of %s in %s: socket: %s", ifname,
			where, strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFMTU, &ifr)) {
		ret = nm_cni_err(e, NM_CNI_E_MTU,
				 "failed to read the MTU of %s in %s: %s",
				 ifname, where, strerror(errno));
		goto out;
	}
	if (ifr.ifr_mtu <= (int)mtu)
		goto out;
	pr_debug("lowering the MTU of %s in %s from %d to %u", ifname, where,
		 ifr.ifr_mtu, mtu);
	ifr.ifr_mtu = (int)mtu;
	if (ioctl(fd, SIOCSIFMTU, &ifr))
		ret = nm_cni_err(e, NM_CNI_E_MTU,
				 "failed to set the MTU of %s in %s to %u: %s",
				 ifname, where, mtu, strerror(errno));
out:
	close(fd);
	return ret;
}

/*
 * Lower the MTU of @ifname inside @netns. After a failure to come back to
 * the host namespace the caller must not touch host interfaces: it only
 * sees the error like any other.
 */
static int lower_mtu_in(const char *netns, const char *ifname, unsigned int mtu,
			struct nm_cni_error *e)
{
	int self, target, ret;

	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return nm_cni_err(
			e, NM_CNI_E_MTU,
			"failed to open the host network namespace /proc/self/ns/net: %s",
			strerror(errno));
	target = open(netns, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		ret = nm_cni_err(
			e, NM_CNI_E_MTU,
			"failed to open the pod network namespace %s: %s",
			netns, strerror(errno));
		goto out_self;
	}
	if (setns(target, CLONE_NEWNET)) {
		ret = nm_cni_err(
			e, NM_CNI_E_MTU,
			"failed to enter the pod network namespace %s: %s",
			netns, strerror(errno));
		goto out_target;
	}
	ret = lower_mtu(ifname, mtu, netns, e);
	if (setns(self, CLONE_NEWNET)) {
		ret = nm_cni_err(
			e, NM_CNI_E_MTU,
			"failed to return from the pod network namespace %s to the host's: %s",
			netns, strerror(errno));
	}
out_target:
	close(target);
out_self:
	close(self);
	return ret;
}

struct invocation {
	struct nm_cni_env env;
	struct nm_cni_args args;
	struct nm_cni_conf conf;
};

/* Print @doc and a newline on stdout; the runtime reads it all. */
static int emit(const char *doc)
{
	if (fputs(doc, stdout) == EOF || fputc('\n', stdout) == EOF ||
	    fflush(stdout) == EOF) {
		pr_warn("failed to write the result to stdout: %s",
			strerror(errno));
		return -EIO;
	}
	return 0;
}

/* Undo a POST whose ADD failed later; the runtime may never call DEL. */
static void add_rollback(struct invocation *inv, const char *path)
{
	struct nm_cni_error e;
	struct reply r;

	if (agent_call(inv->conf.agent_socket, "DELETE", path, NULL, &r, &e)) {
		pr_warn("failed to remove endpoint %s after a failed ADD: %s%s%s",
			path, e.msg, e.details[0] ? ": " : "", e.details);
		return;
	}
	if (r.status != 200)
		pr_warn("failed to remove endpoint %s after a failed ADD: HTTP %ld",
			path, r.status);
	free(r.buf);
}

static int cmd_add(struct invocation *inv, struct nm_cni_error *e)
{
	const char *ep_path = "/v1/endpoints";
	char ns[64], name[256], why[256], *body = NULL, *path = NULL;
	char *result = NULL;
	struct nm_labels labels = {};
	struct nm_cni_prev prev;
	struct nm_cni_ep ep;
	struct reply r = {};
	int ret;

	ret = nm_cni_prev_parse(inv->conf.prev, inv->env.ifname, &prev, e);
	if (ret)
		return ret;
	ret = nm_cni_labels_merge(&inv->conf.labels, &inv->args, &labels, e);
	if (ret)
		return ret;
	ret = nm_cni_pod_ident(&inv->args, inv->env.container_id, ns,
			       sizeof(ns), name, sizeof(name), e);
	if (ret)
		goto out;
	body = nm_cni_ep_request_json(&(struct nm_cni_ep_req){
		.container_id = inv->env.container_id,
		.ifname = inv->env.ifname,
		.netns = inv->env.netns,
		.pod_namespace = ns,
		.pod_name = name,
		.labels = &labels,
		.prev = &prev,
	});
	path = endpoint_path(inv->env.container_id, inv->env.ifname);
	if (!body || !path) {
		ret = nm_cni_err(
			e, NM_CNI_E_IO,
			"failed to build the endpoint request: out of memory");
		goto out;
	}
	ret = agent_call(inv->conf.agent_socket, "POST", ep_path, body, &r, e);
	if (ret)
		goto out;
	if (r.status != 200) {
		ret = agent_refused("add the endpoint", "POST", ep_path,
				    inv->conf.agent_socket, &r, e);
		goto out;
	}
	ret = nm_cni_ep_parse(r.buf ? r.buf : "", r.len, &ep, why, sizeof(why));
	if (!ret && !ep.mtu) {
		snprintf(why, sizeof(why), "no field 'mtu'");
		ret = -EBADMSG;
	}
	if (ret) {
		nm_cni_err(e, NM_CNI_E_AGENT,
			   "failed to read the agent's answer to POST %s: %s",
			   ep_path, why);
		goto out_rollback;
	}
	ret = lower_mtu_in(inv->env.netns, inv->env.ifname, ep.mtu, e);
	if (!ret)
		ret = lower_mtu(prev.host_ifname, ep.mtu, "the host namespace",
				e);
	if (ret)
		goto out_rollback;
	result = nm_cni_result_json(&inv->conf);
	if (!result) {
		ret = nm_cni_err(e, NM_CNI_E_IO,
				 "failed to build the result: out of memory");
		goto out_rollback;
	}
	ret = emit(result);
	if (!ret)
		goto out;
out_rollback:
	add_rollback(inv, path);
out:
	free(result);
	free(r.buf);
	free(path);
	free(body);
	nm_labels_free(&labels);
	return ret;
}

/* @method on @inv's endpoint, without a body; *@path freed by the caller. */
static int endpoint_call(const struct invocation *inv, const char *method,
			 char **path, struct reply *r, struct nm_cni_error *e)
{
	*path = endpoint_path(inv->env.container_id, inv->env.ifname);
	if (!*path)
		return nm_cni_err(
			e, NM_CNI_E_IO,
			"failed to build the endpoint path: out of memory");
	return agent_call(inv->conf.agent_socket, method, *path, NULL, r, e);
}

static int cmd_del(struct invocation *inv, struct nm_cni_error *e)
{
	struct reply r = {};
	char *path = NULL;
	int ret;

	ret = endpoint_call(inv, "DELETE", &path, &r, e);
	if (ret)
		goto out;
	/* Unknown is gone already: DEL is idempotent. */
	if (r.status != 200 && r.status != 404)
		ret = agent_refused("delete the endpoint", "DELETE", path,
				    inv->conf.agent_socket, &r, e);
out:
	free(r.buf);
	free(path);
	return ret;
}

static int cmd_check(struct invocation *inv, struct nm_cni_error *e)
{
	char why[256], *path = NULL;
	__be32 want, have;
	struct nm_cni_prev prev;
	struct nm_cni_ep ep;
	struct reply r = {};
	int ret;

	ret = nm_cni_prev_parse(inv->conf.prev, inv->env.ifname, &prev, e);
	if (ret)
		return ret;
	ret = endpoint_call(inv, "GET", &path, &r, e);
	if (ret)
		goto out;
	if (r.status == 404) {
		ret = nm_cni_err(e, NM_CNI_E_NOT_FOUND,
				 "the nodemesh agent has no endpoint %s/%s",
				 inv->env.container_id, inv->env.ifname);
		nm_cni_agent_reason(r.buf ? r.buf : "", r.len, why,
				    sizeof(why));
		nm_cni_err_details(e, "GET %s on %s: HTTP 404: %s", path,
				   inv->conf.agent_socket, why);
		goto out;
	}
	if (r.status != 200) {
		ret = agent_refused("look up the endpoint", "GET", path,
				    inv->conf.agent_socket, &r, e);
		goto out;
	}
	ret = nm_cni_ep_parse(r.buf ? r.buf : "", r.len, &ep, why, sizeof(why));
	if (ret) {
		nm_cni_err(e, NM_CNI_E_AGENT,
			   "failed to read the agent's answer to GET %s: %s",
			   path, why);
		goto out;
	}
	/* Both parsed before: compare addresses, not spellings. */
	if (nm_parse_ipv4(prev.ip, &want) || nm_parse_ipv4(ep.ip, &have) ||
	    want != have)
		ret = nm_cni_err(
			e, NM_CNI_E_MISMATCH,
			"endpoint %s/%s has address %s on the nodemesh agent, prevResult has %s",
			inv->env.container_id, inv->env.ifname, ep.ip, prev.ip);
out:
	free(r.buf);
	free(path);
	return ret;
}

/* All of stdin into a NUL-terminated buffer, at most NM_CNI_CONF_MAX + 1. */
static int read_stdin(char **out, size_t *len, struct nm_cni_error *e)
{
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap), *b;

	if (!buf)
		return nm_cni_err(
			e, NM_CNI_E_IO,
			"failed to read the network configuration: out of memory");
	for (;;) {
		if (cap - n < 2) {
			b = realloc(buf, cap * 2);
			if (!b) {
				free(buf);
				return nm_cni_err(
					e, NM_CNI_E_IO,
					"failed to read the network configuration: out of memory");
			}
			buf = b;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - n - 1, stdin);
		n += got;
		if (got)
			continue;
		if (ferror(stdin)) {
			free(buf);
			return nm_cni_err(
				e, NM_CNI_E_IO,
				"failed to read the network configuration on stdin: %s",
				strerror(errno));
		}
		break;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int run(struct invocation *inv, struct nm_cni_error *e)
{
	enum nm_cni_cmd cmd;
	char *doc = NULL;
	size_t len = 0;
	int ret;

	ret = nm_cni_cmd_parse(inv->env.command, &cmd, e);
	if (ret)
		return ret;
	if (cmd == NM_CNI_VERSION) {
		doc = nm_cni_version_json();
		if (!doc)
			return nm_cni_err(
				e, NM_CNI_E_IO,
				"failed to build the version document: out of memory");
		ret = emit(doc);
		free(doc);
		return ret;
	}
	ret = read_stdin(&doc, &len, e);
	if (ret)
		return ret;
	ret = nm_cni_conf_parse(doc, len, cmd, &inv->conf, e);
	free(doc);
	if (ret)
		return ret;
	ret = nm_cni_env_check(&inv->env, cmd, e);
	if (ret)
		return ret;
	ret = nm_cni_args_parse(inv->env.args, &inv->args, e);
	if (ret)
		return ret;
	switch (cmd) {
	case NM_CNI_ADD:
		return cmd_add(inv, e);
	case NM_CNI_DEL:
		return cmd_del(inv, e);
	case NM_CNI_CHECK:
		return cmd_check(inv, e);
	case NM_CNI_VERSION:
		break;
	}
	return 0;
}

int main(void)
{
	struct invocation inv = {
		.env = {
			.command = getenv("CNI_COMMAND"),
			.container_id = getenv("CNI_CONTAINERID"),
			.netns = getenv("CNI_NETNS"),
			.ifname = getenv("CNI_IFNAME"),
			.args = getenv("CNI_ARGS"),
			.path = getenv("CNI_PATH"),
		},
	};
	struct nm_cni_error e = {};
	char *doc;
	int ret;

	nm_log_set_ident("nodemesh-cni");
	if (getenv("NODEMESH_CNI_DEBUG"))
		nm_log_set_level(NM_LOG_DEBUG);
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		nm_cni_err(&e, NM_CNI_E_IO, "failed to initialise libcurl");
		ret = -EIO;
		goto out;
	}
	ret = run(&inv, &e);
	curl_global_cleanup();
out:
	if (ret && e.code) {
		/* Echo the config's version once known, as results do. */
		doc = nm_cni_error_json(inv.conf.cni_version[0] ?
						inv.conf.cni_version :
						NM_CNI_SPEC_VERSION,
					&e);
		if (!doc || emit(doc))
			pr_warn("%s%s%s", e.msg, e.details[0] ? ": " : "",
				e.details);
		free(doc);
	}
	nm_cni_args_free(&inv.args);
	nm_cni_conf_free(&inv.conf);
	return ret ? 1 : 0;
}
