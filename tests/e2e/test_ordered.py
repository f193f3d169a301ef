"""e2e.ordered: ordered mode keeps each input partition's offset order.

With output.ordering = offset and output.partitioning = source, and llmsim
answering in a scrambled order (latency 20 ms, jitter 19 ms, 16 in flight),
proves per input partition:
  - every output and dead letter goes to the input's own partition number;
  - inside each output partition and each dead-letter partition, the
    extractd.source offsets strictly increase;
  - outputs and dead letters taken together were produced in offset order:
    ordered by source offset, their record timestamps (CreateTime, set when
    extractd produced them) never go back;
  - each input comes out exactly once, and committed offsets reach the end.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 4
GOOD = 400
BAD = [b"", "The weather is nice today".encode(),
       "Old Tom is a 999-year-old sailor".encode()]


def body(h):
    values = [t.encode() for t in person_texts(GOOD, seed=3)]
    harness.insert_bad(values, BAD, 24, seed=99)
    total = len(values)

    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=20, jitter_ms=19, seed=5)
    placed = h.produce([(("o-%d" % i).encode(), v, i % PARTITIONS)
                        for i, v in enumerate(values)])
    src = {pos: values[i] for i, pos in enumerate(placed)}

    coll = h.collector()
    d, group = h.start_extractd({
        "output": {"ordering": "offset", "partitioning": "source"},
        "pool": {"workers": 16, "max_in_flight": 16},
    })
    out, dlq = h.topics["output"], h.topics["dlq"]
    coll.until(lambda c: c.count() >= total,
               "%d outputs and dead letters" % total, watch=[d])
    coll.poll(1.0)

    by_input = {p: [] for p in range(PARTITIONS)}
    seen = set()
    for topic in (out, dlq):
        last = {}
        # Records arrive per topic partition in log order.
        for r in coll.records[topic]:
            _, part, off = r.source()
            check((part, off) in src, "%s: no input %d/%d", r.where(),
                  part, off)
            check((part, off) not in seen, "input %d/%d came out twice",
                  part, off)
            seen.add((part, off))
            check(r.partition == part, "%s: from input partition %d, "
                  "but partitioning = source", r.where(), part)
            check(off > last.get(r.partition, -1),
                  "%s: source offset %d after %d in the same partition",
                  r.where(), off, last.get(r.partition, -1))
            last[r.partition] = off
            by_input[part].append((off, r.timestamp, r.where()))
    check(len(seen) == total, "%d of %d inputs came out", len(seen), total)

    for part, recs in by_input.items():
        recs.sort()
        for (o1, t1, w1), (o2, t2, w2) in zip(recs, recs[1:]):
            check(t2 >= t1, "input partition %d: offset %d (%s) produced at "
                  "%d, before offset %d (%s) at %d", part, o2, w2, t2, o1,
                  w1, t1)
    log("%d records: per partition in offset order across %s and %s",
        total, out, dlq)

    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
