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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <curl/curl.h>

#include "tests/lib/etcd_srv.h"

#define SRV_MAX 16
#define HEALTH_TIMEOUT_MS 15000

/*
 * What the exit and signal handlers need, in plain static storage so the
 * signal handler touches nothing a test could have freed.
 */
static volatile pid_t reg_pid[SRV_MAX];
static char reg_dir[SRV_MAX][PATH_MAX];
static volatile sig_atomic_t reg_used[SRV_MAX];
static bool handlers_installed;

static const int fatal_signals[] = {
	SIGINT,	 SIGTERM, SIGHUP, SIGQUIT, SIGABRT,
	SIGSEGV, SIGBUS,  SIGFPE, SIGILL,  SIGPIPE
};

static int rm_cb(const char *path, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		fprintf(stderr, "# failed to remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

static void rm_rf(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void etcd_srv_reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void kill_wait(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	etcd_srv_reap(pid);
}

/* Async-signal-safe: kill, waitpid, fork and execve only. */
static void on_signal(int sig)
{
	char *argv[4];
	pid_t rm;
	int i;

	for (i = 0; i < SRV_MAX; i++) {
		if (!reg_used[i])
			continue;
		kill_wait(reg_pid[i]);
		rm = fork();
		if (rm == 0) {
			argv[0] = "rm";
			argv[1] = "-rf";
			argv[2] = reg_dir[i];
			argv[3] = NULL;
			execve("/bin/rm", argv, (char *[]){ NULL });
			_exit(127);
		}
		if (rm > 0)
			etcd_srv_reap(rm);
		reg_used[i] = 0;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_exit_cleanup(void)
{
	int i;

	for (i = 0; i < SRV_MAX; i++) {
		if (!reg_used[i])
			continue;
		kill_wait(reg_pid[i]);
		rm_rf(reg_dir[i]);
		reg_used[i] = 0;
	}
}

static const char *tmp_root(void);

/*
 * A SIGKILLed test cannot clean up (its etcd dies with it through
 * PR_SET_PDEATHSIG): remove the directories of test processes that are
 * gone. Names carry the owner's pid: nm-etcd-<pid>-XXXXXX.
 */
static void sweep_stale(void)
{
	char path[PATH_MAX + 300];
	struct dirent *de;
	int pid;
	DIR *d;

	d = opendir(tmp_root());
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, "nm-etcd-%d-", &pid) != 1 &&
		    sscanf(de->d_name, "nm-certs-%d-", &pid) != 1)
			continue;
		/* Alive (or not ours to signal): leave it alone. */
		if (pid <= 0 || pid == getpid() || !kill(pid, 0) ||
		    errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp_root(), de->d_name);
		rm_rf(path);
	}
	closedir(d);
}

static int install_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	size_t i;

	if (handlers_installed)
		return 0;
	sweep_stale();
	if (atexit(on_exit_cleanup))
		return -ENOMEM;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		if (sigaction(fatal_signals[i], &sa, NULL))
			return -errno;
	handlers_installed = true;
	return 0;
}

static int reg_add(const char *dir)
{
	int i;

	for (i = 0; i < SRV_MAX; i++) {
		if (!reg_used[i]) {
			snprintf(reg_dir[i], sizeof(reg_dir[i]), "%s", dir);
			reg_pid[i] = 0;
			reg_used[i] = 1;
			return i;
		}
	}
	return -ENOSPC;
}

int etcd_srv_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len))
		port = -errno;
	else
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static const char *tmp_root(void)
{
	const char *t = getenv("TMPDIR");

	/* tmpfs keeps etcd's fsyncs cheap; any temp dir works. */
	if (!t && access("/dev/shm", W_OK) == 0)
		t = "/dev/shm";
	return t ? t : "/tmp";
}

const char *etcd_srv_cert(const struct etcd_srv *s, const char *name, char *buf,
			  size_t len)
{
	snprintf(buf, len, "%s/%s", s->certs_dir, name);
	return buf;
}

