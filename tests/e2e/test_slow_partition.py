"""e2e.slow_partition: in ordered mode a slow record holds back only its own
partition, and an LLM call slower than max.poll.interval.ms does not cost
the group membership (docs/delivery.md, Guarantees and Scaling out).

output.ordering = offset, 2 input partitions, BACKLOG[p] texts on
partition p, 8 in flight (so 16 records in the pipeline at most), kafka max.poll.interval.ms = POLL_MS. The record at offset
SLOW_AT of partition 0 is answered after SLOW_MS (twice POLL_MS);
everything else at once. Proves, while it is pending:
  - every record of partition 1 comes out (its partition does not wait);
  - partition 0 comes out up to the slow record and not past it (its
    order is kept);
then the slow record and the rest of partition 0 come out in offset
order, each input exactly once, and the group commits the end; and the
consumer kept its partitions all along: one "partitions assigned" line in
the log, none revoked or lost.
"""

import json

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

# Partition 0's records from the slow one on fit the pipeline: past that,
# its answered records would hold every slot and partition 1 would wait
# too (2 x max_in_flight records are admitted at most).
BACKLOG = {0: 14, 1: 60}
SLOW_AT = 2
POLL_MS = 7000      # max.poll.interval.ms (>= session.timeout.ms, 6 s)
SLOW_MS = 2 * POLL_MS


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=20,
                   extra=["--answers", harness.slow_answers(h, SLOW_MS)])
    texts = {p: [t.encode() for t in person_texts(BACKLOG[p],
                                                   seed=120 + p)]
             for p in (0, 1)}
    texts[0][SLOW_AT] = harness.SLOW_TEXT.encode()
    placed = h.produce([(None, v, p) for p in (0, 1) for v in texts[p]])
    check(sorted(placed) == sorted((p, o) for p in (0, 1)
                                   for o in range(BACKLOG[p])),
          "unexpected offsets %r", placed[:4])
    out = h.topics["output"]
    coll = h.collector()
    d, group = h.start_extractd({
        "output": {"ordering": "offset", "partitioning": "source"},
        "pool": {"workers": 8, "max_in_flight": 8},
        "kafka": {"properties": [("session.timeout.ms", 6000),
                                 ("max.poll.interval.ms", POLL_MS)]}})

    def by_part(c):
        got = {0: [], 1: []}
        for r in c.records[out]:
            _, p, o = r.source()
            got[p].append(o)
        return got

    def p1_done(c):
        got = by_part(c)
        check(SLOW_AT not in got[0], "the slow record came out before "
              "partition 1 was done (%d of %d)", len(got[1]), BACKLOG[1])
        # Partition 0's records before the slow one may be fetched after
        # all of partition 1 is out (a fetch of its own): wait for them
        # too, still before the slow one.
        return len(got[1]) >= BACKLOG[1] and len(got[0]) >= SLOW_AT

    coll.until(p1_done, "all of partition 1 and partition 0 up to offset "
               "%d while that one is pending" % SLOW_AT, watch=[d])
    got = by_part(coll)
    check(got[0] == list(range(SLOW_AT)), "partition 0 while offset %d is "
          "pending: %r", SLOW_AT, got[0][:10])
    log("partition 1: all %d out; partition 0: %r, waiting for offset %d",
        len(got[1]), got[0], SLOW_AT)
    coll.until(lambda c: len(by_part(c)[0]) >= BACKLOG[0],
               "the rest of partition 0", watch=[d])
    coll.poll(0.5)
    got = by_part(coll)
    for p in (0, 1):
        check(got[p] == list(range(BACKLOG[p])), "partition %d out as %r",
              p, got[p][:10])
    lines = [json.loads(x) for x in d.proc.log_text().splitlines()
             if x.startswith("{")]
    moves = [x["msg"] for x in lines
             if x.get("msg", "").startswith("partitions ")]
    check(moves == ["partitions assigned"], "the group moved partitions "
          "while a call took %d ms (max.poll.interval.ms %d): %r", SLOW_MS,
          POLL_MS, moves)
    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
