"""opshelp: what the ops tests need beyond harness.py.

harness.py starts Kafka, llmsim and extractd and cleans up. This module adds, on top of it:

- start_extractd(): extractd with its HTTP endpoint on an ephemeral port,
  extra `-s` overrides and its own environment (the harness's Extractd
  fixes both), registered with the harness so close() stops it;
- Http: GET one of its endpoints, wait for a probe's answer;
- parse_metrics(): the Prometheus text format as {series: value};
- promtool(): `promtool check metrics` on a scrape;
- json_lines(): a log, checked to be one JSON object per line.

Static tests (no processes) use only args() and the check helpers.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import harness
from harness import TestFailure, check, log  # noqa: F401

DEADLINE = harness.DEADLINE


def args():
    """--bin and --source, as ctest passes them to every ops test."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="build dir's bin/")
    ap.add_argument("--source", required=True, help="repository root")
    return ap.parse_args()


def run_static(body):
    """main() of a test that starts nothing: body(args); exit 0 or 1."""
    a = args()
    try:
        body(a)
    except TestFailure as e:
        print("FAIL: %s" % e, flush=True)
        print("FAILED", flush=True)
        sys.exit(1)
    print("PASS", flush=True)
    sys.exit(0)


_LISTENING = re.compile(r'http listening"?[ ,]"address":"([^"]+)"')


class Daemon:
    """An extractd the ops tests start: harness.Proc plus its address."""

    def __init__(self, h, proc):
        self.h = h
        self.proc = proc
        self.addr = None
        self.group = None   # its consumer group

    def log_text(self):
        return self.proc.log_text()

    def check_running(self):
        if not self.proc.alive():
            raise TestFailure("extractd exited (status %s):\n%s" %
                              (self.proc.returncode(), self.proc.tail()))

    def wait_address(self, timeout=30.0):
        """The HTTP address from its "http listening" log line."""
        end = time.monotonic() + timeout
        while True:
            # JSON or text format: the field reads the same in both.
            m = _LISTENING.search(self.proc.log_text())
            if m:
                self.addr = m.group(1)
                log("extractd http at %s", self.addr)
                return self.addr
            self.check_running()
            check(time.monotonic() < end,
                  "no 'http listening' line in %ds:\n%s", timeout,
                  self.proc.tail())
            time.sleep(0.02)

    def get(self, path, method="GET"):
        """(status, body text, headers) of one request."""
        req = urllib.request.Request("http://%s%s" % (self.addr, path),
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def metrics(self):
        status, text, headers = self.get("/metrics")
        check(status == 200, "/metrics answered %d: %s", status, text)
        check(headers.get("Content-Type", "").startswith(
            "text/plain; version=0.0.4"),
            "/metrics Content-Type %r", headers.get("Content-Type"))
        return text

    def wait_probe(self, path, want, contains=None, timeout=DEADLINE):
        """Poll path until it answers status want (and body has contains).

        Returns the body."""
        end = time.monotonic() + timeout
        last = None
        while True:
            self.check_running()
            status, body, _ = self.get(path)
            if status == want and (contains is None or contains in body):
                log("%s: %d %s", path, status, body.strip())
                return body
            if (status, body) != last:
                log("%s: %d %s (waiting for %d%s)", path, status,
                    body.strip(), want,
                    " with %r" % contains if contains else "")
                last = (status, body)
            check(time.monotonic() < end,
                  "%s never answered %d%s in %ds; last %d %r", path, want,
                  " with %r" % contains if contains else "", timeout,
                  status, body)
            time.sleep(0.1)

    def terminate(self, timeout=60):
        self.proc.signal(15)
        rc = self.proc.wait(timeout)
        check(rc is not None, "extractd still running %ds after SIGTERM",
              timeout)
        return rc


_n_started = 0


def start_extractd(h, overrides=None, sets=(), env=None, tag="ops",
                   http=True):
    """extractd on a harness config; returns a Daemon.

    overrides: nested dict merged into the harness config; sets: extra
    "-s path=value" arguments; env: the environment (default: ours plus
    OPENAI_API_KEY=sk-test); http: listen on 127.0.0.1:0 (ephemeral).
    """
    over = dict(overrides or {})
    if http:
        over.setdefault("http", {"listen": "127.0.0.1:0"})
    global _n_started
    _n_started += 1
    # The harness names its config by its own count: keep ours apart.
    written, group = h.config(over)
    path = os.path.join(h.dir, "extractd-%s-%d.cfg" % (tag, _n_started))
    shutil.copyfile(written, path)
    argv = [h.binary("extractd"), "-c", path]
    for s in sets:
        argv += ["-s", s]
    if env is None:
        env = dict(os.environ)
        env["OPENAI_API_KEY"] = "sk-test"
    proc = harness.Proc("extractd", argv,
                        os.path.join(h.dir, "extractd-%s-%d.log" %
                                     (tag, _n_started)), env=env)
    h.procs.append(proc)
    log("extractd started (pid %d, %s)", proc.pid, tag)
    d = Daemon(h, proc)
    d.group = group
    if http:
        d.wait_address()
    return d


def _lines(path):
    """The JSON lines of a log so far (others skipped)."""
    out = []
    try:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    v = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(v, dict):
                    out.append(v)
    except OSError:
        pass
    return out


def json_lines(text, skip_prefix="$ "):
    """Every line of an extractd log as a dict; fails on any other line.

    The harness writes the command line first ("$ ..."): skipped.
    """
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if skip_prefix and line.startswith(skip_prefix) and i == 1:
            continue
        try:
            v = json.loads(line)
        except ValueError as e:
            raise TestFailure("log line %d is not JSON (%s): %r" %
                              (i, e, line))
        check(isinstance(v, dict), "log line %d is not an object: %r", i,
              line)
        out.append(v)
    return out


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse_metrics(text):
    """{'name{labels}': float} of every sample (labels as written)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        check(m is not None, "not a sample line: %r", line)
        key = m.group(1) + (m.group(2) or "")
        check(key not in out, "sample %s twice", key)
        out[key] = float(m.group(3))
    return out


def family(samples, name):
    """{labels text: value} of one metric name (labels '' when none)."""
    out = {}
    for k, v in samples.items():
        base, _, labels = k.partition("{")
        if base == name:
            out["{" + labels if labels else ""] = v
    return out


def promtool(text):
    """Fail unless `promtool check metrics` accepts text, lint included."""
    tool = shutil.which("promtool")
    check(tool is not None, "promtool not found (scripts/deps.sh installs "
          "the prometheus package)")
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = r.stdout.decode(errors="replace").strip()
    check(r.returncode == 0 and not out,
          "promtool check metrics: status %d:\n%s", r.returncode, out)
    log("promtool check metrics: clean (%d lines)", len(text.splitlines()))
