/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Verdict and drop events into nm_events_v1 (see maps/events.h). A full
 * ring loses the event, never the packet: the loss is counted as
 * NM_REASON_EVENT_LOST (packets = events lost, bytes 0).
 */
#ifndef NM_BPF_EVENTS_H
#define NM_BPF_EVENTS_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "bpf/lib/maps.h"
#include "bpf/lib/metrics.h"
#include "bpf/lib/policy.h"

/* Policy verdicts (denies, allowed flows) apart from other drops. */
static __always_inline __u8 nm_event_type(__u32 reason)
{
	if (reason == NM_DROP_POLICY_DENY || reason == NM_DROP_POLICY_DEFAULT ||
	    !NM_REASON_IS_DROP(reason))
		return NM_EVENT_POLICY;
	return NM_EVENT_DROP;
}

/*
 * Report a packet accounted as @reason in @dir: @t is its tuple as seen
 * at the hook (zero when it did not parse), @res the policy decision of
 * its flow (zero when none was taken).
 */
static __always_inline void nm_event_emit(__u8 dir, __u32 reason,
					  const struct nm_ct_key *t,
					  const struct nm_policy_res *res)
{
	struct nm_event *ev;

	ev = bpf_ringbuf_reserve(&nm_events_v1, sizeof(*ev), 0);
	if (!ev) {
		nm_metrics_inc(dir, NM_REASON_EVENT_LOST, 0);
		return;
	}
	/* Ring memory is not zeroed: write every byte. */
	ev->ts_ns = bpf_ktime_get_ns();
	ev->src_identity = res->src_id;
	ev->dst_identity = res->dst_id;
	ev->saddr = t->saddr;
	ev->daddr = t->daddr;
	ev->sport = t->sport;
	ev->dport = t->dport;
	ev->endpoint_id = res->endpoint_id;
	ev->rule_id = res->rule_id;
	ev->reason = reason;
	ev->type = nm_event_type(reason);
	ev->dir = dir;
	ev->proto = t->proto;
	ev->verdict = res->verdict;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	bpf_ringbuf_submit(ev, 0);
}

/*
 * Count the packet and report it: every drop, and with @allow_events the
 * new flows that policy allowed. Returns the tc verdict.
 */
static __always_inline int nm_account(__u8 dir, __u32 reason, __u32 len,
				      const struct nm_ct_key *t,
				      const struct nm_policy_res *res,
				      __u8 allow_events)
{
	nm_metrics_inc(dir, reason, len);
	if (NM_REASON_IS_DROP(reason)) {
		nm_event_emit(dir, reason, t, res);
		return TC_ACT_SHOT;
	}
	if (allow_events && res->verdict)
		nm_event_emit(dir, reason, t, res);
	return TC_ACT_OK;
}

#endif /* NM_BPF_EVENTS_H */
