#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# In-guest test runner (scripts/check boots a guest that runs this): runs
# rdif's selftests one after the other, each under the per-test timeout from
# ./settings, and prints one KTAP report, kselftest style: each test's own
# output becomes "# " diagnostics, then "ok N name" or "not ok N name".
# A final test, dmesg_clean, fails if the kernel log shows an oops, BUG,
# WARNING, lockdep report, ... or the kernel got tainted by one.
#
# Usage: run_guest.sh [--out DIR] [TEST...]
#   TEST   names from `make -C tests list_tests` (default: all of them)
#   --out  also write DIR/ktap.log, DIR/<test>.log, DIR/dmesg.txt (at the
#          end) and DIR/dmesg-live.txt (as it goes)
#
# Exit status: 0 if every test passed or was skipped, 1 otherwise.
# The script body is one { } group: bash reads it whole before running it,
# so rewriting this file cannot derail a run in progress.
{
set -uo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
out=
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=${2:?}; shift 2 ;;
	--) shift; break ;;
	-*) echo "run_guest.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
tests=("$@")
if [ ${#tests[@]} = 0 ]; then
	mapfile -t tests < <(make -s --no-print-directory -C "$dir" list_tests KDIR="${RDIF_KDIR:-}")
fi

log=/dev/null
if [ -n "$out" ]; then
	mkdir -p "$out"
	log=$out/ktap.log
	: >"$log"
fi

# say LINE...: one line of the report, to the console and the log
say() {
	printf '%s\n' "$*"
	printf '%s\n' "$*" >>"$log"
}

prefix() {
	local l
	while IFS= read -r l; do
		say "# $l"
	done
}

tmo=$(sed -n 's/^timeout=//p' "$dir/settings" 2>/dev/null)
tmo=${RDIF_TEST_TIMEOUT:-${tmo:-300}}

# What counts as a kernel splat. Lockdep reports are "WARNING:"s, and any
# of them ends with "turning off the locking correctness validator".
splat_re='Oops|BUG:|WARNING:|KASAN|UBSAN|KFENCE|kernel BUG|general protection fault|'
splat_re+='Unable to handle|Kernel panic|possible circular locking|possible recursive locking|'
splat_re+='inconsistent lock state|suspicious RCU usage|DEBUG_LOCKS_WARN_ON|'
splat_re+='Call Trace|RIP: |refcount_t:|list_add corruption|list_del corruption|'
splat_re+='sleeping function called from invalid context|scheduling while atomic|'
splat_re+='blocked for more than|soft lockup|hard LOCKUP|detected stalls? on|stack-protector|'
splat_re+='double fault|use-after-free|out-of-bounds|leaked|'
splat_re+='lockdep is turned off|turning off the locking correctness validator'
# Taint flags that only say an out-of-tree (O), unsigned (E) or test (N,
# KUnit) module was loaded.
benign_taint=$(( (1 << 12) | (1 << 13) | (1 << 18) ))

dmesg_lines() { dmesg 2>/dev/null | wc -l; }

mark() {
	echo "rdif-runner: $*" >/dev/kmsg 2>/dev/null || true
}

# Every background job gets its own process group, so a test is killed
# together with whatever it started.
set -m

# run_one TEST LOG: run ./TEST with its output in the report (and LOG); on
# timeout kill its process group and, if it cannot die (stuck in the kernel
# on I/O that never completes, say), leave it behind with its stack and the
# blocked tasks in the report and dmesg. Sets rc (124: timed out).
run_one() {
	local t=$1 tlog=$2 fifo pid rpid deadline p
	fifo=$(mktemp -u /tmp/rdif-runner.XXXXXX)
	mkfifo "$fifo"
	tee "$tlog" <"$fifo" | prefix &
	rpid=$!
	(cd "$dir" && exec "./$t") </dev/null >"$fifo" 2>&1 &
	pid=$!
	deadline=$(( $(date +%s) + tmo ))
	rc=
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(date +%s)" -lt "$deadline" ]; then
			sleep 0.2
			continue
		fi
		rc=124
		kill -TERM -- "-$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL -- "-$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			say "# $t cannot be killed; leaving it behind. Its tasks:"
			for p in $(pgrep -g "$pid"); do
				say "# $p $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null) state $(awk '{print $3}' /proc/"$p"/stat 2>/dev/null)"
				sed 's/^/#   /' /proc/"$p"/stack 2>/dev/null | prefix
			done
			echo w >/proc/sysrq-trigger 2>/dev/null
			kill "$rpid" 2>/dev/null
			rm -f "$fifo"
			return
		fi
		break
	done
	if [ -z "$rc" ]; then
		wait "$pid"
		rc=$?
	fi
	wait "$rpid"
	rm -f "$fifo"
}

# Keep a live copy of the kernel log on the host, for a guest that dies.
follower=
if [ -n "$out" ]; then
	dmesg --follow >"$out/dmesg-live.txt" 2>&1 &
	follower=$!
fi

n=0 pass=0 fail=0 skip=0
run_start=$(date +%s)
splat_in=()
say "TAP version 13"
say "# rdif selftests on $(uname -r), ${RDIF_ACCEL:-unknown} accelerator, $(nproc) CPUs"
say "1..$(( ${#tests[@]} + 1 ))"

for t in "${tests[@]}"; do
	n=$((n + 1))
	tlog=/dev/null
	[ -n "$out" ] && tlog=$out/$t.log
	say "# selftests: rdif: $t (test $n of ${#tests[@]}, $(( $(date +%s) - run_start )) s into the run)"
	if ! [ -x "$dir/$t" ]; then
		say "# $dir/$t is missing or not executable (run make -C tests)"
		say "not ok $n selftests: rdif: $t # missing"
		fail=$((fail + 1))
		continue
	fi
	before=$(dmesg_lines)
	mark "start $t"
	start=$(date +%s)
	run_one "$t" "$tlog"
	mark "end $t (exit $rc)"
	secs=$(( $(date +%s) - start ))
	new=$(dmesg 2>/dev/null | tail -n +"$((before + 1))" | grep -E "$splat_re")
	if [ -n "$new" ]; then
		say "# dmesg: kernel splat while $t ran:"
		printf '%s\n' "$new" | head -n 40 | prefix
		splat_in+=("$t")
	fi
	if [ -d /sys/module/rdif ]; then
		say "# warning: rdif still loaded after $t; unloading it"
		rmmod rdif 2>&1 | prefix
	fi
	case $rc in
	0) say "ok $n selftests: rdif: $t # ${secs}s"; pass=$((pass + 1)) ;;
	4) say "ok $n selftests: rdif: $t # SKIP"; skip=$((skip + 1)) ;;
	124 | 137) say "not ok $n selftests: rdif: $t # TIMEOUT $tmo seconds"; fail=$((fail + 1)) ;;
	*) say "not ok $n selftests: rdif: $t # exit=$rc"; fail=$((fail + 1)) ;;
	esac
