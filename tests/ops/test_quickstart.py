"""ops.quickstart: the README's quick start does what it shows.

The code blocks of README.md's "Quick start" section run in order, as one
bash script, in a scratch directory where build/ is this build, deploy/
and schemas/ the source tree's: kafka-embedded, llmsim (no API key), then
extractd with deploy/extractd.cfg, kcat producing the texts, kcat reading
the outputs and the dead letters, and `kill %3`. Left out: the build
block (ctest runs on a build), the alternatives that need what a test
has not (a Kafka of one's own, a real API key), and the blocks that show
output. Two substitutions keep it from clashing with other tests on the
machine: llmsim's port 8000 becomes a free one, and extractd's HTTP
endpoint (127.0.0.1:9464 by default) takes an ephemeral port. Every kcat
read is bounded by `timeout`.

Then:
- each record kcat prints is, byte for byte, one the README shows, but
  for `extractd.latency_ms` (any number) and `extractd.source` (any
  texts/PARTITION/OFFSET: placement is the partitioner's); in a sample
  with ",...," the headers shown before and after it must be the
  record's first and last;
- every sample the README shows was printed, and nothing else;
- extractd exits 0 on SIGTERM.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402

TIMEOUT = 180   # seconds for the whole quick start (ctest allows 300)
MARK = "@@quickstart "


def quick_start(source):
    """The code blocks of README.md's quick start, in order."""
    text = open(os.path.join(source, "README.md"), encoding="utf-8").read()
    m = re.search(r"^## Quick start.*?\n(.*?)(?=^## )", text, re.S | re.M)
    check(m is not None, "README.md has no '## Quick start' section")
    return re.findall(r"^```\n(.*?)^```", m.group(1), re.S | re.M)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitute(block, old, new):
    check(block.count(old) == 1, "the quick start's block no longer has "
          "%r once:\n%s", old, block)
    return block.replace(old, new)


def script(blocks):
    """(bash script, README's sample lines per reading block)."""
    lines, samples, reads = [], {}, 0
    port = free_port()
    for b in blocks:
        first = b.lstrip()
        if first.startswith("extractd.source="):      # output shown
            check(reads and reads not in samples, "output shown before "
                  "any kcat read, or twice after one:\n%s", b)
            samples[reads] = b.splitlines()
            continue
        if first.startswith("cmake ") or "KAFKA_BOOTSTRAP" in b or \
                "OPENAI_API_KEY=" in b:
            continue
        if "127.0.0.1:8000" in b:
            b = b.replace("127.0.0.1:8000", "127.0.0.1:%d" % port)
        if "build/bin/extractd" in b:
            b = substitute(b, "-s log.format=text",
                           "-s log.format=text -s http.listen=127.0.0.1:0")
        if "kcat -C" in b:
            reads += 1
            b = substitute(b, "kcat -C", "timeout 60 kcat -C")
            lines.append("echo '%sread %d'" % (MARK, reads))
        lines.append(b)
    check(reads == 2 and sorted(samples) == [1, 2], "want two kcat reads, "
          "each followed by the output it prints; found %d reads, samples "
          "after %s", reads, sorted(samples))
    # "Stop extractd with SIGTERM (kill %3 here, then llmsim and
    # kafka-embedded)".
    lines.append("kill %%3; wait %%3; echo \"%sextractd $?\"" % MARK)
    lines.append("kill %2 %1; wait")
    return "\n".join(lines) + "\n", samples


def normal(line):
    """A record line with what may differ from run to run made fixed:
    `extractd.latency_ms` and the partition and offset of
    `extractd.source`."""
    line = re.sub(r"(^|,)extractd\.latency_ms=\d+(?=,| )",
                  r"\1extractd.latency_ms=N", line)
    return re.sub(r"(^|,)extractd\.source=texts/\d+/\d+(?=,| )",
                  r"\1extractd.source=texts/P/O", line)


def matches(sample, got):
    """Whether a printed record (`-f '%h %s\\n'`) matches a README sample
    line, where ",...," stands for headers left out."""
    sample, got = normal(sample), normal(got)
    if ",...," not in sample:
        return sample == got
    pre, post = sample.split(",...,", 1)
    return (len(got) > len(pre) + len(post) + 1 and
            got.startswith(pre + ",") and got.endswith("," + post))


def run(a, text):
    tmp = tempfile.mkdtemp(prefix="extractd-ops-quickstart-")
    try:
        os.symlink(os.path.dirname(os.path.abspath(a.bin)),
                   os.path.join(tmp, "build"))
        for d in ("deploy", "schemas"):
            os.symlink(os.path.join(os.path.abspath(a.source), d),
                       os.path.join(tmp, d))
        env = dict(os.environ)
        env.pop("KAFKA_BOOTSTRAP", None)
        env.pop("OPENAI_API_KEY", None)
        p = subprocess.Popen(["bash", "-c", text], cwd=tmp,
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            # The script and everything it started go; what it printed
            # is kept for the failure message.
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            err += b"\n(still running after %d s)" % TIMEOUT
        return out.decode(), err.decode()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def body(a):
    text, samples = script(quick_start(a.source))
    out, err = run(a, text)
    printed, status, current = {1: [], 2: []}, None, None
    for line in out.splitlines():
        if line.startswith(MARK + "read "):
            current = int(line[len(MARK) + 5:])
        elif line.startswith(MARK + "extractd "):
            status = line[len(MARK) + 9:]
            current = None
        elif current and line.strip():
            printed[current].append(line)
    check(status == "0", "extractd's exit status after kill %%3: %s\n"
          "stdout:\n%s\nstderr:\n%s", status, out, err[-4000:])
    for n in (1, 2):
        left = list(samples[n])
        for line in printed[n]:
            hit = [s for s in left if matches(s, line)]
            check(hit, "read %d printed a record the README does not "
                  "show:\n  %s\nREADME shows:\n  %s", n, line,
                  "\n  ".join(samples[n]))
            left.remove(hit[0])
        check(not left, "read %d did not print what the README shows:\n"
              "  %s\nprinted:\n  %s\nstderr:\n%s", n, "\n  ".join(left),
              "\n  ".join(printed[n]), err[-4000:])
        log("read %d: %d records, as the README shows", n, len(printed[n]))
    log("extractd exited 0 on SIGTERM")


if __name__ == "__main__":
    opshelp.run_static(body)
