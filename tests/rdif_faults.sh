#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Faults from the kernel's own fault-injection framework
# (Documentation/fault-injection/):
# - allocation failures (failslab, fail_page_alloc) limited to rdif's code
#   by the stack trace filter: every shortage on rdif's I/O path must be
#   retried, so fio with verify=crc32c sees no error at all, and the
#   device's `requeued` counter proves the failures happened; a second,
#   verify-only pass after the injection finds every acknowledged write;
# - I/O errors (fail_make_request) on the block device behind a file
#   store: reads either return the right data or fail with an error fio
#   reports; never a verify mismatch. A write that meets a read error of
#   the backing device (a page it changes in part) changes nothing.
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
command -v fio >/dev/null || ktap_skip_all "fio not installed"
FI=/sys/kernel/debug
mountpoint -q $FI || mount -t debugfs none $FI 2>/dev/null
[ -d $FI/failslab ] && [ -d $FI/fail_page_alloc ] && [ -d $FI/fail_make_request ] ||
	ktap_skip_all "kernel without FAILSLAB, FAIL_PAGE_ALLOC, FAIL_MAKE_REQUEST"
[ -e $FI/failslab/require-start ] || ktap_skip_all "kernel without FAULT_INJECTION_STACKTRACE_FILTER"

# fio_job NAME DEV EXTRA...: 4 KiB random writes with crc32c verification
fio_job() {
	local name=$1 dev=$2
	shift 2
	fio --name="$name" --filename="$dev" --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bs=4k --size=16M --verify=crc32c --verify_fatal=1 \
		--verify_state_save=0 --randseed=1234 "$@" >/tmp/rdif_fi_"$name".log 2>&1
}

# mismatch LOG: fio reported a verify mismatch (as opposed to an I/O error)
mismatch() {
	grep -Ei "verify: bad|bad magic|bad header|crc32c.*(fail|mismatch)|verify failed" "$1" | head -n 5 |
		grep .
}

# arm_alloc_failures PCT [slab]: fail PCT % of the allocations that
# cannot sleep made with rdif's code on the stack (rdif allocates with
# GFP_NOWAIT on its I/O path); with "slab", only slab allocations, but
# sleeping ones too (page allocation failures would print warnings)
arm_alloc_failures() {
	local base size a
	read -r base size <<<"$(awk '$1 == "rdif" { print $6, $2 }' /proc/modules)"
	[ -n "$base" ] && [ "$base" != 0x0000000000000000 ] || { echo "no module address"; return 1; }
	for a in failslab fail_page_alloc; do
		echo "$base" >$FI/$a/require-start
		printf '0x%x\n' $((base + size)) >$FI/$a/require-end
		echo 32 >$FI/$a/stacktrace-depth
		echo 1 >$FI/$a/interval
		echo -1 >$FI/$a/times
		echo 0 >$FI/$a/verbose
		echo 0 >$FI/$a/space
		echo N >$FI/$a/task-filter
		echo Y >$FI/$a/ignore-gfp-wait
		echo "$1" >$FI/$a/probability
	done
	# Chunks are order 0.
	echo 0 >$FI/fail_page_alloc/min-order
	if [ "${2:-}" = slab ]; then
		echo 0 >$FI/fail_page_alloc/probability
		echo N >$FI/failslab/ignore-gfp-wait
	fi
}

# only_eio_eilseq LOG: every I/O error fio logged is EIO or EILSEQ
only_eio_eilseq() {
	! grep "io_u error" "$1" | grep -qEv "Input/output error|Invalid or incomplete multibyte"
}

disarm() {
	local a
	for a in failslab fail_page_alloc fail_make_request; do
		echo 0 >$FI/$a/probability
	done
	echo Y >$FI/fail_page_alloc/ignore-gfp-wait
}

