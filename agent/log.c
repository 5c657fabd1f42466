// SPDX-License-Identifier: GPL-2.0
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "agent/log.h"

static enum nm_log_level cur_level = NM_LOG_WARN;
static const char *cur_ident = "nodemesh";
static bool libbpf_muted;

void nm_log_set_level(enum nm_log_level level)
{
	cur_level = level;
}

enum nm_log_level nm_log_get_level(void)
{
	return cur_level;
}

void nm_log_set_ident(const char *ident)
{
	cur_ident = ident;
}

__attribute__((format(printf, 2, 0))) static void
nm_vlog(enum nm_log_level level, const char *fmt, va_list ap)
{
	static const char *const tag[] = {
		[NM_LOG_WARN] = "",
		[NM_LOG_INFO] = "",
		[NM_LOG_DEBUG] = "debug: ",
	};
	size_t len = strlen(fmt);

	if (level > cur_level)
		return;
	if (cur_ident)
		fprintf(stderr, "%s: ", cur_ident);
	fputs(tag[level], stderr);
	vfprintf(stderr, fmt, ap);
	/* Callers (and libbpf) may or may not end with a newline. */
	if (!len || fmt[len - 1] != '\n')
		fputc('\n', stderr);
}

void nm_log(enum nm_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nm_vlog(level, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 0))) static int nm_libbpf_print(enum libbpf_print_level level, const char *fmt,
			   va_list ap)
{
	enum nm_log_level l;

	if (libbpf_muted)
		return 0;
	switch (level) {
	case LIBBPF_WARN:
		l = NM_LOG_WARN;
		break;
	case LIBBPF_INFO:
		l = NM_LOG_INFO;
		break;
	default:
		l = NM_LOG_DEBUG;
		break;
	}
	nm_vlog(l, fmt, ap);
	return 0;
}

void nm_log_mute_libbpf(bool mute)
{
	libbpf_muted = mute;
}

void nm_log_init_libbpf(void)
{
	libbpf_set_print(nm_libbpf_print);
}
