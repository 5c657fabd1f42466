// SPDX-License-Identifier: GPL-2.0
/*
 * Policy in bpf/lxc.bpf.c: ingress policy at nm_to_pod, egress policy at
 * nm_from_pod, identities from nm_endpoints_v1 and nm_ipcache_v1,
 * conntrack letting established flows and replies through, and the
 * events and metrics of drops. Real object, unpinned maps filled by the
 * test, packets through bpf_prog_test_run_opts. One behaviour per test.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tests/lib/lxc_fx.h"
#include "tests/lib/test.h"

/* Local pods: CLIENT (from the fixture, endpoint 1) and SERVER. */
#define SERVER nm_ip4(10, 0, 1, 20)
#define EP_CLIENT 1
#define EP_SERVER 2
#define SPORT htons(443)

/* Pods of another cluster, known through ipcache. */
#define FRONT nm_ip4(10, 1, 0, 7)
#define OTHER nm_ip4(10, 1, 0, 8)
#define WORLD_ADDR nm_ip4(8, 8, 8, 8)

#define ID_CLIENT nm_identity_pack(1, 300)
#define ID_SERVER nm_identity_pack(1, 400)
#define ID_FRONT nm_identity_pack(2, 300)
#define ID_OTHER nm_identity_pack(2, 301)
#define ID_BE nm_identity_pack(1, 500)
#define ID_CIDR nm_identity_pack(0, NM_ID_CIDR_BASE + 1)

#define RULE_ALLOW 11
#define RULE_DENY 12

#define ING NM_POLICY_INGRESS
#define EGR NM_POLICY_EGRESS

/* SERVER with ingress policy per @flags; FRONT and OTHER in ipcache. */
static bool setup_server(struct fx *f, __u8 flags)
{
	return fx_setup(f) &&
	       set_endpoint(f, SERVER, EP_SERVER, ID_SERVER, flags) &&
	       set_ipcache(f, FRONT, 32, ID_FRONT, 0) &&
	       set_ipcache(f, OTHER, 32, ID_OTHER, 0);
}

/* Verdict of one packet through @prog, or -1 if it could not run. */
static int send_pkt(struct fx *f, int prog, __be32 saddr, __be16 sport,
		    __be32 daddr, __be16 dport, __u8 flags)
{
	__u8 in[NM_PKT_MAX];
	struct run r;
	size_t len;

	len = build(in, saddr, sport, daddr, dport, IPPROTO_TCP, flags);
	if (!ASSERT_GT(len, 0, "build packet") ||
	    !run_prog(f, prog, in, len, &r))
		return -1;
	return r.verdict;
}

/* A SYN from @saddr:@sport to SERVER:SPORT, delivered through nm_to_pod. */
static int syn_to_server(struct fx *f, __be32 saddr, __be16 sport)
{
	return send_pkt(f, f->to_pod, saddr, sport, SERVER, SPORT,
			NM_PKT_TCP_SYN);
}

static __u64 to_pod_metric(struct fx *f, __u32 reason)
{
	return metric_dir(f, NM_DIR_TO_POD, reason);
}

static void allow_by_identity_and_port(void)
{
	struct nm_ct_val ct;
	struct fx f;

	if (!setup_server(&f, NM_EP_F_INGRESS_POLICY) ||
	    !set_policy(&f, EP_SERVER, ING, ID_FRONT, IPPROTO_TCP, SPORT,
			NM_POLICY_ALLOW, RULE_ALLOW))
		goto out;
	ASSERT_EQ(syn_to_server(&f, FRONT, CPORT), TC_ACT_OK, "allowed");
	ASSERT_EQ(to_pod_metric(&f, NM_REASON_POLICY_ALLOW), 1,
		  "POLICY_ALLOW counted");
	ASSERT_TRUE(ct_get(&f, FRONT, SERVER, CPORT, SPORT, IPPROTO_TCP,
			   NM_CT_INGRESS, &ct),
		    "ingress entry created");
	ASSERT_EQ(send_pkt(&f, f.to_pod, FRONT, CPORT, SERVER, htons(444),
			   NM_PKT_TCP_SYN),
		  TC_ACT_SHOT, "same identity, other port");
	ASSERT_EQ(syn_to_server(&f, OTHER, CPORT), TC_ACT_SHOT,
		  "other identity, same port");
	ASSERT_EQ(to_pod_metric(&f, NM_DROP_POLICY_DEFAULT), 2,
		  "POLICY_DEFAULT counted");
out:
	fx_teardown(&f);
}

