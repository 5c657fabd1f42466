// SPDX-License-Identifier: GPL-2.0
/*
 * kvstore sync figures, all on 127.0.0.1. One etcd (tests/lib/etcd_srv)
 * holds two data sets of cluster "east", mirrored by agent/mirror.c:
 *
 * Into the BPF maps (root and bpffs needed): the datapath is loaded under
 * /sys/fs/bpf/nm-bench-<pid> and the mirror feeds the real map sink
 * (agent/sink.c): 100k endpoints into nm_ipcache_v1 and the services into
 * nm_services_v1/backends/maglev.
 *
 *   sync_initial_100k_s   mirror start until the first list is applied
 *   sync_records_per_s    records / that time
 *
 * End to end through a real nodemesh-agent process: a remote cluster's
 * etcd ("west"), the agent (own cluster "east" with its own etcd) mirroring
 * it into the pin root /sys/fs/bpf/nm-bench-<pid>-agent; 1,000 sequential
 * endpoint puts into west, each timed from just before the put until its
 * /32 is in the pinned nm_ipcache_v1 (the map fd polled every 50 us).
 *
 *   propagation_p50_ms, propagation_p99_ms
 *
 * The same with a counting sink in this process (no maps), for the share
 * of etcd, transport and decoding: sync_initial_100k_nosink_s,
 * sync_records_nosink_per_s, propagation_nosink_p50_ms/_p99_ms (until the
 * sink's upsert of the key).
 *
 * Every etcd and the agent are killed by pid, pins and temporary
 * directories removed on every way out (normal, error, fatal signal).
 * Prints figures only; never judges them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include <bpf/bpf.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "agent/loader.h"
#include "agent/log.h"
#include "agent/mirror.h"
#include "agent/sink.h"
#include "agent/state.h"
#include "maps/ipcache.h"
#include "maps/service.h"
#include "tests/lib/etcd_srv.h"
#include "tests/lib/kv_fx.h"

#define NR_ENDPOINTS 100000
#define NR_SERVICES 10000
#define NR_PROP 1000
#define PROP_NAME "prop-"
#define SYNC_TIMEOUT_S 150
#define PROP_TIMEOUT_S 5
#define AGENT_START_TIMEOUT_S 60
#define POLL_US 50
#define BPF_FS_MAGIC_ 0xcafe4a11

/* The counting-sink data set and the map-sink one, in one etcd. */
#define PREFIX_NOSINK "nodemesh/"
#define PREFIX_MAPS "nmmaps/"
/*
 * Map sink: Maglev M = 251 (small: the figure is about sync, not table
 * quality) and 2 x services + 2 tables (10002 x 2 x 251 x 4 bytes =
 * 20 MiB), so every service has its live table and a spare; nm_services_v1
 * sized for the 10k services (--services-max), nm_backends_v1 left at
 * its default.
 */
#define BENCH_MAGLEV_M 251
#define NR_MAP_SERVICES NR_SERVICES
#define BENCH_MAGLEV_TABLES (2 * NR_MAP_SERVICES + 2)
#define BENCH_SERVICES_MAX 16384

/*
 * What the signal handler cleans up, in plain static storage: the agent's
 * pid, the two pin roots and the work directory.
 */
