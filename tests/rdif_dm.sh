#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The kernel's own integrity users stacked on rdif, built with dmsetup
# (Debian's 1.02.185; integritysetup/cryptsetup are not needed: the tables
# are written out):
# - dm-linear (with an offset) over rdif inherits its integrity profile;
#   PI written with io_uring through it reads back from rdif with the ref
#   tags of rdif's own LBAs; a persistent corruption injected in rdif fails
#   reads through dm-linear with EILSEQ; the same over a pass-through rdif
#   over a memory rdif (three layers);
# - dm-integrity in inline mode (`I`, crc32c tags kept in rdif's opaque
#   metadata): data round-trips, a data byte spoilt in rdif's store fails
#   the read of that sector (and only it);
# - dm-crypt with authenticated encryption (AES-GCM, random IVs; tag and
#   IV in rdif's metadata): data round-trips, is not stored in clear, and
#   a spoilt byte fails the read;
# - XFS on dm-linear over rdif with PI: files survive unmount, the file
#   system checks clean.
#
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
EILSEQ=84
MNT=/tmp/rdif_dm_mnt
# libdevmapper makes the /dev/mapper nodes itself: no udev cookies.
export DM_DISABLE_UDEV=1

dm_block() { dmsetup info -c --noheadings -o blkdevname "$1"; }
# stored_pi DEV I: "app ref" of interval I as rdif DEV stores it
stored_pi() {
	echo "$2 1" >"$DBG/$1"/pi
	sed -n 2p "$DBG/$1"/pi | awk '{ print $3, $4 }'
}
# rd_errno DEV SECTOR: read one 512-byte sector with O_DIRECT; print OK,
# EILSEQ, EIO or dd's message
rd_errno() {
	local out
	out=$(dd if="$1" of=/dev/null bs=512 skip="$2" count=1 iflag=direct status=none 2>&1) &&
		{ echo OK; return; }
	case $out in
	*"Invalid or incomplete multibyte"*) echo EILSEQ ;;
	*"Input/output error"*) echo EIO ;;
	*) echo "$out" ;;
	esac
}

