#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Error injection and inspection through debugfs
# (/sys/kernel/debug/rdif/<disk>/{inject,stats,pi,metadata}):
# - bad commands are refused with EINVAL (ENOSPC when full) and arm nothing;
# - a corrupted guard, ref tag, app tag or data byte (one shot: in the
#   store) is caught by the block layer's auto-verify (EILSEQ), by the
#   device's read check, shows in a user-space PI read and in the `pi` dump,
#   is NOT reported with read_verify=0 and no device check, and is healed by
#   a rewrite;
# - a persistent corruption survives rewrites until `clear`;
# - a misdirected write leaves its target stale and makes the place it
#   landed fail its ref tag check; a lost write is acknowledged, not stored;
# - `fail` fails or requeues the next N requests of a direction;
# - counters count what happened; injections do not survive power 0 unless
#   written to a backing store.
#
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
DEV=/dev/rdif0
SYS=/sys/block/rdif0
D=$DBG/rdif0
EILSEQ=84
EIO=5
BS=512

# start PARAMS...: fresh module with PARAMS, debugfs at hand
start() {
	require "clean start" rdif_clean_start
	require "insmod $*" rdif_insmod size=64 "$@"
	require "debugfs mounted" mount_debugfs
	require "debugfs directory of rdif0" test -d "$D"
}

# inj_rc CMD: the errno of writing CMD to `inject` (0 if accepted)
inj_rc() {
	local out
	out=$( (echo "$*" >"$D"/inject) 2>&1) && { echo 0; return; }
	case $out in
	*"Invalid argument"*) echo 22 ;;
	*"No space left"*) echo 28 ;;
	*) echo "?$out" ;;
	esac
}
knobs() {
	echo "$1" >"$SYS"/integrity/write_generate
	echo "$2" >"$SYS"/integrity/read_verify
}
# wblk I FILE: write FILE (one block) at block I through auto-PI
wblk() { dd if="$2" of="$DEV" bs="$BS" seek="$1" count=1 oflag=direct conv=notrunc status=none; }
# rd_rc I: errno of a plain O_DIRECT read of block I (0: success)
rd_rc() { pi_rc read "$DEV" $(($1 * BS)) "$BS" --no-pi; }
# same I FILE: block I reads back as FILE (read_verify off for the read)
same() {
	dd if="$DEV" bs="$BS" skip="$1" count=1 iflag=direct status=none 2>/dev/null | cmp -s - "$2"
}
# pi_line I: the `pi` dump line of interval I
pi_line() { echo "$1 1" >"$D"/pi && sed -n 2p "$D"/pi; }
# col LINE N: the Nth column of a dump line
col() { echo "$1" | awk -v n="$2" '{ print $n }'; }
mkblk() { head -c "$BS" /dev/urandom >"$1"; }

