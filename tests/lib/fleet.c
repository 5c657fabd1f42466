// SPDX-License-Identifier: GPL-2.0
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "maps/identity.h"
#include "tests/lib/etcd_srv.h"
#include "tests/lib/fleet.h"
#include "tests/lib/kv_fx.h"

#define BPF_FS_MAGIC_ 0xcafe4a11
#define TMPFS_ROOT "/dev/shm"
#define DISK_ROOT "/var/tmp"
#define SPAWN_TRIES 3
#define OUT_MAX (64u << 20)

/* What the exit and signal handlers need; set once, before any child. */
static struct fleet *volatile reg;

static const int fatal_signals[] = {
	SIGINT,	 SIGTERM, SIGHUP, SIGQUIT, SIGABRT,
	SIGSEGV, SIGBUS,  SIGFPE, SIGILL,  SIGPIPE
};

double fleet_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void fleet_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

__be32 fleet_node_ip(size_t i)
{
	return fx_ip(172, (__u32)i);
}

__be32 fleet_ep_ip(size_t i, unsigned int k)
{
	return fx_ip(10, (__u32)(i * 4 + k));
}

__u64 fleet_identity(size_t i)
{
	return nm_identity_pack((__u16)i, FLEET_LOCAL_ID);
}

/* ---- cleanup ------------------------------------------------------------- */

static int rm_cb(const char *path, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		printf("# failed to remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void rm_rf(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

/* Async-signal-safe: kill, waitpid, fork and execve only. */
static void on_signal(int sig)
{
	struct fleet *f = reg;
	char *argv[6];
	size_t i;
	pid_t rm;

	if (f) {
		if (f->agent > 0)
			kill(f->agent, SIGKILL);
		for (i = 0; f->e && i <= f->n; i++)
			if (f->e[i].pid > 0)
				kill(f->e[i].pid, SIGKILL);
		if (f->agent > 0)
			etcd_srv_reap(f->agent);
		for (i = 0; f->e && i <= f->n; i++)
			if (f->e[i].pid > 0)
				etcd_srv_reap(f->e[i].pid);
		rm = fork();
		if (rm == 0) {
			argv[0] = "rm";
			argv[1] = "-rf";
			argv[2] = f->dir;
			argv[3] = f->wal;
			argv[4] = f->pin_root;
			argv[5] = NULL;
			execve("/bin/rm", argv, (char *[]){ NULL });
			_exit(127);
		}
		if (rm > 0)
			etcd_srv_reap(rm);
		reg = NULL;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_exit_cleanup(void)
{
	if (reg)
		fleet_destroy(reg);
}

/* Directories named nm-fleet-<pid>-... whose owner is gone. */
static void sweep_stale(const char *root)
{
	char path[PATH_MAX + 300];
	struct dirent *de;
	int pid;
	DIR *d;

	d = opendir(root);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, "nm-fleet-%d", &pid) != 1)
			continue;
		if (pid <= 0 || pid == getpid() || !kill(pid, 0) ||
		    errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
		rm_rf(path);
	}
	closedir(d);
}

static int install_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	static bool done;
	size_t i;

	if (done)
		return 0;
	if (atexit(on_exit_cleanup))
		return -ENOMEM;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		if (sigaction(fatal_signals[i], &sa, NULL))
			return -errno;
	done = true;
	return 0;
}

/* ---- set-up -------------------------------------------------------------- */

const char *fleet_unsupported(struct fleet *f, int depth)
{
	char exe[PATH_MAX], *slash;
	struct statfs fs;
	ssize_t len;
	int i;

	memset(f, 0, sizeof(*f));
	if (geteuid() != 0)
		return "needs root";
	if (statfs("/sys/fs/bpf", &fs) || fs.f_type != BPF_FS_MAGIC_)
		return "no bpffs at /sys/fs/bpf";
	if (access("/usr/bin/etcd", X_OK))
		return "etcd not installed (scripts/deps.sh)";
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0)
		return "cannot find own binary";
	exe[len] = '\0';
	for (i = 0; i <= depth; i++) {
		slash = strrchr(exe, '/');
		if (!slash)
			return "cannot find the build dir";
		*slash = '\0';
	}
	if ((size_t)snprintf(f->agent_bin, sizeof(f->agent_bin),
			     "%s/nodemesh-agent",
			     exe) >= sizeof(f->agent_bin) ||
	    (size_t)snprintf(f->ctl_bin, sizeof(f->ctl_bin), "%s/nodemeshctl",
			     exe) >= sizeof(f->ctl_bin))
		return "build dir path too long";
	if (access(f->agent_bin, X_OK) || access(f->ctl_bin, X_OK))
		return "nodemesh-agent or nodemeshctl not built (make all)";
	return NULL;
}

