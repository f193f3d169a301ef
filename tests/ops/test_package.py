"""ops.package: the Debian package installs, works and removes cleanly.

As root only (dpkg writes /usr and /etc; exit 77 otherwise). cpack builds
the package from this build (deploy/install.cmake) into a temporary
directory; then, on this machine:

- the package declares what the programs link: every shared library
  extractd and llmsim link (DT_NEEDED) comes from a package its Depends
  names, and
  /etc/extractd/extractd.cfg is a conffile;
- `dpkg -i` installs it, and dpkg lists exactly the package's files;
- `systemd-analyze verify` accepts the installed unit (which checks that
  its ExecStart binary exists), and ExecStart is /usr/bin/extractd with
  the installed configuration;
- `extractd -c /etc/extractd/extractd.cfg --check-config` passes (the
  configuration finds the installed schema);
- `man -w` finds extractd(8) and llmsim(1);
- `dpkg -r` removes the programs and keeps the conffile; `dpkg --purge`
  then leaves none of its files or directories behind: every path the
  package holds exists afterwards only if it existed before.

The purge runs whatever fails in between (and on SIGTERM). Runs on
this machine take a lock file, so two test runs never install at once;
dpkg's own lock (another apt or dpkg at work) is waited for. When an
extractd package is installed already, or one of the package's files
exists, the test changes nothing and exits 77.
"""

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402

PACKAGE = "extractd"
CONF = "/etc/extractd/extractd.cfg"
UNIT = "/usr/lib/systemd/system/extractd.service"
LOCK = "/run/lock/extractd-ops-package.lock"
PROGRAMS = ("/usr/bin/extractd", "/usr/bin/llmsim")
# Another dpkg or apt holds dpkg's lock (status 2 and one of these).
DPKG_LOCKED = re.compile(r"lock|locked", re.I)


def run(argv, timeout=120, env=None):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return (r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace"))


def skip(why):
    print("SKIP: %s" % why, flush=True)
    sys.exit(77)


def dpkg(args, deadline):
    """dpkg ARGS, waiting while another dpkg holds its lock."""
    while True:
        rc, out, err = run(["dpkg"] + args, timeout=180)
        if rc == 0 or not DPKG_LOCKED.search(err) or \
                time.monotonic() > deadline:
            return rc, out, err
        log("dpkg is locked, waiting: %s", err.strip())
        time.sleep(1)


def package_paths(deb):
    """Every path the package holds, as installed ("/usr/bin/..."), with
    whether it is a directory."""
    rc, out, err = run(["dpkg-deb", "--contents", deb])
    check(rc == 0, "dpkg-deb --contents: %s", err)
    paths = {}
    for line in out.splitlines():
        name = line.split()[-1]
        p = os.path.normpath(name.lstrip(".")) if name != "./" else "/"
        if p != "/":
            paths[p] = line.startswith("d")
    return paths


def installed_status():
    rc, out, _ = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE])
    return out.strip() if rc == 0 else ""


def shlib_packages(program):
    """The packages holding the shared libraries program links (its
    DT_NEEDED entries; theirs are their packages' business)."""
    rc, out, err = run(["readelf", "--dynamic", program])
    check(rc == 0, "readelf --dynamic %s: %s", program, err)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out)
    check(needed, "%s links no shared library?", program)
    rc, out, err = run(["ldd", program])
    check(rc == 0, "ldd %s: %s", program, err)
    where = dict(re.findall(r"^\s*(\S+) => (/\S+)", out, re.M))
    pkgs = {}
    for lib in needed:
        path = where.get(lib)
        check(path is not None, "%s: ldd does not resolve %s", program, lib)
        rc, owner, err = run(["dpkg-query", "-S", os.path.realpath(path)])
        if rc != 0:  # merged /usr: dpkg may know the other spelling
            rc, owner, err = run(["dpkg-query", "-S", path])
        check(rc == 0, "%s: %s (%s) belongs to no package: %s", program,
              lib, path, err.strip())
        pkgs[lib] = owner.split(":")[0].strip()
    return pkgs


def build_package(a, work):
    build = os.path.dirname(os.path.abspath(a.bin))
    config = os.path.join(build, "CPackConfig.cmake")
    check(os.path.exists(config), "no %s: configure the build first",
          config)
    cpack = shutil.which("cpack")
    check(cpack is not None, "cpack not found (cmake installs it)")
    rc, out, err = run([cpack, "--config", config, "-B", work],
                       timeout=240)
    check(rc == 0, "cpack: status %d:\n%s%s", rc, out[-3000:], err[-3000:])
    debs = [f for f in os.listdir(work) if f.endswith(".deb")]
    check(len(debs) == 1, "cpack made %r", debs)
    return os.path.join(work, debs[0])


