#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Hostile input: every module parameter, configfs attribute and debugfs
# command is fed values such as 0, -1, 2^32, 2^64, "abc", an empty string
# and 5000 characters, and odd paths for `backing`. Each value is either
# refused (EINVAL, or EBUSY/EEXIST where that is the reason) with the state
# unchanged, or accepted and valid. Nothing oopses (run_guest.sh's
# dmesg_clean fails on any splat), no lock stays held (rmdir and rmmod
# work at the end) and the device does I/O afterwards.
#
# Also: crafted and truncated backing-store headers, a damaged journal
# superblock and a crafted journal entry are refused with a
# reason and never trusted, and backing stores are exclusive (two devices
# never share one; `format` never wipes a store in use).
#
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env

LONG=$(printf 'x%.0s' $(seq 5000))
# Values every number-taking input gets (make check-full); make check
# gives each a sample: zero, negative, just past 32 and 64 bits, not a
# number, empty, and very long.
NUMS=(0 -1 255 4096 2147483648 4294967295 4294967296 9223372036854775807
	18446744073709551615 18446744073709551616 0x10 0x abc 12abc ' ' '' "$LONG")
thorough || NUMS=(0 -1 4294967296 18446744073709551616 12abc '' "$LONG")

mount_debugfs() {
	[ -d $DBG ] && return 0
	mount -t debugfs none /sys/kernel/debug 2>/dev/null
	[ -d $DBG ]
}

# io_works DEV: a 4 KiB direct write and read-back through auto-PI
io_works() {
	head -c 4096 /dev/urandom >/tmp/rdif_h.blk &&
		dd if=/tmp/rdif_h.blk of="$1" bs=4096 count=1 oflag=direct status=none &&
		dd if="$1" bs=4096 count=1 iflag=direct status=none | cmp -s - /tmp/rdif_h.blk
}

# w FILE LINE: write LINE into a debugfs file; prints OK or the errno name
w() {
	local out
	out=$( (printf '%s\n' "$2" >"$1") 2>&1) && { echo OK; return; }
	case $out in
	*"Invalid argument"*) echo EINVAL ;;
	*"No space left"*) echo ENOSPC ;;
	*"Input/output"*) echo EIO ;;
	*"Cannot allocate"*) echo ENOMEM ;;
	*) echo "$out" ;;
	esac
}

# Module parameters: insmod either fails (nothing left behind) or loads
# devices that work.
PARAMS=(nr_devices size blocksize csum ref_tag metadata_size pi_offset interval
	pract read_check hw_queues queue_depth cache cache_size atomic_write_max)

module_params() {
	local p v rc out n=0 loaded=0 tried devs
	require "clean start" rdif_clean_start
	for p in "${PARAMS[@]}"; do
		tried=0
		# Validation does not need a device: nr_devices=0 spares each
		# value a disk and its udev events.
		devs=nr_devices=0
		[ "$p" = nr_devices ] && devs=
		for v in "${NUMS[@]}" crc16 crc64 none; do
			n=$((n + 1))
			# shellcheck disable=SC2086
			out=$(insmod "$RDIF_KO" size=1 $devs "$p=$v" 2>&1)
			rc=$?
			if [ $rc != 0 ]; then
				rdif_loaded && case_fail "$p=${v:0:20}: insmod failed but the module stayed"
				[ -e /sys/block/rdif0 ] && case_fail "$p=${v:0:20}: insmod failed but rdif0 exists"
				continue
			fi
			loaded=$((loaded + 1))
			# A device with the first value each parameter accepts
			# must work.
			if [ $tried = 0 ] && [ -n "$devs" ] && [ "$p=$v" != nr_devices=0 ]; then
				expect "$p=${v:0:20}: rmmod" rdif_rmmod
				expect "$p=${v:0:20}: accepted with a device" insmod "$RDIF_KO" size=1 "$p=$v"
			fi
			if [ $tried = 0 ] && [ -e /sys/block/rdif0 ]; then
				wait_for 10 is_blk /dev/rdif0
				settle
				expect "$p=${v:0:20}: accepted and the device works" io_works /dev/rdif0
				tried=1
			fi
			expect "$p=${v:0:20}: rmmod" rdif_rmmod
		done
	done
	echo "$n values tried, $loaded loaded"
	# The values that must load and must not.
	expect "pi_offset=4294967295 refused" not insmod "$RDIF_KO" blocksize=4096 metadata_size=64 pi_offset=4294967295
	expect "pi_offset=4294967288 refused" not insmod "$RDIF_KO" blocksize=4096 metadata_size=64 pi_offset=4294967288
	expect "size=18446744073709551615 refused" not insmod "$RDIF_KO" size=18446744073709551615
	expect "nr_devices=4294967295 refused" not insmod "$RDIF_KO" nr_devices=4294967295
	expect "metadata_size=64 pi_offset=48 loads" insmod "$RDIF_KO" size=1 blocksize=4096 metadata_size=64 pi_offset=48
	settle
	expect "and works" io_works /dev/rdif0
	require "rmmod" rdif_rmmod
}