static int mkdtemp_in(const char *root, const char *tag, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s/nm-fleet-%d-%s-XXXXXX", root,
			     (int)getpid(), tag) >= len)
		return -ENAMETOOLONG;
	if (!mkdtemp(out)) {
		out[0] = '\0';
		return -errno;
	}
	return 0;
}

int fleet_init(struct fleet *f, size_t n_remote, const char *tag)
{
	size_t i;
	int ret;

	if (reg || !n_remote || n_remote > 999)
		return -EINVAL;
	f->n = n_remote;
	f->e = calloc(n_remote + 1, sizeof(*f->e));
	if (!f->e)
		return -ENOMEM;
	for (i = 0; i <= n_remote; i++) {
		if (i)
			snprintf(f->e[i].name, sizeof(f->e[i].name), "c%03zu",
				 i);
		else
			snprintf(f->e[i].name, sizeof(f->e[i].name), "home");
		f->e[i].id = i ? (__u16)i : FLEET_HOME_ID;
	}
	sweep_stale(TMPFS_ROOT);
	sweep_stale(DISK_ROOT);
	sweep_stale("/sys/fs/bpf");
	snprintf(f->pin_root, sizeof(f->pin_root), "/sys/fs/bpf/nm-fleet-%d",
		 (int)getpid());
	reg = f;
	ret = install_handlers();
	if (ret)
		goto err;
	ret = mkdtemp_in(TMPFS_ROOT, tag, f->dir, sizeof(f->dir));
	if (ret)
		goto err;
	ret = mkdtemp_in(DISK_ROOT, tag, f->wal, sizeof(f->wal));
	if (ret)
		goto err;
	snprintf(f->remote_dir, sizeof(f->remote_dir), "%s/clusters", f->dir);
	if (mkdir(f->remote_dir, 0700)) {
		ret = -errno;
		goto err;
	}
	return 0;
err:
	fleet_destroy(f);
	return ret;
}

/* A free port no member of @f uses. */
static int fleet_port(const struct fleet *f)
{
	int port, tries;
	size_t i;

	for (tries = 0; tries < 100; tries++) {
		port = etcd_srv_free_port();
		if (port < 0)
			return port;
		for (i = 0; i <= f->n; i++)
			if (f->e[i].cport == port || f->e[i].pport == port)
				break;
		if (i > f->n)
			return port;
	}
	return -EADDRINUSE;
}

