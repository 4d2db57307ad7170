#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Persistent backing stores: data and PI written through the device survive
# power off/on and a module reload, on a regular file and on a loop device;
# a store of another format is refused and left alone; format creates a
# fresh store; a write that fails its PI check changes neither region.
#
# With meta_device, the metadata and the journal are on a device of their
# own (meta_device, meta_device_bad): the data file holds data only, both
# survive power cycles and format, and a wrong pairing is refused.
#
# Flushes and FUA writes put data and metadata on the medium under the
# store (flush_and_fua_reach_the_medium).
#
# With RDIF_PERSIST_DIR set (scripts/check points it at a host directory),
# persist_across_boot leaves a store there for the next guest boot, which
# runs rdif_backing_reboot.sh to check it: a store survives a reboot of the
# system (a clean one; power cuts are not tested here).
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
RACE=$RDIF_TESTS_DIR/rdif_race
IMG=/tmp/rdif_backing.img
EILSEQ=84




# mkdev NAME BACKING ATTR=VALUE...: describe a device (not powered)
mkdev() {
	local name=$1 backing=$2 kv
	shift 2
	mkdir -p $CFS/$name
	cfs_write $CFS/$name/size 16 >/dev/null
	for kv in "$@"; do
		require "$name ${kv%%=*}" eq "$kv" "$(cfs_write $CFS/$name/${kv%%=*} "${kv#*=}")" OK
	done
	require "$name backing" eq backing "$(cfs_write $CFS/$name/backing "$backing")" OK
}

power() {
	local r
	r=$(cfs_write $CFS/$1/power "$2")
	[ "$r" = OK ] && [ "$2" = 1 ] && { wait_for 10 is_blk /dev/$1 || r="no /dev/$1"; settle; }
	[ "$r" = OK ] && [ "$2" = 0 ] && { wait_for 10 absent /dev/$1 || r="/dev/$1 still there"; }
	echo "$r"
}

# cnt DEV NAME: counter NAME of DEV's debugfs stats file.

# pi_rc ARGS: rdif_pi's exit status

# write_set DEV: data + user PI at three places, one with a non-zero app tag
write_set() {
	[ "$(pi_rc write "$1" 0 65536 --pattern 21 --chk guard,ref)" = 0 ] &&
		[ "$(pi_rc write "$1" $((5 * MIB)) 8192 --pattern 22 --app-tag 0x55aa --chk guard,ref,app)" = 0 ] &&
		[ "$(pi_rc write "$1" $((16 * MIB - 4096)) 4096 --pattern 23 --chk guard,ref)" = 0 ]
}

# verify_set DEV: the same, read back byte for byte with the device
# checking PI, and through the block layer's auto-verify
verify_set() {
	[ "$(pi_rc read "$1" 0 65536 --pattern 21 --verify --chk guard,ref)" = 0 ] &&
		[ "$(pi_rc read "$1" $((5 * MIB)) 8192 --pattern 22 --app-tag 0x55aa --verify --chk guard,ref,app)" = 0 ] &&
		[ "$(pi_rc read "$1" $((16 * MIB - 4096)) 4096 --pattern 23 --verify --chk guard,ref)" = 0 ] &&
		dd if="$1" of=/dev/null bs=64k iflag=direct status=none &&
		[ "$(pi_rc read "$1" $((8 * MIB)) 65536 --expect-zero --chk guard,ref)" = 0 ]
}

regular_file() {
	cfs_load
	rm -f $IMG
	mkdev f $IMG csum=crc16 blocksize=512
	require "power on (new file)" eq power "$(power f 1)" OK
	expect "file created" test -f $IMG
	expect "fresh store reads zeroes with escape PI" eq fresh \
		"$(pi_rc read /dev/f 0 $((1 * MIB)) --expect-zero --chk guard,ref)" 0
	require "write data and PI" write_set /dev/f
	expect "reads back before power off" verify_set /dev/f
	require "power off" eq power "$(power f 0)" OK
	require "power on again" eq power "$(power f 1)" OK
	expect "data and PI survive power 0/1" verify_set /dev/f
	expect "write cache advertised" eq write_cache "$(cat /sys/block/f/queue/write_cache)" "write back"
	# discard: zeroes and escape PI, persistently
	expect "discard" blkdiscard -f -o $((5 * MIB)) -l $((1 * MIB)) /dev/f
	expect "discarded range reads zeroes with escape PI" eq discard \
		"$(pi_rc read /dev/f $((5 * MIB)) $((1 * MIB)) --expect-zero --chk guard,ref)" 0
	require "power off" eq power "$(power f 0)" OK
	require "power on again" eq power "$(power f 1)" OK
	expect "discard persists" eq discard \
		"$(pi_rc read /dev/f $((5 * MIB)) $((1 * MIB)) --expect-zero --chk guard,ref)" 0
	cfs_unload
}

module_reload() {
	cfs_load
	rm -f $IMG
	mkdev r $IMG csum=crc64 blocksize=4096
	require "power on" eq power "$(power r 1)" OK
	require "write" write_set /dev/r
	cfs_unload
	cfs_load
	mkdev r $IMG csum=crc64 blocksize=4096
	require "power on after reload" eq power "$(power r 1)" OK
	expect "data and PI survive a module reload" verify_set /dev/r
	cfs_unload
}

mismatch_refused() {
	local sum mark
	cfs_load
	rm -f $IMG
	mkdev m $IMG csum=crc16 blocksize=4096
	require "power on" eq power "$(power m 1)" OK
	require "write" write_set /dev/m
	require "power off" eq power "$(power m 0)" OK
	sum=$(md5sum <$IMG)
	for kv in csum=ip ref_tag=0 blocksize=512 size=32 metadata_size=16 interval=512; do
		mkdev m $IMG csum=crc16 blocksize=4096 metadata_size=0 ref_tag=1 interval=0
		cfs_write $CFS/m/${kv%%=*} "${kv#*=}" >/dev/null
		mark=$(dmesg | wc -l)
		expect "$kv: power on refused" eq power "$(power m 1)" EINVAL
		expect "$kv: reason logged" grep -q "rdif: m: backing $IMG: the store has another" \
			<(dmesg | tail -n +$((mark + 1)))
	done
	expect "refusals left the store untouched" eq md5 "$(md5sum <$IMG)" "$sum"
	mkdev m $IMG csum=crc16 blocksize=4096 metadata_size=0 ref_tag=1 interval=0 size=16
	require "matching format powers on" eq power "$(power m 1)" OK
	expect "old contents intact" verify_set /dev/m
	require "power off" eq power "$(power m 0)" OK
	printf 'garbage!' | dd of=$IMG conv=notrunc status=none
	expect "no header: refused" eq power "$(power m 1)" EINVAL
	# format creates a fresh store with the configured format.
	cfs_write $CFS/m/csum ip >/dev/null
	expect "format" eq format "$(cfs_write $CFS/m/format 1)" OK
	expect "powers on after format" eq power "$(power m 1)" OK
	expect "formatted store reads zeroes with escape PI" eq fresh \
		"$(pi_rc read /dev/m 0 $((1 * MIB)) --expect-zero)" 0
	expect "format while powered: EBUSY" eq format "$(cfs_write $CFS/m/format 1)" EBUSY
	cfs_unload
}

loop_device() {
	local loop r
	cfs_load
	rm -f /tmp/rdif_loop.img
	truncate -s 64M /tmp/rdif_loop.img
	loop=$(losetup -f --show /tmp/rdif_loop.img) || { skip_case "no loop device"; }
	echo "loop device $loop"
	mkdev l "$loop" csum=crc16 blocksize=512 metadata_size=16 pi_offset=8
	expect "unformatted device refused" eq power "$(power l 1)" EINVAL
	expect "format" eq format "$(cfs_write $CFS/l/format 1)" OK
	require "power on" eq power "$(power l 1)" OK
	require "write" write_set /dev/l
	require "power off" eq power "$(power l 0)" OK
	require "power on" eq power "$(power l 1)" OK
	expect "data and PI survive on a loop device" verify_set /dev/l
	cfs_write $CFS/l/size 128 >/dev/null 2>&1
	cfs_unload
	cfs_load
	mkdev l "$loop" csum=crc16 blocksize=512 metadata_size=16 pi_offset=8 size=128
	r=$(power l 1)
	echo "power on over a too small device: $r"
	expect "too small a device refused" test "$r" != OK
	cfs_unload
	losetup -d "$loop"
	rm -f /tmp/rdif_loop.img
}

# A write whose PI is wrong changes neither the data nor the metadata region.
rejected_write_changes_nothing() {
	local sum
	cfs_load
	rm -f $IMG
	mkdev w $IMG csum=crc16 blocksize=512
	require "power on" eq power "$(power w 1)" OK
	require "write" write_set /dev/w
	expect "flush" blockdev --flushbufs /dev/w
	sum=$(md5sum <$IMG)
	expect "bad guard rejected" eq guard "$(pi_rc write /dev/w 0 65536 --pattern 9 --chk guard,ref --corrupt guard --at 100)" $EILSEQ
	expect "bad ref rejected" eq ref "$(pi_rc write /dev/w 0 65536 --pattern 9 --chk guard,ref --corrupt ref --at 127)" $EILSEQ
	expect "bad app rejected" eq app "$(pi_rc write /dev/w 0 65536 --pattern 9 --app-tag 3 --chk app --corrupt app)" $EILSEQ
	expect "data and metadata regions unchanged" eq md5 "$(md5sum <$IMG)" "$sum"
	expect "old data still verifies" verify_set /dev/w
	cfs_unload
}

# at_medium FILE OFFSET PATTERNFILE: FILE holds PATTERNFILE at OFFSET
at_medium() {
	dd if="$1" bs=4096 skip=$(($2 / 4096)) count=$(($(stat -c %s "$3") / 4096)) status=none |
		cmp -s - "$3"
}

# meta_ref FILE INTERVAL [BASE]: the reference tag stored for INTERVAL of a
# 16 MiB crc16 store with 512-byte intervals, as the medium holds it
# (metadata region at BASE, by default 4096 + 16 MiB, 8 bytes per interval,
# kept XORed with escape PI: all ones for the tuple; the ref tag is bytes
# 4-7, big endian)
meta_ref() {
	local b
	b=$(od -An -tx1 -j $((${3:-$((4096 + 16 * MIB))} + $2 * 8 + 4)) -N4 "$1" | tr -d ' \n')
	printf '%d\n' $((0x$b ^ 0xffffffff))
}

# Flushes and FUA writes reach the medium, data and metadata. The store is a
# loop device over a file in a tmpfs of its own, with the kernel's periodic
# and background writeback turned off: what rdif does not write back stays
# dirty in the loop device's page cache and is missing from the tmpfs
# file. A control write without flush shows that the setup can tell.
# durability [split]: with split, the metadata and journal are on a second
# such loop device (meta_device).
durability() {
	local mnt=/tmp/rdif_dur loop mloop= wb exp bg dr flushes mfile mbase
	cfs_load
	mount_debugfs
	mkdir -p $mnt && mount -t tmpfs -o size=64M none $mnt
	truncate -s 32M $mnt/medium
	loop=$(losetup -f --show $mnt/medium) || { umount $mnt; skip_case "no loop device"; }
	mkdev d "$loop" csum=crc16 blocksize=512
	mfile=$mnt/medium mbase=$((4096 + 16 * MIB))
	if [ "${1:-}" = split ]; then
		truncate -s 16M $mnt/meta
		mloop=$(losetup -f --show $mnt/meta) || skip_case "no second loop device"
		require "meta_device" eq meta "$(cfs_write $CFS/d/meta_device "$mloop")" OK
		mfile=$mnt/meta mbase=4096
	fi
	require "format" eq format "$(cfs_write $CFS/d/format 1)" OK
	require "power on" eq power "$(power d 1)" OK
	wb=$(cat /proc/sys/vm/dirty_writeback_centisecs)
	exp=$(cat /proc/sys/vm/dirty_expire_centisecs)
	bg=$(cat /proc/sys/vm/dirty_background_ratio)
	dr=$(cat /proc/sys/vm/dirty_ratio)
	sync
	echo 0 >/proc/sys/vm/dirty_writeback_centisecs
	echo 360000 >/proc/sys/vm/dirty_expire_centisecs
	echo 90 >/proc/sys/vm/dirty_background_ratio
	echo 95 >/proc/sys/vm/dirty_ratio
	for n in a b c; do head -c 65536 /dev/urandom >/tmp/rdif_dur.$n; done
	flushes=$(cnt d flushes)
	# Control: an acknowledged write without flush is not on the medium yet.
	dd if=/tmp/rdif_dur.c of=/dev/d bs=64k seek=48 count=1 oflag=direct status=none
	expect "control: unflushed data not on the medium" not at_medium $mnt/medium $((4096 + 3 * MIB)) /tmp/rdif_dur.c
	expect "control: unflushed metadata not on the medium" eq ref "$(meta_ref $mfile 6144 $mbase)" $((0xffffffff))
	# A flush (fsync of the device) writes data and metadata back.
	dd if=/tmp/rdif_dur.a of=/dev/d bs=64k seek=16 count=1 oflag=direct status=none
	expect "fsync" sync /dev/d
	expect "flushed data on the medium" at_medium $mnt/medium $((4096 + 1 * MIB)) /tmp/rdif_dur.a
	expect "flushed metadata on the medium" eq ref "$(meta_ref $mfile 2048 $mbase)" 2048
	expect "flushed metadata on the medium (last interval)" eq ref "$(meta_ref $mfile 2175 $mbase)" 2175
	expect "the flush reached rdif" test "$(cnt d flushes)" -gt "$flushes"
	# A FUA write with no flush after it is durable when it completes: in
	# the journal, on the medium under it (the in-place copy waits for the
	# next flush). O_DSYNC through io_uring is that write: the block
	# layer's asynchronous direct I/O makes it durable with FUA alone,
	# while a synchronous O_DSYNC write is followed by a flush.
	flushes=$(cnt d flushes)
	{ printf 'rdif-fua-%05d%05d%05d%05d' $RANDOM $RANDOM $RANDOM $RANDOM; head -c 65536 /dev/urandom; } |
		head -c 65536 >/tmp/rdif_dur.b
	expect "FUA write" eq rc "$(pi_rc write /dev/d $((2 * MIB)) 65536 --dsync \
		--data-in /tmp/rdif_dur.b)" 0
	expect "no flush after it" eq flushes "$(cnt d flushes)" "$flushes"
	expect "FUA data on the medium (its journal entry)" in_medium $mfile /tmp/rdif_dur.b
	echo "$wb" >/proc/sys/vm/dirty_writeback_centisecs
	echo "$exp" >/proc/sys/vm/dirty_expire_centisecs
	echo "$bg" >/proc/sys/vm/dirty_background_ratio
	echo "$dr" >/proc/sys/vm/dirty_ratio
	cfs_unload
	losetup -d "$loop"
	[ -n "$mloop" ] && losetup -d "$mloop"
	umount $mnt
	rm -f /tmp/rdif_dur.*
}

# in_medium FILE DATA: DATA (which starts with a unique 29-byte marker) is
# in FILE
in_medium() {
	local off
	off=$(grep -obUaF "$(head -c 29 "$2")" "$1" | head -n 1 | cut -d: -f1)
	[ -n "$off" ] || { echo "not in $1"; return 1; }
	cmp -s <(tail -c +$((off + 1)) "$1" | head -c "$(stat -c %s "$2")") "$2"
}

flush_and_fua_reach_the_medium() { durability; }
flush_and_fua_reach_the_medium_meta_device() { durability split; }

persist_across_boot() {
	[ -n "${RDIF_PERSIST_DIR:-}" ] || skip_case "RDIF_PERSIST_DIR not set (scripts/check sets it)"
	cfs_load
	local img=$RDIF_PERSIST_DIR/reboot.img
	rm -f "$img"
	mkdev p "$img" csum=crc64 blocksize=4096
	require "power on" eq power "$(power p 1)" OK
	require "write" write_set /dev/p
	# The store is on the host through 9p without caching, so it is there
	# with or without this flush: flushing itself is tested (where a
	# broken flush shows) by flush_and_fua_reach_the_medium.
	expect "fsync" sync /dev/p
	require "power off" eq power "$(power p 0)" OK
	cfs_unload
	expect "store left for the next boot" test -s "$img"
}

# replayed_after_power_cycle NAME: power NAME off and on again (no flush on
# the way) and print how many journal entries the power-on replayed
replayed_after_power_cycle() {
	local mark
	[ "$(power "$1" 0)" = OK ] || return 1
	mark=$(dmesg | wc -l)
	[ "$(power "$1" 1)" = OK ] || return 1
	dmesg | tail -n +$((mark + 1)) | sed -n 's/.*backing .*: replayed \([0-9]*\) journal entries.*/\1/p'
}

# The journal fills (4 MiB) without a flush and starts a new generation by
# itself; the entries written after that must belong to the new generation,
# so that power-on replays them (a write completed after the journal filled
# must be as safe from a crash as one before). Nothing flushes here: dd
# writes O_DIRECT without fsync, and power 0 does not flush the store.
journal_wraps() {
	local n
	cfs_load
	rm -f $IMG
	mkdev j $IMG csum=crc16 blocksize=4096
	require "power on" eq power "$(power j 1)" OK
	# 6 MiB in 64 KiB writes: about 62 entries fill the journal, the rest
	# go into the next generation.
	require "write 6 MiB" dd if=/dev/urandom of=/dev/j bs=64k count=96 oflag=direct status=none
	n=$(replayed_after_power_cycle j)
	require "power on again" is_blk /dev/j
	expect "the entries after the journal filled are replayed" test "${n:-0}" -ge 1
	expect "and the device reads back with PI" dd if=/dev/j of=/dev/null bs=1M iflag=direct status=none
	cfs_unload
}

# journal=0: writes go straight in place (a format without metadata from
# the bio's pages, with one iov_iter per bio), nothing is journaled, the
# data and PI persist, and the store stays valid for journal=1. Without a
# backing store journal=0 is refused.
no_journal() {
	local n
	cfs_load
	mkdir -p $CFS/m
	require "journal=0 on a memory device" eq journal "$(cfs_write $CFS/m/journal 0)" OK
	expect "refused at power-on without backing" not eq power "$(cfs_write $CFS/m/power 1)" OK
	expect "no disk" absent /dev/m
	rmdir $CFS/m
	# No metadata: data straight between the bios' pages and the file.
	rm -f $IMG
	head -c $((3 * MIB)) /dev/urandom >/tmp/rdif_nj.data
	mkdev n $IMG csum=none blocksize=4096 journal=0
	require "power on" eq power "$(power n 1)" OK
	expect "no FUA without the journal (a flush follows a FUA write)" eq fua \
		"$(cat /sys/block/n/queue/fua)" 0
	mount_debugfs
	expect "no direct I/O to tmpfs (it ignores O_DIRECT)" eq file_direct "$(cnt n file_direct)" 0
	require "write 3 MiB at 1 MiB" dd if=/tmp/rdif_nj.data of=/dev/n bs=64k seek=16 oflag=direct status=none
	expect "reads back" cmp -s /tmp/rdif_nj.data <(dd if=/dev/n bs=64k skip=16 count=48 iflag=direct status=none)
	expect "on the medium in place" at_medium $IMG $((4096 + 1 * MIB)) /tmp/rdif_nj.data
	n=$(replayed_after_power_cycle n)
	expect "nothing journaled" eq replayed "${n:-0}" 0
	expect "reads back after power 0/1" cmp -s /tmp/rdif_nj.data <(dd if=/dev/n bs=64k skip=16 count=48 iflag=direct status=none)
	expect "discard" blkdiscard -f -o $((2 * MIB)) -l $((1 * MIB)) /dev/n
	expect "discarded range reads zeroes" cmp -s <(head -c $((1 * MIB)) /dev/zero) \
		<(dd if=/dev/n bs=64k skip=32 count=16 iflag=direct status=none)
	require "power off" eq power "$(power n 0)" OK
	rmdir $CFS/n
	# With PI: data and metadata written in place, checked on the way back.
	rm -f $IMG
	mkdev p $IMG csum=crc16 blocksize=512 journal=0
	require "power on" eq power "$(power p 1)" OK
	require "write data and PI" write_set /dev/p
	expect "reads back" verify_set /dev/p
	# 256 KiB: four pieces of the file store's writes, 64 staging blocks
	require "write 256 KiB with PI" eq big \
		"$(pi_rc write /dev/p $((9 * MIB)) $((256 * 1024)) --pattern 24 --chk guard,ref)" 0
	expect "256 KiB reads back" eq big \
		"$(pi_rc read /dev/p $((9 * MIB)) $((256 * 1024)) --pattern 24 --verify --chk guard,ref)" 0
	# 1 MiB with the block layer's PI (auto-PI), checked by the device
	head -c $((1 * MIB)) /dev/urandom >/tmp/rdif_nj.data
	require "write 1 MiB, auto-PI" dd if=/tmp/rdif_nj.data of=/dev/p bs=1M seek=12 oflag=direct status=none
	expect "1 MiB reads back" cmp -s /tmp/rdif_nj.data <(dd if=/dev/p bs=1M skip=12 count=1 iflag=direct status=none)
	n=$(replayed_after_power_cycle p)
	expect "nothing journaled (PI)" eq replayed "${n:-0}" 0
	expect "1 MiB survives power 0/1" cmp -s /tmp/rdif_nj.data <(dd if=/dev/p bs=1M skip=12 count=1 iflag=direct status=none)
	expect "data and PI survive power 0/1" verify_set /dev/p
	expect "256 KiB survives power 0/1" eq big \
		"$(pi_rc read /dev/p $((9 * MIB)) $((256 * 1024)) --pattern 24 --verify --chk guard,ref)" 0
	require "power off" eq power "$(power p 0)" OK
	require "journal on again" eq journal "$(cfs_write $CFS/p/journal 1)" OK
	require "power on" eq power "$(power p 1)" OK
	expect "the store is valid with the journal on" verify_set /dev/p
	expect "FUA with the journal" eq fua "$(cat /sys/block/p/queue/fua)" 1
	expect "write with the journal" dd if=/dev/zero of=/dev/p bs=4k seek=1024 count=4 oflag=direct status=none
	n=$(replayed_after_power_cycle p)
	expect "and that write was journaled" test "${n:-0}" -ge 1
	cfs_unload
	rm -f /tmp/rdif_nj.data
}

# journal=0 without metadata over a block device that takes direct I/O (a
# loop device here, which completes it later, from its own worker): whole
# requests go to it as direct I/O, several in flight at once, and one that
# overlaps a request in flight waits for it, so racing writers and readers
# never see a torn block.
direct_io() {
	local loop out rc
	cfs_load
	mount_debugfs
	rm -f /tmp/rdif_loop.img
	truncate -s 64M /tmp/rdif_loop.img
	loop=$(losetup -f --show --direct-io=on /tmp/rdif_loop.img) || { skip_case "no loop device"; }
	mkdev x "$loop" csum=none blocksize=4096 journal=0
	require "format" eq format "$(cfs_write $CFS/x/format 1)" OK
	require "power on" eq power "$(power x 1)" OK
	expect "direct I/O to the loop device" eq file_direct "$(cnt x file_direct)" 1
	out=$("$RACE" race /dev/x 4 4096 4 4 2>&1)
	rc=$?
	ktap_diag "$out"
	expect "racing writers and readers: no torn block" eq "exit status" "$rc" 0
	ktap_diag "$(grep file_ /sys/kernel/debug/rdif/x/stats | tr '\n' ' ')"
	expect "requests went to the device whole" test "$(cnt x file_requests)" -gt 0
	expect "several in flight at once" test "$(cnt x file_inflight_peak)" -gt 1
	expect "overlapping requests waited" test "$(cnt x file_waited)" -gt 0
	head -c $((4 * MIB)) /dev/urandom >/tmp/rdif_dio.data
	require "write 4 MiB at 2 MiB" dd if=/tmp/rdif_dio.data of=/dev/x bs=256k seek=8 oflag=direct status=none
	expect "reads back" cmp -s /tmp/rdif_dio.data <(dd if=/dev/x bs=256k skip=8 count=16 iflag=direct status=none)
	expect "in place under the loop device" at_medium /tmp/rdif_loop.img $((4096 + 2 * MIB)) /tmp/rdif_dio.data
	require "power off" eq power "$(power x 0)" OK
	require "power on" eq power "$(power x 1)" OK
	expect "reads back after power 0/1" cmp -s /tmp/rdif_dio.data <(dd if=/dev/x bs=1M skip=2 count=4 status=none)
	cfs_unload
	losetup -d "$loop"
	rm -f /tmp/rdif_loop.img /tmp/rdif_dio.data
}

# Data in one file, metadata and journal on a loop device of their own.
meta_device() {
	local loop mark
	cfs_load
	rm -f $IMG /tmp/rdif_meta.img
	truncate -s 8M /tmp/rdif_meta.img
	loop=$(losetup -f --show /tmp/rdif_meta.img) || { skip_case "no loop device"; }
	mkdev s $IMG csum=crc16 blocksize=512 metadata_size=16 pi_offset=8
	expect "meta_device" eq meta "$(cfs_write $CFS/s/meta_device "$loop")" OK
	expect "unformatted metadata device refused" eq power "$(power s 1)" EINVAL
	expect "format" eq format "$(cfs_write $CFS/s/format 1)" OK
	require "power on" eq power "$(power s 1)" OK
	require "write" write_set /dev/s
	expect "reads back" verify_set /dev/s
	dd if=/dev/s of=/tmp/rdif_s0 bs=64k count=1 iflag=direct status=none
	expect "flush" blockdev --flushbufs /dev/s
	require "power off" eq power "$(power s 0)" OK
	expect "the data file holds the data: 16 MiB after its header" eq size \
		"$(stat -c %s $IMG)" $((16 * MIB + 4096))
	expect "  the written data is there, in place" cmp -s /tmp/rdif_s0 \
		<(dd if=$IMG bs=4096 skip=1 count=16 status=none)
	require "power on" eq power "$(power s 1)" OK
	expect "data and PI survive power 0/1" verify_set /dev/s
	expect "the journal is on meta_device: the data file is not written past the data" eq size \
		"$(stat -c %s $IMG)" $((16 * MIB + 4096))
	require "power off" eq power "$(power s 0)" OK
	# Each part alone, or the parts of two stores, are refused.
	mark=$(dmesg | wc -l)
	cfs_write $CFS/s/meta_device "" >/dev/null
	expect "data file alone: refused" eq power "$(power s 1)" EINVAL
	expect "  saying why" grep -q "one part of a store with its metadata apart" \
		<(dmesg | tail -n +$((mark + 1)))
	rm -f /tmp/rdif_other.img
	mkdev o /tmp/rdif_other.img csum=crc16 blocksize=512 metadata_size=16 pi_offset=8
	require "another store" eq power "$(power o 1)" OK
	require "power off" eq power "$(power o 0)" OK
	cfs_write $CFS/s/backing /tmp/rdif_other.img >/dev/null
	cfs_write $CFS/s/meta_device "$loop" >/dev/null
	expect "another store's data file: refused" eq power "$(power s 1)" EINVAL
	expect "  saying why" grep -q "meta_device holds a store of its own\|not the data file" \
		<(dmesg | tail -n +$((mark + 1)))
	cfs_write $CFS/s/backing $IMG >/dev/null
	cfs_write $CFS/s/meta_device $IMG >/dev/null
	expect "itself as meta_device: refused" eq power "$(power s 1)" EINVAL
	cfs_write $CFS/s/meta_device "$loop" >/dev/null
	expect "the right pair still powers on" eq power "$(power s 1)" OK
	expect "  with its contents" verify_set /dev/s
	require "power off" eq power "$(power s 0)" OK
	cfs_unload
	losetup -d "$loop"
	rm -f /tmp/rdif_meta.img /tmp/rdif_other.img $IMG
}

# Bad meta_device settings.
meta_device_bad() {
	cfs_load
	rm -f $IMG /tmp/rdif_meta.img
	mkdir -p $CFS/b
	expect "relative path refused" eq meta "$(cfs_write $CFS/b/meta_device tmp/x)" EINVAL
	expect "meta_device without backing: refused" eq power \
		"$(cfs_write $CFS/b/meta_device /tmp/rdif_meta.img; cfs_write $CFS/b/power 1)" "OK
EINVAL"
	cfs_write $CFS/b/backing $IMG >/dev/null
	cfs_write $CFS/b/csum none >/dev/null
	expect "a format without metadata: refused" eq power "$(power b 1)" EINVAL
	cfs_write $CFS/b/csum crc16 >/dev/null
	cfs_write $CFS/b/lower /dev/null >/dev/null
	expect "with lower: refused" eq power "$(power b 1)" EINVAL
	cfs_write $CFS/b/lower "" >/dev/null
	expect "new pair of files: powers on" eq power "$(power b 1)" OK
	expect "meta_device refused while powered" eq meta \
		"$(cfs_write $CFS/b/meta_device /tmp/x)" EBUSY
	expect "meta_device shows" eq meta "$(cat $CFS/b/meta_device)" /tmp/rdif_meta.img
	expect "write" write_set /dev/b
	require "power off" eq power "$(power b 0)" OK
	require "power on" eq power "$(power b 1)" OK
	expect "new pair of files keeps its contents" verify_set /dev/b
	cfs_unload
	truncate -s 4096 /tmp/rdif_meta.img
	cfs_load
	mkdev b $IMG csum=crc16
	cfs_write $CFS/b/meta_device /tmp/rdif_meta.img >/dev/null
	expect "truncated meta_device: refused" eq power "$(power b 1)" EINVAL
	cfs_unload
	rm -f $IMG /tmp/rdif_meta.img
}

[ -x "$PI" ] || ktap_skip_all "rdif_pi not built"
# One-shot write rules on a file store, with and without its journal: a
# lost write is acknowledged and not stored, a misdirected one lands at its
# target; each rule takes effect exactly once (its counter moves by one,
# it is gone, the next write lands), and what it left survives a power
# cycle.
one_shot_rules() {
	local j x=40 t=60 d=/tmp/rdif_os
	cfs_load
	mount_debugfs || { case_fail "debugfs"; return 1; }
	for j in 1 0; do
		rm -f $IMG
		mkdev os $IMG csum=crc16 blocksize=4096 journal=$j
		require "power on (journal $j)" eq power "$(power os 1)" OK
		head -c 4096 /dev/urandom >$d.a
		head -c 4096 /dev/urandom >$d.b
		dd if=$d.a of=/dev/os bs=4096 seek=$x oflag=direct conv=notrunc status=none
		dd if=$d.a of=/dev/os bs=4096 seek=$t oflag=direct conv=notrunc status=none
		inj os "lost $x 1"
		expect "journal $j: lost write acknowledged" dd if=$d.b of=/dev/os bs=4096 seek=$x \
			oflag=direct conv=notrunc status=none
		expect "journal $j: inj_lost once" eq inj_lost "$(cnt os inj_lost)" 1
		expect "journal $j: lost rule used up" eq armed "$(cat $DBG/os/inject)" ""
		expect "journal $j: old data, good PI" cmp -s $d.a \
			<(dd if=/dev/os bs=4096 skip=$x count=1 iflag=direct status=none)
		inj os "misdirect $t $x 1"
		expect "journal $j: misdirected write acknowledged" dd if=$d.b of=/dev/os bs=4096 \
			seek=$x oflag=direct conv=notrunc status=none
		expect "journal $j: inj_misdirected once" eq inj_misdirected \
			"$(cnt os inj_misdirected)" 1
		expect "journal $j: misdirect rule used up" eq armed "$(cat $DBG/os/inject)" ""
		expect "journal $j: its own place kept the old data" cmp -s $d.a \
			<(dd if=/dev/os bs=4096 skip=$x count=1 iflag=direct status=none)
		expect "journal $j: the target fails its ref tag check" eq rc \
			"$(pi_rc read /dev/os $((t * 4096)) 4096 --chk ref)" "$EILSEQ"
		expect "journal $j: the next write lands" dd if=$d.b of=/dev/os bs=4096 seek=$x \
			oflag=direct conv=notrunc status=none
		require "journal $j: power cycle" eq cycle "$(power os 0)$(power os 1)" OKOK
		expect "journal $j: the last write survived" cmp -s $d.b \
			<(dd if=/dev/os bs=4096 skip=$x count=1 iflag=direct status=none)
		require "power off" eq power "$(power os 0)" OK
		rmdir $CFS/os
	done
	cfs_unload
}

ktap_run_cases regular_file module_reload mismatch_refused loop_device meta_device meta_device_bad \
	rejected_write_changes_nothing flush_and_fua_reach_the_medium \
	flush_and_fua_reach_the_medium_meta_device journal_wraps no_journal direct_io one_shot_rules \
	persist_across_boot
