#!/usr/bin/env bash
# scripts/deps.sh: install what extractd needs, by purpose.
#
#   scripts/deps.sh [PURPOSE...]       e.g. scripts/deps.sh build demo
#
# With no PURPOSE, all of them. The purposes:
#   build  compile and run extractd, llmsim and kafka-embedded: the compiler,
#          cmake and the -dev libraries (deploy/Dockerfile's build stage
#          installs exactly these; tests/ops/test_dockerfile.py checks it)
#   demo   scripts/demo.sh beyond build: kcat
#   test   scripts/test.sh beyond build: Python with confluent-kafka, kcat,
#          valgrind, Prometheus (promtool), systemd, mandoc and man-db (the
#          man page checks), clang and its sanitizer and fuzzer runtimes,
#          ...; then the JSON-Schema-Test-Suite for unit.test_schema_suite
#          (scripts/schema-suite.sh fetch, into a cache outside the
#          repository)
#   bench  scripts/bench.sh beyond build: gnuplot, python3-venv, kcat,
#          valgrind (its instructions per record)
#   kafka  scripts/kafka.sh's real Apache Kafka: a JRE and Maven (the
#          jars come from Maven Central), kcat
#
# Idempotent: asks dpkg which of the packages are missing and installs only
# those (apt-get update runs only then). When everything is present it
# prints one line and installs nothing. Runs apt-get as root directly,
# otherwise through sudo when sudo exists. Debian 12 (bookworm) names.
# Exit status: 0 ok, 1 failure, 2 unknown purpose.
set -euo pipefail
cd "$(dirname "$0")/.."

# The build packages: tests/ops/test_dockerfile.py reads this list.
build=(
	build-essential cmake pkg-config
	librdkafka-dev libcurl4-openssl-dev libjson-c-dev libconfig-dev
	libmicrohttpd-dev libcmocka-dev libpcre2-dev libsystemd-dev
)
demo=(kcat)
test=(
	kcat python3 python3-confluent-kafka python3-yaml python3-venv
	valgrind curl jq prometheus systemd mandoc man-db
	# the tsan and fuzz passes: clang, its sanitizer and fuzzer runtimes
	clang libclang-rt-14-dev
)
bench=(gnuplot-nox python3 python3-venv python3-confluent-kafka kcat valgrind)
kafka=(openjdk-17-jre-headless maven kcat)
all_purposes="build demo test bench kafka"

purposes=("$@")
[ $# -gt 0 ] || read -r -a purposes <<<"$all_purposes"
packages=()
for purpose in "${purposes[@]}"; do
	case " $all_purposes " in
	*" $purpose "*) ;;
	*)
		echo "deps.sh: unknown purpose '$purpose' (purposes: $all_purposes)" >&2
		exit 2
		;;
	esac
	list="${purpose}[@]"
	for p in "${!list}"; do
		[[ " ${packages[*]} " == *" $p "* ]] || packages+=("$p")
	done
done

# dpkg-query prints "install ok installed" only for a fully installed package.
missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps.sh: ${purposes[*]}: all ${#packages[@]} packages already installed"
else
	if [ "$(id -u)" -eq 0 ]; then
		as_root=()
	elif command -v sudo >/dev/null 2>&1; then
		as_root=(sudo -n)
	else
		echo "deps.sh: missing ${missing[*]}; not root and no sudo" >&2
		exit 1
	fi
	echo "deps.sh: ${purposes[*]}: installing ${missing[*]}"
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
	echo "deps.sh: done"
fi

# The test suite's data, fetched as the calling user (the cache is theirs).
# Offline, the test that needs it says so when it runs (and fails in CI).
if [[ " ${purposes[*]} " == *" test "* ]]; then
	scripts/schema-suite.sh fetch >/dev/null ||
		echo "deps.sh: the JSON-Schema-Test-Suite could not be fetched:" \
			"unit.test_schema_suite will skip (fail under CI=true)" >&2
fi