interface() {
	start csum=crc16 blocksize="$BS"
	local f
	for f in stats inject pi metadata; do
		expect "debugfs file $f" test -e "$D"/"$f"
	done
	expect "nothing armed at first" eq armed "$(cat "$D"/inject)" ""
	local mark nr
	mark=$(dmesg | wc -l)
	nr=$((64 * MIB / BS))
	for c in "" "bogus" "corrupt" "corrupt crc 1" "corrupt guard" "corrupt guard x" \
		"corrupt guard 1 0" "corrupt guard $nr" "corrupt guard $((nr - 1)) 2" \
		"corrupt guard 1 2 persistent extra" "misdirect" "misdirect $nr" \
		"misdirect 1 $nr" "lost 1 2 3" "lost 1 0" "fail" "fail up 1 ioerr" \
		"fail read 0 ioerr" "fail read 1 maybe" "fail read 1 ioerr x" \
		"fail read 4294967296 ioerr" "clear now"; do
		expect "'$c' refused with EINVAL" eq "'$c'" "$(inj_rc "$c")" 22
	done
	expect "nothing armed after bad commands" eq armed "$(cat "$D"/inject)" ""
	expect "store unchanged after bad commands" eq inj_corrupt "$(cnt rdif0 inj_corrupt)" 0
	expect "reason logged" grep -q "rdif0: inject: " <(dmesg | tail -n +$((mark + 1)))
	# Rules are listed in command syntax and cleared.
	inj rdif0 "fail write 3 resource"
	inj rdif0 "misdirect 10 20 4"
	inj rdif0 "lost"
	inj rdif0 "corrupt app 7 2 persistent"
	expect "armed rules listed" eq rules "$(tr '\n' ';' <"$D"/inject)" \
		"fail write 3 resource;misdirect 10 20 4;lost;corrupt app 7 2 persistent;"
	inj rdif0 clear
	expect "clear disarms all" eq armed "$(cat "$D"/inject)" ""
	# At most 16 rules of a kind.
	for f in $(seq 16); do inj rdif0 "corrupt guard $f 1 persistent"; done
	expect "17th persistent rule: ENOSPC" eq rc "$(inj_rc "corrupt guard 17 1 persistent")" 28
	expect "16 rules armed" eq rules "$(wc -l <"$D"/inject)" 16
	inj rdif0 clear
	# The pi file: range validation.
	expect "pi: bad range refused" not sh -c "echo '$nr 1' >$D/pi"
	expect "pi: count 0 refused" not sh -c "echo '0 0' >$D/pi"
	expect "pi: too many lines refused" not sh -c "echo '0 4097' >$D/pi"
	expect "pi: junk refused" not sh -c "echo 'x' >$D/pi"
	# stats: reset only.
	dd if="$DEV" of=/dev/null bs=4k count=4 iflag=direct status=none
	expect "reads counted" test "$(cnt rdif0 reads)" -gt 0
	expect "stats: junk refused" not sh -c "echo 1 >$D/stats"
	echo reset >"$D"/stats
	expect "stats reset" eq reads "$(cnt rdif0 reads)" 0
	# A device without a PI tuple refuses tuple corruption, takes data.
	require "rmmod" rdif_rmmod
	require "insmod csum=none" rdif_insmod size=64 csum=none
	expect "no tuple: corrupt guard refused" eq rc "$(inj_rc "corrupt guard 0")" 22
	expect "no metadata: no pi file" absent "$D"/pi
	mkblk /tmp/rdif_a
	wblk 3 /tmp/rdif_a
	expect "no tuple: corrupt data accepted" eq rc "$(inj_rc "corrupt data 3")" 0
	expect "no PI: data corruption goes unnoticed" not same 3 /tmp/rdif_a
	require "rmmod" rdif_rmmod
}

# corrupt_one FIELD [PARAMS...]: one-shot corruption of FIELD at block 5
corrupt_one() {
	local field=$1 before after i=5 col_of
	shift
	start read_check=0 "$@"
	knobs 1 1
	mkblk /tmp/rdif_a
	require "write block $i" wblk "$i" /tmp/rdif_a
	wblk $((i + 1)) /tmp/rdif_a
	before=$(pi_line "$i")
	echo "before: $before"
	echo reset >"$D"/stats
	require "inject corrupt $field $i" inj rdif0 "corrupt $field $i"
	expect "inj_corrupt counts it" eq inj_corrupt "$(cnt rdif0 inj_corrupt)" 1
	after=$(pi_line "$i")
	echo "after:  $after"
	case $field in
	guard) col_of=2 ;;
	app) col_of=3 ;;
	ref) col_of=4 ;;
	data) col_of=0 ;;
	esac
	if [ "$col_of" = 0 ]; then
		expect "pi dump unchanged by a data corruption" eq pi "$after" "$before"
	else
		expect "pi dump shows $field changed" ne "$field" "$(col "$after" "$col_of")" \
			"$(col "$before" "$col_of")"
		expect "pi dump: only the low byte flipped" eq "low byte" \
			"$(($(col "$after" "$col_of") ^ $(col "$before" "$col_of")))" 255
	fi
	# Auto-verify catches it (not an app tag: the block layer checks
	# guard and ref tag only); the neighbour is fine.
	if [ "$field" = app ]; then
		expect "read_verify=1: app tag not checked" eq "read rc" "$(rd_rc $i)" 0
	else
		expect "read_verify=1: EILSEQ" eq "read rc" "$(rd_rc $i)" $EILSEQ
	fi
	expect "neighbour reads fine" eq "read rc" "$(rd_rc $((i + 1)))" 0
	# With read_verify=0 and no device check nothing is reported.
	knobs 1 0
	expect "read_verify=0: read succeeds" eq "read rc" "$(rd_rc "$i")" 0
	if [ "$field" = data ]; then
		expect "read_verify=0: the flipped byte is returned" not same "$i" /tmp/rdif_a
		expect "exactly one byte differs" eq "bytes differing" "$(dd if="$DEV" bs="$BS" \
			skip="$i" count=1 iflag=direct status=none | cmp -l - /tmp/rdif_a | wc -l)" 1
	else
		expect "read_verify=0: data intact" same "$i" /tmp/rdif_a
	fi
	# A user-space PI read without checks returns the corrupted tuple,
	# byte for byte what the dump and the metadata file show.
	expect "user PI read without checks succeeds" eq rc \
		"$(pi_rc read "$DEV" $((i * BS)) "$BS" --pi-out /tmp/rdif_md)" 0
	expect "metadata file = user PI read" cmp -s /tmp/rdif_md \
		<(dd if="$D"/metadata bs="$(wc -c </tmp/rdif_md)" skip="$i" count=1 status=none)
	expect "no device check so far (read_check=0)" eq checked_read "$(cnt rdif0 checked_read)" 0
	if [ "$field" != data ]; then
		expect "user PI read checking $field: EILSEQ" eq rc \
			"$(pi_rc read "$DEV" $((i * BS)) "$BS" --chk "$field")" "$EILSEQ"
		expect "the device did that check" eq checked_read "$(cnt rdif0 checked_read)" 1
	fi
	knobs 1 1
	# A rewrite heals it.
	require "rewrite" wblk "$i" /tmp/rdif_a
	expect "rewritten block reads fine" eq "read rc" "$(rd_rc "$i")" 0
	expect "pi dump back to the original" eq pi "$(pi_line "$i")" "$before"
	require "rmmod" rdif_rmmod
}

