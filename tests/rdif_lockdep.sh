#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Lock orders of pass-through under lockdep (CONFIG_PROVE_LOCKING). Each
# case builds on purpose the orders that once made lockdep report and then
# switch itself off for the rest of the boot:
# - an elevator switch freezes a queue and waits for its tag set's SRCU,
#   while a pass-through device submitting its clones from inside its own
#   dispatch (under its tag set's SRCU) enters the lower queue: a cycle
#   between the two lock classes (all tag sets share one SRCU class);
# - a flush (or a FUA or PREFLUSH write) through pass-through ended from
#   inside the lower device's flush completion takes the upper queue's
#   flush lock inside the lower one's: recursive locking.
# The lower devices: a memory rdif, a file-backed rdif (it has a write
# cache, so flushes and FUA writes reach it), scsi_debug with PI (dif=1
# dix=1), and dm-linear over a memory rdif. On each: scheduler switches on the lower
# and the upper device before, between and after reads, writes, flushes,
# FUA and PREFLUSH writes through the pass-through device. A case fails on
# any lockdep report in the kernel log while it ran, and if lockdep is
# switched off (`debug_locks: 0` in /proc/lockdep_stats) at its end.
#
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
export DM_DISABLE_UDEV=1


# A lockdep report, or lockdep being switched off.
LOCKDEP_RE='possible circular locking|possible recursive locking|inconsistent lock state|'
LOCKDEP_RE+='possible irq lock inversion|WARNING:|BUG:|turning off the locking correctness'

lockdep_on() { grep -Eq '^ *debug_locks: +1$' /proc/lockdep_stats; }

N0=0
start() {
	[ -r /proc/lockdep_stats ] || skip_case "no lockdep in this kernel"
	require "lockdep is on at the start" lockdep_on
	N0=$(dmesg | wc -l)
	cfs_load
	[ -d $DBG ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
}

# finish: no lockdep report since start, and lockdep still on
finish() {
	local bad
	bad=$(dmesg | tail -n +$((N0 + 1)) | grep -E "$LOCKDEP_RE")
	expect "no lockdep report" eq report "$bad" ""
	expect "lockdep still on (debug_locks: 1)" lockdep_on
}

# sched DEV: switch DEV's scheduler through every one it offers, ending at
# none (what benchmarks and many udev rules set)
sched() {
	local f=/sys/block/$1/queue/scheduler s
	for s in $(tr -d '[]' <"$f"); do
		echo "$s" >"$f" || return 1
	done
	echo none >"$f"
}


# traffic DEV: reads, writes, flushes, FUA and PREFLUSH writes through DEV
traffic() {
	local d=/dev/$1 f0
	f0=$(cnt "$1" flushes)
	expect "$1: write with PI" eq rc "$(pi_rc write "$d" 0 65536 --chk guard,ref --pattern 3)" 0
	expect "$1: read with PI" eq rc "$(pi_rc read "$d" 0 65536 --chk guard,ref --pattern 3 \
		--verify)" 0
	expect "$1: buffered writes and fsync (flush)" dd if=/dev/urandom of="$d" bs=64k count=4 \
		seek=2 conv=fsync status=none
	expect "$1: FUA writes (O_DIRECT|O_DSYNC)" dd if=/dev/urandom of="$d" bs=4k count=16 \
		seek=64 oflag=direct,dsync status=none
	expect "$1: direct reads" dd if="$d" of=/dev/null bs=64k count=16 iflag=direct status=none
	expect "$1: a flush (blockdev --flushbufs)" blockdev --flushbufs "$d"
	expect "$1: sync" sync
	# Flushes reach a device with a write cache (its lower device has one).
	if grep -q 'write back' "/sys/block/$1/queue/write_cache"; then
		expect "$1: flushes went through" test "$(cnt "$1" flushes)" -gt "$f0"
	fi
}

# stack LOWER [ATTR=VALUE...]: the orders of the report, over LOWER; the
# pass-through device gets the ATTRs (its format must be LOWER's)
stack() {
	local low=$1
	shift
	set -- "$low" "$@"
	expect "scheduler of $1" sched "$1"
	expect "I/O to $1 first" dd if="/dev/$1" of=/dev/null bs=4k count=64 iflag=direct \
		status=none
	cfs_mkdev pt lower="/dev/$1" "${@:2}"
	if grep -q 'write back' "/sys/block/$1/queue/write_cache"; then
		expect "pt inherits the write cache" grep -q 'write back' /sys/block/pt/queue/write_cache
	fi
	traffic pt
	expect "scheduler of pt" sched pt
	traffic pt
	expect "scheduler of $1 again" sched "$1"
	traffic pt
	# Under I/O: a reader through pt while both schedulers change.
	(for _ in $(seq 20); do
		dd if=/dev/pt of=/dev/null bs=4k count=256 iflag=direct status=none || exit 1
	done) &
	local reader=$! i
	for i in 1 2 3; do
		sched pt
		sched "$1"
	done
	expect "reader under scheduler switches" wait $reader
	rmdir $CFS/pt
}

over_memory() {
	start
	cfs_mkdev lo size=64 csum=crc16 blocksize=4096
	stack lo csum=crc16 blocksize=4096
	cfs_unload
	finish
}

# A file-backed rdif has a write cache: flushes and FUA writes reach it.
over_backing() {
	start
	local img=/tmp/rdif_lockdep.img
	rm -f $img
	cfs_mkdev lo size=64 csum=crc16 blocksize=4096 backing=$img
	expect "lo has a write cache (flushes reach it)" grep -q 'write back' \
		/sys/block/lo/queue/write_cache
	stack lo csum=crc16 blocksize=4096
	cfs_unload
	rm -f $img
	finish
}

over_scsi_debug() {
	start
	scsi_start
	local sd=$SD
	expect "scsi_debug has a write cache (flushes reach it)" grep -q 'write back' \
		"/sys/block/$sd/queue/write_cache"
	stack "$sd"
	cfs_unload
	scsi_stop
	finish
}

over_dm_linear() {
	command -v dmsetup >/dev/null || skip_case "dmsetup not installed"
	[ -e /dev/mapper/control ] || skip_case "no device mapper in this kernel"
	start
	cfs_mkdev lo size=64 csum=crc16 blocksize=4096
	require "dm-linear over lo" dmsetup create rdif_lin --table \
		"0 $(sectors lo) linear /dev/lo 0"
	local dm
	dm=$(dmsetup info -c --noheadings -o blkdevname rdif_lin)
	require "dm node" wait_for 10 is_blk "/dev/$dm"
	# dm-linear (bio-based) has no scheduler: switch lo's under it.
	expect "scheduler of lo" sched lo
	cfs_mkdev pt lower="/dev/$dm" csum=crc16 blocksize=4096
	traffic pt
	expect "scheduler of pt" sched pt
	expect "scheduler of lo again" sched lo
	traffic pt
	rmdir $CFS/pt
	settle
	expect "dm-linear removed" dmsetup remove rdif_lin
	cfs_unload
	finish
}

# make check: scsi_debug's own setup takes most of its case's time (and
# rdif_stack.sh passes through scsi_debug too): the long run only.
SAMPLE="over_memory over_backing over_dm_linear"
mapfile -t cases < <(sample over_memory over_backing over_scsi_debug over_dm_linear)
ktap_run_cases "${cases[@]}"