# arm_io_errors DEV PCT: fail PCT % of the bios submitted to DEV
arm_io_errors() {
	echo 1 >/sys/block/"${1#/dev/}"/make-it-fail
	echo 1 >$FI/fail_make_request/interval
	echo -1 >$FI/fail_make_request/times
	echo 0 >$FI/fail_make_request/verbose
	echo "$2" >$FI/fail_make_request/probability
}

# disarm_io_errors DEV: every injection off, and DEV no longer marked
disarm_io_errors() {
	disarm
	echo 0 >/sys/block/"${1#/dev/}"/make-it-fail
}

alloc_failures() {
	local before after
	require "clean start" rdif_clean_start
	require "insmod" rdif_insmod size=64 read_check=1 "$@"
	mountpoint -q $FI || mount -t debugfs none $FI
	local D=$FI/rdif/rdif0 c iv want
	declare -A c0
	for c in requeued write_intervals checked_write read_intervals checked_read; do
		c0[$c]=$(cnt rdif0 $c)
	done
	require "arm failslab and fail_page_alloc for rdif" arm_alloc_failures 30
	fio_job alloc /dev/rdif0 --do_verify=1
	local rc=$?
	disarm
	tail -n 5 /tmp/rdif_fi_alloc.log
	expect "fio under allocation failures: no error" test $rc = 0
	expect "no verify mismatch" not mismatch /tmp/rdif_fi_alloc.log
	before=${c0[requeued]}
	after=$(cnt rdif0 requeued)
	echo "requeued: $before -> $after"
	expect "allocation failures were met and retried" test "$after" -gt "$before"
	# fio wrote and read back 16 MiB, once each: a request retried after
	# a shortage is counted when it ends, once.
	iv=$(cat /sys/block/rdif0/integrity/protection_interval_bytes)
	want=$((16 * 1024 * 1024 / iv))
	for c in write_intervals checked_write read_intervals checked_read; do
		expect "$c counts each interval once" eq "$c" \
			"$(($(cnt rdif0 $c) - ${c0[$c]}))" "$want"
	done
	fio_job alloc /dev/rdif0 --verify_only=1
	rc=$?
	expect "every acknowledged write is there afterwards" test $rc = 0
	expect "no verify mismatch afterwards" not mismatch /tmp/rdif_fi_alloc.log
	require "rmmod" rdif_rmmod
}

