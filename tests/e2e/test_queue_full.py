"""e2e.queue_full: a producer queue of four messages in offset order slows
extractd down; it loses nothing, keeps the order and never stops.

kafka.properties sets queue.buffering.max.messages = 4, so librdkafka takes
at most four records at a time and most produce calls find the queue full.
800 texts (and a few bad ones) over 4 partitions, output.ordering =
offset, output.partitioning = source, 8 workers and 16 in flight, llmsim
answering in a scrambled order (latency 5 ms, jitter 4 ms). Proves:
  - the queue was full (extractd says so at info level, rate-limited):
    the setting took effect and the case under test happened;
  - every input comes out exactly once, as its exact Person record or a
    dead letter;
  - per input partition the records were produced in offset order: the
    extractd.source offsets strictly increase inside each output and
    dead-letter partition, and ordered by source offset the records'
    CreateTime never goes back across both topics;
  - no fatal error, and SIGTERM exits 0 with the group committed to the
    end of the input.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 4
GOOD = 800
BAD = [b"", "Nobody is here at all".encode()]
KAFKA = {"properties": [("session.timeout.ms", 6000),
                        ("queue.buffering.max.messages", 4)]}


def body(h):
    values = [t.encode() for t in person_texts(GOOD, seed=8)]
    harness.insert_bad(values, BAD, 16, seed=81)
    total = len(values)

    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=5, jitter_ms=4, seed=12)
    placed = h.produce([(("q-%d" % i).encode(), v, i % PARTITIONS)
                        for i, v in enumerate(values)])
    coll = h.collector()
    d, group = h.start_extractd({
        "kafka": KAFKA,
        "output": {"ordering": "offset", "partitioning": "source"},
        "pool": {"workers": 8, "max_in_flight": 16},
    })
    out, dlq = h.topics["output"], h.topics["dlq"]
    coll.until(lambda c: c.count() >= total,
               "%d outputs and dead letters" % total, watch=[d])
    coll.poll(1.0)

    full = [x for x in d.proc.log_text().splitlines()
            if "producer queue full" in x]
    check(full, "extractd never found its producer queue full: "
          "queue.buffering.max.messages = 4 did not take effect")
    log("%d 'producer queue full' lines, e.g. %s", len(full), full[0])

    coll.check_persons(placed, values)
    seen = set()
    by_input = {p: [] for p in range(PARTITIONS)}
    for topic in (out, dlq):
        last = {}
        for r in coll.records[topic]:
            _, part, off = r.source()
            check((part, off) not in seen, "input %d/%d came out twice",
                  part, off)
            seen.add((part, off))
            check(r.partition == part, "%s: from input partition %d, but "
                  "partitioning = source", r.where(), part)
            check(off > last.get(part, -1), "%s: source offset %d after %d "
                  "in the same partition", r.where(), off,
                  last.get(part, -1))
            last[part] = off
            by_input[part].append((off, r.timestamp, r.where()))
    check(seen == set(placed), "%d of %d inputs came out (%d unknown)",
          len(seen & set(placed)), total, len(seen - set(placed)))
    for part, recs in by_input.items():
        recs.sort()
        for (o1, t1, w1), (o2, t2, w2) in zip(recs, recs[1:]):
            check(t2 >= t1, "input partition %d: offset %d (%s) produced "
                  "at %d, before offset %d (%s) at %d", part, o2, w2, t2,
                  o1, w1, t1)
    log("%d records, in offset order per partition, through a queue of 4",
        total)

    d.check_no_fatal()
    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
