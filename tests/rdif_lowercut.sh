#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The file store's crash test on a medium that loses unflushed writes: the
# store of a file-backed rdif ("up": CRC16, 512-byte blocks, read_check=1,
# journal on) is the block device of another rdif ("lo": memory, no PI,
# cache=1). rdif_crash writes a known schedule to /dev/up with an fsync
# every few writes (each completed fsync printed); at a random moment the
# medium dies: every request to "lo" fails from then on (injection) and
# `powercut random SEED` loses what its cache held; "up" is powered off
# (its last writes fail), the medium comes back, "up" is powered on again
# (its journal replayed) and rdif_crash checks every sector: none torn, no
# PI mismatch, no write lost that a completed fsync covered.
#
# Unlike scripts/powercut (QEMU killed, the store on the host's 9p, which
# loses nothing written), this medium loses every write no flush covered:
# what the page cache of /dev/lo still held, and what the medium's cache
# held (little: the store flushes at every journal commit). A store that
# forgets to sync its data fails here.
#
#   RDIF_LOWERCUT_CUTS   cuts (default 2); `make lowercut CUTS=N`
# Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
CUTS=${RDIF_LOWERCUT_CUTS:-2}
CRASH=$RDIF_TESTS_DIR/rdif_crash
OUT=/tmp/rdif_lowercut.out

medium_holds() { [ "$(cnt lo cache_volatile_writes)" -gt 0 ]; }

up_on() {
	expect "up: power 1" eq power "$(cfs_write $CFS/up/power 1)" OK &&
		wait_for 10 is_blk /dev/up && settle
}

cuts() {
	local k run seed synced failed=0 dropped=0 refused=0 wpid r0
	cfs_load
	require "debugfs" mount_debugfs
	cfs_mkdev lo size=16 blocksize=512 csum=none cache=1
	require "mkdir up" mkdir $CFS/up
	local a
	for a in size=8 csum=crc16 blocksize=512 read_check=1 backing=/dev/lo format=1; do
		require "up: $a" eq "$a" "$(cfs_write "$CFS/up/${a%%=*}" "${a#*=}")" OK
	done
	require "up on" up_on
	# Write the page cache back at once, so that the medium's cache holds
	# what the store wrote in place (without it, the page cache of
	# /dev/lo keeps it until a flush).
	local expire writeback
	expire=$(cat /proc/sys/vm/dirty_expire_centisecs)
	writeback=$(cat /proc/sys/vm/dirty_writeback_centisecs)
	echo 5 >/proc/sys/vm/dirty_expire_centisecs
	echo 5 >/proc/sys/vm/dirty_writeback_centisecs
	# Valid PI everywhere first, so that a torn interval cannot pass as
	# never written; then make it durable.
	require "prefill" dd if=/dev/zero of=/dev/up bs=1M count=8 oflag=direct status=none
	require "sync" dd if=/dev/null of=/dev/up conv=fsync,notrunc status=none
	for ((k = 1; k <= CUTS; k++)); do
		run=$k
		seed=$(( (RANDOM << 15 | RANDOM) + 1 ))
		"$CRASH" write /dev/up "$run" "$seed" $(( k % 2 ? 8 : 64 )) >"$OUT" 2>&1 &
		wpid=$!
		sleep "$(( 1 + RANDOM % 3 )).$(( RANDOM % 10 ))"
		# (a moment when the medium's cache holds something: the store
		# flushes it at every journal commit)
		wait_for 3 medium_holds
		# The medium dies: nothing reaches it from here on, and its
		# cache loses what a power cut may.
		r0=$(cnt lo inj_failed)
		medium_dies lo
		local before
		before=$(cnt lo powercut_blocks_dropped)
		if [ "$(echo "random $seed" >"$DBG"/lo/powercut && echo ok)" != ok ]; then
			case_fail "cut $k: powercut refused"
		fi
		dropped=$((dropped + $(cnt lo powercut_blocks_dropped) - before))
		kill -9 "$wpid" 2>/dev/null
		wait "$wpid" 2>/dev/null
		expect "cut $k: up: power 0" eq power "$(cfs_write $CFS/up/power 0)" OK
		medium_returns lo
		refused=$((refused + $(cnt lo inj_failed) - r0))
		synced=$(awk '$1 == "SYNCED" { s = $3 } END { print s + 0 }' "$OUT")
		require "cut $k: up comes back" up_on
		dmesg | grep -a "up: backing.*replayed" | tail -n 1
		if "$CRASH" check /dev/up "$run" "$seed" "$synced" >"$OUT.check" 2>&1; then
			echo "cut $k: ok (synced up to write $synced) $(tail -n 1 "$OUT.check")"
		else
			failed=$((failed + 1))
			echo "cut $k: FAILED (synced up to write $synced)"
			tail -n 5 "$OUT.check"
		fi
	done
	echo "$CUTS cuts, $failed failed; the medium's cache lost $dropped blocks of volatile writes," \
		"and the dead medium refused $refused requests (the page cache written back after the cut)"
	expect "every cut checked clean" eq failed "$failed" 0
	expect "the cuts lost writes" test $((dropped + refused)) -gt 0
	echo "$expire" >/proc/sys/vm/dirty_expire_centisecs
	echo "$writeback" >/proc/sys/vm/dirty_writeback_centisecs
	rm -f "$OUT" "$OUT.check"
	cfs_unload
}

[ -x "$CRASH" ] || ktap_skip_all "rdif_crash not built"
ktap_run_cases cuts
