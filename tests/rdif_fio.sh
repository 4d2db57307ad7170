#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fio 4 KiB random writes then verified reads (verify=crc32c) through the
# block layer's auto-PI on two profiles, with the device checking PI on
# writes and reads (read_check=1): no errors allowed. Then sequential
# writes and reads in batches that blk-mq merges into requests of several
# bios, with and without integrity.
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
command -v fio >/dev/null || ktap_skip_all "fio not installed"

fio_pi() {
	local engine=io_uring mark
	cd /tmp || return 1
	# shellcheck disable=SC2068
	require "clean start" rdif_clean_start
	# shellcheck disable=SC2086
	require "insmod $*" rdif_insmod size=64 read_check=1 "$@"
	mark=$(dmesg | wc -l)
	mount_debugfs
	local cw cr
	cw=$(cnt rdif0 checked_write)
	cr=$(cnt rdif0 checked_read)
	fio --name=pi --filename=/dev/rdif0 --direct=1 --ioengine=$engine --iodepth=16 \
		--rw=randwrite --bs=4k --size=32M --numjobs=1 --verify=crc32c \
		--verify_fatal=1 --do_verify=1 --verify_state_save=0 --randrepeat=0 --output-format=terse \
		--output=/tmp/rdif_fio.out >/tmp/rdif_fio.log 2>&1
	expect "fio randwrite + verify exit 0" test $? = 0
	cat /tmp/rdif_fio.log
	# terse v3: field 5 is the job's error number.
	expect "fio reports no error" eq "fio error" "$(cut -d';' -f5 /tmp/rdif_fio.out | head -n 1)" 0
	fio --name=pi --filename=/dev/rdif0 --direct=1 --ioengine=$engine --iodepth=16 \
		--rw=randread --bs=4k --size=32M --runtime=3 --time_based \
		--output=/tmp/rdif_fio2.out >/tmp/rdif_fio2.log 2>&1
	expect "fio randread exit 0" test $? = 0
	# The block layer's auto-PI gave every write PI that rdif checked, and
	# read_check made rdif check every read: 8192 writes of one 4 KiB
	# block, 512 or 4096 bytes an interval.
	local per=$((4096 / $(lbs rdif0)))
	expect "rdif checked the PI of every write" test \
		$(($(cnt rdif0 checked_write) - cw)) -ge $((8192 * per))
	expect "rdif checked the PI of the reads" test $(($(cnt rdif0 checked_read) - cr)) -ge $((8192 * per))
	expect "and found no error" eq errors "$(cnt rdif0 guard_errors_write)/$(cnt rdif0 ref_errors_write)/$(cnt rdif0 guard_errors_read)/$(cnt rdif0 ref_errors_read)" 0/0/0/0
	expect "no protection errors logged" not grep -q "protection error\|guard tag error\|ref tag error" <(dmesg | tail -n +$((mark + 1)))
	require "rmmod" rdif_rmmod
}

crc16_t1_512() { fio_pi csum=crc16 blocksize=512; }
crc64_t1_4096() { fio_pi csum=crc64 blocksize=4096; }

# Field $2 (1-based) of /sys/block/rdif0/stat.
blk_stat() { awk -v f="$1" '{ print $f }' /sys/block/rdif0/stat; }

# Sequential 4 KiB writes, then their verification reads, submitted 32 at
# a time: blk-mq merges the bios of a batch into requests of several bios,
# which the device must walk as one stream of data (without metadata, a
# memory store's reads and writes take the whole request at once). The
# block layer's merge counters (fields 2 and 6 of the disk's stat) show
# that such requests came.
fio_merged() {
	local rm0 wm0
	cd /tmp || return 1
	require "clean start" rdif_clean_start
	# shellcheck disable=SC2086
	require "insmod $*" rdif_insmod size=64 "$@"
	rm0=$(blk_stat 2)
	wm0=$(blk_stat 6)
	fio --name=merged --filename=/dev/rdif0 --direct=1 --ioengine=io_uring --iodepth=32 \
		--iodepth_batch_submit=32 --iodepth_batch_complete_min=32 --rw=write --bs=4k \
		--size=32M --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
		--output-format=terse --output=/tmp/rdif_fio_m.out >/tmp/rdif_fio_m.log 2>&1
	expect "fio batched write + verify exit 0" test $? = 0
	cat /tmp/rdif_fio_m.log
	expect "fio reports no error" eq "fio error" "$(cut -d';' -f5 /tmp/rdif_fio_m.out | head -n 1)" 0
	ktap_diag "merges: reads $(($(blk_stat 2) - rm0)), writes $(($(blk_stat 6) - wm0))"
	expect "writes were merged" test "$(($(blk_stat 6) - wm0))" -gt 0
	expect "reads were merged" test "$(($(blk_stat 2) - rm0))" -gt 0
	require "rmmod" rdif_rmmod
}

merged_none_4096() { fio_merged csum=none blocksize=4096; }
merged_crc16_512() { fio_merged csum=crc16 blocksize=512 read_check=1; }

ktap_run_cases crc16_t1_512 crc64_t1_4096 merged_none_4096 merged_crc16_512
