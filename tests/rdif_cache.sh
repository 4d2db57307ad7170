#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The volatile write cache (cache=1) and power cuts on command
# (/sys/kernel/debug/rdif/<disk>/powercut). Every case reads back each
# block's data AND its PI (rdif_pi --verify: the pattern it was written
# with, guard and ref tag) after the cut:
# - the queue advertises a write-back cache with FUA; cache=0 does not;
# - `all` loses every volatile write, `none` none, `prefix N` all but the
#   first N, a flush or a FUA write makes writes durable, a chain of
#   overwrites of one block goes back to the right one;
# - `random SEED [PCT]` is deterministic (same history, same seed: same
#   crash state), differs with the seed, and PCT 0 / 100 mean all / none;
# - no logical block is ever torn (4 KiB blocks of 512-byte intervals,
#   1 MiB writes; and concurrent writers at the moment of the cut);
# - the cache size bounds what a cut can lose (older writes written back),
#   and a discard writes the cache back;
# - over a backing file (journaled, and journal=0), the same policies,
#   torn-block, concurrency, size and atomic cases (the *_file cases);
# - on a pass-through device over an rdif in memory (pass_through);
# - bad input: unknown policies, bad seeds, percentages and counts,
#   powercut without a cache, atomic writes on a pass-through device or
#   over a store without journal, cache_size out of range: EINVAL,
#   nothing changed.
#
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env

# Attributes that put the device a case starts over a backing file (see
# on_file); none: in memory.
BACK=()

# start NAME ATTR=VALUE...: a configfs device NAME (debugfs at hand)
start() {
	cfs_load
	require "debugfs" mount_debugfs
	cfs_mkdev "$@" "${BACK[@]}"
}

# on_file JOURNAL CASE: runs CASE with its device over a fresh backing
# file, journaled or not (JOURNAL 1 or 0)
on_file() {
	local img=/tmp/rdif_cache_file.img
	: >"$img"
	BACK=("backing=$img" "journal=$1" format=1)
	"$2"
	BACK=()
	rm -f "$img"
}

# w DEV BS I PATTERN [ARGS]: write block I (BS bytes) with PATTERN and PI
w() { "$PI" write "/dev/$1" $(($3 * $2)) "$2" --pattern "$4" "${@:5}" >/dev/null; }
# wr DEV BS FIRST COUNT PATTERN: one write of COUNT blocks
wr() { "$PI" write "/dev/$1" $(($3 * $2)) $(($4 * $2)) --pattern "$5" >/dev/null; }
# each DEV BS FIRST COUNT PATTERN: COUNT writes of one block, in order
each() { "$PI" write "/dev/$1" $(($3 * $2)) $(($4 * $2)) --pattern "$5" --pieces "$2" >/dev/null; }
# is DEV BS I PATTERN: block I holds PATTERN with its PI, all of it
is() { "$PI" read "/dev/$1" $(($3 * $2)) "$2" --pattern "$4" --verify "${@:5}" >/dev/null 2>&1; }
# which DEV BS I P...: the first of the patterns P block I holds with its
# PI (0: zeroes with escape PI), or "torn"
which() {
	local l="${*:4}"
	"$PI" read "/dev/$1" $(($3 * $2)) "$2" --which "$2" "${l// /,}" | tr -d ' '
}
# flush DEV: fsync the device (a flush request)
flush() { dd if=/dev/null of="/dev/$1" conv=fsync,notrunc status=none; }
# cut DEV POLICY: the errno of writing POLICY to powercut (0: done)
cut() {
	local out
	out=$( (echo "${*:2}" >"$DBG/$1"/powercut) 2>&1) && { echo 0; return; }
	case $out in
	*"Invalid argument"*) echo 22 ;;
	*) echo "?$out" ;;
	esac
}
# blocks DEV BS N P...: which pattern each of blocks 0..N-1 holds (one
# read)
blocks() {
	local l="${*:4}"
	"$PI" read "/dev/$1" 0 $(($3 * $2)) --which "$2" "${l// /,}"
}