backing_errors() {
	local loop img=/tmp/rdif_fi_backing rc nerr=0 i
	cfs_load
	truncate -s 48M $img
	loop=$(losetup -f --show $img) || { case_fail "losetup"; return 1; }
	mkdir $CFS/fb
	cfs_write $CFS/fb/size 16 >/dev/null
	cfs_write $CFS/fb/backing "$loop" >/dev/null
	require "format" eq format "$(cfs_write $CFS/fb/format 1)" OK
	require "power on" eq power "$(cfs_write $CFS/fb/power 1)" OK
	wait_for 10 is_blk /dev/fb
	# Write everything once, flushed to the loop device.
	fio_job fb /dev/fb --do_verify=1 --fsync_on_close=1
	require "writes without faults" test $? = 0
	blockdev --flushbufs /dev/fb
	# Reads from the backing device fail at random: each read either
	# returns the data written, or an error fio reports.
	arm_io_errors "$loop" 20
	local passes=1
	thorough && passes=3
	for ((i = 1; i <= passes; i++)); do
		# Nothing cached: the reads go to the loop device.
		blockdev --flushbufs "$loop"
		echo 3 >/proc/sys/vm/drop_caches
		fio_job fb /dev/fb --verify_only=1 --continue_on_error=io
		# With continue_on_error, fio exits 0 and counts the errors.
		grep -m 1 "errors *: total=" /tmp/rdif_fi_fb.log
		grep -q "errors *: total=[1-9]" /tmp/rdif_fi_fb.log && nerr=$((nerr + 1))
		expect "read pass $i: no verify mismatch" not mismatch /tmp/rdif_fi_fb.log
	done
	# Writes and flushes while the backing device fails: fio ends, with
	# an error or not, and nothing hangs.
	fio --name=wf --filename=/dev/fb --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bs=4k --size=16M --fsync=8 --time_based --runtime=5 \
		--continue_on_error=io >/tmp/rdif_fi_wf.log 2>&1
	echo "writes under faults: fio exit $?"
	grep -m 1 "errors *: total=" /tmp/rdif_fi_wf.log
	disarm_io_errors "$loop"
	echo "read passes with a reported error: $nerr of $passes"
	expect "injected errors reached fio as errors" test $nerr -gt 0
	# A write whose write-back failed was reported by the flush after it;
	# its intervals may hold old data with new PI until rewritten, which
	# reads report (EILSEQ) and never return silently. Every read ends,
	# and a rewrite makes the device whole again.
	expect "power 0" eq power "$(cfs_write $CFS/fb/power 0)" OK
	expect "power 1" eq power "$(cfs_write $CFS/fb/power 1)" OK
	wait_for 10 is_blk /dev/fb
	fio --name=rd --filename=/dev/fb --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=read --bs=4k --size=16M --continue_on_error=io >/tmp/rdif_fi_rd.log 2>&1
	expect "every read ends" test $? -lt 128
	grep -m 1 "errors *: total=" /tmp/rdif_fi_rd.log
	expect "no error but EIO or EILSEQ" only_eio_eilseq /tmp/rdif_fi_rd.log
	fio_job fb /dev/fb --do_verify=1 --fsync_on_close=1
	expect "rewritten without faults, the device verifies" test $? = 0
	expect "and reads back whole" dd if=/dev/fb of=/dev/null bs=64k iflag=direct status=none
	cfs_unload
	losetup -d "$loop"
	rm -f $img
}

# A write whose metadata page cannot be read from the backing device (it
# changes 8 bytes of it) fails before anything is changed: its data, a
# whole page that needs no read, is not written either, and the interval
# still reads back its old data with the old PI.
write_meets_read_error() {
	local loop img=/tmp/rdif_fi_wre
	cfs_load
	truncate -s 48M $img
	loop=$(losetup -f --show $img) || { case_fail "losetup"; return 1; }
	cfs_mkdev wr size=16 backing="$loop" csum=crc16 blocksize=4096 journal=0 format=1
	head -c 4096 /dev/urandom >/tmp/rdif_fi_a
	head -c 4096 /dev/urandom >/tmp/rdif_fi_b
	# Interval 2000, in the middle: its metadata page is not one that
	# udev's blkid reads (it reads the start and end of a new device).
	require "first write, flushed" dd if=/tmp/rdif_fi_a of=/dev/wr bs=4096 seek=2000 \
		oflag=direct conv=fsync,notrunc status=none
	# Nothing of the store cached: a partial page must be read first.
	settle
	blockdev --flushbufs "$loop"
	echo 3 >/proc/sys/vm/drop_caches
	arm_io_errors "$loop" 100
	expect "second write fails" not dd if=/tmp/rdif_fi_b of=/dev/wr bs=4096 seek=2000 \
		oflag=direct conv=notrunc status=none
	disarm_io_errors "$loop"
	expect "the old data reads back, its PI checked" cmp /tmp/rdif_fi_a \
		<(dd if=/dev/wr bs=4096 skip=2000 count=1 iflag=direct status=none)
	cfs_unload
	losetup -d "$loop"
	rm -f $img /tmp/rdif_fi_a /tmp/rdif_fi_b
}

