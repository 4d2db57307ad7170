# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash disable=SC2034
#
# Helpers for rdif's shell tests (sourced, bash, after ktap.sh).
#
# The module is $RDIF_KO (scripts/guest exports it), else $RDIF_ROOT/rdif.ko,
# else ../rdif.ko next to this directory.

RDIF_TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RDIF_KO=${RDIF_KO:-${RDIF_ROOT:-$RDIF_TESTS_DIR/..}/rdif.ko}
MIB=$((1024 * 1024))
PI=$RDIF_TESTS_DIR/rdif_pi
DBG=/sys/kernel/debug/rdif

# mount_debugfs: debugfs mounted (rdif's files are under $DBG)
mount_debugfs() {
	mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	mountpoint -q /sys/kernel/debug
}

# pi_rc ARGS...: rdif_pi's exit status (0, or the errno of the I/O)
pi_rc() { "$PI" "$@" >/dev/null 2>&1; echo $?; }

# cnt DEV NAME: counter NAME of rdif device DEV (its debugfs stats file)
cnt() { awk -v n="$2" '$1 == n { print $2 }' "$DBG/$1"/stats 2>/dev/null; }

# inj DEV COMMAND...: write an injection command to rdif device DEV
inj() { echo "${*:2}" >"$DBG/$1"/inject; }

# thorough: the long run (make check-full, RDIF_THOROUGH=1): every case of
# each matrix and every value of each sweep. make check runs a sample of
# them (each dimension of a matrix at least once), to stay within CI time.
thorough() { [ "${RDIF_THOROUGH:-0}" = 1 ]; }

# sample CASE...: the cases to run: all under thorough, else those of
# CASE... named in $SAMPLE (a space-separated list)
sample() {
	local c list=" ${SAMPLE//[$'\n\t']/ } "
	for c in "$@"; do
		if thorough || [[ $list == *" $c "* ]]; then
			printf '%s\n' "$c"
		fi
	done
}

# Skip the whole script unless it can run; a missing module is a failure.
rdif_require_env() {
	[ "$(id -u)" = 0 ] || ktap_skip_all "must run as root"
	if ! [ -r "$RDIF_KO" ]; then
		ktap_header
		echo "1..1"
		echo "not ok 1 rdif.ko present # $RDIF_KO not found"
		exit "$KSFT_FAIL"
	fi
}

# wait_for SECS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	"$@"
}

settle() {
	command -v udevadm >/dev/null && udevadm settle --timeout=10 >/dev/null 2>&1
	return 0
}

rdif_loaded() { [ -d /sys/module/rdif ]; }
rdif_in_lsmod() { lsmod | awk '$1 == "rdif" { f = 1 } END { exit !f }'; }
not() { ! "$@"; }
is_blk() { [ -b "$1" ]; }
absent() { ! [ -e "$1" ]; }

# rdif_insmod [PARAM=VALUE...]: load the module, wait for /dev/rdif0.
rdif_insmod() {
	insmod "$RDIF_KO" "$@" || return 1
	wait_for 10 is_blk /dev/rdif0 || { echo "/dev/rdif0 did not appear"; return 1; }
	settle
}

# rdif_rmmod: unload the module, retrying while udev still holds a device
# briefly open; then wait until its devices are gone.
rdif_rmmod() {
	rdif_loaded || return 0
	settle
	for _ in $(seq 50); do
		rmmod rdif 2>/dev/null && break
		sleep 0.1
	done
	rdif_loaded && { rmmod rdif; return 1; }
	wait_for 10 absent /dev/rdif0 || { echo "/dev/rdif0 still there after rmmod"; return 1; }
	return 0
}