static void deny_by_identity(void)
{
	struct nm_ct_val ct;
	struct fx f;

	/* Not selected for ingress: only the deny entry restricts it. */
	if (!setup_server(&f, 0) || !set_policy(&f, EP_SERVER, ING, ID_OTHER, 0,
						0, NM_POLICY_DENY, RULE_DENY))
		goto out;
	ASSERT_EQ(syn_to_server(&f, OTHER, CPORT), TC_ACT_SHOT, "denied");
	ASSERT_EQ(to_pod_metric(&f, NM_DROP_POLICY_DENY), 1,
		  "POLICY_DENY counted");
	ASSERT_TRUE(!ct_get(&f, OTHER, SERVER, CPORT, SPORT, IPPROTO_TCP,
			    NM_CT_INGRESS, &ct),
		    "no ingress entry for a denied flow");
	ASSERT_EQ(syn_to_server(&f, FRONT, CPORT), TC_ACT_OK,
		  "other identity passes");
out:
	fx_teardown(&f);
}

static void deny_beats_allow(void)
{
	struct fx f;

	if (!setup_server(&f, NM_EP_F_INGRESS_POLICY) ||
	    !set_policy(&f, EP_SERVER, ING, ID_FRONT, IPPROTO_TCP, SPORT,
			NM_POLICY_ALLOW, RULE_ALLOW) ||
	    !set_policy(&f, EP_SERVER, ING, NM_ID_ANY, 0, 0, NM_POLICY_DENY,
			RULE_DENY))
		goto out;
	ASSERT_EQ(syn_to_server(&f, FRONT, CPORT), TC_ACT_SHOT,
		  "the wider deny wins over the specific allow");
	ASSERT_EQ(to_pod_metric(&f, NM_DROP_POLICY_DENY), 1,
		  "POLICY_DENY counted");
	ASSERT_EQ(to_pod_metric(&f, NM_REASON_POLICY_ALLOW), 0,
		  "no POLICY_ALLOW");
out:
	fx_teardown(&f);
}

static void default_deny_for_selected_endpoint(void)
{
	struct fx f;

	if (!setup_server(&f, NM_EP_F_INGRESS_POLICY))
		goto out;
	ASSERT_EQ(syn_to_server(&f, FRONT, CPORT), TC_ACT_SHOT, "dropped");
	ASSERT_EQ(to_pod_metric(&f, NM_DROP_POLICY_DEFAULT), 1,
		  "POLICY_DEFAULT counted");
	/* Selected for egress only: ingress stays open. */
	if (!set_endpoint(&f, SERVER, EP_SERVER, ID_SERVER,
			  NM_EP_F_EGRESS_POLICY))
		goto out;
	ASSERT_EQ(syn_to_server(&f, FRONT, htons(40001)), TC_ACT_OK,
		  "egress selection leaves ingress open");
out:
	fx_teardown(&f);
}

static void non_selected_endpoint_allows_all(void)
{
	struct fx f;

	if (!setup_server(&f, 0))
		goto out;
	ASSERT_EQ(syn_to_server(&f, FRONT, CPORT), TC_ACT_OK, "cluster peer");
	ASSERT_EQ(syn_to_server(&f, WORLD_ADDR, CPORT), TC_ACT_OK, "world");
	ASSERT_EQ(send_pkt(&f, f.prog, SERVER, SPORT, WORLD_ADDR, htons(53),
			   NM_PKT_TCP_SYN),
		  TC_ACT_OK, "egress to the world");
	ASSERT_EQ(to_pod_metric(&f, NM_REASON_PASS), 2, "PASS counted");
	ASSERT_EQ(metric(&f, NM_REASON_PASS), 1, "PASS counted at from-pod");
out:
	fx_teardown(&f);
}

