"""e2e.exactly_once: with output.delivery = exactly-once, a SIGKILL
mid-stream and a restart leave every input exactly once in the output, as
a read_committed reader sees it.

extractd commits its outputs and the input offsets in Kafka transactions
(every 100 ms). The kill leaves an open transaction behind; the restarted
instance has the same transactional.id, so it fences the old one, whose
open transaction is aborted, and starts from the committed offsets. The
collector reads with isolation.level = read_committed (librdkafka's
default). Bad texts end as dead letters, also exactly once. Exactly-once
releases in offset order, and the texts have no key: with
output.partitioning at its default, the reader (one consumer over every
partition) gets each input partition's records in offset order.

Real Kafka only: librdkafka's mock cluster accepts transactions but keeps
neither transactional offset commits nor aborts, so on kafka-embedded the
test says so and is skipped (the CI's real-Kafka pass runs it).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, expected_person, log, person_texts  # noqa: E402

PARTITIONS = 4
GOOD = 1500
CFG = {"pool": {"workers": 8, "max_in_flight": 8},
       "output": {"delivery": "exactly-once", "transaction_ms": 100}}


def body(h):
    values = [t.encode() for t in person_texts(GOOD, seed=31)]
    harness.insert_bad(values, [b"No match here"], 10, seed=8)
    total = len(values)

    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=10)
    placed = h.produce([(None, v, i % PARTITIONS)
                        for i, v in enumerate(values)])
    value_at = dict(zip(placed, values))
    out, dlq = h.topics["output"], h.topics["dlq"]
    coll = h.collector()

    d1, group = h.start_extractd(CFG)
    coll.until(lambda c: c.count() >= total // 3, "a third committed",
               watch=[d1])
    d1.kill()
    coll.poll(1.0)
    log("at the kill: %d records visible to read_committed", coll.count())

    d2, _ = h.start_extractd(CFG, group=group)
    coll.until(lambda c: c.count() >= total, "%d records" % total,
               watch=[d2])
    coll.poll(3.0)  # a duplicate would show up now

    seen = {}
    for t in (out, dlq):
        for r in coll.records[t]:
            _, p, off = r.source()
            seen[(p, off)] = seen.get((p, off), 0) + 1
            if t == out:
                want = expected_person(value_at[(p, off)].decode())
                check(r.json() == want, "%s: %r, want %r", r.where(),
                      r.value, want)
            else:
                check(r.header("extractd.error") == "llm_refusal",
                      "%s: %s", r.where(), r.header("extractd.error"))
    dups = {k: n for k, n in seen.items() if n > 1}
    check(not dups, "%d inputs came out more than once, e.g. %r",
          len(dups), sorted(dups.items())[:5])
    check(set(seen) == set(placed), "lost %d inputs, e.g. %r",
          len(set(placed) - set(seen)), sorted(set(placed) - set(seen))[:5])
    n = coll.check_reader_order()
    log("a read_committed reader got each input partition's %d records in "
        "offset order", n)

    h.stop_at_end(group, d2)


if __name__ == "__main__":
    if not os.environ.get("KAFKA_BOOTSTRAP"):
        harness.skip("exactly-once needs a real Kafka (KAFKA_BOOTSTRAP); "
                     "the mock cluster does not keep transactional offsets")
    harness.run(body)
