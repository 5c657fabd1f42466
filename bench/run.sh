#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Run every benchmark binary of a build, then every bench/bench_*.sh script
# (given the build dir): bench/run.sh <build-dir>.
# Benchmarks print figures and never fail on time; a non-zero exit here
# only means a benchmark could not run at all.
set -u

build=${1:-build}
status=0

shopt -s nullglob
benches=("$build"/bench/bench_*)
scripts=("$(dirname "$0")"/bench_*.sh)
if [ ${#benches[@]} -eq 0 ]; then
	echo "bench: no benchmark binaries under $build/bench (run make all)" >&2
	exit 1
fi
for bench in "${benches[@]}"; do
	[ -x "$bench" ] && [ -f "$bench" ] || continue
	case $bench in *.o | *.d) continue ;; esac
	if ! "$bench"; then
		echo "bench: $bench failed to run" >&2
		status=1
	fi
done
for bench in "${scripts[@]}"; do
	if ! "$bench" "$build"; then
		echo "bench: $bench failed to run" >&2
		status=1
	fi
done
exit $status
