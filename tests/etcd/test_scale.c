// SPDX-License-Identifier: GPL-2.0
/*
 * Many clusters (issue 4, item 5): one real nodemesh-agent follows
 * NR_REMOTE real etcds as remote clusters c001..c032 (ids 1..32; its own
 * cluster is "home", id 65000, with an etcd of its own). Each remote
 * holds its cluster record, node-1, one identity and FLEET_EPS endpoints
 * (tests/lib/fleet.c). Asserted through nodemeshctl, as an operator
 * sees it:
 *
 *  - every cluster connected and synced in 'status -o json' within
 *    SYNC_BOUND_S of the agent's start;
 *  - every remote endpoint in 'map dump ipcache' with its cluster's
 *    identity and its node as tunnel endpoint;
 *  - the agent's VmRSS below RSS_BOUND_MIB;
 *  - removing half the remote-cluster files drains exactly those: their
 *    entries leave the ipcache and the status, the other half stays
 *    synced with its entries in place;
 *  - SIGTERM with NR_REMOTE / 2 mirrors running exits 0 within
 *    STOP_BOUND_S.
 *
 * NM_SCALE_CLUSTERS=N overrides the cluster count. Needs root, bpffs and
 * etcd; skips otherwise. Every process is killed by pid and every
 * directory and the pin root removed on every way out (fleet.h).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/fleet.h"
#include "tests/lib/test.h"

#define NR_REMOTE 32
#define START_BOUND_S 60 /* all etcds answering */
#define SYNC_BOUND_S 30 /* agent start -> every cluster synced */
#define IPCACHE_BOUND_S 10 /* synced -> every endpoint in the ipcache */
#define DRAIN_BOUND_S 20 /* files removed -> drained */
#define STOP_BOUND_S 10
/* Measured 14.3 MiB at 32 clusters (11.3 MiB baseline + ~100 KiB a
 * cluster, docs/ARCHITECTURE.md); room for allocator noise, tight enough
 * to catch a per-cluster cost of 0.5 MiB. */
#define RSS_BOUND_MIB 32

static struct fleet fl;
static const char *unsupported;
static size_t nr_remote = NR_REMOTE;
static bool fleet_up, agent_synced;

static bool skip_unless(bool cond, const char *why)
{
	if (!cond)
		nm_test_skip(why);
	return cond;
}

static void test_start_etcds(void)
{
	double t0 = fleet_now();
	long kib;
	size_t i;
	int ret;

	if (!skip_unless(!unsupported, unsupported))
		return;
	ret = fleet_init(&fl, nr_remote, "test");
	if (!ASSERT_OK(ret, "fleet_init"))
		return;
	ret = fleet_start(&fl, START_BOUND_S);
	if (!ASSERT_OK(ret, "every etcd answers"))
		return;
	printf("# %zu etcds answering in %.1f s\n", nr_remote + 1,
	       fleet_now() - t0);
	for (i = 1; i <= nr_remote; i++) {
		ret = fleet_fill(&fl, i);
		if (!ASSERT_OK(ret, fl.e[i].name))
			return;
		ret = fleet_remote_add(&fl, i);
		if (!ASSERT_OK(ret, "remote-cluster file"))
			return;
	}
	kib = fleet_etcd_private_kib(&fl);
	printf("# filled in %.1f s total; etcds' private memory %.1f MiB (%.1f MiB each)\n",
	       fleet_now() - t0, kib / 1024.0, kib / 1024.0 / (nr_remote + 1));
	fleet_up = true;
}

static void agent_log_tail(void)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd),
		 "tail -n 15 '%s/agent.log' | sed 's/^/#   /'", fl.dir);
	if (system(cmd))
		printf("# (no agent log)\n");
}

static void test_agent_syncs_every_cluster(void)
{
	struct fleet_view v = {};
	double t;
	int ret;

	if (!skip_unless(fleet_up, "no fleet"))
		return;
	ret = fleet_agent_start(&fl);
	if (!ASSERT_OK(ret, "agent start"))
		return;
	for (;;) {
		ret = fleet_view(&fl, FLEET_VIEW_STATUS, &v);
		t = fleet_now() - fl.agent_t0;
		if (!ret && v.n_synced == nr_remote + 1)
			break;
		if (t > SYNC_BOUND_S)
			break;
		fleet_sleep_ms(100);
	}
	printf("# %zu of %zu clusters listed, %zu synced, %.1f s after the agent started\n",
	       v.n_listed, nr_remote + 1, v.n_synced, t);
	if (ret)
		printf("# nodemeshctl status failed: %s\n", strerror(-ret));
	if (!ASSERT_EQ(v.n_synced, nr_remote + 1, "clusters synced"))
		agent_log_tail();
	else
		agent_synced = true;
	ASSERT_LE(t, SYNC_BOUND_S, "seconds to sync every cluster");
	fleet_view_free(&v);
}

static bool all_in_ipcache(struct fleet_view *v)
{
	return !fleet_view(&fl, FLEET_VIEW_IPCACHE, v) &&
	       v->n_in_ipcache == nr_remote;
}

