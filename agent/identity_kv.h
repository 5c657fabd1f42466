// SPDX-License-Identifier: GPL-2.0
/*
 * Cluster-wide identity allocation in the kvstore: the identity of a
 * label set is the key state/identities/v1/<cluster>/<id> whose value
 * holds that set, created by a create-if-absent transaction.
 *
 * Every agent walks the same sequence for a label set: the hashed local
 * id (nm_identity_hash() of the canonical labels), then the next ids in
 * order, wrapping within NM_ID_LOCAL_MIN..NM_ID_LOCAL_MAX. At each id it
 * tries to create the key; if the key exists with the same labels that is
 * the answer, with other labels it moves on. Two agents racing for one set
 * therefore stop at the same id: the first free id of the sequence is
 * created by exactly one of them and found by the other, and an earlier
 * id holding the set would have stopped both. This holds as long as
 * identity keys are never deleted (there is no garbage collection); a
 * future GC must not open holes in front of live ids.
 */
#ifndef NM_AGENT_IDENTITY_KV_H
#define NM_AGENT_IDENTITY_KV_H

#include <linux/types.h>

#include "agent/etcd.h"
#include "agent/labels.h"

/*
 * The identity (nm_identity_pack()) of @labels in @cluster (@cluster_id)
 * under @prefix (NULL: the default). @labels must carry the namespace and
 * cluster labels (the record is validated before it is written). A write
 * that timed out but was applied is recognised on the retry: its key then
 * holds our labels. Returns 0, -ENOSPC when every id is taken, or the
 * etcd error with a reason in @err.
 */
int nm_identity_alloc_kv(struct nm_etcd *etcd, const char *prefix,
			 const char *cluster, __u16 cluster_id,
			 const struct nm_labels *labels, __u64 *id,
			 struct nm_etcd_err *err);

#endif /* NM_AGENT_IDENTITY_KV_H */
