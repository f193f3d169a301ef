#!/usr/bin/env bash
# scripts/kafka.sh: a local Apache Kafka (KRaft mode) from its published jars,
# or librdkafka's mock cluster (kafka-embedded), for tests, benchmarks and the
# demo.
#
#   scripts/kafka.sh start [--nodes N] [--embedded]
#   scripts/kafka.sh stop
#   scripts/kafka.sh status
#   scripts/kafka.sh topic NAME PARTITIONS
#   scripts/kafka.sh stop-node ID | start-node ID    (real Kafka only)
#   scripts/kafka.sh fetch
#
# start   Fetches the Kafka jars with Maven (scripts/kafka/pom.xml pins the
#         version) into a cache outside the repo, once; formats storage with
#         kafka.tools.StorageTool; starts N combined broker+controller nodes
#         (kafka.Kafka) on loopback ports; waits until the cluster answers;
#         prints the bootstrap servers as the LAST line of stdout (progress
#         goes to stderr, so `b=$(scripts/kafka.sh start)` is enough).
#         With --embedded, starts kafka-embedded (librdkafka's mock cluster,
#         N brokers) instead, same printing contract. A running cluster with
#         the same shape is reused: its bootstrap servers are printed again.
# stop    Ends only the processes start started (pid files in the state
#         dir, each checked against its start time), SIGTERM then SIGKILL
#         after a bound, and removes the state (data, logs). Idempotent.
# status  Prints each node's pid and ports; exit 0 when running, 3 when not.
# topic   Creates a topic, replication factor min(nodes, 3), with
#         org.apache.kafka.tools.TopicCommand. Already there with that
#         partition count: ok. Already there with another count: error.
# fetch   Only the Maven download into the cache (start does it too).
# stop-node / start-node ID
#         Stops (SIGTERM, data kept) or restarts one node of a running real
#         cluster: broker-fault tests.
#
# Environment:
#   KAFKA_CACHE          jar cache (default ${XDG_CACHE_HOME:-~/.cache}/extractd/kafka-VERSION)
#   KAFKA_STATE_DIR      pid files, configs, data, logs (default ${XDG_RUNTIME_DIR:-/tmp}/extractd-kafka)
#   KAFKA_PORT_BASE      first port tried (default 19092); node i listens on
#                        base+i-1 (clients) and base+N+i-1 (controller); when a
#                        port is taken the whole block moves up
#   KAFKA_HEAP           -Xmx per node (default 512m)
#   KAFKA_START_TIMEOUT  seconds to wait for the cluster to answer (default 90)
#   KAFKA_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL (default 20)
#   KAFKA_EMBEDDED_BIN   kafka-embedded binary (default build/bin/kafka-embedded)
#   KAFKA_EMBEDDED_ARGS  extra arguments for it, e.g. "--topic texts:12" (the
#                        mock cannot create topics at run time)
#   KAFKA_OWNER_PID      start leaves a watchdog that stops the cluster when
#                        this process exits (tests: KAFKA_OWNER_PID=$$)
#   JAVA_HOME            Java to use (default: java on PATH); Java 17 or newer
#
# Exit status: 0 ok, 1 failure, 2 usage error (bad arguments, a state dir
# that is not kafka.sh's), 3 (status) not running, 4 a tool is missing (Java
# 17+, Maven for the first download, the kafka-embedded binary): callers
# skip on 4 only.
set -euo pipefail