def check_installed(deb, paths):
    status = installed_status()
    check(status == "install ok installed", "after dpkg -i: status %r",
          status)
    rc, out, err = run(["dpkg-query", "-L", PACKAGE])
    check(rc == 0, "dpkg-query -L: %s", err)
    listed = {os.path.normpath(l) for l in out.splitlines()
              if l.strip() and l != "/."}
    check(listed == set(paths), "dpkg -L differs from the package: "
          "only listed %s, only in the package %s",
          sorted(listed - set(paths)), sorted(set(paths) - listed))

    # Dependencies: what the programs load, declared.
    rc, depends, err = run(["dpkg-query", "-W", "-f=${Depends}", PACKAGE])
    check(rc == 0, "dpkg-query Depends: %s", err)
    declared = {d.split()[0] for d in re.split(r"[,|]", depends) if d.strip()}
    for program in PROGRAMS:
        for lib, pkg in sorted(shlib_packages(program).items()):
            check(pkg in declared, "%s loads %s from %s, which Depends "
                  "(%s) does not name", program, lib, pkg, depends)
    log("Depends: %s", depends)
    rc, conffiles, err = run(["dpkg-query", "-W", "-f=${Conffiles}",
                              PACKAGE])
    check(rc == 0 and CONF in conffiles, "%s is not a conffile: %r", CONF,
          conffiles)

    # The unit: verified as installed, running what was installed.
    unit = open(UNIT).read()
    m = re.search(r"^ExecStart=(.*)$", unit, re.M)
    check(m and m.group(1).startswith("/usr/bin/extractd -c %s " % CONF),
          "installed ExecStart: %r", m and m.group(1))
    rc, out, err = run(["systemd-analyze", "verify", UNIT], timeout=60)
    text = (out + err).strip()
    check(rc == 0 and "extractd.service" not in text,
          "systemd-analyze verify %s: status %d:\n%s", UNIT, rc, text)
    log("systemd-analyze verify %s: clean", UNIT)

    # The configuration, as installed, with the installed schema.
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    rc, out, err = run(["/usr/bin/extractd", "-c", CONF, "--check-config"],
                       env=env)
    check(rc == 0 and "configuration OK" in out,
          "extractd --check-config %s: status %d: %s%s", CONF, rc, out, err)
    log("%s", out.strip())

    # The man pages, where man looks.
    env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
    for name, want in (("extractd", "/usr/share/man/man8/extractd.8"),
                       ("llmsim", "/usr/share/man/man1/llmsim.1")):
        rc, out, err = run(["man", "-w", name], env=env)
        check(rc == 0 and out.strip() == want, "man -w %s: status %d, %r "
              "(want %s) %s", name, rc, out.strip(), want, err.strip())
    log("man -w finds extractd(8) and llmsim(1)")


def body(a):
    if os.geteuid() != 0:
        skip("not root: dpkg -i needs root")
    for tool in ("dpkg", "dpkg-deb", "dpkg-query", "systemd-analyze", "man",
                 "ldd", "readelf"):
        check(shutil.which(tool) is not None, "%s not found", tool)
    deadline = time.monotonic() + 240

    # One run at a time on this machine; then nothing of ours may be there.
    lock = open(LOCK, "w")
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            check(time.monotonic() < deadline - 120, "another run holds %s",
                  LOCK)
            time.sleep(1)
    work = tempfile.mkdtemp(prefix="extractd-ops-package-")
    try:
        deb = build_package(a, work)
        log("built %s (%d bytes)", os.path.basename(deb),
            os.path.getsize(deb))
        paths = package_paths(deb)
        if installed_status() not in ("", "unknown ok not-installed"):
            skip("the extractd package is on this machine already (%s): "
                 "not touching it" % installed_status())
        there = sorted(p for p, d in paths.items()
                       if not d and os.path.lexists(p))
        if there:
            skip("files of the package exist already, not from it: %s" %
                 ", ".join(there))
        before = {p for p in paths if os.path.lexists(p)}

        def on_term(signum, frame):
            raise SystemExit("signal %d" % signum)
        signal.signal(signal.SIGTERM, on_term)
        try:
            rc, out, err = dpkg(["-i", deb], deadline)
            check(rc == 0, "dpkg -i: status %d:\n%s%s", rc, out, err)
            log("dpkg -i: installed")
            check_installed(deb, paths)
            # Removed, not purged: the programs go, the conffile stays.
            rc, out, err = dpkg(["-r", PACKAGE], deadline)
            check(rc == 0, "dpkg -r: status %d:\n%s%s", rc, out, err)
            status = installed_status()
            check(status == "deinstall ok config-files",
                  "after dpkg -r: status %r", status)
            check(not any(os.path.lexists(p) for p in PROGRAMS),
                  "dpkg -r left a program behind")
            check(os.path.exists(CONF), "dpkg -r removed the conffile %s",
                  CONF)
            log("dpkg -r: programs gone, %s kept", CONF)
        finally:
            rc, out, err = dpkg(["--purge", PACKAGE], deadline + 60)
            log("dpkg --purge: status %d", rc)
        check(rc == 0, "dpkg --purge: status %d:\n%s%s", rc, out, err)
        status = installed_status()
        check(status in ("", "unknown ok not-installed"),
              "after dpkg --purge: status %r", status)
        after = {p for p in paths if os.path.lexists(p)}
        check(after == before, "left behind by dpkg --purge: %s",
              sorted(after - before))
        log("dpkg --purge: none of the package's %d paths left behind",
            len(paths))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        lock.close()


if __name__ == "__main__":
    opshelp.run_static(body)
