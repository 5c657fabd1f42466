// SPDX-License-Identifier: GPL-2.0
/*
 * Agent memory: a real nodemesh-agent (east, with its own etcd) mirroring a
 * remote cluster (west) whose etcd holds 100k endpoint records, one node
 * and one identity. Once the agent's status says west is synced with all
 * records mirrored, VmRSS of the agent process is printed:
 *
 *   bench: agent_rss_mib_100k <v> MiB
 *
 * What that includes: the whole process (libbpf, libcurl, json-c, MHD),
 * both mirrors' key tables, the map sink's per-key state, the publisher
 * and the thread stacks touched; not the BPF maps themselves (kernel
 * memory, not in RSS). Both etcds are tests/lib/etcd_srv (127.0.0.1,
 * removed on every way out); the pin root and state dir are temporary and
 * removed at the end. Needs root and bpffs; prints a skip reason otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "agent/etcd.h"
#include "agent/kvstore.h"
#include "tests/lib/etcd_srv.h"
#include "tests/lib/kv_fx.h"

#define NR_ENDPOINTS 100000
#define SYNC_TIMEOUT_S 180
#define BPF_FS_MAGIC_ 0xcafe4a11

static char pin_root[96];
static char work[64];

static void skip(const char *why)
{
	printf("bench: agent_rss_mib_100k skipped: %s\n", why);
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) ? -errno : 0;
}

static void rm_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct nm_etcd *client(const struct etcd_srv *s)
{
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct nm_etcd_err err = {};
	struct nm_etcd *c;

	cfg.endpoints[0] = s->url;
	if (nm_etcd_open(&cfg, &c, &err)) {
		printf("# %s\n", err.msg);
		return NULL;
	}
	return c;
}

/* west: cluster record, node-1, one identity, NR_ENDPOINTS endpoints. */
static int fill(struct nm_etcd *c)
{
	const struct nm_kv_ctx ctx = { NULL, "west", 2 };
	struct fx_txn t = {};
	struct fx_kv kv = {};
	char name[32];
	__u32 i;
	int ret;

	ret = fx_cluster(&ctx, &kv);
	if (!ret)
		ret = fx_put(c, &kv, NULL);
	fx_kv_free(&kv);
	if (!ret)
		ret = fx_node(&ctx, "node-1", fx_ip(192, 1), &kv);
	if (!ret)
		ret = fx_put(c, &kv, NULL);
	fx_kv_free(&kv);
	if (!ret)
		ret = fx_identity(&ctx, 256, "web", &kv);
	if (!ret)
		ret = fx_put(c, &kv, NULL);
	fx_kv_free(&kv);
	for (i = 0; !ret && i < NR_ENDPOINTS; i++) {
		snprintf(name, sizeof(name), "ep-%u", i);
		ret = fx_endpoint(&ctx, "shop", name, fx_ip(20, i), 256, &kv);
		if (!ret)
			ret = fx_txn_put(&t, kv.key, kv.val, kv.len);
		fx_kv_free(&kv);
		if (!ret && t.n >= FX_TXN_OPS)
			ret = fx_txn_commit(c, &t);
	}
	if (!ret)
		ret = fx_txn_commit(c, &t);
	fx_txn_free(&t);
	return ret;
}

static size_t collect(char *p, size_t sz, size_t nm, void *arg)
{
	FILE *f = arg;

	return fwrite(p, sz, nm, f);
}

/* west's records count in the agent's status; -1 if not synced yet. */
static long long west_records(const char *sock)
{
	json_object *root = NULL, *arr, *c, *v;
	long long n = -1;
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f;
	CURL *h;

	f = open_memstream(&buf, &len);
	if (!f)
		return -1;
	h = curl_easy_init();
	if (h && !curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock) &&
	    !curl_easy_setopt(h, CURLOPT_URL, "http://localhost/v1/status") &&
	    !curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect) &&
	    !curl_easy_setopt(h, CURLOPT_WRITEDATA, f) &&
	    !curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L) &&
	    curl_easy_perform(h) == CURLE_OK) {
		fclose(f);
		f = NULL;
		root = json_tokener_parse(buf);
	}
	if (f)
		fclose(f);
	curl_easy_cleanup(h);
	free(buf);
	if (!root || !json_object_object_get_ex(root, "clusters", &arr))
		goto out;
	for (i = 0; i < json_object_array_length(arr); i++) {
		c = json_object_array_get_idx(arr, i);
		if (!json_object_object_get_ex(c, "name", &v) ||
		    strcmp(json_object_get_string(v), "west"))
			continue;
		if (json_object_object_get_ex(c, "synced", &v) &&
		    json_object_get_boolean(v) &&
		    json_object_object_get_ex(c, "records", &v))
			n = json_object_get_int64(v);
	}
