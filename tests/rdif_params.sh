#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Invalid module parameters: rdif refuses to load with -EINVAL and says why
# in one line of the kernel log; no device is left behind. Valid edge values
# load.
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env

# parameters | a word the kernel log line must contain
BAD=(
	"blocksize=1000|blocksize"
	"blocksize=8192|blocksize"
	"csum=crc32|csum"
	"csum=crc64 metadata_size=8|exceeds metadata_size"
	"metadata_size=300|metadata_size"
	"metadata_size=8 pi_offset=4|exceeds metadata_size"
	"blocksize=4096 interval=8192|interval"
	"interval=256|interval"
	"blocksize=4096 interval=1536|interval"
	"csum=none metadata_size=8 pi_offset=1|pi_offset"
	"size=0|size"
	"queue_depth=0|queue_depth"
	"hw_queues=100000|hw_queues"
)

refused() {
	local b params word out rc mark
	require "clean start" rdif_clean_start
	for b in "${BAD[@]}"; do
		params=${b%%|*}
		word=${b#*|}
		mark=$(dmesg | wc -l)
		# shellcheck disable=SC2086
		out=$(insmod "$RDIF_KO" $params 2>&1)
		rc=$?
		if [ $rc = 0 ]; then
			case_fail "insmod $params loaded"
			rdif_rmmod
			continue
		fi
		echo "$params: $out"
		expect "$params: EINVAL" grep -Eq "Invalid (argument|parameters)" <<<"$out"
		expect "$params: reason in dmesg" grep -q "rdif: .*$word" <(dmesg | tail -n +$((mark + 1)))
		expect "$params: no device" absent /sys/block/rdif0
		expect "$params: not loaded" not rdif_loaded
	done
}

edges_load() {
	local params
	require "clean start" rdif_clean_start
	for params in "csum=crc16 metadata_size=255 pi_offset=247" "csum=crc64 blocksize=4096 interval=512" \
		"csum=none" "nr_devices=0" "blocksize=2048 csum=ip ref_tag=0"; do
		# shellcheck disable=SC2086
		expect "insmod $params" insmod "$RDIF_KO" $params
		[ "$params" = nr_devices=0 ] && expect "no device with nr_devices=0" absent /sys/block/rdif0
		[ "$params" = csum=none ] && expect "csum=none: no integrity" \
			eq "metadata" "$(cat /sys/block/rdif0/integrity/format 2>/dev/null || echo none)" none
		require "rmmod" rdif_rmmod
	done
}

ktap_run_cases refused edges_load
