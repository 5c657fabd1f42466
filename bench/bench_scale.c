// SPDX-License-Identifier: GPL-2.0
/*
 * Many clusters: one real nodemesh-agent following NR_REMOTE (256) real
 * etcds as remote clusters c001..c256 (ids 1..256; its own cluster
 * "home" has an etcd too), each holding its cluster record, node-1, one
 * identity and FLEET_EPS endpoints (tests/lib/fleet.c).
 *
 * First a baseline: the agent with no remote-cluster file, its VmRSS once
 * home is synced; then SIGTERM and a fresh start with all NR_REMOTE files
 * in place:
 *
 *   bench: agent_clusters_256_sync_s <v> s        agent start -> every
 *          cluster connected, synced, all records ('status -o json')
 *   bench: agent_clusters_256_ipcache_s <v> s     agent start -> every
 *          endpoint in the ipcache ('map dump ipcache', no agent API)
 *   bench: agent_clusters_256_rss_mib <v> MiB     VmRSS after sync
 *   bench: agent_clusters_256_threads <n> threads Threads: of /proc/PID/status
 *   bench: agent_clusters_256_fds <n> fds         open descriptors
 *   bench: agent_rss_per_cluster_kib <v> KiB      (RSS - baseline) / clusters
 *   bench: agent_clusters_256_idle_cpu_pct <v> %  of one CPU, 5 s after sync
 *   bench: agent_clusters_256_stop_s <v> s        SIGTERM -> exit
 *
 * sync_s needs the status API; when it cannot be read (see "Scale: many
 * clusters" in docs/ARCHITECTURE.md) the figure is skipped with the
 * reason and the others, read from /proc and the maps, still printed.
 * NM_SCALE_CLUSTERS=N runs another count (the figure names say which).
 * Needs root, bpffs and etcd; prints a skip reason otherwise. Every
 * process is killed by pid, every directory and the pin root removed on
 * every way out (tests/lib/fleet.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "tests/lib/fleet.h"

#define NR_REMOTE 256
#define START_TIMEOUT_S 300
#define SYNC_TIMEOUT_S 300
#define IDLE_S 5
#define STATUS_GRACE_S 10.0

static size_t nr;

static void skip(const char *why)
{
	printf("bench: agent_clusters_%zu skipped: %s\n", nr, why);
}

/*
 * Poll status and ipcache until every cluster is synced (status) and
 * every endpoint is in the ipcache (maps, read without the agent's API);
 * seconds since the agent's start of each, -1 if never. With @ipcache
 * false only status is looked at.
 */
static int wait_synced(struct fleet *f, size_t want, bool ipcache,
		       double *sync_s, double *ipc_s)
{
	unsigned int what = FLEET_VIEW_STATUS;
	struct fleet_view v = {};
	int status_err = 0;
	double t;

	*sync_s = *ipc_s = -1;
	if (ipcache)
		what |= FLEET_VIEW_IPCACHE;
	for (;;) {
		if (fleet_view(f, what, &v) == -ENOMEM)
			break;
		/* When the poll that saw it answered. */
		t = fleet_now() - f->agent_t0;
		status_err = v.status_err;
		if (!v.status_err && v.n_synced == want + 1) {
			*sync_s = t;
			what &= ~FLEET_VIEW_STATUS;
		}
		if (ipcache && !v.ipcache_err && v.n_in_ipcache == want) {
			*ipc_s = t;
			what &= ~FLEET_VIEW_IPCACHE;
		}
		if (!what)
			break;
		/* Everything is in the maps: give status a little longer. */
		if (*ipc_s >= 0 && t > *ipc_s + STATUS_GRACE_S) {
			printf("# every endpoint in the ipcache, but status %s %.0f s later\n",
			       status_err ? "still unreadable" : "not synced",
			       STATUS_GRACE_S);
			break;
		}
		if (waitpid(f->agent, NULL, WNOHANG) == f->agent) {
			printf("# the agent exited\n");
			f->agent = 0; /* reaped: never signal it again */
			break;
		}
		if (t > SYNC_TIMEOUT_S) {
			printf("# after %.1f s: %zu of %zu clusters synced%s%s, %zu in the ipcache\n",
			       t, v.n_synced, want + 1,
			       status_err ? "; status unreadable: " : "",
			       status_err ? strerror(-status_err) : "",
			       v.n_in_ipcache);
			break;
		}
		fleet_sleep_ms(50);
	}
	fleet_view_free(&v);
	return status_err;
}

