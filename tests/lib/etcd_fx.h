/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared pieces of the etcd suites: one plain etcd started on first use
 * and reused by the tests that do not kill, wipe or compact it, clients
 * on a URL, and the test certificates made once per process.
 */
#ifndef NM_TESTS_ETCD_FX_H
#define NM_TESTS_ETCD_FX_H

#include <stdbool.h>

#include "agent/etcd.h"
#include "tests/lib/etcd_srv.h"

/* The shared plain etcd, valid once etcd_fx_need_main() returned true. */
extern struct etcd_srv etcd_fx_main;

/* Skip (not fail) the running test when etcd is not installed. */
bool etcd_fx_have_etcd(void);
/* Start the shared etcd on first use; false (skipped or failed) if not. */
bool etcd_fx_need_main(void);
/* Stop the shared etcd (end of the suite). */
void etcd_fx_destroy(void);
/* A client on @url, with token auth when @user is set; NULL on failure. */
struct nm_etcd *etcd_fx_client(const char *url, const char *user,
			       const char *pw);
/* The test CA and certificates (scripts/certs.sh), made on first use. */
const char *etcd_fx_certs(void);

#endif /* NM_TESTS_ETCD_FX_H */
