// SPDX-License-Identifier: GPL-2.0
/*
 * One logging header for the agent and its front ends: printf-checked
 * pr_warn/pr_info/pr_debug to stderr, libbpf's own output routed here.
 * Messages read "failed to <verb> <object> on <where>: <reason>".
 */
#ifndef NM_AGENT_LOG_H
#define NM_AGENT_LOG_H

#include <stdbool.h>

enum nm_log_level {
	NM_LOG_WARN = 0,
	NM_LOG_INFO = 1,
	NM_LOG_DEBUG = 2,
};

/* Messages above @level are dropped. Default NM_LOG_WARN. */
void nm_log_set_level(enum nm_log_level level);
enum nm_log_level nm_log_get_level(void);
/* Prefix printed before every line ("nodemeshctl: ..."); NULL for none. */
void nm_log_set_ident(const char *ident);
/* Route libbpf's messages into this logger (call once at start-up). */
void nm_log_init_libbpf(void);
/* Drop libbpf's messages while probing for something that may be absent. */
void nm_log_mute_libbpf(bool mute);

void nm_log(enum nm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pr_warn(fmt, ...) nm_log(NM_LOG_WARN, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) nm_log(NM_LOG_INFO, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) nm_log(NM_LOG_DEBUG, fmt, ##__VA_ARGS__)

#endif /* NM_AGENT_LOG_H */
