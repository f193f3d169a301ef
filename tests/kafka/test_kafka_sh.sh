#!/usr/bin/env bash
# kafka.script: scripts/kafka.sh against a real one-node Apache Kafka.
#
#   test_kafka_sh.sh SOURCE_DIR [BIN_DIR]
#
# First --embedded (BIN_DIR/kafka-embedded, when built): the printing
# contract with 3 brokers, status, and the KAFKA_OWNER_PID watchdog stopping
# it once its owner is gone.
# Error contract first (no Java, no Maven: exit 4, "a tool is missing";
# Maven failing: exit 1 with Maven's own lines; an unknown command, a bad
# argument, a foreign state dir: exit 2), then the real thing on a private
# state dir and port block: fetch the jars (once per machine, cached), start
# (timed, not judged: kafka.sh's KAFKA_START_TIMEOUT bounds it), status,
# topic with 3 partitions (idempotent, a different count refused), 10 keyed
# messages through kcat's idempotent producer and back through a plain and a
# cooperative-sticky group consumer, stop, and proof that nothing is left:
# pids gone, ports free, state removed.
#
# Exit 77 (ctest: skipped) only when there is no Java at all.
set -euo pipefail

src=${1:?usage: test_kafka_sh.sh SOURCE_DIR [BIN_DIR]}
bin=${2:-$src/build/bin}
ks=$src/scripts/kafka.sh

work=$(mktemp -d)
export KAFKA_STATE_DIR=$work/state
# A block of its own, away from 9092 and kafka.sh's default 19092, varied so
# that two trees testing at once rarely meet (kafka.sh moves up if taken).
export KAFKA_PORT_BASE=$((20100 + (RANDOM % 600) * 20))

owner=""
cleanup() {
	"$ks" stop >/dev/null 2>&1 || true
	KAFKA_STATE_DIR=$work/embedded-state "$ks" stop >/dev/null 2>&1 || true
	[ -z "$owner" ] || kill "$owner" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
step() { echo "== $*"; }
# Does PID run? A zombie does not (it waits for init to reap it).
running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat:0:1}" != Z ] && [ "${stat:0:1}" != X ]
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs_since() { # seconds since a now_ms value, to 0.1 s
	local ms=$(($(now_ms) - $1))
	printf '%d.%d\n' $((ms / 1000)) $((ms % 1000 / 100))
}

# run EXPECTED_RC NAME CMD...: runs CMD, output in $work/NAME.{out,err}.
run() {
	local want=$1 name=$2 rc=0
	shift 2
	"$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "--- stdout:" >&2
		cat "$work/$name.out" >&2
		echo "--- stderr:" >&2
		cat "$work/$name.err" >&2
		fail "$name: exit $rc, expected $want"
	fi
}

step "--embedded, and the watchdog"
if [ -x "$bin/kafka-embedded" ]; then
	sleep 300 &
	owner=$!
	run 0 embedded env KAFKA_STATE_DIR="$work/embedded-state" \
		KAFKA_EMBEDDED_BIN="$bin/kafka-embedded" KAFKA_OWNER_PID="$owner" \
		"$ks" start --embedded --nodes 3
	eb=$(tail -n1 "$work/embedded.out")
	[[ $eb =~ ^127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$ ]] ||
		fail "--embedded --nodes 3 printed '$eb'"
	run 0 embedded-status env KAFKA_STATE_DIR="$work/embedded-state" "$ks" status
	epid=$(sed -n 's/.*: pid \([0-9]*\),.*/\1/p' "$work/embedded-status.out")
	running "$epid" || fail "kafka-embedded pid '$epid' from status does not run"
	kill "$owner"
	wait "$owner" 2>/dev/null || true
	owner=""
	for ((i = 0; i < 100; i++)); do
		running "$epid" || break
		sleep 0.1
	done
	if running "$epid"; then
		fail "the watchdog did not stop kafka-embedded within 10 s of its owner's exit"
	fi
	run 3 embedded-gone env KAFKA_STATE_DIR="$work/embedded-state" "$ks" status
	echo "embedded: $eb; stopped by the watchdog"
else
	echo "note: $bin/kafka-embedded is not built: --embedded not exercised"
fi

if [ -z "${JAVA_HOME:-}" ] && ! command -v java >/dev/null 2>&1; then
	echo "SKIP: no Java (no 'java' on PATH, JAVA_HOME unset): the real-Kafka test needs Java 17+"
	exit 77
fi
command -v kcat >/dev/null 2>&1 || fail "kcat is missing (scripts/deps.sh installs it)"

step "errors: no Java, Maven failing, bad usage"
run 4 nojava env JAVA_HOME="$work/no-such-jdk" "$ks" start
grep -q "no Java" "$work/nojava.err" || fail "no 'no Java' message: $(cat "$work/nojava.err")"
# No Maven and no cached jars: every tool of /usr/bin but mvn.
mkdir -p "$work/nomvn"
for f in /usr/bin/*; do
	[ "${f##*/}" = mvn ] || ln -s "$f" "$work/nomvn/"
