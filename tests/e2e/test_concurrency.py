"""e2e.concurrency: pool.max_in_flight bounds the open LLM requests.

Phase 1: max_in_flight = 8 with 16 workers, llmsim latency 100 ms and a
backlog of 200 texts: llmsim's peak of concurrently open requests is exactly
8 (never above, and the bound is reached under a backlog). Phase 2: the same
group, max_in_flight = 1, 20 more texts: the peak is exactly 1, and only the
new texts are processed (the group resumes from its committed offsets).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 4


def phase(h, coll, group, texts, first, max_in_flight):
    h.llm.reset()
    placed = h.produce([(("c-%d" % (first + i)).encode(), t, None)
                        for i, t in enumerate(texts)])
    want = coll.count() + len(texts)
    d, _ = h.start_extractd({
        "pool": {"workers": 16, "max_in_flight": max_in_flight},
    }, group=group)
    coll.until(lambda c: c.count() >= want, "%d records" % want, watch=[d])
    stats = h.llm.stats()
    log("max_in_flight %d: llmsim stats %s", max_in_flight, stats)
    check(stats["peak_concurrent"] <= max_in_flight,
          "max_in_flight %d, but llmsim saw %d requests open at once",
          max_in_flight, stats["peak_concurrent"])
    check(stats["peak_concurrent"] == max_in_flight,
          "max_in_flight %d under a backlog of %d, but the peak was only %d",
          max_in_flight, len(texts), stats["peak_concurrent"])
    check(stats["requests"] == len(texts) + harness.STARTUP_CHECKS,
          "llmsim saw %d requests for %d texts (and %d health check)",
          stats["requests"], len(texts), harness.STARTUP_CHECKS)
    rc, _ = d.terminate(60)
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    return placed


def body(h):
    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=100)
    coll = h.collector()
    group = h.unique("group")
    texts = person_texts(220, seed=11)
    phase(h, coll, group, texts[:200], 0, 8)
    phase(h, coll, group, texts[200:], 200, 1)
    coll.poll(1.0)
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %r",
          coll.records[h.topics["dlq"]][:3])
    check(coll.count() == 220, "%d outputs for 220 texts", coll.count())
    committed, end = h.committed(group), h.end_offsets()
    check(committed == end, "committed %r, want %r", committed, end)


if __name__ == "__main__":
    harness.run(body)