# The attributes of a device directory.
ATTRS=(size blocksize csum ref_tag metadata_size pi_offset interval pract read_check
	hw_queues queue_depth cache cache_size atomic_write_max)

# snapshot DIR: every attribute's value, one line (with builtins only:
# it runs for every value tried)
snapshot() {
	local a v
	for a in "${ATTRS[@]}" backing power; do
		v=
		read -r v <"$1/$a"
		printf '%s=%s ' "$a" "$v"
	done
}

configfs_attrs() {
	local a v r before after default last
	cfs_load
	mkdir $CFS/h
	for a in "${ATTRS[@]}"; do
		default=$(cat $CFS/h/$a)
		last=
		for v in "${NUMS[@]}" crc16 crc64 none ip; do
			before=$(snapshot $CFS/h)
			r=$(cfs_write $CFS/h/$a "$v")
			case $r in
			OK)
				# Accepted: it reads back as a valid value (powered on
				# below).
				[ "$(cat $CFS/h/$a)" != "$default" ] && last=$v
				;;
			EINVAL)
				after=$(snapshot $CFS/h)
				expect "$a=${v:0:20}: refused, nothing changed" eq "$a" "$after" "$before"
				;;
			*) case_fail "$a=${v:0:20}: unexpected result '$r'" ;;
			esac
			# Back to the default for the next value.
			expect "$a: default restored" eq "$a" "$(cfs_write $CFS/h/$a "$default")" OK
		done
		# The last accepted value that is not the default makes a device
		# that powers on and works.
		[ -n "$last" ] || continue
		cfs_write $CFS/h/$a "$last" >/dev/null
		echo "$a=${last:0:20}: power on"
		expect "$a=${last:0:20}: accepted value powers on" eq power "$(cfs_write $CFS/h/power 1)" OK &&
			{ wait_for 10 is_blk /dev/h && expect "$a=${last:0:20}: device works" io_works /dev/h; }
		expect "$a=${last:0:20}: power off" eq power "$(cfs_write $CFS/h/power 0)" OK
		cfs_write $CFS/h/$a "$default" >/dev/null
	done
	# The crash of issue 12: a sum that overflows.
	cfs_write $CFS/h/blocksize 4096 >/dev/null
	cfs_write $CFS/h/metadata_size 64 >/dev/null
	expect "pi_offset=4294967295 refused" eq pi_offset "$(cfs_write $CFS/h/pi_offset 4294967295)" EINVAL
	expect "pi_offset unchanged" eq pi_offset "$(cat $CFS/h/pi_offset)" 0
	expect "pi_offset=48 accepted" eq pi_offset "$(cfs_write $CFS/h/pi_offset 48)" OK
	# power and format take booleans.
	for v in 2 -1 abc '' "$LONG" 4294967296; do
		expect "power=${v:0:20} refused" eq power "$(cfs_write $CFS/h/power "$v")" EINVAL
		expect "format=${v:0:20} refused" eq format "$(cfs_write $CFS/h/format "$v")" EINVAL
	done
	expect "still off" eq power "$(cat $CFS/h/power)" 0
	expect "power on" eq power "$(cfs_write $CFS/h/power 1)" OK
	wait_for 10 is_blk /dev/h
	expect "device works after the sweep" io_works /dev/h
	expect "rmdir of a powered device" rmdir $CFS/h
	cfs_unload
}

