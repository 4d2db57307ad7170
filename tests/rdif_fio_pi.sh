#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fio with user-supplied PI: the io_uring engine with md_per_io_size,
# pi_act=0 (fio generates the PI of its writes) and pi_chk (which checks
# the kernel asks rdif for, IORING_RW_ATTR_FLAG_PI). fio 3.41 itself does
# not check the PI its reads return (fixed after 3.41): rdif's checks and
# fio's data verify do.
#
# Good cases, one per format: random writes of 4-64 KiB with PI, fio's own
# data verify (crc32c) reading them back with PI, then a sequential read of
# the whole device with PI (written and never-written, escape, intervals);
# every fio run must succeed with every byte accounted for, and the kernel
# log must show no protection error. Negative cases: a read that asks for
# the application tag check with the wrong tag fails with EILSEQ, the same
# read without the check succeeds, and the data is intact afterwards.
#
# Needs fio 3.41 or later: $RDIF_FIO (scripts/guest exports scripts/fio's
# build), else the fio in PATH. Cases run indirectly, through ktap_run_cases.
# shellcheck disable=SC2317
set -uo pipefail
. "$(dirname "$0")/ktap.sh"
. "$(dirname "$0")/rdif_lib.sh"

rdif_require_env
FIO_MIN=3.41
FIO=${RDIF_FIO:-$(command -v fio || true)}
[ -n "$FIO" ] || ktap_skip_all "no fio: RDIF_FIO is empty, none in PATH (scripts/fio builds fio >= $FIO_MIN)"
[ -x "$FIO" ] || ktap_skip_all "fio '$FIO' (RDIF_FIO) is not executable"
fio_ver=$("$FIO" --version 2>/dev/null)
fio_ver=${fio_ver#fio-}
[ "$(printf '%s\n%s\n' "$FIO_MIN" "$fio_ver" | sort -V | head -n 1)" = "$FIO_MIN" ] ||
	ktap_skip_all "$FIO is fio $fio_ver; PI with the io_uring engine needs $FIO_MIN (run scripts/fio)"
"$FIO" --enghelp=io_uring 2>/dev/null | grep -q '^md_per_io_size' ||
	ktap_skip_all "$FIO ($fio_ver) has no io_uring option md_per_io_size"
command -v python3 >/dev/null || ktap_skip_all "python3 (to read fio's JSON output) not found"

DEV=/dev/rdif0
EILSEQ=84
# Device size, and what the random-write job writes and verifies (MiB).
DEV_MIB=16
WRITE_MIB=8
T=/tmp/rdif_fio_pi
mkdir -p "$T"

# run_fio NAME MD_PER_IO FIO_OPTION...: one fio job on $DEV through the
# io_uring engine, O_DIRECT, with MD_PER_IO bytes of metadata per I/O and
# fio generating/checking PI (pi_act=0); JSON result in $T/NAME.json, fio's
# other output in $T/NAME.log. Returns fio's exit status.
run_fio() {
	local name=$1 md=$2
	shift 2
	"$FIO" --name="$name" --filename=$DEV --ioengine=io_uring --direct=1 --iodepth=16 \
		--md_per_io_size="$md" --pi_act=0 "$@" \
		--output-format=json --output="$T/$name.json" >"$T/$name.log" 2>&1
}

# fio_result NAME: "ERROR READ_BYTES WRITE_BYTES" of job NAME
fio_result() {
	python3 - "$T/$1.json" <<'EOF' 2>/dev/null || echo "no-json - -"
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text[text.index("{"):])["jobs"][0]
print(j["error"], j["read"]["io_bytes"], j["write"]["io_bytes"])
EOF
}

# show NAME: fio's messages (errors, verify failures) for the case log
show() {
	[ -s "$T/$1.log" ] || return 0
	sed "s/^/$1: /" "$T/$1.log" | head -n 4
	[ "$(wc -l <"$T/$1.log")" -le 4 ] || echo "$1: ... $(wc -l <"$T/$1.log") lines in all"
}

# fio_ok NAME READ_BYTES WRITE_BYTES EXIT: the job exited 0, reported no
# error and moved exactly the bytes expected
fio_ok() {
	local name=$1 r=$2 w=$3 rc=$4 res
	res=$(fio_result "$name")
	show "$name"
	expect "$name: fio exit 0" eq "$name exit" "$rc" 0
	expect "$name: no error, $r bytes read, $w written" eq "$name error/read/written" "$res" "0 $r $w"
}

# pi_errors_since MARK: I/O and protection errors the kernel logged after
# line MARK
pi_errors_since() {
	dmesg | tail -n +$(($1 + 1)) | grep -iE "protection error|guard tag|ref tag|app tag|I/O error"
}

