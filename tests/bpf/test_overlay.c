// SPDX-License-Identifier: GPL-2.0
/*
 * The overlay through BPF_PROG_TEST_RUN: from-pod sends packets for pods
 * on other nodes into the VXLAN device (TC_ACT_REDIRECT, counted as
 * encap) and everything else to the stack; nm_from_overlay refuses what
 * carries no tunnel metadata. test_run cannot attach tunnel metadata to a
 * packet, so the accepted overlay paths (known node, unknown node) are
 * covered by the e2e testbed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "overlay.skel.h"
#include "lxc.skel.h"
#include "tests/lib/lxc_fx.h"
#include "tests/lib/test.h"

#define NODE_SELF nm_ip4(172, 30, 1, 1)
#define NODE_B nm_ip4(172, 30, 2, 1)
#define REMOTE_POD nm_ip4(10, 2, 1, 10)
#define LOCAL_POD nm_ip4(10, 0, 1, 6)
#define VXLAN_IFINDEX 4242
#define ID_CLIENT nm_identity_pack(1, 300)
#define ID_REMOTE nm_identity_pack(2, 400)
#define DPORT htons(8080)

/* A client pod on this node and the overlay on. */
static bool setup(struct fx *f)
{
	if (!fx_setup(f))
		return false;
	return set_endpoint(f, CLIENT, 1, ID_CLIENT, 0) &&
	       set_tunnel(f, VXLAN_IFINDEX, NODE_SELF) &&
	       set_node(f, NODE_B, 2);
}

static bool syn(struct fx *f, __be32 daddr, __be16 dport, struct run *r)
{
	__u8 in[NM_PKT_MAX];
	size_t len;

	len = build(in, CLIENT, CPORT, daddr, dport, IPPROTO_TCP, 0x02);
	return run_pkt(f, in, len, r);
}

