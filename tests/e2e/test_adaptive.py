"""e2e.adaptive: pool.concurrency = adaptive finds a server's capacity.

llmsim serves 2 requests at once (--capacity 2, 50 ms each) and queues the
rest, as a self-hosted server does. extractd runs with pool.max_in_flight
= 64 and 64 workers: with a fixed limit, 64 calls would sit on the server,
62 of them queued. Adaptive, the live limit (extractd_concurrency_limit)
falls from 64 to near the capacity, every record is delivered, no call
times out and none is refused.

Then the same backlog with pool.concurrency = fixed: the gauge says 64,
and llmsim's queue holds dozens of requests (so the first phase's small
queue is extractd's doing, not llmsim's).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

CAPACITY = 2
RECORDS = 400


def phase(h, coll, concurrency, first):
    texts = person_texts(RECORDS, seed=31 + first)
    h.llm.reset()
    h.produce([(("a-%d" % (first + i)).encode(), t, None)
               for i, t in enumerate(texts)])
    want = coll.count() + RECORDS
    d = opshelp.start_extractd(h, {
        "pool": {"workers": 64, "max_in_flight": 64,
                 "concurrency": concurrency},
    }, tag=concurrency)
    d.wait_address()
    coll.until(lambda c: c.count() >= want, "%d records" % want,
               watch=[d])
    samples = opshelp.parse_metrics(d.metrics())
    limit = samples["extractd_concurrency_limit"]
    calls = opshelp.family(samples, "extractd_llm_requests_total")
    stats = h.llm.stats()
    log("%s: limit %d, calls %r, llmsim %r", concurrency, limit, calls,
        stats)
    check(stats["computing_peak"] <= CAPACITY,
          "llmsim computed %d at once with --capacity %d",
          stats["computing_peak"], CAPACITY)
    rc = d.terminate()
    check(rc == 0, "%s: extractd exit status %d", concurrency, rc)
    return limit, calls, stats


def body(h):
    h.start_kafka(partitions=4)
    h.start_llmsim(latency_ms=50, extra=["--capacity", str(CAPACITY)])
    coll = h.collector()

    limit, calls, stats = phase(h, coll, "adaptive", 0)
    check(limit <= 4 * CAPACITY,
          "adaptive: the live limit ended at %d against a server of "
          "capacity %d (pool.max_in_flight 64)", limit, CAPACITY)
    check(calls.get('{status="timeout"}', 0) == 0,
          "adaptive: %d calls timed out", calls.get('{status="timeout"}'))
    check(set(calls) <= {'{status="200"}', '{status="timeout"}',
                         '{status="transport"}'}
          and calls.get('{status="transport"}', 0) == 0,
          "adaptive: calls other than 200: %r", calls)
    adaptive_wait = stats["queue_wait_ms"]

    limit, calls, stats = phase(h, coll, "fixed", RECORDS)
    check(limit == 64, "fixed: the limit is %d, not pool.max_in_flight",
          limit)
    check(stats["queue_peak"] >= 32,
          "fixed: llmsim's queue peaked at %d with 64 calls open",
          stats["queue_peak"])
    log("time queued on the server: adaptive %d ms, fixed %d ms",
        adaptive_wait, stats["queue_wait_ms"])

    coll.poll(1.0)
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %r",
          coll.records[h.topics["dlq"]][:3])
    check(coll.count() == 2 * RECORDS, "%d outputs for %d texts",
          coll.count(), 2 * RECORDS)


if __name__ == "__main__":
    harness.run(body)
