#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Teardown under load: `power 0`, `rmdir` and `rmmod` while fio runs on
# memory and file-backed devices, several times over. Nothing may hang
# (every step has a time limit), fio must end (with errors once its device
# is gone, that is expected), the device must come back and work, rmmod
# must be refused while devices exist and succeed at the end (no reference
# leaked), and dmesg must stay clean (run_guest.sh's dmesg_clean).
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
command -v fio >/dev/null || ktap_skip_all "fio not installed"

# Rounds per case (RDIF_TEARDOWN_ROUNDS for a longer run; 2 in
# make check-full).
ROUNDS=${RDIF_TEARDOWN_ROUNDS:-$(thorough && echo 2 || echo 1)}
IMG=/tmp/rdif_td.img

# load DEV: start fio on /dev/DEV in the background; its pid in $FIO_PID
# fio_has_open NAME: a fio process has /dev/NAME open
fio_has_open() {
	local p c f
	for p in /proc/[0-9]*; do
		read -r c 2>/dev/null <"$p/comm" || continue
		[ "$c" = fio ] || continue
		for f in "$p"/fd/*; do
			[ "$(readlink "$f" 2>/dev/null)" = "/dev/$1" ] && return 0
		done
	done
	return 1
}

load() {
	DEV_NAME=$1
	# allow_file_create=0: once the device is gone, fio must not reopen
	# its path as a new regular file in /dev (which would then stand in the
	# way of the next disk's node).
	timeout 120 fio --name=td --filename="/dev/$1" --allow_file_create=0 --direct=1 \
		--ioengine=io_uring --iodepth=16 --numjobs=2 --rw=randrw --bs=4k --size=8M \
		--time_based --runtime=60 --group_reporting >/tmp/rdif_td_fio.log 2>&1 &
	FIO_PID=$!
	# Let it get going: wait until fio has the device open (it starts
	# slowly on a busy machine; udev's probe reads do not count), then a
	# little longer.
	local n=300
	while [ $n -gt 0 ] && ! fio_has_open "$1"; do
		sleep 0.1
		n=$((n - 1))
	done
	sleep 0.5
}

# fio_ends: fio must finish on its own within 60 s of its device going away
# (and must not have left a file where the device node was)
fio_ends() {
	local n=600
	while kill -0 "$FIO_PID" 2>/dev/null && [ $n -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	if kill -0 "$FIO_PID" 2>/dev/null; then
		echo "fio still running 60 s after its device went away"
		kill -9 "$FIO_PID"
		wait "$FIO_PID" 2>/dev/null
		return 1
	fi
	wait "$FIO_PID" 2>/dev/null
	if [ -e /dev/"$DEV_NAME" ] && ! [ -b /dev/"$DEV_NAME" ]; then
		echo "a file /dev/$DEV_NAME was created; removing it"
		rm -f /dev/"$DEV_NAME"
		return 1
	fi
	return 0
}

# mkdev NAME [BACKING]: a configfs device, not powered
mkdev() {
	mkdir $CFS/"$1"
	cfs_write $CFS/"$1"/size 32 >/dev/null
	cfs_write $CFS/"$1"/csum crc16 >/dev/null
	[ -n "${2:-}" ] && cfs_write $CFS/"$1"/backing "$2" >/dev/null
	return 0
}

on() {
	local out
	out=$(timeout 60 bash -c "printf 1 >$CFS/$1/power" 2>&1) ||
		{ echo "power 1: ${out:-timed out or failed}"; return 1; }
	wait_for 30 is_blk /dev/"$1" || { echo "no /dev/$1 after power 1"; return 1; }
	# Let udev finish with the new disk before it is used and removed.
	settle
}

works() {
	head -c 65536 /dev/urandom >/tmp/rdif_td.blk &&
		dd if=/tmp/rdif_td.blk of=/dev/"$1" bs=64k count=1 oflag=direct status=none &&
		dd if=/dev/"$1" bs=64k count=1 iflag=direct status=none | cmp -s - /tmp/rdif_td.blk
}

# power_off_under_load NAME: ROUNDS x (fio, power 0 within 60 s, power 1)
power_cycles() {
	local i
	for i in $(seq $ROUNDS); do
		require "round $i: power on" on "$1"
		load "$1"
		expect "round $i: fio running" kill -0 "$FIO_PID"
		expect "round $i: power 0 under load returns" timeout 60 bash -c "printf 0 >$CFS/$1/power"
		expect "round $i: /dev/$1 gone" wait_for 10 absent /dev/"$1"
		expect "round $i: fio ends" fio_ends
		# udev may still be busy with the removed disk.
		settle
	done
	require "power on after the rounds" on "$1"
	expect "the device works" works "$1"
}

# rmdir_cycles NAME [BACKING]: ROUNDS x (fio, rmdir within 60 s, mkdir)
rmdir_cycles() {
	local i
	for i in $(seq $ROUNDS); do
		mkdev "$1" "${2:-}"
		require "round $i: power on" on "$1"
		load "$1"
		expect "round $i: rmdir under load returns" timeout 60 rmdir $CFS/"$1"
		expect "round $i: directory gone" absent $CFS/"$1"
		expect "round $i: /dev/$1 gone" wait_for 10 absent /dev/"$1"
		expect "round $i: fio ends" fio_ends
		settle
	done
}

# rmmod_refused NAME: rmmod under load is refused at once, fio unharmed
rmmod_refused() {
	local rc=0
	require "power on" on "$1"
	load "$1"
	timeout 30 rmmod rdif 2>/dev/null || rc=$?
	expect "rmmod under load refused" test $rc != 0
	expect "rmmod did not hang" test $rc != 124
	expect "module still loaded" rdif_loaded
	expect "fio still running" kill -0 "$FIO_PID"
	expect "power 0" timeout 60 bash -c "printf 0 >$CFS/$1/power"
	expect "fio ends" fio_ends
}

memory() {
	cfs_load
	mkdev m
	power_cycles m
	rmmod_refused m
	rmdir $CFS/m
	rmdir_cycles m
	cfs_unload
	expect "nothing left in lsmod" not rdif_in_lsmod
}

file() {
	cfs_load
	rm -f $IMG
	mkdev f $IMG
	power_cycles f
	rmmod_refused f
	rmdir $CFS/f
	rmdir_cycles f $IMG
	cfs_unload
	expect "nothing left in lsmod" not rdif_in_lsmod
	rm -f $IMG
}

# The module-parameter device: rmmod under load refused, then allowed.
module_device() {
	local rc=0
	require "clean start" rdif_clean_start
	require "insmod" rdif_insmod size=32
	load rdif0
	timeout 30 rmmod rdif 2>/dev/null || rc=$?
	expect "rmmod under load refused" test $rc != 0
	expect "rmmod did not hang" test $rc != 124
	expect "fio still running" kill -0 "$FIO_PID"
	kill "$FIO_PID"
	expect "fio ends when killed" fio_ends
	expect "rmmod after fio" rdif_rmmod
}

ktap_run_cases memory file module_device
