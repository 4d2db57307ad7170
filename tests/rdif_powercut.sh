#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest's half of one power cut (scripts/powercut runs it; not a test of
# its own): power on the file-backed device "pc" (8 MiB, CRC16, 512-byte
# blocks, read_check=1) over STORE, a file in a host directory that outlives
# the guest; check what the previous run left (rdif_crash check), then
# write until the host kills the machine (rdif_crash write). A new store is
# first written with zeroes (valid PI) throughout.
#
# Usage: rdif_powercut.sh STORE PREV_RUN PREV_SEED PREV_SYNCED RUN SEED [META]
#   PREV_RUN 0: nothing to check (a new store).  RUN 0: check only.
#   META: the store's metadata and journal go to this file (meta_device).
# Prints "CHECK-RESULT <rdif_crash's exit status>" after a check.
set -uo pipefail
store=$1 prev_run=$2 prev_seed=$3 prev_synced=$4 run=$5 seed=$6 meta=${7:-}
here=$(cd "$(dirname "$0")" && pwd)
crash=$here/rdif_crash
cfs=/sys/kernel/config/rdif/pc

die() { echo "POWERCUT-ERROR: $*"; exit 2; }

[ -x "$crash" ] || die "rdif_crash not built"
insmod "${RDIF_KO:-$here/../rdif.ko}" nr_devices=0 || die "insmod"
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
mkdir $cfs || die "mkdir $cfs"
for kv in size=8 csum=crc16 blocksize=512 read_check=1 "backing=$store" \
	${meta:+"meta_device=$meta"} power=1; do
	echo "${kv#*=}" >"$cfs/${kv%%=*}" || die "${kv%%=*}"
done
for _ in $(seq 100); do
	[ -b /dev/pc ] && break
	sleep 0.1
done
[ -b /dev/pc ] || die "no /dev/pc"
dmesg | grep -a "replayed" | sed 's/^/# /'
rc=0
if [ "$prev_run" != 0 ]; then
	"$crash" check /dev/pc "$prev_run" "$prev_seed" "$prev_synced"
	rc=$?
	# The kernel log of the boot that checked must be clean too.
	if dmesg | grep -aE "Oops|BUG:|WARNING:|KASAN|possible recursive locking|circular locking|Call Trace"; then
		echo "POWERCUT-ERROR: the kernel log shows a problem"
		rc=1
	fi
	echo "CHECK-RESULT $rc"
fi
if [ "$run" != 0 ]; then
	if [ "$prev_run" = 0 ]; then
		# A new store: give every interval valid PI (of zeroes) first, so
		# that an interval a cut tears (new data, old PI) fails its check
		# instead of passing as never written (escape PI).
		dd if=/dev/zero of=/dev/pc bs=1M count=$(($(blockdev --getsize64 /dev/pc) >> 20)) \
			oflag=direct status=none && sync /dev/pc ||
			die "prefill"
	fi
	# Even runs fsync every 64 writes, so that the 4 MiB journal fills and
	# starts a new generation between flushes before the cut.
	every=8
	[ $((run % 2)) = 0 ] && every=64
	exec "$crash" write /dev/pc "$run" "$seed" $every
fi
echo 0 >$cfs/power
rmdir $cfs
rmmod rdif
exit $rc
