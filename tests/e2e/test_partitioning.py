"""e2e.partitioning: where outputs and dead letters go (output.partitioning),
with an input topic of 4 partitions and output and dead-letter topics of 3.

  key     (the default) each record carries its input's key, and goes
          where Kafka's Java clients put that key (librdkafka's
          murmur2_random, which extractd sets): murmur2 of the key, made
          positive, modulo the partition count; so one key always lands in
          one partition, whatever input partition it came from, the same
          one a Java producer would pick. A record without a key still
          comes out, without a key.
  source  the input's partition number modulo the output's partition
          count: input partition 3 goes to partition 0.
Each phase has its own extractd on the same group; every input comes out
exactly once, good texts as outputs and the bad ones as dead letters, both
placed by the same rule.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

IN_PARTS = 4
OUT_PARTS = 3
N = 80
KEYS = 10       # distinct keys, each on several input partitions
BAD = b"No person in this one"


def murmur2(data):
    """Kafka's murmur2 (the Java client's Utils.murmur2), unsigned."""
    m = 0x5bd1e995
    n = len(data)
    h = (0x9747b28c ^ n) & 0xffffffff
    for i in range(0, n - n % 4, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & 0xffffffff
        k = ((k ^ (k >> 24)) * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    tail = data[n - n % 4:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * m) & 0xffffffff
    h = ((h ^ (h >> 13)) * m) & 0xffffffff
    return h ^ (h >> 15)


def java_partition(key, n):
    """The partition a Java producer's default partitioner picks."""
    return (murmur2(key) & 0x7fffffff) % n


# Kafka's own test vectors for murmur2 (as signed 32-bit values).
for _w, _want in ((b"21", -973932308), (b"foobar", -790332482),
                  (b"abc", 479470107)):
    assert murmur2(_w) == _want & 0xffffffff, _w


def phase(h, coll, group, mode, seed):
    texts = [t.encode() for t in person_texts(N, seed=seed)]
    records = []
    for i, v in enumerate(texts):
        if i % 10 == 9:
            v = BAD
        key = None if i % 20 == 7 else ("%s-key-%d" % (mode, i % KEYS))
        records.append((key.encode() if key else None, v, i % IN_PARTS))
    placed = h.produce(records)
    rec_at = dict(zip(placed, records))
    before = coll.count()
    d, group = h.start_extractd({"output": {"partitioning": mode}},
                                group=group)
    coll.until(lambda c: c.count() >= before + N, "%d records (%s)" %
               (N, mode), watch=[d])
    coll.poll(0.5)
    out, dlq = h.topics["output"], h.topics["dlq"]
    mine = [r for t in (out, dlq) for r in coll.records[t]
            if r.source()[1:] in rec_at]
    check(sorted(r.source()[1:] for r in mine) == sorted(placed),
          "%s: %d records for %d inputs", mode, len(mine), N)
    where = {}  # key -> output partitions
    for r in mine:
        key, value, part = rec_at[r.source()[1:]]
        check((r.topic == dlq) == (value == BAD), "%s: %s: %r went to %s",
              mode, r.where(), value, r.topic)
        check(r.key == key, "%s: %s: key %r, input's %r", mode, r.where(),
              r.key, key)
        if mode == "source":
            want = part % OUT_PARTS
        elif key is not None:
            want = java_partition(key, OUT_PARTS)
            where.setdefault((r.topic, key), set()).add(r.partition)
        else:
            continue
        check(r.partition == want, "%s: %s (input partition %d, key %r) "
              "is in partition %d, want %d", mode, r.where(), part, key,
              r.partition, want)
    if mode == "key":
        spread = {k for k, ps in where.items() if len(ps) > 1}
        check(not spread, "keys in more than one partition: %r", spread)
        check(len({java_partition(k, OUT_PARTS) for _, k in where}) > 1,
              "every key hashed to one partition: the test proves little")
    log("%s: %d records placed by the rule", mode, len(mine))
    h.stop_at_end(group, d)
    return group


def body(h):
    h.start_kafka(partitions=IN_PARTS, out_partitions=OUT_PARTS)
    h.start_llmsim(latency_ms=5)
    coll = h.collector()
    group = phase(h, coll, None, "key", seed=101)
    phase(h, coll, group, "source", seed=102)


if __name__ == "__main__":
    harness.run(body)