static volatile pid_t agent_pid;
static char pin_maps[64];
static char pin_agent[80];
static char work[64];
/* The fatal signals etcd_srv handles: its handler runs after ours. */
static const int bench_signals[] = {
	SIGINT,	 SIGTERM, SIGHUP, SIGQUIT, SIGABRT,
	SIGSEGV, SIGBUS,  SIGFPE, SIGILL,  SIGPIPE
};
static struct sigaction old_sa[sizeof(bench_signals) / sizeof(bench_signals[0])];

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* Async-signal-safe: fork, execve and waitpid only. */
static void rm_rf_safe(const char *dir)
{
	char *argv[] = { "rm", "-rf", (char *)dir, NULL };
	pid_t pid;

	if (!dir[0])
		return;
	pid = fork();
	if (pid == 0) {
		execve("/bin/rm", argv, (char *[]){ NULL });
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

static void kill_agent(int sig)
{
	pid_t pid = agent_pid;

	if (pid <= 0)
		return;
	kill(pid, sig);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	agent_pid = 0;
}

/* Ours first, then etcd_srv's handler (which kills the etcds). */
static void on_signal(int sig)
{
	size_t i;

	kill_agent(SIGKILL);
	rm_rf_safe(pin_agent);
	rm_rf_safe(pin_maps);
	rm_rf_safe(work);
	for (i = 0; i < sizeof(bench_signals) / sizeof(bench_signals[0]); i++) {
		if (bench_signals[i] != sig)
			continue;
		if (old_sa[i].sa_handler != SIG_DFL &&
		    old_sa[i].sa_handler != SIG_IGN) {
			old_sa[i].sa_handler(sig);
			return;
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* After the first etcd_srv_start(), so its handler is the one chained. */
static int install_handler(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	size_t i;

	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(bench_signals) / sizeof(bench_signals[0]); i++)
		if (sigaction(bench_signals[i], &sa, &old_sa[i]))
			return -errno;
	return 0;
}

/* ---- counting sink ------------------------------------------------------ */

/* Counts, timestamps the propagation keys, then forwards (if @inner). */
struct bench_sink {
	const struct nm_mirror_sink *inner;
	atomic_ulong upserts;
	atomic_ulong removes;
	atomic_ullong first_svc_ns; /* the list's services come after endpoints */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	__u64 seen_ns[NR_PROP];
};

static int bs_upsert(void *arg, const struct nm_kv_record *rec)
{
	struct bench_sink *b = arg;
	int ret = 0;
	long idx;

	if (rec->key.type == NM_KV_T_SERVICE && !atomic_load(&b->first_svc_ns))
		atomic_store(&b->first_svc_ns, mono_ns());
	if (b->inner)
		ret = b->inner->upsert(b->inner->arg, rec);
	atomic_fetch_add(&b->upserts, 1);
	if (rec->key.type == NM_KV_T_ENDPOINT &&
	    !strncmp(rec->key.name, PROP_NAME, strlen(PROP_NAME))) {
		idx = strtol(rec->key.name + strlen(PROP_NAME), NULL, 10);
		if (idx >= 0 && idx < NR_PROP) {
			pthread_mutex_lock(&b->lock);
			b->seen_ns[idx] = mono_ns();
			pthread_cond_broadcast(&b->cond);
			pthread_mutex_unlock(&b->lock);
		}
	}
	return ret;
}

static int bs_remove(void *arg, const struct nm_kv_key *key)
{
	struct bench_sink *b = arg;

	atomic_fetch_add(&b->removes, 1);
	return b->inner ? b->inner->remove(b->inner->arg, key) : 0;
}

/* ---- etcd data ---------------------------------------------------------- */

/* @n_eps endpoints and @n_svcs services in txns of FX_TXN_OPS puts. */
static int fill(struct nm_etcd *c, const struct nm_kv_ctx *ctx, int n_eps,
		int n_svcs)
{
	struct fx_txn txn = { 0 };
	struct fx_kv kv;
	char name[32];
	int i, ret = 0;

	for (i = 0; i < n_eps + n_svcs && !ret; i++) {
		if (i < n_eps) {
			snprintf(name, sizeof(name), "ep-%06d", i);
			ret = fx_endpoint(ctx, "shop", name, fx_ip(10, i + 1),
					  256 + i % 1000, &kv);
		} else {
			snprintf(name, sizeof(name), "svc-%05d", i - n_eps);
			ret = fx_service(ctx, "shop", name,
					 fx_ip(172, i - n_eps + 1),
					 fx_ip(10, i - n_eps + 1), &kv);
		}
		if (ret)
			break;
		ret = fx_txn_put(&txn, kv.key, kv.val, kv.len);
		fx_kv_free(&kv);
		if (!ret && txn.n == FX_TXN_OPS)
			ret = fx_txn_commit(c, &txn);
	}
	if (!ret)
		ret = fx_txn_commit(c, &txn);
	fx_txn_free(&txn);
	return ret;
}

static int count_cb(const struct nm_etcd_kv *kv, void *arg)
{
	(void)kv;
	++*(long *)arg;
	return 0;
}

/* The transport's share: the same paged list with nothing done per key. */
static void bare_list(struct nm_etcd *c)
{
	struct nm_etcd_range_opts o = { .key = PREFIX_NOSINK,
					.prefix = true,
					.page_size = 5000 };
	struct nm_etcd_err err = { { 0 } };
	__u64 t0 = mono_ns();
	__s64 rev;
	long n = 0;

	if (nm_etcd_range_each(c, &o, count_cb, &n, &rev, &err)) {
		fprintf(stderr, "bench: %s\n", err.msg);
		return;
	}
	printf("# bare paged list of the same %ld keys (no decode, no sink): %.3f s\n",
	       n, (mono_ns() - t0) / 1e9);
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

static void print_lat(const char *name, __u64 *lat)
{
	qsort(lat, NR_PROP, sizeof(*lat), cmp_u64);
	printf("bench: %s_p50_ms %.3f ms\n", name, lat[NR_PROP / 2] / 1e6);
	printf("bench: %s_p99_ms %.3f ms\n", name,
	       lat[NR_PROP * 99 / 100] / 1e6);
}

/* Start a mirror of @prefix and wait until its first list is applied. */
static int sync_once(const struct nm_etcd_config *cfg, const char *prefix,
		     const struct nm_mirror_sink *sink, struct nm_mirror **out,
		     double *secs)
{
	struct nm_mirror_conf conf = { .prefix = prefix,
				       .cluster = "east",
				       .cluster_id = 1 };
	struct nm_mirror_stats st;
	char errbuf[NM_ETCD_ERR_MAX + 64];
	__u64 t0;

	conf.etcd = *cfg;
	t0 = mono_ns();
	if (nm_mirror_start(&conf, sink, out, errbuf, sizeof(errbuf))) {
		fprintf(stderr, "bench: %s\n", errbuf);
		return -EIO;
	}
	for (;;) {
		nm_mirror_get_stats(*out, &st);
		if (st.synced ||
		    mono_ns() - t0 > SYNC_TIMEOUT_S * 1000000000ULL)
			break;
		usleep(1000);
	}
	*secs = (mono_ns() - t0) / 1e9;
	if (!st.synced) {
		fprintf(stderr,
			"bench: mirror of %s not synced after %d s: %s\n",
			prefix, SYNC_TIMEOUT_S, st.last_error);
		return -ETIMEDOUT;
	}
	printf("# %llu records mirrored, %llu rejected, %llu apply errors, page size 5000\n",
	       (unsigned long long)st.records, (unsigned long long)st.rejected,
	       (unsigned long long)st.apply_errors);
	return 0;
}

/* ---- counting sink: sync and in-process propagation --------------------- */

/* Put endpoint PROP_NAME<i> and wait for the sink to see it. */
static int propagate_nosink(struct nm_etcd *c, const struct nm_kv_ctx *ctx,
			    struct bench_sink *b, __u64 *lat)
{
	struct timespec dl;
	struct fx_kv kv;
	char name[32];
	int i, ret = 0;
	__u64 t0;

	for (i = 0; i < NR_PROP && !ret; i++) {
		snprintf(name, sizeof(name), PROP_NAME "%04d", i);
		ret = fx_endpoint(ctx, "prop", name, fx_ip(12, i + 1), 256,
				  &kv);
		if (ret)
			break;
		t0 = mono_ns();
		ret = fx_put(c, &kv, NULL);
		fx_kv_free(&kv);
		if (ret)
			break;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += PROP_TIMEOUT_S;
		pthread_mutex_lock(&b->lock);
		while (!b->seen_ns[i] && !ret)
			ret = -pthread_cond_timedwait(&b->cond, &b->lock, &dl);
		if (b->seen_ns[i])
			ret = 0;
		lat[i] = b->seen_ns[i] - t0;
		pthread_mutex_unlock(&b->lock);
		if (ret)
			fprintf(stderr,
				"bench: put %d never reached the sink\n", i);
	}
	return ret;
}

static int run_nosink(struct nm_etcd *c, const struct nm_etcd_config *cfg)
{
	struct nm_kv_ctx ctx = { .prefix = PREFIX_NOSINK,
				 .cluster = "east",
				 .cluster_id = 1 };
	struct nm_mirror_sink sink = { bs_upsert, bs_remove, NULL };
	struct nm_mirror *m = NULL;
	struct bench_sink *b;
	__u64 *lat;
	double secs;
	int ret = -ENOMEM;

	b = calloc(1, sizeof(*b));
	lat = calloc(NR_PROP, sizeof(*lat));
	if (!b || !lat)
		goto out_free;
	ret = -pthread_mutex_init(&b->lock, NULL);
	if (ret)
		goto out_free;
	ret = -pthread_cond_init(&b->cond, NULL);
	if (ret)
		goto out_lock;
	sink.arg = b;
	printf("# counting sink: no BPF maps, %d endpoints + %d services\n",
	       NR_ENDPOINTS, NR_SERVICES);
	ret = sync_once(cfg, PREFIX_NOSINK, &sink, &m, &secs);
	if (ret)
		goto out_mirror;
	printf("bench: sync_initial_100k_nosink_s %.3f s\n", secs);
	printf("bench: sync_records_nosink_per_s %.0f records/s\n",
	       (NR_ENDPOINTS + NR_SERVICES) / secs);
	bare_list(c);
	ret = propagate_nosink(c, &ctx, b, lat);
	if (ret)
		goto out_mirror;
	printf("# %d sequential puts, from before the put call to the counting sink's upsert (one process)\n",
	       NR_PROP);
	print_lat("propagation_nosink", lat);
out_mirror:
	nm_mirror_stop(m);
	pthread_cond_destroy(&b->cond);
out_lock:
	pthread_mutex_destroy(&b->lock);
out_free:
	free(lat);
	free(b);
	if (ret == -ENOMEM)
		fprintf(stderr, "bench: counting sink: %s\n", strerror(ENOMEM));
	return ret;
}

/* ---- map sink ----------------------------------------------------------- */

static __u32 count_keys(int fd, size_t ksz)
{
	unsigned char key[64] = {}, next[64] = {};
	bool first = true;
	__u32 n = 0;

	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		memcpy(key, next, ksz);
		first = false;
		n++;
	}
	return n;
}

static int run_mapsink(const struct nm_etcd_config *cfg)
{
	struct nm_load_opts lo = { .pin_root = pin_maps,
				   .maglev_m = BENCH_MAGLEV_M,
				   .maglev_tables = BENCH_MAGLEV_TABLES,
				   .services_max = BENCH_SERVICES_MAX,
				   .ct_max = 4096 };
	struct nm_sink_conf sc = { .local_cluster = "east",
				   .local_cluster_id = 1,
				   .local_node = "bench-node" };
	struct nm_mirror_sink inner = { nm_sink_upsert, nm_sink_remove, NULL };
	struct nm_mirror_sink sink = { bs_upsert, bs_remove, NULL };
	struct bench_sink *b = NULL;
	struct nm_datapath *dp = NULL;
	struct nm_mirror *m = NULL;
	struct nm_sink *s = NULL;
	struct nm_maps maps;
	struct nm_state st;
	char state_dir[PATH_MAX];
	__u64 t0;
	double secs;
	int ret;

	snprintf(state_dir, sizeof(state_dir), "%s/state-maps", work);
	/* Only counts and notes when services start: no propagation keys. */
	b = calloc(1, sizeof(*b));
	if (!b) {
		ret = -ENOMEM;
		goto out_pins;
	}
	ret = nm_datapath_load(&lo, &dp);
	if (ret) {
		fprintf(stderr,
			"bench: failed to load the datapath under %s: %s\n",
			pin_maps, strerror(-ret));
		goto out_pins;
	}
	ret = nm_maps_open(pin_maps, &maps);
	if (ret)
		goto out_dp;
	ret = nm_state_open(state_dir, "east", 1, &st);
	if (ret)
		goto out_maps;
	sc.maps = &maps;
	sc.state = &st;
	ret = nm_sink_open(&sc, &s);
	if (ret)
		goto out_maps;
	inner.arg = s;
	b->inner = &inner;
	sink.arg = b;
	printf("# map sink: datapath under %s, Maglev M %u, %u tables, services max %u, backends max %u; %d endpoints + %d services\n",
	       pin_maps, maps.cfg.maglev_m, maps.cfg.maglev_tables,
	       maps.cfg.services_max, maps.cfg.backends_max, NR_ENDPOINTS,
	       NR_MAP_SERVICES);
	t0 = mono_ns();
	ret = sync_once(cfg, PREFIX_MAPS, &sink, &m, &secs);
	if (ret)
		goto out_mirror;
	if (atomic_load(&b->first_svc_ns))
		printf("# of which endpoints %.3f s, services %.3f s (nm_svc_upsert through the sink's service index: one map scan, then none)\n",
		       (atomic_load(&b->first_svc_ns) - t0) / 1e9,
		       secs - (atomic_load(&b->first_svc_ns) - t0) / 1e9);
	printf("# in the maps: %u ipcache entries, %u services\n",
	       count_keys(maps.ipcache, sizeof(struct nm_ipcache_key)),
	       count_keys(maps.services, sizeof(struct nm_svc_key)));
	printf("bench: sync_initial_100k_s %.3f s\n", secs);
	printf("bench: sync_records_per_s %.0f records/s\n",
	       (NR_ENDPOINTS + NR_MAP_SERVICES) / secs);
out_mirror:
	nm_mirror_stop(m);
	nm_sink_close(s);
out_maps:
	nm_maps_close(&maps);
out_dp:
	nm_datapath_close(dp);
out_pins:
	rm_rf_safe(pin_maps);
	free(b);
	return ret;
}

/* ---- end to end through nodemesh-agent ---------------------------------- */

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ret = 0;

	if (!f)
		return -errno;
	if (fputs(text, f) < 0)
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

/* build/bench/bench_sync -> build/nodemesh-agent */
static int agent_path(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n <= 0)
		return -errno;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(buf, '/');
	if (!slash || (size_t)(slash - buf) + sizeof("/nodemesh-agent") > len)
		return -ENAMETOOLONG;
	strcpy(slash, "/nodemesh-agent");
	return access(buf, X_OK) ? -errno : 0;
}

static void print_agent_log(const char *log)
{
	char line[512];
	FILE *f = fopen(log, "r");
	long sz;

	if (!f)
		return;
	/* The last few KiB are enough to see why. */
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) <= 4096 ||
	    fseek(f, sz - 4096, SEEK_SET))
		rewind(f);
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "# agent: %s", line);
	fclose(f);
}

