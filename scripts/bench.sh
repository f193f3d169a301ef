#!/usr/bin/env bash
# scripts/bench.sh [--quick] [--out DIR] [-- BENCH.PY OPTIONS...]
#
# The benchmark: extractd against llmsim at a fixed latency (50 ms, jitter 0
# and 20 ms) at concurrency 1, 8, 64, 256 and 1024 (pool.workers =
# pool.max_in_flight), in completion and offset order; beside it, on the
# same Kafka, llmsim and records, the seed article's own stack as a pipeline
# (scripts/bench/peer_instructor.py: asyncio, AsyncOpenAI, instructor,
# aiokafka), and the design's cost floor (tools/floor: the bare loop of
# blocking calls, one keep-alive libcurl handle per thread, json-c in and
# out, no Kafka: extractd's CPU per record and efficiency are reported
# divided by its, in results.md; -- --no-floor leaves it out);
# then extractd idle on an empty topic (CPU a second); then extractd at
# concurrency 256 on a million-record backlog (peak RSS); then the goodput
# runs (scripts/bench/goodput.py: against
# llmsim at 1200 requests a minute, and serving 4 calls at once, with 256
# calls allowed: records/s over the provider's limit, 429s per 1,000
# records, p99, timeouts; extractd adaptive and fixed, one and three
# instances, beside the Instructor peer and LiteLLM's Router,
# scripts/bench/peer_litellm.py); then the cost runs
# (scripts/bench/cost.py: dollars per 1,000 records, live and with
# batch.mode = backlog, on the same 5,000 records); then extractd and the
# floor under callgrind at concurrency 64 (scripts/bench/instructions.py:
# instructions per record, which the machine's load does not move); then
# the seed's table, ours (scripts/demo.sh, unchanged).
#
# Writes DIR/results.json (one object per run, fields in docs/benchmark.md
# and DESIGN.md), DIR/*.png (gnuplot: throughput with the Little's-law line,
# efficiency, CPU per record, RSS; goodput.png), DIR/data/*.dat and
# DIR/seed-table.txt.
# Progress lines go to stdout as it runs.
#
#   --quick   fewer points (C = 1, 8, 64, 256 at jitter 0; 64 at jitter
#             20; the peer at 8 and 64), 4 s of steady state a point, the
#             backlog point for 10 s: about 4 minutes once built, then
#             the goodput runs at 15 s each
#   --out DIR results directory (default build/bench)
#   -- ...    passed to scripts/bench/bench.py (e.g. -- --concurrency 64,256
#             --no-peer); see scripts/bench/bench.py --help
#   -- --only goodput
#             only the goodput runs (11 runs of 10 s warm-up and 30 s
#             measured: about 11 minutes; --quick: 5 s and 15 s), no
#             demo.sh; the other runs already in DIR/results.json stay.
#             Three peers in one group need a real Kafka (KAFKA_BOOTSTRAP):
#             on kafka-embedded those two runs are left out
#   -- --no-goodput
#             no goodput runs
#   -- --only cost
#             only the cost runs (about a minute), no demo.sh; the other
#             runs already in DIR/results.json stay
#   -- --no-cost
#             no cost runs
#   -- --only instructions
#             only the callgrind runs (under a minute), no demo.sh; the
#             other runs already in DIR/results.json stay
#   -- --no-instructions, -- --no-idle
#             no callgrind runs, no idle run
#
# Environment: KAFKA_BOOTSTRAP (use that Kafka instead of kafka-embedded;
# topics are created and deleted again), BENCH_BUILD_DIR (Release build,
# default build/bench-release), BENCH_DEMO_BUILD_DIR (demo.sh's
# RelWithDebInfo build, default build/bench-demo), BENCH_SKIP_DEMO=1.
#
# Installs what is missing: scripts/deps.sh's build and bench packages
# (gnuplot-nox, python3-venv, kcat, valgrind, ...), then the peer's pinned Python
# packages (scripts/bench/requirements.txt) into a venv in the build
# directory with pip, and LiteLLM's, pinned with hashes
# (scripts/bench/requirements-litellm.txt, pip --require-hashes), into
# another.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

quick=()
out=build/bench
extra=()
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=(--quick) ;;
	--out)
		[ $# -ge 2 ] || { echo "bench.sh: --out needs a directory" >&2; exit 2; }
		out=$2
		shift
		;;
	--out=*) out=${1#--out=} ;;
	--) shift; extra=("$@"); break ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
build=${BENCH_BUILD_DIR:-build/bench-release}
demo_build=${BENCH_DEMO_BUILD_DIR:-build/bench-demo}
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { printf '[bench] %s\n' "$*"; }

# -- what it needs
scripts/deps.sh build bench

# -- Release build of the programs it runs
say "building (Release) in $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target extractd llmsim kafka-embedded floor \
	>/dev/null

# -- the peer's venv, remade when requirements.txt changes
venv=$build/peer-venv
req=scripts/bench/requirements.txt
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
	say "making the peer's venv in $venv (pip install -r $req)"
	rm -rf "$venv"
	/usr/bin/python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
	echo "$want" >"$venv/.requirements.sha256"
fi

# -- the LiteLLM peer's venv, the same way, every package checked by hash
lvenv=$build/litellm-venv
lreq=scripts/bench/requirements-litellm.txt
want=$(sha256sum "$lreq" | cut -d' ' -f1)
if [ "$(cat "$lvenv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
	say "making the LiteLLM peer's venv in $lvenv (pip install" \
		"--require-hashes -r $lreq)"
	rm -rf "$lvenv"
	/usr/bin/python3 -m venv "$lvenv"
	"$lvenv/bin/pip" install -q --disable-pip-version-check \
		--require-hashes -r "$lreq"
	echo "$want" >"$lvenv/.requirements.sha256"
fi

only=
for a in "${extra[@]}"; do
	case $a in --only | --only=*) only=1 ;; esac
done

say "machine: $(nproc) cores, $(free -m | awk '/^Mem:/ {print $2}') MiB;" \
	"load before: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 scripts/bench/bench.py --bin "$build/bin" --source . \
	--out "$out" --peer-python "$venv/bin/python" \
	--litellm-python "$lvenv/bin/python" "${quick[@]}" "${extra[@]}"

# -- the seed's table, ours: demo.sh as it is (its own build type and dir)
if [ "${BENCH_SKIP_DEMO:-0}" != 1 ] && [ -z "$only" ]; then
	say "the seed's seven texts, the four ways (scripts/demo.sh), load" \
		"$(cut -d' ' -f1 /proc/loadavg)"
	BUILD_DIR=$demo_build scripts/demo.sh | tee "$out/seed-table.txt"
fi
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
say "results in $out: results.json, $(cd "$out" && ls -- *.png 2>/dev/null | tr '\n' ' ')"