# Start every script (and case) from a clean state, whatever an earlier one
# that failed left behind: configfs devices, then the module.
rdif_clean_start() {
	local d
	if rdif_loaded; then
		for d in "$CFS"/*/; do
			[ -d "$d" ] && { echo "removing a stale configfs device $d"; rmdir "$d"; }
		done
		echo "rdif was loaded before the test; unloading it"
		rdif_rmmod || { echo "cannot unload a stale rdif"; return 1; }
	fi
	return 0
}

# sectors DEV: the capacity /sys reports, in 512-byte sectors.
sectors() { cat "/sys/block/$1/size"; }
lbs() { cat "/sys/block/$1/queue/logical_block_size"; }

# eq DESC-less equality check with a message on mismatch: eq WHAT GOT WANT
eq() {
	[ "$2" = "$3" ] && return 0
	echo "$1: got '$2', want '$3'"
	return 1
}

# ne WHAT GOT NOTWANT: inequality, with a message when equal
ne() {
	[ "$2" != "$3" ] && return 0
	echo "$1: got '$2', want anything else"
	return 1
}

# medium_dies DEV: from now on rdif device DEV fails every read and write
# (injection), as a medium that lost power
medium_dies() { echo "fail any 100000000 ioerr" >"$DBG/$1"/inject; }

# medium_returns DEV: the medium is back after a power cut. No page cache
# survives a power cut: what the kernel still caches of /dev/DEV is
# dropped first (its dirty pages fail to write: the medium is dead); then
# the injection is cleared, and the write errors the dead medium gave
# (errseq) are taken, which a new opener would otherwise be told of.
medium_returns() {
	settle
	blockdev --flushbufs "/dev/$1" 2>/dev/null
	echo clear >"$DBG/$1"/inject
	dd if=/dev/null of="/dev/$1" conv=fsync,notrunc status=none 2>/dev/null
	return 0
}

# --- configfs devices (tests source this after ktap.sh) ---------------------
CFS=/sys/kernel/config/rdif

# cfs_write ATTR VALUE: write VALUE into a configfs attribute; prints OK or
# the errno's name (EINVAL, EBUSY, EEXIST) or the error message.
cfs_write() {
	local err
	err=$( { printf '%s\n' "$2" >"$1"; } 2>&1)
	case $err in
	"") echo OK ;;
	*"Invalid argument"*) echo EINVAL ;;
	*"busy"*) echo EBUSY ;;
	*"File exists"*) echo EEXIST ;;
	*) echo "$err" ;;
	esac
}

# cfs_mkdev NAME ATTR=VALUE...: make a configfs device with these
# attributes and power it on (the case fails if any step does)
cfs_mkdev() {
	local d=$CFS/$1 a
	shift
	require "mkdir $d" mkdir "$d"
	for a in "$@"; do
		expect "set $a" eq "$a" "$(cfs_write "$d/${a%%=*}" "${a#*=}")" OK
	done
	expect "power 1" eq power "$(cfs_write "$d"/power 1)" OK
	require "/dev/${d##*/}" wait_for 10 is_blk "/dev/${d##*/}"
	settle
}

# cfs_load: load rdif without default devices, with configfs mounted.
cfs_load() {
	require "clean start" rdif_clean_start
	require "insmod nr_devices=0" insmod "$RDIF_KO" nr_devices=0
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	require "configfs subsystem" test -d $CFS
}

# cfs_unload: remove every configfs device (powered or not), unload rdif.
cfs_unload() {
	local d
	for d in "$CFS"/*/; do
		[ -d "$d" ] && rmdir "$d"
	done
	require "rmmod" rdif_rmmod
}

# --- scsi_debug with PI ---------------------------------------------------------
SD=
# scsi_start: scsi_debug with PI (Type 1, CRC guard, DIX), 16 MiB, loaded
# afresh; SD is its disk name
scsi_start() {
	modprobe -r scsi_debug 2>/dev/null
	modprobe scsi_debug dif=1 dix=1 guard=0 dev_size_mb=16 sector_size=512 ||
		skip_case "scsi_debug not available"
	local b
	for _ in $(seq 50); do
		b=$(ls -d /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*:*/block/* \
			2>/dev/null | head -n 1)
		[ -n "$b" ] && break
		sleep 0.2
	done
	require "scsi_debug disk" test -n "$b"
	SD=${b##*/}
	require "/dev/$SD" wait_for 10 is_blk "/dev/$SD"
	settle
}

scsi_stop() {
	modprobe -r scsi_debug 2>/dev/null
}
