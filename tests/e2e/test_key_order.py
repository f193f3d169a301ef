"""e2e.key_order: in key order, each key's records come out in offset
order, different keys do not wait for each other, and no two records of
one key are in flight at once.

One input partition holds 300 texts, each with one of 20 keys (drawn at
random, so a key's records are often close together); llmsim answers
with jitter (latency 30 ms, jitter 25 ms), so calls finish out of order.
extractd runs with output.ordering = key, pool.max_in_flight = 16 and
its log at debug level. The output (4 partitions) is read as a user
reads it, one consumer over every partition:

  - every input comes out exactly once, with its key, in its key's
    partition, and no dead letter;
  - per key, source offsets strictly increase as the reader gets them;
  - concurrency inside the one partition is used: llmsim's peak of open
    requests is well above 1 (at least 8), and at most 16;
  - no two records of a key were in flight at once: in extractd's log,
    each key's "record consumed" (admission) and "record delivered"
    lines alternate, and at some point records of 8 or more keys were in
    flight together;
  - the committed offset reaches the end of the input.
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, key_partition, log, person_texts  # noqa: E402

OUT_PARTITIONS = 4
RECORDS = 300
KEYS = 20
MAX_IN_FLIGHT = 16


def check_log(text, key_at):
    """Per key, admissions and deliveries alternate in extractd's log;
    returns the most keys seen in flight at once."""
    in_flight = {}  # key -> offset
    most = 0
    for line in text.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        msg = ev.get("msg")
        if msg not in ("record consumed", "record delivered"):
            continue
        off = ev["offset"]
        key = key_at[off]
        if msg == "record consumed":
            check(key not in in_flight, "offset %d (key %r) admitted while "
                  "offset %d of its key was in flight", off, key,
                  in_flight.get(key))
            in_flight[key] = off
            most = max(most, len(in_flight))
        else:
            check(in_flight.get(key) == off, "offset %d (key %r) delivered, "
                  "but the key's record in flight is %r", off, key,
                  in_flight.get(key))
            del in_flight[key]
    check(not in_flight, "never delivered: %r", in_flight)
    return most


def body(h):
    rnd = random.Random(18)
    texts = person_texts(RECORDS, seed=18)
    keys = [("key-%02d" % rnd.randrange(KEYS)).encode()
            for _ in range(RECORDS)]

    h.start_kafka(partitions=1, out_partitions=OUT_PARTITIONS)
    h.start_llmsim(latency_ms=30, jitter_ms=25, seed=18)
    placed = h.produce([(k, t, 0) for k, t in zip(keys, texts)])
    key_at = {off: keys[i] for i, (_, off) in enumerate(placed)}

    coll = h.collector()
    d, group = h.start_extractd({
        "output": {"ordering": "key"},
        "pool": {"workers": 16, "max_in_flight": MAX_IN_FLIGHT},
        "log": {"level": "debug"},
    })
    coll.until(lambda c: c.count() >= RECORDS, "%d outputs" % RECORDS,
               watch=[d])
    coll.poll(1.0)

    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %r",
          coll.records[h.topics["dlq"]][:3])
    seen = set()
    for r in coll.records[h.topics["output"]]:
        _, part, off = r.source()
        check((part, off) in set(placed), "%s: no input %d/%d", r.where(),
              part, off)
        check(off not in seen, "input 0/%d came out twice", off)
        seen.add(off)
        check(r.key == key_at[off], "%s: key %r, want %r", r.where(), r.key,
              key_at[off])
        want = key_partition(r.key, OUT_PARTITIONS)
        check(r.partition == want, "%s: key %r in partition %d, want %d",
              r.where(), r.key, r.partition, want)
    check(len(seen) == RECORDS, "%d of %d inputs came out", len(seen),
          RECORDS)
    coll.check_persons(placed, [t.encode() for t in texts])
    n = coll.check_reader_order(by_key=True)
    log("a reader got each key's records in offset order (%d records)", n)

    stats = h.llm.stats()
    log("llmsim stats %s", stats)
    check(stats["peak_concurrent"] <= MAX_IN_FLIGHT,
          "llmsim saw %d requests open at once, max_in_flight is %d",
          stats["peak_concurrent"], MAX_IN_FLIGHT)
    check(stats["peak_concurrent"] >= MAX_IN_FLIGHT // 2,
          "one partition of %d keys, but llmsim saw at most %d requests "
          "open at once", KEYS, stats["peak_concurrent"])

    h.stop_at_end(group, d)
    most = check_log(d.proc.log_text(), key_at)
    log("no two records of a key in flight at once; up to %d keys in "
        "flight together", most)
    check(most >= MAX_IN_FLIGHT // 2, "at most %d keys in flight together",
          most)


if __name__ == "__main__":
    harness.run(body)
