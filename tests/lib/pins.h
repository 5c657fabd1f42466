/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A per-test pin root for the BPF tests: /sys/fs/bpf/<prefix>-<pid>, every
 * map pinned under it unlinked and the root removed at exit, also when a
 * fatal signal ends the test.
 */
#ifndef NM_TESTS_PINS_H
#define NM_TESTS_PINS_H

/* "/sys/fs/bpf/<prefix>-<pid>" once nm_test_pins_setup() ran, else "". */
extern char nm_test_pin_root[64];

/*
 * Name the pin root after @prefix and the pid, clean up on SIGINT, SIGTERM,
 * SIGSEGV, SIGABRT and SIGBUS, and register @at_exit (NULL:
 * nm_test_pins_cleanup) with atexit().
 */
void nm_test_pins_setup(const char *prefix, void (*at_exit)(void));

/*
 * Unlink every map pin and remove the root. Only unlink/rmdir: safe from a
 * signal handler.
 */
void nm_test_pins_cleanup(void);

#endif /* NM_TESTS_PINS_H */