out:
	json_object_put(root);
	return n;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ret = 0;

	if (!f)
		return -errno;
	if (fputs(text, f) < 0)
		ret = -EIO;
	if (fclose(f))
		ret = -errno;
	return ret;
}

int main(void)
{
	struct etcd_srv east = {}, west = {};
	char agent[PATH_MAX], cfg[128], dir[128];
	char sock[128], text[1024], *slash;
	struct nm_etcd *wc = NULL;
	struct statfs fs;
	long long n = -1;
	pid_t pid = 0;
	time_t t0;
	ssize_t len;
	long kib;
	int status;

	setvbuf(stdout, NULL, _IOLBF, 0);
	len = readlink("/proc/self/exe", agent, sizeof(agent) - 1);
	if (len <= 0)
		return skip("cannot find own binary"), 0;
	agent[len] = '\0';
	/* build/bench/bench_agent -> build/nodemesh-agent */
	slash = strrchr(agent, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(agent, '/');
	if (!slash)
		return skip("cannot find build dir"), 0;
	strcpy(slash, "/nodemesh-agent");
	if (geteuid() != 0)
		return skip("needs root"), 0;
	if (statfs("/sys/fs/bpf", &fs) || fs.f_type != BPF_FS_MAGIC_)
		return skip("no bpffs at /sys/fs/bpf"), 0;
	if (access(agent, X_OK))
		return skip("nodemesh-agent not built"), 0;
	if (access("/usr/bin/etcd", X_OK) && !getenv("ETCD_BIN"))
		return skip("etcd not installed"), 0;

	snprintf(work, sizeof(work), "/tmp/nm-bench-agent.XXXXXX");
	if (!mkdtemp(work)) {
		work[0] = '\0';
		return skip("mkdtemp failed"), 0;
	}
	snprintf(pin_root, sizeof(pin_root), "/sys/fs/bpf/nm-bench-agent-%d",
		 (int)getpid());
	if (etcd_srv_start(&east, NULL) || etcd_srv_start(&west, NULL)) {
		skip("failed to start etcd");
		goto out;
	}
	wc = client(&west);
	if (!wc || fill(wc)) {
		skip("failed to fill west's etcd");
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s/clusters", work);
	snprintf(cfg, sizeof(cfg), "%s/clusters/west.yaml", work);
	snprintf(text, sizeof(text), "name: west\nid: 2\nendpoints: [%s]\n",
		 west.url);
	if (mkdir(dir, 0700) || write_file(cfg, text)) {
		skip("failed to write remote cluster file");
		goto out;
	}
	snprintf(cfg, sizeof(cfg), "%s/agent.yaml", work);
	snprintf(text, sizeof(text),
		 "cluster: east\ncluster_id: 1\netcd:\n  endpoints: [%s]\n"
		 "pin_root: %s\nstate_dir: %s/state\nremote_clusters_dir: %s\n"
		 "tunnel: disabled\n",
		 east.url, pin_root, work, dir);
	if (write_file(cfg, text)) {
		skip("failed to write agent config");
		goto out;
	}
	snprintf(sock, sizeof(sock), "%s/state/agent.sock", work);

	t0 = time(NULL);
	pid = fork();
	if (pid < 0) {
		pid = 0;
		skip("fork failed");
		goto out;
	}
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execl(agent, agent, "--config", cfg, "--node", "bench-node",
		      "--node-ip", "192.168.200.1", (char *)NULL);
		_exit(127);
	}
	while (time(NULL) - t0 < SYNC_TIMEOUT_S) {
		n = west_records(sock);
		if (n >= NR_ENDPOINTS)
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			pid = 0;
			skip("the agent exited early");
			goto out;
		}
		usleep(200000);
	}
	if (n < NR_ENDPOINTS) {
		skip("west did not sync in time");
		goto out;
	}
	/* Let the sink's flush settle before measuring. */
	sleep(1);
	kib = rss_kib(pid);
	printf("# west mirrored %lld records in %ld s\n", n,
	       (long)(time(NULL) - t0));
	printf("bench: agent_rss_mib_100k %.1f MiB\n", kib / 1024.0);
out:
	if (pid > 0) {
		kill(pid, SIGTERM);
		if (waitpid(pid, &status, 0) < 0)
			perror("waitpid");
	}
	nm_etcd_close(wc);
	etcd_srv_destroy(&west);
	etcd_srv_destroy(&east);
	rm_tree(pin_root);
	rm_tree(work);
	return 0;
}