start() {
	command -v dmsetup >/dev/null || skip_case "dmsetup not installed"
	[ -e /dev/mapper/control ] || skip_case "no device mapper in this kernel"
	cfs_load
	[ -d $DBG ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	require "debugfs" test -d $DBG
}

# dm_remove NAME: remove a mapped device once udev has let go of it (its
# blkid runs on every new device, and on every close after a write)
dm_remove() {
	settle
	dmsetup remove --retry "$1"
}

# dm_none: remove every mapped device; true once none is left
dm_none() {
	dmsetup remove_all >/dev/null 2>&1
	[ -z "$(dmsetup ls 2>/dev/null | grep -v '^No devices found')" ]
}

stop() {
	settle
	wait_for 5 dm_none
	cfs_unload
}

# linear_over DEV NAME: dm-linear NAME over DEV from sector 2048
linear_over() {
	local n=$(($(sectors "$1") - 2048))
	require "dmsetup create $2" dmsetup create "$2" --table "0 $n linear /dev/$1 2048"
	require "/dev/mapper/$2" wait_for 10 is_blk "/dev/mapper/$2"
}

# linear_checks DEV BOTTOM: dm-linear over DEV carries PI end to end, to
# the rdif device BOTTOM that stores it
linear_checks() {
	local dm
	linear_over "$1" lin
	dm=$(dm_block lin)
	expect "profile inherited" eq format "$(cat "/sys/block/$dm/integrity/format")" \
		"$(cat "/sys/block/$1/integrity/format")"
	expect "write with PI through dm-linear" eq rc "$(pi_rc write /dev/mapper/lin 0 65536 \
		--chk guard,ref --app-tag 0x77 --pattern 3)" 0
	expect "read back through dm-linear" eq rc "$(pi_rc read /dev/mapper/lin 0 65536 \
		--chk guard,ref --app-tag 0x77 --pattern 3 --verify)" 0
	# dm-linear's sector 0 is rdif's 2048: the ref tags are rdif's LBAs.
	expect "stored on $2 with its own LBAs as ref tags" eq pi "$(stored_pi "$2" 2048)" \
		"0x0077 0x00000800"
	expect "  to the last interval" eq pi "$(stored_pi "$2" $((2048 + 127)))" "0x0077 0x0000087f"
	expect "read from $1 at its offset, checked" eq rc "$(pi_rc read "/dev/$1" $((2048 * 512)) \
		65536 --chk guard,ref,app --app-tag 0x77)" 0
	inj "$1" corrupt guard $((2048 + 5)) 1 persistent
	expect "injected corruption: EILSEQ through dm-linear" eq rc \
		"$(pi_rc read /dev/mapper/lin 0 65536 --chk guard,ref)" $EILSEQ
	expect "block layer's own verify too" eq read "$(rd_errno /dev/mapper/lin 5)" EILSEQ
	expect "next sector fine" eq read "$(rd_errno /dev/mapper/lin 6)" OK
	inj "$1" clear
	require "dmsetup remove lin" dm_remove lin
}

dm_linear() {
	start
	cfs_mkdev r0 size=32 csum=crc16
	linear_checks r0 r0
	stop
}

# dm-linear over a pass-through device over rdif.
dm_linear_over_pass() {
	start
	cfs_mkdev lo size=32 csum=crc16
	cfs_mkdev pt lower=/dev/lo
	linear_checks pt lo
	stop
}

# dm_size NAME TABLE-WITHOUT-LENGTH: create NAME with its full size (what
# dm-integrity provides, from a first table of 8 sectors)
integrity_create() {
	local name=$1 rest=$2 n
	require "dmsetup create $name (probe)" dmsetup create "$name" --table "0 8 $rest"
	n=$(dmsetup status "$name" | awk '{ print $5 }')
	require "provided sectors" test "${n:-0}" -gt 8
	require "reload" dmsetup reload "$name" --table "0 $n $rest"
	require "resume" dmsetup resume "$name"
	require "/dev/mapper/$name" wait_for 10 is_blk "/dev/mapper/$name"
}

dm_integrity_inline() {
	start
	cfs_mkdev r0 size=16 csum=none metadata_size=4
	integrity_create di "integrity /dev/r0 0 4 I 1 internal_hash:crc32c"
	dd if=/dev/urandom of=/tmp/rdif_dm_a bs=64k count=4 status=none
	expect "write" dd if=/tmp/rdif_dm_a of=/dev/mapper/di bs=64k oflag=direct status=none
	expect "read back" cmp -s /tmp/rdif_dm_a \
		<(dd if=/dev/mapper/di bs=64k count=4 iflag=direct status=none)
	expect "the tags are in rdif's metadata" test \
		"$(od -An -tx1 -j $(((8 + 3) * 4)) -N 4 $DBG/r0/metadata | tr -d ' ')" != 00000000
	# dm-integrity's sector s is rdif's s + 8 (its superblock) in inline mode.
	inj r0 corrupt data $((8 + 100))
	expect "spoilt sector: EILSEQ" eq read "$(rd_errno /dev/mapper/di 100)" EILSEQ
	expect "the sector before reads" eq read "$(rd_errno /dev/mapper/di 99)" OK
	expect "dm-integrity counted a mismatch" test "$(dmsetup status di | awk '{ print $4 }')" -ge 1
	expect "rewrite heals it" dd if=/tmp/rdif_dm_a of=/dev/mapper/di bs=512 count=1 seek=100 \
		skip=100 oflag=direct status=none
	expect "and it reads again" cmp -s /tmp/rdif_dm_a \
		<(dd if=/dev/mapper/di bs=64k count=4 iflag=direct status=none)
	require "dmsetup remove di" dm_remove di
	expect "reopened: data and tags persist" dmsetup create di --table \
		"0 $(($(sectors r0) - 8)) integrity /dev/r0 0 4 I 1 internal_hash:crc32c"
	wait_for 10 is_blk /dev/mapper/di
	expect "  and read back" cmp -s /tmp/rdif_dm_a \
		<(dd if=/dev/mapper/di bs=64k count=4 iflag=direct status=none)
	stop
}

KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

dm_crypt_aead() {
	start
	cfs_mkdev r0 size=16 csum=none metadata_size=32
	local n
	n=$(sectors r0)
	require "dm-crypt AES-GCM over rdif" dmsetup create dc --table \
		"0 $n crypt capi:gcm(aes)-random $KEY 0 /dev/r0 0 1 integrity:28:aead"
	require "/dev/mapper/dc" wait_for 10 is_blk /dev/mapper/dc
	dd if=/dev/urandom of=/tmp/rdif_dm_a bs=64k count=4 status=none
	expect "write" dd if=/tmp/rdif_dm_a of=/dev/mapper/dc bs=64k oflag=direct status=none
	expect "read back" cmp -s /tmp/rdif_dm_a \
		<(dd if=/dev/mapper/dc bs=64k count=4 iflag=direct status=none)
	expect "not in clear on rdif" not cmp -s /tmp/rdif_dm_a \
		<(dd if=/dev/r0 bs=64k count=4 iflag=direct status=none)
	inj r0 corrupt data 42
	expect "spoilt sector: EILSEQ" eq read "$(rd_errno /dev/mapper/dc 42)" EILSEQ
	expect "the sector after reads" eq read "$(rd_errno /dev/mapper/dc 43)" OK
	require "dmsetup remove dc" dm_remove dc
	expect "reopened with the key" dmsetup create dc --table \
		"0 $n crypt capi:gcm(aes)-random $KEY 0 /dev/r0 0 1 integrity:28:aead"
	wait_for 10 is_blk /dev/mapper/dc
	expect "  the rest reads back" cmp -s <(head -c 20480 /tmp/rdif_dm_a) \
		<(dd if=/dev/mapper/dc bs=512 count=40 iflag=direct status=none)
	require "dmsetup remove dc" dm_remove dc
	local other=${KEY%?}0
	expect "another key: nothing decrypts" dmsetup create dc --table \
		"0 $n crypt capi:gcm(aes)-random $other 0 /dev/r0 0 1 integrity:28:aead"
	wait_for 10 is_blk /dev/mapper/dc
	expect "  EILSEQ" eq read "$(rd_errno /dev/mapper/dc 0)" EILSEQ
	stop
}

xfs_stacked() {
	command -v mkfs.xfs >/dev/null || skip_case "mkfs.xfs not installed"
	start
	cfs_mkdev r0 size=512 csum=crc16 blocksize=4096
	linear_over r0 lin
	require "mkfs.xfs" mkfs.xfs -f -q /dev/mapper/lin
	mkdir -p $MNT
	require "mount" mount /dev/mapper/lin $MNT
	local i
	for i in 1 2 3 4; do
		head -c $((i * 3 * MIB)) /dev/urandom >$MNT/f$i
	done
	(cd $MNT && sha256sum f*) >/tmp/rdif_dm_sums
	expect "umount" umount $MNT
	expect "xfs_repair -n clean" xfs_repair -n /dev/mapper/lin
	expect "PI verified on every read: read whole device" \
		dd if=/dev/mapper/lin of=/dev/null bs=1M iflag=direct status=none
	require "mount again" mount /dev/mapper/lin $MNT
	expect "files intact" bash -c "cd $MNT && sha256sum -c --quiet /tmp/rdif_dm_sums"
	expect "rdif checked writes" test "$(cnt r0 checked_write)" -gt 0
	umount $MNT
	require "dmsetup remove lin" dm_remove lin
	stop
}

ktap_run_cases dm_linear dm_linear_over_pass dm_integrity_inline dm_crypt_aead xfs_stacked
