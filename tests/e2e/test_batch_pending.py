"""e2e.batch_pending: batch.max_pending bounds the records held for
batches, and holds back only the partitions that feed them.

batch.mode = backlog (min_backlog 100), batches of at most 200, at most
300 records held (batch.max_pending); llmsim holds every batch in
progress until the test lets them finish (--batch-hold). 1,500 texts
wait on partition 0 before extractd starts: the batcher fills up and
partition 0 waits. Then 30 texts arrive on partition 1, whose lag is
small: they are answered live and delivered before any record of
partition 0 (all waiting on batches). extractd_batch_records never goes
far past 300 (the records already fetched when the pause came), and in
the end every record has its one right output.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 1500
LIVE = 30
MAX_PENDING = 300
SLACK = 100     # fetched before the pause took effect


def body(h):
    h.start_kafka(partitions=2, more_topics={"batches": 1})
    hold = os.path.join(h.dir, "batches.hold")
    open(hold, "w").close()
    h.start_llmsim(latency_ms=5, extra=["--batch-hold", hold])
    coll = h.collector()
    texts = person_texts(N + LIVE, seed=43)
    placed = h.produce([(None, t, 0) for t in texts[:N]])
    d = opshelp.start_extractd(h, {
        "batch": {"mode": "backlog", "min_backlog": 100,
                  "max_requests": 200, "max_wait_s": 0.5, "poll_ms": 100,
                  "max_pending": MAX_PENDING,
                  "state_topic": h.topics["batches"]}})
    peak = 0

    def held():
        nonlocal peak
        n = opshelp.parse_metrics(d.metrics()).get(
            "extractd_batch_records", 0)
        peak = max(peak, n)
        return n

    harness.wait_until(lambda: held() >= MAX_PENDING, "the batcher full",
                       watch=[d])
    placed += h.produce([(None, t, 1) for t in texts[N:]])
    out = h.topics["output"]

    def of(c, p):
        return sum(1 for r in c.records[out] if r.source()[1] == p)

    coll.until(lambda c: of(c, 1) >= LIVE and held() >= 0,
               "partition 1's outputs", watch=[d])
    early = of(coll, 0)
    log("partition 1 delivered while partition 0 had %d of %d outputs",
        early, N)
    check(early == 0, "partition 1 waited for partition 0's batches "
          "(%d of its records delivered first)", early)
    os.remove(hold)
    coll.until(lambda c: held() >= 0 and c.count() >= N + LIVE,
               "every output", watch=[d])
    h.until_committed_end(d.group, watch=[d])
    coll.read_to_end(watch=[d])
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    log("at most %d records held for batches (max_pending %d)", peak,
        MAX_PENDING)
    check(peak <= MAX_PENDING + SLACK, "%d records held for batches, "
          "batch.max_pending %d", peak, MAX_PENDING)
    coll.check_each_once(placed, [t.encode() for t in texts])


if __name__ == "__main__":
    harness.run(body)
