"""e2e.shutdown: SIGTERM during a backlog drains, commits and exits 0.

400 texts over 4 partitions, llmsim latency 200 ms, 16 in flight. Once some
outputs are out (and most of the backlog is not), extractd gets SIGTERM.
Proves:
  - it exits 0, within STOP_BOUND seconds;
  - per partition, the committed offset sits exactly behind the delivered
    work: every offset below it has an output or dead letter (nothing
    committed past an undelivered record) and nothing at or past it does
    (all delivered work was committed; with offsets admitted in order and
    in-flight work drained, the delivered offsets are a contiguous prefix);
  - started again with the same group, extractd does the rest: each input
    comes out exactly once over both runs, and the group ends at the end.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 4
TOTAL = 400
STOP_BOUND = 30.0  # s: drain 16 requests of 200 ms, flush, commit, close


def by_partition(coll, topics):
    """{partition: [source offsets]} over outputs and dead letters."""
    got = {p: [] for p in range(PARTITIONS)}
    for t in topics:
        for r in coll.records[t]:
            _, part, off = r.source()
            got[part].append(off)
    return got


def body(h):
    texts = person_texts(TOTAL - 8, seed=33)
    for i in range(8):
        texts.insert(i * 50 + 7, "" if i % 2 else "Nobody at all")
    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=200)
    placed = h.produce([(("s-%d" % i).encode(), t, i % PARTITIONS)
                        for i, t in enumerate(texts)])
    out, dlq = h.topics["output"], h.topics["dlq"]
    coll = h.collector()

    d1, group = h.start_extractd({"pool": {"workers": 16,
                                           "max_in_flight": 16}})
    coll.until(lambda c: c.count() >= 40, "40 records out", watch=[d1])
    rc, took = d1.terminate(STOP_BOUND)
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    coll.poll(2.0)
    committed = h.committed(group)
    got = by_partition(coll, (out, dlq))
    log("after SIGTERM (%.2fs): committed %r, delivered %r", took,
        committed, {p: len(v) for p, v in got.items()})
    check(sum(max(c, 0) for c in committed.values()) < TOTAL,
          "no backlog was left at SIGTERM: committed %r", committed)
    for p in range(PARTITIONS):
        c = max(committed[p], 0)
        offs = sorted(got[p])
        check(len(offs) == len(set(offs)), "partition %d: an input came out "
              "twice in one clean run", p)
        missing = sorted(set(range(c)) - set(offs))
        check(not missing, "partition %d committed to %d, but offsets %s "
              "have no output or dead letter", p, c, missing[:10])
        beyond = [o for o in offs if o >= c]
        check(not beyond, "partition %d committed to %d, but offsets %s "
              "past it were delivered (not committed at shutdown)", p, c,
              beyond[:10])

    d2, _ = h.start_extractd({"pool": {"workers": 16, "max_in_flight": 16}},
                             group=group)
    coll.until(lambda c: c.count() >= TOTAL, "%d records" % TOTAL,
               watch=[d2])
    coll.poll(1.0)
    got = by_partition(coll, (out, dlq))
    allofs = sorted((p, o) for p, offs in got.items() for o in offs)
    check(allofs == sorted(placed), "over both runs: %d records for %d "
          "inputs, %d distinct", len(allofs), TOTAL, len(set(allofs)))
    rc, _ = d2.terminate(STOP_BOUND)
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    committed, end = h.committed(group), h.end_offsets()
    check(committed == end, "committed %r, want %r", committed, end)


if __name__ == "__main__":
    harness.run(body)