/* A toCIDR rule: the prefix has a CIDR identity, the policy names it. */
static void cidr_rule_matches_prefix_only(void)
{
	struct fx f;

	if (!setup_server(&f, NM_EP_F_EGRESS_POLICY) ||
	    !set_ipcache(&f, nm_ip4(192, 168, 0, 0), 16, ID_CIDR,
			 NM_IPC_F_CIDR) ||
	    !set_policy(&f, EP_SERVER, EGR, ID_CIDR, IPPROTO_TCP, htons(5432),
			NM_POLICY_ALLOW, RULE_ALLOW))
		goto out;
	ASSERT_EQ(send_pkt(&f, f.prog, SERVER, CPORT, nm_ip4(192, 168, 7, 9),
			   htons(5432), NM_PKT_TCP_SYN),
		  TC_ACT_OK, "address inside the CIDR");
	ASSERT_EQ(metric(&f, NM_REASON_POLICY_ALLOW), 1,
		  "POLICY_ALLOW counted");
	ASSERT_EQ(send_pkt(&f, f.prog, SERVER, CPORT, nm_ip4(192, 169, 0, 1),
			   htons(5432), NM_PKT_TCP_SYN),
		  TC_ACT_SHOT, "address outside is the world");
	ASSERT_EQ(metric(&f, NM_DROP_POLICY_DEFAULT), 1,
		  "POLICY_DEFAULT counted");
out:
	fx_teardown(&f);
}

static void world_is_allowed_only_by_world_or_any(void)
{
	struct fx f;

	if (!setup_server(&f, NM_EP_F_INGRESS_POLICY) ||
	    !set_policy(&f, EP_SERVER, ING, ID_FRONT, 0, 0, NM_POLICY_ALLOW,
			RULE_ALLOW))
		goto out;
	ASSERT_EQ(syn_to_server(&f, WORLD_ADDR, htons(40001)), TC_ACT_SHOT,
		  "an identity's allow does not cover the world");
	if (!set_policy(&f, EP_SERVER, ING, NM_ID_WORLD, IPPROTO_TCP, SPORT,
			NM_POLICY_ALLOW, RULE_ALLOW))
		goto out;
	ASSERT_EQ(syn_to_server(&f, WORLD_ADDR, htons(40002)), TC_ACT_OK,
		  "allowed by a WORLD entry");
	if (!del_policy(&f, EP_SERVER, ING, NM_ID_WORLD, IPPROTO_TCP, SPORT) ||
	    !set_policy(&f, EP_SERVER, ING, NM_ID_ANY, 0, 0, NM_POLICY_ALLOW,
			RULE_ALLOW))
		goto out;
	ASSERT_EQ(syn_to_server(&f, WORLD_ADDR, htons(40003)), TC_ACT_OK,
		  "allowed by an ANY entry");
out:
	fx_teardown(&f);
}

static void established_flow_survives_allow_removal(void)
{
	struct fx f;

	if (!setup_server(&f, NM_EP_F_INGRESS_POLICY) ||
	    !set_policy(&f, EP_SERVER, ING, ID_FRONT, IPPROTO_TCP, SPORT,
			NM_POLICY_ALLOW, RULE_ALLOW))
		goto out;
	if (!ASSERT_EQ(syn_to_server(&f, FRONT, CPORT), TC_ACT_OK, "SYN"))
		goto out;
	if (!del_policy(&f, EP_SERVER, ING, ID_FRONT, IPPROTO_TCP, SPORT))
		goto out;
	ASSERT_EQ(send_pkt(&f, f.to_pod, FRONT, CPORT, SERVER, SPORT,
			   NM_PKT_TCP_ACK),
		  TC_ACT_OK, "established flow passes");
	ASSERT_EQ(to_pod_metric(&f, NM_REASON_CT_ESTABLISHED), 1,
		  "CT_ESTABLISHED counted");
	ASSERT_EQ(send_pkt(&f, f.prog, SERVER, SPORT, FRONT, CPORT,
			   NM_PKT_TCP_SYN | NM_PKT_TCP_ACK),
		  TC_ACT_OK, "its replies pass");
	ASSERT_EQ(syn_to_server(&f, FRONT, htons(40001)), TC_ACT_SHOT,
		  "a new flow is dropped at once");
out:
	fx_teardown(&f);
}