# start PARAM...: a clean rdif loaded with PARAMs, in $T
start() {
	echo "fio $fio_ver ($FIO); insmod $*"
	cd "$T" || return 1
	require "clean start" rdif_clean_start
	require "insmod $*" rdif_insmod "$@"
}

# good MS INTERVAL APPTAG PARAM...: the good-path case on a device loaded
# with PARAMs (metadata MS bytes per INTERVAL-byte protection interval)
good() {
	local ms=$1 iv=$2 app=$3 mark rc
	shift 3
	start size=$DEV_MIB read_check=1 "$@" || return 1
	mark=$(dmesg | wc -l)
	run_fio w $((65536 * ms / iv)) --rw=randwrite --bsrange=4k-64k --size=${WRITE_MIB}M \
		--pi_chk=GUARD,REFTAG,APPTAG --apptag="$app" \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --randrepeat=0
	rc=$?
	fio_ok w $((WRITE_MIB * MIB)) $((WRITE_MIB * MIB)) $rc
	run_fio r $((131072 * ms / iv)) --rw=read --bs=128k --size=${DEV_MIB}M \
		--pi_chk=GUARD,REFTAG,APPTAG --apptag="$app"
	rc=$?
	fio_ok r $((DEV_MIB * MIB)) 0 $rc
	expect "no protection errors logged" not pi_errors_since "$mark"
	require "rmmod" rdif_rmmod
}

# bad_apptag MS INTERVAL PARAM...: 1 MiB written with application tag
# 0x1234; a read asking for the check with 0x4321 fails with EILSEQ (the
# device checks, read_check=0), the same read without APPTAG in pi_chk
# passes, and the right tag still reads back.
bad_apptag() {
	local ms=$1 iv=$2 md mark rc res
	shift 2
	md=$((65536 * ms / iv))
	start size=$DEV_MIB read_check=0 "$@" || return 1
	run_fio w "$md" --rw=write --bs=64k --size=1M --pi_chk=GUARD,REFTAG,APPTAG --apptag=0x1234
	rc=$?
	fio_ok w 0 "$MIB" $rc
	mark=$(dmesg | wc -l)
	run_fio bad "$md" --rw=read --bs=64k --size=1M --pi_chk=APPTAG --apptag=0x4321
	rc=$?
	res=$(fio_result bad)
	show bad
	expect "wrong apptag: fio fails" test "$rc" != 0
	expect "wrong apptag: error EILSEQ" eq "wrong apptag error" "${res%% *}" $EILSEQ
	expect "wrong apptag: fio reports EILSEQ" grep -q "Invalid or incomplete multibyte or wide character" "$T/bad.log"
	# Diagnostics only: the block layer's messages are rate limited.
	dmesg | tail -n +$((mark + 1)) | grep "protection error" | head -n 2
	run_fio nochk "$md" --rw=read --bs=64k --size=1M --pi_chk=GUARD,REFTAG --apptag=0x4321
	rc=$?
	fio_ok nochk "$MIB" 0 $rc
	run_fio ok "$md" --rw=read --bs=64k --size=1M --pi_chk=GUARD,REFTAG,APPTAG --apptag=0x1234
	rc=$?
	fio_ok ok "$MIB" 0 $rc
	require "rmmod" rdif_rmmod
}

crc16_512() { good 8 512 0x1234 csum=crc16 blocksize=512; }
crc16_4096() { good 8 4096 0x5a5a csum=crc16 blocksize=4096; }
crc64_4096() { good 16 4096 0xa55a csum=crc64 blocksize=4096; }
crc16_type3_4096() { good 8 4096 0x0102 csum=crc16 ref_tag=0 blocksize=4096; }
crc16_interval512_4096() { good 8 512 0x7777 csum=crc16 blocksize=4096 interval=512; }
crc16_md32_pi_first() { good 32 4096 0x1111 csum=crc16 blocksize=4096 metadata_size=32 pi_offset=0; }
crc64_md64_pi_last() { good 64 4096 0x2222 csum=crc64 blocksize=4096 metadata_size=64 pi_offset=48; }
bad_apptag_crc16_512() { bad_apptag 8 512 csum=crc16 blocksize=512; }
bad_apptag_crc64_4096() { bad_apptag 16 4096 csum=crc64 blocksize=4096; }

# make check: each checksum, type, PI position and the interval smaller
# than the block at least once.
SAMPLE="crc16_512 crc64_4096 crc16_type3_4096 crc16_interval512_4096 crc64_md64_pi_last
	bad_apptag_crc16_512"
mapfile -t cases < <(sample crc16_512 crc16_4096 crc64_4096 crc16_type3_4096 \
	crc16_interval512_4096 crc16_md32_pi_first crc64_md64_pi_last bad_apptag_crc16_512 \
	bad_apptag_crc64_4096)
ktap_run_cases "${cases[@]}"
