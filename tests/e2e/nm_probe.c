// SPDX-License-Identifier: GPL-2.0
/*
 * nm_probe: the traffic end of the e2e tests.
 *
 *   nm_probe serve --port P --name NAME [--udp] [--addr A] [--pidfile F]
 *	TCP server (one process, poll-based): each accepted connection first
 *	gets "NAME\n", then every line it sends is echoed back. With --udp a
 *	UDP socket on the same port also answers each datagram with "NAME\n".
 *
 *   nm_probe connect ADDR:PORT [--count N] [--timeout-ms T] [--udp]
 *	N sequential connections (or request/response datagrams, each from a
 *	fresh socket and so a fresh source port); prints the NAME received on
 *	each, one per line. Exits 1 on the first failure.
 *
 *   nm_probe hold ADDR:PORT --duration-ms D --interval-ms I [--ready-file F]
 *	One long-lived connection: reads NAME, writes it to the ready file,
 *	then every I ms sends a line and checks its echo, for D ms. Prints
 *	"ok NAME N echoes" and exits 0 only if every echo came back.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN 64
#define LINE_MAX_LEN 512
#define MAX_CLIENTS 1024

struct opts {
	const char *target; /* ADDR:PORT for connect and hold */
	const char *name;
	const char *addr;
	const char *pidfile;
	const char *ready_file;
	int port;
	int count;
	int timeout_ms;
	int duration_ms;
	int interval_ms;
	bool udp;
};

/* A socket with a small receive buffer, so lines can be read one by one. */
struct conn {
	int fd;
	size_t len;
	char buf[LINE_MAX_LEN];
};

static const char *prog = "nm_probe";

static void __attribute__((format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_int(const char *s, const char *what, int min, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < min || v > max)
		die("invalid %s '%s' (expected %d..%d)", what, s, min, max);
	return (int)v;
}

static void parse_target(const char *target, struct sockaddr_in *sin)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(target, ':');
	size_t hlen;

	if (!colon || colon == target)
		die("invalid address '%s' (expected ADDR:PORT)", target);
	hlen = colon - target;
	if (hlen >= sizeof(host))
		die("invalid address '%s' (expected ADDR:PORT)", target);
	memcpy(host, target, hlen);
	host[hlen] = '\0';

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(parse_int(colon + 1, "port", 1, 65535));
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		die("invalid IPv4 address '%s'", host);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

static int write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	FILE *f;

	/* Write then rename, so a reader never sees a partial file. */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	if (fputs(text, f) == EOF) {
		fclose(f);
		return -1;
	}
	if (fclose(f))
		return -1;
	return rename(tmp, path);
}

/*
 * Read one line (without its '\n') into out. Returns 0 on success, or a
 * static string saying why not.
 */
static const char *read_line(struct conn *c, char *out, size_t outlen,
			     long long deadline)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		long long left;
		ssize_t n;
		int ret;

		if (nl) {
			size_t ll = nl - c->buf;

			if (ll >= outlen)
				return "line too long";
			memcpy(out, c->buf, ll);
			out[ll] = '\0';
			c->len -= ll + 1;
			memmove(c->buf, nl + 1, c->len);
			return NULL;
		}
		if (c->len == sizeof(c->buf))
			return "line too long";

		left = deadline - now_ms();
		if (left <= 0)
			return "timed out waiting for data";
		ret = poll(&pfd, 1, (int)left);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return strerror(errno);
		}
		if (ret == 0)
			return "timed out waiting for data";
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return strerror(errno);
		}
		if (n == 0)
			return "connection closed by peer";
		c->len += n;
	}
}

/* Non-blocking connect bounded by timeout_ms; returns the fd or -1. */
static int connect_timeout(const struct sockaddr_in *sin, int timeout_ms,
			   const char **why)
{
	struct pollfd pfd;
	socklen_t elen;
	int fd, err, ret;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0 &&
	    errno != EINPROGRESS) {
		*why = strerror(errno);
		goto err;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do
		ret = poll(&pfd, 1, timeout_ms);
	while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		*why = strerror(errno);
		goto err;
	}
	if (ret == 0) {
		*why = "connect timed out";
		goto err;
	}
	elen = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (err) {
		*why = strerror(err);
		goto err;
	}
	return fd;
err:
	close(fd);
	return -1;
}

/* ---------------------------------------------------------------- serve */

struct client {
	struct conn c;
	bool used;
};

static int listen_socket(const struct opts *o, int type)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(o->port),
		.sin_addr.s_addr = htonl(INADDR_ANY),
	};
	int one = 1;
	int fd;

	if (o->addr && inet_pton(AF_INET, o->addr, &sin.sin_addr) != 1)
		die("invalid IPv4 address '%s'", o->addr);
	fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("failed to create socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die("failed to set SO_REUSEADDR: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		die("failed to bind %s port %d: %s",
		    type == SOCK_DGRAM ? "udp" : "tcp", o->port,
		    strerror(errno));
	if (type == SOCK_STREAM && listen(fd, 512) < 0)
		die("failed to listen on port %d: %s", o->port,
		    strerror(errno));
	return fd;
}