static int spawn_etcd(struct fleet *f, size_t i)
{
	struct fleet_etcd *e = &f->e[i];
	char data[PATH_MAX], wal[PATH_MAX], log[PATH_MAX], purl[48];
	char cluster[80], token[64];
	char *envp[] = { "GOMAXPROCS=1", "GOGC=400", NULL };
	const char *argv[48];
	int n = 0, port;
	pid_t pid;

	port = fleet_port(f);
	if (port < 0)
		return port;
	e->cport = port;
	port = fleet_port(f);
	if (port < 0)
		return port;
	e->pport = port;
	snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d", e->cport);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", e->pport);
	snprintf(cluster, sizeof(cluster), "%s=%s", e->name, purl);
	snprintf(token, sizeof(token), "nm-fleet-%d-%s-%d", (int)getpid(),
		 e->name, e->cport);
	snprintf(data, sizeof(data), "%s/%s", f->dir, e->name);
	snprintf(wal, sizeof(wal), "%s/%s", f->wal, e->name);
	snprintf(log, sizeof(log), "%s/%s.log", f->dir, e->name);
	/* A retry after a lost port race starts from scratch. */
	rm_rf(data);
	rm_rf(wal);

	argv[n++] = "/usr/bin/etcd";
	argv[n++] = "--name";
	argv[n++] = e->name;
	argv[n++] = "--data-dir";
	argv[n++] = data;
	argv[n++] = "--wal-dir";
	argv[n++] = wal;
	argv[n++] = "--listen-client-urls";
	argv[n++] = e->url;
	argv[n++] = "--advertise-client-urls";
	argv[n++] = e->url;
	argv[n++] = "--listen-peer-urls";
	argv[n++] = purl;
	argv[n++] = "--initial-advertise-peer-urls";
	argv[n++] = purl;
	argv[n++] = "--initial-cluster";
	argv[n++] = cluster;
	argv[n++] = "--initial-cluster-token";
	argv[n++] = token;
	argv[n++] = "--logger";
	argv[n++] = "zap";
	argv[n++] = "--log-level";
	argv[n++] = "warn";
	/* Idle cost: two raft ticks a second instead of ten. A new
	 * single-member etcd answers only after its first election, about
	 * one election timeout after start, and etcd wants that timeout at
	 * least 5 heartbeats: 500/2500 ms. */
	argv[n++] = "--heartbeat-interval";
	argv[n++] = "500";
	argv[n++] = "--election-timeout";
	argv[n++] = "2500";
	argv[n++] = "--snapshot-count";
	argv[n++] = "10000";
	argv[n++] = "--quota-backend-bytes";
	argv[n++] = "67108864";
	argv[n] = NULL;

	pid = etcd_srv_spawn_logged(log, argv, envp);
	if (pid < 0)
		return pid;
	e->pid = pid;
	return 0;
}

static size_t discard(char *p, size_t sz, size_t nm, void *arg)
{
	(void)p;
	(void)arg;
	return sz * nm;
}

static bool answers(CURL *h, const struct fleet_etcd *e)
{
	char url[96];
	long status = 0;

	snprintf(url, sizeof(url), "%s/v3/maintenance/status", e->url);
	if (curl_easy_setopt(h, CURLOPT_URL, url) ||
	    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}") ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L) ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard))
		return false;
	return curl_easy_perform(h) == CURLE_OK &&
	       curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) ==
		       CURLE_OK &&
	       status == 200;
}

static void log_tail(const struct fleet *f, size_t i)
{
	char path[PATH_MAX + 32], line[512];
	FILE *fp;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s.log", f->dir, f->e[i].name);
	fp = fopen(path, "r");
	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp) && n++ < 5)
		printf("#   %s: %s", f->e[i].name, line);
	fclose(fp);
}

int fleet_start(struct fleet *f, int timeout_s)
{
	double t0 = fleet_now();
	size_t i, pending;
	bool *up = NULL;
	int *tries = NULL, st, ret = 0;
	CURL *h = NULL;

	up = calloc(f->n + 1, sizeof(*up));
	tries = calloc(f->n + 1, sizeof(*tries));
	h = curl_easy_init();
	if (!up || !tries || !h) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i <= f->n; i++) {
		ret = spawn_etcd(f, i);
		if (ret)
			goto out;
	}
	pending = f->n + 1;
	while (pending) {
		if (fleet_now() - t0 > timeout_s) {
			printf("# %zu of %zu etcds not healthy after %d s\n",
			       pending, f->n + 1, timeout_s);
			ret = -ETIMEDOUT;
			goto out;
		}
		for (i = 0; i <= f->n; i++) {
			if (up[i])
				continue;
			if (waitpid(f->e[i].pid, &st, WNOHANG) == f->e[i].pid) {
				/* Most likely a port taken meanwhile. */
				f->e[i].pid = 0;
				if (++tries[i] >= SPAWN_TRIES) {
					printf("# etcd %s exited (0x%x)\n",
					       f->e[i].name, st);
					log_tail(f, i);
					ret = -ECHILD;
					goto out;
				}
				ret = spawn_etcd(f, i);
				if (ret)
					goto out;
				continue;
			}
			if (answers(h, &f->e[i])) {
				up[i] = true;
				pending--;
			}
		}
		if (pending)
			fleet_sleep_ms(100);
	}
