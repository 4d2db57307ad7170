#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# File systems on top of rdif: XFS and ext4, each on a CRC16 Type 1 (8-byte
# PI) and a CRC64 NVMe (16-byte PI) device with 4096-byte blocks.
#
#   files         mkfs, write files, remount, drop caches, read them back
#                 identical (buffered and O_DIRECT), the PI stored under a
#                 file is valid Type 1 PI, fsck is clean.
#   uring_guard   the guard of the interval under a file's first block is
#                 spoiled by an unchecked io_uring PI write (data kept).
#   inject_guard  the same through rdif's debugfs injection
#                 (/sys/kernel/debug/rdif/rdif0/inject: corrupt guard I).
#   inject_data   a data byte of that interval is flipped (corrupt data I).
#
# In every corruption case, after remounting: a buffered read of the file
# fails with EIO (the page cache turns any failed read into EIO), an
# O_DIRECT read of its first block with EILSEQ (BLK_STS_PROTECTION), the
# rest of the file and another file read back fine, and the kernel log has
# the protection error. With /sys/block/rdif0/integrity/read_verify=0 (and
# the device's read_check=0, the default) the file reads without error --
# the original data when only PI was spoiled -- and with read_verify=1 it
# fails again. Rewriting the block through the file system heals it; fsck
# stays clean (only file data was hit).
#
# Who catches it differs. XFS (7.3) attaches PI to its data I/O itself,
# through iomap (IOMAP_F_INTEGRITY, block/bio-integrity-fs.c), with guard
# and ref check flags; rdif, like an NVMe drive honouring PRCHK, checks
# such a submitter's payload and fails the read ("protection error, dev
# rdif0" from blk-mq; XFS's own verification never runs). ext4 relies on
# the block layer's auto-PI, which the device leaves to the kernel to
# verify after completion ("rdif0: guard tag error" from t10-pi.c). Both
# honour write_generate/read_verify: both attach PI through
# bio_integrity_action().
#
# Uses rdif_pi (phys: FIEMAP; write --data-in --corrupt). mkfs.xfs (6.1,
# bookworm) refuses file systems below 300 MB: the devices are 512 MiB
# (memory is only used where written).
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
PI=$RDIF_TESTS_DIR/rdif_pi
DEV=/dev/rdif0
SYS=/sys/block/rdif0
DBGFS=/sys/kernel/debug
DBG=$DBGFS/rdif/rdif0
MNT=/tmp/rdif_fs_mnt
WORK=/tmp/rdif_fs_work
IV=4096
SIZE_MIB=512

# name | module parameters
FORMATS=(
	"crc16|csum=crc16 blocksize=4096"
	"crc64|csum=crc64 blocksize=4096"
)
FILESYSTEMS=(xfs ext4)

# Test files: name and size. f1 is the one corrupted, f2 the bystander.
FILES=(
	"f1 $((3 * MIB))"
	"f2 $((2 * MIB + 517))"
	"f3 $((200 * 1024 + 1))"
	"sub/f4 $((1 * MIB))"
)

field() { echo "$1" | cut -d'|' -f"$2"; }

fs_mkfs() {
	case $1 in
	xfs) mkfs.xfs -f -q $DEV ;;
	ext4) mkfs.ext4 -F -q -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 $DEV ;;
	esac
}

fs_mount() { mount -t "$1" $DEV $MNT; }

fs_umount() { umount $MNT; }

# fs_fsck FS: a read-only check; its output only on failure.
fs_fsck() {
	local out rc
	case $1 in
	xfs) out=$(xfs_repair -n $DEV 2>&1) ;;
	ext4) out=$(e2fsck -fn $DEV 2>&1) ;;
	esac
	rc=$?
	[ $rc = 0 ] || { echo "$out" | tail -20; echo "fsck exit $rc"; }
	return $rc
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

set_read_verify() { echo "$1" >$SYS/integrity/read_verify; }

# The kernel log's PI failures for rdif0: found by the kernel's own
# verification (t10-pi.c: "rdif0: guard tag error at sector ..."), or
# reported by the device (blk-mq: "protection error, dev rdif0, ...").
SW_PI_ERR='rdif0: \(guard\|ref\|app\) tag error'
DEV_PI_ERR='protection error, dev rdif0'
log_count() { dmesg | grep -c "$1"; }

