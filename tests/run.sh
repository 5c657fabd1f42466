#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Run every test suite (unit, bpf, etcd, e2e), each printing TAP, and close with
# one line "N passed, N failed, N skipped". A suite that crashes or stops
# short of its plan counts its missing tests as failed.
set -u

BUILD=${1:-build}
passed=0
failed=0
skipped=0
failed_names=()

run_suite() {
	local name=$1
	shift
	local out rc line plan=0 seen=0 p=0 f=0 s=0

	echo "# suite $name"
	out=$(mktemp)
	"$@" >"$out" 2>&1
	rc=$?
	while IFS= read -r line; do
		case "$line" in
		1..*) plan=${line#1..}; plan=${plan%% *} ;;
		"not ok "*)
			seen=$((seen + 1)); f=$((f + 1))
			failed_names+=("$name: ${line#not ok }") ;;
		"ok "*"# SKIP"* | "ok "*"# skip"*)
			seen=$((seen + 1)); s=$((s + 1)) ;;
		"ok "*)
			seen=$((seen + 1)); p=$((p + 1)) ;;
		esac
	done <"$out"
	sed 's/^/    /' "$out"
	rm -f "$out"
	if [ "$plan" -gt "$seen" ]; then
		failed_names+=("$name: $((plan - seen)) test(s) never reported (exit $rc)")
		f=$((f + plan - seen))
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		failed_names+=("$name: exited $rc with no failing test reported")
		f=$((f + 1))
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
}

for t in "$BUILD"/tests/unit/test_*; do
	[ -x "$t" ] || continue
	run_suite "unit/$(basename "$t")" env CMOCKA_MESSAGE_OUTPUT=TAP "$t"
done
for t in "$BUILD"/tests/bpf/test_*; do
	[ -x "$t" ] || continue
	run_suite "bpf/$(basename "$t")" "$t"
done
for t in "$BUILD"/tests/etcd/test_*; do
	[ -x "$t" ] || continue
	run_suite "etcd/$(basename "$t")" "$t"
done
for t in tests/e2e/test_*.sh; do
	[ -x "$t" ] || continue
	run_suite "e2e/$(basename "$t")" "$t" "$BUILD"
done

if [ "${#failed_names[@]}" -gt 0 ]; then
	echo "# failed:"
	printf '#   %s\n' "${failed_names[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
