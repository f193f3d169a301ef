#!/usr/bin/env bash
# The main job on embedded defaults: the seed article's seven texts through
# extractd the article's four ways, records printed as they arrive, then a
# timing table like the article's.
#
# Kafka: $KAFKA_BOOTSTRAP if set, else kafka-embedded (librdkafka's mock
# cluster). LLM: the real API when OPENAI_API_KEY is set (OPENAI_BASE_URL
# optional), else llmsim with the article's latency (about 0.85 s a call).
# Build: in $BUILD_DIR (default build), after scripts/deps.sh build demo
# (the compiler, cmake, the -dev libraries and kcat; nothing else); with
# DEMO_BIN_DIR set, the binaries already built there (ops.demo's way):
# nothing is installed or built.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build=${BUILD_DIR:-build}

if [ -n "${DEMO_BIN_DIR:-}" ]; then
	bin=$DEMO_BIN_DIR
else
	scripts/deps.sh build demo
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j"$(nproc)" \
		--target extractd llmsim kafka-embedded >/dev/null
	bin="$build/bin"
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# Wait (short polls, bounded) until a file has a first line.
wait_line() {
	local file=$1 what=$2 i
	for ((i = 0; i < 200; i++)); do
		if [ -s "$file" ] && head -n1 "$file" | grep -q .; then
			return 0
		fi
		sleep 0.05
	done
	echo "demo: $what did not start" >&2
	exit 1
}

if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
	brokers=$KAFKA_BOOTSTRAP
else
	"$bin/kafka-embedded" --topic demo.texts:1 >"$work/kafka.out" \
		2>"$work/kafka.log" &
	pids+=($!)
	wait_line "$work/kafka.out" kafka-embedded
	brokers=$(head -n1 "$work/kafka.out")
fi

if [ -n "${OPENAI_API_KEY:-}" ]; then
	base_url=${OPENAI_BASE_URL:-https://api.openai.com/v1}
	llm_name="the API at $base_url"
else
	"$bin/llmsim" --listen 127.0.0.1:0 --port-file "$work/llmsim.port" \
		--latency-ms 850 --jitter-ms 100 --seed 1 2>"$work/llmsim.log" &
	pids+=($!)
	wait_line "$work/llmsim.port" llmsim
	base_url="http://127.0.0.1:$(cat "$work/llmsim.port")/v1"
	llm_name="llmsim (latency 850 ms +/- 100 ms)"
fi

texts=(
	"John Smith is a 30-year-old software engineer"
	"Sarah Johnson is a 25-year-old data scientist"
	"Mike Davis is a 35-year-old product manager"
	"Lisa Wilson is a 28-year-old UX designer"
	"Tom Brown is a 32-year-old DevOps engineer"
	"Emma Garcia is a 27-year-old frontend developer"
	"David Lee is a 33-year-old backend developer"
)
run_id=$$-$(date +%s)
input="demo.texts"
[ -n "${KAFKA_BOOTSTRAP:-}" ] && input="demo.texts.$run_id"
printf '%s\n' "${texts[@]}" | kcat -P -b "$brokers" -t "$input" 2>/dev/null
echo "Kafka: $brokers; LLM: $llm_name; ${#texts[@]} texts on '$input'"

# run SLUG NAME MAX_IN_FLIGHT ORDERING: one extractd run over the seven
# texts, in its own consumer group and output topic.
declare -a rows
run() {
	local slug=$1 name=$2 inflight=$3 ordering=$4
	local out="demo.persons.$slug.$run_id" log="$work/extractd.$slug.log"
	local pid secs

	echo
	echo "== $name: max_in_flight=$inflight, ordering=$ordering"
	"$bin/extractd" \
		-s kafka.brokers="$brokers" -s kafka.group="demo.$slug.$run_id" \
		-s kafka.input_topic="$input" -s kafka.output_topic="$out" \
		-s kafka.dlq_topic="$out.dlq" \
		-s llm.base_url="$base_url" \
		-s pool.workers="$inflight" -s pool.max_in_flight="$inflight" \
		-s output.ordering="$ordering" -s http.listen="" \
		-s log.format=json 2>"$log" &
	pid=$!
	pids+=("$pid")
	# Records as they arrive; kcat exits after the seventh.
	timeout 60 kcat -C -b "$brokers" -t "$out" -o beginning \
		-c "${#texts[@]}" -f '  %s\n' 2>/dev/null
	kill -TERM "$pid"
	wait "$pid"
	secs=$(grep '"msg":"stopped"' "$log" |
		sed -n 's/.*"busy_seconds":\([0-9.]*\).*/\1/p')
	rows+=("$(printf '| %-28s | %7.2f s | %11s |' "$name" "$secs" "$inflight")")
}

run sequential "sequential" 1 offset
run ordered "ordered (gather)" 7 offset
run completion "completion (as_completed)" 7 completion
run ratelimited "rate-limited (2)" 2 completion

echo
echo "Each run timed from its first record consumed to its last delivered:"
printf '| %-28s | %9s | %11s |\n' Method Time Concurrency
printf '|%s|%s|%s|\n' "------------------------------" "-----------" \
	"-------------"
printf '%s\n' "${rows[@]}"
