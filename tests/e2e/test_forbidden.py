"""e2e.forbidden: a 403 (the key may not use the API) pauses extraction at
once, as a 401 does (e2e.pause); nothing is dead-lettered for it, and the
time paused does not count against retry.max_elapsed_ms.

llmsim answers every call 403 (--fault 403=1: OpenAI's
unsupported_country_region_territory). Proves, while it does:
  - no output and no dead letter appears, /readyz is 503 saying the API is
    paused, and the log has exactly one error line for the pause, naming
    the fault "auth";
then llmsim is started again on the same port, answering, but failing
half its calls with a 503 (seeded), with retry.max_elapsed_ms = ELAPSED_MS,
shorter than the pause: the records that waited through the pause still
get their retries (their deadline moved by the time paused), so every
input comes out exactly once as its Person, none as a dead letter; /readyz
is 200 again, and SIGTERM commits the end.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 60
PAUSED_S = 5.0      # seconds the 403s go on
ELAPSED_MS = 3000   # retry.max_elapsed_ms: shorter than the pause


def log_lines(d):
    return [json.loads(x) for x in d.log_text().splitlines()
            if x.startswith("{")]


def body(h):
    h.start_kafka(partitions=2)
    sim = h.start_llmsim(latency_ms=5, faults={"403": 1.0})
    port = sim.port
    texts = person_texts(N, seed=91)
    placed = h.produce([(None, t, i % 2) for i, t in enumerate(texts)])
    coll = h.collector()
    out, dlq = h.topics["output"], h.topics["dlq"]

    d = opshelp.start_extractd(h, {
        "pool": {"workers": 8, "max_in_flight": 8},
        "retry": {"max_attempts": 50, "base_delay_ms": 20,
                  "max_delay_ms": 100, "max_elapsed_ms": ELAPSED_MS},
    }, tag="forbidden")
    group = d.group
    why = d.wait_probe("/readyz", 503, contains="LLM API paused")
    log("/readyz: %s", why.strip())
    end = time.monotonic() + harness.DEADLINE
    while h.llm.stats()["by_status"].get("403", 0) < 1:
        d.check_running()
        check(time.monotonic() < end, "no 403 reached extractd")
        time.sleep(0.05)
    coll.poll(PAUSED_S)
    check(coll.count() == 0, "records came out while every call got a "
          "403: %s", coll.summary())
    d.wait_probe("/readyz", 503, contains="LLM API paused")
    paused = [x for x in log_lines(d) if "paused" in x.get("msg", "")]
    check(len(paused) == 1 and paused[0]["level"] == "error" and
          paused[0].get("fault") == "auth",
          "want one error line for the pause, fault auth, got %r", paused)

    sim.proc.stop()
    h.llm = harness.Llmsim(h, latency_ms=5, faults={"503": 0.5}, seed=3,
                           extra=["--listen", "127.0.0.1:%d" % port])
    check(h.llm.port == port, "llmsim came back on %d, not %d",
          h.llm.port, port)
    log("llmsim answers again on port %d (half of the calls 503)", port)
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    seen = coll.check_covered(set(placed), settle=1.0)
    check(coll.count(dlq) == 0, "dead letters: %r",
          [(r.source(), r.header("extractd.error"),
            r.header("extractd.error.detail")) for r in coll.records[dlq]][:3])
    check(all(v == 1 for v in seen.values()), "inputs out more than once")
    coll.check_persons(placed, [t.encode() for t in texts])
    n503 = h.llm.stats()["by_status"].get("503", 0)
    check(n503 > 0, "no 503 after the pause: the deadlines were not tried")
    d.wait_probe("/readyz", 200)
    log("%d records out, %d calls answered 503 on the way; no dead letter",
        coll.count(out), n503)
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    committed, end = h.committed(group), h.end_offsets()
    check(committed == end, "committed %r, want %r", committed, end)


if __name__ == "__main__":
    harness.run(body)
