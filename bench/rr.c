// SPDX-License-Identifier: GPL-2.0
/*
 * rr: TCP request/response latency, one byte each way.
 *
 *   rr server --port P [--pidfile F]
 *	Accepts connections one after another and echoes every byte back,
 *	until killed. The pid file is written once the socket listens.
 *
 *   rr client ADDR:PORT [--count N] [--timeout-ms T]
 *	One connection with TCP_NODELAY, N round trips (default 10000) of a
 *	1-byte message; prints the mean round trip in microseconds ("12.34").
 *	Exits 1 if the connection or any round trip fails.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rr: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long num(const char *s, const char *what, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die("bad %s '%s' (%ld..%ld)", what, s, lo, hi);
	return v;
}

static void nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		die("TCP_NODELAY: %s", strerror(errno));
}

static int serve(int port, const char *pidfile)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons((unsigned short)port) };
	int one = 1, lfd, fd;
	char buf[256];
	ssize_t n;

	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 8))
		die("listen on port %d: %s", port, strerror(errno));
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f))
			die("pid file %s: %s", pidfile, strerror(errno));
	}
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept: %s", strerror(errno));
		}
		nodelay(fd);
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			if (write(fd, buf, (size_t)n) != n)
				break;
		}
		close(fd);
	}
}

/* Connect within @timeout_ms, then back to blocking mode. */
static int connect_to(const struct sockaddr_in *sin, int timeout_ms)
{
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	int fd, err = 0, fl;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin))) {
		if (errno != EINPROGRESS)
			die("connect: %s", strerror(errno));
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, timeout_ms) != 1)
			die("connect: timed out after %d ms", timeout_ms);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			die("connect: %s", strerror(err));
	}
	fcntl(fd, F_SETFL, fl);
	return fd;
}

static int client(const char *target, long count, int timeout_ms)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char host[64], c = 'x', r;
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };
	const char *colon = strrchr(target, ':');
	double t0, t1;
	long i;
	int fd;

	if (!colon || (size_t)(colon - target) >= sizeof(host))
		die("target '%s' is not ADDR:PORT", target);
	memcpy(host, target, (size_t)(colon - target));
	host[colon - target] = '\0';
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		die("'%s' is not an IPv4 address", host);
	sin.sin_port = htons((unsigned short)num(colon + 1, "port", 1, 65535));

	signal(SIGPIPE, SIG_IGN);
	fd = connect_to(&sin, timeout_ms);
	nodelay(fd);
	/* A stalled round trip fails instead of hanging. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	t0 = now_s();
	for (i = 0; i < count; i++) {
		if (write(fd, &c, 1) != 1)
			die("round trip %ld: write: %s", i + 1,
			    strerror(errno));
		if (read(fd, &r, 1) != 1)
			die("round trip %ld: read: %s", i + 1,
			    errno ? strerror(errno) : "connection closed");
	}
	t1 = now_s();
	close(fd);
	printf("%.2f\n", (t1 - t0) * 1e6 / (double)count);
	return 0;
}

static void __attribute__((noreturn)) usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: rr server --port P [--pidfile F]\n"
		"       rr client ADDR:PORT [--count N] [--timeout-ms T]\n");
	exit(code);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "pidfile", required_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode, *pidfile = NULL;
	long count = 10000;
	int port = 0, timeout_ms = 5000, o;

	if (argc < 2)
		usage(2);
	mode = argv[1];
	if (!strcmp(mode, "-h") || !strcmp(mode, "--help"))
		usage(0);
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			port = (int)num(optarg, "port", 1, 65535);
			break;
		case 'f':
			pidfile = optarg;
			break;
		case 'n':
			count = num(optarg, "count", 1, 100000000);
			break;
		case 't':
			timeout_ms = (int)num(optarg, "timeout", 1, 3600000);
			break;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (!strcmp(mode, "server")) {
		if (!port || optind != argc)
			usage(2);
		return serve(port, pidfile);
	}
	if (!strcmp(mode, "client")) {
		if (optind != argc - 1)
			usage(2);
		return client(argv[optind], count, timeout_ms);
	}
	usage(2);
}
