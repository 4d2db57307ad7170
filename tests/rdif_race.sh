#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A PI-formatted disk never shows an interval whose data and PI disagree
# unless someone corrupted it, whatever its users do at the same time.
#
# race_*: two writers overwrite random overlapping pieces of the first
# 64 KiB with O_DIRECT (block-layer auto-PI) while two readers read them
# (rdif_race race): zero EILSEQ, every interval read whole from one write,
# and afterwards every interval of the region verifies. One case per
# format family (CRC16 512 B, CRC64 4 KiB, interval below the block size,
# metadata larger than the tuple, no PI at all) on a memory store, and the
# PI ones on a backing file too. The devices have read_check=1, so the
# device checks what it stores as well as the block layer.
#
# mutate_*: a writer whose buffer another thread keeps changing while its
# writes are in flight (rdif_race mutate): each write fails with EILSEQ or
# succeeds, and afterwards every interval verifies: what the device checked
# is what it stored. mutate_user_pi_*: the same with user PI (io_uring,
# rdif_pi --mutate), the buffer's bytes flipped and flipped back, so that
# every write that succeeded must read back as the pattern with its PI.
#
# RDIF_RACE_SECS sets the seconds per case (default 4); the longer mode is
# e.g. RDIF_RACE_SECS=60.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
RACE=$(dirname "$0")/rdif_race
[ -x "$RACE" ] || ktap_skip_all "rdif_race not built (make -C tests)"
PI=$(dirname "$0")/rdif_pi
[ -x "$PI" ] || ktap_skip_all "rdif_pi not built (make -C tests)"
SECS=${RDIF_RACE_SECS:-4}
IMG=/tmp/rdif_race.img

# race_dev NAME BACKING ATTR=VALUE...: loads rdif and powers on a device
# NAME (16 MiB, read_check=1) with the attributes given, on a memory store
# ("-") or a new file BACKING.
race_dev() {
	local name=$1 backing=$2 kv
	shift 2
	cfs_load
	mkdir $CFS/$name
	require "size" eq size "$(cfs_write $CFS/$name/size 16)" OK
	require "read_check" eq read_check "$(cfs_write $CFS/$name/read_check 1)" OK
	for kv in "$@"; do
		require "$kv" eq "${kv%%=*}" "$(cfs_write $CFS/$name/${kv%%=*} "${kv#*=}")" OK
	done
	if [ "$backing" != - ]; then
		rm -f "$backing"
		require "backing" eq backing "$(cfs_write $CFS/$name/backing "$backing")" OK
	fi
	require "power on" eq power "$(cfs_write $CFS/$name/power 1)" OK
	require "/dev/$name" wait_for 10 is_blk /dev/$name
	settle
}

# one NAME BACKING MODE INTERVAL ATTR=VALUE...: runs rdif_race MODE on a
# device from race_dev NAME BACKING ATTR=VALUE....
one() {
	local name=$1 backing=$2 mode=$3 iv=$4 out rc
	shift 4
	race_dev "$name" "$backing" "$@"
	out=$("$RACE" "$mode" /dev/$name "$SECS" "$iv" 2>&1)
	rc=$?
	ktap_diag "$out"
	expect "rdif_race $mode: no false protection error, no torn interval" eq "exit status" "$rc" 0
	cfs_unload
	rm -f "$backing"
}

race_crc16_512() { one r16 - race 512 csum=crc16 blocksize=512; }
race_crc64_4096() { one r64 - race 4096 csum=crc64 blocksize=4096; }
race_interval512_bs4096() { one ri - race 512 csum=crc16 blocksize=4096 interval=512; }
race_md16_pi_last() { one rm - race 512 csum=crc16 blocksize=512 metadata_size=16 pi_offset=8; }
race_no_pi() { one rn - race 512 csum=none blocksize=512; }
race_file_crc16_512() { one f16 $IMG race 512 csum=crc16 blocksize=512; }
race_file_crc64_4096() { one f64 $IMG race 4096 csum=crc64 blocksize=4096; }
race_file_interval512_md16() { one fi $IMG race 512 csum=crc16 blocksize=4096 interval=512 metadata_size=16 pi_offset=8; }
mutate_crc16_512() { one m16 - mutate 512 csum=crc16 blocksize=512; }
mutate_crc64_4096() { one m64 - mutate 4096 csum=crc64 blocksize=4096; }
mutate_file_crc16_4096() { one mf $IMG mutate 4096 csum=crc16 blocksize=4096; }

# user_pi NAME BACKING ATTR=VALUE...: writes of random pieces with user PI
# (io_uring, the device checks guard and ref) from a buffer another thread
# keeps changing (rdif_pi --mutate): each fails with EILSEQ or succeeds,
# each piece that succeeded reads back at once as the pattern with exactly
# its PI, and so does the whole region at the end.
user_pi() {
	local name=$1 backing=$2 out rc
	shift 2
	race_dev "$name" "$backing" "$@"
	out=$("$PI" write /dev/$name 0 65536 --pattern 7 --chk guard,ref --mutate "$SECS" 2>&1)
	rc=$?
	ktap_diag "$out"
	expect "mutated user-PI writes: each succeeded (and read back as written) or failed with EILSEQ" eq "exit status" "$rc" 0
	out=$("$PI" read /dev/$name 0 65536 --pattern 7 --verify --chk guard,ref 2>&1)
	rc=$?
	[ -z "$out" ] || ktap_diag "$out"
	expect "what was stored is the pattern with its PI" eq "exit status" "$rc" 0
	cfs_unload
	rm -f "$backing"
}

mutate_user_pi_crc16_512() { user_pi u16 - csum=crc16 blocksize=512; }
mutate_user_pi_crc64_4096() { user_pi u64 - csum=crc64 blocksize=4096; }
mutate_user_pi_file_crc16_4096() { user_pi uf $IMG csum=crc16 blocksize=4096; }

# make check: each race on memory and on a file, each checksum and the
# interval smaller than the block at least once.
SAMPLE="race_crc16_512 race_crc64_4096 race_interval512_bs4096 race_no_pi race_file_crc16_512
	race_file_interval512_md16 mutate_crc16_512 mutate_file_crc16_4096 mutate_user_pi_crc64_4096
	mutate_user_pi_file_crc16_4096"
mapfile -t cases < <(sample race_crc16_512 race_crc64_4096 race_interval512_bs4096 \
	race_md16_pi_last race_no_pi race_file_crc16_512 race_file_crc64_4096 \
	race_file_interval512_md16 mutate_crc16_512 mutate_crc64_4096 mutate_file_crc16_4096 \
	mutate_user_pi_crc16_512 mutate_user_pi_crc64_4096 mutate_user_pi_file_crc16_4096)
ktap_run_cases "${cases[@]}"
