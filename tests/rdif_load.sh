#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# rdif module load/unload: devices appear with the requested geometry on
# insmod and are gone after rmmod, repeatedly and with parameters.
# Loads and unloads $RDIF_KO itself; needs root.
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env

# Three times: load with defaults (1 device of 256 MiB, 512-byte blocks),
# check it, unload, check it is all gone.
load_unload_defaults() {
	local i
	require "clean start" rdif_clean_start
	for i in 1 2 3; do
		echo "round $i"
		require "insmod (defaults)" rdif_insmod
		expect "rdif listed by lsmod" rdif_in_lsmod
		expect "/dev/rdif0 is a block device" is_blk /dev/rdif0
		expect "/sys/block/rdif0 exists" test -d /sys/block/rdif0
		expect "only one device by default" absent /sys/block/rdif1
		expect "default size 256 MiB" eq "rdif0 sectors" "$(sectors rdif0)" $((256 * MIB / 512))
		expect "default logical block size 512" eq "rdif0 lbs" "$(lbs rdif0)" 512
		require "rmmod" rdif_rmmod
		expect "/dev/rdif0 gone after rmmod" absent /dev/rdif0
		expect "/sys/block/rdif0 gone after rmmod" absent /sys/block/rdif0
		expect "lsmod has no rdif after rmmod" not rdif_in_lsmod
	done
}

nr_devices_3() {
	local i devs=()
	require "clean start" rdif_clean_start
	require "insmod nr_devices=3 size=16" rdif_insmod nr_devices=3 size=16
	for i in 0 1 2; do
		expect "/dev/rdif$i is a block device" wait_for 10 is_blk "/dev/rdif$i"
		expect "rdif$i is 16 MiB" eq "rdif$i sectors" "$(sectors "rdif$i")" $((16 * MIB / 512))
		devs+=("$(cat "/sys/block/rdif$i/dev")")
	done
	expect "no rdif3" absent /sys/block/rdif3
	expect "distinct device numbers" eq "unique dev_t" \
		"$(printf '%s\n' "${devs[@]}" | sort -u | wc -l)" 3
	require "rmmod" rdif_rmmod
	for i in 0 1 2; do
		expect "/dev/rdif$i gone" wait_for 10 absent "/dev/rdif$i"
		expect "/sys/block/rdif$i gone" absent "/sys/block/rdif$i"
	done
	expect "lsmod has no rdif" not rdif_in_lsmod
}

# size= and blocksize= take effect, in both supported block sizes.
size_and_blocksize() {
	local bs size
	require "clean start" rdif_clean_start
	for bs in 4096 512; do
		for size in 16 1; do
			echo "size=$size blocksize=$bs"
			require "insmod size=$size blocksize=$bs" rdif_insmod "size=$size" "blocksize=$bs"
			expect "size $size MiB" eq "sectors" "$(sectors rdif0)" $((size * MIB / 512))
			expect "logical block size $bs" eq "lbs" "$(lbs rdif0)" "$bs"
			expect "blockdev --getsize64" eq "getsize64" \
				"$(blockdev --getsize64 /dev/rdif0)" $((size * MIB))
			expect "blockdev --getss" eq "getss" "$(blockdev --getss /dev/rdif0)" "$bs"
			require "rmmod" rdif_rmmod
		done
	done
}

# Only 512 and 4096 are valid block sizes: anything else must be refused
# at load time, leaving nothing behind.
bad_blocksize_refused() {
	local bs
	require "clean start" rdif_clean_start
	for bs in 1000 0; do
		if insmod "$RDIF_KO" "blocksize=$bs"; then
			case_fail "insmod blocksize=$bs succeeded"
			settle
			rdif_rmmod
		fi
		expect "no rdif module after refused blocksize=$bs" not rdif_loaded
		expect "no /sys/block/rdif0 after refused blocksize=$bs" absent /sys/block/rdif0
	done
}

# A reload gives a fresh, zeroed disk.
reload_is_zeroed() {
	local sum zero
	require "clean start" rdif_clean_start
	require "insmod size=4" rdif_insmod size=4
	head -c $((4 * MIB)) /dev/urandom >/tmp/rdif_load.data
	require "write random data" dd if=/tmp/rdif_load.data of=/dev/rdif0 bs=1M count=4 \
		oflag=direct status=none
	zero=$(head -c $((4 * MIB)) /dev/zero | md5sum)
	sum=$(dd if=/dev/rdif0 bs=1M iflag=direct status=none | md5sum)
	expect "data written is read back" eq md5 "$sum" "$(md5sum </tmp/rdif_load.data)"
	rm -f /tmp/rdif_load.data
	require "rmmod" rdif_rmmod
	require "insmod size=4 again" rdif_insmod size=4
	sum=$(dd if=/dev/rdif0 bs=1M iflag=direct status=none | md5sum)
	expect "reloaded disk reads back zeroes" eq "md5" "$sum" "$zero"
	require "rmmod" rdif_rmmod
}

no_leftovers() {
	expect "lsmod has no rdif" not rdif_in_lsmod
	expect "/sys/module/rdif gone" absent /sys/module/rdif
	expect "no /dev/rdif*" eq "/dev/rdif*" "$(echo /dev/rdif*)" "/dev/rdif*"
	expect "no /sys/block/rdif*" eq "/sys/block/rdif*" "$(echo /sys/block/rdif*)" "/sys/block/rdif*"
}

ktap_run_cases load_unload_defaults nr_devices_3 size_and_blocksize \
	bad_blocksize_refused reload_is_zeroed no_leftovers