done

# dmesg_clean: the whole log (a boot-time splat may have switched lockdep
# off for everything after it), the taint mask, and lockdep still on.
n=$((n + 1))
say "# selftests: rdif: dmesg_clean"
[ -n "$out" ] && dmesg >"$out/dmesg.txt" 2>&1
bad=$(dmesg 2>/dev/null | grep -E "$splat_re")
taint=$(cat /proc/sys/kernel/tainted 2>/dev/null || echo 0)
ok=1
if [ -n "$bad" ]; then
	ok=0
	say "# kernel log has $(printf '%s\n' "$bad" | wc -l) suspicious line(s)${splat_in[*]:+ (during: ${splat_in[*]})}:"
	printf '%s\n' "$bad" | head -n 60 | prefix
fi
if [ $(( taint & ~benign_taint )) != 0 ]; then
	ok=0
	say "# kernel tainted: $taint"
fi
if ! dmesg >/dev/null 2>&1; then
	ok=0
	say "# cannot read the kernel log"
fi
# Lockdep switches itself off after its first report (or when it runs out
# of room), silently for everything after: a run that ends with it off has
# not been checked, whatever the log says.
if [ -r /proc/lockdep_stats ] && ! grep -Eq '^ *debug_locks: +1$' /proc/lockdep_stats; then
	ok=0
	say "# lockdep is off at the end of the run: $(grep debug_locks /proc/lockdep_stats)"
fi
if [ $ok = 1 ]; then
	say "ok $n selftests: rdif: dmesg_clean"
	pass=$((pass + 1))
else
	say "not ok $n selftests: rdif: dmesg_clean"
	fail=$((fail + 1))
fi

say "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ -n "$follower" ] && kill "$follower" 2>/dev/null
sync
[ $fail = 0 ]
exit
}
