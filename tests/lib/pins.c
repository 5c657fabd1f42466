// SPDX-License-Identifier: GPL-2.0
/* Per-test pin root and its signal-safe removal (see pins.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "maps/common.h"
#include "tests/lib/pins.h"

/* Every map the loader pins: one per NM_MAP_* of maps/common.h. */
static const char *const pin_names[] = {
	NM_MAP_SERVICES,  NM_MAP_BACKENDS, NM_MAP_MAGLEV, NM_MAP_REVNAT,
	NM_MAP_CT,	  NM_MAP_METRICS,  NM_MAP_CONFIG, NM_MAP_IPCACHE,
	NM_MAP_ENDPOINTS, NM_MAP_POLICY,   NM_MAP_EVENTS, NM_MAP_NODES,
	NM_MAP_TUNNEL,
};

#define N_PINS (sizeof(pin_names) / sizeof(pin_names[0]))

char nm_test_pin_root[64];
static char pin_paths[N_PINS][128];

void nm_test_pins_cleanup(void)
{
	size_t i;

	for (i = 0; i < N_PINS; i++)
		if (pin_paths[i][0])
			unlink(pin_paths[i]);
	if (nm_test_pin_root[0])
		rmdir(nm_test_pin_root);
}

static void on_signal(int sig)
{
	nm_test_pins_cleanup();
	raise(sig); /* SA_RESETHAND: default action now */
}

void nm_test_pins_setup(const char *prefix, void (*at_exit)(void))
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGSEGV, SIGABRT, SIGBUS };
	struct sigaction sa = { .sa_handler = on_signal,
				.sa_flags = SA_RESETHAND };
	size_t i;

	snprintf(nm_test_pin_root, sizeof(nm_test_pin_root),
		 "/sys/fs/bpf/%s-%d", prefix, (int)getpid());
	for (i = 0; i < N_PINS; i++)
		snprintf(pin_paths[i], sizeof(pin_paths[i]), "%s/%s",
			 nm_test_pin_root, pin_names[i]);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	atexit(at_exit ? at_exit : nm_test_pins_cleanup);
}
