// SPDX-License-Identifier: GPL-2.0
/*
 * nodemeshctl monitor: policy verdict and drop events from nm_events_v1,
 * read with libbpf's ring_buffer on the pinned fd.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <bpf/libbpf.h>

#include "agent/ctl/ctl.h"
#include "agent/log.h"
#include "agent/parse.h"
#include "maps/events.h"
#include "maps/identity.h"
#include "maps/metrics.h"

struct monitor_ctx {
	struct node_ctx *n;
	struct nm_ep_rec *eps;
	size_t n_eps;
	long long mono_to_real_ns; /* realtime - monotonic, at start */
	unsigned long count, max;
	bool draining; /* skipping what was queued before we started */
};

static const struct nm_ep_rec *ep_by_id(const struct monitor_ctx *m, __u32 id)
{
	size_t i;

	for (i = 0; id && i < m->n_eps; i++)
		if (m->eps[i].val.endpoint_id == id)
			return &m->eps[i];
	return NULL;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct monitor_ctx *m = ctx;
	const struct nm_event *e = data;
	const struct nm_ep_rec *ep;
	char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN], ts[64], epip[INET_ADDRSTRLEN];
	char sid[48], did[48], rbuf[16];
	char *sl, *dl;
	const char *rn, *dir;
	long long real;
	time_t sec;
	struct tm tm;

	if (size < sizeof(*e) || m->draining)
		return 0;
	real = (long long)e->ts_ns + m->mono_to_real_ns;
	sec = (time_t)(real / 1000000000LL);
	if (!localtime_r(&sec, &tm) || !strftime(ts, sizeof(ts), "%H:%M:%S", &tm))
		strcpy(ts, "?");
	rn = reason_name(e->reason);
	if (!rn) {
		snprintf(rbuf, sizeof(rbuf), "reason_%u", e->reason);
		rn = rbuf;
	}
	dir = e->dir == NM_DIR_TO_POD	      ? "to-pod" :
	      e->dir == NM_DIR_FROM_OVERLAY ? "from-overlay" :
					      "from-pod";
	ep = ep_by_id(m, e->endpoint_id);
	sl = id_labels(&m->n->ids, e->src_identity);
	dl = id_labels(&m->n->ids, e->dst_identity);
	if (opt_json) {
		printf("{\"time\":\"%s.%03lld\",\"ts_ns\":%llu,\"type\":\"%s\",\"direction\":\"%s\",\"proto\":\"%s\",\"saddr\":\"%s\",\"sport\":%u,\"daddr\":\"%s\",\"dport\":%u,\"endpoint_id\":%u,",
		       ts, (real / 1000000LL) % 1000,
		       (unsigned long long)e->ts_ns,
		       e->type == NM_EVENT_DROP ? "drop" : "policy", dir,
		       nm_proto_name(e->proto), ip_str(e->saddr, s),
		       ntohs(e->sport), ip_str(e->daddr, d), ntohs(e->dport),
		       e->endpoint_id);
		if (ep)
			printf("\"endpoint\":\"%s\",", ip_str(ep->addr, epip));
		printf("\"src_identity\":%llu,\"src_labels\":",
		       (unsigned long long)e->src_identity);
		json_labels(&m->n->ids, e->src_identity);
		printf(",\"dst_identity\":%llu,\"dst_labels\":",
		       (unsigned long long)e->dst_identity);
		json_labels(&m->n->ids, e->dst_identity);
		printf(",\"verdict\":\"%s\",\"reason\":\"%s\",\"rule_id\":%u}\n",
		       verdict_name(e->verdict), rn, e->rule_id);
	} else {
		printf("%s.%03lld %-8s %s %s:%u -> %s:%u endpoint %u%s%s src %s [%s] dst %s [%s] %s%s %s",
		       ts, (real / 1000000LL) % 1000, dir,
		       nm_proto_name(e->proto), ip_str(e->saddr, s),
		       ntohs(e->sport), ip_str(e->daddr, d), ntohs(e->dport),
		       e->endpoint_id, ep ? " " : "",
		       ep ? ip_str(ep->addr, epip) : "",
		       id_str(e->src_identity, sid, sizeof(sid)), sl ?: "?",
		       id_str(e->dst_identity, did, sizeof(did)), dl ?: "?",
		       e->type == NM_EVENT_DROP ? "DROP " : "",
		       verdict_name(e->verdict), rn);
		if (e->rule_id)
			printf(" rule %u", e->rule_id);
		putchar('\n');
	}
	fflush(stdout);
	free(sl);
	free(dl);
	m->count++;
	/* A negative return stops ring_buffer__poll: we have what was asked. */
	return m->max && m->count >= m->max ? -ECANCELED : 0;
}