corrupt_guard() { corrupt_one guard csum=crc16 blocksize="$BS"; }
corrupt_ref() { corrupt_one ref csum=crc16 blocksize="$BS"; }
corrupt_app() { corrupt_one app csum=crc16 blocksize="$BS"; }
corrupt_data() { corrupt_one data csum=crc16 blocksize="$BS"; }
corrupt_guard_crc64() { BS=4096 corrupt_one guard csum=crc64 blocksize=4096; }
corrupt_ref_crc64_md() {
	BS=4096 corrupt_one ref csum=crc64 blocksize=4096 metadata_size=32 pi_offset=8
}

# The device's own read check, with the block layer's verify off.
device_check() {
	local i=9 f
	start csum=crc16 blocksize="$BS" read_check=1
	knobs 1 0
	mkblk /tmp/rdif_a
	for f in guard ref data; do
		wblk "$i" /tmp/rdif_a
		echo reset >"$D"/stats
		inj rdif0 "corrupt $f $i"
		expect "$f: device read check fails the read" eq "rc" "$(rd_rc "$i")" "$EILSEQ"
		case $f in
		guard | data) expect "$f: guard_errors_read" eq n "$(cnt rdif0 guard_errors_read)" 1 ;;
		ref) expect "$f: ref_errors_read" eq n "$(cnt rdif0 ref_errors_read)" 1 ;;
		esac
		expect "$f: checked_read counted" test "$(cnt rdif0 checked_read)" -ge 1
	done
	# app tags are not the device's business unless the submitter asks.
	wblk "$i" /tmp/rdif_a
	inj rdif0 "corrupt app $i"
	expect "app: device check passes" eq rc "$(rd_rc "$i")" 0
	require "rmmod" rdif_rmmod
}

persistent() {
	local i=20
	start csum=crc16 blocksize="$BS"
	knobs 1 1
	mkblk /tmp/rdif_a
	wblk "$i" /tmp/rdif_a
	wblk $((i + 1)) /tmp/rdif_a
	wblk $((i + 2)) /tmp/rdif_a
	local before
	before=$(pi_line "$i")
	echo reset >"$D"/stats
	inj rdif0 "corrupt guard $i 2 persistent"
	expect "block $i fails" eq rc "$(rd_rc "$i")" "$EILSEQ"
	expect "block $((i + 1)) fails" eq rc "$(rd_rc $((i + 1)))" "$EILSEQ"
	expect "block $((i + 2)) outside the range reads fine" eq rc "$(rd_rc $((i + 2)))" 0
	expect "still failing on the next read" eq rc "$(rd_rc "$i")" "$EILSEQ"
	wblk "$i" /tmp/rdif_a
	expect "a rewrite does not heal it" eq rc "$(rd_rc "$i")" "$EILSEQ"
	expect "dump shows the corruption" ne pi "$(pi_line "$i")" "$before"
	expect "each corrupted read counted" test "$(cnt rdif0 inj_corrupt)" -ge 4
	inj rdif0 clear
	expect "after clear: reads fine" eq rc "$(rd_rc "$i")" 0
	expect "the store was never changed" eq pi "$(pi_line "$i")" "$before"
	# Persistent data corruption.
	inj rdif0 "corrupt data $i persistent"
	expect "persistent data corruption: EILSEQ" eq rc "$(rd_rc "$i")" "$EILSEQ"
	knobs 1 0
	expect "read_verify=0: flipped data returned" not same "$i" /tmp/rdif_a
	inj rdif0 clear
	expect "after clear: data intact" same "$i" /tmp/rdif_a
	require "rmmod" rdif_rmmod
}

