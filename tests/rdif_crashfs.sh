#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Crash tests of real file systems on a PI disk with a volatile write
# cache: XFS and ext4, each on CRC16 512-byte and CRC64 4096-byte devices
# with cache=1 and read_check=1 (the device checks the stored PI of every
# read, so no torn or mismatched interval reads back unnoticed).
#
# For each seed: mount; rdif_crashfs runs a seeded workload (create,
# rewrite buffered / O_DIRECT / O_DSYNC, rename, unlink, fsync, fdatasync,
# directory fsync, syncfs) and records what it made durable; the file
# medium dies (rdif fails every request from then on, by injection) and
# `powercut random SEED` loses volatile writes; the file system is shut
# down (FS_IOC_SHUTDOWN) and unmounted, the kernel's cache of the device
# dropped, the medium comes back; mount (log recovery), every durable file is
# byte-exact and every file reads without error (no EILSEQ, no EIO);
# umount and xfs_repair -n / e2fsck -fn are clean. Each cut must have lost
# writes (a cut that drops nothing tests nothing); the mean number of
# blocks lost per cut is reported.
#
# The negative control: ext4 with -o barrier=0 sends no flush and no FUA,
# so what it believes durable is still volatile: the same check must fail
# for some seeds, or the harness could not see a loss.
#
#   RDIF_CRASH_SEEDS   cuts per file system and format (default 1)
#   RDIF_CRASH_OPS     operations per workload (default 150)
#   RDIF_CRASH_NEG     seeds of the negative control (default 2)
#   RDIF_CRASH_BASE    first seed (default 1)
#   RDIF_CRASH_CASES   the cases, comma-separated (default: xfs_crc64,
#                      ext4_crc16,negative_control; make crashtest: all five)
#
# `make crashtest N=100` runs N cuts per file system (N/2 per format).
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
SEEDS=${RDIF_CRASH_SEEDS:-1}
OPS=${RDIF_CRASH_OPS:-150}
NEG=${RDIF_CRASH_NEG:-2}
BASE=${RDIF_CRASH_BASE:-1}
CRASHFS=$RDIF_TESTS_DIR/rdif_crashfs
MNT=/tmp/rdif_crashfs.mnt
ST=/tmp/rdif_crashfs.state

# mkfs_for FS DEV
mkfs_for() {
	case $1 in
	xfs) mkfs.xfs -q -f "$2" ;;
	# Inode tables and journal initialised now: ext4lazyinit's
	# background write-zeroes would write the cache back (and so make
	# everything before them durable) in the middle of the tests.
	ext4) mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$2" ;;
	esac
}
# fsck_for FS DEV: read-only check, 0 if clean
fsck_for() {
	case $1 in
	xfs) xfs_repair -n "$2" >/tmp/rdif_crashfs.fsck 2>&1 ;;
	ext4) e2fsck -fn "$2" >/tmp/rdif_crashfs.fsck 2>&1 ;;
	esac
}

# lost DEV: blocks of volatile writes that DEV's power cuts lost so far
lost() { cnt "$1" powercut_blocks_dropped; }

