"""llmsim: the one way to start llmsim (tools/llmsim/) from Python.

Llmsim(binary, workdir, name, ...) runs llmsim on an ephemeral loopback
port as a procs.Proc, its log WORKDIR/NAME.log, and waits for the port it
writes to WORKDIR/NAME.port. The e2e and ops harness (harness.Llmsim), the
protocol test, the SDK test and the benchmark driver all start it here.
Standard library only: the protocol and SDK tests run on interpreters
without confluent_kafka.
"""

import json
import os
import time
import urllib.request

from procs import STOP_GRACE, Proc, TestFailure, check

START_TIMEOUT = 30.0    # seconds for llmsim to write its port file


class Llmsim:
    """llmsim listening on 127.0.0.1, port chosen by the kernel.

    latency_ms, jitter_ms, seed: passed when given (else llmsim's
    defaults); faults: {kind: rate}, as one --fault; extra: more
    arguments (a later --listen overrides the ephemeral one). wait=False
    returns at once (start several, then wait_port() each).
    new_session: see procs.Proc. The caller owns self.proc: stop() it, or
    hand it to whoever stops its processes.
    """

    def __init__(self, binary, workdir, name="llmsim", latency_ms=None,
                 jitter_ms=None, faults=None, seed=None, extra=(),
                 wait=True, new_session=False):
        self.name = name
        self.portfile = os.path.join(workdir, name + ".port")
        argv = [binary, "--listen", "127.0.0.1:0",
                "--port-file", self.portfile]
        if latency_ms is not None:
            argv += ["--latency-ms", str(latency_ms)]
        if jitter_ms is not None:
            argv += ["--jitter-ms", str(jitter_ms)]
        if faults:
            argv += ["--fault", ",".join("%s=%s" % kv for kv in
                                         sorted(faults.items()))]
        if seed is not None:
            argv += ["--seed", str(seed)]
        argv += list(extra)
        self.proc = Proc(name, argv, os.path.join(workdir, name + ".log"),
                         new_session=new_session)
        self.port = None
        self.base = None
        if wait:
            self.wait_port()

    def wait_port(self, timeout=START_TIMEOUT):
        """The port, once llmsim has written "PORT\\n" (atomically)."""
        end = time.monotonic() + timeout
        while True:
            try:
                with open(self.portfile) as f:
                    text = f.read()
                if text.endswith("\n") and text.strip().isdigit():
                    self.port = int(text)
                    self.base = "http://127.0.0.1:%d" % self.port
                    return self.port
            except OSError:
                pass
            if not self.proc.alive():
                raise TestFailure("%s exited (status %s):\n%s" %
                                  (self.name, self.proc.returncode(),
                                   self.proc.tail()))
            check(time.monotonic() < end, "%s wrote no port file in %ds",
                  self.name, timeout)
            time.sleep(0.02)

    @property
    def base_url(self):
        return self.base + "/v1"

    def stats(self):
        with urllib.request.urlopen(self.base + "/stats", timeout=10) as r:
            return json.loads(r.read().decode())

    def reset(self):
        req = urllib.request.Request(self.base + "/reset", data=b"",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def stop(self, grace=STOP_GRACE):
        """SIGTERM, SIGKILL after grace seconds; returns the exit status."""
        return self.proc.stop(grace)
