// SPDX-License-Identifier: GPL-2.0
/*
 * The CNI half of nodemesh-cni (pure: no I/O): the CNI_* environment,
 * CNI_ARGS, the network configuration and its prevResult, the pod's label
 * set, and the JSON documents the plugin prints or sends to the agent.
 * Every refusal fills a struct nm_cni_error with the CNI error code and a
 * message naming what is wrong and why, ready to be printed as the CNI
 * error object.
 */
#ifndef NM_AGENT_CNI_H
#define NM_AGENT_CNI_H

#include <stdbool.h>
#include <stddef.h>
#include <net/if.h>
#include <netinet/in.h>
#include <json-c/json.h>

#include "agent/labels.h"

/* The spec version of VERSION's answer and of errors before the config. */
#define NM_CNI_SPEC_VERSION "1.0.0"
#define NM_CNI_DEFAULT_SOCKET "/run/nodemesh/agent.sock"
/* Network configurations are small; anything larger is not one. */
#define NM_CNI_CONF_MAX (1024 * 1024)
#define NM_CNI_VERSION_LEN 16

/* Error codes: 1..99 are the spec's well-known ones, 100+ the plugin's. */
enum nm_cni_code {
	NM_CNI_E_VERSION = 1, /* incompatible CNI version */
	NM_CNI_E_FIELD = 2, /* unsupported field in the network config */
	NM_CNI_E_CONTAINER = 3, /* container unknown or gone */
	NM_CNI_E_ENV = 4, /* invalid or missing CNI_* variables */
	NM_CNI_E_IO = 5, /* I/O failure */
	NM_CNI_E_DECODE = 6, /* failed to decode content */
	NM_CNI_E_CONFIG = 7, /* invalid network config */
	NM_CNI_E_TRY_AGAIN = 11, /* try again later */
	NM_CNI_E_AGENT = 100, /* the agent refused or failed the request */
	NM_CNI_E_NOT_FOUND = 101, /* CHECK: the agent has no such endpoint */
	NM_CNI_E_MISMATCH = 102, /* CHECK: the agent's endpoint differs */
	NM_CNI_E_MTU = 103, /* failed to set the MTU the agent asked for */
};

struct nm_cni_error {
	int code;
	char msg[512];
	char details[1024]; /* "" when there is nothing more to say */
};

enum nm_cni_cmd {
	NM_CNI_ADD,
	NM_CNI_DEL,
	NM_CNI_CHECK,
	NM_CNI_VERSION,
};

/* The CNI_* variables as the runtime set them; NULL when unset. */
struct nm_cni_env {
	const char *command;
	const char *container_id;
	const char *netns;
	const char *ifname;
	const char *args;
	const char *path;
};

/* The CNI_ARGS keys nodemesh reads, malloc'd; NULL when absent or empty. */
struct nm_cni_args {
	char *pod_namespace; /* K8S_POD_NAMESPACE */
	char *pod_name; /* K8S_POD_NAME */
	char *labels; /* NODEMESH_LABELS, "k1:v1,k2:v2" */
};

/* The network configuration on stdin. */
struct nm_cni_conf {
	/* Set as soon as it is known good, so errors can echo it. */
	char cni_version[NM_CNI_VERSION_LEN];
	const char *name; /* the strings point into @root */
	const char *agent_socket;
	struct nm_labels labels; /* "labels", then runtimeConfig.labels */
	json_object *prev; /* prevResult (borrowed from @root), or NULL */
	json_object *root;
};

/* What ADD and CHECK take from prevResult. */
struct nm_cni_prev {
	char ifname[IF_NAMESIZE]; /* the container's interface */
	char mac[18]; /* its MAC, "" when prevResult has none */
	char host_ifname[IF_NAMESIZE]; /* the host end of its veth */
	char ip[INET_ADDRSTRLEN]; /* its IPv4 address, no prefix */
};

/* The body of POST /v1/endpoints. */
struct nm_cni_ep_req {
	const char *container_id;
	const char *ifname;
	const char *netns;
	const char *pod_namespace;
	const char *pod_name;
	const struct nm_labels *labels;
	const struct nm_cni_prev *prev;
};

/* The agent's endpoint document (POST and GET answers). */
struct nm_cni_ep {
	char ip[INET_ADDRSTRLEN];
	unsigned int mtu; /* 0 when the document has none */
};

/* Fill @e (message formatted); returns -EINVAL for "return nm_cni_err()". */
int nm_cni_err(struct nm_cni_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void nm_cni_err_details(struct nm_cni_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

int nm_cni_cmd_parse(const char *s, enum nm_cni_cmd *cmd,
		     struct nm_cni_error *e);
bool nm_cni_version_supported(const char *v);
/* The variables @cmd needs are set and well-formed (CNI_NETNS: not for DEL). */
int nm_cni_env_check(const struct nm_cni_env *env, enum nm_cni_cmd cmd,
		     struct nm_cni_error *e);
/* "K=V;K2=V2"; unknown keys are ignored, malformed pairs refused. */
int nm_cni_args_parse(const char *s, struct nm_cni_args *out,
		      struct nm_cni_error *e);
void nm_cni_args_free(struct nm_cni_args *a);

/*
 * Parse and check the whole configuration for @cmd: prevResult must be
 * there for ADD and CHECK (it is ignored for DEL). On failure @conf holds
 * nothing to free, but cni_version is kept once it was read.
 */
int nm_cni_conf_parse(const char *buf, size_t len, enum nm_cni_cmd cmd,
		      struct nm_cni_conf *conf, struct nm_cni_error *e);
void nm_cni_conf_free(struct nm_cni_conf *conf);

/* The container interface @ifname, its host veth and its IPv4 address. */
int nm_cni_prev_parse(json_object *prev, const char *ifname,
		      struct nm_cni_prev *out, struct nm_cni_error *e);

/* @conf's labels overridden by NODEMESH_LABELS of @args into @out. */
int nm_cni_labels_merge(const struct nm_labels *conf,
			const struct nm_cni_args *args, struct nm_labels *out,
			struct nm_cni_error *e);

/* The pod's namespace and name from @args, with their defaults. */
int nm_cni_pod_ident(const struct nm_cni_args *args, const char *container_id,
		     char *ns, size_t ns_len, char *name, size_t name_len,
		     struct nm_cni_error *e);

/* JSON documents, malloc'd; NULL when out of memory. */
char *nm_cni_error_json(const char *version, const struct nm_cni_error *e);
char *nm_cni_version_json(void);
/* prevResult with cniVersion set to the config's (updates conf->prev). */
char *nm_cni_result_json(struct nm_cni_conf *conf);
char *nm_cni_ep_request_json(const struct nm_cni_ep_req *r);

/* The agent's endpoint document; -EBADMSG with a reason in @why. */
int nm_cni_ep_parse(const char *body, size_t len, struct nm_cni_ep *ep,
		    char *why, size_t why_len);
/* The "error" of an agent error body, else the body itself, into @buf. */
void nm_cni_agent_reason(const char *body, size_t len, char *buf,
			 size_t buf_len);

#endif /* NM_AGENT_CNI_H */