interface() {
	start plain size=16 blocksize=512 csum=crc16
	start_more() { cfs_mkdev "$@"; }
	start_more wc size=16 blocksize=512 csum=crc16 cache=1
	expect "cache=0: write through" eq wc0 "$(cat /sys/block/plain/queue/write_cache)" \
		"write through"
	expect "cache=1: write back" eq wc1 "$(cat /sys/block/wc/queue/write_cache)" "write back"
	expect "cache=1: FUA" eq fua "$(cat /sys/block/wc/queue/fua)" 1
	expect "powercut needs a cache" eq rc "$(cut plain all)" 22
	w wc 512 0 1
	local bad
	for bad in "" bogus "all 1" "none x" random "random x" "random 1 101" "random 1 -1" \
		"random 18446744073709551616" "random 1 50 9" prefix "prefix -1" "prefix 2" \
		"prefix 99999999999999999999"; do
		expect "refused: '$bad'" eq "rc '$bad'" "$(cut wc "$bad")" 22
	done
	expect "no cut happened" eq cuts "$(cnt wc powercuts)" 0
	expect "the volatile write is still held" eq held "$(cnt wc cache_volatile_writes)" 1
	expect "and still reads" is wc 512 0 1
	local d=$CFS/bad
	require "mkdir" mkdir "$d"
	expect "cache_size 0" eq rc "$(cfs_write "$d"/cache_size 0)" EINVAL
	expect "cache_size 16385" eq rc "$(cfs_write "$d"/cache_size 16385)" EINVAL
	expect "cache_size 1" eq rc "$(cfs_write "$d"/cache_size 1)" OK
	expect "cache 2" eq rc "$(cfs_write "$d"/cache 2)" EINVAL
	expect "cache 1" eq rc "$(cfs_write "$d"/cache 1)" OK
	expect "lower" eq rc "$(cfs_write "$d"/lower /dev/plain)" OK
	expect "atomic_write_max" eq rc "$(cfs_write "$d"/atomic_write_max 512)" OK
	expect "atomic writes on a pass-through device are refused" eq rc \
		"$(cfs_write "$d"/power 1)" EINVAL
	expect "no lower" eq rc "$(cfs_write "$d"/lower "")" OK
	: >/tmp/rdif_cache.img
	expect "backing" eq rc "$(cfs_write "$d"/backing /tmp/rdif_cache.img)" OK
	expect "journal 0" eq rc "$(cfs_write "$d"/journal 0)" OK
	expect "format" eq rc "$(cfs_write "$d"/format 1)" OK
	expect "atomic writes without journal are refused" eq rc "$(cfs_write "$d"/power 1)" EINVAL
	expect "no disk" absent /dev/bad
	expect "atomic_write_max 0" eq rc "$(cfs_write "$d"/atomic_write_max 0)" OK
	expect "cache 1" eq rc "$(cfs_write "$d"/cache 1)" OK
	expect "cache=1 over a file without journal" eq rc "$(cfs_write "$d"/power 1)" OK
	require "/dev/bad" wait_for 10 is_blk /dev/bad
	expect "over a file: write back" eq wc "$(cat /sys/block/bad/queue/write_cache)" "write back"
	expect "without journal: no FUA (a flush follows)" eq fua "$(cat /sys/block/bad/queue/fua)" 0
	expect "power 0" eq rc "$(cfs_write "$d"/power 0)" OK
	rm -f /tmp/rdif_cache.img
	cfs_unload
}

