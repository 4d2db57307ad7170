#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Pass-through (configfs `lower`): rdif forwards each request, data and
# integrity payload, to a lower device with an integrity profile.
# - over scsi_debug dif=1 dix=1 and over another rdif device: the profile
#   is the lower device's, PI written with io_uring reads back identical
#   through rdif and straight from the lower device, and a write without
#   PI gets PI further down;
# - injections act in flight: a guard, ref, app tag or data byte spoilt on
#   the way down is rejected by the lower device (EILSEQ) and changes
#   nothing there; a persistent corruption spoils reads on the way up; a
#   misdirected write is caught by the lower device's ref tag check; a
#   lost write is acknowledged and not sent; `fail` fails before sending;
# - the lower device's errors come back unchanged (EIO, EILSEQ);
# - bad input: no integrity profile, another profile, not a block device,
#   rdif over itself, a lower device in use, backing and lower both set:
#   power 1 fails with EINVAL (or EBUSY) and a log line, nothing changes;
# - the lower device going away while powered: I/O fails, one log line,
#   power 0 and rmdir work.
#
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
EILSEQ=84
EIO=5


start() {
	cfs_load
	[ -d $DBG ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	require "debugfs" test -d $DBG
}

# power_rc NAME ATTR=VALUE...: configure NAME, then print what power 1 says
power_rc() {
	local d=$CFS/$1 a
	shift
	mkdir -p "$d"
	for a in "$@"; do
		cfs_write "$d/${a%%=*}" "${a#*=}" >/dev/null
	done
	cfs_write "$d"/power 1
}

# roundtrip DEV LOWER: PI written through DEV reads back identical through
# DEV and from LOWER
roundtrip() {
	# The app tag tells the submitter's PI from PI made further down.
	expect "write with PI through $1" eq rc "$(pi_rc write "/dev/$1" 0 65536 --chk guard,ref \
		--app-tag 0x5a5a --pattern 7)" 0
	expect "read through $1, checked" eq rc "$(pi_rc read "/dev/$1" 0 65536 --chk guard,ref \
		--app-tag 0x5a5a --pattern 7 --verify --pi-out /tmp/rdif_pi_up)" 0
	expect "read from $2, checked" eq rc "$(pi_rc read "/dev/$2" 0 65536 --chk guard,ref \
		--app-tag 0x5a5a --pattern 7 --verify --pi-out /tmp/rdif_pi_low)" 0
	expect "PI identical through $1 and on $2" cmp -s /tmp/rdif_pi_up /tmp/rdif_pi_low
	expect "PI not empty" test "$(stat -c %s /tmp/rdif_pi_up)" = 1024
	# At an offset whose ref tags are not 0.
	expect "write at 1 MiB" eq rc "$(pi_rc write "/dev/$1" $MIB 8192 --chk guard,ref \
		--pattern 8)" 0
	expect "read at 1 MiB from $2" eq rc "$(pi_rc read "/dev/$2" $MIB 8192 --chk guard,ref \
		--pattern 8 --verify)" 0
}

scsi_profile() {
	start
	scsi_start
	cfs_mkdev pt lower=/dev/$SD
	expect "profile from the lower device" eq format "$(cat /sys/block/pt/integrity/format)" \
		"$(cat /sys/block/$SD/integrity/format)"
	expect "T10 Type 1 CRC" eq format "$(cat /sys/block/pt/integrity/format)" T10-DIF-TYPE1-CRC
	expect "size of the lower device" eq size "$(sectors pt)" "$(sectors "$SD")"
	expect "the lower device is held" test -e "/sys/block/$SD/holders/pt" -o \
		"$(cfs_write $CFS/pt/lower /dev/null)" = EBUSY
	expect "lower shows" eq lower "$(cat $CFS/pt/lower)" "/dev/$SD"
	cfs_unload
	scsi_stop
}

scsi_roundtrip() {
	start
	scsi_start
	cfs_mkdev pt lower=/dev/$SD
	roundtrip pt "$SD"
	# A write without PI: the block layer or the lower device makes it.
	echo 0 >/sys/block/pt/integrity/write_generate
	dd if=/dev/urandom of=/tmp/rdif_plain bs=4096 count=4 status=none
	expect "plain write" dd if=/tmp/rdif_plain of=/dev/pt bs=4096 seek=64 oflag=direct \
		status=none
	expect "plain read back" cmp -s /tmp/rdif_plain \
		<(dd if=/dev/pt bs=4096 skip=64 count=4 iflag=direct status=none)
	expect "and its PI verifies on the lower device" \
		dd if=/dev/$SD of=/dev/null bs=4096 skip=64 count=4 iflag=direct status=none
	echo 1 >/sys/block/pt/integrity/write_generate
	cfs_unload
	scsi_stop
}

# The lower device rejects each field spoilt on the way down.
scsi_inflight() {
	start
	scsi_start
	cfs_mkdev pt lower=/dev/$SD
	expect "write" eq rc "$(pi_rc write /dev/pt 0 16384 --chk guard,ref --pattern 1)" 0
	local f
	for f in guard ref data; do
		inj pt corrupt $f 3 1 write
		expect "armed: $f" eq rule "$(cat $DBG/pt/inject)" "corrupt $f 3 1 write"
		expect "$f spoilt on the way down: lower device says EILSEQ" eq rc \
			"$(pi_rc write /dev/pt 0 16384 --chk guard,ref --pattern 2)" $EILSEQ
		expect "rule used up" eq rule "$(cat $DBG/pt/inject)" ""
		expect "nothing of it on the lower device? old data intact at 3" eq rc \
			"$(pi_rc read /dev/$SD 1536 512 --chk guard,ref --pattern 1 --verify)" 0
	done
	expect "three spoilt" eq n "$(cnt pt inj_corrupt)" 3
	expect "unharmed writes go through" eq rc \
		"$(pi_rc write /dev/pt 0 16384 --chk guard,ref --pattern 2)" 0
	expect "and read back" eq rc "$(pi_rc read /dev/$SD 0 16384 --chk guard,ref --pattern 2 \
		--verify)" 0
	inj pt corrupt guard 40 1 write
	expect "spoilt on a later write" eq rc \
		"$(pi_rc write /dev/pt $((40 * 512)) 512 --chk guard,ref --pattern 3)" $EILSEQ
	expect "the same buffer again goes through" eq rc \
		"$(pi_rc write /dev/pt $((40 * 512)) 512 --chk guard,ref --pattern 3)" 0
	cfs_unload
	scsi_stop
}

# Spoiling reads on the way up where the lower device completes in
# interrupt context.
scsi_read_up() {
	start
	scsi_start
	cfs_mkdev pt lower=/dev/$SD read_check=1
	expect "write" eq rc "$(pi_rc write /dev/pt 0 16384 --chk guard,ref --pattern 1)" 0
	inj pt corrupt guard 2 1 persistent
	inj pt corrupt data 5 1 persistent
	expect "spoilt guard comes up: EILSEQ" not \
		dd if=/dev/pt of=/dev/null bs=512 skip=2 count=1 iflag=direct status=none
	expect "spoilt data comes up: EILSEQ" not \
		dd if=/dev/pt of=/dev/null bs=512 skip=5 count=1 iflag=direct status=none
	expect "rdif's read check counted them" eq n "$(cnt pt guard_errors_read)" 2
	echo 0 >/sys/block/pt/integrity/read_verify
	expect "without payload too" not \
		dd if=/dev/pt of=/dev/null bs=512 skip=2 count=1 iflag=direct status=none
	expect "  counted" eq n "$(cnt pt guard_errors_read)" 3
	expect "  the rest reads" dd if=/dev/pt of=/dev/null bs=512 skip=6 count=26 iflag=direct \
		status=none
	echo 1 >/sys/block/pt/integrity/read_verify
	expect "the rest reads" dd if=/dev/pt of=/dev/null bs=512 skip=6 count=26 iflag=direct \
		status=none
	expect "the lower device holds them intact" eq rc "$(pi_rc read /dev/$SD 0 16384 \
		--chk guard,ref --pattern 1 --verify)" 0
	inj pt clear
	expect "cleared: all reads" eq rc "$(pi_rc read /dev/pt 0 16384 --chk guard,ref --pattern 1 \
		--verify)" 0
	cfs_unload
	scsi_stop
}

rdif_over_rdif() {
	start
	cfs_mkdev lo size=32 csum=crc16
	cfs_mkdev pt lower=/dev/lo
	expect "profile" eq format "$(cat /sys/block/pt/integrity/format)" T10-DIF-TYPE1-CRC
	roundtrip pt lo
	# The app tag, checked by the lower device.
	expect "write with app tag" eq rc "$(pi_rc write /dev/pt 8192 4096 --chk guard,ref,app \
		--app-tag 0x1234 --pattern 4)" 0
	expect "read with app tag from lo" eq rc "$(pi_rc read /dev/lo 8192 4096 \
		--chk guard,ref,app --app-tag 0x1234 --pattern 4 --verify)" 0
	inj pt corrupt app 17 1 write
	expect "app tag spoilt on the way down: EILSEQ" eq rc "$(pi_rc write /dev/pt 8192 4096 \
		--chk guard,ref,app --app-tag 0x1234 --pattern 5)" $EILSEQ
	expect "lower counted an app tag error" eq n "$(cnt lo app_errors_write)" 1
	# The 64 intervals of each of the two data checks went through lo.
	expect "lo checked the writes" test "$(cnt lo checked_write)" -ge 128
	cfs_unload
}

# Persistent corruption on the way up, caught by the block layer or by
# rdif's own check.
read_up() {
	start
	cfs_mkdev lo size=32 csum=crc16
	cfs_mkdev pt lower=/dev/lo
	expect "write" eq rc "$(pi_rc write /dev/pt 0 8192 --chk guard,ref --pattern 1)" 0
	inj pt corrupt ref 5 1 persistent
	expect "user PI read with checks: EILSEQ" eq rc "$(pi_rc read /dev/pt 0 8192 \
		--chk guard,ref --pattern 1 --verify)" $EILSEQ
	expect "auto-PI read: block layer says EILSEQ" not \
		dd if=/dev/pt of=/dev/null bs=512 skip=5 count=1 iflag=direct status=none
	expect "the interval next to it reads" \
		dd if=/dev/pt of=/dev/null bs=512 skip=4 count=1 iflag=direct status=none
	expect "the lower device is unharmed" eq rc "$(pi_rc read /dev/lo 0 8192 --chk guard,ref \
		--pattern 1 --verify)" 0
	inj pt clear
	inj pt corrupt data 2 1 persistent
	echo 0 >/sys/block/pt/integrity/read_verify
	expect "no check: the spoilt byte comes up" not cmp -s \
		<(dd if=/dev/pt bs=512 skip=2 count=1 iflag=direct status=none) \
		<(dd if=/dev/lo bs=512 skip=2 count=1 iflag=direct status=none)
	echo 1 >/sys/block/pt/integrity/read_verify
	expect "read_verify catches it" not \
		dd if=/dev/pt of=/dev/null bs=512 skip=2 count=1 iflag=direct status=none
	inj pt clear
	expect "clear: reads again" \
		dd if=/dev/pt of=/dev/null bs=4096 count=2 iflag=direct status=none
	cfs_unload
	# rdif's own device check on the way up (read_check).
	start
	cfs_mkdev lo size=32 csum=crc16
	cfs_mkdev pt lower=/dev/lo read_check=1
	expect "write" eq rc "$(pi_rc write /dev/pt 0 4096 --pattern 1 --chk guard,ref)" 0
	inj pt corrupt guard 1 1 persistent
	# rdif checks what a read brings up in its payload (read_verify gives
	# every read one), before the block layer verifies it.
	expect "read_check: EILSEQ" not \
		dd if=/dev/pt of=/dev/null bs=4096 count=1 iflag=direct status=none
	expect "counted by rdif" eq n "$(cnt pt guard_errors_read)" 1
	expect "user PI read without checks: rdif's check says EILSEQ" eq rc \
		"$(pi_rc read /dev/pt 0 4096)" $EILSEQ
	expect "counted again" eq n "$(cnt pt guard_errors_read)" 2
	# Without a payload rdif reads the PI into a buffer of its own.
	echo 0 >/sys/block/pt/integrity/read_verify
	expect "read without payload: rdif's check says EILSEQ" not \
		dd if=/dev/pt of=/dev/null bs=4096 count=1 iflag=direct status=none
	expect "counted a third time" eq n "$(cnt pt guard_errors_read)" 3
	inj pt clear
	inj pt corrupt data 3 1 persistent
	expect "a spoilt data byte too" not \
		dd if=/dev/pt of=/dev/null bs=4096 count=1 iflag=direct status=none
	expect "counted" eq n "$(cnt pt guard_errors_read)" 4
	inj pt clear
	expect "cleared: reads" dd if=/dev/pt of=/dev/null bs=4096 count=1 iflag=direct status=none
	expect "unwritten (escape) intervals read" \
		dd if=/dev/pt of=/dev/null bs=4096 skip=100 count=4 iflag=direct status=none
	inj lo corrupt guard 2
	expect "corruption stored in the lower device: caught by rdif" not \
		dd if=/dev/pt of=/dev/null bs=4096 count=1 iflag=direct status=none
	expect "counted" eq n "$(cnt pt guard_errors_read)" 5
	cfs_unload
}

misdirect_lost_fail() {
	start
	cfs_mkdev lo size=32 csum=crc16
	cfs_mkdev pt lower=/dev/lo
	expect "write" eq rc "$(pi_rc write /dev/pt 0 65536 --chk guard,ref --pattern 1)" 0
	inj pt misdirect 100 3 1
	expect "misdirected: lower's ref tag check says EILSEQ" eq rc \
		"$(pi_rc write /dev/pt 1536 512 --chk guard,ref --pattern 2)" $EILSEQ
	expect "lower counted a ref error" eq n "$(cnt lo ref_errors_write)" 1
	expect "counted" eq n "$(cnt pt inj_misdirected)" 1
	inj pt lost 4 1
	expect "lost write acknowledged" eq rc \
		"$(pi_rc write /dev/pt 2048 512 --chk guard,ref --pattern 3)" 0
	expect "and not on the lower device" eq rc "$(pi_rc read /dev/lo 2048 512 --chk guard,ref \
		--pattern 1 --verify)" 0
	inj pt fail write 1 ioerr
	expect "fail write: EIO" eq rc "$(pi_rc write /dev/pt 0 512 --chk guard,ref)" $EIO
	inj pt fail read 1 protection
	expect "fail read: EILSEQ" eq rc "$(pi_rc read /dev/pt 0 512 --chk guard,ref)" $EILSEQ
	expect "one-shot store corruption refused" eq inject \
		"$( (echo corrupt guard 1 >$DBG/pt/inject) 2>&1 | grep -c 'Invalid argument')" 1
	expect "write corruption refused without lower" eq inject \
		"$( (echo corrupt guard 1 1 write >$DBG/lo/inject) 2>&1 | grep -c 'Invalid argument')" 1
	cfs_unload
}

# The lower device's own errors come back as they are.
lower_errors() {
	start
	cfs_mkdev lo size=32 csum=crc16
	cfs_mkdev pt lower=/dev/lo
	inj lo fail write 1 ioerr
	expect "lower EIO on write" eq rc "$(pi_rc write /dev/pt 0 4096 --chk guard,ref)" $EIO
	inj lo fail read 1 protection
	expect "lower EILSEQ on read" eq rc "$(pi_rc read /dev/pt 0 4096)" $EILSEQ
	expect "write" eq rc "$(pi_rc write /dev/pt 0 4096 --chk guard,ref)" 0
	inj lo corrupt guard 3
	expect "lower's stored corruption: EILSEQ through pt" not \
		dd if=/dev/pt of=/dev/null bs=512 skip=3 count=1 iflag=direct status=none
	expect "rewrite heals it" eq rc "$(pi_rc write /dev/pt 0 4096 --chk guard,ref)" 0
	expect "discard passes through" blkdiscard -o 0 -l 65536 /dev/pt
	expect "  and zeroes on the lower device" cmp -s <(head -c 65536 /dev/zero) \
		<(dd if=/dev/lo bs=64k count=1 iflag=direct status=none)
	expect "write-zeroes limit inherited" eq wz \
		"$(cat /sys/block/pt/queue/write_zeroes_max_bytes)" \
		"$(cat /sys/block/lo/queue/write_zeroes_max_bytes)"
	expect "request size inherited" eq max \
		"$(cat /sys/block/pt/queue/max_hw_sectors_kb)" \
		"$(cat /sys/block/lo/queue/max_hw_sectors_kb)"
	expect "flush passes through" sync
	cfs_unload
}

bad_input() {
	start
	local n0
	cfs_mkdev plain size=8 csum=none
	cfs_mkdev md16 size=8 csum=crc16 metadata_size=16
	cfs_mkdev t3 size=8 csum=crc16 ref_tag=0
	cfs_mkdev b4k size=8 csum=crc16 blocksize=4096 interval=512
	n0=$(dmesg | wc -l)
	expect "no profile: EINVAL" eq power "$(power_rc x1 lower=/dev/plain)" EINVAL
	expect "  and says so" bash -c "dmesg | tail -n +$((n0 + 1)) | grep -q 'no integrity profile'"
	expect "other metadata size: EINVAL" eq power "$(power_rc x2 lower=/dev/md16)" EINVAL
	expect "  and says so" bash -c "dmesg | tail -n +$((n0 + 1)) | grep -q 'metadata size differs'"
	expect "Type 3 under Type 1: EINVAL" eq power "$(power_rc x3 lower=/dev/t3)" EINVAL
	expect "larger lower block: EINVAL" eq power "$(power_rc x4 lower=/dev/b4k)" EINVAL
	expect "  and says so" bash -c "dmesg | tail -n +$((n0 + 1)) | grep -q 'block size 4096 is larger'"
	expect "matching profile at 4096: fine" eq power \
		"$(power_rc x5 lower=/dev/b4k blocksize=4096 interval=512)" OK
	cfs_mkdev b4i size=8 csum=crc16 blocksize=4096
	expect "other interval: EINVAL" eq power "$(power_rc x7 lower=/dev/b4i)" EINVAL
	expect "  and says so" bash -c "dmesg | tail -n +$((n0 + 1)) | grep -q 'protection interval differs'"
	: >/tmp/rdif_stack_file
	mkdir -p $CFS/x6
	expect "lower set to a file" eq lower "$(cfs_write $CFS/x6/lower /tmp/rdif_stack_file)" OK
	expect "a regular file: ENOTBLK" eq power \
		"$(cfs_write $CFS/x6/power 1 | grep -c 'Block device required')" 1
	expect "  and says so" bash -c "dmesg | tail -n +$((n0 + 1)) | grep -q 'not a block device'"
	expect "itself: refused" not test "$(power_rc self lower=/dev/self)" = OK
	expect "  and says so" bash -c "dmesg | tail -n +$((n0 + 1)) | grep -q 'lower /dev/self: no such device'"
	cfs_mkdev y1 lower=/dev/t3 ref_tag=0
	expect "in use by another: EBUSY" eq power "$(power_rc y2 lower=/dev/t3 ref_tag=0)" EBUSY
	expect "backing and lower: EINVAL" eq power \
		"$(power_rc y3 lower=/dev/t3 ref_tag=0 backing=/tmp/rdif_stack_img)" EINVAL
	expect "relative path refused" eq lower "$(cfs_write $CFS/y3/lower dev/t3)" EINVAL
	expect "lower refused while powered" eq lower "$(cfs_write $CFS/y1/lower /dev/plain)" EBUSY
	local d
	for d in x1 x2 x3 x4 x6 x7 self y2 y3; do
		expect "$d stays off" eq "$d" "$(cat $CFS/$d/power)" 0
		expect "no /dev/$d" absent /dev/$d
	done
	expect "y1 still works" eq rc "$(pi_rc write /dev/y1 0 4096)" 0
	expect "feature listed" grep -q lower $CFS/features
	cfs_unload
}

# The lower device goes away under a powered pass-through device.
unplug() {
	start
	local n0
	cfs_mkdev lo size=8 csum=crc16
	cfs_mkdev pt lower=/dev/lo
	expect "write" eq rc "$(pi_rc write /dev/pt 0 4096 --chk guard,ref)" 0
	n0=$(dmesg | wc -l)
	expect "lower power 0" eq power "$(cfs_write $CFS/lo/power 0)" OK
	expect "one line says so" eq lines \
		"$(dmesg | tail -n +$((n0 + 1)) | grep -c 'lower device lo is gone')" 1
	expect "I/O through pt fails" not \
		dd if=/dev/pt of=/dev/null bs=4096 count=1 iflag=direct status=none
	expect "writes too" not \
		dd if=/dev/zero of=/dev/pt bs=4096 count=1 oflag=direct status=none
	expect "pt power 0" eq power "$(cfs_write $CFS/pt/power 0)" OK
	expect "lo power 1 again" eq power "$(cfs_write $CFS/lo/power 1)" OK
	expect "pt power 1 again" eq power "$(cfs_write $CFS/pt/power 1)" OK
	wait_for 10 is_blk /dev/pt
	expect "and works" eq rc "$(pi_rc write /dev/pt 0 4096 --chk guard,ref)" 0
	# scsi_debug deleted under I/O: the same.
	scsi_start
	cfs_mkdev ps lower=/dev/$SD
	(pi_rc write /dev/ps 0 65536 --chk guard,ref >/dev/null; while
		dd if=/dev/ps of=/dev/null bs=64k count=16 iflag=direct status=none; do :; done) &
	sleep 1
	echo 1 >"/sys/block/$SD/device/delete"
	expect "reader stops with an error" wait_for 20 not kill -0 $!
	wait
	expect "ps power 0" eq power "$(cfs_write $CFS/ps/power 0)" OK
	expect "rmdir ps" rmdir $CFS/ps
	cfs_unload
	scsi_stop
}

ktap_run_cases scsi_profile scsi_roundtrip scsi_inflight scsi_read_up rdif_over_rdif read_up \
	misdirect_lost_fail lower_errors bad_input unplug
