#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Per-device configuration through configfs: every attribute takes valid
# values and reads them back, refuses invalid ones with EINVAL and changes
# nothing, refuses format changes while powered with EBUSY; several devices
# with different formats run I/O side by side and go away in any order.
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env




features() {
	cfs_load
	local f
	f=$(cat $CFS/features)
	echo "features: $f"
	# Exactly the attributes a device directory has (its attribute table).
	require "mkdir" mkdir $CFS/feat
	expect "features lists the attributes of a device, no more, no less" eq features \
		"$(tr ',' '\n' <<<"$f" | sort | xargs)" "$(ls $CFS/feat | sort | xargs)"
	rmdir $CFS/feat
	cfs_unload
}

# attribute | valid values (space separated) | invalid values
ATTRS=(
	"size|1 64 1048576|0 1048577 -1 abc"
	"blocksize|512 1024 2048 4096|0 1000 8192 x"
	"csum|ip crc64 none crc16|crc32 CRC16 1"
	"ref_tag|0 1|2 yes_please"
	"metadata_size|16 255 8 64|256 4 300"
	"pi_offset|8 56 0|57 250 -1"
	"interval|512 0|256 1000 8192"
	"pract|0 1|7"
	"read_check|1 0|x"
	"hw_queues|1 0|100000"
	"queue_depth|1 4096 64|0 4097"
	"journal|0 1|2 x"
)

attributes() {
	cfs_load
	mkdir $CFS/t
	expect "defaults: power 0" eq power "$(cat $CFS/t/power)" 0
	expect "defaults: csum crc16" eq csum "$(cat $CFS/t/csum)" crc16
	expect "defaults: size 256" eq size "$(cat $CFS/t/size)" 256
	local a name good bad v before
	for a in "${ATTRS[@]}"; do
		IFS='|' read -r name good bad <<<"$a"
		for v in $good; do
			expect "$name=$v accepted" eq "$name=$v" "$(cfs_write $CFS/t/$name "$v")" OK
			expect "$name=$v reads back" eq "$name" "$(cat $CFS/t/$name)" "$v"
		done
		for v in $bad; do
			before=$(cat $CFS/t/$name)
			expect "$name=$v refused" eq "$name=$v" "$(cfs_write $CFS/t/$name "$v")" EINVAL
			expect "$name unchanged after $v" eq "$name" "$(cat $CFS/t/$name)" "$before"
		done
	done
	# Combinations the block layer refuses, whatever the order.
	cfs_write $CFS/t/metadata_size 8 >/dev/null
	expect "pi_offset beyond metadata refused" eq pi_offset "$(cfs_write $CFS/t/pi_offset 4)" EINVAL
	expect "crc64 with 8-byte metadata refused" eq csum "$(cfs_write $CFS/t/csum crc64)" EINVAL
	expect "csum still crc16" eq csum "$(cat $CFS/t/csum)" crc16
	expect "reason in dmesg" grep -q "rdif: configfs t: " <(dmesg | tail -n 20)
	cfs_write $CFS/t/metadata_size 0 >/dev/null
	expect "interval above blocksize refused" eq interval \
		"$(cfs_write $CFS/t/blocksize 512 && cfs_write $CFS/t/interval 4096)" "OK
EINVAL"
	expect "backing path accepted" eq backing "$(cfs_write $CFS/t/backing /tmp/rdif_x.img)" OK
	expect "backing reads back" eq backing "$(cat $CFS/t/backing)" /tmp/rdif_x.img
	expect "backing cleared" eq backing "$(cfs_write $CFS/t/backing '')" OK
	expect "format without backing refused" eq format "$(cfs_write $CFS/t/format 1)" EINVAL
	expect "power=2 refused" eq power "$(cfs_write $CFS/t/power 2)" EINVAL
	cfs_unload
}

busy_while_powered() {
	cfs_load
	mkdir $CFS/busy
	cfs_write $CFS/busy/size 16 >/dev/null
	require "power on" eq power "$(cfs_write $CFS/busy/power 1)" OK
	expect "/dev/busy exists" wait_for 10 is_blk /dev/busy
	local a name good v
	for a in "${ATTRS[@]}"; do
		IFS='|' read -r name good _ <<<"$a"
		v=${good%% *}
		[ "$(cat $CFS/busy/$name)" = "$v" ] && v=$(echo "$good" | awk '{print $2}')
		expect "$name=$v while powered: EBUSY" eq "$name" "$(cfs_write $CFS/busy/$name "$v")" EBUSY
	done
	expect "backing while powered: EBUSY" eq backing "$(cfs_write $CFS/busy/backing /tmp/x)" EBUSY
	expect "settings unchanged" eq size "$(cat $CFS/busy/size)" 16
	expect "power 1 again is a no-op" eq power "$(cfs_write $CFS/busy/power 1)" OK
	expect "power off" eq power "$(cfs_write $CFS/busy/power 0)" OK
	expect "/dev/busy gone" wait_for 10 absent /dev/busy
	expect "changes allowed again" eq size "$(cfs_write $CFS/busy/size 32)" OK
	cfs_unload
}

