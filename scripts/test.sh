#!/usr/bin/env bash
# scripts/test.sh: install what is missing, build, run every test.
#
#   scripts/test.sh [CTEST ARGS...]     e.g. scripts/test.sh -L e2e
#
# The exit status is the verdict: ctest's, or the build's when it fails.
# Environment: BUILD_DIR (default build), JOBS (build jobs, default nproc),
# CTEST_JOBS (default 2: tests use ephemeral ports and unique names, and the
# e2e tests take a lock so only one runs at a time), PASSES (which passes to
# run, default all: "default realmodel kafka asan tsan fuzz").
#
# The passes:
#   default  the whole suite, gcc, on kafka-embedded, but the realmodel
#            tests
#   realmodel  extractd on a real LLM server: llama-cpp-python's, serving
#            SmolLM2-135M (tests/realmodel; scripts/llamacpp.sh builds it
#            once into a cache outside the repo, ~7 minutes on 2 cores)
#   kafka    the e2e suite again on a real Apache Kafka (scripts/kafka.sh),
#            where exactly-once is tested too; needs Java
#   asan     the whole suite under AddressSanitizer + UBSan, but the real
#            model, the fuzzers, the SDK and kafka.sh checks, and three e2e
#            tests that do not fit a sanitizer build (valgrind, RSS, the
#            Java cluster)
#   tsan     the unit and e2e tests under ThreadSanitizer
#   fuzz     the libFuzzer targets, briefly, on their corpora (clang)
# Every pass runs even after one fails; the status is the first failure's.
# The last line on success is ctest's own summary of the last pass.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
CTEST_JOBS=${CTEST_JOBS:-2}
PASSES=${PASSES:-default realmodel kafka asan tsan fuzz}
ctest_args=("$@")
here=$(pwd)

scripts/deps.sh

# build DIR [CMAKE OPTIONS...]
build() {
	local dir=$1
	shift
	cmake -S . -B "$dir" "$@" && cmake --build "$dir" -j "$JOBS"
}

# check DIR [CTEST ARGS...]
check() {
	local dir=$1
	shift
	ctest --test-dir "$dir" --output-on-failure --no-tests=error \
		-j "$CTEST_JOBS" "$@"
}

status=0
note() {
	local rc=$1 name=$2
	if [ "$rc" -ne 0 ]; then
		echo "==== $name: FAILED (status $rc)" >&2
		[ "$status" -ne 0 ] || status=$rc
	fi
}

wanted() { [[ " $PASSES " == *" $1 "* ]]; }

if wanted default; then
	echo "==== default: build and test in $BUILD_DIR"
	rc=0
	{ build "$BUILD_DIR" && check "$BUILD_DIR" -LE realmodel \
		"${ctest_args[@]}"; } || rc=$?
	note "$rc" default
fi

if wanted realmodel; then
	echo "==== realmodel: extractd on a real LLM server (SmolLM2-135M)"
	rc=0
	{ build "$BUILD_DIR" >/dev/null &&
	  check "$BUILD_DIR" -L realmodel "${ctest_args[@]}"; } || rc=$?
	note "$rc" realmodel
fi

if wanted kafka; then
	if command -v java >/dev/null 2>&1; then
		echo "==== kafka: the e2e suite on Apache Kafka"
		export KAFKA_STATE_DIR="$here/$BUILD_DIR-kafka-state"
		# Below the ephemeral port range (32768 and up here): a port in
		# it can be taken by any client socket between kafka.sh's check
		# and the broker's bind. A second try moves the block.
		port_base=${KAFKA_PORT_BASE:-18092}
		for _ in 1 2; do
			rc=0
			bootstrap=$(KAFKA_PORT_BASE=$port_base \
				scripts/kafka.sh start | tail -n 1) || rc=$?
			[ "$rc" -ne 0 ] || break
			port_base=$((port_base + 500))
		done
		if [ "$rc" -eq 0 ]; then
			{ build "$BUILD_DIR" >/dev/null &&
			  KAFKA_BOOTSTRAP=$bootstrap check "$BUILD_DIR" -L e2e \
				"${ctest_args[@]}"; } || rc=$?
		fi
		scripts/kafka.sh stop >/dev/null 2>&1 || true
		note "$rc" kafka
	else
		echo "==== kafka: skipped, no java (the e2e suite ran on kafka-embedded only)"
	fi
fi

if wanted asan; then
	echo "==== asan: AddressSanitizer + UndefinedBehaviorSanitizer"
	rc=0
	{ build "$BUILD_DIR-asan" -DEXTRACTD_SANITIZE=address,undefined &&
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$here/tests/sanitizers/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  check "$BUILD_DIR-asan" -LE "fuzz|kafka|sdk|bench|realmodel" \
		-E "e2e\.(broker_fault|valgrind|memory)" "${ctest_args[@]}"; } || rc=$?
	note "$rc" asan
fi

if wanted tsan; then
	echo "==== tsan: ThreadSanitizer on the unit and e2e tests"
	rc=0
	{ CC=clang build "$BUILD_DIR-tsan" -DEXTRACTD_SANITIZE=thread &&
	  TSAN_OPTIONS="halt_on_error=1 suppressions=$here/tests/sanitizers/tsan.supp" \
	  check "$BUILD_DIR-tsan" -R '^(unit|e2e)\.' "${ctest_args[@]}"; } || rc=$?
	note "$rc" tsan
fi

if wanted fuzz; then
	echo "==== fuzz: libFuzzer targets on their corpora"
	rc=0
	{ CC=clang build "$BUILD_DIR-fuzz" -DEXTRACTD_FUZZ=ON \
		-DEXTRACTD_SANITIZE=address,undefined &&
	  check "$BUILD_DIR-fuzz" -L fuzz; } || rc=$?
	note "$rc" fuzz
fi

if [ "$status" -ne 0 ]; then
	echo "test.sh: FAILED (status $status)" >&2
fi
exit "$status"
