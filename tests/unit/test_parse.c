// SPDX-License-Identifier: GPL-2.0
/* Frontend and backend text forms: accepted values and refusal messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "agent/parse.h"
#include "maps/backend.h"
#include "maps/service.h"

static void test_frontend_good(void **state)
{
	struct nm_frontend fe;
	char err[256] = "", buf[NM_FRONTEND_STRLEN];

	(void)state;
	assert_int_equal(nm_parse_frontend("10.96.0.10:80/tcp", &fe, err,
					   sizeof(err)), 0);
	assert_int_equal(fe.vip, htonl(0x0a60000a));
	assert_int_equal(fe.port, htons(80));
	assert_int_equal(fe.proto, IPPROTO_TCP);
	assert_string_equal(nm_frontend_str(&fe, buf, sizeof(buf)),
			    "10.96.0.10:80/tcp");

	assert_int_equal(nm_parse_frontend("255.255.255.255:65535/udp", &fe,
					   err, sizeof(err)), 0);
	assert_int_equal(fe.vip, 0xffffffff);
	assert_int_equal(fe.port, htons(65535));
	assert_int_equal(fe.proto, IPPROTO_UDP);

	assert_int_equal(nm_parse_frontend("0.0.0.0:1/tcp", &fe, err,
					   sizeof(err)), 0);
	assert_int_equal(fe.port, htons(1));
}

struct bad_case {
	const char *in;
	const char *msg;
};

static void check_bad_frontends(const struct bad_case *c, size_t n)
{
	struct nm_frontend fe;
	char err[256];
	size_t i;

	for (i = 0; i < n; i++) {
		err[0] = '\0';
		if (nm_parse_frontend(c[i].in, &fe, err, sizeof(err)) != -EINVAL)
			fail_msg("frontend '%s' accepted", c[i].in);
		if (!strstr(err, c[i].msg))
			fail_msg("frontend '%s': message '%s' lacks '%s'",
				 c[i].in, err, c[i].msg);
	}
}

static void test_frontend_bad(void **state)
{
	static const struct bad_case c[] = {
		{ "", "empty frontend" },
		{ "10.0.0.1:80", "missing protocol in '10.0.0.1:80'" },
		{ "10.0.0.1/tcp", "missing port in '10.0.0.1/tcp'" },
		{ "10.0.0.1:70000/tcp",
		  "bad port '70000' in '10.0.0.1:70000/tcp': must be 1..65535" },
		{ "10.0.0.1:0/tcp", "bad port '0'" },
		{ "10.0.0.1:/tcp", "bad port ''" },
		{ "10.0.0.1:-1/tcp", "bad port '-1'" },
		{ "10.0.0.1:080/tcp", "bad port '080'" },
		{ "10.0.0.1:8o/tcp", "bad port '8o'" },
		{ "10.0.0.1:80/sctp", "bad protocol 'sctp'" },
		{ "10.0.0.1:80/TCP", "bad protocol 'TCP'" },
		{ "10.0.0.1:80/", "bad protocol ''" },
		{ "10.0.0:80/tcp",
		  "bad address '10.0.0' in '10.0.0:80/tcp': must be an IPv4 dotted quad" },
		{ "10.0.0.256:80/tcp", "bad address '10.0.0.256'" },
		{ "10.0.0.1.2:80/tcp", "bad address '10.0.0.1.2'" },
		{ "10..0.1:80/tcp", "bad address '10..0.1'" },
		{ "010.0.0.1:80/tcp", "bad address '010.0.0.1'" },
		{ "fd00::1:80/tcp", "bad address" },
		{ "example.com:80/tcp", "bad address 'example.com'" },
		{ " 10.0.0.1:80/tcp", "bad address ' 10.0.0.1'" },
	};

	(void)state;
	check_bad_frontends(c, sizeof(c) / sizeof(c[0]));
}

static void test_backend_good(void **state)
{
	struct nm_backend_spec be;
	char err[256] = "";

	(void)state;
	assert_int_equal(nm_parse_backend("10.0.1.5:8080", &be, err,
					  sizeof(err)), 0);
	assert_int_equal(be.addr, htonl(0x0a000105));
	assert_int_equal(be.port, htons(8080));
	assert_int_equal(be.weight, 1);
	assert_int_equal(be.state, NM_BE_ACTIVE);

	assert_int_equal(nm_parse_backend("10.0.1.5:8080,weight=65535", &be,
					  err, sizeof(err)), 0);
	assert_int_equal(be.weight, 65535);

	assert_int_equal(nm_parse_backend("10.0.1.5:1,state=terminating,weight=3",
					  &be, err, sizeof(err)), 0);
	assert_int_equal(be.weight, 3);
	assert_int_equal(be.state, NM_BE_TERMINATING);

	assert_int_equal(nm_parse_backend("10.0.1.5:1,state=quarantined", &be,
					  err, sizeof(err)), 0);
	assert_int_equal(be.state, NM_BE_QUARANTINED);
	assert_int_equal(nm_parse_backend("10.0.1.5:1,state=standby", &be, err,
					  sizeof(err)), 0);
	assert_int_equal(be.state, NM_BE_STANDBY);
	assert_int_equal(nm_parse_backend("10.0.1.5:1,state=active", &be, err,
					  sizeof(err)), 0);
	assert_int_equal(be.state, NM_BE_ACTIVE);
}

static void test_backend_bad(void **state)
{
	static const struct bad_case c[] = {
		{ "", "empty backend" },
		{ "10.0.0.1", "missing port in '10.0.0.1'" },
		{ "10.0.0.1:70000",
		  "bad port '70000' in '10.0.0.1:70000': must be 1..65535" },
		{ "10.0.0.1:0,weight=2", "bad port '0' in '10.0.0.1:0,weight=2'" },
		{ "10.0.0:80", "bad address '10.0.0' in '10.0.0:80'" },
		{ "10.0.0.1:80,weight=0",
		  "bad weight '0' in '10.0.0.1:80,weight=0': must be 1..65535" },
		{ "10.0.0.1:80,weight=65536", "bad weight '65536'" },
		{ "10.0.0.1:80,weight=", "bad weight ''" },
		{ "10.0.0.1:80,weight=x", "bad weight 'x'" },
		{ "10.0.0.1:80,weight=1,weight=2", "weight given twice" },
		{ "10.0.0.1:80,state=dead",
		  "bad state 'dead' in '10.0.0.1:80,state=dead': must be active, terminating, quarantined or standby" },
		{ "10.0.0.1:80,state=active,state=active", "state given twice" },
		{ "10.0.0.1:80,color=red", "unknown option 'color=red'" },
		{ "10.0.0.1:80,weight", "unknown option 'weight'" },
		{ "10.0.0.1:80,", "unknown option ''" },
		{ "10.0.0.1:80/tcp", "bad port '80/tcp'" },
	};
	struct nm_backend_spec be;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		err[0] = '\0';
		if (nm_parse_backend(c[i].in, &be, err, sizeof(err)) != -EINVAL)
			fail_msg("backend '%s' accepted", c[i].in);
		if (!strstr(err, c[i].msg))
			fail_msg("backend '%s': message '%s' lacks '%s'",
				 c[i].in, err, c[i].msg);
	}
}

static void test_names(void **state)
{
	(void)state;
	assert_int_equal(nm_parse_lb_algo("maglev"), NM_LB_MAGLEV);
	assert_int_equal(nm_parse_lb_algo("random"), NM_LB_RANDOM);
	assert_int_equal(nm_parse_lb_algo("rr"), -EINVAL);
	assert_string_equal(nm_lb_algo_name(NM_LB_RANDOM), "random");
	assert_string_equal(nm_backend_state_name(NM_BE_QUARANTINED),
			    "quarantined");
	assert_string_equal(nm_backend_state_name(NM_BE_STANDBY), "standby");
	assert_string_equal(nm_backend_state_name(4), "?");
	assert_string_equal(nm_proto_name(IPPROTO_UDP), "udp");
	assert_string_equal(nm_proto_name(1), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frontend_good),
		cmocka_unit_test(test_frontend_bad),
		cmocka_unit_test(test_backend_good),
		cmocka_unit_test(test_backend_bad),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