# Odd backing paths: refused when written (relative, too long) or when
# powering on (not a file or block device, missing directory), with the
# device left off; a directory never becomes a store.
backing_paths() {
	local v r
	cfs_load
	mkdir $CFS/b
	cfs_write $CFS/b/size 4 >/dev/null
	for v in relative.img ./x ../x "$LONG" "a
b"; do
		r=$(cfs_write $CFS/b/backing "$v")
		expect "backing '${v:0:20}' refused" eq backing "$r" EINVAL
		expect "backing unchanged" eq backing "$(cat $CFS/b/backing)" ""
	done
	for v in /nonexistent/dir/x.img / /dev/null /dev /proc/version /sys/kernel/config/rdif/features; do
		expect "backing '$v' stored" eq backing "$(cfs_write $CFS/b/backing "$v")" OK
		r=$(cfs_write $CFS/b/power 1)
		expect "power on over '$v' refused" test "$r" != OK
		expect "still off" eq power "$(cat $CFS/b/power)" 0
		expect "no /dev/b" absent /dev/b
		expect "format of '$v' refused" test "$(cfs_write $CFS/b/format 1)" != OK
	done
	expect "/dev/null still a character device" test -c /dev/null
	expect "back to memory" eq backing "$(cfs_write $CFS/b/backing '')" OK
	expect "power on" eq power "$(cfs_write $CFS/b/power 1)" OK
	wait_for 10 is_blk /dev/b
	expect "device works" io_works /dev/b
	cfs_unload
}

# One store, two devices: the second is refused while the first has it;
# format of a store in use is refused and leaves it intact.
exclusive_backing() {
	local img=/tmp/rdif_excl.img loop r sum
	cfs_load
	rm -f $img
	mkdir $CFS/a $CFS/b
	for d in a b; do
		cfs_write $CFS/$d/size 4 >/dev/null
		cfs_write $CFS/$d/backing $img >/dev/null
	done
	require "a on" eq power "$(cfs_write $CFS/a/power 1)" OK
	wait_for 10 is_blk /dev/a
	require "a works" io_works /dev/a
	blockdev --flushbufs /dev/a
	expect "b over the same file refused" eq power "$(cfs_write $CFS/b/power 1)" EBUSY
	expect "b still off" eq power "$(cat $CFS/b/power)" 0
	ln -f $img /tmp/rdif_excl.link
	cfs_write $CFS/b/backing /tmp/rdif_excl.link >/dev/null
	expect "b over a hard link of it refused" eq power "$(cfs_write $CFS/b/power 1)" EBUSY
	sum=$(md5sum <$img)
	expect "format of the store in use refused" eq format "$(cfs_write $CFS/b/format 1)" EBUSY
	expect "the store is untouched" eq md5 "$(md5sum <$img)" "$sum"
	expect "a still works" io_works /dev/a
	expect "a off" eq power "$(cfs_write $CFS/a/power 0)" OK
	expect "then b may use it" eq power "$(cfs_write $CFS/b/power 1)" OK
	expect "b off" eq power "$(cfs_write $CFS/b/power 0)" OK
	expect "and format it" eq format "$(cfs_write $CFS/b/format 1)" OK
	# Block devices: claimed exclusively.
	truncate -s 16M /tmp/rdif_excl.loop
	loop=$(losetup -f --show /tmp/rdif_excl.loop)
	cfs_write $CFS/a/backing "$loop" >/dev/null
	cfs_write $CFS/b/backing "$loop" >/dev/null
	expect "format of $loop" eq format "$(cfs_write $CFS/a/format 1)" OK
	expect "a over $loop" eq power "$(cfs_write $CFS/a/power 1)" OK
	expect "b over the same device refused" eq power "$(cfs_write $CFS/b/power 1)" EBUSY
	expect "format of the claimed device refused" test "$(cfs_write $CFS/b/format 1)" != OK
	expect "a off" eq power "$(cfs_write $CFS/a/power 0)" OK
	mkfs.ext4 -q -F "$loop" && mkdir -p /tmp/rdif_mnt && mount "$loop" /tmp/rdif_mnt
	r=$(cfs_write $CFS/a/format 1)
	expect "format of a mounted device refused" test "$r" != OK
	expect "the file system is intact" test -d /tmp/rdif_mnt/lost+found
	umount /tmp/rdif_mnt
	losetup -d "$loop"
	rm -f $img /tmp/rdif_excl.link /tmp/rdif_excl.loop
	cfs_unload
}

