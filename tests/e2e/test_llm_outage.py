"""e2e.llm_outage: the LLM server goes away mid-stream and comes back; not
one record is dead-lettered or lost for it.

300 texts over 2 partitions, llmsim at 30 ms, 8 in flight, a small retry
budget (3 calls, backoff 20-200 ms: without the pause every record in
flight would be dead-lettered as llm_http within a second of the outage).
Once 60 records are out, llmsim is killed (SIGKILL, as a crash) and kept
down for DOWN seconds, then started again on the same port. Proves:
  - while it is down: no output and no dead letter appears, /readyz is
    503 and names the endpoint it cannot connect to, the metrics show the
    pause (extractd_llm_paused{reason="unreachable"} 1), and the log has
    one error line saying consumption is paused and why;
  - once it is back: extraction resumes by itself (a probe every
    retry.max_delay_ms), every input comes out exactly once as the Person
    llmsim extracts from it, none as a dead letter, /readyz is 200 again,
    an info line says how long it was paused, and SIGTERM commits the end.
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

N = 300
DOWN = 6.0  # seconds llmsim stays dead


def log_lines(d):
    return [json.loads(x) for x in d.log_text().splitlines()
            if x.startswith("{")]


def body(h):
    h.start_kafka(partitions=2)
    sim = h.start_llmsim(latency_ms=30)
    port = sim.port
    texts = person_texts(N, seed=41)
    placed = h.produce([(("o-%d" % i).encode(), t, i % 2)
                        for i, t in enumerate(texts)])
    coll = h.collector()
    out, dlq = h.topics["output"], h.topics["dlq"]

    d = opshelp.start_extractd(h, {
        "pool": {"workers": 8, "max_in_flight": 8},
        "llm": {"timeout_ms": 3000, "connect_timeout_ms": 1000},
        "retry": {"max_attempts": 3, "base_delay_ms": 20,
                  "max_delay_ms": 200},
    }, tag="outage")
    group = d.group
    coll.until(lambda c: c.count() >= 60, "60 records out", watch=[d])

    # Records answered before the kill may still come out; no other can:
    # those llmsim answered by now, and at most the 8 calls open now.
    answered = sim.stats()["by_status"].get("200", 0) - \
        harness.STARTUP_CHECKS + 8
    sim.proc.signal(9)
    sim.proc.stop()
    log("llmsim killed, %d texts answered", answered)
    body_ = d.wait_probe("/readyz", 503, contains="LLM API paused",
                         timeout=30)
    check("cannot connect to 127.0.0.1:%d" % port in body_,
          "/readyz does not name the endpoint: %r", body_)
    t_down = time.monotonic()
    while time.monotonic() - t_down < DOWN:
        coll.poll(0.5)
        check(coll.count(dlq) == 0, "dead letters during the outage: %r",
              [(r.source(), r.header("extractd.error.detail"))
               for r in coll.records[dlq]][:3])
        d.check_running()
    check(coll.count() <= answered, "%d records out, but llmsim answered "
          "at most %d before it was killed", coll.count(), answered)
    m = opshelp.parse_metrics(d.metrics())
    check(m.get('extractd_llm_paused{reason="unreachable"}') == 1,
          "extractd_llm_paused{reason=\"unreachable\"} is %r",
          m.get('extractd_llm_paused{reason="unreachable"}'))
    check(m.get('extractd_llm_pauses_total{reason="unreachable"}', 0) >= 1,
          "no pause counted")
    paused = [x for x in log_lines(d) if "paused" in x.get("msg", "")]
    check(len(paused) == 1 and paused[0]["level"] == "error" and
          paused[0].get("fault") == "unreachable",
          "want one error line for the pause, got %r", paused)

    h.llm = harness.Llmsim(h, latency_ms=30,
                           extra=["--listen", "127.0.0.1:%d" % port])
    check(h.llm.port == port, "llmsim came back on %d, not %d",
          h.llm.port, port)
    log("llmsim back on port %d", port)
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    seen = coll.check_covered(set(placed), settle=1.0)
    check(coll.count(dlq) == 0, "dead letters: %r",
          [(r.source(), r.header("extractd.error.detail"))
           for r in coll.records[dlq]][:3])
    dup = [k for k, v in seen.items() if v != 1]
    check(not dup, "inputs out more than once: %r", dup[:5])
    coll.check_persons(placed, [t.encode() for t in texts])
    d.wait_probe("/readyz", 200, timeout=30)
    resumed = [x for x in log_lines(d) if "answers again" in x.get("msg", "")]
    check(len(resumed) == 1 and resumed[0]["level"] == "info" and
          resumed[0].get("paused_s", 0) >= DOWN - 1,
          "want one info line for the resume, got %r", resumed)

    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    committed, end = h.committed(group), h.end_offsets()
    check(committed == end, "committed %r, want %r", committed, end)


if __name__ == "__main__":
    harness.run(body)
