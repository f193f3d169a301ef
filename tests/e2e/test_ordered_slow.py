"""e2e.ordered_slow: records behind a slow one wait for it, across outputs and dead letters.

With output.ordering = offset and output.partitioning = source, and llmsim
answering in a scrambled order (latency 20 ms, jitter 19 ms, 16 in flight),
and in each partition a few records answered only after SLOW_MS, each
followed by texts that end as dead letters at once (empty: no LLM call), or
after a quick refusal. Proves per input partition:
  - every output and dead letter goes to the input's own partition number;
  - inside each output partition and each dead-letter partition, the
    extractd.source offsets strictly increase (the order is read from the
    output offsets, not from timestamps);
  - across the two topics, outputs and dead letters were produced in
    offset order: ordered by source offset, their record timestamps
    (CreateTime, set when extractd produced them) never go back. Equal
    milliseconds prove nothing, so the test also requires that the dead
    letters behind each slow record were produced at or after its output,
    when in completion order they would have gone SLOW_MS before it;
  - each input comes out exactly once, and committed offsets reach the end.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 4
GOOD = 400
BAD = [b"", "The weather is nice today".encode(),
       "Old Tom is a 999-year-old sailor".encode()]
SLOW_MS = 1000
SLOW_PER_PARTITION = 3
# What follows each slow record: an input dead letter (no call at all) and
# a refusal (one quick call).
AFTER_SLOW = [b" ", b"Nothing to see here"]


def body(h):
    values = [t.encode() for t in person_texts(GOOD, seed=3)]
    harness.insert_bad(values, BAD, 24, seed=99)
    # Per partition: its share of values, with the slow groups spread out.
    per = [values[p::PARTITIONS] for p in range(PARTITIONS)]
    for vals in per:
        step = len(vals) // (SLOW_PER_PARTITION + 1)
        for k in range(SLOW_PER_PARTITION, 0, -1):
            vals[k * step:k * step] = [harness.SLOW_TEXT.encode()] + \
                AFTER_SLOW
    records = [(("o-%d-%d" % (p, i)).encode(), v, p)
               for p in range(PARTITIONS) for i, v in enumerate(per[p])]
    values = [v for _, v, _ in records]
    total = len(values)

    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=20, jitter_ms=19, seed=5,
                   extra=["--answers", harness.slow_answers(h, SLOW_MS)])
    placed = h.produce(records)
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

    slow_pairs = 0
    for part, recs in by_input.items():
        recs.sort()
        for (o1, t1, w1), (o2, t2, w2) in zip(recs, recs[1:]):
            check(t2 >= t1, "input partition %d: offset %d (%s) produced at "
                  "%d, before offset %d (%s) at %d", part, o2, w2, t2, o1,
                  w1, t1)
        # The dead letters right behind each slow record: produced after
        # its output (checked above), though ready SLOW_MS before it.
        for i, (o, t, w) in enumerate(recs):
            if src[(part, o)] != harness.SLOW_TEXT.encode():
                continue
            for o2, t2, w2 in recs[i + 1:i + 1 + len(AFTER_SLOW)]:
                check(src[(part, o2)] in AFTER_SLOW and w2.startswith(dlq),
                      "%s: input %d/%d is not a dead letter behind the "
                      "slow %d", w2, part, o2, o)
                slow_pairs += 1
    check(slow_pairs == PARTITIONS * SLOW_PER_PARTITION * len(AFTER_SLOW),
          "%d dead letters behind slow records", slow_pairs)
    log("%d records: per partition in offset order across %s and %s; "
        "%d dead letters waited for the slow record before them", total,
        out, dlq, slow_pairs)

    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