done
run 4 nomaven env PATH="$work/nomvn" KAFKA_CACHE="$work/empty-cache" "$ks" start
grep -q "Maven" "$work/nomaven.err" || fail "no Maven message: $(cat "$work/nomaven.err")"
mkdir -p "$work/foreign"
: >"$work/foreign/precious"
run 2 foreign env KAFKA_STATE_DIR="$work/foreign" "$ks" start
[ -f "$work/foreign/precious" ] || fail "start removed a file of a foreign state dir"
run 2 badnodes "$ks" start --nodes 0
mkdir -p "$work/fakebin"
cat >"$work/fakebin/mvn" <<'EOF'
#!/bin/sh
echo "[ERROR] fake maven: cannot reach the repository"
exit 1
EOF
chmod +x "$work/fakebin/mvn"
run 1 maven env PATH="$work/fakebin:$PATH" KAFKA_CACHE="$work/empty-cache" "$ks" start
grep -q "fake maven: cannot reach" "$work/maven.err" ||
	fail "Maven's last lines not shown: $(cat "$work/maven.err")"
run 3 status-none "$ks" status
run 2 usage "$ks" frobnicate

step "fetch the jars (Maven, once per machine)"
t0=$(now_ms)
run 0 fetch "$ks" fetch
echo "fetch: $(secs_since "$t0") s"

step "start a one-node cluster (ports from $KAFKA_PORT_BASE)"
t0=$(now_ms)
run 0 start "$ks" start
secs=$(secs_since "$t0")
echo "start: $secs s"
bootstrap=$(tail -n1 "$work/start.out")
[[ $bootstrap =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "last line is not a bootstrap address: '$bootstrap'"
port=${bootstrap##*:}
echo "bootstrap: $bootstrap"

step "status"
run 0 status "$ks" status
cat "$work/status.out"
mapfile -t pids < <(sed -n 's/.*node [0-9]*: pid \([0-9]*\), port \([0-9]*\) (controller \([0-9]*\)).*/\1/p' "$work/status.out")
ctl_port=$(sed -n 's/.*(controller \([0-9]*\)).*/\1/p' "$work/status.out")
[ ${#pids[@]} -eq 1 ] || fail "status lists ${#pids[@]} node pids, expected 1"
[ -n "$ctl_port" ] || fail "status shows no controller port"
kill -0 "${pids[0]}" || fail "pid ${pids[0]} from status does not run"
grep -q "port $port" "$work/status.out" || fail "status does not show port $port"

step "start again: the running cluster is reused"
run 0 restart "$ks" start
[ "$(tail -n1 "$work/restart.out")" = "$bootstrap" ] || fail "second start printed '$(tail -n1 "$work/restart.out")'"

step "topic with 3 partitions"
run 0 topic "$ks" topic kafka.script.t 3
meta=$(kcat -L -b "$bootstrap" -m 10)
grep -q 'topic "kafka.script.t" with 3 partitions' <<<"$meta" || fail "topic not there with 3 partitions: $meta"
run 0 topic-again "$ks" topic kafka.script.t 3
run 1 topic-other "$ks" topic kafka.script.t 5
grep -q "already exists with 3" "$work/topic-other.err" || fail "wrong count not explained: $(cat "$work/topic-other.err")"

step "produce 10 messages (idempotent) and consume them"
for i in $(seq 1 10); do
	printf 'key-%d:message %d\n' "$i" "$i"
done >"$work/expected"
timeout 60 kcat -P -b "$bootstrap" -t kafka.script.t -K: \
	-X enable.idempotence=true -X acks=all <"$work/expected" ||
	fail "kcat producer failed"
timeout 60 kcat -C -b "$bootstrap" -t kafka.script.t -o beginning -e -q \
	-f '%k:%s\n' >"$work/consumed" || fail "kcat consumer failed"
if ! diff <(sort "$work/expected") <(sort "$work/consumed"); then
	fail "consumed records differ from the produced ones"
fi
timeout 60 kcat -G kafka.script.g -b "$bootstrap" -e -q \
	-X partition.assignment.strategy=cooperative-sticky \
	-X auto.offset.reset=earliest -f '%k:%s\n' kafka.script.t \
	>"$work/group" || fail "kcat group consumer failed"
if ! diff <(sort "$work/expected") <(sort "$work/group"); then
	fail "the group consumer read other records than were produced"
fi
echo "10 records out and back, plain and group consumer"

step "stop"
run 0 stop "$ks" stop
run 3 status-after "$ks" status
for pid in "${pids[@]}"; do
	if running "$pid"; then
		fail "pid $pid still runs after stop"
	fi
done
for p in "$port" "$ctl_port"; do
	[ -z "$(ss -Hltn "sport = :$p")" ] || fail "port $p still listens after stop"
done
[ ! -e "$KAFKA_STATE_DIR" ] || fail "state dir left behind: $(ls -A "$KAFKA_STATE_DIR")"
run 0 stop-again "$ks" stop

echo "PASS: kafka.script (start $secs s)"
