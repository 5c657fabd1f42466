// SPDX-License-Identifier: GPL-2.0
/*
 * Parsers for the text forms of frontends and backends (pure: no I/O).
 * Every error returns -EINVAL with a sentence in @err naming the bad part.
 */
#ifndef NM_AGENT_PARSE_H
#define NM_AGENT_PARSE_H

#include <stddef.h>
#include <linux/types.h>

/* A service frontend: VIP:PORT/PROTO. Network byte order. */
struct nm_frontend {
	__be32 vip;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

/* A backend spec: ADDR:PORT[,weight=W][,state=S]. Network byte order. */
struct nm_backend_spec {
	__be32 addr;
	__be16 port;
	__u16 weight; /* 1..65535, default 1 */
	__u8 state; /* enum nm_backend_state, default NM_BE_ACTIVE */
	__u8 pad;
	__u16 cluster_id; /* cluster the backend lives in; 0 = local (CLI) */
};

/* Longest text form of a frontend ("255.255.255.255:65535/tcp"). */
#define NM_FRONTEND_STRLEN 32

int nm_parse_ipv4(const char *s, __be32 *addr);
int nm_parse_frontend(const char *s, struct nm_frontend *fe, char *err,
		      size_t errlen);
int nm_parse_backend(const char *s, struct nm_backend_spec *be, char *err,
		     size_t errlen);

/* Names for enums, "?" when unknown. */
const char *nm_proto_name(__u8 proto);
const char *nm_backend_state_name(__u8 state);
const char *nm_lb_algo_name(__u8 algo);
/* Returns the enum value or -EINVAL. */
int nm_parse_lb_algo(const char *s);

/* "10.0.0.1:80/tcp" into @buf (at least NM_FRONTEND_STRLEN bytes). */
char *nm_frontend_str(const struct nm_frontend *fe, char *buf, size_t len);

#endif /* NM_AGENT_PARSE_H */
