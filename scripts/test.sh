#!/usr/bin/env bash
# scripts/test.sh: install what is missing, build, run every test.
#
#   scripts/test.sh [CTEST ARGS...]     e.g. scripts/test.sh -L e2e
#
# The exit status is the verdict: ctest's, or the build's when it fails.
# Environment: BUILD_DIR (default build), JOBS (build jobs, default nproc),
# CTEST_JOBS (default 2: tests use ephemeral ports and unique names, and the
# e2e tests take a lock so only one runs at a time), PASSES (which passes to
# run, default all, in this order:
# "default realmodel kafka asan_kafka asan tsan fuzz").
#
# The passes:
#   default     the whole suite, gcc, on kafka-embedded, but the real-model
#               tests
#   realmodel   extractd on a real LLM server: llama-cpp-python's, serving
#               SmolLM2-135M (tests/realmodel; scripts/llamacpp.sh builds it
#               once into a cache outside the repo, ~7 minutes on 2 cores)
#   kafka       the e2e suite again on a real Apache Kafka (scripts/kafka.sh),
#               where exactly-once is tested too, but the llm_only tests
#               (the broker adds nothing to what they claim); needs Java
#   asan_kafka  the e2e tests that need transactions and rebalances on a real
#               broker (exactly-once, scale-out, commit prefix) under
#               AddressSanitizer + UBSan, on the kafka pass's broker
#   asan        the whole suite under ASan + UBSan on kafka-embedded, but
#               the real model, the fuzzers, the SDK, kafka.sh and
#               benchmark checks, and the e2e tests that do not fit a
#               sanitizer build (valgrind, RSS, the three-node Java cluster)
#   tsan        the unit and e2e tests, and the ops tests of the HTTP
#               endpoints and systemd notifications, under ThreadSanitizer
#   fuzz        the libFuzzer targets, briefly, on their corpora (clang)
# Every pass runs even after one fails; the status is the first failure's.
#
# Skips. Where a test can run is declared by ctest labels (tests/e2e/
# CMakeLists.txt): real_kafka tests need KAFKA_BOOTSTRAP, own_kafka tests
# bring their own cluster, unsanitized tests measure memory; each pass
# selects by them, so no test is expected to skip. Anything that still does
# (a pass whose tool is missing, a test that exits 77, ctest's "Not Run"
# and "Disabled") is listed at the end with its reason. With CI=true (as
# .ci/run sets it) every skip fails the run, and so does a pass left out of
# PASSES or a test that passed in no pass: green means all of it ran.
#
# A pass is a function pass_NAME (its name in ALL_PASSES) that builds what
# it needs and returns its status, or 77 when it could not run at all (after
# calling skipped WHAT WHY); it runs ctest through check, which records what
# passed and what skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_PASSES="default realmodel kafka asan_kafka asan tsan fuzz"
# The passes that use the real broker (it stops after the last of them).
KAFKA_PASSES="kafka asan_kafka"
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
CTEST_JOBS=${CTEST_JOBS:-2}
PASSES=${PASSES:-$ALL_PASSES}
ctest_args=("$@")
here=$(pwd)
ci=0
case ${CI:-} in true | 1 | yes) ci=1 ;; esac

# scripts/kafka.sh's exit status for "a tool is missing" (Java, Maven).
KAFKA_TOOL_MISSING=4
# The e2e tests asan_kafka runs on a real broker.
ASAN_KAFKA_TESTS='^e2e\.(exactly_once|exactly_once_multi|scaleout|commit_prefix)$'

# What the passes need (scripts/deps.sh's purposes): the whole suite in
# the default pass has the benchmark's smoke test and tests that start a
# Java Kafka, and the real-Kafka passes need Java too.
purposes=(build test)
case " $PASSES " in
*" default "*) purposes+=(bench kafka) ;;
*" kafka "* | *" asan_kafka "*) purposes+=(kafka) ;;
esac
scripts/deps.sh "${purposes[@]}"

# ---------------------------------------------------------------- helpers