pid_t etcd_srv_spawn_logged(const char *log, const char *const *argv,
			    char *const *envp)
{
	pid_t pid;
	int fd;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* Die with the test, however it dies. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		if (envp)
			execve(argv[0], (char *const *)argv, envp);
		else
			execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static int spawn(struct etcd_srv *s)
{
	char name[32], token[64], data[PATH_MAX + 8], log[PATH_MAX + 16];
	char curl_[64], purl[64], cluster[96], ttl[16];
	char cert[PATH_MAX + 16], key[PATH_MAX + 16], ca[PATH_MAX + 16];
	const char *argv[40];
	const char *etcd = getenv("ETCD_BIN") ? getenv("ETCD_BIN") :
						"/usr/bin/etcd";
	int n = 0;
	pid_t pid;

	snprintf(name, sizeof(name), "nm%d", s->slot);
	snprintf(token, sizeof(token), "nm-test-%d-%d-%u", (int)getpid(),
		 s->slot, s->generation);
	snprintf(data, sizeof(data), "%s/data", s->dir);
	snprintf(log, sizeof(log), "%s/etcd.log", s->dir);
	snprintf(curl_, sizeof(curl_), "%s", s->url);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", s->peer_port);
	snprintf(cluster, sizeof(cluster), "%s=%s", name, purl);
	snprintf(ttl, sizeof(ttl), "%d", s->opts.auth_token_ttl);
	snprintf(cert, sizeof(cert), "%s/server.pem", s->certs_dir);
	snprintf(key, sizeof(key), "%s/server-key.pem", s->certs_dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", s->certs_dir);

	argv[n++] = etcd;
	argv[n++] = "--name";
	argv[n++] = name;
	argv[n++] = "--data-dir";
	argv[n++] = data;
	argv[n++] = "--listen-client-urls";
	argv[n++] = curl_;
	argv[n++] = "--advertise-client-urls";
	argv[n++] = curl_;
	argv[n++] = "--listen-peer-urls";
	argv[n++] = purl;
	argv[n++] = "--initial-advertise-peer-urls";
	argv[n++] = purl;
	argv[n++] = "--initial-cluster";
	argv[n++] = cluster;
	/* A new token after a wipe gives a new cluster_id. */
	argv[n++] = "--initial-cluster-token";
	argv[n++] = token;
	argv[n++] = "--logger";
	argv[n++] = "zap";
	argv[n++] = "--log-level";
	argv[n++] = "warn";
	if (s->opts.auth_token_ttl) {
		argv[n++] = "--auth-token-ttl";
		argv[n++] = ttl;
	}
	if (s->opts.tls) {
		argv[n++] = "--cert-file";
		argv[n++] = cert;
		argv[n++] = "--key-file";
		argv[n++] = key;
		if (s->opts.client_cert_auth) {
			argv[n++] = "--client-cert-auth";
			argv[n++] = "--trusted-ca-file";
			argv[n++] = ca;
		}
	}
	argv[n] = NULL;

	pid = etcd_srv_spawn_logged(log, argv, NULL);
	if (pid < 0)
		return pid;
	s->pid = pid;
	reg_pid[s->slot] = pid;
	return 0;
}

static void log_tail(const struct etcd_srv *s)
{
	char path[PATH_MAX + 16], line[512];
	long size;
	FILE *f;

	snprintf(path, sizeof(path), "%s/etcd.log", s->dir);
	f = fopen(path, "r");
	if (!f)
		return;
	if (!fseek(f, 0, SEEK_END) && (size = ftell(f)) > 2048)
		fseek(f, size - 2048, SEEK_SET);
	else
		fseek(f, 0, SEEK_SET);
	while (fgets(line, sizeof(line), f))
		printf("#   etcd: %s", line);
	fclose(f);
}

static size_t sink(char *p, size_t sz, size_t nm, void *arg)
{
	(void)p;
	(void)arg;
	return sz * nm;
}

/* etcd answers HTTP on its client URL (any status: auth may be on). */
static bool answers(const struct etcd_srv *s)
{
	char url[96], ca[PATH_MAX + 16], cert[PATH_MAX + 16],
		key[PATH_MAX + 16];
	long status = 0;
	bool ok = false;
	CURL *h;

	h = curl_easy_init();
	if (!h)
		return false;
	snprintf(url, sizeof(url), "%s/v3/maintenance/status", s->url);
	if (curl_easy_setopt(h, CURLOPT_URL, url) ||
	    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}") ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L) ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink))
		goto out;
	if (s->opts.tls &&
	    curl_easy_setopt(h, CURLOPT_CAINFO,
			     etcd_srv_cert(s, "ca.pem", ca, sizeof(ca))))
		goto out;
	if (s->opts.client_cert_auth &&
	    (curl_easy_setopt(h, CURLOPT_SSLCERT,
			      etcd_srv_cert(s, "client.pem", cert,
					    sizeof(cert))) ||
	     curl_easy_setopt(h, CURLOPT_SSLKEY,
			      etcd_srv_cert(s, "client-key.pem", key,
					    sizeof(key)))))
		goto out;
	if (curl_easy_perform(h) == CURLE_OK &&
	    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
		ok = status == 200 || status == 401 || status == 400;
out:
	curl_easy_cleanup(h);
	return ok;
}

static int wait_healthy(struct etcd_srv *s)
{
	struct timespec ts = { 0, 50 * 1000000L };
	int waited = 0, st;

	while (waited < HEALTH_TIMEOUT_MS) {
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			printf("# etcd on %s exited early (status 0x%x)\n",
			       s->url, st);
			log_tail(s);
			s->pid = 0;
			reg_pid[s->slot] = 0;
			return -ECHILD;
		}
		if (answers(s))
			return 0;
		nanosleep(&ts, NULL);
		waited += 50;
	}
	printf("# etcd on %s not healthy after %d ms\n", s->url, waited);
	log_tail(s);
	return -ETIMEDOUT;
}

static int start_here(struct etcd_srv *s)
{
	int ret;

	ret = spawn(s);
	if (ret)
		return ret;
	ret = wait_healthy(s);
	if (ret)
		etcd_srv_stop(s, true);
	return ret;
}

int etcd_srv_start(struct etcd_srv *s, const struct etcd_srv_opts *o)
{
	char tmpl[PATH_MAX];
	int ret, tries;

	memset(s, 0, sizeof(*s));
	s->slot = -1;
	if (o)
		s->opts = *o;
	if (s->opts.certs_dir)
		snprintf(s->certs_dir, sizeof(s->certs_dir), "%s",
			 s->opts.certs_dir);
	s->opts.certs_dir = NULL;
	ret = install_handlers();
	if (ret)
		return ret;
	snprintf(tmpl, sizeof(tmpl), "%s/nm-etcd-%d-XXXXXX", tmp_root(),
		 (int)getpid());
	if (!mkdtemp(tmpl))
		return -errno;
	snprintf(s->dir, sizeof(s->dir), "%s", tmpl);
	ret = reg_add(s->dir);
	if (ret < 0) {
		rm_rf(s->dir);
		return ret;
	}
	s->slot = ret;
	/* A port picked free may be taken before etcd binds it: retry. */
	for (tries = 0; tries < 3; tries++) {
		s->client_port = etcd_srv_free_port();
		s->peer_port = etcd_srv_free_port();
		if (s->client_port < 0 || s->peer_port < 0 ||
		    s->client_port == s->peer_port) {
			ret = -EADDRINUSE;
			continue;
		}
		snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d",
			 s->opts.tls ? "https" : "http", s->client_port);
		ret = start_here(s);
		if (!ret)
			return 0;
		rm_rf(s->dir);
		if (mkdir(s->dir, 0700)) {
			ret = -errno;
			break;
		}
	}
	etcd_srv_destroy(s);
	return ret;
}

int etcd_srv_stop(struct etcd_srv *s, bool hard)
{
	struct timespec ts = { 0, 20 * 1000000L };
	int i, st;

	if (s->pid <= 0)
		return 0;
	if (!hard) {
		kill(s->pid, SIGTERM);
		for (i = 0; i < 150; i++) {
			if (waitpid(s->pid, &st, WNOHANG) == s->pid)
				goto out;
			nanosleep(&ts, NULL);
		}
	}
	kill_wait(s->pid);
out:
	s->pid = 0;
	if (s->slot >= 0)
		reg_pid[s->slot] = 0;
	return 0;
}

int etcd_srv_restart(struct etcd_srv *s)
{
	etcd_srv_stop(s, false);
	return start_here(s);
}

int etcd_srv_wipe(struct etcd_srv *s)
{
	char data[PATH_MAX + 8];

	etcd_srv_stop(s, false);
	snprintf(data, sizeof(data), "%s/data", s->dir);
	rm_rf(data);
	s->generation++;
	return start_here(s);
}

void etcd_srv_destroy(struct etcd_srv *s)
{
	etcd_srv_stop(s, true);
	if (s->slot >= 0) {
		rm_rf(s->dir);
		reg_used[s->slot] = 0;
		s->slot = -1;
	}
}

static char certs_tmp[PATH_MAX];

static void certs_cleanup(void)
{
	rm_rf(certs_tmp);
}

int etcd_srv_make_certs(char *dir, size_t len)
{
	char cmd[PATH_MAX + 64], tmpl[PATH_MAX];
	int ret;

	ret = install_handlers();
	if (ret)
		return ret;
	snprintf(tmpl, sizeof(tmpl), "%s/nm-certs-%d-XXXXXX", tmp_root(),
		 (int)getpid());
	if (!mkdtemp(tmpl))
		return -errno;
	ret = reg_add(tmpl); /* so a signal removes it too */
	if (ret < 0) {
		rm_rf(tmpl);
		return ret;
	}
	snprintf(certs_tmp, sizeof(certs_tmp), "%s", tmpl);
	if (atexit(certs_cleanup))
		return -ENOMEM;
	snprintf(cmd, sizeof(cmd), "scripts/certs.sh '%s'", tmpl);
	ret = system(cmd);
	if (ret) {
		printf("# scripts/certs.sh failed (status 0x%x)\n", ret);
		return -EIO;
	}
	snprintf(dir, len, "%s", tmpl);
	return 0;
}