static void test_every_endpoint_in_ipcache(void)
{
	struct fleet_view v = {};
	double t0 = fleet_now();
	bool ok;

	if (!skip_unless(agent_synced, "agent not synced"))
		return;
	while (!(ok = all_in_ipcache(&v)) && fleet_now() - t0 < IPCACHE_BOUND_S)
		fleet_sleep_ms(100);
	printf("# %zu of %zu clusters with all %d endpoints in the ipcache (identity, tunnel)\n",
	       v.n_in_ipcache, nr_remote, FLEET_EPS);
	ASSERT_TRUE(ok, "every remote endpoint in the ipcache");
	fleet_view_free(&v);
}

static void test_agent_rss_bounded(void)
{
	long rss, threads, fds;
	double cpu0, cpu1;

	if (!skip_unless(agent_synced, "agent not synced"))
		return;
	/* Let the sink's flushes settle, then measure idle CPU too. */
	fleet_sleep_ms(1000);
	cpu0 = fleet_proc_cpu_s(fl.agent);
	fleet_sleep_ms(3000);
	cpu1 = fleet_proc_cpu_s(fl.agent);
	rss = fleet_proc_status(fl.agent, "VmRSS");
	threads = fleet_proc_status(fl.agent, "Threads");
	fds = fleet_proc_fds(fl.agent);
	printf("# agent with %zu clusters: VmRSS %.1f MiB, %ld threads, %ld fds, idle CPU %.1f%%\n",
	       nr_remote + 1, rss / 1024.0, threads, fds,
	       (cpu1 - cpu0) / 3.0 * 100);
	ASSERT_GT(rss, 0, "VmRSS readable");
	ASSERT_LT(rss, RSS_BOUND_MIB * 1024L, "agent VmRSS KiB");
}

/* Removed (odd) members gone everywhere, kept (even) ones in place. */
static bool half_drained(struct fleet_view *v, size_t *bad)
{
	size_t i;

	*bad = 0;
	if (fleet_view(&fl, FLEET_VIEW_STATUS | FLEET_VIEW_IPCACHE, v))
		return false;
	for (i = 1; i <= nr_remote; i++) {
		if (i % 2 && (v->listed[i] || v->any_ipcache[i]))
			(*bad)++;
		if (!(i % 2) && (!v->synced[i] || !v->in_ipcache[i]))
			(*bad)++;
	}
	return !*bad && v->synced[0];
}

static void test_remove_half_drains_those(void)
{
	struct fleet_view v = {};
	double t0;
	size_t i, bad = 0;
	bool ok;

	if (!skip_unless(agent_synced, "agent not synced"))
		return;
	t0 = fleet_now();
	for (i = 1; i <= nr_remote; i += 2)
		if (!ASSERT_OK(fleet_remote_del(&fl, i), fl.e[i].name))
			return;
	while (!(ok = half_drained(&v, &bad)) &&
	       fleet_now() - t0 < DRAIN_BOUND_S)
		fleet_sleep_ms(100);
	printf("# %zu files removed: drained in %.1f s; %zu clusters listed, %zu with endpoints in the ipcache\n",
	       (nr_remote + 1) / 2, fleet_now() - t0, v.n_listed,
	       v.n_any_ipcache);
	for (i = 1; !ok && v.listed && i <= nr_remote; i++)
		if ((i % 2 && (v.listed[i] || v.any_ipcache[i])) ||
		    (!(i % 2) && (!v.synced[i] || !v.in_ipcache[i])))
			printf("#   %s (%s): listed %d synced %d in ipcache %d\n",
			       fl.e[i].name, i % 2 ? "removed" : "kept",
			       v.listed[i], v.synced[i], v.any_ipcache[i]);
	ASSERT_TRUE(ok, "removed clusters drained, kept ones untouched");
	ASSERT_EQ(bad, 0, "clusters in the wrong state");
	fleet_view_free(&v);
}

static void test_sigterm_stops_every_mirror(void)
{
	double took = 0;
	int ret;

	if (!skip_unless(fl.agent > 0, "no agent"))
		return;
	ret = fleet_agent_stop(&fl, 30, &took);
	printf("# SIGTERM with %zu mirrors: exit %d after %.2f s\n",
	       nr_remote / 2 + 1, ret, took);
	ASSERT_EQ(ret, 0, "agent exit status");
	ASSERT_LT(took, STOP_BOUND_S, "seconds to stop");
}

int main(void)
{
	static const struct nm_test tests[] = {
		NM_TEST(test_start_etcds),
		NM_TEST(test_agent_syncs_every_cluster),
		NM_TEST(test_every_endpoint_in_ipcache),
		NM_TEST(test_agent_rss_bounded),
		NM_TEST(test_remove_half_drains_those),
		NM_TEST(test_sigterm_stops_every_mirror),
	};
	const char *env = getenv("NM_SCALE_CLUSTERS");
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (env && atoi(env) > 0 && atoi(env) <= 999)
		nr_remote = (size_t)atoi(env);
	/* build/tests/etcd/test_scale -> build/ */
	unsupported = fleet_unsupported(&fl, 2);
	failed = NM_TEST_RUN(tests);
	fleet_destroy(&fl);
	return failed ? 1 : 0;
}