misdirect() {
	local x=40 t=60
	start csum=crc16 blocksize="$BS"
	knobs 1 1
	mkblk /tmp/rdif_a
	mkblk /tmp/rdif_b
	mkblk /tmp/rdif_t
	wblk "$x" /tmp/rdif_a
	wblk "$t" /tmp/rdif_t
	echo reset >"$D"/stats
	inj rdif0 "misdirect $t $x 1"
	# Another write outside the range is not affected.
	wblk $((x + 1)) /tmp/rdif_b
	expect "write outside the range lands" same $((x + 1)) /tmp/rdif_b
	expect "write to $x acknowledged" wblk "$x" /tmp/rdif_b
	expect "inj_misdirected" eq n "$(cnt rdif0 inj_misdirected)" 1
	expect "rule fired once and is gone" eq armed "$(cat "$D"/inject)" ""
	expect "target $x is stale but consistent" eq rc "$(rd_rc "$x")" 0
	expect "target $x holds the old data" same "$x" /tmp/rdif_a
	expect "block $t fails its ref tag check (auto-verify)" eq rc "$(rd_rc "$t")" "$EILSEQ"
	expect "user PI read of $t with ref check: EILSEQ" eq rc \
		"$(pi_rc read "$DEV" $((t * BS)) "$BS" --chk ref)" "$EILSEQ"
	expect "user PI read of $t with guard check only: fine" eq rc \
		"$(pi_rc read "$DEV" $((t * BS)) "$BS" --chk guard)" 0
	expect "pi dump: ref tag of $t is $x" eq ref "$(($(col "$(pi_line "$t")" 4)))" "$x"
	knobs 1 0
	expect "$t holds the misdirected data" same "$t" /tmp/rdif_b
	knobs 1 1
	# Without a range: the next write, whatever it is.
	inj rdif0 "misdirect $t"
	wblk 3 /tmp/rdif_a
	expect "unranged misdirect hits the next write" eq n "$(cnt rdif0 inj_misdirected)" 2
	expect "block 3 fails at $t" eq "ref" "$(($(col "$(pi_line "$t")" 4)))" 3
	require "rmmod" rdif_rmmod
}

lost() {
	local x=70
	start csum=crc16 blocksize="$BS"
	knobs 1 1
	mkblk /tmp/rdif_a
	mkblk /tmp/rdif_b
	wblk "$x" /tmp/rdif_a
	echo reset >"$D"/stats
	inj rdif0 "lost $x 1"
	expect "lost write acknowledged" wblk "$x" /tmp/rdif_b
	expect "inj_lost" eq n "$(cnt rdif0 inj_lost)" 1
	expect "old data still there" same "$x" /tmp/rdif_a
	expect "old data reads with good PI" eq rc "$(rd_rc "$x")" 0
	expect "next write is stored (one shot)" wblk "$x" /tmp/rdif_b
	expect "new data there" same "$x" /tmp/rdif_b
	require "rmmod" rdif_rmmod
}

fail() {
	start csum=crc16 blocksize="$BS"
	knobs 1 1
	mkblk /tmp/rdif_a
	wblk 1 /tmp/rdif_a
	echo reset >"$D"/stats
	inj rdif0 "fail read 2 ioerr"
	expect "1st read: EIO" eq rc "$(rd_rc 1)" "$EIO"
	expect "writes unaffected" wblk 2 /tmp/rdif_a
	expect "2nd read: EIO" eq rc "$(rd_rc 1)" "$EIO"
	expect "3rd read: fine" eq rc "$(rd_rc 1)" 0
	expect "inj_failed" eq n "$(cnt rdif0 inj_failed)" 2
	mkblk /tmp/rdif_b
	inj rdif0 "fail write 1 protection"
	expect "write fails with EILSEQ" not wblk 1 /tmp/rdif_b
	expect "nothing stored" same 1 /tmp/rdif_a
	# Each dispatch of a requeued request counts: a read requeued twice
	# uses up `fail read 2`, then goes through.
	inj rdif0 "fail read 2 resource"
	expect "requeued read still succeeds" eq rc "$(rd_rc 1)" 0
	expect "inj_requeued after the read" eq n "$(cnt rdif0 inj_requeued)" 2
	expect "nothing left armed" eq armed "$(cat "$D"/inject)" ""
	inj rdif0 "fail write 2 resource"
	expect "requeued write still succeeds" wblk 1 /tmp/rdif_b
	expect "inj_requeued after the write" eq n "$(cnt rdif0 inj_requeued)" 4
	expect "and is stored" same 1 /tmp/rdif_b
	expect "nothing left armed" eq armed "$(cat "$D"/inject)" ""
	require "rmmod" rdif_rmmod
}