# make_store IMG: a fresh 4 MiB crc16 store made by rdif itself
make_store() {
	rm -f "$1"
	mkdir $CFS/s
	cfs_write $CFS/s/size 4 >/dev/null
	cfs_write $CFS/s/backing "$1" >/dev/null
	[ "$(cfs_write $CFS/s/power 1)" = OK ] || return 1
	wait_for 10 is_blk /dev/s && io_works /dev/s && blockdev --flushbufs /dev/s
	[ "$(cfs_write $CFS/s/power 0)" = OK ]
}

# poke IMG OFFSET HEXBYTES: overwrite bytes of IMG
poke() {
	printf "$(sed 's/\(..\)/\\x\1/g' <<<"$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# Header fields (little endian): magic 0, version 8, header size 12,
# csum 16, ref_tag 17, metadata_size 18, pi_offset 19, interval 20,
# blocksize 24, capacity 32, data_offset 40, meta_offset 48, meta_size 56,
# checksum 64.
# name | offset | bytes | fix the checksum afterwards
CRAFTED=(
	"bad magic|0|5844494652535452|1"
	"version 0|8|00000000|1"
	"version 1 (before the journal)|8|01000000|1"
	"version 4|8|04000000|1"
	"version 4294967295|8|ffffffff|1"
	"checksum wrong|64|0000000000000000|0"
	"a field changed, checksum not|32|0000000001000000|0"
	"csum code 9|16|09|1"
	"csum crc64|16|03|1"
	"metadata_size 255|18|ff|1"
	"pi_offset 250|19|fa|1"
	"interval 0|20|00000000|1"
	"interval 3|20|03000000|1"
	"interval 2^31|20|00000080|1"
	"blocksize 0|24|00000000|1"
	"blocksize 2^32-1|24|ffffffff|1"
	"capacity 0|32|0000000000000000|1"
	"capacity 2^64-1|32|ffffffffffffffff|1"
	"capacity 8 MiB|32|0000800000000000|1"
	"data_offset 2^64-1|40|ffffffffffffffff|1"
	"data_offset 0|40|0000000000000000|1"
	"meta_offset 0|48|0000000000000000|1"
	"meta_offset 2^63|48|0000000000000080|1"
	"meta_size 2^64-1|56|ffffffffffffffff|1"
	"meta_size 0|56|0000000000000000|1"
)

# journal_offset IMG: where the journal of store IMG starts
journal_offset() {
	local mo ms
	mo=$(od -An -t u8 -j 48 -N 8 "$1" | tr -d ' ')
	ms=$(od -An -t u8 -j 56 -N 8 "$1" | tr -d ' ')
	echo $(( (mo + ms + 4095) / 4096 * 4096 ))
}

# craft_entry IMG JOURNAL_OFFSET [FIRST [BAD]]: writes a first journal
# entry as layout version 2 wrote them ("RDIFJENT", CRC64-NVMe checksum): a
# reset of interval FIRST (default: far beyond the end), with a correct
# checksum unless BAD is given
craft_entry() {
	python3 - "$1" "$2" "${3:-$((1 << 40))}" "${4:-}" <<'PY'
import struct, sys
def crc64_nvme(data, crc=0):
    crc ^= (1 << 64) - 1
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x9A6C9329AC4BC9B5 if crc & 1 else 0)
    return crc ^ ((1 << 64) - 1)
path, jo, first, bad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(path, "r+b") as f:
    f.seek(jo + 8)
    gen = struct.unpack("<Q", f.read(8))[0]
    hdr = b"RDIFJENT" + struct.pack("<II", 2, 0) + struct.pack("<QQQQQ", gen, 0, first, 1, 0)
    hdr += struct.pack("<Q", crc64_nvme(hdr) ^ (1 if bad else 0))
    f.seek(jo + 4096)
    f.write(hdr)
PY
}

# version IMG: the layout version in the header of store IMG
version() { od -An -t u4 -j 8 -N 4 "$1" | tr -d ' '; }

