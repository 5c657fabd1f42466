/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A fleet of real etcds and one nodemesh-agent following them, for the
 * many-clusters test and benchmark (tests/etcd/test_scale.c,
 * bench/bench_scale.c).
 *
 * Member 0 is the agent's own cluster ("home", id FLEET_HOME_ID); members
 * 1..n are remote clusters c001, c002, ... with ids 1..n. Every etcd
 * listens on 127.0.0.1 only, on free ports, and is tuned to idle cheaply
 * (GOMAXPROCS=1, 1 s raft heartbeat; see docs/ARCHITECTURE.md, "Scale:
 * many clusters"). Data dirs live on tmpfs (/dev/shm); the write-ahead
 * logs go to a directory on disk (/var/tmp), because etcd 3.4
 * preallocates 2 x 61 MiB of WAL per member and on tmpfs that is RAM.
 *
 * Every process is killed by pid and both directories and the agent's
 * pin root are removed on every way out: fleet_destroy(), an atexit
 * handler and handlers for the fatal signals; every child also has
 * PR_SET_PDEATHSIG, so a SIGKILLed test leaves no etcd or agent behind,
 * and directories left by dead owners are swept on the next run.
 */
#ifndef NM_TESTS_FLEET_H
#define NM_TESTS_FLEET_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/types.h>

#define FLEET_HOME_ID 65000
#define FLEET_EPS 2 /* endpoints per remote cluster */
#define FLEET_LOCAL_ID 256 /* local id of each cluster's one identity */

struct fleet_etcd {
	pid_t pid; /* 0: not running */
	int cport, pport;
	char url[48];
	char name[16]; /* cluster name: home, c001, ... */
	__u16 id;
};

struct fleet {
	size_t n; /* remote clusters; members 0..n */
	struct fleet_etcd *e;
	char dir[PATH_MAX - 64]; /* tmpfs: data dirs, logs, configs, state */
	char wal[PATH_MAX - 64]; /* disk: the etcds' WALs */
	char pin_root[96];
	char remote_dir[PATH_MAX]; /* the agent's remote-cluster files */
	char agent_bin[PATH_MAX]; /* <build>/nodemesh-agent */
	char ctl_bin[PATH_MAX]; /* <build>/nodemeshctl */
	pid_t agent; /* 0: not running */
	double agent_t0; /* CLOCK_MONOTONIC seconds at agent start */
};

/* What a status poll saw of each member (index as in fleet.e). */
struct fleet_view {
	bool *listed; /* in the status' cluster list */
	bool *synced; /* connected, synced and all its records mirrored */
	size_t n_listed, n_synced;
	bool *in_ipcache; /* every endpoint there, right identity and tunnel */
	bool *any_ipcache; /* some endpoint of it there */
	size_t n_in_ipcache, n_any_ipcache;
	int status_err, ipcache_err; /* 0, or why that half could not be read */
};

#define FLEET_VIEW_STATUS 1u /* nodemeshctl status -o json */
#define FLEET_VIEW_IPCACHE 2u /* nodemeshctl -o json map dump ipcache */

/* Why the machine cannot run a fleet (root, bpffs, etcd, binaries), or NULL.
 * Finds the build dir from /proc/self/exe, @depth directories up. */
const char *fleet_unsupported(struct fleet *f, int depth);
/* Directories, cleanup handlers; no process yet. */
int fleet_init(struct fleet *f, size_t n_remote, const char *tag);
/* Start every etcd at once, wait until all answer (@timeout_s). */
int fleet_start(struct fleet *f, int timeout_s);
/* Remote member @i's records: cluster, node-1, FLEET_EPS endpoints, identity. */
int fleet_fill(struct fleet *f, size_t i);
/* Write (or remove) member @i's remote-cluster file. */
int fleet_remote_add(struct fleet *f, size_t i);
int fleet_remote_del(struct fleet *f, size_t i);
/* Start the agent (home cluster, remote dir as written so far). */
int fleet_agent_start(struct fleet *f);
/* SIGTERM the agent, wait up to @timeout_s; its exit status or -errno. */
int fleet_agent_stop(struct fleet *f, int timeout_s, double *took_s);
/* Look at what @what says (FLEET_VIEW_*). 0 when every part asked for
 * was read; else the first part's error, the other part still filled. */
int fleet_view(struct fleet *f, unsigned int what, struct fleet_view *v);
void fleet_view_free(struct fleet_view *v);
/* A "Name:  N kB"-style number of /proc/PID/status (VmRSS, Threads); -1. */
long fleet_proc_status(pid_t pid, const char *field);
/* Open descriptors of @pid; -1. */
long fleet_proc_fds(pid_t pid);
/* CPU time (user + system) of @pid in seconds; -1. */
double fleet_proc_cpu_s(pid_t pid);
/* Summed private (Private_Dirty + Private_Clean) KiB of the etcds. */
long fleet_etcd_private_kib(const struct fleet *f);
/* Kill everything, remove the directories and the pin root. */
void fleet_destroy(struct fleet *f);

double fleet_now(void);
void fleet_sleep_ms(long ms);
/* Member @i's node IP, endpoint @k's IP, packed identity. */
__be32 fleet_node_ip(size_t i);
__be32 fleet_ep_ip(size_t i, unsigned int k);
__u64 fleet_identity(size_t i);

#endif /* NM_TESTS_FLEET_H */
