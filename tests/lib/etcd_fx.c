// SPDX-License-Identifier: GPL-2.0
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/lib/etcd_fx.h"
#include "tests/lib/test.h"

struct etcd_srv etcd_fx_main;
static bool main_up;
static char certs[PATH_MAX];

bool etcd_fx_have_etcd(void)
{
	const char *bin = getenv("ETCD_BIN") ? getenv("ETCD_BIN") :
					       "/usr/bin/etcd";

	if (access(bin, X_OK)) {
		nm_test_skip("etcd not installed (scripts/deps.sh)");
		return false;
	}
	return true;
}

bool etcd_fx_need_main(void)
{
	if (main_up)
		return true;
	if (!etcd_fx_have_etcd())
		return false;
	if (!ASSERT_OK(etcd_srv_start(&etcd_fx_main, NULL), "start etcd"))
		return false;
	main_up = true;
	return true;
}

void etcd_fx_destroy(void)
{
	etcd_srv_destroy(&etcd_fx_main);
	main_up = false;
}

struct nm_etcd *etcd_fx_client(const char *url, const char *user,
			       const char *pw)
{
	struct nm_etcd_config cfg = { .n_endpoints = 1 };
	struct nm_etcd_err err = { { 0 } };
	struct nm_etcd *c;

	cfg.endpoints[0] = url;
	cfg.username = user;
	cfg.password = pw;
	if (!ASSERT_OK(nm_etcd_open(&cfg, &c, &err), "open client")) {
		printf("# %s\n", err.msg);
		return NULL;
	}
	return c;
}

const char *etcd_fx_certs(void)
{
	if (!certs[0] &&
	    !ASSERT_OK(etcd_srv_make_certs(certs, sizeof(certs)), "make certs"))
		return NULL;
	return certs;
}
