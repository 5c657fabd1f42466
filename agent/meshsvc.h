// SPDX-License-Identifier: GPL-2.0
/*
 * MeshService: a cluster's offer of one service to the mesh (docs/services.md).
 * Pure: the manifest parser (libyaml through agent/ywalk.h, strict, every
 * refusal "FILE:LINE: reason") and the computation of the service record a
 * cluster exports from a manifest and its endpoint records. The etcd side
 * (storing manifests, the exporter's reconcile round) is agent/meshsvc_kv.h.
 *
 *   apiVersion: nodemesh.io/v1alpha1
 *   kind: MeshService
 *   metadata: {name: web, namespace: default}   # namespace defaults to default
 *   spec:
 *     vip: 10.96.0.10
 *     ports:                    # one per protocol
 *       - {port: 80, targetPort: 8080, protocol: TCP}
 *     selector: {app: web}      # matchLabels, within metadata.namespace
 *     global: true              # default false
 *     shared: true              # default true
 *     affinity: none            # local | remote | none (default)
 *     weight: 1                 # 1..65535, default 1
 *     priority: 0               # 0..255, default 0 (lower preferred)
 *
 * One port per protocol: the mesh merges every cluster's record per frontend
 * (VIP:PORT/PROTO) and takes each record's backends of that protocol, so
 * two ports of one protocol in one record would mix their target ports.
 */
#ifndef NM_AGENT_MESHSVC_H
#define NM_AGENT_MESHSVC_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "agent/kvstore.h"
#include "agent/labels.h"
#include "agent/parse.h"
#include "agent/policy.h" /* struct nm_error, NM_POLICY_API_VERSION */

#define NM_MESHSVC_API_VERSION NM_POLICY_API_VERSION
#define NM_MESHSVC_KIND "MeshService"
/* A file of manifests, and one manifest as stored in etcd. */
#define NM_MESHSVC_FILE_MAX (1U << 20)
#define NM_MESHSVC_DOC_MAX NM_KV_VALUE_MAX
#define NM_MESHSVC_PORTS_MAX 2 /* TCP and UDP */
#define NM_MESHSVC_SELECTOR_MAX 32
/* "<prefix>services/v1/<ns>/<name>" holds a manifest. */
#define NM_MESHSVC_KEY_DIR "services/v1/"

struct nm_meshsvc_port {
	__u16 port; /* host order, 1..65535 */
	__u16 target_port; /* host order; defaults to port */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	unsigned int line;
};

struct nm_meshsvc {
	char ns[NM_KV_NS_MAX + 1];
	char name[NM_KV_NS_MAX + 1]; /* a DNS label, as service keys want */
	__be32 vip;
	struct nm_meshsvc_port ports[NM_MESHSVC_PORTS_MAX];
	size_t n_ports;
	struct nm_labels selector; /* >= 1 label, none of the agent's two */
	bool global;
	bool shared;
	enum nm_kv_affinity affinity;
	__u16 weight; /* 1..65535 */
	__u8 priority;
	unsigned int line; /* of the document */
	/* The document's bytes in the parsed input, to store it alone. */
	size_t doc_off, doc_len;
};

struct nm_meshsvc_set {
	struct nm_meshsvc *v;
	size_t n;
};

/*
 * Parse every YAML document of @buf (@file names it in errors; empty
 * documents are skipped). Unknown fields, wrong types, a bad VIP, ports
 * out of range, two ports of one protocol, bad or reserved selector
 * labels, and a namespace/name given twice are refused. On error nothing
 * is returned (@out untouched) and @err says where and why.
 */
int nm_meshsvc_parse(const char *buf, size_t len, const char *file,
		     struct nm_meshsvc_set *out, struct nm_error *err);
void nm_meshsvc_set_free(struct nm_meshsvc_set *set);

/*
 * A manifest as stored at @key (under @prefix, NULL: the default): exactly
 * one MeshService whose namespace and name are the key's. Errors name the
 * key as the file.
 */
int nm_meshsvc_parse_stored(const char *prefix, const char *key,
			    const char *val, size_t len, struct nm_meshsvc *out,
			    struct nm_error *err);
void nm_meshsvc_free(struct nm_meshsvc *svc);

/* Port @i of @svc as a frontend (VIP:PORT/PROTO). */
void nm_meshsvc_frontend(const struct nm_meshsvc *svc, size_t i,
			 struct nm_frontend *fe);
/* Do @a and @b claim a frontend in common? *@fe gets it. */
bool nm_meshsvc_clash(const struct nm_meshsvc *a, const struct nm_meshsvc *b,
		      struct nm_frontend *fe);

/* "<prefix>services/v1/" and "<prefix>services/v1/<ns>/<name>". */
int nm_meshsvc_dir(const char *prefix, char *buf, size_t len);
int nm_meshsvc_key(const char *prefix, const char *ns, const char *name,
		   char *buf, size_t len);
/* Namespace and name of a manifest key; -EINVAL when it is none. */
int nm_meshsvc_key_parse(const char *prefix, const char *key, char *ns,
			 size_t ns_len, char *name, size_t name_len);

/*
 * The service record cluster @cluster exports for @svc, given its endpoint
 * records @eps (any namespace; those of svc->ns whose labels carry every
 * selector label are the pods): one frontend per port, one backend per
 * (pod, port) with the target port, the port's protocol, the pod's state
 * (active or terminating), weight 1 and the pod's node, sorted by (address,
 * port, protocol), an address offered twice kept once (active first). Past
 * NM_KV_BACKENDS_MAX backends the rest are left out and counted in
 * *@dropped. @out owns its memory (nm_kv_record_free()). 0 or -ENOMEM.
 */
int nm_meshsvc_export(const struct nm_meshsvc *svc, const char *cluster,
		      const struct nm_kv_endpoint *eps, size_t n_eps,
		      struct nm_kv_record *out, size_t *dropped);
/* qsort() order of an export's backends: address, port, protocol, ... */
int nm_meshsvc_backend_cmp(const void *a, const void *b);

#endif /* NM_AGENT_MESHSVC_H */