static void remote_pod_is_encapsulated(void)
{
	struct run r;
	struct fx f;

	if (!setup(&f))
		goto out;
	if (!set_remote_pod(&f, REMOTE_POD, ID_REMOTE, NODE_B) ||
	    !syn(&f, REMOTE_POD, DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_REDIRECT, "verdict");
	ASSERT_EQ(metric(&f, NM_REASON_ENCAP), 1, "encap counted");
	ASSERT_EQ(metric(&f, NM_REASON_PASS), 1, "verdict counted too");
out:
	fx_teardown(&f);
}

static void local_pod_goes_to_the_stack(void)
{
	struct run r;
	struct fx f;

	if (!setup(&f))
		goto out;
	/* Even with a tunnel endpoint in ipcache: the endpoint map wins. */
	if (!set_endpoint(&f, LOCAL_POD, 2, ID_REMOTE, 0) ||
	    !set_remote_pod(&f, LOCAL_POD, ID_REMOTE, NODE_B) ||
	    !syn(&f, LOCAL_POD, DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_OK, "verdict");
	ASSERT_EQ(metric(&f, NM_REASON_ENCAP), 0, "no encap");
out:
	fx_teardown(&f);
}

static void own_node_and_world_go_to_the_stack(void)
{
	struct run r;
	struct fx f;

	if (!setup(&f))
		goto out;
	if (!set_remote_pod(&f, REMOTE_POD, ID_REMOTE, NODE_SELF) ||
	    !syn(&f, REMOTE_POD, DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_OK, "tunnel endpoint is this node");
	if (!syn(&f, nm_ip4(192, 0, 2, 1), DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_OK, "not in ipcache");
	ASSERT_EQ(metric(&f, NM_REASON_ENCAP), 0, "no encap");
out:
	fx_teardown(&f);
}

static void overlay_off_goes_to_the_stack(void)
{
	struct run r;
	struct fx f;

	if (!setup(&f))
		goto out;
	if (!set_tunnel(&f, 0, NODE_SELF) ||
	    !set_remote_pod(&f, REMOTE_POD, ID_REMOTE, NODE_B) ||
	    !syn(&f, REMOTE_POD, DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_OK, "verdict");
	ASSERT_EQ(metric(&f, NM_REASON_ENCAP), 0, "no encap");
out:
	fx_teardown(&f);
}

/* The service is resolved first: the backend's node decides. */
static void service_to_remote_backend_is_dnated_then_encapsulated(void)
{
	struct run r;
	struct fx f;
	__u32 id;
	int i;

	if (!setup(&f) || !svc_basic(&f, IPPROTO_TCP, NM_LB_MAGLEV))
		goto out;
	for (i = 1; i <= NR_BE; i++)
		if (!set_remote_pod(&f, be_addr(i), ID_REMOTE, NODE_B))
			goto out;
	if (!syn(&f, VIP, VPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_REDIRECT, "verdict");
	id = be_id_of(((struct iphdr *)(r.out + ETH_HLEN))->daddr);
	ASSERT_TRUE(id >= 1 && id <= NR_BE, "DNATed to a backend");
	ASSERT_EQ(metric(&f, NM_REASON_SVC_NEW), 1, "svc_new counted");
	ASSERT_EQ(metric(&f, NM_REASON_ENCAP), 1, "encap counted");
out:
	fx_teardown(&f);
}

static void policy_drop_is_not_encapsulated(void)
{
	struct run r;
	struct fx f;

	if (!setup(&f))
		goto out;
	/* Egress default-deny on the client, nothing allowed. */
	if (!set_endpoint(&f, CLIENT, 1, ID_CLIENT, NM_EP_F_EGRESS_POLICY) ||
	    !set_remote_pod(&f, REMOTE_POD, ID_REMOTE, NODE_B) ||
	    !syn(&f, REMOTE_POD, DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_SHOT, "verdict");
	ASSERT_EQ(metric(&f, NM_DROP_POLICY_DEFAULT), 1, "policy drop");
	ASSERT_EQ(metric(&f, NM_REASON_ENCAP), 0, "no encap");
	/* Allowed by identity: now it goes. */
	if (!set_policy(&f, 1, NM_POLICY_EGRESS, ID_REMOTE, IPPROTO_TCP, DPORT,
			NM_POLICY_ALLOW, 5) ||
	    !syn(&f, REMOTE_POD, DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_REDIRECT, "allowed verdict");
out:
	fx_teardown(&f);
}

/*
 * A pod sending with another pod's address would carry that pod's
 * identity abroad: dropped at from-pod, before any policy or tunnel.
 */
static void spoofed_source_is_dropped(void)
{
	struct nm_endpoint_key key = { .addr = CLIENT };
	struct nm_endpoint_val val = {};
	struct run r;
	struct fx f;

	if (!setup(&f))
		goto out;
	if (!set_remote_pod(&f, REMOTE_POD, ID_REMOTE, NODE_B) ||
	    !syn(&f, REMOTE_POD, DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_REDIRECT, "own address: sent");
	/* CLIENT now lives behind another veth than the one sending. */
	if (!ASSERT_OK(bpf_map_lookup_elem(f.endpoints, &key, &val),
		       "read endpoint"))
		goto out;
	val.ifindex = 4242;
	if (!ASSERT_OK(bpf_map_update_elem(f.endpoints, &key, &val, BPF_ANY),
		       "move endpoint") ||
	    !syn(&f, REMOTE_POD, DPORT, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_SHOT, "another pod's address: dropped");
	ASSERT_EQ(metric(&f, NM_DROP_SPOOFED), 1, "counted as spoofed");
	ASSERT_EQ(metric(&f, NM_REASON_ENCAP), 1, "only the first encapsulated");
out:
	fx_teardown(&f);
}

/* The overlay object on the fixture's (unpinned) maps. */
static struct overlay *overlay_load(struct fx *f)
{
	struct bpf_map *map, *mine;
	struct overlay *o;

	o = overlay__open();
	if (!ASSERT_TRUE(o, "open overlay"))
		return NULL;
	if (fx_unpin(o->obj))
		goto err;
	bpf_object__for_each_map(map, o->obj) {
		if (bpf_map__is_internal(map))
			continue;
		mine = bpf_object__find_map_by_name(f->skel->obj,
						    bpf_map__name(map));
		if (!ASSERT_TRUE(mine, bpf_map__name(map)) ||
		    !ASSERT_OK(bpf_map__reuse_fd(map, bpf_map__fd(mine)),
			       "reuse map"))
			goto err;
	}
	if (!ASSERT_OK(overlay__load(o), "load overlay"))
		goto err;
	return o;
err:
	overlay__destroy(o);
	return NULL;
}

static void overlay_without_tunnel_key_is_dropped(void)
{
	struct overlay *o = NULL;
	__u8 in[NM_PKT_MAX];
	struct run r;
	struct fx f;
	size_t len;

	if (!setup(&f))
		goto out;
	o = overlay_load(&f);
	if (!o || !set_endpoint(&f, LOCAL_POD, 2, ID_CLIENT, 0))
		goto out;
	len = build(in, REMOTE_POD, CPORT, LOCAL_POD, DPORT, IPPROTO_TCP, 0x02);
	if (!run_prog(&f, bpf_program__fd(o->progs.nm_from_overlay), in, len,
		      &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_SHOT, "verdict");
	ASSERT_EQ(metric_dir(&f, NM_DIR_FROM_OVERLAY, NM_DROP_NO_TUNNEL_KEY), 1,
		  "drop counted");
out:
	overlay__destroy(o);
	fx_teardown(&f);
}

static const struct nm_test tests[] = {
	NM_TEST(remote_pod_is_encapsulated),
	NM_TEST(local_pod_goes_to_the_stack),
	NM_TEST(own_node_and_world_go_to_the_stack),
	NM_TEST(overlay_off_goes_to_the_stack),
	NM_TEST(service_to_remote_backend_is_dnated_then_encapsulated),
	NM_TEST(policy_drop_is_not_encapsulated),
	NM_TEST(overlay_without_tunnel_key_is_dropped),
	NM_TEST(spoofed_source_is_dropped),
};

int main(void)
{
	return NM_TEST_RUN(tests);
}