counters() {
	start csum=crc16 blocksize="$BS"
	echo reset >"$D"/stats
	knobs 1 1
	dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct status=none
	expect "reads" eq reads "$(cnt rdif0 reads)" 1
	expect "read_intervals" eq n "$(cnt rdif0 read_intervals)" 8
	expect "escape_read (fresh device)" eq n "$(cnt rdif0 escape_read)" 8
	mkblk /tmp/rdif_a
	wblk 0 /tmp/rdif_a
	expect "writes" eq writes "$(cnt rdif0 writes)" 1
	expect "write_intervals" eq n "$(cnt rdif0 write_intervals)" 1
	expect "auto-PI write checked" eq n "$(cnt rdif0 checked_write)" 1
	knobs 0 1
	wblk 1 /tmp/rdif_a
	expect "write_generate=0: PRACT generation" eq n "$(cnt rdif0 pract_generated)" 1
	# A user PI write with a bad guard is rejected and counted.
	expect "bad guard rejected" eq rc \
		"$(pi_rc write "$DEV" 0 "$BS" --chk guard --corrupt guard)" "$EILSEQ"
	expect "guard_errors_write" eq n "$(cnt rdif0 guard_errors_write)" 1
	expect "bad ref rejected" eq rc "$(pi_rc write "$DEV" 0 "$BS" --chk ref --corrupt ref)" "$EILSEQ"
	expect "ref_errors_write" eq n "$(cnt rdif0 ref_errors_write)" 1
	expect "bad app rejected" eq rc \
		"$(pi_rc write "$DEV" 0 "$BS" --chk app --app-tag 7 --corrupt app)" "$EILSEQ"
	expect "app_errors_write" eq n "$(cnt rdif0 app_errors_write)" 1
	expect "rejected writes stored nothing" same 0 /tmp/rdif_a
	sync "$DEV"
	blkdiscard -o 0 -l 4096 "$DEV" 2>/dev/null
	expect "discards" eq n "$(cnt rdif0 discards)" 1
	require "rmmod" rdif_rmmod
}

# Injections and power cycles (configfs): armed rules and memory contents
# go with power 0; a one-shot corruption written to a backing file stays.
power_cycle() {
	local d=$CFS/inj img=/tmp/rdif_inj.img a
	cfs_load
	require "debugfs" mount_debugfs
	rm -f "$img"
	truncate -s 80M "$img"
	require "mkdir $d" mkdir "$d"
	for a in "size 64" "csum crc16" "blocksize 512" "backing $img" "format 1" "power 1"; do
		# shellcheck disable=SC2086
		expect "set $a" eq "$a" "$(cfs_write $d/${a%% *} "${a#* }")" OK
	done
	require "/dev/inj" wait_for 10 is_blk /dev/inj
	local dbg=/sys/kernel/debug/rdif/inj
	head -c 4096 /dev/urandom >/tmp/rdif_a
	dd if=/tmp/rdif_a of=/dev/inj bs=4096 count=1 oflag=direct,sync status=none
	echo "corrupt guard 2" >"$dbg"/inject
	echo "corrupt guard 5 1 persistent" >"$dbg"/inject
	echo "fail read 5 ioerr" >"$dbg"/inject
	expect "power 0" eq power "$(cfs_write "$d"/power 0)" OK
	expect "power 1" eq power "$(cfs_write "$d"/power 1)" OK
	require "/dev/inj again" wait_for 10 is_blk /dev/inj
	settle
	expect "no rule survives power 0" eq armed "$(cat "$dbg"/inject)" ""
	expect "counters start again" eq n "$(awk '$1 == "inj_corrupt" { print $2 }' "$dbg"/stats)" 0
	expect "persistent rule gone: block 5 reads" \
		dd if=/dev/inj of=/dev/null bs=512 skip=5 count=1 iflag=direct status=none
	expect "one-shot corruption in the file stays: block 2 fails" \
		not dd if=/dev/inj of=/dev/null bs=512 skip=2 count=1 iflag=direct status=none
	expect "block 1 fine" dd if=/dev/inj of=/dev/null bs=512 skip=1 count=1 iflag=direct status=none
	cfs_unload
	rm -f "$img"
}

ktap_run_cases interface corrupt_guard corrupt_ref corrupt_app corrupt_data \
	corrupt_guard_crc64 corrupt_ref_crc64_md device_check persistent misdirect lost fail \
	counters power_cycle