out:
	curl_easy_cleanup(h);
	free(tries);
	free(up);
	return ret;
}

int fleet_fill(struct fleet *f, size_t i)
{
	const struct nm_kv_ctx ctx = { NULL, f->e[i].name, f->e[i].id };
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct nm_etcd_err eerr = {};
	struct nm_etcd *c = NULL;
	struct fx_txn t = {};
	struct fx_kv kv[3 + FLEET_EPS] = {};
	char name[32];
	unsigned int k;
	size_t j, n = 0;
	int ret;

	cfg.endpoints[0] = f->e[i].url;
	ret = nm_etcd_open(&cfg, &c, &eerr);
	if (ret) {
		printf("# %s\n", eerr.msg);
		return ret;
	}
	ret = fx_cluster(&ctx, &kv[n++]);
	if (!ret)
		ret = fx_node(&ctx, "node-1", fleet_node_ip(i), &kv[n++]);
	if (!ret)
		ret = fx_identity(&ctx, FLEET_LOCAL_ID, "web", &kv[n++]);
	for (k = 0; !ret && k < FLEET_EPS; k++) {
		snprintf(name, sizeof(name), "web-%u", k);
		ret = fx_endpoint(&ctx, "shop", name, fleet_ep_ip(i, k),
				  FLEET_LOCAL_ID, &kv[n++]);
	}
	for (j = 0; !ret && j < n; j++)
		ret = fx_txn_put(&t, kv[j].key, kv[j].val, kv[j].len);
	if (!ret)
		ret = fx_txn_commit(c, &t);
	fx_txn_free(&t);
	for (j = 0; j < n; j++)
		fx_kv_free(&kv[j]);
	nm_etcd_close(c);
	return ret;
}

static int write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	FILE *fp;
	int ret = 0;

	/* Written aside and renamed in, as a ConfigMap update does. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	if (!fp)
		return -errno;
	if (fputs(text, fp) < 0)
		ret = -EIO;
	if (fclose(fp) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

static void remote_path(const struct fleet *f, size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.yaml", f->remote_dir, f->e[i].name);
}

int fleet_remote_add(struct fleet *f, size_t i)
{
	char path[PATH_MAX + 32], text[256];

	remote_path(f, i, path, sizeof(path));
	snprintf(text, sizeof(text), "name: %s\nid: %u\nendpoints: [%s]\n",
		 f->e[i].name, f->e[i].id, f->e[i].url);
	return write_file(path, text);
}

int fleet_remote_del(struct fleet *f, size_t i)
{
	char path[PATH_MAX + 32];

	remote_path(f, i, path, sizeof(path));
	return unlink(path) ? -errno : 0;
}

int fleet_agent_start(struct fleet *f)
{
	char cfg[PATH_MAX + 16], log[PATH_MAX + 16], text[PATH_MAX * 3];
	const char *argv[] = { f->agent_bin,	 "--config",	  cfg,
			       "--node",	 "scale-node",	  "--node-ip",
			       "192.168.250.1", "-v",		  NULL };
	pid_t pid;
	int ret;

	snprintf(cfg, sizeof(cfg), "%s/agent.yaml", f->dir);
	snprintf(log, sizeof(log), "%s/agent.log", f->dir);
	snprintf(text, sizeof(text),
		 "cluster: %s\ncluster_id: %u\netcd:\n  endpoints: [%s]\n"
		 "pin_root: %s\nstate_dir: %s/state\nremote_clusters_dir: %s\n"
		 "tunnel: disabled\n",
		 f->e[0].name, f->e[0].id, f->e[0].url, f->pin_root, f->dir,
		 f->remote_dir);
	ret = write_file(cfg, text);
	if (ret)
		return ret;
	f->agent_t0 = fleet_now();
	pid = etcd_srv_spawn_logged(log, argv, NULL);
	if (pid < 0)
		return pid;
	f->agent = pid;
	return 0;
}

int fleet_agent_stop(struct fleet *f, int timeout_s, double *took_s)
{
	double t0 = fleet_now();
	pid_t pid = f->agent;
	int st, ret = -ETIMEDOUT;

	if (pid <= 0)
		return -ESRCH;
	kill(pid, SIGTERM);
	while (fleet_now() - t0 < timeout_s) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			ret = WIFEXITED(st) ? WEXITSTATUS(st) :
					      128 + WTERMSIG(st);
			break;
		}
		fleet_sleep_ms(20);
	}
	if (took_s)
		*took_s = fleet_now() - t0;
	if (ret == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		etcd_srv_reap(pid);
	}
	f->agent = 0;
	return ret;
}

/* ---- observing ----------------------------------------------------------- */

