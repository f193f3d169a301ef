#!/usr/bin/env bash
# scripts/test.sh: install what is missing, build, run every test.
#
#   scripts/test.sh [CTEST ARGS...]     e.g. scripts/test.sh -L e2e
#
# The exit status is the verdict: ctest's, or the build's when it fails.
# Environment: BUILD_DIR (default build), JOBS (build jobs, default nproc),
# CTEST_JOBS (default 2: tests use ephemeral ports and unique names, and the
# e2e tests take a lock so only one runs at a time).
#
# Each pass is one "pass" line: a name, a build directory and its CMake
# options. Every pass runs even after one fails; the status is the first
# failure's. A sanitizer pass is one more line, e.g.
#   pass asan "$BUILD_DIR-asan" -DEXTRACTD_SANITIZE=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
CTEST_JOBS=${CTEST_JOBS:-2}
ctest_args=("$@")

scripts/deps.sh

# run_pass NAME DIR [CMAKE OPTIONS...]: configure, build, test; returns the
# first failing step's status.
run_pass() {
	local name=$1 dir=$2
	shift 2
	echo "==== $name: configure and build in $dir"
	cmake -S . -B "$dir" "$@" || return
	cmake --build "$dir" -j "$JOBS" || return
	echo "==== $name: ctest"
	ctest --test-dir "$dir" --output-on-failure --no-tests=error \
		-j "$CTEST_JOBS" "${ctest_args[@]}" || return
	echo "==== $name: passed"
}

status=0
pass() {
	local rc=0
	run_pass "$@" || rc=$?
	if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
		status=$rc
	fi
}

pass default "$BUILD_DIR"

if [ "$status" -eq 0 ]; then
	echo "test.sh: every pass green"
else
	echo "test.sh: FAILED (status $status)" >&2
fi
exit "$status"