# one_cut FS SEED [MOUNTOPTS]: one workload, cut and check on /dev/cf;
# prints "ok LOST" or "fail LOST WHY" (LOST: blocks the cut lost)
one_cut() {
	local fs=$1 s=$2 opts=${3:-} before after why=
	mount ${opts:+-o "$opts"} /dev/cf "$MNT" || { echo "fail 0 mount"; return; }
	"$CRASHFS" run "$MNT/s$s" "$s" "$OPS" "$ST" || why="workload failed"
	# The moment of the crash: from here on nothing reaches the medium
	# (every read and write fails), and its cache loses what the cut
	# picks. Only then is the file system shut down (ext4's shutdown
	# writes its journal superblock with a flush: it must change
	# nothing any more), unmounted, and what the kernel still caches of
	# /dev/cf dropped, as a power cut drops it.
	medium_dies cf
	before=$(lost cf)
	[ "$(echo "random $s" >"$DBG"/cf/powercut && echo ok)" = ok ] ||
		why="${why:+$why, }powercut refused"
	after=$(lost cf)
	xfs_io -x -c shutdown "$MNT" || why="${why:+$why, }shutdown failed"
	umount "$MNT" || why="${why:+$why, }umount after shutdown"
	medium_returns cf
	if ! mount ${opts:+-o "$opts"} /dev/cf "$MNT"; then
		echo "fail $((after - before)) ${why:+$why, }mount after the cut failed"
		return
	fi
	"$CRASHFS" check "$MNT/s$s" "$s" "$ST" >/tmp/rdif_crashfs.check ||
		why="${why:+$why, }$(tail -n 3 /tmp/rdif_crashfs.check | tr '\n' ' ')"
	sed 's/^/  /' /tmp/rdif_crashfs.check | tail -n 1 >&2
	umount "$MNT" || why="${why:+$why, }umount"
	fsck_for "$fs" /dev/cf || why="${why:+$why, }fsck: $(tail -n 2 /tmp/rdif_crashfs.fsck | tr '\n' ' ')"
	if [ -n "$why" ]; then
		echo "fail $((after - before)) $why"
	else
		echo "ok $((after - before))"
	fi
}

# crash FS BS CSUM: SEEDS cuts of FS on a device of this format
crash() {
	local fs=$1 bs=$2 csum=$3 s r dropped=0 zero=0 n=0 mark
	# (the kernel log from here on: earlier tests make PI errors on purpose)
	mark=$(dmesg | wc -l)
	cfs_load
	require "debugfs" mount_debugfs
	cfs_mkdev cf size=512 blocksize="$bs" csum="$csum" cache=1 read_check=1
	require "mkfs.$fs" mkfs_for "$fs" /dev/cf
	mkdir -p "$MNT"
	for ((s = BASE; s < BASE + SEEDS; s++)); do
		read -r r d why < <(one_cut "$fs" "$s")
		n=$((n + 1))
		dropped=$((dropped + d))
		[ "$d" -gt 0 ] || zero=$((zero + 1))
		expect "seed $s: $why" test "$r" = ok
	done
	echo "$fs on $csum/$bs: $n cuts, $((dropped / n)) blocks of volatile writes lost per cut on average"
	expect "every cut lost writes ($zero did not)" test "$zero" = 0
	expect "no PI error in the log" not grep -q "guard tag error\|ref tag error\|protection error" \
		<(dmesg | tail -n +$((mark + 1)))
	cfs_unload
}

xfs_crc16() { crash xfs 512 crc16; }
xfs_crc64() { crash xfs 4096 crc64; }
ext4_crc16() { crash ext4 512 crc16; }
ext4_crc64() { crash ext4 4096 crc64; }

# ext4 without flushes: its "durable" data is lost, and the check sees it.
negative_control() {
	local s r d why failed=0
	cfs_load
	require "debugfs" mount_debugfs
	cfs_mkdev cf size=512 blocksize=4096 csum=crc64 cache=1 read_check=1
	require "mkfs.ext4" mkfs_for ext4 /dev/cf
	mkdir -p "$MNT"
	for ((s = BASE; s < BASE + NEG; s++)); do
		read -r r d why < <(one_cut ext4 "$s" barrier=0)
		echo "barrier=0 seed $s: $r ($d writes lost) $why"
		[ "$r" = ok ] || failed=$((failed + 1))
		# Start the next seed from a clean file system.
		mkfs_for ext4 /dev/cf
	done
	echo "negative control: $failed of $NEG seeds failed the check"
	expect "the check fails without flushes" test "$failed" -ge 1
	cfs_unload
}

command -v xfs_io >/dev/null || ktap_skip_all "xfs_io (xfsprogs) not installed"
# make check: one format per file system; make crashtest: all of them.
cases=${RDIF_CRASH_CASES:-xfs_crc64,ext4_crc16,negative_control}
read -r -a cases <<<"${cases//,/ }"
ktap_run_cases "${cases[@]}"
