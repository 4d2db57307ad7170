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
res=/sys/kernel/debug/kunit/rdif_pi/results
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null
if [ -r "$res" ]; then
	out=$(cat "$res")
else
	out=$(dmesg | tail -n +$((mark + 1)) | sed 's/^\[[ 0-9.]*\] //')
fi
rmmod rdif_kunit

# Nested KTAP: the suite's cases are indented "ok N name" lines.
cases=$(echo "$out" | grep -E '^\s+(not )?ok [0-9]+ ')
ktap_header
n=$(echo "$cases" | grep -c .)
if [ "$n" = 0 ]; then
	ktap_plan 1
	ktap_fail "rdif_pi suite produced results"
	echo "$out" | sed 's/^/# /'
	exit "$KSFT_FAIL"
fi
ktap_plan "$n"
while read -r line; do
	name=$(echo "$line" | sed -E 's/^(not )?ok [0-9]+ //; s/ #.*//')
	case $line in
	"not ok"*) ktap_fail "kunit.rdif_pi.$name" ;;
	*"# SKIP"*) ktap_skip "kunit.rdif_pi.$name" ;;
	*) ktap_ok "kunit.rdif_pi.$name" ;;
	esac
done <<<"$(echo "$cases" | sed 's/^\s*//')"
echo "$out" | grep -E '^# |^\s+# ' | grep -v speed | sed 's/^\s*//; s/^/# /'
ktap_finished