/* The stdout of "sh -c @cmd", parsed as JSON; NULL on failure. */
static json_object *run_json(const char *cmd)
{
	json_object *root = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	FILE *p;

	p = popen(cmd, "r");
	if (!p)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			char *nb = cap < OUT_MAX ? realloc(buf, cap + 262144) :
						   NULL;

			if (!nb)
				break;
			buf = nb;
			cap += 262144;
		}
		n = fread(buf + len, 1, cap - len - 1, p);
		if (!n)
			break;
		len += n;
	}
	if (pclose(p) == 0 && buf) {
		buf[len] = '\0';
		root = json_tokener_parse(buf);
	}
	free(buf);
	return root;
}

/* Member index of a cluster name; -1 if none. */
static long member_of(const struct fleet *f, const char *name)
{
	unsigned int i;
	char end;

	if (!strcmp(name, f->e[0].name))
		return 0;
	if (sscanf(name, "c%u%c", &i, &end) != 1 || !i || i > f->n)
		return -1;
	return i;
}

static bool jbool(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) &&
	       json_object_get_boolean(v);
}

static long long jint(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) :
						     -1;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) :
						     "";
}

static int view_status(struct fleet *f, struct fleet_view *v)
{
	json_object *root, *arr, *c;
	char cmd[PATH_MAX * 3];
	long idx;
	size_t i;

	snprintf(
		cmd, sizeof(cmd),
		"'%s' --pin-root '%s' --state-dir '%s/state' status -o json 2>/dev/null",
		f->ctl_bin, f->pin_root, f->dir);
	root = run_json(cmd);
	if (!root)
		return -EIO;
	if (!json_object_object_get_ex(root, "clusters", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		json_object_put(root);
		return -EPROTO;
	}
	for (i = 0; i < json_object_array_length(arr); i++) {
		c = json_object_array_get_idx(arr, i);
		idx = member_of(f, jstr(c, "name"));
		if (idx < 0 || v->listed[idx])
			continue;
		v->listed[idx] = true;
		v->n_listed++;
		/* A remote holds 3 + FLEET_EPS records; home its own. */
		if (jbool(c, "connected") && jbool(c, "synced") &&
		    (!idx || jint(c, "records") >= 3 + FLEET_EPS)) {
			v->synced[idx] = true;
			v->n_synced++;
		}
	}
	json_object_put(root);
	return 0;
}

static int view_ipcache(struct fleet *f, struct fleet_view *v)
{
	json_object *root, *o;
	char cmd[PATH_MAX * 3], tun[INET_ADDRSTRLEN];
	unsigned int *hits;
	struct in_addr a;
	__u32 idx;
	size_t i, m;
	char *slash, prefix[32];

	hits = calloc(f->n + 1, sizeof(*hits));
	if (!hits)
		return -ENOMEM;
	snprintf(
		cmd, sizeof(cmd),
		"'%s' --pin-root '%s' --state-dir '%s/state' -o json map dump ipcache 2>/dev/null",
		f->ctl_bin, f->pin_root, f->dir);
	root = run_json(cmd);
	if (!root || !json_object_is_type(root, json_type_array)) {
		json_object_put(root);
		free(hits);
		return -EIO;
	}
	for (i = 0; i < json_object_array_length(root); i++) {
		o = json_object_array_get_idx(root, i);
		snprintf(prefix, sizeof(prefix), "%s", jstr(o, "prefix"));
		slash = strchr(prefix, '/');
		if (!slash || strcmp(slash, "/32"))
			continue;
		*slash = '\0';
		if (inet_pton(AF_INET, prefix, &a) != 1 ||
		    (ntohl(a.s_addr) >> 24) != 10)
			continue;
		idx = ntohl(a.s_addr) & 0xffffff;
		m = idx / 4;
		if (!m || m > f->n || idx % 4 >= FLEET_EPS)
			continue;
		v->any_ipcache[m] = true;
		inet_ntop(AF_INET, &(__be32){ fleet_node_ip(m) }, tun,
			  sizeof(tun));
		if ((__u64)jint(o, "identity") == fleet_identity(m) &&
		    !strcmp(jstr(o, "tunnel_endpoint"), tun))
			hits[m]++;
	}
	for (m = 1; m <= f->n; m++) {
		v->n_any_ipcache += v->any_ipcache[m];
		if (hits[m] == FLEET_EPS) {
			v->in_ipcache[m] = true;
			v->n_in_ipcache++;
		}
	}
	json_object_put(root);
	free(hits);
	return 0;
}

void fleet_view_free(struct fleet_view *v)
{
	free(v->listed);
	free(v->synced);
	free(v->in_ipcache);
	free(v->any_ipcache);
	memset(v, 0, sizeof(*v));
}

int fleet_view(struct fleet *f, unsigned int what, struct fleet_view *v)
{
	fleet_view_free(v);
	v->listed = calloc(f->n + 1, sizeof(bool));
	v->synced = calloc(f->n + 1, sizeof(bool));
	v->in_ipcache = calloc(f->n + 1, sizeof(bool));
	v->any_ipcache = calloc(f->n + 1, sizeof(bool));
	if (!v->listed || !v->synced || !v->in_ipcache || !v->any_ipcache) {
		fleet_view_free(v);
		return -ENOMEM;
	}
	if (what & FLEET_VIEW_STATUS)
		v->status_err = view_status(f, v);
	if (what & FLEET_VIEW_IPCACHE)
		v->ipcache_err = view_ipcache(f, v);
	return v->status_err ? v->status_err : v->ipcache_err;
}

long fleet_proc_status(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long v = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fp = fopen(path, "r");
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp)) {
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(fp);
	return v;
}

