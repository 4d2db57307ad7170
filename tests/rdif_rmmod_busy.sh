#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# rmmod while a device is in use must be refused (module in use), the device
# must keep working, and once it is released rmmod must succeed. A driver
# whose block_device_operations has no .owner lets rmmod through and the
# kernel then runs freed module code: that shows up here as a failure and
# usually as a splat in dmesg.
# Loads and unloads $RDIF_KO itself; needs root.
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env

# rmmod_must_fail WHY: one plain rmmod attempt must fail and leave
# everything in place.
rmmod_must_fail() {
	local rc=0
	timeout 20 rmmod rdif || rc=$?
	if [ "$rc" = 0 ]; then
		case_fail "rmmod rdif succeeded while $1"
		return 1
	fi
	[ "$rc" = 124 ] && case_fail "rmmod hung while $1"
	expect "module still loaded while $1" rdif_loaded
	expect "/sys/block/rdif0 still there while $1" test -d /sys/block/rdif0
}

open_fd_blocks_rmmod() {
	local got
	require "clean start" rdif_clean_start
	require "insmod size=8" rdif_insmod size=8
	require "write a pattern" sh -c 'printf "rdif-busy-%s" 0123456789 | dd of=/dev/rdif0 bs=512 conv=sync,fsync status=none'
	exec 3</dev/rdif0 || { echo "cannot open /dev/rdif0"; exit 1; }
	rmmod_must_fail "/dev/rdif0 is open"
	got=$(dd bs=512 count=1 status=none <&3 | head -c 20)
	expect "device still readable through the open fd" eq "data" "$got" "rdif-busy-0123456789"
	exec 3<&-
	expect "rmmod succeeds after close" rdif_rmmod
	expect "/dev/rdif0 gone" absent /dev/rdif0
	expect "lsmod has no rdif" not rdif_in_lsmod
}

# A process holding the device open on fd 4 and doing O_DIRECT reads in a
# loop.
inflight_io_blocks_rmmod() {
	local pid
	require "clean start" rdif_clean_start
	require "insmod size=16" rdif_insmod size=16
	(
		exec 4</dev/rdif0 || exit 1
		while :; do
			dd if=/dev/rdif0 iflag=direct bs=64k count=16 status=none of=/dev/null || exit 1
		done
	) &
	pid=$!
	sleep 1
	expect "reader running" kill -0 "$pid"
	rmmod_must_fail "I/O is in flight"
	expect "reader still running (its I/O did not fail)" kill -0 "$pid"
	kill "$pid"
	wait "$pid" 2>/dev/null
	expect "rmmod succeeds after the reader exits" rdif_rmmod
	expect "lsmod has no rdif" not rdif_in_lsmod
}

mounted_blocks_rmmod() {
	local mnt
	command -v mkfs.ext4 >/dev/null || skip_case "no mkfs.ext4"
	require "clean start" rdif_clean_start
	require "insmod size=32" rdif_insmod size=32
	require "mkfs.ext4" mkfs.ext4 -q -F /dev/rdif0
	mnt=$(mktemp -d)
	require "mount" mount -t ext4 /dev/rdif0 "$mnt"
	expect "write a file" sh -c "echo hello >'$mnt/f' && sync"
	rmmod_must_fail "an ext4 filesystem on rdif0 is mounted"
	expect "file still readable" eq "file" "$(cat "$mnt/f")" hello
	expect "umount" umount "$mnt"
	rmdir "$mnt"
	expect "rmmod succeeds after umount" rdif_rmmod
	expect "lsmod has no rdif" not rdif_in_lsmod
}

ktap_run_cases open_fd_blocks_rmmod inflight_io_blocks_rmmod mounted_blocks_rmmod
