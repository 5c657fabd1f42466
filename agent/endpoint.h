// SPDX-License-Identifier: GPL-2.0
/*
 * Endpoints (pods) of this node, three layers in one place:
 *
 *   - the request the CNI plugin sends the agent (POST /v1/endpoints),
 *     parsed and checked without I/O: nm_endpoint_req_parse();
 *   - the write of an endpoint, shared by 'nodemeshctl endpoint' and the
 *     agent: identity (allocated here, or the kvstore's passed in and
 *     recorded in identities.json), endpoint id, pod name, policy
 *     recompiled with the endpoint pending so its entries and flags land
 *     before it, then its LOCAL /32 ipcache entry. Callers hold
 *     nm_maps_lock() on a struct nm_maps of their own (the flock is per
 *     open file, so two threads sharing one fd would not exclude each
 *     other);
 *   - which container interface owns which endpoint, kept in the state
 *     directory's cni.json (replaced atomically like the other files), so
 *     the API answers GET and DELETE after an agent restart, and whether
 *     the pod drains (POST .../drain): the publisher reads that flag and
 *     publishes the endpoint as terminating.
 */
#ifndef NM_AGENT_ENDPOINT_H
#define NM_AGENT_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <net/if.h>
#include <linux/types.h>

#include "agent/identity.h"
#include "agent/labels.h"
#include "agent/loader.h"
#include "agent/policy_apply.h"
#include "agent/state.h"

#define NM_EP_REQ_MAX (64U << 10) /* request body, bytes */
#define NM_EP_CONTAINER_ID_MAX 255
#define NM_EP_NS_MAX 63 /* DNS label */
#define NM_EP_NAME_MAX 253 /* DNS subdomain */
#define NM_EP_NAME_DERIVED_MAX 63 /* a name made from the container id */
#define NM_EP_LABELS_MAX 62 /* the kvstore's 64, less the agent's two */
#define NM_EP_MTU_DEFAULT 1450

/* POST /v1/endpoints, parsed and checked. */
struct nm_endpoint_req {
	char container_id[NM_EP_CONTAINER_ID_MAX + 1];
	char ifname[IF_NAMESIZE]; /* inside the pod */
	char ns[NM_EP_NS_MAX + 1];
	char name[NM_EP_NAME_MAX + 1]; /* given, else from the container id */
	struct nm_labels labels; /* the pod's own: never the agent's two */
	__be32 ip;
	__u8 mac[6];
	bool has_mac;
	char host_ifname[IF_NAMESIZE];
};

/*
 * Parse @body (@len bytes, JSON) into @req (pure). Unknown fields, wrong
 * types, labels nodemesh.io/namespace and nodemesh.io/cluster, and values
 * that would not survive the kvstore (namespace a DNS label, name a DNS
 * subdomain) are refused: -EINVAL with the reason in @err. Whether
 * host_ifname exists is for the caller to check. On success free @req
 * with nm_endpoint_req_free().
 */
int nm_endpoint_req_parse(const char *body, size_t len,
			  struct nm_endpoint_req *req, char *err,
			  size_t errlen);
void nm_endpoint_req_free(struct nm_endpoint_req *req);

/* CNI's rules: [A-Za-z0-9._-], 1..255 characters (pure). */
int nm_endpoint_container_check(const char *id, char *err, size_t errlen);
/* An interface name: 1..15 characters, no '/', ':' or white space. */
int nm_endpoint_ifname_check(const char *what, const char *name, char *err,
			     size_t errlen);

/* What nm_endpoint_add() writes; every pointer borrowed. */
struct nm_endpoint_spec {
	__be32 addr;
	const char *host_ifname; /* the host side of the pod's veth */
	const __u8 *mac; /* NULL: none (zeros) */
	const char *ns;
	const char *name; /* NULL: keep the name recorded for the address */
	const struct nm_labels *labels; /* the pod's own */
};

struct nm_endpoint_res {
	__u32 endpoint_id;
	__u64 identity;
	bool identity_created; /* new in identities.json */
	struct nm_sync_stats stats; /* of the recompile */
};