# The policies on single-block writes of a 512-byte CRC16 device.
policies() {
	start pc size=16 blocksize=512 csum=crc16 cache=1
	each pc 512 0 16 1
	flush pc
	expect "a flush empties the cache" eq held "$(cnt pc cache_volatile_writes)" 0
	each pc 512 0 16 2
	expect "16 volatile writes" eq held "$(cnt pc cache_volatile_writes)" 16
	expect "prefix 5" eq rc "$(cut pc prefix 5)" 0
	expect "prefix 5: first 5 kept, the rest lost" eq blocks \
		"$(blocks pc 512 16 1 2)" "2 2 2 2 2 1 1 1 1 1 1 1 1 1 1 1 "
	expect "counted kept" eq kept "$(cnt pc powercut_writes_kept)" 5
	expect "counted lost" eq lost "$(cnt pc powercut_writes_dropped)" 11
	expect "cache empty after the cut" eq held "$(cnt pc cache_volatile_writes)" 0
	each pc 512 0 16 3
	expect "none" eq rc "$(cut pc none)" 0
	expect "none: all kept" eq blocks "$(blocks pc 512 16 1 2 3)" \
		"3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 "
	each pc 512 0 16 4
	expect "all" eq rc "$(cut pc all)" 0
	expect "all: all lost" eq blocks "$(blocks pc 512 16 3 4)" \
		"3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 "
	# A chain of overwrites goes back to the newest kept.
	local n
	for n in 1 2 3; do
		for p in 5 6 7; do w pc 512 20 "$p"; done
		expect "prefix $n of a chain" eq rc "$(cut pc prefix "$n")" 0
		expect "chain: prefix $n" eq b "$(which pc 512 20 3 4 5 6 7)" $((4 + n))
	done
	for p in 8 9; do w pc 512 20 "$p"; done
	expect "all of a chain" eq rc "$(cut pc all)" 0
	expect "chain: all" eq b "$(which pc 512 20 7 8 9)" 7
	# Data that was flushed stays; what a FUA write wrote stays.
	w pc 512 30 1
	flush pc
	w pc 512 30 2
	w pc 512 31 2
	w pc 512 30 3 --dsync
	w pc 512 32 3 --dsync
	expect "with FUA" eq rc "$(cut pc all)" 0
	expect "FUA write over a volatile one survives" eq b "$(which pc 512 30 1 2 3)" 3
	expect "volatile write lost" is pc 512 31 0 --expect-zero
	expect "FUA write survives" eq b "$(which pc 512 32 3)" 3
	cfs_unload
}

# random SEED: deterministic, seed-dependent, PERCENT 0 and 100.
random_cut() {
	start rc size=16 blocksize=4096 csum=crc64 cache=1
	# history: blocks 0..63 with pattern 1 flushed, then 2 one by one
	history() {
		wr rc 4096 0 64 1
		flush rc
		each rc 4096 0 64 2
	}
	history
	expect "random 7" eq rc "$(cut rc random 7)" 0
	local s1 s2 s3
	s1=$(blocks rc 4096 64 1 2)
	expect "every block whole" not grep -q torn <<<"$s1"
	expect "some kept" grep -q 2 <<<"$s1"
	expect "some lost" grep -q 1 <<<"$s1"
	local kept lost
	kept=$(cnt rc powercut_writes_kept)
	lost=$(cnt rc powercut_writes_dropped)
	expect "kept + lost = 64" eq sum $((kept + lost)) 64
	expect "counters match the blocks" eq kept "$kept" "$(grep -o 2 <<<"$s1" | wc -l)"
	history
	expect "random 7 again" eq rc "$(cut rc random 7)" 0
	s2=$(blocks rc 4096 64 1 2)
	expect "same seed, same history: same crash state" eq state "$s2" "$s1"
	history
	expect "random 8" eq rc "$(cut rc random 8)" 0
	s3=$(blocks rc 4096 64 1 2)
	expect "another seed: another crash state" ne state "$s3" "$s1"
	history
	expect "random 7 0" eq rc "$(cut rc random 7 0)" 0
	expect "0 %: all lost" not grep -q 2 <<<"$(blocks rc 4096 64 1 2)"
	history
	expect "random 7 100" eq rc "$(cut rc random 7 100)" 0
	expect "100 %: all kept" not grep -q 1 <<<"$(blocks rc 4096 64 1 2)"
	cfs_unload
}