static pid_t spawn_agent(const char *agent, const char *cfg, const char *log)
{
	pid_t pid = fork();
	int fd;

	if (pid != 0)
		return pid;
	/* Dies with the bench, whatever kills it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execl(agent, agent, "--config", cfg, "--node", "bench-node",
	      "--node-ip", "192.168.200.1", (char *)NULL);
	_exit(127);
}

/* Wait for the agent to pin nm_ipcache_v1, then open it. */
static int open_agent_ipcache(const char *path, int *fd)
{
	__u64 t0 = mono_ns();
	int status;

	for (;;) {
		*fd = bpf_obj_get(path);
		if (*fd >= 0)
			return 0;
		if (waitpid(agent_pid, &status, WNOHANG) == agent_pid) {
			agent_pid = 0;
			fprintf(stderr, "bench: the agent exited early\n");
			return -ECHILD;
		}
		if (mono_ns() - t0 > AGENT_START_TIMEOUT_S * 1000000000ULL) {
			fprintf(stderr, "bench: %s not pinned after %d s\n",
				path, AGENT_START_TIMEOUT_S);
			return -ETIMEDOUT;
		}
		usleep(10000);
	}
}

/* Put endpoint @name at @ip into west; nanoseconds until its /32 is there. */
static int put_and_wait(struct nm_etcd *c, const struct nm_kv_ctx *ctx, int fd,
			const char *name, __be32 ip, long timeout_s, __u64 *ns)
{
	struct nm_ipcache_key k = { .prefixlen = 32, .addr = ip };
	struct nm_ipcache_val v;
	struct fx_kv kv;
	__u64 t0;
	int ret;

	ret = fx_endpoint(ctx, "prop", name, ip, 256, &kv);
	if (ret)
		return ret;
	t0 = mono_ns();
	ret = fx_put(c, &kv, NULL);
	fx_kv_free(&kv);
	if (ret)
		return ret;
	while (bpf_map_lookup_elem(fd, &k, &v)) {
		if (mono_ns() - t0 > (__u64)timeout_s * 1000000000ULL) {
			fprintf(stderr,
				"bench: %s never reached the agent's ipcache\n",
				name);
			return -ETIMEDOUT;
		}
		usleep(POLL_US);
	}
	*ns = mono_ns() - t0;
	return 0;
}

static int run_agent(void)
{
	struct nm_kv_ctx west_ctx = { .cluster = "west", .cluster_id = 2 };
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct etcd_srv east = { .slot = -1 }, west = { .slot = -1 };
	struct nm_etcd_err err = { { 0 } };
	char agent[PATH_MAX], conf[128], dir[96], log[96], path[128];
	char text[1024], name[32];
	struct nm_etcd *wc = NULL;
	__u64 *lat, t0, warm;
	int fd = -1, i, ret;

	lat = calloc(NR_PROP, sizeof(*lat));
	if (!lat)
		return -ENOMEM;
	ret = agent_path(agent, sizeof(agent));
	if (ret) {
		printf("# propagation through the agent skipped: nodemesh-agent not built (%s)\n",
		       strerror(-ret));
		goto out_lat;
	}
	ret = etcd_srv_start(&east, NULL);
	if (!ret)
		ret = etcd_srv_start(&west, NULL);
	if (ret) {
		fprintf(stderr, "bench: failed to start etcd: %s\n",
			strerror(-ret));
		goto out_srv;
	}
	cfg.endpoints[0] = west.url;
	ret = nm_etcd_open(&cfg, &wc, &err);
	if (ret) {
		fprintf(stderr, "bench: %s\n", err.msg);
		goto out_srv;
	}

	snprintf(dir, sizeof(dir), "%s/clusters", work);
	snprintf(conf, sizeof(conf), "%s/west.yaml", dir);
	snprintf(text, sizeof(text), "name: west\nid: 2\nendpoints: [%s]\n",
		 west.url);
	ret = mkdir(dir, 0700) ? -errno : write_file(conf, text);
	if (ret)
		goto out_client;
	snprintf(conf, sizeof(conf), "%s/agent.yaml", work);
	snprintf(text, sizeof(text),
		 "cluster: east\ncluster_id: 1\netcd:\n  endpoints: [%s]\n"
		 "pin_root: %s\nstate_dir: %s/state-agent\n"
		 "remote_clusters_dir: %s\ntunnel: disabled\n",
		 east.url, pin_agent, work, dir);
	ret = write_file(conf, text);
	if (ret)
		goto out_client;
	snprintf(log, sizeof(log), "%s/agent.log", work);

	t0 = mono_ns();
	agent_pid = spawn_agent(agent, conf, log);
	if (agent_pid < 0) {
		ret = -errno;
		agent_pid = 0;
		goto out_client;
	}
	snprintf(path, sizeof(path), "%s/%s", pin_agent, NM_MAP_IPCACHE);
	ret = open_agent_ipcache(path, &fd);
	if (ret)
		goto out_agent;
	/* The first record to arrive also says west is mirrored. */
	ret = put_and_wait(wc, &west_ctx, fd, "warm-up", fx_ip(13, 1),
			   AGENT_START_TIMEOUT_S, &warm);
	if (ret)
		goto out_agent;
	printf("# agent up and mirroring west %.2f s after its start\n",
	       (mono_ns() - t0) / 1e9);
	for (i = 0; i < NR_PROP && !ret; i++) {
		snprintf(name, sizeof(name), PROP_NAME "%04d", i);
		ret = put_and_wait(wc, &west_ctx, fd, name, fx_ip(12, i + 1),
				   PROP_TIMEOUT_S, &lat[i]);
	}
	if (ret)
		goto out_agent;
	printf("# %d sequential puts into west's etcd, from before the put until the /32 is in the agent's pinned nm_ipcache_v1 (polled every %d us)\n",
	       NR_PROP, POLL_US);
	print_lat("propagation", lat);
out_agent:
	if (ret)
		print_agent_log(log);
	if (fd >= 0)
		close(fd);
	kill_agent(SIGTERM);
	rm_rf_safe(pin_agent);
out_client:
	nm_etcd_close(wc);
out_srv:
	etcd_srv_destroy(&west);
	etcd_srv_destroy(&east);
out_lat:
	free(lat);
	return ret;
}

int main(void)
{
	struct nm_kv_ctx nosink = { .prefix = PREFIX_NOSINK,
				    .cluster = "east",
				    .cluster_id = 1 },
			 maps = { .prefix = PREFIX_MAPS,
				  .cluster = "east",
				  .cluster_id = 1 };
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct etcd_srv srv = { .slot = -1 };
	struct nm_etcd_err err = { { 0 } };
	struct nm_etcd *c = NULL;
	bool bpf_ok = true;
	struct statfs fs;
	__u64 t0;
	int ret = 1, r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	nm_log_set_ident("bench_sync");
	nm_log_init_libbpf();
	if (access(getenv("ETCD_BIN") ?: "/usr/bin/etcd", X_OK)) {
		printf("# sync bench skipped: etcd not installed (scripts/deps.sh)\n");
		return 0;
	}
	if (geteuid() != 0 || statfs("/sys/fs/bpf", &fs) ||
	    fs.f_type != BPF_FS_MAGIC_) {
		printf("# map sink and agent figures skipped: need root and bpffs at /sys/fs/bpf\n");
		bpf_ok = false;
	}
	snprintf(pin_maps, sizeof(pin_maps), "/sys/fs/bpf/nm-bench-%d",
		 (int)getpid());
	snprintf(pin_agent, sizeof(pin_agent), "%s-agent", pin_maps);
	snprintf(work, sizeof(work), "/tmp/nm-bench-sync-%d-XXXXXX",
		 (int)getpid());
	if (!mkdtemp(work)) {
		fprintf(stderr, "bench: failed to create %s: %s\n", work,
			strerror(errno));
		work[0] = '\0';
		return 1;
	}
	r = etcd_srv_start(&srv, NULL);
	if (!r)
		r = install_handler();
	if (r) {
		fprintf(stderr,
			"bench: failed to start etcd on 127.0.0.1: %s\n",
			strerror(-r));
		goto out_work;
	}
	cfg.endpoints[0] = srv.url;
	if (nm_etcd_open(&cfg, &c, &err)) {
		fprintf(stderr, "bench: %s\n", err.msg);
		goto out_srv;
	}
	t0 = mono_ns();
	if (fill(c, &nosink, NR_ENDPOINTS, NR_SERVICES) ||
	    (bpf_ok && fill(c, &maps, NR_ENDPOINTS, NR_MAP_SERVICES))) {
		fprintf(stderr, "bench: failed to fill etcd on %s\n", srv.url);
		goto out_client;
	}
	printf("# filled %d + %d and %d + %d endpoint + service records in %.2f s (txns of %d)\n",
	       NR_ENDPOINTS, NR_SERVICES, bpf_ok ? NR_ENDPOINTS : 0,
	       bpf_ok ? NR_MAP_SERVICES : 0, (mono_ns() - t0) / 1e9,
	       FX_TXN_OPS);

	if (bpf_ok && run_mapsink(&cfg))
		goto out_client;
	if (run_nosink(c, &cfg))
		goto out_client;
	if (bpf_ok && run_agent())
		goto out_client;
	ret = 0;
out_client:
	nm_etcd_close(c);
out_srv:
	etcd_srv_destroy(&srv);
out_work:
	rm_rf_safe(work);
	return ret;
}
