#!/usr/bin/env bash
# scripts/deps.sh: install what extractd's build, tests and demo need.
#
# Idempotent: asks dpkg which of the packages below are missing and installs
# only those (apt-get update runs only then). When everything is present it
# prints one line and does nothing else. Runs as root directly, otherwise
# through sudo when sudo exists. Debian 12 (bookworm) package names.
set -euo pipefail

packages=(
	# build: deploy/Dockerfile's build stage installs exactly these
	# (tests/ops/test_dockerfile.py fails when the two drift apart)
	build-essential cmake pkg-config clang
	librdkafka-dev libcurl4-openssl-dev libjson-c-dev libconfig-dev
	libmicrohttpd-dev libcmocka-dev libpcre2-dev libsystemd-dev
	# tests and demo
	kcat python3 python3-confluent-kafka python3-venv valgrind curl jq
	prometheus python3-yaml systemd mandoc man-db
	# sanitizer and fuzzer runtimes for clang
	libclang-rt-14-dev
	# scripts/kafka.sh: Apache Kafka from its Maven jars
	openjdk-17-jre-headless maven
	# scripts/bench.sh plots
	gnuplot-nox
)

# dpkg-query prints "install ok installed" only for a fully installed package.
missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps.sh: all ${#packages[@]} packages already installed, nothing to do"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo -n)
else
	echo "deps.sh: missing ${missing[*]}; not root and no sudo" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
echo "deps.sh: done"
