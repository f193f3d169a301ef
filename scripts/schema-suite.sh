#!/usr/bin/env bash
# scripts/schema-suite.sh: the official JSON-Schema-Test-Suite for
# unit.test_schema_suite, from the PyPI source distribution of jsonschema
# (it carries the whole suite under json/tests/), pinned by version and
# sha256 and kept in a cache outside the repository.
#
#   scripts/schema-suite.sh fetch             download, verify, unpack, once;
#                                             prints the draft2020-12 folder
#   scripts/schema-suite.sh run PROGRAM [ARG...]
#                                             fetch, then run PROGRAM ARG...
#                                             with that folder last (ctest)
#
# The archive is checked against its sha256 before anything is unpacked;
# a second call finds the unpacked folder and does not touch the network.
#
# Environment:
#   SCHEMA_SUITE_CACHE  the cache (default
#                       ${XDG_CACHE_HOME:-~/.cache}/extractd/jsonschema-VERSION)
#   CI                  true: run fails (1) when the suite cannot be had,
#                       instead of skipping (77)
#
# Exit status: 0 ok (run: PROGRAM's), 1 failure, 2 usage error, 77 (run
# only, outside CI) the suite could not be fetched.
set -euo pipefail

version=4.26.0
sha256=0c26707e2efad8aa1bfc5b7ce170f3fccc2e4918ff85989ba9ffa9facb2be326
# The file's address in PyPI's simple index (pypi.org/simple/jsonschema/).
url=https://files.pythonhosted.org/packages/b3/fc/e067678238fa451312d4c62bf6e6cf5ec56375422aee02f9cb5f909b3047/jsonschema-$version.tar.gz
cache=${SCHEMA_SUITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/extractd/jsonschema-$version}
suite=$cache/draft2020-12

say() { printf 'schema-suite.sh: %s\n' "$*" >&2; }

# fetch: the suite into $suite, once. Returns 1 with a reason on stderr.
fetch() {
	local tmp rc=0
	[ -f "$suite/.complete" ] && return 0
	command -v curl >/dev/null 2>&1 || {
		say "curl is missing (scripts/deps.sh test installs it)"
		return 1
	}
	mkdir -p "$cache" && tmp=$(mktemp -d "$cache/.fetch.XXXXXX") || return 1
	unpack "$tmp" || rc=1
	rm -rf "$tmp"
	return "$rc"
}

# unpack TMP: download into TMP, verify, unpack, move into place.
unpack() {
	local tmp=$1 dir=$1/jsonschema-$version/json/tests/draft2020-12
	say "downloading jsonschema-$version.tar.gz from PyPI"
	curl -fsSL --retry 2 --max-time 120 -o "$tmp/sdist.tar.gz" "$url" || {
		say "cannot download $url"
		return 1
	}
	echo "$sha256  $tmp/sdist.tar.gz" | sha256sum -c --status || {
		say "jsonschema-$version.tar.gz: its sha256 is not $sha256"
		return 1
	}
	tar -xzf "$tmp/sdist.tar.gz" -C "$tmp" \
		"jsonschema-$version/json/tests/draft2020-12" &&
		touch "$dir/.complete" || return 1
	# A copy without .complete is an interrupted one; a complete one is
	# another fetch's, as good as this.
	[ -f "$suite/.complete" ] && return 0
	rm -rf "$suite"
	mv -T "$dir" "$suite" || [ -f "$suite/.complete" ]
}

case ${1:-} in
fetch)
	[ $# -eq 1 ] || { say "usage: fetch takes no arguments"; exit 2; }
	fetch || exit 1
	echo "$suite"
	;;
run)
	[ $# -ge 2 ] || { say "usage: run PROGRAM [ARG...]"; exit 2; }
	shift
	if ! fetch; then
		case ${CI:-} in
		true | 1 | yes) say "CI=true: the suite is required"; exit 1 ;;
		esac
		echo "SKIP: the JSON-Schema-Test-Suite cannot be fetched (see above)"
		exit 77
	fi
	exec "$@" "$suite"
	;;
*)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
	;;
esac