current=""         # the pass running now
skips=()           # "what: why", everything that did not run
passed_tests=()    # every test that passed, in any pass
dirs=()            # every build dir a pass tested
summary=()         # "pass  status  duration"

# skipped WHAT WHY: note that WHAT did not run, and why.
skipped() {
	skips+=("$1: $2")
	echo "==== $1: SKIPPED: $2" >&2
}

# build DIR [CMAKE OPTIONS...]
build() {
	local dir=$1
	shift
	cmake -S . -B "$dir" "$@" && cmake --build "$dir" -j "$JOBS"
}

# check DIR [CTEST ARGS...]: ctest, then record what passed and what did
# not run (from ctest's JUnit file). Returns ctest's status.
check() {
	local dir=$1 junit rc=0 what name why
	shift
	junit=$here/$dir/ctest-$current.xml
	rm -f "$junit"
	[[ " ${dirs[*]} " == *" $dir "* ]] || dirs+=("$dir")
	ctest --test-dir "$dir" --output-on-failure --no-tests=error \
		--output-junit "$junit" -j "$CTEST_JOBS" "$@" || rc=$?
	[ -f "$junit" ] || return $((rc ? rc : 1))
	while IFS=$'\t' read -r what name why; do
		case $what in
		passed) passed_tests+=("$name") ;;
		skipped) skipped "$current: $name" "$why" ;;
		esac
	done < <(python3 tests/cmake/ctest_outcomes.py "$junit")
	return "$rc"
}

# The one-node Apache Kafka the passes share, started by the first pass
# that needs it (real_kafka) and stopped when test.sh exits.
export KAFKA_STATE_DIR="$here/$BUILD_DIR-kafka-state"
kafka_bootstrap=""
kafka_started=0
stop_kafka() {
	[ "$kafka_started" -eq 1 ] || return 0
	scripts/kafka.sh stop >/dev/null 2>&1 || true
	kafka_started=0
	kafka_bootstrap=""
}
trap stop_kafka EXIT

# real_kafka: sets kafka_bootstrap. Returns 0; 77 when a tool is missing
# (noted as a skip of the current pass, which returns 77 too); else 1.
real_kafka() {
	local rc port_base log
	[ -z "$kafka_bootstrap" ] || return 0
	mkdir -p "$BUILD_DIR"
	log=$here/$BUILD_DIR/kafka-start.log
	# Below the ephemeral port range (32768 and up here): a port in it
	# can be taken by any client socket between kafka.sh's check and the
	# broker's bind. A second try moves the block.
	port_base=${KAFKA_PORT_BASE:-18092}
	for _ in 1 2; do
		rc=0
		kafka_started=1
		kafka_bootstrap=$(KAFKA_PORT_BASE=$port_base \
			scripts/kafka.sh start 2>"$log" | tail -n 1) || rc=$?
		[ "$rc" -ne 0 ] || break
		kafka_bootstrap=""
		cat "$log" >&2
		if [ "$rc" -eq "$KAFKA_TOOL_MISSING" ]; then
			skipped "$current" "no real Kafka: $(tail -n 1 "$log")"
			return 77
		fi
		port_base=$((port_base + 500))
	done
	[ "$rc" -eq 0 ] || return 1
	echo "==== real Kafka at $kafka_bootstrap"
}

# ---------------------------------------------------------------- passes

pass_default() {
	build "$BUILD_DIR" &&
		check "$BUILD_DIR" -LE '^(real_kafka|realmodel)$' \
			"${ctest_args[@]}"
}

pass_realmodel() {
	build "$BUILD_DIR" >/dev/null &&
		check "$BUILD_DIR" -L '^realmodel$' "${ctest_args[@]}"
}

pass_kafka() {
	local rc=0
	real_kafka || return
	build "$BUILD_DIR" >/dev/null &&
		KAFKA_BOOTSTRAP=$kafka_bootstrap check "$BUILD_DIR" -L '^e2e$' \
			-LE '^(own_kafka|llm_only)$' "${ctest_args[@]}" || rc=$?
	return "$rc"
}

