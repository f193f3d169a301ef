"""e2e.crash: SIGKILL mid-stream loses nothing (at-least-once).

2,000 texts (and a few bad ones) over 4 partitions, llmsim latency 20 ms,
8 in flight. extractd is killed with SIGKILL once about a third of the
outputs are out and it has committed offsets at least once (so the checks
below have something to bite on), then started again with the same group.
Proves:
  - at the kill, the committed offset of every partition is behind delivered
    work only: every offset below it already has an output or dead letter;
  - after the restart every input offset ends as at least one output or dead
    letter: none lost;
  - repeats are only of records at or past the committed offsets at the
    kill (what was committed is never redone), so there are at most as many
    as were delivered before the kill; the count is printed;
  - the restarted extractd exits 0 on SIGTERM, committed to the end.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 4
GOOD = 2000
POOL = {"workers": 8, "max_in_flight": 8}
BAD = [b" ", b"No match here"]  # an input and a refusal dead letter


def body(h):
    values = [t.encode() for t in person_texts(GOOD, seed=21)]
    harness.insert_bad(values, BAD, 20, seed=4)
    total = len(values)

    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=20)
    placed = h.produce([(("k-%d" % i).encode(), v, i % PARTITIONS)
                        for i, v in enumerate(values)])
    inputs = set(placed)
    out = h.topics["output"]
    coll = h.collector()

    d1, group = h.start_extractd({"pool": POOL})

    def third_and_committed(c):
        return c.count(out) >= GOOD // 3 and \
            any(o > 0 for o in h.committed(group).values())

    coll.until(third_and_committed, "a third of the outputs and a commit",
               watch=[d1])
    d1.kill()
    coll.poll(1.0)  # whatever was written before the kill
    before = coll.coverage()
    at_kill = h.committed(group)
    log("at the kill: %d inputs out, committed %r", len(before), at_kill)
    check(0 < len(before) < total, "kill was not mid-stream: %d of %d out",
          len(before), total)
    for part, c in at_kill.items():
        for off in range(max(c, 0)):
            check((part, off) in before, "partition %d committed to %d at "
                  "the kill, but offset %d had no output or dead letter",
                  part, c, off)

    d2, _ = h.start_extractd({"pool": POOL}, group=group)
    coll.until(lambda c: inputs <= set(c.coverage()),
               "every input offset covered", watch=[d2])
    seen = coll.check_covered(inputs, 2.0)
    repeats = {k: n - 1 for k, n in seen.items() if n > 1}
    n_repeats = sum(repeats.values())
    log("DUPLICATES: %d records came out twice or more (%d delivered "
        "before the kill)", n_repeats, len(before))
    for (part, off), n in repeats.items():
        check(off >= at_kill[part], "input %d/%d came out %d times, but "
              "offset %d was committed at the kill", part, off, n + 1,
              at_kill[part])
    check(n_repeats <= len(before), "%d repeats > %d delivered before the "
          "kill", n_repeats, len(before))

    h.stop_at_end(group, d2)


if __name__ == "__main__":
    harness.run(body)