int main(void)
{
	const char *env = getenv("NM_SCALE_CLUSTERS");
	struct fleet fl;
	const char *why;
	double t0, sync_s, ipc_s, cpu0, cpu1, stop_s;
	long rss0, rss, threads, fds, vmsize, kib;
	size_t i;
	int ret, status_err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	nr = NR_REMOTE;
	if (env && atoi(env) > 0 && atoi(env) <= 999)
		nr = (size_t)atoi(env);
	/* build/bench/bench_scale -> build/ */
	why = fleet_unsupported(&fl, 1);
	if (why) {
		skip(why);
		return 0;
	}
	ret = fleet_init(&fl, nr, "bench");
	if (ret) {
		skip("failed to create the fleet's directories");
		goto out;
	}
	t0 = fleet_now();
	ret = fleet_start(&fl, START_TIMEOUT_S);
	if (ret) {
		skip("the etcds did not all start");
		goto out;
	}
	printf("# %zu etcds answering in %.1f s\n", nr + 1, fleet_now() - t0);
	for (i = 1; i <= nr; i++) {
		if (fleet_fill(&fl, i)) {
			skip("failed to fill an etcd");
			goto out;
		}
	}
	kib = fleet_etcd_private_kib(&fl);
	printf("# etcds filled; their private memory %.0f MiB (%.1f MiB each), %.1f s so far\n",
	       kib / 1024.0, kib / 1024.0 / (nr + 1), fleet_now() - t0);

	/* Baseline: home only. */
	if (fleet_agent_start(&fl) ||
	    (wait_synced(&fl, 0, false, &sync_s, &ipc_s), sync_s < 0)) {
		skip("the agent did not sync its own cluster");
		goto out;
	}
	fleet_sleep_ms(1000);
	rss0 = fleet_proc_status(fl.agent, "VmRSS");
	printf("# baseline (home only): VmRSS %.1f MiB, %ld threads, %ld fds\n",
	       rss0 / 1024.0, fleet_proc_status(fl.agent, "Threads"),
	       fleet_proc_fds(fl.agent));
	if (fleet_agent_stop(&fl, 30, NULL)) {
		skip("the baseline agent did not stop cleanly");
		goto out;
	}

	for (i = 1; i <= nr; i++) {
		if (fleet_remote_add(&fl, i)) {
			skip("failed to write a remote-cluster file");
			goto out;
		}
	}
	if (fleet_agent_start(&fl)) {
		skip("failed to start the agent");
		goto out;
	}
	status_err = wait_synced(&fl, nr, true, &sync_s, &ipc_s);
	if (ipc_s < 0 || !fl.agent) {
		skip("not every cluster reached the ipcache in time");
		goto out;
	}
	fleet_sleep_ms(1000);
	rss = fleet_proc_status(fl.agent, "VmRSS");
	vmsize = fleet_proc_status(fl.agent, "VmSize");
	threads = fleet_proc_status(fl.agent, "Threads");
	fds = fleet_proc_fds(fl.agent);
	cpu0 = fleet_proc_cpu_s(fl.agent);
	fleet_sleep_ms(IDLE_S * 1000);
	cpu1 = fleet_proc_cpu_s(fl.agent);
	printf("# agent VmSize %.0f MiB (virtual: malloc arenas and thread stacks)\n",
	       vmsize / 1024.0);
	if (sync_s >= 0)
		printf("bench: agent_clusters_%zu_sync_s %.2f s\n", nr, sync_s);
	else
		printf("bench: agent_clusters_%zu_sync_s skipped: status unreadable (%s; see docs/ARCHITECTURE.md, Scale)\n",
		       nr, strerror(-status_err));
	printf("bench: agent_clusters_%zu_ipcache_s %.2f s\n", nr, ipc_s);
	printf("bench: agent_clusters_%zu_rss_mib %.1f MiB\n", nr,
	       rss / 1024.0);
	printf("bench: agent_clusters_%zu_threads %ld threads\n", nr, threads);
	printf("bench: agent_clusters_%zu_fds %ld fds\n", nr, fds);
	printf("bench: agent_rss_per_cluster_kib %.0f KiB\n",
	       (double)(rss - rss0) / nr);
	printf("bench: agent_clusters_%zu_idle_cpu_pct %.1f %%\n", nr,
	       (cpu1 - cpu0) / IDLE_S * 100);
	ret = fleet_agent_stop(&fl, 120, &stop_s);
	if (ret)
		printf("# agent exit status %d after SIGTERM\n", ret);
	printf("bench: agent_clusters_%zu_stop_s %.2f s\n", nr, stop_s);
out:
	fleet_destroy(&fl);
	return 0;
}