# A one-shot write rule is used up only by a write that went through: a
# write requeued for a shortage meets it again when it is retried.
rules_survive_retries() {
	local D pid n
	require "clean start" rdif_clean_start
	require "insmod" rdif_insmod size=16 csum=crc16 blocksize=512
	D=$FI/rdif/rdif0
	head -c 4096 /dev/urandom >/tmp/rdif_fi_blk
	# Block 1000 and 3000 were never written: their chunks need memory.
	echo "misdirect 3000 1000 8" >$D/inject
	require "arm failslab and fail_page_alloc for rdif" arm_alloc_failures 100
	dd if=/tmp/rdif_fi_blk of=/dev/rdif0 bs=4096 seek=125 count=1 oflag=direct status=none &
	pid=$!
	wait_for 10 test "$(awk '$1 == "requeued" { print $2 }' $D/stats)" -gt 0
	n=$(awk '$1 == "requeued" { print $2 }' $D/stats)
	disarm
	expect "the write completes once memory is back" wait $pid
	echo "requeued $n times"
	expect "it was requeued" test "$n" -gt 0
	expect "the rule fired on the retry" eq inj_misdirected "$(awk '$1 == "inj_misdirected" { print $2 }' $D/stats)" 1
	expect "one write request, counted once" eq writes "$(cnt rdif0 writes)" 1
	expect "nothing armed any more" eq armed "$(cat $D/inject)" ""
	expect "its own place was not written" cmp -s -n 4096 /dev/zero \
		<(dd if=/dev/rdif0 bs=512 skip=1000 count=8 iflag=direct status=none 2>/dev/null)
	echo 0 >/sys/block/rdif0/integrity/read_verify
	expect "the data landed at the target" cmp -s /tmp/rdif_fi_blk \
		<(dd if=/dev/rdif0 bs=512 skip=3000 count=8 iflag=direct status=none)
	require "rmmod" rdif_rmmod
}

# The same rule on pass-through: a write spoilt on its way down needs a
# copy of its own; while that cannot be allocated the write goes back to
# blk-mq with the rule, and the retry meets it: it is used up exactly
# once, when the spoilt write went down (and the lower device refused it).
rules_survive_retries_pass_through() {
	local D pid n rc
	cfs_load
	cfs_mkdev lo size=16 csum=crc16
	cfs_mkdev pt lower=/dev/lo
	D=$FI/rdif/pt
	echo "corrupt guard 1000 1 write" >$D/inject
	require "arm fail_page_alloc for rdif" arm_alloc_failures 100
	echo 0 >$FI/failslab/probability
	# The copy is allocated without waiting, then with GFP_NOIO: fail both.
	echo N >$FI/fail_page_alloc/ignore-gfp-wait
	"$RDIF_TESTS_DIR"/rdif_pi write /dev/pt $((1000 * 512)) 4096 --chk guard,ref >/dev/null 2>&1 &
	pid=$!
	wait_for 10 test "$(awk '$1 == "requeued" { print $2 }' $D/stats)" -gt 0
	n=$(awk '$1 == "requeued" { print $2 }' $D/stats)
	disarm
	wait $pid
	rc=$?
	echo "requeued $n times"
	expect "it was requeued" test "$n" -gt 0
	expect "the lower device refused the spoilt write (EILSEQ)" eq rc "$rc" 84
	expect "one write request, counted once" eq writes "$(cnt pt writes)" 1
	expect "one interval spoilt, once" eq inj_corrupt \
		"$(awk '$1 == "inj_corrupt" { print $2 }' $D/stats)" 1
	expect "the lower device saw one bad guard" eq guard_errors_write \
		"$(awk '$1 == "guard_errors_write" { print $2 }' $FI/rdif/lo/stats)" 1
	expect "nothing armed any more" eq armed "$(cat $D/inject)" ""
	expect "the next write goes through" eq rc "$("$RDIF_TESTS_DIR"/rdif_pi write /dev/pt \
		$((1000 * 512)) 4096 --chk guard,ref >/dev/null 2>&1; echo $?)" 0
	cfs_unload
}