long fleet_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

double fleet_proc_cpu_s(pid_t pid)
{
	unsigned long long ut, st;
	char path[64], buf[1024], *p;
	size_t n;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	if (!fp)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces. */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
		   &st) != 2)
		return -1;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

long fleet_etcd_private_kib(const struct fleet *f)
{
	char path[64], line[256];
	long sum = 0, v;
	size_t i;
	FILE *fp;

	for (i = 0; i <= f->n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup",
			 (int)f->e[i].pid);
		fp = fopen(path, "r");
		if (!fp)
			return -1;
		while (fgets(line, sizeof(line), fp))
			if (sscanf(line, "Private_Clean: %ld kB", &v) == 1 ||
			    sscanf(line, "Private_Dirty: %ld kB", &v) == 1)
				sum += v;
		fclose(fp);
	}
	return sum;
}

void fleet_destroy(struct fleet *f)
{
	size_t i;

	if (f->agent > 0)
		fleet_agent_stop(f, 10, NULL);
	for (i = 0; f->e && i <= f->n; i++)
		if (f->e[i].pid > 0)
			kill(f->e[i].pid, SIGKILL);
	for (i = 0; f->e && i <= f->n; i++) {
		if (f->e[i].pid > 0)
			etcd_srv_reap(f->e[i].pid);
		f->e[i].pid = 0;
	}
	rm_rf(f->pin_root);
	rm_rf(f->dir);
	rm_rf(f->wal);
	f->dir[0] = f->wal[0] = f->pin_root[0] = '\0';
	if (reg == f)
		reg = NULL;
	free(f->e);
	f->e = NULL;
}