# check under ASan + UBSan: DIR [CTEST ARGS...]
check_asan() {
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$here/tests/sanitizers/lsan.supp \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		check "$@"
}

pass_asan() {
	build "$BUILD_DIR-asan" -DEXTRACTD_SANITIZE=address,undefined &&
		check_asan "$BUILD_DIR-asan" \
			-LE '^(fuzz|kafka|sdk|bench|real_kafka|unsanitized|realmodel)$' \
			-E '^e2e\.broker_fault$' "${ctest_args[@]}"
}

pass_asan_kafka() {
	real_kafka || return
	build "$BUILD_DIR-asan" -DEXTRACTD_SANITIZE=address,undefined \
		>/dev/null &&
		KAFKA_BOOTSTRAP=$kafka_bootstrap check_asan "$BUILD_DIR-asan" \
			-R "$ASAN_KAFKA_TESTS" "${ctest_args[@]}"
}

pass_tsan() {
	CC=clang build "$BUILD_DIR-tsan" -DEXTRACTD_SANITIZE=thread &&
		TSAN_OPTIONS="halt_on_error=1 suppressions=$here/tests/sanitizers/tsan.supp" \
			check "$BUILD_DIR-tsan" \
			-R '^(unit|e2e)\.|^ops\.(metrics|readyz|notify)$' \
			-LE '^(real_kafka|unsanitized)$' "${ctest_args[@]}"
}

pass_fuzz() {
	CC=clang build "$BUILD_DIR-fuzz" -DEXTRACTD_FUZZ=ON \
		-DEXTRACTD_SANITIZE=address,undefined &&
		check "$BUILD_DIR-fuzz" -L '^fuzz$'
}

# ---------------------------------------------------------------- the run

status=0
for name in $PASSES; do
	if ! declare -F "pass_$name" >/dev/null; then
		echo "test.sh: no pass '$name' (passes: $ALL_PASSES)" >&2
		exit 2
	fi
done
for name in $ALL_PASSES; do
	[[ " $PASSES " == *" $name "* ]] || skipped "$name" "not in PASSES"
done

for name in $PASSES; do
	echo "==== $name"
	current=$name
	t0=$SECONDS
	rc=0
	"pass_$name" || rc=$?
	secs=$((SECONDS - t0))
	case $rc in
	0) verdict=ok ;;
	77) verdict=skipped rc=0 ;;
	*) verdict=FAILED ;;
	esac
	summary+=("$(printf '%-11s %-7s %dm%02ds' "$name" "$verdict" \
		$((secs / 60)) $((secs % 60)))")
	if [ "$rc" -ne 0 ]; then
		echo "==== $name: FAILED (status $rc)" >&2
		[ "$status" -ne 0 ] || status=$rc
	fi
	# Stop the broker once no pass left needs it.
	later=${PASSES#*"$name"}
	need=0
	for p in $later; do
		[[ " $KAFKA_PASSES " != *" $p "* ]] || need=1
	done
	[ "$need" -eq 1 ] || stop_kafka
done

# In CI, every test must have passed in some pass (a label that keeps a
# test out of every pass would otherwise hide it).
if [ "$ci" -eq 1 ]; then
	declare -A ok=()
	for t in "${passed_tests[@]}"; do
		ok[$t]=1
	done
	for d in "${dirs[@]}"; do
		while read -r t; do
			[ -n "${ok[$t]:-}" ] || {
				skipped "$t" "ran in no pass"
				ok[$t]=1
			}
		done < <(ctest --test-dir "$d" -N | sed -n 's/^ *Test *#[0-9]*: //p')
	done
fi

echo "==== summary"
printf '  %s\n' "${summary[@]}"
if [ ${#skips[@]} -gt 0 ]; then
	echo "==== not run (${#skips[@]}):"
	printf '  %s\n' "${skips[@]}"
	if [ "$ci" -eq 1 ]; then
		echo "test.sh: CI=true: a skip fails the run" >&2
		[ "$status" -ne 0 ] || status=1
	fi
fi
if [ "$status" -ne 0 ]; then
	echo "test.sh: FAILED (status $status)" >&2
fi
exit "$status"