/*
 * CLIENT may only reach SERVER:443 (egress) and takes nothing in;
 * SERVER takes only CLIENT on 443 and sends nothing out. The reply
 * passes both default-denies: SERVER's egress through the INGRESS entry,
 * CLIENT's ingress through the REPLY entry.
 */
static void reply_passes_the_other_sides_default_deny(void)
{
	__u8 both = NM_EP_F_INGRESS_POLICY | NM_EP_F_EGRESS_POLICY;
	struct fx f;

	if (!setup_server(&f, both) ||
	    !set_endpoint(&f, CLIENT, EP_CLIENT, ID_CLIENT, both) ||
	    !set_policy(&f, EP_CLIENT, EGR, ID_SERVER, IPPROTO_TCP, SPORT,
			NM_POLICY_ALLOW, RULE_ALLOW) ||
	    !set_policy(&f, EP_SERVER, ING, ID_CLIENT, IPPROTO_TCP, SPORT,
			NM_POLICY_ALLOW, RULE_ALLOW))
		goto out;
	ASSERT_EQ(send_pkt(&f, f.prog, CLIENT, CPORT, SERVER, SPORT,
			   NM_PKT_TCP_SYN),
		  TC_ACT_OK, "SYN leaves the client");
	ASSERT_EQ(syn_to_server(&f, CLIENT, CPORT), TC_ACT_OK,
		  "SYN reaches the server");
	ASSERT_EQ(send_pkt(&f, f.prog, SERVER, SPORT, CLIENT, CPORT,
			   NM_PKT_TCP_SYN | NM_PKT_TCP_ACK),
		  TC_ACT_OK, "SYN-ACK leaves the server");
	ASSERT_EQ(metric(&f, NM_REASON_CT_REPLY), 1, "CT_REPLY at from-pod");
	ASSERT_EQ(send_pkt(&f, f.to_pod, SERVER, SPORT, CLIENT, CPORT,
			   NM_PKT_TCP_SYN | NM_PKT_TCP_ACK),
		  TC_ACT_OK, "SYN-ACK reaches the client");
	ASSERT_EQ(to_pod_metric(&f, NM_REASON_CT_REPLY), 1,
		  "CT_REPLY at to-pod");
	/* Same ports, roles swapped: a new flow, and both sides refuse it. */
	ASSERT_EQ(send_pkt(&f, f.prog, SERVER, htons(40001), CLIENT, CPORT,
			   NM_PKT_TCP_SYN),
		  TC_ACT_SHOT, "server may not open flows");
out:
	fx_teardown(&f);
}

