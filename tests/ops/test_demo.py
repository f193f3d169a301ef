"""ops.demo: scripts/demo.sh, the first thing a newcomer runs, prints what
it promises.

The demo runs on the built binaries (DEMO_BIN_DIR: nothing installed or
built), on kafka-embedded and llmsim (KAFKA_BOOTSTRAP and OPENAI_API_KEY
unset), and must exit 0 having printed, for each of its four runs, a
heading and seven records as its reader (kcat over every partition of the
output topic) received them:
  - every run prints the seven Persons llmsim extracts from the seed's
    seven texts, each once;
  - the two runs in offset order, "sequential" and "ordered (gather)",
    print them in the seed's order (the input order: the texts have no
    key, and the output topic, auto-created by the mock, has several
    partitions, so this holds only if extractd keeps keyless records of
    one input partition in one output partition);
  - the timing table has the four runs with their concurrency.
"""

import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402
from harness import SEED_TEXTS, expected_person  # noqa: E402

TIMEOUT = 240   # seconds for the whole demo (ctest allows 300)

# (heading name, max_in_flight, printed in input order)
RUNS = [("sequential", 1, True), ("ordered (gather)", 7, True),
        ("completion (as_completed)", 7, False),
        ("rate-limited (2)", 2, False)]


def run_demo(a):
    """demo.sh's stdout; fails on a non-zero status or a timeout."""
    env = dict(os.environ)
    env.pop("KAFKA_BOOTSTRAP", None)
    env.pop("OPENAI_API_KEY", None)
    env["DEMO_BIN_DIR"] = os.path.abspath(a.bin)
    # Its own process group: on a timeout, the demo and all it started go.
    p = subprocess.Popen([os.path.join(a.source, "scripts", "demo.sh")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        check(False, "demo.sh still running after %ds; stdout:\n%s\n"
              "stderr:\n%s", TIMEOUT, out.decode(), err.decode())
    out, err = out.decode(), err.decode()
    check(p.returncode == 0, "demo.sh exited %d; stdout:\n%s\nstderr:\n%s",
          p.returncode, out, err)
    return out


def sections(out):
    """[(heading name, [record dicts in printed order])]."""
    found = []
    for line in out.splitlines():
        m = re.match(r"== (.+?): max_in_flight=(\d+), ordering=(\w+)$",
                     line)
        if m:
            found.append((m.group(1), int(m.group(2)), []))
        elif line.startswith("  {") and found:
            try:
                found[-1][2].append(json.loads(line))
            except ValueError:
                check(False, "printed record %r is not JSON", line)
    return found


def body(a):
    out = run_demo(a)
    print(out, flush=True)
    check("LLM: llmsim" in out, "the demo did not run on llmsim:\n%s", out)
    want = [expected_person(t) for t in SEED_TEXTS]
    key = lambda p: json.dumps(p, sort_keys=True)  # noqa: E731

    got = sections(out)
    check([(n, c) for n, c, _ in got] == [(n, c) for n, c, _ in RUNS],
          "runs printed %r, want %r", [(n, c) for n, c, _ in got],
          [(n, c) for n, c, _ in RUNS])
    for (name, _, recs), (_, _, in_order) in zip(got, RUNS):
        check(sorted(map(key, recs)) == sorted(map(key, want)),
              "%s printed %r, want the seed's seven people %r", name,
              recs, want)
        if in_order:
            check(recs == want, "%s printed %s, want the seed's order %s",
                  name, [r["name"] for r in recs],
                  [w["name"] for w in want])
        log("%s: the seven people%s", name,
            ", in the seed's order" if in_order else "")

    rows = re.findall(r"^\| (.+?) +\| +([0-9.]+) s \| +(\d+) \|$", out,
                      re.M)
    check([(n, int(c)) for n, _, c in rows] ==
          [(n, c) for n, c, _ in RUNS],
          "timing table rows %r, want the four runs", rows)


if __name__ == "__main__":
    opshelp.run_static(body)
