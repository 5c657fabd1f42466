// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "agent/parse.h"
#include "maps/backend.h"
#include "maps/service.h"

/* Strict decimal: digits only, no sign, no leading zero, <= max. */
static int parse_uint(const char *s, size_t len, unsigned long max,
		      unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (!len || len > 10 || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_ipv4_n(const char *s, size_t len, __be32 *addr)
{
	unsigned long oct;
	__u32 a = 0;
	size_t start = 0, i;
	int parts = 0;

	for (i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (parts == 4 || parse_uint(s + start, i - start, 255, &oct))
			return -EINVAL;
		a = (a << 8) | (__u32)oct;
		parts++;
		start = i + 1;
	}
	if (parts != 4)
		return -EINVAL;
	*addr = htonl(a);
	return 0;
}

int nm_parse_ipv4(const char *s, __be32 *addr)
{
	return parse_ipv4_n(s, strlen(s), addr);
}

/* Split "ADDR:PORT" (the first @len bytes of @s) into address and port. */
static int parse_addr_port(const char *s, size_t len, const char *whole,
			   __be32 *addr, __be16 *port, char *err,
			   size_t errlen)
{
	const char *colon = memchr(s, ':', len);
	unsigned long p;

	if (!colon) {
		snprintf(err, errlen, "missing port in '%s': expected ADDR:PORT",
			 whole);
		return -EINVAL;
	}
	if (parse_ipv4_n(s, (size_t)(colon - s), addr)) {
		snprintf(err, errlen,
			 "bad address '%.*s' in '%s': must be an IPv4 dotted quad",
			 (int)(colon - s), s, whole);
		return -EINVAL;
	}
	len -= (size_t)(colon - s) + 1;
	if (parse_uint(colon + 1, len, 65535, &p) || !p) {
		snprintf(err, errlen, "bad port '%.*s' in '%s': must be 1..65535",
			 (int)len, colon + 1, whole);
		return -EINVAL;
	}
	*port = htons((__u16)p);
	return 0;
}

int nm_parse_frontend(const char *s, struct nm_frontend *fe, char *err,
		      size_t errlen)
{
	struct nm_frontend f = {};
	const char *slash;
	int ret;

	if (!*s) {
		snprintf(err, errlen, "empty frontend: expected VIP:PORT/PROTO");
		return -EINVAL;
	}
	slash = strrchr(s, '/');
	if (!slash) {
		snprintf(err, errlen,
			 "missing protocol in '%s': expected VIP:PORT/PROTO", s);
		return -EINVAL;
	}
	ret = parse_addr_port(s, (size_t)(slash - s), s, &f.vip, &f.port, err,
			      errlen);
	if (ret)
		return ret;
	if (!strcmp(slash + 1, "tcp")) {
		f.proto = IPPROTO_TCP;
	} else if (!strcmp(slash + 1, "udp")) {
		f.proto = IPPROTO_UDP;
	} else {
		snprintf(err, errlen,
			 "bad protocol '%s' in '%s': must be tcp or udp",
			 slash + 1, s);
		return -EINVAL;
	}
	*fe = f;
	return 0;
}

static int parse_state(const char *s, size_t len, __u8 *state)
{
	static const struct {
		const char *name;
		__u8 state;
	} states[] = {
		{ "active", NM_BE_ACTIVE },
		{ "terminating", NM_BE_TERMINATING },
		{ "quarantined", NM_BE_QUARANTINED },
		{ "standby", NM_BE_STANDBY },
	};
	size_t i;

	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		if (strlen(states[i].name) == len &&
		    !memcmp(states[i].name, s, len)) {
			*state = states[i].state;
			return 0;
		}
	}
	return -EINVAL;
}

int nm_parse_backend(const char *s, struct nm_backend_spec *be, char *err,
		     size_t errlen)
{
	struct nm_backend_spec b = { .weight = 1, .state = NM_BE_ACTIVE };
	bool seen_weight = false, seen_state = false;
	const char *opt, *end;
	int ret;

	if (!*s) {
		snprintf(err, errlen,
			 "empty backend: expected ADDR:PORT[,weight=W][,state=S]");
		return -EINVAL;
	}
	end = strchr(s, ',');
	ret = parse_addr_port(s, end ? (size_t)(end - s) : strlen(s), s,
			      &b.addr, &b.port, err, errlen);
	if (ret)
		return ret;

	for (opt = end; opt; opt = end) {
		const char *val, *eq;
		size_t len, vlen;

		opt++;
		end = strchr(opt, ',');
		len = end ? (size_t)(end - opt) : strlen(opt);
		eq = memchr(opt, '=', len);
		val = eq ? eq + 1 : opt + len;
		vlen = eq ? len - (size_t)(val - opt) : 0;
		if (eq && (size_t)(eq - opt) == 6 && !memcmp(opt, "weight", 6)) {
			unsigned long w;

			if (seen_weight) {
				snprintf(err, errlen, "weight given twice in '%s'", s);
				return -EINVAL;
			}
			if (parse_uint(val, vlen, 65535, &w) || !w) {
				snprintf(err, errlen,
					 "bad weight '%.*s' in '%s': must be 1..65535",
					 (int)vlen, val, s);
				return -EINVAL;
			}
			b.weight = (__u16)w;
			seen_weight = true;
		} else if (eq && (size_t)(eq - opt) == 5 &&
			   !memcmp(opt, "state", 5)) {
			if (seen_state) {
				snprintf(err, errlen, "state given twice in '%s'", s);
				return -EINVAL;
			}
			if (parse_state(val, vlen, &b.state)) {
				snprintf(err, errlen,
					 "bad state '%.*s' in '%s': must be active, terminating, quarantined or standby",
					 (int)vlen, val, s);
				return -EINVAL;
			}
			seen_state = true;
		} else {
			snprintf(err, errlen,
				 "unknown option '%.*s' in '%s': expected weight=W or state=S",
				 (int)len, opt, s);
			return -EINVAL;
		}
	}
	*be = b;
	return 0;
}

const char *nm_proto_name(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	default:
		return "?";
	}
}

const char *nm_backend_state_name(__u8 state)
{
	switch (state) {
	case NM_BE_ACTIVE:
		return "active";
	case NM_BE_TERMINATING:
		return "terminating";
	case NM_BE_QUARANTINED:
		return "quarantined";
	case NM_BE_STANDBY:
		return "standby";
	default:
		return "?";
	}
}

const char *nm_lb_algo_name(__u8 algo)
{
	switch (algo) {
	case NM_LB_MAGLEV:
		return "maglev";
	case NM_LB_RANDOM:
		return "random";
	default:
		return "?";
	}
}

int nm_parse_lb_algo(const char *s)
{
	if (!strcmp(s, "maglev"))
		return NM_LB_MAGLEV;
	if (!strcmp(s, "random"))
		return NM_LB_RANDOM;
	return -EINVAL;
}

char *nm_frontend_str(const struct nm_frontend *fe, char *buf, size_t len)
{
	char a[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &fe->vip, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s:%u/%s", a, ntohs(fe->port),
		 nm_proto_name(fe->proto));
	return buf;
}
