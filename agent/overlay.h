// SPDX-License-Identifier: GPL-2.0
/*
 * The node's overlay device: one VXLAN device in external (collect_md)
 * mode, created and owned by the agent over rtnetlink (libmnl). The
 * datapath picks the remote node and VNI per packet with the tunnel key,
 * so one device serves every node of every cluster.
 */
#ifndef NM_AGENT_OVERLAY_H
#define NM_AGENT_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/*
 * Find or create the VXLAN device @name (external mode, UDP @port,
 * learning off). A device we did not make (another kind, or not in
 * external mode, or on another port) is refused, not changed. A new
 * device is left down, so nothing reaches the stack before the overlay
 * program is attached. Returns its ifindex in @ifindex; @created says
 * whether it was made now.
 */
int nm_overlay_ensure(const char *name, __u16 port, int *ifindex,
		      bool *created, char *err, size_t errlen);
/* Bring @ifindex up. */
int nm_link_set_up(int ifindex, char *err, size_t errlen);
/* Delete the device @name; -ENODEV when there is none. */
int nm_link_delete(const char *name, char *err, size_t errlen);
/* MTU of the interface holding @addr (network order). */
int nm_addr_mtu(__be32 addr, unsigned int *mtu, char *err, size_t errlen);

#endif /* NM_AGENT_OVERLAY_H */