# A store of layout version 2 (CRC64-NVMe journal entries) opens: an entry
# with a right CRC64 is replayed, one with a wrong one ends the journal, and
# the header is then version 3 (an older rdif refuses it rather than stop
# its replay at a CRC32C entry).
version_2_store() {
	local img=/tmp/rdif_v2.img good=/tmp/rdif_v2.good jo mark bad n
	cfs_load
	rm -f $good
	cfs_mkdev v size=4 csum=crc16 blocksize=512 backing=$good
	expect "a new store is version 3" eq version "$(version $good)" 3
	expect "write intervals 8-15" "$PI" write /dev/v 4096 4096 --pattern 7
	expect "off" eq power "$(cfs_write $CFS/v/power 0)" OK
	jo=$(journal_offset $good)
	for bad in "" bad; do
		cp $good $img
		poke $img 8 02000000
		"$PI" header-crc $img
		expect "craft a version 2 reset of interval 9${bad:+ (wrong CRC64)}" craft_entry $img "$jo" 9 $bad
		cfs_write $CFS/v/backing $img >/dev/null
		mark=$(dmesg | wc -l)
		expect "version 2${bad:+, wrong CRC64}: opens" eq power "$(cfs_write $CFS/v/power 1)" OK
		require "/dev/v" wait_for 10 is_blk /dev/v
		n=$(dmesg | tail -n +$((mark + 1)) | sed -n 's/.*backing .*: replayed \([0-9]*\) journal entries.*/\1/p')
		if [ -z "$bad" ]; then
			expect "the CRC64 entry is replayed" eq replayed "${n:-0}" 1
			expect "interval 9 reset: zeroes, escape PI" "$PI" read /dev/v 4608 512 --expect-zero
			expect "interval 8 kept" "$PI" read /dev/v 4096 512 --pattern 7 --verify
			expect "intervals 10-15 kept" "$PI" read /dev/v 5120 3072 --pattern 7 --verify
		else
			expect "a wrong CRC64 ends the journal" eq replayed "${n:-0}" 0
			expect "intervals 8-15 kept" "$PI" read /dev/v 4096 4096 --pattern 7 --verify
		fi
		expect "the header is version 3 now" eq version "$(version $img)" 3
		expect "off" eq power "$(cfs_write $CFS/v/power 0)" OK
		expect "and opens as version 3" eq power "$(cfs_write $CFS/v/power 1)" OK
		expect "off again" eq power "$(cfs_write $CFS/v/power 0)" OK
	done
	rm -f $img $good
	cfs_unload
}

crafted_headers() {
	local img=/tmp/rdif_hdr.img good=/tmp/rdif_hdr.good c name off bytes fix r mark
	cfs_load
	require "a store made by rdif" make_store $good
	rmdir $CFS/s
	mkdir $CFS/c
	cfs_write $CFS/c/size 4 >/dev/null
	cfs_write $CFS/c/backing $img >/dev/null
	cp $good $img
	expect "the untouched store opens" eq power "$(cfs_write $CFS/c/power 1)" OK
	expect "off" eq power "$(cfs_write $CFS/c/power 0)" OK
	for c in "${CRAFTED[@]}"; do
		IFS='|' read -r name off bytes fix <<<"$c"
		cp $good $img
		poke $img "$off" "$bytes"
		[ "$fix" = 1 ] && "$PI" header-crc $img
		mark=$(dmesg | wc -l)
		r=$(cfs_write $CFS/c/power 1)
		expect "$name: refused" test "$r" != OK
		expect "$name: still off" eq power "$(cat $CFS/c/power)" 0
		expect "$name: a reason in the log" grep -q "rdif: c: backing $img: " <(dmesg | tail -n +$((mark + 1)))
		[ "$r" = OK ] && cfs_write $CFS/c/power 0 >/dev/null
	done
	# The journal (after the metadata region, 4 KiB aligned): a damaged
	# superblock, and an entry whose checksum is right but whose range lies
	# beyond the store.
	local jo
	jo=$(journal_offset $good)
	cp $good $img
	poke $img "$jo" 00
	expect "journal superblock damaged: refused" test "$(cfs_write $CFS/c/power 1)" != OK
	cp $good $img
	expect "craft a journal entry" craft_entry $img "$jo"
	mark=$(dmesg | wc -l)
	expect "journal entry beyond the store: refused" test "$(cfs_write $CFS/c/power 1)" != OK
	expect "journal entry beyond the store: the reason logged" \
		grep -q "rdif: c: backing $img: a journal entry does not fit" <(dmesg | tail -n +$((mark + 1)))
	[ "$(cat $CFS/c/power)" = 1 ] && cfs_write $CFS/c/power 0 >/dev/null
	# Truncated stores.
	local sizes=(0 71 72 $((4 * MIB)))
	thorough && sizes=(0 10 71 72 4096 $((2 * MIB)) $((4 * MIB)))
	for size in "${sizes[@]}"; do
		cp $good $img
		truncate -s $size $img
		r=$(cfs_write $CFS/c/power 1)
		if [ $size = 0 ]; then
			# An empty file is a new store.
			expect "empty file: a new store" eq power "$r" OK
			expect "off" eq power "$(cfs_write $CFS/c/power 0)" OK
			continue
		fi
		expect "truncated to $size: refused" test "$r" != OK
		expect "truncated to $size: still off" eq power "$(cat $CFS/c/power)" 0
	done
	# A store that is longer than needed is fine.
	cp $good $img
	truncate -s +1M $img
	expect "a longer file opens" eq power "$(cfs_write $CFS/c/power 1)" OK
	expect "and works" io_works /dev/c
	rm -f $img $good
	cfs_unload
}