static long long clock_ns(clockid_t id)
{
	struct timespec t;

	if (clock_gettime(id, &t))
		return 0;
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static volatile sig_atomic_t monitor_stop;

static void on_signal(int sig)
{
	(void)sig;
	monitor_stop = 1;
}

int cmd_monitor(int argc, char **argv)
{
	struct monitor_ctx m = {};
	struct ring_buffer *rb = NULL;
	struct node_ctx n;
	const char *count_s = NULL, *timeout_s = NULL;
	__u32 count = 0, timeout = 0;
	const struct ctl_opt opts[] = {
		{ "--count", &count_s }, { "--timeout", &timeout_s }, {}
	};
	long long deadline = 0, left;
	int err, ret;

	memset(&n, 0, sizeof(n));
	err = ctl_args(argc, argv, "monitor", opts, NULL);
	if (err)
		return err;
	if ((count_s && parse_u32(count_s, "--count", &count)) ||
	    (timeout_s && parse_u32(timeout_s, "--timeout", &timeout)))
		return -EINVAL;
	err = node_open(&n, false);
	if (err)
		goto out;
	err = nm_endpoints_read(&n.maps, &m.eps, &m.n_eps);
	if (err)
		goto out;
	m.n = &n;
	m.max = count;
	m.mono_to_real_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
	rb = ring_buffer__new(n.maps.events, on_event, &m, NULL);
	if (!rb) {
		err = -errno;
		pr_warn("failed to open ring buffer %s on %s: %s", NM_MAP_EVENTS,
			n.maps.pin_root, strerror(-err));
		goto out;
	}
	/*
	 * The ring keeps what no reader consumed, from before we started:
	 * skip it, only what happens from now on is printed.
	 */
	m.draining = true;
	ret = ring_buffer__consume(rb);
	m.draining = false;
	if (ret < 0) {
		err = ret;
		pr_warn("failed to read ring buffer %s on %s: %s", NM_MAP_EVENTS,
			n.maps.pin_root, strerror(-err));
		goto out;
	}
	if (signal(SIGINT, on_signal) == SIG_ERR ||
	    signal(SIGTERM, on_signal) == SIG_ERR) {
		err = -errno;
		pr_warn("failed to install signal handlers: %s", strerror(-err));
		goto out;
	}
	if (timeout)
		deadline = clock_ns(CLOCK_MONOTONIC) + (long long)timeout * 1000000000LL;
	/* On stderr in both formats: scripts wait for it before traffic. */
	fprintf(stderr, "monitoring %s/%s%s\n", n.maps.pin_root, NM_MAP_EVENTS,
		count || timeout ? "" : " (Ctrl-C to stop)");
	while (!monitor_stop) {
		int ms = 200;

		if (deadline) {
			left = (deadline - clock_ns(CLOCK_MONOTONIC)) / 1000000LL;
			if (left <= 0)
				break;
			if (left < ms)
				ms = (int)left;
		}
		ret = ring_buffer__poll(rb, ms);
		if (ret == -ECANCELED || (m.max && m.count >= m.max))
			break;
		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			err = ret;
			pr_warn("failed to read ring buffer %s on %s: %s",
				NM_MAP_EVENTS, n.maps.pin_root, strerror(-err));
			break;
		}
		/* Endpoints come and go while we watch: refresh now and then. */
		if (!ret) {
			free(m.eps);
			m.eps = NULL;
			m.n_eps = 0;
			err = nm_endpoints_read(&n.maps, &m.eps, &m.n_eps);
			if (err)
				break;
			nm_idstore_free(&n.ids);
			n.ids_loaded = false;
			err = nm_idstore_load(&n.st, &n.ids);
			if (err)
				break;
			n.ids_loaded = true;
		}
	}
out:
	ring_buffer__free(rb);
	free(m.eps);
	node_close(&n);
	return err;
}