# name | attributes
DEVICES=(
	"pi512|csum=crc16 blocksize=512"
	"ip4k|csum=ip ref_tag=0 blocksize=4096"
	"nvme4k|csum=crc64 blocksize=4096"
	"md64|csum=crc16 blocksize=4096 metadata_size=64 pi_offset=56"
	"nop|csum=none metadata_size=8"
	"plain|csum=none metadata_size=0"
)

many_devices() {
	cfs_load
	local d name attrs kv pids=() i
	for d in "${DEVICES[@]}"; do
		IFS='|' read -r name attrs <<<"$d"
		mkdir $CFS/$name
		cfs_write $CFS/$name/size 32 >/dev/null
		for kv in $attrs; do
			require "$name: ${kv%%=*}" eq "$kv" "$(cfs_write $CFS/$name/${kv%%=*} "${kv#*=}")" OK
		done
		require "$name: power on" eq power "$(cfs_write $CFS/$name/power 1)" OK
	done
	settle
	expect "nvme4k format" eq format "$(cat /sys/block/nvme4k/integrity/format)" EXT-DIF-TYPE1-CRC64
	expect "ip4k format" eq format "$(cat /sys/block/ip4k/integrity/format)" T10-DIF-TYPE3-IP
	expect "nop format" eq format "$(cat /sys/block/nop/integrity/format)" nop
	expect "plain has no integrity" eq format "$(cat /sys/block/plain/integrity/format 2>/dev/null || echo none)" none
	# I/O on all of them at once.
	for d in "${DEVICES[@]}"; do
		name=${d%%|*}
		(
			head -c $((8 * MIB)) /dev/urandom >/tmp/rdif_$name &&
				dd if=/tmp/rdif_$name of=/dev/$name bs=64k oflag=direct status=none &&
				dd if=/dev/$name bs=64k count=128 iflag=direct status=none | cmp -s - /tmp/rdif_$name
		) &
		pids+=($!)
	done
	i=0
	for d in "${DEVICES[@]}"; do
		expect "${d%%|*}: concurrent I/O round trip" wait "${pids[$i]}"
		i=$((i + 1))
	done
	# Remove them in another order than created, some powered off first.
	expect "power off md64" eq power "$(cfs_write $CFS/md64/power 0)" OK
	for name in nop pi512 md64 plain nvme4k ip4k; do
		expect "rmdir $name" rmdir $CFS/$name
		expect "/dev/$name gone" wait_for 10 absent /dev/$name
	done
	rm -f /tmp/rdif_*
	cfs_unload
}

names() {
	cfs_load
	mkdir $CFS/dup1
	require "power dup1" eq power "$(cfs_write $CFS/dup1/power 1)" OK
	# (One try: rdif_rmmod would retry for seconds.)
	rmmod rdif 2>/dev/null
	expect "module pinned while configfs has devices" rdif_loaded
	cfs_unload
	require "clean start" rdif_clean_start
	require "insmod (rdif0)" rdif_insmod size=16
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	mkdir $CFS/rdif0
	expect "a second rdif0 is refused" eq power "$(cfs_write $CFS/rdif0/power 1)" EEXIST
	expect "and not powered" eq power "$(cat $CFS/rdif0/power)" 0
	expect "long name refused" not mkdir $CFS/abcdefghijklmnopqrstuvwxyz0123456789
	cfs_unload
}

rmdir_while_open() {
	cfs_load
	mkdir $CFS/held
	cfs_write $CFS/held/size 16 >/dev/null
	require "power on" eq power "$(cfs_write $CFS/held/power 1)" OK
	settle
	exec 3<>/dev/held
	expect "rmdir while open" rmdir $CFS/held
	expect "the removed device cannot be opened again" \
		not dd if=/proc/self/fd/3 of=/dev/null bs=4k count=1 iflag=direct status=none
	dd of=/dev/null bs=4k count=1 status=none <&3
	echo "read from the still open, removed device: exit $?"
	exec 3>&-
	# The last close must give back the module reference (its fops outlive
	# the disk), or rmmod below fails.
	cfs_unload
}

[ -x "$PI" ] || ktap_skip_all "rdif_pi not built"
ktap_run_cases features attributes busy_while_powered many_devices names rmdir_while_open