# read_err FILE [DD-ARGS...]: read FILE with dd; print OK, or the errno's
# name if it failed.
read_err() {
	local f=$1 err
	shift
	if err=$(dd if="$f" of=/dev/null status=none "$@" 2>&1); then
		echo OK
		return
	fi
	case $err in
	*"Input/output error"*) echo EIO ;;
	*"Invalid or incomplete multibyte"* | *"Illegal byte sequence"*) echo EILSEQ ;;
	*) echo "other error: $err" ;;
	esac
}

# write_files: the test files, random data; their md5sums go to $WORK/md5
# and a copy of f1 to $WORK/f1.
write_files() {
	local f
	mkdir -p $MNT/sub || return 1
	local name size
	for f in "${FILES[@]}"; do
		read -r name size <<<"$f"
		head -c "$size" /dev/urandom >"$MNT/$name" || return 1
	done
	cp $MNT/f1 $WORK/f1 &&
		(cd $MNT && md5sum "${FILES[@]%% *}") >$WORK/md5
}

# check_files [NAME...]: the named files (default: all) read back as written.
check_files() {
	if [ $# = 0 ]; then
		(cd $MNT && md5sum -c --quiet $WORK/md5)
	else
		local n
		for n in "$@"; do
			grep " $n\$" $WORK/md5
		done | (cd $MNT && md5sum -c --quiet -)
	fi
}

# diff_bytes f1: how many bytes of f1 differ from the copy in $WORK, and how
# many of those lie past its first block
diff_bytes() {
	cmp -l "$WORK/$1" "$MNT/$1" | awk -v iv=$IV '{ n++; if ($1 > iv) past++ } END { print n + 0, past + 0 }'
}

# md5_of FILE: the md5sum recorded for FILE
md5_of() { awk -v n="$1" '$2 == n { print $1 }' $WORK/md5; }

# fs_start FS PARAMS: load rdif with PARAMS, mkfs FS, mount it.
fs_start() {
	local fs=$1 params=$2
	command -v "mkfs.$fs" >/dev/null || skip_case "mkfs.$fs not installed"
	require "clean start" rdif_clean_start
	mountpoint -q $MNT && umount $MNT
	mkdir -p $MNT $WORK
	rm -rf "${WORK:?}"/*
	trap fs_cleanup EXIT
	# shellcheck disable=SC2086
	require "insmod size=$SIZE_MIB $params" rdif_insmod size=$SIZE_MIB $params
	require "device has an integrity profile" test -s $SYS/integrity/format
	echo "$(cat $SYS/integrity/format), logical block $(lbs rdif0)," \
		"write_generate=$(cat $SYS/integrity/write_generate)" \
		"read_verify=$(cat $SYS/integrity/read_verify)"
	require "mkfs.$fs" fs_mkfs "$fs"
	require "mount $fs" fs_mount "$fs"
}

# fs_cleanup: whatever state a case ends in, leave nothing behind.
fs_cleanup() {
	[ -w $DBG/inject ] && echo clear >$DBG/inject 2>/dev/null
	if mountpoint -q $MNT; then
		umount $MNT 2>/dev/null || umount -l $MNT
	fi
	rdif_rmmod >/dev/null 2>&1
	rm -rf $WORK
}

fs_finish() {
	local fs=$1
	require "umount" fs_umount
	expect "$fs fsck clean" fs_fsck "$fs"
	require "rmmod" rdif_rmmod
}

# pi_of_block OFFSET: the device's stored PI of the interval at OFFSET
# ("guard=... app=... ref=..."), read with the device checking it.
pi_of_block() {
	"$PI" read $DEV "$1" $IV --chk guard,ref --dump | grep -o 'guard=[0-9a-f]* app=[0-9a-f]* ref=[0-9a-f]*'
}

fs_files() {
	local fs=$1 params=$2 errs phys pi ref
	fs_start "$fs" "$params"
	case $fs in
	xfs) expect "XFS uses 4096-byte sectors" eval "xfs_info $MNT | grep -q 'sectsz=4096'" ;;
	ext4) expect "ext4 uses 4096-byte blocks" eval "dumpe2fs -h $DEV 2>/dev/null | grep -q '^Block size: *4096'" ;;
	esac
	errs="$(log_count "$SW_PI_ERR") $(log_count "$DEV_PI_ERR")"
	require "write files" write_files
	sync
	expect "files read back before remount" check_files
	phys=$("$PI" phys $MNT/f1)
	require "FIEMAP finds f1's first extent" test -n "$phys"
	require "unmount" fs_umount
	# The PI the file system wrote under f1 is valid, and not escape:
	# application tag 0, reference tag the physical interval.
	pi=$(pi_of_block "$phys")
	expect "device accepts the stored PI of f1's first block (guard, ref checked)" test -n "$pi"
	echo "f1 at byte $phys (interval $((phys / IV))): $pi"
	ref=$(echo "$pi" | sed -n 's/.*ref=\([0-9a-f]*\).*/\1/p')
	expect "app tag 0" eq "app tag" "$(echo "$pi" | sed -n 's/.*app=\([0-9a-f]*\).*/\1/p')" \
		"$(printf '%04x' 0)"
	expect "ref tag = physical interval" eq "ref tag" "$((16#${ref:-0}))" "$((phys / IV))"
	require "mount again" fs_mount "$fs"
	drop_caches
	expect "files read back identical after remount and drop_caches" check_files
	expect "O_DIRECT read of f2 identical" eq "f2 O_DIRECT md5" \
		"$(dd if=$MNT/f2 iflag=direct bs=1M status=none | md5sum | cut -d' ' -f1)" "$(md5_of f2)"
	expect "no PI errors in the kernel log" eq "PI errors" \
		"$(log_count "$SW_PI_ERR") $(log_count "$DEV_PI_ERR")" "$errs"
	fs_finish "$fs"
}

# Corruption sources. Both change the stored bytes of one interval.
#
# corrupt_uring FIELD I: rewrite interval I with its own data and PI that
# rdif_pi generates and then spoils (guard: the stored guard is wrong, the
# data intact; data: a data byte is flipped under PI for the original
# data), through io_uring without check flags, so the device stores it.
corrupt_uring() {
	dd if=$DEV of=$WORK/blk bs=$IV skip="$2" count=1 iflag=direct status=none || return 1
	"$PI" write $DEV $(($2 * IV)) $IV --data-in $WORK/blk --corrupt "$1"
}

# corrupt_inject FIELD I: rdif's debugfs fault injection.
corrupt_inject() {
	mountpoint -q $DBGFS || mount -t debugfs none $DBGFS
	if ! [ -e $DBG/inject ]; then
		echo "$DBG/inject: No such file (this rdif.ko has no fault injection)"
		return 1
	fi
	local before after
	before=$(stat_of inj_corrupt)
	echo "corrupt $1 $2" >$DBG/inject || return 1
	after=$(stat_of inj_corrupt)
	echo "inj_corrupt: $before -> $after"
	[ "${after:-0}" -gt "${before:-0}" ] ||
		{ echo "inj_corrupt did not increase ($before -> $after)"; return 1; }
}

# stat_of NAME: a counter of /sys/kernel/debug/rdif/rdif0/stats (empty if
# there is none)
stat_of() { awk -v n="$1" '$1 == n { print $2 }' $DBG/stats 2>/dev/null; }

fs_corrupt() {
	local fs=$1 params=$2 how=$3 what=$4 phys i sw dev dev_chk
	fs_start "$fs" "$params"
	require "write files" write_files
	sync
	phys=$("$PI" phys $MNT/f1)
	require "FIEMAP finds f1's first extent" test -n "$phys"
	i=$((phys / IV))
	echo "f1's first block: byte $phys, interval $i"
	require "unmount" fs_umount

	require "corrupt $what of interval $i ($how)" "corrupt_$how" "$what" "$i"
	require "mount again" fs_mount "$fs"
	drop_caches
	sw=$(log_count "$SW_PI_ERR")
	dev=$(log_count "$DEV_PI_ERR")
	dev_chk=$(stat_of guard_errors_read)

	expect "buffered read of f1 fails with EIO" eq "buffered read" \
		"$(read_err $MNT/f1 bs=1M)" EIO
	expect "O_DIRECT read of f1's first block fails with EILSEQ" eq "O_DIRECT read" \
		"$(read_err $MNT/f1 bs=$IV count=1 iflag=direct)" EILSEQ
	expect "the rest of f1 reads (O_DIRECT, from its second block)" eq "rest of f1" \
		"$(read_err $MNT/f1 bs=$IV skip=1 iflag=direct)" OK
	expect "f2 reads back identical" check_files f2
	sw=$(($(log_count "$SW_PI_ERR") - sw))
	dev=$(($(log_count "$DEV_PI_ERR") - dev))
	echo "kernel log: $sw PI verification failures, $dev device protection errors:"
	dmesg | grep "$SW_PI_ERR\|$DEV_PI_ERR" | tail -3
	[ "$how" = inject ] &&
		echo "device read-check failures (guard_errors_read): $dev_chk -> $(stat_of guard_errors_read)"
	case $fs in
	xfs)
		# XFS's own PI payload asks for guard and ref checks: the
		# device checks them (as NVMe PRCHK would) and fails the read
		# before XFS would verify.
		expect "the device reported a protection error" test "$dev" -gt 0
		if [ "$how" = inject ]; then
			expect "device read check counted (guard_errors_read)" \
				test "$(stat_of guard_errors_read)" -gt "${dev_chk:-0}"
		fi
		;;
	ext4)
		# The block layer's auto-PI buffer: the device leaves it to the
		# kernel's verification (kintegrityd) after completion.
		expect "the kernel's PI verification reported a guard tag error" \
			test "$sw" -gt 0
		;;
	esac

	# read_verify=0: nobody checks (read_check=0), the read succeeds.
	set_read_verify 0
	drop_caches
	expect "read_verify=0: f1 reads without error" eq "unverified read" \
		"$(read_err $MNT/f1 bs=1M)" OK
	if [ "$what" = data ]; then
		expect "read_verify=0: f1 differs in one byte, in its first block" \
			eq "differing bytes (all, past the first block)" "$(diff_bytes f1)" "1 0"
	else
		expect "read_verify=0: f1 reads its original data" check_files f1
	fi
	set_read_verify 1
	drop_caches
	expect "read_verify=1 again: f1 fails again" eq "verified read" \
		"$(read_err $MNT/f1 bs=1M)" EIO

	# Rewriting the block through the file system heals it.
	expect "rewrite f1's first block" dd if=$WORK/f1 of=$MNT/f1 bs=$IV count=1 \
		conv=notrunc oflag=direct status=none
	drop_caches
	expect "f1 reads back identical after the rewrite" check_files f1
	expect "f1 still at interval $i (rewritten in place)" eq "f1 location" \
		"$("$PI" phys $MNT/f1)" "$phys"
	fs_finish "$fs"
}

cases=()
for fs in "${FILESYSTEMS[@]}"; do
	for p in "${FORMATS[@]}"; do
		fmt=$(field "$p" 1)
		params=$(field "$p" 2)
		eval "${fs}_${fmt}_files() { fs_files $fs '$params'; }"
		eval "${fs}_${fmt}_uring_guard() { fs_corrupt $fs '$params' uring guard; }"
		eval "${fs}_${fmt}_inject_guard() { fs_corrupt $fs '$params' inject guard; }"
		eval "${fs}_${fmt}_inject_data() { fs_corrupt $fs '$params' inject data; }"
		cases+=("${fs}_${fmt}_files" "${fs}_${fmt}_uring_guard"
			"${fs}_${fmt}_inject_guard" "${fs}_${fmt}_inject_data")
	done
done
[ -x "$PI" ] || ktap_skip_all "rdif_pi not built"
# make check: each file system and format, a file workload and each way of
# corrupting (io_uring PI, injected guard, injected data) once.
SAMPLE="xfs_crc16_files xfs_crc64_uring_guard ext4_crc16_inject_guard ext4_crc64_inject_data"
mapfile -t cases < <(sample "${cases[@]}")
ktap_run_cases "${cases[@]}"