# Multi-block writes survive block by block, never a torn block: 4 KiB
# blocks of eight 512-byte intervals, written 1 MiB at a time.
no_torn_block() {
	start nt size=16 blocksize=4096 interval=512 csum=crc16 cache=1
	wr nt 4096 0 1024 1
	flush nt
	wr nt 4096 0 256 2
	wr nt 4096 256 256 3
	wr nt 4096 128 256 4
	expect "random 3" eq rc "$(cut nt random 3)" 0
	local s
	s=$(blocks nt 4096 512 1 2 3 4)
	expect "no torn block" not grep -q torn <<<"$s"
	expect "writes survived in part" test "$(cnt nt powercut_writes_partial)" -ge 1
	expect "blocks lost counted" test "$(cnt nt powercut_blocks_dropped)" -ge 1
	# Block 200 had 2 then 4: it holds either; 4 only where 4 was kept.
	local i b bad=0
	read -r -a b <<<"$s"
	for ((i = 0; i < 128; i++)); do
		case ${b[i]} in 1 | 2) ;; *) bad=$((bad + 1)) ;; esac
	done
	for ((i = 384; i < 512; i++)); do
		case ${b[i]} in 1 | 3) ;; *) bad=$((bad + 1)) ;; esac
	done
	expect "each block holds one of the writes that covered it" eq bad "$bad" 0
	cfs_unload
}

# Writers running at the moment of the cut: every block still whole, each
# one of the patterns written to it.
concurrent() {
	start cc size=16 blocksize=4096 csum=crc64 cache=1 hw_queues=0
	wr cc 4096 0 64 1
	flush cc
	writer() {
		local p=$1 k=0 i
		while [ ! -e /tmp/rdif_cache.stop ]; do
			i=$(((k * 7 + p * 13) % 61))
			wr cc 4096 "$i" 3 "$p" || echo "write failed: pattern $p at $i"
			k=$((k + 1))
		done
	}
	rm -f /tmp/rdif_cache.stop
	writer 2 >/tmp/rdif_cache.w2 &
	writer 3 >/tmp/rdif_cache.w3 &
	local n
	for n in 1 2 3 4 5; do
		sleep 0.3
		expect "cut $n under writers" eq rc "$(cut cc random "$n")" 0
	done
	touch /tmp/rdif_cache.stop
	wait
	expect "no write failed" eq errors "$(cat /tmp/rdif_cache.w2 /tmp/rdif_cache.w3)" ""
	expect "random 9" eq rc "$(cut cc random 9)" 0
	expect "no torn block" not grep -q torn <<<"$(blocks cc 4096 64 1 2 3)"
	expect "the cuts lost writes" test "$(cnt cc powercut_blocks_dropped)" -ge 1
	rm -f /tmp/rdif_cache.stop /tmp/rdif_cache.w2 /tmp/rdif_cache.w3
	cfs_unload
}

# The cache size bounds what a cut loses; a discard writes the cache back.
bounded() {
	start bd size=16 blocksize=4096 csum=crc64 cache=1 cache_size=1
	wr bd 4096 0 1024 1
	flush bd
	"$PI" write /dev/bd 0 $((1024 * 4096)) --pattern 2 --pieces 65536 >/dev/null
	expect "the log stays within the cache" \
		test "$(cnt bd cache_bytes)" -le $((1024 * 1024))
	expect "all" eq rc "$(cut bd all)" 0
	expect "the oldest writes were written back" is bd 4096 0 2
	expect "the newest were lost" is bd 4096 1023 1
	# Many small writes go round the log's ring of slots several times;
	# FUA writes take slots too.
	wr bd 4096 0 1024 2
	flush bd
	each bd 4096 0 1000 4
	"$PI" write /dev/bd $((1000 * 4096)) $((8 * 4096)) --pattern 4 --pieces 4096 --dsync >/dev/null
	expect "held within the cache" test "$(cnt bd cache_volatile_writes)" -le 256
	expect "all, after the ring went round" eq rc "$(cut bd all)" 0
	expect "the oldest small writes were written back" is bd 4096 0 4
	expect "the newest small writes were lost" is bd 4096 999 2
	expect "FUA writes kept" is bd 4096 1007 4
	w bd 4096 0 3
	blkdiscard -o $((512 * 4096)) -l 4096 /dev/bd
	expect "all after a discard" eq rc "$(cut bd all)" 0
	expect "a discard wrote the cache back" is bd 4096 0 3
	expect "the discard itself stays" is bd 4096 512 0 --expect-zero
	cfs_unload
}

