"""e2e.shutdown_bounds: SIGTERM always ends the process within
shutdown.timeout_ms, whatever the LLM API and Kafka do, and commits
nothing that was not delivered.

1. A stuck LLM (llmsim answers the texts after ten minutes; llm.timeout_ms
   is a minute):
   SIGTERM with calls open exits 0 within shutdown.timeout_ms (3 s) and a
   margin: the calls are cut at two thirds of it, the records abandoned
   (not committed: done again after a restart), and the log says so.
2. A second SIGTERM exits at once, even with a long shutdown.timeout_ms
   (60 s) and calls open.
3. Kafka gone: with calls in flight (llmsim at 1.5 s a call), the cluster
   is SIGKILLed, then extractd gets SIGTERM: it exits 0 within
   shutdown.timeout_ms (4 s) and a margin. The offsets committed before
   the kill sit behind delivered outputs only.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

MARGIN = 2.0  # s past the deadline a loaded machine may need to exit


def wait_calls(h, n, d):
    """Until llmsim has n calls open."""
    end = time.monotonic() + harness.DEADLINE
    while h.llm.stats()["current_concurrent"] < n:
        d.check_running()
        check(time.monotonic() < end, "llmsim never had %d calls open", n)
        time.sleep(0.05)


def wait_inflight(d, n):
    """Until extractd has n records admitted (its /metrics)."""
    end = time.monotonic() + harness.DEADLINE
    while True:
        m = opshelp.parse_metrics(d.metrics())
        if m.get("extractd_inflight", 0) >= n:
            return
        d.check_running()
        check(time.monotonic() < end, "extractd never had %d records in "
              "flight", n)
        time.sleep(0.05)


def terminate(d, bound):
    """SIGTERM; (status, seconds), failing past bound seconds."""
    t = time.monotonic()
    d.proc.signal(signal.SIGTERM)
    rc = d.proc.wait(bound)
    took = time.monotonic() - t
    check(rc is not None, "extractd still running %.1fs after SIGTERM:\n%s",
          took, d.proc.tail())
    log("extractd exited %d, %.2fs after SIGTERM", rc, took)
    return rc, took


def lines(d, word):
    return [x for x in d.log_text().splitlines() if word in x]


def stuck(h, texts):
    """Phases 1 and 2, on an llmsim that answers these texts after ten
    minutes (and its health check at once)."""
    answers = harness.slow_answers(h, 600000, [(t, 600000) for t in texts])
    h.llm = harness.Llmsim(h, extra=["--answers", answers])
    h.produce([(None, t, 0) for t in texts])
    over = {"llm": {"timeout_ms": 60000},
            "pool": {"workers": 4, "max_in_flight": 4},
            "shutdown": {"timeout_ms": 3000}}
    d = opshelp.start_extractd(h, over, tag="stuck")
    group = d.group
    wait_inflight(d, 4)
    wait_calls(h, 4, d)
    rc, took = terminate(d, 3.0 + MARGIN)
    check(rc == 0, "exit status %d after SIGTERM with calls stuck", rc)
    check(lines(d, "are cut"), "no line says the open calls were cut")
    stopped = lines(d, '"msg":"stopped"')
    check(stopped and '"abandoned":4' in stopped[0],
          "the last line does not count 4 abandoned records: %r", stopped)
    committed = h.committed(group)
    check(all(c < 0 for c in committed.values()),
          "offsets committed with no record delivered: %r", committed)

    over["shutdown"]["timeout_ms"] = 60000
    over["kafka"] = {"group": group}
    d = opshelp.start_extractd(h, over, tag="twice")
    wait_inflight(d, 4)
    wait_calls(h, 4, d)
    t = time.monotonic()
    d.proc.signal(signal.SIGTERM)
    time.sleep(0.5)
    check(d.proc.alive(), "extractd exited on the first SIGTERM with calls "
          "stuck and a 60-s shutdown.timeout_ms")
    d.proc.signal(signal.SIGTERM)
    rc = d.proc.wait(MARGIN)
    check(rc is not None, "still running %.1fs after a second SIGTERM",
          time.monotonic() - t)
    log("second SIGTERM: exit %d, %.2fs after the first", rc,
        time.monotonic() - t)
    check(rc == 0, "exit status %d after a second SIGTERM", rc)
    check(lines(d, "a second stop signal"),
          "no line says the second signal ended it")
    h.llm.proc.stop()


def kafka_gone(h, texts):
    """Phase 3: SIGTERM after the cluster died."""
    h.llm = harness.Llmsim(h, latency_ms=1500)
    placed = h.produce([(("g-%d" % i).encode(), t, i % 2)
                        for i, t in enumerate(texts)])
    coll = h.collector()
    d, group = h.start_extractd({
        "pool": {"workers": 8, "max_in_flight": 8},
        "shutdown": {"timeout_ms": 4000}})
    coll.until(lambda c: c.count() >= 16, "16 records out", watch=[d])
    wait_calls(h, 1, d)
    committed = h.committed(group)
    coll.poll(0.5)
    out = {}
    for r in coll.records[h.topics["output"]]:
        _, p, o = r.source()
        out.setdefault(p, set()).add(o)
    for p, c in committed.items():
        below = {o for (q, o) in placed if q == p and o < c}
        check(below <= out.get(p, set()), "partition %d committed to %d "
              "with offsets %r not delivered", p, c,
              sorted(below - out.get(p, set()))[:5])
    h.kafka.proc.signal(signal.SIGKILL)
    h.kafka.proc.wait(10)
    log("kafka-embedded killed; committed before: %r", committed)
    time.sleep(0.2)
    rc, took = d.terminate(4.0 + MARGIN)
    check(rc == 0, "exit status %d after SIGTERM with Kafka gone", rc)


def body(h):
    if os.environ.get("KAFKA_BOOTSTRAP"):
        # Phase 3 kills the cluster: on a shared one, only phases 1-2.
        h.start_kafka(partitions=2)
        stuck(h, person_texts(8, seed=1))
        return
    h.start_kafka(partitions=2)
    stuck(h, person_texts(8, seed=1))
    kafka_gone(h, person_texts(200, seed=2))


if __name__ == "__main__":
    harness.run(body)