# A file store's work item allocates nothing per request (its bounce
# buffer comes with the store): with slab allocations under rdif failing,
# sleeping ones too, fio sees no error. (Page cache allocations under the
# work item are mostly too deep in the stack for the filter; an ENOMEM
# from the backing file is requeued like any shortage.)
# file_alloc_failures NAME [ATTR VALUE]...: on configfs device NAME with
# the given attributes, over a new file.
file_alloc_failures() {
	local name=$1 img=/tmp/rdif_fi_$1.img
	shift
	cfs_load
	rm -f $img
	mkdir $CFS/"$name"
	cfs_write $CFS/"$name"/size 32 >/dev/null
	while [ $# -ge 2 ]; do
		cfs_write $CFS/"$name"/"$1" "$2" >/dev/null
		shift 2
	done
	cfs_write $CFS/"$name"/backing $img >/dev/null
	require "power on" eq power "$(cfs_write $CFS/"$name"/power 1)" OK
	wait_for 10 is_blk /dev/"$name"
	require "arm failslab for rdif's work item" arm_alloc_failures 30 slab
	fio_job "$name" /dev/"$name" --do_verify=1 --size=8M
	local rc=$?
	disarm
	tail -n 3 /tmp/rdif_fi_"$name".log
	expect "fio under allocation failures: no error" test $rc = 0
	expect "no verify mismatch" not mismatch /tmp/rdif_fi_"$name".log
	fio_job "$name" /dev/"$name" --verify_only=1 --size=8M
	expect "every acknowledged write is there afterwards" test $? = 0
	cfs_unload
	rm -f $img
}

file_store() { file_alloc_failures ff read_check 1; }
# Without the journal, in a format without metadata: each bio's pages go
# to the file's page cache as they are, with one iov_iter.
file_store_nj() { file_alloc_failures fn csum none journal 0; }

# Pass-through clones are allocated from the lower device's bio set, first
# without waiting, then (one request at a time) with GFP_NOIO, whose
# waiting the bio set's reserve makes safe: with 30 % of the allocations
# under rdif that cannot sleep failing, and none of those that can, every
# write and read still goes down at its first try (nothing requeued), PI
# intact. (With all of them failing, each GFP_NOIO clone would wait for
# the bio set's reserve, in mempool_alloc, for seconds.)
pass_through_noio() {
	local D
	cfs_load
	cfs_mkdev lo size=16 csum=crc16
	cfs_mkdev pt lower=/dev/lo read_check=1
	D=$FI/rdif/pt
	require "arm failslab and fail_page_alloc for rdif" arm_alloc_failures 30
	timeout 300 fio --name=noio --filename=/dev/pt --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bs=4k --size=4M --verify=crc32c --verify_fatal=1 \
		--verify_state_save=0 --randseed=99 --do_verify=1 >/tmp/rdif_fi_noio.log 2>&1
	local rc=$?
	disarm
	tail -n 3 /tmp/rdif_fi_noio.log
	expect "fio: no error" test $rc = 0
	expect "no verify mismatch" not mismatch /tmp/rdif_fi_noio.log
	expect "nothing requeued: the GFP_NOIO retry took every clone" eq requeued \
		"$(cnt pt requeued)" 0
	expect "every interval written checked on its way down" eq checked_write \
		"$(cnt pt checked_write)" $((4 * 1024 * 1024 / 512))
	cfs_unload
}

memory_store() { alloc_failures csum=crc16 blocksize=512; }
memory_store_4k() { alloc_failures csum=crc64 blocksize=4096; }

# make check: memory_store_4k (the same allocation failures in 4 KiB
# blocks) in the long run only.
SAMPLE="memory_store file_store file_store_nj rules_survive_retries
	rules_survive_retries_pass_through pass_through_noio backing_errors write_meets_read_error"
mapfile -t cases < <(sample memory_store memory_store_4k file_store file_store_nj \
	rules_survive_retries rules_survive_retries_pass_through pass_through_noio backing_errors \
	write_meets_read_error)
ktap_run_cases "${cases[@]}"