# Writes of one block submitted together (over a backing store, one batch
# of the device's work item): after `prefix 1` the block holds one of
# them, the first the device applied, never what it held before (each
# write's pre-image is what the write before it left).
burst() {
	start bu size=16 blocksize=4096 csum=crc64 cache=1
	local r bad=0 b
	for r in 1 2 3; do
		wr bu 4096 0 1 1
		flush bu
		expect "8 writes at once ($r)" "$PI" write /dev/bu 0 4096 --pattern 2 --burst 8
		expect "8 volatile writes ($r)" eq held "$(cnt bu cache_volatile_writes)" 8
		expect "prefix 1 ($r)" eq rc "$(cut bu prefix 1)" 0
		b=$(which bu 4096 0 1 2 3 4 5 6 7 8 9)
		case $b in 1 | torn | "") bad=$((bad + 1)) ;; esac
	done
	expect "prefix 1 kept one of the writes every time" eq bad "$bad" 0
	cfs_unload
}

# A pass-through device with the cache, over an rdif without one (over a
# backing file: its writes end later, in its work item): the policies, a
# burst, FUA, no torn block; what the cut left is on the lower device.
pass_through() {
	local img=/tmp/rdif_cache_lower.img
	: >"$img"
	start lo size=16 blocksize=4096 csum=crc64 "backing=$img" format=1
	cfs_mkdev pt lower=/dev/lo blocksize=4096 csum=crc64 cache=1
	expect "write back" eq wc "$(cat /sys/block/pt/queue/write_cache)" "write back"
	expect "FUA" eq fua "$(cat /sys/block/pt/queue/fua)" 1
	wr pt 4096 0 64 1
	flush pt
	each pt 4096 0 16 2
	expect "16 volatile writes" eq held "$(cnt pt cache_volatile_writes)" 16
	expect "prefix 5" eq rc "$(cut pt prefix 5)" 0
	local want="2 2 2 2 2 1 1 1 1 1 1 1 1 1 1 1 "
	expect "prefix 5: first 5 kept, the rest lost" eq blocks "$(blocks pt 4096 16 1 2)" "$want"
	expect "the lower device holds the same" eq blocks "$(blocks lo 4096 16 1 2)" "$want"
	w pt 4096 20 3
	w pt 4096 21 3 --dsync
	expect "all" eq rc "$(cut pt all)" 0
	expect "all: the volatile write lost" eq b "$(which pt 4096 20 1 3)" 1
	expect "all: the FUA write kept" eq b "$(which pt 4096 21 1 3)" 3
	# The lower device hands the first writes back to blk-mq, to be retried
	# a little later: the next writes must not read their pre-image
	# before it (they go down one at a time).
	inj lo "fail write 4 resource"
	expect "8 writes at once" "$PI" write /dev/pt 0 4096 --pattern 4 --burst 8
	expect "the lower device retried writes" test "$(cnt lo inj_requeued)" -ge 1
	expect "prefix 1" eq rc "$(cut pt prefix 1)" 0
	local b
	b=$(which pt 4096 0 2 4 5 6 7 8 9 10 11)
	expect "prefix 1 kept one of the burst ($b)" test -n "$b" -a "$b" != 2 -a "$b" != torn
	wr pt 4096 0 64 5
	flush pt
	wr pt 4096 0 32 6
	wr pt 4096 16 32 7
	expect "random 3" eq rc "$(cut pt random 3)" 0
	local s
	s=$(blocks pt 4096 64 5 6 7)
	expect "no torn block" not grep -q torn <<<"$s"
	expect "some blocks kept, some lost" test "$(cnt pt powercut_blocks_dropped)" -ge 1
	expect "the lower device holds the same" eq blocks "$(blocks lo 4096 64 5 6 7)" "$s"
	rmdir $CFS/pt
	cfs_unload
	rm -f "$img"
}