/* Echo every complete line; returns false when the client must go. */
static bool serve_client(struct conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len,
				 sizeof(c->buf) - c->len, 0);
		char *nl;

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0)
			return false;
		c->len += n;
		while ((nl = memchr(c->buf, '\n', c->len))) {
			size_t ll = nl - c->buf + 1;

			if (write_all(c->fd, c->buf, ll) < 0)
				return false;
			c->len -= ll;
			memmove(c->buf, c->buf + ll, c->len);
		}
		if (c->len == sizeof(c->buf))
			return false; /* a line longer than we echo */
	}
}

static void serve_udp(int fd, const char *hello, size_t hlen)
{
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	char buf[LINE_MAX_LEN];

	while (recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer,
			&plen) >= 0) {
		sendto(fd, hello, hlen, 0, (struct sockaddr *)&peer, plen);
		plen = sizeof(peer);
	}
}

/* Accept every pending connection and greet it with the name. */
static void accept_clients(int lfd, struct client *clients, const char *hello,
			   size_t hlen)
{
	int fd, s;

	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		for (s = 0; s < MAX_CLIENTS; s++)
			if (!clients[s].used)
				break;
		if (s == MAX_CLIENTS || write_all(fd, hello, hlen) < 0) {
			close(fd);
			continue;
		}
		clients[s].used = true;
		clients[s].c.fd = fd;
		clients[s].c.len = 0;
	}
}

static int do_serve(const struct opts *o)
{
	static struct client clients[MAX_CLIENTS];
	static struct pollfd pfds[MAX_CLIENTS + 2];
	static int slot_of[MAX_CLIENTS + 2];
	char hello[NAME_MAX_LEN + 2];
	int lfd, ufd = -1;
	size_t hlen;

	if (!o->port || !o->name)
		die("serve needs --port and --name");
	hlen = snprintf(hello, sizeof(hello), "%s\n", o->name);
	if (hlen >= sizeof(hello))
		die("name '%s' too long", o->name);

	signal(SIGPIPE, SIG_IGN);
	lfd = listen_socket(o, SOCK_STREAM);
	if (o->udp)
		ufd = listen_socket(o, SOCK_DGRAM);

	if (o->pidfile) {
		char pid[32];

		snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		if (write_file(o->pidfile, pid) < 0)
			die("failed to write pid file %s: %s", o->pidfile,
			    strerror(errno));
	}

	for (;;) {
		int nfds = 0, i;

		pfds[nfds].fd = lfd;
		pfds[nfds++].events = POLLIN;
		if (ufd >= 0) {
			pfds[nfds].fd = ufd;
			pfds[nfds++].events = POLLIN;
		}
		for (i = 0; i < MAX_CLIENTS; i++) {
			if (!clients[i].used)
				continue;
			slot_of[nfds] = i;
			pfds[nfds].fd = clients[i].c.fd;
			pfds[nfds++].events = POLLIN;
		}

		if (poll(pfds, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("failed to poll: %s", strerror(errno));
		}

		for (i = 0; i < nfds; i++) {
			struct client *cl;

			if (!pfds[i].revents)
				continue;
			if (pfds[i].fd == ufd) {
				serve_udp(ufd, hello, hlen);
				continue;
			}
			if (pfds[i].fd != lfd) {
				cl = &clients[slot_of[i]];
				if (!serve_client(&cl->c)) {
					close(cl->c.fd);
					cl->used = false;
				}
				continue;
			}
			accept_clients(lfd, clients, hello, hlen);
		}
	}
	return 0;
}

/* -------------------------------------------------------------- connect */

static int connect_tcp_once(const struct sockaddr_in *sin, const struct opts *o,
			    int i)
{
	struct conn c = { .fd = -1 };
	char name[NAME_MAX_LEN];
	const char *why;

	c.fd = connect_timeout(sin, o->timeout_ms, &why);
	if (c.fd < 0) {
		fprintf(stderr, "%s: connection %d to %s failed: %s\n", prog,
			i + 1, o->target, why);
		return -1;
	}
	why = read_line(&c, name, sizeof(name), now_ms() + o->timeout_ms);
	close(c.fd);
	if (why) {
		fprintf(stderr,
			"%s: connection %d to %s: failed to read name: %s\n",
			prog, i + 1, o->target, why);
		return -1;
	}
	printf("%s\n", name);
	return 0;
}

static int connect_udp_once(const struct sockaddr_in *sin, const struct opts *o,
			    int i)
{
	static const char req[] = "hello\n";
	struct pollfd pfd = { .events = POLLIN };
	char buf[NAME_MAX_LEN + 1];
	const char *why = NULL;
	ssize_t n;
	int fd, ret;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("failed to create socket: %s", strerror(errno));
	/* Connected, so ICMP errors surface and stray datagrams are ignored. */
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0 ||
	    send(fd, req, sizeof(req) - 1, 0) < 0) {
		why = strerror(errno);
		goto out;
	}
	pfd.fd = fd;
	do
		ret = poll(&pfd, 1, o->timeout_ms);
	while (ret < 0 && errno == EINTR);
	if (ret <= 0) {
		why = ret ? strerror(errno) : "no reply before timeout";
		goto out;
	}
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0) {
		why = strerror(errno);
		goto out;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	printf("%s\n", buf);
out:
	close(fd);
	if (why) {
		fprintf(stderr, "%s: udp request %d to %s failed: %s\n", prog,
			i + 1, o->target, why);
		return -1;
	}
	return 0;
}

