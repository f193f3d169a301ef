"""ops.dockerfile: deploy/Dockerfile builds with what scripts/deps.sh
proves, and runs with what the binaries need. (No Docker engine here: the
file is checked, not built.)

- The build stage (FROM debian:bookworm) installs exactly the build
  packages of scripts/deps.sh (its build=( ... ) list, the "build"
  purpose): a package added to one and not the other fails here.
- The runtime stage is debian:bookworm-slim, runs as a non-root USER, and
  installs a package for every shared library the built extractd and
  llmsim link (their DT_NEEDED entries, mapped to Debian packages with
  dpkg -S; libc6 is in the base image), and nothing that is not a library
  they need, except ca-certificates.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402

BASE = {"libc6", "libgcc-s1"}   # in debian:bookworm-slim already
EXTRA = {"ca-certificates"}      # not linked, but https:// needs it
# A -DEXTRACTD_SANITIZE build links these; the image's build does not.
SANITIZER_LIB = re.compile(r"^lib(asan|ubsan|tsan|lsan)\.so")


def deps_build_packages(source):
    text = open(os.path.join(source, "scripts", "deps.sh")).read()
    m = re.search(r"^build=\((.*?)^\)", text, re.S | re.M)
    check(m is not None, "no build=( ... ) list in scripts/deps.sh")
    words = []
    for line in m.group(1).splitlines():
        line = line.split("#", 1)[0]
        words += line.split()
    check(words, "no build packages in scripts/deps.sh")
    return words


def stages(text):
    """[(FROM line, [RUN texts joined over continuations])]."""
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            out.append((line, [], []))
        elif out and line.startswith("RUN "):
            out[-1][1].append(line[4:])
        elif out and line.startswith("USER "):
            out[-1][2].append(line[5:].strip())
    return out


def apt_packages(runs):
    pkgs = []
    for run in runs:
        for cmd in run.split("&&"):
            words = cmd.split()
            if "apt-get" in words and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:]
                         if not w.startswith("-")]
    return pkgs


def needed_packages(binaries):
    """{package: [libs]} for the DT_NEEDED libraries of binaries."""
    libs = set()
    for b in binaries:
        out = subprocess.run(["readelf", "-d", b], stdout=subprocess.PIPE,
                             check=True, timeout=30).stdout.decode()
        libs |= {lib for lib in
                 re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
                 if not SANITIZER_LIB.match(lib)}
    ldconfig = subprocess.run(["/sbin/ldconfig", "-p"],
                              stdout=subprocess.PIPE, check=True,
                              timeout=30).stdout.decode()
    pkgs = {}
    for lib in sorted(libs):
        m = re.search(r"^\s*%s \(.*\) => (\S+)$" % re.escape(lib), ldconfig,
                      re.M)
        check(m is not None, "ldconfig does not know %s", lib)
        path = os.path.realpath(m.group(1))
        r = subprocess.run(["dpkg", "-S", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if r.returncode:
            # usrmerge: dpkg may know the /lib spelling only.
            alt = re.sub(r"^/usr", "", path)
            r = subprocess.run(["dpkg", "-S", alt], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
        check(r.returncode == 0, "dpkg -S %s: %s", path,
              r.stderr.decode().strip())
        pkg = r.stdout.decode().split(":", 1)[0].strip()
        pkgs.setdefault(pkg, []).append(lib)
    return pkgs


def body(a):
    text = open(os.path.join(a.source, "deploy", "Dockerfile")).read()
    st = stages(text)
    check(len(st) >= 2, "not a multi-stage build: %d stages", len(st))
    build, runtime = st[0], st[-1]
    check(re.match(r"FROM debian:bookworm AS \w+$", build[0]),
          "build stage %r is not debian:bookworm", build[0])
    check(re.match(r"FROM debian:bookworm-slim\b", runtime[0]),
          "runtime stage %r is not debian:bookworm-slim", runtime[0])

    want = deps_build_packages(a.source)
    have = apt_packages(build[1])
    check(sorted(have) == sorted(want),
          "the build stage installs %s; scripts/deps.sh builds with %s "
          "(only in Dockerfile: %s; only in deps.sh: %s)", have, want,
          sorted(set(have) - set(want)), sorted(set(want) - set(have)))
    log("build stage = deps.sh build packages (%d)", len(want))

    check(runtime[2] and runtime[2][-1].split(":")[0] not in
          ("root", "0"), "the runtime stage runs as root (USER %s)",
          runtime[2])
    rt = set(apt_packages(runtime[1]))
    bins = [os.path.join(a.bin, b) for b in ("extractd", "llmsim")]
    need = needed_packages(bins)
    missing = {p: l for p, l in need.items()
               if p not in rt and p not in BASE}
    check(not missing, "the runtime stage lacks packages for %s", missing)
    extra = rt - set(need) - EXTRA
    check(not extra, "the runtime stage installs %s, which nothing links",
          sorted(extra))
    log("runtime stage covers %s", ", ".join(
        "%s (%s)" % (p, " ".join(l)) for p, l in sorted(need.items())))
    for name in ("extractd", "llmsim"):
        check(re.search(r"^COPY --from=\w+ .*/%s\b" % name, text, re.M),
              "the runtime stage does not copy %s", name)


if __name__ == "__main__":
    opshelp.run_static(body)