/* Service flow: egress policy is checked after DNAT, against the backend. */
static void egress_policy_is_checked_against_the_backend(void)
{
	struct nm_pkt_tuple t;
	__u8 in[NM_PKT_MAX];
	struct run r;
	struct fx f;
	size_t len;

	if (!fx_setup(&f) || !svc_basic(&f, IPPROTO_TCP, NM_LB_MAGLEV) ||
	    !set_endpoint(&f, CLIENT, EP_CLIENT, ID_CLIENT,
			  NM_EP_F_EGRESS_POLICY) ||
	    !set_ipcache(&f, nm_ip4(10, 0, 2, 0), 24, ID_BE, 0))
		goto out;
	/* What the client dialled: the VIP is the world, on port 80. */
	if (!set_policy(&f, EP_CLIENT, EGR, NM_ID_WORLD, IPPROTO_TCP, VPORT,
			NM_POLICY_ALLOW, RULE_ALLOW))
		goto out;
	len = build(in, CLIENT, CPORT, VIP, VPORT, IPPROTO_TCP, NM_PKT_TCP_SYN);
	if (!run_pkt(&f, in, len, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_SHOT, "an allow of the VIP does not count");
	ASSERT_EQ(metric(&f, NM_DROP_POLICY_DEFAULT), 1,
		  "POLICY_DEFAULT counted");

	if (!set_policy(&f, EP_CLIENT, EGR, ID_BE, IPPROTO_TCP, BE_PORT,
			NM_POLICY_ALLOW, RULE_ALLOW))
		goto out;
	if (!run_pkt(&f, in, len, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_OK, "allowed to the backend's identity");
	if (ASSERT_TRUE(nm_pkt_tuple(r.out, r.len, &t), "parse output"))
		ASSERT_NEQ(be_id_of(t.daddr), 0, "DNAT to a backend");
	ASSERT_EQ(metric(&f, NM_REASON_SVC_NEW), 1, "SVC_NEW counted");
out:
	fx_teardown(&f);
}

struct ev_seen {
	struct nm_event ev;
	int n;
};

static int on_event(void *ctx, void *data, size_t size)
{
	struct ev_seen *s = ctx;

	if (size >= sizeof(s->ev) && !s->n)
		memcpy(&s->ev, data, sizeof(s->ev));
	s->n++;
	return 0;
}

/* Events in the ring so far; the first is copied into @s. */
static int read_events(struct fx *f, struct ev_seen *s)
{
	struct ring_buffer *rb;
	int n;

	memset(s, 0, sizeof(*s));
	rb = ring_buffer__new(f->events, on_event, s, NULL);
	if (!ASSERT_TRUE(rb, "ring_buffer__new"))
		return -1;
	n = ring_buffer__consume(rb);
	ASSERT_GE(n, 0, "ring_buffer__consume");
	ring_buffer__free(rb);
	return s->n;
}

static void policy_drop_produces_event_and_metric(void)
{
	__u64 before = now_ns();
	struct ev_seen s;
	struct fx f;

	if (!setup_server(&f, NM_EP_F_INGRESS_POLICY) ||
	    !set_policy(&f, EP_SERVER, ING, ID_OTHER, IPPROTO_TCP, SPORT,
			NM_POLICY_DENY, RULE_DENY))
		goto out;
	if (!ASSERT_EQ(syn_to_server(&f, OTHER, CPORT), TC_ACT_SHOT, "denied"))
		goto out;
	ASSERT_EQ(to_pod_metric(&f, NM_DROP_POLICY_DENY), 1,
		  "POLICY_DENY counted");
	if (!ASSERT_EQ(read_events(&f, &s), 1, "one event"))
		goto out;
	ASSERT_EQ(s.ev.type, NM_EVENT_POLICY, "type");
	ASSERT_EQ(s.ev.reason, NM_DROP_POLICY_DENY, "reason");
	ASSERT_EQ(s.ev.verdict, NM_POLICY_DENY, "verdict");
	ASSERT_EQ(s.ev.dir, NM_DIR_TO_POD, "dir");
	ASSERT_EQ(s.ev.src_identity, ID_OTHER, "source identity");
	ASSERT_EQ(s.ev.dst_identity, ID_SERVER, "destination identity");
	ASSERT_EQ(s.ev.saddr, OTHER, "saddr");
	ASSERT_EQ(s.ev.daddr, SERVER, "daddr");
	ASSERT_EQ(s.ev.sport, CPORT, "sport");
	ASSERT_EQ(s.ev.dport, SPORT, "dport");
	ASSERT_EQ(s.ev.proto, IPPROTO_TCP, "proto");
	ASSERT_EQ(s.ev.endpoint_id, EP_SERVER, "endpoint id");
	ASSERT_EQ(s.ev.rule_id, RULE_DENY, "rule id");
	ASSERT_GE(s.ev.ts_ns, before, "timestamp");
out:
	fx_teardown(&f);
}

static void default_deny_event_has_no_rule(void)
{
	struct ev_seen s;
	struct fx f;

	if (!setup_server(&f, NM_EP_F_EGRESS_POLICY))
		goto out;
	ASSERT_EQ(send_pkt(&f, f.prog, SERVER, CPORT, WORLD_ADDR, htons(53),
			   NM_PKT_TCP_SYN),
		  TC_ACT_SHOT, "egress default deny");
	if (!ASSERT_EQ(read_events(&f, &s), 1, "one event"))
		goto out;
	ASSERT_EQ(s.ev.reason, NM_DROP_POLICY_DEFAULT, "reason");
	ASSERT_EQ(s.ev.verdict, NM_POLICY_DENY, "verdict");
	ASSERT_EQ(s.ev.rule_id, 0, "no rule");
	ASSERT_EQ(s.ev.dir, NM_DIR_FROM_POD, "dir");
	ASSERT_EQ(s.ev.src_identity, ID_SERVER, "source identity");
	ASSERT_EQ(s.ev.dst_identity, NM_ID_WORLD, "destination is the world");
	ASSERT_EQ(s.ev.endpoint_id, EP_SERVER, "endpoint id");
out:
	fx_teardown(&f);
}

static void allowed_flows_report_events_only_when_asked(void)
{
	struct fx_opts o = { .events_allow = true };
	struct ev_seen s;
	struct fx f;

	if (!setup_server(&f, 0))
		goto out;
	ASSERT_EQ(syn_to_server(&f, FRONT, CPORT), TC_ACT_OK, "allowed");
	ASSERT_EQ(read_events(&f, &s), 0, "no event by default");
	fx_teardown(&f);

	if (!fx_setup_opts(&f, &o) ||
	    !set_endpoint(&f, SERVER, EP_SERVER, ID_SERVER, 0) ||
	    !set_ipcache(&f, FRONT, 32, ID_FRONT, 0))
		goto out;
	ASSERT_EQ(syn_to_server(&f, FRONT, CPORT), TC_ACT_OK, "allowed");
	ASSERT_EQ(send_pkt(&f, f.to_pod, FRONT, CPORT, SERVER, SPORT,
			   NM_PKT_TCP_ACK),
		  TC_ACT_OK, "established");
	if (!ASSERT_EQ(read_events(&f, &s), 1, "one event, new flow only"))
		goto out;
	ASSERT_EQ(s.ev.type, NM_EVENT_POLICY, "type");
	ASSERT_EQ(s.ev.verdict, NM_POLICY_ALLOW, "verdict");
	ASSERT_EQ(s.ev.reason, NM_REASON_PASS, "reason");
	ASSERT_EQ(s.ev.src_identity, ID_FRONT, "source identity");
out:
	fx_teardown(&f);
}

/* A full ring loses the event and counts it; the packet is unaffected. */
static void full_event_ring_loses_events_not_packets(void)
{
	struct fx_opts o = { .events_bytes = 4096 };
	int i, dropped = 0;
	struct fx f;

	if (!fx_setup_opts(&f, &o) ||
	    !set_endpoint(&f, SERVER, EP_SERVER, ID_SERVER,
			  NM_EP_F_INGRESS_POLICY))
		goto out;
	/* 64-byte records (header included): 64 fit in 4 KiB. */
	for (i = 0; i < 80; i++)
		dropped += syn_to_server(&f, FRONT, htons(40000 + i)) ==
			   TC_ACT_SHOT;
	ASSERT_EQ(dropped, 80, "every packet dropped by policy");
	ASSERT_EQ(to_pod_metric(&f, NM_DROP_POLICY_DEFAULT), 80,
		  "every drop counted");
	ASSERT_GE(to_pod_metric(&f, NM_REASON_EVENT_LOST), 16,
		  "lost events counted");
	ASSERT_EQ(send_pkt(&f, f.prog, SERVER, SPORT, FRONT, CPORT,
			   NM_PKT_TCP_SYN),
		  TC_ACT_OK, "unrelated traffic unaffected");
out:
	fx_teardown(&f);
}

static void truncated_tcp_header_drops_at_to_pod(void)
{
	__u8 in[NM_PKT_MAX];
	struct iphdr *ip = (struct iphdr *)(in + ETH_HLEN);
	struct ev_seen s;
	struct run r;
	struct fx f;
	size_t len;

	if (!setup_server(&f, 0))
		goto out;
	build(in, FRONT, CPORT, SERVER, SPORT, IPPROTO_TCP, NM_PKT_TCP_SYN);
	ip->tot_len = htons(sizeof(*ip) + 12);
	len = ETH_HLEN + sizeof(*ip) + 12;
	nm_pkt_fix_csums(in, len);
	if (!run_prog(&f, f.to_pod, in, len, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_SHOT, "verdict");
	ASSERT_EQ(to_pod_metric(&f, NM_DROP_TRUNC_L4), 1, "TRUNC_L4 counted");
	if (!ASSERT_EQ(read_events(&f, &s), 1, "one event"))
		goto out;
	ASSERT_EQ(s.ev.type, NM_EVENT_DROP, "type");
	ASSERT_EQ(s.ev.reason, NM_DROP_TRUNC_L4, "reason");
	ASSERT_EQ(s.ev.verdict, 0, "no policy verdict");
	ASSERT_EQ(s.ev.dir, NM_DIR_TO_POD, "dir");
out:
	fx_teardown(&f);
}

static void bad_ipv4_header_drops_at_to_pod(void)
{
	__u8 in[NM_PKT_MAX];
	struct iphdr *ip = (struct iphdr *)(in + ETH_HLEN);
	struct run r;
	struct fx f;
	size_t len;

	if (!setup_server(&f, 0))
		goto out;
	len = build(in, FRONT, CPORT, SERVER, SPORT, IPPROTO_TCP,
		    NM_PKT_TCP_SYN);
	ip->ihl = 4;
	if (!run_prog(&f, f.to_pod, in, len, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_SHOT, "verdict");
	ASSERT_EQ(to_pod_metric(&f, NM_DROP_BAD_IPV4), 1, "BAD_IPV4 counted");
out:
	fx_teardown(&f);
}

static void icmp_passes_to_pod_untouched(void)
{
	__u8 in[NM_PKT_MAX];
	struct run r;
	struct fx f;
	size_t len;

	if (!setup_server(&f, NM_EP_F_INGRESS_POLICY))
		goto out;
	len = build(in, FRONT, 0, SERVER, 0, IPPROTO_ICMP, 0);
	if (!run_prog(&f, f.to_pod, in, len, &r))
		goto out;
	ASSERT_EQ(r.verdict, TC_ACT_OK, "verdict");
	if (ASSERT_EQ(r.len, len, "output length"))
		ASSERT_MEMEQ(r.out, in, len, "packet untouched");
	ASSERT_EQ(to_pod_metric(&f, NM_REASON_NOT_L4), 1, "NOT_L4 counted");
out:
	fx_teardown(&f);
}

static const struct nm_test tests[] = {
	NM_TEST(allow_by_identity_and_port),
	NM_TEST(deny_by_identity),
	NM_TEST(deny_beats_allow),
	NM_TEST(default_deny_for_selected_endpoint),
	NM_TEST(non_selected_endpoint_allows_all),
	NM_TEST(cidr_rule_matches_prefix_only),
	NM_TEST(world_is_allowed_only_by_world_or_any),
	NM_TEST(established_flow_survives_allow_removal),
	NM_TEST(reply_passes_the_other_sides_default_deny),
	NM_TEST(egress_policy_is_checked_against_the_backend),
	NM_TEST(policy_drop_produces_event_and_metric),
	NM_TEST(default_deny_event_has_no_rule),
	NM_TEST(allowed_flows_report_events_only_when_asked),
	NM_TEST(full_event_ring_loses_events_not_packets),
	NM_TEST(truncated_tcp_header_drops_at_to_pod),
	NM_TEST(bad_ipv4_header_drops_at_to_pod),
	NM_TEST(icmp_passes_to_pod_untouched),
};

int main(void)
{
	return NM_TEST_RUN(tests);
}