# groups S: how many 16-block groups of state S (one pattern per block)
# hold more than one pattern
mixed_groups() {
	awk '{ m = 0; for (g = 0; g < NF / 16; g++) { for (i = 2; i <= 16; i++)
		if ($(g * 16 + i) != $(g * 16 + 1)) { m++; break } } print m }' <<<"$1"
}

# RWF_ATOMIC writes of 16 blocks survive a cut whole or not at all; the
# same writes without RWF_ATOMIC are cut block by block (the control). The
# atomic writes carry the block layer's PI: in 7.3, io_uring refuses
# RWF_ATOMIC with PI of the submitter's own (EINVAL, before the driver).
atomic() {
	start aw size=16 blocksize=4096 csum=crc64 cache=1 atomic_write_max=65536
	expect "atomic_write_max_bytes" eq max "$(cat /sys/block/aw/queue/atomic_write_max_bytes)" 65536
	expect "atomic_write_unit_min_bytes" eq min \
		"$(cat /sys/block/aw/queue/atomic_write_unit_min_bytes)" 4096
	local s k st mixed=0 plain=0 kept=0
	local seeds=(1)
	thorough && seeds=(1 2 3)
	for s in "${seeds[@]}"; do
		wr aw 4096 0 256 1
		flush aw
		for ((k = 0; k < 16; k++)); do
			# (Auto-PI: 7.3 refuses RWF_ATOMIC with io_uring user PI.)
			expect "atomic write $k" "$PI" write /dev/aw $((k * 65536)) 65536 --pattern 2 \
				--atomic --no-pi
		done
		expect "random $s" eq rc "$(cut aw random "$s")" 0
		st=$(blocks aw 4096 256 1 2)
		expect "no torn block" not grep -q torn <<<"$st"
		mixed=$((mixed + $(mixed_groups "$st")))
		kept=$((kept + $(grep -o 2 <<<"$st" | wc -l)))
		wr aw 4096 0 256 1
		flush aw
		for ((k = 0; k < 16; k++)); do wr aw 4096 $((k * 16)) 16 2; done
		expect "random $s, not atomic" eq rc "$(cut aw random "$s")" 0
		plain=$((plain + $(mixed_groups "$(blocks aw 4096 256 1 2)")))
	done
	echo "atomic writes split by the cuts: $mixed; plain writes: $plain; atomic blocks kept: $kept"
	expect "no atomic write was split" eq mixed "$mixed" 0
	expect "atomic writes were kept and lost" test "$kept" -gt 0 -a "$kept" -lt $((${#seeds[@]} * 256))
	expect "plain writes were split (the control)" test "$plain" -gt 0
	local d=$CFS/bad
	require "mkdir" mkdir "$d"
	for v in 512 3000 2097152 -1 abc; do
		expect "atomic_write_max $v (4 KiB blocks) refused" eq rc \
			"$(cfs_write "$d"/blocksize 4096; cfs_write "$d"/atomic_write_max "$v")" "OK
EINVAL"
	done
	cfs_unload
}

# The same over a backing file. A FUA write over a store without journal
# is a write and a flush, which makes every write before it durable too:
# the cases that count on FUA run journaled.
policies_file() { on_file 1 policies; }
no_torn_block_file() { on_file 0 no_torn_block; }
concurrent_file() { on_file 1 concurrent; }
bounded_file() { on_file 1 bounded; }
atomic_file() { on_file 1 atomic; }
burst_file() { on_file 1 burst; }

SAMPLE="policies_file no_torn_block_file atomic_file burst_file"
mapfile -t file_cases < <(sample policies_file no_torn_block_file concurrent_file bounded_file \
	atomic_file burst_file)
ktap_run_cases interface policies random_cut no_torn_block concurrent bounded atomic burst \
	"${file_cases[@]}" pass_through