# debugfs: inject, pi and stats refuse bad commands and arm nothing.
debugfs_cmds() {
	local cmd out v
	require "clean start" rdif_clean_start
	require "insmod" rdif_insmod size=4 csum=crc16 blocksize=512
	require "debugfs" mount_debugfs
	local D=$DBG/rdif0
	for v in "${NUMS[@]}"; do
		for cmd in "corrupt guard $v" "corrupt data $v" "corrupt app 0 $v" "corrupt ref $v 1 persistent" \
			"misdirect $v" "misdirect 0 $v" "misdirect 0 0 $v" "lost $v" "lost 0 $v" \
			"fail read $v ioerr" "fail any $v resource" "$v" "clear $v" "corrupt $v 0"; do
			out=$( (printf '%s\n' "$cmd" >$D/inject) 2>&1)
			if [ -n "$out" ]; then
				expect "inject '${cmd:0:40}': EINVAL" grep -q "Invalid argument" <<<"$out" ||
					echo "$out"
				expect "inject '${cmd:0:40}': nothing armed" eq armed "$(cat $D/inject)" ""
			fi
			echo clear >$D/inject
		done
		out=$( (printf '%s\n' "$v" >$D/pi) 2>&1)
		[ -n "$out" ] && expect "pi '${v:0:20}': EINVAL" grep -q "Invalid argument" <<<"$out"
		out=$( (printf '%s 1\n' "$v" >$D/pi) 2>&1)
		[ -n "$out" ] && expect "pi '${v:0:20} 1': EINVAL" grep -q "Invalid argument" <<<"$out"
		cat $D/pi >/dev/null || case_fail "pi read after '${v:0:20}'"
		out=$( (printf '%s\n' "$v" >$D/stats) 2>&1)
		[ "$v" = 0 ] || expect "stats '${v:0:20}': EINVAL" grep -q "Invalid argument" <<<"$out"
	done
	# Limits of the device (8192 intervals).
	expect "corrupt beyond the end refused" eq "corrupt guard 8192" "$(w $D/inject 'corrupt guard 8192')" EINVAL
	expect "corrupt across the end refused" eq "corrupt guard 8191 2" "$(w $D/inject 'corrupt guard 8191 2')" EINVAL
	expect "corrupt up to the end accepted" eq "corrupt guard 8191 1" "$(w $D/inject 'corrupt guard 8191 1')" OK
	expect "misdirect beyond the end refused" eq "misdirect 8192" "$(w $D/inject 'misdirect 8192')" EINVAL
	expect "pi beyond the end refused" eq "8192 1" "$(w $D/pi '8192 1')" EINVAL
	expect "pi count 0 refused" eq "0 0" "$(w $D/pi '0 0')" EINVAL
	for i in $(seq 16); do
		echo "corrupt guard $i 1 persistent" >$D/inject || case_fail "persistent rule $i refused"
	done
	out=$( (echo 'corrupt guard 0 1 persistent' >$D/inject) 2>&1)
	expect "17th persistent rule: ENOSPC" grep -q "No space left" <<<"$out"
	echo clear >$D/inject
	# A huge range: persistent is fine, one shot is capped (each interval
	# may need memory).
	expect "persistent over the whole device" eq "corrupt data 0 8192 persistent" "$(w $D/inject 'corrupt data 0 8192 persistent')" OK
	echo clear >$D/inject
	# Reading the binary metadata file at odd offsets.
	expect "metadata read at an odd offset" dd if=$D/metadata of=/dev/null bs=7 skip=3 count=5 status=none
	expect "device works after the sweep" io_works /dev/rdif0
	require "rmmod" rdif_rmmod
	require "big device" rdif_insmod size=1024 csum=crc16 blocksize=512
	D=$DBG/rdif0
	expect "one-shot corrupt of 65537 intervals refused" eq "corrupt data 0 65537" "$(w $D/inject 'corrupt data 0 65537')" EINVAL
	expect "one-shot corrupt of 65536 intervals accepted" eq "corrupt guard 0 65536" "$(w $D/inject 'corrupt guard 0 65536')" OK
	expect "rmmod" rdif_rmmod
}

