"""e2e.ordered: in offset order, a reader of the output sees each input
partition's order, where output.partitioning says it can.

The input has 4 partitions; two in three of its records have no key, the
rest one of three keys of their partition (as a keyed producer places
them). The output and dead-letter topics have 6 partitions, so a record
placed by its input partition is told from one placed anywhere. llmsim
answers in a scrambled order (latency 20 ms, jitter 19 ms, 16 in flight).
The same input goes through extractd twice, in output.ordering = offset,
each time into topics of its own, read as a user reads them: one consumer
over every partition, records in the order they arrive:

  - partitioning left at its default (auto): a record with a key goes to
    its key's partition (murmur2, as librdkafka's and Java's default
    partitioner place it), one without a key to its input partition's
    number; the reader gets each input partition's keyless records, and
    each key's records, in offset order. (With a keyless record placed
    anywhere, as before auto, the demo's ordered run printed out of
    order.)
  - partitioning = source: every record goes to its input partition's
    number; the reader gets each input partition's records in offset
    order.

Each time: each input comes out exactly once, with its key; outputs and
dead letters taken together were produced in offset order (ordered by
source offset, their CreateTime stamps never go back); and committed
offsets reach the end.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, key_partition, log, person_texts  # noqa: E402

PARTITIONS = 4
OUT_PARTITIONS = 6
GOOD = 400
BAD = [b"", "The weather is nice today".encode(),
       "Old Tom is a 999-year-old sailor".encode()]


def key_of(i):
    """Record i's key: none for two in three, else one of three keys of
    its input partition (i % PARTITIONS)."""
    if i % 3:
        return None
    return ("p%d-k%d" % (i % PARTITIONS, (i // 3) % 3)).encode()


def run(h, name, out, dlq, output_cfg, place, by_key, src, keys):
    """One extractd over the whole input, in its own group, into out and
    dlq; place(input partition, key) is the output partition a record
    must be in."""
    total = len(src)
    coll = h.collector([out, dlq])
    d, group = h.start_extractd({
        "kafka": {"output_topic": out, "dlq_topic": dlq},
        "output": output_cfg,
        "pool": {"workers": 16, "max_in_flight": 16},
    }, group=h.unique("group." + name))
    coll.until(lambda c: c.count() >= total,
               "%s: %d outputs and dead letters" % (name, total),
               watch=[d])
    coll.poll(1.0)

    by_input = {p: [] for p in range(PARTITIONS)}
    seen = set()
    for topic in (out, dlq):
        for r in coll.records[topic]:
            _, part, off = r.source()
            check((part, off) in src, "%s: no input %d/%d", r.where(),
                  part, off)
            check((part, off) not in seen, "input %d/%d came out twice",
                  part, off)
            seen.add((part, off))
            check(r.key == keys[(part, off)], "%s: key %r, want the "
                  "input's %r", r.where(), r.key, keys[(part, off)])
            want = place(part, r.key)
            check(r.partition == want, "%s: %s, input %d/%d with key %r "
                  "is in partition %d, want %d", name, r.where(), part,
                  off, r.key, r.partition, want)
            by_input[part].append((off, r.timestamp, r.where()))
    check(len(seen) == total, "%d of %d inputs came out", len(seen), total)

    n = coll.check_reader_order(by_key=by_key)
    log("%s: a reader got each input partition's records%s in offset "
        "order (%d records)", name, ", key by key," if by_key else "", n)

    for part, recs in by_input.items():
        recs.sort()
        for (o1, t1, w1), (o2, t2, w2) in zip(recs, recs[1:]):
            check(t2 >= t1, "input partition %d: offset %d (%s) produced "
                  "at %d, before offset %d (%s) at %d", part, o2, w2, t2,
                  o1, w1, t1)
    log("%s: produced in offset order across %s and %s", name, out, dlq)
    h.stop_at_end(group, d)


def body(h):
    values = [t.encode() for t in person_texts(GOOD, seed=3)]
    harness.insert_bad(values, BAD, 24, seed=99)

    h.start_kafka(partitions=PARTITIONS, out_partitions=OUT_PARTITIONS,
                  more_topics={"auto.out": OUT_PARTITIONS,
                               "auto.dlq": OUT_PARTITIONS})
    h.start_llmsim(latency_ms=20, jitter_ms=19, seed=5)
    placed = h.produce([(key_of(i), v, i % PARTITIONS)
                        for i, v in enumerate(values)])
    src = {pos: values[i] for i, pos in enumerate(placed)}
    keys = {pos: key_of(i) for i, pos in enumerate(placed)}
    log("%d inputs, %d with a key", len(src),
        sum(k is not None for k in keys.values()))

    def by_source(part, key):
        return part % OUT_PARTITIONS

    def auto(part, key):
        if key is None:
            return by_source(part, key)
        return key_partition(key, OUT_PARTITIONS)

    run(h, "auto", h.topics["auto.out"], h.topics["auto.dlq"],
        {"ordering": "offset"}, auto, True, src, keys)
    run(h, "source", h.topics["output"], h.topics["dlq"],
        {"ordering": "offset", "partitioning": "source"}, by_source, False,
        src, keys)


if __name__ == "__main__":
    harness.run(body)