/*
 * @pod plus nodemesh.io/namespace=@ns and nodemesh.io/cluster=@cluster:
 * the labels of the endpoint's identity. Free @out with nm_labels_free().
 */
int nm_endpoint_labels(const struct nm_labels *pod, const char *ns,
		       const char *cluster, struct nm_labels *out);

/*
 * Write the endpoint of @spec (added, or rewritten with the id it has).
 * @identity 0: allocate locally (nm_identity_alloc(), hash and probe);
 * else the kvstore's id of the same labels, recorded in @ids. @ids is
 * the caller's copy of identities.json, saved when it changes. The caller
 * holds nm_maps_lock() on @maps. -errno with "failed to ..." in @err.
 */
int nm_endpoint_add(struct nm_maps *maps, const struct nm_state *st,
		    struct nm_idstore *ids, const struct nm_endpoint_spec *spec,
		    __u64 identity, struct nm_endpoint_res *res, char *err,
		    size_t errlen);
/*
 * Remove the endpoint at @addr: its LOCAL ipcache entry, the endpoint,
 * then its policy entries (recompiled), then its recorded name. -ENOENT
 * (with a message) when there is none. Same locking as nm_endpoint_add().
 */
int nm_endpoint_delete(struct nm_maps *maps, const struct nm_state *st,
		       struct nm_idstore *ids, __be32 addr,
		       struct nm_endpoint_res *res, char *err, size_t errlen);

/* ---- cni.json: container interface -> endpoint ------------------------- */

struct nm_pod {
	char container_id[NM_EP_CONTAINER_ID_MAX + 1];
	char ifname[IF_NAMESIZE];
	char host_ifname[IF_NAMESIZE];
	char ns[NM_EP_NS_MAX + 1];
	char name[NM_EP_NAME_MAX + 1];
	__be32 ip;
	__u8 mac[6];
	bool has_mac;
	__u32 endpoint_id;
	__u64 identity;
	/*
	 * Draining: no new service flows. One way: until the pod is deleted
	 * (the agent keeps it when a CNI ADD is retried).
	 */
	bool terminating;
};

struct nm_pods {
	struct nm_pod *v;
	size_t n;
};

/* cni.json (absent: empty); a file that does not parse is an error. */
int nm_pods_load(const struct nm_state *st, struct nm_pods *set, char *err,
		 size_t errlen);
int nm_pods_save(const struct nm_state *st, const struct nm_pods *set,
		 char *err, size_t errlen);
void nm_pods_free(struct nm_pods *set);
struct nm_pod *nm_pods_find(const struct nm_pods *set, const char *container_id,
			    const char *ifname);
struct nm_pod *nm_pods_find_ip(const struct nm_pods *set, __be32 ip);
/* Insert @e, or replace the entry of its container interface. */
int nm_pods_put(struct nm_pods *set, const struct nm_pod *e);
/* Remove @e, which points into @set. */
void nm_pods_del(struct nm_pods *set, struct nm_pod *e);

/*
 * Mark the endpoint of container @container_id interface @ifname as
 * terminating in cni.json (again: no change) and return it in @out.
 * -ENOENT when cni.json has no such endpoint; "failed to ..." in @err.
 * The caller serialises cni.json writers.
 */
int nm_pods_drain(const struct nm_state *st, const char *container_id,
		  const char *ifname, struct nm_pod *out, char *err,
		  size_t errlen);

/*
 * The API's documents (pure, malloc'd, newline-terminated; NULL on
 * ENOMEM): one endpoint as POST and GET answer it, and
 * {"endpoints":[...]} for GET /v1/endpoints. @mtu 0: NM_EP_MTU_DEFAULT.
 */
char *nm_pod_doc(const struct nm_pod *e, unsigned int mtu);
char *nm_pods_doc(const struct nm_pods *set, unsigned int mtu);

#endif /* NM_AGENT_ENDPOINT_H */
