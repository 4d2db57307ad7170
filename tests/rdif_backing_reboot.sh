#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Second half of rdif_backing.sh's persist_across_boot, run in a new guest
# boot: the store left in $RDIF_PERSIST_DIR still holds the data and PI
# written before the reboot. scripts/check runs it; it skips elsewhere.
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env


after_reboot() {
	local img=${RDIF_PERSIST_DIR:-}/reboot.img
	[ -n "${RDIF_PERSIST_DIR:-}" ] && [ -s "$img" ] || skip_case "no store from a previous boot"
	require "clean start" rdif_clean_start
	require "insmod" insmod "$RDIF_KO" nr_devices=0
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	mkdir $CFS/p
	echo 16 >$CFS/p/size
	echo crc64 >$CFS/p/csum
	echo 4096 >$CFS/p/blocksize
	echo "$img" >$CFS/p/backing
	require "power on over the old store" sh -c "echo 1 >$CFS/p/power"
	require "/dev/p" wait_for 10 is_blk /dev/p
	expect "data and PI survive a reboot (1)" eq r1 \
		"$(pi_rc read /dev/p 0 65536 --pattern 21 --verify --chk guard,ref)" 0
	expect "data and PI survive a reboot (2)" eq r2 \
		"$(pi_rc read /dev/p $((5 * MIB)) 8192 --pattern 22 --app-tag 0x55aa --verify --chk guard,ref,app)" 0
	expect "data and PI survive a reboot (3)" eq r3 \
		"$(pi_rc read /dev/p $((16 * MIB - 4096)) 4096 --pattern 23 --verify --chk guard,ref)" 0
	expect "auto-verify of the whole device" dd if=/dev/p of=/dev/null bs=64k iflag=direct status=none
	echo 0 >$CFS/p/power
	rmdir $CFS/p
	require "rmmod" rdif_rmmod
	rm -f "$img"
}

ktap_run_cases after_reboot