static int do_connect(const struct opts *o)
{
	struct sockaddr_in sin;
	int i;

	if (!o->target)
		die("connect needs ADDR:PORT");
	parse_target(o->target, &sin);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < o->count; i++) {
		int ret = o->udp ? connect_udp_once(&sin, o, i) :
				   connect_tcp_once(&sin, o, i);

		fflush(stdout);
		if (ret)
			return 1;
	}
	return 0;
}

/* ----------------------------------------------------------------- hold */

static int do_hold(const struct opts *o)
{
	struct conn c = { .fd = -1 };
	char name[NAME_MAX_LEN], line[LINE_MAX_LEN], echo[LINE_MAX_LEN];
	struct sockaddr_in sin;
	long long end, next;
	const char *why;
	int echoes = 0;

	if (!o->target || o->duration_ms <= 0 || o->interval_ms <= 0)
		die("hold needs ADDR:PORT, --duration-ms and --interval-ms");
	parse_target(o->target, &sin);
	signal(SIGPIPE, SIG_IGN);

	c.fd = connect_timeout(&sin, o->timeout_ms, &why);
	if (c.fd < 0)
		die("failed to connect to %s: %s", o->target, why);
	why = read_line(&c, name, sizeof(name), now_ms() + o->timeout_ms);
	if (why)
		die("failed to read name from %s: %s", o->target, why);
	if (o->ready_file) {
		char text[NAME_MAX_LEN + 1];

		snprintf(text, sizeof(text), "%s\n", name);
		if (write_file(o->ready_file, text) < 0)
			die("failed to write ready file %s: %s", o->ready_file,
			    strerror(errno));
	}

	end = now_ms() + o->duration_ms;
	next = now_ms();
	while (now_ms() < end) {
		long long wait = next - now_ms();
		int len;

		if (wait > 0)
			usleep(wait * 1000);
		next += o->interval_ms;

		len = snprintf(line, sizeof(line), "seq %d from %s\n", echoes,
			       name);
		if (write_all(c.fd, line, len) < 0)
			die("%s: failed to send line %d after %d echoes: %s",
			    name, echoes + 1, echoes, strerror(errno));
		why = read_line(&c, echo, sizeof(echo),
				now_ms() + o->timeout_ms);
		if (why)
			die("%s: no echo for line %d after %d echoes: %s", name,
			    echoes + 1, echoes, why);
		line[len - 1] = '\0';
		if (strcmp(line, echo))
			die("%s: echo mismatch: sent '%s', got '%s'", name,
			    line, echo);
		echoes++;
	}
	close(c.fd);
	printf("ok %s %d echoes\n", name, echoes);
	return 0;
}

/* ----------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s serve --port P --name NAME [--udp] [--addr A] [--pidfile F]\n"
		"       %s connect ADDR:PORT [--count N] [--timeout-ms T] [--udp]\n"
		"       %s hold ADDR:PORT --duration-ms D --interval-ms I\n"
		"                [--ready-file F] [--timeout-ms T]\n",
		prog, prog, prog);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "addr", required_argument, NULL, 'a' },
		{ "udp", no_argument, NULL, 'u' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "count", required_argument, NULL, 'c' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .count = 1, .timeout_ms = 2000 };
	const char *mode;
	int opt;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	mode = argv[1];
	if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) {
		usage(stdout);
		return 0;
	}

	/* Options follow the mode; parse argv[1..] with the mode as argv[0]. */
	while ((opt = getopt_long(argc - 1, argv + 1, "h", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'p':
			o.port = parse_int(optarg, "port", 1, 65535);
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'a':
			o.addr = optarg;
			break;
		case 'u':
			o.udp = true;
			break;
		case 'P':
			o.pidfile = optarg;
			break;
		case 'c':
			o.count = parse_int(optarg, "count", 1, 1000000);
			break;
		case 't':
			o.timeout_ms = parse_int(optarg, "timeout", 1, 3600000);
			break;
		case 'd':
			o.duration_ms =
				parse_int(optarg, "duration", 1, 86400000);
			break;
		case 'i':
			o.interval_ms =
				parse_int(optarg, "interval", 1, 3600000);
			break;
		case 'r':
			o.ready_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 < argc - 1)
		die("unexpected argument '%s'", argv[optind + 2]);
	if (optind < argc - 1)
		o.target = argv[optind + 1];

	if (!strcmp(mode, "serve"))
		return do_serve(&o);
	if (!strcmp(mode, "connect"))
		return do_connect(&o);
	if (!strcmp(mode, "hold"))
		return do_hold(&o);
	fprintf(stderr, "%s: unknown mode '%s'\n", prog, mode);
	usage(stderr);
	return 2;
}
