/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A real etcd for tests: listens on 127.0.0.1 only, on free ports, with
 * its data in a fresh temporary directory. Every server started is
 * recorded, and an atexit handler plus handlers for the fatal signals kill
 * it by pid and remove its directory on every way out of the test; the
 * child also gets PR_SET_PDEATHSIG, so even a SIGKILLed test leaves no
 * etcd behind.
 */
#ifndef NM_TESTS_ETCD_SRV_H
#define NM_TESTS_ETCD_SRV_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

struct etcd_srv_opts {
	/* https client URL, certificates from @certs_dir (scripts/certs.sh) */
	bool tls;
	bool client_cert_auth; /* require a client certificate (mTLS) */
	const char *certs_dir;
	int auth_token_ttl; /* seconds; 0: etcd's default */
};

struct etcd_srv {
	pid_t pid; /* 0 when not running */
	int client_port;
	int peer_port;
	char url[64]; /* http(s)://127.0.0.1:PORT */
	char dir[PATH_MAX]; /* temp root: data/, etcd.log */
	char certs_dir[PATH_MAX];
	struct etcd_srv_opts opts;
	unsigned int generation; /* bumped by wipe: a new cluster_id */
	int slot;
};

/* Start a new server and wait until it is healthy. 0 or -errno. */
int etcd_srv_start(struct etcd_srv *s, const struct etcd_srv_opts *o);
/* Stop: SIGKILL at once if @hard, else SIGTERM then SIGKILL after 3 s. */
int etcd_srv_stop(struct etcd_srv *s, bool hard);
/* Start again on the same ports and data directory. */
int etcd_srv_restart(struct etcd_srv *s);
/* Stop, drop the data directory, start afresh on the same ports. */
int etcd_srv_wipe(struct etcd_srv *s);
/* Stop and remove everything; safe to call twice. */
void etcd_srv_destroy(struct etcd_srv *s);
/* Path of a file in the certs dir ("ca.pem"), in a static buffer. */
const char *etcd_srv_cert(const struct etcd_srv *s, const char *name, char *buf,
			  size_t len);

/* Run scripts/certs.sh into a fresh temp dir (removed at exit). */
int etcd_srv_make_certs(char *dir, size_t len);

/* Process helpers, shared with tests/lib/fleet.c. */

/* A free TCP port on 127.0.0.1 (bound, then released), or -errno. */
int etcd_srv_free_port(void);
/*
 * Fork and exec argv[0] with @argv (environment @envp, NULL: inherited),
 * stdout and stderr appended to @log, stdin from /dev/null; the child gets
 * PR_SET_PDEATHSIG so it dies with the test. The child's pid, or -errno.
 */
pid_t etcd_srv_spawn_logged(const char *log, const char *const *argv,
			    char *const *envp);
/* waitpid(@pid) through EINTR; async-signal-safe. */
void etcd_srv_reap(pid_t pid);

#endif /* NM_TESTS_ETCD_SRV_H */
