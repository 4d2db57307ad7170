#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs rdif's KUnit suite (rdif_kunit.ko, the pure PI logic) and reports
# each KUnit case as a KTAP case of its own, from the suite's results in
# debugfs (or the kernel log).
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

[ "$(id -u)" = 0 ] || ktap_skip_all "must run as root"
KO=$(dirname "$RDIF_KO")/rdif_kunit.ko
[ -r "$KO" ] || ktap_skip_all "rdif_kunit.ko not built (kernel without CONFIG_KUNIT=y)"

rmmod rdif_kunit 2>/dev/null
mark=$(dmesg | wc -l)
if ! insmod "$KO"; then
	ktap_header; ktap_plan 1; ktap_fail "insmod rdif_kunit.ko"; exit "$KSFT_FAIL"
fi
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null
# Every suite the source declares (#[kunit_tests(NAME)]) must have run.
src=$RDIF_TESTS_DIR/../rust/rdif_kunit.rs
mapfile -t suites < <(sed -n 's/^#\[kunit_tests(\([a-z0-9_]*\))\]$/\1/p' "$src" 2>/dev/null)
[ ${#suites[@]} -gt 0 ] || suites=(rdif_pi rdif_store rdif_journal rdif_percpu rdif_inflight
	rdif_settings rdif_inject_parse)
log=$(dmesg | tail -n +$((mark + 1)) | sed 's/^\[[ 0-9.]*\] //')

# Each suite's results: its debugfs file, else its part of the kernel log.
# Nested KTAP: the suite's cases are indented "ok N name" lines.
suite_results() {
	local res=/sys/kernel/debug/kunit/$1/results
	if [ -r "$res" ]; then
		cat "$res"
	else
		echo "$log" | sed -n "/# Subtest: $1\$/,/^\s*\(not \)\?ok [0-9]* $1\$/p"
	fi
}
declare -A out
total=0
for s in "${suites[@]}"; do
	out[$s]=$(suite_results "$s")
	total=$((total + $(echo "${out[$s]}" | grep -cE '^\s+(not )?ok [0-9]+ ')))
done
rmmod rdif_kunit
ktap_header
ktap_plan $((total + ${#suites[@]}))
for s in "${suites[@]}"; do
	cases=$(echo "${out[$s]}" | grep -E '^\s+(not )?ok [0-9]+ ' | sed 's/^\s*//')
	# A suite that did not run, or ran no case, fails.
	if [ -n "$cases" ]; then
		ktap_ok "kunit.$s ran"
	else
		ktap_fail "kunit.$s ran"
		echo "${out[$s]}" | sed 's/^/# /'
		continue
	fi
	while read -r line; do
		name=$(echo "$line" | sed -E 's/^(not )?ok [0-9]+ //; s/ #.*//')
		case $line in
		"not ok"*) ktap_fail "kunit.$s.$name" ;;
		*"# SKIP"*) ktap_skip "kunit.$s.$name" ;;
		*) ktap_ok "kunit.$s.$name" ;;
		esac
	done <<<"$cases"
	echo "${out[$s]}" | grep -E '^# |^\s+# ' | grep -v speed | sed 's/^\s*//; s/^/# /'
done
ktap_finished
