"""llamacpp: a real LLM server for the realmodel tests.

LlamaServer(h) starts llama-cpp-python's OpenAI-compatible server with
SmolLM2-135M (scripts/llamacpp.sh fetch builds and caches both, outside the
repo; the realmodel.fetch test runs it first) on an ephemeral loopback
port, owned by the harness like llmsim: stopped in h.close(), killed with
the test. The server answers one request at a time.
"""

import json
import os
import socket
import subprocess
import time
import urllib.request

import harness
from harness import check, log

ALIAS = "smollm2"
START_TIMEOUT = 120.0


def fetch(source):
    """(python, model) from scripts/llamacpp.sh fetch (cached: seconds)."""
    script = os.path.join(source, "scripts", "llamacpp.sh")
    r = subprocess.run([script, "fetch"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=1800)
    check(r.returncode == 0, "llamacpp.sh fetch failed (%d):\n%s",
          r.returncode, r.stderr.decode(errors="replace")[-3000:])
    paths = dict(line.split("=", 1) for line in
                 r.stdout.decode().splitlines() if "=" in line)
    return paths["LLAMACPP_PYTHON"], paths["LLAMACPP_MODEL"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama_cpp.server on 127.0.0.1, model alias "smollm2"."""

    def __init__(self, h, n_ctx=4096):
        python, model = fetch(h.source)
        for attempt in range(3):
            self.port = _free_port()
            argv = [python, "-m", "llama_cpp.server", "--model", model,
                    "--model_alias", ALIAS, "--host", "127.0.0.1",
                    "--port", str(self.port), "--n_ctx", str(n_ctx)]
            self.proc = harness.Proc(
                "llama-server", argv,
                os.path.join(h.dir, "llama-server-%d.log" % attempt))
            h.procs.append(self.proc)
            if self._wait_up():
                break
        else:
            raise harness.TestFailure("llama server did not start:\n%s" %
                                      self.proc.tail())
        self.base = "http://127.0.0.1:%d" % self.port
        log("llama server at %s (%s)", self.base, os.path.basename(model))

    def _wait_up(self):
        """True once /v1/models answers; False if it exited (the port was
        taken between the check and its bind: try another)."""
        end = time.monotonic() + START_TIMEOUT
        url = "http://127.0.0.1:%d/v1/models" % self.port
        while time.monotonic() < end:
            if not self.proc.alive():
                return False
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    json.loads(r.read())
                    return True
            except OSError:
                time.sleep(0.2)
        raise harness.TestFailure("llama server not answering in %ds:\n%s" %
                                  (START_TIMEOUT, self.proc.tail()))

    @property
    def base_url(self):
        return self.base + "/v1"


def config(over=None):
    """The realmodel tests' extractd settings: the server's model, and as
    many calls at once as it serves (one)."""
    tree = {"llm": {"model": ALIAS, "mode": "auto", "timeout_ms": 120000},
            "pool": {"workers": 1, "max_in_flight": 1}}
    return harness._merge(tree, over or {})