TOOL_MISSING=4

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
pom=$here/kafka/pom.xml
version=$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$pom")
cache=${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/extractd/kafka-$version}
state=${KAFKA_STATE_DIR:-${XDG_RUNTIME_DIR:-/tmp}/extractd-kafka}
[[ $state == /* ]] || state=$PWD/$state
port_base=${KAFKA_PORT_BASE:-19092}
heap=${KAFKA_HEAP:-512m}
start_timeout=${KAFKA_START_TIMEOUT:-90}
stop_timeout=${KAFKA_STOP_TIMEOUT:-20}
marker=.extractd-kafka # in the state dir: proof that it is ours to delete

say() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
	local code=$1
	shift
	say "$*"
	exit "$code"
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------- processes

# Start time of a live process (clock ticks since boot, field 22 of
# /proc/PID/stat): with the pid it names one process, never a later one that
# reused the pid. Fails for a zombie: it has exited, whether or not its new
# parent (init, once start has returned) has reaped it yet.
proc_start() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	rest=${stat##*) }
	# shellcheck disable=SC2206 # deliberate word splitting of numeric fields
	local f=($rest)
	[ "${f[0]}" != Z ] && [ "${f[0]}" != X ] || return 1
	printf '%s\n' "${f[19]}"
}

# Is the process recorded in pid file $1 (pid, start time) still alive?
pidfile_alive() {
	local file=$1 pid start now
	[ -f "$file" ] || return 1
	read -r pid start <"$file" || return 1
	is_uint "$pid" || return 1
	now=$(proc_start "$pid") || return 1
	[ "$now" = "$start" ]
}

pidfile_pid() {
	local pid _
	read -r pid _ <"$1"
	printf '%s\n' "$pid"
}

record_pid() { # record_pid PID FILE
	local start
	start=$(proc_start "$1") || return 1
	printf '%s %s\n' "$1" "$start" >"$2"
}

# Wait up to $1 tenths of a second until no process of the pid files
# "${@:2}" is alive; fails when one still is.
wait_gone() { # wait_gone TENTHS FILE...
	local tenths=$1 f i left
	shift
	for ((i = 0; i < tenths; i++)); do
		left=0
		for f in "$@"; do
			pidfile_alive "$f" && left=1
		done
		[ $left -eq 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# SIGTERM every live process of the given pid files, wait up to
# $stop_timeout s, then SIGKILL the rest and wait until they are gone.
stop_pidfiles() {
	local files=() f
	for f in "$@"; do
		if pidfile_alive "$f"; then
			files+=("$f")
			kill -TERM "$(pidfile_pid "$f")" 2>/dev/null || true
		fi
	done
	[ ${#files[@]} -gt 0 ] || return 0
	wait_gone $((stop_timeout * 10)) "${files[@]}" && return 0
	for f in "${files[@]}"; do
		if pidfile_alive "$f"; then
			say "pid $(pidfile_pid "$f") ignored SIGTERM for ${stop_timeout}s: SIGKILL"
			kill -KILL "$(pidfile_pid "$f")" 2>/dev/null || true
		fi
	done
	wait_gone 100 "${files[@]}" && return 0
	say "some processes survived SIGKILL: ${files[*]}"
	return 1
}

# ---------------------------------------------------------------- state

# The state dir holds: $marker, shape ("kafka N" or "embedded N"),
# bootstrap, node-ID/{pid,port,controller_port,server.properties,data,logs}
# or embedded/{pid,out,err}.
state_is_ours() { [ -f "$state/$marker" ]; }

check_state_dir() {
	if [ -e "$state" ] && ! state_is_ours; then
		if [ -d "$state" ] && [ -z "$(ls -A "$state")" ]; then
			return 0
		fi
		die 2 "state dir $state exists and is not kafka.sh's (no $marker); set KAFKA_STATE_DIR"
	fi
}

pidfiles() {
	local f
	for f in "$state"/node-*/pid "$state"/embedded/pid; do
		[ -f "$f" ] && printf '%s\n' "$f"
	done
	return 0
}

any_alive() {
	local f
	while read -r f; do
		pidfile_alive "$f" && return 0
	done < <(pidfiles)
	return 1
}

# Remove what start created, and only that.
remove_state() {
	state_is_ours || return 0
	rm -rf "$state"/node-* "$state/embedded" "$state/shape" "$state/bootstrap" \
		"$state/cluster.id" "$state/run.id" "$state/watchdog.log"
	rm -f "$state/$marker"
	rmdir "$state" 2>/dev/null || true
}

do_stop() {
	check_state_dir
	if ! state_is_ours; then
		say "nothing to stop ($state holds no cluster)"
		return 0
	fi
	local files=()
	mapfile -t files < <(pidfiles)
	if [ ${#files[@]} -gt 0 ]; then
		stop_pidfiles "${files[@]}" || die 1 "could not stop everything; state kept in $state"
	fi
	remove_state
	say "stopped; removed $state"
}

# ---------------------------------------------------------------- tools

find_java() {
	if [ -n "${JAVA_HOME:-}" ]; then
		java=$JAVA_HOME/bin/java
		[ -x "$java" ] || die $TOOL_MISSING "no Java: JAVA_HOME=$JAVA_HOME has no bin/java (Kafka $version needs Java 17 or newer; Debian: apt-get install openjdk-17-jre-headless)"
	else
		java=$(command -v java) || die $TOOL_MISSING "no Java: 'java' is not on PATH (Kafka $version needs Java 17 or newer; Debian: apt-get install openjdk-17-jre-headless)"
	fi
	local v major
	v=$("$java" -version 2>&1) || die $TOOL_MISSING "no working Java: $java -version failed: $v"
	major=$(sed -n '1s/.*version "\([0-9]*\).*/\1/p' <<<"$v")
	if is_uint "$major" && [ "$major" -lt 17 ]; then
		die $TOOL_MISSING "Java $major at $java is too old: Kafka $version needs Java 17 or newer"
	fi
}

# The jars, once: Maven copies kafka_2.13, kafka-tools and their runtime
# dependencies into $cache/libs. A stamp (the pom's checksum) marks a
# complete download; a changed pom downloads again.
fetch_jars() {
	local want lock
	want=$(sha256sum "$pom" | cut -d' ' -f1)
	if [ -f "$cache/complete" ] && [ "$(cat "$cache/complete")" = "$want" ] &&
		[ -f "$cache/libs/kafka_2.13-$version.jar" ]; then
		return 0
	fi
	command -v mvn >/dev/null 2>&1 ||
		die $TOOL_MISSING "Maven ('mvn') is needed once to fetch the Kafka $version jars (Debian: apt-get install maven)"
	mkdir -p "$cache"
	exec {lock}>"$cache/.lock"
	flock "$lock" # another start may be fetching the same cache right now
	if [ -f "$cache/complete" ] && [ "$(cat "$cache/complete")" = "$want" ] &&
		[ -f "$cache/libs/kafka_2.13-$version.jar" ]; then
		exec {lock}>&-
		return 0
	fi
	say "fetching Apache Kafka $version jars with Maven into $cache (once)"
	rm -rf "$cache/libs.partial" "$cache/complete"
	if ! mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$cache/libs.partial" \
		</dev/null >"$cache/maven.log" 2>&1; then
		say "Maven could not fetch the Kafka $version jars; its last lines ($cache/maven.log):"
		tail -n 30 "$cache/maven.log" >&2
		exit 1
	fi
	[ -f "$cache/libs.partial/kafka_2.13-$version.jar" ] ||
		die 1 "Maven succeeded but kafka_2.13-$version.jar is missing from $cache/libs.partial"
	rm -rf "$cache/libs"
	mv "$cache/libs.partial" "$cache/libs"
	printf '%s\n' "$want" >"$cache/complete"
	exec {lock}>&-
}

# A short-lived Kafka tool: small heap, quick JIT, warnings only.
run_tool() {
	"$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$here/kafka/tools-log4j2.properties" \
		-cp "$cache/libs/*" "$@"
}

# ---------------------------------------------------------------- ports

port_busy() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
	else
		(: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# Sets $base to the first block of 2*nodes free ports at or above
# $port_base.
pick_ports() {
	local need=$((2 * nodes)) try p free
	base=$port_base
	for ((try = 0; try < 50; try++)); do
		free=1
		for ((p = base; p < base + need; p++)); do
			if port_busy "$p"; then
				free=0
				break
			fi
		done
		if [ $free -eq 1 ]; then
			[ "$base" = "$port_base" ] ||
				say "a port in $port_base..$((port_base + need - 1)) is taken: using $base..$((base + need - 1))"
			return 0
		fi
		base=$((base + need))
		[ $((base + need)) -le 65535 ] || break
	done
	die 1 "no block of $need free ports at or above $port_base; set KAFKA_PORT_BASE"
}

# ---------------------------------------------------------------- real Kafka

# A random cluster id: 16 random bytes in Kafka's URL-safe base64, not
# starting with '-' (as kafka-storage random-uuid makes them).
cluster_id() {
	local id
	while :; do
		id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		[ "${id:0:1}" != "-" ] && break
	done
	printf '%s\n' "$id"
}

write_config() { # write_config ID
	local id=$1 dir=$state/node-$1 rf min_isr voters="" i
	rf=$((nodes < 3 ? nodes : 3))
	min_isr=$((rf > 2 ? 2 : 1))
	for ((i = 1; i <= nodes; i++)); do
		voters+="${voters:+,}$i@127.0.0.1:$((base + nodes + i - 1))"
	done
	mkdir -p "$dir/data" "$dir/logs"
	printf '%s\n' "$((base + id - 1))" >"$dir/port"
	printf '%s\n' "$((base + nodes + id - 1))" >"$dir/controller_port"
	cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh: node $id of $nodes, combined broker+controller.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$((base + id - 1)),CONTROLLER://127.0.0.1:$((base + nodes + id - 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$((base + id - 1))
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

format_node() { # format_node ID
	local dir=$state/node-$1
	if ! run_tool kafka.tools.StorageTool format --ignore-formatted \
		-t "$(cat "$state/cluster.id")" -c "$dir/server.properties" \
		</dev/null >"$dir/logs/format.log" 2>&1; then
		say "formatting node $1's storage failed:"
		tail -n 20 "$dir/logs/format.log" >&2
		return 1
	fi
}

launch_node() { # launch_node ID
	local dir=$state/node-$1 pid
	(
		cd "$dir"
		exec setsid "$java" -Xms128m -Xmx"$heap" -XX:+UseG1GC \
			-XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
			-Djava.awt.headless=true \
			-Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
			-Dkafka.logs.dir="$dir/logs" \
			-cp "$cache/libs/*" kafka.Kafka "$dir/server.properties"
	) </dev/null >"$dir/logs/stdout.log" 2>&1 &
	pid=$!
	record_pid "$pid" "$dir/pid" || {
		say "node $1 exited at once:"
		tail -n 20 "$dir/logs/stdout.log" >&2
		return 1
	}
}

tail_logs() { # tail_logs ID...
	local id dir
	for id in "$@"; do
		dir=$state/node-$id
		say "node $id: last lines of $dir/logs/server.log:"
		tail -n 25 "$dir/logs/server.log" >&2 2>/dev/null || true
		if [ -s "$dir/logs/stdout.log" ]; then
			say "node $id: last lines of $dir/logs/stdout.log:"
			tail -n 10 "$dir/logs/stdout.log" >&2
		fi
	done
}

# Wait until every node in "$@" logged that it started and (with kcat)
# the cluster's metadata lists every broker. Fails at once when a node dies.
wait_ready() {
	local deadline=$((SECONDS + start_timeout)) id all meta
	local bootstrap
	bootstrap=$(cat "$state/bootstrap")
	while :; do
		all=1
		for id in "$@"; do
			if ! pidfile_alive "$state/node-$id/pid"; then
				say "node $id exited during start-up"
				tail_logs "$id"
				return 1
			fi
			grep -q 'Kafka Server started' "$state/node-$id/logs/server.log" \
				2>/dev/null || all=0
		done
		if [ $all -eq 1 ]; then
			if ! command -v kcat >/dev/null 2>&1; then
				return 0
			fi
			meta=$(kcat -L -b "$bootstrap" -m 2 2>/dev/null || true)
			if grep -q "^ *$nodes brokers:" <<<"$meta"; then
				return 0
			fi
		fi
		if [ $SECONDS -ge $deadline ]; then
			say "Kafka did not answer within ${start_timeout}s on $bootstrap"
			tail_logs "$@"
			return 1
		fi
		sleep 0.2
	done
}

start_kafka() {
	local id ids=() bootstrap="" pids=() fail=0
	find_java
	fetch_jars
	pick_ports
	mkdir -p "$state"
	printf 'kafka %s\n' "$nodes" >"$state/shape"
	cluster_id >"$state/cluster.id"
	for ((id = 1; id <= nodes; id++)); do
		ids+=("$id")
		write_config "$id"
		bootstrap+="${bootstrap:+,}127.0.0.1:$((base + id - 1))"
	done
	printf '%s\n' "$bootstrap" >"$state/bootstrap"
	say "starting Apache Kafka $version (KRaft), $nodes node(s), on $bootstrap"
	# Formatting is one JVM per node: run them side by side.
	for id in "${ids[@]}"; do
		format_node "$id" &
		pids+=($!)
	done
	for id in "${pids[@]}"; do
		wait "$id" || fail=1
	done
	[ $fail -eq 0 ] || return 1
	for id in "${ids[@]}"; do
		launch_node "$id" || return 1
	done
	wait_ready "${ids[@]}" || return 1
}

# ---------------------------------------------------------------- embedded

start_embedded() {
	local bin=${KAFKA_EMBEDDED_BIN:-} build=${BUILD_DIR:-build} dir pid i line=""
	local extra=()
	if [ -z "$bin" ]; then
		case $build in
		/*) bin=$build/bin/kafka-embedded ;;
		*) bin=$repo/$build/bin/kafka-embedded ;;
		esac
	fi
	[ -x "$bin" ] || die $TOOL_MISSING "kafka-embedded not found at $bin (build it: cmake --build build --target kafka-embedded; or set KAFKA_EMBEDDED_BIN)"
	if [ -n "${KAFKA_EMBEDDED_ARGS:-}" ]; then
		read -ra extra <<<"$KAFKA_EMBEDDED_ARGS"
	fi
	dir=$state/embedded
	mkdir -p "$dir"
	printf 'embedded %s\n' "$nodes" >"$state/shape"
	(exec setsid "$bin" --brokers "$nodes" "${extra[@]}") \
		</dev/null >"$dir/out" 2>"$dir/err" &
	pid=$!
	record_pid "$pid" "$dir/pid" || true
	for ((i = 0; i < 200; i++)); do
		if [ -s "$dir/out" ]; then
			line=$(head -n1 "$dir/out")
			[ -n "$line" ] && break
		fi
		if ! pidfile_alive "$dir/pid"; then
			say "kafka-embedded exited during start-up:"
			tail -n 20 "$dir/err" >&2
			return 1
		fi
		sleep 0.05
	done
	[ -n "$line" ] || {
		say "kafka-embedded printed no bootstrap servers within 10 s:"
		tail -n 20 "$dir/err" >&2
		return 1
	}
	printf '%s\n' "$line" >"$state/bootstrap"
}

# ---------------------------------------------------------------- watchdog

# KAFKA_OWNER_PID=PID: a detached watchdog stops the cluster when that
# process is gone, however it ended (a test killed by its timeout, say).
# It leaves on its own, within a second, once this run is stopped.
start_watchdog() {
	local owner=$1 ostart
	is_uint "$owner" || die 2 "KAFKA_OWNER_PID must be a pid, not '$owner'"
	ostart=$(proc_start "$owner") || die 2 "KAFKA_OWNER_PID=$owner does not run"
	# The subshell exits at once: the watchdog belongs to no one's process
	# tree, so whatever kills the owner's tree does not take it along.
	(
		KAFKA_STATE_DIR=$state setsid bash "${BASH_SOURCE[0]}" __watch "$owner" \
			"$ostart" "$(cat "$state/run.id")" </dev/null \
			>>"$state/watchdog.log" 2>&1 &
	)
	say "watchdog: stops this cluster when pid $owner exits"
}

do_watch() { # do_watch OWNER_PID OWNER_START RUN_ID
	local owner=$1 ostart=$2 run=$3
	while :; do
		[ "$(cat "$state/run.id" 2>/dev/null)" = "$run" ] || exit 0
		[ "$(proc_start "$owner" 2>/dev/null)" = "$ostart" ] || break
		sleep 1
	done
	say "watchdog: owner pid $owner is gone: stopping"
	do_stop
}

# ---------------------------------------------------------------- commands

start_ok=0
on_start_exit() {
	if [ $start_ok -eq 0 ] && state_is_ours; then
		local files=()
		mapfile -t files < <(pidfiles)
		if [ ${#files[@]} -gt 0 ]; then
			say "start failed: stopping what it started"
			stop_timeout=5 stop_pidfiles "${files[@]}" || true
		fi
		remove_state
	fi
}

# start found a cluster of the asked shape running: check that every node
# runs and answers (an earlier start may have been killed half-way), then
# print its bootstrap servers again.
reuse() {
	local kind=$1 id ids=()
	say "already running ($kind, $nodes node(s)); state in $state"
	if [ "$kind" = kafka ]; then
		for ((id = 1; id <= nodes; id++)); do
			pidfile_alive "$state/node-$id/pid" ||
				die 1 "node $id is down: scripts/kafka.sh start-node $id (or stop, then start)"
			ids+=("$id")
		done
		wait_ready "${ids[@]}" || exit 1
	fi
	cat "$state/bootstrap"
}

do_start() {
	local embedded=0 kind
	nodes=1
	while [ $# -gt 0 ]; do
		case $1 in
		--nodes)
			[ $# -ge 2 ] || die 2 "--nodes needs a number"
			nodes=$2
			shift 2
			;;
		--nodes=*)
			nodes=${1#--nodes=}
			shift
			;;
		--embedded)
			embedded=1
			shift
			;;
		*) die 2 "start: unknown argument '$1' (start [--nodes N] [--embedded])" ;;
		esac
	done
	if ! is_uint "$nodes" || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 9 ]; then
		die 2 "--nodes must be 1..9, not '$nodes'"
	fi
	kind=$([ $embedded -eq 1 ] && echo embedded || echo kafka)
	check_state_dir
	if state_is_ours; then
		if any_alive; then
			if [ "$(cat "$state/shape" 2>/dev/null)" = "$kind $nodes" ]; then
				reuse "$kind"
				return 0
			fi
			die 1 "a different cluster ($(cat "$state/shape" 2>/dev/null)) runs from $state: scripts/kafka.sh stop first"
		fi
		say "removing stale state in $state"
		remove_state
	fi
	trap on_start_exit EXIT
	mkdir -p "$state"
	: >"$state/$marker"
	cluster_id >"$state/run.id" # names this run, for the watchdog
	trap 'exit 130' INT
	trap 'exit 143' TERM
	local t0=$SECONDS
	if [ $embedded -eq 1 ]; then
		start_embedded || exit 1
	else
		start_kafka || exit 1
	fi
	start_ok=1
	[ -z "${KAFKA_OWNER_PID:-}" ] || start_watchdog "$KAFKA_OWNER_PID"
	say "ready in $((SECONDS - t0)) s; state in $state"
	cat "$state/bootstrap"
}

do_status() {
	local shape kind n f id running=0 total=0 pid
	if ! state_is_ours || [ ! -f "$state/shape" ]; then
		echo "not running (no state in $state)"
		return 3
	fi
	shape=$(cat "$state/shape")
	read -r kind n <<<"$shape"
	if [ "$kind" = embedded ]; then
		f=$state/embedded/pid
		total=1
		if pidfile_alive "$f"; then
			running=1
			echo "kafka-embedded ($n broker(s)): pid $(pidfile_pid "$f"), bootstrap $(cat "$state/bootstrap")"
		else
			echo "kafka-embedded: not running (stale state in $state)"
		fi
	else
		echo "Apache Kafka $version (KRaft), $n node(s), state $state:"
		for ((id = 1; id <= n; id++)); do
			f=$state/node-$id/pid
			total=$((total + 1))
			if pidfile_alive "$f"; then
				running=$((running + 1))
				pid=$(pidfile_pid "$f")
				echo "  node $id: pid $pid, port $(cat "$state/node-$id/port") (controller $(cat "$state/node-$id/controller_port"))"
			else
				echo "  node $id: not running, port $(cat "$state/node-$id/port" 2>/dev/null || echo '?')"
			fi
		done
		echo "bootstrap: $(cat "$state/bootstrap")"
	fi
	if [ $running -eq 0 ]; then
		echo "not running"
		return 3
	fi
	[ $running -eq $total ] || echo "degraded: $running of $total node(s) running"
	return 0
}

# The partition count of topic $2 on bootstrap $1 per kcat, empty when the
# topic does not exist. Lists all topics: a metadata request naming the topic
# could auto-create it.
kcat_partitions() {
	local meta
	meta=$(kcat -L -b "$1" -m 5 2>/dev/null) || return 1
	awk -v t="$2" '$1 == "topic" && $2 == "\"" t "\"" { print $4 }' <<<"$meta"
}

do_topic() {
	[ $# -eq 2 ] || die 2 "usage: scripts/kafka.sh topic NAME PARTITIONS"
	local name=$1 parts=$2 shape kind n rf bootstrap have out
	if ! is_uint "$parts" || [ "$parts" -lt 1 ]; then
		die 2 "PARTITIONS must be a positive number, not '$parts'"
	fi
	[[ $name =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die 2 "invalid topic name '$name'"
	if ! state_is_ours || ! any_alive; then
		die 1 "no cluster runs from $state: scripts/kafka.sh start first"
	fi
	shape=$(cat "$state/shape")
	read -r kind n <<<"$shape"
	bootstrap=$(cat "$state/bootstrap")
	rf=$((n < 3 ? n : 3))
	if [ "$kind" = embedded ]; then
		have=""
		command -v kcat >/dev/null 2>&1 && have=$(kcat_partitions "$bootstrap" "$name" || true)
		[ "$have" = "$parts" ] && {
			say "topic $name exists with $parts partition(s)"
			return 0
		}
		die 1 "kafka-embedded cannot create topics at run time (the mock has no CreateTopics): start it with KAFKA_EMBEDDED_ARGS='--topic $name:$parts'"
	fi
	find_java
	fetch_jars
	if command -v kcat >/dev/null 2>&1; then
		have=$(kcat_partitions "$bootstrap" "$name" || true)
		if [ -n "$have" ]; then
			[ "$have" = "$parts" ] ||
				die 1 "topic $name already exists with $have partition(s), not $parts"
			say "topic $name exists with $parts partition(s)"
			return 0
		fi
	fi
	if ! out=$(run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
		--create --if-not-exists --topic "$name" --partitions "$parts" \
		--replication-factor "$rf" </dev/null 2>&1); then
		say "TopicCommand could not create $name:"
		printf '%s\n' "$out" >&2
		exit 1
	fi
	if grep -qxF "Created topic $name." <<<"$out"; then
		say "topic $name: $parts partition(s), replication factor $rf"
		return 0
	fi
	# --if-not-exists says nothing when the topic was there (someone made it
	# meanwhile): check the count.
	if ! out=$(run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
		--describe --topic "$name" </dev/null 2>&1); then
		say "TopicCommand could not describe $name:"
		printf '%s\n' "$out" >&2
		exit 1
	fi
	have=$(sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' <<<"$out" | head -n1)
	[ "$have" = "$parts" ] ||
		die 1 "topic $name exists with ${have:-?} partition(s), not $parts"
	say "topic $name: $parts partition(s), replication factor $rf"
}

node_cmd() { # node_cmd stop|start ID
	local what=$1 id=${2:-} kind n
	is_uint "$id" || die 2 "usage: scripts/kafka.sh $what-node ID"
	if ! state_is_ours || [ ! -f "$state/shape" ]; then
		die 1 "no cluster in $state"
	fi
	read -r kind n <"$state/shape"
	[ "$kind" = kafka ] || die 2 "$what-node works on real Kafka only"
	if [ "$id" -lt 1 ] || [ "$id" -gt "$n" ]; then
		die 2 "node ID must be 1..$n"
	fi
	if [ "$what" = stop ]; then
		stop_pidfiles "$state/node-$id/pid"
		say "node $id stopped (data kept)"
		return 0
	fi
	if pidfile_alive "$state/node-$id/pid"; then
		say "node $id already runs"
		return 0
	fi
	find_java
	fetch_jars
	nodes=$n
	# The readiness check reads server.log: keep the old run's log aside.
	mv -f "$state/node-$id/logs/server.log" "$state/node-$id/logs/server.log.prev" \
		2>/dev/null || true
	launch_node "$id" || exit 1
	wait_ready "$id" || exit 1
	say "node $id started"
}

main() {
	local cmd=${1:-}
	[ $# -gt 0 ] && shift
	case $cmd in
	start) do_start "$@" ;;
	stop) do_stop ;;
	fetch) fetch_jars ;;
	__watch) do_watch "$@" ;;
	status) do_status ;;
	topic) do_topic "$@" ;;
	stop-node) node_cmd stop "$@" ;;
	start-node) node_cmd start "$@" ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