# powercut POLICY on DEV: OK, or the errno's name
pc() {
	local out
	out=$( (printf '%s\n' "$2" >"$DBG/$1"/powercut) 2>&1) && { echo OK; return; }
	case $out in
	*"Invalid argument"*) echo EINVAL ;;
	*) echo "$out" ;;
	esac
}

# The powercut command: refused without a cache, whatever it says; with a
# cache, only well-formed policies are taken; a cut racing the device's
# removal neither oopses nor blocks it.
powercut_cmds() {
	local v cmd r cuts=0
	require "clean start" rdif_clean_start
	require "insmod" rdif_insmod size=4 csum=crc16 blocksize=512 nr_devices=2
	require "debugfs" mount_debugfs
	echo 1 >/sys/module/rdif/parameters/cache 2>/dev/null &&
		case_fail "the cache parameter is writable at run time"
	for cmd in all none "random 1" "prefix 0"; do
		expect "'$cmd' without a cache" eq "$cmd" "$(pc rdif0 "$cmd")" EINVAL
	done
	require "rmmod" rdif_rmmod
	require "insmod cache=1" rdif_insmod size=4 csum=crc16 blocksize=512 cache=1 cache_size=1
	for v in "${NUMS[@]}"; do
		for cmd in "random $v" "random 1 $v" "prefix $v" "$v" "all $v" "none $v"; do
			r=$(pc rdif0 "$cmd")
			case $r in
			OK) cuts=$((cuts + 1)) ;;
			EINVAL) ;;
			*) case_fail "powercut '${cmd:0:40}': unexpected '$r'" ;;
			esac
		done
	done
	expect "each accepted cut counted once" eq powercuts "$(cnt rdif0 powercuts)" "$cuts"
	echo "$cuts of the odd commands were valid cuts"
	expect "device works after the sweep" io_works /dev/rdif0
	# Cuts while writes run and while the device goes away.
	( while :; do echo "random $RANDOM" >"$DBG"/rdif0/powercut 2>/dev/null || sleep 0.01; done ) &
	local cutter=$!
	# (nocreat: once the disk is gone, dd must not make /dev/rdif0 a file)
	( for i in $(seq 200); do dd if=/dev/zero of=/dev/rdif0 bs=4096 count=4 seek=$((i % 200)) \
		oflag=direct conv=nocreat,notrunc status=none 2>/dev/null; done ) &
	local writer=$!
	sleep 2
	expect "rmmod while cutting" rdif_rmmod
	kill "$cutter" 2>/dev/null
	wait "$cutter" "$writer" 2>/dev/null
	expect "module gone" not rdif_loaded
	expect "/dev/rdif0 gone" not test -e /dev/rdif0
	[ -e /dev/rdif0 ] && [ ! -b /dev/rdif0 ] && rm -f /dev/rdif0
	return 0
}

[ -x "$PI" ] || ktap_skip_all "rdif_pi not built"
ktap_run_cases module_params configfs_attrs backing_paths exclusive_backing crafted_headers version_2_store \
	debugfs_cmds powercut_cmds
