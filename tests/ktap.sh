# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Minimal KTAP output for rdif's shell tests (sourced, bash).
#
# A test script declares its cases as shell functions and hands them to
# ktap_run_cases, which prints the header and plan, runs each case in a
# subshell (its output, prefixed with "# ", becomes KTAP diagnostics) and
# exits the way kselftest expects: 0 all passed, 1 something failed, 4 all
# skipped.
#
# Inside a case:
#   expect DESC CMD...   run CMD; if it fails, print "FAIL: DESC" and mark
#                        the case failed (the case goes on)
#   require DESC CMD...  the same, but end the case at once on failure
#   case_fail MSG        mark the case failed with MSG (the case goes on)
#   skip_case REASON     end the case as skipped
#   a case that returns non-zero (other than 4) fails as well.

KTAP_PASS=0
KTAP_FAIL=0
KTAP_SKIP=0
KTAP_NUM=0
KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

ktap_header() { echo "TAP version 13"; }
ktap_plan() { echo "1..$1"; }
ktap_diag() { printf '# %s\n' "$*"; }

ktap_ok() {
	KTAP_NUM=$((KTAP_NUM + 1)); KTAP_PASS=$((KTAP_PASS + 1))
	echo "ok $KTAP_NUM $1"
}

ktap_fail() {
	KTAP_NUM=$((KTAP_NUM + 1)); KTAP_FAIL=$((KTAP_FAIL + 1))
	echo "not ok $KTAP_NUM $1${2:+ # $2}"
}

ktap_skip() {
	KTAP_NUM=$((KTAP_NUM + 1)); KTAP_SKIP=$((KTAP_SKIP + 1))
	echo "ok $KTAP_NUM $1 # SKIP${2:+ $2}"
}

# ktap_result NAME RC: report a case from its exit status.
ktap_result() {
	case $2 in
	0) ktap_ok "$1" ;;
	4) ktap_skip "$1" ;;
	*) ktap_fail "$1" "exit=$2" ;;
	esac
}

ktap_skip_all() {
	ktap_header
	echo "1..0 # SKIP $*"
	exit "$KSFT_SKIP"
}

ktap_totals() {
	echo "# Totals: pass:$KTAP_PASS fail:$KTAP_FAIL xfail:0 xpass:0 skip:$KTAP_SKIP error:0"
}

ktap_finished() {
	ktap_totals
	[ "$KTAP_FAIL" -eq 0 ] || exit "$KSFT_FAIL"
	[ "$KTAP_PASS" -gt 0 ] || [ "$KTAP_SKIP" -eq 0 ] && exit "$KSFT_PASS"
	exit "$KSFT_SKIP"
}

CASE_FAILS=0

expect() {
	local desc=$1
	shift
	if "$@"; then
		return 0
	fi
	echo "FAIL: $desc"
	CASE_FAILS=$((CASE_FAILS + 1))
	return 1
}

# case_fail MSG: mark the case failed (it goes on)
case_fail() {
	echo "FAIL: $*"
	CASE_FAILS=$((CASE_FAILS + 1))
}

require() {
	expect "$@" || exit 1
}

skip_case() {
	echo "SKIP: $*"
	exit "$KSFT_SKIP"
}

# ktap_run_cases CASE...: run each function as one KTAP test.
ktap_run_cases() {
	local c rc
	ktap_header
	ktap_plan $#
	for c in "$@"; do
		local t0=$SECONDS
		(
			CASE_FAILS=0
			"$c"
			rc=$?
			[ $rc = 0 ] && [ $CASE_FAILS -gt 0 ] && rc=1
			exit $rc
		) </dev/null 2>&1 | sed -u 's/^/# /'
		rc=${PIPESTATUS[0]}
		ktap_diag "$c: $((SECONDS - t0)) s"
		ktap_result "$c" "$rc"
	done
	ktap_finished
}
